"""Shell: what the ACD reads back after a restart: agents' last states and the calls still queued."""

from __future__ import annotations

import asyncpg

from callcenter.ports import StoredCall, StoredState


class PgACDStore:
    """``ACDStore`` on the call log (asyncpg): agents' last states, open queued calls."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def load(self, *, timeout: float) -> StoredState:
        conn = await asyncpg.connect(self.dsn, timeout=timeout)
        try:
            agent_rows = await conn.fetch(
                "SELECT DISTINCT ON (agent_id) agent_id, state, reason FROM agent_states"
                " ORDER BY agent_id, seq DESC",
                timeout=timeout,
            )
            open_rows = await conn.fetch(
                "SELECT call_id FROM calls"
                " WHERE disposition IS NULL AND direction IS DISTINCT FROM 'outbound'",
                timeout=timeout,
            )
            call_rows = await conn.fetch(
                "SELECT call_id, COALESCE(overflow_queue, queue) AS queue,"
                " extract(epoch FROM queued_at) AS q, COALESCE(priority, 0) AS priority, language FROM calls"
                " WHERE ended_at IS NULL AND queued_at IS NOT NULL AND queue IS NOT NULL",
                timeout=timeout,
            )
        finally:
            await conn.close(timeout=timeout)
        return StoredState(
            agents={r["agent_id"]: (r["state"], r["reason"]) for r in agent_rows},
            calls={
                r["call_id"]: StoredCall(
                    r["call_id"], r["queue"], float(r["q"]), int(r["priority"]), r["language"]
                )
                for r in call_rows
            },
            open_calls=tuple(r["call_id"] for r in open_rows),
        )
