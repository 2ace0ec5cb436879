"""FastAGI trust on a real Asterisk 22 (``ASTERISK_BIN``): the controller serves the IVR of a
real call, and refuses a peer that claims a live channel with another unique id, or a channel
Asterisk does not have; a channel born before the registry is confirmed by ``Status``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.asterisk.channels import LiveChannels
from tests.asterisk.test_agi_server import fake_asterisk, replay
from tests.asterisk.test_agi_trust import feature_env
from tests.asterisk_harness import (
    Center,
    Watcher,
    admin,
    call_in,
    controller_for,
    hang_up_everything,
    real_center,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def center() -> Iterator[Center]:
    with real_center() as c:
        yield c


async def test_only_the_channels_asterisk_has_are_believed(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(center, db_dsn, tmp_path) as ctl:
                caller = await call_in(
                    client, watcher, "18005550100", {"language-menu": "1", "main-menu": "0"}
                )
                await watcher.wait(
                    lambda m: m.name == "MusicOnHoldStart" and m.get("Channel") == caller.line,
                    "the real caller's IVR session was not believed (no music on hold)",
                    timeout=60,
                )
                assert ctl.agi is not None and ctl.agi.untrusted == 0 and ctl.agi.served >= 1
                # A peer on the FastAGI port claims the live caller's channel with another id ...
                env = {**feature_env(caller.line, caller.uid + "-9"), "agi_network_script": "ivr"}
                got = await fake_asterisk(center.agi_port, replay([]), env=env)
                assert got == [["failure"]]
                # ... and an agent's channel Asterisk does not have (Status: "No such channel").
                got = await fake_asterisk(
                    center.agi_port, replay([]), env=feature_env("PJSIP/agent-1003-00000abc", "1795420700.1")
                )
                assert got == [["failure"]] and ctl.agi.untrusted == 2
                # A registry that saw no event confirms the live caller through Status alone.
                fresh = LiveChannels(ctl.ami, settle=0.01)
                assert await fresh.confirm(caller.uid + "-2", caller.line, timeout=5)
                assert fresh.asked == 1
                # Learnt from that answer: another id for the same channel is refused without asking.
                assert not await fresh.confirm(caller.uid + "-9", caller.line, timeout=5)
                assert fresh.asked == 1
        finally:
            await asyncio.wait_for(hang_up_everything(client), 20)
            await watcher.close()
