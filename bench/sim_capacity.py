"""The simulated PBX alone, on one core, driven by a scripted AMI client in another process.

1. Call attempts per second (``value``): the client keeps up to 300 async Originates in flight
   (``Local/<n>@bench-in``: the ;2 answers, waits 0.5 s, hangs up; the ;1 runs ``Wait``) and
   counts ``OriginateResponse`` Success; full event flow (about 30 events a call) to the client.
2. ``concurrent_calls``: then 2,000 callers are put on hold (``MusicOnHold``) and held while the
   client keeps a steady flow of Redirects to an announcement and back (events every few ms);
   ``ping_ms_p50``/``ping_ms_max`` is the AMI Ping round trip meanwhile.

3. ``hour_*``: one simulated hour of a 50-agent center at x60 (in-process, as the demo runs it):
   simulated callers (about 1,000 an hour) hold in MOH, a scripted ACD rings a free agent's phone
   (Originate PJSIP/agentN into a leg that Bridge()s the caller), phones answer, talk, hang up.
   ``hour_real_s`` is the wall time it took, ``hour_timer_lag_ms_max`` how late the simulated
   clock's timers fired at worst (real ms), ``hour_calls`` the calls connected.

``baseline`` is 200 call attempts/s: what a real Asterisk 22 sustains on this kind of machine
(ARCHITECTURE.md), so ``ratio`` >= 1 means the simulator never limits the controller's
benchmarks. The simulator runs as ``callcenter sim`` in a child process (its own core).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit
from callcenter.asterisk.ami import AMIParser, Message, encode

DIALPLAN = """
[bench-in]
exten => _X.,1,Answer()
 same => n,Hangup()
[bench-hold]
exten => _X.,1,Answer()
 same => n,MusicOnHold(default)
[bench-announce]
exten => s,1,Playback(beep)
 same => n,Goto(bench-hold,s,1)
