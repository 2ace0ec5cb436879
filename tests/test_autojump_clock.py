"""The autojump clock: simulated time that jumps to the next sleeper's deadline only when the event
loop has nothing else to do, never past a deadline, never ahead of ready I/O or a running thread."""

from __future__ import annotations

import asyncio
import time

import pytest

from callcenter.clock import AutojumpClock, autojump_loop


async def test_sleepers_wake_in_order_each_exactly_at_its_deadline(autojump_clock: AutojumpClock) -> None:
    clock = autojump_clock
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await clock.sleep(delay)
        woke.append((name, clock.monotonic()))
        if name == "a":  # a sleep started at a wake-up lands before the later ones
            await clock.sleep(0.5)
            woke.append(("a+", clock.monotonic()))

    started = time.monotonic()
    await asyncio.gather(sleeper("c", 10.0), sleeper("a", 1.0), sleeper("b", 2.5), sleeper("b2", 2.5))
    assert woke == [("a", 1.0), ("a+", 1.5), ("b", 2.5), ("b2", 2.5), ("c", 10.0)]
    assert clock.jumps == 4  # 1, 1.5, 2.5 (both), 10
    assert time.monotonic() - started < 5  # simulated seconds, not real ones


async def test_the_clock_jumps_only_when_every_task_waits(autojump_clock: AutojumpClock) -> None:
    clock = autojump_clock
    seen: list[float] = []

    async def busy() -> None:
        for _ in range(500):
            seen.append(clock.monotonic())
            await asyncio.sleep(0)  # always ready again: the loop never idles

    sleeper = asyncio.ensure_future(clock.sleep(100.0))
    await busy()
    assert set(seen) == {0.0} and not sleeper.done()
    await sleeper
    assert clock.monotonic() == 100.0


async def test_a_cancelled_sleep_is_never_jumped_to(autojump_clock: AutojumpClock) -> None:
    clock = autojump_clock
    early = asyncio.ensure_future(clock.sleep(5.0))
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    early.cancel()
    await asyncio.gather(early, return_exceptions=True)
    assert clock.next_deadline() is None
    await clock.sleep(10.0)
    assert (clock.monotonic(), clock.jumps) == (10.0, 1)


async def test_loopback_io_wins_over_jumping(autojump_clock: AutojumpClock) -> None:
    """A request/reply over real loopback sockets completes in no simulated time, while a
    sleeper 1 s ahead keeps waiting; then the idle loop jumps to it."""
    clock = autojump_clock

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sleeper = asyncio.ensure_future(clock.sleep(1.0))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(200):
            writer.write(b"%d\n" % i)
            assert await reader.readline() == b"%d\n" % i
        assert clock.monotonic() == 0.0 and not sleeper.done()
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    await sleeper
    assert clock.monotonic() == 1.0


async def test_no_jump_while_a_thread_pool_job_runs(autojump_clock: AutojumpClock) -> None:
    clock = autojump_clock
    sleeper = asyncio.ensure_future(clock.sleep(1.0))
    await asyncio.sleep(0)
    await asyncio.to_thread(time.sleep, 0.05)  # slow work in a thread, not synchronisation
    assert clock.monotonic() == 0.0 and not sleeper.done()
    await sleeper
    assert clock.monotonic() == 1.0


def test_a_reply_from_outside_within_the_threshold_comes_first() -> None:
    """A connection to another party (a server on a thread here, as PostgreSQL is a process):
    its reply, a few milliseconds late, is read before the clock moves; afterwards the loop waits
    the threshold before each jump. Connections between the loop's own sockets never wait."""
    import socket
    import threading

    clock = AutojumpClock()
    listener = socket.create_server(("127.0.0.1", 0))

    def outside_server() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(64):
                time.sleep(0.02)  # the other party takes its time to answer
                conn.sendall(data)

    async def scenario() -> tuple[float, float, float]:
        server = threading.Thread(target=outside_server, daemon=True)
        server.start()
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        sleeper = asyncio.ensure_future(clock.sleep(30.0))
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping" and not sleeper.done()
        answered_at = clock.monotonic()
        started = time.monotonic()
        await sleeper  # waits the threshold (0.2 s), then jumps
        waited = time.monotonic() - started
        writer.close()
        await writer.wait_closed()
        server.join(5)
        inner = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        async with inner:
            _r, w = await asyncio.open_connection(*inner.sockets[0].getsockname())
            started = time.monotonic()
            await clock.sleep(30.0)  # only the loop's own sockets: no grace
            own = time.monotonic() - started
            w.close()
            await w.wait_closed()
        return answered_at, waited, own

    with listener, asyncio.Runner(loop_factory=lambda: autojump_loop(clock, threshold=0.2)) as runner:
        answered_at, waited, own = runner.run(scenario())
    assert answered_at == 0.0 and waited >= 0.2 and own < 0.2
    assert clock.monotonic() == 60.0


async def test_a_long_simulated_day_takes_little_real_time(autojump_clock: AutojumpClock) -> None:
    clock = autojump_clock.starting_at(1_800_000_000.0)
    ticks = 0

    async def ticker(every: float) -> None:
        nonlocal ticks
        while clock.monotonic() < 86_400:
            await clock.sleep(every)
            ticks += 1

    started = time.monotonic()
    await asyncio.gather(ticker(60.0), ticker(45.0), ticker(3600.0))
    assert clock.now() == 1_800_000_000.0 + 86_400
    assert ticks == 1440 + 1920 + 24
    assert time.monotonic() - started < 10


async def test_views_share_one_timeline(autojump_clock: AutojumpClock) -> None:
    await autojump_clock.sleep(7.0)
    view = autojump_clock.starting_at(1000.0)
    assert (view.now(), view.monotonic()) == (1000.0, 7.0)
    await view.sleep(3.0)
    assert (view.now(), autojump_clock.monotonic()) == (1003.0, 10.0)


async def test_the_test_loop_keeps_the_unobserved_exception_check(autojump_clock: AutojumpClock) -> None:
    loop = asyncio.get_running_loop()
    assert loop.get_exception_handler() is not None
    assert getattr(loop, "autojump_clock", None) is autojump_clock


async def test_a_clock_serves_one_loop_and_refuses_a_negative_step(autojump_clock: AutojumpClock) -> None:
    with pytest.raises(RuntimeError):
        autojump_loop(autojump_clock)
    with pytest.raises(ValueError):
        autojump_clock.advance(-1)


def test_without_a_loop_it_moves_by_hand() -> None:
    clock = AutojumpClock(start=50.0)

    async def scenario() -> float:
        task = asyncio.ensure_future(clock.sleep(2.0))
        await asyncio.sleep(0)
        clock.advance(2.0)
        await task
        return clock.now()

    assert asyncio.run(scenario()) == 52.0
