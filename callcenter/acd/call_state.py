"""Pure: the queued call's life, as two tables: the call's (status x event) and its agent legs'.

``transition(call, event, now, setup) -> (call, effects)``; ``enqueue`` starts a call. Nothing
here reads a clock, does I/O or touches asyncio: the ACD shell (``callcenter.acd.service``) turns
AMI events, API calls, router decisions and due timers into these events, keeps one ``Call`` per
queued call, and carries the effects out (AMI actions, call-log records, the agent table's events,
the router's requeues, timers).

The call (``CallStatus``; what ``ACD.call_state`` shows in brackets)::

    enqueue -----------------------------------> waiting      logged; hold variables (+ Redirect)
    waiting ----HoldReady----------------------> waiting      announce timer; into the router's line
    waiting ----Offered(agent)-----------------> offered      agent reserved and rung: Originate,
                                                              ring guard (ring timeout + guard)
    waiting ----Offered(agent, ring=group)-----> ringing_all  ("offered") one leg per agent; each
    ringing_all-Offered(next of the group)-----> ringing_all  waits in cc-hold once answered
    offered ----leg answered-------------------> connected    the leg Bridge()s the caller
    ringing_all-first leg answered-------------> connected    it is redirected to its context, the
                                                              other legs hung up (no RONA)
    offered ----leg failed / rang out----------> waiting      RONA: the agent per the queue's rule,
                                                              the call requeued without that agent
    ringing_all-last ringing leg failed--------> waiting      requeued without the whole group
    offered ----OfferWithdrawn(agent left)-----> waiting      (ringing_all: that agent's leg only)
    waiting|offered|ringing_all --CallerHungUp-> closed       abandoned; a callback keeps its place
                                                              instead (waiting, caller gone)
    waiting ----Expired------------------------> closed       voicemail or hang-up per the queue
    waiting ----Overflowed / TimerDue(announce)> waiting      another queue / position + EWT played
    connected --CallerHangupRequested----------> connected    the caller's side hung up: its end,
                                                              whichever Hangup is reported first
    connected --its leg hung up----------------> ended        ("ended") agent wraps up, caller up
    connected --callback leg hung up-----------> retry|closed customer not reached: tried again
    retry ------TimerDue(callback_retry)-------> waiting      same place in line
    connected --TransferToQueue----------------> waiting      the agent's leg ends on its own
    connected --TransferToNumber---------------> transferred  (both refused for a callback whose
                                                              caller left: no channel to move)
    connected --AttendedTransfer---------------> connected    Atxfer on the agent's leg
    connected --HoldRequested------------------> connected    (held) one Redirect: the caller to
                                                              cc-held (music), the leg to
                                                              cc-held-agent (silence)
    connected --UnholdRequested----------------> connected    the leg back to cc-agent-leg:
                                                              Bridge() the caller again
                                                              (held: transfers and on-demand
                                                              recording refused; either side
                                                              hanging up hangs up the other)
    connected|ended|transferred --CallerHungUp-> closed       (None) the ACD forgets the call

An agent leg (``LegStatus``)::

    ringing --answered--> answered --hung up--> (gone)
    ringing --failed (RONA) | cancelled (abandon, lost the ring-all race, agent left)--> ... (gone)

Legs live inside their call's record, past the call's own end (an agent still talking after the
caller hung up, the leg a blind transfer left behind); a gone leg leaves the record, and a closed
call with no leg left is dropped by the shell. A settled leg whose channel shows up later is hung
up. The ring guard reaps a settled leg that never became a channel.

After a controller restart, ``survey`` sorts the channels the PBX still has (callers, agents on
a call, legs nobody follows any more: hung up) and ``restore_waiting`` / ``restore_connected``
make the records again.

Every pair is in a table. A pair that cannot happen in a consistent ACD raises ``DomainError``
(``code``); a late or stale event (a timer of an older wait, an answer after the caller left)
returns the call unchanged with an ``Ignored`` effect saying why. Timers are started and cancelled
by (kind, key): a call's announce timer runs while it is in line, its callback timer while it
waits to be retried, a leg's ring guard while it rings (or, settled, has no channel yet).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Literal, TypeVar

from callcenter.acd import agents as ag
from callcenter.acd import routing as rt
from callcenter.asterisk import names
from callcenter.config import model as cm
from callcenter.errors import DomainError, RoutingError
from callcenter.ports import QueuedCall
from callcenter.reporting.records import (
    CallEvent,
    CallRecord,
    Direction,
    Disposition,
    EventKind,
    LegRecord,
    LogRecord,
    dead_leg,
    ended_by,
)


class CallStatus(Enum):
    WAITING = "waiting"
    OFFERED = "offered"
    RINGING_ALL = "ringing_all"
    CONNECTED = "connected"
    CALLBACK_PENDING = "retry"
    TRANSFERRED = "transferred"
    ENDED = "ended"
    CLOSED = "closed"


#: What ``ACD.call_state`` reports (a ring-all offer is an offer; a closed call is unknown).
PUBLIC: Mapping[CallStatus, str | None] = {
    CallStatus.WAITING: "waiting",
    CallStatus.OFFERED: "offered",
    CallStatus.RINGING_ALL: "offered",
    CallStatus.CONNECTED: "connected",
    CallStatus.CALLBACK_PENDING: "retry",
    CallStatus.TRANSFERRED: "transferred",
    CallStatus.ENDED: "ended",
    CallStatus.CLOSED: None,
}
#: In the router's hands: waiting in line or offered.
IN_LINE = frozenset({CallStatus.WAITING, CallStatus.OFFERED, CallStatus.RINGING_ALL})


class LegStatus(Enum):
    RINGING = "ringing"  # originated, not answered yet
    ANSWERED = "answered"
    FAILED = "failed"  # RONA: not answered, busy, unreachable
    CANCELLED = "cancelled"  # caller left, another agent answered first, the agent left


class TimerKind(StrEnum):
    ANNOUNCE = "announce"  # key: call id
    CALLBACK_RETRY = "callback_retry"  # key: call id
    RING_GUARD = "ring_guard"  # key: leg id
    WRAP_UP = "wrapup"  # key: agent id (the agent table's timer, run by the same shell)
    PAUSE_LIMIT = "pause_limit"  # key: agent id: a pause reason's max_minutes


class RecordingPlan(Enum):
    NONE = "none"
    OWN = "own"  # the leg records into a file planned for it
    GROUP = "group"  # one file planned for a ring-all group: only its winner records


Stat = Literal["offers", "answered", "rona", "abandoned", "transfers"]


# ------------------------------------------------------------------------------------ records
@dataclass(frozen=True, slots=True)
class Leg:
    """One agent leg (an Originate whose ``ChannelId`` the ACD chose)."""

    leg_id: str
    call_id: str
    agent_id: str
    queue: str
    status: LegStatus = LegStatus.RINGING
    channel: str | None = None  # learnt from Newchannel / OriginateResponse
    answered_at: float | None = None
    ring: bool = False  # one leg of a ring-all group (waits in cc-hold until chosen)

    @property
    def settled(self) -> bool:
        """The agent table knows how this leg ended (it failed or was cancelled)."""
        return self.status in (LegStatus.FAILED, LegStatus.CANCELLED)

    @property
    def live(self) -> bool:
        """Its agent is held by it (reserved, ringing or on the call)."""
        return self.status in (LegStatus.RINGING, LegStatus.ANSWERED)


@dataclass(frozen=True, slots=True)
class Call:
    """One queued call: where it is in its life, its current agent and leg, its legs."""

    info: QueuedCall
    queue: str  # its queue now (overflow and transfers move it)
    status: CallStatus = CallStatus.WAITING
    queued_at: float = 0.0
    agent_id: str | None = None  # the agent offered (one-agent offer) or connected
    leg_id: str | None = None  # that agent's leg
    answered_at: float | None = None
    next_announce: float | None = None
    bridged: frozenset[str] = frozenset()  # channels seen entering its bridge
    callback_number: str | None = None
    callback_reached: bool = False
    callback_attempts: int = 0
    caller_gone: bool = False  # a callback caller hung up on purpose: no channel to follow
    caller_leaving: bool = False  # the caller's far end hung up while connected (HangupRequest)
    transfers: int = 0
    hold_seconds: float = 0.0  # caller on hold (music) while connected, holds already over
    hold_started: float | None = None  # the hold going on now, since then
    hold_base: float = 0.0  # hold before its current agent (a transfer): not this agent's talk
    held: bool = False  # put on hold from the desktop: caller in cc-held, its leg in cc-held-agent
    ring: tuple[str, ...] = ()  # ring-all legs still ringing
    ring_missed: frozenset[str] = frozenset()  # agents of the ring-all group whose leg failed
    legs: tuple[Leg, ...] = field(default=())

    @property
    def call_id(self) -> str:
        return self.info.call_id

    @property
    def public(self) -> str | None:
        return PUBLIC[self.status]

    def leg(self, leg_id: str | None) -> Leg | None:
        for leg in self.legs:
            if leg.leg_id == leg_id:
                return leg
        return None


@dataclass(frozen=True, slots=True)
class Setup:
    """What the table needs of the configuration."""

    queues: Mapping[str, cm.Queue]
    ring_guard: float = 10.0  # past the ring timeout, a leg with no outcome counts as not answered
    callback_retry_delay: float = 300.0
    callback_max_attempts: int = 3
    recorder: bool = False  # a recorder is configured (queues that record always plan a file)

    def queue(self, queue_id: str) -> cm.Queue:
        """The queue's rules; a queue removed by a reload keeps its calls under default rules."""
        return self.queues.get(queue_id) or cm.Queue(queue_id, queue_id, {})


