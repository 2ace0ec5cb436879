"""Composition root: ``callcenter report``, the call center's numbers from the call log.

    callcenter report [--by queue|agent|disposition] [--format table|csv|json] [--from WHEN] [--to WHEN]
                      [--queue Q ...] [--agent A ...] [--interval 15|30|60|day] [--tz ZONE]
                      [--config DIR] [--sl-target SECONDS] [--queue-target QUEUE=SECONDS ...]
                      [--sl-variant offered|answered|no_short|abandon_ok]
                      [--short-abandon SECONDS] [--fcr-days N] [--wide]

The center's YAML (``--config``, default ``dialplans``) gives the time zone (``--tz`` overrides)
and each queue's own service-level target (``--queue-target`` overrides one, ``--sl-target`` is
for queues it does not know), so the numbers are the demo's and the wallboard's. ``WHEN`` is an ISO
date or date-time; without a zone it is read in that time zone. The default window is today, local
midnight to now; when today has no calls, the latest day with calls. ``--to`` defaults to now, or
to the end of ``--from``'s day when that is later. The table fits the terminal (its main columns;
``--wide``: every KPI); CSV and JSON carry every KPI. KPI definitions: ``callcenter.reporting.kpi``.
``--by disposition``: calls per wrap-up code, per queue, campaign and agent, of the dispositions
given in the window (``none``: the wrap-up ended without one), with each code's share of its group.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import datetime as dt
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from rich import box
from rich.console import Console
from rich.table import Table

from callcenter.config.load import load
from callcenter.config.model import Config
from callcenter.errors import ConfigError, ValidationError
from callcenter.reporting.dispositions import shares
from callcenter.reporting.kpi import KpiSettings, SLVariant
from callcenter.store.database import database
from callcenter.store.dispositions import disposition_counts
from callcenter.store.migrate import migrate
from callcenter.store.reports import (
    INTERVALS,
    ReportQuery,
    agent_report,
    days_with_calls,
    logged_queues,
    queue_report,
)

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
    p.add_argument("--tz", default=None, help="time zone of the intervals (IANA name; default: the center's)")
    p.add_argument(
        "--config", type=Path, default=None, help="the center's YAML: time zone, queues, targets (dialplans)"
    )
    p.add_argument(
        "--sl-target",
        type=float,
        default=20.0,
        help="service-level target, seconds, for queues the YAML does not name (20)",
    )
    p.add_argument(
        "--queue-target", action="append", default=[], metavar="QUEUE=SECONDS", help="a queue's own target"
    )
    p.add_argument("--sl-variant", choices=[v.value for v in SLVariant], default=SLVariant.OFFERED.value)
    p.add_argument(
        "--short-abandon", type=float, default=5.0, help="abandons under this many seconds are short"
    )
    p.add_argument("--fcr-days", type=int, default=7, help="first-contact resolution window, days (7)")
    p.add_argument("--wide", action="store_true", help="table: every KPI, not only the main ones")
    p.set_defaults(func=cmd_report)


# The table's default columns (the main KPIs, fitting 80 columns); --wide, CSV and JSON: all.
MAIN_COLUMNS = {
    "queue": ("interval", "queue", "offered", "answered", "abandoned", "service_level", "asa_seconds",
              "aht_seconds", "occupancy"),
    "agent": ("interval", "agent", "offers", "answered", "ronas", "aht_seconds", "busy_seconds",
              "idle_seconds", "occupancy"),
}  # fmt: skip
HEADERS = {
    "service_level": "SL",
    "asa_seconds": "ASA s",
    "aht_seconds": "AHT s",
    "occupancy": "occup.",
    "abandoned": "aband.",
    "busy_seconds": "busy",
    "idle_seconds": "idle",
    "answered": "answ.",
}


def center_config(args: argparse.Namespace) -> Config | None:
    """The center's configuration from ``--config`` (``dialplans`` when present), or None."""
    directory = args.config
    if directory is None:
        directory = Path("dialplans")
        if not directory.is_dir():
            return None
    try:
        return load(directory, prompts_dir=None).config
    except ValidationError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise ConfigError(
            f"{directory}: {len(exc.problems)} problem(s); fix them or give another --config", key="--config"
        ) from None


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


