"""End to end: the ACD drives the simulated PBX over a real AMI link (TCP, loopback).

The center is the example's queues with 20 agents; Asterisk's configuration is rendered from it
and the simulator runs that dialplan (cc-hold, cc-agent-leg with MixMonitor and Bridge, cc-transfer)
with simulated agent phones. Both sides run on one autojump clock: simulated time jumps to the
next timer whenever every task waits, so a run takes what the code needs, not what the scenario
lasts, and a loaded machine cannot reorder what happens. Nothing sleeps to synchronise: tests wait
on the call-log records the ACD emits (every state change emits one), each wait bounded in
simulated seconds.

Answering phones answer after 2 s and their own wrap-up never delays an answer; queues ring for
300 s before a RONA; the RONA phones reject at once (the ring-out path has its own test with one
phone); a call a test acts on talks until the test hangs it up; waits are on records (what
happened), not on a state that may already have moved on."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from callcenter.acd import agents as ag
from callcenter.acd.recorder import Recorder
from callcenter.acd.service import ACD
from callcenter.asterisk import names
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import AutojumpClock
from callcenter.config import model as cm
from callcenter.config.render import render, write_files
from callcenter.ports import QueuedCall, StoredState
from callcenter.reporting.records import AgentStateChange, CallEvent, CallRecord, Disposition, RecordingRecord
from callcenter.sim.people import AgentProfile, Dist, Scenario
from callcenter.sim.server import SimulatedPBX
from callcenter.store.acd import PgACDStore
from callcenter.store.writer import CallLogWriter
from tests.centers import CREDS, twenty_agents
from tests.fakes import MemoryACDStore, RecordSink, within

T = TypeVar("T")
RONA_AGENTS = {"2007", "2013"}  # their phones reject every call (a RONA, cause "rejected")
RING_TIMEOUT = 300.0  # seconds an unanswered phone rings before it counts as RONA
# An agent "phone" reached over a Local channel, as the real-Asterisk suite dials its agents
# (``agent_channel="Local/{endpoint}@cc-test-agents"``): it answers at once and talks until the
# call is hung up. The n of "agent" is bracketed: a bare N in a pattern means any digit 2-9.
LOCAL_AGENT_CHANNEL = "Local/{endpoint}@cc-test-agents"
LOCAL_AGENT_CONTEXT = """
[cc-test-agents]
exten => _age[n]t.,1,Answer()
 same => n,Wait(3600)
 same => n,Hangup()
"""
DEADLINE = 900.0  # simulated seconds for any one condition; never reached unless something is broken
LINK_BOUND = 30.0  # real seconds for the controller's own network waits (AMI, the call log)


@dataclass
class Center:
    config: cm.Config
    sim: SimulatedPBX
    clock: AutojumpClock
    tee: RecordSink
    tmp: Path
    acd: ACD | None = None
    ami: AMIClient | None = None
    task: asyncio.Task[None] | None = None
    serial: int = 0

    async def start_acd(self, store: Any = None, *, agent_channel: str = "PJSIP/{endpoint}") -> ACD:
        self.ami = AMIClient(
            port=self.sim.ami_port,
            username=CREDS[0],
            secret=CREDS[1],
            clock=self.clock,
            connect_timeout=LINK_BOUND,
            login_timeout=LINK_BOUND,
            ping_timeout=LINK_BOUND,
        )
        await self.ami.connect()
        rec = Recorder.from_config(self.ami, self.tee, self.clock, self.config.recording)
        self.acd = ACD(
            self.config,
            self.ami,
            self.tee,
            self.clock,
            recorder=rec,
            store=store,
            action_timeout=LINK_BOUND,
            agent_channel=agent_channel,
        )
        self.task = asyncio.create_task(self.acd.run())
        await self.within(self.acd.ready.wait())
        return self.acd

    async def stop_acd(self) -> None:
        assert self.task is not None and self.ami is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.ami.close()

    async def call(self, queue: str, **kw: Any) -> tuple[str, Any]:
        """A caller already holding in cc-hold (as the IVR leaves it), handed to the ACD."""
        assert self.acd is not None
        self.serial += 1
        chan = self.sim.pbx.inbound_call("s", caller_num=f"+1555000{self.serial:04d}", context=names.CTX_HOLD)
        call_id = f"e2e-{self.serial}"
        await self.acd.enqueue(
            QueuedCall(call_id, chan.name, queue, uniqueid=chan.uniqueid, redirect_to_hold=False, **kw)
        )
        return call_id, chan

    def state(self, agent_id: str) -> ag.Status:
        assert self.acd is not None
        return self.acd.agent_state(agent_id).status

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds for the records, within ``DEADLINE`` simulated seconds."""
        await self.tee.until(predicate, timeout=DEADLINE, clock=self.clock)

    async def within(self, awaitable: Awaitable[T]) -> T:
        return await within(awaitable, timeout=DEADLINE, clock=self.clock)


