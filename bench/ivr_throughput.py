"""bench/ivr_throughput: IVR sessions through a 3-level menu at 500 concurrent calls.

The controller side (this process): the real ``FastAGIServer`` with the ``ivr`` route
(``IvrService``: the pure interpreter, effects over AGI, call-log records to a counting sink, the
ACD hand-off to an instant fake). The Asterisk side runs in a separate process (its own core) and
keeps ``CONCURRENCY`` calls in flight. Every session: SET VARIABLE (call id), three GET DATA
answered 1, 2, 3, the IVR's channel variables, the hand-off, SET VARIABLE CC_QUEUE.

- ``value``: completed IVR sessions per second (closed loop, ``SECONDS`` after a warm-up) with the
  simulated PBX as the Asterisk side: the rendered-dialplan subset (Answer, AGI, Hangup), its
  FastAGI client, simulated callers pressing keys at each prompt (``ScaledClock`` x1000, so
  prompts last milliseconds and the run measures the controller and the simulator, not audio).
- ``p99_ms``: p99 of the controller's turnaround per AGI command as the Asterisk side sees it
  (reply written -> next command read: sockets, event-loop queueing and processing) with 500 calls
  in flight paced like real calls (each menu's prompt and keys take 0.5-1.5 s), timed by a lean
  scripted FastAGI client (the simulator does not time commands); ``p99_processing_ms``: the part
  spent inside the route between a reply arriving and the next command leaving (interpreter step,
  logging, hand-off), from the route's latency hook. ``saturated_*``: the same client answering
  every command at once (a closed loop: then turnaround = calls in flight / throughput).
  ``loop_lag_p99_ms``: how late the controller's event loop woke a 5 ms timer during the paced run
  (on a shared machine, the part of the turnaround that is waiting for a CPU).

Both controllers run with ``gc.freeze()`` after start-up, as the composition root should: without
it, the collector's passes over the start-up objects (config, phonenumbers' metadata, modules)
stall the loop for tens of milliseconds at this load (measured: paced p99 ~100 ms without, ~10 ms
with, on the same busy machine).
- ``baseline``: the same flow, same interpreter, same drivers, served by panoramisk's stock
  ``fast_agi.Application`` (its ``Request.send_command`` adapted to the route's session API).

``CALLCENTER_BENCH_SECONDS`` / ``CALLCENTER_BENCH_CONCURRENCY`` shorten or lower a run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import emit
from callcenter.asterisk import names
from callcenter.asterisk.agi import AGIReply, CommandReader, encode_env, encode_reply
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.clock import RealClock
from callcenter.config import model as m
from callcenter.errors import AGIHangupError
from callcenter.inbound.service import IvrService
from callcenter.ports import QueuedCall
from callcenter.reporting.records import LogRecord

SECONDS = float(os.environ.get("CALLCENTER_BENCH_SECONDS", "8"))
CONCURRENCY = int(os.environ.get("CALLCENTER_BENCH_CONCURRENCY", "500"))
DID = "18005550100"
REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ the flow: three menu levels
def bench_config() -> m.Config:
    def menu(nid: str, prompt: str, nxt: str) -> m.MenuNode:
        return m.MenuNode(
            id=nid,
            prompt=prompt,
            choices=m.frozen_map({"1": nxt, "2": nxt, "3": nxt}),
            invalid_prompt="invalid-option",
            timeout_prompt="no-input",
            fallback=nxt,
        )

    nodes: list[m.IVRNode] = [
        menu("level1", "main-menu", "level2"),
        menu("level2", "support-menu", "level3"),
        menu("level3", "billing-menu", "route"),
        m.SetNode(
            id="route", skills=m.frozen_map({"support": 3}), data=m.frozen_map({"intent": "x"}), next="q"
        ),
        m.QueueNode(id="q", queue="support"),
    ]
    flow = m.Flow(id="main", start="level1", nodes=m.frozen_map({n.id: n for n in nodes}))
    every_day = {d: (m.TimeRange(dt.time(0, 0), dt.time(0, 0)),) for d in range(7)}
    return m.Config(
        center=m.Center(name="bench", timezone="America/New_York", hours=every_day),
        numbers=(m.Number(number="+" + DID, flow="main"),),
        flows=m.frozen_map({"main": flow}),
        queues=m.frozen_map({"support": m.Queue(id="support", name="support", skills=m.frozen_map({}))}),
    )


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def submit(self, record: LogRecord) -> None:
        self.count += 1


class InstantAcd:
    def __init__(self) -> None:
        self.calls = 0

    async def enqueue(self, call: QueuedCall) -> None:
        self.calls += 1

    async def accept_callback(self, call_id: str, number: str) -> None:
        return None


# ------------------------------------------------------------------ panoramisk adapter (baseline)
class PanoramiskSession:
    """panoramisk's ``Request`` behind the route's session API."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.env: Mapping[str, str] = dict(request.headers)

    async def command(self, command: str, *args: str | int, timeout: float) -> AGIReply:
        from callcenter.asterisk.agi import format_command

        line = format_command(command, *args).decode().rstrip("\n")
        async with asyncio.timeout(timeout):
            result = await self.request.send_command(line)
        if "error" in result:
            raise AGIHangupError(str(result.get("msg")))
        value, data = result.get("result", ("", ""))
        return AGIReply(int(result["status_code"]), value, data or None)


