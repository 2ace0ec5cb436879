"""Shell: the injectable clock. The pure core never reads time; shells pass ``now`` in.

``Clock`` is the seam: ``now()`` gives wall time (UNIX seconds), ``monotonic()`` a monotonic reading,
and ``sleep()`` waits in that clock's time. ``RealClock`` is the wall clock, ``ScaledClock`` runs
faster than real time (the simulator's accelerated mode), ``FakeClock`` moves only when a test
calls ``advance()``, so time-driven logic is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

from callcenter.ports import Clock

__all__ = ["Clock", "FakeClock", "RealClock", "ScaledClock"]


class RealClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Time that runs ``speed`` times faster than the wall clock, from ``start`` (UNIX seconds)."""

    def __init__(self, speed: float, *, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._t0_real = time.monotonic()
        self._t0 = time.time() if start is None else start

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0_real) * self.speed

    def now(self) -> float:
        return self._t0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class FakeClock:
    """A clock that only moves when told to. ``sleep`` waits until ``advance`` passes its deadline."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._start = start
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._parked: asyncio.Event | None = None

    def now(self) -> float:
        return self._start + self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._seq), fut))
        if self._parked is not None:
            self._parked.set()
        await fut

    async def wait_for_sleepers(self, count: int) -> None:
        """Return once at least ``count`` sleeps are pending (a task is parked on the clock)."""
        while self.sleepers < count:
            self._parked = self._parked or asyncio.Event()
            self._parked.clear()
            await self._parked.wait()

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (lets a test wait until a task is parked on the clock)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