# ------------------------------------------------------------------------------------ events
@dataclass(frozen=True, slots=True)
class HoldReady:
    """The caller holds in ``cc-hold``: it joins the line (``arrived_at`` keeps an earlier place)."""

    priority: int = 0
    arrived_at: float | None = None


@dataclass(frozen=True, slots=True)
class Offered:
    """The router chose ``agent_id``; ``leg_id`` is the ChannelId the shell picked for its leg."""

    agent_id: str
    leg_id: str
    ring: tuple[str, ...] = ()  # the whole ring-all group, empty for a one-agent offer


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    cause: int | None = None


@dataclass(frozen=True, slots=True)
class CallerHangupRequested:
    """The caller's far end hung up (its BYE: AMI ``HangupRequest`` on the caller's channel). The
    call's two Hangups follow in either order; this says the caller ended it."""


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Taken back before an agent has it (the dialer could not connect in time): as a hang-up."""


@dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    """The agent the call was offered to logged out (the agent table's ``WithdrawOffer``)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class Expired:
    """The router's max wait with no overflow queue: voicemail or hang-up per ``queue``."""

    queue: str


@dataclass(frozen=True, slots=True)
class Overflowed:
    from_queue: str
    to_queue: str


@dataclass(frozen=True, slots=True)
class AcceptCallback:
    number: str


@dataclass(frozen=True, slots=True)
class CallbackDeferred:
    """A callback's turn came while its calling window is closed: it leaves the line (keeping
    its place) until ``until``."""

    until: float


@dataclass(frozen=True, slots=True)
class TransferToQueue:
    queue: str


@dataclass(frozen=True, slots=True)
class TransferToNumber:
    number: str


@dataclass(frozen=True, slots=True)
class AttendedTransfer:
    target: str


@dataclass(frozen=True, slots=True)
class TimerDue:
    """A call timer (``ANNOUNCE``, ``CALLBACK_RETRY``) fired."""

    kind: TimerKind


@dataclass(frozen=True, slots=True)
class BridgeEntered:
    channel: str


@dataclass(frozen=True, slots=True)
class CallerHeld:
    """Music on hold started on the caller's channel (``MusicOnHoldStart``): while connected,
    the agent put the caller on hold."""


@dataclass(frozen=True, slots=True)
class CallerUnheld:
    """Music on hold stopped on the caller's channel (``MusicOnHoldStop``)."""


@dataclass(frozen=True, slots=True)
class HoldRequested:
    """The agent (or a supervisor) puts the connected caller on hold from the desktop. The hold's
    time is measured from the music it starts (``CallerHeld``), as a phone's hold key is."""

    by: str = ""


@dataclass(frozen=True, slots=True)
class UnholdRequested:
    """Take the caller off that hold: the agent's leg bridges it again."""

    by: str = ""


# Leg events name the leg.
@dataclass(frozen=True, slots=True)
class LegChannel:
    """Newchannel: the leg's channel name."""

    leg_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class LegAnswered:
    """OriginateResponse Success (``channel`` if the response named it)."""

    leg_id: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class LegFailed:
    """Not answered: OriginateResponse Failure, or the Originate action itself failed."""

    leg_id: str
    cause: str = "rona"  # rona, busy, unavailable, congestion, hangup, failed, timeout
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class LegHungUp:
    leg_id: str
    cause: int | None = None  # Q.850


@dataclass(frozen=True, slots=True)
class RingGuardDue:
    leg_id: str


@dataclass(frozen=True, slots=True)
class DialEnded:
    """The leg's Dial() to a callback's customer ended (``status``: ANSWER, NOANSWER, BUSY...)."""

    leg_id: str
    status: str


CallEventType = (
    HoldReady
    | Offered
    | CallerHungUp
    | CallerHangupRequested
    | Withdraw
    | OfferWithdrawn
    | Expired
    | Overflowed
    | AcceptCallback
    | TransferToQueue
    | TransferToNumber
    | AttendedTransfer
    | TimerDue
    | BridgeEntered
    | CallerHeld
    | CallerUnheld
    | HoldRequested
    | UnholdRequested
    | CallbackDeferred
)
LegEventType = LegChannel | LegAnswered | LegFailed | LegHungUp | RingGuardDue | DialEnded
Event = CallEventType | LegEventType
CALL_EVENTS: tuple[type[CallEventType], ...] = (
    CallbackDeferred,
    CallerHeld,
    CallerUnheld,
    HoldReady,
    Offered,
    CallerHungUp,
    CallerHangupRequested,
    Withdraw,
    OfferWithdrawn,
    Expired,
    Overflowed,
    AcceptCallback,
    TransferToQueue,
    TransferToNumber,
    AttendedTransfer,
    TimerDue,
    BridgeEntered,
    HoldRequested,
    UnholdRequested,
)
LEG_EVENTS: tuple[type[LegEventType], ...] = (
    LegChannel,
    LegAnswered,
    LegFailed,
    LegHungUp,
    RingGuardDue,
    DialEnded,
)


# ------------------------------------------------------------------------------------ effects
@dataclass(frozen=True, slots=True)
class Log:
    record: LogRecord


@dataclass(frozen=True, slots=True)
class Count:
    stat: Stat


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """Feed ``event`` to the agent table; ``strict``: a refusal is an error, else it is ignored
    (the agent moved on by itself: logged out, already freed)."""

    agent_id: str
    event: ag.Event
    strict: bool = False


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Fire ``kind`` for ``key`` at ``at``, replacing one of the same kind and key."""

    kind: TimerKind
    key: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    kind: TimerKind
    key: str


@dataclass(frozen=True, slots=True)
class RouterEnqueue:
    """Into the router's line; ``callback``: mark it a callback if it waits; ``agent``: the agent
    the dialer held for this call, offered it directly while it is still held for it."""

    request: rt.CallRequest
    arrived_at: float | None = None
    callback: bool = False
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """Back to its place in the router's line, never to be offered to ``exclude`` again."""

    call_id: str
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unroute:
    """Out of the router (answered, gone)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class MarkCallback:
    call_id: str


@dataclass(frozen=True, slots=True)
class CallbackProgress:
    """Keep a callback's state where it outlives the controller: ``pending`` (not before
    ``next_at``), ``done`` or ``failed``, after ``attempts`` calls."""

    call_id: str
    state: str
    attempts: int
    next_at: float | None = None


@dataclass(frozen=True, slots=True)
class RecordHandled:
    """A call of ``queue`` was handled by ``agent_id`` (EWT, least_calls, least_talk_time)."""

    queue: str
    agent_id: str
    handle_seconds: float
    talk_seconds: float


@dataclass(frozen=True, slots=True)
class Originate:
    """Ring the agent: ``ChannelId`` = ``leg_id``, into ``context`` (cc-hold for a ring-all leg)."""

    leg_id: str
    call_id: str
    agent_id: str
    queue: str
    caller_channel: str
    caller_number: str | None
    context: str
    callback_number: str | None = None
    recording: RecordingPlan = RecordingPlan.NONE


@dataclass(frozen=True, slots=True)
class Hangup:
    channel: str


@dataclass(frozen=True, slots=True)
class SetVariables:
    channel: str
    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Redirect:
    """Set ``variables`` on ``channel`` then send it to ``context``,s,1 (one action after another)."""

    channel: str
    context: str
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RedirectLeg:
    """Send the ring-all winner's leg to ``context`` if, when the action goes out, it is still
    the call's leg and up (its channel known)."""

    call_id: str
    leg_id: str
    context: str


