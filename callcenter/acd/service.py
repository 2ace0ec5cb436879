"""Shell: the ACD service. Carries the router's decisions and the queued call's table out on the
PBX over AMI.

Each AMI event (typed views of ``callcenter.asterisk.events``), API call, router decision and due
timer becomes an event of ``callcenter.acd.call_state`` (the queued call's life, drawn there) or
of ``callcenter.acd.agents``; the service keeps the records those tables return and carries their
effects out: AMI actions (Setvar, Redirect, Originate with a ``ChannelId`` chosen here, Hangup,
Atxfer), call-log records, the router's requeues, timers, recordings.

Wiring (the composition root)::

    acd = ACD(config, ami_client, writer, clock, recorder=Recorder.from_config(...), store=PgACDStore(dsn))
    tg.create_task(acd.run())           # subscribes to AMI, rebuilds after a restart, runs timers
    await acd.enqueue(QueuedCall(call_id, channel, queue, skills, priority, language, ...))
    await acd.login("1001"); await acd.pause("1001", "lunch"); await acd.resume("1001")
    register_routes(http_router, acd)   # /api/agents/... for the CLI (callcenter agent ...)
    agi_server.add_route(names.AGI_FEATURE, AgentFeatures(acd).handle)   # agents' feature codes

Everything mutates in the event loop's single thread; AMI callbacks only enqueue. Every AMI action
is bounded by ``action_timeout``. Restart: ``rebuild()`` (run by ``run()``) reads ``Status`` with
the CC_* variables and the database's last agent states: callers holding go back in line at their
first arrival, bridged calls stay bridged with their agent on call, half-offered legs are hung up
and their calls re-offered. An AMI link gap (events missed) triggers ``reconcile()``: calls and legs
the PBX no longer has are ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callcenter import phone
from callcenter.acd import agents as ag
from callcenter.acd import call_state as cs
from callcenter.acd import routing as rt
from callcenter.acd import wrapup
from callcenter.acd.announcements import announcement_prompt
from callcenter.acd.callback_policy import next_open
from callcenter.acd.pin import PinCheck, PinGuard
from callcenter.acd.recorder import Recorder
from callcenter.asterisk import events, names
from callcenter.asterisk.ami import Message
from callcenter.clock import Clock
from callcenter.config import dialout
from callcenter.config import model as cm
from callcenter.errors import (
    AgentStateError,
    AMIActionError,
    AsteriskError,
    CallcenterError,
    DialOutRefusedError,
    DomainError,
    RoutingError,
    UnsafeValueError,
)
from callcenter.ports import (
    ACDStore,
    AMILink,
    CallbackStore,
    QueuedCall,
    RecordSink,
    StoredCallback,
    StoredState,
)
from callcenter.reporting import feed
from callcenter.reporting.dispositions import DispositionRecord
from callcenter.reporting.records import AgentStateChange, CallEvent, CallRecord, Disposition, EventKind

log = logging.getLogger(__name__)

# The pause of an agent whose phone was busy on a call the ACD does not know when it started.
PHONE_BUSY = "phone_busy"
SAFE_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
SAFE_CHANNEL = re.compile(r"^[^\s\x00-\x1f\x7f]{1,255}$")  # a channel name: no space, no control

# The AMI events the ACD follows.
_Seen = (
    events.OriginateResponse
    | events.Newchannel
    | events.Hangup
    | events.HangupRequest
    | events.BridgeEnter
    | events.DialEnd
    | events.MusicOnHoldStart
    | events.MusicOnHoldStop
)
# Effects that are AMI actions: awaited by the API call that caused them, else run as tasks.
_Action = cs.Originate | cs.Hangup | cs.SetVariables | cs.Redirect | cs.RedirectLeg | cs.HoldLegs | cs.Atxfer
_ACTIONS = (cs.Originate, cs.Hangup, cs.SetVariables, cs.Redirect, cs.RedirectLeg, cs.HoldLegs, cs.Atxfer)


def policy_from_config(q: cm.Queue) -> rt.QueuePolicy:
    """The router's view of a configured queue."""
    overflow = q.overflow.target if q.overflow and q.overflow.kind is cm.OverflowKind.QUEUE else None
    strategy = str(q.strategy)
    return rt.QueuePolicy(
        q.id,
        dict(q.skills),
        strategy=strategy if strategy in rt.STRATEGIES else "longest_idle",  # type: ignore[arg-type]
        priority=q.priority,
        relaxation=tuple(
            rt.RelaxStep(r.after_seconds, r.min_level, r.add_skill, r.add_skill_level) for r in q.relaxation
        ),
        max_wait=q.max_wait,
        overflow_queue=overflow,
        callback_threshold=q.callback_offer_after,
    )


def _check(value: str, what: str, pattern: re.Pattern[str] = SAFE_ID) -> str:
    if not pattern.match(value):
        raise UnsafeValueError(f"{what} has characters the ACD does not send to Asterisk", field=what)
    return value