@pytest.fixture
async def world(
    tmp_path: Path, request: pytest.FixtureRequest, autojump_clock: AutojumpClock
) -> AsyncIterator[Center]:
    param = getattr(request, "param", {})
    long_talk = param.get("long_talk", False)
    silent = param.get("silent", set())  # phones that ring and nobody answers
    config = twenty_agents(tmp_path, param.get("ring_timeout", RING_TIMEOUT))
    if param.get("ring_all"):
        queues = {
            q: dataclasses.replace(config.queues[q], strategy=cm.Strategy.RING_ALL) for q in param["ring_all"]
        }
        config = dataclasses.replace(config, queues={**config.queues, **queues})
    write_files(render(config), tmp_path / "asterisk")
    if param.get("local_agents"):
        with (tmp_path / "asterisk" / "extensions.conf").open("a") as f:
            f.write(LOCAL_AGENT_CONTEXT)
    clock = autojump_clock
    phones = tuple(
        AgentProfile(
            a.endpoint,
            answer_delay=Dist("fixed", 2.0),
            no_answer_probability=1.0 if a.id in silent else 0.0,
            reject_probability=1.0 if a.id in RONA_AGENTS and a.id not in silent else 0.0,
            talk=Dist("fixed", 3600.0) if long_talk else Dist("uniform", 10.0, 20.0),
            wrapup=Dist("fixed", 0.0),  # the ACD owns wrap-up; the phone answers its next call at once
            agent_hangs_up=1.0,
        )
        for a in config.agents.values()
    )
    sim = SimulatedPBX(
        tmp_path / "asterisk",
        clock=clock,
        ami_user=CREDS[0],
        ami_secret=CREDS[1],
        recordings_dir=tmp_path / "recordings",
        scenario=Scenario("acd-e2e", agents=phones),
        seed=7,
    )
    await sim.start()
    c = Center(config, sim, clock, RecordSink(), tmp_path)
    try:
        yield c
    finally:
        if c.task is not None and not c.task.done():
            await c.stop_acd()
        await sim.close()