@dataclass(frozen=True, slots=True)
class HoldLegs:
    """One Redirect moving both at once: the caller to cc-held (``music_class``), the agent's
    leg out of their bridge to cc-held-agent (a Bridge() ended by one Redirect alone would hang
    the other side up)."""

    caller_channel: str
    leg_channel: str
    music_class: str


@dataclass(frozen=True, slots=True)
class Atxfer:
    """Attended transfer from the agent's leg ``channel`` to ``target`` (cc-transfer)."""

    channel: str
    target: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Play position and EWT to the holding caller if it still waits when the actions go out."""

    call_id: str


@dataclass(frozen=True, slots=True)
class BridgeFormed:
    """Caller and agent bridged: index the recording planned at Originate, or start one if the
    queue records always (while ``leg_id`` is still the call's leg)."""

    call_id: str
    leg_id: str | None
    channel: str
    queue: str
    agent_id: str | None
    record_always: bool


@dataclass(frozen=True, slots=True)
class RecordingEnded:
    call_id: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """The event changed nothing: ``reason`` says why (late, stale, or for a leg long gone)."""

    call_id: str
    event: str
    status: str
    reason: str


Effect = (
    Log
    | Count
    | AgentEvent
    | StartTimer
    | CancelTimer
    | RouterEnqueue
    | Requeue
    | Unroute
    | MarkCallback
    | CallbackProgress
    | RecordHandled
    | Originate
    | Hangup
    | SetVariables
    | Redirect
    | RedirectLeg
    | HoldLegs
    | Atxfer
    | Announce
    | BridgeFormed
    | RecordingEnded
    | Ignored
)
Result = tuple[Call, list[Effect]]
CallHandler = Callable[[Call, Any, float, Setup], Result]
LegHandler = Callable[[Call, Leg, Any, float, Setup], Result]

# Hangup cause of an agent leg never answered -> the RONA cause logged.
HANGUP_RONA: Mapping[int, str] = {
    17: "busy",
    18: "rona",
    19: "rona",
    21: "rejected",
    3: "unavailable",
    34: "congestion",
}
# OriginateResponse Reason of a failed Originate -> the RONA cause logged.
ORIGINATE_RONA: Mapping[int, str] = {0: "unavailable", 1: "hangup", 3: "rona", 5: "busy", 8: "congestion"}


def originate_cause(reason: int | None) -> str:
    """The RONA cause of a failed Originate (its ``Reason``)."""
    return "rona" if reason is None else ORIGINATE_RONA.get(reason, "rona")


# ------------------------------------------------------------------------------------ starting
def enqueue(info: QueuedCall, now: float, setup: Setup) -> Result:
    """A call handed over by the IVR or the dialer: logged, then put on hold (the shell awaits
    the hold actions, then feeds ``HoldReady``)."""
    queue = setup.queue(info.queue)
    call = Call(info, info.queue, queued_at=now)
    effects: list[Effect] = [
        Log(
            CallRecord(
                info.call_id,
                now,
                direction=Direction(info.direction),
                campaign_id=info.campaign_id,
                queue=info.queue,
                queued_at=now,
                caller_number=info.caller_number,
                language=info.language,
                priority=info.priority + queue.priority,
            )
        ),
        Log(CallEvent(info.call_id, now, EventKind.QUEUE_ENTER, queue=info.queue)),
        _hold(call, queue, redirect=info.redirect_to_hold),
    ]
    return call, effects


def schedule_callback(info: QueuedCall, at: float, now: float, *, of: str) -> Result:
    """A callback an agent scheduled for the customer of call ``of``: a new call with no caller
    channel (``info.caller_number`` is the number to dial) that waits, as a callback that was not
    reached does, until ``at``; then it joins its queue's line (its place: ``at``), an agent is
    rung first and the number dialled from the agent's leg; not reached, it is tried again."""
    number = info.caller_number or ""
    call = Call(
        info,
        info.queue,
        CallStatus.CALLBACK_PENDING,
        queued_at=at,
        callback_number=number,
        caller_gone=True,
    )
    effects: list[Effect] = [
        Log(
            CallRecord(
                info.call_id,
                now,
                direction=Direction.OUTBOUND,
                started_at=now,
                queue=info.queue,
                caller_number=number,
                language=info.language,
                priority=info.priority,
                callback_of=of,
            )
        ),
        Log(
            CallEvent(
                info.call_id,
                now,
                EventKind.CALLBACK_REQUEST,
                queue=info.queue,
                detail={"number": number, "at": at, "scheduled_by_agent": True},
            )
        ),
        StartTimer(TimerKind.CALLBACK_RETRY, info.call_id, at),
    ]
    return call, effects


def restore_waiting(info: QueuedCall, queue: str, arrived: float) -> Call:
    """A caller found holding after a restart (feed ``HoldReady(arrived_at=arrived)`` next)."""
    return Call(info, queue, queued_at=arrived)


def restore_connected(
    info: QueuedCall, queue: str, agent_id: str, leg_id: str, channel: str | None, now: float
) -> Call:
    """A call found bridged to its agent after a restart."""
    leg = Leg(leg_id, info.call_id, agent_id, queue, LegStatus.ANSWERED, channel, answered_at=now)
    return Call(
        info,
        queue,
        CallStatus.CONNECTED,
        queued_at=now,
        agent_id=agent_id,
        leg_id=leg_id,
        answered_at=now,
        legs=(leg,),
    )


# ------------------------------------------------------------------------------------ restart
def other_half(leg_id: str) -> str:
    """The uniqueid of the ``;2`` half of a Local agent leg (the Originate's ``OtherChannelId``);
    the ``;1`` half, which runs ``cc-agent-leg`` and joins the caller's bridge, has ``leg_id``."""
    return f"{leg_id}-2"


@dataclass(frozen=True, slots=True)
class Found:
    """A channel of the PBX's ``Status`` answer that carries our CC_* variables."""

    channel: str
    uniqueid: str
    call_id: str
    agent_id: str = ""  # set on an agent leg's channels (both halves of a Local leg)
    queue: str = ""
    bridge_id: str = ""
    seconds: int = 0


@dataclass(frozen=True, slots=True)
class Survey:
    """What a restarted controller makes of the PBX's channels."""

    callers: Mapping[str, Found]  # call id -> its caller's channel
    on_call: Mapping[str, Found]  # agent id -> the bridged channel of its leg on a live call
    hang_up: tuple[str, ...]  # one channel per agent leg that serves no call any more


def survey(found: Iterable[Found], agents: Collection[str]) -> Survey:
    """Sort the channels found after a restart. An agent leg is the channels of one Originate:
    the one whose uniqueid is the leg id and, for a Local agent channel, its ``;2`` half
    (``other_half``), which never enters the caller's bridge. A leg with a bridged channel, of a
    known agent, whose caller is still there is on the call; any other leg (offered, ringing, or
    waiting in cc-hold for a ring-all race nobody follows now) is hung up, once per leg: ending
    either half of a Local pair ends both."""
    callers: dict[str, Found] = {}
    agent_channels: list[Found] = []
    for f in found:
        if f.agent_id:
            agent_channels.append(f)
        else:
            callers[f.call_id] = f
    halves = {other_half(f.uniqueid): f.uniqueid for f in agent_channels if f.uniqueid}
    legs: dict[str, list[Found]] = {}  # leg id -> its channels, ;1 (or the only one) first
    for f in agent_channels:
        legs.setdefault(halves.get(f.uniqueid, f.uniqueid) or f.channel, []).append(f)
    on_call: dict[str, Found] = {}
    hang_up: list[str] = []
    for leg_id, channels in legs.items():
        channels.sort(key=lambda f: f.uniqueid != leg_id)
        head = channels[0]
        bridged = next((f for f in channels if f.bridge_id), None)
        if bridged is not None and head.agent_id in agents and head.call_id in callers:
            on_call[head.agent_id] = bridged
        elif head.channel:
            hang_up.append(head.channel)
    return Survey(callers, on_call, tuple(hang_up))


def withdrawable(call: Call) -> bool:
    """No agent has the call yet."""
    return call.status in IN_LINE


def leg_rings(leg: Leg | None) -> bool:
    """Guard of an Originate: the leg still waits for its outcome."""
    return leg is not None and leg.status is LegStatus.RINGING


def leg_connected(call: Call | None, leg_id: str | None) -> bool:
    """Guard of the ring-all winner's redirect and of a recording start: still the call's leg."""
    return (
        call is not None
        and leg_id is not None
        and call.status is CallStatus.CONNECTED
        and call.leg_id == leg_id
        and call.leg(leg_id) is not None
    )


# ------------------------------------------------------------------------------------ helpers
_R = TypeVar("_R", "Call", "Leg")


def _evolve(record: _R, **changes: Any) -> _R:
    """``dataclasses.replace`` for the slotted records here, without its per-call introspection
    (it runs several times per event)."""
    new = object.__new__(type(record))
    for name in type(record).__slots__:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(record, name))
    return new


