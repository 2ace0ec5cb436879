"""Shell: the injectable clock. The pure core never reads time; shells pass ``now`` in.

``Clock`` is the seam: ``now()`` gives wall time (UNIX seconds), ``monotonic()`` a monotonic reading,
and ``sleep()`` waits in that clock's time. ``RealClock`` is the wall clock, ``ScaledClock`` runs
faster than real time (the simulator's accelerated mode), ``FakeClock`` moves only when a test
calls ``advance()``, so time-driven logic is tested without sleeping.

``AutojumpClock`` is simulated time for whole scenarios (trio's ``MockClock(autojump_threshold)``):
on an event loop from :func:`autojump_loop`, whenever the loop would block (nothing ready, no
socket or pipe readable within a short real grace, no thread-pool job running), the clock jumps
to the earliest pending sleep's deadline and wakes it. A long simulated day runs as fast as the
code can process it, and a slow machine changes how long a run takes, never what happens in it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

from callcenter.ports import Clock

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = [
    "AutojumpClock",
    "AutojumpSelector",
    "Clock",
    "FakeClock",
    "RealClock",
    "ScaledClock",
    "autojump_loop",
]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


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


class _Timeline:
    """Elapsed simulated seconds and the pending sleeps (deadline, order, future), shared by every
    view of one :class:`AutojumpClock`."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self.seq = itertools.count()
        self.jumps = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def next_deadline(self) -> float | None:
        """The earliest deadline of a sleep still pending (cancelled sleeps are dropped)."""
        while self.sleepers and self.sleepers[0][2].done():
            heapq.heappop(self.sleepers)
        return self.sleepers[0][0] if self.sleepers else None

    def advance_to(self, t: float) -> None:
        self.elapsed = max(self.elapsed, t)
        while self.sleepers and self.sleepers[0][0] <= self.elapsed:
            _, _, fut = heapq.heappop(self.sleepers)
            if not fut.done():
                fut.set_result(None)