"""
MANAGER = "[general]\nport = 0\n[bench]\nsecret = bench\n"
ATTEMPTS = 6000
WINDOW = 300
HOLD_CALLS = 2000
HOLD_SECONDS = 10.0
BASELINE = 200.0


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = AMIParser()
        self.events = 0
        self.counts: dict[str, int] = {}
        self.waiters: dict[str, asyncio.Future[Message]] = {}
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self.read())

    async def read(self) -> None:
        while True:
            data = await self.reader.read(1 << 18)
            for item in self.parser.feed(data):
                if not isinstance(item, Message):
                    continue
                name = item.get("Event")
                if name is not None:
                    self.events += 1
                    key = name if name != "OriginateResponse" else "Orig" + (item.get("Response") or "")
                    self.counts[key] = self.counts.get(key, 0) + 1
                    if name in ("OriginateResponse", "MusicOnHoldStart", "Hangup"):
                        self.changed.set()
                else:
                    fut = self.waiters.pop(item.get("ActionID") or "", None)
                    if fut is not None and not fut.done():
                        fut.set_result(item)
            if not data:
                return

    def send(self, *headers: tuple[str, str]) -> None:
        self.writer.write(encode(headers))

    async def action(self, aid: str, *headers: tuple[str, str], timeout: float = 30.0) -> Message:
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.waiters[aid] = fut
        self.send(*headers, ("ActionID", aid))
        async with asyncio.timeout(timeout):
            return await fut

    async def until(self, key: str, n: int, *, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.counts.get(key, 0) < n:
                self.changed.clear()
                await self.changed.wait()


async def run(port: int) -> dict[str, float]:
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    c = Client(reader, writer)
    login = await c.action("login", ("Action", "Login"), ("Username", "bench"), ("Secret", "bench"))
    if login.get("Response") != "Success":
        raise RuntimeError(f"login refused: {login.headers}")
    # 1. call attempts per second
    start = time.perf_counter()
    sent = 0
    while sent < ATTEMPTS:
        done = c.counts.get("OrigSuccess", 0) + c.counts.get("OrigFailure", 0)
        while sent < ATTEMPTS and sent - done < WINDOW:
            c.send(
                ("Action", "Originate"),
                ("Channel", f"Local/{1000 + sent}@bench-in"),
                ("Application", "Wait"),
                ("Data", "5"),
                ("Async", "true"),
                ("ActionID", f"o{sent}"),
            )
            sent += 1
        c.changed.clear()
        async with asyncio.timeout(60):
            await c.changed.wait()
    await c.until("OrigSuccess", ATTEMPTS, timeout=120)
    elapsed = time.perf_counter() - start
    rate = ATTEMPTS / elapsed
    events_per_call = c.events / ATTEMPTS
    await c.until("Hangup", 2 * ATTEMPTS, timeout=120)
    # 2. concurrent calls on hold with a steady event flow
    base_moh = c.counts.get("MusicOnHoldStart", 0)
    t0 = time.perf_counter()
    for i in range(HOLD_CALLS):
        c.send(
            ("Action", "Originate"),
            ("Channel", f"Local/{5000 + i}@bench-hold"),
            ("Application", "Wait"),
            ("Data", "3600"),
            ("Async", "true"),
            ("ActionID", f"h{i}"),
        )
        if i % 200 == 199:
            await c.until("OrigSuccess", ATTEMPTS + i - 100, timeout=60)
    await c.until("MusicOnHoldStart", base_moh + HOLD_CALLS, timeout=120)
    setup = time.perf_counter() - t0
    listing = await c.action("csc", ("Action", "CoreShowChannels"))
    pings: list[float] = []
    stop = time.perf_counter() + HOLD_SECONDS
    i = 0
    ev0 = c.events
    while time.perf_counter() < stop:
        for _ in range(10):
            c.send(
                ("Action", "Redirect"),
                (
                    "Channel",
                    f"Local/{5000 + (i % HOLD_CALLS)}@bench-hold-{(ATTEMPTS + i % HOLD_CALLS):08x};2",
                ),
                ("Context", "bench-announce"),
                ("Exten", "s"),
                ("Priority", "1"),
                ("ActionID", f"r{i}"),
            )
            i += 1
        p0 = time.perf_counter()
        await c.action(f"p{i}", ("Action", "Ping"))
        pings.append((time.perf_counter() - p0) * 1000)
        await asyncio.sleep(0.1)  # a steady, paced flow of actions (this is the load, not a sync)
    steady_eps = (c.events - ev0) / HOLD_SECONDS
    await c.action("hup", ("Action", "Hangup"), ("Channel", "/bench-hold/"))
    writer.close()
    c.task.cancel()
    return {
        "rate": rate,
        "events_per_call": events_per_call,
        "setup_s": setup,
        "listed": float(len(listing.headers)),
        "ping_p50": statistics.median(pings),
        "ping_max": max(pings),
        "steady_eps": steady_eps,
        "redirects": float(i),
    }


HOUR_PLAN = """
[cc-inbound]
exten => _X.,1,Answer()
 same => n,Playback(beep)
 same => n,MusicOnHold(default)
[leg]
exten => s,1,Bridge(${CALLER})
 same => n,Hangup()
