"""Shell: the asyncio FastAGI server (our own, on the sans-IO codec in ``agi.py``).

Why not panoramisk's ``fast_agi.Application``: its handler loops ``while b'\\n\\n' not in buffer:
buffer += await reader.read(...)``; at EOF ``read()`` returns ``b''`` at once, so a peer that
hangs up before the blank line spins the event loop for ever (``tests/test_agi_server.py`` shows
it). It has no size cap, no read timeout, no session cap, and swallows ``BaseException``.

API::

    async def ivr(session: AGISession) -> None:
        await session.answer()
        digits = await session.get_data("welcome", timeout_ms=5000, max_digits=1)
        await session.set_variable("CC_SKILL", "billing")

    server = FastAGIServer({"ivr": ivr}, host="127.0.0.1", port=4573, max_sessions=1000,
                           read_timeout=10.0, command_timeout=300.0)
    async with server:              # start() ... close()
        await server.serve_forever()  # or keep doing other work; server.port is the bound port

A route is chosen by script name (``agi://host/ivr?x=1`` -> ``"ivr"``, see ``agi.script_name``).
A call the server will not serve ends with ``AGISTATUS=FAILURE`` so that the dialplan's static
fallback runs: the server sends ``agi.FAILURE_LINE`` (res_agi's own special case) for an unknown
script, past ``max_sessions`` (counted in ``refused``), and after a handler raised (not after a
hang-up). Merely closing the socket would
give ``AGISTATUS=SUCCESS``. Reading the ``agi_*`` block is bounded by ``read_timeout`` and by the
codec's size cap; a peer that goes away before the blank line ends only its own session. A
handler's exception is logged and ends only its own session; ``AGIHangupError`` is the normal
end of a call and is not logged as an error.

Who is believed: a connection from an address that is neither loopback nor in ``allow`` (IP
addresses or networks) is closed at accept (``denied``). A connection still sending its
environment (``pending``) holds no session slot; one peer may hold at most
``max_pending_per_peer`` of them (default ``max_sessions``), each for at most ``read_timeout``,
and past that gets the failure line and is closed at once (``refused``): a flood of half-open
connections from one peer neither fills the sessions nor stops another peer's. One peer may run
at most ``max_sessions_per_peer`` sessions (default ``max_sessions``). With ``channels`` (a
``ChannelRegistry``), a session runs only when its ``agi_channel`` is a live channel the AMI
reported with that ``agi_uniqueid`` (asked for up to ``trust_timeout`` seconds); any other gets
the failure line before a route runs (``untrusted``).

``AGISession.command(name, *args, timeout=None)`` sends one command and returns its
:class:`~callcenter.asterisk.agi.AGIReply`. It raises ``AGIHangupError`` when the channel is gone
(``200 result=-1``, ``511``, the link closed, or a ``HANGUP`` notice seen before, unless
``allow_dead=True`` for the commands a dead channel still answers, e.g. ``GET VARIABLE``),
``AGICommandError`` for ``510``/``520``, ``AGIProtocolError`` for a malformed reply,
``UnsafeValueError`` for CR/LF in an argument (nothing is sent), and ``TimeoutError`` when no
reply comes within ``timeout`` (default ``command_timeout``; give long media commands their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from callcenter.asterisk.agi import (
    DEFAULT_MAX_ENV_SIZE,
    FAILURE_LINE,
    AGIEnvironment,
    AGIEvent,
    AGIParser,
    AGIReply,
    HangupNotice,
    format_command,
)
from callcenter.errors import AGICommandError, AGIHangupError, AGIProtocolError

if TYPE_CHECKING:
    from callcenter.ports import ChannelRegistry

__all__ = ["AGISession", "FastAGIServer", "Handler", "PeerFilter"]

log = logging.getLogger(__name__)


class AGISession:
    """One FastAGI call: the ``agi_*`` environment and the command/reply exchange."""

    def __init__(
        self,
        env: dict[str, str],
        script: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: AGIParser,
        pending: deque[AGIEvent],
        *,
        command_timeout: float,
    ) -> None:
        self.env = env
        self.script = script
        self.command_timeout = command_timeout
        self.hungup = False  # a HANGUP notice or a hang-up reply was seen
        self._reader = reader
        self._writer = writer
        self._parser = parser
        self._items = pending

    # ------------------------------------------------------------ environment shortcuts
    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def caller_id(self) -> str:
        return self.env.get("agi_callerid", "")

    @property
    def dnid(self) -> str:
        return self.env.get("agi_dnid", "")

    @property
    def language(self) -> str:
        return self.env.get("agi_language", "")

    @property
    def request(self) -> str:
        return self.env.get("agi_request", "")

    # ------------------------------------------------------------ the exchange
    async def command(
        self, command: str, *args: str | int, timeout: float | None = None, allow_dead: bool = False
    ) -> AGIReply:
        """Send ``command`` with its (quoted) arguments; return the reply (see the module doc)."""
        wire = format_command(command, *args)  # UnsafeValueError before anything is sent
        if self.hungup and not allow_dead:
            raise AGIHangupError(f"{command}: the channel has hung up")
        limit = self.command_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                self._writer.write(wire)
                await self._writer.drain()
                reply = await self._next_reply(command)
        except (ConnectionError, OSError) as exc:
            self.hungup = True
            raise AGIHangupError(f"{command}: the FastAGI connection is gone") from exc
        if reply.code == 200:
            if reply.result == "-1":
                self.hungup = True
                raise AGIHangupError(f"{command}: the channel hung up (result=-1)")
            return reply
        if reply.code == 511:
            self.hungup = True
            raise AGIHangupError(f"{command}: {reply.text}")
        raise AGICommandError(reply.text, command=command, status=reply.code)

    async def _next_reply(self, command: str) -> AGIReply:
        items = self._items
        while True:
            while items:
                item = items.popleft()
                if isinstance(item, AGIReply):
                    return item
                if isinstance(item, HangupNotice):
                    self.hungup = True
            data = await self._reader.read(65536)
            try:
                items.extend(self._parser.feed(data))
            except AGIProtocolError as exc:
                if not data:
                    self.hungup = True
                    raise AGIHangupError(f"{command}: the FastAGI connection closed") from exc
                raise
            if not data and not items:
                self.hungup = True
                raise AGIHangupError(f"{command}: the FastAGI connection closed")

    # ------------------------------------------------------------ helpers (Asterisk's commands)
    async def answer(self) -> None:
        await self.command("ANSWER")

    async def hangup(self, channel: str | None = None) -> None:
        """Hang the channel up (our own, or ``channel``). The session then ends."""
        args = () if channel is None else (channel,)
        with contextlib.suppress(AGIHangupError):
            await self.command("HANGUP", *args)
        self.hungup = True

    async def noop(self, text: str = "") -> None:
        await self.command("NOOP", *((text,) if text else ()))

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, level)

    async def stream_file(
        self, filename: str, escape_digits: str = "", *, timeout: float | None = None
    ) -> tuple[str, int | None]:
        """Play ``filename``; return (the digit that interrupted it or ``""``, endpos)."""
        reply = await self.command("STREAM FILE", filename, escape_digits, timeout=timeout)
        value = reply.result_int or 0
        return (chr(value) if value > 0 else ""), reply.endpos

    async def get_data(
        self,
        filename: str,
        *,
        timeout_ms: int | None = None,
        max_digits: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """Play ``filename`` and collect DTMF digits; return them (``""`` if none came)."""
        args: list[str | int] = [filename]
        if timeout_ms is not None or max_digits is not None:
            args.append(timeout_ms if timeout_ms is not None else 0)
        if max_digits is not None:
            args.append(max_digits)
        reply = await self.command("GET DATA", *args, timeout=timeout)
        return reply.result or ""

    async def wait_for_digit(self, timeout_ms: int, *, timeout: float | None = None) -> str:
        """Wait up to ``timeout_ms`` for one DTMF digit; ``""`` if none."""
        reply = await self.command("WAIT FOR DIGIT", timeout_ms, timeout=timeout)
        value = reply.result_int or 0
        return chr(value) if value > 0 else ""

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str, *, allow_dead: bool = False) -> str | None:
        """The channel variable's value, ``None`` if it is not set."""
        reply = await self.command("GET VARIABLE", name, allow_dead=allow_dead)
        return reply.data if reply.result == "1" else None

    async def exec(self, application: str, *args: str, timeout: float | None = None) -> int:
        """Run a dialplan application (``EXEC Playback "beep"``); return its result code.
        Several arguments are joined with ``,`` as the application expects."""
        options = ",".join(args)
        reply = await self.command("EXEC", application, *((options,) if args else ()), timeout=timeout)
        return reply.result_int or 0

    async def channel_status(self) -> int:
        reply = await self.command("CHANNEL STATUS")
        return reply.result_int or 0


