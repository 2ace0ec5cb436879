"""Shell: credentials and the seams the HTTP side authenticates and audits through.

Passwords are hashed with argon2id (argon2-cffi, memory-hard); API tokens are 256 random bits
shown once and stored only as their SHA-256 digest (a token is not guessable, so a fast digest
suffices and lets the database find it by index). ``Authenticator`` turns a bearer token into a
``Principal``; ``AuditSink`` keeps one ``AuditEntry`` per mutating request, refused or done.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callcenter.web.access import Principal

TOKEN_PREFIX = "cc_"  # noqa: S105 - a marker, not a secret
_HASHER = PasswordHasher()


def new_token() -> str:
    """A fresh API token (printed once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class AuditEntry:
    """One mutating request: who (``-`` when unauthenticated), from where, what, on what, and how
    it ended (HTTP status and stable code)."""

    who: str
    role: str
    client: str
    action: str
    method: str
    path: str
    target: str
    status: int
    code: str


class Authenticator(Protocol):
    async def principal_for_token(self, token: str, *, timeout: float) -> Principal | None:
        """The enabled user holding ``token``, or None."""
        ...


class AuditSink(Protocol):
    async def record(self, entry: AuditEntry, *, timeout: float) -> None: ...
