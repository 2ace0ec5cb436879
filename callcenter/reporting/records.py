"""Pure: the call log's record types, their table layout, and the disposition vocabulary.

Every part of the controller that has something to remember about a call emits one of these
records through ``callcenter.store.writer.CallLogWriter.submit(record)``. Records are frozen
dataclasses; times are UNIX seconds (``float``, the ``now`` the pure core is given); the writer
turns them into ``timestamptz`` on the way into PostgreSQL.

    record             table              key                    how a repeat is written
    CallRecord         calls              call_id                merged (upsert, see below)
    LegRecord          call_legs          (call_id, leg_id)      merged
    CallEvent          call_events        (call_id, seq)         first one kept (insert, no-op on repeat)
    AgentStateChange   agent_states       (agent_id, seq)        first one kept
    RecordingRecord    recordings         recording_id           merged
    MonitorSession     monitor_sessions   session_id             merged

Merged tables hold exactly one row per key that is updated as the call progresses: each record
carries ``at`` (the emitter's time, stored as ``revision``); a column left ``None`` means "not known
by this record" and never erases what is stored; for a column both sides know, the record with the
later ``at`` wins (the row keeps the latest ``at`` it has seen). So the *final* disposition wins in
any arrival order, replaying records (after a crash) changes nothing, and records that arrive in the
order they were made (the writer keeps that order, replays included) give every column its latest
known value. (A late record older than the row's newest only fills columns still unknown.)

``seq`` of events and agent states, when left ``None``, is assigned by the writer at ``submit`` time
from ``SeqSource`` (microseconds of ``now``, strictly increasing), before the record reaches the
spool: a replay carries the same key.

Campaign attempts are not records here: an attempt must be stored *before* its Originate is sent
(a restart must never dial a contact twice), so the dialer writes ``campaign_attempts``
synchronously itself (``callcenter.store.campaigns``). Any other part that wants a table of its own
logged through the writer declares a record class with a ``TABLE`` (a ``TableSpec``) and a
``row()`` method; nothing here needs to know it (the spool stores each batch's table layout).

What a caller chose (caller ID number and name, the number dialled) is :func:`caller_text` before
it is logged or stored: control characters (line breaks, escapes, bidi overrides) removed and the
length capped (``CALLER_TEXT_MAX``); ``CallRecord`` applies it to its caller columns itself.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final, Literal, Protocol

CALLER_TEXT_MAX: Final = 80  # caller ID number or name, number dialled: longer is cut
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def caller_text(value: str, limit: int = CALLER_TEXT_MAX) -> str:
    """``value`` from a caller (caller ID, name, digits) made safe to log and store: control and
    format characters (categories Cc, Cf: CR/LF, ESC, bidi overrides) removed, then cut to
    ``limit`` characters."""
    value = value[: limit * 4]  # a 60 KB caller ID is not scanned whole
    value = _CONTROL.sub("", value)
    if not value.isascii():
        value = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf"))
    return value[:limit]


class Status(StrEnum):
    """An agent's state (the ACD's agent table, ``callcenter.acd.agents``); the call log stores it too."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    NOT_READY = "not_ready"


# A value as it travels through the queue and the spool (JSON-safe); "ts" columns are floats.
Wire = str | int | float | bool | None
Row = tuple[Wire, ...]
ColumnKind = Literal["text", "int", "float", "bool", "ts", "json"]
Detail = Mapping[str, str | int | float | bool | None]


