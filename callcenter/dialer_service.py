"""Shell: runs outbound campaigns on the PBX: records attempts, Originates, follows outcomes.

One ``DialerService`` drives every campaign of the center. Its loop, every ``tick`` seconds:
ask the pure ``Dialer`` of each running campaign how many lines to place (``AgentPool.load`` says
how many agents are free or busy), then for each attempt:

1. record it in PostgreSQL (``CampaignStore.record_attempt``) in one transaction that also spends
   the contact's attempt, and refuses when the campaign is not running, the contact's attempt
   count moved, the maximum is reached or the number is on a do-not-call list. Only once that is
   committed:
2. send an async ``Originate`` of ``PJSIP/<E.164>@<trunk>`` into ``cc-outbound`` with a ``ChannelId``
   derived from the attempt id and the channel variables ``CC_CAMPAIGN``, ``CC_ATTEMPT_ID``,
   ``CC_AMD`` and ``CC_AMD_MESSAGE``. A refused Originate is outcome ``failed``; one whose fate was
   lost (AMI link dropped or timed out after it was written) is ``unknown`` and never re-sent.

So a controller that dies between 1 and 2, or during the call, finds the attempt in the database
at restart: the attempt counts, its outcome is ``unknown`` and the contact waits its retry delay;
a contact is never dialled twice by a restart.

Outcomes come from three places:

- ``OriginateResponse`` (matched by ``Uniqueid`` = our ChannelId): ``Failure`` with ``Reason`` 3/1
  -> no answer, 5 -> busy, 0/8/other -> failed. ``Success``: the callee answered; the dialplan
  runs ``AMD()``.
- the FastAGI route ``outbound`` (``outbound_agi``), run by ``cc-outbound`` after AMD: a person
  (``HUMAN`` or ``NOTSURE``, or AMD off) -> ``on_person``: ``AgentPool.connect`` has
  ``connect_within`` (2 s) to put an agent on the line, else the call is abandoned: the
  identification prompt is played and the call hung up. ``MACHINE`` -> the campaign's message is
  played (``machine_message``) or the call is hung up (``machine``, retried).
- ``Hangup`` of an answered channel that never reached the AGI: AMD said machine and the
  dialplan dealt with it -> ``machine_message`` if the campaign leaves a message, else ``machine``.

The expected ``cc-outbound`` (rendered from ``asterisk-conf/``): ``s,1`` ``GotoIf`` on
``${CC_AMD}`` = 0 to the AGI, else ``AMD()``; ``${AMDSTATUS}`` = ``MACHINE`` -> ``Playback`` of
``${CC_AMD_MESSAGE}`` when set, then ``Hangup``; otherwise ``AGI(agi://<controller>/outbound)``,
then ``Hangup``.

Pause / resume / stop: ``pause(id)`` etc. here (the API) or ``callcenter campaign pause ID``
(the CLI writes ``campaigns.state``; the service polls it every ``state_poll`` seconds, and the
attempt transaction itself refuses a campaign that is not running).

Seams: ``ami`` (anything with ``send_action`` and ``subscribe``, e.g. ``AMIClient``), ``agents``
(``AgentPool``: the ACD's side), ``store`` (``CampaignStore`` over an asyncpg pool), ``clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import posixpath
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.campaigns import Contact, DncList, ImportResult, RowProblem, parse_contacts, parse_dnc
from callcenter.clock import Clock, RealClock
from callcenter.config.model import prompt_sound
from callcenter.dialer import (
    DAY,
    AgentLoad,
    Attempt,
    CallingWindow,
    CampaignSettings,
    CampaignState,
    ContactState,
    ContactStatus,
    Dialer,
    Mode,
    Outcome,
    PacingSettings,
)
from callcenter.errors import (
    ActionLostError,
    AGIError,
    AMIActionError,
    AMIConnectionError,
    AMITimeoutError,
    CampaignError,
    StoreError,
    UnsafeValueError,
)

log = logging.getLogger(__name__)

EventCallback = Callable[[Message], object]


# ------------------------------------------------------------------------------------ seams
class AMI(Protocol):
    async def send_action(
        self,
        action: str,
        headers: Mapping[str, object] | Iterable[tuple[str, object]] = (),
        *,
        timeout: float | None = None,
    ) -> Message: ...

    def subscribe(self, event: str, callback: EventCallback) -> Callable[[], None]: ...


class AgentPool(Protocol):
    """The ACD's side of outbound: who can take a campaign's calls, and connecting one."""

    def load(self, campaign: str) -> AgentLoad:
        """Agents serving ``campaign`` now: logged in, idle, and how long each busy one has been busy."""

    async def connect(self, campaign: str, *, channel: str, attempt: Attempt, timeout: float) -> str | None:
        """Put an agent on ``channel`` (a person who just answered) within ``timeout`` seconds and
        return the agent's id; None if no agent could be connected in time (the call is then
        abandoned and the identification message played)."""


class AGISessionLike(Protocol):
    env: dict[str, str]

    async def get_variable(self, name: str, *, allow_dead: bool = False) -> str | None: ...

    async def stream_file(
        self, name: str, escape_digits: str = "", *, timeout: float | None = None
    ) -> Any: ...

    async def exec(self, application: str, *args: str, timeout: float | None = None) -> int: ...

    async def hangup(self, channel: str | None = None) -> None: ...


# ------------------------------------------------------------------------------------ runtime
@dataclass(frozen=True)
class CampaignRuntime:
    """A campaign as the service runs it: the pure settings plus the telephony around them."""

    settings: CampaignSettings
    caller_id: str = ""
    trunk: str = "dialer"
    queue: str = ""
    timezone: str = "UTC"
    default_region: str | None = None
    amd: bool = True
    amd_message: str | None = None
    """Prompt left on a machine (amd_action = message); None hangs up and retries."""
    identification_prompt: str = ""
    ring_timeout: float = 25.0
    connect_within: float = 2.0
    dial_template: str = "PJSIP/{number}@{trunk}"
    name: str = ""
    exten: str = "s"
    """The ``cc-outbound`` extension: the campaign's own (rendered from config: AMD, message and
    identification set there) or ``s`` (driven by the CC_AMD / CC_AMD_MESSAGE variables)."""

    @property
    def id(self) -> str:
        return self.settings.name


def runtime_from_config(
    campaign: Any,
    *,
    default_region: str | None = None,
    sounds_dir: str | None = None,
    language: str = "en",
) -> CampaignRuntime:
    """Build a ``CampaignRuntime`` from ``callcenter.config.model.Campaign`` (duck-typed).

    ``sounds_dir`` and ``language`` (``config.asterisk.sounds_dir``, the center's default
    language) turn the campaign's prompt ids into the sound names the AGI plays, as the rendered
    dialplan and the IVR do (``<sounds_dir>/<language>/<prompt id>``); without them the ids are
    played as they are."""

    def sound(prompt: str) -> str:
        if not prompt or sounds_dir is None:
            return prompt
        return posixpath.join(sounds_dir, prompt_sound(prompt, language))

    retry = campaign.retry
    delays = {
        Outcome.BUSY: float(retry.busy),
        Outcome.NO_ANSWER: float(retry.no_answer),
        Outcome.MACHINE: float(retry.machine),
        Outcome.FAILED: float(retry.failed),
    }
    window = CallingWindow(campaign.window.start, campaign.window.end, frozenset(campaign.window.days))
    settings = CampaignSettings(
        name=campaign.id,
        mode=Mode(str(campaign.mode)),
        window=window,
        max_attempts=int(campaign.max_attempts),
        retry_delays={**CampaignSettings(name=campaign.id).retry_delays, **delays},
        abandon_window=float(campaign.abandon_window_days) * DAY,
        pacing=PacingSettings(
            abandon_limit=float(campaign.abandon_limit), max_lines_per_agent=float(campaign.max_ratio)
        ),
    )
    leaves_message = str(campaign.amd_action) == "message" and bool(campaign.amd_message)
    return CampaignRuntime(
        settings=settings,
        caller_id=campaign.caller_id,
        trunk=campaign.trunk or "dialer",
        queue=campaign.queue,
        timezone=campaign.timezone,
        default_region=default_region,
        amd=bool(campaign.amd),
        amd_message=sound(campaign.amd_message) if leaves_message else None,
        identification_prompt=sound(campaign.identification_prompt),
        ring_timeout=float(campaign.ring_timeout),
        connect_within=float(campaign.connect_within),
        name=campaign.name,
        exten=campaign.id,
    )


# ------------------------------------------------------------------------------------ store
def _ts(value: float | None) -> Any:
    import datetime as dt

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
                """INSERT INTO campaigns (campaign_id, name, mode, state, max_attempts, timezone, settings)
                   VALUES ($1, $2, $3, COALESCE($4, 'running'), $5, $6, $7::jsonb)
                   ON CONFLICT (campaign_id) DO UPDATE SET name = EXCLUDED.name, mode = EXCLUDED.mode,
                     max_attempts = EXCLUDED.max_attempts, timezone = EXCLUDED.timezone,
                     settings = EXCLUDED.settings, state = COALESCE($4, campaigns.state),
                     updated_at = now()""",
                s.name,
                runtime.name or s.name,
                s.mode.value,
                state.value if state else None,
                s.max_attempts,
                runtime.timezone,
                blob,
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
        is not running, the count moved, the maximum is reached or the number is on a DNC list."""

        async def go(conn: Any) -> str | None:
            async with conn.transaction():
                phone = await conn.fetchval(
                    """UPDATE campaign_contacts c SET attempts = $3, status = 'dialing', next_at = NULL
                       FROM campaigns k
                       WHERE c.campaign_id = $1 AND c.contact_key = $2 AND k.campaign_id = c.campaign_id
                         AND c.attempts = $3 - 1 AND $3 <= k.max_attempts AND k.state = 'running'
                         AND c.status IN ('pending', 'previewing')
                         AND NOT EXISTS (SELECT 1 FROM dnc d WHERE d.phone = c.phone
                                         AND d.campaign_id IN ('', c.campaign_id))
                       RETURNING c.phone""",
                    attempt.campaign,
                    attempt.contact.key,
                    attempt.number,
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


# ------------------------------------------------------------------------------------ import
def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError(f"cannot read {path}: {exc}", code="unreadable_file") from exc


async def import_file(
    store: CampaignStore,
    campaign_id: str,
    csv_path: Path,
    *,
    default_region: str | None,
    default_zone: str,
    dnc_path: Path | None = None,
) -> tuple[ImportResult, int]:
    """Import a contact CSV (and a DNC file into the campaign's own list); returns the parse
    result (problems by line) and how many contacts were new."""
    dnc = DncList()
    dnc_problems: tuple[RowProblem, ...] = ()
    if dnc_path is not None:
        dnc, dnc_problems = parse_dnc(read_text(dnc_path), default_region=default_region)
    await store.ensure_campaign(campaign_id, timezone=default_zone)
    if dnc.numbers:
        await store.add_dnc(dnc.numbers, campaign_id=campaign_id, source=str(dnc_path))
    full_dnc = await store.dnc(campaign_id)
    result = parse_contacts(
        read_text(csv_path), default_region=default_region, default_zone=default_zone, dnc=full_dnc
    )
    added = await store.import_contacts(campaign_id, result.contacts)
    if dnc_problems:
        result = ImportResult(result.contacts, result.problems + dnc_problems, result.on_dnc)
    return result, added


# ------------------------------------------------------------------------------------ service
_REASON_OUTCOME = {1: Outcome.NO_ANSWER, 3: Outcome.NO_ANSWER, 5: Outcome.BUSY}


@dataclass
class _Call:
    campaign: _Campaign
    attempt: Attempt
    channel_id: str
    answered: bool = False
    person: bool = False
    done: bool = False


@dataclass
class _Campaign:
    runtime: CampaignRuntime
    dialer: Dialer
    calls: dict[str, _Call] = field(default_factory=dict)


@dataclass(frozen=True)
class PersonVerdict:
    """What the ``outbound`` AGI does with a person: ``agent_id`` set: connected (keep the channel
    for the agent's Bridge); else play ``prompt`` (the identification message) and hang up."""

    agent_id: str | None
    prompt: str = ""


class DialerService:
    """Runs every campaign. ``await add_campaign(runtime)`` for each, then ``await run()`` (a task
    owned by the composition root; cancel it to stop); ``outbound_agi`` is the FastAGI route
    ``names.AGI_OUTBOUND``; ``record_handle_time`` is called by the ACD when an agent's campaign
    call and wrap-up end."""

    def __init__(
        self,
        *,
        ami: AMI,
        store: CampaignStore,
        agents: AgentPool,
        clock: Clock | None = None,
        tick: float = 1.0,
        state_poll: float = 5.0,
        action_timeout: float = 5.0,
        lost_after: float = 60.0,
        answered_lost_after: float = 300.0,
    ) -> None:
        self.ami = ami
        self.store = store
        self.agents = agents
        self.clock: Clock = clock or RealClock()
        self.tick = tick
        self.state_poll = state_poll
        self.action_timeout = action_timeout
        self.lost_after = lost_after
        self.answered_lost_after = answered_lost_after
        self._campaigns: dict[str, _Campaign] = {}
        self._by_channel: dict[str, _Call] = {}
        self._by_attempt: dict[str, _Call] = {}
        self._writes: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._unsubscribe: list[Callable[[], None]] = []
        self._last_poll = float("-inf")
        self._writing = False
        self.dialled = 0
        self.store_failures = 0

    # ------------------------------------------------------------------ setup
    async def add_campaign(self, runtime: CampaignRuntime) -> Dialer:
        """Register a campaign: its row, its contacts and history from the database."""
        now = self.clock.now()
        await self.store.upsert_campaign(runtime)
        snapshot = await self.store.load(runtime.id, now=now, window=runtime.settings.abandon_window)
        dialer = Dialer(runtime.settings, dnc=snapshot.dnc, new_id=lambda: uuid.uuid4().hex)
        lost = set(snapshot.lost_attempts)
        for stored in snapshot.contacts:
            status = stored.status
            if stored.contact.key in lost:
                status = ContactStatus.DIALING
            dialer.restore_contact(
                stored.contact,
                attempts=stored.attempts,
                status=status,
                next_at=stored.next_at if stored.next_at is not None else now,
                last_outcome=stored.last_outcome,
                now=now,
            )
            if status in (ContactStatus.DIALING, ContactStatus.PREVIEWING):
                restored = dialer.contact(stored.contact.key)
                await self.store.release_contact(
                    runtime.id, stored.contact.key, status=restored.status, next_at=restored.next_at
                )
        for at, abandoned in snapshot.live_history:
            dialer.ledger.record(at, abandoned=abandoned)
        for seconds, human in snapshot.resolved_history:
            dialer.answers.add(seconds, human=human)
        {
            CampaignState.RUNNING: lambda: None,
            CampaignState.PAUSED: dialer.pause,
            CampaignState.STOPPED: dialer.stop,
        }[snapshot.state]()
        self._campaigns[runtime.id] = _Campaign(runtime, dialer)
        return dialer

    def dialer(self, campaign_id: str) -> Dialer:
        return self._campaign(campaign_id).dialer

    def campaign_ids(self) -> list[str]:
        return list(self._campaigns)

    def _campaign(self, campaign_id: str) -> _Campaign:
        try:
            return self._campaigns[campaign_id]
        except KeyError:
            raise CampaignError(
                f"no campaign {campaign_id!r}", campaign=campaign_id, code="no_campaign"
            ) from None

    # ------------------------------------------------------------------ control (API)
    async def pause(self, campaign_id: str) -> None:
        """Stop placing new calls (calls in progress finish). The database first: it is what a
        restarted controller and the CLI read."""
        camp = self._campaign(campaign_id)
        await self.store.set_state(campaign_id, CampaignState.PAUSED)
        camp.dialer.pause()

    async def resume(self, campaign_id: str) -> None:
        camp = self._campaign(campaign_id)
        await self.store.set_state(campaign_id, CampaignState.RUNNING)  # refuses a stopped campaign
        camp.dialer.resume()

    async def stop(self, campaign_id: str) -> None:
        camp = self._campaign(campaign_id)
        await self.store.set_state(campaign_id, CampaignState.STOPPED)
        camp.dialer.stop()

    def status(self, campaign_id: str) -> dict[str, object]:
        return self._campaign(campaign_id).dialer.summary(self.clock.now())

    # ------------------------------------------------------------------ preview (API)
    def preview_next(self, campaign_id: str, agent_id: str) -> ContactState | None:
        """Reserve the next contact for ``agent_id`` to look at (preview campaigns); None if none."""
        return self._campaign(campaign_id).dialer.preview_next(agent_id, self.clock.now())

    async def preview_dial(self, campaign_id: str, key: str, agent_id: str) -> Attempt:
        """The agent chose to call the contact it holds: recorded, then originated."""
        camp = self._campaign(campaign_id)
        attempt = camp.dialer.preview_dial(key, agent_id, self.clock.now())
        await self._dial(camp, attempt)
        return attempt

    def preview_skip(self, campaign_id: str, key: str, agent_id: str, *, delay: float = 0.0) -> None:
        """The agent passed on the contact it holds; it is due again after ``delay`` seconds."""
        self._campaign(campaign_id).dialer.preview_skip(key, agent_id, self.clock.now(), delay=delay)

    def record_handle_time(self, campaign_id: str, seconds: float) -> None:
        """An agent finished a campaign call: talk plus wrap-up lasted ``seconds``."""
        self._campaign(campaign_id).dialer.on_handle_time(seconds)

    def record_call_end(self, campaign_id: str, talk: float, wrap: float) -> None:
        """An agent finished a campaign call: ``talk`` s of conversation, ``wrap`` s of wrap-up."""
        self._campaign(campaign_id).dialer.on_call_end(talk, wrap)

    # ------------------------------------------------------------------ the loop
    def start(self) -> None:
        """Follow the AMI events the outcomes come from (``run`` does it; idempotent)."""
        if not self._unsubscribe:
            self._unsubscribe = [
                self.ami.subscribe("OriginateResponse", self._on_originate_response),
                self.ami.subscribe("Hangup", self._on_hangup),
            ]

    async def run(self) -> None:
        """Follow the AMI events, then pace every campaign each ``tick`` until cancelled."""
        self.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._write_loop())
                while True:
                    await self.step()
                    await self.clock.sleep(self.tick)
        finally:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._unsubscribe = []

    async def step(self) -> None:
        """One pacing round over every campaign (``run`` calls it each tick; tests call it too)."""
        now = self.clock.now()
        if now - self._last_poll >= self.state_poll:
            self._last_poll = now
            await self._poll_states()
        self._watchdog(now)
        if not getattr(self.ami, "connected", True):
            return  # no AMI link: nothing could be dialled, so nothing is planned
        take_finished = getattr(self.agents, "take_finished", None)
        if take_finished is not None:
            for campaign_id, talk, wrap in take_finished():
                if campaign_id in self._campaigns:
                    self.record_call_end(campaign_id, talk, wrap)
        for camp in list(self._campaigns.values()):
            load = self.agents.load(camp.runtime.id)
            _, attempts = camp.dialer.plan(load, now)
            for state in camp.dialer.take_settled():
                self._writes.put_nowait(
                    functools.partial(
                        self.store.release_contact,
                        camp.runtime.id,
                        state.contact.key,
                        status=state.status,
                        next_at=state.next_at,
                    )
                )
            for attempt in attempts:
                await self._dial(camp, attempt)

    def _watchdog(self, now: float) -> None:
        """An attempt whose events were lost (with the AMI link) stops counting as in flight: no
        OriginateResponse after the ring timeout plus ``lost_after`` s, or answered and neither a
        person nor a hang-up heard after ``answered_lost_after`` s (AMD and a message take less)."""
        for camp in self._campaigns.values():
            limit = camp.runtime.ring_timeout + self.lost_after
            for call in list(camp.calls.values()):
                age = now - call.attempt.started_at
                if not call.answered and age > limit:
                    self._finish(call, Outcome.UNKNOWN, reason="no OriginateResponse")
                elif call.answered and not call.person and age > limit + self.answered_lost_after:
                    self._finish(call, Outcome.UNKNOWN, reason="answered, then nothing heard")

    async def _poll_states(self) -> None:
        if not self._campaigns:
            return
        try:
            states = await self.store.states(list(self._campaigns))
            for campaign_id, camp in self._campaigns.items():
                camp.dialer.update_dnc(await self.store.dnc(campaign_id))
        except StoreError as exc:
            log.warning("dialer: cannot read campaign states: %s", exc)
            return
        for campaign_id, state in states.items():
            dialer = self._campaigns[campaign_id].dialer
            if state is dialer.state:
                continue
            if state is CampaignState.STOPPED:
                dialer.stop()
            elif state is CampaignState.PAUSED and dialer.state is CampaignState.RUNNING:
                dialer.pause()
            elif state is CampaignState.RUNNING and dialer.state is CampaignState.PAUSED:
                dialer.resume()

    async def _dial(self, camp: _Campaign, attempt: Attempt) -> None:
        runtime = camp.runtime
        now = self.clock.now()
        channel_id = f"cc-dial-{attempt.attempt_id}"
        try:
            await self.store.record_attempt(attempt, channel_id=channel_id)
        except CampaignError as exc:
            camp.dialer.abort_attempt(attempt.attempt_id, now, retry_in=60.0)
            if exc.code == "dnc":
                camp.dialer.mark_dnc(attempt.contact.key)
            else:
                await self._poll_states()
            log.info("dialer: %s: %s", runtime.id, exc)
            return
        except StoreError as exc:
            # Nothing recorded, so nothing may be sent.
            self.store_failures += 1
            camp.dialer.abort_attempt(attempt.attempt_id, now, retry_in=60.0)
            log.warning("dialer: %s: attempt not recorded, not dialled: %s", runtime.id, exc)
            return
        call = _Call(camp, attempt, channel_id)
        camp.calls[attempt.attempt_id] = call
        self._by_channel[channel_id] = call
        self._by_attempt[attempt.attempt_id] = call
        variables = [
            f"{names.VAR_CAMPAIGN}={runtime.id}",
            f"{names.VAR_ATTEMPT_ID}={attempt.attempt_id}",
            f"{names.VAR_AMD}={'1' if runtime.amd else '0'}",
        ]
        if runtime.amd_message:
            variables.append(f"{names.VAR_AMD_MESSAGE}={runtime.amd_message}")
        headers: list[tuple[str, object]] = [
            ("Channel", runtime.dial_template.format(number=attempt.contact.phone, trunk=runtime.trunk)),
            ("Context", names.CTX_OUTBOUND),
            ("Exten", runtime.exten),
            ("Priority", 1),
            ("Timeout", int(runtime.ring_timeout * 1000)),
            ("CallerID", runtime.caller_id),
            ("Async", "true"),
            ("ChannelId", channel_id),
        ]
        headers += [("Variable", v) for v in variables]
        self.dialled += 1
        try:
            await self.ami.send_action(names.ACTION_ORIGINATE, headers, timeout=self.action_timeout)
        except (AMIActionError, UnsafeValueError) as exc:
            self._finish(call, Outcome.FAILED, reason=f"originate refused: {exc}")
        except (ActionLostError, AMITimeoutError) as exc:
            # Written, answer lost: it may be ringing. Never re-sent; the contact waits.
            self._finish(call, Outcome.UNKNOWN, reason=f"originate fate unknown: {exc}")
        except AMIConnectionError as exc:
            # Never written: nothing was dialled, so the attempt is given back.
            await self._unsend(call, exc)

    async def _unsend(self, call: _Call, exc: Exception) -> None:
        call.done = True
        camp = call.campaign
        attempt = call.attempt
        camp.calls.pop(attempt.attempt_id, None)
        self._by_channel.pop(call.channel_id, None)
        self._by_attempt.pop(attempt.attempt_id, None)
        now = self.clock.now()
        state = camp.dialer.abort_attempt(attempt.attempt_id, now, retry_in=60.0)
        log.warning("dialer: %s: Originate not sent (%s); attempt given back", camp.runtime.id, exc)
        try:
            await self.store.unrecord_attempt(attempt, next_at=state.next_at)
        except StoreError as store_exc:
            # The row stays: at restart it reads 'unknown' and counts; that errs on the safe side.
            self.store_failures += 1
            log.warning("dialer: could not give the attempt back in the database: %s", store_exc)

    # ------------------------------------------------------------------ outcomes
    def _finish(
        self,
        call: _Call,
        outcome: Outcome,
        *,
        reason: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        if call.done:
            return
        call.done = True
        camp = call.campaign
        now = self.clock.now()
        attempt = call.attempt
        camp.calls.pop(attempt.attempt_id, None)
        self._by_channel.pop(call.channel_id, None)
        self._by_attempt.pop(attempt.attempt_id, None)
        dialer = camp.dialer
        if dialer.is_live(attempt.attempt_id):
            state = dialer.on_outcome(attempt.attempt_id, outcome, now)
            status, next_at, attempts = state.status, state.next_at, state.attempts
        else:  # pragma: no cover - defensive: the dialer already closed it
            return
        person_at = now if outcome in (Outcome.CONNECTED, Outcome.ABANDONED) else None
        self._writes.put_nowait(
            lambda: self.store.record_outcome(
                attempt.attempt_id,
                campaign_id=camp.runtime.id,
                contact_key=attempt.contact.key,
                outcome=outcome,
                at=now,
                status=status,
                next_at=next_at if status is ContactStatus.PENDING else None,
                attempts=attempts,
                agent_id=agent_id,
                reason=reason,
                person_at=person_at,
            )
        )

    async def _write_loop(self) -> None:
        self._writing = True
        try:
            while True:
                write = await self._writes.get()
                try:
                    await self._write(write)
                finally:
                    self._writes.task_done()
        finally:
            self._writing = False

    async def _write(self, write: Callable[[], Awaitable[None]]) -> None:
        try:
            await write()
        except (StoreError, CampaignError) as exc:
            self.store_failures += 1
            log.warning("dialer: outcome not stored (the attempt reads 'unknown' at restart): %s", exc)

    async def drain(self, *, timeout: float = 5.0) -> None:
        """Return once every queued outcome is written (tests; shutdown)."""
        async with asyncio.timeout(timeout):
            if self._writing:
                await self._writes.join()
                return
            while not self._writes.empty():
                write = self._writes.get_nowait()
                try:
                    await self._write(write)
                finally:
                    self._writes.task_done()

    def _on_originate_response(self, message: Message) -> None:
        call = self._by_channel.get(message.get("Uniqueid") or "")
        if call is None or call.done:
            return
        if (message.get("Response") or "").lower() == "success":
            call.answered = True
            return
        try:
            code = int(message.get("Reason") or "0")
        except ValueError:
            code = 0
        self._finish(call, _REASON_OUTCOME.get(code, Outcome.FAILED), reason=f"originate reason {code}")

    def _on_hangup(self, message: Message) -> None:
        call = self._by_channel.get(message.get("Uniqueid") or "")
        if call is None or call.done or call.person or not call.answered:
            return
        # Answered, never reached the AGI: AMD heard a machine and the dialplan dealt with it.
        leaves_message = call.campaign.runtime.amd_message is not None
        self._finish(
            call,
            Outcome.MACHINE_MESSAGE if leaves_message else Outcome.MACHINE,
            reason=f"amd machine, hangup cause {message.get('Cause')}",
        )

    # ------------------------------------------------------------------ the person
    async def on_person(self, attempt_id: str, channel: str, *, campaign_id: str = "") -> PersonVerdict:
        """A person answered attempt ``attempt_id`` on ``channel``: connect an agent within
        ``connect_within`` seconds, else abandon (the verdict carries the identification prompt)."""
        call = self._by_attempt.get(attempt_id)
        if call is None:
            # Not tracked any more (lost in a restart or with the AMI link): it counts as an
            # abandoned live answer; identify and hang up.
            log.warning("dialer: a person answered attempt %r that is no longer tracked", attempt_id)
            lost = self._campaigns.get(campaign_id)
            if lost is None:
                return PersonVerdict(None, "")
            lost.dialer.record_live(self.clock.now(), abandoned=True)
            return PersonVerdict(None, lost.runtime.identification_prompt)
        camp = call.campaign
        call.answered = call.person = True
        now = self.clock.now()
        camp.dialer.on_person(attempt_id, now)
        self._writes.put_nowait(lambda: self.store.record_person(attempt_id, now))
        agent_id: str | None
        try:
            agent_id = await self.agents.connect(
                camp.runtime.id, channel=channel, attempt=call.attempt, timeout=camp.runtime.connect_within
            )
        except (TimeoutError, CampaignError, AGIError, AMIActionError, AMIConnectionError) as exc:
            log.warning("dialer: connecting an agent failed: %s", exc)
            agent_id = None
        if agent_id is not None:
            self._finish(call, Outcome.CONNECTED, agent_id=agent_id)
            return PersonVerdict(agent_id)
        self._finish(call, Outcome.ABANDONED, reason=f"no agent within {camp.runtime.connect_within:g} s")
        return PersonVerdict(None, camp.runtime.identification_prompt)

    async def outbound_agi(self, session: AGISessionLike) -> None:
        """The FastAGI route ``outbound`` (``cc-outbound`` after ``AMD()``)."""
        attempt_id = await session.get_variable(names.VAR_ATTEMPT_ID) or ""
        campaign_id = await session.get_variable(names.VAR_CAMPAIGN) or ""
        amd_status = (await session.get_variable(names.VAR_AMDSTATUS) or "").upper()
        channel = session.env.get("agi_channel", "")
        call = self._by_attempt.get(attempt_id)
        if amd_status == "MACHINE" and call is not None:
            message = call.campaign.runtime.amd_message
            self._finish(call, Outcome.MACHINE_MESSAGE if message else Outcome.MACHINE, reason="amd machine")
            if message:
                await session.stream_file(message)
            await session.hangup()
            return
        verdict = await self.on_person(attempt_id, channel, campaign_id=campaign_id)
        if verdict.agent_id is not None:
            # The agent leg Bridge()s this channel away from the AGI; hold it until then.
            with contextlib.suppress(AGIError):
                await session.exec("Wait", "3600", timeout=3700.0)
            return
        if verdict.prompt:
            await session.stream_file(verdict.prompt)
        await session.hangup()


# ------------------------------------------------------------------------------------ the ACD
class AcdAgentPool:
    """``AgentPool`` over ``callcenter.acd.ACD`` (used through its public surface: ``config``,
    ``agents``, ``enqueue``, ``call_state``, ``clock``).

    ``load``: the logged-in agents whose skills meet the campaign queue's (``queues``: campaign id
    -> queue id): available ones are idle, reserved / ringing / on a call are busy since their
    state began, wrap-up ones are in wrap-up. ``connect``: hands the person to the ACD as a queued
    call (``call_id`` = the attempt id, the channel stays in the ``outbound`` AGI until the agent's
    leg bridges it) and waits up to ``timeout`` for the ACD to report it connected. Talk and
    wrap-up times of the calls it connected come back through ``take_finished``."""

    def __init__(
        self, acd: Any, queues: Mapping[str, str], *, poll: float = 0.05, priority: int = 100
    ) -> None:
        self.acd = acd
        self.queues = dict(queues)
        self.poll = poll
        self.priority = priority
        self._eligible: dict[str, list[str]] = {}
        self._ours: dict[str, str] = {}  # call id -> campaign id, for calls this pool connected
        self._talk_started: dict[str, tuple[str, float]] = {}  # agent -> (call id, since)
        self._wrap_started: dict[str, tuple[str, float, float]] = {}  # agent -> (call id, talk, since)
        self._finished: list[tuple[str, float, float]] = []

    def _agents_for(self, campaign: str) -> list[str]:
        cached = self._eligible.get(campaign)
        if cached is not None:
            return cached
        config = self.acd.config
        queue = config.queues.get(self.queues.get(campaign, ""))
        needs: Mapping[str, int] = queue.skills if queue is not None else {}
        eligible = [
            agent_id
            for agent_id, agent in config.agents.items()
            if all(agent.skills.get(skill, 0) >= level for skill, level in needs.items())
        ]
        self._eligible[campaign] = eligible
        return eligible

    def load(self, campaign: str) -> AgentLoad:
        now = self.acd.clock.now()
        idle = 0
        logged_in = 0
        busy: list[float] = []
        wrapping: list[float] = []
        for agent_id in self._agents_for(campaign):
            state = self.acd.agents.get(agent_id)
            if state is None:
                continue
            status = str(state.status)
            self._follow(agent_id, status, state.call_id, float(state.since))
            if status in ("logged_out", "paused", "not_ready"):
                continue
            logged_in += 1
            if status == "available":
                idle += 1
            elif status == "wrap_up":
                wrapping.append(max(0.0, now - float(state.since)))
            else:
                busy.append(max(0.0, now - float(state.since)))
        # Blended agents: inbound callers already waiting for these agents go first, so the
        # dialer counts only the idle agents they leave over (else a person it reaches finds
        # no agent and becomes an abandoned call).
        idle = max(0, idle - self._inbound_waiting(campaign))
        return AgentLoad(logged_in, idle, tuple(busy), tuple(wrapping))

    def _inbound_waiting(self, campaign: str) -> int:
        queue = self.queues.get(campaign)
        snapshot = getattr(self.acd, "snapshot", None)
        if queue is None or snapshot is None:
            return 0
        config = self.acd.config
        mine = set(self._agents_for(campaign))
        served = {
            q.id
            for q in config.queues.values()
            if any(config.agent_serves(config.agents[a], q) for a in mine if a in config.agents)
        }
        return sum(
            1
            for call_id, c in snapshot()["calls"].items()
            if c["state"] == "waiting" and c["queue"] in served and call_id not in self._ours
        )

    def _follow(self, agent_id: str, status: str, call_id: str | None, since: float) -> None:
        """Notice a campaign call's talk and wrap-up ending (agent states as ``load`` sees them)."""
        talk = self._talk_started.get(agent_id)
        wrap = self._wrap_started.get(agent_id)
        if status == "on_call" and call_id in self._ours and talk is None:
            self._talk_started[agent_id] = (call_id, since)
        elif status == "wrap_up" and talk is not None:
            del self._talk_started[agent_id]
            self._wrap_started[agent_id] = (talk[0], since - talk[1], since)
        elif status not in ("on_call", "wrap_up") and wrap is not None:
            del self._wrap_started[agent_id]
            campaign = self._ours.pop(wrap[0], None)
            if campaign is not None:
                self._finished.append((campaign, wrap[1], max(0.0, since - wrap[2])))

    def take_finished(self) -> list[tuple[str, float, float]]:
        """(campaign, talk seconds, wrap-up seconds) of campaign calls finished since last asked."""
        finished, self._finished = self._finished, []
        return finished

    async def connect(self, campaign: str, *, channel: str, attempt: Attempt, timeout: float) -> str | None:
        from callcenter.acd import QueuedCall

        queue = self.queues.get(campaign)
        if queue is None:
            return None
        call_id = attempt.attempt_id
        await self.acd.enqueue(
            QueuedCall(
                call_id,
                channel,
                queue,
                priority=self.priority,
                caller_number=attempt.contact.phone,
                data=dict(attempt.contact.data),
                redirect_to_hold=False,
                direction="outbound",
                campaign_id=campaign,
            )
        )
        clock = self.acd.clock
        deadline = clock.now() + timeout
        while True:
            if self.acd.call_state(call_id) == "connected":
                self._ours[call_id] = campaign
                agent = self.acd.snapshot()["calls"].get(call_id, {}).get("agent_id")
                return str(agent) if agent else "unknown"
            if clock.now() >= deadline:
                # Too late: the person hears the identification message and is hung up, which the
                # ACD sees as the caller leaving. An ACD that can withdraw a call does so at once,
                # so that no agent leg bridges the channel during the message.
                withdraw = getattr(self.acd, "withdraw", None)
                if withdraw is not None:
                    await withdraw(call_id)
                return None
            await clock.sleep(self.poll)


# ------------------------------------------------------------------------------------ HTTP API
def register_routes(router: Any, service: DialerService) -> None:
    """Mount the campaign API on a ``callcenter.web.http.Router``::

    GET  /api/campaigns                          every campaign's status (pacing explained)
    GET  /api/campaigns/{campaign}               one campaign's status
    POST /api/campaigns/{campaign}/pause | resume | stop
    POST /api/campaigns/{campaign}/preview/next  {"agent_id": "1001"}  -> the contact held
    POST /api/campaigns/{campaign}/preview/dial  {"agent_id": "1001", "contact": "<key>"}
    POST /api/campaigns/{campaign}/preview/skip  {"agent_id": "1001", "contact": "<key>", "delay": 600}

    A refused request (unknown campaign, stopped campaign, contact not held) answers 409 with the
    ``CampaignError`` code."""
    from callcenter.web.http import HTTPError, json_response

    def text(body: Mapping[str, Any], key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise HTTPError(400, "bad_request", f"{key!r} (a string) is required")
        return value

    async def list_all(req: Any) -> Any:
        return json_response({cid: service.status(cid) for cid in sorted(service.campaign_ids())})

    async def one(req: Any) -> Any:
        return json_response(service.status(req.params["campaign"]))

    async def pause(req: Any) -> Any:
        await service.pause(req.params["campaign"])
        return json_response(service.status(req.params["campaign"]))

    async def resume(req: Any) -> Any:
        await service.resume(req.params["campaign"])
        return json_response(service.status(req.params["campaign"]))

    async def stop(req: Any) -> Any:
        await service.stop(req.params["campaign"])
        return json_response(service.status(req.params["campaign"]))

    async def preview_next(req: Any) -> Any:
        held = service.preview_next(req.params["campaign"], text(req.json(), "agent_id"))
        if held is None:
            return json_response({"contact": None})
        c = held.contact
        return json_response(
            {
                "contact": c.key,
                "phone": c.phone,
                "name": c.name,
                "data": dict(c.data),
                "attempts": held.attempts,
                "last_outcome": held.last_outcome.value if held.last_outcome else None,
            }
        )

    async def preview_dial(req: Any) -> Any:
        body = req.json()
        attempt = await service.preview_dial(
            req.params["campaign"], text(body, "contact"), text(body, "agent_id")
        )
        return json_response({"attempt": attempt.attempt_id, "number": attempt.number})

    async def preview_skip(req: Any) -> Any:
        body = req.json()
        delay = body.get("delay", 0)
        if not isinstance(delay, int | float) or delay < 0:
            raise HTTPError(400, "bad_request", "'delay' must be a number of seconds >= 0")
        service.preview_skip(
            req.params["campaign"], text(body, "contact"), text(body, "agent_id"), delay=float(delay)
        )
        return json_response({"ok": True})

    router.add("GET", "/api/campaigns", list_all)
    router.add("GET", "/api/campaigns/{campaign}", one)
    router.add("POST", "/api/campaigns/{campaign}/pause", pause)
    router.add("POST", "/api/campaigns/{campaign}/resume", resume)
    router.add("POST", "/api/campaigns/{campaign}/stop", stop)
    router.add("POST", "/api/campaigns/{campaign}/preview/next", preview_next)
    router.add("POST", "/api/campaigns/{campaign}/preview/dial", preview_dial)
    router.add("POST", "/api/campaigns/{campaign}/preview/skip", preview_skip)
