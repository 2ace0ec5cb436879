"""End to end: campaigns dialled on the simulated PBX over a real AMI link and FastAGI, the ACD
connecting the people who answer to agents, attempts in the real private PostgreSQL.

The example center is rendered (``cc-outbound`` with the ``renewals`` campaign's own extension:
AMD, the machine message, the identification message); the simulator's trunk plays the called
parties (busy, no answer, answering machines, people), its agent phones answer the ACD's legs.
Every side runs on one autojump clock (simulated time jumps to the next timer whenever every task
waits). Nothing sleeps to synchronise: the test waits on the dialer's own state, bounded in
simulated seconds."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.acd import agents as ag
from callcenter.acd.service import ACD
from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import AutojumpClock
from callcenter.config.render import render, write_files
from callcenter.outbound.contacts import Contact
from callcenter.outbound.dialer import CallingWindow, Mode
from callcenter.outbound.pool import AcdAgentPool
from callcenter.outbound.runtime import runtime_from_config
from callcenter.outbound.service import DialerService
from callcenter.sim.people import AgentProfile, Dist, OutboundProfile, Scenario
from callcenter.sim.server import SimulatedPBX
from callcenter.store.campaigns import CampaignStore
from tests.centers import CREDS, twenty_agents
from tests.fakes import RecordSink, until, within

DEADLINE = 3600.0  # simulated seconds for any one condition
START = datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp()
FAST = ("2001", "2003", "2004")  # sales agents who answer their phones at once
SLOW = "2002"  # a sales agent who answers too late
BILLING = ("2009", "2010")  # billing agents (the reminders campaign), answering at once


@dataclass
class World:
    service: DialerService
    acd: ACD
    sim: SimulatedPBX
    clock: AutojumpClock
    dsn: str
    changed: asyncio.Event
    restart: Callable[[], Awaitable[DialerService]]

    async def until(self, predicate: Callable[[], bool]) -> None:
        await until(predicate, self.changed, timeout=DEADLINE, clock=self.clock)


def contacts(n: int) -> list[Contact]:
    return [Contact(key=f"c{i:02d}", phone=f"+1212555{i:04d}", zones=("America/New_York",)) for i in range(n)]


@pytest.fixture
async def world(
    tmp_path: Path, db_dsn: str, request: pytest.FixtureRequest, autojump_clock: AutojumpClock
) -> AsyncIterator[World]:
    params: dict[str, Any] = getattr(request, "param", {})
    config = twenty_agents(tmp_path, ring_timeout=300.0)
    quick = {q: dataclasses.replace(queue, wrapup=1.0) for q, queue in config.queues.items()}
    config = dataclasses.replace(config, queues=quick)
    campaign = params.get("campaign", "renewals")
    write_files(render(config), tmp_path / "asterisk")
    clock = autojump_clock.starting_at(START)
    phones = tuple(
        AgentProfile(
            a.endpoint,
            answer_delay=Dist("fixed", 15.0 if a.id == SLOW else 0.2),
            no_answer_probability=0.0,
            talk=Dist("fixed", 3.0),
            wrapup=Dist("fixed", 0.5),  # the phone's own: it answers again once the ACD's wrap-up ends
            agent_hangs_up=1.0,
        )
        for a in config.agents.values()
    )
    targets = OutboundProfile(
        trunk="dialer",
        answer=params.get("answer", 0.4),
        busy=params.get("busy", 0.2),
        no_answer=params.get("no_answer", 0.2),
        machine=params.get("machine", 0.2),
        ring=Dist("fixed", 1.0),
        talk=Dist("fixed", 3.0),
        # AMD calls a machine 2.5 s into its greeting; the greeting and beep end at 4.5 s.
        machine_greeting=Dist("fixed", 4.0),
    )
    holder: dict[str, DialerService] = {}

    async def outbound(session: Any) -> None:
        await holder["service"].outbound_agi(session)

    server = FastAGIServer({names.AGI_OUTBOUND: outbound}, host="127.0.0.1", port=0)
    async with server:
        sim = SimulatedPBX(
            tmp_path / "asterisk",
            clock=clock,
            ami_user=CREDS[0],
            ami_secret=CREDS[1],
            agi_host="127.0.0.1",
            agi_port=server.port,
            recordings_dir=tmp_path / "recordings",
            scenario=Scenario("dialer-e2e", agents=phones, outbound=targets),
            seed=params.get("seed", 11),
        )
        await sim.start()
        acd_ami = AMIClient(port=sim.ami_port, username=CREDS[0], secret=CREDS[1], clock=clock)
        dial_ami = AMIClient(port=sim.ami_port, username=CREDS[0], secret=CREDS[1], clock=clock)
        await acd_ami.connect()
        await dial_ami.connect()
        acd = ACD(config, acd_ami, RecordSink(), clock)
        acd_task = asyncio.create_task(acd.run())
        await within(acd.ready.wait(), timeout=DEADLINE, clock=clock)
        store = await CampaignStore.connect(db_dsn)
        rt = runtime_from_config(config.campaigns[campaign])
        settings = dataclasses.replace(
            rt.settings,
            mode=Mode.PROGRESSIVE,
            window=CallingWindow(time(0), time(23, 59, 59)),
            max_attempts=params.get("max_attempts", 1),
        )
        # The legal 2 s are the default; here 5 s: the connect path waits on PostgreSQL, and
        # simulated time goes on while it does.
        rt = dataclasses.replace(rt, settings=settings, ring_timeout=4.0, connect_within=5.0)
        await store.upsert_campaign(rt)
        await store.import_contacts(rt.id, contacts(params.get("contacts", 16)))
        pool = AcdAgentPool(acd, {rt.id: rt.queue})
        service = DialerService(ami=dial_ami, store=store, agents=pool, clock=clock, tick=0.5, state_poll=5.0)
        holder["service"] = service
        await service.add_campaign(rt)
        changed = asyncio.Event()
        for name in ("OriginateResponse", "Hangup", "BridgeEnter", "Newchannel"):
            dial_ami.subscribe(name, lambda m: changed.set())
        tasks: list[asyncio.Task[None]] = []
        stores = [store]

        async def restart() -> DialerService:
            """The controller dies (its queued writes with it) and a new one starts."""
            tasks[-1].cancel()
            await asyncio.gather(tasks[-1], return_exceptions=True)
            stores.append(await CampaignStore.connect(db_dsn))
            fresh = DialerService(ami=dial_ami, store=stores[-1], agents=pool, clock=clock, tick=0.5)
            await fresh.add_campaign(rt)
            holder["service"] = w.service = fresh
            tasks.append(asyncio.create_task(fresh.run()))
            return fresh

        w = World(service, acd, sim, clock, db_dsn, changed, restart)
        try:
            for agent_id in params.get("agents", FAST):
                await acd.login(agent_id)
            tasks.append(asyncio.create_task(service.run()))
            yield w
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            acd_task.cancel()
            await asyncio.gather(acd_task, return_exceptions=True)
            await dial_ami.close()
            await acd_ami.close()
            for each in stores:
                await each.close()
            await sim.close()


async def attempts(dsn: str) -> dict[str, asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            """SELECT a.contact_key, a.outcome, a.agent_id, a.person_at IS NOT NULL AS live, c.status,
                      extract(epoch FROM coalesce(a.ended_at, a.started_at))::float8 AS ended
               FROM campaign_attempts a JOIN campaign_contacts c USING (campaign_id, contact_key)""",
            timeout=10,
        )
    finally:
        await conn.close()
    return {r["contact_key"]: r for r in rows}


async def test_every_outcome_on_the_simulated_pbx(world: World) -> None:
    """The renewals campaign leaves a message on machines (its own cc-outbound extension)."""
    dialer = world.service.dialer("renewals")
    await world.until(lambda: dialer.finished)
    await world.service.drain()
    got = await attempts(world.dsn)
    assert len(got) == 16  # one attempt each (max_attempts 1), none twice
    outcomes = {r["outcome"] for r in got.values()}
    assert {"connected", "busy", "no_answer", "machine_message"} <= outcomes, outcomes
    for r in got.values():
        if r["outcome"] == "connected":
            assert r["agent_id"] in FAST and r["live"] and r["status"] == "done"
        elif r["outcome"] == "machine_message":
            assert r["status"] == "done" and not r["live"]
        else:
            assert r["status"] == "exhausted" and not r["live"]
    # Nobody was left without an agent: progressive keeps one line per free agent.
    assert "abandoned" not in outcomes
    # The message waited for the end of the greeting and its beep: each machine recorded it whole.
    messages = sum(1 for r in got.values() if r["outcome"] == "machine_message")
    stats = world.sim.pbx.stats
    assert (stats["machine_messages_whole"], stats["machine_messages_cut"]) == (messages, 0)
    summary = world.service.status("renewals")
    assert summary["abandoned_in_window"] == 0
    # The talk and wrap-up of the connected calls came back to the pacing (all but the calls
    # still going on when the last attempt ended: at most one per agent).
    connected = sum(1 for r in got.values() if r["outcome"] == "connected")
    assert len(dialer.wrap_times) >= connected - len(FAST)


@pytest.mark.parametrize(
    "world",
    [{"agents": (SLOW,), "answer": 1.0, "busy": 0.0, "no_answer": 0.0, "machine": 0.0, "contacts": 3}],
    indirect=True,
)
async def test_no_agent_in_time_is_an_abandon_with_identification(world: World) -> None:
    dialer = world.service.dialer("renewals")
    await world.until(lambda: dialer.finished)
    await world.service.drain()
    got = await attempts(world.dsn)
    assert {r["outcome"] for r in got.values()} == {"abandoned"}
    assert all(r["live"] and r["status"] == "exhausted" for r in got.values())
    ledger = dialer.ledger.counts(world.clock.now())
    assert ledger == (3, 3)
    await world.until(lambda: world.acd.agent_state(SLOW).status is ag.Status.AVAILABLE)


@pytest.mark.parametrize(
    "world",
    [
        {
            "campaign": "reminders",
            "agents": BILLING,
            "max_attempts": 2,
            "answer": 0.3,
            "machine": 0.5,
            "no_answer": 0.2,
            "busy": 0.0,
        }
    ],
    indirect=True,
)
async def test_machines_hung_up_and_retried_later(world: World) -> None:
    """The reminders campaign hangs up on machines: the outcome is ``machine``, retried later."""
    dialer = world.service.dialer("reminders")

    def first_round_done() -> bool:
        return all(s.attempts == 1 and s.status.value != "dialing" for s in dialer.contacts())

    await world.until(first_round_done)
    await world.service.drain()
    got = await attempts(world.dsn)
    outcomes = {r["outcome"] for r in got.values()}
    assert "machine" in outcomes and "connected" in outcomes and "machine_message" not in outcomes
    for r in got.values():
        if r["outcome"] == "machine":
            assert r["status"] == "pending" and not r["live"]
            state = dialer.contact(r["contact_key"])
            assert state.next_at >= r["ended"] + 14400 - 1  # the machine delay, from the attempt's end
        if r["outcome"] == "connected":
            assert r["agent_id"] in BILLING


@pytest.mark.parametrize(
    "world",
    [{"max_attempts": 2, "contacts": 6, "answer": 0.0, "busy": 0.0, "no_answer": 1.0, "machine": 0.0}],
    indirect=True,
)
async def test_a_restart_never_dials_a_contact_twice(world: World) -> None:
    stats = world.sim.population.stats
    await world.until(lambda: stats.outbound_calls >= 3)  # three agents free: three lines ringing
    second = await world.restart()  # the controller dies with the calls ringing
    dialer = second.dialer("renewals")
    await world.until(lambda: all(s.attempts == 1 and s.status.value != "dialing" for s in dialer.contacts()))
    await second.drain()
    assert stats.outbound_calls == 6  # each contact dialled once, though two attempts are allowed
    got = await attempts(world.dsn)
    assert sorted(got) == [f"c{i:02d}" for i in range(6)]
    assert {r["outcome"] for r in got.values()} <= {"unknown", "no_answer"}
    assert "unknown" in {r["outcome"] for r in got.values()}
    for key, r in got.items():
        if r["outcome"] == "unknown":  # in flight at the crash: waits the retry delay, not redialled
            assert dialer.contact(key).next_at >= r["ended"] + 3600 - 1


async def test_the_dialplan_refuses_a_campaign_number_the_policy_refuses(
    tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    """Defence in depth: a campaign leg is Local/<number>@cc-dial-<trunk>/n, and the rendered
    context checks the dial-out policy again. A premium-rate number that got past the controller
    never reaches the trunk (the Originate fails); an allowed one does."""
    config = twenty_agents(tmp_path)
    write_files(render(config), tmp_path / "asterisk")
    clock = autojump_clock.starting_at(START)
    targets = OutboundProfile(trunk="dialer", answer=1.0, busy=0.0, no_answer=0.0, machine=0.0)
    sim = SimulatedPBX(
        tmp_path / "asterisk",
        clock=clock,
        ami_user=CREDS[0],
        ami_secret=CREDS[1],
        scenario=Scenario("dial-check", outbound=targets),
    )
    await sim.start()
    assert sim.population is not None
    trunk_legs: list[str] = []
    responses: dict[str, str] = {}
    changed = asyncio.Event()

    def watch(name: str, privilege: str, headers: list[tuple[str, str]]) -> None:
        h = dict(headers)
        if name == "Newchannel" and h.get("Channel", "").startswith("PJSIP/dialer-"):
            trunk_legs.append(h["Channel"])
        if name == "OriginateResponse":
            responses[h.get("Uniqueid", "")] = h.get("Response", "")
            changed.set()

    sim.pbx.listeners.append(watch)
    ami = AMIClient(port=sim.ami_port, username=CREDS[0], secret=CREDS[1], clock=clock)
    await ami.connect()
    try:
        for uid, number in (
            ("premium-1", "+19005550199"),
            ("satellite-1", "+881612345678"),
            ("ok-1", "+12125550143"),
        ):
            await ami.send_action(
                names.ACTION_ORIGINATE,
                [
                    ("Channel", names.CAMPAIGN_DIAL_TEMPLATE.format(number=number, trunk="dialer")),
                    ("Context", names.CTX_OUTBOUND),
                    ("Exten", "s"),
                    ("Priority", "1"),
                    ("CallerID", '"Northwind" <+18005550100>'),
                    ("Variable", f"{names.VAR_AMD}=0"),
                    ("Async", "true"),
                    ("ChannelId", uid),
                ],
                timeout=30,
            )
            await until(lambda uid=uid: uid in responses, changed, timeout=DEADLINE, clock=clock)
        assert responses == {"premium-1": "Failure", "satellite-1": "Failure", "ok-1": "Success"}
        assert sim.population.stats.outbound_calls == 1  # only the allowed number reached the trunk
        assert len(trunk_legs) == 1, trunk_legs
    finally:
        await ami.close()
        await sim.close()
