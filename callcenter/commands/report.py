"""Composition root: ``callcenter report``, the call center's numbers from the call log.

    callcenter report [--by queue|agent|disposition] [--format table|csv|json] [--from WHEN] [--to WHEN]
                      [--queue Q ...] [--agent A ...] [--interval 15|30|60|day] [--tz ZONE]
                      [--sl-target SECONDS] [--queue-target QUEUE=SECONDS ...]
                      [--sl-variant offered|answered|no_short|abandon_ok]
                      [--short-abandon SECONDS] [--fcr-days N]

``WHEN`` is an ISO date or date-time; without a zone it is read in ``--tz`` (default UTC). The
default window is today, local midnight to now. KPI definitions: ``callcenter.reporting.kpi``.
``--by disposition``: calls per wrap-up code, per queue, campaign and agent, of the dispositions
given in the window (``none``: the wrap-up ended without one), with each code's share of its group.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from rich.console import Console
from rich.table import Table

from callcenter.errors import ConfigError
from callcenter.reporting.dispositions import shares
from callcenter.reporting.kpi import KpiSettings, SLVariant
from callcenter.store.database import database
from callcenter.store.dispositions import disposition_counts
from callcenter.store.migrate import migrate
from callcenter.store.reports import INTERVALS, ReportQuery, agent_report, queue_report

RATIOS = ("service_level", "abandon_rate", "occupancy", "fcr", "share")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="queue and agent KPIs per interval from the call log")
    p.add_argument(
        "--by",
        choices=("queue", "agent", "disposition"),
        default="queue",
        help="rows per queue, per agent, or per wrap-up code (queue, campaign and agent)",
    )
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--from", dest="start", help="start (ISO date or date-time; default: today 00:00)")
    p.add_argument("--to", dest="end", help="end, exclusive (default: now)")
    p.add_argument("--queue", action="append", dest="queues", help="only this queue (repeatable)")
    p.add_argument("--agent", action="append", dest="agents", help="only this agent (repeatable)")
    p.add_argument("--interval", choices=tuple(INTERVALS), default="60", help="minutes, or day")
    p.add_argument("--tz", default="UTC", help="the center's time zone (IANA name), default UTC")
    p.add_argument("--sl-target", type=float, default=20.0, help="service-level target, seconds (20)")
    p.add_argument(
        "--queue-target", action="append", default=[], metavar="QUEUE=SECONDS", help="a queue's own target"
    )
    p.add_argument("--sl-variant", choices=[v.value for v in SLVariant], default=SLVariant.OFFERED.value)
    p.add_argument(
        "--short-abandon", type=float, default=5.0, help="abandons under this many seconds are short"
    )
    p.add_argument("--fcr-days", type=int, default=7, help="first-contact resolution window, days (7)")
    p.set_defaults(func=cmd_report)


def parse_when(text: str, tz: ZoneInfo, *, key: str) -> dt.datetime:
    try:
        if len(text) == 10:
            value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
        else:
            value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO date or date-time", key=key) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}", key="--tz") from None


def build_query(args: argparse.Namespace, *, now: dt.datetime) -> ReportQuery:
    tz = zone(args.tz)
    local_now = now.astimezone(tz)
    start = (
        parse_when(args.start, tz, key="--from")
        if args.start
        else local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    end = parse_when(args.end, tz, key="--to") if args.end else now
    if end <= start:
        raise ConfigError("the end of the report must come after its start", key="--to")
    targets: dict[str, float] = {}
    for item in args.queue_target:
        name, sep, secs = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            targets[name] = float(secs)
        except ValueError:
            raise ConfigError(f"{item!r} is not QUEUE=SECONDS", key="--queue-target") from None
    if args.fcr_days < 0 or args.short_abandon < 0 or args.sl_target < 0:
        raise ConfigError("targets, thresholds and windows must be >= 0")
    settings = KpiSettings(
        sl_target_seconds=args.sl_target,
        queue_targets=targets,
        sl_variant=SLVariant(args.sl_variant),
        short_abandon_seconds=args.short_abandon,
        fcr_days=args.fcr_days,
    )
    return ReportQuery(
        start=start,
        end=end,
        interval=args.interval,
        queues=args.queues,
        agents=args.agents,
        tz=args.tz,
        settings=settings,
    )


async def fetch_report(dsn: str, q: ReportQuery, *, by: str, now: dt.datetime) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await migrate(conn)
        if by == "disposition":
            async with asyncio.timeout(600):
                counts = await disposition_counts(conn, q.start, q.end, queues=q.queues, agents=q.agents)
            return shares(counts)
        fn = agent_report if by == "agent" else queue_report
        async with asyncio.timeout(600):
            return await fn(conn, q, now=now)
    finally:
        await conn.close()


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in RATIOS and isinstance(value, float):
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def write(rows: list[dict[str, Any]], fmt: str, *, title: str, out: Any = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(rows, indent=2) + "\n")
        return
    if fmt == "csv":
        if rows:
            w = csv.DictWriter(out, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return
    if not rows:
        out.write(f"{title}: no calls in this window\n")
        return
    table = Table(title=title)
    columns = list(rows[0]) if rows else ["interval"]
    for col in columns:
        table.add_column(
            col.replace("_seconds", "_s"),
            justify="left"
            if col in ("interval", "queue", "agent", "dimension", "name", "code", "label")
            else "right",
        )
    for r in rows:
        table.add_row(*[_cell(c, r[c]) for c in columns])
    Console(file=out, width=max(120, 12 * len(columns))).print(table)


def cmd_report(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.UTC)
    q = build_query(args, now=now)
    with database(Path(args.run_dir), echo=False) as dsn:
        rows = asyncio.run(fetch_report(dsn, q, by=args.by, now=now))
    every = "" if args.by == "disposition" else f" every {args.interval}"
    title = f"{args.by} report {q.start.isoformat()} .. {q.end.isoformat()}{every}"
    write(rows, args.format, title=title)
    return 0
