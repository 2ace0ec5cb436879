"""The composition root: the whole controller against the simulated PBX over real sockets, its HTTP
API, wallboard stream and /metrics, and a clean stop that flushes the call log. The controller and
the simulator share one autojump clock; waits for traffic are bounded in simulated seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from callcenter.app.controller import Controller, Links, login_all
from callcenter.app.plugins import standard_plugins
from callcenter.clock import AutojumpClock
from callcenter.commands.demo import demo_start, for_demo
from callcenter.commands.sim import center_scenario, start_sim
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.reporting import feed
from callcenter.store import users
from callcenter.web.auth import hash_password
from tests.centers import REPO
from tests.fakes import bearer, http_exchange, http_get, http_request, http_split, within

TRAFFIC_DEADLINE = 3600.0  # simulated seconds for the demo's callers to produce what a test needs


@dataclasses.dataclass
class Running:
    controller: Controller
    stop: asyncio.Event
    task: asyncio.Task[None]
    population: object


@pytest.fixture
async def running(db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock) -> AsyncIterator[Running]:
    config = for_demo(load_config(REPO / "dialplans"), tmp_path)
    write_files(render(config), tmp_path / "asterisk")
    clock = autojump_clock.starting_at(demo_start(config, now=1_795_000_000.0, latest=None))
    sim = await start_sim(
        tmp_path / "asterisk", tmp_path, clock=clock, seed=5, sounds_dirs=(REPO / "ivr_prompts",)
    )
    links = Links.from_config(
        config, ami_host="127.0.0.1", ami_port=sim.ami_port, agi_bind="127.0.0.1", agi_port=0,
        http_host="127.0.0.1", http_port=0,
    )  # fmt: skip
    ctl = Controller(
        config, dsn=db_dsn, run_dir=tmp_path, clock=clock, links=links,
        plugins=standard_plugins(), counter_refresh=1.0,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop))
    try:
        await asyncio.wait_for(ctl.ready.wait(), 60)
        assert await login_all(ctl) == len(config.agents)
        assert ctl.agi is not None
        population = sim.start_people(center_scenario("smoke", config, 10), agi_port=ctl.agi.port)
        yield Running(ctl, stop, task, population)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await sim.close()


async def test_the_controller_serves_calls_api_wallboard_and_metrics(running: Running, db_dsn: str) -> None:
    ctl = running.controller
    assert ctl.http is not None
    port = ctl.http.port

    # Calls flow: wait (bounded) until the call log has answered calls.
    async def answered_calls() -> None:
        while True:
            await ctl.refresh_counters()
            if sum(c.answered for c in ctl.queue_counters().values()) >= 2:
                return
            await ctl.clock.sleep(5.0)

    await within(answered_calls(), timeout=TRAFFIC_DEADLINE, clock=ctl.clock)
    status, body = await http_get(port, "/api/status")
    assert (status, json.loads(body)["error"]["code"]) == (401, "unauthenticated")
    conn = await asyncpg.connect(db_dsn)
    try:
        await users.add_user(conn, "wall", "supervisor", hash_password("wallboard-pw"), queues=["sales"])
        token = await users.issue_token(conn, "wall")
    finally:
        await conn.close()
    status, body = http_split(await http_exchange(port, http_request("/api/status", headers=bearer(token))))
    assert status == 200
    snap = json.loads(body)
    assert sum(q["answered"] for q in snap["queues"]) >= 2
    assert set(snap["agents_by_state"]) <= {"available", "reserved", "ringing", "on_call", "wrap_up",
                                             "paused", "not_ready", "logged_out"}  # fmt: skip
    assert {d["campaign"] for d in snap["dialers"]} == set(ctl.config.campaigns)
    status, body = await http_get(port, "/metrics")
    assert status == 200
    text = body.decode()
    assert 'callcenter_agents{state="' in text
    assert "callcenter_call_log_db_up 1" in text
    assert "callcenter_ami_connected 1" in text
    assert 'callcenter_queue_calls{kind="answered",queue="' in text
    status, body = await http_get(port, "/")
    assert status == 200 and b"/static/wallboard.js" in body and b"{{INITIAL}}" not in body
    status, body = await http_get(port, "/api/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    # The wallboard stream sends snapshots as server-sent events.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /wallboard/events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    chunk = b""
    async with asyncio.timeout(20):
        while b"data: {" not in chunk:
            chunk += await reader.read(4096)
    writer.close()
    await writer.wait_closed()
    assert b"text/event-stream" in chunk


async def test_stop_flushes_the_call_log(running: Running, db_dsn: str) -> None:
    ctl = running.controller

    async def started_calls() -> None:
        while ctl.ivr is None or ctl.ivr.stats.started < 2:
            await ctl.clock.sleep(5.0)

    await within(started_calls(), timeout=TRAFFIC_DEADLINE, clock=ctl.clock)
    running.stop.set()
    await asyncio.wait_for(running.task, 60)
    assert ctl.writer.stats.queued == 0 and ctl.writer.stats.dropped == 0, ctl.writer.stats
    conn = await asyncpg.connect(db_dsn)
    try:
        n = await conn.fetchval("SELECT count(*) FROM calls WHERE direction = 'inbound'")
    finally:
        await conn.close()
    assert n >= 2


async def test_the_event_hub_carries_the_centers_changes(running: Running, db_dsn: str) -> None:
    ctl = running.controller
    assert ctl.http is not None
    port = ctl.http.port
    seen: list[feed.Change] = []
    sub = ctl.hub.subscribe(lambda c: True)

    async def calls_answered() -> None:
        while not {feed.CALL_QUEUED, feed.CALL_ANSWERED, feed.CALL_ENDED} <= {c.kind for c in seen}:
            await ctl.clock.sleep(1.0)
            seen.extend(sub.take())

    await within(calls_answered(), timeout=TRAFFIC_DEADLINE, clock=ctl.clock)
    kinds = {c.kind for c in seen}
    assert {feed.AGENT_STATE, feed.CALL_OFFERED} <= kinds
    states = [c for c in seen if c.kind == feed.AGENT_STATE]
    assert all(c.agent_id in ctl.config.agents and "calls_today" in c.data for c in states)
    ctl.publish_picture()
    snap = next(c for c in sub.take() + seen if c.kind == feed.SNAPSHOT)
    assert {q["name"] for q in snap.data["queues"]} == set(ctl.config.queues)
    assert all(set(q["levels"]) == {"service_level", "longest_wait", "waiting", "overall"}
               for q in snap.data["queues"])  # fmt: skip
    sales = next(q for q in snap.data["queues"] if q["name"] == "sales")
    assert sales["limits"]["longest_wait_red"] == 60 and sales["sl_target_fraction"] == 0.8
    ctl.hub.unsubscribe(sub)
    # the console's stream and its setup need a supervisor (or an admin); the board is public
    conn = await asyncpg.connect(db_dsn)
    try:
        await users.add_user(conn, "grace", "supervisor", hash_password("pw-grace-1"), queues=["sales"])
        await users.add_user(conn, "alice", "agent", hash_password("pw-alice-1"), agent_id="1001")
        grace = await users.issue_token(conn, "grace")
        alice = await users.issue_token(conn, "alice")
    finally:
        await conn.close()
    for path in ("/api/console", "/supervisor/events"):
        status, body = http_split(await http_exchange(port, http_request(path)))
        assert (status, json.loads(body)["error"]["code"]) == (401, "unauthenticated"), path
        status, body = http_split(await http_exchange(port, http_request(path, headers=bearer(alice))))
        assert (status, json.loads(body)["error"]["code"]) == (403, "forbidden"), path
    status, body = http_split(await http_exchange(port, http_request("/api/console", headers=bearer(grace))))
    setup = json.loads(body)
    assert status == 200 and [q["id"] for q in setup["queues"]] == ["sales"]
    assert [c["id"] for c in setup["campaigns"]] == ["renewals"]
    assert all("sales" in a["queues"] for a in setup["agents"].values())
    assert {p["code"] for p in setup["pause_reasons"]} == set(ctl.config.pause_reasons)
    status, page = await http_get(port, "/supervisor")
    assert status == 200 and b"/static/supervisor.js" in page
    for asset in ("supervisor.js", "wallboard.js", "format.js", "wallboard.css", "supervisor.css"):
        assert (await http_get(port, f"/static/{asset}"))[0] == 200
    assert (await http_get(port, "/static/..%2Fhttp.py"))[0] == 404
    status, page = await http_get(port, "/wallboard")
    first = page.split(b'<script id="initial" type="application/json">')[1].split(b"</script>")[0]
    assert status == 200 and {q["name"] for q in json.loads(first)["queues"]} == set(ctl.config.queues)
