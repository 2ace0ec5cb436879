"""Agent time in ``callcenter report --by agent`` is clipped to the report's window and to the
agent's login periods: a property test against a hand-built agent-state log, whose expected
busy and idle seconds per interval are worked out here state by state."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.reporting.records import BUSY_STATES, IDLE_STATES
from callcenter.store.reports import INTERVALS, ReportQuery, agent_report

UTC = dt.UTC
BASE = dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STATES = ("logged_out", "available", "ringing", "on_call", "wrap_up", "paused", "not_ready")

# One agent's log: (seconds since the previous change, state), the first change from BASE.
_log = st.lists(
    st.tuples(st.integers(min_value=1, max_value=3 * 3600), st.sampled_from(STATES)), min_size=1, max_size=12
)


def _expected(
    logs: dict[str, list[tuple[int, str]]],
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    step: int,
) -> dict[tuple[dt.datetime, str], tuple[float, float]]:
    """(bucket, agent) -> (busy, idle): each state from its start to the next change (the last,
    still open, until now), cut to the window and split at the buckets (UTC midnight-aligned)."""
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[tuple[dt.datetime, str], list[float]] = {}
    for agent, log in logs.items():
        t = BASE
        changes = []
        for gap, state in log:
            t += dt.timedelta(seconds=gap)
            changes.append((t, state))
        for i, (t0, state) in enumerate(changes):
            t1 = changes[i + 1][0] if i + 1 < len(changes) else now
            kind = 0 if state in BUSY_STATES else 1 if state in IDLE_STATES else None
            if kind is None:
                continue  # logged out, paused, not ready: no occupancy time
            a, b = max(t0, start), min(t1, end)
            while a < b:
                k = int((a - midnight).total_seconds() // step)
                bucket = midnight + dt.timedelta(seconds=k * step)
                cut = min(b, bucket + dt.timedelta(seconds=step))
                out.setdefault((bucket, agent), [0.0, 0.0])[kind] += (cut - a).total_seconds()
                a = cut
    return {k: (v[0], v[1]) for k, v in out.items() if v[0] + v[1] > 0.0005}


async def _load(dsn: str, logs: dict[str, list[tuple[int, str]]]) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute("TRUNCATE agent_states, agent_state_time, center_state_time")
        ids, seqs, ats, states = [], [], [], []
        for agent, log in logs.items():
            t = BASE
            for seq, (gap, state) in enumerate(log):
                t += dt.timedelta(seconds=gap)
                ids.append(agent)
                seqs.append(seq)
                ats.append(t)
                states.append(state)
        await conn.execute(
            "INSERT INTO agent_states (agent_id, seq, at, state) "
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[])",
            ids,
            seqs,
            ats,
            states,
        )
    finally:
        await conn.close()


async def _report(dsn: str, q: ReportQuery, now: dt.datetime) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await agent_report(conn, q, now=now)
    finally:
        await conn.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    logs=st.dictionaries(st.sampled_from(("1001", "1002", "1003")), _log, min_size=1, max_size=3),
    start_s=st.integers(min_value=0, max_value=20 * 3600),
    length_s=st.integers(min_value=1, max_value=20 * 3600),
    now_s=st.integers(min_value=0, max_value=40 * 3600),
    interval=st.sampled_from(("15", "30", "60", "day")),
)
def test_agent_time_is_clipped_to_the_window_and_to_login_periods(
    db_dsn: str,
    logs: dict[str, list[tuple[int, str]]],
    start_s: int,
    length_s: int,
    now_s: int,
    interval: str,
) -> None:
    start = BASE + dt.timedelta(seconds=start_s)
    end = start + dt.timedelta(seconds=length_s)
    now = BASE + dt.timedelta(seconds=now_s)
    asyncio.run(_load(db_dsn, logs))
    rows = asyncio.run(_report(db_dsn, ReportQuery(start=start, end=end, interval=interval), now))
    got = {
        (dt.datetime.fromisoformat(r["interval"]), r["agent"]): (r["busy_seconds"], r["idle_seconds"])
        for r in rows
    }
    want = _expected(logs, start, end, now, INTERVALS[interval])
    assert set(got) == set(want)
    for key, (busy, idle) in want.items():
        assert got[key] == (pytest.approx(busy, abs=1e-3), pytest.approx(idle, abs=1e-3)), key
    # Never more than the window (and never more than the time logged in, which _expected counts).
    for busy, idle in got.values():
        assert busy + idle <= length_s + 1e-3
