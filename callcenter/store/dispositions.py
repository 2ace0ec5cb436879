"""Shell: the SQL of dispositions (wrap-up codes) and of the agent's screen pop.

- ``disposition_counts``: calls per code, grouped by queue, campaign and agent, over a window of
  the disposition's time (``call_dispositions.at``), optionally only some queues or agents;
  ``callcenter.reporting.dispositions.shares`` makes report rows of them.
- ``call_context``: what the call log knows of one call for the agent's screen: the number dialled,
  the caller's number, when it started, and its IVR path (the ``ivr_node`` events in order).
- ``recent_calls``: the caller's previous calls (first-contact-resolution context) with their
  queue, agent, outcome and disposition.

Everything from a request travels as a bind parameter.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from callcenter.errors import StoreError

_COUNTS_SQL = """
SELECT dim.dimension, dim.name, coalesce(d.code, 'none') AS code,
       coalesce(max(d.label) FILTER (WHERE d.outcome = 'given'), '') AS label,
       count(*) AS calls
  FROM call_dispositions d
  CROSS JOIN LATERAL (VALUES ('queue', d.queue), ('campaign', d.campaign_id), ('agent', d.agent_id))
       AS dim(dimension, name)
 WHERE d.at >= $1 AND d.at < $2
   AND dim.name IS NOT NULL
   AND ($3::text[] IS NULL OR d.queue = ANY($3))
   AND ($4::text[] IS NULL OR d.agent_id = ANY($4))
 GROUP BY dim.dimension, dim.name, coalesce(d.code, 'none')
"""

_CONTEXT_SQL = """
SELECT did, caller_number, started_at, direction, campaign_id FROM calls WHERE call_id = $1
"""

_PATH_SQL = """
SELECT node, detail FROM call_events WHERE call_id = $1 AND kind = 'ivr_node' ORDER BY seq LIMIT 50
"""

_RECENT_SQL = """
SELECT c.call_id, c.started_at, c.direction, c.queue, c.agent_id, c.disposition AS outcome,
       c.talk_seconds, d.code, d.label, d.notes
  FROM calls c
  LEFT JOIN LATERAL (SELECT code, label, notes FROM call_dispositions x
                      WHERE x.call_id = c.call_id ORDER BY x.at DESC NULLS LAST LIMIT 1) d ON true
 WHERE c.caller_number = $1 AND c.call_id <> $2 AND c.started_at IS NOT NULL
 ORDER BY c.started_at DESC
 LIMIT $3
"""


def _arr(values: Sequence[str] | None) -> list[str] | None:
    return list(values) if values else None


async def disposition_counts(
    conn: Any,
    start: dt.datetime,
    end: dt.datetime,
    *,
    queues: Sequence[str] | None = None,
    agents: Sequence[str] | None = None,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """``{dimension, name, code, label, calls}`` for every (queue | campaign | agent, code)."""
    rows = await conn.fetch(_COUNTS_SQL, start, end, _arr(queues), _arr(agents), timeout=timeout)
    return [
        {
            "dimension": r["dimension"],
            "name": r["name"],
            "code": r["code"],
            "label": r["label"],
            "calls": int(r["calls"]),
        }
        for r in rows
    ]


async def call_context(conn: Any, call_id: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The call log's view of ``call_id`` (empty values when it has not landed yet)."""
    row = await conn.fetchrow(_CONTEXT_SQL, call_id, timeout=timeout)
    path = []
    for r in await conn.fetch(_PATH_SQL, call_id, timeout=timeout):
        detail = r["detail"]
        if isinstance(detail, str):
            detail = json.loads(detail)
        detail = detail if isinstance(detail, dict) else {}
        path.append(
            {
                "node": r["node"],
                "type": detail.get("type"),
                "outcome": detail.get("outcome"),
                "input": detail.get("input"),
            }
        )
    return {
        "did": row["did"] if row else None,
        "caller_number": row["caller_number"] if row else None,
        "started_at": row["started_at"].timestamp() if row and row["started_at"] else None,
        "ivr_path": path,
    }


async def recent_calls(
    conn: Any, caller_number: str, *, exclude: str, limit: int = 5, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The caller's last ``limit`` calls before this one, newest first."""
    rows = await conn.fetch(_RECENT_SQL, caller_number, exclude, limit, timeout=timeout)
    return [
        {
            "call_id": r["call_id"],
            "started_at": r["started_at"].timestamp(),
            "direction": r["direction"],
            "queue": r["queue"],
            "agent_id": r["agent_id"],
            "outcome": r["outcome"],
            "talk_seconds": None if r["talk_seconds"] is None else round(float(r["talk_seconds"])),
            "disposition": r["code"],
            "disposition_label": r["label"],
            "notes": r["notes"],
        }
        for r in rows
    ]


async def dispositions_of(conn: Any, call_id: str, *, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The dispositions stored for one call (one per agent who handled it)."""
    rows = await conn.fetch(
        "SELECT agent_id, queue, campaign_id, code, label, notes, outcome, given_by, at"
        " FROM call_dispositions WHERE call_id = $1 ORDER BY at",
        call_id,
        timeout=timeout,
    )
    return [dict(r) for r in rows]


class PgCallHistory:
    """The ``CallHistory`` seam over a pool; database failures become ``StoreError``."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def _run(self, fn: Any, *args: Any, timeout: float, **kw: Any) -> Any:
        try:
            async with self.pool.acquire(timeout=timeout) as conn:
                return await fn(conn, *args, timeout=timeout, **kw)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"the call log is not readable: {exc}", code="store_unavailable") from exc

    async def call_context(self, call_id: str, *, timeout: float) -> Mapping[str, Any]:
        result: Mapping[str, Any] = await self._run(call_context, call_id, timeout=timeout)
        return result

    async def recent_calls(
        self, caller_number: str, *, exclude: str, limit: int, timeout: float
    ) -> list[Mapping[str, Any]]:
        result: list[Mapping[str, Any]] = await self._run(
            recent_calls, caller_number, exclude=exclude, limit=limit, timeout=timeout
        )
        return result

    async def disposition_counts(
        self,
        start: float,
        end: float,
        *,
        queues: Iterable[str] | None,
        agents: Iterable[str] | None,
        timeout: float,
    ) -> list[Mapping[str, Any]]:
        result: list[Mapping[str, Any]] = await self._run(
            disposition_counts,
            dt.datetime.fromtimestamp(start, dt.UTC),
            dt.datetime.fromtimestamp(end, dt.UTC),
            queues=list(queues) if queues else None,
            agents=list(agents) if agents else None,
            timeout=timeout,
        )
        return result
