"""Shell: a small HTTP/1.1 server on h11 (sans-IO) and asyncio streams.

Routes are ``(method, pattern)`` -> ``async handler(request) -> Response``; a pattern's ``{name}``
segments become ``request.params``. A response body is bytes or an async iterator of bytes (server-sent
events stream that way). Every read is bounded by ``read_timeout``, request bodies by ``max_body``;
bad requests get a JSON error naming what was wrong; a failing handler answers 500 and the server keeps
serving other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from callcenter.errors import CallcenterError, DomainError

log = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "bad_json", f"request body is not JSON: {exc}") from exc

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int = 200
    body: bytes | AsyncIterator[bytes] = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, default=str, sort_keys=True).encode() + b"\n")


class HTTPError(CallcenterError):
    """An HTTP-level refusal (status, stable code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self._routes.append((method.upper(), re.compile(regex), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for m, regex, handler in self._routes:
            match = regex.match(path)
            if match:
                if m == method:
                    return handler, match.groupdict()
                allowed = True
        if allowed:
            raise HTTPError(405, "method_not_allowed", f"{method} is not allowed on {path}")
        raise HTTPError(404, "not_found", f"no such resource: {path}")


_REASONS = {
    200: b"OK",
    201: b"Created",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    409: b"Conflict",
    413: b"Payload Too Large",
    422: b"Unprocessable Entity",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


class HTTPServer:
    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        read_timeout: float = 10.0,
        max_body: int = 1 << 20,
        max_connections: int = 200,
    ) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.read_timeout = read_timeout
        self.max_body = max_body
        self._sem = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            if self._sem.locked():
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
                return
            async with self._sem:
                await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, h11.RemoteProtocolError):
            pass
        except asyncio.CancelledError:
            # close() cancels open connections (an SSE stream never ends by itself). This task is
            # the connection's root, created by asyncio's server; ending it quietly here keeps
            # asyncio from reporting the cancellation as an unobserved error.
            pass
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), self.read_timeout)
                conn.receive_data(data)
                continue
            return event

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
        while True:
            try:
                event = await self._next_event(conn, reader)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(conn, writer, _error(400, "bad_request", str(exc)))
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            body = bytearray()
            too_big = False
            while True:
                ev = await self._next_event(conn, reader)
                if isinstance(ev, h11.Data):
                    if len(body) + len(ev.data) > self.max_body:
                        too_big = True
                    else:
                        body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    break
                else:
                    return
            target = event.target.decode("latin-1")
            parts = urlsplit(target)
            request = Request(
                method=event.method.decode("ascii").upper(),
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers},
                body=bytes(body),
            )
            if too_big:
                response = _error(413, "too_large", f"request body over {self.max_body} bytes")
            else:
                response = await self._dispatch(request)
            await self._send(conn, writer, response)
            if conn.our_state is h11.MUST_CLOSE or isinstance(response.body, AsyncIterator):
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _dispatch(self, request: Request) -> Response:
        try:
            handler, params = self.router.resolve(request.method, request.path)
            request.params = params
            return await handler(request)
        except HTTPError as exc:
            return _error(exc.status, exc.code, exc.message)
        except DomainError as exc:
            return _error(409, exc.code, exc.message)
        except CallcenterError as exc:
            return _error(422, exc.code, exc.message)
        except Exception:  # a failing handler answers 500; the server keeps serving
            log.exception("HTTP handler failed: %s %s", request.method, request.path)
            return _error(500, "internal_error", "the handler failed; see the controller log")

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter, resp: Response) -> None:
        headers = [("content-type", resp.content_type), *resp.headers]
        if isinstance(resp.body, bytes):
            headers.append(("content-length", str(len(resp.body))))
        else:
            headers += [("cache-control", "no-cache"), ("connection", "close")]
        reason = _REASONS.get(resp.status, b"")
        writer.write(conn.send(h11.Response(status_code=resp.status, headers=headers, reason=reason)))
        if isinstance(resp.body, bytes):
            if resp.body:
                writer.write(conn.send(h11.Data(data=resp.body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return
        await writer.drain()
        stream = resp.body
        try:
            async for chunk in stream:
                writer.write(conn.send(h11.Data(data=chunk)))
                await asyncio.wait_for(writer.drain(), self.read_timeout)
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


def _error(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)
