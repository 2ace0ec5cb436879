"""The durable call-log writer against a real PostgreSQL: batching, merge, idempotent replay, spool
corruption, a full spool, refused rows, PostgreSQL killed mid-run, and the controller killed mid-batch."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.clock import FakeClock, RealClock
from callcenter.reporting.records import (
    AgentStateChange,
    CallEvent,
    CallRecord,
    Disposition,
    EventKind,
    LegRecord,
    MonitorSession,
    RecordingRecord,
)
from callcenter.store.migrate import migrate
from callcenter.store.pgcluster import PrivateCluster
from callcenter.store.spool import HEAD_SIZE
from callcenter.store.writer import CallLogWriter
from tests.centers import REPO
from tests.fakes import T0, call_stream


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


class Switch:
    """A connection factory that refuses (like a PostgreSQL that is down) until turned on."""

    def __init__(self, dsn: str, up: bool = False) -> None:
        self.dsn = dsn
        self.up = up

    async def __call__(self) -> Any:
        if not self.up:
            raise ConnectionRefusedError("PostgreSQL is down (test switch)")
        return await asyncpg.connect(self.dsn, timeout=10)


CALL_EVENTS_PER_CALL = 6
AGENT_STATES_PER_CALL = 4


async def check_exactly_once(dsn: str, calls: int) -> None:
    assert await fetchval(dsn, "SELECT count(*) FROM calls") == calls
    assert await fetchval(dsn, "SELECT count(*) FROM calls WHERE disposition = 'answered'") == calls
    assert await fetchval(dsn, "SELECT count(*) FROM calls WHERE queue = 'sales'") == calls
    assert await fetchval(dsn, "SELECT count(*) FROM call_events") == calls * CALL_EVENTS_PER_CALL
    assert await fetchval(dsn, "SELECT count(*) FROM agent_states") == calls * AGENT_STATES_PER_CALL
    assert await fetchval(dsn, "SELECT count(*) FROM call_legs") == calls


@pytest.fixture
async def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


async def start(writer: CallLogWriter) -> asyncio.Task[None]:
    return asyncio.create_task(writer.run())


async def stop(writer: CallLogWriter, task: asyncio.Task[None], timeout: float = 10) -> None:
    await writer.close(timeout=timeout)
    await asyncio.wait_for(task, timeout)


# ----------------------------------------------------------------------------------------- basics
async def test_every_record_type_lands_and_calls_merge(db_dsn: str, spool_dir: Path) -> None:
    w = CallLogWriter(db_dsn, spool_dir=spool_dir, clock=RealClock(), batch_delay=0.01)
    task = await start(w)
    w.submit(CallRecord("c1", T0 + 10, disposition=Disposition.ANSWERED, answered_at=T0 + 3, agent_id="7"))
    w.submit(CallRecord("c1", T0, direction="inbound", caller_number="+15550001111", started_at=T0))
    await w.flush(timeout=10)
    # A stale record (older revision) arriving later fills gaps but does not override.
    w.submit(CallRecord("c1", T0 + 5, disposition=Disposition.ABANDONED_QUEUE, ended_at=T0 + 8, agent_id="9"))
    w.submit(LegRecord("c1", "leg1", T0, kind="caller", started_at=T0))
    w.submit(LegRecord("c1", "leg1", T0 + 8, ended_at=T0 + 8, hangup_cause=16))
    w.submit(RecordingRecord("r1", T0 + 8, call_id="c1", path="2023/11/14/c1.wav", duration_seconds=5.0))
    w.submit(MonitorSession("m1", T0 + 4, supervisor_id="s1", agent_id="7", call_id="c1", mode="listen"))
    w.submit(MonitorSession("m1", T0 + 6, mode="whisper", outcome="ended", ended_at=T0 + 6))
    w.submit(CallEvent("c1", T0 + 1, EventKind.IVR_NODE, node="menu", detail={"digits": "12#"}))
    w.submit(AgentStateChange("7", T0 + 3, "on_call", call_id="c1"))
    await w.flush(timeout=10)
    await stop(w, task)

    (call,) = await fetch(db_dsn, "SELECT * FROM calls")
    assert call["disposition"] == "answered" and call["agent_id"] == "7"
    assert call["direction"] == "inbound" and call["caller_number"] == "+15550001111"
    assert call["ended_at"].timestamp() == T0 + 8
    assert call["started_at"].timestamp() == T0
    assert call["revision"] == T0 + 10
    (leg,) = await fetch(db_dsn, "SELECT * FROM call_legs")
    assert leg["kind"] == "caller" and leg["hangup_cause"] == 16
    (mon,) = await fetch(db_dsn, "SELECT * FROM monitor_sessions")
    assert (mon["mode"], mon["outcome"], mon["supervisor_id"]) == ("whisper", "ended", "s1")
    (ev,) = await fetch(db_dsn, "SELECT * FROM call_events")
    assert json.loads(ev["detail"]) == {"digits": "12#"} and ev["at"].timestamp() == T0 + 1
    assert await fetchval(db_dsn, "SELECT count(*) FROM agent_states") == 1
    assert await fetchval(db_dsn, "SELECT path FROM recordings") == "2023/11/14/c1.wav"
    assert w.stats.dropped == 0 and w.stats.rejected == 0 and w.stats.pending_batches == 0


async def test_batches_wait_for_the_delay_on_the_injected_clock(db_dsn: str, spool_dir: Path) -> None:
    clock = FakeClock(T0)
    w = CallLogWriter(db_dsn, spool_dir=spool_dir, clock=clock, batch_delay=1.0)
    task = await start(w)
    w.submit(CallEvent("c1", T0, EventKind.CALL_START))
    await clock.wait_for_sleepers(1)  # the batcher is parked until the delay passes
    assert w.stats.spooled == 0
    w.submit(CallEvent("c1", T0, EventKind.HANGUP))
    clock.advance(0.5)
    assert w.stats.spooled == 0
    clock.advance(0.5)
    await w.wait_for(lambda s: s.batches_written == 1, timeout=10)
    assert await fetchval(db_dsn, "SELECT count(*) FROM call_events") == 2
    # Writer-assigned sequence numbers keep submission order even within one microsecond.
    kinds = [r["kind"] for r in await fetch(db_dsn, "SELECT kind FROM call_events ORDER BY seq")]
    assert kinds == ["call_start", "hangup"]
    await stop(w, task)


async def test_a_full_batch_goes_at_once(db_dsn: str, spool_dir: Path) -> None:
    clock = FakeClock(T0)
    w = CallLogWriter(db_dsn, spool_dir=spool_dir, clock=clock, batch_delay=1000.0, batch_max_rows=50)
    task = await start(w)
    for i in range(120):
        w.submit(CallEvent(f"c{i}", T0, EventKind.CALL_START))
    await w.wait_for(lambda s: s.batches_written == 2, timeout=10)
    assert await fetchval(db_dsn, "SELECT count(*) FROM call_events") == 100
    await w.flush(timeout=10)  # a flush does not wait for the delay
    assert await fetchval(db_dsn, "SELECT count(*) FROM call_events") == 120
    await stop(w, task)


# ----------------------------------------------------------------------------------------- replay
async def test_spooled_batches_replay_in_order_and_a_second_replay_duplicates_nothing(
    db_dsn: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    switch = Switch(db_dsn, up=False)
    w = CallLogWriter(
        None, connect=switch, spool_dir=spool, clock=RealClock(), batch_delay=0.01, retry_delay=0.01
    )
    task = await start(w)
    for i in range(30):
        for rec in call_stream(i, T0 + i):
            w.submit(rec)
        if i % 10 == 9:
            await w.wait_for(lambda s: s.queued == 0, timeout=10)
    await w.wait_for(lambda s: s.queued == 0 and s.last_error is not None, timeout=10)
    assert w.stats.written == 0 and w.stats.spooled >= 3
    await stop(w, task, timeout=0.2)  # PostgreSQL still down: everything stays in the spool
    copy = tmp_path / "spool-copy"
    shutil.copytree(spool, copy)

    w2 = CallLogWriter(db_dsn, spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task2 = await start(w2)
    await w2.wait_for(lambda s: s.pending_batches == 0 and s.replayed >= 3, timeout=20)
    await stop(w2, task2)
    await check_exactly_once(db_dsn, 30)

    # The same batches again (as after a crash between COMMIT and the acknowledgement): no duplicate.
    w3 = CallLogWriter(db_dsn, spool_dir=copy, clock=RealClock(), batch_delay=0.01)
    task3 = await start(w3)
    await w3.wait_for(lambda s: s.pending_batches == 0 and s.replayed >= 3, timeout=20)
    await stop(w3, task3)
    await check_exactly_once(db_dsn, 30)
    assert not list(copy.glob("seg-*.spool")) or all(p.stat().st_size == 0 for p in copy.glob("seg-*.spool"))


async def test_a_corrupt_spool_record_is_reported_and_skipped(
    db_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    w = CallLogWriter(None, connect=Switch(db_dsn), spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task = await start(w)
    for i in range(3):
        w.submit(CallRecord(f"c{i}", T0, disposition=Disposition.ANSWERED))
        await w.wait_for(lambda s, n=i + 1: s.spooled == n, timeout=10)
    await stop(w, task, timeout=0.1)
    (seg,) = spool.glob("seg-*.spool")
    data = bytearray(seg.read_bytes())
    # Flip one byte inside the second record's payload.
    first_len = int.from_bytes(data[12:16], "big")
    second = HEAD_SIZE + first_len
    data[second + HEAD_SIZE + 5] ^= 0xFF
    seg.write_bytes(bytes(data))

    caplog.set_level(logging.ERROR, logger="callcenter.reporting.records")
    w2 = CallLogWriter(db_dsn, spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task2 = await start(w2)
    await w2.wait_for(lambda s: s.pending_batches == 0, timeout=20)
    await stop(w2, task2)
    assert w2.stats.corrupt == 1 and w2.stats.replayed == 2
    assert sorted(r["call_id"] for r in await fetch(db_dsn, "SELECT call_id FROM calls")) == ["c0", "c2"]
    assert any("checksum mismatch" in r.getMessage() for r in caplog.records)


async def test_a_torn_tail_and_a_garbage_checkpoint_are_survived(db_dsn: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    w = CallLogWriter(None, connect=Switch(db_dsn), spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task = await start(w)
    w.submit(CallRecord("c1", T0, disposition=Disposition.VOICEMAIL))
    await w.wait_for(lambda s: s.spooled == 1, timeout=10)
    await stop(w, task, timeout=0.1)
    (seg,) = spool.glob("seg-*.spool")
    with seg.open("ab") as fh:
        fh.write(b"\xccSP1\x00\x00")  # a write torn by a crash
    (spool / "checkpoint").write_text("not a number")
    w2 = CallLogWriter(db_dsn, spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task2 = await start(w2)
    await w2.wait_for(lambda s: s.pending_batches == 0, timeout=20)
    w2.submit(CallRecord("c2", T0, disposition=Disposition.FAILED))
    await w2.flush(timeout=10)
    await stop(w2, task2)
    assert w2.stats.corrupt == 2
    assert await fetchval(db_dsn, "SELECT count(*) FROM calls") == 2


# ----------------------------------------------------------------------------------------- limits
async def test_full_spool_and_full_memory_are_loud_not_silent(
    db_dsn: str, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="callcenter.reporting.records")
    switch = Switch(db_dsn, up=False)
    w = CallLogWriter(
        None,
        connect=switch,
        spool_dir=spool_dir,
        clock=RealClock(),
        batch_delay=0.01,
        retry_delay=0.01,
        max_retry_delay=0.05,
        spool_limit_bytes=600,
        max_queue=40,
    )
    task = await start(w)
    for i in range(60):
        w.submit(CallEvent("c1", T0 + i, EventKind.NOTE, detail={"i": i}))
        if i % 10 == 9:
            await w.wait_for(lambda s: s.queued == 0 or s.dropped > 0, timeout=10)
    await w.wait_for(lambda s: s.queued == 0, timeout=10)
    assert w.stats.not_durable >= 1
    assert w.stats.dropped > 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "spool FULL" in messages and "DROPPING" in messages
    switch.up = True
    await w.wait_for(lambda s: s.pending_batches == 0, timeout=20)
    await stop(w, task)
    # Everything not counted as dropped is in PostgreSQL.
    assert await fetchval(db_dsn, "SELECT count(*) FROM call_events") == 60 - w.stats.dropped


async def test_rows_postgres_refuses_are_set_aside_and_the_rest_written(db_dsn: str, spool_dir: Path) -> None:
    w = CallLogWriter(db_dsn, spool_dir=spool_dir, clock=RealClock(), batch_delay=0.01)
    task = await start(w)
    w.submit(CallRecord("good1", T0, disposition=Disposition.ANSWERED))
    w.submit(CallRecord("bad", T0, talk_seconds=-5.0))  # violates a CHECK constraint
    w.submit(CallEvent("good1", T0, EventKind.HANGUP))
    await w.flush(timeout=10)
    await stop(w, task)
    assert w.stats.rejected == 1
    assert await fetchval(db_dsn, "SELECT count(*) FROM calls") == 1
    assert await fetchval(db_dsn, "SELECT count(*) FROM call_events") == 1
    (rej,) = (spool_dir / "rejected").glob("*.jsonl")
    line = json.loads(rej.read_text().splitlines()[0])
    assert line["table"] == "calls" and line["row"][0] == "bad"


async def test_flush_times_out_loudly_while_postgres_is_down(db_dsn: str, spool_dir: Path) -> None:
    from callcenter.errors import CallLogTimeoutError

    w = CallLogWriter(None, connect=Switch(db_dsn), spool_dir=spool_dir, clock=RealClock(), retry_delay=0.01)
    task = await start(w)
    w.submit(CallEvent("c", T0, EventKind.NOTE))
    with pytest.raises(CallLogTimeoutError):
        await w.flush(timeout=0.3)
    await stop(w, task, timeout=0.1)


# ----------------------------------------------------------------------------------------- kill PostgreSQL
@pytest.fixture
def own_cluster() -> Iterator[PrivateCluster]:
    base = Path(tempfile.mkdtemp(prefix="cc-h6-", dir="/tmp"))
    cluster = PrivateCluster(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


async def test_postgres_killed_mid_run_loses_and_duplicates_nothing(
    own_cluster: PrivateCluster, tmp_path: Path
) -> None:
    dsn = own_cluster.dsn
    conn = await asyncpg.connect(dsn, timeout=10)
    await migrate(conn)
    await conn.close()
    w = CallLogWriter(
        dsn,
        spool_dir=tmp_path / "spool",
        clock=RealClock(),
        batch_delay=0.02,
        retry_delay=0.05,
        max_retry_delay=0.2,
        write_timeout=5,
        connect_timeout=2,
    )
    task = await start(w)
    total = 600
    produced = asyncio.Event()

    async def producer() -> None:
        for i in range(total):
            for rec in call_stream(i, T0 + i):
                w.submit(rec)
            await asyncio.sleep(0.002)  # pacing of the synthetic call stream, not synchronisation
        produced.set()

    prod = asyncio.create_task(producer())
    await w.wait_for(lambda s: s.batches_written >= 3, timeout=30)
    await asyncio.to_thread(own_cluster.stop, mode="immediate")
    await w.wait_for(lambda s: not s.db_up, timeout=30)
    written_at_kill = w.stats.written
    await w.wait_for(lambda s: s.pending_batches >= 3, timeout=30)
    await asyncio.to_thread(own_cluster.start)
    await asyncio.wait_for(produced.wait(), 60)
    await prod
    await w.flush(timeout=60)
    await stop(w, task)
    assert w.stats.written > written_at_kill
    assert w.stats.dropped == 0 and w.stats.rejected == 0
    await check_exactly_once(dsn, total)


# ------------------------------------------------------------------------------ kill the controller
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from callcenter.clock import RealClock
    from callcenter.store.writer import CallLogWriter
    from tests.fakes import call_stream, T0

    async def main() -> None:
        w = CallLogWriter(sys.argv[1], spool_dir=Path(sys.argv[2]), clock=RealClock(), batch_delay=0.01,
                          batch_max_rows=200)
        task = asyncio.create_task(w.run())
        for i in range(100):
            for rec in call_stream(i, T0 + i):
                w.submit(rec)
        await w.wait_for(lambda s: s.queued == 0 and s.spooled * 200 >= 1400, timeout=30)
        print("SPOOLED", w.stats.batches_written, flush=True)
        await task  # blocked in the middle of a batch until killed

    asyncio.run(main())
    """
)


