"""The report SQL on a hand-made call log with answers worked out by hand (see the comments)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.clock import RealClock
from callcenter.reporting.kpi import KpiSettings, SLVariant
from callcenter.reporting.records import AgentStateChange, CallEvent, CallRecord, Disposition, EventKind
from callcenter.store.reports import ReportQuery, agent_report, interval_history, queue_report
from callcenter.store.writer import CallLogWriter

UTC = dt.UTC
DAY0 = dt.datetime(2023, 11, 14, 9, 0, tzinfo=UTC)  # a Tuesday
T = DAY0.timestamp()
NOW = dt.datetime(2030, 1, 1, tzinfo=UTC)
D = Disposition


def call(cid: str, queued: float, **kw: Any) -> CallRecord:
    kw.setdefault("started_at", queued - 30)
    kw.setdefault("direction", "inbound")
    return CallRecord(cid, at=queued + 10_000, queued_at=queued, **kw)


HAND_MADE: list[Any] = [
    # sales, 09:00-10:00
    call(
        "s1",
        T + 0,
        queue="sales",
        caller_number="+1A",
        agent_id="1001",
        answered_at=T + 10,
        ended_at=T + 110,
        talk_seconds=90.0,
        hold_seconds=10.0,
        wrapup_seconds=20.0,
        transfers=1,
        disposition=D.ANSWERED,
    ),
    call(
        "s2",
        T + 60,
        queue="sales",
        caller_number="+1B",
        agent_id="1002",
        answered_at=T + 85,
        ended_at=T + 285,
        wrapup_seconds=40.0,
        disposition=D.ANSWERED,
    ),  # talk derived: 200 s
    call("s3", T + 100, queue="sales", caller_number="+1C", ended_at=T + 103, disposition=D.ABANDONED_QUEUE),
    call("s4", T + 200, queue="sales", caller_number="+1D", ended_at=T + 215, disposition=D.ABANDONED_QUEUE),
    call(
        "s5", T + 300, queue="sales", caller_number="+1E", ended_at=T + 400, disposition=D.CALLBACK_REQUESTED
    ),
    call(
        "s6",
        T + 500,
        queue="sales",
        overflow_queue="support",
        caller_number="+1F",
        agent_id="1003",
        answered_at=T + 560,
        ended_at=T + 660,
        talk_seconds=100.0,
        hold_seconds=0.0,
        wrapup_seconds=0.0,
        disposition=D.ANSWERED,
    ),
    # caller A calls again three days later (outside the window): s1 is not first-contact resolved
    call(
        "a2",
        T + 3 * 86400,
        queue="sales",
        caller_number="+1A",
        disposition=D.ANSWERED,
        answered_at=T + 3 * 86400 + 1,
        ended_at=T + 3 * 86400 + 50,
    ),
    # sales, 10:00-11:00
    call(
        "s7",
        T + 3610,
        queue="sales",
        caller_number="+1G",
        agent_id="1001",
        answered_at=T + 3615,
        ended_at=T + 3700,
        talk_seconds=80.0,
        wrapup_seconds=10.0,
        disposition=D.ANSWERED,
    ),
    call(
        "cb1",
        T + 3700,
        queue="sales",
        direction="outbound",
        callback_of="s5",
        caller_number="+1E",
        disposition=D.CALLBACK_COMPLETED,
    ),
    # support, 09:00-10:00
    call(
        "p1",
        T + 30,
        queue="support",
        caller_number="+1H",
        agent_id="1003",
        answered_at=T + 35,
        ended_at=T + 335,
        hold_seconds=50.0,
        wrapup_seconds=30.0,
        disposition=D.ANSWERED,
    ),
    # a call that never reached a queue does not count in queue reports
    CallRecord("ivr1", T + 40, started_at=T, disposition=D.ABANDONED_IVR),
    # agent 1001: available since 08:30, ringing, on call, wrap-up, available, paused at 09:30,
    # available at 10:00, logged out at 10:30
    AgentStateChange("1001", T - 1800, "available"),
    AgentStateChange("1001", T + 5, "ringing"),
    AgentStateChange("1001", T + 10, "on_call"),
    AgentStateChange("1001", T + 110, "wrap_up"),
    AgentStateChange("1001", T + 130, "available"),
    AgentStateChange("1001", T + 1800, "paused", reason="lunch"),
    AgentStateChange("1001", T + 3600, "available"),
    AgentStateChange("1001", T + 5400, "logged_out"),
    # agent 1002: on call at 09:01:25, wrap-up, then available (still open)
    AgentStateChange("1002", T + 85, "on_call"),
    AgentStateChange("1002", T + 285, "wrap_up"),
    AgentStateChange("1002", T + 325, "available"),
    CallEvent("s1", T + 5, EventKind.OFFER, queue="sales", agent_id="1001"),
    CallEvent("s2", T + 50, EventKind.OFFER, queue="sales", agent_id="1002"),
    CallEvent("s2", T + 70, EventKind.RONA, queue="sales", agent_id="1002"),
    CallEvent("s2", T + 80, EventKind.OFFER, queue="sales", agent_id="1002"),
]


@pytest.fixture
async def log_dsn(db_dsn: str, tmp_path: Path) -> str:
    w = CallLogWriter(db_dsn, spool_dir=tmp_path / "spool", clock=RealClock(), batch_delay=0.01)
    task = asyncio.create_task(w.run())
    for rec in HAND_MADE:
        w.submit(rec)
    await w.flush(timeout=20)
    await w.close(timeout=10)
    await asyncio.wait_for(task, 10)
    return db_dsn


async def run(dsn: str, fn: Any, q: ReportQuery) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows: list[dict[str, Any]] = await fn(conn, q, now=NOW)
        return rows
    finally:
        await conn.close()


def by(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


WINDOW = {"start": DAY0, "end": DAY0 + dt.timedelta(hours=2)}


async def test_queue_report_hourly(log_dsn: str) -> None:
    rows = await run(log_dsn, queue_report, ReportQuery(**WINDOW, interval="60"))
    assert [(r["interval"], r["queue"]) for r in rows] == [
        ("2023-11-14T09:00:00+00:00", "sales"),
        ("2023-11-14T09:00:00+00:00", "support"),
        ("2023-11-14T10:00:00+00:00", "sales"),
    ]
    s9 = rows[0]
    assert s9["offered"] == 6 and s9["answered"] == 3
    assert s9["abandoned"] == 1 and s9["short_abandoned"] == 1  # s3 waited 3 s < 5 s
    assert s9["abandon_rate"] == pytest.approx(1 / 5)
    assert s9["service_level"] == pytest.approx(1 / 6)  # only s1 (10 s) within 20 s
    assert s9["asa_seconds"] == pytest.approx((10 + 25 + 60) / 3)
    assert s9["longest_wait_seconds"] == pytest.approx(100)  # s5 waited 100 s before leaving
    assert s9["avg_talk_seconds"] == pytest.approx((90 + 200 + 100) / 3)
    assert s9["avg_hold_seconds"] == pytest.approx(10 / 3)
    assert s9["avg_wrapup_seconds"] == pytest.approx(60 / 3)
    assert s9["aht_seconds"] == pytest.approx((390 + 10 + 60) / 3)
    assert s9["transfers"] == 1 and s9["callbacks_requested"] == 1 and s9["overflowed"] == 1
    assert s9["fcr"] == pytest.approx(2 / 3)  # caller A called again within 7 days
    assert s9["callbacks_completed"] == 0
    # Center occupancy 09:00-10:00: busy 125 (1001) + 240 (1002); idle 1675 + 3275.
    assert s9["occupancy"] == pytest.approx(365 / (365 + 1675 + 3275))
    p9 = rows[1]
    assert (p9["offered"], p9["answered"], p9["service_level"], p9["asa_seconds"]) == (1, 1, 1.0, 5.0)
    assert p9["aht_seconds"] == pytest.approx(250 + 50 + 30)  # talk = 300 s - 50 s hold
    s10 = rows[2]
    assert (s10["offered"], s10["answered"], s10["service_level"], s10["fcr"]) == (1, 1, 1.0, 1.0)
    assert s10["callbacks_completed"] == 1
    assert s10["occupancy"] == 0.0


async def test_service_level_variants_and_queue_targets(log_dsn: str) -> None:
    expected = {
        SLVariant.OFFERED: 1 / 6,
        SLVariant.ANSWERED: 1 / 3,
        SLVariant.NO_SHORT: 1 / 5,
        SLVariant.ABANDON_OK: 3 / 6,  # s3 and s4 hung up within 20 s
    }
    for variant, value in expected.items():
        q = ReportQuery(**WINDOW, interval="60", queues=["sales"], settings=KpiSettings(sl_variant=variant))
        rows = await run(log_dsn, queue_report, q)
        assert by(rows, interval="2023-11-14T09:00:00+00:00")["service_level"] == pytest.approx(value)
    # sales has a 30 s target: s2 (25 s) now counts; short abandons are those under 2 s: none.
    settings = KpiSettings(queue_targets={"sales": 30.0}, short_abandon_seconds=2.0, fcr_days=1)
    rows = await run(log_dsn, queue_report, ReportQuery(**WINDOW, interval="60", settings=settings))
    s9 = by(rows, interval="2023-11-14T09:00:00+00:00", queue="sales")
    assert s9["service_level"] == pytest.approx(2 / 6)
    assert (s9["abandoned"], s9["short_abandoned"]) == (2, 0)
    assert s9["fcr"] == 1.0  # caller A's second call is 3 days later: outside a 1-day window


async def test_day_report_in_the_centers_time_zone(log_dsn: str) -> None:
    q = ReportQuery(
        start=dt.datetime(2023, 11, 14, tzinfo=UTC),
        end=dt.datetime(2023, 11, 16, tzinfo=UTC),
        interval="day",
        tz="America/New_York",
    )
    rows = await run(log_dsn, queue_report, q)
    sales = by(rows, queue="sales")
    assert sales["interval"] == "2023-11-14T00:00:00-05:00"  # local midnight, EST, in local time
    assert sales["offered"] == 7 and sales["answered"] == 4 and sales["callbacks_completed"] == 1
    assert by(rows, queue="support")["offered"] == 1


async def test_filters_by_queue_and_agent(log_dsn: str) -> None:
    rows = await run(log_dsn, queue_report, ReportQuery(**WINDOW, interval="30", agents=["1003"]))
    assert [(r["interval"][11:16], r["queue"], r["offered"]) for r in rows] == [
        ("09:00", "sales", 1),
        ("09:00", "support", 1),
    ]
    rows = await run(log_dsn, queue_report, ReportQuery(**WINDOW, interval="15", queues=["support"]))
    assert [(r["interval"][11:16], r["offered"]) for r in rows] == [("09:00", 1)]


async def test_agent_report(log_dsn: str) -> None:
    rows = await run(log_dsn, agent_report, ReportQuery(**WINDOW, interval="60"))
    a9 = by(rows, interval="2023-11-14T09:00:00+00:00", agent="1001")
    assert (a9["answered"], a9["offers"], a9["ronas"], a9["transfers"]) == (1, 1, 0, 1)
    assert a9["aht_seconds"] == pytest.approx(120)
    assert (a9["busy_seconds"], a9["idle_seconds"]) == (pytest.approx(125), pytest.approx(1675))
    assert a9["occupancy"] == pytest.approx(125 / 1800)
    b9 = by(rows, interval="2023-11-14T09:00:00+00:00", agent="1002")
    assert (b9["offers"], b9["ronas"], b9["answered"]) == (2, 1, 1)
    assert (b9["busy_seconds"], b9["idle_seconds"]) == (pytest.approx(240), pytest.approx(3275))
    a10 = by(rows, interval="2023-11-14T10:00:00+00:00", agent="1001")
    assert (a10["answered"], a10["busy_seconds"], a10["idle_seconds"]) == (1, 0, pytest.approx(1800))
    b10 = by(rows, interval="2023-11-14T10:00:00+00:00", agent="1002")
    assert b10["idle_seconds"] == pytest.approx(3600) and b10["answered"] == 0
    only = await run(log_dsn, agent_report, ReportQuery(**WINDOW, interval="day", agents=["1003"]))
    assert [(r["agent"], r["answered"]) for r in only] == [("1003", 2)]


async def test_interval_history_averages_the_same_weekday(db_dsn: str, tmp_path: Path) -> None:
    w = CallLogWriter(db_dsn, spool_dir=tmp_path / "spool", clock=RealClock(), batch_delay=0.01)
    task = asyncio.create_task(w.run())
    target = dt.date(2023, 11, 21)  # a Tuesday; history: 14th, 7th, 31 Oct
    n = 0
    for weeks_back, count in ((1, 4), (2, 2), (3, 0)):
        day = dt.datetime.combine(target - dt.timedelta(weeks=weeks_back), dt.time(9, 0), UTC).timestamp()
        for i in range(count):
            n += 1
            w.submit(
                call(
                    f"h{n}",
                    day + 60 * i,
                    queue="sales",
                    answered_at=day + 60 * i + 5,
                    ended_at=day + 60 * i + 105,
                    talk_seconds=100.0,
                    wrapup_seconds=20.0,
                    disposition=D.ANSWERED,
                )
            )
    # Another weekday does not count.
    w.submit(call("wed", dt.datetime(2023, 11, 15, 9, 0, tzinfo=UTC).timestamp(), queue="sales"))
    await w.flush(timeout=20)
    await w.close(timeout=10)
    await asyncio.wait_for(task, 10)
    conn = await asyncpg.connect(db_dsn, timeout=10)
    try:
        slots = await interval_history(conn, day=target, weeks=3, interval_seconds=1800)
        assert [(s.start, s.calls, s.aht_seconds) for s in slots] == [(dt.time(9, 0), 2.0, 120.0)]
        with pytest.raises(ValueError):
            await interval_history(conn, day=target, weeks=0, interval_seconds=1800)
    finally:
        await conn.close()


# ----------------------------------------------------------------------------------------- the CLI
async def _populate(dsn: str, spool: Path) -> None:
    w = CallLogWriter(dsn, spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task = asyncio.create_task(w.run())
    for rec in HAND_MADE:
        w.submit(rec)
    await w.flush(timeout=20)
    await w.close(timeout=10)
    await asyncio.wait_for(task, 10)


def test_report_command_formats(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import io
    import json

    from callcenter.cli import main

    asyncio.run(_populate(db_dsn, tmp_path / "spool"))
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    window = ["--from", "2023-11-14T09:00:00+00:00", "--to", "2023-11-14T11:00:00+00:00"]
    assert main(["report", *window, "--format", "json", "--queue", "sales"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["queue"], r["offered"], r["answered"]) for r in rows] == [("sales", 6, 3), ("sales", 1, 1)]
    assert (
        main(["report", *window, "--format", "csv", "--interval", "day", "--queue-target", "sales=30"]) == 0
    )
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["queue"], r["offered"]) for r in parsed] == [("sales", "7"), ("support", "1")]
    assert float(parsed[0]["service_level"]) == pytest.approx(3 / 7)  # s1, s2 (25 s), s7 within 30 s
    assert main(["report", *window, "--by", "agent", "--interval", "30"]) == 0
    table = capsys.readouterr().out
    assert "1001" in table and "1002" in table and "occup." in table
    assert main(["report", "--from", "2023-11-14", "--to", "2023-11-13"]) == 2
    assert main(["report", "--tz", "Mars/Olympus"]) == 2
    assert main(["report", "--from", "yesterday"]) == 2


def test_staffing_from_the_log(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from callcenter.cli import main

    asyncio.run(_populate(db_dsn, tmp_path / "spool"))
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    args = ["staffing", "--from-log", "--date", "2023-11-21", "--weeks", "1", "--interval", "3600"]
    assert main([*args, "--queue", "sales", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # 09:00: 6 sales calls offered (AHT 460/3 s); 10:00: 1 call (AHT 90 s).
    assert [(r["start"], r["calls"]) for r in rows] == [("09:00", 6.0), ("10:00", 1.0)]
    assert rows[0]["aht_seconds"] == pytest.approx(460 / 3)
    assert all(r["agents"] >= 1 and r["service_level"] >= 0.8 for r in rows)


async def test_agent_states_arriving_out_of_order_give_the_same_occupancy(
    db_dsn: str, tmp_path: Path
) -> None:
    states = [r for r in HAND_MADE if isinstance(r, AgentStateChange)]
    w = CallLogWriter(db_dsn, spool_dir=tmp_path / "spool", clock=RealClock(), batch_delay=0.01)
    task = asyncio.create_task(w.run())
    # Newest first, one batch each: every insert lands before states already logged.
    for i, rec in enumerate(reversed(states)):
        w.submit(AgentStateChange(rec.agent_id, rec.at, rec.state, rec.reason, seq=1000 - i))
        await w.flush(timeout=10)
    await w.close(timeout=10)
    await asyncio.wait_for(task, 10)
    rows = await run(db_dsn, agent_report, ReportQuery(**WINDOW, interval="60"))
    a9 = by(rows, interval="2023-11-14T09:00:00+00:00", agent="1001")
    assert (a9["busy_seconds"], a9["idle_seconds"]) == (pytest.approx(125), pytest.approx(1675))
    b9 = by(rows, interval="2023-11-14T09:00:00+00:00", agent="1002")
    assert (b9["busy_seconds"], b9["idle_seconds"]) == (pytest.approx(240), pytest.approx(3275))
    # The slots hold exactly the closed states' time: no double counting when ends moved.
    total = await fetch(db_dsn, "SELECT sum(seconds) AS s FROM agent_state_time WHERE agent_id = '1001'")
    assert total[0]["s"] == pytest.approx(7200)  # every closed state, 08:30 -> 10:30 (logged out since)
    center = await fetch(db_dsn, "SELECT sum(seconds) AS s FROM center_state_time")
    per_agent = await fetch(db_dsn, "SELECT sum(seconds) AS s FROM agent_state_time")
    assert center[0]["s"] == pytest.approx(per_agent[0]["s"])


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def test_the_wallboards_counts_are_todays_only(log_dsn: str) -> None:
    from callcenter.reporting.wallboard import today_bounds
    from callcenter.store.reports import live_agent_counts, live_queue_counts

    since, until = today_bounds(T + 600, "America/New_York")  # Tue 2023-11-14 in New York
    assert (since.isoformat(), until.isoformat()) == (
        "2023-11-14T00:00:00-05:00",
        "2023-11-15T00:00:00-05:00",
    )
    targets = {"sales": 20.0, "support": 30.0}
    conn = await asyncpg.connect(log_dsn, timeout=10)
    try:
        today = await live_queue_counts(conn, since=since, until=until, targets=targets)
        onwards = await live_queue_counts(conn, since=since, targets=targets)
        agents = await live_agent_counts(conn, since=since, until=until)
        later = await live_queue_counts(
            conn, since=until, until=until + dt.timedelta(days=1), targets=targets
        )
    finally:
        await conn.close()
    # the call three days later (a future-dated row, seen from that Tuesday) is not today's
    assert onwards["sales"]["offered"] == today["sales"]["offered"] + 1
    assert later == {}
    s1_s2 = 10.0 + 25.0  # the two answered 09:00 calls waited 10 s and 25 s
    assert today["sales"]["answer_wait"] >= s1_s2
    assert today["sales"]["answered_in_target"] < today["sales"]["answered"]  # s2 waited past 20 s
    assert today["sales"]["handled"] <= today["sales"]["answered"]
    handled_1001, time_1001 = agents["1001"]
    assert handled_1001 >= 1 and time_1001 >= 90 + 10 + 20  # s1: talk, hold and wrap-up
    assert all(n > 0 and total >= 0 for n, total in agents.values())