"""


async def one_hour(agents: int = 50, speed: float = 60.0) -> dict[str, float]:
    from callcenter.clock import ScaledClock
    from callcenter.sim import SimulatedPBX
    from callcenter.sim.people import AgentProfile, CallerProfile, Dist, Rate, Scenario

    clock = ScaledClock(speed)
    scenario = Scenario(
        "hour",
        callers=(CallerProfile(did="100", rate=(Rate(0.0, 20.0 * agents),), patience=Dist("exp", 300.0)),),
        agents=tuple(
            AgentProfile(f"agent{i}", talk=Dist("lognormal", 150.0, 0.5), no_answer_probability=0.02)
            for i in range(agents)
        ),
        duration=3600.0,
    )
    sim = SimulatedPBX(
        dialplan_text=HOUR_PLAN,
        clock=clock,
        seed=9,
        scenario=scenario,
        ami_user="b",
        ami_secret="b",  # noqa: S106
    )
    await sim.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port, limit=1 << 22)
    free = [f"agent{i}" for i in range(agents)]
    waiting: list[str] = []
    busy: dict[str, str] = {}  # agent leg uniqueid -> agent
    connected = 0
    lags: list[float] = []
    seq = 0

    def offer() -> None:
        nonlocal seq
        while free and waiting:
            agent, caller = free.pop(0), waiting.pop(0)
            seq += 1
            busy[f"leg{seq}"] = agent
            writer.write(
                encode(
                    [
                        ("Action", "Originate"),
                        ("Channel", f"PJSIP/{agent}"),
                        ("Context", "leg"),
                        ("Exten", "s"),
                        ("Variable", f"CALLER={caller}"),
                        ("Timeout", "15000"),
                        ("Async", "true"),
                        ("ChannelId", f"leg{seq}"),
                        ("ActionID", f"a{seq}"),
                    ]
                )
            )

    async def controller() -> None:
        nonlocal connected
        parser = AMIParser()
        writer.write(encode([("Action", "Login"), ("Username", "b"), ("Secret", "b")]))
        while True:
            data = await reader.read(1 << 18)
            if not data:
                return
            for m in parser.feed(data):
                if not isinstance(m, Message):
                    continue
                ev = m.get("Event")
                if ev == "MusicOnHoldStart":
                    waiting.append(m.get("Channel") or "")
                elif ev == "BridgeEnter" and (m.get("Uniqueid") or "") in busy:
                    connected += 1
                elif ev == "Hangup":
                    uid = m.get("Uniqueid") or ""
                    if uid in busy:
                        free.append(busy.pop(uid))
                    chan = m.get("Channel") or ""
                    if chan in waiting:
                        waiting.remove(chan)
            offer()

    async def ticker() -> None:
        while True:
            t0 = time.perf_counter()
            await clock.sleep(1.0)
            lags.append((time.perf_counter() - t0 - 1.0 / speed) * 1000)

    ctl = asyncio.ensure_future(controller())
    tick = asyncio.ensure_future(ticker())
    start = time.perf_counter()
    await clock.sleep(3600.0)
    real = time.perf_counter() - start
    tick.cancel()
    ctl.cancel()
    writer.close()
    stats = sim.population.stats if sim.population is not None else None
    await sim.close()
    return {
        "real_s": real,
        "lag_max": max(lags),
        "lag_p50": statistics.median(lags),
        "calls": float(connected),
        "offered": float(stats.offered if stats else 0),
        "abandoned": float(stats.abandoned if stats else 0),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp)
        (conf / "extensions.conf").write_text(DIALPLAN)
        (conf / "manager.conf").write_text(MANAGER)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callcenter",
                "sim",
                "--config",
                tmp,
                "--ami",
                "127.0.0.1:0",
                "--scenario",
                "idle",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=tmp,
        )
        try:
            line = proc.stdout.readline().decode() if proc.stdout else ""
            m = re.search(r"AMI on [\d.]+:(\d+)", line)
            if not m:
                raise RuntimeError(f"the simulator did not start: {line!r}")
            result = asyncio.run(run(int(m.group(1))))
            rss_mb = _rss_mb(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    hour = asyncio.run(one_hour())
    emit(
        "sim_capacity",
        result["rate"],
        "call attempts/s",
        BASELINE,
        concurrent_calls=HOLD_CALLS,
        concurrent_setup_s=round(result["setup_s"], 2),
        steady_events_per_s=round(result["steady_eps"]),
        redirects=int(result["redirects"]),
        ping_ms_p50=round(result["ping_p50"], 2),
        ping_ms_max=round(result["ping_max"], 2),
        events_per_call=round(result["events_per_call"], 1),
        sim_rss_mb=rss_mb,
        attempts=ATTEMPTS,
        hour_agents=50,
        hour_speed=60,
        hour_real_s=round(hour["real_s"], 1),
        hour_timer_lag_ms_p50=round(hour["lag_p50"], 2),
        hour_timer_lag_ms_max=round(hour["lag_max"], 2),
        hour_offered=int(hour["offered"]),
        hour_calls=int(hour["calls"]),
        hour_abandoned=int(hour["abandoned"]),
    )


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


if __name__ == "__main__":
    main()
