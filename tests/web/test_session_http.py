"""Browser sessions over real HTTP and a real PostgreSQL: password login, the cookie's flags,
the CSRF token on mutating requests, the login throttle, logout and expiry, each audited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.acd import agents as ag
from callcenter.acd.http import register_routes
from callcenter.clock import FakeClock
from callcenter.store import audit, users
from callcenter.store.audit import PgAudit
from callcenter.store.users import PgUsers
from callcenter.web.auth import hash_password
from callcenter.web.http import HTTPServer, Router
from callcenter.web.session import BrowserSessions
from callcenter.web.throttle import LoginThrottle
from tests.centers import example
from tests.fakes import AcdRig, acd_rig, http_exchange, http_request

PASSWORD = "correct horse battery"


@dataclass
class Site:
    port: int
    rig: AcdRig
    clock: FakeClock
    pool: Any

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, headers: str = "", source: str = ""
    ) -> tuple[int, dict[str, str], Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        request = http_request(path, raw, method, headers)
        if source:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
            writer.write(request)
            await writer.drain()
            resp = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await writer.wait_closed()
        else:
            resp = await http_exchange(self.port, request)
        head, _, payload = resp.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        fields: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), fields, json.loads(payload)

    async def login(self, name: str, password: str, source: str = "") -> tuple[int, str, Any]:
        status, fields, payload = await self.call(
            "POST", "/login", {"name": name, "password": password}, source=source
        )
        cookie = fields.get("set-cookie", "")
        return status, cookie, payload


@pytest.fixture
async def site(db_dsn: str, tmp_path: Path) -> AsyncIterator[Site]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await users.add_user(conn, "alice", "agent", hash_password(PASSWORD), agent_id="1001")
    clock = FakeClock()
    sessions = BrowserSessions(
        PgUsers(pool), clock, ttl=600.0, throttle=LoginThrottle(free=2, base=30.0, max_delay=60.0)
    )
    async with acd_rig(example(), tmp_path) as rig:
        router = Router()
        register_routes(router, rig.acd)
        sessions.register(router)
        server = HTTPServer(router, authenticator=PgUsers(pool), audit=PgAudit(pool), sessions=sessions)
        await server.start()
        try:
            yield Site(server.port, rig, clock, pool)
        finally:
            await server.close()
            await pool.close()


def cookie_header(set_cookie: str) -> str:
    return f"cookie: {set_cookie.split(';')[0]}\r\n"


async def test_login_sets_a_strict_httponly_cookie_and_csrf_guards_mutations(site: Site) -> None:
    status, set_cookie, session = await site.login("alice", PASSWORD)
    assert status == 200 and session["user"] == "alice" and session["role"] == "agent"
    flags = {f.strip().lower() for f in set_cookie.split(";")}
    assert set_cookie.startswith("cc_session=") and "httponly" in flags and "samesite=strict" in flags
    cookie = cookie_header(set_cookie)
    status, _, me = await site.call("GET", "/api/session", headers=cookie)
    assert status == 200 and me["csrf_token"] == session["csrf_token"]
    # Without the CSRF token (what a forged cross-site request would look like), refused.
    status, _, err = await site.call("POST", "/api/agents/1001/login", {}, headers=cookie)
    assert (status, err["error"]["code"]) == (403, "csrf_failed")
    bad = cookie + "x-csrf-token: guess\r\n"
    assert (await site.call("POST", "/api/agents/1001/login", {}, headers=bad))[0] == 403
    good = cookie + f"x-csrf-token: {session['csrf_token']}\r\n"
    status, _, state = await site.call("POST", "/api/agents/1001/login", {}, headers=good)
    assert (status, state["status"]) == (200, "available")
    # The session carries the user's role: another agent is still out of reach.
    assert (await site.call("POST", "/api/agents/1002/login", {}, headers=good))[0] == 403
    assert site.rig.acd.agent_state("1002").status is ag.Status.LOGGED_OUT
    # Logout ends it; so does time.
    assert (await site.call("POST", "/logout", {}, headers=good))[0] == 200
    status, _, err = await site.call("POST", "/api/agents/1001/logout", {}, headers=good)
    assert (status, err["error"]["code"]) == (401, "unauthenticated")
    _, set_cookie, session = await site.login("alice", PASSWORD)
    site.clock.advance(601.0)
    assert (await site.call("GET", "/api/session", headers=cookie_header(set_cookie)))[0] == 401


async def test_wrong_passwords_are_slowed_per_address_without_locking_the_owner_out(site: Site) -> None:
    for _ in range(2):
        status, _, err = await site.login("alice", "guess", source="127.0.0.2")
        assert (status, err["error"]["code"]) == (401, "bad_credentials")
    status, _, err = await site.login("alice", PASSWORD, source="127.0.0.2")
    assert (status, err["error"]["code"]) == (429, "login_throttled")  # even the right one, for now
    assert (await site.login("nobody", "guess", source="127.0.0.2"))[0] == 401
    # The owner, from their own address, signs in at once.
    assert (await site.login("alice", PASSWORD, source="127.0.0.3"))[0] == 200
    site.clock.advance(30.0)
    assert (await site.login("alice", PASSWORD, source="127.0.0.2"))[0] == 200
    async with site.pool.acquire() as conn:
        rows = await audit.entries(conn)
    assert [(r["who"], r["target"], r["status"], r["code"]) for r in rows] == [
        ("-", "user alice", 401, "bad_credentials"),
        ("-", "user alice", 401, "bad_credentials"),
        ("-", "user alice", 429, "login_throttled"),
        ("-", "user nobody", 401, "bad_credentials"),
        ("alice", "user alice", 200, "ok"),
        ("alice", "user alice", 200, "ok"),
    ]


async def test_the_login_page_is_served(site: Site) -> None:
    resp = await http_exchange(site.port, http_request("/login"))
    assert b"200 OK" in resp.split(b"\r\n")[0] and b'id="password"' in resp
