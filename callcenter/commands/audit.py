"""Composition root: ``callcenter audit [--since 2026-01-31T08:00] [--format table|json]``: the
mutating HTTP requests, refused or done (who, from where, what, on what, result, when)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import asyncpg

from callcenter.errors import CallcenterError
from callcenter.store import audit
from callcenter.store.database import database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="the audit log of mutating HTTP requests")
    p.add_argument("--since", help="ISO date or time (UTC unless it carries an offset)")
    p.add_argument("--limit", type=int, default=1000, help="at most this many, the newest")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_audit)


def parse_since(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CallcenterError(f"--since {text!r} is not an ISO date or time", code="bad_since") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


async def _entries(dsn: str, since: dt.datetime | None, limit: int) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        return await audit.entries(conn, since=since, limit=limit)
    finally:
        await conn.close(timeout=10)


def cmd_audit(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    with database(Path(args.run_dir), echo=False) as dsn:
        rows = asyncio.run(_entries(dsn, since, args.limit))
    if args.format == "json":
        print(json.dumps(rows, default=str, indent=2))
        return 0
    head = f"{'at (UTC)':<20} {'who':<14} {'client':<15} {'action':<17} {'status':<6} {'code':<18}"
    print(head + " target / path")
    for r in rows:
        at = r["at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        where = r["target"] or f"{r['method']} {r['path']}"
        print(
            f"{at:<20} {r['who']:<14} {r['client']:<15} {r['action'] or '-':<17} {r['status']:<6} "
            f"{r['code']:<18} {where}"
        )
    return 0
