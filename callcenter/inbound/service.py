"""Shell: the FastAGI ``ivr`` route. Runs :mod:`callcenter.inbound.ivr` live on a caller's channel.

Asterisk's inbound dialplan answers a DID and runs ``AGI(agi://<controller>/ivr)``. The route
gives the call an id (``CC_CALL_ID``), starts the flow of the dialed number and carries the
interpreter's effects out with AGI commands:

===============  ===========================================================================
effect           AGI
===============  ===========================================================================
Play             ``STREAM FILE <sound> ""`` per sound (``"0123456789*#"`` as escape digits when
                 interruptible; a key stops the rest)
Read             ``GET DATA <sound> <timeout ms> <max digits>`` when ``#`` (or nothing) ends the
                 input and at most one sound plays; otherwise ``STREAM FILE`` with every key as
                 an escape digit and ``WAIT FOR DIGIT <timeout ms>`` per further digit
SetVariable      ``SET VARIABLE <name> <value>`` (control characters in values become ``?``)
Lookup           the customer directory, bounded by the node's timeout (a timeout or failure is
                 the outcome ``timeout`` / ``error``; the call goes on)
Log              ``writer.submit(record)``
Finish queue     channel variables (CC_SKILLS, CC_PRIORITY, CC_LANGUAGE), ``await
                 acd.enqueue(QueuedCall(..., redirect_to_hold=False))`` (the ACD sets CC_CUSTOMER),
                 then CC_QUEUE; the AGI ends and the rendered dialplan sends a call with CC_QUEUE
                 set to ``cc-hold``
Finish voicemail ``SET VARIABLE CC_MAILBOX <box>``; the dialplan goes to ``cc-voicemail,<box>,1``
Finish callback  ``acd.enqueue(...)`` then ``acd.accept_callback(call_id, number)`` (the call keeps
                 its place), then ``HANGUP``
Finish hangup    nothing more: the dialplan hangs up after the AGI
===============  ===========================================================================

A hang-up at any step (Asterisk's ``HANGUP`` notice, ``result=-1``, a dead channel, the socket
closed) is fed to the interpreter as ``HungUp``: the step is logged, the call is recorded as
abandoned in the IVR, and nothing escapes the route. Any other failure (a protocol error, a
command timing out, the ACD refusing the call) is logged as a ``note`` event and the channel,
if still there, is sent to the static fallback context with ``EXEC Goto cc-fallback,s,1``
(CC_QUEUE stays unset): the call always goes somewhere defined.

Wiring (composition root)::

    service = IvrService(config, writer=writer, distributor=acd, customers=directory, clock=clock)
    agi_server.add_route(names.AGI_IVR, service.handle)      # async def handle(session) -> None
    service.reload(new_config)                               # new calls use the new flows

The route needs from the session only ``env`` (the ``agi_*`` block) and
``await command(name, *args, timeout=...) -> AGIReply`` that raises ``AGIHangupError`` when the
channel is gone (:class:`AGISession`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from callcenter.asterisk import names
from callcenter.asterisk.agi import AGIReply
from callcenter.clock import Clock
from callcenter.config.model import Config
from callcenter.errors import AGIHangupError, CallcenterError, InvalidPhoneNumberError
from callcenter.inbound import ivr as core
from callcenter.phone import normalize
from callcenter.ports import AGISession, CallDistributor, CustomerDirectory, QueuedCall, RecordSink
from callcenter.reporting.records import (
    CallEvent,
    CallRecord,
    Disposition,
    EventKind,
    LegRecord,
    LogRecord,
    caller_text,
)

log = logging.getLogger("callcenter.inbound.ivr")

ALL_DTMF = "0123456789*#"


# ============================================================================ seams
_OUTCOMES: Mapping[str, core.LookupOutcome] = {
    "found": core.LookupOutcome.FOUND,
    "not_found": core.LookupOutcome.NOT_FOUND,
    "timeout": core.LookupOutcome.TIMEOUT,
    "error": core.LookupOutcome.ERROR,
    "invalid": core.LookupOutcome.INVALID_NUMBER,
}


# ============================================================================ the service
@dataclass(frozen=True)
class IvrSettings:
    command_timeout: float = 10.0  # an AGI command that plays nothing
    prompt_allowance: float = 300.0  # added to the bound of a command that plays audio
    handoff_timeout: float = 5.0  # the ACD's enqueue / callback request
    fallback: tuple[str, str, str] = (names.CTX_FALLBACK, "s", "1")


@dataclass
class IvrStats:
    started: int = 0
    active: int = 0
    finished: dict[str, int] = field(default_factory=dict)  # exit kind -> count
    failed: int = 0  # sessions that went to the fallback after an error
    commands: int = 0


class ChannelGone(Exception):
    """The caller's channel went away while a command ran (raised by :class:`AgiChannel`)."""


