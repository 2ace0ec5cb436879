"""Pure: PIN checks with a lockout per id, for agents' login and supervisors' monitoring.

A wrong PIN counts for ``lockout_seconds``; the ``max_failures``-th one within that window locks the
id for ``lockout_seconds`` from then on (the ``security`` section of the config describes the same
rule). With ``sources`` (the phone's endpoint, the caller ID, an API client) the count and the
lockout belong to the owner *as reached from* each source: wrong PINs from one phone lock that
phone and that caller ID out of the owner, never the owner on its own phone (no denial of service
on the right owner); a wrong PIN counts against every source given, and any locked source
refuses. Only digits actually entered count: an empty entry (a timeout, a phone that could not
send DTMF, a failed prompt) is refused without counting. A right PIN clears the count; a locked id's
PIN is not even compared. ``now`` is passed in.

A stored PIN is either the digits (the demo's, from ``${ENV}``) or a hash (``pin_hash`` in the YAML,
made by ``callcenter pin-hash``); ``callcenter.config.secrets.pin_matches`` compares either in
constant time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from callcenter.config.secrets import pin_matches


class PinCheck(StrEnum):
    OK = "ok"
    EMPTY = "empty"  # nothing entered: refused, not counted
    WRONG = "wrong"  # counted; the id is not locked (yet)
    LOCKED_NOW = "locked_now"  # this wrong PIN locked the id
    LOCKED = "locked"  # the id was locked already: the PIN was not compared


def phone_sources(endpoint: str, caller_id: str) -> tuple[str, ...]:
    """Where a PIN typed on a phone comes from: its endpoint and its caller ID (each counted and
    locked out on its own); an unknown or anonymous caller ID is left out."""
    sources = [f"endpoint:{endpoint}"]
    caller = caller_id.strip()[:80]
    if caller and caller not in ("unknown", "anonymous"):
        sources.append(f"caller:{caller}")
    return tuple(sources)


def api_source(user: str | None, address: str | None) -> str:
    """Where a PIN sent over the HTTP API comes from: the signed-in user and its address."""
    return f"api:{user or '-'}@{address or '?'}"


def source_keys(key: str, sources: Sequence[str]) -> tuple[str, ...]:
    """The counters an attempt on ``key`` from ``sources`` uses: ``key`` alone without sources."""
    return tuple(f"{key}|{s}" for s in sources) if sources else (key,)


@dataclass
class PinGuard:
    """Wrong PINs per id (agent or supervisor) and the ids locked out."""

    max_failures: int = 5
    lockout_seconds: float = 900.0
    failures: dict[str, list[float]] = field(default_factory=dict)  # id -> times of recent wrong PINs
    locked_until: dict[str, float] = field(default_factory=dict)

    def check(
        self, key: str, typed: str, expected: str, now: float, *, sources: Sequence[str] = ()
    ) -> PinCheck:
        """Compare ``typed`` with ``expected`` (constant time) and count a wrong one; nothing typed
        is ``EMPTY`` and is not counted. ``sources``: where the attempt comes from (see the module
        docstring); none counts against ``key`` itself."""
        keys = source_keys(key, sources)
        if any(self.locked(k, now) is not None for k in keys):
            return PinCheck.LOCKED
        if not typed:
            return PinCheck.EMPTY
        if pin_matches(typed, expected):
            for k in keys:
                self.success(k)
            return PinCheck.OK
        locked_now = [self.failure(k, now) for k in keys]
        return PinCheck.LOCKED_NOW if any(locked_now) else PinCheck.WRONG

    def locked_from(self, key: str, now: float, sources: Sequence[str]) -> float | None:
        """Until when ``key`` is locked for an attempt from ``sources``, or ``None``."""
        untils = [u for k in source_keys(key, sources) if (u := self.locked(k, now)) is not None]
        return max(untils) if untils else None

    def locked(self, key: str, now: float) -> float | None:
        """Until when ``key`` is locked out, or ``None`` (an expired lockout forgets the count)."""
        until = self.locked_until.get(key)
        if until is None:
            return None
        if now >= until:
            del self.locked_until[key]
            self.failures.pop(key, None)
            return None
        return until

    def failure(self, key: str, now: float) -> bool:
        """Count a wrong PIN; ``True`` when this one locks ``key`` out."""
        recent = [t for t in self.failures.get(key, ()) if now - t < self.lockout_seconds]
        recent.append(now)
        self.failures[key] = recent
        if len(recent) >= self.max_failures:
            self.locked_until[key] = now + self.lockout_seconds
            return True
        return False

    def success(self, key: str) -> None:
        self.failures.pop(key, None)
