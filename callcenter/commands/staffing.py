"""Composition root: ``callcenter staffing``, agents needed per interval by Erlang C.

    callcenter staffing --calls 100 --interval 1800 --aht 180 --target 80/20 [--shrinkage 0.3]
                        [--max-occupancy 0.85] [--format table|json]
    callcenter staffing --forecast FILE.csv ...          (columns: start, calls[, aht])
    callcenter staffing --from-log [--date YYYY-MM-DD] [--weeks 4] [--queue Q ...] [--tz ZONE] ...

``--patience SECONDS`` switches to Erlang A (callers abandon after that mean patience); its output
adds ``probability_abandon``.

``agents`` is the number to schedule (after shrinkage); ``agents_on_phones`` the Erlang C figure
that service level, ASA, occupancy and probability of waiting describe.

The single-interval form prints one result (JSON: an object); the forecast and history forms print a
staffing table for a day (JSON: a list), one row per interval. The history form averages the offered
calls of the same interval on the same weekday over the last ``--weeks`` weeks of the call log, and
their handle time (``--aht`` when an interval has no answered call). Maths: ``callcenter.reporting.erlang``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from callcenter.commands.report import zone
from callcenter.errors import ConfigError
from callcenter.reporting.erlang import (
    Staffing,
    agents_needed,
    agents_needed_erlang_a,
    erlang_a,
    parse_target,
    scheduled,
)
from callcenter.store.database import database
from callcenter.store.migrate import migrate
from callcenter.store.reports import days_with_calls, interval_history


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("staffing", help="agents needed for a service-level target (Erlang C)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--calls", type=float, help="calls offered in the interval")
    src.add_argument(
        "--forecast", type=Path, help="CSV with columns start, calls[, aht] (one row per interval)"
    )
    src.add_argument("--from-log", action="store_true", help="forecast from the same weekday of past weeks")
    p.add_argument("--interval", type=int, default=1800, help="interval length, seconds (1800)")
    p.add_argument("--aht", type=float, default=180.0, help="average handle time, seconds (180)")
    p.add_argument("--target", default="80/20", help="service level PERCENT/SECONDS (80/20)")
    p.add_argument("--shrinkage", type=float, default=0.0, help="share of paid time off the phones (0..1)")
    p.add_argument("--max-occupancy", type=float, default=1.0, help="cap on agent occupancy (0..1]")
    p.add_argument(
        "--patience",
        type=float,
        help="mean caller patience, seconds: use Erlang A (callers abandon) instead of Erlang C",
    )
    p.add_argument("--date", help="--from-log: the day to staff (default: tomorrow)")
    p.add_argument("--weeks", type=int, default=4, help="--from-log: weeks of history (4)")
    p.add_argument("--queue", action="append", dest="queues", help="--from-log: only this queue (repeatable)")
    p.add_argument("--tz", default="UTC", help="--from-log: the center's time zone (UTC)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_staffing)


def result_dict(s: Staffing) -> dict[str, Any]:
    return {
        "agents": s.scheduled,  # to schedule: after shrinkage (= agents_on_phones without shrinkage)
        "agents_on_phones": s.agents,  # the Erlang C figure that the SL, ASA and occupancy describe
        "service_level": round(s.service_level, 4),
        "asa_seconds": round(s.asa_seconds, 2) if math.isfinite(s.asa_seconds) else None,
        "occupancy": round(s.occupancy, 4),
        "probability_wait": round(s.probability_wait, 4),
        "traffic_erlangs": round(s.traffic_erlangs, 3),
        "calls": s.calls,
        "aht_seconds": s.aht_seconds,
        "interval_seconds": s.interval_seconds,
        "target": f"{s.target_level * 100:g}/{s.target_seconds:g}",
        "shrinkage": s.shrinkage,
        "model": "erlang_c",
    }


def solve_a(args: argparse.Namespace, calls: float, aht: float) -> dict[str, Any]:
    """Erlang A: the fewest agents meeting the target when callers abandon (``--patience``)."""
    level, secs = parse_target(args.target)
    r = agents_needed_erlang_a(
        calls, args.interval, aht, args.patience, target_level=level, target_seconds=secs
    )
    while r.agents and r.occupancy > args.max_occupancy:
        r = erlang_a(r.agents + 1, calls, args.interval, aht, args.patience, secs)
    return {
        "agents": scheduled(r.agents, args.shrinkage),
        "agents_on_phones": r.agents,
        "service_level": round(r.service_level, 4),
        "asa_seconds": round(r.asa_seconds, 2),
        "occupancy": round(r.occupancy, 4),
        "probability_wait": round(r.probability_wait, 4),
        "probability_abandon": round(r.probability_abandon, 4),
        "traffic_erlangs": round(r.traffic_erlangs, 3),
        "calls": calls,
        "aht_seconds": aht,
        "interval_seconds": args.interval,
        "target": args.target,
        "shrinkage": args.shrinkage,
        "model": "erlang_a",
        "patience_seconds": args.patience,
    }


def answer(args: argparse.Namespace, calls: float, aht: float) -> dict[str, Any]:
    if args.patience is not None:
        return solve_a(args, calls, aht)
    return result_dict(solve(args, calls, aht))


def solve(args: argparse.Namespace, calls: float, aht: float) -> Staffing:
    level, secs = parse_target(args.target)
    return agents_needed(
        calls,
        args.interval,
        aht,
        target_level=level,
        target_seconds=secs,
        shrinkage=args.shrinkage,
        max_occupancy=args.max_occupancy,
    )


def read_forecast(path: Path, default_aht: float) -> list[tuple[str, float, float]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the forecast: {exc}", file=str(path)) from exc
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"start", "calls"} <= set(reader.fieldnames):
        raise ConfigError(
            "the forecast needs a header with columns start, calls[, aht]", file=str(path), line=1
        )
    rows = []
    for n, row in enumerate(reader, start=2):
        try:
            calls = float(row["calls"])
            aht = float(row["aht"]) if row.get("aht") else default_aht
            if calls < 0 or aht <= 0 or not math.isfinite(calls + aht):
                raise ValueError
        except (ValueError, TypeError):
            raise ConfigError(
                "calls must be a number >= 0 and aht a number > 0", file=str(path), line=n, key="calls/aht"
            ) from None
        rows.append((str(row["start"]), calls, aht))
    return rows


async def history(
    dsn: str, args: argparse.Namespace, day: dt.date
) -> tuple[list[tuple[str, float, float]], list[tuple[dt.date, int]]]:
    """The forecast rows from the log, and (when there are none) the latest days with calls."""
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await migrate(conn)
        async with asyncio.timeout(600):
            slots = await interval_history(
                conn,
                day=day,
                weeks=args.weeks,
                interval_seconds=args.interval,
                queues=args.queues,
                tz=args.tz,
            )
            days = [] if slots else await days_with_calls(conn, tz=args.tz, limit=1)
    finally:
        await conn.close()
    return [(s.start.strftime("%H:%M"), s.calls, s.aht_seconds or args.aht) for s in slots], days


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    cols = [
        "start",
        "calls",
        "aht_seconds",
        "traffic_erlangs",
        "agents_on_phones",
        "agents",
        "service_level",
        "asa_seconds",
        "occupancy",
        "probability_wait",
        "probability_abandon",
    ]
    cols = [c for c in cols if rows and c in rows[0]]
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="left" if c == "start" else "right")
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            if c in ("service_level", "occupancy", "probability_wait", "probability_abandon"):
                cells.append(f"{v * 100:.1f}%")
            elif isinstance(v, float):
                cells.append(f"{v:.1f}")
            else:
                cells.append("-" if v is None else str(v))
        table.add_row(*cells)
    Console(width=140).print(table)


def cmd_staffing(args: argparse.Namespace) -> int:
    try:
        parse_target(args.target)
        if not 0.0 <= args.shrinkage < 1.0:
            raise ValueError("--shrinkage must be in [0, 1)")
        if not 0.0 < args.max_occupancy <= 1.0:
            raise ValueError("--max-occupancy must be in (0, 1]")
        if args.interval <= 0 or args.aht <= 0:
            raise ValueError("--interval and --aht must be > 0")
        if args.patience is not None and not 0 < args.patience <= 86_400:
            raise ValueError("--patience must be > 0 and at most 86400 seconds")
        if args.calls is not None and not 0 <= args.calls < 1e9:
            raise ValueError(f"--calls must be >= 0, got {args.calls:g}")
    except ValueError as exc:
        raise ConfigError(str(exc), key="staffing") from None
    if args.calls is not None:
        d = answer(args, args.calls, args.aht)
        if args.format == "json":
            print(json.dumps(d, indent=2))
        else:
            print_table([d], f"staffing for {args.calls:g} calls per {args.interval} s, target {args.target}")
        return 0
    if args.forecast is not None:
        source = read_forecast(args.forecast, args.aht)
        title = f"staffing from {args.forecast}"
    elif args.from_log:
        if 86400 % args.interval:
            raise ConfigError("--interval must divide the day for --from-log", key="--interval")
        tz = zone(args.tz)
        day = (
            dt.date.fromisoformat(args.date)
            if args.date
            else (dt.datetime.now(tz) + dt.timedelta(days=1)).date()
        )
        with database(Path(args.run_dir), echo=False) as dsn:
            source, days = asyncio.run(history(dsn, args, day))
        if not source:
            first = day - dt.timedelta(weeks=args.weeks)
            said = (
                f"staffing: no history: the call log has no calls on the {day.strftime('%A')}s from "
                f"{first.isoformat()} to {(day - dt.timedelta(days=1)).isoformat()} ({args.tz}), "
                f"the {args.weeks} week(s) before {day.isoformat()}"
            )
            if days:
                latest = days[0][0]
                said += (
                    f"; the latest day with calls is {latest.isoformat()} ({latest.strftime('%A')}): "
                    f"try --date {(latest + dt.timedelta(weeks=1)).isoformat()}"
                )
            print(said, file=sys.stderr)
            return 2
        title = f"staffing for {day.isoformat()} ({day.strftime('%A')}s of the last {args.weeks} weeks)"
    else:
        raise ConfigError("give --calls, --forecast FILE or --from-log", key="staffing")
    rows = []
    for start, calls, aht in source:
        rows.append({"start": start, **answer(args, calls, aht)})
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print_table(rows, title)
    return 0