class Disposition(StrEnum):
    """How a call ended, in words a supervisor recognises. Every finished call has exactly one."""

    ANSWERED = "answered"  # an agent (or the callee, outbound) talked to the caller
    ABANDONED_IVR = "abandoned_ivr"  # the caller hung up in the IVR, before reaching a queue
    ABANDONED_QUEUE = "abandoned_queue"  # hung up while waiting; "short" is decided by the report
    OVERFLOWED = "overflowed"  # left its queue by an overflow rule to a destination outside the center
    CALLBACK_REQUESTED = "callback_requested"  # caller left, keeping its place for a callback
    CALLBACK_COMPLETED = "callback_completed"  # the callback call that reached the customer
    VOICEMAIL = "voicemail"  # ended in a voicemail box
    AFTER_HOURS = "after_hours"  # closed (hours/holiday): message, voicemail or hang-up
    TRANSFERRED = "transferred"  # handed off outside the center (to a number) by an agent or the IVR
    FAILED = "failed"  # technical failure: no route, channel error, controller lost the call
    # ended while no controller watched it (found gone from the PBX after a restart): its end,
    # and so how it ended, was not seen
    ENDED_UNSEEN = "ended_unseen"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class EventKind(StrEnum):
    """Advisory names for ``CallEvent.kind`` (the column is free text: new kinds need no migration)."""

    CALL_START = "call_start"
    IVR_NODE = "ivr_node"  # node id in ``node``; input/outcome in ``detail``
    IVR_INPUT = "ivr_input"
    LOOKUP = "lookup"  # caller lookup (screen-pop): found / not found / timeout
    QUEUE_ENTER = "queue_enter"
    QUEUE_EXIT = "queue_exit"  # detail.reason: answered / abandoned / overflow / callback / timeout
    OFFER = "offer"  # the call offered to ``agent_id`` (agent rung)
    RONA = "rona"  # ring, no answer: the agent did not answer in time
    ANSWER = "answer"  # agent answered, bridged
    TRANSFER = "transfer"  # detail: kind blind/attended, target
    HOLD = "hold"
    UNHOLD = "unhold"
    PCI_PAUSE = "pci_pause"
    PCI_RESUME = "pci_resume"
    RECORDING_START = "recording_start"
    RECORDING_STOP = "recording_stop"
    MONITOR_START = "monitor_start"
    MONITOR_MODE = "monitor_mode"
    MONITOR_END = "monitor_end"
    OVERFLOW = "overflow"
    CALLBACK_REQUEST = "callback_request"
    CALLBACK_ATTEMPT = "callback_attempt"
    VOICEMAIL = "voicemail"
    HANGUP = "hangup"  # detail: cause (Q.850), side caller/agent/system
    NOTE = "note"


# Q.850 hangup causes Asterisk sets on a leg it ends itself because the leg is dead.
MEDIA_TIMEOUT_CAUSE = 44  # no RTP for the endpoint's rtp_timeout (res_pjsip_sdp_rtp: REQUESTED_CHAN_UNAVAIL)
SESSION_TIMEOUT_CAUSE = 18  # no session refresh in timers_sess_expires (pjsip's 408 -> NO_USER_RESPONSE)
_DEAD_LEG: Mapping[int, str] = {
    MEDIA_TIMEOUT_CAUSE: "media_timeout",
    SESSION_TIMEOUT_CAUSE: "session_timeout",
}


def dead_leg(side: str, cause: int | None) -> str | None:
    """``CallRecord.hangup_by`` for an answered leg that Asterisk ended as dead (``caller_media_timeout``,
    ``agent_session_timeout``), or ``None`` when ``cause`` says the person hung up."""
    reason = _DEAD_LEG.get(cause or 0)
    return f"{side}_{reason}" if reason is not None else None


def ended_by(side: str, cause: int | None) -> str:
    """``CallRecord.hangup_by`` when ``side`` (caller, agent) left an answered call: the side, or
    why Asterisk ended it (``dead_leg``)."""
    return dead_leg(side, cause) or side


# How the reports count agent states (``AgentStateChange.state``): busy (handling) and idle
# (ready); paused, not_ready and logged_out are not counted in occupancy.
BUSY_STATES: tuple[str, ...] = tuple(
    s.value for s in (Status.RESERVED, Status.RINGING, Status.ON_CALL, Status.WRAP_UP)
)
IDLE_STATES: tuple[str, ...] = (Status.AVAILABLE.value,)


# --------------------------------------------------------------------------- table layout
@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind


