"""Shell: the ACD service. Carries the router's decisions out on the PBX over AMI.

The life of a queued call::

    IVR --await acd.enqueue(QueuedCall)--> Setvar CC_CALL_ID/CC_QUEUE/CC_MOH, Redirect -> cc-hold
    router Offer -> agent Reserve -> Originate (ChannelId chosen here, Timeout = queue ring_timeout)
        Channel PJSIP/<endpoint> -> cc-agent-leg,s,1 with CC_CALLER, CC_CALL_ID, CC_AGENT_ID
    OriginateResponse Success -> agent on call; the leg Bridge()s the caller (and, for queues that
        record always, runs MixMonitor(${CC_RECORDING}) first, a file the Recorder named);
        BridgeEnter x2 -> the recording is indexed; on_demand by ``record()``
    OriginateResponse Failure (no answer, busy, unreachable) = RONA -> the agent per the queue's
        RONA rule (not_ready / pause / logout after rona_count misses); the call goes back to its
        place and is offered to the next agent (never the same one again)
    ring_all queues: every eligible available agent is reserved and rung at once; their legs
        wait in cc-hold when answered (none Bridge()s by itself, so two quick answers cannot
        both take the caller); the first OriginateResponse Success wins: its leg is redirected to
        cc-agent-leg (or cc-transfer for a callback), every other leg is hung up and its agent
        is available again (CancelOffer "answered_elsewhere": no RONA). A leg that fails is its
        agent's RONA; once every leg failed the call goes back in line, the group excluded.
    caller Hangup while waiting -> abandoned; while its agent rings -> Hangup of the agent leg,
        the agent is available again; while bridged -> the call ends, the agent wraps up (ONE
        wrap-up, the queue's seconds), then becomes available (or a pause asked meanwhile)
    every announce_period: Setvar CC_PROMPT (position, EWT in minutes), CC_POSITION, CC_EWT,
        Redirect -> cc-announce (back to hold after); the callback offer once EWT passes the
        queue's threshold (``on_callback_offer`` hook, a CallEvent note)
    max wait: overflow to another queue (place kept) or voicemail (CC_MAILBOX, cc-voicemail) /
        hang-up per the queue (a "flow" overflow hangs up too: the IVR owns flows)
    callback (``accept_callback``): the caller leaves, keeps its place; its turn rings the agent
        into cc-transfer (CC_TRANSFER_TARGET = the number); DialEnd says if the customer answered;
        else retried after ``callback_retry_delay``, ``callback_max_attempts`` times
    transfers: blind to a queue (keeps the call's data, back to hold, the agent wraps up), blind to
        a number (Redirect -> cc-transfer), attended (Atxfer on the agent's leg)

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
import heapq
import itertools
import json
import logging
import math
import posixpath
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.acd import agents as ag
from callcenter.acd import routing as rt
from callcenter.acd.pin import PinCheck, PinGuard
from callcenter.acd.recorder import Recorder
from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.clock import Clock
from callcenter.config import model as cm
from callcenter.errors import (
    AgentStateError,
    AsteriskError,
    CallcenterError,
    DomainError,
    RoutingError,
    UnsafeValueError,
)
from callcenter.ports import ACDStore, AMILink, QueuedCall, RecordSink, StoredState
from callcenter.reporting.records import (
    AgentStateChange,
    CallEvent,
    CallRecord,
    Direction,
    Disposition,
    EventKind,
    LegRecord,
    dead_leg,
    ended_by,
)

log = logging.getLogger(__name__)

SAFE_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
SAFE_CHANNEL = re.compile(r"^[^\s\x00-\x1f\x7f]{1,255}$")  # a channel name: no space, no control


# ------------------------------------------------------------------------------------ seams
# ------------------------------------------------------------------------------------ hand-off
@dataclass
class _Leg:
    leg_id: str  # the Uniqueid we chose (ChannelId)
    call_id: str
    agent_id: str
    queue: str
    channel: str | None = None  # learnt from Newchannel
    answered: bool = False
    settled: bool = False  # the agent machine knows how this leg ended
    cancelled: bool = False
    answered_at: float | None = None
    gone: bool = False  # its Hangup was seen
    ring: bool = False  # one leg of a ring-all offer (waits in cc-hold until chosen)


@dataclass
class _Call:
    info: QueuedCall
    queue: str
    state: str = "waiting"  # waiting, offered, connected, transferred, ended
    queued_at: float = 0.0
    agent_id: str | None = None
    leg_id: str | None = None
    answered_at: float | None = None
    next_announce: float | None = None
    bridged_channels: set[str] = field(default_factory=set)
    callback_number: str | None = None
    callback_reached: bool = False
    callback_attempts: int = 0
    transfers: int = 0
    ring: dict[str, str] = field(default_factory=dict)  # ring-all legs still ringing: leg id -> agent
    ring_missed: set[str] = field(default_factory=set)  # agents of the ring-all group whose leg failed
    ring_recording: str | None = None  # the file planned for the ring-all group's winner


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
        callback_retry_delay: float = 300.0,
        callback_max_attempts: int = 3,
        lockout_seconds: float = 900.0,
        on_callback_offer: Callable[[str, float], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.ami = ami
        self.sink = sink
        self.clock = clock
        self.recorder = recorder
        self.store = store
        # Called as ``await listener(call_id, paused=...)`` after each PCI pause / resume.
        self.pci_listeners: list[Callable[..., Awaitable[None]]] = []
        self.action_timeout = action_timeout
        self.agent_channel = agent_channel
        self.ring_guard = ring_guard
        self.callback_retry_delay = callback_retry_delay
        self.callback_max_attempts = callback_max_attempts
        self.lockout_seconds = lockout_seconds
        self.on_callback_offer = on_callback_offer
        self.router = rt.Router(policy_from_config(q) for q in config.queues.values())
        self.agents: dict[str, ag.AgentState] = {a: ag.AgentState(a) for a in config.agents}
        self._calls: dict[str, _Call] = {}
        self._legs: dict[str, _Leg] = {}
        self._by_channel: dict[str, str] = {}  # caller channel name / uniqueid -> call id
        self._leg_by_channel: dict[str, str] = {}  # agent leg channel name -> leg id
        self._timers: list[tuple[float, int, str, str]] = []  # (at, seq, kind, key)
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._parked = asyncio.Event()  # the timer loop waits for its next deadline
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._pins = PinGuard(lockout_seconds=lockout_seconds)
        self.ready = asyncio.Event()  # set once run() has subscribed and rebuilt
        self.stats = {"offers": 0, "answered": 0, "rona": 0, "abandoned": 0, "transfers": 0}

    # ================================================================== lifecycle
    async def run(self) -> None:
        """Subscribe to AMI, rebuild state (restart), then process events and timers until
        cancelled."""
        for name in ("OriginateResponse", "Newchannel", "Hangup", "BridgeEnter", "BridgeLeave", "DialEnd"):
            self._unsubscribe.append(self.ami.subscribe(name, self._inbox.put_nowait))
        # the AMI link dropped: events were missed, reconcile with the PBX
        self._unsubscribe.append(self.ami.on_gap(lambda gap: self._spawn(self.reconcile(), "acd-reconcile")))
        try:
            await self.rebuild()
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._event_loop(), name="acd-events")
                tg.create_task(self._timer_loop(), name="acd-timers")
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
            due = bool(self._timers and self._timers[0][0] <= now) or (rd is not None and rd <= now)
            if due or not self._parked.is_set() or not self._inbox.empty():
                await asyncio.sleep(0)  # let the timer loop / event loop take their turn
                continue
            return

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except (CallcenterError, OSError):
                log.warning("ACD task %s failed", name, exc_info=True)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _timer(self, at: float, kind: str, key: str) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, key))
        self._wake.set()

    async def _timer_loop(self) -> None:
        while True:
            now = self.clock.now()
            while self._timers and self._timers[0][0] <= now:
                _, _, kind, key = heapq.heappop(self._timers)
                self._on_timer(kind, key, now)
            rd = self.router.next_deadline()
            if rd is not None and rd <= now:
                self._apply(self.router.tick(now), now)
                continue
            deadlines = [d for d in (rd, self._timers[0][0] if self._timers else None) if d is not None]
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

    async def _event_loop(self) -> None:
        while True:
            msg = await self._inbox.get()
            try:
                self._on_event(msg)
            except (DomainError, AsteriskError):
                log.warning("ACD could not handle %s", msg.name, exc_info=True)
            finally:
                self._inbox.task_done()

    def reload(self, config: cm.Config) -> None:
        """New configuration (``callcenter apply``): queue rules apply at once to the calls already
        waiting (relaxation, max wait, strategy...); new agents can log in. Logged-in agents keep
        the skills they logged in with until they log in again; removed queues keep their calls."""
        now = self.clock.now()
        self.config = config
        for agent_id in config.agents:
            self.agents.setdefault(agent_id, ag.AgentState(agent_id))
        for q in config.queues.values():
            self._apply(self.router.set_queue(policy_from_config(q), now), now)
        self._wake.set()

    # ================================================================== agents API
    def verify_pin(self, agent_id: str, pin: str) -> None:
        """Check an agent's PIN (feature-code login); too many wrong ones lock the id a while
        (``PinGuard``). The wrong PIN that locks is still ``bad_pin``; the next try is refused."""
        agent = self._agent_config(agent_id)
        result = self._pins.check(agent_id, pin, agent.pin.value, self.clock.now())
        if result is PinCheck.LOCKED:
            raise DomainError(
                f"agent {agent_id} is locked after {self._pins.max_failures} wrong PINs", code="locked_out"
            )
        if result is not PinCheck.OK:
            raise DomainError("wrong PIN", code="bad_pin")

    async def login(
        self, agent_id: str, *, paused_reason: str | None = None, pin: str | None = None
    ) -> ag.AgentState:
        if pin is not None:
            self.verify_pin(agent_id, pin)
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
                c: {"queue": x.queue, "state": x.state, "agent_id": x.agent_id, "queued_at": x.queued_at}
                for c, x in sorted(self._calls.items())
            },
            "waiting": {q: self.router.waiting_count(q) for q in self.router.queue_names()},
        }

    def call_state(self, call_id: str) -> str | None:
        c = self._calls.get(call_id)
        return None if c is None else c.state

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
        queue = self.config.queues.get(call.queue)
        if queue is None:
            raise DomainError(f"no queue {call.queue!r}", code="unknown_queue")
        if call.call_id in self._calls:
            raise DomainError(f"call {call.call_id} is already in the ACD", code="duplicate_call")
        now = self.clock.now()
        c = _Call(call, call.queue, queued_at=now)
        self._calls[call.call_id] = c
        self._by_channel[call.channel] = call.call_id
        if call.uniqueid:
            self._by_channel[call.uniqueid] = call.call_id
        self.sink.submit(
            CallRecord(
                call.call_id,
                now,
                direction=Direction(call.direction),
                campaign_id=call.campaign_id,
                queue=call.queue,
                queued_at=now,
                caller_number=call.caller_number,
                language=call.language,
                priority=call.priority + queue.priority,
            )
        )
        self.sink.submit(CallEvent(call.call_id, now, EventKind.QUEUE_ENTER, queue=call.queue))
        await self._prepare_hold(c, queue, redirect=call.redirect_to_hold)
        if c.state != "waiting":  # hung up while we were talking to Asterisk
            return
        self._schedule_announce(c, queue, now)
        req = rt.CallRequest(call.call_id, call.queue, dict(call.skills), call.priority)
        self._apply(self.router.enqueue(req, now), now)

    async def _prepare_hold(self, c: _Call, queue: cm.Queue, *, redirect: bool) -> None:
        info = c.info
        variables = {
            names.VAR_CALL_ID: info.call_id,
            names.VAR_QUEUE: c.queue,
            names.VAR_MOH_CLASS: queue.music_class,
        }
        if info.data:
            variables[names.VAR_CUSTOMER] = json.dumps(dict(info.data), separators=(",", ":"))
        try:
            for var, value in variables.items():
                await self.ami.send_action(
                    names.ACTION_SETVAR,
                    {"Channel": info.channel, "Variable": var, "Value": value},
                    timeout=self.action_timeout,
                )
            if redirect:
                await self.ami.send_action(
                    names.ACTION_REDIRECT,
                    {"Channel": info.channel, "Context": names.CTX_HOLD, "Exten": "s", "Priority": "1"},
                    timeout=self.action_timeout,
                )
        except AsteriskError:
            log.warning("call %s: could not put %s on hold", info.call_id, info.channel, exc_info=True)

    async def accept_callback(self, call_id: str, number: str) -> None:
        """The caller chose to be called back: it keeps its place; when its turn comes the agent
        is rung first, then ``number`` is dialled from the agent's leg."""
        _check(number, "callback number", SAFE_NUMBER)
        c = self._get_call(call_id)
        c.callback_number = number
        self.router.accept_callback(call_id)
        now = self.clock.now()
        self.sink.submit(
            CallEvent(call_id, now, EventKind.CALLBACK_REQUEST, queue=c.queue, detail={"number": number})
        )
        self.sink.submit(CallRecord(call_id, now, disposition=Disposition.CALLBACK_REQUESTED))

    async def transfer_to_queue(self, call_id: str, queue_id: str, *, priority: int | None = None) -> None:
        """Blind transfer by the agent to a queue: the caller returns to hold (its data kept),
        the agent's leg ends and the agent wraps up; the call waits in ``queue_id``."""
        c = self._get_call(call_id)
        queue = self.config.queues.get(queue_id)
        if queue is None:
            raise DomainError(f"no queue {queue_id!r}", code="unknown_queue")
        if c.state != "connected":
            raise DomainError(f"call {call_id} is not connected to an agent", code="not_connected")
        now = self.clock.now()
        self._detach_agent(c, now, reason="transfer")
        c.state = "waiting"
        c.queue = queue_id
        c.queued_at = now
        c.transfers += 1
        self.stats["transfers"] += 1
        self.sink.submit(
            CallEvent(
                call_id, now, EventKind.TRANSFER, queue=queue_id, detail={"kind": "blind", "target": queue_id}
            )
        )
        self.sink.submit(CallRecord(call_id, now, overflow_queue=queue_id, transfers=c.transfers))
        await self._prepare_hold(c, queue, redirect=True)
        if c.state != "waiting":  # the caller hung up meanwhile
            return
        self._schedule_announce(c, queue, now)
        prio = c.info.priority if priority is None else priority
        req = rt.CallRequest(call_id, queue_id, dict(c.info.skills), prio)
        self._apply(self.router.enqueue(req, now, arrived_at=now), now)

    async def transfer_to_number(self, call_id: str, number: str) -> None:
        """Blind transfer to an outside number (cc-transfer,<number>,1)."""
        _check(number, "transfer number", SAFE_NUMBER)
        c = self._get_call(call_id)
        if c.state != "connected":
            raise DomainError(f"call {call_id} is not connected to an agent", code="not_connected")
        now = self.clock.now()
        self._detach_agent(c, now, reason="transfer")
        c.state = "transferred"
        c.transfers += 1
        self.stats["transfers"] += 1
        self.sink.submit(
            CallEvent(call_id, now, EventKind.TRANSFER, detail={"kind": "blind", "target": number})
        )
        self.sink.submit(CallRecord(call_id, now, disposition=Disposition.TRANSFERRED, transfers=c.transfers))
        await self.ami.send_action(
            names.ACTION_SETVAR,
            {"Channel": c.info.channel, "Variable": names.VAR_TRANSFER_TARGET, "Value": number},
            timeout=self.action_timeout,
        )
        await self.ami.send_action(
            names.ACTION_REDIRECT,
            {"Channel": c.info.channel, "Context": names.CTX_TRANSFER, "Exten": "s", "Priority": "1"},
            timeout=self.action_timeout,
        )

    async def attended_transfer(self, call_id: str, target: str) -> None:
        """Attended transfer: Asterisk's Atxfer on the agent's leg (the agent talks to ``target``
        first; hanging up completes it). The agent wraps up once, when its leg ends."""
        _check(target, "transfer target", SAFE_NUMBER)
        c = self._get_call(call_id)
        leg = self._legs.get(c.leg_id or "")
        if c.state != "connected" or leg is None or leg.channel is None:
            raise DomainError(f"call {call_id} is not connected to an agent", code="not_connected")
        now = self.clock.now()
        self.stats["transfers"] += 1
        self.sink.submit(
            CallEvent(call_id, now, EventKind.TRANSFER, detail={"kind": "attended", "target": target})
        )
        await self.ami.send_action(  # inherited by the channel Atxfer creates
            names.ACTION_SETVAR,
            {"Channel": leg.channel, "Variable": f"__{names.VAR_TRANSFER_TARGET}", "Value": target},
            timeout=self.action_timeout,
        )
        await self.ami.send_action(
            names.ACTION_ATXFER,
            {"Channel": leg.channel, "Exten": "s", "Context": names.CTX_TRANSFER},
            timeout=self.action_timeout,
        )

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
        """On-demand recording of a connected call."""
        c = self._get_call(call_id)
        if self.recorder is None or c.state != "connected":
            return False
        return await self.recorder.start(call_id, c.info.channel, queue=c.queue, agent_id=c.agent_id)

    def call_of_agent(self, agent_id: str) -> str | None:
        return self.agents[agent_id].call_id if agent_id in self.agents else None

    def _get_call(self, call_id: str) -> _Call:
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
            elif isinstance(eff, ag.ScheduleWrapUpEnd):
                self._timer(eff.at, "wrapup", agent_id)
            elif isinstance(eff, ag.WithdrawOffer):
                self._withdraw(eff.call_id, agent_id, now)
            elif isinstance(eff, ag.Deferred):
                log.info("agent %s: %s deferred (%s)", agent_id, eff.request, eff.reason)
        self._sync_router(agent_id, old, new, now)
        return new

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

    # ================================================================== decisions
    def _apply(self, decisions: list[rt.Decision], now: float) -> None:
        for d in decisions:
            if isinstance(d, rt.Offer):
                self._offer(d, now)
            elif isinstance(d, rt.Relaxed):
                self.sink.submit(
                    CallEvent(
                        d.call_id, now, EventKind.NOTE, queue=d.queue, detail={"relaxed_stage": d.stage}
                    )
                )
            elif isinstance(d, rt.Overflowed):
                c = self._calls.get(d.call_id)
                if c is not None:
                    c.queue = d.to_queue
                self.sink.submit(
                    CallEvent(
                        d.call_id, now, EventKind.OVERFLOW, queue=d.from_queue, detail={"to": d.to_queue}
                    )
                )
                self.sink.submit(CallRecord(d.call_id, now, overflow_queue=d.to_queue))
            elif isinstance(d, rt.Expired):
                self._expired(d, now)
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

    def _offer(self, d: rt.Offer, now: float) -> None:
        c = self._calls.get(d.call_id)
        if c is None:  # pragma: no cover - the router only knows calls we gave it
            self.router.agent_unavailable(d.agent_id)
            return
        self._agent_event(d.agent_id, ag.Reserve(d.call_id), now)
        leg_id = f"ccleg-{uuid.uuid4().hex}"
        leg = _Leg(leg_id, d.call_id, d.agent_id, c.queue, ring=bool(d.ring))
        self._legs[leg_id] = leg
        if d.ring:  # one of a ring-all group: the call has no agent until a leg answers
            if d.agent_id == d.ring[0]:
                c.ring_missed = set()
            c.state, c.agent_id, c.leg_id = "offered", None, None
            c.ring[leg_id] = d.agent_id
        else:
            c.state, c.agent_id, c.leg_id = "offered", d.agent_id, leg_id
        self.stats["offers"] += 1
        self.sink.submit(
            CallEvent(
                d.call_id,
                now,
                EventKind.OFFER,
                queue=c.queue,
                agent_id=d.agent_id,
                detail={"ring_all": ",".join(d.ring)} if d.ring else None,
            )
        )
        self.sink.submit(LegRecord(d.call_id, leg_id, now, kind="agent", agent_id=d.agent_id, started_at=now))
        self._spawn(self._originate(c, leg), f"originate-{leg_id}")

    async def _originate(self, c: _Call, leg: _Leg) -> None:
        if leg.settled or leg.cancelled:
            return
        agent = self.config.agents[leg.agent_id]
        queue = self.config.queues[leg.queue]
        variables = [
            f"{names.VAR_CALLER_CHANNEL}={c.info.channel}",
            f"{names.VAR_CALL_ID}={c.info.call_id}",
            f"{names.VAR_AGENT_ID}={agent.id}",
            f"{names.VAR_QUEUE}={leg.queue}",
        ]
        headers: list[tuple[str, object]] = [
            ("Channel", self.agent_channel.format(endpoint=agent.endpoint, agent=agent.id)),
            ("Timeout", str(int(queue.ring_timeout * 1000))),
            ("ChannelId", leg.leg_id),
            ("OtherChannelId", f"{leg.leg_id}-2"),
            ("CallerID", _caller_id(queue.name, c.info.caller_number)),
            ("Async", "true"),
        ]
        # A ring-all leg waits in cc-hold once answered; the winner is redirected to its context.
        context = names.CTX_HOLD if leg.ring else _leg_context(c)
        headers += [("Context", context), ("Exten", "s"), ("Priority", "1")]
        if c.callback_number:  # the agent first, then cc-transfer dials the customer
            variables.append(f"{names.VAR_TRANSFER_TARGET}={c.callback_number}")
        elif self.recorder is not None and str(queue.recording) == "always":
            # cc-agent-leg runs MixMonitor(${CC_RECORDING},b) on the agent's leg at answer (one
            # file planned per offer; a ring-all group shares it: only its winner records).
            if not leg.ring:
                variables.append(f"{names.VAR_RECORDING_FILE}={self.recorder.plan(c.info.call_id)}")
            else:
                if c.ring_recording is None:
                    c.ring_recording = self.recorder.plan(c.info.call_id)
                variables.append(f"{names.VAR_RECORDING_FILE}={c.ring_recording}")
        headers += [("Variable", v) for v in variables]
        self._agent_event(leg.agent_id, ag.Ring(leg.call_id), self.clock.now())
        self._timer(self.clock.now() + queue.ring_timeout + self.ring_guard, "ring_guard", leg.leg_id)
        try:
            await self.ami.send_action(names.ACTION_ORIGINATE, headers, timeout=self.action_timeout)
        except CallcenterError as exc:  # refused, timed out, link lost (never re-sent), unsafe
            log.warning("Originate for agent %s failed: %s", agent.id, exc)
            self._leg_failed(leg, "failed", self.clock.now())

    def _withdraw(self, call_id: str, agent_id: str, now: float) -> None:
        """The agent logged out while being offered the call: drop the leg, re-offer the call."""
        c = self._calls.get(call_id)
        if c is not None and c.leg_id is None and c.ring:
            for leg_id, agent in list(c.ring.items()):
                if agent == agent_id:
                    leg = self._legs.get(leg_id)
                    if leg is not None:
                        leg.settled = leg.cancelled = True
                        self._hangup_leg(leg)
                    self._ring_leg_done(c, leg_id, now)
            return
        if c is None or c.leg_id is None:
            return
        leg = self._legs.get(c.leg_id)
        if leg is not None:
            leg.settled = leg.cancelled = True
            self._hangup_leg(leg)
        c.state, c.agent_id, c.leg_id = "waiting", None, None
        self._apply(self.router.requeue(call_id, now, exclude_agent=agent_id), now)

    def _expired(self, d: rt.Expired, now: float) -> None:
        c = self._calls.get(d.call_id)
        queue = self.config.queues.get(d.queue)
        if c is None or queue is None:
            return
        c.state = "ended"
        kind = queue.overflow.kind if queue.overflow else None
        self.sink.submit(
            CallEvent(d.call_id, now, EventKind.QUEUE_EXIT, queue=d.queue, detail={"reason": "timeout"})
        )
        channel = c.info.channel
        if kind is cm.OverflowKind.VOICEMAIL or (kind is None and queue.mailbox):
            box = (queue.overflow.target if queue.overflow else None) or queue.mailbox or ""
            self.sink.submit(CallRecord(d.call_id, now, disposition=Disposition.VOICEMAIL))

            async def to_voicemail() -> None:
                await self.ami.send_action(
                    names.ACTION_SETVAR,
                    {"Channel": channel, "Variable": names.VAR_MAILBOX, "Value": box},
                    timeout=self.action_timeout,
                )
                await self.ami.send_action(
                    names.ACTION_REDIRECT,
                    {"Channel": channel, "Context": names.CTX_VOICEMAIL, "Exten": "s", "Priority": "1"},
                    timeout=self.action_timeout,
                )

            self._spawn(to_voicemail(), f"voicemail-{d.call_id}")
        else:
            self.sink.submit(CallRecord(d.call_id, now, disposition=Disposition.OVERFLOWED))
            self._spawn(
                self.ami.send_action(
                    names.ACTION_HANGUP, {"Channel": channel, "Cause": "16"}, timeout=self.action_timeout
                ),
                f"expire-{d.call_id}",
            )
        self._forget(c)

    # ================================================================== AMI events
    def _on_event(self, msg: Message) -> None:
        name = msg.name
        now = self.clock.now()
        if name == "OriginateResponse":
            leg = self._legs.get(msg.get("Uniqueid") or "")
            if leg is not None:
                if leg.channel is None and msg.get("Channel"):
                    leg.channel = msg.get("Channel")
                    self._leg_by_channel[leg.channel or ""] = leg.leg_id
                if msg.get("Response") == "Success":
                    self._leg_answered(leg, now)
                else:
                    self._leg_failed(leg, _rona_cause(msg.get("Reason")), now)
        elif name == "Newchannel":
            leg = self._legs.get(msg.get("Uniqueid") or "")
            if leg is not None:
                leg.channel = msg.get("Channel")
                if leg.channel:
                    self._leg_by_channel[leg.channel] = leg.leg_id
                if leg.cancelled:
                    self._hangup_leg(leg)
        elif name == "Hangup":
            uid, chan = msg.get("Uniqueid") or "", msg.get("Channel") or ""
            leg = self._legs.get(uid) or self._legs.get(self._leg_by_channel.get(chan, ""))
            if leg is not None:
                self._leg_hangup(leg, now, _int(msg.get("Cause")))
                return
            call_id = self._by_channel.get(chan) or self._by_channel.get(uid)
            if call_id is not None:
                self._caller_hangup(call_id, now, _int(msg.get("Cause")))
        elif name == "DialEnd":
            leg = self._legs.get(self._leg_by_channel.get(msg.get("Channel") or "", ""))
            c = self._calls.get(leg.call_id) if leg is not None else None
            if leg is not None and c is not None and c.callback_number and c.leg_id == leg.leg_id:
                status = msg.get("DialStatus") or ""
                c.callback_attempts += 1
                c.callback_reached = status == "ANSWER"
                self.sink.submit(
                    CallEvent(
                        c.info.call_id,
                        now,
                        EventKind.CALLBACK_ATTEMPT,
                        queue=c.queue,
                        agent_id=c.agent_id,
                        detail={"status": status, "attempt": c.callback_attempts},
                    )
                )
                if c.callback_reached:
                    self.sink.submit(
                        CallRecord(c.info.call_id, now, disposition=Disposition.CALLBACK_COMPLETED)
                    )
        elif name == "BridgeEnter":
            chan = msg.get("Channel") or ""
            call_id = self._by_channel.get(chan)
            leg_id = self._leg_by_channel.get(chan)
            if leg_id is not None and leg_id in self._legs:
                call_id = self._legs[leg_id].call_id
            c = self._calls.get(call_id or "")
            if c is not None:
                c.bridged_channels.add(chan)
                if len(c.bridged_channels) >= 2 and c.state == "connected":
                    self._bridge_formed(c)

    def _leg_answered(self, leg: _Leg, now: float) -> None:
        if leg.settled or leg.cancelled:
            return
        c = self._calls.get(leg.call_id)
        losers: list[str] = []
        if leg.ring and c is not None and leg.leg_id in c.ring and c.leg_id is None:
            # The first of a ring-all group to answer takes the call; the others are released.
            del c.ring[leg.leg_id]
            losers = list(c.ring)
            c.ring.clear()
            c.agent_id, c.leg_id = leg.agent_id, leg.leg_id
            c.ring_recording = None  # its file is the winner's now (a later offer plans anew)
            self._spawn(self._connect_ring_winner(c, leg), f"ring-winner-{leg.leg_id}")
        elif c is None or c.leg_id != leg.leg_id:
            self._hangup_leg(leg)
            return
        leg.answered, leg.answered_at = True, now
        self._agent_event(leg.agent_id, ag.Answer(leg.call_id), now)
        self.router.remove_call(leg.call_id)
        c.state, c.answered_at = "connected", now
        self.stats["answered"] += 1
        self.sink.submit(CallEvent(leg.call_id, now, EventKind.ANSWER, queue=c.queue, agent_id=leg.agent_id))
        self.sink.submit(
            CallEvent(leg.call_id, now, EventKind.QUEUE_EXIT, queue=c.queue, detail={"reason": "answered"})
        )
        self.sink.submit(LegRecord(leg.call_id, leg.leg_id, now, channel=leg.channel, answered_at=now))
        self.sink.submit(
            CallRecord(
                leg.call_id,
                now,
                agent_id=leg.agent_id,
                answered_at=now,
                disposition=None if c.callback_number else Disposition.ANSWERED,
            )
        )
        if len(c.bridged_channels) >= 2:
            self._bridge_formed(c)
        for leg_id in losers:
            other = self._legs.get(leg_id)
            if other is None or other.settled:
                continue
            other.settled = other.cancelled = True
            self._hangup_leg(other)
            with contextlib.suppress(AgentStateError):
                self._agent_event(other.agent_id, ag.CancelOffer(c.info.call_id, "answered_elsewhere"), now)

    async def _connect_ring_winner(self, c: _Call, leg: _Leg) -> None:
        """The ring-all winner's leg waits in cc-hold: send it where a one-agent offer starts
        (cc-agent-leg bridges the caller; cc-transfer dials a callback's number)."""
        if leg.channel is None or leg.gone or c.leg_id != leg.leg_id:
            return
        await self.ami.send_action(
            names.ACTION_REDIRECT,
            {"Channel": leg.channel, "Context": _leg_context(c), "Exten": "s", "Priority": "1"},
            timeout=self.action_timeout,
        )

    def _ring_leg_done(self, c: _Call, leg_id: str, now: float) -> None:
        """A ring-all leg failed (or its agent left) before anyone answered: once none rings,
        the call goes back to its place, never to be offered to that group again."""
        agent = c.ring.pop(leg_id, None)
        if agent is None:
            return
        c.ring_missed.add(agent)
        if not c.ring and c.leg_id is None and c.state == "offered":
            c.state = "waiting"
            missed, c.ring_missed = sorted(c.ring_missed), set()
            self._apply(self.router.requeue(c.info.call_id, now, exclude=missed), now)

    def _bridge_formed(self, c: _Call) -> None:
        """Caller and agent are bridged: index the recording the dialplan started (planned at
        Originate), or start one if the queue records always and none was planned."""
        queue = self.config.queues[c.queue]
        rec = self.recorder
        if rec is None or rec.active(c.info.call_id):
            return
        leg = self._legs.get(c.leg_id or "")
        channel = leg.channel if leg is not None and leg.channel else c.info.channel
        if rec.adopt_planned(c.info.call_id, channel, queue=c.queue, agent_id=c.agent_id):
            return
        if str(queue.recording) != "always":
            return
        leg_id = c.leg_id

        async def start() -> None:
            if c.state == "connected" and c.leg_id == leg_id:  # not transferred or ended meanwhile
                await rec.start(c.info.call_id, channel, queue=c.queue, agent_id=c.agent_id)

        self._spawn(start(), f"record-{c.info.call_id}")

    def _leg_failed(self, leg: _Leg, cause: str, now: float) -> None:
        """RONA: the agent did not answer (or could not be reached)."""
        if leg.settled or leg.cancelled:
            return
        leg.settled = True
        leg.cancelled = True  # should the channel show up late, it is hung up
        queue = self.config.queues[leg.queue]
        action = str(queue.rona_action)
        self.stats["rona"] += 1
        self.sink.submit(
            CallEvent(
                leg.call_id,
                now,
                EventKind.RONA,
                queue=leg.queue,
                agent_id=leg.agent_id,
                detail={"cause": cause},
            )
        )
        self.sink.submit(LegRecord(leg.call_id, leg.leg_id, now, ended_at=now))
        with contextlib.suppress(AgentStateError):
            self._agent_event(
                leg.agent_id,
                ag.NoAnswer(
                    leg.call_id,
                    cause=cause,
                    max_missed=queue.rona_count,
                    action=action if action in ("not_ready", "pause", "logout") else "not_ready",  # type: ignore[arg-type]
                    pause_reason=queue.rona_pause_reason,
                ),
                now,
            )
        c = self._calls.get(leg.call_id)
        if c is not None and leg.ring:
            self._ring_leg_done(c, leg.leg_id, now)
        elif c is not None and c.leg_id == leg.leg_id and c.state == "offered":
            c.state, c.agent_id, c.leg_id = "waiting", None, None
            self._apply(self.router.requeue(leg.call_id, now, exclude_agent=leg.agent_id), now)
        self._hangup_leg(leg)

    def _leg_hangup(self, leg: _Leg, now: float, cause: int | None) -> None:
        leg.gone = True
        self._legs.pop(leg.leg_id, None)
        if leg.channel:
            self._leg_by_channel.pop(leg.channel, None)
        self.sink.submit(LegRecord(leg.call_id, leg.leg_id, now, ended_at=now, hangup_cause=cause))
        if leg.settled:
            return
        if not leg.answered:  # rang out, busy, unreachable: the cause says which
            self._leg_failed(leg, _HANGUP_RONA.get(cause or 0, "hangup"), now)
            return
        leg.settled = True
        c = self._calls.get(leg.call_id)
        queue = self.config.queues[leg.queue]
        talk = now - (leg.answered_at or now)
        # Counted first, so least_calls sees it when the agent frees (at once if no wrap-up).
        self.router.record_handled(leg.queue, leg.agent_id, talk + queue.wrapup, talk_seconds=talk)
        with contextlib.suppress(AgentStateError):
            self._agent_event(leg.agent_id, ag.CallEnded(leg.call_id, wrap_up_seconds=queue.wrapup), now)
        if c is not None and c.leg_id == leg.leg_id and c.state == "connected":
            c.state = "ended"
            self.sink.submit(
                CallRecord(
                    leg.call_id,
                    now,
                    ended_at=now,
                    talk_seconds=round(talk, 3),
                    wrapup_seconds=queue.wrapup,
                    hangup_cause=cause,
                    hangup_by=ended_by("agent", cause),
                )
            )
            if self.recorder is not None:
                self.recorder.call_ended(leg.call_id)
            if c.callback_number:  # no caller channel of ours to wait for
                self._callback_leg_ended(c, now)

    def _callback_leg_ended(self, c: _Call, now: float) -> None:
        """The agent's leg of a callback ended: done if the customer answered, else tried again
        after ``callback_retry_delay`` (same place in line), up to ``callback_attempts`` times."""
        if c.callback_reached or c.callback_attempts >= self.callback_max_attempts:
            if not c.callback_reached:
                self.sink.submit(CallRecord(c.info.call_id, now, disposition=Disposition.FAILED))
            self._forget(c)
            return
        c.state, c.agent_id, c.leg_id, c.answered_at = "retry", None, None, None
        self._timer(now + self.callback_retry_delay, "callback_retry", c.info.call_id)

    async def withdraw(self, call_id: str) -> bool:
        """Take a call out of the ACD before an agent is on it (a person the dialer reached was
        not connected in time and now hears the identification message): an agent leg still
        ringing is hung up and its agent is free again without a RONA; the call is logged as
        abandoned. False when an agent already has the call, or the ACD does not know it."""
        c = self._calls.get(call_id)
        if c is None or c.state not in ("waiting", "offered"):
            return False
        self._caller_hangup(call_id, self.clock.now(), None)
        return True

    def _caller_hangup(self, call_id: str, now: float, cause: int | None) -> None:
        c = self._calls.get(call_id)
        if c is None:
            return
        if c.state == "offered":
            ringing = [c.leg_id] if c.leg_id is not None else list(c.ring)
            c.ring.clear()
            for leg_id in ringing:
                leg = self._legs.get(leg_id)
                if leg is not None and not leg.settled:
                    leg.settled = leg.cancelled = True
                    self._hangup_leg(leg)
                    with contextlib.suppress(AgentStateError):
                        self._agent_event(leg.agent_id, ag.CancelOffer(call_id), now)
            if c.callback_number:
                c.state, c.agent_id, c.leg_id = "waiting", None, None
                self._apply(self.router.requeue(call_id, now), now)
        if c.callback_number and c.state == "waiting":
            # The caller left on purpose: its place is kept; the agent is rung first, then the
            # number is dialled from the agent's leg.
            self._forget_channel(c)
            self.sink.submit(
                CallEvent(call_id, now, EventKind.NOTE, queue=c.queue, detail={"callback_waiting": True})
            )
            return
        if c.state in ("waiting", "offered"):
            self.stats["abandoned"] += 1
            self.sink.submit(
                CallEvent(call_id, now, EventKind.QUEUE_EXIT, queue=c.queue, detail={"reason": "abandoned"})
            )
            self.sink.submit(
                CallRecord(
                    call_id,
                    now,
                    disposition=Disposition.ABANDONED_QUEUE,
                    ended_at=now,
                    hangup_cause=cause,
                    hangup_by=ended_by("caller", cause),
                )
            )
        elif c.state == "connected":
            talk = now - (c.answered_at or now)
            self.sink.submit(
                CallRecord(
                    call_id,
                    now,
                    ended_at=now,
                    talk_seconds=round(talk, 3),
                    hangup_cause=cause,
                    hangup_by=ended_by("caller", cause),
                )
            )
            if self.recorder is not None:
                self.recorder.call_ended(call_id)
        else:  # transferred out, expired, ended by the agent (or the caller's leg died first)
            self.sink.submit(
                CallRecord(
                    call_id, now, ended_at=now, hangup_cause=cause, hangup_by=dead_leg("caller", cause)
                )
            )
            if self.recorder is not None:
                self.recorder.call_ended(call_id)
        c.state = "ended"
        self._forget(c)

    def _detach_agent(self, c: _Call, now: float, reason: str) -> None:
        """The agent leaves the call (transfer): its leg will hang up; the agent wraps up then."""
        leg = self._legs.get(c.leg_id or "")
        if leg is not None and c.answered_at is not None:
            talk = now - c.answered_at
            self.sink.submit(CallRecord(c.info.call_id, now, talk_seconds=round(talk, 3)))
        c.agent_id, c.leg_id, c.answered_at = None, None, None
        c.bridged_channels.clear()
        if self.recorder is not None:
            self.recorder.call_ended(c.info.call_id)

    def _hangup_leg(self, leg: _Leg) -> None:
        if leg.channel is None or leg.gone:
            return  # Newchannel will tell us its name; we hang it up then if cancelled
        self._spawn(
            self.ami.send_action(
                names.ACTION_HANGUP, {"Channel": leg.channel, "Cause": "16"}, timeout=self.action_timeout
            ),
            f"hangup-{leg.leg_id}",
        )

    def _forget_channel(self, c: _Call) -> None:
        self._by_channel.pop(c.info.channel, None)
        if c.info.uniqueid:
            self._by_channel.pop(c.info.uniqueid, None)

    def _forget(self, c: _Call) -> None:
        self._forget_channel(c)
        self._calls.pop(c.info.call_id, None)
        self.router.remove_call(c.info.call_id)

    # ================================================================== timers
    def _on_timer(self, kind: str, key: str, now: float) -> None:
        if kind == "wrapup":
            if key in self.agents and self.agents[key].status is ag.Status.WRAP_UP:
                self._agent_event(key, ag.WrapUpEnd(), now)
        elif kind == "ring_guard":
            leg = self._legs.get(key)
            if leg is not None and not leg.answered and not leg.settled:
                self._leg_failed(leg, "timeout", now)
            if leg is not None and leg.settled and leg.channel is None:
                self._legs.pop(key, None)  # never became a channel (unreachable): nothing will end it
        elif kind == "callback_retry":
            c = self._calls.get(key)
            if c is not None and c.state == "retry":
                c.state = "waiting"
                self.router.remove_call(key)
                req = rt.CallRequest(key, c.queue, dict(c.info.skills), c.info.priority)
                decisions = self.router.enqueue(req, now, arrived_at=c.queued_at)
                if self.router.is_waiting(key):
                    self.router.accept_callback(key)
                self._apply(decisions, now)
        elif kind == "announce":
            c = self._calls.get(key)
            if (
                c is not None
                and c.state == "waiting"
                and c.next_announce is not None
                and c.next_announce <= now
            ):
                queue = self.config.queues[c.queue]
                self._schedule_announce(c, queue, now)
                self._spawn(self._announce(c), f"announce-{key}")

    def _schedule_announce(self, c: _Call, queue: cm.Queue, now: float) -> None:
        if queue.announce_period and (queue.announce_position or queue.announce_wait):
            c.next_announce = now + queue.announce_period
            self._timer(c.next_announce, "announce", c.info.call_id)
        else:
            c.next_announce = None

    async def _announce(self, c: _Call) -> None:
        if not self.router.is_waiting(c.info.call_id):
            return
        ann = self.router.announcement(c.info.call_id)
        if ann.offer_callback:
            self.sink.submit(
                CallEvent(
                    c.info.call_id,
                    self.clock.now(),
                    EventKind.NOTE,
                    queue=c.queue,
                    detail={"callback_offer_ewt": round(ann.ewt or -1)},
                )
            )
            if self.on_callback_offer is not None:
                await self.on_callback_offer(c.info.call_id, ann.ewt if ann.ewt is not None else float("inf"))
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
        if c.state == "waiting":
            await self.ami.send_action(
                names.ACTION_REDIRECT,
                {"Channel": ch, "Context": names.CTX_ANNOUNCE, "Exten": "s", "Priority": "1"},
                timeout=self.action_timeout,
            )

    async def reconcile(self) -> None:
        """After missed events (an AMI link gap): every call or agent leg whose channel the PBX no
        longer has is treated as hung up."""
        items = await self.ami.send_action_list(names.ACTION_STATUS, {}, timeout=self.action_timeout * 2)
        live = {m.get("Channel") for m in items if m.name == "Status"} | {
            m.get("Uniqueid") for m in items if m.name == "Status"
        }
        live.discard(None)
        now = self.clock.now()
        for leg in list(self._legs.values()):
            if leg.channel is not None and leg.channel not in live and leg.leg_id not in live:
                self._leg_hangup(leg, now, None)
        for c in list(self._calls.values()):
            if c.info.channel not in live and (c.info.uniqueid or "") not in live and not c.callback_number:
                self._caller_hangup(c.info.call_id, now, None)

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
        callers: dict[str, Message] = {}
        legs: list[tuple[str, Message]] = []  # several per call while a ring-all group rang
        for m in items:
            if m.name != "Status":
                continue
            if names.VAR_CALL_ID not in _variables(m):
                m = await self._with_variables(m)
            var = _variables(m)
            call_id, agent_id = var.get(names.VAR_CALL_ID), var.get(names.VAR_AGENT_ID)
            if not call_id or not SAFE_ID.match(call_id):
                continue
            if agent_id:
                legs.append((call_id, m))
            else:
                callers[call_id] = m
        # Agents first (logged in per the database; on a call if the PBX says so).
        on_call: dict[str, tuple[str, Message]] = {}
        for call_id, m in legs:
            agent_id = _variables(m).get(names.VAR_AGENT_ID, "")
            if agent_id in self.agents and (m.get("BridgeID") or m.get("BridgeId")) and call_id in callers:
                on_call[agent_id] = (call_id, m)
            elif m.get("Channel"):
                self._spawn(
                    self.ami.send_action(
                        names.ACTION_HANGUP,
                        {"Channel": m.get("Channel"), "Cause": "16"},
                        timeout=self.action_timeout,
                    ),
                    f"rebuild-hangup-{call_id}",
                )
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
                else:
                    self._agent_event(agent_id, ag.Login(paused_reason=paused, reason="restart"), now)
        for agent_id, pair in on_call.items():
            if self.agents[agent_id].status is ag.Status.LOGGED_OUT:
                self._restore_on_call(agent_id, pair, callers, now)
        # Callers still holding go back in line at their first arrival.
        for call_id, m in callers.items():
            if call_id in self._calls:
                continue
            var = _variables(m)
            queue_id = var.get(names.VAR_QUEUE) or (
                stored.calls[call_id].queue if call_id in stored.calls else ""
            )
            if queue_id not in self.config.queues:
                continue
            sc = stored.calls.get(call_id)
            seconds = _int(m.get("Seconds")) or 0
            arrived = sc.queued_at if sc else now - seconds
            info = QueuedCall(
                call_id,
                m.get("Channel") or "",
                queue_id,
                priority=sc.priority if sc else 0,
                uniqueid=m.get("Uniqueid"),
                redirect_to_hold=False,
            )
            c = _Call(info, queue_id, queued_at=arrived)
            self._calls[call_id] = c
            self._by_channel[info.channel] = call_id
            if info.uniqueid:
                self._by_channel[info.uniqueid] = call_id
            self._schedule_announce(c, self.config.queues[queue_id], now)
            req = rt.CallRequest(call_id, queue_id, {}, info.priority)
            self._apply(self.router.enqueue(req, now, arrived_at=arrived), now)

    async def _with_variables(self, m: Message) -> Message:
        """A Status entry without ``Variable:`` lines (a PBX that ignores ``Variables``): read the
        CC_* variables with Getvar, one channel at a time."""
        channel = m.get("Channel")
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
        self, agent_id: str, pair: tuple[str, Message], callers: Mapping[str, Message], now: float
    ) -> None:
        call_id, m = pair
        caller = callers.get(call_id)
        if caller is None:
            return
        var = _variables(m)
        queue_id = var.get(names.VAR_QUEUE) or ""
        if queue_id not in self.config.queues:
            queue_id = next(iter(self.config.queues))
        info = QueuedCall(
            call_id,
            caller.get("Channel") or "",
            queue_id,
            uniqueid=caller.get("Uniqueid"),
            redirect_to_hold=False,
        )
        c = _Call(info, queue_id, state="connected", agent_id=agent_id, answered_at=now, queued_at=now)
        leg_id = m.get("Uniqueid") or f"ccleg-{uuid.uuid4().hex}"
        leg = _Leg(
            leg_id, call_id, agent_id, queue_id, channel=m.get("Channel"), answered=True, answered_at=now
        )
        c.leg_id = leg_id
        self._calls[call_id] = c
        self._legs[leg_id] = leg
        self._by_channel[info.channel] = call_id
        if info.uniqueid:
            self._by_channel[info.uniqueid] = call_id
        if leg.channel:
            self._leg_by_channel[leg.channel] = leg_id
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