async def test_traffic_on_three_queues_with_rona_and_recordings(world: Center) -> None:
    acd = await world.start_acd()
    for agent_id in world.config.agents:
        await acd.login(agent_id)
    calls = []
    for i in range(30):
        queue = ("sales", "billing", "support")[i % 3]
        call_id, _chan = await world.call(queue)
        calls.append((call_id, queue))
    await world.until(lambda: all(world.tee.ended(c) for c, _ in calls))

    answers = [e for e in world.tee.of(CallEvent) if str(e.kind) == "answer"]
    assert sorted(e.call_id for e in answers) == sorted(c for c, _ in calls), "each call answered once"
    # No agent ever held two calls: its on_call / wrap_up alternate.
    for agent_id in world.config.agents:
        states = [r.state for r in world.tee.of(AgentStateChange) if r.agent_id == agent_id]
        on_call = [i for i, s in enumerate(states) if s == "on_call"]
        for a, b in zip(on_call, on_call[1:], strict=False):
            assert "wrap_up" in states[a:b], (agent_id, states)
    # The phones that reject: RONA, then the queue's rule (sales: pause "missed" after 2;
    # billing: not_ready after 1); the calls went to other agents. Nobody else missed a call.
    ronas = [e for e in world.tee.of(CallEvent) if str(e.kind) == "rona"]
    assert {e.agent_id for e in ronas} == RONA_AGENTS
    assert world.state("2007") in (ag.Status.PAUSED, ag.Status.AVAILABLE)
    assert world.state("2013") is ag.Status.NOT_READY
    assert not [a for a in world.config.agents if world.state(a) in (ag.Status.RESERVED, ag.Status.RINGING)]
    # Recordings: sales and billing record always (files written by MixMonitor); support is
    # on demand.
    recs = {r.call_id: r for r in world.tee.of(RecordingRecord) if r.path}
    for call_id, queue in calls:
        if queue == "support":
            assert call_id not in recs
        else:
            f = world.tmp / "recordings" / recs[call_id].path
            assert f.is_file() and f.stat().st_size > 44, f


@pytest.mark.parametrize("world", [{"silent": {"2013"}}], indirect=True)
async def test_abandon_while_ringing_hangs_up_the_agent_leg(world: Center) -> None:
    acd = await world.start_acd()
    await acd.login("2013")  # billing; rings (300 s) and nobody answers
    ringing = asyncio.Event()
    assert world.ami is not None
    world.ami.subscribe(
        "Newstate",
        lambda m: ringing.set() if (m.get("Channel") or "").startswith("PJSIP/agent2013") else None,
    )
    call_id, chan = await world.call("billing")
    await world.within(ringing.wait())
    assert world.state("2013") is ag.Status.RINGING
    leg_channels = [c for c in world.sim.pbx.channels.values() if c.name.startswith("PJSIP/agent2013")]
    assert leg_channels and not leg_channels[0].gone
    world.sim.pbx.remote_hangup(chan)
    await world.until(lambda: world.tee.ended(call_id))
    await world.within(acd.idle())  # the ACD's Hangup action has been answered
    # The PBX was told to hang the ringing leg up (the simulator itself ends a ringing leg only
    # at the ring timeout; Asterisk cancels it at once).
    assert all(c.soft or c.gone for c in leg_channels)
    assert world.state("2013") is ag.Status.AVAILABLE
    assert not [e for e in world.tee.of(CallEvent) if str(e.kind) == "rona"]
    dispositions = [r.disposition for r in world.tee.of(CallRecord) if r.call_id == call_id and r.disposition]
    assert dispositions == [Disposition.ABANDONED_QUEUE]


@pytest.mark.parametrize("world", [{"silent": {"2013"}, "ring_timeout": 20.0}], indirect=True)
async def test_a_phone_that_rings_out_is_a_rona_and_the_call_keeps_waiting(world: Center) -> None:
    acd = await world.start_acd()
    await acd.login("2013")  # billing (not_ready after 1 miss); its phone rings out after 20 s
    call_id, chan = await world.call("billing")
    await world.until(lambda: world.tee.went("2013", "not_ready") == 1)
    (rona,) = [e for e in world.tee.of(CallEvent) if str(e.kind) == "rona"]
    assert (rona.call_id, rona.agent_id) == (call_id, "2013")
    assert acd.call_state(call_id) == "waiting"  # back in line, not offered to 2013 again
    assert world.state("2013") is ag.Status.NOT_READY
    world.sim.pbx.remote_hangup(chan)
    await world.until(lambda: world.tee.ended(call_id))
    dispositions = [r.disposition for r in world.tee.of(CallRecord) if r.call_id == call_id and r.disposition]
    assert dispositions == [Disposition.ABANDONED_QUEUE]


