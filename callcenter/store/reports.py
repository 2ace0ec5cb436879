"""Shell: every report query of the call log, in one place (KPI definitions: ``callcenter.reporting.kpi``).

The SQL text is fixed; everything a user gives (dates, queue and agent names, time zone, targets)
travels as bind parameters. Each report runs with the session time zone set to the center's
(``tz``), so days and intervals are local and DST-correct: interval buckets are aligned on local
midnight of the report's start (``date_bin``), days are local days (``date_trunc``).

- ``queue_report``: per interval (15/30/60 minutes or day) and queue, the counts of ``kpi.Counts``
  from ``calls`` (by ``queued_at``), callbacks completed, and the center's occupancy from
  ``center_state_time`` (15-minute slots that triggers on ``agent_states`` keep) plus the states
  still open; rows are ``kpi.derive``'d. First-contact resolution reads ``calls.next_call_at``
  (kept by a trigger), so any ``fcr_days`` costs one comparison per call.
- Queue KPIs count inbound calls only (``direction`` not ``outbound``): a dialer call connected
  through a queue counts for its agent (``agent_report``) and its campaign, not for the queue's
  service level or abandonment.
- ``agent_report``: per interval and agent, from ``calls`` (by ``answered_at``), offers and RONAs
  from ``call_events``, state time from ``agent_states``.
- ``interval_history``: offered calls and AHT per interval of the day, averaged over the same
  weekday of the last N weeks (the input of ``callcenter staffing --from-log``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.reporting.kpi import Counts, KpiSettings, derive
from callcenter.reporting.records import BUSY_STATES, IDLE_STATES

INTERVALS = {"15": 15 * 60, "30": 30 * 60, "60": 60 * 60, "day": 24 * 3600}

# Buckets come from a series joined by equality, so the planner sees a few hundred groups (and
# hashes them in parallel) instead of guessing one group per call.
_SERIES_MINUTES = "generate_series(date_trunc('day', $1::timestamptz), $2::timestamptz, $3::interval)"
_KEY_MINUTES = "date_bin({step}::interval, {col}, date_trunc('day', {start}::timestamptz))"
_SERIES_DAY = _SERIES_MINUTES
_KEY_DAY = "date_trunc('day', {col})"


def _bucket(interval: str, col: str, *, step: str = "$3", start: str = "$1") -> str:
    """The bucket of ``col``; ``step`` and ``start`` name the parameters holding the interval and
    the report's start."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
    return (_KEY_DAY if interval == "day" else _KEY_MINUTES).format(col=col, step=step, start=start)


def _join(interval: str, col: str) -> str:
    """``JOIN <series> b(bucket) ON b.bucket = <bucket of col>``."""
    series = _SERIES_DAY if interval == "day" else _SERIES_MINUTES
    return f"JOIN {series} AS b(bucket) ON b.bucket = {_bucket(interval, col)}"


# Planner settings of a report session: no JIT (it costs more than it saves here), sorts and hashes
# in memory, and hash joins for the bucket join (a merge join would sort every call).
_SESSION = "SET jit = off; SET work_mem = '64MB'; SET enable_mergejoin = off"


@dataclass(frozen=True)
class ReportQuery:
    start: dt.datetime
    end: dt.datetime
    interval: str = "60"
    queues: Sequence[str] | None = None
    agents: Sequence[str] | None = None
    tz: str = "UTC"
    settings: KpiSettings = field(default_factory=KpiSettings)

    @property
    def step(self) -> dt.timedelta:
        return dt.timedelta(seconds=INTERVALS[self.interval])


