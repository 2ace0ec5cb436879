"""The FastAGI server over real loopback sockets, driven by a scripted Asterisk side."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable

import pytest

from callcenter.asterisk.agi import HANGUP_LINE, AGIReply, CommandReader, encode_env, encode_reply
from callcenter.asterisk.agi_server import AGISession, FastAGIServer, Handler
from callcenter.errors import AGICommandError, AGIHangupError, UnsafeValueError
from tests.traces import TRACES, agi_trace

ENV = {
    "agi_network": "yes",
    "agi_network_script": "ivr",
    "agi_request": "agi://127.0.0.1:4573/ivr",
    "agi_channel": "PJSIP/carrier-00000000",
    "agi_uniqueid": "1795420631.0",
    "agi_callerid": "5551230004",
    "agi_dnid": "18005550100",
}

Responder = Callable[[list[str]], bytes]


async def fake_asterisk(
    port: int, responder: Responder, *, env: dict[str, str] | None = None, timeout: float = 10.0
) -> list[list[str]]:
    """Play Asterisk: connect, send the environment, answer each command with ``responder``
    until the server closes the connection. Returns the commands received."""
    got: list[list[str]] = []
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(encode_env(env or ENV))
            commands = CommandReader()
            while True:
                try:
                    data = await reader.read(65536)
                except ConnectionResetError:
                    break  # a refusal may reset the connection: Asterisk sees AGISTATUS=FAILURE
                for words in commands.feed(data):
                    got.append(words)
                    if words and words[0].lower().startswith("failure"):
                        return got  # as res_agi: AGISTATUS=FAILURE, the AGI ends, socket closed
                    writer.write(responder(words))
                if not data:
                    break
        finally:
            writer.close()
            with contextlib.suppress(ConnectionResetError):
                await writer.wait_closed()
    return got


def replay(replies: list[bytes]) -> Responder:
    queue = list(replies)
    return lambda words: queue.pop(0) if queue else b"200 result=0\n"


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., FastAGIServer]]:
    servers: list[FastAGIServer] = []

    def make(routes: dict[str, Handler], **kwargs: object) -> FastAGIServer:
        options: dict[str, object] = {
            "host": "127.0.0.1",
            "port": 0,
            "read_timeout": 5.0,
            "command_timeout": 5.0,
        }
        options.update(kwargs)
        server = FastAGIServer(routes, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


async def test_the_inbound_capture_replayed(make_server: Callable[..., FastAGIServer]) -> None:
    received, commands = agi_trace(TRACES / "inbound-agi-bridge.agi.txt")
    body = received.split(b"\n\n", 1)[1]
    lines = body.split(b"\n")[:-1]
    replies: list[bytes] = []
    i = 0
    while i < len(lines):  # one reply per command; a 520- reply spans several lines
        if lines[i].startswith(b"520-"):
            j = next(k for k in range(i, len(lines)) if lines[k].startswith(b"520 "))
            replies.append(b"\n".join(lines[i : j + 1]) + b"\n")
            i = j + 1
        elif lines[i] == b"HANGUP":
            replies.append(b"HANGUP\n" + lines[i + 1] + b"\n")
            i += 2
        else:
            replies.append(lines[i] + b"\n")
            i += 1
    outcome: dict[str, object] = {}

    async def ivr(s: AGISession) -> None:
        outcome["channel"] = s.channel
        await s.answer()
        outcome["cid"] = await s.get_variable("CALLERID(num)")
        await s.set_variable("CC_SKILL", "billing es")
        outcome["stream"] = await s.stream_file("beep", "")
        outcome["data"] = await s.get_data("beep", timeout_ms=4000, max_digits=1)
        outcome["digit"] = await s.wait_for_digit(1500)
        with pytest.raises(AGICommandError) as unknown:
            await s.command("BOGUS COMMAND")
        outcome["510"] = unknown.value.status
        with pytest.raises(AGICommandError) as usage:
            await s.command("GET DATA")
        outcome["520"] = usage.value.status
        outcome["exec"] = await s.exec("Playback", "beep")
        outcome["status"] = await s.channel_status()
        try:
            await s.exec("MusicOnHold", "default", "30", timeout=5)
        except AGIHangupError:
            outcome["moh"] = "hungup"
        with pytest.raises(AGIHangupError):
            await s.noop("refused: the channel is gone")
        outcome["peer"] = await s.get_variable("BRIDGEPEER", allow_dead=True)

    server = make_server({"ivr": ivr})
    await server.start()
    got = await fake_asterisk(
        server.port, replay(replies), env=dict(ENV, agi_channel="Local/100@from-pstn-00000000;2")
    )
    assert [" ".join(w) for w in got][:9] == [" ".join(w) for w in map(lambda c: _words(c), commands[:9])]
    assert outcome == {
        "channel": "Local/100@from-pstn-00000000;2",
        "cid": "5551230001",
        "stream": ("", 3404),
        "data": "2",
        "digit": "#",
        "510": 510,
        "520": 520,
        "exec": 0,
        "status": 6,
        "moh": "hungup",
        "peer": None,
    }
    assert server.served == 1 and server.failed == 0


def _words(command: str) -> list[str]:
    from callcenter.asterisk.agi import parse_command

    return parse_command(command)


async def test_hangup_notice_then_the_real_answer(make_server: Callable[..., FastAGIServer]) -> None:
    results: list[str | None] = []

    async def ivr(s: AGISession) -> None:
        try:
            await s.exec("MusicOnHold", "default,30")
        except AGIHangupError:
            results.append(await s.get_variable("HANGUPCAUSE", allow_dead=True))
            raise

    server = make_server({"ivr": ivr})
    await server.start()
    await fake_asterisk(server.port, replay([b"200 result=-1\n", HANGUP_LINE + b"200 result=1 (0)\n"]))
    assert results == ["0"] and server.served == 1 and server.failed == 0


async def test_routes_unknown_script_and_failing_handler(make_server: Callable[..., FastAGIServer]) -> None:
    async def broken(s: AGISession) -> None:
        raise RuntimeError("bug in one route")

    async def fine(s: AGISession) -> None:
        await s.answer()
        await s.set_variable("X", "1")

    server = make_server({"broken": broken, "ivr": fine})
    await server.start()
    ok = replay([b"200 result=0\n", b"200 result=1\n"])
    results = await asyncio.gather(
        fake_asterisk(server.port, ok, env=dict(ENV, agi_network_script="broken")),
        fake_asterisk(server.port, ok),
        fake_asterisk(server.port, ok, env=dict(ENV, agi_network_script="nosuch")),
    )
    # The failing route and the unknown one end with AGISTATUS=FAILURE (the dialplan's fallback).
    assert results[0] == [["failure"]] and results[2] == [["failure"]]
    assert results[1] == [["ANSWER"], ["SET", "VARIABLE", "X", "1"]]
    assert server.failed == 1 and server.served == 1 and server.bad == 1


async def test_unsafe_argument_is_refused_before_sending(make_server: Callable[..., FastAGIServer]) -> None:
    async def ivr(s: AGISession) -> None:
        with pytest.raises(UnsafeValueError):
            await s.set_variable("CC_CUSTOMER", "x\nEXEC Dial evil")
        await s.noop()

    server = make_server({"ivr": ivr})
    await server.start()
    got = await fake_asterisk(server.port, replay([]))
    assert got == [["NOOP"]]


async def test_garbage_headers_and_eof_mid_header_keep_the_loop_responsive(
    make_server: Callable[..., FastAGIServer],
) -> None:
    async def ivr(s: AGISession) -> None:
        await s.answer()

    server = make_server({"ivr": ivr})
    await server.start()
    lags: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def ticker() -> None:  # measures loop responsiveness; it synchronises nothing
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - before)

    tick = asyncio.create_task(ticker())

    async def bad_peer(payload: bytes) -> None:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(payload)
            writer.write_eof()  # EOF before the blank line
            try:
                answer = await reader.read()
            except ConnectionResetError:  # it stopped reading our garbage midway: fine too
                answer = b""
            assert answer in (b"", b"failure\n")  # the server closed: it is done with us
            writer.close()
            await writer.wait_closed()

    payloads = [b"agi_network: yes\nagi_network_script: ivr\n", b"agi_netw", b"", b"GET / HTTP/1.1\r\n\r\n"]
    await asyncio.gather(*(bad_peer(payloads[i % len(payloads)]) for i in range(200)))
    # A real session still works right after.
    assert await fake_asterisk(server.port, replay([])) == [["ANSWER"]]
    stop.set()
    await tick
    assert server.bad == 200 and server.served == 1 and server.active == 0
    assert lags and max(lags) < 1.0  # generous: a spinning handler would freeze it for ever


async def test_slow_peer_before_the_blank_line_times_out(make_server: Callable[..., FastAGIServer]) -> None:
    server = make_server({}, read_timeout=0.2)
    await server.start()
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\n")
        assert await reader.read() == b"failure\n"  # the server gave up and closed
        writer.close()
        await writer.wait_closed()
    assert server.bad == 1


async def test_session_cap_refuses_clearly(make_server: Callable[..., FastAGIServer]) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold(s: AGISession) -> None:
        entered.set()
        await release.wait()

    server = make_server({"ivr": hold}, max_sessions=1)
    await server.start()
    first = asyncio.create_task(fake_asterisk(server.port, replay([])))
    await asyncio.wait_for(entered.wait(), 5)
    assert await fake_asterisk(server.port, replay([])) == [["failure"]]  # AGISTATUS=FAILURE at once
    assert server.refused == 1
    release.set()
    assert await first == []


async def test_a_thousand_concurrent_sessions(make_server: Callable[..., FastAGIServer]) -> None:
    async def ivr(s: AGISession) -> None:
        await s.answer()
        value = await s.get_variable("CALLERID(num)")
        await s.set_variable("CC_CALLER", value or "")

    server = make_server({"ivr": ivr}, max_sessions=2000, backlog=2048)
    await server.start()

    def responder(words: list[str]) -> bytes:
        if words[:2] == ["GET", "VARIABLE"]:
            return encode_reply(AGIReply.ok(1, data="5551230004"))
        return b"200 result=1\n"

    sem = asyncio.Semaphore(1000)

    async def one() -> list[list[str]]:
        async with sem:
            return await fake_asterisk(server.port, responder, timeout=30)

    results = await asyncio.gather(*(one() for _ in range(1000)))
    assert all(len(r) == 3 and r[2] == ["SET", "VARIABLE", "CC_CALLER", "5551230004"] for r in results)
    assert server.served == 1000 and server.failed == 0 and server.active == 0


PANORAMISK_SPIN = textwrap.dedent(
    """
    import asyncio, os, socket, sys, threading, time
    from panoramisk.fast_agi import Application

    async def main():
        app = Application(loop=asyncio.get_running_loop())
        server = await asyncio.start_server(app.handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ticks = [0]

        async def ticker():
            while True:
                ticks[0] += 1
                await asyncio.sleep(0.01)

        asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0.1)

        def peer_then_watch():
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"agi_network: yes\\n")  # no blank line, then EOF
            s.close()
            last, still = ticks[0], 0
            while still < 20:
                time.sleep(0.05)
                still = still + 1 if ticks[0] == last else 0
                last = ticks[0]
            print("STUCK: the event loop stopped running", flush=True)
            os._exit(0)

        threading.Thread(target=peer_then_watch, daemon=True).start()
        await asyncio.sleep(30)
        print("RESPONSIVE", flush=True)

    asyncio.run(main())
    """
)


def test_panoramisk_fastagi_handler_spins_on_eof_mid_header() -> None:
    """Why the server is our own: panoramisk's handler never returns to the loop once a peer
    closes before the blank line (checked in a child process, which then exits by itself)."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PANORAMISK_SPIN],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert "STUCK" in done.stdout, (done.stdout, done.stderr)