def _hold(call: Call, queue: cm.Queue, *, redirect: bool) -> Effect:
    info = call.info
    variables = [
        (names.VAR_CALL_ID, info.call_id),
        (names.VAR_QUEUE, call.queue),
        (names.VAR_MOH_CLASS, queue.music_class),
    ]
    if info.data:
        variables.append((names.VAR_CUSTOMER, json.dumps(dict(info.data), separators=(",", ":"))))
    if redirect:
        return Redirect(info.channel, names.CTX_HOLD, tuple(variables))
    return SetVariables(info.channel, tuple(variables))


def _leg_context(call: Call) -> str:
    """Where an answered agent leg goes: cc-transfer dials a callback's number, else
    cc-agent-leg bridges the holding caller."""
    return names.CTX_TRANSFER if call.callback_number else names.CTX_AGENT_LEG


def _put_leg(call: Call, leg: Leg) -> Call:
    return _evolve(call, legs=tuple(leg if x.leg_id == leg.leg_id else x for x in call.legs))


def _drop_leg(call: Call, leg_id: str) -> Call:
    return _evolve(call, legs=tuple(x for x in call.legs if x.leg_id != leg_id))


def _ignored(call: Call, event: Event, reason: str) -> Result:
    return call, [Ignored(call.call_id, type(event).__name__, call.status.value, reason)]


def _announce_timer(call: Call, queue: cm.Queue, now: float) -> tuple[Call, list[Effect]]:
    if queue.announce_period and (queue.announce_position or queue.announce_wait):
        at = now + queue.announce_period
        return _evolve(call, next_announce=at), [StartTimer(TimerKind.ANNOUNCE, call.call_id, at)]
    return _evolve(call, next_announce=None), [CancelTimer(TimerKind.ANNOUNCE, call.call_id)]


def _out_of_line(call: Call) -> Effect:
    """The call left the line: no more announcements."""
    return CancelTimer(TimerKind.ANNOUNCE, call.call_id)


def _close(call: Call, effects: list[Effect]) -> Result:
    """The ACD forgets the call (its legs stay followed until they are gone)."""
    effects += [
        Unroute(call.call_id),
        CancelTimer(TimerKind.ANNOUNCE, call.call_id),
        CancelTimer(TimerKind.CALLBACK_RETRY, call.call_id),
    ]
    return _evolve(call, status=CallStatus.CLOSED, next_announce=None), effects


def _cancel_leg(call: Call, leg: Leg, effects: list[Effect], reason: str | None) -> Call:
    """Hang up a leg still ringing; its agent is free again (no RONA) when ``reason`` is given."""
    effects.extend(_settle_leg(leg))
    call = _put_leg(call, _evolve(leg, status=LegStatus.CANCELLED))
    if reason is not None:
        effects.append(AgentEvent(leg.agent_id, ag.CancelOffer(leg.call_id, reason)))
    return call


def _settle_leg(leg: Leg) -> list[Effect]:
    """A leg that failed or was cancelled: its channel, if known, is hung up (its Hangup event
    ends the record); one not known yet is hung up when it shows up, or reaped by the guard."""
    if leg.channel is None:
        return []
    return [Hangup(leg.channel), CancelTimer(TimerKind.RING_GUARD, leg.leg_id)]


def _ring_leg_done(call: Call, leg: Leg, effects: list[Effect]) -> Call:
    """A ring-all leg failed (or its agent left) before anyone answered: once none rings, the
    call goes back to its place, never to be offered to that group again."""
    if leg.leg_id not in call.ring:
        return call
    ring = tuple(x for x in call.ring if x != leg.leg_id)
    missed = call.ring_missed | {leg.agent_id}
    call = _evolve(call, ring=ring, ring_missed=missed)
    if not ring and call.leg_id is None and call.status is CallStatus.RINGING_ALL:
        call = _evolve(call, status=CallStatus.WAITING, ring_missed=frozenset())
        effects.append(Requeue(call.call_id, tuple(sorted(missed))))
    return call


def _detach_agent(call: Call, now: float) -> tuple[Call, list[Effect]]:
    """The agent leaves the call (a transfer): its leg ends by itself; the agent wraps up then."""
    effects: list[Effect] = []
    if call.leg(call.leg_id) is not None and call.answered_at is not None:
        talk, hold = _talk_and_hold(call, now)
        effects.append(
            Log(CallRecord(call.call_id, now, talk_seconds=round(talk, 3), hold_seconds=round(hold, 3)))
        )
        call = _evolve(call, hold_started=None, hold_seconds=hold, hold_base=hold)
    effects.append(RecordingEnded(call.call_id))
    call = _evolve(call, agent_id=None, leg_id=None, answered_at=None, bridged=frozenset())
    return call, effects


def _bridge_formed(call: Call, setup: Setup) -> Effect:
    leg = call.leg(call.leg_id)
    channel = leg.channel if leg is not None and leg.channel else call.info.channel
    return BridgeFormed(
        call.call_id,
        call.leg_id,
        channel,
        call.queue,
        call.agent_id,
        str(setup.queue(call.queue).recording) == "always",
    )


# ------------------------------------------------------------------------------------ call handlers
def _hold_ready(c: Call, ev: HoldReady, now: float, s: Setup) -> Result:
    c, effects = _announce_timer(c, s.queue(c.queue), now)
    req = rt.CallRequest(c.call_id, c.queue, dict(c.info.skills), ev.priority)
    effects.append(RouterEnqueue(req, ev.arrived_at, agent=c.info.reserved_agent))
    return c, effects


