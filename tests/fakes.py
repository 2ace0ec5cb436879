"""Test fakes, one home: a stand-in for each seam of ``callcenter/ports.py`` the tests replace, the
wire-level stand-ins for Asterisk (a scripted AMI server, a scripted FastAGI caller), and the helpers
that drive them. No test module imports another; they import from here (and ``tests/centers.py``
for configurations, ``tests/traces.py`` for the captures).

- ``FakeAMI``: ``AMILink`` (and ``ActionSender``); records actions; the test delivers events (``emit``)
- ``RecordSink``: ``RecordSink``; keeps the records, wakes ``until`` waiters
- ``FakeAGISession``: ``AGISession``; GET DATA answered from ``digits``
- ``FakeDistributor``: ``CallDistributor`` (the ACD as the IVR hands calls to it)
- ``FakeAgentCalls``: ``AgentCalls`` (agent id -> call id)
- ``FakeAgentPool``: ``AgentPool`` (``idle`` agents for pacing, ``free`` ones to connect)
- ``MemoryACDStore``: ``ACDStore`` (what a restart reads back)
- ``FakeDirectory``: ``CustomerDirectory`` (customers by number; can stall or break)
- ``FakeReloader``: ``Reloader`` (records modules, fails on demand)
- ``acd_rig``: the real ACD on those fakes, the PBX's side of a call played by the test
- ``FakeAMIServer`` / ``client_for``: Asterisk's AMI over loopback (greeting, Login, Ping,
  scripted actions) and the real client for it
- ``Caller`` / ``place_call``: Asterisk's FastAGI side, a caller keying digits at the prompts
- ``SimPerson``: a person on a simulated PBX channel (keys at prompts, hangs up on cue)
- ``http_*``: a minimal HTTP/1.1 client over loopback
- ``call_stream``: a realistic call's call-log records

Waiting: ``until`` and ``within`` bound a wait by a clock's time (simulated seconds on the autojump
clock, so a broken scenario fails fast and a slow machine never fails a good one), or real seconds
without a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from callcenter.acd.recorder import Recorder
from callcenter.acd.service import ACD
from callcenter.asterisk.agi import HANGUP_LINE, AGIReply, CommandReader, encode_env, encode_reply
from callcenter.asterisk.ami import AMIParser, Message, encode, encode_action, encode_greeting
from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.events import E, EventGap
from callcenter.clock import FakeClock
from callcenter.config.model import Config
from callcenter.errors import AMIActionError, DomainError
from callcenter.outbound.dialer import AgentLoad, Attempt
from callcenter.ports import Clock, Headers, QueuedCall, StoredState
from callcenter.reporting.records import (
    AgentStateChange,
    CallEvent,
    CallRecord,
    Disposition,
    EventKind,
    LegRecord,
    LogRecord,
    MonitorSession,
)
from callcenter.store.customers import Customer, LookupResult
from tests.centers import DID

T = TypeVar("T")


# ------------------------------------------------------------------------------------ waiting
async def within(awaitable: Awaitable[T], *, timeout: float, clock: Clock | None = None) -> T:
    """``await awaitable``, bounded by ``timeout`` seconds of ``clock`` (real seconds without one);
    ``TimeoutError`` past it."""
    if clock is None:
        async with asyncio.timeout(timeout):
            return await awaitable
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not work.done():
            work.cancel()
        await asyncio.gather(work, timer, return_exceptions=True)
    if work.cancelled():
        raise TimeoutError(f"not done within {timeout} s of {type(clock).__name__}")
    return work.result()


async def until(
    predicate: Callable[[], bool], changed: asyncio.Event, *, timeout: float, clock: Clock | None = None
) -> None:
    """Wait until ``predicate()`` holds, checked whenever ``changed`` is set; bounded as
    :func:`within`."""

    async def wait() -> None:
        while not predicate():
            changed.clear()
            await changed.wait()

    await within(wait(), timeout=timeout, clock=clock)


# ------------------------------------------------------------------------------------ the AMI link
def _pairs(headers: Headers) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), str(v)) for k, v in items]


class FakeAMI:
    """The AMI link at the seam (``AMILink``): answers every action ``Success`` (``Error`` for the
    names in ``refuse``), refuses CR/LF as the codec does, insists that every action is bounded;
    the test delivers events with ``emit`` and link gaps with ``gap``. ``status`` is the answer to
    ``send_action_list`` (a ``Status`` list, its ``StatusComplete`` added)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, str]]]] = []
        self.timeouts: list[float | None] = []
        self.subs: dict[str, list[Callable[[Message], object]]] = {}
        self.gap_callbacks: list[Callable[[EventGap], object]] = []
        self.status: list[Message] = []
        self.refuse: set[str] = set()

    async def send_action(
        self, action: str, headers: Headers = (), *, timeout: float | None = None
    ) -> Message:
        assert timeout is not None and timeout > 0, "every action is bounded"
        pairs = _pairs(headers)
        encode_action(action, pairs)  # UnsafeValueError on CR/LF, as the real client
        self.sent.append((action, pairs))
        self.timeouts.append(timeout)
        await asyncio.sleep(0)
        if action in self.refuse:
            raise AMIActionError("No such channel", action=action)
        return Message([("Response", "Success"), ("Message", "ok")])

    async def send_action_list(
        self, action: str, headers: Headers = (), *, timeout: float | None = None
    ) -> list[Message]:
        assert timeout is not None and timeout > 0, "every action is bounded"
        self.sent.append((action, _pairs(headers)))
        self.timeouts.append(timeout)
        return [*self.status, Message([("Event", "StatusComplete"), ("Items", str(len(self.status)))])]

    def subscribe(self, event: str, callback: Callable[[Message], object]) -> Callable[[], None]:
        self.subs.setdefault(event, []).append(callback)
        return lambda: self.subs[event].remove(callback)

    def on(self, kind: type[E], callback: Callable[[E], object]) -> Callable[[], None]:
        parse = cast(Callable[[Message], E], kind.from_message)
        return self.subscribe(kind.__name__, lambda m: callback(parse(m)))

    def on_gap(self, callback: Callable[[EventGap], object]) -> Callable[[], None]:
        self.gap_callbacks.append(callback)
        return lambda: self.gap_callbacks.remove(callback)

    # -- the test's side
    def emit(self, name: str, **headers: str) -> None:
        """Deliver one event, as the client's reader does (inline, in subscription order)."""
        msg = Message([("Event", name), *headers.items()])
        for cb in list(self.subs.get(name, [])):
            cb(msg)

    def gap(self) -> None:
        for cb in list(self.gap_callbacks):
            cb(EventGap("link", 0.0, 0.0))

    def history(self) -> list[tuple[str, dict[str, str]]]:
        """(action, headers) of every action sent; a repeated header's values joined by ``|``."""
        out = []
        for action, pairs in self.sent:
            d: dict[str, str] = {}
            for k, v in pairs:
                d[k] = d[k] + "|" + v if k in d else v
            out.append((action, d))
        return out

    def actions(self, name: str) -> list[dict[str, str]]:
        return [d for action, d in self.history() if action == name]

    def last_originate(self) -> dict[str, str]:
        return self.actions("Originate")[-1]