Handler = Callable[[AGISession], Awaitable[None]]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PeerFilter:
    """Which peer addresses may open a FastAGI connection: loopback, and the ``allow`` list."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(a, strict=False) for a in allow)

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback or any(address in net for net in self.networks)


def _peer_host(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return ""


class FastAGIServer:
    """Serve FastAGI sessions: route by script name, cap concurrency, bound every read."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_sessions: int = 1000,
        read_timeout: float = 10.0,
        command_timeout: float = 300.0,
        max_env_size: int = DEFAULT_MAX_ENV_SIZE,
        close_timeout: float = 5.0,
        backlog: int = 1024,
        allow: Iterable[str] = (),
        max_pending_per_peer: int | None = None,
        max_sessions_per_peer: int | None = None,
        channels: ChannelRegistry | None = None,
        trust_timeout: float = 3.0,
    ) -> None:
        self.routes = dict(routes)
        self.host = host
        self._port = port
        self.max_sessions = max_sessions
        self.read_timeout = read_timeout
        self.command_timeout = command_timeout
        self.max_env_size = max_env_size
        self.close_timeout = close_timeout
        self.backlog = backlog
        self.peers = PeerFilter(allow)
        self.max_pending_per_peer = max_sessions if max_pending_per_peer is None else max_pending_per_peer
        self.max_sessions_per_peer = max_sessions if max_sessions_per_peer is None else max_sessions_per_peer
        self.channels = channels
        self.trust_timeout = trust_timeout
        self._pending_by_peer: dict[str, int] = {}  # connections still sending their environment
        self._active_by_peer: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self.active = 0  # sessions running (their environment read)
        self.pending = 0  # connections still sending their environment
        # Counters (read by metrics): sessions served, refused (a cap), bad (protocol / timeout /
        # unknown route), failed (handler raised something other than a hang-up), denied (peer
        # address not allowed), untrusted (a channel the AMI did not report).
        self.served = 0
        self.refused = 0
        self.bad = 0
        self.failed = 0
        self.denied = 0
        self.untrusted = 0

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, self.host, self._port, backlog=self.backlog
        )

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        server = self._server
        if server is not None:
            await server.serve_forever()

    async def close(self) -> None:
        """Stop accepting, cancel running sessions, wait for them (bounded)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout):
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout):
                    await server.wait_closed()

    async def __aenter__(self) -> FastAGIServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------ one connection
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = _peer_host(writer)
        try:
            if not self.peers.allows(peer):
                self.denied += 1
                log.warning("FastAGI: refusing a connection from %s (not in asterisk.agi.allow)", peer)
                return
            pending = self._pending_by_peer.get(peer, 0)
            if pending >= self.max_pending_per_peer:
                self.refused += 1
                if self.refused % 100 == 1:  # a flood logs a line now and then, not per connection
                    log.warning(
                        "FastAGI: refusing connections from %s, %d wait for their environment", peer, pending
                    )
                with contextlib.suppress(OSError):
                    writer.write(FAILURE_LINE)  # and closed at once: a flood holds nothing more
                return
            self._pending_by_peer[peer] = pending + 1
            self.pending += 1
            try:
                read = await self._read_env(reader)
            except (AGIProtocolError, TimeoutError, ConnectionError, OSError) as exc:
                self.bad += 1
                log.warning("FastAGI: dropped a connection before its environment was complete: %r", exc)
                with contextlib.suppress(OSError):
                    writer.write(FAILURE_LINE)  # best effort: the peer may not be Asterisk at all
                return
            finally:
                self.pending -= 1
                _decrement(self._pending_by_peer, peer)
            peer_active = self._active_by_peer.get(peer, 0)
            if self.active >= self.max_sessions or peer_active >= self.max_sessions_per_peer:
                self.refused += 1
                log.warning(
                    "FastAGI: refusing a session from %s, %d running (%d from that peer)",
                    peer,
                    self.active,
                    peer_active,
                )
                await self._end_with_failure(reader, writer)
                return
            self.active += 1
            self._active_by_peer[peer] = peer_active + 1
            try:
                await self._session(reader, writer, peer, *read)
            finally:
                self.active -= 1
                _decrement(self._active_by_peer, peer)
        except asyncio.CancelledError:
            # close() (or the loop's teardown) cancels running sessions. Python 3.11's
            # start_server callback then calls task.exception(), which raises for a cancelled
            # task straight into the loop's exception handler. This task is the connection's
            # root and nobody awaits its result but close(), so a cancelled session ends
            # normally instead, whoever cancelled it.
            if task is None:
                raise
            task.uncancel()
        finally:
            writer.close()
            try:
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(self.close_timeout):
                        await writer.wait_closed()
            except asyncio.CancelledError:
                if task is None:
                    raise
                task.uncancel()  # close() came while the socket closed: end normally, as above
            finally:
                if task is not None:
                    self._tasks.discard(task)

    async def _read_env(
        self, reader: asyncio.StreamReader
    ) -> tuple[AGIParser, AGIEnvironment, deque[AGIEvent]]:
        parser = AGIParser(max_env_size=self.max_env_size)
        items: deque[AGIEvent] = deque()
        async with asyncio.timeout(self.read_timeout):
            while True:
                data = await reader.read(65536)
                items.extend(parser.feed(data))  # b"" at EOF: AGIProtocolError if unfinished
                if items:
                    env = items.popleft()
                    if isinstance(env, AGIEnvironment):
                        return parser, env, items
                    raise AGIProtocolError("FastAGI stream did not start with the environment")

    async def _session(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        parser: AGIParser,
        env: AGIEnvironment,
        items: deque[AGIEvent],
    ) -> None:
        if self.channels is not None:
            channel, uniqueid = env.env.get("agi_channel", ""), env.env.get("agi_uniqueid", "")
            if not await self.channels.confirm(uniqueid, channel, timeout=self.trust_timeout):
                self.untrusted += 1
                log.warning(
                    "FastAGI: refusing a session from %s for channel %r (unique id %r): not a live"
                    " channel the AMI reported",
                    peer,
                    channel[:80],
                    uniqueid[:40],
                )
                await self._end_with_failure(reader, writer)
                return
        script = env.script
        handler = self.routes.get(script)
        if handler is None:
            self.bad += 1
            log.warning("FastAGI: no route for script %r (request %r)", script, env.env.get("agi_request"))
            await self._end_with_failure(reader, writer)
            return
        session = AGISession(
            env.env, script, reader, writer, parser, items, command_timeout=self.command_timeout
        )
        try:
            await handler(session)
            self.served += 1
        except AGIHangupError:
            self.served += 1
            log.debug("FastAGI %s: channel %s hung up", script, session.channel)
        except Exception:
            self.failed += 1
            log.exception("FastAGI %s: handler failed on channel %s", script, session.channel)
            if not session.hungup:
                await self._end_with_failure(reader, writer)  # the call goes to the fallback

    async def _end_with_failure(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Make Asterisk end this AGI with ``AGISTATUS=FAILURE`` (the dialplan's static fallback
        then runs), and read what it still sends until it closes (bounded), so that our close is
        a clean FIN and not a reset that could lose the line."""
        try:
            writer.write(FAILURE_LINE)
            async with asyncio.timeout(min(self.read_timeout, self.close_timeout)):
                received = 0
                while received <= self.max_env_size:
                    data = await reader.read(65536)
                    if not data:
                        return
                    received += len(data)
        except (OSError, TimeoutError):
            return


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