_QUEUE_SQL = """
WITH c AS (
    SELECT b.bucket,
           c.queue, c.disposition, c.answered_at, c.transfers, c.overflow_queue,
           date_part('epoch', c.answered_at - c.queued_at) AS wait_ans,
           date_part('epoch', coalesce(c.answered_at, c.ended_at) - c.queued_at) AS wait_any,
           coalesce(c.talk_seconds,
                    date_part('epoch', c.ended_at - c.answered_at) - coalesce(c.hold_seconds, 0)) AS talk,
           c.hold_seconds, c.wrapup_seconds,
           coalesce(($5::float8[])[array_position($4::text[], c.queue)], $6) AS target,
           CASE WHEN c.answered_at IS NOT NULL AND c.caller_number IS NOT NULL THEN
               c.next_call_at IS NULL OR c.next_call_at > c.started_at + $10 * interval '1 day'
           END AS resolved
    FROM calls c
    {join}
    WHERE c.queued_at >= $1 AND c.queued_at < $2 AND c.queue IS NOT NULL AND c.callback_of IS NULL
      AND c.direction IS DISTINCT FROM 'outbound'  -- queue KPIs are inbound: the dialer's are its own
      AND ($7::text[] IS NULL OR c.queue = ANY($7::text[]))
      AND ($8::text[] IS NULL OR c.agent_id = ANY($8::text[]))
)
SELECT bucket, queue,
       count(*) AS offered,
       count(answered_at) AS answered,
       count(*) FILTER (WHERE wait_ans <= target) AS answered_within,
       count(*) FILTER (WHERE disposition = 'abandoned_queue') AS abandoned_all,
       count(*) FILTER (WHERE disposition = 'abandoned_queue' AND wait_any < $9) AS short_abandoned,
       count(*) FILTER (WHERE disposition = 'abandoned_queue' AND wait_any <= target) AS abandoned_within,
       coalesce(sum(wait_ans), 0) AS wait_answered_sum,
       max(wait_any) AS longest_wait,
       coalesce(sum(talk) FILTER (WHERE answered_at IS NOT NULL), 0) AS talk_sum,
       coalesce(sum(hold_seconds) FILTER (WHERE answered_at IS NOT NULL), 0) AS hold_sum,
       coalesce(sum(wrapup_seconds) FILTER (WHERE answered_at IS NOT NULL), 0) AS wrapup_sum,
       coalesce(sum(transfers), 0) AS transfers,
       count(*) FILTER (WHERE disposition = 'callback_requested') AS callbacks_requested,
       count(*) FILTER (WHERE overflow_queue IS NOT NULL OR disposition = 'overflowed') AS overflowed,
       count(resolved) AS fcr_eligible,
       count(*) FILTER (WHERE resolved) AS fcr_resolved
FROM c
GROUP BY bucket, queue
"""

_CALLBACKS_SQL = """
SELECT {bucket} AS bucket, c.queue, count(*) AS n
FROM calls c
WHERE c.callback_of IS NOT NULL AND c.disposition = 'callback_completed'
  AND c.started_at >= $1 AND c.started_at < $2
  AND ($4::text[] IS NULL OR c.queue = ANY($4::text[]))
  AND ($5::text[] IS NULL OR c.agent_id = ANY($5::text[]))
  AND $3::interval IS NOT NULL
GROUP BY 1, 2
"""

# Agent state time per bucket, clipped to the window: finished states from the 15-minute slots of
# ``agent_state_time`` (kept by triggers as states end) for the slots wholly inside the window
# ($9 .. $10), plus the states still open (``ended_at`` NULL), which last until ``$6`` (now) and are
# split here. The window's partial slots at either edge come from ``_EDGE_SQL``.
_STATE_SQL = """
WITH closed AS (
    SELECT {bucket_slot} AS bucket, t.agent_id, t.state, t.seconds AS secs
    FROM agent_state_time t
    WHERE t.bucket >= $9::timestamptz AND t.bucket < $10::timestamptz
      AND (t.state = ANY($7::text[]) OR t.state = ANY($8::text[]))
      AND ($4::text[] IS NULL OR t.agent_id = ANY($4::text[]))
), open AS (
    SELECT agent_id, state, greatest(at, $1::timestamptz) AS t0, least($2::timestamptz, $6::timestamptz) AS t1
    FROM agent_states
    WHERE ended_at IS NULL AND at < $2::timestamptz AND $5::interval IS NOT NULL
      AND (state = ANY($7::text[]) OR state = ANY($8::text[]))
      AND ($4::text[] IS NULL OR agent_id = ANY($4::text[]))
), parts AS (
    SELECT bucket, agent_id, state, secs FROM closed
    UNION ALL
    SELECT b.bucket, k.agent_id, k.state,
           date_part('epoch', least(k.t1, b.bucket + $3::interval) - greatest(k.t0, b.bucket))
    FROM open k
    CROSS JOIN LATERAL generate_series({bucket_t0}, k.t1, $3::interval) AS b(bucket)
    WHERE k.t1 > k.t0
)
SELECT bucket, agent_id,
       coalesce(sum(secs) FILTER (WHERE state = ANY($7::text[])), 0) AS busy,
       coalesce(sum(secs) FILTER (WHERE state = ANY($8::text[])), 0) AS idle
FROM parts
GROUP BY bucket, agent_id
"""