_Hangup = ChannelGone


class IvrService:
    """The ``ivr`` FastAGI route. One instance serves every call (no per-call state outside the
    coroutine). ``latency_hook`` (optional) receives the controller-side time in seconds between an
    AGI reply arriving and the next command being sent (what the controller adds per command)."""

    def __init__(
        self,
        config: Config,
        *,
        writer: RecordSink,
        distributor: CallDistributor,
        customers: CustomerDirectory | None,
        clock: Clock,
        settings: IvrSettings | None = None,
        new_call_id: Callable[[], str] | None = None,
        latency_hook: Callable[[float], None] | None = None,
    ) -> None:
        self.interpreter = core.Interpreter(config)
        self.writer = writer
        self.distributor = distributor
        self.customers = customers
        self.clock = clock
        self.settings = settings or IvrSettings()
        self.new_call_id = new_call_id or (lambda: uuid.uuid4().hex)
        self.latency_hook = latency_hook
        self.stats = IvrStats()

    def reload(self, config: Config) -> None:
        """Use ``config`` for calls that start from now on (calls in progress keep theirs)."""
        self.interpreter = core.Interpreter(config)

    async def handle(self, session: AGISession) -> None:
        """The route handler: run the IVR for the call on ``session``. Never raises for anything
        the call or Asterisk does (hang-ups, errors); ``CancelledError`` propagates."""
        run = _CallRun(self, session)
        self.stats.started += 1
        self.stats.active += 1
        try:
            await run.execute()
        finally:
            self.stats.active -= 1


def _caller_name(raw: str) -> str | None:
    """The caller ID name as the agent's screen shows it (cleaned, capped; None when unknown)."""
    name = caller_text(raw).strip()
    return None if name.lower() in ("", "unknown", "anonymous") else name


def _dialed(env: Mapping[str, str]) -> str:
    for key in ("agi_arg_1", "agi_extension", "agi_dnid"):
        value = caller_text(env.get(key, "")).strip()
        if value and value != "unknown" and value != "s":
            return value
    return ""


def _key(code: int) -> str:
    """The key Asterisk reports as a character code (anything odd becomes ``?``: invalid input)."""
    return chr(code) if 32 < code < 127 else "?"