@pytest.mark.parametrize("world", [{"long_talk": True}], indirect=True)
async def test_transfer_pause_and_resume(world: Center) -> None:
    acd = await world.start_acd()
    await acd.login("2001")  # sales
    await acd.login("2009", paused_reason="break")  # billing, logged in paused (atomic)
    call_id, chan = await world.call("sales", data={"account": "A-1"})
    await world.until(lambda: world.tee.went("2001", "on_call") == 1)  # talks until hung up
    await acd.transfer_to_queue(call_id, "billing")
    await world.until(lambda: world.tee.went("2001", "wrap_up") == 1)
    assert acd.call_state(call_id) == "waiting"
    assert world.state("2009") is ag.Status.PAUSED  # never offered while paused
    await acd.resume("2009")
    await world.until(lambda: world.tee.went("2009", "on_call") == 1)
    world.sim.pbx.remote_hangup(chan)
    await world.until(lambda: world.tee.ended(call_id))
    kinds = [str(e.kind) for e in world.tee.of(CallEvent) if e.call_id == call_id]
    assert kinds.count("answer") == 2 and "transfer" in kinds
    await world.until(lambda: world.state("2001") is ag.Status.AVAILABLE)  # after its one wrap-up
    assert world.tee.went("2001", "wrap_up") == 1


@pytest.mark.parametrize("world", [{"long_talk": True}], indirect=True)
async def test_a_caller_gone_silent_ends_the_call_as_a_media_timeout(world: Center) -> None:
    """As a real Asterisk 22 does (``tests/test_real_phones.py``): the RTP timeout ends the
    caller's leg mid-call with cause 44, the bridge ends the agent leg with the same cause; the
    call log says the caller's media timed out and the agent wraps up, then takes calls again."""
    acd = await world.start_acd()
    await acd.login("2001")  # sales
    call_id, chan = await world.call("sales")
    await world.until(lambda: world.tee.went("2001", "on_call") == 1)
    world.sim.pbx.media_timeout(chan)
    await world.until(lambda: world.tee.ended(call_id))
    ends = [r.hangup_by for r in world.tee.of(CallRecord) if r.call_id == call_id and r.hangup_by]
    assert ends == ["caller_media_timeout"]
    assert [r.hangup_cause for r in world.tee.of(CallRecord) if r.call_id == call_id and r.hangup_cause] == [
        44
    ]
    await world.until(lambda: world.state("2001") is ag.Status.AVAILABLE)
    assert world.tee.went("2001", "wrap_up") == 1


@pytest.mark.parametrize("world", [{"long_talk": True}], indirect=True)
async def test_restart_mid_call_keeps_bridged_calls_and_the_queue(world: Center, db_dsn: str) -> None:
    writer = CallLogWriter(
        db_dsn, spool_dir=world.tmp / "spool", clock=world.clock, batch_delay=0.05, fsync=False
    )
    writer_task = asyncio.create_task(writer.run())
    world.tee.forward = writer
    try:
        acd = await world.start_acd(store=PgACDStore(db_dsn))
        await acd.login("2001")  # sales
        await acd.login("2015", paused_reason="lunch")  # support, paused
        talking, talking_chan = await world.call("sales")
        holding, _ = await world.call("support")
        leaving, leaving_chan = await world.call("billing")  # nobody for billing: it waits
        await world.until(lambda: world.tee.went("2001", "on_call") == 1)  # talks until hung up
        await writer.flush(timeout=LINK_BOUND)
        await world.stop_acd()  # the controller dies mid-call
        world.sim.pbx.remote_hangup(leaving_chan)  # a caller gives up while no controller watches

        before = len(world.tee.records)
        acd = await world.start_acd(store=PgACDStore(db_dsn))
        assert acd.call_state(talking) == "connected"
        assert world.state("2001") is ag.Status.ON_CALL
        assert acd.call_state(holding) == "waiting"
        assert acd.call_state(leaving) is None
        unseen = [r.disposition for r in world.tee.of(CallRecord) if r.call_id == leaving and r.disposition]
        assert unseen == [Disposition.ENDED_UNSEEN]  # closed, saying how it is known
        st = acd.agent_state("2015")
        assert (st.status, st.reason) == (ag.Status.PAUSED, "lunch")
        await acd.resume("2015")
        await world.until(lambda: world.tee.went("2015", "on_call") == 1)
        # The bridged call ends normally after the restart (the caller hangs up): the agent wraps up.
        world.sim.pbx.remote_hangup(talking_chan)
        await world.until(lambda: world.tee.ended(talking))
        await world.until(lambda: world.tee.went("2001", "wrap_up") == 1)
        assert len(world.tee.records) > before
        await writer.flush(timeout=LINK_BOUND)
    finally:
        await writer.close(timeout=LINK_BOUND)
        await writer_task