class ACD:
    """The ACD service. Construct it, ``await run()`` in the root TaskGroup, call the API."""

    def __init__(
        self,
        config: cm.Config,
        ami: AMILink,
        sink: RecordSink,
        clock: Clock,
        *,
        recorder: Recorder | None = None,
        store: ACDStore | None = None,
        action_timeout: float = 5.0,
        agent_channel: str = "PJSIP/{endpoint}",
        ring_guard: float = 10.0,
        on_callback_offer: Callable[[str, float], Awaitable[None]] | None = None,
        callbacks: CallbackStore | None = None,
    ) -> None:
        self.config = config
        self.ami = ami
        self.sink = sink
        self.clock = clock
        self.recorder = recorder
        self.store = store
        # Called as ``await listener(call_id, paused=...)`` after each PCI pause / resume.
        self.pci_listeners: list[Callable[..., Awaitable[None]]] = []
        # Called with each change of a call or an agent (``callcenter.reporting.feed``): the
        # controller publishes them on its event hub. Must not block or raise.
        self.on_change: Callable[[feed.Change], None] | None = None
        self.action_timeout = action_timeout
        self.agent_channel = agent_channel
        self.ring_guard = ring_guard
        self.on_callback_offer = on_callback_offer
        self.callbacks = callbacks  # where pending callbacks outlive the controller
        self._callback_writes: asyncio.Queue[cs.CallbackProgress] = asyncio.Queue()
        self.router = rt.Router(policy_from_config(q) for q in config.queues.values())
        self.agents: dict[str, ag.AgentState] = {a: ag.AgentState(a) for a in config.agents}
        self._calls: dict[str, cs.Call] = {}  # open calls, by call id
        self._closing: dict[str, cs.Call] = {}  # closed calls whose agent legs are still up
        self._legs: dict[str, cs.Leg] = {}  # every agent leg followed, by leg id (its ChannelId)
        self._leg_owner: dict[str, str] = {}  # leg id -> its call's key in _calls or _closing
        self._by_channel: dict[str, str] = {}  # caller channel name / uniqueid -> call id
        self._leg_by_channel: dict[str, str] = {}  # agent leg channel name -> leg id
        self._timers: list[tuple[float, int, cs.TimerKind, str]] = []  # (at, seq, kind, key)
        self._timer_seq: dict[tuple[cs.TimerKind, str], int] = {}  # the live timer of (kind, key)
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._parked = asyncio.Event()  # the timer loop waits for its next deadline
        self._inbox: asyncio.Queue[_Seen] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._pins = PinGuard(config.security.pin_attempts, config.security.lockout_seconds)
        self._group_files: dict[str, str] = {}  # call id -> the recording planned for its ring-all group
        self._last_calls: dict[str, LastCall] = {}  # agent id -> its last call (wrap-up, screen pop)
        self._wrapping: dict[str, tuple[str, float]] = {}  # agent -> (call id, wrap-up since)
        self._phone_busy: dict[str, set[str]] = {}  # agent -> its phone's channels ACD does not know
        self.ready = asyncio.Event()  # set once run() has subscribed and rebuilt
        self.stats = {"offers": 0, "answered": 0, "rona": 0, "abandoned": 0, "transfers": 0}

    # ================================================================== lifecycle
    async def run(self) -> None:
        """Subscribe to AMI, rebuild state (restart), then process events and timers until
        cancelled."""
        inbox = self._inbox.put_nowait
        self._unsubscribe += [
            self.ami.on(events.OriginateResponse, inbox),
            self.ami.on(events.Newchannel, inbox),
            self.ami.on(events.Hangup, inbox),
            self.ami.on(events.HangupRequest, inbox),
            self.ami.on(events.BridgeEnter, inbox),
            self.ami.on(events.DialEnd, inbox),
            self.ami.on(events.MusicOnHoldStart, inbox),
            self.ami.on(events.MusicOnHoldStop, inbox),
        ]
        # the AMI link dropped: events were missed, reconcile with the PBX
        self._unsubscribe.append(self.ami.on_gap(lambda gap: self._spawn(self.reconcile(), "acd-reconcile")))
        try:
            await self.rebuild()
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._event_loop(), name="acd-events")
                tg.create_task(self._timer_loop(), name="acd-timers")
                if self.callbacks is not None:
                    tg.create_task(self._callback_loop(self.callbacks), name="acd-callbacks")
        finally:
            for unsub in self._unsubscribe:
                unsub()
            self._unsubscribe.clear()
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.recorder is not None:
                await self.recorder.close()

    async def idle(self) -> None:
        """Return once every event received so far is handled, no action task runs and the timer
        loop waits for a deadline still ahead (tests use it with a FakeClock)."""
        while True:
            await self._inbox.join()
            tasks = [t for t in self._tasks if not t.done()]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
                continue
            now = self.clock.now()
            rd = self.router.next_deadline()
            td = self._next_timer()
            due = (td is not None and td <= now) or (rd is not None and rd <= now)
            # A set wake-up the timer loop has not seen yet means it is about to look again.
            waking = self._wake.is_set() and self._parked.is_set()
            if due or waking or not self._parked.is_set() or not self._inbox.empty():
                await asyncio.sleep(0)  # let the timer loop / event loop take their turn
                continue
            return

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except AMIActionError as exc:
                if not channel_gone(exc):
                    log.warning("ACD task %s failed: %s", name, exc)
                else:  # the call ended while this task was under way: a normal race
                    log.debug("ACD task %s: the channel had gone already (%s)", name, exc)
            except (CallcenterError, OSError) as exc:
                # A known failure, said in a line (no traceback over an operator's terminal).
                log.warning("ACD task %s failed: %s", name, exc)
                log.debug("ACD task %s failed", name, exc_info=True)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _timer(self, at: float, kind: cs.TimerKind, key: str) -> None:
        """Start (or move) the timer ``kind`` of ``key``."""
        seq = next(self._seq)
        self._timer_seq[(kind, key)] = seq
        heapq.heappush(self._timers, (at, seq, kind, key))
        self._wake.set()

    def _cancel_timer(self, kind: cs.TimerKind, key: str) -> None:
        self._timer_seq.pop((kind, key), None)  # its heap entry is skipped when it comes up

    def _next_timer(self) -> float | None:
        """The next live timer's deadline (cancelled and replaced entries are dropped)."""
        while self._timers:
            at, seq, kind, key = self._timers[0]
            if self._timer_seq.get((kind, key)) == seq:
                return at
            heapq.heappop(self._timers)
        return None

    async def _timer_loop(self) -> None:
        while True:
            now = self.clock.now()
            while (at := self._next_timer()) is not None and at <= now:
                _, _, kind, key = heapq.heappop(self._timers)
                del self._timer_seq[(kind, key)]
                self._on_timer(kind, key, now)
            rd = self.router.next_deadline()
            if rd is not None and rd <= now:
                self._apply(self.router.tick(now), now)
                continue
            deadlines = [d for d in (rd, self._next_timer()) if d is not None]
            self._wake.clear()
            if not deadlines:
                self._parked.set()
                await self._wake.wait()
                self._parked.clear()
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, min(deadlines) - now)))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                self._parked.set()
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._parked.clear()
                for f in (sleeper, waker):
                    if not f.done():
                        f.cancel()
                await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def drain_callbacks(self) -> None:
        """Return once every callback progress so far is kept (tests, shutdown)."""
        if self.callbacks is not None:
            await self._callback_writes.join()

    async def _callback_loop(self, store: CallbackStore) -> None:
        """Keep each callback's progress in the database, in order, off the event path."""
        while True:
            p = await self._callback_writes.get()
            try:
                await store.progress(
                    p.call_id,
                    p.state,
                    attempts=p.attempts,
                    next_at=p.next_at,
                    timeout=self.action_timeout * 2,
                )
            except (CallcenterError, OSError) as exc:
                log.error("callback %s: progress %s not kept: %s", p.call_id, p.state, exc)
            finally:
                self._callback_writes.task_done()

    async def _event_loop(self) -> None:
        while True:
            view = await self._inbox.get()
            try:
                self._on_event(view)
            except (DomainError, AsteriskError):
                log.warning("ACD could not handle %s", type(view).__name__, exc_info=True)
            finally:
                self._inbox.task_done()

    def reload(self, config: cm.Config) -> None:
        """New configuration (``callcenter apply``): queue rules apply at once to the calls already
        waiting (relaxation, max wait, strategy...); new agents can log in. Logged-in agents keep
        the skills they logged in with until they log in again; removed queues keep their calls."""
        now = self.clock.now()
        self.config = config
        self._pins.max_failures = config.security.pin_attempts
        self._pins.lockout_seconds = config.security.lockout_seconds
        for agent_id in config.agents:
            self.agents.setdefault(agent_id, ag.AgentState(agent_id))
        for q in config.queues.values():
            self._apply(self.router.set_queue(policy_from_config(q), now), now)
        self._wake.set()

    # ================================================================== agents API
    def verify_pin(self, agent_id: str, pin: str, *, sources: Sequence[str]) -> None:
        """Check an agent's PIN; too many wrong ones from a source (a phone's endpoint, its caller
        ID, an API client: ``callcenter.acd.pin``) lock the agent out *from that source* a while,
        never from the agent's own phone. The wrong PIN that locks is still ``bad_pin``; the next
        try from that source is refused."""
        agent = self._agent_config(agent_id)
        result = self._pins.check(agent_id, pin, agent.pin.value, self.clock.now(), sources=sources)
        if result is PinCheck.LOCKED:
            raise DomainError(
                f"agent {agent_id} is locked after {self._pins.max_failures} wrong PINs", code="locked_out"
            )
        if result is not PinCheck.OK:
            raise DomainError("wrong PIN", code="bad_pin")

    async def login(
        self,
        agent_id: str,
        *,
        paused_reason: str | None = None,
        pin: str | None = None,
        sources: Sequence[str] = (),
    ) -> ag.AgentState:
        """Log ``agent_id`` in; with ``pin``, checked first, counted against ``sources`` (where it
        was typed: required with a PIN)."""
        if pin is not None:
            if not sources:
                raise DomainError("a PIN needs where it was typed (its sources)", code="bad_request")
            self.verify_pin(agent_id, pin, sources=sources)
        if paused_reason is not None:
            self._check_pause_reason(paused_reason)
        self._agent_config(agent_id)
        return self._agent_event(agent_id, ag.Login(paused_reason=paused_reason), self.clock.now())

    async def logout(self, agent_id: str, reason: str = "logout") -> ag.AgentState:
        return self._agent_event(agent_id, ag.Logout(reason), self.clock.now())

    async def pause(self, agent_id: str, reason: str) -> ag.AgentState:
        self._check_pause_reason(reason)
        return self._agent_event(agent_id, ag.Pause(reason), self.clock.now())

    async def resume(self, agent_id: str) -> ag.AgentState:
        return self._agent_event(agent_id, ag.Resume(), self.clock.now())

    def agent_state(self, agent_id: str) -> ag.AgentState:
        self._agent_config(agent_id)
        return self.agents[agent_id]

    def snapshot(self) -> dict[str, Any]:
        """Agents and waiting calls, for the API / wallboard."""
        return {
            "agents": {
                a: {"status": s.status.value, "reason": s.reason, "since": s.since, "call_id": s.call_id}
                for a, s in sorted(self.agents.items())
            },
            "calls": {
                c: {
                    "queue": x.queue,
                    "state": x.public,
                    "agent_id": x.agent_id,
                    "queued_at": x.queued_at,
                    "held": x.held,
                }
                for c, x in sorted(self._calls.items())
            },
            "waiting": {q: self.router.waiting_count(q) for q in self.router.queue_names()},
        }

    def call_state(self, call_id: str) -> str | None:
        c = self._calls.get(call_id)
        return None if c is None else c.public

    def _agent_config(self, agent_id: str) -> cm.Agent:
        agent = self.config.agents.get(agent_id)
        if agent is None:
            raise DomainError(f"no agent {agent_id!r}", code="unknown_agent")
        return agent

    def _check_pause_reason(self, reason: str) -> None:
        known = self.config.pause_reasons
        if known and reason not in known and reason not in self._rona_reasons():
            raise DomainError(f"unknown pause reason {reason!r}", code="unknown_pause_reason")

    def _rona_reasons(self) -> set[str]:
        return {q.rona_pause_reason for q in self.config.queues.values() if q.rona_pause_reason}

    # ================================================================== calls API
    async def enqueue(self, call: QueuedCall) -> None:
        """Take a call from the IVR: it holds in music and waits for an agent.

        Raises ``DomainError`` (``unknown_queue``, ``duplicate_call``) or ``UnsafeValueError``."""
        _check(call.call_id, "call_id")
        _check(call.channel, "channel", SAFE_CHANNEL)
        if call.queue not in self.config.queues:
            raise DomainError(f"no queue {call.queue!r}", code="unknown_queue")
        if call.call_id in self._calls:
            raise DomainError(f"call {call.call_id} is already in the ACD", code="duplicate_call")
        now = self.clock.now()
        c, effects = cs.enqueue(call, now, self._setup())
        self._commit(c.call_id, None, c)
        await self._put_on_hold(c.call_id, self._carry(effects, now, inline=True))
        # Joins the line unless it hung up while we were talking to Asterisk.
        self._call_event(c.call_id, cs.HoldReady(call.priority), now)

    async def _put_on_hold(self, call_id: str, actions: list[_Action]) -> None:
        try:
            for action in actions:
                await self._act(action)
        except AsteriskError:
            log.warning("call %s: could not put it on hold", call_id, exc_info=True)

    async def accept_callback(self, call_id: str, number: str) -> None:
        """The caller chose to be called back: it keeps its place; when its turn comes the agent
        is rung first, then ``number`` is dialled from the agent's leg."""
        _check(number, "callback number", SAFE_NUMBER)
        c = self._get_call(call_id)
        number = self._dial_out(call_id, number, cm.DialPurpose.CALLBACK)
        if self.callbacks is not None:
            # Kept first: a callback the caller was promised survives a restart.
            stored = StoredCallback(call_id, c.queue, number, c.queued_at, c.info.priority)
            if not await self.callbacks.add(stored, timeout=self.action_timeout * 2):
                self.sink.submit(
                    CallEvent(
                        call_id, self.clock.now(), EventKind.NOTE, queue=c.queue, detail={"callback": "dnc"}
                    )
                )
                raise DomainError(f"{number} is on a do-not-call list: no callback", code="dnc")
        try:
            self._call_event(call_id, cs.AcceptCallback(number), self.clock.now())
        except DomainError:
            if self.callbacks is not None:  # answered (or gone) meanwhile: nothing to call back
                await self.callbacks.progress(
                    call_id, "cancelled", attempts=0, next_at=None, timeout=self.action_timeout * 2
                )
            raise

    async def schedule_callback(self, call_id: str, number: str | None, at: float, *, by: str) -> str:
        """A callback to the customer of ``call_id`` (the agent's current or last call) at ``at``:
        ``number`` (default: the caller's) passes the dial-out policy; when its time comes it
        waits in that call's queue like a caller's callback (``cs.schedule_callback``). Returns
        the new call's id."""
        orig = self._calls.get(call_id) or next(
            (c for c in self._closing.values() if c.call_id == call_id), None
        )
        info = orig.info if orig is not None else None
        queue = orig.queue if orig is not None else None
        if orig is None:
            last = next((x for x in self._last_calls.values() if x.info.call_id == call_id), None)
            if last is None:
                raise DomainError(f"no call {call_id!r} to call back", code="unknown_call")
            info, queue = last.info, last.queue
        assert info is not None and queue is not None  # noqa: S101 - set on every path above
        raw = number or info.caller_number or ""
        if not raw:
            raise DomainError(f"call {call_id} has no number to call back", code="no_number")
        _check(raw, "callback number", SAFE_NUMBER)
        now = self.clock.now()
        if not now < at <= now + 30 * 86400:
            raise DomainError("a callback is scheduled within the next 30 days", code="bad_time")
        if queue not in self.config.queues:
            raise DomainError(f"no queue {queue!r}", code="unknown_queue")
        dial = self._dial_out(call_id, raw, cm.DialPurpose.CALLBACK)
        new_id = f"{call_id[:80]}-cb{next(self._seq)}"
        cb = QueuedCall(
            new_id,
            f"callback/{new_id}",  # no caller channel: never one the PBX reports
            queue,
            skills=info.skills,
            priority=info.priority,
            language=info.language,
            caller_number=dial,
            data=info.data,
            redirect_to_hold=False,
            caller_name=info.caller_name,
        )
        c, effects = cs.schedule_callback(cb, at, now, of=call_id)
        self._commit(new_id, None, c)
        self._carry(effects, now)
        log.info("call %s: callback %s scheduled by %s for %s", call_id, new_id, by, at)
        return new_id

    async def transfer_to_queue(self, call_id: str, queue_id: str, *, priority: int | None = None) -> None:
        """Blind transfer by the agent to a queue: the caller returns to hold (its data kept),
        the agent's leg ends and the agent wraps up; the call waits in ``queue_id``."""
        c = self._get_call(call_id)
        if queue_id not in self.config.queues:
            raise DomainError(f"no queue {queue_id!r}", code="unknown_queue")
        now = self.clock.now()
        await self._confirmed(call_id, cs.TransferToQueue(queue_id), now)
        prio = c.info.priority if priority is None else priority
        self._call_event(call_id, cs.HoldReady(prio, arrived_at=now), now)

    async def transfer_to_number(self, call_id: str, number: str) -> None:
        """Blind transfer to an outside number (cc-transfer,<number>,1)."""
        _check(number, "transfer number", SAFE_NUMBER)
        self._get_call(call_id)
        number = self._dial_out(call_id, number, cm.DialPurpose.TRANSFER)
        await self._confirmed(call_id, cs.TransferToNumber(number), self.clock.now())

    async def attended_transfer(self, call_id: str, target: str) -> None:
        """Attended transfer: Asterisk's Atxfer on the agent's leg (the agent talks to ``target``
        first; hanging up completes it). The agent wraps up once, when its leg ends."""
        _check(target, "transfer target", SAFE_NUMBER)
        self._get_call(call_id)
        target = self._dial_out(call_id, target, cm.DialPurpose.TRANSFER)
        await self._confirmed(call_id, cs.AttendedTransfer(target), self.clock.now())

    async def hold(self, call_id: str, *, by: str = "") -> None:
        """Put the connected caller on hold (its queue's music; the agent's leg waits in silence).
        Refused (``DomainError``): ``already_held``, ``not_connected``, ``caller_gone``."""
        self._get_call(call_id)
        await self._confirmed(call_id, cs.HoldRequested(by), self.clock.now())

    async def unhold(self, call_id: str, *, by: str = "") -> None:
        """Take the caller off hold: the agent's leg bridges it again. Refused: ``not_held``."""
        self._get_call(call_id)
        await self._confirmed(call_id, cs.UnholdRequested(by), self.clock.now())

    async def _confirmed(self, key: str, event: cs.CallEventType, now: float) -> None:
        """A request logged only once Asterisk did it (a transfer): the table's answer is worked
        out, its AMI actions are sent and awaited, and only then is the new state kept and the
        rest of its effects (the call log, the agent's wrap-up) carried out. A refused action
        changes nothing but a note in the call's log, and reaches the caller of the API."""
        old = self._calls.get(key)
        if old is None:
            raise DomainError(f"no call {key!r} in the ACD", code="unknown_call")
        new, effects = cs.transition(old, event, now, self._setup())  # refusals raise here
        try:
            for action in effects:
                if isinstance(action, _ACTIONS):
                    # every refusal counts here, a gone channel too: the request did not happen
                    await self._act_now(action)
        except CallcenterError as exc:
            note = {"refused": type(event).__name__, "reason": str(exc)[:200]}
            self.sink.submit(
                CallEvent(old.call_id, self.clock.now(), EventKind.NOTE, agent_id=old.agent_id, detail=note)
            )
            raise
        current = self._calls.get(key)
        if current is None:
            return  # the call ended meanwhile (its hangup is logged on its own)
        if current is not old:  # events came in meanwhile: apply the request to what is now
            try:
                new, effects = cs.transition(current, event, now, self._setup())
            except DomainError:
                return
        self._commit(key, current, new)
        self._carry([e for e in effects if not isinstance(e, _ACTIONS)], now)
        self._retire(key)

    def _dial_out(self, call_id: str, number: str, purpose: cm.DialPurpose) -> str:
        """The number to dial for ``purpose`` if the dial-out policy allows it; a refusal is
        logged on the call and raised (``DialOutRefusedError``)."""
        try:
            return dialout.check(self.config, number, purpose)
        except DialOutRefusedError as exc:
            self.sink.submit(dialout.refusal_event(call_id, self.clock.now(), exc))
            log.warning("call %s: %s", call_id, exc)
            raise

    async def pci_pause(self, call_id: str, *, by: str) -> bool:
        done = self.recorder is not None and await self.recorder.pci_pause(call_id, by=by)
        await self._pci_changed(call_id, paused=True)
        return done

    async def pci_resume(self, call_id: str, *, by: str) -> bool:
        done = self.recorder is not None and await self.recorder.pci_resume(call_id, by=by)
        await self._pci_changed(call_id, paused=False)
        return done

    async def _pci_changed(self, call_id: str, *, paused: bool) -> None:
        """Tell the listeners (supervisors' monitoring: what they hear is silenced too)."""
        for listener in list(self.pci_listeners):
            try:
                await listener(call_id, paused=paused)
            except CallcenterError as exc:
                log.warning("PCI %s of %s not passed on: %s", "pause" if paused else "resume", call_id, exc)

    async def record(self, call_id: str) -> bool:
        """On-demand recording of a connected call (its agent leg runs cc-agent-leg again)."""
        c = self._get_call(call_id)
        if self.recorder is None or c.status is not cs.CallStatus.CONNECTED:
            return False
        if not cs.recordable(c):
            raise DomainError(f"call {call_id} is on hold: take it off hold to record", code="on_hold")
        leg = self._recordable_leg(c)
        if leg is None:
            return False
        return await self.recorder.start(
            call_id, leg, caller_channel=c.info.channel, queue=c.queue, agent_id=c.agent_id
        )

    @staticmethod
    def _recordable_leg(c: cs.Call) -> str | None:
        """The agent leg's channel of a call cc-agent-leg bridged (a callback's leg runs Dial()
        in cc-transfer instead: redirecting it would drop the person called back)."""
        leg = c.leg(c.leg_id)
        if c.callback_number or leg is None or not leg.channel:
            log.info("call %s: no agent leg in cc-agent-leg to record on", c.call_id)
            return None
        return leg.channel

    async def withdraw(self, call_id: str) -> bool:
        """Take a call out of the ACD before an agent is on it (a person the dialer reached was
        not connected in time and now hears the identification message): an agent leg still
        ringing is hung up and its agent is free again without a RONA; the call is logged as
        abandoned. False when an agent already has the call, or the ACD does not know it."""
        c = self._calls.get(call_id)
        if c is None or not cs.withdrawable(c):
            return False
        self._call_event(call_id, cs.Withdraw(), self.clock.now())
        return True

    def hold_agent(self, agent_id: str, attempt_id: str) -> bool:
        """Hold an available agent for a dialer attempt (progressive, preview) before it dials: no
        inbound call can take it; the attempt's person, enqueued with ``reserved_agent``, is offered
        to it. False when the agent is not available (nothing changes)."""
        _check(attempt_id, "attempt_id")
        state = self.agents.get(agent_id)
        if state is None or state.status is not ag.Status.AVAILABLE:
            return False
        self._agent_event(agent_id, ag.Hold(attempt_id), self.clock.now())
        return True

    def release_agent(self, agent_id: str, attempt_id: str, reason: str = "hold_released") -> None:
        """The held attempt ended without a person for the agent: it is free again at once (or its
        pending pause/logout applies). A no-op when the agent no longer holds that attempt."""
        if agent_id in self.agents:
            self._agent_event(agent_id, ag.Release(attempt_id, reason), self.clock.now())

    def held_agents(self) -> dict[str, str]:
        """Agent id -> the attempt id the dialer holds it for."""
        return {a: held for a, s in self.agents.items() if (held := ag.held(s)) is not None}

    def call_of_agent(self, agent_id: str) -> str | None:
        return self.agents[agent_id].call_id if agent_id in self.agents else None

    # ================================================================== dispositions, screen pop
    async def dispose(
        self,
        agent_id: str,
        code: str | None,
        notes: str | None = None,
        *,
        call_id: str | None = None,
        by: str,
    ) -> tuple[ag.AgentState, DispositionRecord]:
        """The disposition of the agent's current call, or of its last one (which ends its wrap-up):
        ``code`` one of the codes of that call's queue or campaign (``DispositionError``), ``notes``
        cleaned (``wrapup.clean_notes``). ``call_id``, if given, must be that call (``wrong_call``).
        The record goes to the call log; the agent's new state is returned."""
        state = self.agent_state(agent_id)
        current = self._calls.get(state.call_id or "") if state.status is ag.Status.ON_CALL else None
        queue: str | None
        if current is not None:
            target, queue, campaign = current.call_id, current.queue, current.info.campaign_id
        elif state.wrap_call_id is not None:
            target, queue, campaign = state.wrap_call_id, state.wrap_queue, state.wrap_campaign
        else:
            raise DomainError(f"agent {agent_id} has no call to give a disposition for", code="no_call")
        if call_id is not None and call_id != target:
            raise DomainError(
                f"call {call_id!r} is not agent {agent_id}'s current or last call", code="wrong_call"
            )
        chosen = wrapup.choose(self.config.disposition_codes(queue, campaign), code)
        now = self.clock.now()
        new = self._agent_event(agent_id, ag.Dispose(target), now)
        record = DispositionRecord(
            target,
            agent_id,
            now,
            queue=queue,
            campaign_id=campaign,
            code=chosen.code if chosen else None,
            label=chosen.label if chosen else None,
            notes=wrapup.clean_notes(notes),
            outcome="given",
            given_by=by,
        )
        self.sink.submit(record)
        return new, record

    def agent_call(self, agent_id: str) -> AgentCall | None:
        """What the agent's screen shows of its call: the one offered to it or that it is on, else
        the last one it handled (wrap-up); None if it has had none since the controller started."""
        state = self.agent_state(agent_id)
        c = self._calls.get(state.call_id or "")
        if c is not None and c.agent_id == agent_id:
            stage = "offered" if state.status in (ag.Status.RESERVED, ag.Status.RINGING) else "connected"
            return AgentCall(c.info, c.queue, stage, c.queued_at, c.answered_at, None, c.held)
        last = self._last_calls.get(agent_id)
        if last is None or last.info.call_id != state.wrap_call_id:
            return None
        stage = "wrap_up" if state.status is ag.Status.WRAP_UP else "ended"
        return AgentCall(last.info, last.queue, stage, last.queued_at, last.answered_at, last.ended_at)

    def _call_ended(self, e: cs.AgentEvent, ev: ag.CallEnded, now: float) -> cs.AgentEvent:
        """An agent's call ended: remember it for its screen, and whether a disposition is owed."""
        c = self._calls.get(ev.call_id) or next(
            (x for x in self._closing.values() if x.call_id == ev.call_id), None
        )
        if c is not None:
            leg = next((x for x in c.legs if x.agent_id == e.agent_id), None)
            answered = leg.answered_at if leg is not None else c.answered_at
            self._last_calls[e.agent_id] = LastCall(c.info, ev.queue or c.queue, c.queued_at, answered, now)
        needs = bool(self.config.disposition_codes(ev.queue, ev.campaign))
        return cs.AgentEvent(e.agent_id, dataclasses.replace(ev, needs_disposition=needs), strict=e.strict)

    def _get_call(self, call_id: str) -> cs.Call:
        c = self._calls.get(call_id)
        if c is None:
            raise DomainError(f"no call {call_id!r} in the ACD", code="unknown_call")
        return c

    # ================================================================== the agent machine
    def _agent_event(self, agent_id: str, event: ag.Event, now: float) -> ag.AgentState:
        if agent_id not in self.agents:
            raise DomainError(f"no agent {agent_id!r}", code="unknown_agent")
        old = self.agents[agent_id]
        new, effects = ag.transition(old, event, now)
        self.agents[agent_id] = new
        for eff in effects:
            if isinstance(eff, ag.StateChanged):
                call = self._calls.get(eff.call_id or "")
                queue = call.queue if call is not None else None
                self.sink.submit(
                    AgentStateChange(
                        agent_id, now, eff.new.value, eff.reason, queue=queue, call_id=eff.call_id
                    )
                )
                self._measure_wrap_up(agent_id, eff, now)
                if eff.new is ag.Status.PAUSED:
                    limit = self._pause_limit(eff.reason)
                    if limit is not None:
                        self._timer(now + limit, cs.TimerKind.PAUSE_LIMIT, agent_id)
                if self.on_change is not None:
                    self.on_change(self.agent_change(agent_id, new, now, queue))
            elif isinstance(eff, ag.ScheduleWrapUpEnd):
                self._timer(eff.at, cs.TimerKind.WRAP_UP, agent_id)
            elif isinstance(eff, ag.WithdrawOffer):
                self._call_event(eff.call_id, cs.OfferWithdrawn(agent_id), now)
            elif isinstance(eff, ag.Deferred):
                log.info("agent %s: %s deferred (%s)", agent_id, eff.request, eff.reason)
            elif isinstance(eff, ag.DispositionMissing):
                self.sink.submit(
                    DispositionRecord(
                        eff.call_id,
                        agent_id,
                        now,
                        queue=eff.queue,
                        campaign_id=eff.campaign,
                        code=cm.NO_DISPOSITION,
                        outcome=eff.reason,
                        given_by="system",
                    )
                )
        self._sync_router(agent_id, old, new, now)
        return new

    def _measure_wrap_up(self, agent_id: str, eff: ag.StateChanged, now: float) -> None:
        """Log each call's wrap-up as the agent spent it: from the end of the call to the end of
        the wrap-up (its timer, a resume, a pause or logout), 0 when the agent had none, whoever
        ended the call."""
        if eff.new is ag.Status.WRAP_UP and eff.call_id:
            self._wrapping[agent_id] = (eff.call_id, now)
        elif eff.old is ag.Status.WRAP_UP and agent_id in self._wrapping:
            call_id, since = self._wrapping.pop(agent_id)
            self.sink.submit(CallRecord(call_id, now, wrapup_seconds=round(now - since, 3)))
        elif eff.old is ag.Status.ON_CALL and eff.new is not ag.Status.ON_CALL and eff.call_id:
            self.sink.submit(CallRecord(eff.call_id, now, wrapup_seconds=0.0))

    def _sync_router(self, agent_id: str, old: ag.AgentState, new: ag.AgentState, now: float) -> None:
        if new.status is old.status:
            return
        if old.status is ag.Status.LOGGED_OUT:
            with contextlib.suppress(RoutingError):
                self.router.add_agent(agent_id, dict(self.config.agents[agent_id].skills))
        if new.status is ag.Status.LOGGED_OUT:
            with contextlib.suppress(RoutingError):
                self.router.remove_agent(agent_id)
            return
        if new.status is ag.Status.AVAILABLE:
            self._apply(self.router.agent_available(agent_id, now), now)
        elif old.status is ag.Status.AVAILABLE:
            self.router.agent_unavailable(agent_id)

    # ================================================================== router decisions
    def _apply(self, decisions: list[rt.Decision], now: float) -> None:
        for d in decisions:
            if isinstance(d, rt.Offer):
                if d.call_id not in self._calls:  # pragma: no cover - the router only knows calls we gave it
                    self.router.agent_unavailable(d.agent_id)
                    continue
                opens = self._callback_window(self._calls[d.call_id], now)
                if opens is not None:  # a callback outside its calling window: later, same place
                    self._call_event(d.call_id, cs.CallbackDeferred(opens), now)
                    self._apply(self.router.agent_available(d.agent_id, now), now)
                    continue
                leg_id = f"ccleg-{uuid.uuid4().hex}"
                self._call_event(d.call_id, cs.Offered(d.agent_id, leg_id, d.ring), now)
            elif isinstance(d, rt.Relaxed):
                self.sink.submit(
                    CallEvent(
                        d.call_id, now, EventKind.NOTE, queue=d.queue, detail={"relaxed_stage": d.stage}
                    )
                )
            elif isinstance(d, rt.Overflowed):
                self._call_event(d.call_id, cs.Overflowed(d.from_queue, d.to_queue), now)
            elif isinstance(d, rt.Expired):
                self._call_event(d.call_id, cs.Expired(d.queue), now)
            elif isinstance(d, rt.OfferCallback):
                self.sink.submit(
                    CallEvent(
                        d.call_id,
                        now,
                        EventKind.NOTE,
                        queue=d.queue,
                        detail={"callback_offer_ewt": None if math.isinf(d.ewt) else round(d.ewt)},
                    )
                )
                if self.on_callback_offer is not None:
                    self._spawn(self.on_callback_offer(d.call_id, d.ewt), f"callback-offer-{d.call_id}")
                elif self.callback_number(d.call_id) is not None:
                    self._spawn(self._offer_callback(d.call_id), f"callback-offer-{d.call_id}")

    # ================================================================== the call table
    def _setup(self) -> cs.Setup:
        """The table's view of the configuration, per event: a reload applies at once."""
        return cs.Setup(
            self.config.queues,
            ring_guard=self.ring_guard,
            callback_retry_delay=self.config.callbacks.retry_delay,
            callback_max_attempts=self.config.callbacks.max_attempts,
            recorder=self.recorder is not None,
        )

    def _call_event(self, key: str, event: cs.Event, now: float, *, inline: bool = False) -> list[_Action]:
        """Feed ``event`` to the call under ``key`` and carry its effects out. ``inline``: its
        AMI actions are returned for the caller to await (errors reach it), else they run as tasks.
        Nothing happens for a call the ACD no longer follows."""
        old = self._calls.get(key) or self._closing.get(key)
        if old is None:
            return []
        new, effects = cs.transition(old, event, now, self._setup())
        self._commit(key, old, new)
        actions = self._carry(effects, now, inline=inline)
        self._retire(key)
        return actions

    def _leg_event(self, leg_id: str, event: cs.LegEventType, now: float) -> None:
        key = self._leg_owner.get(leg_id)
        if key is not None:
            self._call_event(key, event, now)

    def _commit(self, key: str, old: cs.Call | None, new: cs.Call) -> None:
        """Keep ``new`` under ``key`` and the indexes that follow it (channels, legs)."""
        info = new.info
        if old is None:
            self._by_channel[info.channel] = new.call_id
            if info.uniqueid:
                self._by_channel[info.uniqueid] = new.call_id
        elif new.status is cs.CallStatus.CLOSED or new.caller_gone:
            for ch in (info.channel, info.uniqueid):
                if ch and self._by_channel.get(ch) == new.call_id:
                    del self._by_channel[ch]
        if key in self._closing:
            self._closing[key] = new
        else:
            self._calls[key] = new
        if old is not None and old.legs is not new.legs:
            kept = {leg.leg_id for leg in new.legs}
            for leg in old.legs:
                if leg.leg_id not in kept:
                    self._legs.pop(leg.leg_id, None)
                    self._leg_owner.pop(leg.leg_id, None)
                    if leg.channel and self._leg_by_channel.get(leg.channel) == leg.leg_id:
                        del self._leg_by_channel[leg.channel]
        for leg in new.legs:
            self._legs[leg.leg_id] = leg
            self._leg_owner[leg.leg_id] = key
            if leg.channel:
                self._leg_by_channel[leg.channel] = leg.leg_id
        if self.on_change is not None:
            change = _call_change(old, new, self.clock.now())
            if change is not None:
                self.on_change(change)

    def agent_change(self, agent_id: str, s: ag.AgentState, now: float, queue: str | None) -> feed.Change:
        """The hub's change for agent ``agent_id`` in state ``s`` (its queues, and ``queue`` of its call)."""
        agent = self.config.agents.get(agent_id)
        queues = set(self.config.queues_of(agent)) if agent is not None else set()
        change = feed.agent_change(
            agent_id,
            now,
            state=s.status.value,
            reason=s.reason,
            since=s.since,
            call_id=s.call_id,
            queues=queues | ({queue} if queue else set()),
        )
        return dataclasses.replace(change, data={**change.data, "queue": queue})

    def _retire(self, key: str) -> None:
        """A closed call leaves the open calls once its effects are carried out (the agent table's
        records still name its queue); it is followed while an agent leg of it is up."""
        c = self._calls.get(key)
        if c is not None and c.status is cs.CallStatus.CLOSED:
            del self._calls[key]
            self._group_files.pop(c.call_id, None)
            if c.legs:
                key = f"{c.call_id}#{next(self._seq)}"  # a new call may come with the same id
                self._closing[key] = c
                for leg in c.legs:
                    self._leg_owner[leg.leg_id] = key
        elif (c := self._closing.get(key)) is not None and not c.legs:
            del self._closing[key]

    def _carry(self, effects: list[cs.Effect], now: float, *, inline: bool = False) -> list[_Action]:
        """Carry the table's effects out, in order; AMI actions run as tasks unless ``inline``."""
        actions: list[_Action] = []
        for e in effects:
            if isinstance(e, cs.Log):
                self.sink.submit(e.record)
            elif isinstance(e, cs.Count):
                self.stats[e.stat] += 1
            elif isinstance(e, cs.AgentEvent):
                if isinstance(e.event, ag.CallEnded):
                    e = self._call_ended(e, e.event, now)
                if e.strict:
                    self._agent_event(e.agent_id, e.event, now)
                else:
                    with contextlib.suppress(AgentStateError):
                        self._agent_event(e.agent_id, e.event, now)
            elif isinstance(e, cs.StartTimer):
                self._timer(e.at, e.kind, e.key)
            elif isinstance(e, cs.CancelTimer):
                self._cancel_timer(e.kind, e.key)
            elif isinstance(e, cs.RouterEnqueue):
                call_id = e.request.call_id
                held = self.agents.get(e.agent) if e.agent is not None else None
                if e.agent is not None and held is not None and ag.held(held) == call_id:
                    self._apply(self.router.place(e.request, e.agent, now), now)
                    continue
                decisions = self.router.enqueue(e.request, now, arrived_at=e.arrived_at)
                if e.callback and self.router.is_waiting(call_id):
                    self.router.accept_callback(call_id)
                self._apply(decisions, now)
            elif isinstance(e, cs.Requeue):
                self._apply(self.router.requeue(e.call_id, now, exclude=e.exclude), now)
            elif isinstance(e, cs.Unroute):
                self.router.remove_call(e.call_id)
            elif isinstance(e, cs.MarkCallback):
                self.router.accept_callback(e.call_id)
            elif isinstance(e, cs.RecordHandled):
                self.router.record_handled(e.queue, e.agent_id, e.handle_seconds, talk_seconds=e.talk_seconds)
            elif isinstance(e, cs.RecordingEnded):
                if self.recorder is not None:
                    self.recorder.call_ended(e.call_id)
            elif isinstance(e, cs.BridgeFormed):
                self._bridge_formed(e)
            elif isinstance(e, cs.Announce):
                self._spawn(self._announce(e.call_id), f"announce-{e.call_id}")
            elif isinstance(e, cs.RedirectLeg):  # the ring-all winner: its group's file is its own now
                self._group_files.pop(e.call_id, None)
                self._spawn(self._act(e), f"ring-winner-{e.leg_id}")
            elif isinstance(e, cs.Ignored):
                log.debug("call %s: %s ignored in %s: %s", e.call_id, e.event, e.status, e.reason)
            elif isinstance(e, cs.CallbackProgress):
                if self.callbacks is not None:
                    self._callback_writes.put_nowait(e)
            elif inline:
                actions.append(e)
            else:
                self._spawn(self._act(e), f"{type(e).__name__.lower()}-{_subject(e)}")
        return actions

    # ================================================================== AMI actions
    async def _act(self, e: _Action) -> None:
        try:
            await self._act_now(e)
        except AMIActionError as exc:
            if not channel_gone(exc):
                raise
            # The call ended between the decision and its action: a normal race. Its Hangup event
            # reaches the call's table, which settles the call; nothing more to do here.
            log.debug("%s: the channel had gone already (%s)", type(e).__name__, exc)

    async def _act_now(self, e: _Action) -> None:
        timeout = self.action_timeout
        if isinstance(e, cs.Originate):
            await self._originate(e)
        elif isinstance(e, cs.Hangup):
            await self.ami.send_action(
                names.ACTION_HANGUP, {"Channel": e.channel, "Cause": "16"}, timeout=timeout
            )
        elif isinstance(e, cs.SetVariables | cs.Redirect):
            for var, value in e.variables:
                await self.ami.send_action(
                    names.ACTION_SETVAR,
                    {"Channel": e.channel, "Variable": var, "Value": value},
                    timeout=timeout,
                )
            if isinstance(e, cs.Redirect):
                await self._redirect(e.channel, e.context)
        elif isinstance(e, cs.RedirectLeg):
            # The ring-all winner's leg waits in cc-hold: send it where a one-agent offer starts
            # (cc-agent-leg bridges the caller; cc-transfer dials a callback's number).
            leg = self._legs.get(e.leg_id)
            if leg is not None and leg.channel and cs.leg_connected(self._calls.get(e.call_id), e.leg_id):
                await self._redirect(leg.channel, e.context)
        elif isinstance(e, cs.HoldLegs):
            await self.ami.send_action(
                names.ACTION_SETVAR,
                {"Channel": e.caller_channel, "Variable": names.VAR_MOH_CLASS, "Value": e.music_class},
                timeout=timeout,
            )
            await self.ami.send_action(
                names.ACTION_REDIRECT,
                {
                    "Channel": e.caller_channel,
                    "Context": names.CTX_HELD,
                    "Exten": "s",
                    "Priority": "1",
                    "ExtraChannel": e.leg_channel,
                    "ExtraContext": names.CTX_HELD_AGENT,
                    "ExtraExten": "s",
                    "ExtraPriority": "1",
                },
                timeout=timeout,
            )
        elif isinstance(e, cs.Atxfer):
            await self.ami.send_action(  # inherited by the channel Atxfer creates
                names.ACTION_SETVAR,
                {"Channel": e.channel, "Variable": f"__{names.VAR_TRANSFER_TARGET}", "Value": e.target},
                timeout=timeout,
            )
            await self.ami.send_action(
                names.ACTION_ATXFER,
                {"Channel": e.channel, "Exten": names.ATXFER_EXTEN, "Context": names.CTX_ATXFER},
                timeout=timeout,
            )

    async def _redirect(self, channel: str, context: str) -> None:
        await self.ami.send_action(
            names.ACTION_REDIRECT,
            {"Channel": channel, "Context": context, "Exten": "s", "Priority": "1"},
            timeout=self.action_timeout,
        )

    async def _originate(self, e: cs.Originate) -> None:
        if not cs.leg_rings(self._legs.get(e.leg_id)):
            return  # its offer ended before the action could go out
        agent = self.config.agents[e.agent_id]
        queue = self.config.queues.get(e.queue) or cm.Queue(e.queue, e.queue, {})
        variables = [
            f"{names.VAR_CALLER_CHANNEL}={e.caller_channel}",
            f"{names.VAR_CALL_ID}={e.call_id}",
            f"{names.VAR_AGENT_ID}={agent.id}",
            f"{names.VAR_QUEUE}={e.queue}",
        ]
        headers: list[tuple[str, object]] = [
            ("Channel", self.agent_channel.format(endpoint=agent.endpoint, agent=agent.id)),
            ("Timeout", str(int(queue.ring_timeout * 1000))),
            ("ChannelId", e.leg_id),
            ("OtherChannelId", cs.other_half(e.leg_id)),
            # The queue's own number, when it sets one, instead of the caller's (agents see which
            # line the call came in on); the queue's name either way.
            ("CallerID", _caller_id(queue.name, queue.caller_id or e.caller_number)),
            ("Async", "true"),
            ("Context", e.context),
            ("Exten", "s"),
            ("Priority", "1"),
        ]
        if e.callback_number:
            variables.append(f"{names.VAR_TRANSFER_TARGET}={e.callback_number}")
        elif self.recorder is not None and e.recording is cs.RecordingPlan.OWN:
            # cc-agent-leg runs MixMonitor(${CC_RECORDING},b) on the agent's leg at answer.
            variables.append(f"{names.VAR_RECORDING_FILE}={self.recorder.plan(e.call_id)}")
        elif self.recorder is not None and e.recording is cs.RecordingPlan.GROUP:
            if e.call_id not in self._group_files:  # one file for the group: only its winner records
                self._group_files[e.call_id] = self.recorder.plan(e.call_id)
            variables.append(f"{names.VAR_RECORDING_FILE}={self._group_files[e.call_id]}")
        headers += [("Variable", v) for v in variables]
        try:
            await self.ami.send_action(names.ACTION_ORIGINATE, headers, timeout=self.action_timeout)
        except CallcenterError as exc:  # refused, timed out, link lost (never re-sent), unsafe
            log.warning("Originate for agent %s failed: %s", agent.id, exc)
            self._leg_event(e.leg_id, cs.LegFailed(e.leg_id, "failed"), self.clock.now())

    def _bridge_formed(self, e: cs.BridgeFormed) -> None:
        """Caller and agent are bridged: index the recording the dialplan started (planned at
        Originate), or start one if the queue records always and none was planned."""
        rec = self.recorder
        if rec is None or rec.active(e.call_id):
            return
        if rec.adopt_planned(e.call_id, e.channel, queue=e.queue, agent_id=e.agent_id):
            return
        if not e.record_always:
            return

        async def start() -> None:
            c = self._calls.get(e.call_id)
            if cs.leg_connected(c, e.leg_id) and c is not None:  # not transferred or ended meanwhile
                leg = self._recordable_leg(c)
                if leg is not None:
                    await rec.start(
                        e.call_id, leg, caller_channel=c.info.channel, queue=e.queue, agent_id=e.agent_id
                    )

        self._spawn(start(), f"record-{e.call_id}")

    async def _announce(self, call_id: str) -> None:
        c = self._calls.get(call_id)
        if c is None or not self.router.is_waiting(call_id):
            return
        ann = self.router.announcement(call_id)
        if ann.offer_callback:
            self.sink.submit(
                CallEvent(
                    call_id,
                    self.clock.now(),
                    EventKind.NOTE,
                    queue=c.queue,
                    detail={"callback_offer_ewt": round(ann.ewt or -1)},
                )
            )
            if self.on_callback_offer is not None:
                await self.on_callback_offer(call_id, ann.ewt if ann.ewt is not None else float("inf"))
        offer = ann.offer_callback and self.on_callback_offer is None and self.callback_number(call_id)
        ch = c.info.channel
        for var, value in (
            (
                names.VAR_PROMPT,
                announcement_prompt(
                    ann,
                    c.info.language or self.config.center.languages[0],
                    self.config.queues[c.queue],
                    sounds_dir=self.config.asterisk.sounds_dir,
                ),
            ),
            (names.VAR_POSITION, str(ann.position)),
            (names.VAR_EWT, "" if ann.ewt is None else str(int(ann.ewt))),
        ):
            await self.ami.send_action(
                names.ACTION_SETVAR,
                {"Channel": ch, "Variable": var, "Value": value},
                timeout=self.action_timeout,
            )
        current = self._calls.get(call_id)
        if current is not None and current.status is cs.CallStatus.WAITING:
            # With the callback offer, the route plays the announcement first, then the offer.
            await self._redirect(ch, names.CTX_CALLBACK_OFFER if offer else names.CTX_ANNOUNCE)

    def _callback_window(self, c: cs.Call, now: float) -> float | None:
        """When a callback whose turn came may ring its customer, if not now (None: now)."""
        if not (c.caller_gone and c.callback_number):
            return None
        policy = self.config.callbacks
        zones = phone.zones_for(c.callback_number, policy.timezone or self.config.center.timezone)
        opens = next_open(policy.window, zones, now)
        if opens is None:
            return now + 86400.0  # never open within a week (a window on no day): look again tomorrow
        return None if opens <= now else opens

    def callback_number(self, call_id: str) -> str | None:
        """The number a waiting call would be called back on (its caller's, in E.164), if the
        dial-out policy allows calling it back; None otherwise (no offer is made then)."""
        c = self._calls.get(call_id)
        if c is None or c.status is not cs.CallStatus.WAITING or not c.info.caller_number:
            return None
        try:
            number = phone.normalize(c.info.caller_number, self.config.center.country)
            return dialout.check(self.config, number, cm.DialPurpose.CALLBACK)
        except DomainError:
            return None

    async def _offer_callback(self, call_id: str) -> None:
        """Send a waiting caller to hear the callback offer (nothing of the announcements)."""
        c = self._calls.get(call_id)
        if c is None or c.status is not cs.CallStatus.WAITING:
            return
        try:
            await self.ami.send_action(
                names.ACTION_SETVAR,
                {"Channel": c.info.channel, "Variable": names.VAR_PROMPT, "Value": ""},
                timeout=self.action_timeout,
            )
            current = self._calls.get(call_id)
            if current is not None and current.status is cs.CallStatus.WAITING:
                await self._redirect(c.info.channel, names.CTX_CALLBACK_OFFER)
        except AsteriskError as exc:
            log.info("call %s: callback offer not made: %s", call_id, exc)

    # ================================================================== AMI events and timers
    def _on_event(self, view: _Seen) -> None:
        now = self.clock.now()
        leg_id: str | None
        if isinstance(view, events.OriginateResponse):
            leg_id = view.uniqueid or ""
            if leg_id in self._legs:
                if view.succeeded:
                    self._leg_event(leg_id, cs.LegAnswered(leg_id, view.channel), now)
                else:
                    cause = cs.originate_cause(view.reason)
                    self._leg_event(leg_id, cs.LegFailed(leg_id, cause, view.channel), now)
        elif isinstance(view, events.Newchannel):
            leg_id = view.channel.uniqueid or ""
            if leg_id in self._legs:
                self._leg_event(leg_id, cs.LegChannel(leg_id, view.channel.channel), now)
        elif isinstance(view, events.Hangup):
            uid, chan = view.channel.uniqueid or "", view.channel.channel
            if self._phone_busy:
                self._phone_freed(chan, now)
            leg_id = uid if uid in self._legs else self._leg_by_channel.get(chan)
            if leg_id is not None:
                self._leg_event(leg_id, cs.LegHungUp(leg_id, view.cause), now)
                return
            call_id = self._by_channel.get(chan) or self._by_channel.get(uid)
            if call_id is not None:
                self._call_event(call_id, cs.CallerHungUp(view.cause), now)
        elif isinstance(view, events.HangupRequest):
            # the caller's far end hung up (a BYE; never our own Hangup action): the caller ended
            # the call, even if the agent leg's Hangup is reported before the caller's
            uid, chan = view.channel.uniqueid or "", view.channel.channel
            if uid not in self._legs and chan not in self._leg_by_channel:
                call_id = self._by_channel.get(chan) or self._by_channel.get(uid)
                if call_id is not None:
                    self._call_event(call_id, cs.CallerHangupRequested(), now)
        elif isinstance(view, events.DialEnd):
            leg_id = self._leg_by_channel.get(view.channel.channel if view.channel else "")
            if leg_id is not None:
                self._leg_event(leg_id, cs.DialEnded(leg_id, view.dial_status or ""), now)
        elif isinstance(view, events.MusicOnHoldStart | events.MusicOnHoldStop):
            # On the caller's channel only (an agent leg's music is not the caller's hold).
            uid, chan = view.channel.uniqueid or "", view.channel.channel
            if uid not in self._legs and chan not in self._leg_by_channel:
                call_id = self._by_channel.get(chan) or self._by_channel.get(uid)
                if call_id is not None:
                    held = isinstance(view, events.MusicOnHoldStart)
                    self._call_event(call_id, cs.CallerHeld() if held else cs.CallerUnheld(), now)
        elif isinstance(view, events.BridgeEnter):
            chan = view.channel.channel
            leg_id = self._leg_by_channel.get(chan)
            key = self._leg_owner.get(leg_id) if leg_id is not None else self._by_channel.get(chan)
            if key is not None:
                self._call_event(key, cs.BridgeEntered(chan), now)

    def _pause_limit(self, reason: str) -> float | None:
        """Seconds a pause with ``reason`` may last (its ``max_minutes``), or None."""
        pause = self.config.pause_reasons.get(reason)
        return None if pause is None or pause.max_minutes is None else pause.max_minutes * 60.0

    def _on_timer(self, kind: cs.TimerKind, key: str, now: float) -> None:
        if kind is cs.TimerKind.WRAP_UP:
            if key in self.agents and self.agents[key].status is ag.Status.WRAP_UP:
                self._agent_event(key, ag.WrapUpEnd(), now)
        elif kind is cs.TimerKind.PAUSE_LIMIT:
            state = self.agents.get(key)
            limit = None if state is None else self._pause_limit(state.reason)
            # Still in the same pause, past its limit (a later pause set a timer of its own).
            if state is not None and state.status is ag.Status.PAUSED and limit is not None:
                if now - state.since >= limit - 1e-6:
                    self._agent_event(key, ag.Pause(cm.OVERRUN_PREFIX + state.reason), now)
        elif kind is cs.TimerKind.RING_GUARD:
            self._leg_event(key, cs.RingGuardDue(key), now)
        else:
            self._call_event(key, cs.TimerDue(kind), now)

    async def reconcile(self) -> None:
        """After missed events (an AMI link gap): every call or agent leg whose channel the PBX no
        longer has is treated as hung up."""
        items = await self.ami.send_action_list(names.ACTION_STATUS, {}, timeout=self.action_timeout * 2)
        live: set[str] = set()
        for view in _statuses(items):
            live.add(view.channel.channel)
            if view.channel.uniqueid:
                live.add(view.channel.uniqueid)
        now = self.clock.now()
        for leg in list(self._legs.values()):
            if leg.channel is not None and leg.channel not in live and leg.leg_id not in live:
                self._leg_event(leg.leg_id, cs.LegHungUp(leg.leg_id, None), now)
        for c in list(self._calls.values()):
            if c.info.channel not in live and (c.info.uniqueid or "") not in live and not c.callback_number:
                self._call_event(c.call_id, cs.CallerHungUp(None), now)

    # ================================================================== restart
    async def rebuild(self) -> None:
        """Rebuild the picture after a controller restart: PBX channels (Status with the CC_*
        variables) + the database (agents' last states, calls' first arrival)."""
        now = self.clock.now()
        stored = StoredState()
        if self.store is not None:
            try:
                stored = await self.store.load(timeout=self.action_timeout * 2)
            except (OSError, AsteriskError, TimeoutError):
                log.warning("ACD rebuild: database not readable; agents start logged out", exc_info=True)
        try:
            items = await self.ami.send_action_list(
                names.ACTION_STATUS,
                {
                    "Variables": ",".join(
                        (names.VAR_CALL_ID, names.VAR_AGENT_ID, names.VAR_QUEUE, names.VAR_CALLER_CHANNEL)
                    )
                },
                timeout=self.action_timeout * 2,
            )
        except AsteriskError:
            log.warning("ACD rebuild: Status failed; starting empty", exc_info=True)
            items = []
        found: list[cs.Found] = []
        phones: list[str] = []  # every channel up on the PBX (an agent's phone may be among them)
        for view in _statuses(items):
            if view.channel.channel:
                phones.append(view.channel.channel)
            if names.VAR_CALL_ID not in _variables(view.message):
                view = events.Status.from_message(await self._with_variables(view))
            var = _variables(view.message)
            call_id = var.get(names.VAR_CALL_ID)
            if not call_id or not SAFE_ID.match(call_id):
                continue
            found.append(
                cs.Found(
                    view.channel.channel,
                    view.channel.uniqueid or "",
                    call_id,
                    agent_id=var.get(names.VAR_AGENT_ID, ""),
                    queue=var.get(names.VAR_QUEUE, ""),
                    bridge_id=view.bridge_id or "",
                    seconds=view.seconds or 0,
                )
            )
        seen = cs.survey(found, self.agents)
        callers, on_call = seen.callers, seen.on_call
        for channel in seen.hang_up:
            self._spawn(self._act(cs.Hangup(channel)), f"rebuild-hangup-{channel}")
        self._close_unseen(stored.open_calls, {f.call_id for f in found}, now)
        # Agents whose phone is busy on a call the ACD does not know (one the static fallback
        # rang while no controller ran, a direct call): not offered anything until it ends.
        ours = {f.channel for f in found if f.agent_id} | set(seen.hang_up)
        busy = self._busy_phones([c for c in phones if c not in ours])
        # Agents (logged in per the database; on a call if the PBX says so).
        for agent_id, (state, reason) in stored.agents.items():
            if agent_id not in self.agents or state == ag.Status.LOGGED_OUT.value:
                continue
            paused = (
                reason
                if state == ag.Status.PAUSED.value
                else ("restart" if state == ag.Status.NOT_READY.value else None)
            )
            if agent_id in on_call:
                self._restore_on_call(agent_id, on_call[agent_id], callers, now)
                continue
            with contextlib.suppress(AgentStateError, DomainError):
                if state == ag.Status.NOT_READY.value:
                    self._agent_event(agent_id, ag.Login(), now)
                    self._agent_event(agent_id, ag.Pause(reason or "not_ready"), now)
                elif paused is None and agent_id in busy:
                    # Logged in paused at once: no offer can reach it before its call ends.
                    self._phone_busy[agent_id] = busy[agent_id]
                    self._agent_event(agent_id, ag.Login(paused_reason=PHONE_BUSY, reason="restart"), now)
                else:
                    self._agent_event(agent_id, ag.Login(paused_reason=paused, reason="restart"), now)
        for agent_id, leg in on_call.items():
            if self.agents[agent_id].status is ag.Status.LOGGED_OUT:
                self._restore_on_call(agent_id, leg, callers, now)
        # Callers still holding go back in line at their first arrival.
        for call_id, caller in callers.items():
            if call_id in self._calls:
                continue
            queue_id = caller.queue or (stored.calls[call_id].queue if call_id in stored.calls else "")
            if queue_id not in self.config.queues:
                continue
            sc = stored.calls.get(call_id)
            arrived = sc.queued_at if sc else now - caller.seconds
            info = QueuedCall(
                call_id,
                caller.channel,
                queue_id,
                priority=sc.priority if sc else 0,
                uniqueid=caller.uniqueid or None,
                redirect_to_hold=False,
            )
            self._commit(call_id, None, cs.restore_waiting(info, queue_id, arrived))
            self._call_event(call_id, cs.HoldReady(info.priority, arrived_at=arrived), now)
        await self._restore_callbacks(now)

    async def _restore_callbacks(self, now: float) -> None:
        """The callbacks still to make (the database's): back at their place in line, when due."""
        if self.callbacks is None:
            return
        try:
            pending = await self.callbacks.pending(timeout=self.action_timeout * 2)
        except (CallcenterError, OSError):
            log.error("ACD rebuild: pending callbacks not readable; none restored", exc_info=True)
            return
        for cb in pending:
            if cb.call_id in self._calls or cb.queue not in self.config.queues:
                continue
            info = QueuedCall(
                cb.call_id,
                f"callback/{cb.call_id}",
                cb.queue,
                priority=cb.priority,
                caller_number=cb.number,
                redirect_to_hold=False,
            )
            restored = cs.restore_callback(info, cb.queue, cb.queued_at, cb.number, cb.attempts)
            self._commit(cb.call_id, None, restored)
            self._timer(max(now, cb.next_at or now), cs.TimerKind.CALLBACK_RETRY, cb.call_id)

    def _close_unseen(self, open_calls: Iterable[str], on_pbx: Collection[str], now: float) -> None:
        """Close the calls the log has open that the PBX no longer has: they ended while no
        controller watched (disposition ``ended_unseen``; their end time is not known)."""
        for call_id in open_calls:
            if call_id in on_pbx or call_id in self._calls:
                continue
            self.sink.submit(CallRecord(call_id, now, disposition=Disposition.ENDED_UNSEEN))
            self.sink.submit(
                CallEvent(call_id, now, EventKind.NOTE, detail={"closed": "gone from the PBX at restart"})
            )

    def _busy_phones(self, channels: Iterable[str]) -> dict[str, set[str]]:
        """Agent id -> its phone's channels among ``channels`` (named after ``agent_channel``)."""
        out: dict[str, set[str]] = {}
        for agent in self.config.agents.values():
            prefix = self.agent_channel.format(endpoint=agent.endpoint, agent=agent.id)
            mine = {c for c in channels if c == prefix or c.startswith(prefix + "-")}
            if mine:
                out[agent.id] = mine
        return out

    def _phone_freed(self, channel: str, now: float) -> None:
        """A channel of a phone found busy at restart ended: with its last one, the agent is
        offered calls again (unless it paused itself meanwhile)."""
        for agent_id, channels in list(self._phone_busy.items()):
            if channel not in channels:
                continue
            channels.discard(channel)
            if channels:
                return
            del self._phone_busy[agent_id]
            state = self.agents.get(agent_id)
            if state is not None and state.status is ag.Status.PAUSED and state.reason == PHONE_BUSY:
                self._agent_event(agent_id, ag.Resume(reason="phone_free"), now)
            return

    async def _with_variables(self, view: events.Status) -> Message:
        """A Status entry without ``Variable:`` lines (a PBX that ignores ``Variables``): read the
        CC_* variables with Getvar, one channel at a time."""
        m = view.message
        channel = view.channel.channel
        if not channel:
            return m
        extra: list[tuple[str, str]] = []
        for var in (names.VAR_CALL_ID, names.VAR_AGENT_ID, names.VAR_QUEUE):
            try:
                reply = await self.ami.send_action(
                    names.ACTION_GETVAR, {"Channel": channel, "Variable": var}, timeout=self.action_timeout
                )
            except AsteriskError:
                return m  # gone meanwhile
            value = reply.get("Value") or ""
            if value:
                extra.append(("Variable", f"{var}={value}"))
            elif var == names.VAR_CALL_ID:
                return m  # not one of ours
        return Message([*m.headers, *extra])

    def _restore_on_call(
        self, agent_id: str, leg: cs.Found, callers: Mapping[str, cs.Found], now: float
    ) -> None:
        call_id = leg.call_id
        caller = callers.get(call_id)
        if caller is None:
            return
        queue_id = leg.queue
        if queue_id not in self.config.queues:
            queue_id = next(iter(self.config.queues))
        info = QueuedCall(
            call_id,
            caller.channel,
            queue_id,
            uniqueid=caller.uniqueid or None,
            redirect_to_hold=False,
        )
        leg_id = leg.uniqueid or f"ccleg-{uuid.uuid4().hex}"
        c = cs.restore_connected(info, queue_id, agent_id, leg_id, leg.channel or None, now)
        self._commit(call_id, None, c)
        # Straight to on_call (never through available: no offer may reach it in between).
        old = self.agents[agent_id]
        if old.status is ag.Status.AVAILABLE:
            self.router.agent_unavailable(agent_id)
        elif old.status is ag.Status.LOGGED_OUT:
            with contextlib.suppress(RoutingError):
                self.router.add_agent(agent_id, dict(self.config.agents[agent_id].skills))
        self.agents[agent_id] = ag.AgentState(agent_id, ag.Status.ON_CALL, "restart", now, call_id=call_id)
        self.sink.submit(
            AgentStateChange(
                agent_id, now, ag.Status.ON_CALL.value, "restart", queue=queue_id, call_id=call_id
            )
        )


