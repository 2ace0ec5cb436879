"""Bench: progressive vs predictive pacing over a simulated 8-hour day (50 agents, 20,000 contacts).

Driver: a seeded discrete-event model of agents and called parties driving the dialer's pure core
(``callcenter.dialer.Dialer``) in simulated time. Running the full simulated PBX over AMI for two
8-hour days does not fit the few minutes a benchmark may take, and the pacing decisions, the
outcome accounting, the windows and the retries are all in the pure core this drives. The model:

- each attempt's outcome: a person with probability ``answer_rate`` (0.30), else a machine (0.15),
  busy (0.10), failed (0.08) or no answer (the rest);
- times from dial: a person answers after a gamma(4, 2.5 s) ring (mean 10 s) and AMD hears the
  greeting end 2.5 s later; a machine answers after the same ring and AMD decides 4 s later
  (the campaign hangs up and retries); busy 3 s; failed 1.5 s; no answer at the 30 s timeout;
- a person is connected to an idle agent (longest idle first) at once, or to the first agent
  freed within the 2 s grace, else abandoned (the identification message is played);
- talk time lognormal (mean 150 s, sd 80 s), wrap-up uniform 5-15 s, the measured handle time
  is fed back to the dialer;
- contacts in New York (45 %), Chicago (30 %), Denver (8 %) and Los Angeles (17 %); the day runs
  10:00-18:00 Eastern on a Tuesday, window 09:00-20:00 local, so western contacts open later;
- retries: busy 10 min, no answer 1 h, machine 2 h, failed 30 min, abandoned 72 h; 3 attempts max.

Metrics: occupancy = talk time / logged-in time; connects per agent hour; abandonment = abandoned /
live-answered. ``value`` is predictive connects per agent hour, ``baseline`` progressive's.
"""

from __future__ import annotations

import heapq
import itertools
import random
import sys
import time as walltime
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from bench.common import emit
from callcenter.campaigns import Contact
from callcenter.dialer import (
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
_RESOLVE, _AGENT_FREE, _GRACE_END, _TICK = range(4)


@dataclass(slots=True)
class _Agent:
    ident: int
    busy_since: float | None = None
    idle_since: float = 0.0


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
) -> dict[str, Any]:
    """Run one simulated day of one campaign in ``mode``; returns the metrics."""
    rng = random.Random(seed)
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
    events: list[tuple[float, int, int, Any]] = []
    seq = itertools.count()
    result = _Result(mode.value)
    p_machine, p_busy, p_failed = 0.15, 0.10, 0.08

    def push(at: float, kind: int, payload: Any) -> None:
        heapq.heappush(events, (at, next(seq), kind, payload))

    def place(attempt: Attempt, now: float) -> None:
        result.attempts += 1
        u = rng.random()
        ring = rng.gammavariate(4.0, 2.5)
        if u < answer_rate:
            outcome, delay = Outcome.CONNECTED, ring + 2.5  # CONNECTED here means "a person"
        elif u < answer_rate + p_machine:
            outcome, delay = Outcome.MACHINE, ring + 4.0
        elif u < answer_rate + p_machine + p_busy:
            outcome, delay = Outcome.BUSY, 3.0
        elif u < answer_rate + p_machine + p_busy + p_failed:
            outcome, delay = Outcome.FAILED, 1.5
        else:
            outcome, delay = Outcome.NO_ANSWER, 30.0
        outcome_of[attempt.attempt_id] = outcome
        push(now + delay, _RESOLVE, attempt.attempt_id)

    def talk_time() -> float:
        # lognormal with mean 150 s and sd 80 s
        import math

        mean, sd = 150.0, 80.0
        sigma2 = math.log(1 + (sd / mean) ** 2)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))

    def connect(attempt_id: str, now: float) -> None:
        _, ident = heapq.heappop(idle)
        agent = staff[ident]
        agent.busy_since = now
        talk = talk_time()
        wrap = rng.uniform(5.0, 15.0)
        result.talk += max(0.0, min(now + talk, end) - now)
        result.connected += 1
        dialer.on_connected(attempt_id, now)
        push(now + talk + wrap, _AGENT_FREE, (ident, talk + wrap))

    def load(now: float) -> AgentLoad:
        busy = tuple(now - a.busy_since for a in staff if a.busy_since is not None)
        return AgentLoad(logged_in=agents, idle=len(idle), busy_elapsed=busy)

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
            ident, handle = payload
            staff[ident].busy_since = None
            heapq.heappush(idle, (now, ident))
            dialer.on_handle_time(handle)
            if waiting:
                connect(waiting.pop(0), now)
        elif kind == _GRACE_END:
            attempt_id = payload
            if attempt_id in waiting:
                waiting.remove(attempt_id)
                dialer.on_abandoned(attempt_id, now)
                result.abandoned += 1
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
        "pacing": dialer.last_decision.explain() if dialer.last_decision else None,
    }


def main() -> None:
    t0 = walltime.perf_counter()
    progressive = simulate(Mode.PROGRESSIVE)
    t1 = walltime.perf_counter()
    predictive = simulate(Mode.PREDICTIVE)
    t2 = walltime.perf_counter()
    print(f"progressive {t1 - t0:.1f} s, predictive {t2 - t1:.1f} s (wall)", file=sys.stderr)
    emit(
        "dialer",
        predictive["connects_per_agent_hour"],
        "connects/agent-hour",
        progressive["connects_per_agent_hour"],
        driver="discrete-event model (seeded) driving callcenter.dialer.Dialer; not the AMI simulator",
        agents=50,
        contacts=20_000,
        answer_rate=0.30,
        simulated_hours=8,
        abandonment_rate=round(predictive["abandonment_rate"], 4),
        occupancy=round(predictive["occupancy"], 4),
        progressive={k: (round(v, 4) if isinstance(v, float) else v) for k, v in progressive.items()},
        predictive={k: (round(v, 4) if isinstance(v, float) else v) for k, v in predictive.items()},
        wall_seconds=round(t2 - t0, 1),
    )


if __name__ == "__main__":
    main()
