"""Composition root: ``callcenter recordings purge`` deletes recordings past their retention.

The directory and retention come from ops' YAML (``--config dialplans``, ``recording:``) unless
given (``--directory``, ``--retention-days``); where the YAML's directory does not exist and
``RUN_DIR/recordings`` does (where ``callcenter demo`` records), that one. A directory that does not
exist is an error that names it. Recordings the call log lists are deleted and marked
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
from callcenter.errors import ConfigError
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
    if days is not None and days < 0:
        raise ConfigError(f"must be >= 0, got {days}", key="--retention-days")
    if directory is not None:
        if not Path(directory).is_dir():
            raise ConfigError(f"no recordings directory {directory}", key="--directory")
        if days is not None:
            return Path(directory), int(days)
    rec = load_config(args.config).recording
    days = rec.retention_days if days is None else days
    if directory is not None:
        return Path(directory), int(days)
    configured = Path(rec.directory)
    demo = Path(args.run_dir) / "recordings"
    if configured.is_dir():
        if demo.is_dir():
            print(f"recordings purge: {configured} (the demo's, in {demo}: --directory {demo})")
        return configured, int(days)
    if demo.is_dir():
        print(
            f"recordings purge: {demo} (where the demo records; {configured}, from {args.config}, is absent)"
        )
        return demo, int(days)
    raise ConfigError(
        f"no recordings directory {configured} (recording.directory in {args.config}) nor {demo} "
        "(the demo's); give --directory",
        key="recordings",
    )


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
