"""Composition root: ``callcenter demo`` — the whole center on one command, against the simulator.

The private PostgreSQL starts (or ``DATABASE_URL``), the schema is migrated, ``dialplans/`` is
validated and rendered into ``RUN_DIR/asterisk``, the simulated PBX starts on loopback with simulated
callers and agents, and the controller connects to it over AMI and FastAGI exactly as it would to
Asterisk. Calls flow through the IVR, the queues, the agents, recording, a supervisor listening in,
and the outbound campaign, while a live view shows the center. At the end: the report of the run
(the same as ``callcenter report``), the staffing advice, an HTML report with plots under
``RUN_DIR/reports/``, and a check that every simulated call has exactly one row in the call log.

``--minutes M`` simulated minutes of the center's day at ``--speed S`` (M=60, S=60: one wall
minute); ``--seed N`` makes the run repeatable. Ctrl-C stops everything cleanly at any moment.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import logging
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg
from rich.console import Console
from rich.table import Table as RichTable

from callcenter.app import runinfo
from callcenter.app.controller import Controller, Links, login_all, logout_all
from callcenter.app.plugins import standard_plugins
from callcenter.clock import Clock, ScaledClock
from callcenter.commands.db import migrate_dsn
from callcenter.commands.demo_view import LiveDetails, LiveView
from callcenter.commands.report import MAIN_COLUMNS
from callcenter.commands.report import write as write_table
from callcenter.commands.sim import center_scenario, start_sim
from callcenter.commands.validate import load_or_report, summary
from callcenter.config import model as cm
from callcenter.config.render import render, write_files
from callcenter.errors import CallcenterError, ConfigError
from callcenter.outbound import service as ds
from callcenter.outbound.dialer import CampaignState
from callcenter.outbound.runtime import runtime_from_config
from callcenter.reporting.dispositions import shares
from callcenter.reporting.erlang import agents_needed
from callcenter.reporting.html import ReportData, Table, disposition_tables, render_report
from callcenter.reporting.kpi import KpiSettings
from callcenter.sim.population import Population
from callcenter.sim.server import SimulatedPBX
from callcenter.store import run_report, users
from callcenter.store.campaigns import CampaignStore
from callcenter.store.database import database
from callcenter.store.dispositions import disposition_counts
from callcenter.store.reports import ReportQuery, queue_report
from callcenter.store.spool import private_dir, write_private
from callcenter.web.auth import hash_password

log = logging.getLogger("callcenter.demo")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the whole center against the simulated PBX, then report")
    p.add_argument("--config", type=Path, default=Path("dialplans"), help="the center's YAML")
    p.add_argument("--prompts", type=Path, default=None, help="prompts directory (ivr_prompts)")
    p.add_argument("--minutes", type=float, default=60.0, help="simulated minutes of calls (60)")
    p.add_argument("--speed", type=float, default=30.0, help="simulated seconds per wall second (30)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument("--scenario", default="busy-hour", help="simulated people: busy-hour, smoke")
    p.add_argument("--plain", action="store_true", help="plain periodic lines, not the live view")
    p.add_argument("--http", default="127.0.0.1:0", help="wallboard/API address (port 0: any)")
    p.set_defaults(func=cmd_demo)


def demo_start(config: cm.Config, *, now: float, latest: float | None) -> float:
    """When the demo's simulated day begins: 10:00 local time on the first open day that starts
    after everything already in the call log (so runs never overlap) and not before today."""
    tz = ZoneInfo(config.center.timezone)
    floor = max(now, (latest or 0.0) + 3600.0)
    day = dt.datetime.fromtimestamp(now, tz).date()
    for _ in range(3660):
        start = dt.datetime.combine(day, dt.time(10, 0), tzinfo=tz)
        if start.timestamp() >= floor and config.center.status_at(start) == cm.ScheduleStatus.OPEN:
            return start.timestamp()
        day += dt.timedelta(days=1)
    return floor


def for_demo(config: cm.Config, run_dir: Path) -> cm.Config:
    """The example center with its recordings kept under the run directory."""
    recording = dataclasses.replace(config.recording, directory=str(run_dir / "recordings"))
    return dataclasses.replace(config, recording=recording)


DEMO_AREA_CODES = (212, 305, 312, 415, 617, 646, 713, 718)


# The example center's supervisors store only their PINs' hashes (dialplans/people.yaml): the demo,
# which types them, knows its own demo PINs here.
DEMO_PINS: Final = {"9001": "482917", "9002": "730461"}


def demo_contacts_csv(campaign_id: str, count: int) -> str:
    """Synthetic contacts for the demo's campaigns: fictional 555-01xx numbers in several US time
    zones (so calling windows differ by contact)."""
    lines = ["phone,name,account"]
    n = 0
    for i in range(100):
        for ac in DEMO_AREA_CODES:
            if n >= count:
                return "\n".join(lines) + "\n"
            lines.append(f"+1{ac}55501{i:02d},Demo contact {n + 1},{campaign_id}-{n + 1:05d}")
            n += 1
    return "\n".join(lines) + "\n"


async def import_demo_contacts(config: cm.Config, config_dir: Path, run_dir: Path, dsn: str) -> list[str]:
    """Every campaign's own contact list, plus synthetic contacts so the dialer has work."""
    said: list[str] = []
    store = await CampaignStore.connect(dsn)
    try:
        for c in config.campaigns.values():
            rt = runtime_from_config(c, default_region=config.center.country)
            await store.upsert_campaign(rt)
            await store.set_state(c.id, CampaignState.RUNNING)  # the last demo paused it at day's end
            own = config_dir / c.contacts
            dnc = config_dir / c.dnc if c.dnc else None
            result, added = await ds.import_file(
                store,
                c.id,
                own,
                default_region=config.center.country,
                default_zone=c.timezone,
                dnc_path=dnc,
                config=config,
            )
            synthetic = run_dir / f"demo-contacts-{c.id}.csv"
            synthetic.write_text(demo_contacts_csv(c.id, 120), encoding="utf-8")
            result2, added2 = await ds.import_file(
                store,
                c.id,
                synthetic,
                default_region=config.center.country,
                default_zone=c.timezone,
                config=config,
            )
            said.append(
                f"{c.id} ({c.mode}): {added + added2} new contacts "
                f"({len(result.problems) + len(result2.problems)} rows refused)"
            )
    finally:
        await store.close()
    return said


