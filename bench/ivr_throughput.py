"""bench/ivr_throughput: IVR sessions through a 3-level menu at 500 concurrent calls.

The controller side (this process): the real ``FastAGIServer`` with the ``ivr`` route
(``IvrService``: the pure interpreter, effects over AGI, call-log records to a counting sink, the
ACD hand-off to an instant fake). The Asterisk side runs in a separate process (its own core) and
keeps ``CONCURRENCY`` calls in flight, each a FastAGI session speaking the real wire protocol:
prompts end at once and the caller presses 1, 2, 3 at the three menus, so the numbers measure the
controller, not audio. Every session: SET VARIABLE (call id), three GET DATA, the IVR's channel
variables, the hand-off, SET VARIABLE CC_QUEUE.

- ``value``: completed IVR sessions per second (closed loop, ``SECONDS`` of steady state).
- ``p99_ms``: p99 of the controller's turnaround per AGI command as the Asterisk side sees it
  (reply written -> next command read, with 500 sessions in flight: socket, event-loop queueing and
  processing); ``p99_processing_ms``: the part spent inside the route between a reply arriving and
  the next command leaving (interpreter step, logging, hand-off).
- ``baseline``: the same flow, same interpreter, served by panoramisk's stock
  ``fast_agi.Application`` (its ``Request.send_command`` adapted to the route's session API).

``CALLCENTER_BENCH_SECONDS`` / ``CALLCENTER_BENCH_CONCURRENCY`` shorten or lower a run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from bench.common import emit
from callcenter.acd import QueuedCall
from callcenter.asterisk import names
from callcenter.asterisk.agi import AGIReply, CommandReader, encode_env, encode_reply
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.calllog import LogRecord
from callcenter.clock import RealClock
from callcenter.config import model as m
from callcenter.errors import AGIHangupError
from callcenter.ivr_agi import IvrService

SECONDS = float(os.environ.get("CALLCENTER_BENCH_SECONDS", "8"))
CONCURRENCY = int(os.environ.get("CALLCENTER_BENCH_CONCURRENCY", "500"))
DID = "18005550100"


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


async def _caller_loop(port: int, deadline: float, seq: list[int], turnarounds: list[float]) -> int:
    done = 0
    ok_set = encode_reply(AGIReply.ok(1))
    ok_stream = encode_reply(AGIReply.ok(0, endpos=8000))
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
                    if sent_at is not None:
                        turnarounds.append(now - sent_at)
                    if words[:2] == ["GET", "DATA"]:
                        level += 1
                        reply = encode_reply(AGIReply.ok(str(level)))
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
        if finished:
            done += 1
    return done


async def _drive(port: int, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    seq = [0]
    warm: list[float] = []
    await asyncio.gather(
        *(_caller_loop(port, time.perf_counter() + warmup, seq, warm) for _ in range(concurrency))
    )
    turnarounds: list[float] = []
    t0 = time.perf_counter()
    counts = await asyncio.gather(
        *(_caller_loop(port, t0 + seconds, seq, turnarounds) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - t0
    turnarounds.sort()
    return {
        "sessions": sum(counts),
        "elapsed": elapsed,
        "p50_ms": 1000 * turnarounds[len(turnarounds) // 2] if turnarounds else None,
        "p99_ms": 1000 * turnarounds[int(len(turnarounds) * 0.99)] if turnarounds else None,
        "commands": len(turnarounds),
    }


def driver_main(argv: list[str]) -> None:
    port, concurrency, seconds = int(argv[0]), int(argv[1]), float(argv[2])
    result = asyncio.run(_drive(port, concurrency, seconds, warmup=min(2.0, seconds / 4)))
    print(json.dumps(result), flush=True)


async def _run_driver(port: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ivr_throughput", "--driver", str(port), str(CONCURRENCY), str(SECONDS),
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


async def run_ours() -> dict[str, Any]:
    latencies: list[float] = []
    service, sink, acd = _service(latencies)
    server = FastAGIServer(
        {names.AGI_IVR: service.handle}, host="127.0.0.1", port=0, max_sessions=CONCURRENCY * 2, backlog=4096
    )
    async with server:
        result = await _run_driver(server.port)
    latencies.sort()
    result["p99_processing_ms"] = 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None
    result["mean_processing_ms"] = 1000 * statistics.fmean(latencies) if latencies else None
    result["failed"] = service.stats.failed + server.failed
    result["handed_off"] = acd.calls
    result["records"] = sink.count
    return result


async def run_panoramisk() -> dict[str, Any] | None:
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
    try:
        result = await _run_driver(port)
    finally:
        server.close()
        await server.wait_closed()
    result["handed_off"] = acd.calls
    result["failed"] = service.stats.failed
    return result


def main() -> None:
    ours = asyncio.run(run_ours())
    try:
        base = asyncio.run(run_panoramisk())
    except Exception as exc:  # the baseline is best effort: report why it did not run
        base = {"error": repr(exc)}
    value = ours["sessions"] / ours["elapsed"]
    baseline = base["sessions"] / base["elapsed"] if base and "sessions" in base else None
    emit(
        "ivr_throughput",
        value,
        "sessions/s",
        baseline,
        concurrency=CONCURRENCY,
        seconds=SECONDS,
        p99_ms=None if ours["p99_ms"] is None else round(ours["p99_ms"], 3),
        p50_ms=None if ours["p50_ms"] is None else round(ours["p50_ms"], 3),
        p99_processing_ms=None if ours["p99_processing_ms"] is None else round(ours["p99_processing_ms"], 3),
        mean_processing_ms=None
        if ours["mean_processing_ms"] is None
        else round(ours["mean_processing_ms"], 4),
        commands=ours["commands"],
        failed=ours["failed"],
        baseline_p99_ms=None if not base or base.get("p99_ms") is None else round(base["p99_ms"], 3),
        baseline_note="panoramisk 1.4 fast_agi.Application serving the same IvrService route"
        if baseline
        else f"panoramisk baseline did not run: {base}",
        driver="scripted FastAGI client in a separate process (the simulator's Asterisk side, minus media)",
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        driver_main(sys.argv[2:])
    else:
        main()
