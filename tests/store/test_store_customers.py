"""Caller lookup for the screen-pop: found, not found, invalid, slow (timeout) and failing databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from callcenter.store.customers import Customer, CustomerDirectory, upsert_customers


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[Any]:
    p = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2, timeout=10)
    try:
        async with p.acquire() as conn:
            await upsert_customers(
                conn,
                [
                    Customer("+15551230001", "Ada", "vip", "A-1", {"balance": 12}),
                    Customer("+15551230002", "Bob", "standard", "B-2"),
                ],
            )
            await upsert_customers(conn, [Customer("+15551230002", "Bob B.", "standard", "B-2")])
        yield p
    finally:
        await asyncio.wait_for(p.close(), 10)


async def test_found_not_found_invalid(pool: Any) -> None:
    d = CustomerDirectory(pool, timeout=5)
    r = await d.lookup("+15551230001")
    assert r.outcome == "found" and r.customer is not None
    assert (r.customer.name, r.customer.tier, r.customer.data) == ("Ada", "vip", {"balance": 12})
    bob = await d.lookup("+15551230002")
    assert bob.customer is not None and bob.customer.name == "Bob B."
    assert (await d.lookup("+15559999999")).outcome == "not_found"
    for bad in ("5551230001", "+0123", "+1555' OR 1=1 --", "", "+1234567890123456"):
        assert (await d.lookup(bad)).outcome == "invalid"
    with pytest.raises(ValueError):
        async with pool.acquire() as conn:
            await upsert_customers(conn, [Customer("555")])


async def test_a_slow_database_times_out_and_the_call_goes_on(pool: Any, db_dsn: str) -> None:
    blocker = await asyncpg.connect(db_dsn, timeout=10)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")  # every lookup now blocks
    try:
        d = CustomerDirectory(pool, timeout=0.2)
        r = await d.lookup("+15551230001")
        assert r.outcome == "timeout" and r.customer is None and d.timeouts == 1
        assert r.elapsed_seconds < 2.0
    finally:
        await tx.rollback()
        await blocker.close()
    # The pool is still usable afterwards.
    assert (await CustomerDirectory(pool, timeout=5).lookup("+15551230001")).outcome == "found"


class BrokenPool:
    """A pool whose database is gone (the seam)."""

    def acquire(self) -> Any:
        raise ConnectionRefusedError("database down")


async def test_a_failing_database_is_an_outcome_not_an_exception() -> None:
    d = CustomerDirectory(BrokenPool(), timeout=0.3)
    r = await d.lookup("+15551230001")
    assert r.outcome == "error" and d.errors == 1
