"""Pure: the agent state machine, as one table of (state, event) -> handler.

``transition(state, event, now) -> (new_state, effects)``. Nothing here reads a clock or does I/O:
the ACD shell (``callcenter.acd.service``) feeds events in, carries effects out, and logs every
``StateChanged`` (each carries its reason and time).

States (``Status``)::

    logged_out --Login--------------------> available
    logged_out --Login(paused_reason=r)---> paused(r)        atomic "log in paused": never offered
    available  --Reserve(call)------------> reserved          the router chose this agent
    available  --Hold(attempt)------------> reserved (held)   the dialer holds it for one attempt
    reserved (held) --Reserve(attempt)----> reserved          the held attempt's person is offered
    reserved (held) --Release(attempt)----> available | pending pause/logout   the attempt failed
    reserved   --Ring(call)---------------> ringing           the agent leg is being originated
    reserved/ringing --Answer(call)-------> on_call
    reserved/ringing --NoAnswer(call)-----> not_ready | logged_out | available   (RONA policy)
    reserved/ringing --CancelOffer(call)--> available         caller abandoned / offer withdrawn
    on_call    --CallEnded(call, wrap)----> wrap_up (timed) | available
    wrap_up    --WrapUpEnd(now>=deadline)-> available
    wrap_up    --Dispose(call)------------> available         the disposition ends the wrap-up
    available/not_ready/paused/wrap_up --Pause(r)--> paused(r)
    paused/not_ready/wrap_up --Resume----> available
    any logged-in --Logout----------------> logged_out (deferred to the end of the call if on_call)

One agent serves many queues with ONE wrap-up: wrap-up is a state of the agent, started by the
call that ended (its queue's wrap-up seconds travel in ``CallEnded``); a pause or logout asked for
while the agent is busy (reserved, ringing, on call) is remembered (``pending``) and applied when
the work (call and wrap-up) is over, never lost and never skipping the wrap-up.

Dispositions (wrap-up codes): a call whose queue or campaign has codes ends with
``CallEnded(needs_disposition=True)``; the agent owes one (``disposition_due``) for that call
(``wrap_call_id``). ``Dispose`` gives it, during the call (``disposed_call``: nothing more is owed
when it ends), in wrap-up (which it ends), or late for the agent's last call. While one is owed the
agent cannot ``Resume`` out of wrap-up (``disposition_required``) and a ``Pause`` waits for it;
when the wrap-up times out, the agent logs out, or the queue has no wrap-up time, the table says
so with ``DispositionMissing`` (the shell stores the code ``none`` with that reason).

A held agent (``reason`` ``HELD``, ``call_id`` the dialer's attempt id) is out of the router like
any reserved agent, so no inbound call can take it; only the same attempt may then ``Reserve`` it,
and ``Release`` of an attempt it no longer holds is a no-op (outcomes and timers race).

Pairs absent from ``TABLE`` are refused with ``AgentStateError`` (stable ``code``). A wrap-up
timer that fires late or for an older wrap-up (``WrapUpEnd`` outside wrap-up, or before the
deadline) is a no-op: timers race with agents who resume early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from callcenter.errors import AgentStateError
from callcenter.reporting.records import Status as Status

#: States in which the agent is logged in but cannot take an offer.
BUSY = frozenset({Status.RESERVED, Status.RINGING, Status.ON_CALL})
#: States that count as "staffed" (logged in).
LOGGED_IN = frozenset(Status) - {Status.LOGGED_OUT}

Pending = Literal["pause", "logout"]


@dataclass(frozen=True, slots=True)
class AgentState:
    """One agent's state. ``reason`` says why it is in ``status`` (pause code, "rona", ...)."""

    agent_id: str
    status: Status = Status.LOGGED_OUT
    reason: str = "initial"
    since: float = 0.0
    call_id: str | None = None
    wrap_up_until: float | None = None
    pending: Pending | None = None
    pending_reason: str = ""
    missed: int = 0  # consecutive offers not answered (RONA count)
    calls_handled: int = 0
    wrap_call_id: str | None = None  # the agent's last call (the one it wraps up or wrapped up)
    wrap_queue: str | None = None  # that call's queue and campaign (whose codes apply)
    wrap_campaign: str | None = None
    disposition_due: bool = False  # a disposition is owed for ``wrap_call_id``
    disposed_call: str | None = None  # the call a disposition was given for during the call


# ------------------------------------------------------------------------------------ events
@dataclass(frozen=True, slots=True)
class Login:
    paused_reason: str | None = None  # log in already paused (atomic: never offered in between)
    reason: str = "login"


