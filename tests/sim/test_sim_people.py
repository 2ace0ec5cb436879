"""The simulated people against the product's own rendered dialplan: a caller dials a DID, the
IVR (a scripted FastAGI server standing in for the controller) reads a key and queues the call,
the caller holds in MOH, a scripted AMI client rings the agent's phone into ``cc-agent-leg``, the
phone answers, the leg records and bridges, the agent hangs up after the talk time. Plus the
seeded draws: the same seed gives the same people."""

from __future__ import annotations

import asyncio
import random
import wave
from pathlib import Path

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi import AGIParser, AGIReply, format_command
from callcenter.clock import AutojumpClock
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.sim import SimulatedPBX
from callcenter.sim.people import (
    AgentProfile,
    CallerProfile,
    Dist,
    OutboundProfile,
    Rate,
    Scenario,
    builtin_scenario,
    scenario_from_dict,
)
from callcenter.sim.replay import AMIPeer
from tests.centers import REPO


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    write_files(render(load_config(REPO / "dialplans")), out)
    return out


class FakeIVR:
    """FastAGI: answer, read one key over the menu prompt, queue the call, hang up the session."""

    def __init__(self) -> None:
        self.digits: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = AGIParser()
        pending: list[object] = []

        async def next_item() -> object:
            while not pending:
                async with asyncio.timeout(10):
                    data = await reader.read(4096)
                pending.extend(parser.feed(data))
                if not data:
                    break
            return pending.pop(0) if pending else None

        async def cmd(command: str, *args: str) -> AGIReply:
            writer.write(format_command(command, *args))
            while True:
                item = await next_item()
                if isinstance(item, AGIReply):
                    return item
                if item is None:
                    raise ConnectionError("EOF")

        try:
            await next_item()  # the environment
            await cmd("ANSWER")
            reply = await cmd("GET DATA", "/var/lib/asterisk/sounds/callcenter/en/main-menu", "5000", "1")
            self.digits.append(reply.result or "")
            await cmd("SET VARIABLE", names.VAR_QUEUE, "sales")
            await cmd("SET VARIABLE", names.VAR_CALL_ID, f"call-{len(self.digits)}")
        finally:
            writer.close()


