"""The event streams over real loopback sockets: who may open which (401, 403), what each reader
receives (an agent never another agent's calls, the public wallboard aggregates only), the first
push carrying the current picture, pushes paced and coalesced, a reader that stops reading
dropped while the others go on; and the real ACD's changes reaching the hub."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcenter.clock import RealClock
from callcenter.reporting import feed
from callcenter.web.access import Principal
from callcenter.web.feed import FeedStreams
from callcenter.web.http import HTTPServer, Router
from tests.centers import example
from tests.fakes import TokenTable, acd_rig, bearer, http_exchange, http_request, http_split, until

TOKENS = {
    "t-ann": Principal("ann", "agent", agent_id="1001"),
    "t-bob": Principal("bob", "agent", agent_id="1002"),
    "t-lee": Principal("lee", "supervisor", queues=frozenset({"billing"}), agent_id="9002"),
    "t-root": Principal("root", "admin"),
}


def call(kind: str, call_id: str, queue: str, agent: str | None = None) -> feed.Change:
    return feed.Change(
        kind,
        1.0,
        agent_id=agent,
        call_id=call_id,
        queues=frozenset({queue}),
        data={"caller_number": "+12125550100"},
    )


@dataclass
class Site:
    port: int
    hub: feed.Hub
    streams: FeedStreams


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    hub = feed.Hub(max_pending=50)

    def initial() -> list[feed.Change]:
        return [
            feed.Change(feed.SNAPSHOT, 1.0, data={"waiting": 0}, key="snapshot"),
            feed.agent_change(
                "1001", 1.0, state="available", reason="login", since=1.0, call_id=None, queues={"sales"}
            ),
            feed.agent_change(
                "1002", 1.0, state="available", reason="login", since=1.0, call_id=None, queues={"billing"}
            ),
        ]

    streams = FeedStreams(
        hub, clock=RealClock(), initial=initial, min_interval=0.2, heartbeat=30.0, write_timeout=1.0
    )
    router = Router()
    streams.register(router)
    server = HTTPServer(router, authenticator=TokenTable(TOKENS))
    await server.start()
    try:
        yield Site(server.port, hub, streams)
    finally:
        await server.close()


class Reader:
    """One open event stream: its status and the pushes read so far."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.status = 0

    @classmethod
    async def open(cls, port: int, path: str, token: str | None) -> Reader:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        auth = bearer(token) if token else ""
        writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}\r\n".encode())
        await writer.drain()
        r = cls(reader, writer)
        async with asyncio.timeout(10):
            while b"\r\n\r\n" not in r.buffer:
                r.buffer += await reader.read(65536)
        head, _, r.buffer = r.buffer.partition(b"\r\n\r\n")
        r.status = int(head.split(b" ")[1])
        return r

    async def push(self) -> dict[str, Any]:
        """The next push (one SSE message)."""
        async with asyncio.timeout(10):
            while b"\n\n" not in self.buffer:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise EOFError("the stream ended")
                self.buffer += chunk
        # chunked transfer encoding: the message sits inside a chunk
        start = self.buffer.index(b"data: ")
        end = self.buffer.index(b"\n\n", start)
        message, self.buffer = self.buffer[start + 6 : end], self.buffer[end + 2 :]
        data: dict[str, Any] = json.loads(message)
        return data

    async def until_snapshot(self) -> list[dict[str, Any]]:
        """The changes pushed up to and including the next snapshot."""
        seen: list[dict[str, Any]] = []
        while not any(c["kind"] == "snapshot" for c in seen):
            seen += (await self.push())["changes"]
        return seen

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_the_console_stream_needs_a_supervisor(site: Site) -> None:
    status, payload = http_split(await http_exchange(site.port, http_request("/supervisor/events")))
    assert (status, json.loads(payload)["error"]["code"]) == (401, "unauthenticated")
    raw = await http_exchange(site.port, http_request("/supervisor/events", headers=bearer("t-ann")))
    status, payload = http_split(raw)
    assert (status, json.loads(payload)["error"]["code"]) == (403, "forbidden")
    status, _ = http_split(await http_exchange(site.port, http_request("/api/events")))
    assert status == 401
    for token in ("t-lee", "t-root"):
        r = await Reader.open(site.port, "/supervisor/events", token)
        assert r.status == 200
        await r.close()