# The same, for all agents together (the queue report without an agent filter).
_CENTER_STATE_SQL = """
WITH closed AS (
    SELECT {bucket_slot} AS bucket, t.state, t.seconds AS secs
    FROM center_state_time t
    WHERE t.bucket >= $8::timestamptz AND t.bucket < $9::timestamptz
      AND (t.state = ANY($6::text[]) OR t.state = ANY($7::text[]))
), open AS (
    SELECT state, greatest(at, $1::timestamptz) AS t0, least($2::timestamptz, $5::timestamptz) AS t1
    FROM agent_states
    WHERE ended_at IS NULL AND at < $2::timestamptz AND $4::interval IS NOT NULL
      AND (state = ANY($6::text[]) OR state = ANY($7::text[]))
), parts AS (
    SELECT bucket, state, secs FROM closed
    UNION ALL
    SELECT b.bucket, k.state,
           date_part('epoch', least(k.t1, b.bucket + $3::interval) - greatest(k.t0, b.bucket))
    FROM open k
    CROSS JOIN LATERAL generate_series({bucket_t0}, k.t1, $3::interval) AS b(bucket)
    WHERE k.t1 > k.t0
)
SELECT bucket,
       coalesce(sum(secs) FILTER (WHERE state = ANY($6::text[])), 0) AS busy,
       coalesce(sum(secs) FILTER (WHERE state = ANY($7::text[])), 0) AS idle
FROM parts
GROUP BY bucket
"""

# The finished states' time inside the window's partial 15-minute slots (``$1``/``$2``: the ranges'
# starts and ends, ``$3``: the slot holding each). The agents come from the slot's row of
# ``agent_state_time``; for each, the state it was in at the range's start and those begun inside.
_EDGE_SQL = """
WITH e(e0, e1, slot) AS (
    SELECT * FROM unnest($1::timestamptz[], $2::timestamptz[], $3::timestamptz[])
), who AS (
    SELECT DISTINCT e.e0, e.e1, t.agent_id
    FROM e JOIN agent_state_time t ON t.bucket = e.slot
    WHERE ($4::text[] IS NULL OR t.agent_id = ANY($4::text[]))
      AND (t.state = ANY($5::text[]) OR t.state = ANY($6::text[]))
), cand AS (
    SELECT w.e0, w.e1, s.*
    FROM who w CROSS JOIN LATERAL (
        (SELECT a.agent_id, a.state, a.at, a.ended_at FROM agent_states a
         WHERE a.agent_id = w.agent_id AND a.at <= w.e0 ORDER BY a.at DESC, a.seq DESC LIMIT 1)
        UNION ALL
        SELECT a.agent_id, a.state, a.at, a.ended_at FROM agent_states a
        WHERE a.agent_id = w.agent_id AND a.at > w.e0 AND a.at < w.e1
    ) s
)
SELECT {bucket} AS bucket, agent_id,
       coalesce(sum(date_part('epoch', least(ended_at, e1) - greatest(at, e0)))
                FILTER (WHERE state = ANY($5::text[])), 0) AS busy,
       coalesce(sum(date_part('epoch', least(ended_at, e1) - greatest(at, e0)))
                FILTER (WHERE state = ANY($6::text[])), 0) AS idle
FROM cand
WHERE ended_at IS NOT NULL AND least(ended_at, e1) > greatest(at, e0)
  AND $7::interval IS NOT NULL AND $8::timestamptz IS NOT NULL
GROUP BY 1, 2
"""

_SLOT = 900.0  # seconds in a slot of agent_state_time / center_state_time (UTC-aligned)


def _slot_floor(t: dt.datetime) -> dt.datetime:
    ts = t.timestamp()
    return dt.datetime.fromtimestamp(ts - ts % _SLOT, dt.UTC)