@dataclass(frozen=True, slots=True)
class Logout:
    reason: str = "logout"


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str  # a pause reason code from config (break, lunch, training, ...)


@dataclass(frozen=True, slots=True)
class Resume:
    reason: str = "resume"


@dataclass(frozen=True, slots=True)
class Reserve:
    call_id: str
    reason: str = "offered"


@dataclass(frozen=True, slots=True)
class Hold:
    """The dialer holds this agent for one attempt (progressive / preview) before it dials."""

    attempt_id: str
    reason: str = "held"


@dataclass(frozen=True, slots=True)
class Release:
    """The held attempt ended without a person for the agent (busy, no answer, machine...)."""

    attempt_id: str
    reason: str = "hold_released"


@dataclass(frozen=True, slots=True)
class Ring:
    call_id: str
    reason: str = "ringing"


@dataclass(frozen=True, slots=True)
class Answer:
    call_id: str
    reason: str = "answered"


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """The offer was not answered in time, or the phone was busy/unreachable (RONA)."""

    call_id: str
    cause: str = "rona"  # rona, busy, unavailable, failed
    max_missed: int = 1  # consecutive misses before ``action``
    action: Literal["not_ready", "pause", "logout"] = "not_ready"
    pause_reason: str | None = None  # for action "pause" (default: the cause)


@dataclass(frozen=True, slots=True)
class CancelOffer:
    call_id: str
    reason: str = "caller_abandoned"


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    wrap_up_seconds: float = 0.0  # from the queue of the call that ended
    reason: str = "hangup"
    queue: str | None = None  # the queue the agent took it from
    campaign: str | None = None  # its campaign (outbound)
    needs_disposition: bool = False  # its queue or campaign has wrap-up codes


@dataclass(frozen=True, slots=True)
class Dispose:
    """The agent gave the disposition of ``call_id`` (its current or last call)."""

    call_id: str
    reason: str = "disposition"


@dataclass(frozen=True, slots=True)
class WrapUpEnd:
    reason: str = "wrap_up_done"


Event = (
    Login
    | Logout
    | Pause
    | Resume
    | Reserve
    | Hold
    | Release
    | Dispose
    | Ring
    | Answer
    | NoAnswer
    | CancelOffer
    | CallEnded
    | WrapUpEnd
)
EVENT_TYPES: tuple[type[Event], ...] = (
    Login,
    Logout,
    Pause,
    Resume,
    Reserve,
    Hold,
    Release,
    Ring,
    Answer,
    NoAnswer,
    CancelOffer,
    CallEnded,
    WrapUpEnd,
    Dispose,
)

#: The ``reason`` of an agent the dialer holds for an attempt.
HELD = "held"


# ------------------------------------------------------------------------------------ effects
@dataclass(frozen=True, slots=True)
class StateChanged:
    """Log this (agent_states): every change with its reason and time."""

    agent_id: str
    old: Status
    new: Status
    reason: str
    at: float
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Deferred:
    """A pause/logout asked for while busy: remembered, applied after the call and wrap-up.
    ``request`` None means a pending request was withdrawn."""

    agent_id: str
    request: Pending | None
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class ScheduleWrapUpEnd:
    """Feed ``WrapUpEnd`` at ``at`` (the shell's timer)."""

    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class WithdrawOffer:
    """The agent left while an offer was out: hang up its leg and re-offer the call."""

    agent_id: str
    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DispositionMissing:
    """The wrap-up of ``call_id`` ended without the disposition it needed: ``reason`` is
    ``timed_out``, ``logged_out`` or ``no_wrap_up`` (the queue has no wrap-up time)."""

    agent_id: str
    call_id: str
    reason: str
    at: float
    queue: str | None = None
    campaign: str | None = None


Effect = StateChanged | Deferred | ScheduleWrapUpEnd | WithdrawOffer | DispositionMissing
Result = tuple[AgentState, list[Effect]]
Handler = Callable[[AgentState, Any, float], Result]


# ------------------------------------------------------------------------------------ helpers
def _move(
    s: AgentState,
    new: Status,
    reason: str,
    now: float,
    *,
    call_id: str | None = None,
    effects: list[Effect] | None = None,
    **changes: Any,
) -> Result:
    out: list[Effect] = list(effects or [])
    out.append(StateChanged(s.agent_id, s.status, new, reason, now, call_id if call_id else s.call_id))
    ns = replace(s, status=new, reason=reason, since=now, call_id=call_id, **changes)
    return ns, out


