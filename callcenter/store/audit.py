"""Shell: the audit log of mutating HTTP requests in PostgreSQL (``AuditSink``) and its reader."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from callcenter.errors import StoreError
from callcenter.web.auth import AuditEntry


class PgAudit:
    """``AuditSink`` over a connection pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def record(self, entry: AuditEntry, *, timeout: float) -> None:
        try:
            async with self.pool.acquire(timeout=timeout) as conn:
                await conn.execute(
                    "INSERT INTO audit_log (who, role, client, action, method, path, target, status, code)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    entry.who,
                    entry.role,
                    entry.client,
                    entry.action,
                    entry.method,
                    entry.path,
                    entry.target,
                    entry.status,
                    entry.code,
                    timeout=timeout,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"audit log not written: {exc}", code="audit_unavailable") from exc


async def entries(conn: Any, *, since: dt.datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The newest ``limit`` entries at or after ``since``, oldest first."""
    rows = await conn.fetch(
        "SELECT * FROM (SELECT at, who, role, client, action, method, path, target, status, code"
        " FROM audit_log WHERE $1::timestamptz IS NULL OR at >= $1 ORDER BY id DESC LIMIT $2) r"
        " ORDER BY at",
        since,
        limit,
    )
    return [dict(r) for r in rows]
