"""The HTTP shell: routing, errors that name what went wrong, streaming, hostile clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from callcenter.errors import DomainError
from callcenter.reporting.metrics import Registry
from callcenter.web.http import HTTPServer, Request, Response, Router, json_response
from tests.fakes import http_exchange, http_request, http_split


@pytest.fixture
async def server() -> AsyncIterator[HTTPServer]:
    router = Router()

    async def hello(req: Request) -> Response:
        return json_response({"agent": req.params["agent_id"], "q": req.arg("q")})

    async def echo(req: Request) -> Response:
        return json_response({"got": req.json()})

    async def boom(req: Request) -> Response:
        raise RuntimeError("handler bug")

    async def refuse(req: Request) -> Response:
        raise DomainError("agent 1001 is not logged in", code="agent_not_logged_in")

    async def stream(req: Request) -> Response:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()

        return Response(200, gen(), content_type="text/event-stream")

    router.add("GET", "/agents/{agent_id}", hello)
    router.add("POST", "/echo", echo)
    router.add("GET", "/boom", boom)
    router.add("POST", "/refuse", refuse)
    router.add("GET", "/events", stream)
    srv = HTTPServer(router, read_timeout=0.5, max_body=1000)
    await srv.start()
    yield srv
    await srv.close()


async def test_routes_and_params(server: HTTPServer) -> None:
    status, body = http_split(await http_exchange(server.port, http_request("/agents/1001?q=x")))
    assert status == 200
    assert json.loads(body) == {"agent": "1001", "q": "x"}


async def test_errors_name_what_went_wrong(server: HTTPServer) -> None:
    status, body = http_split(await http_exchange(server.port, http_request("/nope")))
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, body = http_split(await http_exchange(server.port, http_request("/echo")))
    assert status == 405
    status, body = http_split(await http_exchange(server.port, http_request("/echo", b"{not json", "POST")))
    assert status == 400 and "not JSON" in json.loads(body)["error"]["message"]
    status, body = http_split(await http_exchange(server.port, http_request("/refuse", b"", "POST")))
    assert status == 409 and json.loads(body)["error"]["code"] == "agent_not_logged_in"
    status, body = http_split(await http_exchange(server.port, http_request("/echo", b"x" * 5000, "POST")))
    assert status == 413


async def test_a_failing_handler_does_not_stop_the_server(
    server: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    status, _ = http_split(await http_exchange(server.port, http_request("/boom")))
    assert status == 500
    assert "handler failed" in caplog.text
    status, _ = http_split(await http_exchange(server.port, http_request("/agents/7")))
    assert status == 200


async def test_garbage_and_slow_clients(server: HTTPServer) -> None:
    status, _ = http_split(await http_exchange(server.port, b"\x00\x01garbage\r\n\r\n"))
    assert status == 400
    # A client that sends half a request and stalls is dropped after read_timeout.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /agents/1 HTTP/1.1\r\nhost")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5.0) == b""
    writer.close()
    await writer.wait_closed()


async def test_server_sent_events_stream(server: HTTPServer) -> None:
    resp = await http_exchange(server.port, http_request("/events"))
    assert b"text/event-stream" in resp
    assert resp.count(b"data: ") == 3


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
