"""Typed AMI event views: the values the shells read, odd spellings included."""

from __future__ import annotations

import pytest

from callcenter.asterisk.ami import Message
from callcenter.asterisk.events import MixMonitorMute, parse_event


@pytest.mark.parametrize(
    ("state", "muted"),
    [("1", True), ("yes", True), (" True ", True), ("on", True), ("0", False), ("no", False), ("", False)],
)
def test_mixmonitor_mute_state(state: str, muted: bool) -> None:
    m = Message(
        (
            ("Event", "MixMonitorMute"),
            ("Channel", "PJSIP/carrier-00000001"),
            ("Direction", "both"),
            ("State", state),
        )
    )
    view = parse_event(m)
    assert isinstance(view, MixMonitorMute)
    assert (view.channel.channel, view.direction, view.state) == ("PJSIP/carrier-00000001", "both", muted)


def test_mixmonitor_mute_without_state_is_not_muted() -> None:
    view = MixMonitorMute.from_message(Message((("Event", "MixMonitorMute"), ("Channel", "X/1"))))
    assert not view.state and view.direction is None
