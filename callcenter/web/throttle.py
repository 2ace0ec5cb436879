"""Pure: password-login throttling that slows a guesser without locking the owner out.

Failures are counted per (user name, client address): after ``free`` failures each further
attempt from that address for that name must wait ``base * 2**(n - free - 1)`` seconds, at most
``max_delay``. Nothing is ever locked: the owner, from their own address, is unaffected by a
guesser elsewhere, and even at the same address waits at most ``max_delay``. A success clears the
pair. The table keeps at most ``capacity`` pairs (the oldest forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    def __init__(
        self, *, free: int = 3, base: float = 1.0, max_delay: float = 60.0, capacity: int = 10_000
    ) -> None:
        self.free = free
        self.base = base
        self.max_delay = max_delay
        self.capacity = capacity
        self._table: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def delay(self, count: int) -> float:
        """Seconds to wait after ``count`` failures."""
        if count < self.free:
            return 0.0
        return float(min(self.max_delay, self.base * 2 ** (count - self.free)))

    def wait(self, name: str, client: str, now: float) -> float:
        """Seconds before ``client`` may try ``name`` again (0 when it may now)."""
        f = self._table.get((name, client))
        if f is None:
            return 0.0
        delay = self.delay(f.count)
        return min(delay, max(0.0, f.last + delay - now))

    def failed(self, name: str, client: str, now: float) -> None:
        key = (name, client)
        f = self._table.pop(key, None)
        self._table[key] = _Failures((f.count if f else 0) + 1, now)
        while len(self._table) > self.capacity:
            self._table.popitem(last=False)

    def succeeded(self, name: str, client: str) -> None:
        self._table.pop((name, client), None)
