"""The AMI client against a scripted fake AMI server over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.asterisk.ami import AMIParser, Message, encode
from callcenter.asterisk.ami_client import AMIClient, EventGap
from callcenter.errors import (
    ActionLostError,
    AMIActionError,
    AMIConnectionError,
    AMILoginError,
    AMITimeoutError,
    UnsafeValueError,
)
from tests.fakes import FakeAMIServer, Reply, client_for
from tests.traces import trace_streams


@pytest.fixture
async def server() -> AsyncIterator[FakeAMIServer]:
    srv = FakeAMIServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


# --------------------------------------------------------------------------- basics
async def test_login_action_and_events(server: FakeAMIServer) -> None:
    server.handlers["Getvar"] = lambda m: [
        [("Response", "Success"), ("Variable", "X"), ("Value", "billing es")]
    ]
    seen: list[str] = []
    async with client_for(server) as client:
        assert client.greeting is not None and client.greeting.version == "11.0.0"
        client.subscribe("Hangup", lambda m: seen.append(m.get("Channel") or ""))
        stream = client.events({"Newchannel"})
        reply = await client.send_action("Getvar", {"Channel": "PJSIP/a-1", "Variable": "X"}, timeout=2)
        assert reply.get("Value") == "billing es"
        server.send([("Event", "Newchannel"), ("Channel", "PJSIP/a-1")])
        server.send([("Event", "Hangup"), ("Channel", "PJSIP/a-1"), ("Cause", "16")])
        item = await asyncio.wait_for(anext(stream), 2)
        assert isinstance(item, Message) and item.name == "Newchannel"
        pong = await client.send_action("Ping", timeout=2)  # ordered after the Hangup on the wire
        assert pong.get("Ping") == "Pong"
        assert seen == ["PJSIP/a-1"]
    login = next(m for _, m in server.actions if m.name == "Login")
    assert login.get("Events") == "on"
    assert server.count("Logoff") == 1
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 2)


async def test_login_refused(server: FakeAMIServer) -> None:
    client = client_for(server, secret="wrong")
    with pytest.raises(AMILoginError):
        await client.connect()
    await client.close()


async def test_connect_refused_is_typed() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = AMIClient(username="cc", secret="x", port=port, connect_timeout=2)
    with pytest.raises(AMIConnectionError):
        await client.connect()


async def test_error_response_and_timeout(server: FakeAMIServer) -> None:
    server.handlers["Redirect"] = lambda m: [[("Response", "Error"), ("Message", "Channel not specified")]]
    server.handlers["Status"] = lambda m: None  # never answered
    async with client_for(server) as client:
        with pytest.raises(AMIActionError) as info:
            await client.send_action("Redirect", {"Channel": "nonexistent"}, timeout=2)
        assert info.value.action == "Redirect" and info.value.reason == "Channel not specified"
        assert info.value.action_id
        with pytest.raises(AMITimeoutError):
            await client.send_action("Status", timeout=0.2)
        # The link is still fine afterwards.
        assert (await client.send_action("Ping", timeout=2)).get("Ping") == "Pong"


async def test_event_list_from_a_real_trace(server: FakeAMIServer, traces_dir: Path) -> None:
    rx, _ = trace_streams(traces_dir / "inbound-agi-bridge.ami.txt")
    messages = [m for m in AMIParser().feed(rx) if isinstance(m, Message)]
    listing = [m for m in messages if m.get("ActionID") == "csc-1"]
    assert listing[0].is_response and listing[-1].name == "CoreShowChannelsComplete"

    def answer(m: Message) -> Reply:
        return [[h for h in x.headers if h[0] != "ActionID"] for x in listing]

    server.handlers["CoreShowChannels"] = answer
    async with client_for(server) as client:
        items = await client.send_action_list("CoreShowChannels", timeout=2)
    assert [m.name for m in items] == ["CoreShowChannel", "CoreShowChannel", "CoreShowChannelsComplete"]
    assert items[0].get("Channel") == "Local/100@from-pstn-00000000;2"


async def test_crlf_in_a_value_is_refused_before_anything_is_written(server: FakeAMIServer) -> None:
    server.handlers["Originate"] = lambda m: [
        [("Response", "Success"), ("Message", "Originate successfully queued")]
    ]
    async with client_for(server) as client:
        await client.send_action("Ping", timeout=2)
        before = server.raw_bytes
        with pytest.raises(UnsafeValueError) as info:
            await client.send_action(
                "Originate",
                {"Channel": "Local/2001@agents", "Variable": "CALLER=x\r\nAction: Hangup"},
                timeout=2,
            )
        assert info.value.field == "Variable"
        with pytest.raises(UnsafeValueError):
            await client.send_action("Setvar", [("Value", "a\nb")], timeout=2)
        await client.send_action("Ping", timeout=2)
    assert server.count("Originate") == 0 and server.count("Hangup") == 0 and server.count("Setvar") == 0
    assert server.raw_bytes > before


# --------------------------------------------------------------------------- reconnect
async def test_reconnect_never_resends_an_originate(server: FakeAMIServer) -> None:
    server.handlers["Originate"] = lambda m: None  # in flight when the link drops
    answer_getvar = False

    def getvar(m: Message) -> Reply:
        return [[("Response", "Success"), ("Value", "1")]] if answer_getvar else None

    server.handlers["Getvar"] = getvar
    gaps: list[EventGap] = []
    async with client_for(server) as client:
        client.on_gap(gaps.append)
        stream = client.events()
        originate = asyncio.create_task(
            client.send_action("Originate", {"Channel": "Local/2001@agents"}, timeout=5)
        )
        getvar_task = asyncio.create_task(client.send_action("Getvar", {"Variable": "X"}, timeout=5))
        await server.wait_for(lambda: server.count("Originate") == 1 and server.count("Getvar") == 1)
        answer_getvar = True
        server.drop()
        with pytest.raises(ActionLostError) as info:
            await originate
        assert info.value.action == "Originate"
        # The idempotent Getvar is sent again on the new link and answered there.
        assert (await getvar_task).get("Value") == "1"
        item = await asyncio.wait_for(anext(stream), 5)
        assert isinstance(item, EventGap) and item.reason == "link" and item.until >= item.since
        assert client.reconnects == 1 and client.connected
        await client.send_action("Ping", timeout=2)
    assert server.count("Originate") == 1
    assert [n for n, m in server.actions if m.name == "Getvar"] == [1, 2]
    assert [n for n, m in server.actions if m.name == "Login"] == [1, 2]
    assert len(gaps) == 1


async def test_action_sent_while_the_link_is_down_waits_for_it(server: FakeAMIServer) -> None:
    server.handlers["Originate"] = lambda m: [
        [("Response", "Success"), ("Message", "Originate successfully queued")]
    ]
    async with client_for(server) as client:
        server.accept_logins = False
        server.drop()
        await server.wait_for(lambda: server.count("Login") >= 2)  # the client is reconnecting
        assert not client.connected
        # Sent during the gap: never written on a dead link, so it is sent once, on the new one.
        task = asyncio.create_task(
            client.send_action("Originate", {"Channel": "Local/2001@agents"}, timeout=5)
        )
        server.accept_logins = True
        reply = await task
        assert reply.get("Message") == "Originate successfully queued"
    originates = [n for n, m in server.actions if m.name == "Originate"]
    assert len(originates) == 1 and originates[0] > 2


async def test_ping_timeout_reconnects(server: FakeAMIServer) -> None:
    server.answer_pings = False
    async with client_for(server, ping_interval=0.02, ping_timeout=0.2) as client:
        await server.wait_for(lambda: server.connections >= 2)
        server.answer_pings = True
        await server.wait_for(lambda: any(n == 2 and m.name == "Ping" for n, m in server.actions))
        assert (await client.send_action("Ping", timeout=2)).get("Ping") == "Pong"


async def test_oversized_message_cuts_the_link_and_reconnects(server: FakeAMIServer) -> None:
    server.handlers["Hangup"] = lambda m: None
    async with client_for(server, max_message_size=4096) as client:
        hangup = asyncio.create_task(client.send_action("Hangup", {"Channel": "PJSIP/a-1"}, timeout=5))
        await server.wait_for(lambda: server.count("Hangup") == 1)
        server.send([("Event", "VarSet"), ("Value", "x" * 10_000)])
        with pytest.raises(ActionLostError):
            await hangup
        await server.wait_for(lambda: server.connections == 2)
        await client.send_action("Ping", timeout=2)
    assert server.count("Hangup") == 1


async def test_no_reconnect_mode_fails_pending_actions(server: FakeAMIServer) -> None:
    server.handlers["Getvar"] = lambda m: None
    client = client_for(server, reconnect=False)
    await client.connect()
    task = asyncio.create_task(client.send_action("Getvar", timeout=5))
    await server.wait_for(lambda: server.count("Getvar") == 1)
    server.drop()
    with pytest.raises(AMIConnectionError):
        await task
    with pytest.raises(AMIConnectionError):
        await client.send_action("Ping", timeout=1)
    await client.close()


# --------------------------------------------------------------------------- slow consumers
async def test_slow_consumer_gets_an_overflow_gap_and_the_reader_keeps_up(server: FakeAMIServer) -> None:
    total = 5_000
    async with client_for(server) as client:
        stream = client.events({"Newexten"}, maxsize=100)
        got: list[int] = []
        client.subscribe("Newexten", lambda m: got.append(int(m.get("Priority") or 0)))
        server.send_raw(b"".join(encode([("Event", "Newexten"), ("Priority", str(i))]) for i in range(total)))
        # The reader is not held up by the consumer that reads nothing: a Ping sent after the
        # flood is answered after all of it was read.
        await client.send_action("Ping", timeout=5)
        assert got == list(range(total))
        items = [await asyncio.wait_for(anext(stream), 2) for _ in range(101)]
        assert all(isinstance(m, Message) for m in items[:100])
        gap = items[100]
        assert isinstance(gap, EventGap) and gap.reason == "overflow" and gap.dropped == total - 100


async def test_callback_errors_do_not_break_the_reader(server: FakeAMIServer) -> None:
    seen: list[str] = []

    def bad(m: Message) -> None:
        raise RuntimeError("boom")

    async with client_for(server) as client:
        client.subscribe("*", bad)
        client.subscribe("Hangup", lambda m: seen.append("ok"))
        server.send([("Event", "Hangup"), ("Channel", "x")])
        await client.send_action("Ping", timeout=2)
    assert seen == ["ok"]


# --------------------------------------------------------------------------- panoramisk
async def test_panoramisk_manager_resends_an_originate_after_reconnect(server: FakeAMIServer) -> None:
    """Why the client is our own: panoramisk's Manager queues an unanswered Originate and sends
    it again once the new link is up (after FullyBooted): the agent's phone would ring twice."""
    from panoramisk import Manager

    server.handlers["Originate"] = lambda m: None

    def on_login(m: Message) -> Reply:
        return None

    manager = Manager(
        host="127.0.0.1",
        port=server.port,
        username="cc",
        secret="s3cret",
        ping_delay=3600,
        reconnect_timeout=0,
        loop=asyncio.get_running_loop(),
    )
    manager.connect()
    try:
        await server.wait_for(lambda: server.count("Login") == 1)
        server.send([("Event", "FullyBooted"), ("Status", "Fully Booted")])
        future = manager.send_action({"Action": "Originate", "Channel": "Local/2001@agents"})
        await server.wait_for(lambda: server.count("Originate") == 1)
        server.drop()
        await server.wait_for(lambda: server.count("Login") == 2)
        server.send([("Event", "FullyBooted"), ("Status", "Fully Booted")])
        await server.wait_for(lambda: server.count("Originate") == 2)
        assert [n for n, m in server.actions if m.name == "Originate"] == [1, 2]
    finally:
        manager.close()
        with contextlib.suppress(Exception):
            future.cancel()


