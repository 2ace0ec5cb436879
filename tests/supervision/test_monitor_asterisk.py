"""Supervisors' monitoring against a REAL Asterisk 22 (``ASTERISK_BIN``; skipped without it).

The example center rendered and loaded by the harness of ``tests/test_real_asterisk.py``; the
controller side is the FastAGI server with the ``spy`` route and the monitor following the
session over the controller's own (least-privilege) AMI user. Phones are Local channels (no SIP
here), so two seams of :class:`MonitorService` map them: the supervisor's Local channel is taken as
``super9001``'s phone, and the agent's channels are ``Local/agent1001@cc-test-tone-...``. The
rest is Asterisk's own: the monitor code through ``cc-agents`` -> ``cc-features`` -> AGI ``spy``,
the PIN read with ``GET DATA`` from DTMF, ``cc-spy`` running ``ChanSpy`` with the options we set,
``ChanSpyStart``, DTMF 5 switching to whisper (seen as ``DTMFEnd`` on the spyer), the agent's
call ending, which ends ChanSpy (``E``) and the supervisor's call; a wrong PIN; and the PCI hold:
on a real bridged call (caller in ``cc-hold`` bridged by the agent leg of ``cc-agent-leg``), a
``MixMonitorMute`` of the caller's recording takes the supervisor out of ChanSpy to music, and
the unmute brings them back. (Found here: the spied channel must be one that reads and writes
frames, as a bridged leg does; a Local half that only plays a tone never lets ChanSpy detach, so
a Redirect or Hangup of the spyer is not acted on.)
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami import Message
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import FakeClock
from callcenter.commands.demo import DEMO_PINS
from callcenter.config import model as m
from callcenter.supervision.service import MonitorService
from tests import asterisk_harness as rt
from tests.fakes import FakeAgentCalls, RecordSink

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]

PIN = DEMO_PINS["9001"]  # super9001's demo PIN (dialplans/people.yaml stores its hash)
TEST_PHONES = "@cc-test-tone-"  # Local channels of the test's "phones"
# Local channels carry no media of their own, and ChanSpy's audiohooks only detach when frames
# pass through the channels (see tests/fixtures/asterisk-traces/README.md): every "phone" here
# answers and sends a tone, as in the capture.
TONE_PHONES = """; ---- added by tests/supervision/test_monitor_asterisk.py (test-only)
[cc-test-tone]
exten => agent1001,1,Answer()
 same => n,Milliwatt()
exten => sup9001,1,Answer()
 same => n,Milliwatt()
exten => caller,1,Answer()
 same => n,Milliwatt()
"""


@pytest.fixture(scope="module")
def center() -> Iterator[rt.Center]:
    with rt.real_center(TONE_PHONES) as c:
        yield c


def local_endpoint(channel: str) -> str | None:
    """The test's supervisor phone is a Local channel on ``sup9001``."""
    return "super9001" if channel.startswith("Local/sup9001" + TEST_PHONES) else None


def local_target(agent: m.Agent) -> str:
    return f"Local/{agent.endpoint}{TEST_PHONES}"


@dataclass
class Rig:
    service: MonitorService
    sink: RecordSink
    server: FastAGIServer


@contextlib.asynccontextmanager
async def monitor_on(center: rt.Center) -> AsyncIterator[Rig]:
    sink = RecordSink()
    a = center.config.asterisk.ami
    client = AMIClient(
        port=center.asterisk.ami_port,
        username=a.username,
        secret=center.ami_secret,
        ping_interval=0,
        reconnect=False,
    )
    async with client:
        service = MonitorService(
            center.config,
            writer=sink,
            clock=FakeClock(rt.OPEN_MONDAY),
            acd=FakeAgentCalls({"1001": "call-real"}),
            ami=client,
            endpoint_of_channel=local_endpoint,
            target_of=local_target,
        )
        detach = service.attach()
        server = FastAGIServer({names.AGI_SPY: service.handle}, host="127.0.0.1", port=center.agi_port)
        async with server:
            yield Rig(service, sink, server)
        detach()
        await service.drain()
    assert server.failed == 0