# ------------------------------------------------------------------ the Asterisk side (subprocess)
def _env(n: int) -> bytes:
    return encode_env(
        {
            "agi_network": "yes",
            "agi_network_script": "ivr",
            "agi_request": "agi://127.0.0.1/ivr",
            "agi_channel": f"PJSIP/carrier-{n:08x}",
            "agi_uniqueid": f"1795420631.{n}",
            "agi_callerid": "2125550100",
            "agi_dnid": DID,
            "agi_context": "cc-inbound",
            "agi_extension": DID,
            "agi_priority": "3",
        }
    )


async def _caller_loop(
    port: int,
    t_measure: float,
    deadline: float,
    seq: list[int],
    turnarounds: list[float],
    rng: random.Random | None,
) -> int:
    """One call slot, closed loop until ``deadline``; counts what happens after ``t_measure``.
    ``rng``: paced, the slot starts at a random moment and each GET DATA (prompt + the caller's
    keys) takes 0.5-1.5 s as with real audio; ``None``: every reply at once (a flood)."""
    done = 0
    ok_set = encode_reply(AGIReply.ok(1))
    ok_stream = encode_reply(AGIReply.ok(0, endpos=8000))
    if rng is not None:
        await asyncio.sleep(rng.uniform(0.0, 1.5))
    while time.perf_counter() < deadline:
        seq[0] += 1
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_env(seq[0]))
        commands = CommandReader()
        level = 0
        sent_at: float | None = None
        finished = False
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 30)
                now = time.perf_counter()
                if not data:
                    break
                for words in commands.feed(data):
                    if sent_at is not None and now >= t_measure:
                        turnarounds.append(now - sent_at)
                    if words[:2] == ["GET", "DATA"]:
                        level += 1
                        reply = encode_reply(AGIReply.ok(str(level)))
                        if rng is not None:
                            await asyncio.sleep(rng.uniform(0.5, 1.5))
                    elif words[:2] == ["SET", "VARIABLE"]:
                        reply = ok_set
                        if words[2] == names.VAR_QUEUE:
                            finished = True
                    elif words[:2] == ["STREAM", "FILE"]:
                        reply = ok_stream
                    else:
                        reply = encode_reply(AGIReply.ok(0))
                    writer.write(reply)
                    sent_at = time.perf_counter()
        finally:
            writer.close()
        if finished and time.perf_counter() >= t_measure:
            done += 1
    return done