def _offered(c: Call, ev: Offered, now: float, s: Setup) -> Result:
    if c.status is CallStatus.RINGING_ALL and not ev.ring:
        raise DomainError(f"call {c.call_id} rings a group: a one-agent offer is refused", code="ringing_all")
    queue = s.queue(c.queue)
    leg = Leg(ev.leg_id, c.call_id, ev.agent_id, c.queue, ring=bool(ev.ring))
    if ev.ring:  # one of a ring-all group: the call has no agent until a leg answers
        missed = frozenset() if ev.agent_id == ev.ring[0] else c.ring_missed
        c = _evolve(
            c,
            status=CallStatus.RINGING_ALL,
            agent_id=None,
            leg_id=None,
            ring=(*c.ring, leg.leg_id),
            ring_missed=missed,
        )
    else:
        c = _evolve(c, status=CallStatus.OFFERED, agent_id=ev.agent_id, leg_id=leg.leg_id)
    c = _evolve(c, legs=(*c.legs, leg))
    if c.callback_number:  # the agent first, then cc-transfer dials the customer
        recording = RecordingPlan.NONE
    elif s.recorder and str(queue.recording) == "always":
        recording = RecordingPlan.GROUP if leg.ring else RecordingPlan.OWN
    else:
        recording = RecordingPlan.NONE
    effects: list[Effect] = [
        AgentEvent(ev.agent_id, ag.Reserve(c.call_id), strict=True),
        Count("offers"),
        Log(
            CallEvent(
                c.call_id,
                now,
                EventKind.OFFER,
                queue=c.queue,
                agent_id=ev.agent_id,
                detail={"ring_all": ",".join(ev.ring)} if ev.ring else None,
            )
        ),
        Log(LegRecord(c.call_id, leg.leg_id, now, kind="agent", agent_id=ev.agent_id, started_at=now)),
        AgentEvent(ev.agent_id, ag.Ring(c.call_id), strict=True),
        StartTimer(TimerKind.RING_GUARD, leg.leg_id, now + queue.ring_timeout + s.ring_guard),
        Originate(
            leg.leg_id,
            c.call_id,
            ev.agent_id,
            c.queue,
            c.info.channel,
            c.info.caller_number,
            names.CTX_HOLD if leg.ring else _leg_context(c),
            c.callback_number,
            recording,
        ),
    ]
    return c, effects


def _caller_left(c: Call, ev: CallerHungUp | Withdraw, now: float, s: Setup) -> Result:
    """The caller hung up (or the dialer took the call back) before an agent had it."""
    cause = ev.cause if isinstance(ev, CallerHungUp) else None
    effects: list[Effect] = []
    if c.status in (CallStatus.OFFERED, CallStatus.RINGING_ALL):
        ringing = [c.leg_id] if c.leg_id is not None else list(c.ring)
        c = _evolve(c, ring=())
        for leg_id in ringing:
            leg = c.leg(leg_id)
            if leg is not None and leg.status is LegStatus.RINGING:
                c = _cancel_leg(c, leg, effects, "caller_abandoned")
        c = _evolve(c, status=CallStatus.WAITING, agent_id=None, leg_id=None)
        if c.callback_number:
            effects.append(Requeue(c.call_id))
    if c.callback_number:
        # The caller left on purpose: its place is kept; the agent is rung first, then the
        # number is dialled from the agent's leg.
        effects.append(
            Log(CallEvent(c.call_id, now, EventKind.NOTE, queue=c.queue, detail={"callback_waiting": True}))
        )
        return _evolve(c, caller_gone=True), effects
    effects += [
        Count("abandoned"),
        Log(CallEvent(c.call_id, now, EventKind.QUEUE_EXIT, queue=c.queue, detail={"reason": "abandoned"})),
        Log(
            CallRecord(
                c.call_id,
                now,
                disposition=Disposition.ABANDONED_QUEUE,
                ended_at=now,
                hangup_cause=cause,
                hangup_by=ended_by("caller", cause),
            )
        ),
    ]
    return _close(c, effects)


def _caller_hung_up_talking(c: Call, ev: CallerHungUp, now: float, s: Setup) -> Result:
    talk, hold = _talk_and_hold(c, now)
    effects: list[Effect] = []
    leg = c.leg(c.leg_id)
    if c.held and leg is not None and leg.channel:  # its leg waits out of any bridge: end it
        effects.append(Hangup(leg.channel))
        c = _evolve(c, held=False)
    effects += [
        Log(
            CallRecord(
                c.call_id,
                now,
                ended_at=now,
                talk_seconds=round(talk, 3),
                hold_seconds=round(hold, 3),
                hangup_cause=ev.cause,
                hangup_by=ended_by("caller", ev.cause),
            )
        ),
        RecordingEnded(c.call_id),
    ]
    return _close(c, effects)


def _caller_hangup_requested(c: Call, ev: CallerHangupRequested, now: float, s: Setup) -> Result:
    return _evolve(c, caller_leaving=True), []


def _caller_hung_up_after(c: Call, ev: CallerHungUp, now: float, s: Setup) -> Result:
    """Transferred out, ended by the agent, or waiting for its callback retry."""
    effects: list[Effect] = [
        Log(
            CallRecord(
                c.call_id, now, ended_at=now, hangup_cause=ev.cause, hangup_by=dead_leg("caller", ev.cause)
            )
        ),
        RecordingEnded(c.call_id),
    ]
    return _close(c, effects)


def _offer_withdrawn(c: Call, ev: OfferWithdrawn, now: float, s: Setup) -> Result:
    effects: list[Effect] = []
    if c.status is CallStatus.RINGING_ALL:
        for leg_id in c.ring:
            leg = c.leg(leg_id)
            if leg is not None and leg.agent_id == ev.agent_id:
                c = _cancel_leg(c, leg, effects, None)
                c = _ring_leg_done(c, leg, effects)
        return c, effects
    leg = c.leg(c.leg_id)
    if leg is None or leg.agent_id != ev.agent_id:
        return _ignored(c, ev, f"not offered to agent {ev.agent_id}")
    c = _cancel_leg(c, leg, effects, None)
    c = _evolve(c, status=CallStatus.WAITING, agent_id=None, leg_id=None)
    effects.append(Requeue(c.call_id, (ev.agent_id,)))
    return c, effects


def _expired(c: Call, ev: Expired, now: float, s: Setup) -> Result:
    queue = s.queues.get(ev.queue)
    if queue is None:
        return _ignored(c, ev, f"no queue {ev.queue!r}")
    kind = queue.overflow.kind if queue.overflow else None
    effects: list[Effect] = [
        Log(CallEvent(c.call_id, now, EventKind.QUEUE_EXIT, queue=ev.queue, detail={"reason": "timeout"}))
    ]
    if kind is cm.OverflowKind.VOICEMAIL or (kind is None and queue.mailbox):
        box = (queue.overflow.target if queue.overflow else None) or queue.mailbox or ""
        effects += [
            Log(CallRecord(c.call_id, now, disposition=Disposition.VOICEMAIL)),
            Redirect(c.info.channel, names.CTX_VOICEMAIL, ((names.VAR_MAILBOX, box),)),
        ]
    else:  # hang-up, or a flow (the IVR owns flows)
        effects += [
            Log(CallRecord(c.call_id, now, disposition=Disposition.OVERFLOWED)),
            Hangup(c.info.channel),
        ]
    return _close(c, effects)


def _overflowed(c: Call, ev: Overflowed, now: float, s: Setup) -> Result:
    effects: list[Effect] = [
        Log(CallEvent(c.call_id, now, EventKind.OVERFLOW, queue=ev.from_queue, detail={"to": ev.to_queue})),
        Log(CallRecord(c.call_id, now, overflow_queue=ev.to_queue)),
    ]
    return _evolve(c, queue=ev.to_queue), effects


def _accept_callback(c: Call, ev: AcceptCallback, now: float, s: Setup) -> Result:
    effects: list[Effect] = [
        MarkCallback(c.call_id),
        Log(
            CallEvent(c.call_id, now, EventKind.CALLBACK_REQUEST, queue=c.queue, detail={"number": ev.number})
        ),
        Log(CallRecord(c.call_id, now, disposition=Disposition.CALLBACK_REQUESTED)),
    ]
    return _evolve(c, callback_number=ev.number), effects


def _not_in_line(c: Call, ev: Event, now: float, s: Setup) -> Result:
    raise RoutingError(f"no call {c.call_id}", code="unknown_call")


def _not_held(c: Call, what: str) -> None:
    if c.held:
        raise DomainError(f"call {c.call_id} is on hold: take it off hold before {what}", code="on_hold")


def recordable(c: Call | None) -> bool:
    """Guard of a recording started on demand (it re-bridges both sides): not while held."""
    return c is not None and not c.held


def _blind_transfer_possible(c: Call) -> None:
    _not_held(c, "a transfer")
    if c.caller_gone:  # a callback: the customer is on the agent's own leg, no caller channel
        raise DomainError(f"call {c.call_id} has no caller channel to transfer", code="caller_gone")


