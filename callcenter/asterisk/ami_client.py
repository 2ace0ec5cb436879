"""Shell: the asyncio AMI client (our own, on the sans-IO codec in ``ami.py``).

Why not panoramisk's ``Manager``: after a reconnect it re-sends every unanswered action (an
Originate would dial twice), it reads and splits text per chunk with ``str`` work per line, uses
the deprecated implicit event-loop lookup and has no size cap. ``tests/test_ami_client.py`` shows the re-send.

API (every network wait is bounded by a timeout)::

    client = AMIClient(host="127.0.0.1", port=5038, username="cc", secret="...")
    async with client:                                   # connect() + login ... close()
        reply = await client.send_action("Getvar", {"Channel": ch, "Variable": "X"}, timeout=5)
        await client.send_action("Originate", {...}, action_id="orig-42")  # own ActionID: optional
        items = await client.send_action_list("CoreShowChannels", timeout=5)  # events, Complete last
        unsubscribe = client.subscribe("Hangup", callback)   # callback(Message), "*" for all
        client.on_gap(gap_callback)                           # gap_callback(EventGap)
        async for item in client.events({"Newchannel", "Hangup"}):  # Message | EventGap
            ...

Errors (``callcenter.errors``): ``AMIConnectionError`` (cannot connect, link down and the client
closed), ``AMILoginError`` (credentials refused on the first connect), ``AMIActionError``
(``Response: Error``), ``AMITimeoutError`` (no answer in time), ``ActionLostError`` (a
non-idempotent action, ``names.NON_IDEMPOTENT_ACTIONS``, was written and the link dropped before
its answer: never re-sent, its fate is unknown), ``UnsafeValueError`` (CR/LF in a header; nothing
is written). An idempotent action in flight at a drop is sent again on the next link.

Link management: one background task owns the connection. It reads in large blocks (``read_size``)
and parses without per-line awaits; callbacks run inline and must be quick (errors in them are
logged, never break the reader). Each ``events()`` iterator has a bounded queue: a slow consumer
gets an ``EventGap(reason="overflow")`` instead of stalling the reader. Liveness: a ``Ping`` every
``ping_interval`` (on the injected clock) answered within ``ping_timeout``, else the link is cut.
A lost link is reopened with capped exponential backoff and a fresh login; then every consumer
gets ``EventGap(reason="link")`` saying from when to when events were missed (resync with
``CoreShowChannels``).

The connection factory seam: ``connect=`` an async callable returning ``(StreamReader,
StreamWriter)``; by default ``asyncio.open_connection(host, port)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from types import TracebackType
from typing import Final, cast

from callcenter.asterisk import names
from callcenter.asterisk.ami import DEFAULT_MAX_MESSAGE_SIZE, AMIParser, Greeting, Message, encode_action
from callcenter.asterisk.events import E, EventGap
from callcenter.clock import Clock, RealClock
from callcenter.errors import (
    ActionLostError,
    AMIActionError,
    AMIConnectionError,
    AMILoginError,
    AMITimeoutError,
    ProtocolError,
)

__all__ = ["AMIClient", "ConnectFactory", "EventCallback", "EventGap", "EventStream", "GapCallback"]

log = logging.getLogger(__name__)

ConnectFactory = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
EventCallback = Callable[[Message], object]


GapCallback = Callable[[EventGap], object]

_WRITE_HIGH_WATER: Final = 1 << 20


class _Resend(Exception):
    """Internal: an idempotent action's link dropped; send it again on the next one."""


class _Pending:
    __slots__ = ("action", "action_id", "collect", "future", "link", "wire")

    def __init__(self, action: str, action_id: str, wire: bytes, collect: bool) -> None:
        self.action = action
        self.action_id = action_id
        self.wire = wire
        self.collect: list[Message] | None = [] if collect else None
        self.future: asyncio.Future[Message | list[Message]] = asyncio.get_running_loop().create_future()
        self.link: _Link | None = None


class _Link:
    """One TCP connection: its streams, parser and the tasks that read and ping on it."""

    __slots__ = ("greeting", "lost", "parser", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_size: int) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = AMIParser(max_message_size=max_size, greeting=True)
        self.greeting: asyncio.Future[Greeting] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def abort(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)
        self.writer.transport.abort()