async def test_controller_killed_mid_batch_then_restarted_loses_and_duplicates_nothing(
    db_dsn: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    lock = await asyncpg.connect(db_dsn, timeout=10)
    tx = lock.transaction()
    await tx.start()
    await lock.execute("LOCK TABLE agent_states IN ACCESS EXCLUSIVE MODE")  # the first batch blocks mid-way
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        db_dsn,
        str(spool),
        str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"SPOOLED 0"), line
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)
        await tx.rollback()
        await lock.close()
    assert await fetchval(db_dsn, "SELECT count(*) FROM calls") == 0  # the batch in flight died with it

    w = CallLogWriter(db_dsn, spool_dir=spool, clock=RealClock(), batch_delay=0.01)
    task = await start(w)
    await w.wait_for(lambda s: s.pending_batches == 0, timeout=30)
    await stop(w, task)
    assert w.stats.replayed >= 7
    await check_exactly_once(db_dsn, 100)


async def test_a_slow_postgres_is_treated_like_a_down_one(db_dsn: str, spool_dir: Path) -> None:
    lock = await asyncpg.connect(db_dsn, timeout=10)
    tx = lock.transaction()
    await tx.start()
    await lock.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")  # every write now hangs
    w = CallLogWriter(
        db_dsn,
        spool_dir=spool_dir,
        clock=RealClock(),
        batch_delay=0.01,
        write_timeout=0.3,
        retry_delay=0.05,
        max_retry_delay=0.1,
    )
    task = await start(w)
    try:
        for i in range(20):
            for rec in call_stream(i, T0 + i):
                w.submit(rec)
            if i % 5 == 4:
                await w.wait_for(lambda s: s.queued == 0, timeout=10)
        await w.wait_for(lambda s: s.last_error is not None and "Timeout" in s.last_error, timeout=10)
        await w.wait_for(lambda s: s.pending_batches >= 2, timeout=10)
        assert w.stats.written == 0 and w.stats.dropped == 0
    finally:
        await tx.rollback()
        await lock.close()
    await w.flush(timeout=30)
    await stop(w, task)
    await check_exactly_once(db_dsn, 20)


async def test_a_record_submitted_after_close_is_counted_as_dropped(
    db_dsn: str, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = CallLogWriter(db_dsn, spool_dir=spool_dir, clock=RealClock(), batch_delay=0.01)
    task = await start(w)
    w.submit(CallEvent("c", T0, EventKind.NOTE))
    await stop(w, task)
    caplog.set_level(logging.ERROR, logger="callcenter.reporting.records")
    w.submit(CallEvent("c", T0 + 1, EventKind.NOTE))
    assert w.stats.dropped == 1 and "after the writer closed" in caplog.text
    assert await fetchval(db_dsn, "SELECT count(*) FROM call_events") == 1