@pytest.mark.parametrize("world", [{"local_agents": True}], indirect=True)
async def test_restart_keeps_an_agent_reached_over_a_local_channel_on_its_call(world: Center) -> None:
    """The agent's leg is a Local pair: both halves carry the call's variables, the ``;1`` runs
    cc-agent-leg and is bridged to the caller, the ``;2`` sits in the phone's context, in no
    bridge. A restarted ACD keeps the agent on the call: the ``;2`` is part of the bridged leg,
    not a half-offered leg to hang up (hanging it up ends the ``;1`` and the call with it)."""
    acd = await world.start_acd(agent_channel=LOCAL_AGENT_CHANNEL)
    await acd.login("2001")  # sales
    call_id, chan = await world.call("sales")
    await world.until(lambda: world.tee.went("2001", "on_call") == 1)
    halves = [c for c in world.sim.pbx.channels.values() if c.name.startswith("Local/agent2001@")]
    assert sorted(c.half for c in halves) == [1, 2]
    assert [c.half for c in halves if c.bridge is not None] == [1]
    await world.stop_acd()  # the controller dies mid-call

    store = MemoryACDStore(StoredState(agents={"2001": ("on_call", "answered")}))  # its last state
    acd = await world.start_acd(store=store, agent_channel=LOCAL_AGENT_CHANNEL)
    await world.within(acd.idle())  # every action the rebuild started has been answered
    assert all(not (c.soft or c.gone) for c in halves), "the restart hung the agent's leg up"
    assert world.state("2001") is ag.Status.ON_CALL
    assert acd.call_state(call_id) == "connected"
    assert world.tee.went("2001", "wrap_up") == 0
    # The caller hangs up: the new ACD sees the call end and the agent wraps up once.
    world.sim.pbx.remote_hangup(chan)
    await world.until(lambda: world.tee.ended(call_id))
    await world.until(lambda: world.tee.went("2001", "wrap_up") == 1)
    dispositions = [r.disposition for r in world.tee.of(CallRecord) if r.call_id == call_id and r.disposition]
    assert dispositions == [Disposition.ANSWERED]


@pytest.mark.parametrize("world", [{"ring_all": ["sales"]}], indirect=True)
async def test_ring_all_team_first_answer_wins_nobody_stays_reserved(world: Center) -> None:
    """Sales rings all its eight agents at once; every phone answers after exactly 2 s, so the
    answers arrive together: one wins each call, the other legs are hung up without a RONA (only
    2007, whose phone rejects, misses calls), each call is answered and recorded once."""
    acd = await world.start_acd()
    sales = [a for a in world.config.agents if "sales" in world.config.agents[a].skills]
    assert len(sales) == 8
    for agent_id in sales:
        await acd.login(agent_id)
    calls = [(await world.call("sales"))[0] for _ in range(5)]
    await world.until(lambda: all(world.tee.ended(c) for c in calls))
    await world.until(
        lambda: all(world.tee.went(a, "wrap_up") == world.tee.went(a, "on_call") for a in sales)
    )

    rung = [e for e in world.tee.of(CallEvent) if str(e.kind) == "offer" and (e.detail or {}).get("ring_all")]
    assert {e.agent_id for e in rung if e.call_id == calls[0]} == set(sales)  # the first rang everyone
    answers = [e for e in world.tee.of(CallEvent) if str(e.kind) == "answer"]
    assert sorted(e.call_id for e in answers) == sorted(calls), "each call answered once"
    for agent_id in sales:
        states = [r.state for r in world.tee.of(AgentStateChange) if r.agent_id == agent_id]
        on_call = [i for i, s in enumerate(states) if s == "on_call"]
        for a, b in zip(on_call, on_call[1:], strict=False):
            assert "wrap_up" in states[a:b], (agent_id, states)
    ronas = {e.agent_id for e in world.tee.of(CallEvent) if str(e.kind) == "rona"}
    assert ronas <= {"2007"}, "an agent whose leg was cancelled was charged a RONA"
    assert not [a for a in sales if world.state(a) in (ag.Status.RESERVED, ag.Status.RINGING)]
    # Only the winner's leg ran cc-agent-leg: one recording per call, its file written.
    recs = [r for r in world.tee.of(RecordingRecord) if r.path]
    assert sorted(r.call_id for r in recs) == sorted(calls)
    for r in recs:
        f = world.tmp / "recordings" / r.path
        assert f.is_file() and f.stat().st_size > 44, f