class EventStream:
    """An ``events()`` iterator: a bounded queue filled by the reader, drained by the consumer."""

    def __init__(self, client: AMIClient, event_names: Collection[str] | None, maxsize: int) -> None:
        self._client = client
        self.names = frozenset(event_names) if event_names is not None else None
        self._queue: deque[Message | EventGap] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._dropped = 0
        self._dropped_since = 0.0
        self.closed = False

    def push(self, item: Message | EventGap) -> None:
        if self.closed:
            return
        if isinstance(item, Message) and len(self._queue) >= self._maxsize:
            if not self._dropped:
                self._dropped_since = self._client.clock.now()
            self._dropped += 1
            return
        if self._dropped:
            self._flush_dropped()
        self._queue.append(item)
        self._wake()

    def _flush_dropped(self) -> None:
        now = self._client.clock.now()
        self._queue.append(EventGap("overflow", self._dropped_since, now, self._dropped))
        self._dropped = 0

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._wake()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Message | EventGap:
        while True:
            if self._queue:
                item = self._queue.popleft()
                if self._dropped and not self._queue:
                    self._flush_dropped()
                return item
            if self._dropped:
                self._flush_dropped()
                continue
            if self.closed:
                self._client._streams.discard(self)
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter  # no timeout: waiting for events is not a network wait
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        self.close()
        self._client._streams.discard(self)