class AutojumpClock:
    """Simulated time that moves only by jumps to the next pending sleep's deadline (on a loop
    from :func:`autojump_loop`), or by :meth:`advance`. Starts at ``start`` (UNIX seconds)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._start = start
        self._timeline = _Timeline()

    def now(self) -> float:
        return self._start + self._timeline.elapsed

    def monotonic(self) -> float:
        return self._timeline.elapsed

    async def sleep(self, seconds: float) -> None:
        timeline = self._timeline
        loop = asyncio.get_running_loop()
        if timeline.loop is not None and loop is not timeline.loop:
            raise RuntimeError("this AutojumpClock jumps on another event loop")
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(timeline.sleepers, (timeline.elapsed + seconds, next(timeline.seq), fut))
        await fut

    def starting_at(self, start: float) -> AutojumpClock:
        """A view of the same simulated time whose ``now()`` reads ``start`` at this instant (the
        same sleeps, jumps and ``monotonic()``): a test sets the wall time of its scenario."""
        view = AutojumpClock.__new__(AutojumpClock)
        view._start = start - self._timeline.elapsed
        view._timeline = self._timeline
        return view

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending."""
        return sum(1 for _, _, f in self._timeline.sleepers if not f.done())

    @property
    def jumps(self) -> int:
        """How many times the loop moved this clock forward."""
        return self._timeline.jumps

    def next_deadline(self) -> float | None:
        """``monotonic()`` at which the earliest pending sleep ends; None if nothing sleeps."""
        return self._timeline.next_deadline()

    def jump(self) -> bool:
        """Move to the earliest pending deadline and wake the sleeps due then; False if none."""
        deadline = self._timeline.next_deadline()
        if deadline is None:
            return False
        self._timeline.jumps += 1
        self._timeline.advance_to(deadline)
        return True

    def advance(self, seconds: float) -> None:
        """Move time forward by hand and wake every sleep whose deadline has passed."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._timeline.advance_to(self._timeline.elapsed + seconds)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timeline.loop is not None:
            raise RuntimeError("an AutojumpClock drives one event loop")
        self._timeline.loop = loop


class AutojumpSelector(selectors.BaseSelector):
    """The event loop's selector, jumping ``clock`` instead of blocking.

    When the loop would wait (``select`` with a timeout that is not zero) and the clock has a
    pending sleep: ready I/O is returned at once; while ``busy()`` (a thread-pool job runs) it
    waits for I/O as usual. Otherwise, if every watched socket is the loop's own (a listener, the
    loop's wake-up pair, or a connection whose peer is another watched socket: the simulator and
    the controller over loopback), nothing can arrive from outside and the clock jumps at once.
    If some socket or pipe leads outside (PostgreSQL, a subprocess), it first waits up to
    ``threshold`` real seconds for I/O, and returns without jumping when a loop timer falls due
    within that grace. A jump moves the clock to the next deadline; the woken sleeps run next."""

    def __init__(
        self, clock: AutojumpClock, *, threshold: float = 0.0, busy: Callable[[], bool] = lambda: False
    ) -> None:
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.clock = clock
        self.threshold = threshold
        self._busy = busy
        self._selector = selectors.DefaultSelector()
        self._ends: dict[int, _End] = {}

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if (timeout is not None and timeout <= 0) or self.clock.next_deadline() is None:
            return self._selector.select(timeout)
        ready = self._selector.select(0)
        if ready:
            return ready
        if self._busy():
            return self._selector.select(timeout)
        if self.threshold > 0 and self._outside_io_possible():
            grace = self.threshold if timeout is None else min(self.threshold, timeout)
            ready = self._selector.select(grace)
            if ready:
                return ready
            if timeout is not None and timeout <= self.threshold:
                return []  # a loop timer falls due now: it runs before any jump
        self.clock.jump()
        return []

    def _outside_io_possible(self) -> bool:
        """Whether a watched file could bring data from outside this process."""
        own: set[object] = set()
        peers: list[object] = []
        for key in self._selector.get_map().values():
            end = self._ends.get(key.fd)
            if end is None:
                end = _End.of(key.fd)
                if end.kind != "unknown":
                    self._ends[key.fd] = end
            if end.kind == "unknown":
                return True
            if end.kind in ("listener", "connected"):
                own.add(end.local)
            if end.kind == "connected":
                peers.append(end.peer)
        return any(peer not in own for peer in peers)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        key = self._selector.unregister(fileobj)
        self._ends.pop(key.fd, None)
        return key

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.register(fileobj, events, data)

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.modify(fileobj, events, data)

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._selector.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._selector.get_map()

    def close(self) -> None:
        self._selector.close()


class _End:
    """What a watched file descriptor is: a listening socket, a connected socket (its own and its
    peer's address), an unnamed socket pair (the loop's wake-up), or unknown (a pipe, a socket
    still connecting)."""

    __slots__ = ("kind", "local", "peer")

    def __init__(self, kind: str, local: object = None, peer: object = None) -> None:
        self.kind, self.local, self.peer = kind, local, peer

    @classmethod
    def of(cls, fd: int) -> _End:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            return cls("unknown")
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return cls("listener", sock.getsockname())
            local, peer = sock.getsockname(), sock.getpeername()
            if sock.family == socket.AF_UNIX and not local and not peer:
                return cls("pair")
            return cls("connected", local, peer)
        except OSError:
            return cls("unknown")
        finally:
            sock.detach()  # the descriptor stays the loop's


class _AutojumpLoop(asyncio.SelectorEventLoop):
    """A selector event loop that counts its thread-pool jobs, so the clock never jumps while
    one runs (its result is not I/O the selector could see coming)."""

    def __init__(self, clock: AutojumpClock, threshold: float) -> None:
        self._jobs = 0
        self.autojump_clock = clock
        super().__init__(AutojumpSelector(clock, threshold=threshold, busy=lambda: self._jobs > 0))

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: *Ts
    ) -> asyncio.Future[T]:
        fut = super().run_in_executor(executor, func, *args)
        self._jobs += 1
        fut.add_done_callback(self._job_done)
        return fut

    def _job_done(self, _fut: asyncio.Future[Any]) -> None:
        self._jobs -= 1


def autojump_loop(clock: AutojumpClock, *, threshold: float = 0.0) -> asyncio.AbstractEventLoop:
    """A new event loop on which ``clock`` jumps whenever the loop would otherwise wait; see
    :class:`AutojumpSelector` for ``threshold`` (real seconds of grace for I/O from outside the
    process). Run a scenario with ``asyncio.Runner(loop_factory=lambda: autojump_loop(clock))``; the
    loop's ``autojump_clock`` attribute is ``clock``."""
    if clock._timeline.loop is not None:
        raise RuntimeError("an AutojumpClock drives one event loop")
    loop = _AutojumpLoop(clock, threshold)
    clock._bind(loop)
    return loop
