"""Shell: the HTTP application on aiohttp.web, with its guards.

aiohttp.web is asyncio-native (it runs inside the controller's event loop, no separate ASGI server
process), has middleware, streams responses (the server-sent events of the wallboard) and caps
request bodies. Features register routes on a ``Router`` (method, path with ``{name}`` segments,
handler, the body's ``Schema``, whether it streams); ``HTTPServer`` mounts them and answers on a
listener of its own that admits connections per client.

Every request passes, in order:

- the connection gate: at most ``per_client_connections`` per client address and
  ``max_connections`` in all (a refused connection gets a bare 429 or 503), and a connection that
  has no request in progress for ``head_timeout`` seconds is closed, so slow-drip clients that
  never finish a request head give their slot back;
- errors: every refusal is JSON ``{"error": {"code", "message"[, "field"]}}`` with a stable code;
  a failing handler answers 500 and the server keeps serving;
- trusted hosts: a ``Host`` not among the names the API answers to gets 421 (DNS rebinding);
- mutating requests (POST, PUT, PATCH, DELETE): a foreign ``Origin`` or a cross-site
  ``Sec-Fetch-Site`` gets 403, any body other than ``application/json`` 415 (a cross-site
  ``text/plain`` form post never reaches a handler);
- per-client concurrency: event streams and API calls are counted apart (429 over either cap);
- a route with an action needs ``Authorization: Bearer <token>`` of an enabled user, or a browser
  session's cookie (``callcenter.web.session``) and, on a mutating request, that session's
  ``X-CSRF-Token`` (401, 403 ``csrf_failed``);
- the body: read within the request deadline (408 if the client drips it), parsed (400 if not
  JSON) and validated by the route's schema (422 naming the field);
- the authorization table (``callcenter.web.access``): the user's role must be allowed the
  route's action on the target the request touches (403 ``forbidden``);
- the total request deadline for API calls (503 ``deadline_exceeded``);
- the handler: a refusal of the dial-out policy answers 403 ``dial_out_refused``, another refused
  request 409 with its code, a user store that is away 503.

Every mutating request, refused or done, is then written to the ``AuditSink``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from callcenter.errors import CallcenterError, DialOutRefusedError, DomainError, StoreError
from callcenter.web.access import Principal, Target, decide
from callcenter.web.auth import AuditEntry, AuditSink, Authenticator
from callcenter.web.schema import EMPTY, BodyError, Schema

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TargetOf = Callable[[web.Request, dict[str, Any]], Target]

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_COOKIE = "cc_session"
CLOSING_KEY = web.AppKey("closing", asyncio.Event)
BODY_KEY = web.RequestKey("body", dict[str, Any])
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
TARGET_KEY = web.RequestKey("target", Target)


class SessionLookup(Protocol):
    def principal_for_cookie(self, cookie: str) -> tuple[Principal, str] | None:
        """The principal of a live browser session and its CSRF token."""
        ...


class HTTPError(CallcenterError):
    """An HTTP-level refusal (status, stable code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, default=str, sort_keys=True).encode() + b"\n",
        content_type="application/json",
    )


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    err: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    return json_response({"error": err}, status)


def body(request: web.Request) -> dict[str, Any]:
    """The request's body, already validated by its route's schema (``{}`` when it had none)."""
    return dict(request.get(BODY_KEY) or {})


def closing(request: web.Request) -> asyncio.Event:
    """Set when the server closes: a streaming handler ends its stream then."""
    return request.app[CLOSING_KEY]


def principal(request: web.Request) -> Principal | None:
    """Who sent the request (None on a public route)."""
    return request.get(PRINCIPAL_KEY)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    schema: Schema | None = None
    stream: bool = False
    action: str | None = None
    target: TargetOf | None = None


ROUTE_KEY = web.RequestKey("route", Route)