def _transfer_to_queue(c: Call, ev: TransferToQueue, now: float, s: Setup) -> Result:
    _blind_transfer_possible(c)
    c, effects = _detach_agent(c, now)
    c = _evolve(
        c, status=CallStatus.WAITING, queue=ev.queue, queued_at=now, transfers=c.transfers + 1, ring=()
    )
    effects += [
        Count("transfers"),
        Log(
            CallEvent(
                c.call_id,
                now,
                EventKind.TRANSFER,
                queue=ev.queue,
                detail={"kind": "blind", "target": ev.queue},
            )
        ),
        Log(CallRecord(c.call_id, now, overflow_queue=ev.queue, transfers=c.transfers)),
        _hold(c, s.queue(ev.queue), redirect=True),
    ]
    return c, effects


def _transfer_to_number(c: Call, ev: TransferToNumber, now: float, s: Setup) -> Result:
    _blind_transfer_possible(c)
    c, effects = _detach_agent(c, now)
    c = _evolve(c, status=CallStatus.TRANSFERRED, transfers=c.transfers + 1)
    effects += [
        Count("transfers"),
        Log(CallEvent(c.call_id, now, EventKind.TRANSFER, detail={"kind": "blind", "target": ev.number})),
        Log(CallRecord(c.call_id, now, disposition=Disposition.TRANSFERRED, transfers=c.transfers)),
        Redirect(c.info.channel, names.CTX_TRANSFER, ((names.VAR_TRANSFER_TARGET, ev.number),)),
    ]
    return c, effects


def _attended_transfer(c: Call, ev: AttendedTransfer, now: float, s: Setup) -> Result:
    _not_held(c, "a transfer")
    leg = c.leg(c.leg_id)
    if leg is None or leg.channel is None:
        raise DomainError(f"call {c.call_id} is not connected to an agent", code="not_connected")
    effects: list[Effect] = [
        Count("transfers"),
        Log(CallEvent(c.call_id, now, EventKind.TRANSFER, detail={"kind": "attended", "target": ev.target})),
        Atxfer(leg.channel, ev.target),
    ]
    return c, effects


def _not_connected(c: Call, ev: Event, now: float, s: Setup) -> Result:
    raise DomainError(f"call {c.call_id} is not connected to an agent", code="not_connected")


def _timer_waiting(c: Call, ev: TimerDue, now: float, s: Setup) -> Result:
    if ev.kind is not TimerKind.ANNOUNCE:
        return _ignored(c, ev, f"no {ev.kind} timer while waiting")
    if c.next_announce is None or c.next_announce > now:
        return _ignored(c, ev, "an older announce timer")
    c, effects = _announce_timer(c, s.queue(c.queue), now)
    effects.append(Announce(c.call_id))
    return c, effects


def _timer_retry(c: Call, ev: TimerDue, now: float, s: Setup) -> Result:
    if ev.kind is not TimerKind.CALLBACK_RETRY:
        return _ignored(c, ev, f"no {ev.kind} timer while waiting for a retry")
    req = rt.CallRequest(c.call_id, c.queue, dict(c.info.skills), c.info.priority)
    effects: list[Effect] = [Unroute(c.call_id), RouterEnqueue(req, c.queued_at, callback=True)]
    return _evolve(c, status=CallStatus.WAITING), effects


def _callback_deferred(c: Call, ev: CallbackDeferred, now: float, s: Setup) -> Result:
    if not (c.caller_gone and c.callback_number):
        return _ignored(c, ev, "not a callback whose caller left")
    effects: list[Effect] = [
        Unroute(c.call_id),
        StartTimer(TimerKind.CALLBACK_RETRY, c.call_id, ev.until),
        CallbackProgress(c.call_id, "pending", c.callback_attempts, ev.until),
        Log(
            CallEvent(
                c.call_id, now, EventKind.NOTE, queue=c.queue, detail={"callback_window_opens": ev.until}
            )
        ),
    ]
    return _evolve(c, status=CallStatus.CALLBACK_PENDING), effects


def restore_callback(info: QueuedCall, queue: str, queued_at: float, number: str, attempts: int) -> Call:
    """A callback the database kept across a restart: its caller left long ago; it waits for its
    retry timer (feed ``TimerDue(CALLBACK_RETRY)`` when due) to go back to its place in line."""
    return Call(
        info,
        queue,
        CallStatus.CALLBACK_PENDING,
        queued_at=queued_at,
        callback_number=number,
        callback_attempts=attempts,
        caller_gone=True,
    )


def _timer_stale(c: Call, ev: TimerDue, now: float, s: Setup) -> Result:
    return _ignored(c, ev, f"{ev.kind} timer after the call left the line")


def held_seconds(c: Call, now: float) -> float:
    """The caller's time on hold so far while connected (the hold going on counted up to now)."""
    return c.hold_seconds + (now - c.hold_started if c.hold_started is not None else 0.0)


def _talk_and_hold(c: Call, now: float) -> tuple[float, float]:
    """(its current agent's talk excluding hold, the call's hold so far) of a connected call
    ending or leaving its agent at ``now``."""
    hold = held_seconds(c, now)
    return max(0.0, now - (c.answered_at or now) - (hold - c.hold_base)), hold


def _held(c: Call, ev: CallerHeld, now: float, s: Setup) -> Result:
    if c.hold_started is not None:
        return _ignored(c, ev, "already on hold")
    log = CallEvent(c.call_id, now, EventKind.HOLD, agent_id=c.agent_id, queue=c.queue)
    return _evolve(c, hold_started=now), [Log(log)]


def _unheld(c: Call, ev: CallerUnheld, now: float, s: Setup) -> Result:
    if c.hold_started is None:
        return _ignored(c, ev, "not on hold")
    held = now - c.hold_started
    detail = {"seconds": round(held, 3)}
    log = CallEvent(c.call_id, now, EventKind.UNHOLD, agent_id=c.agent_id, queue=c.queue, detail=detail)
    return _evolve(c, hold_started=None, hold_seconds=c.hold_seconds + held), [Log(log)]


def _hold_requested(c: Call, ev: HoldRequested, now: float, s: Setup) -> Result:
    if c.held:
        raise DomainError(f"call {c.call_id} is already on hold", code="already_held")
    if c.caller_gone:  # a callback: the customer is on the agent's own leg
        raise DomainError(f"call {c.call_id} has no caller channel to hold", code="caller_gone")
    leg = c.leg(c.leg_id)
    if leg is None or leg.channel is None or leg.status is not LegStatus.ANSWERED:
        raise DomainError(f"call {c.call_id} is not connected to an agent", code="not_connected")
    detail = {"hold": "desktop", "by": ev.by} if ev.by else {"hold": "desktop"}
    effects: list[Effect] = [
        HoldLegs(c.info.channel, leg.channel, s.queue(c.queue).music_class),
        Log(CallEvent(c.call_id, now, EventKind.NOTE, agent_id=c.agent_id, queue=c.queue, detail=detail)),
    ]
    return _evolve(c, held=True), effects


def _unhold_requested(c: Call, ev: UnholdRequested, now: float, s: Setup) -> Result:
    if not c.held:
        raise DomainError(f"call {c.call_id} is not on hold", code="not_held")
    leg = c.leg(c.leg_id)
    if leg is None or leg.channel is None:
        raise DomainError(f"call {c.call_id} is not connected to an agent", code="not_connected")
    detail = {"unhold": "desktop", "by": ev.by} if ev.by else {"unhold": "desktop"}
    effects: list[Effect] = [
        # cc-agent-leg again, without starting a second recording of the one already running
        Redirect(leg.channel, names.CTX_AGENT_LEG, ((names.VAR_RECORDING_FILE, ""),)),
        Log(CallEvent(c.call_id, now, EventKind.NOTE, agent_id=c.agent_id, queue=c.queue, detail=detail)),
    ]
    return _evolve(c, held=False), effects


