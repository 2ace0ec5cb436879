"""The HTTP shell on aiohttp over real loopback sockets: routing, errors that name what went wrong,
streaming, and each guard (trusted hosts, origins, media types, body schemas, body size, the
request deadline, connection caps per client, slow-drip clients)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from callcenter.errors import DomainError
from callcenter.reporting.metrics import Registry
from callcenter.web.http import HTTPServer, Limits, Router, body, closing, json_response
from callcenter.web.schema import Field, Schema
from tests.fakes import admin_tokens, bearer, http_exchange, http_get, http_request, http_split

ECHO = Schema((Field("name", required=True, max_length=10), Field("n", "integer", minimum=0, maximum=9)))


def make_router(release: asyncio.Event) -> Router:
    router = Router()

    async def hello(req: web.Request) -> web.StreamResponse:
        return json_response({"agent": req.match_info["agent_id"], "q": req.query.get("q")})

    async def hello_private(req: web.Request) -> web.StreamResponse:
        return json_response({"ok": True})

    async def echo(req: web.Request) -> web.StreamResponse:
        return json_response({"got": body(req)})

    async def boom(req: web.Request) -> web.StreamResponse:
        raise RuntimeError("handler bug")

    async def refuse(req: web.Request) -> web.StreamResponse:
        raise DomainError("agent 1001 is not logged in", code="agent_not_logged_in")

    async def slow(req: web.Request) -> web.StreamResponse:
        await release.wait()
        return json_response({})

    async def stream(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        for i in range(3):
            await resp.write(f"data: {i}\n\n".encode())
        if req.query.get("hold"):
            await closing(req).wait()
        return resp

    router.add("GET", "/agents/{agent_id}", hello)
    router.add("POST", "/echo", echo, schema=ECHO)
    router.add("POST", "/empty", echo)
    router.add("GET", "/boom", boom)
    router.add("POST", "/refuse", refuse)
    router.add("GET", "/slow", slow)
    router.add("GET", "/events", stream, stream=True)
    router.add("GET", "/private", hello_private, action="status.view")
    return router


LIMITS = Limits(
    max_body=1000,
    request_deadline=1.0,
    head_timeout=1.0,
    per_client_connections=8,
    per_client_requests=3,
    per_client_streams=2,
    max_connections=300,
)


@pytest.fixture
async def release() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
async def server(release: asyncio.Event) -> AsyncIterator[HTTPServer]:
    srv = HTTPServer(
        make_router(release),
        trusted_hosts=["127.0.0.1", "cc.example"],
        limits=LIMITS,
        authenticator=admin_tokens(),
    )
    await srv.start()
    yield srv
    release.set()
    await srv.close()


async def post(port: int, path: str, raw: bytes, headers: str = "") -> tuple[int, dict[str, object]]:
    status, payload = http_split(await http_exchange(port, http_request(path, raw, "POST", headers)))
    return status, json.loads(payload)


def error_of(answer: tuple[int, dict[str, object]]) -> tuple[int, object, object]:
    status, payload = answer
    err = payload["error"]
    assert isinstance(err, dict)
    return status, err["code"], err.get("field")


async def test_routes_and_params(server: HTTPServer) -> None:
    status, payload = await http_get(server.port, "/agents/1001?q=x")
    assert status == 200
    assert json.loads(payload) == {"agent": "1001", "q": "x"}


async def test_errors_name_what_went_wrong(server: HTTPServer) -> None:
    status, payload = await http_get(server.port, "/nope")
    assert status == 404 and json.loads(payload)["error"]["code"] == "not_found"
    status, payload = await http_get(server.port, "/echo")
    assert status == 405 and json.loads(payload)["error"]["code"] == "method_not_allowed"
    status, payload = await post(server.port, "/echo", b"{not json")
    assert status == 400 and "not JSON" in payload["error"]["message"]  # type: ignore[index]
    assert error_of(await post(server.port, "/refuse", b"")) == (409, "agent_not_logged_in", None)
    assert error_of(await post(server.port, "/echo", b'{"name": "' + b"x" * 5000 + b'"}'))[:2] == (
        413,
        "too_large",
    )


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b"null", "body_not_object", ""),
        (b"[1, 2]", "body_not_object", ""),
        (b'"text"', "body_not_object", ""),
        (b"{}", "missing_field", "name"),
        (b'{"name": null}', "wrong_type", "name"),
        (b'{"name": 7}', "wrong_type", "name"),
        (b'{"name": ["a"]}', "wrong_type", "name"),
        (b'{"name": "a", "n": true}', "wrong_type", "n"),
        (b'{"name": "a", "n": 1.5}', "wrong_type", "n"),
        (b'{"name": "a", "n": 10}', "out_of_range", "n"),
        (b'{"name": "abcdefghijk"}', "too_long", "name"),
        (b'{"name": "a", "admin": true}', "unknown_field", "admin"),
    ],
)
async def test_every_body_is_validated(server: HTTPServer, raw: bytes, code: str, field: str) -> None:
    assert error_of(await post(server.port, "/echo", raw)) == (422, code, field)


async def test_a_valid_body_reaches_the_handler(server: HTTPServer) -> None:
    assert await post(server.port, "/echo", b'{"name": "a", "n": 3}') == (200, {"got": {"name": "a", "n": 3}})
    # A route without a schema takes no body at all.
    assert await post(server.port, "/empty", b"") == (200, {"got": {}})
    assert error_of(await post(server.port, "/empty", b'{"x": 1}')) == (422, "unknown_field", "x")


async def test_a_route_with_an_action_needs_a_token(server: HTTPServer) -> None:
    status, payload = await http_get(server.port, "/private")
    assert (status, json.loads(payload)["error"]["code"]) == (401, "unauthenticated")
    raw = http_request("/private", headers="authorization: Bearer nope\r\n")
    assert http_split(await http_exchange(server.port, raw))[0] == 401
    assert http_split(await http_exchange(server.port, http_request("/private", headers=bearer())))[0] == 200


async def test_unknown_host_is_refused(server: HTTPServer) -> None:
    raw = b"GET /agents/1 HTTP/1.1\r\nhost: attacker.example\r\nconnection: close\r\n\r\n"
    status, payload = http_split(await http_exchange(server.port, raw))
    assert (status, json.loads(payload)["error"]["code"]) == (421, "unknown_host")
    raw = b"GET /agents/1 HTTP/1.1\r\nhost: cc.example:8080\r\nconnection: close\r\n\r\n"
    assert http_split(await http_exchange(server.port, raw))[0] == 200


async def test_foreign_origin_and_cross_site_posts_are_refused(server: HTTPServer) -> None:
    ok = b'{"name": "a"}'
    foreign = "origin: http://attacker.example\r\n"
    assert error_of(await post(server.port, "/echo", ok, foreign)) == (403, "foreign_origin", None)
    assert error_of(await post(server.port, "/echo", ok, "origin: null\r\n")) == (403, "foreign_origin", None)
    cross = "sec-fetch-site: cross-site\r\n"
    assert error_of(await post(server.port, "/echo", ok, cross)) == (403, "foreign_origin", None)
    same = "origin: http://127.0.0.1\r\n"
    assert (await post(server.port, "/echo", ok, same))[0] == 200


async def test_a_text_plain_post_never_reaches_a_handler(server: HTTPServer) -> None:
    raw = (
        b"POST /empty HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
        b"content-type: text/plain\r\ncontent-length: 13\r\n\r\n" + b'{"name": "a"}'
    )
    status, payload = http_split(await http_exchange(server.port, raw))
    assert (status, json.loads(payload)["error"]["code"]) == (415, "unsupported_media_type")
    raw = b"POST /empty HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\n"
    assert http_split(await http_exchange(server.port, raw))[0] == 415


async def test_a_failing_handler_does_not_stop_the_server(
    server: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    status, _ = await http_get(server.port, "/boom")
    assert status == 500
    assert "handler failed" in caplog.text
    assert (await http_get(server.port, "/agents/7"))[0] == 200


async def test_garbage_and_slow_clients(server: HTTPServer) -> None:
    status, _ = http_split(await http_exchange(server.port, b"\x00\x01garbage\r\n\r\n"))
    assert status == 400
    # A client that sends half a request head and stalls is dropped after head_timeout.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /agents/1 HTTP/1.1\r\nhost")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5.0) == b""
    writer.close()
    await writer.wait_closed()
    assert server.gate.expired == 1


async def test_a_dripped_body_meets_the_request_deadline(server: HTTPServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n{"
    )
    await writer.drain()
    status, payload = http_split(await asyncio.wait_for(reader.read(), 5.0))
    assert (status, json.loads(payload)["error"]["code"]) == (408, "request_timeout")
    writer.close()
    await writer.wait_closed()


async def test_a_slow_handler_meets_the_request_deadline(server: HTTPServer) -> None:
    status, payload = await http_get(server.port, "/slow")
    assert (status, json.loads(payload)["error"]["code"]) == (503, "deadline_exceeded")


async def test_server_sent_events_stream(server: HTTPServer) -> None:
    resp = await http_exchange(server.port, http_request("/events"))
    assert b"text/event-stream" in resp
    assert resp.count(b"data: ") == 3


async def open_stream(port: int, path: str, source: str = "127.0.0.1") -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(http_request(path))
    await writer.drain()
    chunk = b""
    async with asyncio.timeout(5):
        while b"data: 2" not in chunk and b"\r\n\r\n{" not in chunk:
            chunk += await reader.read(4096)
    return writer


async def test_event_streams_are_counted_apart_from_api_calls(server: HTTPServer) -> None:
    held = [await open_stream(server.port, "/events?hold=1") for _ in range(2)]
    try:
        # A third stream from the same client is refused; its API calls still answer.
        status, payload = await http_get(server.port, "/events?hold=1")
        assert (status, json.loads(payload)["error"]["code"]) == (429, "too_many_requests")
        assert (await http_get(server.port, "/agents/1"))[0] == 200
    finally:
        for w in held:
            w.close()
            await w.wait_closed()


async def test_connections_are_capped_per_client(server: HTTPServer) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(8)]
    try:
        status, _ = await http_get(server.port, "/agents/1")
        assert status == 429
        # Another client address on the same machine is not affected.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
        writer.write(http_request("/agents/1"))
        await writer.drain()
        assert http_split(await asyncio.wait_for(reader.read(), 5))[0] == 200
        writer.close()
        await writer.wait_closed()
    finally:
        for _, w in conns:
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()


async def test_slow_drip_clients_do_not_starve_the_api(server: HTTPServer) -> None:
    """250 clients from 250 addresses each hold a connection, dripping a request head a byte at a
    time: the API keeps answering others, and the drippers are dropped at the head timeout."""
    drippers: list[asyncio.StreamWriter] = []
    for i in range(250):
        _, w = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=(f"127.0.{1 + i // 200}.{2 + i % 200}", 0)
        )
        w.write(b"G")
        drippers.append(w)

    async def drip() -> None:
        for byte in b"ET /agents/1 HTTP/1.1\r\nhost: 127.0.0.1\r\n":
            for w in drippers:
                if not w.is_closing():
                    w.write(bytes([byte]))
            await asyncio.sleep(0.2)  # the attack's own pace, not a synchronisation

    dripping = asyncio.create_task(drip())
    try:
        for _ in range(5):
            request = http_request("/private", headers=bearer())
            status, _ = http_split(await http_exchange(server.port, request, timeout=5))
            assert status == 200
        assert server.gate.total >= 250
    finally:
        dripping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dripping
        for w in drippers:
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()


def test_metrics_text_format() -> None:
    reg = Registry()
    calls = reg.counter("calls_total", "Calls offered")
    calls.inc(labels={"queue": "sales"})
    calls.inc(2, labels={"queue": "sales"})
    reg.gauge_fn("agents_available", "Agents available", lambda: 4)
    text = reg.render()
    assert "# TYPE callcenter_calls_total counter" in text
    assert 'callcenter_calls_total{queue="sales"} 3' in text
    assert "callcenter_agents_available 4" in text
    with pytest.raises(ValueError):
        calls.inc(-1)
    with pytest.raises(ValueError):
        reg.gauge_fn("calls_total", "clash", lambda: 0)


class _StoreAway:
    async def principal_for_token(self, token: str, *, timeout: float) -> None:
        from callcenter.errors import StoreError

        raise StoreError("connection refused", code="users_unavailable")


async def test_a_user_store_that_is_away_answers_503_not_4xx(release: asyncio.Event) -> None:
    srv = HTTPServer(make_router(release), authenticator=_StoreAway())
    await srv.start()
    try:
        raw = http_request("/private", headers=bearer())
        status, payload = http_split(await http_exchange(srv.port, raw))
        assert (status, json.loads(payload)["error"]["code"]) == (503, "users_unavailable")
    finally:
        await srv.close()


async def test_closing_with_an_event_stream_open_ends_quietly(release: asyncio.Event) -> None:
    srv = HTTPServer(make_router(release))
    await srv.start()
    writer = await open_stream(srv.port, "/events?hold=1")
    try:
        await asyncio.wait_for(srv.close(), 2)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
