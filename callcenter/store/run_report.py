"""Shell: the call-log queries of a run's report (``callcenter demo``): when the log was last
written, the row checks (one row per call, every call with a disposition), the waits and agent
state changes the HTML report plots, and campaign attempts by outcome.

Each takes an open asyncpg connection and a ``timeout`` (seconds) bounding the query; times are
timezone-aware datetimes, as in :mod:`callcenter.store.reports`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StateChange:
    """One row of ``agent_states``: ``agent_id`` entered ``state`` at ``at``."""

    agent_id: str
    state: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class AttemptCount:
    """How many of a campaign's attempts ended with ``outcome`` (``in_flight``: not ended yet)."""

    campaign_id: str
    outcome: str
    count: int


async def latest_activity(conn: Any, *, timeout: float = 30.0) -> float | None:
    """The newest start or end of any call in the log (Unix seconds), ``None`` for an empty log."""
    value = await conn.fetchval(
        "SELECT date_part('epoch', max(greatest(started_at, ended_at))) FROM calls", timeout=timeout
    )
    return float(value) if value is not None else None


async def inbound_calls(conn: Any, start: dt.datetime, end: dt.datetime, *, timeout: float = 30.0) -> int:
    """Calls started in ``[start, end]`` that are not outbound (what the simulated callers placed)."""
    value = await conn.fetchval(
        "SELECT count(*) FROM calls WHERE started_at >= $1 AND started_at <= $2 "
        "AND direction IS DISTINCT FROM 'outbound'",
        start,
        end,
        timeout=timeout,
    )
    return int(value)


async def duplicate_calls(conn: Any, *, timeout: float = 30.0) -> int:
    """Call ids with more than one row in ``calls`` (the durable writer must make this 0)."""
    value = await conn.fetchval(
        "SELECT count(*) FROM (SELECT call_id FROM calls GROUP BY call_id HAVING count(*) > 1) d",
        timeout=timeout,
    )
    return int(value)


async def calls_without_disposition(conn: Any, since: dt.datetime, *, timeout: float = 30.0) -> int:
    """Calls started at or after ``since`` that have no disposition."""
    value = await conn.fetchval(
        "SELECT count(*) FROM calls WHERE started_at >= $1 AND disposition IS NULL", since, timeout=timeout
    )
    return int(value)


async def queue_waits(
    conn: Any, start: dt.datetime, end: dt.datetime, *, timeout: float = 30.0
) -> list[float]:
    """Seconds each inbound call queued in ``[start, end]`` waited, until answered or gone (the
    dialer's calls, connected to an agent as they answer, never wait in a queue)."""
    rows = await conn.fetch(
        "SELECT date_part('epoch', coalesce(answered_at, ended_at) - queued_at) AS w FROM calls "
        "WHERE queued_at >= $1 AND queued_at <= $2 AND coalesce(answered_at, ended_at) IS NOT NULL "
        "AND queue IS NOT NULL AND direction IS DISTINCT FROM 'outbound'",
        start,
        end,
        timeout=timeout,
    )
    return [float(r["w"]) for r in rows]


async def state_changes(
    conn: Any, start: dt.datetime, end: dt.datetime, *, timeout: float = 30.0
) -> list[StateChange]:
    """Every agent state change in ``[start, end]``, oldest first."""
    rows = await conn.fetch(
        "SELECT agent_id, state, at FROM agent_states WHERE at >= $1 AND at <= $2 ORDER BY at",
        start,
        end,
        timeout=timeout,
    )
    return [StateChange(r["agent_id"], r["state"], r["at"]) for r in rows]


async def attempts_by_outcome(conn: Any, since: dt.datetime, *, timeout: float = 30.0) -> list[AttemptCount]:
    """Campaign attempts started at or after ``since``, counted per campaign and outcome (sorted)."""
    rows = await conn.fetch(
        "SELECT campaign_id, coalesce(outcome, 'in_flight') AS outcome, count(*) AS n "
        "FROM campaign_attempts WHERE started_at >= $1 GROUP BY 1, 2 ORDER BY 1, 2",
        since,
        timeout=timeout,
    )
    return [AttemptCount(r["campaign_id"], r["outcome"], int(r["n"])) for r in rows]


@dataclass(frozen=True, slots=True)
class QueueTimes:
    """A queue's answered calls since a moment: how long callers waited (ASA) and how long the
    calls took, talk, hold and wrap-up (AHT), in seconds; None before the first."""

    asa_seconds: float | None
    aht_seconds: float | None


_QUEUE_TIMES_SQL = """
SELECT queue,
       avg(date_part('epoch', answered_at - queued_at)) AS asa,
       avg(coalesce(talk_seconds, date_part('epoch', ended_at - answered_at) - coalesce(hold_seconds, 0))
           + coalesce(hold_seconds, 0) + coalesce(wrapup_seconds, 0))
           FILTER (WHERE ended_at IS NOT NULL) AS aht
FROM calls
WHERE queued_at >= $1 AND queue IS NOT NULL AND answered_at IS NOT NULL
  AND direction IS DISTINCT FROM 'outbound'
GROUP BY queue
"""


async def queue_times(conn: Any, since: dt.datetime, *, timeout: float = 30.0) -> dict[str, QueueTimes]:
    """Per queue, ASA and AHT of the inbound calls queued since ``since`` (the live view's "so
    far"); AHT counts the calls that have ended."""
    rows = await conn.fetch(_QUEUE_TIMES_SQL, since, timeout=timeout)
    return {
        r["queue"]: QueueTimes(
            None if r["asa"] is None else float(r["asa"]), None if r["aht"] is None else float(r["aht"])
        )
        for r in rows
    }
