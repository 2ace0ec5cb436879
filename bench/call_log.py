"""bench/call_log: 1,000,000 call-event rows into the private PostgreSQL three ways.

- ``value``: through ``CallLogWriter`` (batches fsync'd to the spool first, idempotent writes,
  acknowledgements), from the first ``submit`` to the end of ``flush``;
- ``baseline``: bare ``copy_records_to_table`` of the same rows in the same batch size (the limit);
- ``executemany_rows_per_s``: ``executemany`` of an INSERT (the naive way).

Each run starts from an empty ``call_events`` table. ``ROWS`` can be lowered for a quick look
(``CALLCENTER_BENCH_ROWS``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.common import emit
from callcenter.clock import RealClock
from callcenter.reporting.records import CallEvent, EventKind
from callcenter.store.migrate import migrate
from callcenter.store.pgcluster import PrivateCluster
from callcenter.store.writer import CallLogWriter

ROWS = int(os.environ.get("CALLCENTER_BENCH_ROWS", "1000000"))
BATCH = 20_000
KINDS = [k.value for k in EventKind]
T0 = 1_700_000_000.0


def make_events(n: int) -> list[CallEvent]:
    out = []
    for i in range(n):
        call = i // 20
        out.append(
            CallEvent(
                f"call-{call:08d}",
                T0 + i * 0.001,
                KINDS[i % len(KINDS)],
                queue="sales" if call % 3 else "support",
                agent_id=f"{1000 + call % 50}" if i % 4 == 0 else None,
                node="main-menu" if i % 20 == 1 else None,
            )
        )
    return out


async def reset(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE call_events")
    await conn.execute("CHECKPOINT")


async def bare_copy(dsn: str, events: list[CallEvent]) -> float:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await reset(conn)
        cols = ["call_id", "seq", "at", "kind", "queue", "agent_id", "node", "detail"]
        t = time.perf_counter()
        for start in range(0, len(events), BATCH):
            chunk = events[start : start + BATCH]
            records = [
                (
                    e.call_id,
                    start + j,
                    dt.datetime.fromtimestamp(e.at, dt.UTC),
                    str(e.kind),
                    e.queue,
                    e.agent_id,
                    e.node,
                    None,
                )
                for j, e in enumerate(chunk)
            ]
            await conn.copy_records_to_table("call_events", records=records, columns=cols, timeout=300)
        elapsed = time.perf_counter() - t
        assert await conn.fetchval("SELECT count(*) FROM call_events") == len(events)
        return len(events) / elapsed
    finally:
        await conn.close()


async def executemany(dsn: str, events: list[CallEvent]) -> float:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await reset(conn)
        sql = (
            "INSERT INTO call_events (call_id, seq, at, kind, queue, agent_id, node, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )
        t = time.perf_counter()
        for start in range(0, len(events), BATCH):
            chunk = events[start : start + BATCH]
            records = [
                (
                    e.call_id,
                    start + j,
                    dt.datetime.fromtimestamp(e.at, dt.UTC),
                    str(e.kind),
                    e.queue,
                    e.agent_id,
                    e.node,
                    None,
                )
                for j, e in enumerate(chunk)
            ]
            await conn.executemany(sql, records, timeout=300)
        elapsed = time.perf_counter() - t
        assert await conn.fetchval("SELECT count(*) FROM call_events") == len(events)
        return len(events) / elapsed
    finally:
        await conn.close()


async def through_writer(dsn: str, events: list[CallEvent], spool: Path) -> tuple[float, dict[str, object]]:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await reset(conn)
    finally:
        await conn.close()
    w = CallLogWriter(dsn, spool_dir=spool, clock=RealClock(), batch_delay=1.0, batch_max_rows=BATCH)
    task = asyncio.create_task(w.run())
    t = time.perf_counter()
    for start in range(0, len(events), 5_000):
        for e in events[start : start + 5_000]:
            w.submit(e)
        await asyncio.sleep(0)  # call handling runs between submits
    await w.flush(timeout=600)
    elapsed = time.perf_counter() - t
    await w.close(timeout=30)
    await task
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        assert await conn.fetchval("SELECT count(*) FROM call_events") == len(events)
    finally:
        await conn.close()
    s = w.stats
    return len(events) / elapsed, {
        "batches": s.batches_written,
        "spooled_batches": s.spooled,
        "dropped": s.dropped,
    }


async def run() -> None:
    base = Path(tempfile.mkdtemp(prefix="cc-bench-calllog-", dir="/tmp"))
    spool_base = Path(tempfile.mkdtemp(prefix="cc-bench-spool-", dir="/tmp"))
    cluster = PrivateCluster(base)
    try:
        dsn = cluster.start()
        conn = await asyncpg.connect(dsn, timeout=30)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        events = make_events(ROWS)
        copy_rate = await bare_copy(dsn, events)
        many_rate = await executemany(dsn, events)
        writer_rate, extra = await through_writer(dsn, events, spool_base / "spool")
    finally:
        cluster.destroy()
        shutil.rmtree(spool_base, ignore_errors=True)
    emit(
        "call_log",
        writer_rate,
        "rows/s",
        copy_rate,
        rows=ROWS,
        executemany_rows_per_s=round(many_rate, 1),
        writer_vs_executemany=round(writer_rate / many_rate, 3),
        spool="fsync per batch",
        batch_rows=BATCH,
        **extra,
    )


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
