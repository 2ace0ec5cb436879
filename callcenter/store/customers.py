"""Shell: the caller lookup behind the IVR's screen-pop, by E.164 number, with a timeout.

    directory = CustomerDirectory(pool, timeout=0.3)
    result = await directory.lookup("+15551234567")   # never raises, never waits past the timeout
    if result.customer is not None: ...               # result.outcome: found / not_found / timeout /
                                                      #                 error / invalid
A slow or failing database costs the call at most ``timeout`` seconds (default 300 ms) and the call
goes on without the data. The number must already be normalised (``callcenter.phone``); anything
that is not ``+`` and 2-15 digits is refused without a query. ``pool`` is anything with asyncpg's
``acquire()`` (the seam: an ``asyncpg.Pool`` in production).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("callcenter.customers")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

_LOOKUP = "SELECT phone_e164, name, tier, account, data FROM customers WHERE phone_e164 = $1"
_UPSERT = """
INSERT INTO customers (phone_e164, name, tier, account, data, updated_at)
VALUES ($1, $2, $3, $4, $5::jsonb, now())
ON CONFLICT (phone_e164) DO UPDATE
SET name = EXCLUDED.name, tier = EXCLUDED.tier, account = EXCLUDED.account, data = EXCLUDED.data,
    updated_at = now()
"""


@dataclass(frozen=True)
class Customer:
    phone_e164: str
    name: str | None = None
    tier: str | None = None
    account: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LookupResult:
    outcome: str  # found / not_found / timeout / error / invalid
    customer: Customer | None = None
    elapsed_seconds: float = 0.0


class CustomerDirectory:
    def __init__(self, pool: Any, *, timeout: float = 0.3) -> None:
        self.pool = pool
        self.timeout = timeout
        self.lookups = 0
        self.timeouts = 0
        self.errors = 0

    async def lookup(self, phone_e164: str) -> LookupResult:
        """The customer of this number, or why not. Never raises for a database problem."""
        if not E164.match(phone_e164 or ""):
            return LookupResult("invalid")
        self.lookups += 1
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            async with asyncio.timeout(self.timeout):
                async with self.pool.acquire() as conn:
                    row = await conn.fetchrow(_LOOKUP, phone_e164)
        except TimeoutError:
            self.timeouts += 1
            log.warning("customer lookup timed out after %.3f s; the call goes on without it", self.timeout)
            return LookupResult("timeout", elapsed_seconds=loop.time() - t0)
        except Exception as exc:  # asyncpg / OSError: the call must not suffer; counted and logged
            self.errors += 1
            log.warning(
                "customer lookup failed (%s: %s); the call goes on without it", type(exc).__name__, exc
            )
            return LookupResult("error", elapsed_seconds=loop.time() - t0)
        elapsed = loop.time() - t0
        if row is None:
            return LookupResult("not_found", elapsed_seconds=elapsed)
        data = row["data"]
        parsed = json.loads(data) if isinstance(data, str) else (data or {})
        customer = Customer(row["phone_e164"], row["name"], row["tier"], row["account"], parsed)
        return LookupResult("found", customer, elapsed)


async def upsert_customers(conn: Any, customers: Iterable[Customer], *, timeout: float = 60.0) -> int:
    """Insert or replace customers (seed data, CRM sync); returns how many were written."""
    rows = []
    for c in customers:
        if not E164.match(c.phone_e164):
            raise ValueError(f"{c.phone_e164!r} is not an E.164 number")
        rows.append((c.phone_e164, c.name, c.tier, c.account, json.dumps(dict(c.data))))
    async with asyncio.timeout(timeout):
        await conn.executemany(_UPSERT, rows)
    return len(rows)
