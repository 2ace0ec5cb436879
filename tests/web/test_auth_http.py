"""Users, roles, tokens and the audit log over real HTTP on loopback and a real PostgreSQL: each
refusal (401, 403 by role and by queue) and each allowed action of the ACD's routes, every
mutating request audited; and the ``callcenter users`` / ``callcenter audit`` commands."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.acd import agents as ag
from callcenter.acd.http import register_routes
from callcenter.cli import main
from callcenter.store import audit, users
from callcenter.store.audit import PgAudit
from callcenter.store.users import PgUsers
from callcenter.web.auth import AuditEntry, hash_password, token_digest
from callcenter.web.http import HTTPServer, Router
from tests.centers import example
from tests.fakes import AcdRig, acd_rig, bearer, http_exchange, http_request, http_split


@dataclass
class Api:
    port: int
    rig: AcdRig
    tokens: dict[str, str]
    pool: Any

    async def call(self, method: str, path: str, who: str | None, body: bytes = b"") -> tuple[int, Any]:
        headers = bearer(self.tokens[who]) if who is not None else ""
        status, payload = http_split(
            await http_exchange(self.port, http_request(path, body, method, headers))
        )
        return status, json.loads(payload)


@pytest.fixture
async def api(db_dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    tokens: dict[str, str] = {}
    async with pool.acquire() as conn:
        pw = hash_password("correct horse battery")
        await users.add_user(conn, "alice", "agent", pw, agent_id="1001")
        await users.add_user(conn, "lee", "supervisor", pw, queues=["billing"], agent_id="9002")
        await users.add_user(conn, "root", "admin", pw)
        await users.add_user(conn, "gone", "admin", pw)
        for name in ("alice", "lee", "root", "gone"):
            tokens[name] = await users.issue_token(conn, name)
        await users.disable_user(conn, "gone")
    tokens["forged"] = "cc_" + "x" * 43
    async with acd_rig(example(), tmp_path) as rig:
        router = Router()
        register_routes(router, rig.acd)
        server = HTTPServer(router, authenticator=PgUsers(pool), audit=PgAudit(pool))
        await server.start()
        try:
            yield Api(server.port, rig, tokens, pool)
        finally:
            await server.close()
            await pool.close()


def code(answer: tuple[int, Any]) -> tuple[int, str]:
    status, payload = answer
    return status, payload["error"]["code"]


async def test_no_token_or_a_dead_one_is_401(api: Api) -> None:
    assert code(await api.call("POST", "/api/agents/1001/login", None)) == (401, "unauthenticated")
    assert code(await api.call("POST", "/api/agents/1001/login", "forged")) == (401, "unauthenticated")
    assert code(await api.call("POST", "/api/agents/1001/login", "gone")) == (401, "unauthenticated")
    assert code(await api.call("GET", "/api/agents", None)) == (401, "unauthenticated")
    assert api.rig.acd.agent_state("1001").status is ag.Status.LOGGED_OUT


async def test_an_agent_acts_on_itself_only(api: Api) -> None:
    status, state = await api.call("POST", "/api/agents/1001/login", "alice")
    assert (status, state["status"]) == (200, "available")
    assert code(await api.call("POST", "/api/agents/1002/login", "alice")) == (403, "forbidden")
    assert code(await api.call("GET", "/api/agents", "alice")) == (403, "forbidden")
    # Someone else's call (or one that is not there) is not the agent's to transfer.
    raw = b'{"number": "+19005550100"}'
    assert code(await api.call("POST", "/api/calls/c-1/transfer", "alice", raw)) == (403, "forbidden")
    assert api.rig.acd.agent_state("1002").status is ag.Status.LOGGED_OUT


async def test_a_premium_transfer_is_forbidden_and_a_queue_transfer_done(api: Api) -> None:
    assert (await api.call("POST", "/api/agents/1001/login", "alice"))[0] == 200
    caller = await api.rig.call("call-1", "sales")
    await api.rig.answer(caller)
    sent = len(api.rig.ami.sent)
    status, payload = await api.call(
        "POST", "/api/calls/call-1/transfer", "alice", b'{"number": "+19005550100"}'
    )
    assert (status, payload["error"]["code"]) == (403, "dial_out_refused")
    assert "premium_rate" in payload["error"]["message"]
    assert len(api.rig.ami.sent) == sent  # nothing reached Asterisk
    assert (await api.call("POST", "/api/calls/call-1/transfer", "alice", b'{"queue": "billing"}'))[0] == 200
    async with api.pool.acquire() as conn:
        rows = await audit.entries(conn)
    assert [(r["who"], r["target"], r["status"], r["code"]) for r in rows][-2:] == [
        ("alice", "call call-1", 403, "dial_out_refused"),
        ("alice", "call call-1", 200, "ok"),
    ]


async def test_a_supervisor_acts_within_its_queues(api: Api) -> None:
    # 1005 takes billing calls; 1001 takes sales and general only.
    assert (await api.call("POST", "/api/agents/1005/login", "lee"))[0] == 200
    status, payload = await api.call("POST", "/api/agents/1001/login", "lee")
    assert (status, payload["error"]["code"]) == (403, "forbidden")
    assert "out_of_scope" in payload["error"]["message"]
    assert (await api.call("GET", "/api/agents", "lee"))[0] == 200
    assert api.rig.acd.agent_state("1001").status is ag.Status.LOGGED_OUT


async def test_an_admin_acts_anywhere_and_bad_bodies_are_422(api: Api) -> None:
    assert (await api.call("POST", "/api/agents/1003/login", "root", b'{"paused_reason": "training"}'))[
        0
    ] == 200
    assert api.rig.acd.agent_state("1003").status is ag.Status.PAUSED
    assert code(await api.call("POST", "/api/agents/1003/pause", "root", b'{"reason": null}')) == (
        422,
        "wrong_type",
    )
    assert code(await api.call("POST", "/api/agents/1003/pause", "root", b"[]")) == (422, "body_not_object")


async def test_every_mutating_request_is_audited(api: Api) -> None:
    await api.call("POST", "/api/agents/1001/login", None)
    await api.call("POST", "/api/agents/1002/login", "alice")
    await api.call("POST", "/api/agents/1001/login", "alice")
    await api.call("POST", "/api/agents/1001/pause", "alice", b'{"reason": 5}')
    await api.call("GET", "/api/agents", "lee")  # reads are not audited
    async with api.pool.acquire() as conn:
        rows = await audit.entries(conn)
    seen = [(r["who"], r["action"], r["target"], r["status"], r["code"]) for r in rows]
    assert seen == [
        ("-", "agent.state", "", 401, "unauthenticated"),
        ("alice", "agent.state", "agent 1002", 403, "forbidden"),
        ("alice", "agent.state", "agent 1001", 200, "ok"),
        ("alice", "agent.state", "", 422, "wrong_type"),
    ]
    assert [r["path"] for r in rows][0] == "/api/agents/1001/login"
    assert all(r["client"] == "127.0.0.1" and r["method"] == "POST" for r in rows)


async def test_only_a_digest_of_a_token_is_stored(api: Api) -> None:
    async with api.pool.acquire() as conn:
        stored = {r["digest"] for r in await conn.fetch("SELECT digest FROM api_tokens")}
        hashes = [r["password_hash"] for r in await conn.fetch("SELECT password_hash FROM users")]
    assert token_digest(api.tokens["alice"]) in stored
    assert api.tokens["alice"] not in stored
    assert all(h.startswith("$argon2id$") for h in hashes)


def test_users_and_audit_commands(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "add", "sam", "--role", "supervisor", "--queues", "sales", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "tim", "--role", "admin", "--password-stdin"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "add", "ann", "--role", "agent", "--password-stdin"]) == 1  # no --agent
    assert "needs at least" in capsys.readouterr().err
    assert main(["users", "token", "sam"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cc_") and len(token) > 40
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "sam" in listing and "supervisor" in listing and "enabled" in listing
    assert main(["users", "disable", "sam"]) == 0
    assert main(["users", "list"]) == 0
    assert "disabled" in capsys.readouterr().out
    assert main(["users", "token", "sam"]) == 1
    assert main(["users", "disable", "nobody"]) == 1

    async def one_entry() -> None:
        pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=1)
        try:
            entry = AuditEntry(
                "sam", "supervisor", "10.0.0.9", "agent.state", "POST", "/x", "agent 1005", 403, "forbidden"
            )
            await PgAudit(pool).record(entry, timeout=5)
        finally:
            await pool.close()

    asyncio.run(one_entry())
    capsys.readouterr()
    assert main(["audit", "--since", "2000-01-01"]) == 0
    out = capsys.readouterr().out
    assert "sam" in out and "agent 1005" in out and "forbidden" in out
    assert main(["audit", "--since", "2999-01-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "--since", "yesterday"]) == 1