@dataclass(frozen=True, slots=True)
class LastCall:
    info: QueuedCall
    queue: str
    queued_at: float
    answered_at: float | None
    ended_at: float


@dataclass(frozen=True, slots=True)
class AgentCall:
    """An agent's call as its screen shows it: ``stage`` offered / connected / wrap_up / ended."""

    info: QueuedCall
    queue: str
    stage: str
    queued_at: float
    answered_at: float | None
    ended_at: float | None
    held: bool = False  # the caller is on hold from the desktop


_CALL_KINDS: Mapping[cs.CallStatus, str] = {
    cs.CallStatus.WAITING: feed.CALL_QUEUED,
    cs.CallStatus.OFFERED: feed.CALL_OFFERED,
    cs.CallStatus.RINGING_ALL: feed.CALL_OFFERED,
    cs.CallStatus.CONNECTED: feed.CALL_ANSWERED,
    cs.CallStatus.CALLBACK_PENDING: feed.CALL_QUEUED,
    cs.CallStatus.TRANSFERRED: feed.CALL_TRANSFERRED,
    cs.CallStatus.ENDED: feed.CALL_ENDED,
    cs.CallStatus.CLOSED: feed.CALL_ENDED,
}
_OVER = frozenset({cs.CallStatus.ENDED, cs.CallStatus.CLOSED})


