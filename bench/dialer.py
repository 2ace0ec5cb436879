"""Bench: progressive vs predictive pacing over a simulated 8-hour day (50 agents, 20,000 contacts).

Driver: a seeded discrete-event model of agents and called parties driving the dialer's pure core
(``callcenter.outbound.dialer.Dialer``) in simulated time. Two 8-hour days through the simulated PBX over
AMI and FastAGI (``tests/outbound/test_dialer_sim.py`` runs that path end to end) would need well over 100x
acceleration to fit the few minutes a benchmark may take, and at that speed the 2-second rule
becomes 20 ms of real time, below the event loop's jitter on a shared 2-core machine: the
abandonment figures would measure the machine, not the pacing. The pacing, the outcome accounting,
the windows and the retries are all in the pure core this drives. Two profiles of people:

``simulator`` (the headline): the simulator's own distributions (``callcenter.sim.people``:
``OutboundProfile`` and ``AgentProfile``), its outcome mix scaled to a 30 % answer rate: person
0.30, machine 0.233, busy 0.156, no answer 0.311; ring uniform 3-12 s; AMD hears a person 1.5 s
after the answer and a machine after its greeting (uniform 2.5-6 s); busy after 2 s; no answer at
the 25 s ring timeout; talk lognormal (mean 120 s, sigma 0.7); agents' wrap-up uniform 5-30 s.
With 17.5 s of wrap-up per 120 s of talk, occupancy (talk / logged-in) cannot pass 87 %.

``short-wrap``: person 0.30, machine 0.15, busy 0.10, failed 0.08, no answer the rest; ring
gamma(4, 2.5 s), AMD +2.5 s for a person, +4 s for a machine; busy 3 s, failed 1.5 s, no answer
30 s; talk lognormal (mean 150 s, sd 80 s); wrap-up uniform 5-15 s (occupancy ceiling 94 %).

Both: a person is connected to an idle agent (longest idle first) at once, or to the first agent
freed within the 2 s grace, else abandoned (identification message); each agent's handle time is
fed back to the dialer. Contacts in New York (45 %), Chicago (30 %), Denver (8 %), Los Angeles
(17 %); the day runs 10:00-18:00 Eastern on a Tuesday, window 09:00-20:00 local, so western
contacts open later. Retries: busy 10 min, no answer 1 h, machine 2 h, failed 30 min, abandoned
72 h; 3 attempts at most.

Both modes see the same people (common random numbers): the n-th attempt on a contact has the
same outcome and timing, and a contact's conversation and wrap-up the same lengths, in every run,
so the two modes differ by their pacing only, not by the luck of the draw.

``other_seeds``: the simulator profile's ratio, occupancy and abandonment with seeds 12-15.

``clairvoyant_bound``: the simulator profile's predictive run once more with the pacing told exactly
when each busy agent frees (``AgentLoad.free_in``): what a perfect forecast of the agents could
give; what it still leaves is who answers and when (30 % of lines, 4.5-13.5 s after the dial).

Metrics: occupancy = talk time / logged-in time; connects per agent hour; abandonment = abandoned /
live-answered. ``value`` is predictive connects per agent hour, ``baseline`` progressive's
(simulator profile).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import sys
import time as walltime
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from bench.common import emit
from callcenter.outbound.contacts import Contact
from callcenter.outbound.dialer import (
    CONNECT_GRACE,
    AgentLoad,
    Attempt,
    CallingWindow,
    CampaignSettings,
    Dialer,
    Mode,
    Outcome,
    PacingSettings,
)

ZONES = (
    ("America/New_York", "212", 0.45),
    ("America/Chicago", "312", 0.30),
    ("America/Denver", "303", 0.08),
    ("America/Los_Angeles", "415", 0.17),
)
DAY_START = datetime(2026, 6, 2, 14, 0, tzinfo=UTC).timestamp()  # Tuesday 10:00 EDT
RETRY = {
    Outcome.BUSY: 600.0,
    Outcome.NO_ANSWER: 3600.0,
    Outcome.MACHINE: 7200.0,
    Outcome.FAILED: 1800.0,
    Outcome.ABANDONED: 72 * 3600.0,
    Outcome.UNKNOWN: 3600.0,
}

# event kinds
_RESOLVE, _AGENT_FREE, _GRACE_END, _TICK, _TALK_END = range(5)


@dataclass(frozen=True)
class Profile:
    """Who answers, how fast, and how long agents talk and wrap up (see the module docstring)."""

    name: str
    machine: float
    busy: float
    failed: float
    ring: Callable[[random.Random], float]
    person_amd: float
    machine_amd: Callable[[random.Random], float]
    busy_after: float
    failed_after: float
    no_answer_after: float
    talk: Callable[[random.Random], float]
    wrap: Callable[[random.Random], float]


def _lognormal(mean: float, sigma: float) -> Callable[[random.Random], float]:
    mu = math.log(mean) - sigma * sigma / 2
    return lambda rng: rng.lognormvariate(mu, sigma)


_SD_SIGMA = math.sqrt(math.log(1 + (80.0 / 150.0) ** 2))  # lognormal with mean 150 s and sd 80 s

PROFILES = {
    "simulator": Profile(
        name="simulator",
        machine=0.70 * 0.15 / 0.45,
        busy=0.70 * 0.10 / 0.45,
        failed=0.0,
        ring=lambda rng: rng.uniform(3.0, 12.0),
        person_amd=1.5,
        machine_amd=lambda rng: rng.uniform(2.5, 6.0),
        busy_after=2.0,
        failed_after=1.5,
        no_answer_after=25.0,
        talk=_lognormal(120.0, 0.7),
        wrap=lambda rng: rng.uniform(5.0, 30.0),
    ),
    "short-wrap": Profile(
        name="short-wrap",
        machine=0.15,
        busy=0.10,
        failed=0.08,
        ring=lambda rng: rng.gammavariate(4.0, 2.5),
        person_amd=2.5,
        machine_amd=lambda rng: 4.0,
        busy_after=3.0,
        failed_after=1.5,
        no_answer_after=30.0,
        talk=_lognormal(150.0, _SD_SIGMA),
        wrap=lambda rng: rng.uniform(5.0, 15.0),
    ),
}


@dataclass(slots=True)
class _Agent:
    ident: int
    busy_since: float | None = None
    wrap_since: float | None = None
    idle_since: float = 0.0
    free_at: float | None = None


@dataclass(slots=True)
class _Result:
    mode: str
    connected: int = 0
    abandoned: int = 0
    attempts: int = 0
    talk: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    fallback_decisions: int = 0
    decisions: int = 0
    hourly_connected: list[int] = field(default_factory=list)
    hourly_abandoned: list[int] = field(default_factory=list)


def make_contacts(n: int, rng: random.Random) -> list[Contact]:
    contacts = []
    weights = [w for _, _, w in ZONES]
    for i in range(n):
        zone, area, _ = rng.choices(ZONES, weights)[0]
        contacts.append(Contact(key=f"c{i}", phone=f"+1{area}{2000000 + i:07d}", zones=(zone,)))
    return contacts


def simulate(
    mode: Mode,
    *,
    agents: int = 50,
    contacts: int = 20_000,
    hours: float = 8.0,
    seed: int = 11,
    answer_rate: float = 0.30,
    tick: float = 1.0,
    pacing: PacingSettings | None = None,
    profile: str = "simulator",
    wrap_info: bool = True,
    clairvoyant: bool = False,
) -> dict[str, Any]:
    """Run one simulated day of one campaign in ``mode``; returns the metrics. ``clairvoyant``: the
    pacing is told exactly when each busy agent will be free (``AgentLoad.free_in``), a bound on
    what any forecast of the agents could give it."""
    book = make_contacts(contacts, random.Random(seed + 1))
    settings = CampaignSettings(
        name=f"bench-{mode.value}",
        mode=mode,
        window=CallingWindow(time(9), time(20)),
        max_attempts=3,
        retry_delays=RETRY,
        expected_answer_rate=answer_rate,
        expected_handle_time=160.0,
        pacing=pacing or PacingSettings(),
    )
    dialer = Dialer(settings)
    start = DAY_START
    end = start + hours * 3600.0
    dialer.add_contacts(book, now=start)
    staff = [_Agent(i, idle_since=start) for i in range(agents)]
    idle: list[tuple[float, int]] = [(start, a.ident) for a in staff]  # heap: longest idle first
    heapq.heapify(idle)
    waiting: list[str] = []  # persons within their 2 s grace, oldest first
    outcome_of: dict[str, Outcome] = {}
    contact_of: dict[str, str] = {}
    events: list[tuple[float, int, int, Any]] = []
    seq = itertools.count()
    result = _Result(mode.value)
    result.hourly_connected = [0] * math.ceil(hours)
    result.hourly_abandoned = [0] * math.ceil(hours)
    people = PROFILES[profile]
    p_machine, p_busy, p_failed = people.machine, people.busy, people.failed

    def push(at: float, kind: int, payload: Any) -> None:
        heapq.heappush(events, (at, next(seq), kind, payload))

    def place(attempt: Attempt, now: float) -> None:
        # Common random numbers: the n-th attempt on a contact has the same fate in both modes.
        fate = random.Random(f"{seed}:{attempt.contact.key}:{attempt.number}")
        result.attempts += 1
        u = fate.random()
        ring = people.ring(fate)
        if u < answer_rate:
            outcome, delay = Outcome.CONNECTED, ring + people.person_amd  # CONNECTED: "a person"
        elif u < answer_rate + p_machine:
            outcome, delay = Outcome.MACHINE, ring + people.machine_amd(fate)
        elif u < answer_rate + p_machine + p_busy:
            outcome, delay = Outcome.BUSY, people.busy_after
        elif u < answer_rate + p_machine + p_busy + p_failed:
            outcome, delay = Outcome.FAILED, people.failed_after
        else:
            outcome, delay = Outcome.NO_ANSWER, people.no_answer_after
        outcome_of[attempt.attempt_id] = outcome
        contact_of[attempt.attempt_id] = attempt.contact.key
        push(now + delay, _RESOLVE, attempt.attempt_id)

    def connect(attempt_id: str, now: float) -> None:
        _, ident = heapq.heappop(idle)
        agent = staff[ident]
        agent.busy_since = now
        # the same person talks as long in both modes (a contact is connected at most once)
        call = random.Random(f"{seed}:call:{contact_of.pop(attempt_id)}")
        talk = people.talk(call)
        wrap = people.wrap(call)
        result.talk += max(0.0, min(now + talk, end) - now)
        result.connected += 1
        result.hourly_connected[int((now - start) // 3600)] += 1
        dialer.on_connected(attempt_id, now)
        push(now + talk, _TALK_END, ident)
        push(now + talk + wrap, _AGENT_FREE, (ident, talk, wrap))
        agent.free_at = now + talk + wrap

    def load(now: float) -> AgentLoad:
        if clairvoyant:
            left = tuple(a.free_at - now for a in staff if a.free_at is not None)
            return AgentLoad(logged_in=agents, idle=len(idle), free_in=left)
        if not wrap_info:
            busy = tuple(now - a.busy_since for a in staff if a.busy_since is not None)
            return AgentLoad(logged_in=agents, idle=len(idle), busy_elapsed=busy)
        talking = tuple(
            now - a.busy_since for a in staff if a.busy_since is not None and a.wrap_since is None
        )
        wrapping = tuple(now - a.wrap_since for a in staff if a.wrap_since is not None)
        return AgentLoad(logged_in=agents, idle=len(idle), busy_elapsed=talking, wrap_elapsed=wrapping)

    push(start, _TICK, None)
    now = start
    while events:
        now, _, kind, payload = heapq.heappop(events)
        if now >= end:
            break
        if kind == _RESOLVE:
            attempt_id = payload
            outcome = outcome_of.pop(attempt_id)
            if outcome is Outcome.CONNECTED:
                dialer.on_person(attempt_id, now)
                if idle:
                    connect(attempt_id, now)
                else:
                    waiting.append(attempt_id)
                    push(now + CONNECT_GRACE, _GRACE_END, attempt_id)
            else:
                dialer.on_outcome(attempt_id, outcome, now)
                result.outcomes[outcome.value] = result.outcomes.get(outcome.value, 0) + 1
        elif kind == _AGENT_FREE:
            ident, talk, wrap = payload
            staff[ident].busy_since = staff[ident].wrap_since = staff[ident].free_at = None
            heapq.heappush(idle, (now, ident))
            if wrap_info:
                dialer.on_call_end(talk, wrap)
            else:
                dialer.on_handle_time(talk + wrap)
            if waiting:
                connect(waiting.pop(0), now)
        elif kind == _TALK_END:
            staff[payload].wrap_since = now
            continue  # nothing the pacing must react to at once; the next tick sees it
        elif kind == _GRACE_END:
            attempt_id = payload
            if attempt_id in waiting:
                waiting.remove(attempt_id)
                dialer.on_abandoned(attempt_id, now)
                result.abandoned += 1
                result.hourly_abandoned[int((now - start) // 3600)] += 1
        else:
            push(now + tick, _TICK, None)
        # decide once per instant, after every event at this instant
        if events and events[0][0] == now:
            continue
        decision, attempts = dialer.plan(load(now), now)
        result.decisions += 1
        if decision.mode is not mode:
            result.fallback_decisions += 1
        for attempt in attempts:
            place(attempt, now)
    agent_hours = agents * hours
    live = result.connected + result.abandoned
    result.outcomes["connected"] = result.connected
    result.outcomes["abandoned"] = result.abandoned
    return {
        "mode": mode.value,
        "profile": profile,
        "connects_per_agent_hour": result.connected / agent_hours,
        "occupancy": result.talk / (agent_hours * 3600.0),
        "abandonment_rate": result.abandoned / live if live else 0.0,
        "attempts": result.attempts,
        "connected": result.connected,
        "abandoned": result.abandoned,
        "outcomes": result.outcomes,
        "dials_per_connect": result.attempts / result.connected if result.connected else None,
        "fallback_share": result.fallback_decisions / result.decisions if result.decisions else 0.0,
        "final_gain": round(dialer.gain, 3),
        "hourly_connected": result.hourly_connected,
        "hourly_abandoned": result.hourly_abandoned,
        "pacing": dialer.last_decision.explain() if dialer.last_decision else None,
    }


def _round(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k != "pacing"}


def main() -> None:
    t0 = walltime.perf_counter()
    runs = {}
    for profile in PROFILES:
        for mode in (Mode.PROGRESSIVE, Mode.PREDICTIVE):
            started = walltime.perf_counter()
            runs[profile, mode] = simulate(mode, profile=profile)
            print(
                f"{profile} {mode.value}: {walltime.perf_counter() - started:.1f} s (wall)", file=sys.stderr
            )
    started = walltime.perf_counter()
    bound = simulate(Mode.PREDICTIVE, clairvoyant=True)
    print(
        f"simulator clairvoyant predictive: {walltime.perf_counter() - started:.1f} s (wall)", file=sys.stderr
    )
    other_seeds = {}
    for seed in (12, 13, 14, 15):  # the headline's seed is 11: how much of its ratio is luck
        pro, pre = simulate(Mode.PROGRESSIVE, seed=seed), simulate(Mode.PREDICTIVE, seed=seed)
        other_seeds[str(seed)] = {
            "ratio": round(pre["connects_per_agent_hour"] / pro["connects_per_agent_hour"], 3),
            "occupancy": round(pre["occupancy"], 4),
            "abandonment_rate": round(pre["abandonment_rate"], 4),
        }
    print(f"other seeds: {walltime.perf_counter() - started:.1f} s (wall)", file=sys.stderr)
    progressive = runs["simulator", Mode.PROGRESSIVE]
    predictive = runs["simulator", Mode.PREDICTIVE]
    short_pro = runs["short-wrap", Mode.PROGRESSIVE]
    short_pre = runs["short-wrap", Mode.PREDICTIVE]
    emit(
        "dialer",
        predictive["connects_per_agent_hour"],
        "connects/agent-hour",
        progressive["connects_per_agent_hour"],
        driver="seeded discrete-event model of agents and called parties driving "
        "callcenter.outbound.dialer.Dialer "
        "with the simulator's distributions (8 h through the AMI simulator would need >100x time, "
        "turning the 2 s rule into 20 ms of real time)",
        agents=50,
        contacts=20_000,
        answer_rate=0.30,
        simulated_hours=8,
        abandonment_rate=round(predictive["abandonment_rate"], 4),
        occupancy=round(predictive["occupancy"], 4),
        progressive_occupancy=round(progressive["occupancy"], 4),
        occupancy_ceiling=round(120.0 / (120.0 + 17.5), 4),
        short_wrap={
            "ratio": round(short_pre["connects_per_agent_hour"] / short_pro["connects_per_agent_hour"], 3),
            "predictive_connects_per_agent_hour": round(short_pre["connects_per_agent_hour"], 3),
            "progressive_connects_per_agent_hour": round(short_pro["connects_per_agent_hour"], 3),
            "abandonment_rate": round(short_pre["abandonment_rate"], 4),
            "occupancy": round(short_pre["occupancy"], 4),
            "progressive_occupancy": round(short_pro["occupancy"], 4),
            "occupancy_ceiling": round(150.0 / 160.0, 4),
        },
        clairvoyant_bound={
            "what": "the same predictive pacing told exactly when each busy agent frees (AgentLoad.free_in): "
            "what a perfect forecast of the agents could give; the rest is who answers and when",
            "ratio": round(bound["connects_per_agent_hour"] / progressive["connects_per_agent_hour"], 3),
            "connects_per_agent_hour": round(bound["connects_per_agent_hour"], 3),
            "occupancy": round(bound["occupancy"], 4),
            "abandonment_rate": round(bound["abandonment_rate"], 4),
            "fallback_share": round(bound["fallback_share"], 4),
        },
        other_seeds=other_seeds,
        progressive=_round(progressive),
        predictive=_round(predictive),
        pacing_at_end=predictive["pacing"],
        wall_seconds=round(walltime.perf_counter() - t0, 1),
    )


if __name__ == "__main__":
    main()
