"""Feature codes from a desk phone on the simulated PBX: they work only if something answers.

The example center is rendered; ``tests/sim/dialplan_edits.py`` builds two variants of its
``extensions.conf``: the feature-code context (``names.CTX_FEATURES``) answering before the AGI,
and the same with every ``Answer()`` of that context removed. A simulated desk phone
(``Population.dial``: a SIP channel in state Ring, as an INVITE makes it) dials ``*11`` (agent
login) or ``*81`` + agent (listen-in); the controller's own FastAGI routes (the ACD's feature codes,
the monitor's ``spy``) answer it over real sockets.

The simulator refuses what Asterisk refuses (``tests/fixtures/unanswered``): on an unanswered
channel the PIN prompt plays to nobody and the phone's DTMF goes nowhere, so ``GET DATA`` times
out; when the dialplan ends the phone's call fails. Two things can answer a feature code: the
dialplan, and the route itself (an AGI ``ANSWER`` before its first prompt). So:

* dialplan only (every ANSWER the route sends is withheld at the AGI seam): with ``Answer()`` in
  the context the agent logs in and the supervisor listens; without it both fail, the PIN prompt
  never heard. This is the check that the rendered dialplan answers by itself.
* routes as they are, ``Answer()`` removed: the code works exactly when the route answered, which
  is also what a real phone would get.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callcenter.acd import agents as ag
from callcenter.acd.features import AgentFeatures
from callcenter.acd.service import ACD
from callcenter.asterisk import names
from callcenter.asterisk.agi import AGIReply
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import FakeClock, ScaledClock
from callcenter.commands.demo import DEMO_PINS
from callcenter.config import model as m
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.sim import SimulatedPBX
from callcenter.sim.people import Scenario
from callcenter.sim.population import PhoneCall, Population
from callcenter.supervision.service import MonitorService
from tests.fakes import FakeAgentCalls, RecordSink
from tests.sim.dialplan_edits import answering_features, features_answer, unanswered_features

REPO = Path(__file__).resolve().parents[2]
SECRET = "sim-secret"
PIN_9001 = DEMO_PINS["9001"]
DEADLINE = 30.0  # real seconds for any one condition (the calls take about 2 s at 20x)


@pytest.fixture(scope="module")
def center() -> m.Config:
    return load_config(REPO / "dialplans", env={"CC_AMI_SECRET": SECRET})


@pytest.fixture(scope="module")
def etcs(center: m.Config, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    """The rendered configuration twice: feature codes answering (True) and not (False)."""
    out = {}
    for answering in (True, False):
        d = tmp_path_factory.mktemp("etc-answering" if answering else "etc-unanswered")
        write_files(render(center), d)
        ext = d / "extensions.conf"
        text = ext.read_text()
        ext.write_text(answering_features(text) if answering else unanswered_features(text))
        assert features_answer(ext.read_text()) is answering
        out[answering] = d
    return out


class RouteSession:
    """The controller's FastAGI session at the seam (``ports.AGISession``), counting the ANSWERs
    its route sends and, with ``withhold``, keeping them from the PBX (answered ``200 result=0``
    as if done): the route then relies on the dialplan to have answered."""

    def __init__(self, inner: Any, counter: list[str], *, withhold: bool) -> None:
        self.inner = inner
        self.counter = counter
        self.withhold = withhold

    @property
    def env(self) -> Any:
        return self.inner.env

    def _answers(self) -> bool:
        """Count one ANSWER; whether to keep it from the PBX."""
        self.counter.append(self.inner.env.get("agi_channel", ""))
        return self.withhold

    async def command(self, command: str, *args: str | int, timeout: float) -> AGIReply:
        word = command.strip().upper()
        if word == "ANSWER" or (word == "EXEC" and args and str(args[0]).lower() == "answer"):
            if self._answers():
                return AGIReply.ok(0)
        return await self.inner.command(command, *args, timeout=timeout)

    async def answer(self) -> None:
        if not self._answers():
            await self.inner.answer()

    async def exec(self, application: str, *args: str, timeout: float | None = None) -> int:
        if application.lower() == "answer" and self._answers():
            return 0
        return await self.inner.exec(application, *args, timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def route(
    handler: Callable[[Any], Awaitable[None]], counter: list[str], *, withhold: bool
) -> Callable[[Any], Awaitable[None]]:
    async def handle(session: Any) -> None:
        await handler(RouteSession(session, counter, withhold=withhold))

    return handle


@dataclass
class Desk:
    """The center's controller side (ACD feature codes and monitor) against the simulator."""

    sim: SimulatedPBX
    people: Population
    acd: ACD
    monitor: MonitorService
    sink: RecordSink
    on_calls: FakeAgentCalls
    route_answers: list[str] = field(default_factory=list)

    def agent_on_call(self, agent: str, call_id: str) -> None:
        """A caller holding, bridged by the agent's leg as the ACD does it."""
        pbx = self.sim.pbx
        caller = pbx.inbound_call("s", caller_num="+15551230000", context=names.CTX_HOLD)
        pbx.set_variable(caller, names.VAR_CALL_ID, call_id)
        leg = pbx.new_sip_channel(f"agent{agent}")
        pbx.chan_event("Newchannel", leg)
        pbx.set_variable(leg, names.VAR_CALLER_CHANNEL, caller.name)
        pbx.set_variable(leg, names.VAR_AGENT_ID, agent)
        pbx.start_dialplan(leg, names.CTX_AGENT_LEG, "s", 1)
        self.on_calls.calls[agent] = call_id


