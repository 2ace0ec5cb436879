"""Who the FastAGI server believes: live channels the AMI reported, allowed peers, per-peer caps.

Real loopback sockets for the server; the AMI link is the ``AMILink`` seam's fake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from callcenter.asterisk.agi import FAILURE_LINE
from callcenter.asterisk.agi_server import AGISession, FastAGIServer, Handler, PeerFilter
from callcenter.asterisk.ami import Message
from callcenter.asterisk.channels import LiveChannels
from callcenter.config.load import load
from tests.asterisk.test_agi_server import ENV, fake_asterisk, replay
from tests.centers import problems, write
from tests.fakes import FakeAMI

AGENT_CHANNEL = "PJSIP/agent-1003-00000007"
AGENT_UNIQUEID = "1795420700.7"


def feature_env(channel: str, uniqueid: str) -> dict[str, str]:
    """What a session on agent 1003's phone dialling the log-out code sends."""
    return {
        **ENV,
        "agi_network_script": "feature",
        "agi_request": "agi://127.0.0.1:4573/feature",
        "agi_channel": channel,
        "agi_uniqueid": uniqueid,
        "agi_callerid": "1003",
        "agi_extension": "*72",
    }


async def settled(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll the server's counters (they change with no event a test can await); bounded."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not settled in time")


@pytest.fixture
async def trusted() -> AsyncIterator[tuple[FakeAMI, LiveChannels, Callable[..., FastAGIServer], list[str]]]:
    ami = FakeAMI()
    channels = LiveChannels(ami, settle=0.5)
    channels.attach()
    ran: list[str] = []  # the channel of every session a route ran for
    servers: list[FastAGIServer] = []

    async def logout(s: AGISession) -> None:
        ran.append(s.channel)  # stands in for the feature route that logs the agent out
        await s.answer()

    def make(**kwargs: object) -> FastAGIServer:
        routes: dict[str, Handler] = {"feature": logout, "ivr": logout}
        options: dict[str, object] = {
            "host": "127.0.0.1",
            "port": 0,
            "read_timeout": 5.0,
            "command_timeout": 5.0,
            "channels": channels,
            "trust_timeout": 2.0,
        }
        options.update(kwargs)
        server = FastAGIServer(routes, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield ami, channels, make, ran
    for server in servers:
        await server.close()


Trusted = tuple[FakeAMI, LiveChannels, Callable[..., FastAGIServer], list[str]]


async def test_a_peer_claiming_an_agents_channel_is_refused_before_any_route(trusted: Trusted) -> None:
    ami, channels, make, ran = trusted
    server = make()
    await server.start()
    ami.emit("Newchannel", Channel=AGENT_CHANNEL, Uniqueid=AGENT_UNIQUEID)
    # The agent's channel is live, but the peer does not know its unique id ...
    got = await fake_asterisk(server.port, replay([]), env=feature_env(AGENT_CHANNEL, "1795420700.8"))
    assert got == [["failure"]]  # AGISTATUS=FAILURE: the static fallback, no route ran
    # ... nor is a channel the AMI never reported believed (Asterisk says "No such channel").
    got = await fake_asterisk(server.port, replay([]), env=feature_env("PJSIP/agent-1003-00000099", "1.1"))
    assert got == [["failure"]]
    assert ran == [] and server.untrusted == 2 and server.served == 0
    assert ami.actions("Status") == [{"Channel": "PJSIP/agent-1003-00000099"}]  # the first: at once
    # The real session on that channel runs.
    got = await fake_asterisk(server.port, replay([]), env=feature_env(AGENT_CHANNEL, AGENT_UNIQUEID))
    assert got == [["ANSWER"]] and ran == [AGENT_CHANNEL] and server.served == 1


async def test_a_session_before_its_newchannel_waits_for_it(trusted: Trusted) -> None:
    ami, channels, make, ran = trusted
    server = make()
    await server.start()
    session = asyncio.create_task(
        fake_asterisk(server.port, replay([]), env=feature_env(AGENT_CHANNEL, AGENT_UNIQUEID))
    )
    await settled(lambda: channels.waiting == 1)
    ami.emit("Newchannel", Channel=AGENT_CHANNEL, Uniqueid=AGENT_UNIQUEID)
    assert await session == [["ANSWER"]]
    assert ran == [AGENT_CHANNEL] and ami.actions("Status") == [] and channels.waiting == 0


async def test_a_channel_born_before_the_controller_is_asked_for(trusted: Trusted) -> None:
    ami, channels, make, ran = trusted
    server = make()
    await server.start()
    ami.status = [Message([("Event", "Status"), ("Channel", AGENT_CHANNEL), ("Uniqueid", AGENT_UNIQUEID)])]
    got = await fake_asterisk(server.port, replay([]), env=feature_env(AGENT_CHANNEL, AGENT_UNIQUEID))
    assert got == [["ANSWER"]] and channels.asked == 1
    got = await fake_asterisk(server.port, replay([]), env=feature_env(AGENT_CHANNEL, AGENT_UNIQUEID))
    assert got == [["ANSWER"]] and channels.asked == 1  # learnt: not asked twice


async def test_renames_hangups_and_gaps_keep_the_picture_current() -> None:
    ami = FakeAMI()
    channels = LiveChannels(ami, settle=0.01)
    channels.attach()
    ami.emit("Newchannel", Channel="Local/1003@cc-agents-00000001;1", Uniqueid="9.1")
    ami.emit(
        "Rename", Channel="Local/1003@cc-agents-00000001;1", Newname="PJSIP/agent-1003-0001", Uniqueid="9.1"
    )
    assert await channels.confirm("9.1", "PJSIP/agent-1003-0001", timeout=1)
    assert not await channels.confirm("9.1", "Local/1003@cc-agents-00000001;1", timeout=1)
    ami.emit("Hangup", Channel="PJSIP/agent-1003-0001", Uniqueid="9.1", Cause="16")
    assert len(channels) == 0
    assert not await channels.confirm("9.1", "PJSIP/agent-1003-0001", timeout=1)
    ami.emit("Newchannel", Channel="PJSIP/carrier-01", Uniqueid="9.2")
    ami.gap()  # it may have hung up while the link was down: forgotten, asked again if claimed
    assert len(channels) == 0
    assert not await channels.confirm("", "", timeout=1)
    channels.detach()
    assert ami.subs == {"Newchannel": [], "Rename": [], "Hangup": []} and ami.gap_callbacks == []


async def _half_open(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"agi_network: yes\n")  # and never the blank line
    return reader, writer


async def test_a_flood_of_half_open_connections_from_one_peer_does_not_stop_real_sessions(
    trusted: Trusted,
) -> None:
    ami, channels, make, ran = trusted
    server = make(max_sessions=100, max_pending_per_peer=8, read_timeout=30.0)
    await server.start()
    flood: list[asyncio.StreamWriter] = []
    try:
        for _ in range(600):  # from 127.0.0.2: six times the whole session cap
            _, writer = await _half_open(server.port, "127.0.0.2")
            flood.append(writer)
        await settled(lambda: server.refused == 600 - 8)
        assert server.pending == 8 and server.active == 0  # the flood holds no session slot
        for n in range(20):
            channel, uniqueid = f"PJSIP/carrier-{n:08x}", f"1795420800.{n}"
            ami.emit("Newchannel", Channel=channel, Uniqueid=uniqueid)
            got = await fake_asterisk(server.port, replay([]), env=feature_env(channel, uniqueid))
            assert got == [["ANSWER"]]
        assert server.served == 20 and len(ran) == 20
    finally:
        for writer in flood:
            writer.close()
        for writer in flood:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def test_a_peer_over_its_half_open_cap_gets_the_failure_line(trusted: Trusted) -> None:
    ami, channels, make, ran = trusted
    server = make(max_pending_per_peer=3)
    await server.start()
    held = [await _half_open(server.port, "127.0.0.3") for _ in range(3)]
    try:
        await settled(lambda: server.pending == 3)
        # Refused at once, before anything is read (unread bytes would make the close a reset).
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.3", 0))
        async with asyncio.timeout(5):
            assert await reader.read() == FAILURE_LINE
        writer.close()
        assert server.refused == 1
        await writer.wait_closed()
    finally:
        for _, w in held:
            w.close()
        for _, w in held:
            with contextlib.suppress(OSError):
                await w.wait_closed()


def test_peer_filter_allows_loopback_and_the_allow_list_only() -> None:
    only_loopback = PeerFilter()
    assert only_loopback.allows("127.0.0.1") and only_loopback.allows("::1")
    assert only_loopback.allows("127.0.0.2") and only_loopback.allows("::ffff:127.0.0.1")
    assert (
        not only_loopback.allows("10.0.0.5")
        and not only_loopback.allows("")
        and not only_loopback.allows("x")
    )
    nodes = PeerFilter(["10.0.0.0/24", "192.0.2.7", "2001:db8::/64"])
    assert nodes.allows("10.0.0.5") and nodes.allows("::ffff:10.0.0.5") and nodes.allows("192.0.2.7")
    assert nodes.allows("2001:db8::1") and not nodes.allows("10.0.1.5") and not nodes.allows("192.0.2.8")


AGI_EXTRA = "asterisk:\n  agi:\n{}"


def test_binding_beyond_loopback_needs_an_allow_list(tmp_path: Path) -> None:
    got = problems(tmp_path, AGI_EXTRA.format("    bind: 0.0.0.0\n"))
    assert got == [
        "extra.yaml:3: asterisk.agi.bind: FastAGI bound to '0.0.0.0', beyond loopback, needs"
        " asterisk.agi.allow: the addresses of the Asterisk nodes that may connect"
    ]
    got = problems(tmp_path, AGI_EXTRA.format("    bind: 0.0.0.0\n    allow: [10.0.0.5, 10.0.0.0/33, x]\n"))
    assert got == [
        "extra.yaml:4: asterisk.agi.allow.1: expected an IP address or network, found '10.0.0.0/33'",
        "extra.yaml:4: asterisk.agi.allow.2: expected an IP address or network, found 'x'",
    ]
    config = load(
        write(tmp_path, AGI_EXTRA.format("    bind: 0.0.0.0\n    allow: [10.0.0.5, 10.0.1.0/24]\n")),
        prompts_dir=None,
        env={},
    )
    assert config.config.asterisk.agi.allow == ("10.0.0.5/32", "10.0.1.0/24")
    loopback = load(write(tmp_path, AGI_EXTRA.format("    bind: 127.0.0.1\n")), prompts_dir=None, env={})
    assert loopback.config.asterisk.agi.allow == ()


async def test_a_peer_over_its_session_cap_gets_the_failure_line(trusted: Trusted) -> None:
    ami, channels, make, ran = trusted
    release = asyncio.Event()

    async def hold(s: AGISession) -> None:
        ran.append(s.channel)
        await release.wait()

    server = make(max_sessions_per_peer=2)
    server.routes["ivr"] = hold
    await server.start()
    for n in range(3):
        ami.emit("Newchannel", Channel=f"PJSIP/carrier-{n}", Uniqueid=f"7.{n}")
    envs = [{**ENV, "agi_channel": f"PJSIP/carrier-{n}", "agi_uniqueid": f"7.{n}"} for n in range(3)]
    first = [asyncio.create_task(fake_asterisk(server.port, replay([]), env=envs[n])) for n in range(2)]
    await settled(lambda: len(ran) == 2)
    assert await fake_asterisk(server.port, replay([]), env=envs[2]) == [["failure"]]
    assert server.refused == 1 and server.active == 2
    release.set()
    assert await asyncio.gather(*first) == [[], []]