def _refuse(s: AgentState, ev: Event, code: str, why: str) -> AgentStateError:
    return AgentStateError(
        f"agent {s.agent_id}: {type(ev).__name__} refused in {s.status.value}: {why}",
        agent_id=s.agent_id,
        state=s.status.value,
        event=type(ev).__name__,
        code=code,
    )


def _same_call(s: AgentState, ev: Event, call_id: str) -> None:
    if s.call_id != call_id:
        raise _refuse(s, ev, "wrong_call", f"agent holds call {s.call_id!r}, event names {call_id!r}")


def _settle(s: AgentState, reason: str, now: float, effects: list[Effect] | None = None, **ch: Any) -> Result:
    """Work is over: apply a pending pause/logout, else become available."""
    if s.pending == "logout":
        return _move(
            s,
            Status.LOGGED_OUT,
            s.pending_reason,
            now,
            effects=effects,
            pending=None,
            pending_reason="",
            **ch,
        )
    if s.pending == "pause":
        return _move(
            s, Status.PAUSED, s.pending_reason, now, effects=effects, pending=None, pending_reason="", **ch
        )
    return _move(s, Status.AVAILABLE, reason, now, effects=effects, **ch)


# ------------------------------------------------------------------------------------ handlers
def _login(s: AgentState, ev: Login, now: float) -> Result:
    base: dict[str, Any] = {"wrap_up_until": None, "pending": None, "pending_reason": "", "missed": 0}
    if ev.paused_reason:
        return _move(s, Status.PAUSED, ev.paused_reason, now, **base)
    return _move(s, Status.AVAILABLE, ev.reason, now, **base)


def _already_in(s: AgentState, ev: Event, now: float) -> Result:
    raise _refuse(s, ev, "already_logged_in", "the agent is logged in")


def _missing(s: AgentState, reason: str, now: float) -> list[Effect]:
    """The disposition owed for the last call, reported missing (nothing if none is owed)."""
    if not s.disposition_due or s.wrap_call_id is None:
        return []
    return [DispositionMissing(s.agent_id, s.wrap_call_id, reason, now, s.wrap_queue, s.wrap_campaign)]


def _logout_now(s: AgentState, ev: Logout, now: float) -> Result:
    missing = _missing(s, "logged_out", now) if s.status is Status.WRAP_UP else []
    return _move(
        s,
        Status.LOGGED_OUT,
        ev.reason,
        now,
        effects=missing,
        wrap_up_until=None,
        pending=None,
        pending_reason="",
        disposition_due=s.disposition_due and not missing,
    )


def _logout_offer(s: AgentState, ev: Logout, now: float) -> Result:
    withdraw = WithdrawOffer(s.agent_id, s.call_id or "", ev.reason)
    return _move(s, Status.LOGGED_OUT, ev.reason, now, effects=[withdraw], pending=None, pending_reason="")


def _defer(s: AgentState, ev: Pause | Logout, now: float) -> Result:
    what: Pending = "pause" if isinstance(ev, Pause) else "logout"
    if s.pending == "logout" and what == "pause":
        raise _refuse(s, ev, "logout_pending", "a logout is already pending")
    return replace(s, pending=what, pending_reason=ev.reason), [Deferred(s.agent_id, what, ev.reason, now)]


def _pause(s: AgentState, ev: Pause, now: float) -> Result:
    if not ev.reason:
        raise _refuse(s, ev, "pause_reason_required", "a pause needs a reason code")
    if s.status is Status.WRAP_UP and s.disposition_due:
        return _defer(s, ev, now)  # the pause starts once the disposition is given (or missed)
    return _move(s, Status.PAUSED, ev.reason, now, wrap_up_until=None)


def _pause_busy(s: AgentState, ev: Pause, now: float) -> Result:
    if not ev.reason:
        raise _refuse(s, ev, "pause_reason_required", "a pause needs a reason code")
    return _defer(s, ev, now)


def _resume(s: AgentState, ev: Resume, now: float) -> Result:
    if s.status is Status.WRAP_UP and s.disposition_due:
        if s.pending is not None:  # withdraw the pause waiting for the disposition
            return replace(s, pending=None, pending_reason=""), [Deferred(s.agent_id, None, ev.reason, now)]
        raise _refuse(s, ev, "disposition_required", f"call {s.wrap_call_id} needs a disposition first")
    return _move(s, Status.AVAILABLE, ev.reason, now, wrap_up_until=None, missed=0)


def _resume_busy(s: AgentState, ev: Resume, now: float) -> Result:
    if s.pending is None:
        raise _refuse(s, ev, "not_paused", "nothing to resume from")
    return replace(s, pending=None, pending_reason=""), [Deferred(s.agent_id, None, ev.reason, now)]