# ------------------------------------------------------------------------------------ the call log
class RecordSink:
    """The call-log writer at the seam: keeps every record (and hands it on to ``forward``, a real
    writer, if given); ``until`` waits for a condition on them."""

    def __init__(self, forward: Any = None) -> None:
        self.records: list[LogRecord] = []
        self.forward = forward
        self.changed = asyncio.Event()

    def submit(self, record: LogRecord) -> None:
        self.records.append(record)
        if self.forward is not None:
            self.forward.submit(record)
        self.changed.set()

    async def until(
        self, predicate: Callable[[], bool], *, timeout: float, clock: Clock | None = None
    ) -> None:
        """Wait until ``predicate()`` holds, for ``timeout`` seconds of ``clock`` (real without)."""
        await until(predicate, self.changed, timeout=timeout, clock=clock)

    def of(self, kind: type[T]) -> list[T]:
        return [r for r in self.records if isinstance(r, kind)]

    def events(self, call_id: str | None = None, *, kind: str | None = None) -> list[CallEvent]:
        return [r for r in self.of(CallEvent) if call_id in (None, r.call_id) and kind in (None, str(r.kind))]

    def kinds(self, call_id: str) -> list[str]:
        """The kinds of ``call_id``'s events, in order."""
        return [str(r.kind) for r in self.events(call_id)]

    def calls(self) -> list[CallRecord]:
        return self.of(CallRecord)

    def disposition(self, call_id: str) -> Disposition | None:
        ds = [r.disposition for r in self.of(CallRecord) if r.call_id == call_id and r.disposition]
        return ds[-1] if ds else None

    def ended(self, call_id: str) -> bool:
        return any(r.call_id == call_id and r.ended_at is not None for r in self.of(CallRecord))

    def agent_states(self, agent_id: str) -> list[str]:
        return [r.state for r in self.of(AgentStateChange) if r.agent_id == agent_id]

    def went(self, agent_id: str, state: str) -> int:
        """How many times ``agent_id`` entered ``state`` so far (a record, not the current state)."""
        return self.agent_states(agent_id).count(state)

    def sessions(self) -> list[MonitorSession]:
        return self.of(MonitorSession)

    def outcomes(self) -> list[str]:
        """The outcomes of the supervisors' monitor sessions that have one."""
        return [r.outcome for r in self.sessions() if r.outcome]