@dataclass(frozen=True)
class TableSpec:
    """How one record type lands in one table: the columns ``row()`` yields, in order."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    mode: Literal["insert", "upsert"]
    revision: str | None = None  # upsert: the column whose larger value wins ("revision")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def index(self, name: str) -> int:
        return self.column_names.index(name)

    def to_wire(self) -> list[object]:
        """A JSON-safe description (the spool stores it with each batch)."""
        return [
            self.name,
            self.mode,
            self.revision,
            list(self.key),
            [[c.name, c.kind] for c in self.columns],
        ]

    @classmethod
    def from_wire(cls, data: Sequence[object]) -> TableSpec:
        name, mode, revision, key, cols = data
        if not isinstance(name, str) or mode not in ("insert", "upsert"):
            raise ValueError("bad table spec")
        if revision is not None and not isinstance(revision, str):
            raise ValueError("bad table spec revision")
        if not isinstance(key, list) or not isinstance(cols, list):
            raise ValueError("bad table spec key/columns")
        columns = []
        for item in cols:
            if not (isinstance(item, list) and len(item) == 2):
                raise ValueError("bad column")
            cname, kind = item
            if not isinstance(cname, str) or kind not in ("text", "int", "float", "bool", "ts", "json"):
                raise ValueError("bad column")
            columns.append(Column(cname, kind))
        return cls(name, tuple(columns), tuple(str(k) for k in key), mode, revision)


class LogRecord(Protocol):
    """What the writer accepts: a ``TABLE`` and a ``row()`` matching ``TABLE.columns``."""

    TABLE: ClassVar[TableSpec]

    def row(self) -> Row: ...


def _cols(*spec: str) -> tuple[Column, ...]:
    out = []
    for item in spec:
        name, _, kind = item.partition(":")
        out.append(Column(name, kind or "text"))  # type: ignore[arg-type]
    return tuple(out)


def _json(detail: Detail | None) -> str | None:
    if not detail:
        return None
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))


def _str(value: StrEnum | str | None) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- records
CALLS = TableSpec(
    "calls",
    _cols(
        "call_id",
        "direction",
        "did",
        "caller_number",
        "called_number",
        "queue",
        "overflow_queue",
        "agent_id",
        "disposition",
        "started_at:ts",
        "ivr_ended_at:ts",
        "queued_at:ts",
        "answered_at:ts",
        "ended_at:ts",
        "talk_seconds:float",
        "hold_seconds:float",
        "wrapup_seconds:float",
        "transfers:int",
        "hangup_cause:int",
        "hangup_by",
        "language",
        "priority:int",
        "campaign_id",
        "callback_of",
        "data:json",
        "revision:float",
    ),
    key=("call_id",),
    mode="upsert",
    revision="revision",
)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The one ``calls`` row of a call, sent whole or in parts as the call progresses.

    Phases: ``started_at`` (call arrives) -> ``ivr_ended_at`` -> ``queued_at`` (entered the first
    queue: the call is *offered* to the queue then) -> ``answered_at`` (agent connected) -> ``ended_at``
    (last leg hung up). ``talk_seconds`` excludes hold; ``hold_seconds`` is the total on hold;
    ``wrapup_seconds`` the answering agent's wrap-up after this call. ``queue`` is the first queue,
    ``overflow_queue`` where an overflow sent it. ``transfers`` counts transfers; ``callback_of``
    links a callback call to the call that requested it."""

    TABLE: ClassVar[TableSpec] = CALLS

    call_id: str
    at: float
    direction: Direction | str | None = None
    did: str | None = None
    caller_number: str | None = None
    called_number: str | None = None
    queue: str | None = None
    overflow_queue: str | None = None
    agent_id: str | None = None
    disposition: Disposition | None = None
    started_at: float | None = None
    ivr_ended_at: float | None = None
    queued_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    talk_seconds: float | None = None
    hold_seconds: float | None = None
    wrapup_seconds: float | None = None
    transfers: int | None = None
    hangup_cause: int | None = None
    hangup_by: str | None = None  # caller / agent / system, or <side>_media_timeout / _session_timeout
    language: str | None = None
    priority: int | None = None
    campaign_id: str | None = None
    callback_of: str | None = None
    data: Detail | None = None

    def __post_init__(self) -> None:
        for name in ("did", "caller_number", "called_number"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, caller_text(value))

    def row(self) -> Row:
        return (
            self.call_id,
            _str(self.direction),
            self.did,
            self.caller_number,
            self.called_number,
            self.queue,
            self.overflow_queue,
            self.agent_id,
            _str(self.disposition),
            self.started_at,
            self.ivr_ended_at,
            self.queued_at,
            self.answered_at,
            self.ended_at,
            self.talk_seconds,
            self.hold_seconds,
            self.wrapup_seconds,
            self.transfers,
            self.hangup_cause,
            self.hangup_by,
            self.language,
            self.priority,
            self.campaign_id,
            self.callback_of,
            _json(self.data),
            self.at,
        )