class Router:
    """The routes the features register; ``HTTPServer`` mounts them on aiohttp's dispatcher."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        schema: Schema | None = None,
        stream: bool = False,
        action: str | None = None,
        target: TargetOf | None = None,
    ) -> None:
        """Add a route. ``action`` (see ``callcenter.web.access.RULES``) makes it need a bearer
        token of a role allowed that action on the request's ``target`` (computed from the request
        and its validated body); without ``action`` it is public. A mutating route without a
        ``schema`` takes an empty body only."""
        method = method.upper()
        if schema is None and method in MUTATING:
            schema = EMPTY
        self.routes.append(Route(method, path, handler, schema, stream, action, target))


@dataclass(frozen=True)
class Limits:
    """The HTTP side's bounds (seconds, bytes, counts)."""

    max_body: int = 1 << 20
    request_deadline: float = 15.0
    head_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int = 512
    per_client_connections: int = 32
    per_client_requests: int = 16
    per_client_streams: int = 4


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def trusted_hosts_for(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names the API answers to: the loopback names, the bound address (unless it is a
    wildcard) and ``extra`` (the names and addresses clients use to reach it)."""
    names = set(LOOPBACK_NAMES) | {h.strip().lower() for h in extra if h.strip()}
    if bind not in ("", "0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        names.add(bind.lower())
    return frozenset(names)


def host_name(value: str) -> str:
    """The name in a ``Host`` header or an origin's netloc, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


# ------------------------------------------------------------------------------------ connection gate
class _Gate:
    """Connections per client address and in all; each admitted one is a ``_Guarded``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.per_client: dict[str, int] = {}
        self.total = 0
        self.refused = 0
        self.expired = 0
        self.open: dict[asyncio.BaseTransport, _Guarded] = {}

    def admit(self, client: str) -> bytes | None:
        """None when admitted (and counted), else the bare response that refuses it."""
        if self.total >= self.limits.max_connections:
            self.refused += 1
            return b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        if self.per_client.get(client, 0) >= self.limits.per_client_connections:
            self.refused += 1
            return b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        self.total += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        self.total -= 1
        left = self.per_client.get(client, 1) - 1
        if left:
            self.per_client[client] = left
        else:
            self.per_client.pop(client, None)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the gate and the idle-head timer."""

    def __init__(self, inner: asyncio.Protocol, gate: _Gate) -> None:
        self._inner = inner
        self._gate = gate
        self._client = ""
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        refusal = self._gate.admit(client)
        if refusal is not None:
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(refusal)
            transport.close()
            return
        self._client = client
        self._transport = transport
        self._gate.open[transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._gate.limits.head_timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._busy:
            self._gate.expired += 1
            self._transport.close()

    def busy(self) -> None:
        self._busy += 1
        self._disarm()

    def idle(self) -> None:
        self._busy -= 1
        if not self._busy and self._transport is not None:
            self._arm()

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        self._disarm()
        self._gate.open.pop(transport, None)
        self._gate.release(self._client)
        self._inner.connection_lost(exc)


# ------------------------------------------------------------------------------------ middleware
_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


@dataclass
class _Guards:
    limits: Limits
    trusted_hosts: frozenset[str]
    gate: _Gate
    authenticator: Authenticator | None
    audit: AuditSink | None
    sessions: SessionLookup | None
    # aiohttp's route (method and resource) -> ours
    routes: dict[object, Route] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)


def _middlewares(g: _Guards) -> list[Any]:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = g.gate.open.get(request.transport) if request.transport is not None else None
        if guarded is not None:
            guarded.busy()
        try:
            response, code = await _answer(request, handler)
            if request.method in MUTATING and g.audit is not None:
                await _audit(g.audit, request, response.status, code)
            return response
        finally:
            if guarded is not None:
                guarded.idle()

    @web.middleware
    async def origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if host_name(host) not in g.trusted_hosts:
            raise HTTPError(421, "unknown_host", f"this server does not answer to host {host!r}")
        if request.method in MUTATING:
            sent = request.headers.get("Origin")
            if sent is not None and urlsplit(sent).netloc.lower() != host.strip().lower():
                raise HTTPError(403, "foreign_origin", f"requests from origin {sent!r} are refused")
            if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                raise HTTPError(403, "foreign_origin", "cross-site requests are refused")
            has_body = bool(request.content_length) or "Transfer-Encoding" in request.headers
            if (has_body or "Content-Type" in request.headers) and request.content_type != "application/json":
                raise HTTPError(
                    415, "unsupported_media_type", "a request body must be sent as application/json"
                )
        return await handler(request)

    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = g.routes.get(request.match_info.route)
        if route is None:
            return await handler(request)
        client = request.remote or "?"
        counts, cap = (
            (g.streams, g.limits.per_client_streams)
            if route.stream
            else (g.requests, g.limits.per_client_requests)
        )
        if counts.get(client, 0) >= cap:
            what = "event streams" if route.stream else "requests in progress"
            raise HTTPError(429, "too_many_requests", f"at most {cap} {what} per client")
        counts[client] = counts.get(client, 0) + 1
        request[ROUTE_KEY] = route
        try:
            if route.stream:
                await _authorise(g, request, route, {})
                return await handler(request)
            reading = False
            try:
                async with asyncio.timeout(g.limits.request_deadline) as deadline:
                    if route.action is not None:
                        request[PRINCIPAL_KEY] = await _authenticate(g, request)
                    if route.schema is not None:
                        reading = True
                        request[BODY_KEY] = await _read_body(request, route.schema)
                        reading = False
                    await _authorise(g, request, route, body(request))
                    return await handler(request)
            except TimeoutError as exc:
                if not deadline.expired():
                    raise
                if reading:
                    raise HTTPError(408, "request_timeout", "the request body came too slowly") from exc
                raise HTTPError(
                    503, "deadline_exceeded", f"no answer within {g.limits.request_deadline:g} s"
                ) from exc
        finally:
            left = counts[client] - 1
            if left:
                counts[client] = left
            else:
                counts.pop(client, None)

    return [errors, origin, limits]


async def _answer(request: web.Request, handler: Handler) -> tuple[web.StreamResponse, str]:
    """The response, and the stable code it carries (``ok`` when the request was done)."""
    try:
        return await handler(request), "ok"
    except HTTPError as exc:
        resp = error_response(exc.status, exc.code, exc.message)
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        return resp, exc.code
    except BodyError as exc:
        return error_response(422, exc.code, exc.message, exc.field), exc.code
    except DialOutRefusedError as exc:  # the dial-out policy forbids the number
        return error_response(403, exc.code, f"{exc.message}: {exc.reason}"), exc.code
    except DomainError as exc:
        return error_response(409, exc.code, exc.message), exc.code
    except StoreError as exc:  # the users or audit store is away: not the client's fault
        log.error("HTTP %s %s: %s", request.method, request.path, exc)
        return error_response(503, exc.code, "the user store is not reachable; try again"), exc.code
    except CallcenterError as exc:
        return error_response(422, exc.code, exc.message), exc.code
    except web.HTTPException as exc:
        code = _CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason), code
    except Exception:  # a failing handler answers 500; the server keeps serving
        log.exception("HTTP handler failed: %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the handler failed; see the controller log"), (
            "internal_error"
        )