def _busy(controller: Controller, population: Population) -> bool:
    """Calls still in the system: simulated callers, calls in the ACD, dialer calls in flight."""
    if population.active or controller.acd.snapshot()["calls"]:
        return True
    if controller.dialer is not None:
        return any(
            int(controller.dialer.status(c).get("in_flight") or 0) for c in controller.config.campaigns
        )
    return False


async def supervise(controller: Controller, clock: Clock, duration: float) -> None:
    """A supervisor listens in on a live call a fifth of the way through the run, then switches
    to whisper (coaching the agent), through the same monitoring API an operator would use."""
    monitor = controller.monitor
    if monitor is None:
        return
    await clock.sleep(duration * 0.2)
    # The newest connected calls first: they have the most talk left to listen to.
    calls = sorted(
        (c for c in controller.acd.snapshot()["calls"].items() if c[1]["state"] == "connected"),
        key=lambda item: -float(item[1]["queued_at"]),
    )
    for sup in controller.config.supervisors.values():
        for call_id, call in calls:
            agent_id = call["agent_id"]
            if agent_id is None:
                continue
            try:
                pin = DEMO_PINS.get(sup.id, sup.pin.value)
                session = await monitor.start(sup.id, agent_id, "listen", pin=pin, source="demo")
            except CallcenterError as exc:  # out of this supervisor's scope, or already watched
                log.info("supervisor %s may not listen to %s: %s", sup.id, agent_id, exc)
                continue
            print(f"demo: supervisor {sup.name} listens in on agent {agent_id} (call {call_id})", flush=True)
            await clock.sleep(20.0)
            try:
                await monitor.set_mode(session.session_id, "whisper")
                print(
                    f"demo: supervisor {sup.name} switches to whisper (coaching agent {agent_id})", flush=True
                )
            except CallcenterError as exc:
                print(f"demo: the monitored call ended before the switch ({exc.code})", flush=True)
            return


DEMO_ADMIN = "demo-admin"
DEMO_AGENT = "demo-agent"


async def demo_admin(conn: Any) -> tuple[str, str]:
    """The demo's admin user (made on first use) with a new password and API token for this run."""
    password = secrets.token_urlsafe(12)
    try:
        await users.get_user(conn, DEMO_ADMIN)
        await users.set_password(conn, DEMO_ADMIN, hash_password(password))
    except CallcenterError:
        await users.add_user(conn, DEMO_ADMIN, "admin", hash_password(password))
    return password, await users.issue_token(conn, DEMO_ADMIN)