def build_query(args: argparse.Namespace, *, now: dt.datetime, config: Config | None = None) -> ReportQuery:
    tz_name = args.tz or (config.center.timezone if config is not None else "UTC")
    tz = zone(tz_name)
    local_now = now.astimezone(tz)
    start = (
        parse_when(args.start, tz, key="--from")
        if args.start
        else local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    if args.end:
        end = parse_when(args.end, tz, key="--to")
    else:
        day_end = dt.datetime.combine(start.astimezone(tz).date() + dt.timedelta(days=1), dt.time(), tz)
        end = now if now > start else day_end
    if end <= start:
        raise ConfigError("the end of the report must come after its start", key="--to")
    targets: dict[str, float] = {}
    if config is not None:
        targets.update({qid: q.sl_seconds for qid, q in config.queues.items()})
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
        tz=tz_name,
        settings=settings,
    )


async def fetch_report(
    dsn: str, q: ReportQuery, *, by: str, now: dt.datetime, known_queues: set[str] | None = None, latest: bool
) -> tuple[ReportQuery, list[dict[str, Any]], list[tuple[dt.date, int]]]:
    """The rows of ``q``; the query they answer (``latest``: when ``q`` has no calls, the latest
    day with calls instead); the latest days with calls when that window has none.

    ``known_queues``: the center's queues; a ``--queue`` neither there nor in the log is an error."""
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await migrate(conn)
        if q.queues:
            known = (known_queues or set()) | await logged_queues(conn)
            unknown = [name for name in q.queues if name not in known]
            if unknown:
                raise ConfigError(
                    f"unknown queue {', '.join(repr(n) for n in unknown)}; the queues are: "
                    f"{', '.join(sorted(known)) or 'none yet'}",
                    key="--queue",
                )
        if by == "disposition":
            async with asyncio.timeout(600):
                counts = await disposition_counts(conn, q.start, q.end, queues=q.queues, agents=q.agents)
            return q, shares(counts), []
        fn = agent_report if by == "agent" else queue_report
        async with asyncio.timeout(600):
            rows = await fn(conn, q, now=now)
            days: list[tuple[dt.date, int]] = []
            if not rows:
                days = await days_with_calls(conn, tz=q.tz)
                if latest and days:
                    tz = ZoneInfo(q.tz)
                    start = dt.datetime.combine(days[0][0], dt.time(), tz)
                    end = dt.datetime.combine(days[0][0] + dt.timedelta(days=1), dt.time(), tz)
                    q = dataclasses.replace(q, start=start, end=end)
                    rows = await fn(conn, q, now=now)
        return q, rows, days
    finally:
        await conn.close()


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in RATIOS and isinstance(value, float):
        return f"{value * 100:.1f}%"
    if key in ("busy_seconds", "idle_seconds") and isinstance(value, float):
        secs = round(value)
        return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _interval_labels(rows: list[dict[str, Any]]) -> tuple[list[str], str]:
    """Short interval labels (local time) and what the title should add (the day, when one)."""
    stamps = [dt.datetime.fromisoformat(str(r["interval"])) for r in rows]
    days = {t.date() for t in stamps}
    if all(t.time() == dt.time() for t in stamps):
        return [t.date().isoformat() for t in stamps], ""
    if len(days) == 1:
        day = next(iter(days))
        return [t.strftime("%H:%M") for t in stamps], f" {day.isoformat()}"
    return [t.strftime("%m-%d %H:%M") for t in stamps], ""


