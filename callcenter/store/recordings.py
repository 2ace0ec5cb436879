"""Shell: the recordings index the retention purge reads and marks."""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)


class PgPurgeStore:
    """``PurgeStore`` on the call log's ``recordings`` table (asyncpg, bounded by ``timeout``)."""

    def __init__(self, dsn: str, *, timeout: float = 30.0) -> None:
        self.dsn = dsn
        self.timeout = timeout

    async def expired(self, before: float) -> list[tuple[str, str]]:
        conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
        try:
            rows = await conn.fetch(
                "SELECT recording_id, path FROM recordings WHERE deleted_at IS NULL AND path IS NOT NULL"
                " AND started_at < to_timestamp($1) ORDER BY started_at",
                before,
                timeout=self.timeout,
            )
        finally:
            await conn.close(timeout=self.timeout)
        return [(r["recording_id"], r["path"]) for r in rows]

    async def mark_deleted(self, recording_ids: list[str], at: float) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
        try:
            await conn.execute(
                "UPDATE recordings SET deleted_at = to_timestamp($2) WHERE recording_id = ANY($1::text[])",
                recording_ids,
                at,
                timeout=self.timeout,
            )
        finally:
            await conn.close(timeout=self.timeout)
