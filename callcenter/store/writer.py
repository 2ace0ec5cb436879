"""Shell: the durable call-log writer. Call handling hands it records and never waits on the database.

    writer = CallLogWriter(dsn, spool_dir=run_dir / "spool", clock=clock)
    tg.create_task(writer.run())          # the background task, owned by the composition root
    writer.submit(CallEvent(...))         # synchronous, O(1), never blocks, never raises
    await writer.flush(timeout=5)         # everything submitted so far is in PostgreSQL
    await writer.close(timeout=10)        # drain, then run() returns; what is left stays spooled

Path of a record: ``submit`` turns it into a row and appends it to a bounded in-memory queue. The
*batcher* takes the queue when ``batch_delay`` (default 1 s) has passed since the oldest waiting
record, or ``batch_max_rows`` are waiting, or a flush asks; it groups the rows per table (merging
upsert rows of one key, see ``callcenter.reporting.records``), appends the batch to the spool on disk
(checksummed, fsync'd: ``callcenter.store.spool``) and hands it to the *sender*. The sender writes
batches to PostgreSQL strictly in order, one transaction per batch, and acknowledges each in the
spool. While PostgreSQL is down or slower than ``write_timeout``, batches keep accumulating in the
spool (only their place is kept in memory) and the sender retries with backoff; when PostgreSQL is
back they go in, oldest first. On start, batches a previous run left unacknowledged are replayed
first. Writes are idempotent:

- insert tables (``call_events``, ``agent_states``): ``COPY`` straight into the table; if the batch
  collides with rows already there (a replay), the COPY is rolled back to a savepoint and the rows go
  through a staging table with ``INSERT ... ON CONFLICT DO NOTHING``;
- upsert tables (``calls``, ``call_legs``, ...): ``COPY`` into a temporary staging table, then
  ``INSERT ... ON CONFLICT DO UPDATE`` with the merge rule (known values win over NULL, the later
  revision wins), so a call has exactly one row whatever the order and the number of replays.

Nothing is dropped silently. If the spool is full (``spool_limit_bytes``) batches are held in memory
only (``not_durable``, logged as an error); if memory is full too (``max_queue`` rows), ``submit``
drops the record and counts it in ``dropped`` (logged as an error, exported as a metric). A batch
PostgreSQL refuses for its content (a constraint, a bad value: not a connection problem) is retried
row by row; rows it still refuses are written to ``spool_dir/rejected/`` and counted in ``rejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from callcenter.clock import Clock
from callcenter.errors import CallLogTimeoutError, SpoolCorruptError, SpoolError, SpoolFullError
from callcenter.reporting.records import Group, LogRecord, Row, SeqSource, TableSpec, group_rows
from callcenter.store.spool import Entry, Spool, private_dir, write_private

log = logging.getLogger("callcenter.reporting.records")

Connector = Callable[[], Awaitable[Any]]
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_EPOCH = 946_684_800  # 2000-01-01 UTC in UNIX seconds: PostgreSQL's timestamp origin
# SQLSTATE classes that mean "try again later", not "this data is wrong".
_TRANSIENT_CLASSES = ("08", "53", "57", "58", "40", "55", "XX")


@dataclass
class WriterStats:
    """Counters for ``/metrics`` (all since this writer started)."""

    submitted: int = 0  # records accepted by submit()
    queued: int = 0  # records waiting in memory for the next batch
    written: int = 0  # rows written to PostgreSQL (including replays)
    batches_written: int = 0
    spooled: int = 0  # batches appended to the spool
    pending_batches: int = 0  # batches formed but not yet in PostgreSQL
    spool_bytes: int = 0
    replayed: int = 0  # batches from an earlier run replayed from the spool
    not_durable: int = 0  # batches held only in memory because the spool refused them
    dropped: int = 0  # records lost because memory and spool were full (always logged)
    rejected: int = 0  # rows PostgreSQL refused for their content (kept in spool_dir/rejected)
    corrupt: int = 0  # corrupt spool records reported and skipped
    db_up: bool = False
    last_error: str | None = None


@dataclass
class _Batch:
    entry: Entry | None  # None: not durable (the spool refused it)
    groups: list[Group] | None  # None: only in the spool; read back when sent
    rows: int
    upto: int  # submit() count covered by this batch (0 for a replay from an earlier run)
    replay: bool = False
    in_memory: bool = False  # counted in the writer's memory budget


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise SpoolCorruptError(f"table or column name {name!r} is not a plain identifier")
    return name


def _encode_ts(value: float) -> tuple[int]:
    return (round((value - _PG_EPOCH) * 1_000_000),)


def _decode_ts(value: tuple[int]) -> float:
    return value[0] / 1_000_000 + _PG_EPOCH


def encode_batch(groups: list[Group]) -> bytes:
    return json.dumps(
        {"g": [[g.spec.to_wire(), g.rows] for g in groups]}, separators=(",", ":"), allow_nan=False
    ).encode()


def decode_batch(payload: bytes) -> list[Group]:
    try:
        data = json.loads(payload)
        groups = []
        for spec_wire, rows in data["g"]:
            spec = TableSpec.from_wire(spec_wire)
            _check_ident(spec.name)
            for c in spec.columns:
                _check_ident(c.name)
            width = len(spec.columns)
            tuples: list[Row] = [tuple(r) for r in rows]
            if any(len(r) != width for r in tuples):
                raise ValueError("row width does not match its table")
            groups.append(Group(spec, tuples))
        return groups
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolCorruptError(f"spooled batch does not decode: {exc}") from exc


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    state = getattr(exc, "sqlstate", None)
    if not isinstance(state, str):
        return True  # no SQLSTATE: a connection-level problem
    return state[:2] in _TRANSIENT_CLASSES


class _SQL:
    """The statements for one table (identifiers checked, then quoted)."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        t = f'"{_check_ident(spec.name)}"'
        self.stage = f"_stage_{spec.name}"
        cols = [f'"{_check_ident(c)}"' for c in spec.column_names]
        col_list = ", ".join(cols)
        self.create_stage = f'CREATE TEMP TABLE IF NOT EXISTS "{self.stage}" (LIKE {t}) ON COMMIT DELETE ROWS'
        key = ", ".join(f'"{_check_ident(k)}"' for k in spec.key)
        if spec.mode == "insert":
            self.merge = (
                f'INSERT INTO {t} ({col_list}) SELECT {col_list} FROM "{self.stage}" '  # noqa: S608
                f"ON CONFLICT ({key}) DO NOTHING"
            )
        else:
            rev = f'"{_check_ident(spec.revision or "revision")}"'
            sets = []
            for c in cols:
                if c in (rev,) or c.strip('"') in spec.key:
                    continue
                sets.append(
                    f"{c} = CASE WHEN EXCLUDED.{rev} >= {t}.{rev} "
                    f"THEN COALESCE(EXCLUDED.{c}, {t}.{c}) ELSE COALESCE({t}.{c}, EXCLUDED.{c}) END"
                )
            sets.append(f"{rev} = GREATEST(EXCLUDED.{rev}, {t}.{rev})")
            self.merge = (
                f'INSERT INTO {t} ({col_list}) SELECT {col_list} FROM "{self.stage}" '  # noqa: S608
                f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}"
            )