# Hangup cause of an agent leg that was never answered -> the RONA cause logged.
_HANGUP_RONA = {17: "busy", 18: "rona", 19: "rona", 21: "rejected", 3: "unavailable", 34: "congestion"}


def _leg_context(c: _Call) -> str:
    """Where an agent's answered leg goes: cc-transfer dials a callback's number, else
    cc-agent-leg bridges the holding caller."""
    return names.CTX_TRANSFER if c.callback_number else names.CTX_AGENT_LEG


def _caller_id(name: str, number: str | None) -> str:
    """``"Queue name" <number>`` from what we trust: the number keeps dial characters only (it
    came from the caller), the name loses quotes, angle brackets and control characters."""
    clean_name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>')[:40]
    clean_number = re.sub(r"[^0-9+*#]", "", number or "")[:32]
    return f'"{clean_name}" <{clean_number}>'


def announcement_prompt(ann: rt.Announcement, language: str, queue: cm.Queue, *, sounds_dir: str = "") -> str:
    """What ``cc-announce`` plays (``Playback`` sound names joined by ``&``): "your position is
    <n>", "your expected wait is about <m> minutes", per the queue's announce options. Our own
    prompts are named under ``sounds_dir`` (where they are installed); ``digits/N`` are Asterisk's
    core sounds."""

    def ours(prompt_id: str) -> str:
        return posixpath.join(sounds_dir, cm.prompt_sound(prompt_id, language))

    parts: list[str] = []
    if queue.announce_position:
        parts += [ours("queue-position"), f"digits/{min(ann.position, 99)}"]
    if queue.announce_wait and ann.ewt is not None:
        minutes = max(1, min(99, round(ann.ewt / 60)))
        parts += [ours("queue-wait"), f"digits/{minutes}", ours("minutes")]
    return "&".join(parts) or ours("please-hold")


def _rona_cause(reason: str | None) -> str:
    code = _int(reason)
    return (
        {0: "unavailable", 1: "hangup", 3: "rona", 5: "busy", 8: "congestion"}.get(code or 0, "rona")
        if code is not None
        else "rona"
    )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


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