async def originate(
    client: AMIClient, watcher: rt.Watcher, headers: list[tuple[str, str]]
) -> tuple[str, str]:
    """Originate a Local pair with ids we chose; returns (;1 name, ;2 name)."""
    uid = "cct-" + uuid.uuid4().hex[:12]
    await client.send_action(
        names.ACTION_ORIGINATE,
        [
            *headers,
            ("ChannelId", uid),
            ("OtherChannelId", uid + "-2"),
            ("Timeout", "30000"),
            ("Async", "true"),
        ],
        timeout=10,
    )
    one = await watcher.wait(lambda e: e.name == "Newchannel" and e.get("Uniqueid") == uid, "no ;1")
    two = await watcher.wait(lambda e: e.name == "Newchannel" and e.get("Uniqueid") == uid + "-2", "no ;2")
    return one.get("Channel") or "", two.get("Channel") or ""


async def press(client: AMIClient, channel: str, digits: str) -> None:
    for d in digits:
        await client.send_action(
            names.ACTION_PLAYDTMF, {"Channel": channel, "Digit": d, "Duration": "120"}, timeout=10
        )


async def test_listen_switch_to_whisper_and_the_call_ending_ends_the_spy(center: rt.Center) -> None:
    async with rt.admin(center) as admin:
        watcher = rt.Watcher(admin)
        try:
            async with monitor_on(center) as r:
                # the agent on a call: its phone answers and sends a tone
                agent_1, _agent_2 = await originate(
                    admin,
                    watcher,
                    [("Channel", f"Local/agent1001{TEST_PHONES[:-1]}"), ("Application", "Milliwatt")],
                )
                # the supervisor dials *811001 from a phone that sends a tone too: ;1 runs cc-agents
                spyer, phone = await originate(
                    admin,
                    watcher,
                    [
                        ("Channel", f"Local/sup9001{TEST_PHONES[:-1]}"),
                        ("Context", names.CTX_AGENT_PHONES),
                        ("Exten", "*811001"),
                        ("Priority", "1"),
                    ],
                )
                await watcher.wait(
                    lambda e: (
                        e.name == "AGIExecStart"
                        and e.get("Channel") == spyer
                        and "enter-pin" in (e.get("Command") or "")
                    ),
                    "the PIN was never asked",
                    timeout=30,
                )
                await press(admin, phone, PIN + "#")
                start: Message = await watcher.wait(
                    lambda e: e.name == "ChanSpyStart" and e.get("SpyerChannel") == spyer,
                    "ChanSpy never started",
                    timeout=30,
                )
                assert (start.get("SpyeeChannel") or "").startswith("Local/agent1001@cc-test-tone-")
                await r.sink.until(lambda: len(r.sink.events(kind="monitor_start")) == 1, timeout=20)
                await press(admin, phone, "5")
                await r.sink.until(lambda: len(r.sink.events(kind="monitor_mode")) == 1, timeout=20)
                await admin.send_action(names.ACTION_HANGUP, {"Channel": agent_1}, timeout=10)
                await watcher.wait(
                    lambda e: e.name == "ChanSpyStop" and e.get("SpyerChannel") == spyer,
                    "ChanSpy never stopped",
                    timeout=30,
                )
                await watcher.wait(
                    lambda e: e.name == "Hangup" and e.get("Channel") == spyer,
                    "the spy call did not end",
                    timeout=30,
                )
                await r.sink.until(lambda: len(r.sink.events(kind="monitor_end")) == 1, timeout=20)
        finally:
            await rt.hang_up_everything(admin)
            await watcher.close()
    start_ev, mode_ev, end_ev = r.sink.events()
    assert start_ev.call_id == "call-real" and start_ev.detail and start_ev.detail["mode"] == "listen"
    assert mode_ev.detail and mode_ev.detail["mode"] == "whisper"
    assert end_ev.detail and end_ev.detail["modes"] == "listen,whisper"
    assert r.sink.outcomes() == ["ok", "ok", "ended"] and r.service.sessions == {}


