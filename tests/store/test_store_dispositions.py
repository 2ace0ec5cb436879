"""Dispositions through the durable writer into ``call_dispositions`` (migration 0005): a late one
replaces the ``none`` a timed-out wrap-up stored, in any arrival order; the counts per queue,
campaign and agent; the screen pop's call context and the caller's last calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.clock import RealClock
from callcenter.errors import StoreError
from callcenter.reporting.dispositions import DispositionRecord, shares
from callcenter.reporting.records import CallEvent, CallRecord, Disposition, EventKind
from callcenter.store.dispositions import PgCallHistory, disposition_counts, dispositions_of
from callcenter.store.writer import CallLogWriter

T = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC).timestamp()


def given(call_id: str, agent: str, code: str, at: float, **kw: Any) -> DispositionRecord:
    return DispositionRecord(call_id, agent, at, code=code, label=code.title(), given_by="alice", **kw)


RECORDS: list[Any] = [
    CallRecord("c1", T, started_at=T, caller_number="+12125550100", did="+18005550199", queue="sales",
               agent_id="1001", disposition=Disposition.ANSWERED, direction="inbound"),
    CallRecord("c2", T + 600, started_at=T + 600, caller_number="+12125550100", queue="sales",
               agent_id="1002", disposition=Disposition.ANSWERED, direction="inbound"),
    CallRecord("c3", T + 900, started_at=T + 900, caller_number="+12125550111", queue="billing",
               agent_id="1002", disposition=Disposition.ANSWERED, direction="inbound"),
    CallRecord("o1", T + 950, started_at=T + 950, caller_number="+12125550122", queue="sales",
               agent_id="1001", campaign_id="renewals", direction="outbound"),
    CallEvent("c2", T + 601, EventKind.IVR_NODE, node="menu",
              detail={"type": "menu", "outcome": "ok", "input": "1"}),
    CallEvent("c2", T + 603, EventKind.IVR_NODE, node="account", detail={"type": "collect", "outcome": "ok"}),
    given("c1", "1001", "sale", T + 100, queue="sales", notes="wants a quote"),
    # c2: the wrap-up timed out, then the agent gave it late; the late record arrives FIRST here
    given("c2", "1002", "no_sale", T + 800, queue="sales"),
    DispositionRecord("c2", "1002", T + 700, queue="sales", code="none", outcome="timed_out",
                      given_by="system"),
    given("c3", "1002", "payment_taken", T + 1000, queue="billing"),
    given("o1", "1001", "renewed", T + 1100, queue="sales", campaign_id="renewals"),
]  # fmt: skip


async def _populate(dsn: str, spool: Path) -> None:
    w = CallLogWriter(dsn, spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task = asyncio.create_task(w.run())
    for rec in RECORDS:
        w.submit(rec)
    await w.flush(timeout=20)
    await w.close(timeout=10)
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def log_dsn(db_dsn: str, tmp_path: Path) -> str:
    await _populate(db_dsn, tmp_path / "spool")
    return db_dsn


async def test_a_late_disposition_replaces_the_missing_one_in_any_order(log_dsn: str) -> None:
    conn = await asyncpg.connect(log_dsn)
    try:
        (c2,) = await dispositions_of(conn, "c2")
        assert (c2["code"], c2["outcome"], c2["given_by"], c2["label"]) == (
            "no_sale",
            "given",
            "alice",
            "No_Sale",
        )
        (c1,) = await dispositions_of(conn, "c1")
        assert (c1["code"], c1["notes"], c1["queue"]) == ("sale", "wants a quote", "sales")
    finally:
        await conn.close()


async def test_counts_per_queue_campaign_and_agent(log_dsn: str) -> None:
    conn = await asyncpg.connect(log_dsn)
    try:
        start, end = dt.datetime.fromtimestamp(T, dt.UTC), dt.datetime.fromtimestamp(T + 3600, dt.UTC)
        rows = shares(await disposition_counts(conn, start, end))
        got = {(r["dimension"], r["name"], r["code"]): (r["calls"], r["share"]) for r in rows}
        assert got == {
            ("queue", "sales", "sale"): (1, 0.3333),
            ("queue", "sales", "no_sale"): (1, 0.3333),
            ("queue", "sales", "renewed"): (1, 0.3333),
            ("queue", "billing", "payment_taken"): (1, 1.0),
            ("campaign", "renewals", "renewed"): (1, 1.0),
            ("agent", "1001", "sale"): (1, 0.5),
            ("agent", "1001", "renewed"): (1, 0.5),
            ("agent", "1002", "no_sale"): (1, 0.5),
            ("agent", "1002", "payment_taken"): (1, 0.5),
        }
        only = await disposition_counts(conn, start, end, queues=["billing"], agents=["1002"])
        assert {(r["dimension"], r["name"], r["code"]) for r in only} == {
            ("queue", "billing", "payment_taken"),
            ("agent", "1002", "payment_taken"),
        }
        # the window is the disposition's time
        early = await disposition_counts(conn, start, dt.datetime.fromtimestamp(T + 200, dt.UTC))
        assert {r["code"] for r in early} == {"sale"}
    finally:
        await conn.close()


async def test_the_screen_pops_history(log_dsn: str) -> None:
    pool = await asyncpg.create_pool(log_dsn, min_size=1, max_size=2)
    try:
        history = PgCallHistory(pool)
        ctx = await history.call_context("c2", timeout=5)
        assert ctx["caller_number"] == "+12125550100" and ctx["started_at"] == T + 600
        assert [(s["node"], s["type"], s["input"]) for s in ctx["ivr_path"]] == [
            ("menu", "menu", "1"),
            ("account", "collect", None),
        ]
        assert (await history.call_context("nope", timeout=5))["ivr_path"] == []
        recent = await history.recent_calls("+12125550100", exclude="c2", limit=5, timeout=5)
        assert [(r["call_id"], r["disposition"], r["notes"], r["outcome"]) for r in recent] == [
            ("c1", "sale", "wants a quote", "answered")
        ]
        counts = await history.disposition_counts(T, T + 3600, queues=None, agents=["1001"], timeout=5)
        assert {r["code"] for r in counts} == {"sale", "renewed"}
    finally:
        await pool.close()
    with pytest.raises(StoreError):  # the pool is closed: the seam says so in its own terms
        await history.recent_calls("+12125550100", exclude="c2", limit=5, timeout=1)


def test_report_by_disposition_command(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from callcenter.cli import main

    asyncio.run(_populate(db_dsn, tmp_path / "spool"))
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    window = ["--from", "2026-12-01T09:00:00+00:00", "--to", "2026-12-01T10:00:00+00:00"]
    assert main(["report", "--by", "disposition", *window, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"dimension": "campaign", "name": "renewals", "code": "renewed", "label": "Renewed", "calls": 1,
            "share": 1.0} in rows  # fmt: skip
    assert main(["report", "--by", "disposition", *window, "--agent", "1002"]) == 0
    table = capsys.readouterr().out
    assert "disposition report" in table and "payment_taken" in table and "50.0%" in table
    assert "renewed" not in table  # agent 1001's