async def demo_agent(conn: Any, config: cm.Config) -> tuple[str, str, str] | None:
    """The demo's agent user, bound to the center's first agent (made on first use), with a new
    password for this run: (user, password, agent id); None if the center has no agents."""
    agent_id = next(iter(config.agents), None)
    if agent_id is None:
        return None
    password = secrets.token_urlsafe(12)
    name = DEMO_AGENT
    try:
        user = await users.get_user(conn, name)
        if user.agent_id != agent_id:  # made for another center's agent: one of its own for this
            name = f"{DEMO_AGENT}-{agent_id}"
            user = await users.get_user(conn, name)
        await users.set_password(conn, name, hash_password(password))
    except CallcenterError:
        await users.add_user(conn, name, "agent", hash_password(password), agent_id=agent_id)
    return name, password, agent_id


DEMO_SUPERVISOR = "demo-supervisor"


async def demo_supervisor(conn: Any, config: cm.Config) -> tuple[str, str] | None:
    """The demo's supervisor user (made on first use, a new password each run), bound to the
    example center's first supervisor and its queues: (its id, the password); None without one."""
    sup = next(iter(config.supervisors.values()), None) if config.supervisors else None
    if sup is None:
        return None
    password = secrets.token_urlsafe(12)
    try:
        await users.get_user(conn, DEMO_SUPERVISOR)
        await users.set_password(conn, DEMO_SUPERVISOR, hash_password(password))
    except CallcenterError:
        await users.add_user(
            conn,
            DEMO_SUPERVISOR,
            "supervisor",
            hash_password(password),
            queues=sorted(sup.queues),
            agent_id=sup.id,
        )
    return sup.id, password


def _http(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port or 0)


