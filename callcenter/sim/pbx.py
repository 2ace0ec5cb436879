"""Shell: the simulated PBX engine: channels, Local pairs, bridges, the dialplan interpreter and
its applications, Originate, hangup propagation, ChanSpy, MixMonitor, DTMF.

It emits AMI events (name, privilege, ordered headers) to its listeners in the order a real
Asterisk 22 does for the same situation (see ``tests/fixtures/asterisk-traces``). Each channel
that runs something has one runner task; a blocking application waits on ``_wait`` which wakes on
timeout (the injected :class:`~callcenter.clock.Clock`), hangup, redirect, being pulled into a
bridge, or DTMF. Everything runs on one event loop, so event order is deterministic.

Hangup rules learnt from the traces:
* ending a Local half queues a ``HangupRequest`` (with its cause) on the other half first;
* a channel running dialplan that ends because of a hangup request, or runs ``Hangup()``, first
  emits ``SoftHangupRequest`` ``Cause: 16``; a channel running an Originate'd application does not;
* the ``Hangup`` cause is the channel's cause if set (Busy 17, Congestion 34, no answer 19,
  unavailable 3, a peer's request), else 16 for a channel that was bridged, else 0; running off
  the end of the dialplan sets none (``SoftHangupRequest`` Cause 16, then ``Hangup`` Cause 0);
* a member hanging up dissolves a two-party bridge with its cause, which the other member keeps
  (the agent leg of a caller ended by the RTP timeout, ``media_timeout``, ends with 44 too).

What an unanswered SIP channel does (``tests/fixtures/unanswered``): applications and AGI commands
run as on an answered one (a prompt takes its length, ``GET DATA`` times out), but no media passes:
the person on it hears no prompt and no music, and no DTMF reaches it (see ``Channel.media``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from callcenter.clock import Clock
from callcenter.errors import CallcenterError
from callcenter.sim.channel import (
    BUSY,
    DOWN,
    RING,
    RINGING,
    UNKNOWN,
    UP,
    Bridge,
    Channel,
    cause_text,
    parse_callerid,
)
from callcenter.sim.dialplan import Dialplan, Step
from callcenter.sim.expr import UnknownFunctionError, substitute
from callcenter.sim.sounds import SoundLibrary, write_recording

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
Listener = Callable[[str, str, Headers], None]

CALL: Final = "call,all"
DIALPLAN: Final = "dialplan,all"
AGI_PRIV: Final = "agi,all"
DTMF_PRIV: Final = "dtmf,all"

ANSWER_WAIT: Final = 0.5  # Answer() on a channel not yet up waits up to 500 ms for media
MEDIA_TIMEOUT_CAUSE: Final = 44  # AST_CAUSE_REQUESTED_CHAN_UNAVAIL, set by the RTP timeout
SPY_ATTACH: Final = 0.1  # ChanSpyStart comes about 100 ms after ChanSpy() starts

STOP: Final = "stop"  # an application asks the dialplan loop to end (Hangup)

App = Callable[["PBX", Channel, str], Awaitable[Any]]
"""A dialplan application: ``app(pbx, chan, data)`` (see :mod:`callcenter.sim.apps`)."""


class SimulatorError(CallcenterError):
    """The simulated PBX met something it does not model (reported with context and priority)."""

    code = "sim_error"


@dataclass(frozen=True, slots=True)
class DialplanFault:
    """An unknown application or function met while running the dialplan."""

    channel: str
    context: str
    exten: str
    priority: int
    message: str


class Endpoint(Protocol):
    """A SIP endpoint the simulator can call (an agent's phone, an outbound target)."""

    @property
    def registered(self) -> bool: ...

    def incoming(self, pbx: PBX, chan: Channel) -> Awaitable[None]:
        """Play the phone's part on a new outgoing channel: ring, answer/busy/no answer, talk,
        hang up. Runs as its own task."""


@dataclass(slots=True)
class DialResult:
    status: str  # ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL
    cause: int = 0


@dataclass(slots=True)
class OriginateRequest:
    channel: str
    context: str | None = None
    exten: str | None = None
    priority: int = 1
    application: str | None = None
    data: str = ""
    timeout_ms: int = 30000
    callerid: str | None = None
    variables: list[tuple[str, str]] = field(default_factory=list)
    channel_id: str | None = None
    other_channel_id: str | None = None
    action_id: str | None = None
    is_async: bool = False


class OriginateRefused(Exception):
    """Originate refused synchronously; ``message`` is Asterisk's text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def split_args(data: str) -> list[str]:
    """Split application data on commas as Asterisk's standard app args do (quotes and
    parentheses group, backslash escapes)."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in data:
        if escaped:
            cur.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            continue
        if ch == '"':
            quoted = not quoted
            continue
        if not quoted:
            if ch == "(":
                depth += 1
            elif ch == ")" and depth:
                depth -= 1
            elif ch == "," and depth == 0:
                out.append("".join(cur))
                cur = []
                continue
        cur.append(ch)
    out.append("".join(cur))
    return out


class _Env:
    """Variable and function resolution for one channel (the ``expr.Env`` seam)."""

    __slots__ = ("chan", "pbx")

    def __init__(self, pbx: PBX, chan: Channel) -> None:
        self.pbx = pbx
        self.chan = chan

    def variable(self, name: str) -> str:
        c = self.chan
        if name in c.variables:
            return c.variables[name]
        special = {
            "CHANNEL": lambda: c.name,
            "UNIQUEID": lambda: c.uniqueid,
            "EXTEN": lambda: c.exten,
            "CONTEXT": lambda: c.context,
            "PRIORITY": lambda: str(c.priority),
            "CALLERID(num)": lambda: c.caller_num,
            "HANGUPCAUSE": lambda: str(c.hangupcause),
            "EPOCH": lambda: str(int(self.pbx.clock.now())),
            "LANGUAGE": lambda: c.language,
        }
        if name in special:
            return special[name]()
        return self.pbx.dialplan.globals.get(name, "")

    def function(self, name: str, args: str) -> str:
        c = self.chan
        parts = split_args(args)
        first = parts[0].strip() if parts else ""
        if name == "CALLERID":
            if first in ("num", "number", "ani"):
                return "" if c.caller_num == UNKNOWN else c.caller_num
            if first == "name":
                return "" if c.caller_name == UNKNOWN else c.caller_name
            if first == "all":
                return f'"{c.caller_name}" <{c.caller_num}>'
            return ""
        if name == "CONNECTEDLINE":
            return c.conn_num if first.startswith("num") else c.conn_name
        if name == "CHANNEL":
            table = {
                "name": c.name,
                "uniqueid": c.uniqueid,
                "linkedid": c.linkedid,
                "endpoint": c.endpoint,
                "language": c.language,
                "state": str(c.state),
                "channeltype": c.tech,
                "context": c.context,
                "exten": c.exten,
                "musicclass": c.variables.get("CHANNEL(musicclass)", "default"),
            }
            return table.get(first, "")
        if name == "PJSIP_HEADER":
            header = parts[1].strip() if len(parts) > 1 else ""
            return c.headers_in.get(header, "")
        if name == "LEN":
            return str(len(args))
        if name == "ISNULL":
            return "1" if args == "" else "0"
        if name == "EXISTS":
            return "0" if args == "" else "1"
        if name == "TOUPPER":
            return args.upper()
        if name == "TOLOWER":
            return args.lower()
        if name == "IF":
            cond, _, rest = args.partition("?")
            yes, _, no = rest.partition(":")
            return yes if cond.strip() not in ("", "0") else no
        if name == "CUT":
            var = first
            delim = parts[1] if len(parts) > 1 and parts[1] else "-"
            fieldspec = parts[2] if len(parts) > 2 else "1"
            pieces = self.variable(var).split(delim)
            try:
                idx = int(fieldspec) - 1
            except ValueError:
                return ""
            return pieces[idx] if 0 <= idx < len(pieces) else ""
        raise UnknownFunctionError(name)