@pytest.mark.parametrize("world", [{"long_talk": True}], indirect=True)
async def test_recording_on_demand_starts_in_the_dialplan_and_the_call_goes_on(world: Center) -> None:
    """The controller's AMI user has no ``system`` class (the simulator holds it to the rendered
    ``write = call,originate,agent``), so no MixMonitor action: the file name is set on the agent
    leg and one Redirect (ExtraChannel) sends the leg through cc-agent-leg (MixMonitor, Bridge) and
    the caller to hold for that moment. The two are bridged again, a WAV is written, and the call
    ends as any other."""
    assert world.sim.ami.write_of(CREDS[0]) == frozenset({"call", "originate", "agent"})
    acd = await world.start_acd()
    await acd.login("2015")  # support: recording on demand
    call_id, chan = await world.call("support")
    await world.until(lambda: world.tee.went("2015", "on_call") == 1)
    assert not [r for r in world.tee.of(RecordingRecord) if r.call_id == call_id]
    first_bridge = chan.bridge
    assert first_bridge is not None
    seen: list[tuple[str, str]] = []
    rebridged = asyncio.Event()

    def watch(name: str, privilege: str, headers: list[tuple[str, str]]) -> None:
        h = dict(headers)
        if h.get("Channel") == chan.name and name in (
            "BridgeEnter",
            "BridgeLeave",
            "MusicOnHoldStart",
            "Hangup",
        ):
            seen.append((name, h.get("Context", "")))
            if name == "BridgeEnter" and chan.bridge is not None and chan.bridge is not first_bridge:
                rebridged.set()

    world.sim.pbx.listeners.append(watch)
    assert await acd.record(call_id)
    assert not await acd.record(call_id)  # once
    await world.within(rebridged.wait())
    # The caller left the first bridge, heard hold music in cc-hold a moment, and was bridged again.
    assert [n for n, _ in seen] == ["BridgeLeave", "MusicOnHoldStart", "BridgeEnter"], seen
    assert chan.bridge is not None
    (agent_leg,) = [m for m in chan.bridge.members if m is not chan]
    assert agent_leg.variables[names.VAR_AGENT_ID] == "2015"
    assert agent_leg.variables[names.VAR_RECORDING_FILE].startswith(str(world.tmp / "recordings"))
    (rec,) = [r for r in world.tee.of(RecordingRecord) if r.call_id == call_id and r.path]
    assert acd.call_state(call_id) == "connected" and world.state("2015") is ag.Status.ON_CALL
    await world.clock.sleep(30)  # talk time, recorded
    world.sim.pbx.remote_hangup(chan)
    await world.until(lambda: world.tee.ended(call_id))
    await world.until(
        lambda: any(r.call_id == call_id and r.duration_seconds for r in world.tee.of(RecordingRecord))
    )
    f = world.tmp / "recordings" / rec.path
    assert f.is_file() and f.stat().st_size > 44 + 8000 * 2 * 20, f  # 8 kHz 16-bit, ~30 s
    ends = [r.hangup_by for r in world.tee.of(CallRecord) if r.call_id == call_id and r.hangup_by]
    assert ends == ["caller"]
    assert world.tee.went("2015", "wrap_up") == 1


