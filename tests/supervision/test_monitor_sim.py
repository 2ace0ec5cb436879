"""Supervisors' monitoring end to end on the simulated PBX: the example center rendered from
``dialplans/``; a caller held and bridged by an agent leg (``cc-agent-leg``); a supervisor's phone
dials the monitor code (``cc-agents`` -> ``cc-features`` -> the controller's ``spy`` FastAGI route ->
``cc-spy`` -> ChanSpy); the controller follows the session over a real AMI link. Each mode, DTMF
mode switching, a wrong PIN and the lockout, an idle agent, the call ending during the spy, and
two supervisors on one agent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import FakeClock, ScaledClock
from callcenter.config import model as m
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.reporting.records import CallEvent, LogRecord, MonitorSession
from callcenter.sim import SimulatedPBX
from callcenter.supervision.service import MonitorService, MonitorSettings
from tests.sim.dialplan_edits import answering_features
from tests.supervision.test_monitor import AgentsOnCalls

REPO = Path(__file__).resolve().parents[2]
SECRET = "sim-secret"
PIN_9001 = "246810"  # dialplans/people.yaml default
PIN_9002 = "135791"


@pytest.fixture(scope="module")
def center() -> m.Config:
    return load_config(REPO / "dialplans", env={"CC_AMI_SECRET": SECRET, "CC_PIN_9001": PIN_9001})


@pytest.fixture(scope="module")
def etc(center: m.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered configuration, its feature codes answering (the simulator, as Asterisk, lets
    no prompt be heard on an unanswered phone: see tests/sim/test_feature_answer.py)."""
    out = tmp_path_factory.mktemp("etc")
    write_files(render(center), out)
    ext = out / "extensions.conf"
    ext.write_text(answering_features(ext.read_text()))
    return out


