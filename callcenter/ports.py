"""Pure: every seam between the controller's parts, declared once, with the values that cross them.

A shell depends on these Protocols, never on the class on the other side; tests put a fake in
(``tests/fakes.py``). Who implements each:

==================  =====================================================================
``Clock``           ``callcenter.clock`` (``RealClock``, ``ScaledClock``, ``FakeClock``, ``AutojumpClock``)
``AMILink``         ``callcenter.asterisk.ami_client.AMIClient``
``ActionSender``    the action half of ``AMILink`` (recorder, config reload)
``AGISession``      ``callcenter.asterisk.agi_server.AGISession`` (one FastAGI connection)
``ChannelRegistry`` ``callcenter.asterisk.channels.LiveChannels`` (which FastAGI sessions to believe)
``RecordSink``      ``callcenter.store.writer.CallLogWriter`` (``submit`` never blocks)
``CallDistributor`` ``callcenter.acd.service.ACD`` as the IVR hands calls to it
``AgentCalls``      ``callcenter.acd.service.ACD`` as the monitor asks which call an agent is on
``AgentPool``       ``callcenter.outbound.pool.AcdAgentPool`` (agents for a campaign)
``ACDStore``        ``callcenter.store.acd.PgACDStore`` (what a restart reads back)
``PurgeStore``      ``callcenter.store.recordings.PgPurgeStore``
``CustomerDirectory`` ``callcenter.store.customers.CustomerDirectory``
``CallHistory``     ``callcenter.store.dispositions.PgCallHistory`` (screen pop, disposition reports)
``Reloader``        ``callcenter.config.render.AMIReloader``
==================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from callcenter.asterisk.agi import AGIReply
from callcenter.asterisk.ami import Message
from callcenter.asterisk.events import E, EventGap
from callcenter.outbound.dialer import AgentLoad, Attempt
from callcenter.reporting.records import LogRecord

Headers = Mapping[str, object] | Iterable[tuple[str, object]]


# ------------------------------------------------------------------------------------ time
class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time in UNIX seconds."""

    def monotonic(self) -> float:
        """A reading that never goes backwards (seconds)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


# ------------------------------------------------------------------------------------ Asterisk
class ActionSender(Protocol):
    async def send_action(
        self, action: str, headers: Headers = (), *, timeout: float | None = None
    ) -> Message:
        """Send one AMI action and return its response (``AMIActionError`` on ``Response: Error``)."""


class AMILink(ActionSender, Protocol):
    """The AMI link: actions, events by name (raw) or by view type (typed), and gaps."""

    async def send_action_list(
        self, action: str, headers: Headers = (), *, timeout: float | None = None
    ) -> list[Message]:
        """An action answered by a list of events, its ``...Complete`` event last."""

    def subscribe(self, event: str, callback: Callable[[Message], object]) -> Callable[[], None]:
        """``callback(message)`` for every event named ``event``; returns the unsubscriber."""

    def on(self, kind: type[E], callback: Callable[[E], object]) -> Callable[[], None]:
        """``callback(view)`` with the typed view (``callcenter.asterisk.events``) of every event of
        ``kind``; returns the unsubscriber."""

    def on_gap(self, callback: Callable[[EventGap], object]) -> Callable[[], None]:
        """``callback(gap)`` when the link was down and events were missed."""


class AGISession(Protocol):
    """One FastAGI connection: the channel's ``agi_*`` environment and its commands."""

    @property
    def env(self) -> Mapping[str, str]: ...

    async def command(self, command: str, *args: str | int, timeout: float) -> AGIReply:
        """Send one command, return its reply; ``AGIHangupError`` when the channel is gone."""

    async def get_variable(self, name: str, *, allow_dead: bool = False) -> str | None: ...

    async def stream_file(
        self, name: str, escape_digits: str = "", *, timeout: float | None = None
    ) -> Any: ...

    async def exec(self, application: str, *args: str, timeout: float | None = None) -> int: ...

    async def hangup(self, channel: str | None = None) -> None: ...


class ChannelRegistry(Protocol):
    """The live channels the AMI reported, asked by the FastAGI server before any route runs."""

    async def confirm(self, uniqueid: str, channel: str, *, timeout: float) -> bool:
        """Whether ``channel`` is a live channel with ``uniqueid`` (waits at most ``timeout``
        seconds for a channel whose ``Newchannel`` has not been read yet)."""


# ------------------------------------------------------------------------------------ the call log
class RecordSink(Protocol):
    def submit(self, record: LogRecord) -> None:
        """Queue ``record`` for the call log; never blocks, never loses it."""


# ------------------------------------------------------------------------------------ inbound -> ACD
@dataclass(frozen=True, slots=True)
class QueuedCall:
    """What the IVR (or the dialer) hands to the ACD.

    ``call_id``: the controller's id (safe characters; recordings are named by it). ``channel``: the
    caller's channel name (``PJSIP/carrier-00000001``), ``uniqueid`` its Uniqueid if known.
    ``queue``: a queue id from config. ``skills``: the call's own skill -> minimum level (the
    queue's are added, the higher level wins). ``priority``: the call's own (the queue's is added).
    ``data``: caller data for the agent's screen-pop (set as CC_CUSTOMER, JSON).
    ``redirect_to_hold``: send the caller to ``cc-hold`` (False when the dialplan already does).
    ``reserved_agent``: the agent held for this call (``ACD.hold_agent``) is offered it without routing."""

    call_id: str
    channel: str
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    language: str | None = None
    caller_number: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    uniqueid: str | None = None
    redirect_to_hold: bool = True
    direction: str = "inbound"  # "outbound": a dialer call connected through the ACD
    campaign_id: str | None = None
    caller_name: str | None = None  # the caller ID name (cleaned), for the agent's screen
    did: str | None = None  # the number the caller dialled
    reserved_agent: str | None = None  # the agent the dialer held for this attempt: it gets the call


