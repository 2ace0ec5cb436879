"""Pure: typed views of the AMI events and responses the product uses, Asterisk's names kept.

``parse_event(message)`` turns an event :class:`~callcenter.asterisk.ami.Message` into its view
(``Newchannel``, ``Hangup``, ``OriginateResponse``...) or ``None`` for an event with no view here
(the message itself still carries everything). Every view keeps the ``message`` it came from, so
repeated headers (``Variable``...) stay reachable. Views never raise on odd values: a number that
is missing or not a number reads as ``None``. Channel snapshots (the ``Channel``, ``Uniqueid``...
block Asterisk repeats in most events) are :class:`ChannelSnapshot`; the ``Dest*``, ``Spyer*``,
``Spyee*``, ``LocalOne*`` and ``LocalTwo*`` blocks use the same class.

``parse_response(message)`` gives an :class:`ActionResponse` (``Success``/``Error``/``Goodbye``...).

Originate reason codes (``OriginateResponse`` ``Reason``) are Asterisk's ``AST_CONTROL_*`` values
seen when the dial attempt ended: :class:`OriginateReason`. Hangup causes are Q.850 codes:
:class:`HangupCause` names the ones the product meets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeVar

from callcenter.asterisk.ami import Message

__all__ = [
    "EVENT_TYPES",
    "E",
    "EventGap",
    "AGIExecEnd",
    "AGIExecStart",
    "AMIEvent",
    "ActionResponse",
    "BridgeCreate",
    "BridgeDestroy",
    "BridgeEnter",
    "BridgeLeave",
    "BridgeSnapshot",
    "ChanSpyStart",
    "ChanSpyStop",
    "ChannelSnapshot",
    "CoreShowChannel",
    "CoreShowChannelsComplete",
    "DTMFBegin",
    "DTMFEnd",
    "DialBegin",
    "DialEnd",
    "DialState",
    "FullyBooted",
    "Hangup",
    "HangupCause",
    "HangupRequest",
    "LocalBridge",
    "MixMonitorMute",
    "MixMonitorStart",
    "MixMonitorStop",
    "MusicOnHoldStart",
    "MusicOnHoldStop",
    "NewCallerid",
    "NewConnectedLine",
    "Newchannel",
    "Newexten",
    "Newstate",
    "OriginateReason",
    "OriginateResponse",
    "SoftHangupRequest",
    "Status",
    "StatusComplete",
    "VarSet",
    "parse_event",
    "parse_response",
]


class OriginateReason(IntEnum):
    """``OriginateResponse`` ``Reason``: the last control frame seen on the outgoing leg."""

    FAILURE = 0  # no channel at all (unreachable endpoint, missing context...)
    HANGUP = 1  # the far end hung up
    RING = 2
    NO_ANSWER = 3  # RINGING when the Timeout expired: rang, nobody answered
    ANSWERED = 4
    BUSY = 5
    CONGESTION = 8


class HangupCause(IntEnum):
    """Q.850 cause codes as Asterisk reports them in ``Hangup`` ``Cause``."""

    NOT_DEFINED = 0
    UNALLOCATED = 1
    NO_ROUTE_DESTINATION = 3
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONSE = 18
    NO_ANSWER = 19
    CALL_REJECTED = 21
    NORMAL_UNSPECIFIED = 31
    CONGESTION = 34
    FAILURE = 38


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """The channel block of an event (``Channel``, ``ChannelState``, ``Uniqueid``...)."""

    channel: str
    state: int | None
    state_desc: str | None
    caller_id_num: str | None
    caller_id_name: str | None
    connected_line_num: str | None
    connected_line_name: str | None
    language: str | None
    account_code: str | None
    context: str | None
    exten: str | None
    priority: int | None
    uniqueid: str | None
    linkedid: str | None

    @classmethod
    def from_message(cls, m: Message, prefix: str = "") -> ChannelSnapshot | None:
        """The snapshot under ``prefix`` (``""``, ``"Dest"``, ``"Spyee"``...), ``None`` if absent."""
        channel = m.get(prefix + "Channel")
        if channel is None:
            return None
        g = m.get
        return cls(
            channel=channel,
            state=_int(g(prefix + "ChannelState")),
            state_desc=g(prefix + "ChannelStateDesc"),
            caller_id_num=g(prefix + "CallerIDNum"),
            caller_id_name=g(prefix + "CallerIDName"),
            connected_line_num=g(prefix + "ConnectedLineNum"),
            connected_line_name=g(prefix + "ConnectedLineName"),
            language=g(prefix + "Language"),
            account_code=g(prefix + "AccountCode"),
            context=g(prefix + "Context"),
            exten=g(prefix + "Exten"),
            priority=_int(g(prefix + "Priority")),
            uniqueid=g(prefix + "Uniqueid"),
            linkedid=g(prefix + "Linkedid"),
        )


_EMPTY_CHANNEL: Final = ChannelSnapshot(
    "", None, None, None, None, None, None, None, None, None, None, None, None, None
)


def _channel(m: Message, prefix: str = "") -> ChannelSnapshot:
    return ChannelSnapshot.from_message(m, prefix) or _EMPTY_CHANNEL


@dataclass(frozen=True, slots=True)
class BridgeSnapshot:
    uniqueid: str
    bridge_type: str | None
    technology: str | None
    creator: str | None
    name: str | None
    num_channels: int | None

    @classmethod
    def from_message(cls, m: Message) -> BridgeSnapshot:
        return cls(
            uniqueid=m.get("BridgeUniqueid", "") or "",
            bridge_type=m.get("BridgeType"),
            technology=m.get("BridgeTechnology"),
            creator=m.get("BridgeCreator"),
            name=m.get("BridgeName"),
            num_channels=_int(m.get("BridgeNumChannels")),
        )


# ---------------------------------------------------------------- channel lifecycle
@dataclass(frozen=True, slots=True)
class Newchannel:
    message: Message
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> Newchannel:
        return cls(m, _channel(m))


@dataclass(frozen=True, slots=True)
class Newstate:
    message: Message
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> Newstate:
        return cls(m, _channel(m))


@dataclass(frozen=True, slots=True)
class NewCallerid:
    message: Message
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> NewCallerid:
        return cls(m, _channel(m))


@dataclass(frozen=True, slots=True)
class NewConnectedLine:
    message: Message
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> NewConnectedLine:
        return cls(m, _channel(m))


@dataclass(frozen=True, slots=True)
class Hangup:
    """A channel is gone. ``cause`` is Q.850 (16 normal, 17 busy, 19 no answer, 0 unknown...)."""

    message: Message
    channel: ChannelSnapshot
    cause: int | None
    cause_txt: str | None

    @classmethod
    def from_message(cls, m: Message) -> Hangup:
        return cls(m, _channel(m), _int(m.get("Cause")), m.get("Cause-txt"))


@dataclass(frozen=True, slots=True)
class HangupRequest:
    message: Message
    channel: ChannelSnapshot
    cause: int | None

    @classmethod
    def from_message(cls, m: Message) -> HangupRequest:
        return cls(m, _channel(m), _int(m.get("Cause")))


@dataclass(frozen=True, slots=True)
class SoftHangupRequest:
    message: Message
    channel: ChannelSnapshot
    cause: int | None

    @classmethod
    def from_message(cls, m: Message) -> SoftHangupRequest:
        return cls(m, _channel(m), _int(m.get("Cause")))


@dataclass(frozen=True, slots=True)
class OriginateResponse:
    """The outcome of an async Originate. ``response`` is ``Success`` or ``Failure``; ``reason``
    an :class:`OriginateReason` value (0 failure, 3 no answer, 4 answered, 5 busy, 8 congestion)."""

    message: Message
    action_id: str | None
    response: str
    channel: str | None
    context: str | None
    exten: str | None
    application: str | None
    data: str | None
    reason: int | None
    uniqueid: str | None
    caller_id_num: str | None
    caller_id_name: str | None

    @property
    def succeeded(self) -> bool:
        return self.response == "Success"

    @property
    def reason_code(self) -> OriginateReason | None:
        try:
            return None if self.reason is None else OriginateReason(self.reason)
        except ValueError:
            return None

    @classmethod
    def from_message(cls, m: Message) -> OriginateResponse:
        return cls(
            m,
            m.action_id,
            m.get("Response", "") or "",
            m.get("Channel"),
            m.get("Context"),
            m.get("Exten"),
            m.get("Application"),
            m.get("Data"),
            _int(m.get("Reason")),
            m.get("Uniqueid"),
            m.get("CallerIDNum"),
            m.get("CallerIDName"),
        )


# ---------------------------------------------------------------- bridges
@dataclass(frozen=True, slots=True)
class BridgeCreate:
    message: Message
    bridge: BridgeSnapshot

    @classmethod
    def from_message(cls, m: Message) -> BridgeCreate:
        return cls(m, BridgeSnapshot.from_message(m))


@dataclass(frozen=True, slots=True)
class BridgeDestroy:
    message: Message
    bridge: BridgeSnapshot

    @classmethod
    def from_message(cls, m: Message) -> BridgeDestroy:
        return cls(m, BridgeSnapshot.from_message(m))


@dataclass(frozen=True, slots=True)
class BridgeEnter:
    message: Message
    bridge: BridgeSnapshot
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> BridgeEnter:
        return cls(m, BridgeSnapshot.from_message(m), _channel(m))


@dataclass(frozen=True, slots=True)
class BridgeLeave:
    message: Message
    bridge: BridgeSnapshot
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> BridgeLeave:
        return cls(m, BridgeSnapshot.from_message(m), _channel(m))


@dataclass(frozen=True, slots=True)
class LocalBridge:
    message: Message
    local_one: ChannelSnapshot
    local_two: ChannelSnapshot
    context: str | None
    exten: str | None
    local_optimization: bool

    @classmethod
    def from_message(cls, m: Message) -> LocalBridge:
        return cls(
            m,
            _channel(m, "LocalOne"),
            _channel(m, "LocalTwo"),
            m.get("Context"),
            m.get("Exten"),
            (m.get("LocalOptimization") or "").lower() == "yes",
        )


# ---------------------------------------------------------------- dialing
@dataclass(frozen=True, slots=True)
class DialBegin:
    """``channel`` is the dialing (caller) side, ``None`` when Asterisk dials on its own
    (Originate); ``dest`` the dialed leg."""

    message: Message
    channel: ChannelSnapshot | None
    dest: ChannelSnapshot
    dial_string: str | None

    @classmethod
    def from_message(cls, m: Message) -> DialBegin:
        return cls(m, ChannelSnapshot.from_message(m), _channel(m, "Dest"), m.get("DialString"))


@dataclass(frozen=True, slots=True)
class DialState:
    message: Message
    channel: ChannelSnapshot | None
    dest: ChannelSnapshot
    dial_status: str | None

    @classmethod
    def from_message(cls, m: Message) -> DialState:
        return cls(m, ChannelSnapshot.from_message(m), _channel(m, "Dest"), m.get("DialStatus"))


@dataclass(frozen=True, slots=True)
class DialEnd:
    """``dial_status``: ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL..."""

    message: Message
    channel: ChannelSnapshot | None
    dest: ChannelSnapshot
    dial_status: str | None

    @classmethod
    def from_message(cls, m: Message) -> DialEnd:
        return cls(m, ChannelSnapshot.from_message(m), _channel(m, "Dest"), m.get("DialStatus"))


# ---------------------------------------------------------------- media
@dataclass(frozen=True, slots=True)
class MusicOnHoldStart:
    message: Message
    channel: ChannelSnapshot
    moh_class: str | None

    @classmethod
    def from_message(cls, m: Message) -> MusicOnHoldStart:
        return cls(m, _channel(m), m.get("Class"))


@dataclass(frozen=True, slots=True)
class MusicOnHoldStop:
    message: Message
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> MusicOnHoldStop:
        return cls(m, _channel(m))


@dataclass(frozen=True, slots=True)
class MixMonitorStart:
    message: Message
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> MixMonitorStart:
        return cls(m, _channel(m))


@dataclass(frozen=True, slots=True)
class MixMonitorStop:
    message: Message
    channel: ChannelSnapshot

    @classmethod
    def from_message(cls, m: Message) -> MixMonitorStop:
        return cls(m, _channel(m))


@dataclass(frozen=True, slots=True)
class MixMonitorMute:
    """``state``: muted (``State`` 1, or yes/true/on in any case); ``direction``: read, write, both."""

    message: Message
    channel: ChannelSnapshot
    direction: str | None
    state: bool

    @classmethod
    def from_message(cls, m: Message) -> MixMonitorMute:
        muted = (m.get("State") or "").strip().lower() in ("1", "yes", "true", "on")
        return cls(m, _channel(m), m.get("Direction"), muted)


@dataclass(frozen=True, slots=True)
class DTMFBegin:
    message: Message
    channel: ChannelSnapshot
    digit: str
    direction: str | None  # Received / Sent

    @classmethod
    def from_message(cls, m: Message) -> DTMFBegin:
        return cls(m, _channel(m), m.get("Digit", "") or "", m.get("Direction"))


@dataclass(frozen=True, slots=True)
class DTMFEnd:
    message: Message
    channel: ChannelSnapshot
    digit: str
    duration_ms: int | None
    direction: str | None

    @classmethod
    def from_message(cls, m: Message) -> DTMFEnd:
        return cls(m, _channel(m), m.get("Digit", "") or "", _int(m.get("DurationMs")), m.get("Direction"))


# ---------------------------------------------------------------- dialplan
@dataclass(frozen=True, slots=True)
class VarSet:
    message: Message
    channel: ChannelSnapshot | None
    variable: str
    value: str

    @classmethod
    def from_message(cls, m: Message) -> VarSet:
        return cls(m, ChannelSnapshot.from_message(m), m.get("Variable", "") or "", m.get("Value", "") or "")


@dataclass(frozen=True, slots=True)
class Newexten:
    message: Message
    channel: ChannelSnapshot
    extension: str | None
    application: str | None
    app_data: str | None

    @classmethod
    def from_message(cls, m: Message) -> Newexten:
        return cls(m, _channel(m), m.get("Extension"), m.get("Application"), m.get("AppData"))


@dataclass(frozen=True, slots=True)
class AGIExecStart:
    message: Message
    channel: ChannelSnapshot
    command_id: str | None
    command: str | None

    @classmethod
    def from_message(cls, m: Message) -> AGIExecStart:
        return cls(m, _channel(m), m.get("CommandId"), m.get("Command"))


@dataclass(frozen=True, slots=True)
class AGIExecEnd:
    message: Message
    channel: ChannelSnapshot
    command_id: str | None
    command: str | None
    result_code: int | None
    result: str | None

    @classmethod
    def from_message(cls, m: Message) -> AGIExecEnd:
        return cls(
            m, _channel(m), m.get("CommandId"), m.get("Command"), _int(m.get("ResultCode")), m.get("Result")
        )


# ---------------------------------------------------------------- supervision
@dataclass(frozen=True, slots=True)
class ChanSpyStart:
    message: Message
    spyer: ChannelSnapshot
    spyee: ChannelSnapshot | None

    @classmethod
    def from_message(cls, m: Message) -> ChanSpyStart:
        return cls(m, _channel(m, "Spyer"), ChannelSnapshot.from_message(m, "Spyee"))


@dataclass(frozen=True, slots=True)
class ChanSpyStop:
    message: Message
    spyer: ChannelSnapshot
    spyee: ChannelSnapshot | None

    @classmethod
    def from_message(cls, m: Message) -> ChanSpyStop:
        return cls(m, _channel(m, "Spyer"), ChannelSnapshot.from_message(m, "Spyee"))


# ---------------------------------------------------------------- lists and state
@dataclass(frozen=True, slots=True)
class CoreShowChannel:
    message: Message
    action_id: str | None
    channel: ChannelSnapshot
    application: str | None
    application_data: str | None
    duration: str | None  # HH:MM:SS
    bridge_id: str | None

    @classmethod
    def from_message(cls, m: Message) -> CoreShowChannel:
        return cls(
            m,
            m.action_id,
            _channel(m),
            m.get("Application"),
            m.get("ApplicationData"),
            m.get("Duration"),
            m.get("BridgeId") or None,
        )


@dataclass(frozen=True, slots=True)
class CoreShowChannelsComplete:
    message: Message
    action_id: str | None
    list_items: int | None

    @classmethod
    def from_message(cls, m: Message) -> CoreShowChannelsComplete:
        return cls(m, m.action_id, _int(m.get("ListItems")))


@dataclass(frozen=True, slots=True)
class Status:
    message: Message
    action_id: str | None
    channel: ChannelSnapshot
    bridge_id: str | None
    application: str | None
    data: str | None
    seconds: int | None

    @classmethod
    def from_message(cls, m: Message) -> Status:
        return cls(
            m,
            m.action_id,
            _channel(m),
            m.get("BridgeID") or None,
            m.get("Application"),
            m.get("Data"),
            _int(m.get("Seconds")),
        )


@dataclass(frozen=True, slots=True)
class StatusComplete:
    message: Message
    action_id: str | None
    items: int | None

    @classmethod
    def from_message(cls, m: Message) -> StatusComplete:
        return cls(m, m.action_id, _int(m.get("Items") or m.get("ListItems")))


@dataclass(frozen=True, slots=True)
class FullyBooted:
    message: Message
    status: str | None
    uptime: int | None

    @classmethod
    def from_message(cls, m: Message) -> FullyBooted:
        return cls(m, m.get("Status"), _int(m.get("Uptime")))


AMIEvent = (
    Newchannel
    | Newstate
    | NewCallerid
    | NewConnectedLine
    | Hangup
    | HangupRequest
    | SoftHangupRequest
    | OriginateResponse
    | BridgeCreate
    | BridgeDestroy
    | BridgeEnter
    | BridgeLeave
    | LocalBridge
    | DialBegin
    | DialState
    | DialEnd
    | MusicOnHoldStart
    | MusicOnHoldStop
    | MixMonitorStart
    | MixMonitorStop
    | MixMonitorMute
    | DTMFBegin
    | DTMFEnd
    | VarSet
    | Newexten
    | AGIExecStart
    | AGIExecEnd
    | ChanSpyStart
    | ChanSpyStop
    | CoreShowChannel
    | CoreShowChannelsComplete
    | Status
    | StatusComplete
    | FullyBooted
)

_TYPES: tuple[type[AMIEvent], ...] = (
    Newchannel,
    Newstate,
    NewCallerid,
    NewConnectedLine,
    Hangup,
    HangupRequest,
    SoftHangupRequest,
    OriginateResponse,
    BridgeCreate,
    BridgeDestroy,
    BridgeEnter,
    BridgeLeave,
    LocalBridge,
    DialBegin,
    DialState,
    DialEnd,
    MusicOnHoldStart,
    MusicOnHoldStop,
    MixMonitorStart,
    MixMonitorStop,
    MixMonitorMute,
    DTMFBegin,
    DTMFEnd,
    VarSet,
    Newexten,
    AGIExecStart,
    AGIExecEnd,
    ChanSpyStart,
    ChanSpyStop,
    CoreShowChannel,
    CoreShowChannelsComplete,
    Status,
    StatusComplete,
    FullyBooted,
)

E = TypeVar("E", bound=AMIEvent)


@dataclass(frozen=True, slots=True)
class EventGap:
    """Events were missed. ``reason``: ``"link"`` (the AMI link was down from ``since`` to
    ``until``, clock wall time) or ``"overflow"`` (this consumer fell behind and ``dropped``
    events were discarded for it)."""

    reason: str
    since: float
    until: float
    dropped: int = 0


# Event name as Asterisk spells it -> its view's constructor.
EVENT_TYPES: Final[dict[str, Callable[[Message], AMIEvent]]] = {t.__name__: t.from_message for t in _TYPES}


def parse_event(message: Message) -> AMIEvent | None:
    """The typed view of an event message; ``None`` if it is not an event or has no view here."""
    if message.kind != "event":
        return None
    make = EVENT_TYPES.get(message.name or "")
    return None if make is None else make(message)


@dataclass(frozen=True, slots=True)
class ActionResponse:
    """A ``Response:`` message. ``response``: ``Success``, ``Error``, ``Follows``, ``Goodbye``."""

    message: Message
    response: str
    action_id: str | None
    text: str | None  # the ``Message:`` header
    event_list: str | None  # ``start`` when events follow (CoreShowChannels, Status...)

    @property
    def success(self) -> bool:
        return self.response in ("Success", "Follows", "Goodbye")

    @property
    def output(self) -> list[str]:
        """A ``Command`` action's output lines (its ``Output:`` headers)."""
        return self.message.get_all("Output")


def parse_response(message: Message) -> ActionResponse:
    return ActionResponse(
        message,
        message.get("Response", "") or "",
        message.action_id,
        message.get("Message"),
        message.get("EventList"),
    )
