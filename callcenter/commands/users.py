"""Composition root: ``callcenter users add|token|list|disable``: the people who may use the HTTP
API, their roles and API tokens (PostgreSQL: ``DATABASE_URL`` or the private cluster).

``add NAME --role agent|supervisor|admin [--queues Q ...] [--agent ID] --password-stdin`` reads
the password from standard input (never from the command line, where ``ps`` shows it) and stores
only its argon2 hash. ``token NAME`` prints a new bearer token once (only its digest is kept).
``disable NAME`` disables the user and revokes its tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg

from callcenter.errors import CallcenterError
from callcenter.store import users
from callcenter.store.database import database
from callcenter.store.migrate import migrate
from callcenter.web.access import ROLES
from callcenter.web.auth import hash_password

MIN_PASSWORD = 10


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="HTTP API users: add, token, list, disable")
    usub = p.add_subparsers(dest="users_command", required=True)
    add = usub.add_parser("add", help="add a user with a role (password read from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--queues", nargs="+", default=[], help="a supervisor's queues")
    add.add_argument("--agent", dest="agent_id", help="the agent (or supervisor) id this user acts as")
    add.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password from stdin"
    )
    add.set_defaults(func=cmd_add)
    token = usub.add_parser("token", help="issue an API token for a user (printed once)")
    token.add_argument("name")
    token.set_defaults(func=cmd_token)
    lst = usub.add_parser("list", help="every user, role, scope and state")
    lst.set_defaults(func=cmd_list)
    dis = usub.add_parser("disable", help="disable a user and revoke its tokens")
    dis.add_argument("name")
    dis.set_defaults(func=cmd_disable)


def read_password(stream: Any) -> str:
    """The first line of ``stream``, refused when shorter than ``MIN_PASSWORD`` characters."""
    password = str(stream.readline()).rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise CallcenterError(f"the password needs at least {MIN_PASSWORD} characters", code="weak_password")
    return password


async def _with_db(dsn: str, work: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await migrate(conn)
        return await work(conn)
    finally:
        await conn.close(timeout=10)


def _run(args: argparse.Namespace, work: Any) -> Any:
    with database(Path(args.run_dir), echo=False) as dsn:
        return asyncio.run(_with_db(dsn, work))


def cmd_add(args: argparse.Namespace) -> int:
    password_hash = hash_password(read_password(sys.stdin))

    async def work(conn: Any) -> users.User:
        return await users.add_user(
            conn, args.name, args.role, password_hash, queues=args.queues, agent_id=args.agent_id
        )

    user = _run(args, work)
    print(f"user {user.name}: {user.role}" + (f" (agent {user.agent_id})" if user.agent_id else ""))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    async def work(conn: Any) -> str:
        return await users.issue_token(conn, args.name)

    print(_run(args, work))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    async def work(conn: Any) -> list[users.User]:
        return await users.list_users(conn)

    print(f"{'user':<20} {'role':<11} {'agent':<8} {'state':<9} queues")
    for u in _run(args, work):
        state = "disabled" if u.disabled else "enabled"
        print(f"{u.name:<20} {u.role:<11} {u.agent_id or '':<8} {state:<9} {' '.join(u.queues)}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    async def work(conn: Any) -> None:
        await users.disable_user(conn, args.name)

    _run(args, work)
    print(f"user {args.name}: disabled, tokens revoked")
    return 0