class AMIClient:
    """An AMI connection that logs in, answers actions by ActionID, streams events and heals.

    ``ping_interval=0`` turns liveness pings off; ``reconnect=False`` makes a lost link final
    (pending actions then fail with ``AMIConnectionError``/``ActionLostError``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 5038,
        username: str,
        secret: str,
        connect: ConnectFactory | None = None,
        clock: Clock | None = None,
        connect_timeout: float = 5.0,
        login_timeout: float = 5.0,
        action_timeout: float = 10.0,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        reconnect: bool = True,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        read_size: int = 256 * 1024,
        event_mask: str = "on",
        stream_queue_size: int = 10_000,
        close_timeout: float = 2.0,
    ) -> None:
        self.host = host
        self.port = port
        self._username = username
        self._secret = secret
        self._connect_factory = connect
        self.clock: Clock = clock or RealClock()
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_message_size = max_message_size
        self.read_size = read_size
        self.event_mask = event_mask
        self.stream_queue_size = stream_queue_size
        self.close_timeout = close_timeout

        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._pending: dict[str, _Pending] = {}
        self._lists = 0  # pending EventList actions (events with an ActionID are looked up only then)
        self._subscribers: dict[str, list[EventCallback]] = {}
        self._gap_callbacks: list[GapCallback] = []
        self._streams: set[EventStream] = set()
        self._link: _Link | None = None
        self._up = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._link_tasks: set[asyncio.Task[None]] = set()
        self.greeting: Greeting | None = None
        self.reconnects = 0  # how many times a lost link was reopened

    # ------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        return self._link is not None and self._up.is_set()

    async def __aenter__(self) -> AMIClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the link and log in; then keep it up in the background until ``close()``.

        Raises ``AMIConnectionError`` (unreachable, greeting or login not in time) or
        ``AMILoginError`` (credentials refused); nothing keeps running after a failure."""
        if self._closed:
            raise AMIConnectionError("client is closed")
        if self._task is not None:
            return
        link = await self._open()
        self._task = asyncio.create_task(self._supervise(link), name="ami-client")

    async def close(self) -> None:
        """Log off (briefly), drop the link, fail what is pending, end every event stream."""
        if self._closed:
            return
        self._closed = True
        link = self._link
        if link is not None and self._up.is_set():
            with contextlib.suppress(AMIConnectionError, AMIActionError, AMITimeoutError, ActionLostError):
                await self._request(names.ACTION_LOGOFF, (), timeout=self.close_timeout, internal=True)
        self._up.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._link is not None:
            await self._drop(self._link, "client closed")
        if self._link_tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout):
                    await asyncio.gather(*self._link_tasks, return_exceptions=True)
        for pending in list(self._pending.values()):
            if pending.link is not None and not pending.future.done():
                pending.future.set_exception(AMIConnectionError("AMI client closed"))
        for stream in list(self._streams):
            stream.close()
        self._up.set()  # wakes actions waiting for a link: they see the client closed

    # ------------------------------------------------------------ connection
    async def _open_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._connect_factory is not None:
            return await self._connect_factory()
        return await asyncio.open_connection(self.host, self.port, limit=self.read_size)

    async def _open(self) -> _Link:
        """Connect, read the greeting, log in. The link is up when this returns."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await self._open_streams()
        except (OSError, TimeoutError) as exc:
            raise AMIConnectionError(f"cannot connect to AMI at {self.host}:{self.port}: {exc!r}") from exc
        link = _Link(reader, writer, self.max_message_size)
        self._link = link
        reader_task = asyncio.create_task(self._read_loop(link), name="ami-reader")
        self._link_tasks.add(reader_task)
        reader_task.add_done_callback(self._link_tasks.discard)
        try:
            async with asyncio.timeout(self.login_timeout):
                self.greeting = await asyncio.shield(link.greeting)
        except (TimeoutError, AMIConnectionError) as exc:
            await self._drop(link, "no greeting")
            raise AMIConnectionError(f"no AMI greeting from {self.host}:{self.port}") from exc
        try:
            await self._request(
                names.ACTION_LOGIN,
                (("Username", self._username), ("Secret", self._secret), ("Events", self.event_mask)),
                timeout=self.login_timeout,
                internal=True,
            )
        except AMIActionError as exc:
            await self._drop(link, "login refused")
            raise AMILoginError(f"AMI login refused for {self._username!r}: {exc.reason}") from exc
        except (AMITimeoutError, AMIConnectionError, ActionLostError) as exc:
            await self._drop(link, "login failed")
            raise AMIConnectionError(f"AMI login did not complete: {exc}") from exc
        self._up.set()
        return link

    async def _drop(self, link: _Link, reason: str) -> None:
        """Close ``link`` and settle the actions that were written on it."""
        link.abort(reason)
        if self._link is link:
            self._link = None
            self._up.clear()
        for pending in list(self._pending.values()):
            if pending.link is link and not pending.future.done():
                if pending.action in names.NON_IDEMPOTENT_ACTIONS:
                    pending.future.set_exception(
                        ActionLostError(action=pending.action, action_id=pending.action_id)
                    )
                else:
                    pending.future.set_exception(_Resend())
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(self.close_timeout):
                await link.writer.wait_closed()

    async def _supervise(self, link: _Link) -> None:
        """Keep a link up: ping it, notice its loss, reopen it with capped backoff."""
        while True:
            pinger = None
            if self.ping_interval > 0:
                pinger = asyncio.create_task(self._ping_loop(link), name="ami-ping")
            try:
                reason = await link.lost
            finally:
                if pinger is not None:
                    pinger.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pinger
            down_since = self.clock.now()
            await self._drop(link, reason)
            if self._closed:
                return  # close() is under way: no reconnect
            log.warning("AMI link to %s:%s lost: %s", self.host, self.port, reason)
            if not self.reconnect:
                for pending in list(self._pending.values()):
                    if pending.link is not None and not pending.future.done():
                        pending.future.set_exception(AMIConnectionError(f"AMI link lost: {reason}"))
                self._closed = True
                for stream in list(self._streams):
                    stream.close()
                self._up.set()  # wakes waiting actions: they see the client closed
                return
            link = await self._reopen()
            self.reconnects += 1
            self._gap(EventGap("link", down_since, self.clock.now()))

    async def _reopen(self) -> _Link:
        delay = self.backoff_initial
        while True:
            await self.clock.sleep(delay)
            try:
                return await self._open()
            except AMIConnectionError as exc:  # AMILoginError included: keep trying, loudly
                log.warning("AMI reconnect to %s:%s failed: %s", self.host, self.port, exc)
            delay = min(self.backoff_max, delay * 2)

    async def _ping_loop(self, link: _Link) -> None:
        while not link.lost.done():
            await self.clock.sleep(self.ping_interval)
            if link.lost.done():
                return
            try:
                await self._request(names.ACTION_PING, (), timeout=self.ping_timeout, internal=True)
            except AMITimeoutError:
                link.abort(f"no Ping answer within {self.ping_timeout} s")
                return
            except (AMIConnectionError, AMIActionError, ActionLostError):
                return

    # ------------------------------------------------------------ reading
    async def _read_loop(self, link: _Link) -> None:
        reader = link.reader
        feed = link.parser.feed
        size = self.read_size
        reason = "connection closed by Asterisk"
        try:
            while True:
                data = await reader.read(size)  # liveness is the pinger's job
                items = feed(data)
                if items:
                    self._dispatch(link, items)
                if not data:
                    break
        except ProtocolError as exc:
            reason = f"AMI protocol error: {exc}"
        except OSError as exc:
            reason = f"connection error: {exc!r}"
        finally:
            if not link.greeting.done():
                link.greeting.set_exception(AMIConnectionError(reason))
                link.greeting.exception()  # observed here: the opener may have given up already
            if not link.lost.done():
                link.lost.set_result(reason)

    def _dispatch(self, link: _Link, items: list[Greeting | Message]) -> None:
        pending_map = self._pending
        for item in items:
            if type(item) is not Message:
                if isinstance(item, Greeting) and not link.greeting.done():
                    link.greeting.set_result(item)
                continue
            kind = item.kind
            if kind == "event":
                if self._lists:
                    pending = pending_map.get(item.action_id or "")
                    if pending is not None and pending.collect is not None:
                        pending.collect.append(item)
                        if (item.get("EventList") or "").lower() == "complete" and not pending.future.done():
                            pending.future.set_result(pending.collect)
                        continue
                self._deliver(item)
            elif kind == "response":
                pending = pending_map.get(item.action_id or "")
                if pending is None or pending.future.done():
                    continue  # an answer nobody waits for any more (timed out, or not ours)
                if item.name == "Error":
                    pending.future.set_exception(
                        AMIActionError(
                            item.get("Message") or "", action=pending.action, action_id=pending.action_id
                        )
                    )
                elif pending.collect is not None and (item.get("EventList") or "").lower() == "start":
                    continue  # the list's events follow
                elif pending.collect is not None:
                    pending.future.set_result([item])
                else:
                    pending.future.set_result(item)

    def _deliver(self, message: Message) -> None:
        name = message.name or ""
        for key in (name, "*"):
            callbacks = self._subscribers.get(key)
            if callbacks:
                for callback in tuple(callbacks):
                    try:
                        callback(message)
                    except Exception:
                        log.exception("AMI event callback %r failed on %s", callback, name)
        for stream in self._streams:
            if stream.names is None or name in stream.names:
                stream.push(message)

    def _gap(self, gap: EventGap) -> None:
        for callback in tuple(self._gap_callbacks):
            try:
                callback(gap)
            except Exception:
                log.exception("AMI gap callback %r failed", callback)
        for stream in self._streams:
            stream.push(gap)

    # ------------------------------------------------------------ subscriptions
    def subscribe(self, event: str, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(message)`` for every event named ``event`` (``"*"``: every event), inline
        in the reader: keep it quick. Returns the function that unsubscribes."""
        self._subscribers.setdefault(event, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(event, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def on(self, kind: type[E], callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback(view)`` with the typed view of every event of ``kind`` (a class of
        ``callcenter.asterisk.events``, named as Asterisk names the event); inline, keep it quick."""
        parse = cast(Callable[[Message], E], kind.from_message)

        def typed(message: Message) -> None:
            callback(parse(message))

        return self.subscribe(kind.__name__, typed)

    def on_gap(self, callback: GapCallback) -> Callable[[], None]:
        """Call ``callback(gap)`` when the link was down and events were missed."""
        self._gap_callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._gap_callbacks:
                self._gap_callbacks.remove(callback)

        return unsubscribe

    def events(self, event_names: Iterable[str] | None = None, *, maxsize: int | None = None) -> EventStream:
        """An async iterator of events (``Message``) and gap markers (``EventGap``), from now on.
        ``event_names`` filters by event name. It ends when the client closes."""
        stream = EventStream(
            self, None if event_names is None else list(event_names), maxsize or self.stream_queue_size
        )
        if self._closed:
            stream.close()
        self._streams.add(stream)
        return stream

    # ------------------------------------------------------------ actions
    def _next_id(self) -> str:
        return f"cc-{self._id_prefix}-{next(self._ids)}"

    async def send_action(
        self,
        action: str,
        headers: Mapping[str, object] | Iterable[tuple[str, object]] = (),
        *,
        timeout: float | None = None,
        action_id: str | None = None,
    ) -> Message:
        """Send ``action`` and return its response. ``Response: Error`` raises ``AMIActionError``.

        ``action_id``: your own ActionID (unique among pending actions), so that events carrying
        it (``OriginateResponse``) can be matched by a subscriber set up before sending; by
        default the client makes one (read it back from the response's ``action_id``)."""
        result = await self._request(action, headers, timeout=timeout, action_id=action_id)
        if isinstance(result, list):  # pragma: no cover - only list requests collect
            raise TypeError("unexpected event list")
        return result

    async def send_action_list(
        self,
        action: str,
        headers: Mapping[str, object] | Iterable[tuple[str, object]] = (),
        *,
        timeout: float | None = None,
    ) -> list[Message]:
        """Send an action answered by an EventList (``CoreShowChannels``, ``Status``...); return its
        events in order, the ``...Complete`` event (``EventList: Complete``) last. A plain
        ``Success`` answer without a list is returned as a one-item list."""
        result = await self._request(action, headers, timeout=timeout, collect=True)
        if isinstance(result, Message):  # pragma: no cover
            return [result]
        return result

    async def _request(
        self,
        action: str,
        headers: Mapping[str, object] | Iterable[tuple[str, object]],
        *,
        timeout: float | None,
        collect: bool = False,
        internal: bool = False,
        action_id: str | None = None,
    ) -> Message | list[Message]:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        fields = [(str(name), str(value)) for name, value in pairs]
        if any(name.lower() == "actionid" for name, _ in fields):
            raise ValueError("pass ActionID as action_id=, not as a header")
        if action_id is None:
            action_id = self._next_id()
        elif not action_id or action_id in self._pending:
            raise ValueError(f"ActionID {action_id!r} is empty or already pending")
        wire = encode_action(action, fields, action_id=action_id)  # UnsafeValueError: nothing written
        limit = self.action_timeout if timeout is None else timeout
        pending = _Pending(action, action_id, wire, collect)
        self._pending[action_id] = pending
        if collect:
            self._lists += 1
        try:
            async with asyncio.timeout(limit):
                while True:
                    link = self._link if internal else await self._wait_up()
                    if link is None or link.lost.done():
                        raise AMIConnectionError("AMI link is down")
                    pending.link = link
                    link.writer.write(wire)
                    if link.writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                        await link.writer.drain()
                    try:
                        return await pending.future
                    except _Resend:
                        if internal:
                            raise AMIConnectionError("AMI link lost") from None
                        pending.future = asyncio.get_running_loop().create_future()
                        pending.link = None
                        if pending.collect is not None:
                            pending.collect.clear()
        except TimeoutError as exc:
            if isinstance(exc, AMITimeoutError):
                raise
            raise AMITimeoutError(f"{action} (ActionID {action_id}): no answer within {limit} s") from exc
        except (ConnectionError, OSError) as exc:
            if pending.link is not None and action in names.NON_IDEMPOTENT_ACTIONS:
                raise ActionLostError(action=action, action_id=action_id) from exc
            raise AMIConnectionError(f"{action}: AMI link failed: {exc!r}") from exc
        finally:
            del self._pending[action_id]
            if collect:
                self._lists -= 1

    async def _wait_up(self) -> _Link:
        while True:
            if self._closed:
                raise AMIConnectionError("AMI client is closed")
            link = self._link
            if link is not None and self._up.is_set() and not link.lost.done():
                return link
            if self._task is None:
                raise AMIConnectionError("AMI client is not connected (call connect())")
            await self._up.wait()  # bounded by the caller's timeout