def window_slots(
    start: dt.datetime, end: dt.datetime
) -> tuple[dt.datetime, dt.datetime, list[tuple[dt.datetime, dt.datetime, dt.datetime]]]:
    """The whole slots of the window (``[first, last)``, possibly empty) and the partial ranges at
    its edges, each as (start, end, slot it lies in)."""
    first = _slot_floor(start)
    if first < start:
        first += dt.timedelta(seconds=_SLOT)
    last = _slot_floor(end)
    if first >= last:  # no whole slot: the window lies within one slot or two
        edges = []
        t = start
        while t < end:
            slot = _slot_floor(t)
            t1 = min(end, slot + dt.timedelta(seconds=_SLOT))
            edges.append((t, t1, slot))
            t = t1
        return first, first, edges
    edges = []
    if start < first:
        edges.append((start, first, _slot_floor(start)))
    if last < end:
        edges.append((last, end, last))
    return first, last, edges


async def _edge_time(
    conn: Any, q: ReportQuery, edges: list[tuple[dt.datetime, dt.datetime, dt.datetime]]
) -> list[Any]:
    if not edges:
        return []
    rows: list[Any] = await conn.fetch(
        _EDGE_SQL.format(bucket=_bucket(q.interval, "e0", step="$7", start="$8")),
        [e[0] for e in edges],
        [e[1] for e in edges],
        [e[2] for e in edges],
        _arr(q.agents),
        list(BUSY_STATES),
        list(IDLE_STATES),
        q.step,
        q.start,
    )
    return rows


_AGENT_SQL = """
SELECT {bucket} AS bucket, c.agent_id,
       count(*) AS answered,
       count(*) FILTER (WHERE date_part('epoch', c.answered_at - c.queued_at)
                              <= coalesce(($5::float8[])[array_position($4::text[], c.queue)], $6))
           AS answered_within,
       coalesce(sum(date_part('epoch', c.answered_at - c.queued_at)), 0) AS wait_answered_sum,
       coalesce(sum(coalesce(c.talk_seconds,
                date_part('epoch', c.ended_at - c.answered_at) - coalesce(c.hold_seconds, 0))), 0)
           AS talk_sum,
       coalesce(sum(c.hold_seconds), 0) AS hold_sum,
       coalesce(sum(c.wrapup_seconds), 0) AS wrapup_sum,
       coalesce(sum(c.transfers), 0) AS transfers
FROM calls c
WHERE c.answered_at >= $1 AND c.answered_at < $2 AND c.agent_id IS NOT NULL AND $3::interval IS NOT NULL
  AND ($7::text[] IS NULL OR c.queue = ANY($7::text[]))
  AND ($8::text[] IS NULL OR c.agent_id = ANY($8::text[]))
GROUP BY 1, 2
"""

_OFFERS_SQL = """
SELECT {bucket} AS bucket, e.agent_id,
       count(*) FILTER (WHERE e.kind = 'offer') AS offers,
       count(*) FILTER (WHERE e.kind = 'rona') AS ronas
FROM call_events e
WHERE e.at >= $1 AND e.at < $2 AND e.kind IN ('offer', 'rona') AND e.agent_id IS NOT NULL
  AND $3::interval IS NOT NULL
  AND ($4::text[] IS NULL OR e.queue = ANY($4::text[]))
  AND ($5::text[] IS NULL OR e.agent_id = ANY($5::text[]))
GROUP BY 1, 2
"""

_HISTORY_SQL = """
SELECT floor(date_part('epoch', c.queued_at - date_trunc('day', c.queued_at)) / $3)::int AS slot,
       count(*) AS offered,
       count(c.answered_at) AS answered,
       coalesce(sum(coalesce(c.talk_seconds,
                date_part('epoch', c.ended_at - c.answered_at) - coalesce(c.hold_seconds, 0))
                + coalesce(c.hold_seconds, 0) + coalesce(c.wrapup_seconds, 0))
                FILTER (WHERE c.answered_at IS NOT NULL), 0) AS handle_sum
FROM calls c
WHERE c.queued_at >= $1 AND c.queued_at < $2 AND c.queue IS NOT NULL AND c.callback_of IS NULL
  AND c.direction IS DISTINCT FROM 'outbound'
  AND extract(isodow FROM c.queued_at) = $4
  AND ($5::text[] IS NULL OR c.queue = ANY($5::text[]))
GROUP BY 1
ORDER BY 1
"""