@dataclass
class _Conn:
    conn: Any
    stages: set[str] = field(default_factory=set)


class CallLogWriter:
    """The durable, batched, idempotent call-log writer (see the module docstring)."""

    def __init__(
        self,
        dsn: str | None,
        *,
        spool_dir: Path,
        clock: Clock,
        batch_delay: float = 1.0,
        batch_max_rows: int = 20_000,
        max_queue: int = 1_000_000,
        spool_limit_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        write_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retry_delay: float = 0.5,
        max_retry_delay: float = 10.0,
        fsync: bool = True,
        connect: Connector | None = None,
    ) -> None:
        if dsn is None and connect is None:
            raise ValueError("CallLogWriter needs a dsn or a connect factory")
        self.dsn = dsn
        self.clock = clock
        self.batch_delay = batch_delay
        self.batch_max_rows = batch_max_rows
        self.max_queue = max_queue
        self.write_timeout = write_timeout
        self.connect_timeout = connect_timeout
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.spool_dir = Path(spool_dir)
        self._connect = connect or self._default_connect
        self.spool = Spool(
            self.spool_dir,
            limit_bytes=spool_limit_bytes,
            segment_bytes=segment_bytes,
            fsync=fsync,
            on_corrupt=self._on_corrupt,
        )
        self.stats = WriterStats()
        self._seq = SeqSource()
        self._queue: deque[tuple[TableSpec, Row]] = deque()
        self._first_at = 0.0
        self._pending: deque[_Batch] = deque()
        self._mem_rows = 0  # rows of pending batches held in memory
        self._batched_upto = 0
        self._acked_upto = 0
        self._flush_target = 0
        self._closing = False
        self._close_deadline: float | None = None
        self._batcher_done = False
        self._kick = asyncio.Event()  # batcher: a batch should be formed now
        self._ready = asyncio.Event()  # sender: a batch is pending
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False
        self._dropping = False
        self._spool_refusing = False
        self._conn: _Conn | None = None
        self._sql: dict[TableSpec, _SQL] = {}

    # ------------------------------------------------------------------------------ API
    def submit(self, record: LogRecord) -> None:
        """Queue a record for the call log. Never blocks, never raises for a full queue: a record
        that cannot be kept is counted in ``stats.dropped`` and logged as an error."""
        if self._done.is_set() or (self._closing and self._batcher_done):
            self.stats.dropped += 1
            log.error(
                "call log: a %s record was submitted after the writer closed; DROPPED", record.TABLE.name
            )
            return
        if len(self._queue) + self._mem_rows >= self.max_queue:
            self.stats.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.error(
                    "call log: memory queue full (%d rows) and the spool cannot take more; "
                    "DROPPING call-log records (see the 'dropped' metric)",
                    self.max_queue,
                )
            return
        spec = record.TABLE
        row = record.row()
        if spec.mode == "insert" and row[1] is None and spec.key[-1] == "seq":
            seq = self._seq.next(self.clock.now())
            row = (row[0], seq, *row[2:])
        if not self._queue:
            self._first_at = self.clock.monotonic()
        self._queue.append((spec, row))
        self.stats.submitted += 1
        self.stats.queued += 1
        if len(self._queue) == 1 or len(self._queue) >= self.batch_max_rows:
            self._kick.set()

    async def flush(self, *, timeout: float = 30.0) -> None:
        """Return when everything submitted before this call is in PostgreSQL;
        ``CallLogTimeoutError`` after ``timeout`` seconds (the records stay queued/spooled)."""
        target = self.stats.submitted
        self._flush_target = max(self._flush_target, target)
        self._kick.set()
        try:
            async with asyncio.timeout(timeout):
                while self._acked_upto < target:
                    if self._done.is_set():
                        raise CallLogTimeoutError("call-log writer stopped before the flush finished")
                    await self._changed_wait()
        except TimeoutError as exc:
            raise CallLogTimeoutError(
                f"call log not flushed within {timeout} s ({target - self._acked_upto} records "
                "still waiting; they stay in the queue/spool)"
            ) from exc

    async def close(self, *, timeout: float = 30.0) -> None:
        """Stop accepting work, write what can be written within ``timeout``, and end ``run()``.
        Batches not yet in PostgreSQL stay in the spool for the next start."""
        self._closing = True
        self._close_deadline = self.clock.monotonic() + timeout
        self._kick.set()
        self._ready.set()
        if not self._running:
            self._done.set()
            return
        try:
            async with asyncio.timeout(timeout + 5.0):
                await self._done.wait()
        except TimeoutError as exc:
            raise CallLogTimeoutError("call-log writer did not stop in time") from exc

    async def wait_for(self, predicate: Callable[[WriterStats], bool], *, timeout: float) -> None:
        """Wait until ``predicate(stats)`` holds (for tests and health checks)."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.stats):
                    await self._changed_wait()
        except TimeoutError as exc:
            raise CallLogTimeoutError(
                f"call-log writer state not reached within {timeout} s: {self.stats}"
            ) from exc

    async def run(self) -> None:
        """The background task: recover the spool, then batch and send until ``close()``."""
        self._running = True
        try:
            entries = await asyncio.to_thread(self.spool.open)
            for e in entries:
                self._pending.append(_Batch(e, None, 0, 0, replay=True))
            if entries:
                log.warning(
                    "call log: replaying %d batch(es) left in the spool by an earlier run", len(entries)
                )
            self._update_gauges()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._batcher())
                tg.create_task(self._sender())
        finally:
            await self._drop_conn()
            await asyncio.to_thread(self.spool.close)
            self._running = False
            self._done.set()
            self._notify()

    # ------------------------------------------------------------------------------ internals
    def _notify(self) -> None:
        self._update_gauges()
        ev = self._changed
        self._changed = asyncio.Event()
        ev.set()

    async def _changed_wait(self) -> None:
        await self._changed.wait()

    def _update_gauges(self) -> None:
        self.stats.queued = len(self._queue)
        self.stats.pending_batches = len(self._pending)
        self.stats.spool_bytes = self.spool.size_bytes
        self.stats.corrupt = self.spool.corrupt

    def _on_corrupt(self, err: SpoolCorruptError) -> None:
        log.error("call log: %s", err)

    def _urgent(self) -> bool:
        return (
            self._closing
            or self._flush_target > self._batched_upto
            or len(self._queue) >= self.batch_max_rows
        )

    async def _batcher(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._kick.clear()
                    if not self._queue and not self._closing:
                        await self._kick.wait()
                    continue
                if not self._urgent():
                    remaining = self._first_at + self.batch_delay - self.clock.monotonic()
                    if remaining > 0:
                        self._kick.clear()
                        await self._sleep_or_kick(remaining)
                        continue
                await self._form_batch()
        finally:
            self._batcher_done = True
            self._ready.set()

    async def _sleep_or_kick(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waiter = asyncio.ensure_future(self._kick.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waiter):
                t.cancel()
            await asyncio.gather(sleeper, waiter, return_exceptions=True)

    async def _form_batch(self) -> None:
        n = min(len(self._queue), self.batch_max_rows)
        q = self._queue
        items = [q.popleft() for _ in range(n)]
        if q:
            self._first_at = self.clock.monotonic()
        self._batched_upto += n
        upto = self._batched_upto
        groups = group_rows(items)
        rows = sum(len(g.rows) for g in groups)
        entry: Entry | None = None
        try:
            entry = await asyncio.to_thread(self._spool_append, groups)
            self.stats.spooled += 1
            if self._spool_refusing:
                self._spool_refusing = False
                log.warning("call log: the spool accepts batches again")
        except SpoolError as exc:
            self.stats.not_durable += 1
            self.stats.last_error = str(exc)
            if not self._spool_refusing:
                self._spool_refusing = True
                kind = "FULL" if isinstance(exc, SpoolFullError) else "FAILING"
                log.error("call log: spool %s, batches are held in memory only: %s", kind, exc)
        batch = _Batch(entry, groups, rows, upto)
        if entry is not None and self._mem_rows + rows > self.max_queue // 2:
            batch.groups = None  # durable in the spool; read back when its turn comes
        else:
            batch.in_memory = True
            self._mem_rows += rows
        if self._dropping and len(self._queue) + self._mem_rows < self.max_queue:
            self._dropping = False
            log.warning("call log: no longer dropping (%d dropped so far)", self.stats.dropped)
        self._pending.append(batch)
        self._ready.set()
        self._notify()

    def _spool_append(self, groups: list[Group]) -> Entry:
        return self.spool.append(encode_batch(groups))

    async def _sender(self) -> None:
        delay = self.retry_delay
        while True:
            if not self._pending:
                if self._closing and self._batcher_done:
                    return
                self._ready.clear()
                if not self._pending and not (self._closing and self._batcher_done):
                    await self._ready.wait()
                continue
            if self._past_deadline():
                log.warning("call log: closing with %d batch(es) left in the spool", len(self._pending))
                return
            batch = self._pending[0]
            groups = batch.groups
            if groups is None and batch.entry is not None:
                try:
                    groups = decode_batch(await asyncio.to_thread(self.spool.read, batch.entry))
                except SpoolError as exc:  # corrupt or unreadable: reported, counted, skipped
                    self.spool.corrupt += 1
                    log.error("call log: spooled batch %d cannot be read, skipped: %s", batch.entry.bn, exc)
                    await self._finish(batch)
                    continue
            if groups is None:
                groups = []
            try:
                await self._write(groups)
            except Exception as exc:  # classified by SQLSTATE / type; nothing escapes the writer
                if not _is_transient(exc):
                    await self._write_rows_one_by_one(groups, exc)
                    await self._finish(batch)
                    continue
                self._set_down(exc)
                await self._drop_conn()
                wait = delay
                if self._close_deadline is not None:
                    wait = min(wait, max(0.0, self._close_deadline - self.clock.monotonic()))
                await self.clock.sleep(wait)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            delay = self.retry_delay
            if not self.stats.db_up:
                self.stats.db_up = True
                if self.stats.last_error is not None:
                    log.warning("call log: PostgreSQL is back; writing the spooled batches")
            self.stats.written += sum(len(g.rows) for g in groups)
            self.stats.batches_written += 1
            if batch.replay:
                self.stats.replayed += 1
            await self._finish(batch)

    def _past_deadline(self) -> bool:
        return self._close_deadline is not None and self.clock.monotonic() >= self._close_deadline

    async def _finish(self, batch: _Batch) -> None:
        self._pending.popleft()
        if batch.in_memory:
            self._mem_rows -= batch.rows
        if batch.entry is not None:
            try:
                await asyncio.to_thread(self.spool.ack, batch.entry.bn)
            except SpoolError as exc:  # the batch is in PostgreSQL; a replay later is harmless
                log.error("call log: %s", exc)
        if batch.upto:
            self._acked_upto = max(self._acked_upto, batch.upto)
        self._notify()

    def _set_down(self, exc: BaseException) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        if self.stats.db_up or self.stats.last_error != msg:
            log.error(
                "call log: PostgreSQL write failed (%s); batches wait in the spool and are retried", msg
            )
        self.stats.db_up = False
        self.stats.last_error = msg
        self._notify()

    async def _default_connect(self) -> Any:
        return await asyncpg.connect(self.dsn, timeout=self.connect_timeout)

    async def _get_conn(self) -> _Conn:
        if self._conn is None:
            conn = await asyncio.wait_for(self._connect(), self.connect_timeout + 1.0)
            try:
                await conn.set_type_codec(
                    "timestamptz",
                    schema="pg_catalog",
                    encoder=_encode_ts,
                    decoder=_decode_ts,
                    format="tuple",
                )
            except Exception:
                with contextlib.suppress(Exception):
                    conn.terminate()
                raise
            self._conn = _Conn(conn)
        return self._conn

    async def _drop_conn(self) -> None:
        c, self._conn = self._conn, None
        if c is not None:
            try:
                await asyncio.wait_for(c.conn.close(), 2.0)
            except Exception:  # a dead link: just drop it
                c.conn.terminate()

    def _sql_for(self, spec: TableSpec) -> _SQL:
        sql = self._sql.get(spec)
        if sql is None:
            sql = self._sql[spec] = _SQL(spec)
        return sql

    async def _write(self, groups: list[Group]) -> None:
        c = await self._get_conn()
        try:
            async with asyncio.timeout(self.write_timeout):
                async with c.conn.transaction():
                    for g in groups:
                        await self._write_group(c, g)
        except Exception:
            c.stages.clear()  # a staging table created in the failed transaction is gone
            raise

    async def _write_group(self, c: _Conn, g: Group) -> None:
        sql = self._sql_for(g.spec)
        conn = c.conn
        cols = list(g.spec.column_names)
        if g.spec.mode == "insert":
            try:
                async with conn.transaction():  # a savepoint
                    await conn.copy_records_to_table(g.spec.name, records=g.rows, columns=cols)
                return
            except asyncpg.UniqueViolationError:
                pass  # a replay of rows already written: go through the staging table
        if sql.stage not in c.stages:
            await conn.execute(sql.create_stage)
            c.stages.add(sql.stage)
        await conn.copy_records_to_table(sql.stage, records=g.rows, columns=cols)
        await conn.execute(sql.merge)  # the stage empties itself at commit (ON COMMIT DELETE ROWS)

    async def _write_rows_one_by_one(self, groups: list[Group], first: BaseException) -> None:
        """PostgreSQL refused the batch for its content: keep every row it accepts, set aside the rest."""
        log.error("call log: PostgreSQL refused a batch (%s); retrying it row by row", first)
        rejected: list[tuple[TableSpec, Row, str]] = []
        try:
            c = await self._get_conn()
            for g in groups:
                for row in g.rows:
                    try:
                        async with asyncio.timeout(self.write_timeout), c.conn.transaction():
                            await self._write_group(c, Group(g.spec, [row]))
                    except Exception as exc:  # classified below
                        c.stages.clear()
                        if _is_transient(exc):
                            raise
                        rejected.append((g.spec, row, f"{type(exc).__name__}: {exc}"))
                    else:
                        self.stats.written += 1
        except Exception as exc:  # the link broke meanwhile: keep the whole batch aside, loudly
            log.error("call log: row-by-row retry failed (%s); the whole batch is set aside", exc)
            await self._drop_conn()
            rejected = [(g.spec, r, str(exc)) for g in groups for r in g.rows]
        if rejected:
            self.stats.rejected += len(rejected)
            path = await asyncio.to_thread(self._save_rejected, rejected)
            log.error("call log: %d row(s) refused by PostgreSQL were saved in %s", len(rejected), path)

    def _save_rejected(self, rejected: list[tuple[TableSpec, Row, str]]) -> Path:
        d = private_dir(self.spool_dir / "rejected")  # call rows: 0700, each file 0600
        path = d / f"rejected-{time.time_ns()}.jsonl"
        lines = (
            json.dumps({"table": spec.name, "columns": spec.column_names, "row": row, "error": why}) + "\n"
            for spec, row, why in rejected
        )
        write_private(path, "".join(lines).encode())
        return path
