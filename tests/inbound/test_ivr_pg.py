"""The IVR route end to end with the real parts below it: the FastAGI server on a loopback
socket, the durable call-log writer into the private PostgreSQL, and the customers table for the
screen-pop (VIP priority, a lookup that times out because the database is busy)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.clock import FakeClock
from callcenter.inbound.service import IvrService
from callcenter.store.customers import Customer, CustomerDirectory, upsert_customers
from callcenter.store.writer import CallLogWriter
from tests.centers import CLOSED_NOW, OPEN_NOW, ivr_config
from tests.fakes import Caller, FakeDistributor, agi_env, place_call


@contextlib.asynccontextmanager
async def stack(
    dsn: str, spool: Path, now: float
) -> AsyncIterator[tuple[IvrService, FastAGIServer, FakeDistributor, Any]]:
    clock = FakeClock(start=now)
    writer = CallLogWriter(dsn, spool_dir=spool, clock=clock, batch_delay=0.05, fsync=False)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, timeout=10)
    acd = FakeDistributor()
    ids = iter(f"pg-{i}" for i in range(1, 1000))
    service = IvrService(
        ivr_config(),
        writer=writer,
        distributor=acd,
        customers=CustomerDirectory(pool, timeout=5),
        clock=clock,
        new_call_id=lambda: next(ids),
    )
    server = FastAGIServer({names.AGI_IVR: service.handle}, host="127.0.0.1", port=0)
    runner = asyncio.create_task(writer.run())
    try:
        async with server:
            yield service, server, acd, pool
        await writer.flush(timeout=30)
    finally:
        await writer.close(timeout=30)
        await runner
        await pool.close()


async def test_calls_and_every_ivr_step_land_in_postgres(db_dsn: str, tmp_path: Path) -> None:
    async with stack(db_dsn, tmp_path / "spool", OPEN_NOW) as (_service, server, acd, pool):
        async with pool.acquire() as conn:
            await upsert_customers(conn, [Customer("+12125550100", "Ada", "vip", "A-1", {"plan": "green"})])
        await place_call(server.port, Caller(["1", "1"]))  # VIP: sales
        await place_call(
            server.port, Caller(["1", "7"], hang_up_at=4), environment=agi_env("2.0", "2125550111")
        )
        assert server.failed == 0
    assert [c.priority for c in acd.calls] == [50]
    assert acd.calls[0].data["customer_name"] == "Ada" and acd.calls[0].data["customer_plan"] == "green"
    conn = await asyncpg.connect(db_dsn, timeout=10)
    try:
        calls = {
            r["call_id"]: r
            for r in await conn.fetch(
                "SELECT call_id, disposition, priority, did, caller_number, data FROM calls"
            )
        }
        assert set(calls) == {"pg-1", "pg-2"}
        assert calls["pg-1"]["disposition"] is None and calls["pg-1"]["priority"] == 50
        assert calls["pg-1"]["did"] == "18005550100" and calls["pg-1"]["caller_number"] == "+12125550100"
        assert json.loads(calls["pg-1"]["data"])["customer_tier"] == "vip"
        assert calls["pg-2"]["disposition"] == "abandoned_ivr"
        path = [
            r["node"]
            for r in await conn.fetch(
                "SELECT node FROM call_events WHERE call_id = 'pg-1' AND kind = 'ivr_node' ORDER BY seq"
            )
        ]
        assert path == ["hours", "lookup", "welcome", "language", "main-menu", "sales", "q-sales"]
        last = await conn.fetchrow(
            "SELECT node, detail FROM call_events WHERE call_id = 'pg-2' AND kind = 'ivr_node'"
            " ORDER BY seq DESC LIMIT 1"
        )
        assert last["node"] == "main-menu" and json.loads(last["detail"])["outcome"] == "caller_hangup"
        legs = await conn.fetchval("SELECT count(*) FROM call_legs WHERE kind = 'caller'")
        assert legs == 2
    finally:
        await conn.close()


async def test_a_busy_database_times_the_lookup_out_and_the_call_goes_on(db_dsn: str, tmp_path: Path) -> None:
    async with stack(db_dsn, tmp_path / "spool", OPEN_NOW) as (_service, server, acd, pool):
        async with pool.acquire() as conn:
            await upsert_customers(conn, [Customer("+12125550100", "Ada", "vip")])
            # the pool's only connection is held: the lookup cannot get one within the node's 0.3 s
            await place_call(server.port, Caller(["1", "1"]))
    assert [c.priority for c in acd.calls] == [0]
    conn = await asyncpg.connect(db_dsn, timeout=10)
    try:
        detail = await conn.fetchval("SELECT detail FROM call_events WHERE kind = 'lookup'")
        assert json.loads(detail)["outcome"] == "timeout"
    finally:
        await conn.close()


async def test_after_hours_is_recorded(db_dsn: str, tmp_path: Path) -> None:
    async with stack(db_dsn, tmp_path / "spool", CLOSED_NOW) as (_service, server, acd, _pool):
        await place_call(server.port, Caller([]))
    assert acd.calls == []
    conn = await asyncpg.connect(db_dsn, timeout=10)
    try:
        assert await conn.fetchval("SELECT disposition FROM calls") == "after_hours"
    finally:
        await conn.close()
