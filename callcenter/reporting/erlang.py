"""Pure: Erlang C staffing (M/M/N queue, callers wait forever), with shrinkage and maximum occupancy.

Definitions (one interval of ``interval`` seconds, ``calls`` arrivals, average handle time ``aht``):

- traffic intensity ``A = calls * aht / interval`` (Erlangs: agents busy on average);
- Erlang B by the stable recursion ``B(0) = 1``, ``B(k) = A B(k-1) / (k + A B(k-1))``;
- probability of waiting (Erlang C) ``Pw = N B(N) / (N - A (1 - B(N)))`` for ``N > A`` (else 1);
- service level, the share answered within ``t`` seconds: ``SL(t) = 1 - Pw exp(-(N - A) t / aht)``;
- average speed of answer ``ASA = Pw aht / (N - A)``;
- occupancy ``A / N``;
- agents needed: the smallest ``N > A`` with ``SL(t) >= target`` and ``A / N <= max_occupancy``;
  scheduled agents with shrinkage ``s`` (breaks, training, absence): ``ceil(N / (1 - s))``.

Checked in ``tests/test_erlang.py`` against published worked examples.

Erlang A (``erlang_a``, ``agents_needed_erlang_a``): the same with callers who abandon after an
exponential patience; computed exactly from the birth-death chain, and equal to Erlang C when
patience is very long (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def traffic(calls: float, interval_seconds: float, aht_seconds: float) -> float:
    if interval_seconds <= 0:
        raise ValueError("interval must be > 0 seconds")
    if calls < 0 or aht_seconds < 0:
        raise ValueError("calls and AHT must be >= 0")
    return calls * aht_seconds / interval_seconds


def erlang_b(agents: int, traffic_erlangs: float) -> float:
    """Blocking probability of ``agents`` servers offered ``traffic_erlangs`` (no queue)."""
    if agents < 0:
        raise ValueError("agents must be >= 0")
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic_erlangs * b / (k + traffic_erlangs * b)
    return b


def erlang_c(agents: int, traffic_erlangs: float) -> float:
    """Probability that a call waits (``1.0`` when the agents cannot carry the traffic)."""
    if traffic_erlangs <= 0:
        return 0.0
    if agents <= traffic_erlangs:
        return 1.0
    b = erlang_b(agents, traffic_erlangs)
    return agents * b / (agents - traffic_erlangs * (1.0 - b))


def service_level(agents: int, traffic_erlangs: float, aht_seconds: float, target_seconds: float) -> float:
    if traffic_erlangs <= 0:
        return 1.0
    if agents <= traffic_erlangs:
        return 0.0
    pw = erlang_c(agents, traffic_erlangs)
    return 1.0 - pw * math.exp(-(agents - traffic_erlangs) * target_seconds / aht_seconds)


def asa(agents: int, traffic_erlangs: float, aht_seconds: float) -> float:
    if traffic_erlangs <= 0:
        return 0.0
    if agents <= traffic_erlangs:
        return math.inf
    return erlang_c(agents, traffic_erlangs) * aht_seconds / (agents - traffic_erlangs)


@dataclass(frozen=True)
class Staffing:
    """The answer for one interval (``agents`` on the phones; ``scheduled`` after shrinkage)."""

    agents: int
    scheduled: int
    traffic_erlangs: float
    service_level: float
    probability_wait: float
    asa_seconds: float
    occupancy: float
    calls: float
    interval_seconds: float
    aht_seconds: float
    target_level: float
    target_seconds: float
    shrinkage: float


def evaluate(
    agents: int,
    calls: float,
    interval_seconds: float,
    aht_seconds: float,
    *,
    target_seconds: float = 20.0,
    target_level: float = 0.8,
    shrinkage: float = 0.0,
) -> Staffing:
    """The performance of ``agents`` on this traffic."""
    a = traffic(calls, interval_seconds, aht_seconds)
    return Staffing(
        agents=agents,
        scheduled=scheduled(agents, shrinkage),
        traffic_erlangs=a,
        service_level=service_level(agents, a, aht_seconds, target_seconds),
        probability_wait=erlang_c(agents, a),
        asa_seconds=asa(agents, a, aht_seconds),
        occupancy=(a / agents) if agents else 0.0,
        calls=calls,
        interval_seconds=interval_seconds,
        aht_seconds=aht_seconds,
        target_level=target_level,
        target_seconds=target_seconds,
        shrinkage=shrinkage,
    )


def scheduled(agents: int, shrinkage: float) -> int:
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError("shrinkage must be in [0, 1)")
    return math.ceil(agents / (1.0 - shrinkage) - 1e-9)


def agents_needed(
    calls: float,
    interval_seconds: float,
    aht_seconds: float,
    *,
    target_level: float = 0.8,
    target_seconds: float = 20.0,
    shrinkage: float = 0.0,
    max_occupancy: float = 1.0,
    max_agents: int = 100_000,
) -> Staffing:
    """The fewest agents that meet the service-level target (and the occupancy cap)."""
    if not 0.0 < target_level < 1.0:
        raise ValueError("target service level must be between 0 and 1 (exclusive)")
    if target_seconds < 0:
        raise ValueError("target answer time must be >= 0 seconds")
    if not 0.0 < max_occupancy <= 1.0:
        raise ValueError("maximum occupancy must be in (0, 1]")
    a = traffic(calls, interval_seconds, aht_seconds)
    if a <= 0:
        return evaluate(
            0,
            calls,
            interval_seconds,
            aht_seconds,
            target_seconds=target_seconds,
            target_level=target_level,
            shrinkage=shrinkage,
        )
    n = max(1, math.floor(a) + 1, math.ceil(a / max_occupancy - 1e-12))
    while n <= max_agents:
        if service_level(n, a, aht_seconds, target_seconds) >= target_level and a / n <= max_occupancy:
            return evaluate(
                n,
                calls,
                interval_seconds,
                aht_seconds,
                target_seconds=target_seconds,
                target_level=target_level,
                shrinkage=shrinkage,
            )
        n += 1
    raise ValueError(f"more than {max_agents} agents would be needed")


def parse_target(text: str) -> tuple[float, float]:
    """``"80/20"`` -> ``(0.80, 20.0)``: 80 % of calls answered within 20 seconds."""
    level, sep, secs = text.partition("/")
    try:
        if not sep:
            raise ValueError
        lv = float(level) / 100.0
        sc = float(secs)
    except ValueError:
        raise ValueError(f"target {text!r} is not PERCENT/SECONDS, e.g. 80/20") from None
    if not 0.0 < lv < 1.0 or sc < 0:
        raise ValueError(f"target {text!r}: percent must be in (0, 100) and seconds >= 0")
    return lv, sc


# --------------------------------------------------------------------------- Erlang A
@dataclass(frozen=True)
class ErlangA:
    """M/M/N+M: callers abandon after an exponential patience of mean ``patience_seconds``.

    Computed exactly from the birth-death chain (truncated where its tail is negligible):
    ``probability_wait`` = P(all agents busy on arrival); ``probability_abandon`` =
    (1/patience) E[queue] / arrival rate; ``asa_seconds`` = E[queue] / arrival rate (mean wait of all
    callers, Little); ``service_level`` = share of *offered* calls answered within the target (a
    caller who hangs up first counts against it), from the tagged caller's passage through the
    queue (uniformisation of its position chain)."""

    agents: int
    traffic_erlangs: float
    probability_wait: float
    probability_abandon: float
    asa_seconds: float
    service_level: float
    occupancy: float


def erlang_a(
    agents: int,
    calls: float,
    interval_seconds: float,
    aht_seconds: float,
    patience_seconds: float,
    target_seconds: float,
) -> ErlangA:
    if not 0 < patience_seconds <= 86_400:
        raise ValueError("patience must be > 0 and at most a day (86400 s)")
    a = traffic(calls, interval_seconds, aht_seconds)
    lam = calls / interval_seconds
    if lam <= 0:
        return ErlangA(agents, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    if agents <= 0:
        return ErlangA(0, a, 1.0, 1.0, patience_seconds, 0.0, 0.0)
    mu = 1.0 / aht_seconds
    theta = 1.0 / patience_seconds
    # Stationary distribution, in logs to stay finite for large N.
    logs = [0.0]
    k = 0
    while True:
        k += 1
        death = min(k, agents) * mu + max(k - agents, 0) * theta
        logs.append(logs[-1] + math.log(lam) - math.log(death))
        if k > agents and logs[-1] < max(logs) - 40.0:
            break
        if k > agents + 100_000:
            break
    top = max(logs)
    weights = [math.exp(v - top) for v in logs]
    total = sum(weights)
    pi = [w / total for w in weights]
    p_wait = sum(pi[agents:])
    queue_mean = sum((i - agents) * p for i, p in enumerate(pi) if i > agents)
    p_abandon = theta * queue_mean / lam
    served_within = _served_within(pi, agents, mu, theta, target_seconds)
    busy = sum(min(i, agents) * p for i, p in enumerate(pi))
    return ErlangA(
        agents=agents,
        traffic_erlangs=a,
        probability_wait=p_wait,
        probability_abandon=p_abandon,
        asa_seconds=queue_mean / lam,
        service_level=(1.0 - p_wait) + served_within,
        occupancy=busy / agents,
    )


def _served_within(pi: list[float], n: int, mu: float, theta: float, t: float) -> float:
    """Sum over arrival states k >= n of pi_k * P(served within t | k - n callers ahead)."""
    positions = len(pi) - n  # a caller finding k >= n in the system is at position k - n + 1
    if positions <= 0 or t <= 0:
        return 0.0
    # Position i (1 = next) moves to i - 1 at rate n mu + (i - 1) theta; leaves (abandons) at theta.
    rate = [0.0] + [n * mu + (i - 1) * theta for i in range(1, positions + 1)]
    lam_u = max(rate) + theta
    # u[i] = P(served by time s | position i); u[0] = 1. Uniformisation in s.
    steps = lam_u * t
    m_max = int(steps + 10.0 * math.sqrt(steps) + 20)
    u = [1.0] + [0.0] * positions
    result = [0.0] * (positions + 1)
    log_p = -steps  # log Poisson(0; steps)
    for m in range(m_max + 1):
        w = math.exp(log_p)
        for i in range(1, positions + 1):
            result[i] += w * u[i]
        nxt = [1.0] + [0.0] * positions
        for i in range(1, positions + 1):
            stay = 1.0 - (rate[i] + theta) / lam_u
            nxt[i] = stay * u[i] + (rate[i] / lam_u) * u[i - 1]
        u = nxt
        log_p += math.log(steps) - math.log(m + 1) if steps > 0 else -math.inf
    return sum(pi[n + i - 1] * result[i] for i in range(1, positions + 1))


def agents_needed_erlang_a(
    calls: float,
    interval_seconds: float,
    aht_seconds: float,
    patience_seconds: float,
    *,
    target_level: float = 0.8,
    target_seconds: float = 20.0,
    max_agents: int = 10_000,
) -> ErlangA:
    """The fewest agents whose Erlang A service level meets the target."""
    if not 0.0 < target_level < 1.0:
        raise ValueError("target service level must be between 0 and 1 (exclusive)")
    # Agents answer at most n/aht calls a second, so the share answered is at most n / A: start there.
    n = max(1, math.ceil(target_level * traffic(calls, interval_seconds, aht_seconds)))
    while n <= max_agents:
        r = erlang_a(n, calls, interval_seconds, aht_seconds, patience_seconds, target_seconds)
        if r.service_level >= target_level:
            return r
        n += 1
    raise ValueError(f"more than {max_agents} agents would be needed")
