"""Composition root: ``callcenter recordings purge`` deletes recordings past their retention.

The directory and retention come from ops' YAML (``--config dialplans``, ``recording:``) unless
given (``--directory``, ``--retention-days``). Recordings the call log lists are deleted and marked
``deleted_at``; files in date folders older than the cutoff that follow the recording naming are
deleted too. ``--dry-run`` only lists. The database is ``$DATABASE_URL`` or the private cluster
under ``--run-dir``; ``--no-db`` sweeps the files alone.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from callcenter.acd.recorder import PurgeReport, purge
from callcenter.config.load import load_config
from callcenter.store.database import database
from callcenter.store.recordings import PgPurgeStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("recordings", help="call recordings: purge those past their retention")
    rsub = p.add_subparsers(dest="recordings_command", required=True)
    pg = rsub.add_parser("purge", help="delete recordings older than the retention period")
    pg.add_argument("--config", type=Path, default=Path("dialplans"), help="ops' YAML directory (dialplans)")
    pg.add_argument("--directory", type=Path, help="the recordings directory (default: from config)")
    pg.add_argument("--retention-days", type=int, help="keep this many days (default: from config)")
    pg.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    pg.add_argument("--no-db", action="store_true", help="do not use the call log; sweep files only")
    pg.set_defaults(func=cmd_purge)


def _settings(args: argparse.Namespace) -> tuple[Path, int]:
    directory, days = args.directory, args.retention_days
    if directory is None or days is None:
        rec = load_config(args.config).recording
        directory = directory or Path(rec.directory)
        days = rec.retention_days if days is None else days
    if days < 0:
        raise SystemExit("callcenter: error: --retention-days must be >= 0")
    return Path(directory), int(days)


def _print(report: PurgeReport, dry_run: bool) -> None:
    verb = "would delete" if dry_run else "deleted"
    for rel in report.deleted:
        print(f"{verb}: {rel}")
    for rel in report.orphans:
        print(f"{verb} (not in the call log): {rel}")
    for rel in report.missing:
        print(f"already gone: {rel}")
    for rel in report.refused:
        print(f"refused (outside the recordings directory): {rel}")
    print(
        f"recordings purge: {len(report.deleted)} listed, {len(report.orphans)} unlisted {verb}, "
        f"{len(report.missing)} missing, {len(report.refused)} refused"
    )


def cmd_purge(args: argparse.Namespace) -> int:
    directory, days = _settings(args)
    now = time.time()
    if args.no_db:
        report = asyncio.run(purge(directory, days, now, None, dry_run=args.dry_run))
    else:
        with database(Path(args.run_dir)) as dsn:
            report = asyncio.run(purge(directory, days, now, PgPurgeStore(dsn), dry_run=args.dry_run))
    _print(report, args.dry_run)
    return 0