CALL_LEGS = TableSpec(
    "call_legs",
    _cols(
        "call_id",
        "leg_id",
        "kind",
        "channel",
        "agent_id",
        "endpoint",
        "started_at:ts",
        "answered_at:ts",
        "ended_at:ts",
        "hangup_cause:int",
        "revision:float",
    ),
    key=("call_id", "leg_id"),
    mode="upsert",
    revision="revision",
)


@dataclass(frozen=True, slots=True)
class LegRecord:
    """One channel of a call (``leg_id`` = its Uniqueid / the ChannelId we chose). ``kind``: caller,
    agent, outbound, supervisor, transfer."""

    TABLE: ClassVar[TableSpec] = CALL_LEGS

    call_id: str
    leg_id: str
    at: float
    kind: str | None = None
    channel: str | None = None
    agent_id: str | None = None
    endpoint: str | None = None
    started_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    hangup_cause: int | None = None

    def row(self) -> Row:
        return (
            self.call_id,
            self.leg_id,
            self.kind,
            self.channel,
            self.agent_id,
            self.endpoint,
            self.started_at,
            self.answered_at,
            self.ended_at,
            self.hangup_cause,
            self.at,
        )


CALL_EVENTS = TableSpec(
    "call_events",
    _cols("call_id", "seq:int", "at:ts", "kind", "queue", "agent_id", "node", "detail:json"),
    key=("call_id", "seq"),
    mode="insert",
)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Something that happened to a call: IVR node, queue entry/exit, offer, RONA, transfer, hold,
    PCI pause, monitoring ... (``EventKind``). ``seq`` orders a call's events; leave it ``None``
    and the writer assigns one."""

    TABLE: ClassVar[TableSpec] = CALL_EVENTS

    call_id: str
    at: float
    kind: EventKind | str
    queue: str | None = None
    agent_id: str | None = None
    node: str | None = None
    detail: Detail | None = None
    seq: int | None = None

    def row(self) -> Row:
        return (
            self.call_id,
            self.seq,
            self.at,
            str(self.kind),
            self.queue,
            self.agent_id,
            self.node,
            _json(self.detail),
        )


AGENT_STATES = TableSpec(
    "agent_states",
    _cols("agent_id", "seq:int", "at:ts", "state", "reason", "queue", "call_id"),
    key=("agent_id", "seq"),
    mode="insert",
)


@dataclass(frozen=True, slots=True)
class AgentStateChange:
    """An agent entered ``state`` (``Status``) at ``at``, for ``reason``
    (pause code, "rona", "login" ...). The state lasts until the agent's next change."""

    TABLE: ClassVar[TableSpec] = AGENT_STATES

    agent_id: str
    at: float
    state: Status | str
    reason: str | None = None
    queue: str | None = None
    call_id: str | None = None
    seq: int | None = None

    def row(self) -> Row:
        return (self.agent_id, self.seq, self.at, str(self.state), self.reason, self.queue, self.call_id)


RECORDINGS = TableSpec(
    "recordings",
    _cols(
        "recording_id",
        "call_id",
        "agent_id",
        "queue",
        "path",
        "started_at:ts",
        "ended_at:ts",
        "duration_seconds:float",
        "pci_paused_seconds:float",
        "deleted_at:ts",
        "revision:float",
    ),
    key=("recording_id",),
    mode="upsert",
    revision="revision",
)


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    """A recording file of a call (path relative to the recordings directory); ``deleted_at`` is
    set by the retention purge."""

    TABLE: ClassVar[TableSpec] = RECORDINGS

    recording_id: str
    at: float
    call_id: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    path: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration_seconds: float | None = None
    pci_paused_seconds: float | None = None
    deleted_at: float | None = None

    def row(self) -> Row:
        return (
            self.recording_id,
            self.call_id,
            self.agent_id,
            self.queue,
            self.path,
            self.started_at,
            self.ended_at,
            self.duration_seconds,
            self.pci_paused_seconds,
            self.deleted_at,
            self.at,
        )


