"""Routing decisions under load: the indexed router against a plain scan, same run, same inputs.

2,000 agents with 5-8 of 50 skills (levels 1-10), 20 queues (one skill each at level 3-7, five
strategies: ring-all, for small teams, is left out; a relaxation schedule: level 2 after 30 s,
the "general" skill after 120 s), 10,000 calls waiting when the clock starts, some with a
language skill on top. Then a stream of events, each one routing decision: an agent frees
(takes the best call it can serve), a call arrives (takes the best available agent, else waits),
or a relaxation falls due (the shell ticks the router at each deadline; the relaxed call may
now route). Time moves 50 ms per event.
The same seeded driver runs both routers; every decision must be identical.

``value`` = indexed decisions/s, ``baseline`` = the scan's, plus p50/p99 per decision in us.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from typing import Any

from bench.common import emit
from callcenter.acd.routing import CallRequest, Decision, Offer, QueuePolicy, RelaxStep, Router, ScanRouter

AGENTS = 2_000
SKILLS = 50
QUEUES = 20
WAITING = 10_000
EVENTS = 3_000
SEED = 20_261_123
STRATEGIES = ("longest_idle", "least_calls", "least_talk_time", "best_skill", "round_robin")
LANGS = [f"s{i}" for i in range(40, 45)]
GENERAL = "s49"


def policies() -> list[QueuePolicy]:
    rng = random.Random(SEED)
    out = []
    for q in range(QUEUES):
        out.append(
            QueuePolicy(
                f"q{q}",
                {f"s{q}": rng.randint(3, 7)},
                strategy=STRATEGIES[q % len(STRATEGIES)],  # type: ignore[arg-type]
                relaxation=(RelaxStep(30, min_level=2), RelaxStep(120, add_skill=GENERAL)),
            )
        )
    return out


def agent_skills(rng: random.Random) -> dict[str, int]:
    skills = {f"s{k}": rng.randint(1, 10) for k in rng.sample(range(40), rng.randint(4, 7))}
    skills[rng.choice(LANGS)] = rng.randint(1, 10)
    if rng.random() < 0.2:
        skills[GENERAL] = rng.randint(1, 10)
    return skills


def call_request(rng: random.Random, n: int) -> CallRequest:
    extra = {rng.choice(LANGS): rng.randint(1, 4)} if rng.random() < 0.5 else {}
    return CallRequest(f"c{n}", f"q{rng.randrange(QUEUES)}", extra, 1 if rng.random() < 0.05 else 0)


def run(router: Router | ScanRouter) -> tuple[list[list[Decision]], list[int]]:
    rng = random.Random(SEED)
    now = 1_000.0
    for a in range(AGENTS):
        router.add_agent(f"a{a}", agent_skills(rng))
    busy = [f"a{a}" for a in range(AGENTS)]  # all on calls when the clock starts
    idle: set[str] = set()
    n = 0
    for _ in range(WAITING):  # arrived over the last 300 s
        n += 1
        router.enqueue(call_request(rng, n), now, arrived_at=now - rng.uniform(0, 300))
    router.tick(now)
    gc.collect()
    gc.freeze()  # what a long-running controller does after start-up: setup objects leave the GC's scans
    log: list[list[Decision]] = []
    lat: list[int] = []

    def took(decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, Offer):
                idle.discard(d.agent_id)
                busy.append(d.agent_id)
                router.remove_call(d.call_id)  # answered: the call is done with routing

    for _ in range(EVENTS):
        r = rng.random()
        now += 0.05
        # Relaxations (and max waits) as the shell runs them: one tick per deadline, when due.
        while (due := router.next_deadline()) is not None and due <= now:
            t0 = time.perf_counter_ns()
            d = router.tick(due)
            lat.append(time.perf_counter_ns() - t0)
            took(d)
            log.append(d)
        if r < 0.45 and busy:
            i = rng.randrange(len(busy))
            agent = busy[i]
            busy[i] = busy[-1]
            busy.pop()
            if rng.random() < 0.5:
                router.record_handled(f"q{rng.randrange(QUEUES)}", agent, rng.uniform(60, 400))
            t0 = time.perf_counter_ns()
            d = router.agent_available(agent, now)
            lat.append(time.perf_counter_ns() - t0)
            if not d:
                idle.add(agent)
        else:
            n += 1
            req = call_request(rng, n)
            t0 = time.perf_counter_ns()
            d = router.enqueue(req, now)
            lat.append(time.perf_counter_ns() - t0)
        took(d)
        log.append(d)
    gc.unfreeze()
    return log, lat


def pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def main() -> None:
    fast_log, fast_lat = run(Router(policies()))
    print(f"indexed done: p50 {pct(fast_lat, 0.5):.1f} us, p99 {pct(fast_lat, 0.99):.1f} us", file=sys.stderr)
    slow_log, slow_lat = run(ScanRouter(policies()))
    if fast_log != slow_log:
        first = next(i for i, (a, b) in enumerate(zip(fast_log, slow_log, strict=True)) if a != b)
        raise SystemExit(f"routers disagree at event {first}: {fast_log[first]} vs {slow_log[first]}")
    offers = sum(1 for ds in fast_log for d in ds if isinstance(d, Offer))
    fast_rate = len(fast_lat) / (sum(fast_lat) / 1e9)
    slow_rate = len(slow_lat) / (sum(slow_lat) / 1e9)
    extra: dict[str, Any] = {
        "p50_us": round(pct(fast_lat, 0.5), 1),
        "p99_us": round(pct(fast_lat, 0.99), 1),
        "max_us": round(max(fast_lat) / 1000, 1),
        "mean_us": round(statistics.fmean(fast_lat) / 1000, 1),
        "scan_p50_us": round(pct(slow_lat, 0.5), 1),
        "scan_p99_us": round(pct(slow_lat, 0.99), 1),
        "decisions": len(fast_lat),
        "offers": offers,
        "same_decisions": True,
        "agents": AGENTS,
        "skills": SKILLS,
        "waiting_calls": WAITING,
        "queues": QUEUES,
        "strategies": ",".join(STRATEGIES),
    }
    emit("routing", fast_rate, "decisions/s", slow_rate, **extra)


if __name__ == "__main__":
    main()