T0 = 1_700_000_000.0


def call_stream(i: int, t: float) -> list[Any]:
    """A realistic synthetic call's records: arrival, IVR, queue, offer, answer, hold, end, wrap-up."""
    cid = f"call-{i:06d}"
    agent = f"10{i % 20:02d}"
    return [
        CallRecord(
            cid, t, direction="inbound", did="+18005550100", caller_number=f"+1555{i:07d}", started_at=t
        ),
        LegRecord(cid, f"{cid}-a", t, kind="caller", channel=f"PJSIP/trunk-{i:08x}", started_at=t),
        CallEvent(cid, t + 1, EventKind.IVR_NODE, node="main", detail={"input": "1"}),
        CallEvent(cid, t + 5, EventKind.QUEUE_ENTER, queue="sales"),
        CallRecord(cid, t + 5, queue="sales", ivr_ended_at=t + 5, queued_at=t + 5),
        CallEvent(cid, t + 20, EventKind.OFFER, queue="sales", agent_id=agent),
        AgentStateChange(agent, t + 20, "ringing", call_id=cid),
        CallEvent(cid, t + 25, EventKind.ANSWER, queue="sales", agent_id=agent),
        AgentStateChange(agent, t + 25, "on_call", call_id=cid),
        CallEvent(cid, t + 60, EventKind.HOLD, agent_id=agent),
        CallEvent(cid, t + 70, EventKind.UNHOLD, agent_id=agent),
        CallRecord(
            cid,
            t + 200,
            disposition=Disposition.ANSWERED,
            agent_id=agent,
            answered_at=t + 25,
            ended_at=t + 200,
            talk_seconds=165.0,
            hold_seconds=10.0,
            wrapup_seconds=30.0,
            hangup_cause=16,
        ),
        AgentStateChange(agent, t + 200, "wrap_up", call_id=cid),
        AgentStateChange(agent, t + 230, "available"),
    ]