def _bridge_entered(c: Call, ev: BridgeEntered, now: float, s: Setup) -> Result:
    if ev.channel in c.bridged:  # back from a hold or a recording's re-bridge: formed already
        return c, []
    c = _evolve(c, bridged=c.bridged | {ev.channel})
    if len(c.bridged) >= 2 and c.status is CallStatus.CONNECTED:
        return c, [_bridge_formed(c, s)]
    return c, []


def _ignore(reason: str) -> CallHandler:
    def handler(c: Call, ev: Any, now: float, s: Setup) -> Result:
        return _ignored(c, ev, reason)

    return handler


def _refuse(reason: str) -> CallHandler:
    def handler(c: Call, ev: Any, now: float, s: Setup) -> Result:
        raise DomainError(
            f"call {c.call_id}: {type(ev).__name__} refused in {c.status.value}: {reason}",
            code="invalid_call_transition",
        )

    return handler


# ------------------------------------------------------------------------------------ leg handlers
def _leg_channel(c: Call, leg: Leg, ev: LegChannel, now: float, s: Setup) -> Result:
    if not ev.channel:
        return c, []
    leg = _evolve(leg, channel=ev.channel)
    return _put_leg(c, leg), (_settle_leg(leg) if leg.settled else [])


def _learn_channel(c: Call, leg: Leg, channel: str | None) -> tuple[Call, Leg]:
    if leg.channel is None and channel:
        leg = _evolve(leg, channel=channel)
        c = _put_leg(c, leg)
    return c, leg


def _leg_answered(c: Call, leg: Leg, ev: LegAnswered, now: float, s: Setup) -> Result:
    c, leg = _learn_channel(c, leg, ev.channel)
    effects: list[Effect] = []
    losers: list[str] = []
    if leg.ring and c.status is CallStatus.RINGING_ALL and leg.leg_id in c.ring:
        # The first of a ring-all group to answer takes the call; the others are released.
        losers = [x for x in c.ring if x != leg.leg_id]
        c = _evolve(c, ring=(), agent_id=leg.agent_id, leg_id=leg.leg_id)
        effects.append(RedirectLeg(c.call_id, leg.leg_id, _leg_context(c)))
    elif not (c.status is CallStatus.OFFERED and c.leg_id == leg.leg_id):
        effects.append(Ignored(c.call_id, "LegAnswered", c.status.value, "the call is not offered to it"))
        return _cancel_leg(c, leg, effects, "offer_gone"), effects
    leg = _evolve(leg, status=LegStatus.ANSWERED, answered_at=now)
    c = _evolve(_put_leg(c, leg), status=CallStatus.CONNECTED, answered_at=now, next_announce=None)
    effects += [
        CancelTimer(TimerKind.RING_GUARD, leg.leg_id),
        _out_of_line(c),
        AgentEvent(leg.agent_id, ag.Answer(c.call_id), strict=True),
        Unroute(c.call_id),
        Count("answered"),
        Log(CallEvent(c.call_id, now, EventKind.ANSWER, queue=c.queue, agent_id=leg.agent_id)),
        Log(CallEvent(c.call_id, now, EventKind.QUEUE_EXIT, queue=c.queue, detail={"reason": "answered"})),
        Log(LegRecord(c.call_id, leg.leg_id, now, channel=leg.channel, answered_at=now)),
        Log(
            CallRecord(
                c.call_id,
                now,
                agent_id=leg.agent_id,
                answered_at=now,
                disposition=None if c.callback_number else Disposition.ANSWERED,
            )
        ),
    ]
    if len(c.bridged) >= 2:
        effects.append(_bridge_formed(c, s))
    for leg_id in losers:
        other = c.leg(leg_id)
        if other is not None and other.status is LegStatus.RINGING:
            c = _cancel_leg(c, other, effects, "answered_elsewhere")
    return c, effects


def _leg_failed(c: Call, leg: Leg, ev: LegFailed, now: float, s: Setup) -> Result:
    """RONA: the agent did not answer (or could not be reached)."""
    c, leg = _learn_channel(c, leg, ev.channel)
    return _rona(c, leg, ev.cause, now, s)


def _rona(c: Call, leg: Leg, cause: str, now: float, s: Setup) -> Result:
    queue = s.queue(leg.queue)
    action = str(queue.rona_action)
    leg = _evolve(leg, status=LegStatus.FAILED)
    c = _put_leg(c, leg)
    effects: list[Effect] = [
        Count("rona"),
        Log(
            CallEvent(
                c.call_id,
                now,
                EventKind.RONA,
                queue=leg.queue,
                agent_id=leg.agent_id,
                detail={"cause": cause},
            )
        ),
        Log(LegRecord(c.call_id, leg.leg_id, now, ended_at=now)),
        AgentEvent(
            leg.agent_id,
            ag.NoAnswer(
                c.call_id,
                cause=cause,
                max_missed=queue.rona_count,
                action=action if action in ("not_ready", "pause", "logout") else "not_ready",  # type: ignore[arg-type]
                pause_reason=queue.rona_pause_reason,
            ),
        ),
    ]
    if leg.ring:
        c = _ring_leg_done(c, leg, effects)
    elif c.leg_id == leg.leg_id and c.status is CallStatus.OFFERED:
        c = _evolve(c, status=CallStatus.WAITING, agent_id=None, leg_id=None)
        effects.append(Requeue(c.call_id, (leg.agent_id,)))
    effects += _settle_leg(leg)
    return c, effects


def _leg_hung_up(c: Call, leg: Leg, ev: LegHungUp, now: float, s: Setup) -> Result:
    c = _drop_leg(c, leg.leg_id)
    effects: list[Effect] = [
        CancelTimer(TimerKind.RING_GUARD, leg.leg_id),
        Log(LegRecord(c.call_id, leg.leg_id, now, ended_at=now, hangup_cause=ev.cause)),
    ]
    if leg.status is LegStatus.RINGING:  # rang out, busy, unreachable: the cause says which
        c, more = _rona(c, _evolve(leg, channel=None), HANGUP_RONA.get(ev.cause or 0, "hangup"), now, s)
        return _drop_leg(c, leg.leg_id), effects + more
    if leg.status is not LegStatus.ANSWERED:
        return c, effects
    queue = s.queue(leg.queue)
    talk = now - (leg.answered_at or now)
    # Counted first, so least_calls sees it when the agent frees (at once if no wrap-up).
    effects += [
        RecordHandled(leg.queue, leg.agent_id, talk + queue.wrapup, talk),
        AgentEvent(
            leg.agent_id,
            ag.CallEnded(
                c.call_id, wrap_up_seconds=queue.wrapup, queue=leg.queue, campaign=c.info.campaign_id
            ),
        ),
    ]
    if c.leg_id != leg.leg_id or c.status is not CallStatus.CONNECTED:
        return c, effects  # a leg a transfer left behind, or the caller left first
    talk, hold = _talk_and_hold(c, now)
    if c.held:  # the agent hung up on a held caller: the caller's music ends too
        effects.append(Hangup(c.info.channel))
    c = _evolve(c, status=CallStatus.ENDED, hold_started=None, hold_seconds=hold, held=False)
    # The wrap-up is logged as measured, when the agent's wrap-up ends (the ACD's shell).
    effects += [
        Log(
            CallRecord(
                c.call_id,
                now,
                ended_at=now,
                talk_seconds=round(talk, 3),
                hold_seconds=round(hold, 3),
                hangup_cause=ev.cause,
                hangup_by=ended_by("caller" if c.caller_leaving else "agent", ev.cause),
            )
        ),
        RecordingEnded(c.call_id),
    ]
    if not c.callback_number:
        return c, effects
    # A callback's agent leg ended (no caller channel of ours to wait for): done if the customer
    # answered, else tried again after the retry delay (same place), up to the attempts allowed.
    if c.callback_reached or c.callback_attempts >= s.callback_max_attempts:
        if not c.callback_reached:
            effects.append(Log(CallRecord(c.call_id, now, disposition=Disposition.FAILED)))
        state = "done" if c.callback_reached else "failed"
        effects.append(CallbackProgress(c.call_id, state, c.callback_attempts))
        return _close(c, effects)
    c = _evolve(c, status=CallStatus.CALLBACK_PENDING, agent_id=None, leg_id=None, answered_at=None)
    retry_at = now + s.callback_retry_delay
    effects += [
        StartTimer(TimerKind.CALLBACK_RETRY, c.call_id, retry_at),
        CallbackProgress(c.call_id, "pending", c.callback_attempts, retry_at),
    ]
    return c, effects


