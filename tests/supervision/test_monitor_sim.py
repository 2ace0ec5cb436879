"""Supervisors' monitoring end to end on the simulated PBX: the example center rendered from
``dialplans/``; a caller held and bridged by an agent leg (``cc-agent-leg``); a supervisor's phone
dials the monitor code (``cc-agents`` -> ``cc-features`` -> the controller's ``spy`` FastAGI route ->
``cc-spy`` -> ChanSpy); the controller follows the session over a real AMI link. Each mode, DTMF
mode switching, a wrong PIN and the lockout, an idle agent, the call ending during the spy, and
two supervisors on one agent. The simulator and the controller share one autojump clock, and
every wait is bounded in simulated seconds."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import AutojumpClock
from callcenter.commands.demo import DEMO_PINS
from callcenter.config import model as m
from callcenter.config.render import render, write_files
from callcenter.sim import SimulatedPBX
from callcenter.supervision.service import MonitorService, MonitorSettings
from tests.centers import REPO, example
from tests.fakes import FakeAgentCalls, RecordSink, SimPerson, within

DEADLINE = 600.0  # simulated seconds for any one condition
START = 1_795_446_000.0
SECRET = "sim-secret"
PIN_9001 = DEMO_PINS["9001"]  # dialplans/people.yaml stores their hashes
PIN_9002 = DEMO_PINS["9002"]


@pytest.fixture(scope="module")
def center() -> m.Config:
    return example(env={"CC_AMI_SECRET": SECRET})


@pytest.fixture(scope="module")
def etc(center: m.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered configuration as is (its feature codes answer: the simulator, as Asterisk, lets
    no prompt be heard on an unanswered phone; see tests/sim/test_feature_answer.py)."""
    out = tmp_path_factory.mktemp("etc")
    write_files(render(center), out)
    return out


def supervisor_phone(*pins: str) -> SimPerson:
    """A supervisor's phone: types each PIN (and ``#``) at the PIN prompt in turn; never hangs
    up by itself (not even on the music of a PCI hold)."""
    return SimPerson(
        {"enter-pin": [p + "#" for p in pins]}, hang_up_in=frozenset(), hang_up_on_hold=False, dtmf_ms=100
    )


@dataclass
class Center:
    sim: SimulatedPBX
    sink: RecordSink
    acd: FakeAgentCalls
    service: MonitorService
    clock: AutojumpClock

    async def until(self, predicate: Callable[[], bool]) -> None:
        await self.sink.until(predicate, timeout=DEADLINE, clock=self.clock)

    async def gone(self, *phones: SimPerson) -> None:
        for p in phones:
            await within(p.gone.wait(), timeout=DEADLINE, clock=self.clock)

    async def hears(self, phone: SimPerson, predicate: Callable[[], bool]) -> None:
        await phone.until(predicate, timeout=DEADLINE, clock=self.clock)

    def dial(self, endpoint: str, digits: str, phone: SimPerson) -> Any:
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
    center: m.Config, etc: Path, tmp: Path, clock: AutojumpClock, settings: MonitorSettings | None = None
) -> AsyncIterator[Center]:
    clock = clock.starting_at(START)
    sink, acd = RecordSink(), FakeAgentCalls()
    ids = iter(f"spy-{i}" for i in range(1, 1000))
    server_routes: dict[str, Any] = {}
    server = FastAGIServer(server_routes, host="127.0.0.1", port=0)
    async with server:
        sim = SimulatedPBX(
            etc,
            clock=clock,
            agi_host="127.0.0.1",
            agi_port=server.port,
            recordings_dir=tmp / "rec",
            sounds_dirs=[REPO / "ivr_prompts"],
        )
        async with sim:
            ami = center.asterisk.ami
            async with AMIClient(
                host="127.0.0.1",
                port=sim.ami_port,
                username=ami.username,
                secret=SECRET,
                ping_interval=0,
                clock=clock,
            ) as client:
                service = MonitorService(
                    center,
                    writer=sink,
                    clock=clock,
                    acd=acd,
                    ami=client,
                    settings=settings,
                    new_session_id=lambda: next(ids),
                )
                server.routes[names.AGI_SPY] = service.handle
                detach = service.attach()
                yield Center(sim, sink, acd, service, clock)
                detach()
    assert server.failed == 0