async def _drive(port: int, concurrency: int, seconds: float, warmup: float, paced: bool) -> dict[str, Any]:
    seq = [0]
    rngs = [random.Random(i) if paced else None for i in range(concurrency)]
    turnarounds: list[float] = []
    start = time.perf_counter()
    t_measure, deadline = start + warmup, start + warmup + seconds
    counts = await asyncio.gather(
        *(_caller_loop(port, t_measure, deadline, seq, turnarounds, rngs[i]) for i in range(concurrency))
    )
    elapsed = time.perf_counter() - t_measure
    turnarounds.sort()
    return {
        "sessions": sum(counts),
        "elapsed": elapsed,
        "p50_ms": 1000 * turnarounds[len(turnarounds) // 2] if turnarounds else None,
        "p99_ms": 1000 * turnarounds[int(len(turnarounds) * 0.99)] if turnarounds else None,
        "commands": len(turnarounds),
    }


# ------------------------------------------------------------------ the simulated PBX as the driver
SIM_DIALPLAN = f"""
[{names.CTX_INBOUND}]
exten => {DID},1,Answer()
 same => n,AGI(agi://127.0.0.1:4573/{names.AGI_IVR})
 same => n,Hangup()
"""


class _SimCaller:
    """A simulated person: presses 1, 2, 3 as each menu prompt starts; when the call ends, the
    next call of this slot starts (closed loop)."""

    def __init__(self, slot: _SimSlots) -> None:
        self.slot = slot
        self.level = 0

    def on_event(self, pbx: Any, chan: Any, what: str, detail: str) -> None:
        if what == "prompt":
            self.level += 1
            asyncio.get_running_loop().call_soon(pbx.send_dtmf, chan, str(min(self.level, 3)), 80)
        elif what == "hangup":
            self.slot.ended()


class _SimSlots:
    def __init__(self, sim: Any, deadline: float, t_count: float) -> None:
        self.sim = sim
        self.deadline = deadline
        self.t_count = t_count
        self.completed = 0
        self.running = 0
        self.idle = asyncio.Event()
        self.seq = 0

    def start_one(self) -> None:
        self.seq += 1
        self.running += 1
        number = f"+1212555{self.seq % 10000:04d}"
        self.sim.pbx.inbound_call(DID, caller_num=number, context=names.CTX_INBOUND, owner=_SimCaller(self))

    def ended(self) -> None:
        self.running -= 1
        now = time.perf_counter()
        if now >= self.t_count:
            self.completed += 1
        if now < self.deadline:
            asyncio.get_running_loop().call_soon(self.start_one)
        elif self.running == 0:
            self.idle.set()


async def _drive_sim(
    port: int, concurrency: int, seconds: float, warmup: float, rec_dir: str
) -> dict[str, Any]:
    from callcenter.clock import ScaledClock
    from callcenter.sim import SimulatedPBX

    sim = SimulatedPBX(
        dialplan_text=SIM_DIALPLAN,
        clock=ScaledClock(1000),  # prompts last milliseconds: the run measures the controller
        agi_host="127.0.0.1",
        agi_port=port,
        sounds_dirs=[REPO / "ivr_prompts"],
        recordings_dir=rec_dir,
        check_dialplan=False,
    )
    async with sim:
        t0 = time.perf_counter()
        slots = _SimSlots(sim, t0 + warmup + seconds, t0 + warmup)
        for _ in range(concurrency):
            slots.start_one()
        async with asyncio.timeout(warmup + seconds + 120):
            await slots.idle.wait()
        elapsed = time.perf_counter() - slots.t_count
    return {"sessions": slots.completed, "elapsed": elapsed, "p50_ms": None, "p99_ms": None, "commands": None}


def sim_driver_main(argv: list[str]) -> None:
    port, concurrency, seconds = int(argv[0]), int(argv[1]), float(argv[2])
    rec_dir = tempfile.mkdtemp(prefix="cc-bench-ivr-")
    try:
        result = asyncio.run(_drive_sim(port, concurrency, seconds, min(2.0, seconds / 4), rec_dir))
    finally:
        shutil.rmtree(rec_dir, ignore_errors=True)
    print(json.dumps(result), flush=True)


def driver_main(argv: list[str]) -> None:
    port, concurrency, seconds = int(argv[0]), int(argv[1]), float(argv[2])
    paced = len(argv) > 3 and argv[3] == "paced"
    result = asyncio.run(_drive(port, concurrency, seconds, min(2.0, seconds / 4), paced))
    print(json.dumps(result), flush=True)


async def _run_driver(port: int, kind: str = "--driver") -> dict[str, Any]:
    driver, _, mode = kind.partition(":")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ivr_throughput", driver, str(port), str(CONCURRENCY), str(SECONDS), mode,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), SECONDS * 4 + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------ the two controllers
def _service(latencies: list[float] | None) -> tuple[IvrService, CountingSink, InstantAcd]:
    sink, acd = CountingSink(), InstantAcd()
    service = IvrService(
        bench_config(),
        writer=sink,
        distributor=acd,
        customers=None,
        clock=RealClock(),
        latency_hook=latencies.append if latencies is not None else None,
    )
    return service, sink, acd


async def run_ours(kind: str = "--driver") -> dict[str, Any]:
    latencies: list[float] = []
    service, sink, acd = _service(latencies)
    server = FastAGIServer(
        {names.AGI_IVR: service.handle}, host="127.0.0.1", port=0, max_sessions=CONCURRENCY * 2, backlog=4096
    )
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:  # how late the controller's event loop wakes a 5 ms timer
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    gc.collect()
    gc.freeze()  # start-up objects (config, phonenumbers metadata, modules) out of the collector's way
    async with server:
        prober = asyncio.create_task(probe())
        try:
            result = await _run_driver(server.port, kind)
        finally:
            stop.set()
            await prober
    gc.unfreeze()
    lags.sort()
    result["loop_lag_p99_ms"] = 1000 * lags[int(len(lags) * 0.99)] if lags else None
    latencies.sort()
    result["p99_processing_ms"] = 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None
    result["mean_processing_ms"] = 1000 * statistics.fmean(latencies) if latencies else None
    result["failed"] = service.stats.failed + server.failed
    result["handed_off"] = acd.calls
    result["records"] = sink.count
    return result


async def run_panoramisk(kind: str) -> dict[str, Any] | None:
    try:
        from panoramisk import fast_agi
    except ImportError:
        return None
    service, _sink, acd = _service(None)

    async def route(request: Any) -> None:
        await service.handle(PanoramiskSession(request))

    app = fast_agi.Application(loop=asyncio.get_running_loop())
    app.add_route(names.AGI_IVR, route)
    server = await asyncio.start_server(app.handler, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    gc.collect()
    gc.freeze()
    try:
        result = await _run_driver(port, kind)
    finally:
        gc.unfreeze()
        server.close()
        await server.wait_closed()
    result["handed_off"] = acd.calls
    result["failed"] = service.stats.failed
    return result


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rate(result: dict[str, Any] | None) -> float | None:
    if not result or "sessions" not in result or not result["elapsed"]:
        return None
    return float(result["sessions"]) / float(result["elapsed"])


def main() -> None:
    sim = asyncio.run(run_ours("--sim-driver"))  # value: sessions/s driven by the simulated PBX
    paced = asyncio.run(run_ours("--driver:paced"))  # per-command turnaround, 500 calls with audio pacing
    flood = asyncio.run(run_ours("--driver:flood"))  # per-command turnaround when saturated
    try:
        base = asyncio.run(run_panoramisk("--sim-driver"))
    except Exception as exc:  # the baseline is best effort: report why it did not run
        base = {"error": repr(exc)}
    try:
        base_paced = asyncio.run(run_panoramisk("--driver:paced"))
    except Exception as exc:
        base_paced = {"error": repr(exc)}
    value = _rate(sim) or 0.0
    baseline = _rate(base)
    emit(
        "ivr_throughput",
        value,
        "sessions/s",
        baseline,
        concurrency=CONCURRENCY,
        seconds=SECONDS,
        p99_ms=_ms(paced.get("p99_ms")),
        p50_ms=_ms(paced.get("p50_ms")),
        p99_processing_ms=_ms(paced.get("p99_processing_ms")),
        loop_lag_p99_ms=_ms(paced.get("loop_lag_p99_ms")),
        gc="freeze() after start-up",
        load_average=round(os.getloadavg()[0], 2),
        mean_processing_ms=_ms(paced.get("mean_processing_ms")),
        commands_measured=paced.get("commands"),
        saturated_p99_ms=_ms(flood.get("p99_ms")),
        saturated_sessions_per_s=_ms(_rate(flood)),
        failed=sum(int(r.get("failed", 0)) for r in (sim, paced, flood)),
        baseline_p99_ms=_ms(base_paced.get("p99_ms")) if base_paced else None,
        baseline_note="panoramisk 1.4 fast_agi.Application serving the same IvrService route, same drivers"
        if baseline
        else f"panoramisk baseline did not run: {base}",
        driver="value: the simulated PBX (callcenter.sim, ScaledClock x1000, people pressing 1/2/3) in a "
        "separate process, closed loop; p99_ms: a scripted FastAGI client in a separate process timing each "
        "command, 500 calls in flight, each menu (prompt + keys) 0.5-1.5 s as with audio; saturated_*: the "
        "same client answering at once (closed loop: turnaround = calls in flight / throughput)",
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        driver_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--sim-driver":
        sim_driver_main(sys.argv[2:])
    else:
        main()
