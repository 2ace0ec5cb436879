"""Pure: the simulated PBX's channel and bridge records, and how Asterisk 22 prints them.

A :class:`Channel` carries what AMI shows of a channel (name, state, caller id, connected line,
dialplan position, Uniqueid/Linkedid) and what the simulator needs to run it (variables, DTMF
queue, the bridge it is in). ``snapshot(prefix)`` gives the header block every channel event
starts with, in Asterisk's order (``Channel``, ``ChannelState`` ... ``Linkedid``), with a prefix
for ``Dest``/``LocalOne``/``Spyer``-style events. No I/O and no clock here: times are passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

# Channel states (ast_state): the numbers and names AMI prints.
DOWN: Final = 0
RING: Final = 4
RINGING: Final = 5
UP: Final = 6
BUSY: Final = 7
STATE_DESC: Final = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
}

# Q.850 hangup causes the product meets, with Asterisk's ``Cause-txt``.
CAUSE_TEXT: Final = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
    38: "Network out of order",
}

UNKNOWN: Final = "<unknown>"


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


@dataclass(eq=False, slots=True)
class Bridge:
    """A basic two-party (or more) mixing bridge."""

    uniqueid: str
    members: list[Channel] = field(default_factory=list)
    destroyed: bool = False
    # An attended transfer in progress: called when a member leaves; True if it dealt with it.
    on_leave: Any = None
    held: bool = False  # kept open with one member (a transferee on hold during an Atxfer)

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", UNKNOWN),
            ("BridgeName", UNKNOWN),
            ("BridgeNumChannels", str(len(self.members))),
            ("BridgeVideoSourceMode", "none"),
        ]


@dataclass(eq=False, slots=True)
class Channel:
    """One channel. ``peer`` links the two halves of a Local channel (``;1`` and ``;2``)."""

    name: str
    uniqueid: str
    linkedid: str
    tech: str  # "Local" or "PJSIP"
    device: str  # what DeviceStateChange names: "Local/100@from-pstn", "PJSIP/carrier"
    created: float  # clock.monotonic() at creation
    seq: int  # creation order, for "oldest Linkedid wins" in bridges
    linked_seq: int
    state: int = DOWN
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    caller_num: str = UNKNOWN
    caller_name: str = UNKNOWN
    conn_num: str = UNKNOWN
    conn_name: str = UNKNOWN
    language: str = "en"
    accountcode: str = ""
    dnid: str = ""
    endpoint: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    headers_in: dict[str, str] = field(default_factory=dict)  # SIP headers (PJSIP_HEADER(read,..))
    peer: Channel | None = None
    half: int = 0  # 1 or 2 for Local channels
    app: str = ""  # the application running now (CoreShowChannel / Status)
    appdata: str = ""
    in_dialplan: bool = False  # runs Newexten-driven dialplan (vs an Originate'd application)
    bridge: Bridge | None = None
    bridged_once: bool = False
    pulled: bool = False  # taken out of its dialplan into a bridge by Bridge() from another leg
    soft: bool = False  # a hangup was requested
    soft_event_sent: bool = False
    dying: bool = False
    gone: bool = False
    hangupcause: int = 0
    async_goto: tuple[str, str, int] | None = None
    dtmf: deque[str] = field(default_factory=deque)
    moh_class: str | None = None  # music on hold playing (MusicOnHoldStop due on interruption)
    spies: list[Any] = field(default_factory=list)
    mixmonitor: Any = None
    wake: Any = None  # the asyncio future the current blocking operation waits on (shell side)
    owner: Any = None  # the simulated person or phone attached to this channel, if any
    dial_outcome: Any = None  # future a dialer (Originate/Dial) waits on for answer/busy/...
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        return [
            (prefix + "Channel", self.name),
            (prefix + "ChannelState", str(self.state)),
            (prefix + "ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (prefix + "CallerIDNum", self.caller_num),
            (prefix + "CallerIDName", self.caller_name),
            (prefix + "ConnectedLineNum", self.conn_num),
            (prefix + "ConnectedLineName", self.conn_name),
            (prefix + "Language", self.language),
            (prefix + "AccountCode", self.accountcode),
            (prefix + "Context", self.context),
            (prefix + "Exten", self.exten),
            (prefix + "Priority", str(self.priority)),
            (prefix + "Uniqueid", self.uniqueid),
            (prefix + "Linkedid", self.linkedid),
        ]

    @property
    def alive(self) -> bool:
        return not self.gone

    @property
    def media(self) -> bool:
        """Whether audio and DTMF pass between this channel and the party on its far end.

        A SIP channel carries media only once it is Up: Asterisk sends no early media (no 183
        with SDP) on its own, so before the 200 OK the phone hears nothing and has nowhere to send
        RTP, and even RTP aimed at the channel's port is not read (``tests/fixtures/unanswered``).
        A Local channel passes frames between its halves in any state."""
        return self.state == UP or self.tech == "Local"


def parse_callerid(text: str) -> tuple[str, str]:
    """``"Alice" <5551230001>`` -> (num, name); ``5551230001`` -> (num, '')."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, num = text[:-1].partition("<")
        name = name.strip().strip('"')
        return num.strip(), name
    return text, ""


def duration_hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
