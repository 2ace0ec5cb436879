"""Pure: the IVR flow interpreter, ``(state, input, now) -> (state, effects)``.

It runs the flows of :mod:`callcenter.config.model` (every node type: prompt, menu, collect,
hours, language, set, lookup, goto flow, queue, voicemail, callback, hang-up). It never does I/O
and never reads the clock: the shell (:mod:`callcenter.inbound.service`) carries the effects out over
FastAGI and feeds back what happened.

The conversation between the shell and the interpreter::

    ivr = Interpreter(config)
    state, effects = ivr.start(call, now)           # CallInfo: call id, caller, dialed number
    while True:
        # carry out ``effects`` in order; each batch ends with at most one effect that needs an
        # answer (Play -> Played, Read -> Digits, Lookup -> LookupDone) or with Finish
        state, effects = ivr.feed(state, Digits("1"), now)
        ...
    # at any point the caller may hang up: ivr.feed(state, HungUp(), now) finishes the call

Effects: :class:`SetVariable` and :class:`Log` (a :mod:`callcenter.reporting.records` record to submit)
need no answer; :class:`Play` (answer :class:`Played`), :class:`Read` (answer :class:`Digits`),
:class:`Lookup` (answer :class:`LookupDone`) do; :class:`Finish` ends the IVR with an
:class:`Exit` (to a queue, voicemail, a callback request, a hang-up, or the caller's own hang-up).

A key that cuts an interruptible prompt short is kept as type-ahead: the next menu or language
choice takes it as its answer without playing its own prompt (a collect node drops it).

Every node the call enters or leaves is logged as a ``CallEvent`` of kind ``ivr_node`` with the
node id, its type, what the caller gave (collected digits masked), and the outcome. Caller input is
distrusted: anything that is not DTMF (``0-9 * #``) counts as invalid input, and overlong input is
cut before it is logged. Two guards keep a broken flow from spinning: at most
:data:`MAX_AUTO_HOPS` nodes without caller input in a row, and at most :data:`MAX_INPUTS` caller
inputs per call; past either, the call ends with an ``Exit`` of kind ``hangup`` (reason
``loop`` / ``too_many_inputs``) and disposition ``failed``.

Hours are checked with :meth:`callcenter.config.model.Center.status_at` on the wall-clock time in
the center's timezone at ``now`` (``zoneinfo``, so DST changes are handled by the tz database).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from callcenter.asterisk import names
from callcenter.config import dialout
from callcenter.config.model import (
    CallbackNode,
    CollectNode,
    Config,
    DialPurpose,
    Flow,
    GotoFlowNode,
    HangupNode,
    HoursNode,
    IVRNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    PromptNode,
    QueueNode,
    ScheduleStatus,
    SetNode,
    Validation,
    VoicemailNode,
    prompt_sound,
)
from callcenter.reporting.records import CallEvent, CallRecord, Direction, Disposition, EventKind, LogRecord

MAX_AUTO_HOPS: Final = 1000
"""Nodes entered in a row without caller input before the call is ended as a loop."""

MAX_INPUTS: Final = 1000
"""Caller inputs (menu/collect/language answers, timeouts included) per call."""

MAX_LOGGED_INPUT: Final = 32
"""Characters of caller input kept in a log entry."""

DTMF: Final = frozenset("0123456789*#")
_CALLBACK_NUMBER: Final = re.compile(r"\+?[0-9]{3,20}")

# ============================================================================ inputs


@dataclass(frozen=True, slots=True)
class Digits:
    """What the caller typed in answer to a :class:`Read`; ``""`` means nothing (timeout)."""

    digits: str


@dataclass(frozen=True, slots=True)
class Played:
    """A :class:`Play` finished (``digit``: the key that interrupted it, if any)."""

    digit: str | None = None


class LookupOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    ERROR = "error"
    INVALID_NUMBER = "invalid_number"


@dataclass(frozen=True, slots=True)
class LookupDone:
    """The answer to a :class:`Lookup`: on ``FOUND`` the customer's ``tier`` and data (name,
    account ...) for the agent's screen-pop."""

    outcome: LookupOutcome
    tier: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HungUp:
    """The caller hung up (noticed by the shell at any step)."""


Input = Digits | Played | LookupDone | HungUp

# ============================================================================ effects