def _call_change(old: cs.Call | None, new: cs.Call, now: float) -> feed.Change | None:
    """The feed's view of a step of a call's life (None when nothing a screen shows moved)."""
    if old is None:
        kind = feed.CALL_QUEUED
    elif old.held != new.held and new.status is cs.CallStatus.CONNECTED:
        kind = feed.CALL_HELD if new.held else feed.CALL_UNHELD
    elif old.status is new.status and old.queue == new.queue and old.agent_id == new.agent_id:
        return None
    elif new.status in _OVER and old.status in _OVER:
        return None
    elif old.queue != new.queue and new.status is cs.CallStatus.WAITING:
        kind = feed.CALL_TRANSFERRED  # overflow or a transfer to another queue
    else:
        kind = _CALL_KINDS[new.status]
    info = new.info
    return feed.Change(
        kind,
        now,
        agent_id=new.agent_id,
        call_id=new.call_id,
        queues=frozenset({new.queue} | ({old.queue} if old is not None else set())),
        data={
            "queue": new.queue,
            "state": new.public or "ended",
            "agent_id": new.agent_id,
            "caller_number": info.caller_number,
            "direction": info.direction,
            "campaign_id": info.campaign_id,
            "queued_at": new.queued_at,
            "answered_at": new.answered_at,
            "held": new.held,
        },
    )