async def test_a_wrong_pin_on_real_asterisk(center: rt.Center) -> None:
    async with rt.admin(center) as admin:
        watcher = rt.Watcher(admin)
        try:
            async with monitor_on(center) as r:
                spyer, phone = await originate(
                    admin,
                    watcher,
                    [
                        ("Channel", f"Local/sup9001{TEST_PHONES[:-1]}"),
                        ("Context", names.CTX_AGENT_PHONES),
                        ("Exten", "*811001"),
                        ("Priority", "1"),
                    ],
                )
                last: Message | None = None
                for pin in ("1111#", "2222#", "3333#"):
                    last = await watcher.wait(
                        lambda e: (
                            e.name == "AGIExecStart"
                            and e.get("Channel") == spyer
                            and "enter-pin" in (e.get("Command") or "")
                        ),
                        "the PIN was not asked (again)",
                        timeout=30,
                        after=last,
                    )
                    await press(admin, phone, pin)
                await watcher.wait(
                    lambda e: e.name == "Hangup" and e.get("Channel") == spyer,
                    "the call did not end",
                    timeout=30,
                )
        finally:
            await rt.hang_up_everything(admin)
            await watcher.close()
    assert r.sink.outcomes() == ["bad_pin"]
    assert not [e for e in watcher.seen if e.name == "ChanSpyStart"]


async def test_muting_the_recording_takes_the_supervisor_off_and_back(center: rt.Center) -> None:
    """The real ``MixMonitorMute`` event reaches the controller's least-privilege AMI user and the
    supervisor is held off the call (music) until the recording is unmuted."""
    async with rt.admin(center) as admin:
        watcher = rt.Watcher(admin)
        try:
            async with monitor_on(center) as r:
                # a real call: the caller holds in cc-hold, the agent's leg Bridge()s it (cc-agent-leg),
                # so frames flow through the spied channel both ways
                caller, _caller_phone = await originate(
                    admin,
                    watcher,
                    [
                        ("Channel", f"Local/caller{TEST_PHONES[:-1]}"),
                        ("Context", names.CTX_HOLD),
                        ("Exten", "s"),
                        ("Priority", "1"),
                    ],
                )
                await originate(
                    admin,
                    watcher,
                    [
                        ("Channel", f"Local/agent1001{TEST_PHONES[:-1]}"),
                        ("Context", names.CTX_AGENT_LEG),
                        ("Exten", "s"),
                        ("Priority", "1"),
                        ("Variable", f"{names.VAR_CALLER_CHANNEL}={caller}"),
                    ],
                )
                await watcher.wait(
                    lambda e: e.name == "BridgeEnter" and e.get("Channel") == caller, "no bridge", timeout=30
                )
                spyer, phone = await originate(
                    admin,
                    watcher,
                    [
                        ("Channel", f"Local/sup9001{TEST_PHONES[:-1]}"),
                        ("Context", names.CTX_AGENT_PHONES),
                        ("Exten", "*811001"),
                        ("Priority", "1"),
                    ],
                )
                await watcher.wait(
                    lambda e: (
                        e.name == "AGIExecStart"
                        and e.get("Channel") == spyer
                        and "enter-pin" in (e.get("Command") or "")
                    ),
                    "the PIN was never asked",
                    timeout=30,
                )
                await press(admin, phone, PIN + "#")
                start = await watcher.wait(
                    lambda e: e.name == "ChanSpyStart" and e.get("SpyerChannel") == spyer,
                    "no ChanSpy",
                    timeout=30,
                )
                await r.sink.until(lambda: len(r.sink.events(kind="monitor_start")) == 1, timeout=20)
                # the ACD's PCI pause: MixMonitorMute on the caller's recording
                recording = f"{center.config.recording.directory}/pci-{uuid.uuid4().hex[:8]}.wav"
                await admin.send_action("MixMonitor", {"Channel": caller, "File": recording}, timeout=10)
                await admin.send_action(
                    "MixMonitorMute", {"Channel": caller, "Direction": "both", "State": "1"}, timeout=10
                )
                await watcher.wait(
                    lambda e: e.name == "MusicOnHoldStart" and e.get("Channel") == spyer,
                    "the supervisor was not taken off the call",
                    timeout=10,
                )
                await admin.send_action(
                    "MixMonitorMute", {"Channel": caller, "Direction": "both", "State": "0"}, timeout=10
                )
                await watcher.wait(
                    lambda e: e.name == "ChanSpyStart" and e.get("SpyerChannel") == spyer,
                    "the supervisor did not come back",
                    timeout=30,
                    after=start,
                )
                await r.sink.until(lambda: len(r.sink.events(kind="pci_resume")) == 1, timeout=20)
        finally:
            await rt.hang_up_everything(admin)
            await watcher.close()
    kinds = [str(e.kind) for e in r.sink.events()]
    assert kinds[:3] == ["monitor_start", "pci_pause", "pci_resume"]