@dataclass(frozen=True, slots=True)
class Play:
    """Play ``sounds`` in order (Asterisk sound names, no extension). ``interruptible``: a DTMF
    key stops it. Answer with :class:`Played`."""

    sounds: tuple[str, ...]
    interruptible: bool = False


@dataclass(frozen=True, slots=True)
class Read:
    """Play ``sounds`` (interruptible) then collect up to ``max_digits`` DTMF digits, ``timeout``
    seconds for the first and between digits, ended early by ``terminator`` (not returned). Answer
    with :class:`Digits` (``""`` when nothing came). The terminator may or may not be included."""

    sounds: tuple[str, ...]
    max_digits: int
    timeout: float
    terminator: str | None = None
    hash_is_input: bool = False  # "#" is a menu key here, not an end of input


@dataclass(frozen=True, slots=True)
class SetVariable:
    """Set a channel variable (no answer needed)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """Look the caller's number up in the customers table within ``timeout`` seconds. Answer with
    :class:`LookupDone` (a timeout or failure is an outcome, not an error)."""

    number: str
    timeout: float


@dataclass(frozen=True, slots=True)
class Log:
    """A call-log record to submit to the writer (no answer needed)."""

    record: LogRecord


class ExitKind(StrEnum):
    QUEUE = "queue"
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"
    HANGUP = "hangup"  # the IVR hangs up (after its message)
    ABANDONED = "abandoned"  # the caller hung up in the IVR


@dataclass(frozen=True, slots=True)
class Exit:
    """How the IVR part of the call ended and what it hands on.

    ``QUEUE``: ``queue``, ``skills`` (skill -> minimum level gathered by the IVR; the ACD adds
    the queue's own), ``priority`` (the call's own; the ACD adds the queue's), ``language``,
    ``data`` (caller data for the agent) and ``customer_tier``.
    ``VOICEMAIL``: ``mailbox``. ``CALLBACK``: ``queue`` and ``number`` to call back.
    ``HANGUP``: ``reason`` (``message``, ``loop``, ``too_many_inputs``).
    ``ABANDONED``: ``node`` where the caller left."""

    kind: ExitKind
    node: str
    flow: str
    language: str
    queue: str | None = None
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    data: Mapping[str, str] = field(default_factory=dict)
    customer_tier: str | None = None
    mailbox: str | None = None
    number: str | None = None
    reason: str | None = None
    disposition: Disposition | None = None  # set when the IVR ends the call itself


@dataclass(frozen=True, slots=True)
class Finish:
    """The IVR is over: carry out ``exit`` (hand to the ACD, voicemail, hang up ...)."""

    exit: Exit


Effect = Play | Read | SetVariable | Lookup | Log | Finish

# Exits after which the call is over (who hung up).
_ENDS_CALL: Final[Mapping[ExitKind, str]] = {ExitKind.ABANDONED: "caller", ExitKind.HANGUP: "system"}

# ============================================================================ state


class Waiting(StrEnum):
    PLAY = "play"
    READ = "read"
    LOOKUP = "lookup"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the shell knows of a new call: our call id, the caller's number (as the channel gives
    it, and E.164 when it could be normalised), the number dialed."""

    call_id: str
    caller: str
    dialed: str
    caller_e164: str | None = None


@dataclass(frozen=True, slots=True)
class IvrState:
    """Where one call is in its flows (immutable; every step returns a new one)."""

    call: CallInfo
    flow: str
    node: str
    language: str
    waiting: Waiting
    skills: tuple[tuple[str, int], ...] = ()
    priority: int | None = None
    data: tuple[tuple[str, str], ...] = ()
    customer_tier: str | None = None
    attempts: int = 0  # failed attempts at the current input node
    auto_hops: int = 0  # nodes entered since the caller last gave input
    inputs: int = 0  # caller inputs so far
    visits: int = 0  # nodes entered so far
    after_hours: bool = False  # an hours node sent the call down its closed/holiday branch
    secret_keys: tuple[str, ...] = ()  # data keys holding Luhn-checked (card) digits: masked in the log
    typeahead: str = ""  # a key that cut an interruptible prompt short: the next menu's answer
    started_at: float = 0.0
    exit: Exit | None = None

    @property
    def done(self) -> bool:
        return self.waiting is Waiting.DONE


class IvrStateError(ValueError):
    """The shell fed an input the state was not waiting for (a programming error)."""


# ============================================================================ helpers


def clean_input(raw: str) -> tuple[str, bool]:
    """``(digits, valid)``: ``raw`` stripped of blanks; valid when every character is DTMF."""
    text = raw.strip()
    return text, all(ch in DTMF for ch in text)


def loggable(text: str) -> str:
    """Caller input made safe for a log line: control characters replaced, length capped."""
    head = "".join(ch if ch.isprintable() and ch.isascii() else "?" for ch in text[:MAX_LOGGED_INPUT])
    if len(text) > MAX_LOGGED_INPUT:
        return head + f"...(+{len(text) - MAX_LOGGED_INPUT})"
    return head


def mask(digits: str) -> str:
    """Collected digits as logged: only the last four show (account or card numbers)."""
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def valid_collected(node: CollectNode, digits: str) -> bool:
    """Whether collected ``digits`` (terminator removed) satisfy ``node``."""
    if not digits.isascii() or not digits.isdigit():
        return False
    if not node.min_digits <= len(digits) <= node.max_digits:
        return False
    if node.validation is Validation.LUHN:
        return len(digits) >= 2 and luhn_ok(digits)
    if node.validation is Validation.ACCOUNT:
        return digits[0] != "0"
    return True


def local_time(now: float, tz: ZoneInfo) -> datetime:
    """The wall-clock time in ``tz`` at UNIX instant ``now`` (DST from the tz database)."""
    return datetime.fromtimestamp(now, tz)


# ============================================================================ the interpreter


class Interpreter:
    """Runs the flows of one :class:`~callcenter.config.model.Config`. Stateless between calls
    (each call's position is its :class:`IvrState`); safe to share between tasks."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.center = config.center
        self.tz = ZoneInfo(config.center.timezone)
        self.sounds_dir = config.asterisk.sounds_dir

    # ------------------------------------------------------------------ public API
    def start(self, call: CallInfo, now: float, *, flow: str | None = None) -> tuple[IvrState, list[Effect]]:
        """Begin the IVR for ``call``: the flow of the dialed number (or ``flow``), in the
        number's language or the center's default. A number with no flow ends at once (hang-up,
        disposition ``failed``)."""
        number = self.config.number(call.dialed)
        flow_id = flow if flow is not None else (number.flow if number is not None else None)
        language = (number.language if number is not None else None) or self.center.default_language
        effects: list[Effect] = [
            Log(
                CallRecord(
                    call_id=call.call_id,
                    at=now,
                    direction=Direction.INBOUND,
                    did=call.dialed,
                    caller_number=call.caller_e164 or call.caller,
                    called_number=call.dialed,
                    started_at=now,
                    language=language,
                )
            ),
            Log(
                CallEvent(
                    call_id=call.call_id,
                    at=now,
                    kind=EventKind.CALL_START,
                    detail={"dialed": loggable(call.dialed), "flow": flow_id},
                )
            ),
        ]
        if flow_id is None or flow_id not in self.config.flows:
            state = IvrState(call, flow_id or "", "", language, Waiting.READ, started_at=now)
            exit_ = Exit(
                ExitKind.HANGUP,
                node="",
                flow=flow_id or "",
                language=language,
                reason="no_flow",
                disposition=Disposition.FAILED,
            )
            return self._finish(state, exit_, now, effects)
        f = self.config.flows[flow_id]
        state = IvrState(call, f.id, f.start, language, Waiting.READ, started_at=now)
        return self._enter(state, f.start, now, effects)

    def feed(self, state: IvrState, event: Input, now: float) -> tuple[IvrState, list[Effect]]:
        """Advance ``state`` by what happened (the answer to the last effect, or a hang-up)."""
        if state.done:
            raise IvrStateError(f"call {state.call.call_id}: IVR already finished")
        effects: list[Effect] = []
        if isinstance(event, HungUp):
            return self._abandon(state, now, effects)
        node = self._flow(state).node(state.node)
        if isinstance(event, Played):
            if state.waiting is not Waiting.PLAY:
                raise IvrStateError(f"Played while waiting for {state.waiting}")
            return self._after_play(state, node, now, effects, event.digit)
        if isinstance(event, Digits):
            if state.waiting is not Waiting.READ:
                raise IvrStateError(f"Digits while waiting for {state.waiting}")
            state = replace(state, inputs=state.inputs + 1, auto_hops=0)
            if state.inputs > MAX_INPUTS:
                self._log_node(effects, state, node, now, "too_many_inputs", input=event.digits)
                return self._finish(
                    state, self._hangup_exit(state, "too_many_inputs", Disposition.FAILED), now, effects
                )
            return self._on_digits(state, node, event.digits, now, effects)
        if state.waiting is not Waiting.LOOKUP or not isinstance(node, LookupNode):
            raise IvrStateError(f"LookupDone while waiting for {state.waiting}")
        return self._on_lookup(state, node, event, now, effects)

    # ------------------------------------------------------------------ plumbing
    def _flow(self, state: IvrState) -> Flow:
        return self.config.flows[state.flow]

    def sound(self, prompt_id: str, language: str) -> str:
        """The sound name of ``prompt_id`` in ``language`` (the center's default language when
        the catalog knows that prompt has no audio in ``language``)."""
        catalog = self.config.prompts
        lang = language
        if catalog.audio and not catalog.has_audio(prompt_id, language):
            default = self.center.default_language
            if catalog.has_audio(prompt_id, default):
                lang = default
        return posixpath.join(self.sounds_dir, prompt_sound(prompt_id, lang))

    def _sounds(self, state: IvrState, *prompt_ids: str | None) -> tuple[str, ...]:
        return tuple(self.sound(p, state.language) for p in prompt_ids if p)

    def _log_node(
        self,
        effects: list[Effect],
        state: IvrState,
        node: IVRNode,
        now: float,
        outcome: str,
        *,
        input: str | None = None,
        **extra: str | int | None,
    ) -> None:
        detail: dict[str, str | int | float | bool | None] = {
            "flow": state.flow,
            "type": type(node).__name__.removesuffix("Node").lower(),
            "outcome": outcome,
        }
        if input is not None:
            detail["input"] = loggable(input)
        if state.attempts:
            detail["attempt"] = state.attempts
        detail.update(extra)
        effects.append(
            Log(
                CallEvent(
                    call_id=state.call.call_id, at=now, kind=EventKind.IVR_NODE, node=node.id, detail=detail
                )
            )
        )

    def _enter(
        self, state: IvrState, node_id: str, now: float, effects: list[Effect]
    ) -> tuple[IvrState, list[Effect]]:
        """Enter ``node_id`` of the current flow and run automatic nodes until one needs the caller,
        a lookup, a prompt to finish, or the call ends."""
        while True:
            state = replace(
                state, node=node_id, attempts=0, visits=state.visits + 1, auto_hops=state.auto_hops + 1
            )
            node = self._flow(state).node(node_id)
            if state.auto_hops > MAX_AUTO_HOPS:
                self._log_node(effects, state, node, now, "loop")
                return self._finish(state, self._hangup_exit(state, "loop", Disposition.FAILED), now, effects)
            match node:
                case MenuNode() | LanguageNode():
                    if state.typeahead:  # the caller already answered over the previous prompt
                        key = state.typeahead
                        state = replace(state, typeahead="", waiting=Waiting.READ, inputs=state.inputs + 1)
                        return self._on_digits(state, node, key, now, effects)
                    effects.append(self._choice_read(state, node, node.prompt))
                    return replace(state, waiting=Waiting.READ), effects
                case CollectNode():
                    state = replace(state, typeahead="")
                    effects.append(self._collect_read(state, node, node.prompt))
                    return replace(state, waiting=Waiting.READ), effects
                case PromptNode():
                    effects.append(Play(self._sounds(state, *node.prompts), node.interruptible))
                    return replace(state, waiting=Waiting.PLAY), effects
                case HoursNode():
                    local = local_time(now, self.tz)
                    status = self.center.status_at(local)
                    if status is ScheduleStatus.OPEN:
                        target = node.open
                    elif status is ScheduleStatus.HOLIDAY and node.holiday is not None:
                        target = node.holiday
                    else:
                        target = node.closed
                    if status is not ScheduleStatus.OPEN:
                        state = replace(state, after_hours=True)
                    holiday = self.center.holiday_on(local.date())
                    named = {"holiday": holiday.name} if holiday is not None else {}
                    self._log_node(effects, state, node, now, str(status), next=target, **named)
                    node_id = target
                case SetNode():
                    state = self._apply_set(state, node, effects)
                    self._log_node(effects, state, node, now, "set", next=node.next)
                    node_id = node.next
                case LookupNode():
                    number = state.call.caller_e164
                    if number is None:
                        return self._on_lookup(
                            state, node, LookupDone(LookupOutcome.INVALID_NUMBER), now, effects
                        )
                    effects.append(Lookup(number, node.timeout))
                    return replace(state, waiting=Waiting.LOOKUP), effects
                case GotoFlowNode():
                    target_flow = self.config.flows[node.flow]
                    self._log_node(
                        effects, state, node, now, "goto", next=f"{target_flow.id}:{target_flow.start}"
                    )
                    state = replace(state, flow=target_flow.id)
                    node_id = target_flow.start
                case QueueNode() | VoicemailNode() | CallbackNode() | HangupNode():
                    if node.prompt:
                        effects.append(Play(self._sounds(state, node.prompt)))
                        return replace(state, waiting=Waiting.PLAY), effects
                    return self._terminal(state, node, now, effects)
                case _:  # a node type this interpreter does not know: never spin on it
                    raise IvrStateError(f"unknown node type {type(node).__name__}")

    def _choice_read(self, state: IvrState, node: MenuNode | LanguageNode, *prompts: str | None) -> Read:
        return Read(self._sounds(state, *prompts), 1, node.timeout, None, "#" in node.choices)

    def _collect_read(self, state: IvrState, node: CollectNode, *prompts: str | None) -> Read:
        return Read(self._sounds(state, *prompts), node.max_digits, node.timeout, node.terminator)

    def _apply_set(self, state: IvrState, node: SetNode, effects: list[Effect]) -> IvrState:
        skills = dict(state.skills)
        skills.update(node.skills)
        data = dict(state.data)
        data.update(node.data)
        state = replace(state, skills=tuple(skills.items()), data=tuple(data.items()))
        if node.priority is not None:
            state = replace(state, priority=node.priority)
        if node.language is not None and node.language != state.language:
            state = self._set_language(state, node.language, effects)
        return state

    def _set_language(self, state: IvrState, language: str, effects: list[Effect]) -> IvrState:
        effects.append(SetVariable("CHANNEL(language)", language))
        effects.append(SetVariable(names.VAR_LANGUAGE, language))
        return replace(state, language=language)

    def _after_play(
        self, state: IvrState, node: IVRNode, now: float, effects: list[Effect], digit: str | None = None
    ) -> tuple[IvrState, list[Effect]]:
        if isinstance(node, PromptNode):
            key = digit if digit and node.interruptible and digit in DTMF else ""
            if key:
                self._log_node(effects, state, node, now, "interrupted", input=key, next=node.next)
                state = replace(state, typeahead=key, auto_hops=0)
            else:
                self._log_node(effects, state, node, now, "played", next=node.next)
            return self._enter(state, node.next, now, effects)
        if isinstance(node, QueueNode | VoicemailNode | CallbackNode | HangupNode):
            return self._terminal(state, node, now, effects)
        raise IvrStateError(f"Played at a {type(node).__name__}")

    # ------------------------------------------------------------------ caller input
    def _on_digits(
        self, state: IvrState, node: IVRNode, raw: str, now: float, effects: list[Effect]
    ) -> tuple[IvrState, list[Effect]]:
        digits, is_dtmf = clean_input(raw)
        match node:
            case MenuNode():
                if is_dtmf and digits and digits == node.repeat_key:
                    self._log_node(effects, state, node, now, "repeat", input=digits)
                    effects.append(self._choice_read(state, node, node.prompt))
                    return state, effects
                if is_dtmf and digits in node.choices:
                    target = node.choices[digits]
                    self._log_node(effects, state, node, now, "choice", input=digits, next=target)
                    return self._enter(state, target, now, effects)
                timed_out = digits == ""
                outcome = "timeout" if timed_out else "invalid"
                state = replace(state, attempts=state.attempts + 1)
                if state.attempts >= node.max_attempts:
                    self._log_node(effects, state, node, now, outcome, input=raw, next=node.fallback)
                    return self._enter(state, node.fallback, now, effects)
                self._log_node(effects, state, node, now, outcome, input=raw)
                extra = node.timeout_prompt if timed_out else node.invalid_prompt
                effects.append(self._choice_read(state, node, extra, node.prompt))
                return state, effects
            case LanguageNode():
                if is_dtmf and digits in node.choices:
                    language = node.choices[digits]
                    self._log_node(effects, state, node, now, "choice", input=digits, language=language)
                    state = self._set_language(state, language, effects)
                    return self._enter(state, node.next, now, effects)
                outcome = "timeout" if digits == "" else "invalid"
                state = replace(state, attempts=state.attempts + 1)
                if state.attempts >= node.max_attempts:
                    self._log_node(effects, state, node, now, outcome, input=raw, next=node.next)
                    return self._enter(state, node.next, now, effects)
                self._log_node(effects, state, node, now, outcome, input=raw)
                effects.append(self._choice_read(state, node, node.prompt))
                return state, effects
            case CollectNode():
                if is_dtmf and node.terminator and digits.endswith(node.terminator):
                    digits = digits[: -len(node.terminator)]
                if is_dtmf and valid_collected(node, digits):
                    data = dict(state.data)
                    data[node.variable] = digits
                    state = replace(state, data=tuple(data.items()))
                    if node.validation is Validation.LUHN and node.variable not in state.secret_keys:
                        state = replace(state, secret_keys=(*state.secret_keys, node.variable))
                    self._log_node(effects, state, node, now, "collected", input=mask(digits), next=node.next)
                    return self._enter(state, node.next, now, effects)
                outcome = "timeout" if digits == "" else "invalid"
                shown = mask(digits) if is_dtmf else raw
                state = replace(state, attempts=state.attempts + 1)
                if state.attempts >= node.max_attempts:
                    self._log_node(effects, state, node, now, outcome, input=shown, next=node.fallback)
                    return self._enter(state, node.fallback, now, effects)
                self._log_node(effects, state, node, now, outcome, input=shown)
                effects.append(self._collect_read(state, node, node.invalid_prompt, node.prompt))
                return state, effects
            case _:
                raise IvrStateError(f"Digits at a {type(node).__name__}")

    def _on_lookup(
        self, state: IvrState, node: LookupNode, done: LookupDone, now: float, effects: list[Effect]
    ) -> tuple[IvrState, list[Effect]]:
        if done.outcome is LookupOutcome.FOUND:
            data = dict(state.data)
            for key, value in done.data.items():
                data[f"customer_{key}"] = value
            if done.tier is not None:
                data["customer_tier"] = done.tier
            state = replace(state, data=tuple(data.items()), customer_tier=done.tier)
            boost = node.tier_priority.get(done.tier) if done.tier is not None else None
            if boost is not None:
                state = replace(state, priority=max(boost, state.priority or 0))
            target = node.found
        else:
            target = node.not_found
        effects.append(
            Log(
                CallEvent(
                    call_id=state.call.call_id,
                    at=now,
                    kind=EventKind.LOOKUP,
                    node=node.id,
                    detail={"outcome": str(done.outcome), "tier": done.tier},
                )
            )
        )
        self._log_node(effects, state, node, now, str(done.outcome), next=target, tier=done.tier)
        return self._enter(state, target, now, effects)

    def _caller_id_trusted(self, call: CallInfo) -> bool:
        """True when the number called arrives on a trunk configured with ``trust_caller_id``."""
        number = self.config.number(call.dialed)
        trunk = self.config.trunks.get(number.trunk) if number is not None and number.trunk else None
        return trunk is not None and trunk.trust_caller_id

    # ------------------------------------------------------------------ endings
    def _terminal(
        self, state: IvrState, node: IVRNode, now: float, effects: list[Effect]
    ) -> tuple[IvrState, list[Effect]]:
        node_id, flow, language = node.id, state.flow, state.language
        data = dict(state.data)
        match node:
            case QueueNode():
                queue = self.config.queues[node.queue]
                # The call's own requirements: the ACD adds the queue's skills (higher level wins)
                # and the queue's priority (routing.QueuePolicy) itself.
                skills = dict(state.skills)
                priority = node.priority if node.priority is not None else (state.priority or 0)
                exit_ = Exit(
                    ExitKind.QUEUE,
                    queue=queue.id,
                    skills=skills,
                    priority=priority,
                    data=data,
                    customer_tier=state.customer_tier,
                    node=node_id,
                    flow=flow,
                    language=language,
                )
                self._log_node(effects, state, node, now, "queue", queue=queue.id, priority=priority)
            case VoicemailNode():
                disposition = Disposition.AFTER_HOURS if state.after_hours else Disposition.VOICEMAIL
                exit_ = Exit(
                    ExitKind.VOICEMAIL,
                    mailbox=node.mailbox,
                    data=data,
                    disposition=disposition,
                    node=node_id,
                    flow=flow,
                    language=language,
                )
                self._log_node(effects, state, node, now, "voicemail", mailbox=node.mailbox)
            case CallbackNode():
                # Digits the caller keyed in first; the caller ID only when its trunk is trusted
                # to assert it (a spoofed caller ID must not make the center ring a number).
                candidates = [data.get(node.number_variable) if node.number_variable else None]
                if self._caller_id_trusted(state.call):
                    candidates += [state.call.caller_e164, state.call.caller]
                given = next((n for n in candidates if n and _CALLBACK_NUMBER.fullmatch(n)), None)
                if given is None:  # nobody to call back (anonymous or untrusted caller, nothing collected)
                    self._log_node(effects, state, node, now, "no_callback_number")
                    exit_ = self._hangup_exit(state, "no_callback_number", Disposition.FAILED)
                    return self._finish(state, exit_, now, effects)
                verdict = dialout.decide(self.config, given, DialPurpose.CALLBACK)
                if not verdict.allowed:  # the caller waits in line instead
                    self._log_node(effects, state, node, now, "callback_refused", reason=verdict.reason)
                    detail = {"purpose": "callback", "reason": verdict.reason, "number": given}
                    effects.append(Log(CallEvent(state.call.call_id, now, dialout.EVENT_KIND, detail=detail)))
                    return self._terminal(state, QueueNode(id=node.id, queue=node.queue), now, effects)
                number = verdict.number
                exit_ = Exit(
                    ExitKind.CALLBACK,
                    queue=node.queue,
                    number=number,
                    data=data,
                    priority=state.priority or 0,
                    customer_tier=state.customer_tier,
                    disposition=Disposition.CALLBACK_REQUESTED,
                    node=node_id,
                    flow=flow,
                    language=language,
                )
                self._log_node(effects, state, node, now, "callback", queue=node.queue)
            case HangupNode():
                disposition = Disposition.AFTER_HOURS if state.after_hours else Disposition.FAILED
                exit_ = Exit(
                    ExitKind.HANGUP,
                    reason="message",
                    data=data,
                    disposition=disposition,
                    node=node_id,
                    flow=flow,
                    language=language,
                )
                self._log_node(effects, state, node, now, "hangup")
            case _:
                raise IvrStateError(f"{type(node).__name__} is not terminal")
        return self._finish(state, exit_, now, effects)

    def _hangup_exit(self, state: IvrState, reason: str, disposition: Disposition) -> Exit:
        return Exit(
            ExitKind.HANGUP,
            node=state.node,
            flow=state.flow,
            language=state.language,
            data=dict(state.data),
            reason=reason,
            disposition=disposition,
        )

    def _abandon(self, state: IvrState, now: float, effects: list[Effect]) -> tuple[IvrState, list[Effect]]:
        if state.node:
            node = self._flow(state).node(state.node)
            self._log_node(effects, state, node, now, "caller_hangup", waiting=str(state.waiting))
        exit_ = Exit(
            ExitKind.ABANDONED,
            node=state.node,
            flow=state.flow,
            language=state.language,
            data=dict(state.data),
            reason="caller_hangup",
            disposition=Disposition.ABANDONED_IVR,
        )
        return self._finish(state, exit_, now, effects)

    def _finish(
        self, state: IvrState, exit_: Exit, now: float, effects: list[Effect]
    ) -> tuple[IvrState, list[Effect]]:
        record = CallRecord(
            call_id=state.call.call_id,
            at=now,
            ivr_ended_at=now,
            language=exit_.language,
            disposition=exit_.disposition,
            ended_at=now if exit_.kind in _ENDS_CALL else None,
            hangup_by=_ENDS_CALL.get(exit_.kind),
            priority=exit_.priority if exit_.kind is ExitKind.QUEUE else None,
            data={k: mask(v) if k in state.secret_keys else v for k, v in exit_.data.items()} or None,
        )
        effects.append(Log(record))
        effects.append(Finish(exit_))
        return replace(state, waiting=Waiting.DONE, exit=exit_), effects
