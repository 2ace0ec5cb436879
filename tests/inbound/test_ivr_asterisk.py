"""The ``ivr`` route against a REAL Asterisk 22 (``ASTERISK_BIN``; skipped without it): the
assumptions the route makes about Asterisk, checked where they matter. The example center is
rendered and loaded by ``tests/asterisk_harness.py``; the controller side here is only the
FastAGI server with the ``ivr`` route (a small flow of our own, fakes for the ACD and the
call log), so each exit of the IVR is seen landing where the rendered dialplan sends it:

- ``EXEC Goto cc-fallback,s,1`` from inside the AGI (the route's answer to a failure) lands on
  priority 1 of ``cc-fallback`` once the AGI returns;
- ``CC_MAILBOX`` set, the AGI ends: the call reaches ``VoiceMail(<box>@...)`` in ``cc-voicemail``;
- a caller hanging up in the middle of a ``GET DATA`` ends the route quietly, recorded as an IVR
  abandon (Asterisk's ``HANGUP`` notice / ``result=-1``);
- a hang-up exit: the message plays, the AGI ends, the dialplan hangs up.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami import Message
from callcenter.clock import FakeClock
from callcenter.config import model as m
from callcenter.inbound.service import IvrService
from callcenter.reporting.records import CallRecord, Disposition
from tests import asterisk_harness as rt
from tests.fakes import FakeDistributor, RecordSink

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def center() -> Iterator[rt.Center]:
    """The module's own real Asterisk."""
    with rt.real_center() as c:
        yield c


DID = "18005550100"


def _flow() -> m.Flow:
    nodes: list[m.IVRNode] = [
        m.MenuNode(
            id="menu",
            prompt="main-menu",
            choices=m.frozen_map({"1": "vm", "2": "bye", "3": "q"}),
            timeout=8,
            max_attempts=1,
            fallback="bye",
        ),
        m.VoicemailNode(id="vm", mailbox="8000"),
        m.HangupNode(id="bye", prompt="goodbye"),
        m.QueueNode(id="q", queue="general"),
    ]
    return m.Flow(id="main", start="menu", nodes=m.frozen_map({n.id: n for n in nodes}))


@dataclass
class Rig:
    sink: RecordSink
    acd: FakeDistributor
    server: FastAGIServer
    service: IvrService


@contextlib.asynccontextmanager
async def ivr_on(center: rt.Center) -> AsyncIterator[Rig]:
    config = dataclasses.replace(center.config, flows=m.frozen_map({"main": _flow()}))
    sink, acd = RecordSink(), FakeDistributor()
    service = IvrService(
        config, writer=sink, distributor=acd, customers=None, clock=FakeClock(rt.OPEN_MONDAY)
    )
    server = FastAGIServer({names.AGI_IVR: service.handle}, host="127.0.0.1", port=center.agi_port)
    async with server:
        yield Rig(sink, acd, server, service)
    assert server.failed == 0


def _on(line: str, context: str) -> object:
    return lambda e: e.name == "Newexten" and e.get("Channel") == line and e.get("Context") == context


async def test_a_refused_hand_off_lands_on_the_first_step_of_the_fallback(center: rt.Center) -> None:
    async with rt.admin(center) as client:
        watcher = rt.Watcher(client)
        try:
            async with ivr_on(center) as r:
                r.acd.fail = True
                caller = await rt.call_in(client, watcher, DID, {"main-menu": "3"})
                first: Message = await watcher.wait(
                    _on(caller.line, names.CTX_FALLBACK),
                    "never reached cc-fallback",
                    timeout=40,  # type: ignore[arg-type]
                )
                assert (first.get("Extension"), first.get("Priority")) == ("s", "1")
                assert r.service.stats.failed == 1
        finally:
            await rt.hang_up_everything(client)
            await watcher.close()


async def test_voicemail_exit_reaches_the_mailbox(center: rt.Center) -> None:
    async with rt.admin(center) as client:
        watcher = rt.Watcher(client)
        try:
            async with ivr_on(center) as r:
                caller = await rt.call_in(client, watcher, DID, {"main-menu": "1"})
                vm = await watcher.wait(
                    lambda e: (
                        e.name == "Newexten"
                        and e.get("Channel") == caller.line
                        and e.get("Context") == names.CTX_VOICEMAIL
                        and e.get("Application") == "VoiceMail"
                    ),
                    "never reached VoiceMail",
                    timeout=40,
                )
                assert (vm.get("AppData") or "").startswith("8000@")  # the box the IVR named
                assert r.service.stats.finished == {"voicemail": 1}
        finally:
            await rt.hang_up_everything(client)
            await watcher.close()
    assert [c.disposition for c in r.sink.calls()][-1] is Disposition.VOICEMAIL


async def test_caller_hanging_up_during_the_menu_is_an_ivr_abandon(center: rt.Center) -> None:
    async with rt.admin(center) as client:
        watcher = rt.Watcher(client)
        try:
            async with ivr_on(center) as r:
                caller = await rt.call_in(client, watcher, DID, {})
                await watcher.wait(
                    lambda e: (
                        e.name == "AGIExecStart"
                        and e.get("Channel") == caller.line
                        and "main-menu" in (e.get("Command") or "")
                    ),
                    "the menu never started",
                )
                await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
                await watcher.wait(
                    lambda e: e.name == "Hangup" and e.get("Channel") == caller.line, "no hang-up", timeout=20
                )
                await rt.wait_until(lambda: r.service.stats.active == 0, "the route did not end")
        finally:
            await rt.hang_up_everything(client)
            await watcher.close()
    assert r.service.stats.finished == {"abandoned": 1}
    final = [c for c in r.sink.calls() if isinstance(c, CallRecord)][-1]
    assert final.disposition is Disposition.ABANDONED_IVR and final.hangup_by == "caller"


async def test_hang_up_exit_plays_the_message_then_the_dialplan_hangs_up(center: rt.Center) -> None:
    async with rt.admin(center) as client:
        watcher = rt.Watcher(client)
        try:
            async with ivr_on(center) as r:
                caller = await rt.call_in(client, watcher, DID, {"main-menu": "2"})
                await watcher.wait(
                    lambda e: (
                        e.name == "AGIExecStart"
                        and e.get("Channel") == caller.line
                        and "goodbye" in (e.get("Command") or "")
                    ),
                    "the goodbye message never played",
                    timeout=40,
                )
                hangup = await watcher.wait(
                    lambda e: e.name == "Hangup" and e.get("Channel") == caller.line, "no hang-up", timeout=40
                )
                assert hangup.get("Cause") == "16"  # normal clearing, by the dialplan's Hangup()
        finally:
            await rt.hang_up_everything(client)
            await watcher.close()
    assert r.service.stats.finished == {"hangup": 1}