def _not_paused(s: AgentState, ev: Event, now: float) -> Result:
    raise _refuse(s, ev, "not_paused", "nothing to resume from")


def _reserve(s: AgentState, ev: Reserve, now: float) -> Result:
    return _move(s, Status.RESERVED, ev.reason, now, call_id=ev.call_id)


def _hold(s: AgentState, ev: Hold, now: float) -> Result:
    return _move(s, Status.RESERVED, HELD, now, call_id=ev.attempt_id)


def held(s: AgentState) -> str | None:
    """The attempt id the dialer holds this agent for, if it does."""
    return s.call_id if s.status is Status.RESERVED and s.reason == HELD else None


def _take_held(s: AgentState, ev: Reserve, now: float) -> Result:
    if held(s) != ev.call_id:
        raise _refuse(s, ev, "not_available", "only an available agent can be offered a call")
    return _move(s, Status.RESERVED, ev.reason, now, call_id=ev.call_id)


def _release(s: AgentState, ev: Release, now: float) -> Result:
    if held(s) != ev.attempt_id:
        return s, []  # no longer held for that attempt: nothing to give back
    return _settle(s, ev.reason, now)


def _ring(s: AgentState, ev: Ring, now: float) -> Result:
    _same_call(s, ev, ev.call_id)
    return _move(s, Status.RINGING, ev.reason, now, call_id=ev.call_id)


def _answer(s: AgentState, ev: Answer, now: float) -> Result:
    _same_call(s, ev, ev.call_id)
    return _move(s, Status.ON_CALL, ev.reason, now, call_id=ev.call_id, missed=0)


def _no_answer(s: AgentState, ev: NoAnswer, now: float) -> Result:
    _same_call(s, ev, ev.call_id)
    missed = s.missed + 1
    if s.pending is not None:
        return _settle(s, ev.cause, now, missed=missed)
    if missed >= max(1, ev.max_missed):
        if ev.action == "logout":
            return _move(s, Status.LOGGED_OUT, ev.cause, now, missed=0)
        if ev.action == "pause":
            return _move(s, Status.PAUSED, ev.pause_reason or ev.cause, now, missed=missed)
        return _move(s, Status.NOT_READY, ev.cause, now, missed=missed)
    return _move(s, Status.AVAILABLE, ev.cause, now, missed=missed)


def _cancel_offer(s: AgentState, ev: CancelOffer, now: float) -> Result:
    _same_call(s, ev, ev.call_id)
    return _settle(s, ev.reason, now)


def _call_ended(s: AgentState, ev: CallEnded, now: float) -> Result:
    _same_call(s, ev, ev.call_id)
    handled = s.calls_handled + 1
    last: dict[str, Any] = {
        "calls_handled": handled,
        "wrap_call_id": ev.call_id,
        "wrap_queue": ev.queue,
        "wrap_campaign": ev.campaign,
        "disposition_due": ev.needs_disposition and s.disposed_call != ev.call_id,
        "disposed_call": None,
    }
    if ev.wrap_up_seconds > 0:
        until = now + ev.wrap_up_seconds
        ns, eff = _move(s, Status.WRAP_UP, ev.reason, now, wrap_up_until=until, **last)
        eff.append(ScheduleWrapUpEnd(s.agent_id, until))
        return ns, eff
    ended = replace(s, **last)
    missing = _missing(ended, "no_wrap_up", now)
    return _settle(ended, ev.reason, now, missing, disposition_due=False)


def _wrap_up_end(s: AgentState, ev: WrapUpEnd, now: float) -> Result:
    if s.wrap_up_until is not None and now < s.wrap_up_until:
        return s, []  # an older wrap-up's timer
    missing = _missing(s, "timed_out", now)
    return _settle(s, ev.reason, now, missing, wrap_up_until=None, disposition_due=False)


def _dispose_on_call(s: AgentState, ev: Dispose, now: float) -> Result:
    _same_call(s, ev, ev.call_id)
    return replace(s, disposed_call=ev.call_id), []


def _dispose_wrap_up(s: AgentState, ev: Dispose, now: float) -> Result:
    if ev.call_id != s.wrap_call_id:
        raise _refuse(s, ev, "wrong_call", f"the agent wraps up call {s.wrap_call_id!r}, not {ev.call_id!r}")
    return _settle(s, ev.reason, now, wrap_up_until=None, disposition_due=False)


def _dispose_late(s: AgentState, ev: Dispose, now: float) -> Result:
    """A disposition for the last call after its wrap-up ended (it replaces a missing one)."""
    if ev.call_id != s.wrap_call_id:
        raise _refuse(s, ev, "wrong_call", f"call {ev.call_id!r} is not the agent's current or last call")
    return replace(s, disposition_due=False), []