def _subject(e: _Action) -> str:
    """What an action task is named after (its leg, call or channel)."""
    if isinstance(e, cs.Originate | cs.RedirectLeg):
        return e.leg_id
    if isinstance(e, cs.HoldLegs):
        return e.caller_channel
    return e.channel


def _statuses(items: list[Message]) -> list[events.Status]:
    """The channels of a ``Status`` action's answer."""
    return [view for m in items if isinstance(view := events.parse_event(m), events.Status)]


def channel_gone(exc: AMIActionError) -> bool:
    """Whether Asterisk refused an action because its channel no longer exists."""
    return exc.reason.startswith(names.CHANNEL_GONE_MESSAGES)


def _caller_id(name: str, number: str | None) -> str:
    """``"Queue name" <number>`` from what we trust: the number keeps dial characters only (it
    came from the caller), the name loses quotes, angle brackets and control characters."""
    clean_name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>')[:40]
    clean_number = re.sub(r"[^0-9+*#]", "", number or "")[:32]
    return f'"{clean_name}" <{clean_number}>'


def _variables(m: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in m.get_all("Variable"):
        name, sep, value = raw.partition("=")
        # Asterisk 22's Status prints a requested variable the channel lacks as ``NAME=(null)``.
        if sep and value != "(null)":
            out[name.strip()] = value
    # Some Asterisk versions put each variable as its own header (``CC_CALL_ID: x``).
    for name in (names.VAR_CALL_ID, names.VAR_AGENT_ID, names.VAR_QUEUE, names.VAR_CALLER_CHANNEL):
        if name not in out and m.get(name):
            out[name] = m.get(name) or ""
    return out
