"""Position and expected-wait announcements: numbers said with the files Asterisk's core sounds have."""

from __future__ import annotations

import pytest

from callcenter.acd import routing as rt
from callcenter.acd.announcements import announcement_prompt, number_sounds
from tests.centers import example

CORE_DIGITS = {f"digits/{n}" for n in [*range(21), *range(30, 100, 10)]}  # asterisk-core-sounds-en


@pytest.mark.parametrize(
    ("n", "sounds"),
    [
        (0, ["digits/0"]),
        (7, ["digits/7"]),
        (20, ["digits/20"]),
        (21, ["digits/20", "digits/1"]),
        (40, ["digits/40"]),
        (99, ["digits/90", "digits/9"]),
        (250, ["digits/90", "digits/9"]),
    ],
)
def test_numbers_are_said_in_tens_then_units(n: int, sounds: list[str]) -> None:
    assert number_sounds(n) == sounds


def test_every_number_an_announcement_can_say_is_a_core_sound() -> None:
    for n in range(0, 1000):
        assert set(number_sounds(n)) <= CORE_DIGITS, n


def test_a_late_position_plays_only_existing_files() -> None:
    config = example()
    queue = next(q for q in config.queues.values() if q.announce_position and q.announce_wait)
    played = announcement_prompt(
        rt.Announcement(23, 37 * 60.0, offer_callback=False), "en", queue, sounds_dir="/s"
    )
    digits = [s for s in played.split("&") if s.startswith("digits/")]
    assert digits == ["digits/20", "digits/3", "digits/30", "digits/7"]