async def _authenticate(g: _Guards, request: web.Request) -> Principal:
    cookie = request.cookies.get(SESSION_COOKIE)
    if "Authorization" not in request.headers and cookie and g.sessions is not None:
        found = g.sessions.principal_for_cookie(cookie)
        if found is None:
            raise HTTPError(401, "unauthenticated", "the session has ended; sign in again")
        who, csrf = found
        sent = request.headers.get("X-CSRF-Token", "")
        if request.method in MUTATING and not secrets.compare_digest(sent.encode(), csrf.encode()):
            raise HTTPError(403, "csrf_failed", "a browser request must carry its session's X-CSRF-Token")
        return who
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPError(401, "unauthenticated", "send Authorization: Bearer <token>")
    holder = None
    if g.authenticator is not None:
        holder = await g.authenticator.principal_for_token(token.strip(), timeout=5.0)
    if holder is None:
        raise HTTPError(401, "unauthenticated", "the token is unknown, revoked or its user disabled")
    return holder


async def _authorise(g: _Guards, request: web.Request, route: Route, checked: dict[str, Any]) -> None:
    if route.action is None:
        return
    who = request.get(PRINCIPAL_KEY)
    if who is None:
        who = request[PRINCIPAL_KEY] = await _authenticate(g, request)
    target = route.target(request, checked) if route.target is not None else Target()
    request[TARGET_KEY] = target
    verdict = decide(who, route.action, target)
    if not verdict.allowed:
        raise HTTPError(
            403, "forbidden", f"{who.role} {who.name!r} may not {route.action} here ({verdict.reason})"
        )


async def _audit(sink: AuditSink, request: web.Request, status: int, code: str) -> None:
    who = request.get(PRINCIPAL_KEY)
    route = request.get(ROUTE_KEY)
    target = request.get(TARGET_KEY)
    entry = AuditEntry(
        who=who.name if who is not None else "-",
        role=who.role if who is not None else "",
        client=request.remote or "?",
        action=(route.action or "") if route is not None else "",
        method=request.method,
        path=request.path[:500],
        target=target.label if target is not None else "",
        status=status,
        code=code,
    )
    try:
        await sink.record(entry, timeout=5.0)
    except (OSError, TimeoutError, CallcenterError) as exc:
        log.error("audit entry not written (%s): %s", exc, entry)


async def _read_body(request: web.Request, schema: Schema) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return schema.validate({})
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, "bad_json", f"request body is not JSON: {exc}") from exc
    return schema.validate(data)


# ------------------------------------------------------------------------------------ the server
class HTTPServer:
    """The HTTP listener: ``await start()`` (``port`` is then the bound port), ``await close()``."""

    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        trusted_hosts: Iterable[str] | None = None,
        limits: Limits | None = None,
        authenticator: Authenticator | None = None,
        audit: AuditSink | None = None,
        sessions: SessionLookup | None = None,
    ) -> None:
        self.router = router
        self.authenticator = authenticator
        self.audit = audit
        self.sessions = sessions
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.trusted_hosts = (
            frozenset(h.lower() for h in trusted_hosts)
            if trusted_hosts is not None
            else trusted_hosts_for(host)
        )
        self.gate = _Gate(self.limits)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()

    def application(self) -> web.Application:
        guards = _Guards(
            self.limits, self.trusted_hosts, self.gate, self.authenticator, self.audit, self.sessions
        )
        app = web.Application(middlewares=_middlewares(guards), client_max_size=self.limits.max_body)
        app[CLOSING_KEY] = self._closing
        for route in self.router.routes:
            guards.routes[app.router.add_route(route.method, route.path, route.handler)] = route
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.application(),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.limits.keepalive_timeout,
            # Requests in progress get this long to finish when the server closes, then are
            # cancelled (event streams end at once: they watch ``closing``).
            shutdown_timeout=5.0,
        )
        await self._runner.setup()
        factory = self._runner.server
        assert factory is not None  # noqa: S101 - set by setup()
        gate = self.gate
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Guarded(factory(), gate), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._closing.set()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(OSError):
                await runner.cleanup()
        if server is not None:
            await server.wait_closed()
