"""Composition root: ``callcenter customers import FILE.csv``: the customer directory the IVR's
lookup node and the agent's screen-pop read (PostgreSQL: ``DATABASE_URL`` or the private cluster).

The numbers are normalised to E.164 (``--region``, else the ``--config`` center's country, else
US); every bad row is reported with its line and column, the good ones are stored (a number
already in the directory is replaced). Exit 0 when anything was stored or the file had nothing
wrong, 1 when every row was bad, 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg

from callcenter.config.load import load_config
from callcenter.inbound.customers import parse_customers
from callcenter.store.customers import Customer, upsert_customers
from callcenter.store.database import database
from callcenter.store.migrate import migrate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("customers", help="the customer directory: import a CSV (bad rows reported by line)")
    csub = p.add_subparsers(dest="customers_command", required=True)
    imp = csub.add_parser("import", help="import customers from a CSV with a phone column")
    imp.add_argument("file", type=Path, help="the CSV: phone, name, tier, account, any other columns")
    imp.add_argument("--region", help="region for numbers without a country code (e.g. US)")
    imp.add_argument("--config", type=Path, help="the dialplans directory (its center's country)")
    imp.set_defaults(func=cmd_import)


async def _store(dsn: str, customers: list[Customer]) -> int:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await migrate(conn)
        async with conn.transaction():
            return await upsert_customers(conn, customers)
    finally:
        await conn.close(timeout=10)


def cmd_import(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"customers: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    region = args.region or (load_config(args.config).center.country if args.config else None) or "US"
    result = parse_customers(text, default_region=region)
    for problem in result.problems:
        print(f"{args.file}:{problem}", file=sys.stderr)
    rows: list[Any] = [Customer(c.phone, c.name, c.tier, c.account, dict(c.data)) for c in result.customers]
    stored = 0
    if rows:
        with database(Path(args.run_dir), echo=False) as dsn:
            stored = asyncio.run(_store(dsn, rows))
    print(f"customers: {stored} stored, {len(result.problems)} bad rows")
    return 1 if result.problems and not stored else 0
