"""Shell: runs outbound campaigns on the PBX: records attempts, Originates, follows outcomes.

One ``DialerService`` drives every campaign of the center. Its loop, every ``tick`` seconds:
ask the pure ``Dialer`` of each running campaign how many lines to place (``AgentPool.load`` says
how many agents are free or busy), then for each attempt:

1. record it in PostgreSQL (``CampaignStore.record_attempt``) in one transaction that also spends
   the contact's attempt, and refuses when the campaign is not running, the contact's attempt
   count moved, the maximum is reached or the number is on a do-not-call list. Only once that is
   committed:
2. send an async ``Originate`` of ``Local/<E.164>@cc-dial-<trunk>/n`` (the rendered context checks
   the dial-out policy again, then Dial()s the trunk) into ``cc-outbound`` with a ``ChannelId``
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

Seams: ``ami`` (``AMILink``: actions and typed events, e.g. ``AMIClient``), ``agents``
(``AgentPool``: the ACD's side), ``store`` (``CampaignStore`` over an asyncpg pool), ``clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.asterisk import events, names
from callcenter.clock import Clock, RealClock
from callcenter.config import dialout
from callcenter.config import model as cm
from callcenter.csvrows import RowProblem
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
from callcenter.outbound.contacts import DncList, ImportResult, parse_contacts, parse_dnc
from callcenter.outbound.dialer import (
    Attempt,
    CampaignState,
    ContactState,
    ContactStatus,
    Dialer,
    Mode,
    Outcome,
)
from callcenter.outbound.pool import blend_rules
from callcenter.outbound.runtime import CampaignRuntime, runtimes_from_config
from callcenter.ports import AgentPool, AGISession, AMILink
from callcenter.store.campaigns import CampaignStore

log = logging.getLogger(__name__)


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
    config: cm.Config | None = None,
) -> tuple[ImportResult, int]:
    """Import a contact CSV (and a DNC file into the campaign's own list); returns the parse
    result (problems by line) and how many contacts were new. With ``config``, numbers its
    dial-out policy refuses are problems (reason ``dial_out_refused``), not contacts."""
    dnc = DncList()
    dnc_problems: tuple[RowProblem, ...] = ()
    if dnc_path is not None:
        dnc, dnc_problems = parse_dnc(read_text(dnc_path), default_region=default_region)
    await store.ensure_campaign(campaign_id, timezone=default_zone)
    if dnc.numbers:
        await store.add_dnc(dnc.numbers, campaign_id=campaign_id, source=str(dnc_path))
    full_dnc = await store.dnc(campaign_id)
    refuse = None if config is None else functools.partial(_refusal, config)
    result = parse_contacts(
        read_text(csv_path),
        default_region=default_region,
        default_zone=default_zone,
        dnc=full_dnc,
        refuse=refuse,
    )
    added = await store.import_contacts(campaign_id, result.contacts)
    if dnc_problems:
        result = ImportResult(result.contacts, result.problems + dnc_problems, result.on_dnc)
    return result, added


def _refusal(config: cm.Config, number: str) -> str | None:
    verdict = dialout.decide(config, number, cm.DialPurpose.CAMPAIGN)
    return None if verdict.allowed else verdict.reason


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
    ``names.AGI_OUTBOUND``. Each ``step`` feeds the pacer the talk and wrap-up times of the
    campaign calls agents finished (the pool's ``take_finished``)."""

    def __init__(
        self,
        *,
        ami: AMILink,
        store: CampaignStore,
        agents: AgentPool,
        clock: Clock | None = None,
        tick: float = 1.0,
        state_poll: float = 5.0,
        action_timeout: float = 5.0,
        lost_after: float = 60.0,
        answered_lost_after: float = 300.0,
        config: cm.Config | None = None,
    ) -> None:
        self.ami = ami
        self.config = config  # its dial-out policy is checked before every Originate
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
        self._holds: set[str] = set()  # attempts this service holds an agent for
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

    async def reload(self, config: cm.Config) -> None:
        """A new configuration: its dial-out policy, and each campaign's settings (pacing,
        window, retries, caller id, trunk...) for what is planned from now on; calls in progress
        finish as they were placed. A new campaign is added; a campaign gone from the config is
        no longer dialled (its database state stays as it was)."""
        self.config = config
        for rt in runtimes_from_config(config):
            camp = self._campaigns.get(rt.id)
            if camp is None:
                await self.add_campaign(rt)
                continue
            camp.runtime = rt
            camp.dialer.settings = rt.settings
        for campaign_id, camp in self._campaigns.items():
            if campaign_id not in config.campaigns:
                camp.dialer.stop()
        reload_agents = getattr(self.agents, "reload", None)
        if reload_agents is not None:
            runtimes = runtimes_from_config(config)
            reload_agents(
                {rt.id: rt.queue for rt in runtimes},
                {rt.id: rt.skills for rt in runtimes},
                blend_rules(runtimes),
            )
        for rt in runtimes_from_config(config):
            await self.store.upsert_campaign(rt)  # its enabled flag, which the database enforces too

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
        """Reserve the next contact for ``agent_id`` to look at (preview campaigns); None if none
        (also when the campaign is disabled in the config)."""
        camp = self._campaign(campaign_id)
        if not camp.runtime.enabled:
            return None
        return camp.dialer.preview_next(agent_id, self.clock.now())

    async def preview_dial(self, campaign_id: str, key: str, agent_id: str) -> Attempt:
        """The agent chose to call the contact it holds: the agent is held for the attempt (no
        inbound call can take it meanwhile), then the attempt is recorded and originated."""
        camp = self._campaign(campaign_id)
        now = self.clock.now()
        attempt = camp.dialer.preview_dial(key, agent_id, now)
        if self._reserve(campaign_id, attempt.attempt_id, agent_id) is None:
            camp.dialer.abort_attempt(attempt.attempt_id, now, retry_in=0.0)
            raise CampaignError(
                f"agent {agent_id!r} is not available to take the call (on a call, paused or"
                " logged out); the contact goes back to the list",
                campaign=campaign_id,
                code="agent_not_available",
            )
        await self._dial(camp, attempt)
        return attempt

    def preview_skip(self, campaign_id: str, key: str, agent_id: str, *, delay: float = 0.0) -> None:
        """The agent passed on the contact it holds; it is due again after ``delay`` seconds."""
        self._campaign(campaign_id).dialer.preview_skip(key, agent_id, self.clock.now(), delay=delay)

    def record_call_end(self, campaign_id: str, talk: float, wrap: float) -> None:
        """An agent finished a campaign call: ``talk`` s of conversation, ``wrap`` s of wrap-up."""
        self._campaign(campaign_id).dialer.on_call_end(talk, wrap)

    # ------------------------------------------------------------------ the loop
    def start(self) -> None:
        """Follow the AMI events the outcomes come from (``run`` does it; idempotent)."""
        if not self._unsubscribe:
            self._unsubscribe = [
                self.ami.on(events.OriginateResponse, self._on_originate_response),
                self.ami.on(events.Hangup, self._on_hangup),
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
        self._release_orphans()
        if not getattr(self.ami, "connected", True):
            return  # no AMI link: nothing could be dialled, so nothing is planned
        take_finished = getattr(self.agents, "take_finished", None)
        if take_finished is not None:
            for campaign_id, talk, wrap in take_finished():
                if campaign_id in self._campaigns:
                    self.record_call_end(campaign_id, talk, wrap)
        for camp in list(self._campaigns.values()):
            if not camp.runtime.enabled:
                continue  # disabled in the config: nothing planned, nothing dialled
            load = self.agents.load(camp.runtime.id)
            decision, attempts = camp.dialer.plan(load, now)
            if decision.mode is not Mode.PREDICTIVE:
                attempts = self._hold_agents(camp, attempts, now)
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

    def _reserve(self, campaign_id: str, attempt_id: str, agent_id: str | None = None) -> str | None:
        held = self.agents.reserve(campaign_id, attempt_id, agent_id=agent_id)
        if held is not None:
            self._holds.add(attempt_id)
        return held

    def _release(self, attempt_id: str, reason: str) -> None:
        self._holds.discard(attempt_id)
        self.agents.release(attempt_id, reason=reason)

    def _release_orphans(self) -> None:
        """Agents held for attempts no service follows (a controller that died mid-attempt, with
        the pool outliving it) are freed: no agent stays reserved for a call that cannot come."""
        held = getattr(self.agents, "held", None)
        if held is None:
            return
        for attempt_id in list(held()):
            if attempt_id not in self._holds:
                log.warning("dialer: attempt %s held an agent and is no longer followed: freed", attempt_id)
                self.agents.release(attempt_id, reason="attempt_lost")

    def _hold_agents(self, camp: _Campaign, attempts: list[Attempt], now: float) -> list[Attempt]:
        """Progressive pacing (the mode, or predictive warming up or fallen back): each attempt
        holds its own agent before it is dialled, so a person who answers always has one. An
        attempt no agent can be held for (inbound took them since the load was read) is given
        back undialled."""
        kept: list[Attempt] = []
        for attempt in attempts:
            if self._reserve(camp.runtime.id, attempt.attempt_id) is None:
                camp.dialer.abort_attempt(attempt.attempt_id, now, retry_in=0.0)
                continue
            kept.append(attempt)
        return kept

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
        refused = None if self.config is None else _refusal(self.config, attempt.contact.phone)
        if refused is not None:
            # Never dialled, and not again: the contact ends as a do-not-call one.
            self._release(attempt.attempt_id, "attempt_not_dialled")
            camp.dialer.abort_attempt(attempt.attempt_id, now, retry_in=60.0)
            camp.dialer.mark_dnc(attempt.contact.key)
            log.warning(
                "dialer: %s: contact %s not dialled: dial-out policy (%s)",
                runtime.id,
                attempt.contact.key,
                refused,
            )
            return
        try:
            await self.store.record_attempt(attempt, channel_id=channel_id)
        except CampaignError as exc:
            self._release(attempt.attempt_id, "attempt_not_dialled")
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
            self._release(attempt.attempt_id, "attempt_not_dialled")
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
        self._release(attempt.attempt_id, "attempt_not_dialled")
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
        # Every end frees the agent held for the attempt (a no-op once the person reached it).
        self._release(attempt.attempt_id, f"attempt_{outcome.value}")
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

    def _on_originate_response(self, ev: events.OriginateResponse) -> None:
        call = self._by_channel.get(ev.uniqueid or "")
        if call is None or call.done:
            return
        if ev.succeeded:
            call.answered = True
            return
        code = ev.reason or 0
        self._finish(call, _REASON_OUTCOME.get(code, Outcome.FAILED), reason=f"originate reason {code}")

    def _on_hangup(self, ev: events.Hangup) -> None:
        call = self._by_channel.get(ev.channel.uniqueid or "")
        if call is None or call.done or call.person or not call.answered:
            return
        # Answered, never reached the AGI: AMD heard a machine and the dialplan dealt with it.
        leaves_message = call.campaign.runtime.amd_message is not None
        self._finish(
            call,
            Outcome.MACHINE_MESSAGE if leaves_message else Outcome.MACHINE,
            reason=f"amd machine, hangup cause {ev.cause}",
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

    async def outbound_agi(self, session: AGISession) -> None:
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
# ------------------------------------------------------------------------------------ HTTP API