def _stale_timer(s: AgentState, ev: Event, now: float) -> Result:
    return s, []


def _not_logged_in(s: AgentState, ev: Event, now: float) -> Result:
    raise _refuse(s, ev, "not_logged_in", "the agent is logged out")


def _not_offered(s: AgentState, ev: Event, now: float) -> Result:
    raise _refuse(s, ev, "no_offer", "no call is being offered to this agent")


def _not_routable(s: AgentState, ev: Event, now: float) -> Result:
    raise _refuse(s, ev, "not_available", "only an available agent can be offered a call")


def _not_on_call(s: AgentState, ev: Event, now: float) -> Result:
    raise _refuse(s, ev, "not_on_call", "the agent is not on a call")


S = Status
_IDLE_LIKE = (S.AVAILABLE, S.PAUSED, S.NOT_READY)

#: The whole machine. A missing pair is refused with ``AgentStateError``.
TABLE: dict[tuple[Status, type[Event]], Handler] = {
    # logging in and out
    (S.LOGGED_OUT, Login): _login,
    **{(st, Login): _already_in for st in LOGGED_IN},
    **{(st, Logout): _logout_now for st in (*_IDLE_LIKE, S.WRAP_UP)},
    (S.RESERVED, Logout): _logout_offer,
    (S.RINGING, Logout): _logout_offer,
    (S.ON_CALL, Logout): _defer,
    (S.LOGGED_OUT, Logout): _not_logged_in,
    # pausing
    **{(st, Pause): _pause for st in (*_IDLE_LIKE, S.WRAP_UP)},
    **{(st, Pause): _pause_busy for st in BUSY},
    (S.LOGGED_OUT, Pause): _not_logged_in,
    (S.PAUSED, Resume): _resume,
    (S.NOT_READY, Resume): _resume,
    (S.WRAP_UP, Resume): _resume,
    **{(st, Resume): _resume_busy for st in BUSY},
    (S.AVAILABLE, Resume): _not_paused,
    (S.LOGGED_OUT, Resume): _not_logged_in,
    # the life of an offer
    (S.AVAILABLE, Reserve): _reserve,
    (S.RESERVED, Reserve): _take_held,
    **{(st, Reserve): _not_routable for st in Status if st not in (S.AVAILABLE, S.RESERVED)},
    (S.AVAILABLE, Hold): _hold,
    **{(st, Hold): _not_routable for st in Status if st is not S.AVAILABLE},
    (S.RESERVED, Release): _release,
    **{(st, Release): _stale_timer for st in Status if st is not S.RESERVED},
    (S.RESERVED, Ring): _ring,
    **{(st, Ring): _not_offered for st in Status if st is not S.RESERVED},
    (S.RESERVED, Answer): _answer,
    (S.RINGING, Answer): _answer,
    **{(st, Answer): _not_offered for st in Status if st not in (S.RESERVED, S.RINGING)},
    (S.RESERVED, NoAnswer): _no_answer,
    (S.RINGING, NoAnswer): _no_answer,
    **{(st, NoAnswer): _not_offered for st in Status if st not in (S.RESERVED, S.RINGING)},
    (S.RESERVED, CancelOffer): _cancel_offer,
    (S.RINGING, CancelOffer): _cancel_offer,
    **{(st, CancelOffer): _not_offered for st in Status if st not in (S.RESERVED, S.RINGING)},
    # the end of a call
    (S.ON_CALL, CallEnded): _call_ended,
    **{(st, CallEnded): _not_on_call for st in Status if st is not S.ON_CALL},
    (S.WRAP_UP, WrapUpEnd): _wrap_up_end,
    **{(st, WrapUpEnd): _stale_timer for st in Status if st is not S.WRAP_UP},
    # dispositions
    (S.ON_CALL, Dispose): _dispose_on_call,
    (S.WRAP_UP, Dispose): _dispose_wrap_up,
    **{(st, Dispose): _dispose_late for st in Status if st not in (S.ON_CALL, S.WRAP_UP)},
}


def transition(state: AgentState, event: Event, now: float) -> Result:
    """Apply ``event`` at ``now``: the new state and the effects to carry out.

    Raises ``AgentStateError`` (with a stable ``code``) for a pair the table refuses."""
    handler = TABLE.get((state.status, type(event)))
    if handler is None:  # pragma: no cover - the table is total, the tests check it
        raise _refuse(state, event, "invalid_transition", "no such transition")
    return handler(state, event, now)