def _safe(value: str) -> str:
    """A value fit for a channel variable: no control characters, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in value[:512])
    return text


class AgiChannel:
    """Carries IVR effects out on one FastAGI session: ``cmd`` (bounded, a hang-up raises
    :class:`ChannelGone`), ``play`` and ``read``, and :meth:`run_flow` for a whole flow. Used by the
    ``ivr`` route and by the supervisors' ``spy`` route (PIN and mode menus)."""

    def __init__(
        self,
        session: AGISession,
        settings: IvrSettings,
        *,
        latency_hook: Callable[[float], None] | None = None,
        stats: IvrStats | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.env = session.env
        self.channel = self.env.get("agi_channel", "")
        self.uniqueid = self.env.get("agi_uniqueid", "")
        self.latency_hook = latency_hook
        self.io_stats = stats
        self.t_reply: float | None = None  # perf counter when the last reply arrived

    async def cmd(self, command: str, *args: str | int, plays: bool = False, extra: float = 0.0) -> AGIReply:
        if self.t_reply is not None and self.latency_hook is not None:
            self.latency_hook(time.perf_counter() - self.t_reply)
        bound = self.settings.command_timeout + extra + (self.settings.prompt_allowance if plays else 0.0)
        if self.io_stats is not None:
            self.io_stats.commands += 1
        try:
            reply = await self.session.command(command, *args, timeout=bound)
        except AGIHangupError as exc:
            raise ChannelGone from exc
        finally:
            self.t_reply = time.perf_counter()
        if reply.hungup:
            raise ChannelGone
        return reply

    async def run_flow(
        self,
        interpreter: core.Interpreter,
        state: core.IvrState,
        effects: list[core.Effect],
        clock: Clock,
        *,
        submit: Callable[[LogRecord], None] | None = None,
    ) -> core.IvrState:
        """Carry a flow out from ``(state, effects)`` until it finishes; return the final state
        (its ``exit`` says how it ended; nothing of the exit is carried out here). Lookups answer
        ``error``. A hang-up is fed to the interpreter and ends the flow (exit ``abandoned``)."""
        try:
            while True:
                answer: core.Input | None = None
                for effect in effects:
                    match effect:
                        case core.Log():
                            if submit is not None:
                                submit(effect.record)
                        case core.SetVariable():
                            await self.cmd("SET VARIABLE", effect.name, _safe(effect.value))
                        case core.Play():
                            answer = await self.play(effect)
                        case core.Read():
                            answer = core.Digits(await self.read(effect))
                        case core.Lookup():
                            answer = core.LookupDone(core.LookupOutcome.ERROR)
                        case core.Finish():
                            return state
                if answer is None:  # pragma: no cover - every batch ends with an answer or Finish
                    return state
                state, effects = interpreter.feed(state, answer, clock.now())
        except ChannelGone:
            state, effects = interpreter.feed(state, core.HungUp(), clock.now())
            if submit is not None:
                for effect in effects:
                    if isinstance(effect, core.Log):
                        submit(effect.record)
            return state

    # ------------------------------------------------------------------ effects
    async def play(self, effect: core.Play) -> core.Played:
        escape = ALL_DTMF if effect.interruptible else ""
        for sound in effect.sounds:
            reply = await self.cmd("STREAM FILE", sound, escape, plays=True)
            code = reply.result_int or 0
            if code > 0:
                return core.Played(_key(code))
        return core.Played()

    async def read(self, effect: core.Read) -> str:
        timeout_ms = max(1, int(effect.timeout * 1000))
        per_digit = effect.timeout + 1.0
        use_get_data = not effect.hash_is_input and effect.terminator in ("#", None)
        digits: list[str] = []
        *leading, last = effect.sounds or ("",)
        for sound in leading:
            reply = await self.cmd("STREAM FILE", sound, ALL_DTMF, plays=True)
            if (reply.result_int or 0) > 0:
                digits.append(_key(reply.result_int or 0))
                break
        if not digits and use_get_data:
            reply = await self.cmd(
                "GET DATA", last or "silence/1", timeout_ms, effect.max_digits,
                plays=True, extra=per_digit * effect.max_digits,
            )  # fmt: skip
            return reply.result or ""
        if not digits and last:
            reply = await self.cmd("STREAM FILE", last, ALL_DTMF, plays=True)
            if (reply.result_int or 0) > 0:
                digits.append(_key(reply.result_int or 0))
        while len(digits) < effect.max_digits and not (
            effect.terminator and digits[-1:] == [effect.terminator]
        ):
            reply = await self.cmd("WAIT FOR DIGIT", timeout_ms, extra=per_digit)
            code = reply.result_int or 0
            if code <= 0:
                break
            digits.append(_key(code))
        return "".join(digits)


class _CallRun(AgiChannel):
    """One call's IVR, carried out on one session."""

    def __init__(self, service: IvrService, session: AGISession) -> None:
        super().__init__(session, service.settings, latency_hook=service.latency_hook, stats=service.stats)
        self.svc = service
        self.ivr = service.interpreter
        self.call_id = service.new_call_id()
        self.state: core.IvrState | None = None
        self.handed_off = False  # the ACD has the call

    def submit(self, record: LogRecord) -> None:
        self.svc.writer.submit(record)

    def now(self) -> float:
        return self.svc.clock.now()

    # ------------------------------------------------------------------ the run
    async def execute(self) -> None:
        now = self.now()
        # The caller ID is the caller's to choose: capped and cleaned before anything logs it.
        caller = caller_text(self.env.get("agi_callerid", "")).strip()
        if caller in ("", "unknown"):
            caller = "anonymous"
        try:
            e164: str | None = normalize(caller, self.ivr.center.country)
        except InvalidPhoneNumberError:
            e164 = None
        info = core.CallInfo(self.call_id, caller, _dialed(self.env), e164)
        self.submit(
            LegRecord(
                call_id=self.call_id,
                leg_id=self.uniqueid or self.call_id,
                at=now,
                kind="caller",
                channel=self.channel,
                started_at=now,
                answered_at=now,
            )
        )
        state, effects = self.ivr.start(info, now)
        self.state = state
        try:
            await self.cmd("SET VARIABLE", names.VAR_CALL_ID, self.call_id)
            while True:
                answer = await self.carry_out(effects)
                if answer is None:
                    return
                state, effects = self.ivr.feed(state, answer, self.now())
                self.state = state
        except _Hangup:
            self.on_hangup()
        except (CallcenterError, TimeoutError, OSError, core.IvrStateError) as exc:
            await self.on_failure(exc)

    async def carry_out(self, effects: list[core.Effect]) -> core.Input | None:
        """Carry out one batch; return the answer to its last effect (``None`` after Finish)."""
        answer: core.Input | None = None
        for effect in effects:
            match effect:
                case core.Log():
                    self.submit(effect.record)
                case core.SetVariable():
                    await self.cmd("SET VARIABLE", effect.name, _safe(effect.value))
                case core.Play():
                    answer = await self.play(effect)
                case core.Read():
                    answer = core.Digits(await self.read(effect))
                case core.Lookup():
                    answer = await self.lookup(effect)
                case core.Finish():
                    await self.finish(effect.exit)
                    return None
        return answer

    def on_hangup(self) -> None:
        state = self.state
        if state is None:
            return
        if state.done:
            exit_ = state.exit
            if exit_ is not None and exit_.kind is core.ExitKind.QUEUE and not self.handed_off:
                # gone between the end of the flow and the hand-off: an IVR abandon after all
                now = self.now()
                self.submit(
                    CallRecord(
                        call_id=self.call_id,
                        at=now,
                        disposition=Disposition.ABANDONED_IVR,
                        ended_at=now,
                        hangup_by="caller",
                    )
                )
            return
        state, effects = self.ivr.feed(state, core.HungUp(), self.now())
        self.state = state
        for effect in effects:
            if isinstance(effect, core.Log):
                self.submit(effect.record)
        self._count(core.ExitKind.ABANDONED)

    async def on_failure(self, exc: BaseException) -> None:
        log.warning("ivr call %s on %s failed: %r", self.call_id, self.channel, exc)
        self.svc.stats.failed += 1
        self.submit(
            CallEvent(
                call_id=self.call_id,
                at=self.now(),
                kind=EventKind.NOTE,
                node=self.state.node if self.state else None,
                detail={"error": type(exc).__name__, "code": getattr(exc, "code", None), "to": "fallback"},
            )
        )
        ctx, exten, prio = self.settings.fallback
        try:
            await self.cmd("EXEC", "Goto", f"{ctx},{exten},{prio}")
        except (_Hangup, CallcenterError, TimeoutError, OSError) as again:
            log.info("ivr call %s: fallback not reachable (%r)", self.call_id, again)

    def _count(self, kind: core.ExitKind) -> None:
        finished = self.svc.stats.finished
        finished[kind.value] = finished.get(kind.value, 0) + 1

    # ------------------------------------------------------------------ effects
    async def lookup(self, effect: core.Lookup) -> core.LookupDone:
        directory = self.svc.customers
        if directory is None:
            return core.LookupDone(core.LookupOutcome.ERROR)
        try:
            async with asyncio.timeout(effect.timeout):  # the node's budget bounds any directory
                result = await directory.lookup(effect.number)
        except TimeoutError:
            return core.LookupDone(core.LookupOutcome.TIMEOUT)
        except (CallcenterError, OSError) as exc:
            log.info("caller lookup failed for call %s: %r", self.call_id, exc)
            return core.LookupDone(core.LookupOutcome.ERROR)
        outcome = _OUTCOMES.get(result.outcome, core.LookupOutcome.ERROR)
        customer = result.customer
        if outcome is not core.LookupOutcome.FOUND or customer is None:
            return core.LookupDone(
                outcome if outcome is not core.LookupOutcome.FOUND else core.LookupOutcome.ERROR
            )
        data: dict[str, str] = {}
        if customer.name:
            data["name"] = customer.name
        if customer.account:
            data["account"] = customer.account
        for key, value in customer.data.items():
            if isinstance(value, str | int | float | bool):
                data.setdefault(str(key), str(value))
        return core.LookupDone(core.LookupOutcome.FOUND, tier=customer.tier, data=data)

    async def hand_off(self, state: core.IvrState, exit_: core.Exit, queue: str) -> None:
        # card-like digits stay masked outside the IVR (channel variables show up in AMI events)
        data = {k: core.mask(v) if k in state.secret_keys else v for k, v in exit_.data.items()}
        call = QueuedCall(
            call_id=self.call_id,
            channel=self.channel,
            queue=queue,
            skills=dict(exit_.skills),
            priority=exit_.priority,
            language=exit_.language,
            caller_number=state.call.caller_e164 or state.call.caller,
            data=data,
            uniqueid=self.uniqueid or None,
            redirect_to_hold=False,  # the dialplan goes to cc-hold when the AGI ends
            caller_name=_caller_name(self.env.get("agi_calleridname", "")),
            did=state.call.dialed or None,
        )
        async with asyncio.timeout(self.settings.handoff_timeout):
            await self.svc.distributor.enqueue(call)
        self.handed_off = True

    async def finish(self, exit_: core.Exit) -> None:
        state = self.state
        if state is None:  # pragma: no cover - start() always sets it
            raise RuntimeError("finish before start")
        match exit_.kind:
            case core.ExitKind.QUEUE:
                queue = exit_.queue or ""
                for name, value in (
                    (names.VAR_SKILLS, ",".join(f"{s}:{lvl}" for s, lvl in exit_.skills.items())),
                    (names.VAR_PRIORITY, str(exit_.priority)),
                    (names.VAR_LANGUAGE, exit_.language),
                ):
                    await self.cmd("SET VARIABLE", name, _safe(value))
                await self.hand_off(state, exit_, queue)
                self._count(exit_.kind)
                # last: with CC_QUEUE set, the dialplan sends the caller to hold after the AGI
                await self.cmd("SET VARIABLE", names.VAR_QUEUE, _safe(queue))
            case core.ExitKind.VOICEMAIL:
                self._count(exit_.kind)
                await self.cmd("SET VARIABLE", names.VAR_MAILBOX, exit_.mailbox or "")
            case core.ExitKind.CALLBACK:
                # the call keeps a place in the queue; the caller hangs up and is called back
                await self.hand_off(state, exit_, exit_.queue or "")
                async with asyncio.timeout(self.settings.handoff_timeout):
                    await self.svc.distributor.accept_callback(self.call_id, exit_.number or "")
                self._count(exit_.kind)
                await self.cmd("HANGUP")
            case core.ExitKind.HANGUP:
                self._count(exit_.kind)
            case core.ExitKind.ABANDONED:
                self._count(exit_.kind)