def started(c: Center, n: int) -> Callable[[], bool]:
    return lambda: len(c.sink.events(kind="monitor_start")) >= n


@pytest.mark.parametrize(("code", "mode"), [("*81", "listen"), ("*82", "whisper"), ("*83", "barge")])
async def test_each_mode_spies_on_the_agents_call(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock, code: str, mode: str
) -> None:
    async with running(center, etc, tmp_path, autojump_clock) as c:
        caller, leg = c.agent_on_call("1001", "call-1")
        phone = supervisor_phone(PIN_9001)
        c.dial("super9001", f"{code}1001", phone)
        await c.until(started(c, 1))
        start = c.sink.events(kind="monitor_start")[0]
        assert start.call_id == "call-1" and start.agent_id == "1001"
        assert start.detail is not None and start.detail["mode"] == mode
        assert str(start.detail["spyee"]).startswith("PJSIP/agent1001-")
        await c.hang_up(phone.chan)  # the supervisor hangs up
        await c.until(lambda: "ended" in c.sink.outcomes())
        assert not caller.gone and not leg.gone  # the call goes on
    assert phone.prompts == ["enter-pin"]
    assert "ChanSpy" in phone.apps


async def test_dtmf_switches_modes_and_the_call_ending_ends_the_spy(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with running(center, etc, tmp_path, autojump_clock) as c:
        caller, _leg = c.agent_on_call("1001", "call-2")
        phone = supervisor_phone(PIN_9001)
        chan = c.dial("super9001", "*811001", phone)
        await c.until(started(c, 1))
        for n, digit in enumerate("564", start=1):
            c.sim.pbx.send_dtmf(chan, digit, 100)
            await c.until(lambda n=n: len(c.sink.events(kind="monitor_mode")) >= n)
        await c.hang_up(caller)  # the customer hangs up: the agent's leg ends, ChanSpy (E) ends
        await c.gone(phone)
        await c.until(lambda: len(c.sink.events(kind="monitor_end")) == 1)
    modes = [e.detail["mode"] for e in c.sink.events(kind="monitor_mode") if e.detail]
    assert modes == ["whisper", "barge", "listen"]
    end = c.sink.events(kind="monitor_end")[0].detail
    assert end is not None and end["modes"] == "listen,whisper,barge,listen"
    assert c.service.sessions == {}


async def test_wrong_pins_lock_the_supervisor_out(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with running(
        center, etc, tmp_path, autojump_clock, MonitorSettings(max_pin_failures=5, lockout_seconds=600)
    ) as c:
        c.agent_on_call("1001", "call-3")
        first = supervisor_phone("1111", "2222", "3333")
        c.dial("super9001", "*811001", first)
        await c.gone(first)
        second = supervisor_phone("4444", "5555")
        c.dial("super9001", "*811001", second)
        await c.gone(second)
        third = supervisor_phone(PIN_9001)
        c.dial("super9001", "*811001", third)
        await c.gone(third)
    assert first.prompts == ["enter-pin", "pin-invalid"] * 3
    assert second.prompts == ["enter-pin", "pin-invalid", "enter-pin", "locked-out"]
    assert third.prompts == ["locked-out"]
    assert "ChanSpy" not in first.apps + second.apps + third.apps
    assert c.sink.outcomes() == ["bad_pin", "locked_out", "locked_out"]


async def test_unauthorised_supervisor_or_agent(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with running(center, etc, tmp_path, autojump_clock) as c:
        c.agent_on_call("1003", "call-4")  # Carla serves support and general
        agent_phone = supervisor_phone()
        c.dial("agent1001", "*811003", agent_phone)  # an agent's phone is not a supervisor's
        await c.gone(agent_phone)
        outside = supervisor_phone(PIN_9001)
        c.dial("super9001", "*819999", outside)  # no such agent (every example agent is in 9001's scope)
        await c.gone(outside)
    assert agent_phone.prompts == ["spy-not-allowed"]
    assert outside.prompts == ["enter-pin", "spy-not-allowed"]  # the PIN first: nothing revealed before
    assert c.sink.outcomes() == ["unauthorised", "unknown_agent"]
    assert "ChanSpy" not in agent_phone.apps + outside.apps


async def test_idle_agent_the_supervisor_waits_for_the_next_call(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with running(center, etc, tmp_path, autojump_clock) as c:
        phone = supervisor_phone(PIN_9001)
        c.dial("super9001", "*811001", phone)
        await c.until(lambda: "waiting" in c.sink.outcomes())
        assert phone.prompts == ["enter-pin", "spy-agent-idle"]
        c.agent_on_call("1001", "call-5")  # the agent's next call
        await c.until(started(c, 1))
        assert c.sink.events(kind="monitor_start")[0].call_id == "call-5"
        await c.hang_up(phone.chan)


async def test_two_supervisors_on_one_agent(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with running(center, etc, tmp_path, autojump_clock) as c:
        caller, _leg = c.agent_on_call("1001", "call-6")
        a, b = supervisor_phone(PIN_9001), supervisor_phone(PIN_9002)
        c.dial("super9001", "*811001", a)
        c.dial("super9002", "*831001", b)
        await c.until(started(c, 2))
        await c.hang_up(caller)
        await c.gone(a, b)
        await c.until(lambda: len(c.sink.events(kind="monitor_end")) == 2)
    sessions = {
        e.detail["session_id"]: e.detail["mode"] for e in c.sink.events(kind="monitor_start") if e.detail
    }
    assert sorted(sessions.values()) == ["barge", "listen"]


async def test_pci_pause_silences_the_supervisor_and_resume_restores_the_mode(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with running(center, etc, tmp_path, autojump_clock) as c:
        caller, _leg = c.agent_on_call("1001", "call-7")
        phone = supervisor_phone(PIN_9001)
        chan = c.dial("super9001", "*811001", phone)
        await c.until(started(c, 1))
        c.sim.pbx.send_dtmf(chan, "5", 100)  # whisper
        await c.until(lambda: len(c.sink.events(kind="monitor_mode")) == 1)
        await c.service.pci_changed("call-7", paused=True)
        await c.until(lambda: len(c.sink.events(kind="pci_pause")) == 1)
        await c.hears(phone, lambda: "MusicOnHold" in phone.apps)  # out of ChanSpy, hearing music
        spy = c.service.sessions[chan.name]
        assert spy.pci_hold
        await c.until(lambda: not spy.spying)
        await c.service.pci_changed("call-7", paused=False)
        await c.hears(phone, lambda: phone.apps.count("ChanSpy") == 2)
        await c.until(lambda: spy.spying)
        assert spy.mode == "whisper" and not spy.pci_hold
        assert c.sim.pbx.get_variable(chan, names.VAR_SPY_OPTIONS) == "qEwd"
        await c.hang_up(caller)
        await c.gone(phone)
        await c.until(lambda: len(c.sink.events(kind="monitor_end")) == 1)
    kinds = [str(e.kind) for e in c.sink.events()]
    assert kinds == ["monitor_start", "monitor_mode", "pci_pause", "pci_resume", "monitor_end"]
    assert not list((tmp_path / "rec").rglob("*.wav"))  # monitoring recorded nothing


async def test_muting_the_recording_for_card_data_silences_the_supervisor(
    center: m.Config, etc: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    """The ACD's PCI pause is ``MixMonitorMute`` on the caller's recording; the monitor follows the
    event alone (nothing wired between them)."""
    async with running(center, etc, tmp_path, autojump_clock) as c:
        caller, _leg = c.agent_on_call("1001", "call-8")
        phone = supervisor_phone(PIN_9001)
        chan = c.dial("super9001", "*811001", phone)
        await c.until(started(c, 1))
        ami = c.service.ami
        assert ami is not None
        await ami.send_action(
            "MixMonitorMute", {"Channel": caller.name, "Direction": "both", "State": "1"}, timeout=5
        )
        await c.hears(phone, lambda: "MusicOnHold" in phone.apps)
        await ami.send_action(
            "MixMonitorMute", {"Channel": caller.name, "Direction": "both", "State": "0"}, timeout=5
        )
        await c.hears(phone, lambda: phone.apps.count("ChanSpy") == 2)
        await c.service.drain()
        await c.hang_up(chan)
        await c.until(lambda: len(c.sink.events(kind="monitor_end")) == 1)
    assert [str(e.kind) for e in c.sink.events()] == [
        "monitor_start",
        "pci_pause",
        "pci_resume",
        "monitor_end",
    ]