def _kinds(world: Center, call_id: str) -> list[str]:
    return [str(e.kind) for e in world.tee.of(CallEvent) if e.call_id == call_id]


@pytest.mark.parametrize("world", [{"long_talk": True}], indirect=True)
async def test_hold_from_the_desktop_parks_the_caller_on_music_and_bridges_it_back(world: Center) -> None:
    """Hold with the AMI user's classes (no ``system``): one Redirect moves the caller to cc-held
    (music) and the agent's leg to cc-held-agent; unhold sends the leg through cc-agent-leg, whose
    Bridge() takes the caller back. The hold is measured once, from the music; a PCI pause while
    held still mutes the recording; the caller hanging up while held ends the call normally."""
    acd = await world.start_acd()
    await acd.login("2001")  # sales
    call_id, chan = await world.call("sales")
    await world.until(lambda: world.tee.went("2001", "on_call") == 1)
    assert chan.bridge is not None
    (agent_leg,) = [m for m in chan.bridge.members if m is not chan]
    await acd.hold(call_id, by="alice")
    await world.until(lambda: "hold" in _kinds(world, call_id))
    assert chan.bridge is None and agent_leg.bridge is None and not agent_leg.gone
    assert (chan.context, agent_leg.context) == (names.CTX_HELD, names.CTX_HELD_AGENT)
    assert chan.moh_class is not None and agent_leg.moh_class is None  # only the caller hears music
    await world.clock.sleep(20)
    assert acd.call_state(call_id) == "connected" and world.state("2001") is ag.Status.ON_CALL
    await acd.unhold(call_id, by="alice")
    await world.until(lambda: "unhold" in _kinds(world, call_id))
    await world.until(lambda: chan.bridge is not None)
    assert chan.bridge is not None and agent_leg in chan.bridge.members
    await world.clock.sleep(10)
    world.sim.pbx.remote_hangup(chan)
    await world.until(lambda: world.tee.ended(call_id))
    holds = [r.hold_seconds for r in world.tee.of(CallRecord) if r.call_id == call_id and r.hold_seconds]
    assert len(holds) == 1 and 19.0 <= holds[0] <= 21.0, holds
    assert _kinds(world, call_id).count("hold") == 1
    ends = [r.hangup_by for r in world.tee.of(CallRecord) if r.call_id == call_id and r.hangup_by]
    assert ends == ["caller"]
    await world.until(lambda: world.tee.went("2001", "wrap_up") == 1)

    # Held again on the next call; the caller gives up while on hold.
    await world.until(lambda: world.state("2001") is ag.Status.AVAILABLE)
    call_id, chan = await world.call("sales")
    await world.until(lambda: world.tee.went("2001", "on_call") == 2)
    assert chan.bridge is not None
    (agent_leg,) = [m for m in chan.bridge.members if m is not chan]
    await acd.hold(call_id)
    await world.until(lambda: "hold" in _kinds(world, call_id))
    assert acd.recorder is not None and acd.recorder.active(call_id)  # sales records always
    assert await acd.pci_pause(call_id, by="alice")  # the agent's leg is up: its recording mutes
    assert "pci_pause" in _kinds(world, call_id)
    await world.clock.sleep(15)
    world.sim.pbx.remote_hangup(chan)
    await world.until(lambda: world.tee.ended(call_id))
    await world.until(lambda: agent_leg.gone)  # the ACD hung up the leg waiting in cc-held-agent
    await world.until(lambda: world.tee.went("2001", "wrap_up") == 2)
    ends = [r.hangup_by for r in world.tee.of(CallRecord) if r.call_id == call_id and r.hangup_by]
    assert ends == ["caller"]