async def _demo(args: argparse.Namespace, config: cm.Config, dsn: str) -> int:
    run_dir = Path(args.run_dir)
    await migrate_dsn(dsn)
    print("demo: database migrated", flush=True)
    config = for_demo(config, run_dir)
    for line in await import_demo_contacts(config, Path(args.directory), run_dir, dsn):
        print(f"demo: campaign {line}", flush=True)
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        latest = await run_report.latest_activity(conn)
        password, token = await demo_admin(conn)
        desk_login = await demo_agent(conn, config)
        supervisor = await demo_supervisor(conn, config)
    finally:
        await conn.close()
    conf_dir = run_dir / "asterisk"
    files = render(config)
    write_files(files, conf_dir)
    print(f"demo: rendered {len(files)} Asterisk files into {conf_dir}", flush=True)
    clock = ScaledClock(args.speed, start=demo_start(config, now=time.time(), latest=latest))
    t0 = clock.now()
    local = dt.datetime.fromtimestamp(t0, dt.UTC).astimezone(ZoneInfo(config.center.timezone))
    print(f"demo: the simulated day starts {local:%A %Y-%m-%d %H:%M %Z}", flush=True)
    sim = await start_sim(
        conf_dir,
        run_dir,
        clock=clock,
        seed=args.seed,
        sounds_dirs=args.sounds_dirs,
    )
    http_host, http_port = _http(args.http)
    links = Links.from_config(
        config,
        ami_host="127.0.0.1",
        ami_port=sim.ami_port,
        agi_bind="127.0.0.1",
        agi_port=0,
        http_host=http_host,
        http_port=http_port,
    )
    controller = Controller(
        config,
        dsn=dsn,
        run_dir=run_dir,
        clock=clock,
        links=links,
        plugins=standard_plugins(),
        counter_refresh=2.0 * args.speed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ctl_task = asyncio.create_task(controller.run(stop), name="controller")
    duration = args.minutes * 60.0
    view_task: asyncio.Task[None] | None = None
    details_task: asyncio.Task[None] | None = None
    coach_task: asyncio.Task[None] | None = None
    interrupted = False
    placed = -1
    population: Population | None = None
    try:
        ready = asyncio.ensure_future(controller.ready.wait())
        await asyncio.wait({ctl_task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not controller.ready.is_set():
            ready.cancel()
            await ctl_task
            raise SystemExit("demo: the controller stopped before it was ready")
        assert controller.agi is not None  # noqa: S101 - set before ready
        await login_all(controller)
        population = sim.start_people(
            center_scenario(args.scenario, config, args.minutes), agi_port=controller.agi.port
        )
        where = f"http://{http_host}:{controller.http.port}/" if controller.http else "off"
        print(
            f"demo: controller ready; {len(config.agents)} agents logged in; wallboard {where}; "
            f"{args.minutes:g} simulated minutes at x{args.speed:g}, seed {args.seed}",
            flush=True,
        )
        runinfo.write(
            run_dir,
            api=f"http://{http_host}:{controller.http.port}" if controller.http else None,
            now=time.time(),
        )
        if controller.http:
            api = f"http://{http_host}:{controller.http.port}"
            print(
                f"demo: sign in at {api}/login as {DEMO_ADMIN} / {password} (admin); API token for this "
                f"run: CALLCENTER_TOKEN={token} callcenter agent --api {api} status",
                flush=True,
            )
            print(f"demo: wallboard (no sign-in) {api}/wallboard", flush=True)
            if supervisor is not None:
                sup_id, sup_password = supervisor
                print(
                    f"demo: supervisor console {api}/supervisor: sign in as {DEMO_SUPERVISOR} / "
                    f"{sup_password} (supervisor {sup_id}, phone PIN {DEMO_PINS.get(sup_id, '?')})",
                    flush=True,
                )
            if desk_login is not None:
                user, desk_password, agent_id = desk_login
                print(
                    f"demo: agent desktop {api}/agent (sign in at {api}/login as {user} / {desk_password}: "
                    f"agent {agent_id}, {config.agents[agent_id].name})",
                    flush=True,
                )
        details = LiveDetails(controller, refresh=2.0 * args.speed, simulated=True)
        details_task = asyncio.create_task(details.run(), name="live-details")
        view = LiveView(
            lambda: controller.snapshot(duration=duration),
            details=details,
            title=f"callcenter demo ({config.center.name})",
            force_plain=True if args.plain else None,
            plain_interval=5.0 * args.speed,
            interval=0.5 * args.speed,
            clock=clock,
        )
        view_task = asyncio.create_task(view.run(), name="live-view")
        coach_task = asyncio.create_task(supervise(controller, clock, duration), name="supervisor")
        run_for = asyncio.ensure_future(clock.sleep(duration))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({run_for, stopped, ctl_task}, return_when=asyncio.FIRST_COMPLETED)
        interrupted = stop.is_set()
        # The day is over: campaigns stop dialing and arrivals have stopped; let every call still
        # in the system finish (bounded), so that each ends with its disposition.
        if controller.dialer is not None and not stop.is_set():
            for campaign_id in config.campaigns:
                await controller.dialer.pause(campaign_id)
        drain_until = clock.monotonic() + 20 * 60.0
        while not stop.is_set() and clock.monotonic() < drain_until and _busy(controller, population):
            await clock.sleep(5.0)
        run_for.cancel()
        stopped.cancel()
        interrupted = interrupted or stop.is_set()
        placed = population.stats.offered
    finally:
        for task in (view_task, coach_task, details_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if controller.ready.is_set() and not ctl_task.done():
            await logout_all(controller)  # the shift ends with the day: login periods end here
        stop.set()
        await ctl_task
        runinfo.remove(run_dir)
        await sim.close()
    if placed < 0:
        placed = population.stats.offered if population is not None else 0
    t1 = clock.now()
    print("demo: controller stopped, call log flushed", flush=True)
    if interrupted:
        print("demo: interrupted; the report covers what ran", flush=True)
    await _report(config, dsn, run_dir, t0, t1, placed, sim, args)
    return 130 if interrupted else 0


async def _report(
    config: cm.Config,
    dsn: str,
    run_dir: Path,
    t0: float,
    t1: float,
    placed: int,
    sim: SimulatedPBX,
    args: argparse.Namespace,
) -> None:
    tz = config.center.timezone
    start = dt.datetime.fromtimestamp(t0, dt.UTC)
    end = dt.datetime.fromtimestamp(t1 + 1, dt.UTC)
    targets = {qid: q.sl_seconds for qid, q in config.queues.items()}
    settings = KpiSettings(queue_targets=targets)
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        day = await queue_report(conn, ReportQuery(start, end, "day", tz=tz, settings=settings), now=end)
        per15 = await queue_report(conn, ReportQuery(start, end, "15", tz=tz, settings=settings), now=end)
        n_calls = await run_report.inbound_calls(conn, start, end)
        attempts = await run_report.attempts_by_outcome(conn, start)
        dupes = await run_report.duplicate_calls(conn)
        no_disp = await run_report.calls_without_disposition(conn, start)
        waits = await run_report.queue_waits(conn, start, end)
        states = await run_report.state_changes(conn, start, end)
        dispositions = shares(await disposition_counts(conn, start, end))
    finally:
        await conn.close()
    # The same columns and numbers as `callcenter report --interval day` on the demo's day.
    write_table(day, "table", title="Queues, the whole run", columns=MAIN_COLUMNS["queue"][1:])
    offered_sim = max(placed, 0)
    if sim.population is not None:
        log.info("simulated people: %s", sim.population.stats)
    for fault in sim.pbx.faults:
        print(f"simulator fault: {fault}", flush=True)
    print(
        f"call log: {n_calls} calls recorded; the simulator placed {offered_sim} inbound calls; "
        f"duplicate rows {dupes}; calls without a disposition {no_disp}",
        flush=True,
    )
    by_campaign: dict[str, list[str]] = {}
    for a in attempts:
        by_campaign.setdefault(a.campaign_id, []).append(f"{a.outcome} {a.count}")
    for campaign, parts in by_campaign.items():
        print(f"campaign {campaign}: attempts by outcome: {', '.join(parts)}", flush=True)
    # Staffing advice for the busiest 15 minutes of the run.
    advice: list[list[object]] = []
    for qid, q in config.queues.items():
        rows = [r for r in per15 if r.get("queue") == qid and r.get("offered")]
        if not rows:
            continue
        busiest = max(rows, key=lambda r: int(r["offered"]))
        aht = float(busiest.get("aht_seconds") or 180.0)
        need = agents_needed(
            float(busiest["offered"]),
            900.0,
            aht,
            target_level=q.sl_percent / 100,
            target_seconds=q.sl_seconds,
        )
        when = dt.datetime.fromisoformat(str(busiest["interval"])).astimezone(ZoneInfo(tz))
        advice.append(
            [
                qid,
                when.strftime("%a %H:%M"),
                busiest["offered"],
                f"{aht:.0f}",
                need.agents,
                f"{need.service_level * 100:.0f}%",
                f"{need.asa_seconds:.0f}",
            ]
        )
    if advice:
        t = RichTable(title="Staffing advice (Erlang C, busiest 15 minutes per queue)")
        for col in ("queue", "interval", "calls", "AHT s", "agents", "SL", "ASA s"):
            t.add_column(col)
        for row in advice:
            t.add_row(*[str(c) for c in row])
        Console(width=120).print(t)
    if dispositions:
        write_table(
            [r for r in dispositions if r["dimension"] != "agent"],
            "table",
            title="Dispositions (wrap-up codes)",
        )
    path = _html(config, run_dir, per15, day, waits, states, advice, t0, args, dispositions=dispositions)
    print(f"demo: HTML report written to {path}", flush=True)


_QUIET = frozenset({"transfers", "callbacks_requested", "overflowed", "short_abandoned"})


def _html(
    config: cm.Config,
    run_dir: Path,
    per15: list[dict[str, Any]],
    day: list[dict[str, Any]],
    waits: list[float],
    states: list[run_report.StateChange],
    advice: list[list[object]],
    t0: float,
    args: argparse.Namespace,
    *,
    dispositions: list[dict[str, Any]] | None = None,
) -> Path:
    tz = ZoneInfo(config.center.timezone)
    labels = sorted({str(r["interval"]) for r in per15})
    # the call log's buckets are instants: shown as the center's local time of day
    short = [dt.datetime.fromisoformat(lbl).astimezone(tz).strftime("%H:%M") for lbl in labels]

    def total(key: str, label: str) -> float:
        return float(sum(int(r.get(key) or 0) for r in per15 if str(r["interval"]) == label))

    offered = [total("offered", lbl) for lbl in labels]
    answered = [total("answered", lbl) for lbl in labels]
    abandoned = [total("abandoned", lbl) for lbl in labels]
    sl: list[float | None] = []
    for lbl in labels:
        rows = [r for r in per15 if str(r["interval"]) == lbl and r.get("service_level") is not None]
        weight = sum(int(r.get("offered") or 0) for r in rows)
        sl.append(
            sum(float(r["service_level"]) * int(r.get("offered") or 0) for r in rows) / weight
            if weight
            else None
        )
    by_queue: dict[str, list[float | None]] = {}
    for qid in config.queues:
        of_queue = {str(r["interval"]): r for r in per15 if r["queue"] == qid}
        if any(int(r.get("offered") or 0) for r in of_queue.values()):
            by_queue[qid] = [
                None if lbl not in of_queue or of_queue[lbl].get("service_level") is None
                else float(of_queue[lbl]["service_level"])
                for lbl in labels
            ]  # fmt: skip
    # Agent states over time: the state of each agent at each 5-minute tick.
    ticks: list[str] = []
    series: dict[str, list[float]] = {}
    if states:
        first = states[0].at
        last = states[-1].at
        current: dict[str, str] = {}
        i = 0
        t = first
        while t <= last:
            while i < len(states) and states[i].at <= t:
                current[states[i].agent_id] = states[i].state
                i += 1
            ticks.append(t.astimezone(tz).strftime("%H:%M"))
            counts: dict[str, int] = {}
            for s in current.values():
                counts[s] = counts.get(s, 0) + 1
            for s in set(series) | set(counts):
                series.setdefault(s, [0.0] * (len(ticks) - 1)).append(float(counts.get(s, 0)))
            t += dt.timedelta(minutes=5)
    columns = [
        "queue", "offered", "answered", "abandoned", "abandon_rate", "service_level", "sl_target",
        "asa_seconds", "aht_seconds", "longest_wait_seconds", "occupancy", "transfers", "fcr",
        "callbacks_requested", "overflowed",
    ]  # fmt: skip
    # a count that is zero on every row says nothing here: its column is left out
    columns = [c for c in columns if c not in _QUIET or any(r.get(c) for r in day)]
    targets = {qid: q.sl_percent / 100 for qid, q in config.queues.items()}
    day_rows = [[{**r, "sl_target": targets.get(str(r["queue"]))}.get(c) for c in columns] for r in day]
    days = sorted({dt.datetime.fromisoformat(str(r["interval"])).astimezone(tz).date() for r in day})
    when = ", ".join(d.strftime("%a %Y-%m-%d") for d in days)
    data = ReportData(
        title=f"callcenter demo: {config.center.name}",
        subtitle=f"{args.minutes:g} simulated minutes at x{args.speed:g}, seed {args.seed}",
        interval_labels=short,
        offered=offered,
        answered=answered,
        abandoned=abandoned,
        service_level=sl,
        queue_service_levels=by_queue,
        queue_targets={q: targets[q] for q in by_queue},
        wait_times=waits,
        agent_state_times=ticks,
        agent_states=series,
        tables=[
            Table(f"Queues, the whole run ({when}, {config.center.timezone})", columns, day_rows),
            Table(
                "Staffing advice (Erlang C)",
                ["queue", "interval", "calls", "AHT s", "agents", "SL", "ASA s"],
                advice,
            ),
            *disposition_tables(dispositions or []),
        ],
        notes=[
            "Service level: answered within the queue's target over offered (abandons count); "
            "each queue is drawn against its own target.",
            f"Times are the center's local time ({config.center.timezone}).",
            "The wait histogram counts inbound callers in queue only (the dialer's calls never wait).",
        ],
    )
    out = private_dir(run_dir / "reports")  # call data: 0700, the report 0600
    stamp = dt.datetime.fromtimestamp(t0, dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = out / f"demo-{stamp}.html"
    tmp = path.with_suffix(".tmp")
    write_private(tmp, render_report(data).encode("utf-8"))
    tmp.replace(path)
    return path


def cmd_demo(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not 0 < args.minutes <= 24 * 60:
        raise ConfigError(f"must be in (0, 1440] simulated minutes, got {args.minutes:g}", key="--minutes")
    if not 0 < args.speed <= 1000:
        raise ConfigError(f"must be in (0, 1000], got {args.speed:g}", key="--speed")
    args.directory = args.config
    args.run_dir = str(Path(args.run_dir).absolute())
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    prompts = args.prompts or Path("ivr_prompts")
    args.sounds_dirs = (prompts,) if prompts.is_dir() else ()
    config = load_or_report(args)
    if config is None:
        return 2
    print(f"demo: {args.directory} is valid ({summary(config)})", flush=True)
    with database(Path(args.run_dir), echo=True) as dsn:
        return asyncio.run(_demo(args, config, dsn))