class CallDistributor(Protocol):
    async def enqueue(self, call: QueuedCall) -> None: ...

    async def accept_callback(self, call_id: str, number: str) -> None: ...


class AgentCalls(Protocol):
    def call_of_agent(self, agent_id: str) -> str | None: ...


# ------------------------------------------------------------------------------------ stores
@dataclass(frozen=True, slots=True)
class StoredCall:
    call_id: str
    queue: str
    queued_at: float
    priority: int = 0
    language: str | None = None


@dataclass(frozen=True, slots=True)
class StoredState:
    """What the database remembers after a restart."""

    agents: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> (state, reason)
    calls: Mapping[str, StoredCall] = field(default_factory=dict)  # open calls that were queued
    # Every call the log still has open (no disposition), queued or not: those the PBX no
    # longer has ended while no controller watched.
    open_calls: tuple[str, ...] = ()


class ACDStore(Protocol):
    async def load(self, *, timeout: float) -> StoredState: ...


@dataclass(frozen=True, slots=True)
class StoredCallback:
    """A callback a caller asked for, as the database keeps it until it is done."""

    call_id: str
    queue: str
    number: str  # E.164, allowed by the dial-out policy when it was asked for
    queued_at: float  # the caller's place in line
    priority: int = 0
    attempts: int = 0
    next_at: float | None = None  # not before (a retry, a closed calling window)


class CallbackStore(Protocol):
    """Pending callbacks in the database: they survive a restart and end exactly once."""

    async def add(self, callback: StoredCallback, *, timeout: float) -> bool:
        """Keep ``callback`` (once: a second add of the same call changes nothing); False when
        its number is on a do-not-call list (nothing is kept then)."""

    async def progress(
        self, call_id: str, state: str, *, attempts: int, next_at: float | None, timeout: float
    ) -> None:
        """``pending`` (again, not before ``next_at``), ``done``, ``failed`` or ``cancelled``; a
        callback that ended stays ended."""

    async def pending(self, *, timeout: float) -> list[StoredCallback]:
        """The callbacks still to make, oldest place first (those now on a do-not-call list are
        cancelled instead)."""


class PurgeStore(Protocol):
    async def expired(self, before: float) -> list[tuple[str, str]]:
        """(recording_id, relative path) of recordings started before ``before``, not yet deleted."""

    async def mark_deleted(self, recording_ids: list[str], at: float) -> None: ...


class Customer(Protocol):
    """A caller found by number."""

    @property
    def name(self) -> str | None: ...
    @property
    def tier(self) -> str | None: ...
    @property
    def account(self) -> str | None: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


class LookupResult(Protocol):
    """``outcome``: found / not_found / timeout / error / invalid."""

    @property
    def outcome(self) -> str: ...
    @property
    def customer(self) -> Customer | None: ...


class CustomerDirectory(Protocol):
    """Caller lookup by E.164 number: never raises for a database problem, answers within its own
    timeout."""

    async def lookup(self, phone_e164: str) -> LookupResult: ...


class CallHistory(Protocol):
    """What the call log tells an agent's screen and the disposition reports (each bounded by
    ``timeout``; a database problem raises ``StoreError``)."""

    async def call_context(self, call_id: str, *, timeout: float) -> Mapping[str, Any]:
        """``did``, ``caller_number``, ``started_at`` and ``ivr_path`` (list of node steps)."""

    async def recent_calls(
        self, caller_number: str, *, exclude: str, limit: int, timeout: float
    ) -> list[Mapping[str, Any]]:
        """The caller's previous calls, newest first, with their dispositions."""

    async def disposition_counts(
        self,
        start: float,
        end: float,
        *,
        queues: Iterable[str] | None,
        agents: Iterable[str] | None,
        timeout: float,
    ) -> list[Mapping[str, Any]]:
        """Calls per (queue | campaign | agent, code) with dispositions given in [start, end)."""


class Reloader(Protocol):
    """Reloads one Asterisk module's configuration; raises ``CallcenterError`` on failure."""

    async def __call__(self, module: str) -> None: ...


# ------------------------------------------------------------------------------------ outbound -> ACD
class AgentPool(Protocol):
    """The ACD's side of outbound: who can take a campaign's calls, and connecting one."""

    def load(self, campaign: str) -> AgentLoad:
        """Agents serving ``campaign`` now: logged in, idle, and how long each busy one has been busy."""

    async def connect(self, campaign: str, *, channel: str, attempt: Attempt, timeout: float) -> str | None:
        """Put an agent on ``channel`` (a person who just answered) within ``timeout`` seconds and
        return the agent's id; None if no agent could be connected in time (the call is then
        abandoned and the identification message played)."""

    def reserve(self, campaign: str, attempt_id: str, *, agent_id: str | None = None) -> str | None:
        """Hold an agent (``agent_id``, else one the pool picks) for ``attempt_id`` before it is
        dialled, so that a person who answers has one; None when none may be held (the attempt is
        then not dialled)."""

    def release(self, attempt_id: str, *, reason: str = "hold_released") -> None:
        """The attempt ended without a person for its held agent: free the agent at once."""
