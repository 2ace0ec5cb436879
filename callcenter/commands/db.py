"""Composition root: ``callcenter db migrate|status|serve``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
from pathlib import Path

import asyncpg

from callcenter.store.database import database
from callcenter.store.migrate import applied_versions, load_migrations, migrate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="the call-log database: migrate, status, serve")
    dsub = p.add_subparsers(dest="db_command", required=True)
    m = dsub.add_parser("migrate", help="apply pending migrations (idempotent)")
    m.set_defaults(func=cmd_migrate)
    s = dsub.add_parser("status", help="list applied and pending migrations")
    s.set_defaults(func=cmd_status)
    v = dsub.add_parser("serve", help="run the private PostgreSQL in the foreground until Ctrl-C")
    v.set_defaults(func=cmd_serve)


async def migrate_dsn(dsn: str) -> None:
    """Apply the pending migrations to the database at ``dsn`` (what ``run`` and ``demo`` do first)."""
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        before = await applied_versions(conn)
        done = await migrate(conn)
        total = len(load_migrations())
    finally:
        await conn.close()
    if done:
        for mig in done:
            print(f"migrate: applied {mig.filename}")
    print(
        f"migrate: schema at version {total:04d} ({len(before)} were applied before, "
        f"{len(done)} applied now, {total} in all)"
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    with database(Path(args.run_dir), echo=True) as dsn:
        asyncio.run(_migrate(dsn))
    return 0


async def _status(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        applied = set(await applied_versions(conn))
    finally:
        await conn.close()
    for mig in load_migrations():
        state = "applied" if mig.version in applied else "pending"
        print(f"{mig.filename}: {state}")


def cmd_status(args: argparse.Namespace) -> int:
    with database(Path(args.run_dir), echo=False) as dsn:
        asyncio.run(_status(dsn))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if os.environ.get("DATABASE_URL"):
        print("db serve: DATABASE_URL is set; there is no private cluster to serve")
        return 2
    with database(Path(args.run_dir), echo=True) as dsn:
        asyncio.run(_migrate(dsn))
        print(f"ready: {dsn}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
    return 0