async def test_each_reader_sees_only_its_share(site: Site) -> None:
    ann = await Reader.open(site.port, "/api/events", "t-ann")
    lee = await Reader.open(site.port, "/supervisor/events", "t-lee")
    board = await Reader.open(site.port, "/wallboard/events", None)
    firsts = [await r.push() for r in (ann, lee, board)]
    # the first push is the current picture, filtered
    assert [[(c["kind"], c["agent_id"]) for c in f["changes"]] for f in firsts] == [
        [("snapshot", None), ("agent.state", "1001")],
        [("snapshot", None), ("agent.state", "1002")],
        [("snapshot", None)],
    ]
    site.hub.publish(call(feed.CALL_OFFERED, "c-bob", "billing", "1002"))
    site.hub.publish(call(feed.CALL_OFFERED, "c-ann", "sales", "1001"))
    site.hub.publish(feed.Change(feed.THRESHOLD, 2.0, queues=frozenset({"billing"}), data={"level": "red"}))
    site.hub.publish(call(feed.CALL_QUEUED, "c-new", "sales"))
    site.hub.publish(feed.Change(feed.SNAPSHOT, 3.0, data={"waiting": 1}, key="snapshot"))
    seen = [await r.until_snapshot() for r in (ann, lee, board)]
    assert [[(c["kind"], c["call_id"]) for c in s] for s in seen] == [
        [("call.offered", "c-ann"), ("snapshot", None)],  # never Bob's call nor a queued one
        [("call.offered", "c-bob"), ("threshold", None), ("snapshot", None)],  # billing only
        [("threshold", None), ("snapshot", None)],  # aggregates only
    ]
    assert "caller_number" not in json.dumps(seen[2])
    for r in (ann, lee, board):
        await r.close()


async def test_pushes_are_paced_and_keyed_changes_coalesced(site: Site) -> None:
    board = await Reader.open(site.port, "/wallboard/events", None)
    await board.push()
    for i in range(200):  # a burst: 200 snapshots within a few event-loop turns
        site.hub.publish(feed.Change(feed.SNAPSHOT, float(i), data={"waiting": i}, key="snapshot"))
        if i % 20 == 0:
            await asyncio.sleep(0)
    latest: list[dict[str, Any]] = []
    pushes = 0
    while not latest or latest[-1]["data"]["waiting"] != 199:
        latest = (await board.push())["changes"]
        pushes += 1
    # at most one push per min_interval (0.2 s): 200 snapshots in one burst took a push or two,
    # the later ones coalesced into the latest
    assert pushes <= 3
    await board.close()


async def test_a_reader_that_stops_reading_is_dropped_and_others_go_on(site: Site) -> None:
    stuck = await Reader.open(site.port, "/supervisor/events", "t-root")  # never reads again
    live = await Reader.open(site.port, "/supervisor/events", "t-root")
    await live.push()
    await until(lambda: len(site.hub.subscribers) == 2, site.streams.changed, timeout=10)
    big = "x" * 65536
    for i in range(300):
        pad = {"pad": big}
        site.hub.publish(feed.Change(feed.CALL_QUEUED, 1.0, call_id=f"c{i}", data=pad))
        if i % 10 == 0:
            await asyncio.sleep(0)  # let the live reader's stream write
            while (await live.push())["changes"] == []:
                pass
    # the stuck reader's socket filled, then it was dropped (by the hub or the write timeout)
    await until(lambda: site.streams.open == 1, site.streams.changed, timeout=10)
    assert len(site.hub.subscribers) == 1
    await live.close()
    await stuck.close()


async def test_the_acds_changes_reach_the_hub(tmp_path: Path) -> None:
    hub = feed.Hub()
    sub = hub.subscribe(lambda c: True)

    def step() -> list[tuple[str, str | None, Any]]:
        return [(c.kind, c.agent_id, c.data.get("state")) for c in sub.take()]

    async with acd_rig(example(), tmp_path) as rig:
        rig.acd.on_change = hub.publish
        await rig.acd.login("1001")
        assert step() == [("agent.state", "1001", "available")]
        caller = await rig.call("c1", "sales")
        got = step()
        assert got[0] == ("call.queued", None, "waiting")
        assert ("call.offered", "1001", "offered") in got
        await rig.answer(caller)
        got = step()
        assert ("call.answered", "1001", "connected") in got
        assert ("agent.state", "1001", "on_call") in got
        await rig.hangup(caller, cause="16")
        got = step()
        assert ("call.ended", "1001", "ended") in got