class PBX:
    """The engine. Build it with a parsed :class:`Dialplan` and the table of dialplan
    applications it runs (name -> coroutine, :data:`callcenter.sim.apps.APPLICATIONS`); drive it
    through the AMI server, the people models, or directly (tests)."""

    def __init__(
        self,
        dialplan: Dialplan,
        *,
        applications: Mapping[str, App],
        clock: Clock,
        seed: int = 0,
        sounds: SoundLibrary | None = None,
        recordings_dir: Path | None = None,
        endpoints: dict[str, Endpoint] | None = None,
        agi_connect_timeout: float = 5.0,
        agi_io_timeout: float = 300.0,
        trunk_endpoint: str = "carrier",
    ) -> None:
        self.dialplan = dialplan
        self.applications: Mapping[str, App] = applications
        self.clock = clock
        self.random = random.Random(seed)  # noqa: S311 - a seeded simulation, not cryptography
        self._uuid_random = random.Random(seed ^ 0x5EED)  # noqa: S311
        self.sounds = sounds or SoundLibrary()
        self.recordings_dir = recordings_dir
        self.endpoints: dict[str, Endpoint] = dict(endpoints or {})
        self.agi_connect_timeout = agi_connect_timeout
        self.agi_io_timeout = agi_io_timeout
        self.trunk_endpoint = trunk_endpoint
        self.listeners: list[Listener] = []
        self.channels: dict[str, Channel] = {}
        self.by_uid: dict[str, Channel] = {}
        self.faults: list[DialplanFault] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self._uid_seq = itertools.count()
        self._chan_seq = itertools.count()
        self._local_seq = itertools.count()
        self._pjsip_seq = itertools.count()
        self._device_count: dict[str, int] = {}
        self.booted_at = clock.monotonic()
        # machine_messages_*: messages played to an answering machine, after its greeting and
        # beep (recorded whole) or over them (cut off).
        self.stats = {
            "channels": 0,
            "originates": 0,
            "events": 0,
            "machine_messages_whole": 0,
            "machine_messages_cut": 0,
        }
        self.voicemail_seq = itertools.count(1)
        self.closed = False
        # AGI client hook (set by the SimulatedPBX): (pbx, chan, url) -> AGISTATUS
        self.agi_runner: Callable[[PBX, Channel, str], Awaitable[Any]] | None = None
        # features.conf's [featuremap] atxfer: AMI Atxfer is refused without it, as in Asterisk
        self.atxfer_code: str | None = None

    # ------------------------------------------------------------------ events
    def emit(self, name: str, privilege: str, headers: Headers) -> None:
        self.stats["events"] += 1
        for listener in self.listeners:
            listener(name, privilege, headers)

    def chan_event(
        self, name: str, chan: Channel, extra: Headers | None = None, privilege: str = CALL
    ) -> None:
        if not self.listeners:
            self.stats["events"] += 1
            return
        headers = [("Privilege", privilege), *chan.snapshot()]
        if extra:
            headers.extend(extra)
        self.emit(name, privilege, headers)

    def varset(self, chan: Channel, name: str, value: str) -> None:
        chan.variables[name] = value
        self.chan_event("VarSet", chan, [("Variable", name), ("Value", value)], DIALPLAN)

    def _device_state(self, device: str, state: str) -> None:
        self.emit("DeviceStateChange", CALL, [("Privilege", CALL), ("Device", device), ("State", state)])

    # ------------------------------------------------------------------ tasks
    def spawn(self, coro: Awaitable[Any], *, name: str | None = None) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("simulator task %s failed", task.get_name(), exc_info=exc)
            self.faults.append(DialplanFault("", "", "", 0, f"internal error: {exc!r}"))

    async def close(self) -> None:
        for chan in list(self.channels.values()):
            if chan.mixmonitor is not None:
                chan.mixmonitor.stop(self)  # a recording in progress is written as far as it got
        self.closed = True
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.channels.clear()
        self.by_uid.clear()

    # ------------------------------------------------------------------ channels
    def _new_uid(self) -> str:
        return f"{int(self.clock.now())}.{next(self._uid_seq)}"

    def new_channel(
        self,
        name: str,
        *,
        tech: str,
        device: str,
        uniqueid: str | None = None,
        linked: Channel | None = None,
        state: int = DOWN,
        context: str = "default",
        exten: str = "s",
    ) -> Channel:
        uid = uniqueid or self._new_uid()
        seq = next(self._chan_seq)
        chan = Channel(
            name=name,
            uniqueid=uid,
            linkedid=linked.linkedid if linked else uid,
            tech=tech,
            device=device,
            created=self.clock.monotonic(),
            seq=seq,
            linked_seq=linked.linked_seq if linked else seq,
            state=state,
            context=context,
            exten=exten,
        )
        self.channels[name] = chan
        self.by_uid[uid] = chan
        self.stats["channels"] += 1
        return chan

    def find_channel(self, ident: str) -> Channel | None:
        """By name, then by Uniqueid (AMI accepts either, as the traces show)."""
        chan = self.channels.get(ident)
        if chan is None:
            chan = self.by_uid.get(ident)
        if chan is not None and chan.gone:
            return None
        return chan

    def set_state(self, chan: Channel, state: int) -> None:
        if chan.state == state:
            return
        chan.state = state
        self.chan_event("Newstate", chan)

    def _device_use(self, chan: Channel, delta: int) -> None:
        count = self._device_count.get(chan.device, 0) + delta
        self._device_count[chan.device] = count
        if delta > 0:
            self._device_state(chan.device, "INUSE")
        elif count <= 0:
            self._device_count.pop(chan.device, None)
            self._device_state(chan.device, "NOT_INUSE")

    # ------------------------------------------------------------------ waiting
    @staticmethod
    def interrupted(chan: Channel, dtmf: bool = False) -> str | None:
        if chan.gone or chan.soft:
            return "hangup"
        if chan.async_goto is not None:
            return "goto"
        if chan.pulled:
            return "pulled"
        if dtmf and chan.dtmf:
            return "dtmf"
        return None

    @staticmethod
    def wake(chan: Channel) -> None:
        fut = chan.wake
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def wait(
        self, chan: Channel, seconds: float | None, *, dtmf: bool = False, bridged: bool = False
    ) -> str:
        """Block ``chan`` for ``seconds`` (None: until interrupted). Returns ``timeout``,
        ``hangup``, ``goto``, ``pulled``, ``dtmf`` or (``bridged=True``) ``unbridged``."""
        why = self.interrupted(chan, dtmf)
        if bridged and why == "pulled":
            why = None
        if why:
            return why
        if bridged and chan.bridge is None:
            return "unbridged"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chan.wake = fut
        try:
            if seconds is None:
                await fut
            else:
                sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
                try:
                    await asyncio.wait((fut, sleeper), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
        finally:
            if chan.wake is fut:
                chan.wake = None
        why = self.interrupted(chan, dtmf)
        if bridged and why == "pulled":
            why = None
        if why:
            return why
        if bridged and chan.bridge is None:
            return "unbridged"
        return "timeout"

    async def wait_gone(self, chan: Channel) -> None:
        while not chan.gone:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            chan.extra.setdefault("gone_waiters", []).append(fut)
            await fut

    # ------------------------------------------------------------------ hangup machinery
    def queue_hangup(self, chan: Channel, cause: int | None) -> None:
        """A hangup request reaches ``chan`` (from its Local peer or the network)."""
        if chan.gone:
            return
        extra = [("Cause", str(cause))] if cause is not None else []
        self.chan_event("HangupRequest", chan, extra)
        if cause and not chan.hangupcause:
            chan.hangupcause = cause
        chan.soft = True
        self.wake(chan)

    def request_hangup(self, chan: Channel, cause: int | None = None) -> None:
        """The AMI Hangup action (or a person hanging up): soft hangup of ``chan``."""
        if chan.gone:
            return
        if chan.in_dialplan and not chan.soft_event_sent and not chan.pulled:
            chan.soft_event_sent = True
            self.chan_event("SoftHangupRequest", chan, [("Cause", "16")])
        if cause and not chan.hangupcause:
            chan.hangupcause = cause
        chan.soft = True
        self.wake(chan)
        # A leg still ringing (an Originate or a Dial waits for its answer) is cancelled at once,
        # as Asterisk's dialling loop reads the hang-up (OriginateResponse Reason 1).
        self.signal_outcome(chan, DialResult("HANGUP", cause or 16))

    def hangup(self, chan: Channel) -> None:
        """Destroy ``chan`` now: propagate to its Local peer, end spies, emit Hangup."""
        if chan.gone:
            return
        cause = chan.hangupcause or (16 if chan.bridged_once else 0)
        chan.hangupcause = cause
        chan.dying = True
        if chan.bridge is not None:
            self.leave_bridge(chan.bridge, chan)
        peer = chan.peer
        if peer is not None and not peer.gone and not peer.dying:
            if chan.half == 2 and chan.variables.get("DIALSTATUS"):
                self.varset(peer, "CHANLOCALSTATUS", chan.variables["DIALSTATUS"])
            self.queue_hangup(peer, cause)
            if chan.half == 2:
                # A ;2 that ends before answering: whoever dials the ;1 (Originate, Dial) learns it now.
                self.signal_outcome(peer, DialResult("HANGUP", cause))
        for spy in list(chan.spies):
            spy.stop()
        if chan.moh_class is not None:
            self.moh_stop(chan)
        if chan.mixmonitor is not None:
            chan.mixmonitor.stop(self)
        chan.gone = True
        self.chan_event("Hangup", chan, [("Cause", str(cause)), ("Cause-txt", cause_text(cause))])
        self.channels.pop(chan.name, None)
        if self.by_uid.get(chan.uniqueid) is chan:
            del self.by_uid[chan.uniqueid]
        if chan.extra.get("in_use"):
            self._device_use(chan, -1)
        outcome = chan.dial_outcome
        if outcome is not None and not outcome.done():
            outcome.set_result(DialResult("HANGUP", cause))
        self.wake(chan)
        for fut in chan.extra.pop("gone_waiters", []):
            if not fut.done():
                fut.set_result(None)
        self.notify(chan, "hangup", str(cause))

    def moh_start(self, chan: Channel, klass: str) -> None:
        chan.moh_class = klass or "default"
        self.chan_event("MusicOnHoldStart", chan, [("Class", chan.moh_class)])
        if chan.media:  # MusicOnHold() does not answer: an unanswered phone hears nothing
            self.notify(chan, "moh", chan.moh_class)

    def moh_stop(self, chan: Channel) -> None:
        if chan.moh_class is None:
            return
        chan.moh_class = None
        self.chan_event("MusicOnHoldStop", chan)
        self.notify(chan, "moh_stop")

    # ------------------------------------------------------------------ answer / progress
    def answer(self, chan: Channel) -> bool:
        """Raise ``chan`` to Up; for a Local ``;2``, the ``;1`` answers too and its dialer learns.
        Returns True if the state changed."""
        if chan.state == UP:
            return False
        self.set_state(chan, UP)
        peer = chan.peer
        if chan.half == 2 and peer is not None and not peer.gone:
            self.set_state(peer, UP)
            self.signal_outcome(peer, DialResult("ANSWER"))
        elif chan.tech != "Local":
            self.signal_outcome(chan, DialResult("ANSWER"))
        return True

    def ringing(self, chan: Channel) -> None:
        """The callee side signals ringing: a Local ``;1`` (or a SIP channel) goes Ringing."""
        target = chan.peer if chan.half == 2 and chan.peer is not None else chan
        if target.gone or target.state in (RINGING, UP):
            return
        self.set_state(target, RINGING)
        if not target.extra.get("in_use"):
            target.extra["in_use"] = True
            self._device_use(target, +1)
        ringing = target.extra.get("on_ringing")
        if ringing is not None:
            ringing()

    def signal_outcome(self, chan: Channel, result: DialResult) -> None:
        fut = chan.dial_outcome
        if fut is not None and not fut.done():
            fut.set_result(result)

    def busy(self, chan: Channel, status: str, cause: int) -> None:
        """Busy()/Congestion(): state Busy, tell the dialer, keep the cause for the Hangup."""
        self.set_state(chan, BUSY)
        chan.hangupcause = cause
        target = chan.peer if chan.half == 2 and chan.peer is not None else chan
        self.signal_outcome(target, DialResult(status, cause))

    # ------------------------------------------------------------------ Local channels
    def parse_local(self, dialstring: str) -> tuple[str, str]:
        resource = dialstring.split("/", 1)[1] if "/" in dialstring else dialstring
        resource = resource.split("/", 1)[0]  # Local/x@ctx/n options
        exten, _, context = resource.partition("@")
        return exten, context or "default"

    def new_local_pair(
        self,
        dialstring: str,
        *,
        uid1: str | None = None,
        uid2: str | None = None,
        linked: Channel | None = None,
    ) -> tuple[Channel, Channel]:
        exten, context = self.parse_local(dialstring)
        seq = next(self._local_seq)
        base = f"Local/{exten}@{context}-{seq:08x}"
        device = f"Local/{exten}@{context}"
        one = self.new_channel(
            base + ";1",
            tech="Local",
            device=device,
            uniqueid=uid1,
            linked=linked,
            context=context,
            exten=exten,
        )
        two = self.new_channel(
            base + ";2",
            tech="Local",
            device=device,
            uniqueid=uid2,
            linked=one,
            state=RING,
            context=context,
            exten=exten,
        )
        one.peer, two.peer = two, one
        one.half, two.half = 1, 2
        if linked is not None:
            self.inherit(linked, one)
            self.inherit(linked, two)
        self.chan_event("Newchannel", one)
        self.chan_event("Newchannel", two)
        return one, two

    def local_bridge_event(self, one: Channel, two: Channel) -> None:
        headers: Headers = [("Privilege", CALL), *one.snapshot("LocalOne"), *two.snapshot("LocalTwo")]
        headers += [("Context", two.context), ("Exten", two.exten), ("LocalOptimization", "Yes")]
        self.emit("LocalBridge", CALL, headers)

    def set_callerid(self, chan: Channel, num: str, name: str) -> None:
        chan.caller_num, chan.caller_name = num or UNKNOWN, name or UNKNOWN
        self.chan_event("NewCallerid", chan, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])

    def set_connected(self, chan: Channel, num: str, name: str, *, propagate: bool = False) -> None:
        chan.conn_num, chan.conn_name = num or UNKNOWN, name or UNKNOWN
        self.chan_event("NewConnectedLine", chan)
        peer = chan.peer
        if propagate and chan.half == 1 and peer is not None and not peer.gone:
            # A Local ;1's connected line reaches the ;2 as its caller id when ;2 next runs.
            peer.extra["pending_cid"] = (chan.conn_num, chan.conn_name)

    # ------------------------------------------------------------------ Originate
    def check_originate(self, req: OriginateRequest) -> None:
        """What Asterisk refuses before queueing (raises :class:`OriginateRefused`)."""
        if not req.channel or "/" not in req.channel:
            raise OriginateRefused("Channel not specified")
        tech = req.channel.split("/", 1)[0]
        if tech not in ("Local", "PJSIP", "SIP"):
            raise OriginateRefused("Originate failed")
        if req.application is None:
            if not req.exten or not self.dialplan.exists(req.context or "default", req.exten, req.priority):
                raise OriginateRefused("Extension does not exist.")

    def originate_response(self, req: OriginateRequest, ok: bool, reason: int, chan: Channel | None) -> None:
        headers: Headers = [("Privilege", CALL)]
        if req.action_id is not None:
            headers.append(("ActionID", req.action_id))
        headers.append(("Response", "Success" if ok else "Failure"))
        headers.append(("Channel", chan.name if ok and chan is not None else req.channel))
        if req.application is not None:
            headers += [("Application", req.application), ("Data", req.data)]
        else:
            headers += [("Context", req.context or ""), ("Exten", req.exten or "")]
        headers.append(("Reason", str(reason)))
        if ok and chan is not None:
            uid = chan.uniqueid
        else:
            uid = req.channel_id or UNKNOWN
        num, name = parse_callerid(req.callerid) if req.callerid else (UNKNOWN, UNKNOWN)
        if ok and chan is not None:
            num, name = chan.caller_num, chan.caller_name
        headers += [("Uniqueid", uid), ("CallerIDNum", num or UNKNOWN), ("CallerIDName", name or UNKNOWN)]
        self.emit("OriginateResponse", CALL, headers)

    async def originate(self, req: OriginateRequest) -> tuple[bool, int]:
        """Run an Originate (after :meth:`check_originate`). Returns (answered, reason); emits
        the events and the ``OriginateResponse`` (for async ones)."""
        self.stats["originates"] += 1
        tech = req.channel.split("/", 1)[0]
        if tech == "Local":
            return await self._originate_local(req)
        return await self._originate_sip(req)

    async def _originate_local(self, req: OriginateRequest) -> tuple[bool, int]:
        one, two = self.new_local_pair(req.channel, uid1=req.channel_id, uid2=req.other_channel_id)
        self.chan_event(
            "Newexten",
            one,
            [("Extension", one.exten), ("Application", "AppDial2"), ("AppData", "(Outgoing Line)")],
            DIALPLAN,
        )
        num, name = parse_callerid(req.callerid) if req.callerid else ("", "")
        for half in (one, two):
            for k, v in req.variables:
                self.varset(half, k, v)
            if req.callerid:
                self.set_callerid(half, num, name)
                half.conn_num, half.conn_name = num or UNKNOWN, name or UNKNOWN
                self.chan_event("NewConnectedLine", half)
        if not self.dialplan.exists(two.context, two.exten, 1):
            # The Local channel's own extension does not exist: ;2 dies at once.
            one.dying = True
            self.hangup(two)
            self._device_state(one.device, "INVALID")
            self.hangup(one)
            if req.is_async:
                self.originate_response(req, False, 0, None)
            self._device_state(one.device, "INVALID")
            return False, 0
        self.local_bridge_event(one, two)
        self.emit(
            "DialBegin",
            CALL,
            [("Privilege", CALL), *one.snapshot("Dest"), ("DialString", f"{two.exten}@{two.context}")],
        )
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[DialResult] = loop.create_future()
        one.dial_outcome = outcome

        def on_ringing() -> None:
            self.emit(
                "DialState", CALL, [("Privilege", CALL), *one.snapshot("Dest"), ("DialStatus", "RINGING")]
            )

        one.extra["on_ringing"] = on_ringing
        self.start_dialplan(two, two.context, two.exten, 1)
        result = await self._await_outcome(outcome, req.timeout_ms / 1000.0)
        one.dial_outcome = None
        one.extra.pop("on_ringing", None)
        if result.status == "ANSWER":
            self.emit("DialEnd", CALL, [("Privilege", CALL), *one.snapshot("Dest"), ("DialStatus", "ANSWER")])
            if req.is_async:
                self.originate_response(req, True, 4, one)
            for half in (two, one):
                if not half.extra.get("in_use"):
                    half.extra["in_use"] = True
                    self._device_use(half, +1)
            if req.application is not None:
                self.spawn(self.run(one, app=(req.application, req.data)), name=one.name)
            else:
                self.start_dialplan(one, req.context or "default", req.exten or "s", req.priority)
            return True, 4
        # Failure: busy / congestion / no answer / the ;2 ended unanswered (Reason 0, then DialEnd
        # NOANSWER, as tests/fixtures/unanswered shows).
        reason = {"BUSY": 5, "CONGESTION": 8, "TIMEOUT": 3, "HANGUP": 0}.get(result.status, 1)
        if result.status in ("BUSY", "CONGESTION"):
            self.emit(
                "DialEnd", CALL, [("Privilege", CALL), *one.snapshot("Dest"), ("DialStatus", result.status)]
            )
        if one.gone:
            if req.is_async:
                self.originate_response(req, False, reason, None)
            return False, reason
        one.dying = True
        if result.status == "TIMEOUT":
            one.hangupcause = 19
            self.queue_hangup(two, 19)
            if req.is_async:
                self.originate_response(req, False, reason, None)
            await self.wait_gone(two)
        else:
            self.queue_hangup(two, 0)
            await self.wait_gone(two)
            if req.is_async:
                self.originate_response(req, False, reason, None)
            if result.status == "HANGUP":
                self.emit(
                    "DialEnd", CALL, [("Privilege", CALL), *one.snapshot("Dest"), ("DialStatus", "NOANSWER")]
                )
        self.hangup(one)
        return False, reason

    async def _await_outcome(self, outcome: asyncio.Future[DialResult], timeout: float) -> DialResult:
        sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, timeout)))
        try:
            await asyncio.wait((outcome, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if outcome.done():
            return outcome.result()
        outcome.cancel()
        return DialResult("TIMEOUT", 19)

    def endpoint_for(self, dialstring: str) -> tuple[str, Endpoint | None, str]:
        """(endpoint name, endpoint, number) for ``PJSIP/agent1001``, ``PJSIP/5551234@carrier``
        or ``PJSIP/carrier/sip:5551234@host``."""
        resource = dialstring.split("/", 1)[1] if "/" in dialstring else dialstring
        number = ""
        if "/" in resource:
            name, _, rest = resource.partition("/")
            number = rest.removeprefix("sip:").split("@", 1)[0]
        elif "@" in resource:
            number, _, name = resource.partition("@")
        else:
            name = resource
        endpoint = self.endpoints.get(name)
        if endpoint is None and number:
            endpoint = self.endpoints.get("*")  # the default trunk takes any number@trunk
        return name, endpoint, number

    def notify(self, chan: Channel, what: str, detail: str = "") -> None:
        """Tell the simulated person or phone on ``chan`` what happens to it."""
        owner = chan.owner
        if owner is not None:
            owner.on_event(self, chan, what, detail)

    def new_sip_channel(
        self, endpoint: str, *, uniqueid: str | None = None, linked: Channel | None = None, state: int = DOWN
    ) -> Channel:
        seq = next(self._pjsip_seq)
        chan = self.new_channel(
            f"PJSIP/{endpoint}-{seq:08x}",
            tech="PJSIP",
            device=f"PJSIP/{endpoint}",
            uniqueid=uniqueid,
            linked=linked,
            state=state,
        )
        chan.endpoint = endpoint
        if linked is not None:
            self.inherit(linked, chan)
        return chan

    # ------------------------------------------------------------------ attended transfer (Atxfer)
    async def attended_transfer(
        self, transferer: Channel, context: str, exten: str, timeout: float = 15.0
    ) -> None:
        """``transferer`` (bridged with the transferee) calls ``exten@context``; the transferee
        holds with music. The transferer hanging up completes the transfer (also before the
        target answers); the target failing or hanging up first returns the transferer."""
        orig = transferer.bridge
        if orig is None:
            return
        transferee = next((m for m in orig.members if m is not transferer), None)
        if transferee is None:
            return
        orig.held = True
        self.move_out(orig, transferer)
        self.moh_start(transferee, "default")
        one, two = self.new_local_pair(f"Local/{exten}@{context}", linked=transferer)
        self.chan_event(
            "Newexten",
            one,
            [("Extension", one.exten), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")],
            DIALPLAN,
        )
        self.local_bridge_event(one, two)
        self.emit(
            "DialBegin",
            CALL,
            [
                ("Privilege", CALL),
                *transferer.snapshot(),
                *one.snapshot("Dest"),
                ("DialString", f"{exten}@{context}"),
            ],
        )
        outcome: asyncio.Future[DialResult] = asyncio.get_running_loop().create_future()
        one.dial_outcome = outcome
        self.start_dialplan(two, context, exten, 1)
        second = self.new_bridge()
        transferer.bridge = second  # the transferer waits in its own bridge while the target rings
        second.members.append(transferer)

        def back_to_caller() -> None:
            if transferer in second.members:
                self.move_out(second, transferer)
            if transferee.gone or orig.destroyed:
                orig.held = False
                if not transferer.gone:
                    self.request_hangup(transferer)
                return
            self.moh_stop(transferee)
            orig.held = False
            if not transferer.gone and not transferer.soft:
                self.enter_bridge(orig, transferer)

        def complete() -> None:
            orig.held = False
            if transferee.gone or orig.destroyed:
                if not one.gone:
                    self.request_hangup(one)
                return
            self.moh_stop(transferee)
            self.enter_bridge(orig, one)
            self.varset(transferee, "BRIDGEPEER", one.name)
            self.varset(one, "BRIDGEPEER", transferee.name)
            self.emit(
                "AttendedTransfer",
                CALL,
                [("Privilege", CALL), ("Result", "Success"), *transferer.snapshot("OrigTransferer"),
                 *orig.headers(), *one.snapshot("TransferTarget"), ("DestType", "Bridge"),
                 ("DestBridgeUniqueid", orig.uniqueid), ("IsExternal", "No")],
            )  # fmt: skip

        def on_leave(leaver: Channel) -> bool:
            if leaver is transferer:
                self.move_out(second, transferer)
                if one in second.members:
                    self.move_out(second, one)
                    complete()
                else:
                    second.on_leave = None
                return True
            if leaver is one:
                second.on_leave = None
                self.move_out(second, one)
                back_to_caller()
                return True
            return False

        second.on_leave = on_leave
        result = await self._await_outcome(outcome, timeout)
        one.dial_outcome = None
        if result.status != "ANSWER" or one.gone:
            self.emit(
                "DialEnd",
                CALL,
                [
                    ("Privilege", CALL),
                    *transferer.snapshot(),
                    *one.snapshot("Dest"),
                    ("DialStatus", "NOANSWER" if result.status == "TIMEOUT" else result.status),
                ],
            )
            second.on_leave = None
            if not one.gone:
                self.hangup(one)
            if transferer.gone or transferer.soft:
                if transferer in second.members:
                    self.move_out(second, transferer)
                orig.held = False
                if not transferee.gone:
                    self.request_hangup(transferee)
            else:
                back_to_caller()
            return
        self.emit(
            "DialEnd",
            CALL,
            [("Privilege", CALL), *transferer.snapshot(), *one.snapshot("Dest"), ("DialStatus", "ANSWER")],
        )
        one.pulled = True
        self.spawn(self.run(one), name=one.name)
        if transferer.gone or transferer.soft:
            second.on_leave = None
            if transferer in second.members:
                self.move_out(second, transferer)
            complete()
            return
        self.enter_bridge(second, one)
        self.varset(transferer, "BRIDGEPEER", one.name)
        self.varset(one, "BRIDGEPEER", transferer.name)

    async def _originate_sip(self, req: OriginateRequest) -> tuple[bool, int]:
        name, endpoint, number = self.endpoint_for(req.channel)
        if endpoint is None or not endpoint.registered:
            if req.is_async:
                self.originate_response(req, False, 0, None)
            return False, 0
        chan = self.new_sip_channel(name, uniqueid=req.channel_id)
        chan.context = req.context or "default"
        chan.exten = req.exten or "s"
        chan.extra["number"] = number
        self.chan_event("Newchannel", chan)
        for k, v in req.variables:
            self.varset(chan, k, v)
        if req.callerid:
            num, cname = parse_callerid(req.callerid)
            self.set_callerid(chan, num, cname)
        outcome: asyncio.Future[DialResult] = asyncio.get_running_loop().create_future()
        chan.dial_outcome = outcome
        self.spawn(endpoint.incoming(self, chan), name=f"phone {chan.name}")
        result = await self._await_outcome(outcome, req.timeout_ms / 1000.0)
        chan.dial_outcome = None
        if result.status == "ANSWER" and not chan.gone:
            if req.is_async:
                self.originate_response(req, True, 4, chan)
            if req.application is not None:
                self.spawn(self.run(chan, app=(req.application, req.data)), name=chan.name)
            else:
                self.start_dialplan(chan, req.context or "default", req.exten or "s", req.priority)
            return True, 4
        reason = {"BUSY": 5, "CONGESTION": 8, "TIMEOUT": 3}.get(result.status, 1)
        if not chan.gone:
            chan.hangupcause = chan.hangupcause or {"BUSY": 17, "CONGESTION": 34, "TIMEOUT": 19}.get(
                result.status, 16
            )
            self.hangup(chan)
        if req.is_async:
            self.originate_response(req, False, reason, None)
        return False, reason

    # ------------------------------------------------------------------ inbound (a caller from the trunk)
    def inbound_call(
        self,
        did: str,
        *,
        caller_num: str,
        caller_name: str = "",
        context: str,
        owner: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Channel:
        chan = self.new_sip_channel(self.trunk_endpoint, state=RING)
        chan.context, chan.exten, chan.dnid = context, did, did
        chan.caller_num, chan.caller_name = caller_num or UNKNOWN, caller_name or UNKNOWN
        chan.headers_in = dict(headers or {"User-Agent": "callcenter-sim"})
        chan.owner = owner
        self.chan_event("Newchannel", chan)
        self.varset(chan, "SIPDOMAIN", "127.0.0.1")
        chan.extra["in_use"] = True
        self.start_dialplan(chan, context, did, 1)
        return chan

    def phone_call(
        self,
        endpoint: str,
        exten: str,
        *,
        context: str,
        caller_num: str = "",
        caller_name: str = "",
        owner: Any = None,
    ) -> Channel:
        """A registered phone (``endpoint``) dials ``exten``: its INVITE makes a SIP channel in
        state Ring that runs ``context`` (the endpoint's). Nothing answers it but the dialplan
        (``Answer()``, or an application that answers by itself) or an AGI ``ANSWER``; until then
        the phone hears no prompt and its DTMF does not pass. If the dialplan ends first, the
        phone's call fails (603 Decline; ``Hangup`` with the channel's cause in state Ring)."""
        chan = self.new_sip_channel(endpoint, state=RING)
        chan.context, chan.exten, chan.dnid = context, exten, exten
        chan.caller_num, chan.caller_name = caller_num or UNKNOWN, caller_name or UNKNOWN
        chan.headers_in = {"User-Agent": "callcenter-sim-phone"}
        chan.owner = owner
        self.chan_event("Newchannel", chan)
        self.start_dialplan(chan, context, exten, 1)
        return chan

    def remote_hangup(self, chan: Channel) -> None:
        """The far end hangs up (SIP BYE): ``HangupRequest`` without a cause."""
        if chan.gone:
            return
        self.chan_event("HangupRequest", chan)
        chan.soft = True
        self.wake(chan)

    def media_timeout(self, chan: Channel) -> None:
        """The leg's far end went silent for its endpoint's ``rtp_timeout``: Asterisk sets cause
        44 and soft-hangs it up (``SoftHangupRequest`` with flag 1, AST_SOFTHANGUP_DEV:
        res_pjsip_sdp_rtp.c rtp_check_timeout); a bridge it is in passes the cause on."""
        if chan.gone:
            return
        chan.hangupcause = MEDIA_TIMEOUT_CAUSE
        self.chan_event("SoftHangupRequest", chan, [("Cause", "1")])
        chan.soft = True
        self.wake(chan)

    def send_dtmf(
        self, chan: Channel, digit: str, duration_ms: int = 100, direction: str = "Received"
    ) -> bool:
        """A digit arrives on ``chan`` from its far end (``Received``: events, then the digit is
        queued for the application), or is sent to the far end (``Sent``: events only). A channel
        that carries no media (an unanswered SIP channel) passes no digit either way and shows no
        event; returns whether the digit passed."""
        if chan.gone or not chan.media:
            return False
        self.chan_event("DTMFBegin", chan, [("Digit", digit), ("Direction", direction)], DTMF_PRIV)
        self.chan_event(
            "DTMFEnd",
            chan,
            [("Digit", digit), ("DurationMs", str(duration_ms)), ("Direction", direction)],
            DTMF_PRIV,
        )
        if direction == "Received":
            chan.dtmf.append(digit)
            self.wake(chan)
            self.notify(chan, "dtmf", digit)
        return True

    # ------------------------------------------------------------------ runners
    def start_dialplan(self, chan: Channel, context: str, exten: str, priority: int) -> asyncio.Task[Any]:
        return self.spawn(self.run(chan, goto=(context, exten, priority)), name=chan.name)

    async def run(
        self, chan: Channel, *, goto: tuple[str, str, int] | None = None, app: tuple[str, str] | None = None
    ) -> None:
        """The channel's one runner: an Originate'd application, then (after a Redirect) or
        instead, the dialplan; then the hangup."""
        try:
            if app is not None:
                chan.app, chan.appdata = app
                await self.exec_app(chan, app[0], app[1])
                if not chan.soft and not chan.hangupcause and chan.async_goto is None:
                    chan.hangupcause = 16  # the application simply ended: normal clearing
                if chan.async_goto is not None and not chan.gone:
                    goto, chan.async_goto = chan.async_goto, None
                    chan.soft = False
            if goto is not None and not chan.gone:
                await self._dialplan_loop(chan, *goto)
        finally:
            if not chan.gone and not self.closed:
                if chan.pulled:
                    await self._held_in_bridge(chan)
                if not chan.gone:
                    if chan.in_dialplan and chan.soft and not chan.soft_event_sent:
                        chan.soft_event_sent = True
                        self.chan_event("SoftHangupRequest", chan, [("Cause", "16")])
                    self.hangup(chan)

    async def _held_in_bridge(self, chan: Channel) -> None:
        """A channel pulled into a bridge by another leg's Bridge(): it stays until the bridge
        ends (then it is hung up), or a Redirect takes it elsewhere."""
        while not chan.gone and chan.pulled:
            why = await self.wait(chan, None, bridged=True)
            if why == "goto" and chan.async_goto is not None:
                chan.pulled = False
                target, chan.async_goto = chan.async_goto, None
                await self._dialplan_loop(chan, *target)
                return
            if why in ("hangup", "unbridged"):
                if chan.bridge is not None:
                    self.leave_bridge(chan.bridge, chan)
                if not chan.gone:
                    chan.pulled = False
                    chan.hangupcause = chan.hangupcause or 16
                    self.hangup(chan)
                return

    async def _dialplan_loop(self, chan: Channel, context: str, exten: str, priority: int) -> None:
        chan.in_dialplan = True
        chan.context, chan.exten, chan.priority = context, exten, priority
        while not chan.gone:
            if chan.pulled:
                await self._held_in_bridge(chan)
                return
            if chan.soft:
                return
            step = self.dialplan.find(chan.context, chan.exten, chan.priority)
            if step is None:
                # Off the end of the dialplan: Asterisk requests a soft hangup (Cause 16) and the
                # channel keeps the cause it has, answered or not (0, "Unknown", when none was set;
                # the phone of an unanswered one gets 603 Decline).
                if not chan.soft_event_sent:
                    chan.soft_event_sent = True
                    self.chan_event("SoftHangupRequest", chan, [("Cause", "16")])
                return
            env = _Env(self, chan)
            try:
                data = substitute(step.data, env)
            except UnknownFunctionError as exc:
                self._fault(chan, step, str(exc))
                return
            self.chan_event(
                "Newexten",
                chan,
                [("Extension", chan.exten), ("Application", step.app), ("AppData", data)],
                DIALPLAN,
            )
            chan.app, chan.appdata = step.app, data
            pending = chan.extra.pop("pending_cid", None)
            if pending is not None:
                chan.caller_num, chan.caller_name = pending
                self.chan_event(
                    "NewCallerid", chan, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]
                )
            try:
                result = await self.exec_app(chan, step.app, data)
            except UnknownFunctionError as exc:
                self._fault(chan, step, str(exc))
                return
            except SimulatorError as exc:
                self._fault(chan, step, exc.message)
                return
            if _ended(chan):
                return
            if chan.async_goto is not None:
                (chan.context, chan.exten, chan.priority), chan.async_goto = chan.async_goto, None
                chan.soft = False
                continue
            if _is_pulled(chan):
                continue
            if chan.soft or result == STOP:
                return
            if isinstance(result, tuple):
                chan.context, chan.exten, chan.priority = result
                continue
            chan.priority += 1

    def _fault(self, chan: Channel, step: Step, message: str) -> None:
        fault = DialplanFault(chan.name, step.context, step.exten, step.priority, message)
        self.faults.append(fault)
        log.error(
            "dialplan error on %s at [%s] %s,%s (%s line %s): %s",
            chan.name, step.context, step.exten, step.priority, self.dialplan.file, step.line, message,
        )  # fmt: skip
        chan.hangupcause = chan.hangupcause or 16

    async def exec_app(self, chan: Channel, app: str, data: str) -> Any:
        handler = self.applications.get(app)
        if handler is None:
            raise SimulatorError(f"application {app!r} is not one the simulated PBX runs")
        self.notify(chan, "app", app)
        return await handler(self, chan, data)

    # ------------------------------------------------------------------ bridges
    def new_bridge(self) -> Bridge:
        bridge = Bridge(str(uuid.UUID(int=self._uuid_random.getrandbits(128), version=4)))
        self.emit("BridgeCreate", CALL, [("Privilege", CALL), *bridge.headers()])
        return bridge

    def enter_bridge(self, bridge: Bridge, chan: Channel) -> None:
        bridge.members.append(chan)
        chan.bridge = chan_bridge = bridge
        chan.bridged_once = True
        oldest = min(bridge.members, key=lambda c: c.linked_seq)
        for m in chan_bridge.members:
            if m.linked_seq != oldest.linked_seq:
                m.linkedid, m.linked_seq = oldest.linkedid, oldest.linked_seq
        self.emit("BridgeEnter", CALL, [("Privilege", CALL), *bridge.headers(), *chan.snapshot()])

    def leave_bridge(self, bridge: Bridge, leaver: Channel) -> None:
        """``leaver`` leaves; a basic two-party bridge then dissolves and kicks the others out."""
        if bridge.destroyed or leaver not in bridge.members:
            return
        if bridge.on_leave is not None and bridge.on_leave(leaver):
            return
        others = [m for m in bridge.members if m is not leaver]
        for m in (leaver, *others):
            if "BRIDGEPEER" in m.variables:
                self.varset(m, "BRIDGEPEER", "")
        bridge.members.remove(leaver)
        leaver.bridge = None
        self.emit("BridgeLeave", CALL, [("Privilege", CALL), *bridge.headers(), *leaver.snapshot()])
        if len(bridge.members) <= 1 and not (bridge.held and bridge.members):
            for m in list(bridge.members):
                # The bridge dissolves with the leaver's cause, which a member it kicks out keeps
                # unless it has one (bridge_channel.c channel_set_cause): the agent leg of a
                # caller ended by the RTP timeout hangs up with 44 too.
                if leaver.hangupcause and not m.hangupcause:
                    m.hangupcause = leaver.hangupcause
                bridge.members.remove(m)
                m.bridge = None
                self.emit("BridgeLeave", CALL, [("Privilege", CALL), *bridge.headers(), *m.snapshot()])
                self.wake(m)
            bridge.destroyed = True
            self.emit("BridgeDestroy", CALL, [("Privilege", CALL), *bridge.headers()])

    def move_out(self, bridge: Bridge, chan: Channel) -> None:
        """``chan`` leaves ``bridge`` without dissolving it (a transfer moves it elsewhere)."""
        if chan in bridge.members:
            bridge.members.remove(chan)
            chan.bridge = None
            self.emit("BridgeLeave", CALL, [("Privilege", CALL), *bridge.headers(), *chan.snapshot()])
        if not bridge.members and not bridge.destroyed:
            bridge.destroyed = True
            self.emit("BridgeDestroy", CALL, [("Privilege", CALL), *bridge.headers()])

    def pull_into_bridge(self, bridge: Bridge, chan: Channel) -> None:
        """Take ``chan`` out of whatever it runs (its music stops) into ``bridge``."""
        if chan.moh_class is not None:
            self.moh_stop(chan)
        if chan.in_dialplan:
            chan.priority += 1
        chan.extra["vars_at_pull"] = dict(chan.variables)  # what a dead AGI on it still reads
        chan.pulled = True
        self.enter_bridge(bridge, chan)
        self.wake(chan)

    # ------------------------------------------------------------------ redirect, variables
    def redirect(self, chan: Channel, context: str, exten: str, priority: int) -> None:
        if chan.bridge is not None:
            bridge = chan.bridge
            chan.pulled = False
            chan.async_goto = (context, exten, priority)
            self.leave_bridge(bridge, chan)
        chan.async_goto = (context, exten, priority)
        if chan.moh_class is not None:
            self.moh_stop(chan)
        self.wake(chan)

    def get_variable(self, chan: Channel, name: str) -> str | None:
        env = _Env(self, chan)
        if name.endswith(")") and "(" in name:
            fn, _, args = name[:-1].partition("(")
            return env.function(fn, args)
        if name in chan.variables:
            return chan.variables[name]
        value = env.variable(name)
        return value if value != "" or name in ("CHANNEL", "UNIQUEID") else None

    def substitute(self, chan: Channel, text: str) -> str:
        return substitute(text, _Env(self, chan))

    @staticmethod
    def inherit(src: Channel, dst: Channel) -> None:
        """Copy ``_VAR`` (one level) and ``__VAR`` (every level) variables to a new channel."""
        for name, level in src.extra.get("inherit", {}).items():
            if name in src.variables:
                dst.variables[name] = src.variables[name]
                if level > 1:
                    dst.extra.setdefault("inherit", {})[name] = level

    def set_variable(self, chan: Channel, name: str, value: str) -> None:
        if name.startswith("_"):
            level = 2 if name.startswith("__") else 1
            name = name.lstrip("_")
            chan.extra.setdefault("inherit", {})[name] = level
        if name.startswith("CALLERID(") and name.endswith(")"):
            what = name[len("CALLERID(") : -1]
            if what in ("num", "number"):
                self.set_callerid(chan, value, "" if chan.caller_name == UNKNOWN else chan.caller_name)
            elif what == "name":
                self.set_callerid(chan, "" if chan.caller_num == UNKNOWN else chan.caller_num, value)
            return
        if name == "CHANNEL(language)":
            chan.language = value
            return
        if name.startswith("CHANNEL(") and name.endswith(")"):
            chan.variables[name] = value
            return
        self.varset(chan, name, value)

    # ------------------------------------------------------------------ recording
    def recording_path(self, file: str) -> Path:
        base = self.recordings_dir or Path(".")
        path = Path(file)
        if not path.is_absolute():
            return base / path
        try:
            path.resolve().relative_to(base.resolve())
        except ValueError:
            log.warning("recording %s is outside %s; written there by name", file, base)
            return base / path.name
        return path


@dataclass(eq=False, slots=True)
class MixMonitor:
    """A recording in progress: written as a WAV of the recorded length when it stops."""

    chan: Channel
    path: Path
    started: float
    muted_since: float | None = None
    muted: list[tuple[float, float]] = field(default_factory=list)
    stopped: bool = False
    frames: int = 0

    def mute(self, now: float, on: bool) -> None:
        if on and self.muted_since is None:
            self.muted_since = now - self.started
        elif not on and self.muted_since is not None:
            self.muted.append((self.muted_since, now - self.started))
            self.muted_since = None

    def stop(self, pbx: PBX, *, announce: bool = False) -> None:
        """Write the file. ``announce``: a ``StopMixMonitor`` (the application or the AMI action)
        stopped it, so ``MixMonitorStop`` is sent; a hang-up ends the recording silently, as in
        Asterisk (``app_mixmonitor.c``: only ``stop_mixmonitor_full`` raises the event)."""
        if self.stopped:
            return
        self.stopped = True
        now = pbx.clock.monotonic()
        if self.muted_since is not None:
            self.muted.append((self.muted_since, now - self.started))
            self.muted_since = None
        try:
            self.frames = write_recording(self.path, now - self.started, self.muted)
        except OSError as exc:
            log.error("cannot write recording %s: %s", self.path, exc)
        if self.chan.mixmonitor is self:
            self.chan.mixmonitor = None
        if announce:
            pbx.chan_event("MixMonitorStop", self.chan)


def _is_pulled(chan: Channel) -> bool:
    return chan.pulled


def _ended(chan: Channel) -> bool:
    """Whether ``chan`` is gone (a function, so that type narrowing does not freeze the flag)."""
    return chan.gone


_DIGITS_RE: Final = re.compile(r"^[0-9A-D*#]$")


def valid_digit(digit: str) -> bool:
    return bool(_DIGITS_RE.match(digit))