async def test_reconnect_backoff_is_capped_on_the_injected_clock(server: FakeAMIServer) -> None:
    from callcenter.clock import FakeClock

    clock = FakeClock()
    attempts: list[float] = []
    attempted = asyncio.Event()
    refuse = False

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        attempts.append(clock.monotonic())
        attempted.set()
        if refuse:
            raise ConnectionRefusedError("Asterisk is restarting")
        return await asyncio.open_connection("127.0.0.1", server.port)

    client = client_for(server, connect=connect, clock=clock, backoff_initial=0.5, backoff_max=2.0)
    gapped = asyncio.Event()
    gaps: list[EventGap] = []
    client.on_gap(lambda gap: (gaps.append(gap), gapped.set()))
    await client.connect()
    try:
        refuse = True
        server.drop()
        for expected in (0.5, 1.0, 2.0, 2.0, 2.0):
            await clock.wait_for_sleepers(1)
            attempted.clear()
            clock.advance(expected - 0.01)
            await asyncio.sleep(0)  # a too-early attempt would run now: none may
            assert not attempted.is_set()
            refuse = len(attempts) < 5
            clock.advance(0.01)
            await asyncio.wait_for(attempted.wait(), 5)
        await asyncio.wait_for(gapped.wait(), 5)
        assert server.count("Login") == 2
        assert gaps[0].reason == "link" and gaps[0].until - gaps[0].since == pytest.approx(7.5)
        steps = [round(b - a, 2) for a, b in zip(attempts[1:], attempts[2:], strict=False)]
        assert steps == [1.0, 2.0, 2.0, 2.0]
    finally:
        await client.close()


async def test_own_action_id_matches_an_originate_response_sent_in_the_same_segment(
    server: FakeAMIServer,
) -> None:
    def originate(m: Message) -> Reply:
        return [
            [("Response", "Success"), ("Message", "Originate successfully queued")],
            [("Event", "OriginateResponse"), ("Response", "Failure"), ("Reason", "0")],
        ]

    server.handlers["Originate"] = originate
    seen: list[Message] = []
    async with client_for(server) as client:
        client.subscribe("OriginateResponse", seen.append)
        reply = await client.send_action(
            "Originate", {"Channel": "PJSIP/agent2001"}, action_id="orig-1", timeout=2
        )
        assert reply.action_id == "orig-1"
        await client.send_action("Ping", timeout=2)
        with pytest.raises(UnsafeValueError):
            await client.send_action("Ping", action_id="x\r\nAction: Hangup", timeout=2)
        with pytest.raises(ValueError, match="action_id"):
            await client.send_action("Ping", {"ActionID": "y"}, timeout=2)
    assert [m.action_id for m in seen] == ["orig-1"]
    assert server.count("Hangup") == 0