class Sink:
    """The call-log writer at the seam; wakes waiters on every record."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.changed = asyncio.Event()

    def submit(self, record: LogRecord) -> None:
        self.records.append(record)
        self.changed.set()

    async def until(self, predicate: Any, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

    def events(self, kind: str | None = None) -> list[CallEvent]:
        return [r for r in self.records if isinstance(r, CallEvent) and kind in (None, str(r.kind))]

    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.records if isinstance(r, MonitorSession) and r.outcome]


@dataclass
class Phone:
    """A supervisor's phone: types the PIN (and a mode) at the prompts; records what it heard."""

    pins: list[str]
    mode_key: str | None = None
    prompts: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    chan: Any = None

    async def until(self, predicate: Any, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

    def on_event(self, pbx: Any, chan: Any, what: str, detail: str) -> None:
        loop = asyncio.get_running_loop()
        self.changed.set()
        if what == "prompt":
            name = detail.rsplit("/", 1)[-1]
            self.prompts.append(name)
            keys = ""
            if name == "enter-pin" and self.pins:
                keys = self.pins.pop(0) + "#"
            elif name == "spy-mode-menu" and self.mode_key:
                keys = self.mode_key
            for d in keys:
                loop.call_soon(pbx.send_dtmf, chan, d, 100)
        elif what == "app":
            self.apps.append(detail)
        elif what == "hangup":
            self.gone.set()


@dataclass
class Center:
    sim: SimulatedPBX
    sink: Sink
    acd: AgentsOnCalls
    service: MonitorService

    def dial(self, endpoint: str, digits: str, phone: Phone) -> Any:
        chan = self.sim.pbx.phone_call(endpoint, digits, context=names.CTX_AGENT_PHONES, owner=phone)
        phone.chan = chan
        return chan

    def agent_on_call(self, agent: str, call_id: str) -> tuple[Any, Any]:
        """A caller holding, bridged by the agent's leg as the ACD does it."""
        pbx = self.sim.pbx
        caller = pbx.new_sip_channel("carrier")
        pbx.chan_event("Newchannel", caller)
        pbx.set_variable(caller, names.VAR_CALL_ID, call_id)
        pbx.start_dialplan(caller, names.CTX_HOLD, "s", 1)
        leg = pbx.new_sip_channel(f"agent{agent}")
        pbx.chan_event("Newchannel", leg)
        pbx.set_variable(leg, names.VAR_CALLER_CHANNEL, caller.name)
        pbx.set_variable(leg, names.VAR_AGENT_ID, agent)
        pbx.start_dialplan(leg, names.CTX_AGENT_LEG, "s", 1)
        self.acd.calls[agent] = call_id
        return caller, leg

    async def hang_up(self, chan: Any) -> None:
        self.sim.pbx.remote_hangup(chan)


@contextlib.asynccontextmanager
async def running(
    center: m.Config, etc: Path, tmp: Path, settings: MonitorSettings | None = None
) -> AsyncIterator[Center]:
    sink, acd = Sink(), AgentsOnCalls()
    ids = iter(f"spy-{i}" for i in range(1, 1000))
    server_routes: dict[str, Any] = {}
    server = FastAGIServer(server_routes, host="127.0.0.1", port=0)
    async with server:
        sim = SimulatedPBX(
            etc,
            clock=ScaledClock(20),
            agi_host="127.0.0.1",
            agi_port=server.port,
            recordings_dir=tmp / "rec",
            sounds_dirs=[REPO / "ivr_prompts"],
        )
        async with sim:
            ami = center.asterisk.ami
            async with AMIClient(
                host="127.0.0.1", port=sim.ami_port, username=ami.username, secret=SECRET, ping_interval=0
            ) as client:
                service = MonitorService(
                    center,
                    writer=sink,
                    clock=FakeClock(start=1_795_446_000.0),
                    acd=acd,
                    ami=client,
                    settings=settings,
                    new_session_id=lambda: next(ids),
                )
                server.routes[names.AGI_SPY] = service.handle
                detach = service.attach()
                yield Center(sim, sink, acd, service)
                detach()
    assert server.failed == 0


def started(n: int) -> Any:
    return lambda s: len(s.events("monitor_start")) >= n


@pytest.mark.parametrize(("code", "mode"), [("*81", "listen"), ("*82", "whisper"), ("*83", "barge")])
async def test_each_mode_spies_on_the_agents_call(
    center: m.Config, etc: Path, tmp_path: Path, code: str, mode: str
) -> None:
    async with running(center, etc, tmp_path) as c:
        caller, leg = c.agent_on_call("1001", "call-1")
        phone = Phone([PIN_9001])
        c.dial("super9001", f"{code}1001", phone)
        await c.sink.until(started(1))
        start = c.sink.events("monitor_start")[0]
        assert start.call_id == "call-1" and start.agent_id == "1001"
        assert start.detail is not None and start.detail["mode"] == mode
        assert str(start.detail["spyee"]).startswith("PJSIP/agent1001-")
        await c.hang_up(phone.chan)  # the supervisor hangs up
        await c.sink.until(lambda s: "ended" in s.outcomes())
        assert not caller.gone and not leg.gone  # the call goes on
    assert phone.prompts == ["enter-pin"]
    assert "ChanSpy" in phone.apps


async def test_dtmf_switches_modes_and_the_call_ending_ends_the_spy(
    center: m.Config, etc: Path, tmp_path: Path
) -> None:
    async with running(center, etc, tmp_path) as c:
        caller, _leg = c.agent_on_call("1001", "call-2")
        phone = Phone([PIN_9001])
        chan = c.dial("super9001", "*811001", phone)
        await c.sink.until(started(1))
        for n, digit in enumerate("564", start=1):
            c.sim.pbx.send_dtmf(chan, digit, 100)
            await c.sink.until(lambda s, n=n: len(s.events("monitor_mode")) >= n)
        await c.hang_up(caller)  # the customer hangs up: the agent's leg ends, ChanSpy (E) ends
        async with asyncio.timeout(20):
            await phone.gone.wait()
        await c.sink.until(lambda s: len(s.events("monitor_end")) == 1)
    modes = [e.detail["mode"] for e in c.sink.events("monitor_mode") if e.detail]
    assert modes == ["whisper", "barge", "listen"]
    end = c.sink.events("monitor_end")[0].detail
    assert end is not None and end["modes"] == "listen,whisper,barge,listen"
    assert c.service.sessions == {}


async def test_wrong_pins_lock_the_supervisor_out(center: m.Config, etc: Path, tmp_path: Path) -> None:
    async with running(center, etc, tmp_path, MonitorSettings(max_pin_failures=5, lockout_seconds=600)) as c:
        c.agent_on_call("1001", "call-3")
        first = Phone(["1111", "2222", "3333"])
        c.dial("super9001", "*811001", first)
        async with asyncio.timeout(20):
            await first.gone.wait()
        second = Phone(["4444", "5555"])
        c.dial("super9001", "*811001", second)
        async with asyncio.timeout(20):
            await second.gone.wait()
        third = Phone([PIN_9001])
        c.dial("super9001", "*811001", third)
        async with asyncio.timeout(20):
            await third.gone.wait()
    assert first.prompts == ["enter-pin", "pin-invalid"] * 3
    assert second.prompts == ["enter-pin", "pin-invalid", "enter-pin", "locked-out"]
    assert third.prompts == ["locked-out"]
    assert "ChanSpy" not in first.apps + second.apps + third.apps
    assert c.sink.outcomes() == ["bad_pin", "locked_out", "locked_out"]


async def test_unauthorised_supervisor_or_agent(center: m.Config, etc: Path, tmp_path: Path) -> None:
    async with running(center, etc, tmp_path) as c:
        c.agent_on_call("1003", "call-4")  # Carla serves support and general
        agent_phone = Phone([])
        c.dial("agent1001", "*811003", agent_phone)  # an agent's phone is not a supervisor's
        async with asyncio.timeout(20):
            await agent_phone.gone.wait()
        outside = Phone([PIN_9001])
        c.dial("super9001", "*819999", outside)  # no such agent (every example agent is in 9001's scope)
        async with asyncio.timeout(20):
            await outside.gone.wait()
    assert agent_phone.prompts == ["spy-not-allowed"]
    assert outside.prompts == ["enter-pin", "spy-not-allowed"]  # the PIN first: nothing revealed before
    assert c.sink.outcomes() == ["unauthorised", "unknown_agent"]
    assert "ChanSpy" not in agent_phone.apps + outside.apps


async def test_idle_agent_the_supervisor_waits_for_the_next_call(
    center: m.Config, etc: Path, tmp_path: Path
) -> None:
    async with running(center, etc, tmp_path) as c:
        phone = Phone([PIN_9001])
        c.dial("super9001", "*811001", phone)
        await c.sink.until(lambda s: "waiting" in s.outcomes())
        assert phone.prompts == ["enter-pin", "spy-agent-idle"]
        c.agent_on_call("1001", "call-5")  # the agent's next call
        await c.sink.until(started(1))
        assert c.sink.events("monitor_start")[0].call_id == "call-5"
        await c.hang_up(phone.chan)


async def test_two_supervisors_on_one_agent(center: m.Config, etc: Path, tmp_path: Path) -> None:
    async with running(center, etc, tmp_path) as c:
        caller, _leg = c.agent_on_call("1001", "call-6")
        a, b = Phone([PIN_9001]), Phone([PIN_9002])
        c.dial("super9001", "*811001", a)
        c.dial("super9002", "*831001", b)
        await c.sink.until(started(2))
        await c.hang_up(caller)
        async with asyncio.timeout(20):
            await a.gone.wait()
            await b.gone.wait()
        await c.sink.until(lambda s: len(s.events("monitor_end")) == 2)
    sessions = {e.detail["session_id"]: e.detail["mode"] for e in c.sink.events("monitor_start") if e.detail}
    assert sorted(sessions.values()) == ["barge", "listen"]


async def test_pci_pause_silences_the_supervisor_and_resume_restores_the_mode(
    center: m.Config, etc: Path, tmp_path: Path
) -> None:
    async with running(center, etc, tmp_path) as c:
        caller, _leg = c.agent_on_call("1001", "call-7")
        phone = Phone([PIN_9001])
        chan = c.dial("super9001", "*811001", phone)
        await c.sink.until(started(1))
        c.sim.pbx.send_dtmf(chan, "5", 100)  # whisper
        await c.sink.until(lambda s: len(s.events("monitor_mode")) == 1)
        await c.service.pci_changed("call-7", paused=True)
        await c.sink.until(lambda s: len(s.events("pci_pause")) == 1)
        await phone.until(lambda p: "MusicOnHold" in p.apps)  # out of ChanSpy, hearing music
        spy = c.service.sessions[chan.name]
        assert spy.pci_hold
        await c.sink.until(lambda s: not spy.spying)
        await c.service.pci_changed("call-7", paused=False)
        await phone.until(lambda p: p.apps.count("ChanSpy") == 2)
        await c.sink.until(lambda s: spy.spying)
        assert spy.mode == "whisper" and not spy.pci_hold
        assert c.sim.pbx.get_variable(chan, names.VAR_SPY_OPTIONS) == "qEwd"
        await c.hang_up(caller)
        async with asyncio.timeout(20):
            await phone.gone.wait()
        await c.sink.until(lambda s: len(s.events("monitor_end")) == 1)
    kinds = [str(e.kind) for e in c.sink.events()]
    assert kinds == ["monitor_start", "monitor_mode", "pci_pause", "pci_resume", "monitor_end"]
    assert not list((tmp_path / "rec").rglob("*.wav"))  # monitoring recorded nothing


async def test_muting_the_recording_for_card_data_silences_the_supervisor(
    center: m.Config, etc: Path, tmp_path: Path
) -> None:
    """The ACD's PCI pause is ``MixMonitorMute`` on the caller's recording; the monitor follows the
    event alone (nothing wired between them)."""
    async with running(center, etc, tmp_path) as c:
        caller, _leg = c.agent_on_call("1001", "call-8")
        phone = Phone([PIN_9001])
        chan = c.dial("super9001", "*811001", phone)
        await c.sink.until(started(1))
        ami = c.service.ami
        assert ami is not None
        await ami.send_action(
            "MixMonitorMute", {"Channel": caller.name, "Direction": "both", "State": "1"}, timeout=5
        )
        await phone.until(lambda p: "MusicOnHold" in p.apps)
        await ami.send_action(
            "MixMonitorMute", {"Channel": caller.name, "Direction": "both", "State": "0"}, timeout=5
        )
        await phone.until(lambda p: p.apps.count("ChanSpy") == 2)
        await c.service.drain()
        await c.hang_up(chan)
        await c.sink.until(lambda s: len(s.events("monitor_end")) == 1)
    assert [str(e.kind) for e in c.sink.events()] == [
        "monitor_start",
        "pci_pause",
        "pci_resume",
        "monitor_end",
    ]