MONITOR_SESSIONS = TableSpec(
    "monitor_sessions",
    _cols(
        "session_id",
        "supervisor_id",
        "agent_id",
        "call_id",
        "mode",
        "outcome",
        "started_at:ts",
        "ended_at:ts",
        "revision:float",
    ),
    key=("session_id",),
    mode="upsert",
    revision="revision",
)


@dataclass(frozen=True, slots=True)
class MonitorSession:
    """A supervisor's listen/whisper/barge attempt or session. ``mode`` is the latest mode (each change
    is also a ``monitor_mode`` CallEvent); ``outcome``: ok, unauthorised, bad_pin, locked_out,
    agent_idle, ended."""

    TABLE: ClassVar[TableSpec] = MONITOR_SESSIONS

    session_id: str
    at: float
    supervisor_id: str | None = None
    agent_id: str | None = None
    call_id: str | None = None
    mode: str | None = None
    outcome: str | None = None
    started_at: float | None = None
    ended_at: float | None = None

    def row(self) -> Row:
        return (
            self.session_id,
            self.supervisor_id,
            self.agent_id,
            self.call_id,
            self.mode,
            self.outcome,
            self.started_at,
            self.ended_at,
            self.at,
        )


TABLES: tuple[TableSpec, ...] = (CALLS, CALL_LEGS, CALL_EVENTS, AGENT_STATES, RECORDINGS, MONITOR_SESSIONS)


# --------------------------------------------------------------------------- pure helpers
@dataclass
class SeqSource:
    """Strictly increasing sequence numbers from ``now``: microseconds since the epoch, bumped by one
    when two come in the same microsecond. Unique across controller restarts as long as the wall
    clock does not jump back by more than the time between them."""

    last: int = 0

    def next(self, now: float) -> int:
        value = int(now * 1_000_000)
        if value <= self.last:
            value = self.last + 1
        self.last = value
        return value


def merge_rows(spec: TableSpec, rows: Iterable[Row]) -> list[Row]:
    """Fold rows of an upsert table that share a key into one row each, exactly as the database
    merges them (see the module docstring): first-seen key order is kept."""
    if spec.mode != "upsert" or spec.revision is None:
        return list(rows)
    key_idx = [spec.index(k) for k in spec.key]
    rev = spec.index(spec.revision)
    merged: dict[tuple[Wire, ...], Row] = {}
    for row in rows:
        k = tuple(row[i] for i in key_idx)
        old = merged.get(k)
        merged[k] = row if old is None else merge_two(old, row, rev)
    return list(merged.values())


def merge_two(old: Row, new: Row, rev: int) -> Row:
    """Merge two rows of the same key: known values win over None; where both know, the later
    revision wins (ties: ``new``). The revision itself becomes the larger one."""
    r_old, r_new = old[rev], new[rev]
    newer_wins = (r_new if r_new is not None else float("-inf")) >= (  # type: ignore[operator]
        r_old if r_old is not None else float("-inf")
    )
    first, second = (new, old) if newer_wins else (old, new)
    return tuple(a if a is not None else b for a, b in zip(first, second, strict=True))


@dataclass(frozen=True)
class Group:
    """Rows of one table inside a batch."""

    spec: TableSpec
    rows: list[Row] = field(default_factory=list)


def group_rows(items: Iterable[tuple[TableSpec, Row]]) -> list[Group]:
    """Split a run of (table, row) pairs into per-table groups (first-seen table order), merging
    the rows of upsert tables that share a key."""
    by_table: dict[TableSpec, list[Row]] = {}
    for spec, row in items:
        rows = by_table.get(spec)
        if rows is None:
            rows = by_table[spec] = []
        rows.append(row)
    return [Group(spec, merge_rows(spec, rows)) for spec, rows in by_table.items()]