@contextlib.asynccontextmanager
async def desk(center: m.Config, etc: Path, tmp: Path, *, withhold: bool) -> AsyncIterator[Desk]:
    sink, on_calls = RecordSink(), FakeAgentCalls()
    counter: list[str] = []
    server = FastAGIServer({}, host="127.0.0.1", port=0)
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
            people = sim.start_people(Scenario("desk phones"))
            ami = center.asterisk.ami
            async with AMIClient(
                host="127.0.0.1", port=sim.ami_port, username=ami.username, secret=SECRET, ping_interval=0
            ) as client:
                clock = FakeClock(start=1_795_446_000.0)
                acd = ACD(center, client, sink, clock, store=None)
                task = asyncio.create_task(acd.run())
                try:
                    async with asyncio.timeout(DEADLINE):
                        await acd.ready.wait()
                    monitor = MonitorService(center, writer=sink, clock=clock, acd=on_calls, ami=client)
                    server.routes[names.AGI_FEATURE] = route(
                        AgentFeatures(acd).handle, counter, withhold=withhold
                    )
                    server.routes[names.AGI_SPY] = route(monitor.handle, counter, withhold=withhold)
                    detach = monitor.attach()
                    yield Desk(sim, people, acd, monitor, sink, on_calls, counter)
                    detach()
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
    assert server.failed == 0


async def ended(call: PhoneCall) -> None:
    async with asyncio.timeout(DEADLINE):
        await call.ended.wait()


async def first_of(*waits: Awaitable[Any]) -> None:
    """Return when the first of ``waits`` is done (within ``DEADLINE``); cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        async with asyncio.timeout(DEADLINE):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def pin(center: m.Config, agent_id: str) -> str:
    return center.agents[agent_id].pin.value


# ------------------------------------------------------------------------------ dialplan only
async def test_agent_login_works_when_the_feature_code_answers(
    center: m.Config, etcs: dict[bool, Path], tmp_path: Path
) -> None:
    async with desk(center, etcs[True], tmp_path, withhold=True) as d:
        call = d.people.dial("agent1001", "*11", keys={"enter-pin": [pin(center, "1001") + "#"]})
        await ended(call)
        assert d.acd.agent_state("1001").status is ag.Status.AVAILABLE
    assert call.answered
    assert call.heard == ["enter-pin", "agent-logged-in"]


async def test_agent_login_fails_when_the_feature_code_does_not_answer(
    center: m.Config, etcs: dict[bool, Path], tmp_path: Path
) -> None:
    async with desk(center, etcs[False], tmp_path, withhold=True) as d:
        call = d.people.dial("agent1001", "*11", keys={"enter-pin": [pin(center, "1001") + "#"]})
        await ended(call)
        assert d.acd.agent_state("1001").status is ag.Status.LOGGED_OUT
    assert call.heard == [] and call.pressed == []  # the PIN prompt played to nobody
    assert not call.answered and call.cause == 16  # the phone's INVITE is declined (603)


async def test_supervisor_listens_when_the_feature_code_answers(
    center: m.Config, etcs: dict[bool, Path], tmp_path: Path
) -> None:
    async with desk(center, etcs[True], tmp_path, withhold=True) as d:
        d.agent_on_call("1001", "call-1")
        call = d.people.dial("super9001", "*811001", keys={"enter-pin": [PIN_9001 + "#"]})
        await d.sink.until(lambda: len(d.sink.events(kind="monitor_start")) == 1, timeout=DEADLINE)
        assert call.answered and call.heard == ["enter-pin"]
        call.hang_up()
        await ended(call)
        await d.sink.until(lambda: "ended" in d.sink.outcomes(), timeout=DEADLINE)


async def test_supervisor_cannot_listen_when_the_feature_code_does_not_answer(
    center: m.Config, etcs: dict[bool, Path], tmp_path: Path
) -> None:
    async with desk(center, etcs[False], tmp_path, withhold=True) as d:
        d.agent_on_call("1001", "call-1")
        call = d.people.dial("super9001", "*811001", keys={"enter-pin": [PIN_9001 + "#"]})
        await ended(call)
        await d.sink.until(lambda: bool(d.sink.outcomes()), timeout=DEADLINE)
        assert d.sink.events(kind="monitor_start") == []
    assert d.sink.outcomes() == ["bad_pin"]
    assert call.heard == [] and call.pressed == []
    assert not call.answered and call.cause == 16


# ------------------------------------------------------------------------------ routes as they are
@pytest.mark.parametrize("who", ["agent", "supervisor"])
async def test_without_answer_in_the_dialplan_only_the_routes_answer_can_save_the_call(
    center: m.Config, etcs: dict[bool, Path], tmp_path: Path, who: str
) -> None:
    async with desk(center, etcs[False], tmp_path, withhold=False) as d:
        if who == "agent":
            call = d.people.dial("agent1001", "*11", keys={"enter-pin": [pin(center, "1001") + "#"]})
            await ended(call)
            worked = d.acd.agent_state("1001").status is ag.Status.AVAILABLE
        else:
            d.agent_on_call("1001", "call-1")
            call = d.people.dial("super9001", "*811001", keys={"enter-pin": [PIN_9001 + "#"]})
            await first_of(
                d.sink.until(lambda: bool(d.sink.events(kind="monitor_start")), timeout=DEADLINE),
                call.ended.wait(),
            )
            worked = bool(d.sink.events(kind="monitor_start"))
            call.hang_up()
            await ended(call)
        route_answered = bool(d.route_answers)
    assert worked is route_answered
    assert call.answered is route_answered
    assert (call.heard[:1] == ["enter-pin"]) is route_answered