# ------------------------------------------------------------------------------------ FastAGI session
class FakeAGISession:
    """One FastAGI connection at the seam (``AGISession``): GET DATA answered from ``digits`` in
    turn ("" once they run out), GET VARIABLE from ``variables``; every command recorded."""

    def __init__(
        self,
        env: Mapping[str, str],
        digits: Iterable[str] = (),
        *,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self.env = dict(env)
        self.digits = list(digits)
        self.variables = dict(variables or {})
        self.commands: list[tuple[str, tuple[str | int, ...]]] = []
        self.hung_up = False

    async def command(self, command: str, *args: str | int, timeout: float) -> AGIReply:
        assert timeout > 0, "every command is bounded"
        self.commands.append((command, args))
        if command == "GET DATA":
            return AGIReply.ok(self.digits.pop(0) if self.digits else "")
        return AGIReply.ok(0)

    async def get_variable(self, name: str, *, allow_dead: bool = False) -> str | None:
        self.commands.append(("GET VARIABLE", (name,)))
        return self.variables.get(name)

    async def stream_file(self, name: str, escape_digits: str = "", *, timeout: float | None = None) -> Any:
        self.commands.append(("STREAM FILE", (name, escape_digits)))
        return AGIReply.ok(0)

    async def exec(self, application: str, *args: str, timeout: float | None = None) -> int:
        self.commands.append(("EXEC", (application, *args)))
        return 0

    async def hangup(self, channel: str | None = None) -> None:
        self.commands.append(("HANGUP", () if channel is None else (channel,)))
        self.hung_up = True

    def streamed(self) -> list[str]:
        """The files played (STREAM FILE), as named."""
        return [str(a[0]) for c, a in self.commands if c == "STREAM FILE"]

    def played(self) -> list[str]:
        """The prompts played by file name (STREAM FILE), without their directory."""
        return [name.rsplit("/", 1)[-1] for name in self.streamed()]

    def execs(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(str(a[0]), tuple(str(x) for x in a[1:])) for c, a in self.commands if c == "EXEC"]


# ------------------------------------------------------------------------------------ ACD seams
@dataclass
class FakeDistributor:
    """The ACD as the IVR hands calls to it (``CallDistributor``); ``fail`` refuses them."""

    calls: list[QueuedCall] = field(default_factory=list)
    callbacks: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    async def enqueue(self, call: QueuedCall) -> None:
        if self.fail:
            raise DomainError("queue closed", code="queue_closed")
        self.calls.append(call)

    async def accept_callback(self, call_id: str, number: str) -> None:
        self.callbacks.append((call_id, number))


@dataclass
class FakeAgentCalls:
    """Which call each agent is on (``AgentCalls``)."""

    calls: dict[str, str] = field(default_factory=dict)

    def call_of_agent(self, agent_id: str) -> str | None:
        return self.calls.get(agent_id)


class FakeAgentPool:
    """The ACD's side of outbound (``AgentPool``): ``idle`` for pacing, ``free`` agents that
    ``connect`` hands out in turn."""

    def __init__(self, idle: int) -> None:
        self.idle = idle
        self.free: list[str] = []
        self.connected: list[tuple[str, str]] = []
        self.holding: dict[str, str] = {}  # attempt id -> agent, while held
        self.released: list[str] = []
        self.refuse_holds = False

    def load(self, campaign: str) -> AgentLoad:
        return AgentLoad(logged_in=max(self.idle, 1), idle=self.idle)

    def reserve(self, campaign: str, attempt_id: str, *, agent_id: str | None = None) -> str | None:
        if self.refuse_holds:
            return None
        self.holding[attempt_id] = agent_id or f"held-{len(self.holding) + len(self.released)}"
        return self.holding[attempt_id]

    def release(self, attempt_id: str, *, reason: str = "hold_released") -> None:
        if self.holding.pop(attempt_id, None) is not None:
            self.released.append(attempt_id)

    async def connect(self, campaign: str, *, channel: str, attempt: Attempt, timeout: float) -> str | None:
        self.holding.pop(attempt.attempt_id, None)
        if not self.free:
            return None
        agent = self.free.pop(0)
        self.connected.append((agent, channel))
        return agent


class MemoryACDStore:
    """What the database remembers after a restart (``ACDStore``)."""

    def __init__(self, state: StoredState) -> None:
        self.state = state

    async def load(self, *, timeout: float) -> StoredState:
        return self.state


@dataclass
class FakeDirectory:
    """Customers by E.164 number (``CustomerDirectory``); ``stall`` never answers (the caller's
    timeout must cut it), ``broken`` answers ``error``."""

    customers: dict[str, Customer] = field(default_factory=dict)
    stall: bool = False
    broken: bool = False

    async def lookup(self, phone_e164: str) -> LookupResult:
        if self.stall:
            await asyncio.Event().wait()
        if self.broken:
            return LookupResult("error")
        found = self.customers.get(phone_e164)
        return LookupResult("found", found) if found else LookupResult("not_found")


class FakeReloader:
    """Reloads nothing (``Reloader``): records the modules; ``fail_on`` fails ``fail_times`` times."""

    def __init__(self, fail_on: str | None = None, fail_times: int = 1) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on
        self.fail_times = fail_times

    async def __call__(self, module: str) -> None:
        self.calls.append(module)
        if module == self.fail_on and self.fail_times > 0:
            self.fail_times -= 1
            raise AMIActionError("Module reload failed", action="Reload", action_id="1")


# ------------------------------------------------------------------------------------ the ACD on fakes
@dataclass
class AcdRig:
    """The real ACD on a :class:`FakeAMI`, a :class:`RecordSink` and a ``FakeClock``, with the PBX's
    side of a call played by the test."""

    acd: ACD
    ami: FakeAMI
    sink: RecordSink
    clock: FakeClock
    tmp: Path
    chan_seq: int = 0

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
            await self.acd.idle()

    async def advance(self, seconds: float) -> None:
        await self.settle()
        self.clock.advance(seconds)
        await self.settle()

    async def call(self, call_id: str, queue: str, **kw: Any) -> str:
        self.chan_seq += 1
        channel = f"PJSIP/carrier-{self.chan_seq:08x}"
        await self.acd.enqueue(QueuedCall(call_id, channel, queue, caller_number="+15551230000", **kw))
        await self.settle()
        return channel

    async def agent_rings(self) -> tuple[str, str]:
        """The last Originate's leg: Newchannel (its name), returns (leg id, channel)."""
        o = self.ami.last_originate()
        leg = o["ChannelId"]
        agent = o["Channel"].split("/", 1)[1]
        self.chan_seq += 1
        channel = f"PJSIP/{agent}-{self.chan_seq:08x}"
        self.ami.emit("Newchannel", Channel=channel, Uniqueid=leg, ChannelState="0")
        await self.settle()
        return leg, channel

    async def answer(self, caller: str) -> tuple[str, str]:
        leg, channel = await self.agent_rings()
        self.ami.emit("OriginateResponse", Response="Success", Channel=channel, Uniqueid=leg, Reason="4")
        self.ami.emit("BridgeEnter", BridgeUniqueid="b1", Channel=channel, Uniqueid=leg)
        self.ami.emit("BridgeEnter", BridgeUniqueid="b1", Channel=caller, Uniqueid="caller")
        await self.settle()
        return leg, channel

    async def no_answer(self, reason: str = "3") -> tuple[str, str]:
        leg, channel = await self.agent_rings()
        self.ami.emit("OriginateResponse", Response="Failure", Channel=channel, Uniqueid=leg, Reason=reason)
        self.ami.emit("Hangup", Channel=channel, Uniqueid=leg, Cause="19")
        await self.settle()
        return leg, channel

    async def hangup(self, channel: str, uniqueid: str = "", cause: str = "16") -> None:
        self.ami.emit("Hangup", Channel=channel, Uniqueid=uniqueid, Cause=cause)
        await self.settle()


@contextlib.asynccontextmanager
async def acd_rig(
    config: Config,
    tmp: Path,
    *,
    store: Any = None,
    ami: FakeAMI | None = None,
    callbacks: Any = None,
    clock: FakeClock | None = None,
) -> AsyncIterator[AcdRig]:
    """The ACD running (its ``run`` task) until the block ends."""
    ami = ami or FakeAMI()
    sink = RecordSink()
    clock = clock or FakeClock(start=1_800_000_000.0)
    recorder = Recorder(ami, sink, clock, directory=tmp / "rec", pci_auto_resume=180.0)
    acd = ACD(config, ami, sink, clock, recorder=recorder, store=store, callbacks=callbacks)
    task = asyncio.create_task(acd.run())
    try:
        await asyncio.wait_for(acd.ready.wait(), 60)
        yield AcdRig(acd, ami, sink, clock, tmp)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# ------------------------------------------------------------------------------------ AMI, on the wire
Reply = list[list[tuple[str, str]]] | None
Handler = Callable[[Message], Reply]


class FakeAMIServer:
    """A scripted Asterisk stand-in over loopback: greeting, Login, Ping, Logoff, then per-action
    ``handlers``.

    A handler returns the messages to send back (header lists; ``ActionID`` is added), or ``None``
    to stay silent; an action with no handler is answered ``Invalid/unknown command``. Every action
    received is recorded with the connection number it came on."""

    def __init__(self, *, username: str = "cc", secret: str = "s3cret") -> None:  # noqa: S107
        self.username = username
        self.secret = secret
        self.handlers: dict[str, Handler] = {}
        self.actions: list[tuple[int, Message]] = []
        self.raw_bytes = 0
        self.connections = 0
        self.answer_pings = True
        self.accept_logins = True
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FakeAMIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def drop(self) -> None:
        """Cut every open connection (as a crashed Asterisk or a broken link would)."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def send(self, headers: list[tuple[str, str]]) -> None:
        for writer in self._writers:
            writer.write(encode(headers))

    def send_raw(self, data: bytes) -> None:
        for writer in self._writers:
            writer.write(data)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    def count(self, action: str) -> int:
        return sum(1 for _, m in self.actions if m.name == action)

    def names(self) -> list[str]:
        """The actions received, in order."""
        return [m.name or "" for _, m in self.actions]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        number = self.connections
        self._writers.append(writer)
        await self._notify()
        writer.write(encode_greeting())
        parser = AMIParser(greeting=False)
        try:
            while True:
                data = await reader.read(65536)
                self.raw_bytes += len(data)
                for message in parser.feed(data):
                    assert isinstance(message, Message)
                    self.actions.append((number, message))
                    for reply in self._answer(message) or []:
                        writer.write(
                            encode([reply[0], ("ActionID", message.get("ActionID") or ""), *reply[1:]])
                        )
                    await self._notify()
                if not data:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            await self._notify()

    def _answer(self, m: Message) -> Reply:
        name = m.name or ""
        if name == "Login":
            if self.accept_logins and m.get("Username") == self.username and m.get("Secret") == self.secret:
                return [[("Response", "Success"), ("Message", "Authentication accepted")]]
            return [[("Response", "Error"), ("Message", "Authentication failed")]]
        if name == "Ping":
            if not self.answer_pings:
                return None
            return [[("Response", "Success"), ("Ping", "Pong"), ("Timestamp", "1.0")]]
        if name == "Logoff":
            return [[("Response", "Goodbye"), ("Message", "Thanks for all the fish.")]]
        handler = self.handlers.get(name)
        if handler is None:
            return [[("Response", "Error"), ("Message", "Invalid/unknown command")]]
        return handler(m)


def client_for(server: FakeAMIServer, **kwargs: object) -> AMIClient:
    """The real AMI client for ``server``: quick timeouts and back-off, no pings."""
    options: dict[str, object] = {
        "username": server.username,
        "secret": server.secret,
        "port": server.port,
        "action_timeout": 5.0,
        "ping_interval": 0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    options.update(kwargs)
    return AMIClient(**options)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ FastAGI, on the wire
def agi_env(uniqueid: str = "1795420631.0", caller: str = "2125550100") -> dict[str, str]:
    """The ``agi_*`` environment Asterisk sends for an inbound call to the ``ivr`` route."""
    return {
        "agi_network": "yes",
        "agi_network_script": "ivr",
        "agi_request": "agi://127.0.0.1:4573/ivr",
        "agi_channel": f"PJSIP/carrier-{uniqueid}",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_callerid": caller,
        "agi_calleridname": "Dave",
        "agi_dnid": DID,
        "agi_context": "cc-inbound",
        "agi_extension": DID,
        "agi_priority": "3",
    }


@dataclass
class Caller:
    """A caller on a scripted Asterisk channel: ``keys`` answer GET DATA / STREAM FILE+WAIT FOR
    DIGIT in order (``""`` = silence until the timeout); past the script the caller hangs up.
    ``hang_up_at`` hangs up while the command with that index runs (``notice``: Asterisk's HANGUP
    line first)."""

    keys: list[str]
    hang_up_at: int | None = None
    notice: bool = False
    junk_reply_at: int | None = None
    commands: list[list[str]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    buffer: str = ""
    reading: bool = False
    gone: bool = False

    def respond(self, words: list[str]) -> bytes:
        index = len(self.commands)
        self.commands.append(words)
        if self.junk_reply_at == index:
            return b"999 what\n"
        if self.gone:
            return b"511 Command Not Permitted on a dead channel or intercept routine\n"
        if self.hang_up_at == index:
            self.gone = True
            return (HANGUP_LINE if self.notice else b"") + encode_reply(AGIReply.ok(-1))
        verb = " ".join(words[:2])
        if verb == "SET VARIABLE":
            self.variables[words[2]] = words[3]
            return encode_reply(AGIReply.ok(1))
        if verb in ("STREAM FILE", "GET DATA"):
            self.buffer, self.reading = "", False  # a new read starts
        if not self.keys and not self.reading and verb in ("STREAM FILE", "GET DATA", "WAIT FOR"):
            if verb != "STREAM FILE" or words[3]:
                self.gone = True  # past the script: the caller hangs up
                return encode_reply(AGIReply.ok(-1))
        if verb == "STREAM FILE":
            if words[3] and self.keys[0]:  # the caller types over an interruptible prompt
                key = self.keys.pop(0)
                self.buffer, self.reading = key[1:], True
                return encode_reply(AGIReply.ok(ord(key[0]), endpos=100))
            return encode_reply(AGIReply.ok(0, endpos=8000))
        if verb == "WAIT FOR":
            if not self.reading:
                key = self.keys.pop(0)
                if not key:
                    return encode_reply(AGIReply.ok(0))
                self.buffer, self.reading = key, True
            if self.buffer:
                key, self.buffer = self.buffer[0], self.buffer[1:]
                return encode_reply(AGIReply.ok(ord(key)))
            return encode_reply(AGIReply.ok(0))
        if verb == "GET DATA":
            typed = self.keys.pop(0)
            if typed == "":
                return encode_reply(AGIReply.ok("", data="timeout"))
            return encode_reply(AGIReply.ok(typed))
        if words[0] in ("EXEC", "HANGUP"):
            return encode_reply(AGIReply.ok(0))
        return b"510 Invalid or unknown command\n"

    def played(self) -> list[str]:
        return [w[2] for w in self.commands if w[:2] in (["STREAM", "FILE"], ["GET", "DATA"])]


async def place_call(port: int, caller: Caller, *, environment: dict[str, str] | None = None) -> Caller:
    """Play Asterisk's side of one FastAGI call to ``port`` for ``caller`` until the route ends."""
    async with asyncio.timeout(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(encode_env(environment or agi_env()))
            commands = CommandReader()
            while True:
                data = await reader.read(65536)
                for words in commands.feed(data):
                    writer.write(caller.respond(words))
                if not data:
                    break
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    return caller


# ------------------------------------------------------------------------ people on the simulated PBX
@dataclass
class SimPerson:
    """A person on a simulated PBX channel (the channel's ``owner``): at each prompt (by file name)
    presses the next keys of ``keys[prompt]`` (one entry per time the prompt plays); records the
    prompts heard (by name, and ``paths`` as played) and the applications run.
    Hangs up when the prompt ``hang_up_at`` starts, when an application of ``hang_up_in`` runs,
    or on hold (music) if ``hang_up_on_hold``."""

    keys: Mapping[str, list[str]] = field(default_factory=dict)
    hang_up_at: str | None = None
    hang_up_in: frozenset[str] = frozenset({"VoiceMail"})
    hang_up_on_hold: bool = True
    dtmf_ms: int = 120
    prompts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    seen: dict[str, int] = field(default_factory=dict)
    chan: Any = None

    def on_event(self, pbx: Any, chan: Any, what: str, detail: str) -> None:
        loop = asyncio.get_running_loop()
        self.changed.set()
        if what == "prompt":
            name = detail.rsplit("/", 1)[-1]
            self.prompts.append(name)
            self.paths.append(detail)
            if name == self.hang_up_at:
                loop.call_soon(pbx.remote_hangup, chan)
                return
            n = self.seen.get(name, 0)
            self.seen[name] = n + 1
            presses = self.keys.get(name, [])
            if n < len(presses):
                for digit in presses[n]:
                    loop.call_soon(pbx.send_dtmf, chan, digit, self.dtmf_ms)
        elif what == "app":
            self.apps.append(detail)
            if detail in self.hang_up_in:
                loop.call_soon(pbx.remote_hangup, chan)
        elif what == "moh":
            self.held.set()
            if self.hang_up_on_hold:
                loop.call_soon(pbx.remote_hangup, chan)
        elif what == "hangup":
            self.gone.set()

    async def until(
        self, predicate: Callable[[], bool], *, timeout: float, clock: Clock | None = None
    ) -> None:
        await until(predicate, self.changed, timeout=timeout, clock=clock)


# ------------------------------------------------------------------------------------ HTTP, on the wire
def http_request(path: str, body: bytes = b"", method: str = "GET", headers: str = "") -> bytes:
    """One HTTP/1.1 request (``connection: close``) to loopback, a body sent as JSON; ``headers``
    are more header lines, each ending in CRLF."""
    kind = "content-type: application/json\r\n" if body else ""
    return (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n{kind}{headers}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def http_exchange(port: int, raw: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``raw`` to the loopback server on ``port``; everything it answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()


def http_split(resp: bytes) -> tuple[int, bytes]:
    """(status, body) of a response."""
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def http_get(port: int, path: str, *, timeout: float = 10.0) -> tuple[int, bytes]:
    return http_split(await http_exchange(port, http_request(path), timeout=timeout))


class TokenTable:
    """The ``Authenticator`` seam over a dict: token -> principal (the users store stands in a
    database; route tests of one feature need only who holds which token)."""

    def __init__(self, tokens: dict[str, Any]) -> None:
        self.tokens = tokens

    async def principal_for_token(self, token: str, *, timeout: float) -> Any:
        return self.tokens.get(token)


ADMIN = "admin-token"


def admin_tokens() -> TokenTable:
    from callcenter.web.access import Principal

    return TokenTable({ADMIN: Principal("root", "admin")})


def bearer(token: str = ADMIN) -> str:
    """The header line that authenticates a request of ``http_request``."""
    return f"authorization: Bearer {token}\r\n"
