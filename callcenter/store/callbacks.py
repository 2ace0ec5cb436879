"""Shell: the pending callbacks in PostgreSQL (``CallbackStore``): asked for once, kept across
restarts, ended exactly once, never for a number on a do-not-call list (the center's, table
``dnc`` with ``campaign_id = ''``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from callcenter.errors import StoreError
from callcenter.ports import StoredCallback

_ON_DNC = "EXISTS (SELECT 1 FROM dnc d WHERE d.phone = {number} AND d.campaign_id = '')"


def _ts(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, tz=dt.UTC)


class PgCallbackStore:
    """``CallbackStore`` over a connection pool made at first use (``close()`` ends it)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None

    async def _conn(self, timeout: float) -> Any:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=2, timeout=timeout)
        return self._pool.acquire(timeout=timeout)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def add(self, callback: StoredCallback, *, timeout: float) -> bool:
        sql = f"""
            INSERT INTO callbacks (call_id, queue, number, priority, queued_at, attempts, next_at)
            SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT {_ON_DNC.format(number="$3")}
            ON CONFLICT (call_id) DO NOTHING
            RETURNING call_id"""
        try:
            async with await self._conn(timeout) as conn:
                added = await conn.fetchval(
                    sql,
                    callback.call_id,
                    callback.queue,
                    callback.number,
                    callback.priority,
                    _ts(callback.queued_at),
                    callback.attempts,
                    _ts(callback.next_at),
                    timeout=timeout,
                )
                if added is not None:
                    return True
                # Already asked for (the same call again) is fine; refused only for the DNC list.
                known = await conn.fetchval(
                    "SELECT 1 FROM callbacks WHERE call_id = $1", callback.call_id, timeout=timeout
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreError(f"callback store: {exc!r}") from exc
        return known is not None

    async def progress(
        self, call_id: str, state: str, *, attempts: int, next_at: float | None, timeout: float
    ) -> None:
        try:
            async with await self._conn(timeout) as conn:
                await conn.execute(
                    """UPDATE callbacks SET state = $2, attempts = $3, next_at = $4, updated_at = now()
                       WHERE call_id = $1 AND state = 'pending'""",
                    call_id,
                    state,
                    attempts,
                    _ts(next_at),
                    timeout=timeout,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreError(f"callback store: {exc!r}") from exc

    async def pending(self, *, timeout: float) -> list[StoredCallback]:
        cancel = f"""UPDATE callbacks c SET state = 'cancelled', updated_at = now()
                     WHERE c.state = 'pending' AND {_ON_DNC.format(number="c.number")}"""  # noqa: S608
        try:
            async with await self._conn(timeout) as conn, conn.transaction():
                await conn.execute(cancel, timeout=timeout)
                rows = await conn.fetch(
                    """SELECT call_id, queue, number, priority, extract(epoch FROM queued_at) AS q,
                              attempts, extract(epoch FROM next_at) AS n
                       FROM callbacks WHERE state = 'pending' ORDER BY queued_at""",
                    timeout=timeout,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreError(f"callback store: {exc!r}") from exc
        return [
            StoredCallback(
                r["call_id"],
                r["queue"],
                r["number"],
                float(r["q"]),
                int(r["priority"]),
                int(r["attempts"]),
                None if r["n"] is None else float(r["n"]),
            )
            for r in rows
        ]