async def _set_tz(conn: Any, tz: str) -> None:
    await conn.execute(_SESSION)
    await conn.execute("SELECT set_config('TimeZone', $1, false)", tz)


def _arr(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)


def _targets(settings: KpiSettings) -> tuple[list[str], list[float]]:
    names = sorted(settings.queue_targets)
    return names, [float(settings.queue_targets[n]) for n in names]


def _counts(record: Any, **extra: Any) -> Counts:
    keys = set(record.keys())
    values: dict[str, Any] = {}
    for f in fields(Counts):
        if f.name in extra:
            values[f.name] = extra[f.name]
        elif f.name in keys:
            v = record[f.name]
            is_float = isinstance(f.default, float) or f.default is None
            values[f.name] = None if v is None else (float(v) if is_float else int(v))
    return Counts(**values)


def _iso(bucket: dt.datetime, tz: str) -> str:
    """The bucket's start in the report's time zone (the center's local time)."""
    return bucket.astimezone(ZoneInfo(tz)).isoformat()


async def state_time(
    conn: Any, q: ReportQuery, *, now: dt.datetime
) -> dict[tuple[dt.datetime, str], tuple[float, float]]:
    """(bucket, agent) -> (busy seconds, idle seconds) inside the window. Expects the session
    time zone set."""
    first, last, edges = window_slots(q.start, q.end)
    rows = await conn.fetch(
        _STATE_SQL.format(bucket_t0=_bucket(q.interval, "k.t0"), bucket_slot=_bucket(q.interval, "t.bucket")),
        q.start,
        q.end,
        q.step,
        _arr(q.agents),
        dt.timedelta(hours=24),
        now,
        list(BUSY_STATES),
        list(IDLE_STATES),
        first,
        last,
    )
    out: dict[tuple[dt.datetime, str], tuple[float, float]] = {}
    for r in [*rows, *await _edge_time(conn, q, edges)]:
        key = (r["bucket"], r["agent_id"])
        busy, idle = out.get(key, (0.0, 0.0))
        out[key] = (busy + float(r["busy"]), idle + float(r["idle"]))
    return {k: v for k, v in out.items() if v[0] + v[1] > 0.0005}


