"""Shell: users, their roles and API tokens in PostgreSQL.

``PgUsers`` is the HTTP side's ``Authenticator``: a bearer token is looked up by its digest and
answers only for an enabled user. The functions below are what ``callcenter users`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from callcenter.errors import CallcenterError, StoreError
from callcenter.web.access import ROLES, Principal
from callcenter.web.auth import new_token, token_digest


@dataclass(frozen=True)
class User:
    name: str
    role: str
    queues: tuple[str, ...]
    agent_id: str | None
    disabled: bool

    def principal(self) -> Principal:
        return Principal(self.name, self.role, frozenset(self.queues), self.agent_id)


def _user(row: Any) -> User:
    return User(row["name"], row["role"], tuple(row["queues"]), row["agent_id"], row["disabled"])


async def add_user(
    conn: Any,
    name: str,
    role: str,
    password_hash: str,
    *,
    queues: Sequence[str] = (),
    agent_id: str | None = None,
) -> User:
    """Create a user; a name taken, a role unknown, an agent without its id or a supervisor
    without queues is refused with a stable code."""
    if role not in ROLES:
        raise CallcenterError(f"role must be one of {', '.join(ROLES)}", code="bad_role")
    if role == "agent" and not agent_id:
        raise CallcenterError("an agent user needs --agent ID", code="agent_id_required")
    if role == "supervisor" and not queues:
        raise CallcenterError("a supervisor user needs --queues", code="queues_required")
    try:
        row = await conn.fetchrow(
            "INSERT INTO users (name, role, queues, agent_id, password_hash) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING name, role, queues, agent_id, disabled",
            name,
            role,
            list(queues),
            agent_id,
            password_hash,
        )
    except asyncpg.UniqueViolationError as exc:
        raise CallcenterError(f"user {name!r} exists", code="user_exists") from exc
    except asyncpg.CheckViolationError as exc:
        raise CallcenterError(f"user {name!r} refused: {exc}", code="bad_user") from exc
    return _user(row)


async def issue_token(conn: Any, name: str) -> str:
    """A new API token for an enabled user; only its digest is stored."""
    user = await get_user(conn, name)
    if user.disabled:
        raise CallcenterError(f"user {name!r} is disabled", code="user_disabled")
    token = new_token()
    await conn.execute(
        "INSERT INTO api_tokens (digest, user_name) VALUES ($1, $2)", token_digest(token), name
    )
    return token


async def set_password(conn: Any, name: str, password_hash: str) -> None:
    done = await conn.execute("UPDATE users SET password_hash = $2 WHERE name = $1", name, password_hash)
    if done == "UPDATE 0":
        raise CallcenterError(f"no user {name!r}", code="unknown_user")


async def get_user(conn: Any, name: str) -> User:
    row = await conn.fetchrow(
        "SELECT name, role, queues, agent_id, disabled FROM users WHERE name = $1", name
    )
    if row is None:
        raise CallcenterError(f"no user {name!r}", code="unknown_user")
    return _user(row)


async def list_users(conn: Any) -> list[User]:
    rows = await conn.fetch("SELECT name, role, queues, agent_id, disabled FROM users ORDER BY name")
    return [_user(r) for r in rows]


async def disable_user(conn: Any, name: str) -> None:
    """Disable a user and revoke its tokens."""
    async with conn.transaction():
        done = await conn.execute("UPDATE users SET disabled = true WHERE name = $1", name)
        if done == "UPDATE 0":
            raise CallcenterError(f"no user {name!r}", code="unknown_user")
        await conn.execute("DELETE FROM api_tokens WHERE user_name = $1", name)


class PgUsers:
    """``Authenticator`` and ``Credentials`` (browser logins) over a connection pool."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def principal_for_token(self, token: str, *, timeout: float) -> Principal | None:
        try:
            async with self.pool.acquire(timeout=timeout) as conn:
                row = await conn.fetchrow(
                    "SELECT u.name, u.role, u.queues, u.agent_id, u.disabled FROM api_tokens t"
                    " JOIN users u ON u.name = t.user_name WHERE t.digest = $1 AND NOT u.disabled",
                    token_digest(token),
                    timeout=timeout,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"users not reachable: {exc}", code="users_unavailable") from exc
        return _user(row).principal() if row is not None else None

    async def login_record(self, name: str, *, timeout: float) -> tuple[Principal, str] | None:
        try:
            async with self.pool.acquire(timeout=timeout) as conn:
                row = await conn.fetchrow(
                    "SELECT name, role, queues, agent_id, disabled, password_hash FROM users"
                    " WHERE name = $1 AND NOT disabled",
                    name,
                    timeout=timeout,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"users not reachable: {exc}", code="users_unavailable") from exc
        return (_user(row).principal(), str(row["password_hash"])) if row is not None else None