def _ring_guard(c: Call, leg: Leg, ev: RingGuardDue, now: float, s: Setup) -> Result:
    effects: list[Effect] = []
    if leg.status is LegStatus.RINGING:
        c, effects = _rona(c, leg, "timeout", now, s)
        leg = c.leg(leg.leg_id) or leg
    if leg.settled and leg.channel is None:
        return _drop_leg(c, leg.leg_id), effects  # never became a channel: nothing else will end it
    return c, effects


def _dial_ended(c: Call, leg: Leg, ev: DialEnded, now: float, s: Setup) -> Result:
    if not c.callback_number or c.leg_id != leg.leg_id:
        return _ignored(c, ev, "not the agent leg of a callback")
    c = _evolve(c, callback_attempts=c.callback_attempts + 1, callback_reached=ev.status == "ANSWER")
    effects: list[Effect] = [
        Log(
            CallEvent(
                c.call_id,
                now,
                EventKind.CALLBACK_ATTEMPT,
                queue=c.queue,
                agent_id=c.agent_id,
                detail={"status": ev.status, "attempt": c.callback_attempts},
            )
        )
    ]
    if c.callback_reached:
        effects.append(Log(CallRecord(c.call_id, now, disposition=Disposition.CALLBACK_COMPLETED)))
    return c, effects


def _leg_ignore(reason: str) -> LegHandler:
    def handler(c: Call, leg: Leg, ev: Any, now: float, s: Setup) -> Result:
        return _ignored(c, ev, f"leg {leg.leg_id} {leg.status.value}: {reason}")

    return handler


# ------------------------------------------------------------------------------------ the tables
C = CallStatus
L = LegStatus
_AFTER = (C.CONNECTED, C.CALLBACK_PENDING, C.TRANSFERRED, C.ENDED)
_NOT_CONNECTED = tuple(st for st in C if st is not C.CONNECTED)

#: The call's machine. Every (status, event) pair is here.
CALL_TABLE: dict[tuple[CallStatus, type[CallEventType]], CallHandler] = {
    # joining the line
    (C.WAITING, HoldReady): _hold_ready,
    **{
        (st, HoldReady): _ignore("the caller left while being put on hold") for st in C if st is not C.WAITING
    },
    # offers (the router offers only calls in its line)
    (C.WAITING, Offered): _offered,
    (C.RINGING_ALL, Offered): _offered,
    **{
        (st, Offered): _refuse("the router offers only waiting calls")
        for st in C
        if st not in (C.WAITING, C.RINGING_ALL)
    },
    **{(st, OfferWithdrawn): _offer_withdrawn for st in (C.OFFERED, C.RINGING_ALL)},
    **{(st, OfferWithdrawn): _ignore("no offer out") for st in C if st not in (C.OFFERED, C.RINGING_ALL)},
    # the caller leaves
    **{(st, CallerHungUp): _caller_left for st in IN_LINE},
    (C.CONNECTED, CallerHungUp): _caller_hung_up_talking,
    **{(st, CallerHungUp): _caller_hung_up_after for st in (C.CALLBACK_PENDING, C.TRANSFERRED, C.ENDED)},
    (C.CLOSED, CallerHungUp): _ignore("already closed"),
    (C.CONNECTED, CallerHangupRequested): _caller_hangup_requested,
    **{
        (st, CallerHangupRequested): _ignore("its Hangup says who ended it")
        for st in C
        if st is not C.CONNECTED
    },
    **{(st, Withdraw): _caller_left for st in IN_LINE},
    **{(st, Withdraw): _ignore("an agent has the call") for st in (*_AFTER, C.CLOSED)},
    # the router's verdicts on a waiting call
    (C.WAITING, Expired): _expired,
    **{(st, Expired): _ignore("not waiting") for st in C if st is not C.WAITING},
    (C.WAITING, Overflowed): _overflowed,
    **{(st, Overflowed): _ignore("not waiting") for st in C if st is not C.WAITING},
    # callbacks
    **{(st, AcceptCallback): _accept_callback for st in IN_LINE},
    **{(st, AcceptCallback): _not_in_line for st in (*_AFTER, C.CLOSED)},
    # transfers by the agent
    (C.CONNECTED, TransferToQueue): _transfer_to_queue,
    (C.CONNECTED, TransferToNumber): _transfer_to_number,
    (C.CONNECTED, AttendedTransfer): _attended_transfer,
    **{(st, TransferToQueue): _not_connected for st in _NOT_CONNECTED},
    **{(st, TransferToNumber): _not_connected for st in _NOT_CONNECTED},
    **{(st, AttendedTransfer): _not_connected for st in _NOT_CONNECTED},
    # timers
    (C.WAITING, TimerDue): _timer_waiting,
    (C.CALLBACK_PENDING, TimerDue): _timer_retry,
    **{(st, TimerDue): _timer_stale for st in C if st not in (C.WAITING, C.CALLBACK_PENDING)},
    # bridges
    **{(st, BridgeEntered): _bridge_entered for st in C if st is not C.CLOSED},
    (C.CLOSED, BridgeEntered): _ignore("already closed"),
    # a callback outside its calling window
    (C.WAITING, CallbackDeferred): _callback_deferred,
    **{(st, CallbackDeferred): _ignore("not waiting in line") for st in C if st is not C.WAITING},
    # hold: the caller hears music while connected (in line, music is the queue's own)
    (C.CONNECTED, CallerHeld): _held,
    (C.CONNECTED, CallerUnheld): _unheld,
    **{(st, CallerHeld): _ignore("music in line, not a hold") for st in C if st is not C.CONNECTED},
    **{(st, CallerUnheld): _ignore("music in line, not a hold") for st in C if st is not C.CONNECTED},
    # hold from the desktop
    (C.CONNECTED, HoldRequested): _hold_requested,
    (C.CONNECTED, UnholdRequested): _unhold_requested,
    **{(st, HoldRequested): _not_connected for st in _NOT_CONNECTED},
    **{(st, UnholdRequested): _not_connected for st in _NOT_CONNECTED},
}

#: An agent leg's machine (the call's status decides what a leg's outcome does to the call).
LEG_TABLE: dict[tuple[LegStatus, type[LegEventType]], LegHandler] = {
    **{(st, LegChannel): _leg_channel for st in L},
    (L.RINGING, LegAnswered): _leg_answered,
    **{(st, LegAnswered): _leg_ignore("already has its outcome") for st in L if st is not L.RINGING},
    (L.RINGING, LegFailed): _leg_failed,
    **{(st, LegFailed): _leg_ignore("already has its outcome") for st in L if st is not L.RINGING},
    **{(st, LegHungUp): _leg_hung_up for st in L},
    **{(st, RingGuardDue): _ring_guard for st in (L.RINGING, L.FAILED, L.CANCELLED)},
    (L.ANSWERED, RingGuardDue): _leg_ignore("answered in time"),
    **{(st, DialEnded): _dial_ended for st in L},
}


def transition(call: Call, event: Event, now: float, setup: Setup) -> Result:
    """Apply ``event`` at ``now``: the call's new record and the effects to carry out, in order.

    Raises ``DomainError`` (stable ``code``) for a request refused in this state (a transfer of a
    call no agent has: ``not_connected``; a blind transfer of a callback whose caller left:
    ``caller_gone``) or a pair a consistent ACD never produces (``invalid_call_transition``);
    ``RoutingError`` (``unknown_call``) for a callback accepted for a call no longer in line."""
    if isinstance(event, LegChannel | LegAnswered | LegFailed | LegHungUp | RingGuardDue | DialEnded):
        leg = call.leg(event.leg_id)
        if leg is None:
            return _ignored(call, event, f"no leg {event.leg_id}")
        return LEG_TABLE[(leg.status, type(event))](call, leg, event, now, setup)
    return CALL_TABLE[(call.status, type(event))](call, event, now, setup)