async def queue_report(conn: Any, q: ReportQuery, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Per interval and queue: every KPI of ``callcenter.reporting.kpi`` (rows ordered by interval, queue)."""
    s = q.settings
    await _set_tz(conn, q.tz)
    names, targets = _targets(s)
    rows = await conn.fetch(
        _QUEUE_SQL.format(join=_join(q.interval, "c.queued_at")),
        q.start,
        q.end,
        q.step,
        names,
        targets,
        float(s.sl_target_seconds),
        _arr(q.queues),
        _arr(q.agents),
        float(s.short_abandon_seconds),
        float(s.fcr_days),
    )
    callbacks = {
        (r["bucket"], r["queue"]): int(r["n"])
        for r in await conn.fetch(
            _CALLBACKS_SQL.format(bucket=_bucket(q.interval, "c.started_at")),
            q.start,
            q.end,
            q.step,
            _arr(q.queues),
            _arr(q.agents),
        )
    }
    occupancy: dict[dt.datetime, tuple[float, float]] = {}
    if q.agents is None:
        first, last, edges = window_slots(q.start, q.end)
        center = await conn.fetch(
            _CENTER_STATE_SQL.format(
                bucket_t0=_bucket(q.interval, "k.t0"), bucket_slot=_bucket(q.interval, "t.bucket")
            ),
            q.start,
            q.end,
            q.step,
            dt.timedelta(hours=24),
            now,
            list(BUSY_STATES),
            list(IDLE_STATES),
            first,
            last,
        )
        for r in [*center, *await _edge_time(conn, q, edges)]:
            b, i = occupancy.get(r["bucket"], (0.0, 0.0))
            occupancy[r["bucket"]] = (b + float(r["busy"]), i + float(r["idle"]))
    else:
        for (bucket, _agent), (busy, idle) in (await state_time(conn, q, now=now)).items():
            b, i = occupancy.get(bucket, (0.0, 0.0))
            occupancy[bucket] = (b + busy, i + idle)
    out: list[dict[str, Any]] = []
    seen: set[tuple[dt.datetime, str]] = set()
    for r in rows:
        key = (r["bucket"], r["queue"])
        seen.add(key)
        busy, idle = occupancy.get(r["bucket"], (0.0, 0.0))
        counts = _counts(r, callbacks_completed=callbacks.get(key, 0), busy_seconds=busy, idle_seconds=idle)
        out.append({"interval": _iso(r["bucket"], q.tz), "queue": r["queue"], **derive(counts, s)})
    for (bucket, queue), n in callbacks.items():
        if (bucket, queue) not in seen and queue is not None:
            busy, idle = occupancy.get(bucket, (0.0, 0.0))
            counts = Counts(callbacks_completed=n, busy_seconds=busy, idle_seconds=idle)
            out.append({"interval": _iso(bucket, q.tz), "queue": queue, **derive(counts, s)})
    out.sort(key=lambda d: (d["interval"], d["queue"]))
    return out


async def agent_report(conn: Any, q: ReportQuery, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Per interval and agent: answered, offers, RONAs, handle times, transfers, occupancy."""
    s = q.settings
    await _set_tz(conn, q.tz)
    names, targets = _targets(s)
    calls = {
        (r["bucket"], r["agent_id"]): r
        for r in await conn.fetch(
            _AGENT_SQL.format(bucket=_bucket(q.interval, "c.answered_at")),
            q.start,
            q.end,
            q.step,
            names,
            targets,
            float(s.sl_target_seconds),
            _arr(q.queues),
            _arr(q.agents),
        )
    }
    offers = {
        (r["bucket"], r["agent_id"]): (int(r["offers"]), int(r["ronas"]))
        for r in await conn.fetch(
            _OFFERS_SQL.format(bucket=_bucket(q.interval, "e.at")),
            q.start,
            q.end,
            q.step,
            _arr(q.queues),
            _arr(q.agents),
        )
    }
    states = await state_time(conn, q, now=now)
    keys = set(calls) | set(offers) | set(states)
    out: list[dict[str, Any]] = []
    for key in sorted(keys):
        r = calls.get(key)
        busy, idle = states.get(key, (0.0, 0.0))
        n_offers, ronas = offers.get(key, (0, 0))
        counts = (
            _counts(r, busy_seconds=busy, idle_seconds=idle)
            if r is not None
            else Counts(busy_seconds=busy, idle_seconds=idle)
        )
        d = derive(counts, s)
        out.append(
            {
                "interval": _iso(key[0], q.tz),
                "agent": key[1],
                "offers": n_offers,
                "ronas": ronas,
                "answered": d["answered"],
                "asa_seconds": d["asa_seconds"],
                "aht_seconds": d["aht_seconds"],
                "avg_talk_seconds": d["avg_talk_seconds"],
                "avg_hold_seconds": d["avg_hold_seconds"],
                "avg_wrapup_seconds": d["avg_wrapup_seconds"],
                "transfers": d["transfers"],
                "busy_seconds": busy,
                "idle_seconds": idle,
                "occupancy": d["occupancy"],
            }
        )
    return out


@dataclass(frozen=True)
class HistorySlot:
    start: dt.time  # local time of day the interval starts
    calls: float  # offered calls, averaged over the weeks
    aht_seconds: float | None  # handle time of the answered calls of those weeks


async def interval_history(
    conn: Any,
    *,
    day: dt.date,
    weeks: int,
    interval_seconds: int,
    queues: Sequence[str] | None = None,
    tz: str = "UTC",
) -> list[HistorySlot]:
    """Per interval of the day: the same weekday as ``day`` over the ``weeks`` weeks before it."""
    if weeks < 1:
        raise ValueError("weeks must be >= 1")
    if interval_seconds <= 0 or 86400 % interval_seconds:
        raise ValueError("the interval must divide the day")
    await _set_tz(conn, tz)
    first = day - dt.timedelta(weeks=weeks)
    # Local midnights of the first day and of ``day`` (the server does the time-zone arithmetic).
    start, end = await conn.fetchrow(
        "SELECT $1::date::timestamp::timestamptz AS a, $2::date::timestamp::timestamptz AS b", first, day
    )
    rows = await conn.fetch(_HISTORY_SQL, start, end, float(interval_seconds), day.isoweekday(), _arr(queues))
    out = []
    for r in rows:
        secs = int(r["slot"]) * interval_seconds
        answered = int(r["answered"])
        out.append(
            HistorySlot(
                start=dt.time(secs // 3600, (secs % 3600) // 60),
                calls=int(r["offered"]) / weeks,
                aht_seconds=(float(r["handle_sum"]) / answered) if answered else None,
            )
        )
    return out


_DAYS_SQL = """
SELECT date_trunc('day', queued_at)::date AS day, count(*) AS calls
FROM calls
WHERE queue IS NOT NULL AND callback_of IS NULL AND direction IS DISTINCT FROM 'outbound'
GROUP BY 1
ORDER BY 1 DESC
LIMIT $1
"""


async def days_with_calls(conn: Any, *, tz: str, limit: int = 7) -> list[tuple[dt.date, int]]:
    """The latest local days (in ``tz``) with queue calls, newest first, with their counts."""
    await _set_tz(conn, tz)
    return [(r["day"], int(r["calls"])) for r in await conn.fetch(_DAYS_SQL, limit)]


async def logged_queues(conn: Any) -> set[str]:
    """Every queue name the call log knows."""
    return {r["queue"] for r in await conn.fetch("SELECT DISTINCT queue FROM calls WHERE queue IS NOT NULL")}


_LIVE_SQL = """
SELECT queue,
       count(*) AS offered,
       count(answered_at) AS answered,
       count(*) FILTER (WHERE disposition = 'abandoned_queue') AS abandoned,
       count(*) FILTER (WHERE answered_at IS NOT NULL AND
                        date_part('epoch', answered_at - queued_at) <=
                        coalesce(($3::float8[])[array_position($2::text[], queue)], 20)) AS in_target,
       coalesce(sum(date_part('epoch', answered_at - queued_at))
                FILTER (WHERE answered_at IS NOT NULL), 0) AS answer_wait,
       count(*) FILTER (WHERE talk_seconds IS NOT NULL) AS handled,
       coalesce(sum(coalesce(talk_seconds, 0) + coalesce(hold_seconds, 0) + coalesce(wrapup_seconds, 0))
                FILTER (WHERE talk_seconds IS NOT NULL), 0) AS handle_time
FROM calls
WHERE queued_at >= $1 AND queued_at < $4 AND queue IS NOT NULL AND direction IS DISTINCT FROM 'outbound'
GROUP BY queue
"""

_LIVE_AGENTS_SQL = """
SELECT agent_id,
       count(*) AS handled,
       coalesce(sum(coalesce(talk_seconds, 0) + coalesce(hold_seconds, 0) + coalesce(wrapup_seconds, 0)),
                0) AS handle_time
FROM calls
WHERE answered_at >= $1 AND answered_at < $2 AND agent_id IS NOT NULL AND talk_seconds IS NOT NULL
GROUP BY agent_id
"""


async def live_queue_counts(
    conn: Any, *, since: dt.datetime, until: dt.datetime | None = None, targets: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Per queue of the inbound calls queued in [``since``, ``until``) (the wallboard's "today"):
    offered, answered, abandoned, answered within the queue's service-level target (``targets``:
    queue -> seconds), the total wait of the answered calls (``answer_wait``, seconds), the calls
    whose talk is over (``handled``) and their total handle time (talk + hold + wrap-up)."""
    names_ = list(targets)
    end = until if until is not None else dt.datetime.max.replace(tzinfo=dt.UTC)
    rows = await conn.fetch(_LIVE_SQL, since, names_, [float(targets[n]) for n in names_], end)
    return {
        r["queue"]: {
            "offered": int(r["offered"]),
            "answered": int(r["answered"]),
            "abandoned": int(r["abandoned"]),
            "answered_in_target": int(r["in_target"]),
            "answer_wait": float(r["answer_wait"]),
            "handled": int(r["handled"]),
            "handle_time": float(r["handle_time"]),
        }
        for r in rows
    }


async def live_agent_counts(
    conn: Any, *, since: dt.datetime, until: dt.datetime
) -> dict[str, tuple[int, float]]:
    """Per agent, the calls it answered in [``since``, ``until``) whose talk is over, and their
    total handle time (talk + hold + wrap-up, seconds)."""
    rows = await conn.fetch(_LIVE_AGENTS_SQL, since, until)
    return {r["agent_id"]: (int(r["handled"]), float(r["handle_time"])) for r in rows}
