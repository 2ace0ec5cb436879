"""Shell: every SQL statement of the outbound dialer: campaigns, contacts, attempts and the DNC list."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from callcenter.errors import (
    CampaignError,
    StoreError,
)
from callcenter.outbound.contacts import Contact, DncList
from callcenter.outbound.dialer import (
    DAY,
    Attempt,
    CampaignState,
    ContactStatus,
    Outcome,
)
from callcenter.outbound.runtime import CampaignRuntime

log = logging.getLogger(__name__)


def _ts(value: float | None) -> Any:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _unix(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


@dataclass(frozen=True)
class StoredContact:
    contact: Contact
    status: ContactStatus
    attempts: int
    next_at: float | None
    last_outcome: Outcome | None


@dataclass(frozen=True)
class CampaignSnapshot:
    state: CampaignState
    contacts: list[StoredContact]
    lost_attempts: list[str]
    """Contact keys whose attempt was in flight when the last controller stopped (now ``unknown``)."""
    live_history: list[tuple[float, bool]]
    resolved_history: list[tuple[float, bool]]
    dnc: DncList


class CampaignStore:
    """Campaign tables (migration 0003) over an asyncpg pool; every call bounded by ``timeout``."""

    def __init__(self, pool: Any, *, timeout: float = 5.0) -> None:
        self.pool = pool
        self.timeout = timeout

    @classmethod
    async def connect(
        cls, dsn: str, *, timeout: float = 5.0, min_size: int = 1, max_size: int = 4
    ) -> CampaignStore:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=timeout)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot reach the campaign database: {exc}") from exc
        return cls(pool, timeout=timeout)

    async def close(self) -> None:
        await asyncio.wait_for(self.pool.close(), self.timeout)

    async def _run(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                return await fn(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreError(f"campaign store: {exc!r}") from exc

    async def upsert_campaign(self, runtime: CampaignRuntime, *, state: CampaignState | None = None) -> None:
        s = runtime.settings
        blob = json.dumps(
            {
                "caller_id": runtime.caller_id,
                "trunk": runtime.trunk,
                "queue": runtime.queue,
                "window": [s.window.start.isoformat(), s.window.end.isoformat(), sorted(s.window.days)],
                "abandon_limit": s.pacing.abandon_limit,
                "abandon_window": s.abandon_window,
            }
        )

        async def go(conn: Any) -> None:
            await conn.execute(
                """INSERT INTO campaigns (campaign_id, name, mode, state, max_attempts, timezone, settings,
                                          enabled)
                   VALUES ($1, $2, $3, COALESCE($4, 'running'), $5, $6, $7::jsonb, $8)
                   ON CONFLICT (campaign_id) DO UPDATE SET name = EXCLUDED.name, mode = EXCLUDED.mode,
                     max_attempts = EXCLUDED.max_attempts, timezone = EXCLUDED.timezone,
                     settings = EXCLUDED.settings, state = COALESCE($4, campaigns.state),
                     enabled = EXCLUDED.enabled, updated_at = now()""",
                s.name,
                runtime.name or s.name,
                s.mode.value,
                state.value if state else None,
                s.max_attempts,
                runtime.timezone,
                blob,
                runtime.enabled,
                timeout=self.timeout,
            )

        await self._run(go)

    async def ensure_campaign(self, campaign_id: str, *, timezone: str = "UTC") -> None:
        """Create a bare campaign row if none exists (CLI import before the service ever ran)."""

        async def go(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO campaigns (campaign_id, timezone) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                campaign_id,
                timezone,
                timeout=self.timeout,
            )

        await self._run(go)

    async def import_contacts(self, campaign_id: str, contacts: Iterable[Contact]) -> int:
        """Insert contacts (a key or number already in the campaign is skipped); returns how many."""
        rows = [
            (campaign_id, c.key, c.phone, c.name, list(c.zones), json.dumps(dict(c.data)), c.line)
            for c in contacts
        ]

        async def go(conn: Any) -> int:
            async with conn.transaction():
                before = await conn.fetchval(
                    "SELECT count(*) FROM campaign_contacts WHERE campaign_id = $1",
                    campaign_id,
                    timeout=self.timeout,
                )
                await conn.executemany(
                    """INSERT INTO campaign_contacts
                         (campaign_id, contact_key, phone, name, zones, data, source_line)
                       VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT DO NOTHING""",
                    rows,
                    timeout=max(self.timeout, len(rows) / 2000),
                )
                after = await conn.fetchval(
                    "SELECT count(*) FROM campaign_contacts WHERE campaign_id = $1",
                    campaign_id,
                    timeout=self.timeout,
                )
            return int(after) - int(before)

        return int(await self._run(go))

    async def add_dnc(self, numbers: Iterable[str], *, campaign_id: str = "", source: str = "") -> None:
        rows = [(campaign_id, n, source) for n in numbers]

        async def go(conn: Any) -> None:
            await conn.executemany(
                "INSERT INTO dnc (campaign_id, phone, source) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                rows,
                timeout=self.timeout,
            )

        await self._run(go)

    async def dnc(self, campaign_id: str) -> DncList:
        async def go(conn: Any) -> DncList:
            rows = await conn.fetch(
                "SELECT phone FROM dnc WHERE campaign_id IN ('', $1)", campaign_id, timeout=self.timeout
            )
            return DncList(frozenset(r["phone"] for r in rows))

        result: DncList = await self._run(go)
        return result

    async def campaign_ids(self) -> list[str]:
        """Every campaign the database knows, by id."""

        async def go(conn: Any) -> list[str]:
            return [
                r["campaign_id"] for r in await conn.fetch("SELECT campaign_id FROM campaigns ORDER BY 1")
            ]

        ids: list[str] = await self._run(go)
        return ids

    async def states(self, campaign_ids: list[str]) -> dict[str, CampaignState]:
        async def go(conn: Any) -> dict[str, CampaignState]:
            rows = await conn.fetch(
                "SELECT campaign_id, state FROM campaigns WHERE campaign_id = ANY($1::text[])",
                campaign_ids,
                timeout=self.timeout,
            )
            return {r["campaign_id"]: CampaignState(r["state"]) for r in rows}

        result: dict[str, CampaignState] = await self._run(go)
        return result

    async def set_state(self, campaign_id: str, state: CampaignState) -> CampaignState:
        """Change a campaign's state; a stopped campaign stays stopped. Returns the state now stored."""

        async def go(conn: Any) -> CampaignState | None:
            row = await conn.fetchrow(
                """UPDATE campaigns SET state = $2, updated_at = now()
                   WHERE campaign_id = $1 AND (state <> 'stopped' OR $2 = 'stopped') RETURNING state""",
                campaign_id,
                state.value,
                timeout=self.timeout,
            )
            if row is None:
                current = await conn.fetchval(
                    "SELECT state FROM campaigns WHERE campaign_id = $1", campaign_id, timeout=self.timeout
                )
                if current is None:
                    raise CampaignError(
                        f"no campaign {campaign_id!r}", campaign=campaign_id, code="no_campaign"
                    )
                raise CampaignError(
                    f"campaign {campaign_id!r} is stopped", campaign=campaign_id, code="campaign_stopped"
                )
            return CampaignState(row["state"])

        result: CampaignState = await self._run(go)
        return result

    async def load(self, campaign_id: str, *, now: float, window: float) -> CampaignSnapshot:
        """Everything a (re)starting dialer needs. Attempts left open by a previous controller are
        closed as ``unknown`` here (their contacts come back ``dialing``)."""

        async def go(conn: Any) -> CampaignSnapshot:
            async with conn.transaction():
                state = await conn.fetchval(
                    "SELECT state FROM campaigns WHERE campaign_id = $1", campaign_id, timeout=self.timeout
                )
                if state is None:
                    raise CampaignError(
                        f"no campaign {campaign_id!r}", campaign=campaign_id, code="no_campaign"
                    )
                lost = await conn.fetch(
                    """UPDATE campaign_attempts
                       SET outcome = 'unknown', ended_at = $2, reason = 'controller restarted'
                       WHERE campaign_id = $1 AND outcome IS NULL RETURNING contact_key""",
                    campaign_id,
                    _ts(now),
                    timeout=self.timeout,
                )
                rows = await conn.fetch(
                    """SELECT contact_key, phone, name, zones, data, source_line, status, attempts, next_at,
                              last_outcome
                       FROM campaign_contacts WHERE campaign_id = $1
                       ORDER BY source_line NULLS LAST, contact_key""",
                    campaign_id,
                    timeout=max(self.timeout, 30.0),
                )
                live = await conn.fetch(
                    """SELECT person_at, outcome = 'abandoned' AS abandoned FROM campaign_attempts
                       WHERE campaign_id = $1 AND person_at > $2 AND outcome IN ('connected', 'abandoned')
                       ORDER BY person_at""",
                    campaign_id,
                    _ts(now - window),
                    timeout=self.timeout,
                )
                resolved = await conn.fetch(
                    """SELECT EXTRACT(EPOCH FROM COALESCE(person_at, ended_at) - started_at) AS seconds,
                              person_at IS NOT NULL AS human
                       FROM campaign_attempts
                       WHERE campaign_id = $1 AND outcome IS NOT NULL AND outcome <> 'unknown'
                       ORDER BY started_at DESC LIMIT 1000""",
                    campaign_id,
                    timeout=self.timeout,
                )
                dnc_rows = await conn.fetch(
                    "SELECT phone FROM dnc WHERE campaign_id IN ('', $1)", campaign_id, timeout=self.timeout
                )
            contacts = [
                StoredContact(
                    Contact(
                        key=r["contact_key"],
                        phone=r["phone"],
                        zones=tuple(r["zones"]),
                        name=r["name"],
                        data=json.loads(r["data"]) if isinstance(r["data"], str) else dict(r["data"] or {}),
                        line=r["source_line"] or 0,
                    ),
                    ContactStatus(r["status"]),
                    int(r["attempts"]),
                    _unix(r["next_at"]),
                    Outcome(r["last_outcome"]) if r["last_outcome"] else None,
                )
                for r in rows
            ]
            return CampaignSnapshot(
                CampaignState(state),
                contacts,
                [r["contact_key"] for r in lost],
                [(float(r["person_at"].timestamp()), bool(r["abandoned"])) for r in live],
                [
                    (float(r["seconds"]), bool(r["human"]))
                    for r in reversed(resolved)
                    if r["seconds"] is not None
                ],
                DncList(frozenset(r["phone"] for r in dnc_rows)),
            )

        result: CampaignSnapshot = await self._run(go)
        return result

    async def record_attempt(self, attempt: Attempt, *, channel_id: str) -> None:
        """Spend the contact's attempt and insert the attempt row, in one transaction, BEFORE the
        Originate. Refused (``CampaignError``, code ``attempt_refused`` or ``dnc``) when the campaign
        is not running or is disabled in the config, the count moved, the maximum is reached, the
        number is on a DNC list, or the attempt's time is outside the campaign's calling window in
        any of the contact's zones (the window ``upsert_campaign`` stored)."""

        async def go(conn: Any) -> str | None:
            async with conn.transaction():
                phone = await conn.fetchval(
                    """UPDATE campaign_contacts c SET attempts = $3, status = 'dialing', next_at = NULL
                       FROM campaigns k
                       WHERE c.campaign_id = $1 AND c.contact_key = $2 AND k.campaign_id = c.campaign_id
                         AND c.attempts = $3 - 1 AND $3 <= k.max_attempts
                         AND k.state = 'running' AND k.enabled
                         AND c.status IN ('pending', 'previewing')
                         AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone = c.phone
                                         AND d.campaign_id IN ('', c.campaign_id))
                         AND NOT EXISTS (  -- the calling window, in every zone of the contact
                           SELECT 1 FROM unnest(c.zones) AS z(zone),
                                LATERAL (SELECT $4::timestamptz AT TIME ZONE z.zone AS t) l
                           WHERE NOT ((extract(isodow FROM l.t)::int - 1)::text IN (
                                        SELECT jsonb_array_elements_text(k.settings -> 'window' -> 2))
                                      AND l.t::time >= (k.settings -> 'window' ->> 0)::time
                                      AND l.t::time < (k.settings -> 'window' ->> 1)::time))
                       RETURNING c.phone""",
                    attempt.campaign,
                    attempt.contact.key,
                    attempt.number,
                    _ts(attempt.started_at),
                    timeout=self.timeout,
                )
                if phone is None:
                    return "refused"
                await conn.execute(
                    """INSERT INTO campaign_attempts (attempt_id, campaign_id, contact_key, phone, attempt_no,
                                                      agent_id, channel_id, started_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                    attempt.attempt_id,
                    attempt.campaign,
                    attempt.contact.key,
                    phone,
                    attempt.number,
                    attempt.agent_id,
                    channel_id,
                    _ts(attempt.started_at),
                    timeout=self.timeout,
                )
            return None

        async def why(conn: Any) -> bool:
            on_dnc = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM dnc WHERE phone = $2 AND campaign_id IN ('', $1))",
                attempt.campaign,
                attempt.contact.phone,
                timeout=self.timeout,
            )
            if on_dnc:
                await conn.execute(
                    "UPDATE campaign_contacts SET status = 'dnc' WHERE campaign_id = $1 AND contact_key = $2",
                    attempt.campaign,
                    attempt.contact.key,
                    timeout=self.timeout,
                )
            return bool(on_dnc)

        if await self._run(go) is None:
            return
        on_dnc = await self._run(why)
        raise CampaignError(
            f"attempt {attempt.number} on {attempt.contact.key!r} refused",
            campaign=attempt.campaign,
            code="dnc" if on_dnc else "attempt_refused",
        )

    async def record_person(self, attempt_id: str, at: float) -> None:
        async def go(conn: Any) -> None:
            await conn.execute(
                "UPDATE campaign_attempts SET person_at = $2 WHERE attempt_id = $1 AND person_at IS NULL",
                attempt_id,
                _ts(at),
                timeout=self.timeout,
            )

        await self._run(go)

    async def record_outcome(
        self,
        attempt_id: str,
        *,
        campaign_id: str,
        contact_key: str,
        outcome: Outcome,
        at: float,
        status: ContactStatus,
        next_at: float | None,
        attempts: int,
        agent_id: str | None = None,
        reason: str | None = None,
        person_at: float | None = None,
    ) -> None:
        async def go(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(
                    """UPDATE campaign_attempts SET outcome = $2, ended_at = $3,
                              agent_id = COALESCE($4, agent_id), reason = COALESCE($5, reason),
                              person_at = COALESCE(person_at, $6),
                              connected_at = CASE WHEN $2 = 'connected' THEN $3 ELSE connected_at END
                       WHERE attempt_id = $1""",
                    attempt_id,
                    outcome.value,
                    _ts(at),
                    agent_id,
                    reason,
                    _ts(person_at),
                    timeout=self.timeout,
                )
                await conn.execute(
                    """UPDATE campaign_contacts SET status = $3, next_at = $4, last_outcome = $5,
                              attempts = GREATEST(attempts, $6)
                       WHERE campaign_id = $1 AND contact_key = $2""",
                    campaign_id,
                    contact_key,
                    status.value,
                    _ts(next_at),
                    outcome.value,
                    attempts,
                    timeout=self.timeout,
                )

        await self._run(go)

    async def unrecord_attempt(self, attempt: Attempt, *, next_at: float) -> None:
        """Undo ``record_attempt`` for an Originate that was certainly never sent."""

        async def go(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(
                    "DELETE FROM campaign_attempts WHERE attempt_id = $1 AND outcome IS NULL",
                    attempt.attempt_id,
                    timeout=self.timeout,
                )
                await conn.execute(
                    """UPDATE campaign_contacts SET attempts = attempts - 1, status = 'pending', next_at = $4
                       WHERE campaign_id = $1 AND contact_key = $2 AND attempts = $3""",
                    attempt.campaign,
                    attempt.contact.key,
                    attempt.number,
                    _ts(next_at),
                    timeout=self.timeout,
                )

        await self._run(go)

    async def release_contact(
        self, campaign_id: str, contact_key: str, *, status: ContactStatus, next_at: float
    ) -> None:
        """Put a contact back after a restart or a refused attempt (no attempt spent here)."""

        async def go(conn: Any) -> None:
            await conn.execute(
                """UPDATE campaign_contacts SET status = $3, next_at = $4
                   WHERE campaign_id = $1 AND contact_key = $2""",
                campaign_id,
                contact_key,
                status.value,
                _ts(next_at),
                timeout=self.timeout,
            )

        await self._run(go)

    async def status(self, campaign_id: str, *, now: float) -> dict[str, Any]:
        """What ``callcenter campaign status`` shows."""

        async def go(conn: Any) -> dict[str, Any]:
            row = await conn.fetchrow(
                """SELECT campaign_id, name, mode, state, max_attempts, settings
                   FROM campaigns WHERE campaign_id = $1""",
                campaign_id,
                timeout=self.timeout,
            )
            if row is None:
                raise CampaignError(f"no campaign {campaign_id!r}", campaign=campaign_id, code="no_campaign")
            settings = (
                json.loads(row["settings"]) if isinstance(row["settings"], str) else dict(row["settings"])
            )
            window = float(settings.get("abandon_window", 30 * DAY))
            statuses = await conn.fetch(
                "SELECT status, count(*) AS n FROM campaign_contacts WHERE campaign_id = $1 GROUP BY status",
                campaign_id,
                timeout=self.timeout,
            )
            outcomes = await conn.fetch(
                """SELECT COALESCE(outcome, 'in_flight') AS outcome, count(*) AS n FROM campaign_attempts
                   WHERE campaign_id = $1 GROUP BY 1""",
                campaign_id,
                timeout=self.timeout,
            )
            live = await conn.fetchrow(
                """SELECT count(*) AS live, count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned
                   FROM campaign_attempts WHERE campaign_id = $1 AND person_at > $2
                   AND outcome IN ('connected', 'abandoned')""",
                campaign_id,
                _ts(now - window),
                timeout=self.timeout,
            )
            return {
                "campaign": row["campaign_id"],
                "name": row["name"],
                "mode": row["mode"],
                "state": row["state"],
                "max_attempts": row["max_attempts"],
                "contacts": {r["status"]: int(r["n"]) for r in statuses},
                "attempts": {r["outcome"]: int(r["n"]) for r in outcomes},
                "live_answered": int(live["live"]),
                "abandoned": int(live["abandoned"]),
                "abandonment_rate": (int(live["abandoned"]) / int(live["live"])) if live["live"] else 0.0,
                "abandon_window_days": window / DAY,
            }

        result: dict[str, Any] = await self._run(go)
        return result