def write(
    rows: list[dict[str, Any]],
    fmt: str,
    *,
    title: str,
    out: Any = None,
    columns: tuple[str, ...] | None = None,
    width: int | None = None,
) -> None:
    """Print ``rows`` as a table (``columns``: which ones, default all; ``width``: the terminal's),
    CSV or JSON (always every column)."""
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
    cols = [c for c in (columns or tuple(rows[0])) if c in rows[0]]
    labels: list[str] | None = None
    if "interval" in cols:
        labels, day = _interval_labels(rows)
        if day.strip() not in title:
            title += day
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for col in cols:
        table.add_column(
            HEADERS.get(col, col.replace("_seconds", "_s")) if columns else col.replace("_seconds", "_s"),
            justify="left"
            if col in ("interval", "queue", "agent", "dimension", "name", "code", "label")
            else "right",
        )
    for i, r in enumerate(rows):
        cells = [labels[i] if c == "interval" and labels else _cell(c, r[c]) for c in cols]
        table.add_row(*cells)
    # --wide (every column): as wide as the table needs; otherwise the terminal's width.
    limit = width or (terminal_width() if columns else 1000)
    Console(file=out, width=limit, highlight=False).print(table)


def terminal_width() -> int:
    """The terminal's width (``COLUMNS`` when set), 80 when there is no terminal."""
    return shutil.get_terminal_size((80, 24)).columns


def _span(q: ReportQuery) -> str:
    """The window in local time, short: one day as its date."""
    tz = ZoneInfo(q.tz)
    a, b = q.start.astimezone(tz), q.end.astimezone(tz)
    if a.time() == dt.time() and b.time() == dt.time() and b.date() == a.date() + dt.timedelta(days=1):
        return a.date().isoformat()
    if a.date() == b.date():
        return f"{a:%Y-%m-%d %H:%M}-{b:%H:%M}"
    return f"{a:%Y-%m-%d %H:%M} .. {b:%Y-%m-%d %H:%M}"


def _days_line(days: list[tuple[dt.date, int]]) -> str:
    return ", ".join(f"{d.isoformat()} ({n} call{'' if n == 1 else 's'})" for d, n in days)


def cmd_report(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.UTC)
    config = center_config(args)
    q = build_query(args, now=now, config=config)
    known = set(config.queues) if config is not None else None
    default_window = not args.start and not args.end
    with database(Path(args.run_dir), echo=False) as dsn:
        shown, rows, days = asyncio.run(
            fetch_report(
                dsn,
                q,
                by=args.by,
                now=now,
                known_queues=known,
                latest=default_window and args.by != "disposition",
            )
        )
    note = sys.stdout if args.format == "table" else sys.stderr
    width = terminal_width()
    if shown is not q:
        day = shown.start.date().isoformat()
        if shown.start.date() == q.start.date():  # today's calls are all later than now (simulated)
            said = f"report: no calls from midnight to now ({q.tz}); showing the whole of {day}. "
        else:
            said = (
                f"report: no calls today ({q.start.date().isoformat()}, {q.tz}); showing {day}, "
                "the latest day with calls. "
            )
        said += f"Days with calls: {_days_line(days)}"
        print(textwrap.fill(said, width=width, subsequent_indent="  "), file=note)
    elif not rows:
        when = f"{_span(q)} {q.tz}"
        if days:
            said = f"report: no calls in {when}; days with calls: {_days_line(days)}"
        else:
            said = f"report: no calls in {when}; the call log has no queue calls yet"
        print(textwrap.fill(said, width=width, subsequent_indent="  "), file=note)
        if args.format != "table":
            write(rows, args.format, title="")
        return 0
    every = {"day": "per day", "60": "per hour"}.get(args.interval, f"per {args.interval} min")
    if args.by == "disposition":
        title = f"disposition report, {_span(shown)} {shown.tz}"
        write(rows, args.format, title=title)
        return 0
    title = f"{args.by} report, {_span(shown)} {shown.tz}, {every}"
    write(rows, args.format, title=title, columns=None if args.wide else MAIN_COLUMNS[args.by])
    return 0