async def test_one_call_through_the_rendered_center(
    rendered: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    ivr = FakeIVR()
    await ivr.start()
    scenario = Scenario(
        "one-call",
        callers=(
            CallerProfile(
                did="18005550100",
                rate=(Rate(0.0, 3600.0),),
                choices={"*": (("1", 1.0),)},
                think=Dist("fixed", 0.5),
                patience=Dist("fixed", 600.0),
                max_calls=1,
            ),
        ),
        agents=(
            AgentProfile(
                "agent1001", answer_delay=Dist("fixed", 2.0), talk=Dist("fixed", 20.0), agent_hangs_up=1.0
            ),
        ),
    )
    sim = SimulatedPBX(
        rendered,
        clock=autojump_clock,
        seed=3,
        agi_port=ivr.port,
        ami_user="callcenter",
        ami_secret="change-me-ami",
        scenario=scenario,
        recordings_dir=tmp_path,
        sounds_dirs=[REPO / "ivr_prompts"],
    )
    await sim.start()
    ami = AMIPeer()
    try:
        await ami.connect("127.0.0.1", sim.ami_port)
        ami.send(
            [("Action", "Login"), ("Username", "callcenter"), ("Secret", "change-me-ami"), ("ActionID", "l")]
        )
        assert await ami.wait_for(lambda h: dict(h).get("Response") == "Success", timeout=5)
        moh = await ami.wait_for(lambda h: dict(h).get("Event") == "MusicOnHoldStart", timeout=20)
        assert moh is not None
        caller = dict(moh)["Channel"]
        assert caller.startswith("PJSIP/carrier-")
        ami.send(
            [
                ("Action", "Originate"),
                ("Channel", "PJSIP/agent1001"),
                ("Context", names.CTX_AGENT_LEG),
                ("Exten", "s"),
                ("Priority", "1"),
                ("Variable", f"{names.VAR_CALLER_CHANNEL}={caller}"),
                ("Variable", f"{names.VAR_RECORDING_FILE}=rec/call-1.wav"),
                ("Timeout", "15000"),
                ("Async", "true"),
                ("ChannelId", "agentleg-1"),
                ("ActionID", "ring-1"),
            ]
        )
        resp = await ami.wait_for(lambda h: dict(h).get("Event") == "OriginateResponse", timeout=10)
        assert (
            resp is not None
            and dict(resp)["Response"] == "Success"
            and dict(resp)["Uniqueid"] == "agentleg-1"
        )
        assert await ami.wait_for(lambda h: dict(h).get("Event") == "BridgeEnter", timeout=10)
        hung = await ami.wait_for(
            lambda h: dict(h).get("Event") == "Hangup" and dict(h).get("Channel") == caller, timeout=20
        )
        assert hung is not None and dict(hung)["Cause"] == "16"
    finally:
        await ami.close()
        await sim.close()
        await ivr.close()
    assert ivr.digits == ["1"]
    stats = sim.population.stats
    assert (stats.offered, stats.answered_by_agent, stats.agent_hangups, stats.abandoned) == (1, 1, 1, 0)
    assert sim.pbx.faults == []
    assert not sim.pbx.channels
    with wave.open(str(tmp_path / "rec" / "call-1.wav")) as w:
        seconds = w.getnframes() / w.getframerate()
        assert w.getframerate() == 8000 and w.getnchannels() == 1
    assert seconds == 20.0  # the talk time, exactly: simulated time never slips on a busy machine


async def test_patience_runs_out_on_hold(
    rendered: Path, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    ivr = FakeIVR()
    await ivr.start()
    scenario = Scenario(
        "abandon",
        callers=(
            CallerProfile(
                did="18005550100",
                rate=(Rate(0.0, 3600.0),),
                choices={"*": (("2", 1.0),)},
                patience=Dist("fixed", 30.0),
                redial_probability=0.0,
                max_calls=2,
            ),
        ),
    )
    sim = SimulatedPBX(
        rendered,
        clock=autojump_clock,
        seed=5,
        agi_port=ivr.port,
        scenario=scenario,
        recordings_dir=tmp_path,
    )
    await sim.start()
    try:
        async with asyncio.timeout(30):
            while not (sim.population.stats.abandoned == 2 and not sim.population.active):
                sim.population.changed.clear()
                await sim.population.changed.wait()
    finally:
        await sim.close()
        await ivr.close()
    assert sim.population.stats.abandoned == 2
    assert sim.pbx.faults == []


def test_the_same_seed_gives_the_same_people() -> None:
    profile = CallerProfile(
        did="100",
        rate=(Rate(0.0, 120.0), Rate(600.0, 600.0)),
        choices={"menu": (("1", 2.0), ("2", 1.0), ("", 1.0))},
    )

    def draws(seed: int) -> list[object]:
        rng = random.Random(seed)
        t = 0.0
        out: list[object] = []
        for _ in range(50):
            nxt = profile.next_arrival(rng, t)
            assert nxt is not None
            t = nxt
            out += [round(t, 6), profile.choose(rng, "menu"), round(profile.patience.sample(rng), 6)]
        return out

    assert draws(11) == draws(11)
    assert draws(11) != draws(12)


def test_arrival_rate_follows_the_schedule() -> None:
    profile = CallerProfile(did="1", rate=(Rate(0.0, 60.0), Rate(3600.0, 600.0)))
    rng = random.Random(1)
    t, first, second = 0.0, 0, 0
    while True:
        nxt = profile.next_arrival(rng, t, horizon=7200.0)
        if nxt is None:
            break
        t = nxt
        if t < 3600:
            first += 1
        else:
            second += 1
    assert 40 <= first <= 80 and 520 <= second <= 680


def test_outbound_outcomes_follow_their_weights() -> None:
    prof = OutboundProfile(answer=0.5, busy=0.2, no_answer=0.2, machine=0.1)
    rng = random.Random(2)
    counts: dict[str, int] = {}
    for _ in range(5000):
        o = prof.outcome(rng)
        counts[o] = counts.get(o, 0) + 1
    assert abs(counts["answer"] / 5000 - 0.5) < 0.03 and abs(counts["machine"] / 5000 - 0.1) < 0.02


def test_scenarios_from_yaml_shapes_and_builtins() -> None:
    sc = scenario_from_dict(
        {
            "callers": [
                {
                    "did": "18005550100",
                    "rate": [{"from": 0, "per_hour": 30}, {"from": 1800, "per_hour": 90}],
                    "choices": {"main-menu": {"1": 3, "2": 1}},
                    "patience": {"exp": 90},
                }
            ],
            "agents": ["agent1001", {"endpoint": "agent1002", "no_answer_probability": 0.5}],
            "outbound": {"answer": 0.7, "busy": 0.1, "no_answer": 0.1, "machine": 0.1},
        },
        name="x",
    )
    assert sc.callers[0].rate_at(2000) == 90
    assert sc.callers[0].choices["main-menu"] == (("1", 3.0), ("2", 1.0))
    assert [a.endpoint for a in sc.agents] == ["agent1001", "agent1002"]
    assert sc.agents[1].no_answer_probability == 0.5
    busy = builtin_scenario("busy-hour", dids=["1", "2"], agents=["a1", "a2", "a3"])
    assert len(busy.callers) == 2 and busy.duration == 3600.0
