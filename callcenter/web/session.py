"""Shell: browser sessions: password login, a session cookie, and a CSRF token.

``POST /login`` ``{"name", "password"}`` checks the password (argon2, off the event loop) under
the login throttle (``callcenter.web.throttle``: 429 with ``Retry-After`` while a name is being
guessed from an address, never a lockout), then sets the ``cc_session`` cookie (HttpOnly,
SameSite=Strict, Secure over TLS) and answers the session's CSRF token, which every mutating
browser request must echo in ``X-CSRF-Token``. ``GET /api/session`` tells the page who is signed
in (and the CSRF token again); ``POST /logout`` ends the session. ``GET /login`` is the sign-in
page. Sessions live in the controller's memory for ``ttl`` seconds (a restart signs people out).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from callcenter.clock import Clock
from callcenter.web.access import Principal, Target
from callcenter.web.auth import hash_password, token_digest, verify_password
from callcenter.web.http import (
    PRINCIPAL_KEY,
    SESSION_COOKIE,
    TARGET_KEY,
    HTTPError,
    Router,
    body,
    json_response,
)
from callcenter.web.pages import page
from callcenter.web.schema import Field, Schema
from callcenter.web.throttle import LoginThrottle

LOGIN = Schema(
    (Field("name", required=True, max_length=64), Field("password", required=True, max_length=200))
)


class Credentials(Protocol):
    async def login_record(self, name: str, *, timeout: float) -> tuple[Principal, str] | None:
        """An enabled user's principal and password hash, or None."""
        ...


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str
    expires: float


class BrowserSessions:
    """The signed-in browsers (cookie digest -> session) and the login throttle."""

    def __init__(
        self,
        credentials: Credentials,
        clock: Clock,
        *,
        ttl: float = 8 * 3600.0,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.credentials = credentials
        self.clock = clock
        self.ttl = ttl
        self.throttle = throttle or LoginThrottle()
        self._sessions: dict[str, Session] = {}
        self._dummy_hash: str | None = None

    def principal_for_cookie(self, cookie: str) -> tuple[Principal, str] | None:
        """The principal of a live session and its CSRF token."""
        key = token_digest(cookie)
        s = self._sessions.get(key)
        if s is None:
            return None
        if s.expires <= self.clock.monotonic():
            del self._sessions[key]
            return None
        return s.principal, s.csrf

    async def login(self, name: str, password: str, client: str) -> tuple[str, Session]:
        now = self.clock.monotonic()
        wait = self.throttle.wait(name, client, now)
        if wait > 0:
            raise HTTPError(429, "login_throttled", f"too many failed logins; try again in {wait:.0f} s")
        record = await self.credentials.login_record(name, timeout=5.0)
        if record is None:
            # The same work as for a real user, so that timing does not tell which names exist.
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(hash_password, secrets.token_urlsafe(16))
            await asyncio.to_thread(verify_password, self._dummy_hash, password)
            ok = False
        else:
            ok = await asyncio.to_thread(verify_password, record[1], password)
        if record is None or not ok:
            self.throttle.failed(name, client, now)
            raise HTTPError(401, "bad_credentials", "wrong name or password")
        self.throttle.succeeded(name, client)
        cookie = secrets.token_urlsafe(32)
        session = Session(record[0], secrets.token_urlsafe(24), now + self.ttl)
        self._sessions[token_digest(cookie)] = session
        self._expire(now)
        return cookie, session

    def logout(self, cookie: str) -> None:
        self._sessions.pop(token_digest(cookie), None)

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]

    def register(self, router: Router) -> None:
        """Mount the sign-in page, login, logout and the session's description."""

        async def login_page(req: web.Request) -> web.StreamResponse:
            return web.Response(body=page("login.html"), content_type="text/html", charset="utf-8")

        async def login(req: web.Request) -> web.StreamResponse:
            b = body(req)
            req[TARGET_KEY] = Target(label=f"user {b['name']}")
            cookie, session = await self.login(b["name"], b["password"], req.remote or "?")
            req[PRINCIPAL_KEY] = session.principal
            resp = json_response(describe(session.principal, session.csrf))
            resp.set_cookie(
                SESSION_COOKIE,
                cookie,
                httponly=True,
                samesite="Strict",
                secure=req.secure,
                path="/",
                max_age=int(self.ttl),
            )
            return resp

        async def logout(req: web.Request) -> web.StreamResponse:
            cookie = req.cookies.get(SESSION_COOKIE)
            if cookie:
                self.logout(cookie)
            resp = json_response({"signed_out": True})
            resp.del_cookie(SESSION_COOKIE, path="/")
            return resp

        async def whoami(req: web.Request) -> web.StreamResponse:
            cookie = req.cookies.get(SESSION_COOKIE)
            found = self.principal_for_cookie(cookie) if cookie else None
            if found is None:
                raise HTTPError(401, "unauthenticated", "not signed in")
            return json_response(describe(*found))

        router.add("GET", "/login", login_page)
        router.add("POST", "/login", login, schema=LOGIN)
        router.add("POST", "/logout", logout)
        router.add("GET", "/api/session", whoami)


def describe(who: Principal, csrf: str) -> dict[str, Any]:
    return {
        "user": who.name,
        "role": who.role,
        "agent_id": who.agent_id,
        "queues": sorted(who.queues),
        "csrf_token": csrf,
    }
