"""Composition root: ``callcenter campaign import|pause|resume|stop|status|dnc``.

``import FILE.csv --campaign ID`` normalises the numbers (E.164), reports every bad row with its
line, leaves out numbers on the do-not-call lists, and stores the contacts; ``--config DIR`` takes
the campaign's zone, region and DNC file from ops' YAML, and reports the numbers its dial-out
policy refuses (premium rate, ...) as bad rows instead of storing them. ``pause``/``resume``/``stop``
change the campaign's state in the database; a running controller picks it up within seconds, and no attempt
is recorded (hence dialled) for a campaign that is not running. ``status`` shows contacts by status,
attempts by outcome and the abandonment rate over the campaign's rolling window. ``dnc FILE``
adds numbers to the center-wide do-not-call list (or ``--campaign ID``'s own); every dial checks
both lists in the same transaction that records the attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from callcenter.config.load import load_config
from callcenter.config.model import Config
from callcenter.errors import CampaignError
from callcenter.outbound.contacts import parse_dnc
from callcenter.outbound.dialer import CampaignState
from callcenter.outbound.service import import_file, read_text
from callcenter.store.campaigns import CampaignStore
from callcenter.store.database import database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("campaign", help="outbound campaigns: import contacts, pause, resume, stop, status")
    csub = p.add_subparsers(dest="campaign_command", required=True)
    imp = csub.add_parser("import", help="import a contact CSV (bad rows are reported by line)")
    imp.add_argument("file", type=Path, help="the CSV: a header row with a phone column")
    imp.add_argument("--campaign", required=True, help="campaign id (as in dialplans/campaigns.yaml)")
    imp.add_argument("--config", type=Path, help="the dialplans directory: campaign zone, DNC file, region")
    imp.add_argument("--region", help="region for numbers without a country code (e.g. US)")
    imp.add_argument("--timezone", help="zone for numbers whose zone cannot be told")
    imp.add_argument("--dnc", type=Path, help="a do-not-call file for this campaign")
    imp.set_defaults(func=cmd_import)
    for name, help_text in (
        ("pause", "stop placing new calls; calls in progress finish"),
        ("resume", "place calls again"),
        ("stop", "end the campaign for good"),
    ):
        c = csub.add_parser(name, help=help_text)
        c.add_argument("campaign")
        c.set_defaults(func=cmd_state, state=name)
    dnc = csub.add_parser("dnc", help="add numbers to a do-not-call list (the center's, or a campaign's)")
    dnc.add_argument("file", type=Path, help="one number a line (E.164 or national), # comments")
    dnc.add_argument("--campaign", default="", help="a campaign's own list (default: the center-wide list)")
    dnc.add_argument("--region", default="US", help="region for numbers without a country code")
    dnc.set_defaults(func=cmd_dnc)
    st = csub.add_parser("status", help="contacts, attempts and abandonment of a campaign")
    st.add_argument("campaign")
    st.add_argument("--format", choices=("table", "json"), default="table")
    st.set_defaults(func=cmd_status)


_STATES = {"pause": CampaignState.PAUSED, "resume": CampaignState.RUNNING, "stop": CampaignState.STOPPED}


def _from_config(directory: Path, campaign_id: str) -> tuple[Config, str | None, Path | None]:
    config = load_config(directory)
    camp = config.campaigns.get(campaign_id)
    if camp is None:
        raise CampaignError(
            f"no campaign {campaign_id!r} in {directory}", campaign=campaign_id, code="no_campaign"
        )
    dnc = (directory / camp.dnc) if camp.dnc else None
    return config, camp.timezone, dnc


async def _import(dsn: str, args: argparse.Namespace) -> int:
    region, zone, dnc, config = None, None, None, None
    if args.config is not None:
        config, zone, dnc = _from_config(args.config, args.campaign)
        region = config.center.country
    region = args.region or region or "US"
    zone = args.timezone or zone or "UTC"
    dnc = args.dnc or dnc
    store = await CampaignStore.connect(dsn)
    try:
        result, added = await import_file(
            store,
            args.campaign,
            args.file,
            default_region=region,
            default_zone=zone,
            dnc_path=dnc,
            config=config,
        )
    finally:
        await store.close()
    for problem in result.problems:
        print(f"{args.file}:{problem}", file=sys.stderr)
    print(
        f"import: {len(result.contacts)} good rows, {added} new contacts in {args.campaign}, "
        f"{len(result.problems)} bad rows, {len(result.on_dnc)} on the do-not-call list"
    )
    return 1 if result.problems and not result.contacts else 0


def cmd_import(args: argparse.Namespace) -> int:
    with database(Path(args.run_dir), echo=False) as dsn:
        return asyncio.run(_import(dsn, args))


async def _dnc(dsn: str, args: argparse.Namespace) -> int:
    numbers, problems = parse_dnc(read_text(args.file), default_region=args.region)
    store = await CampaignStore.connect(dsn)
    try:
        await store.add_dnc(numbers.numbers, campaign_id=args.campaign, source=str(args.file))
    finally:
        await store.close()
    for problem in problems:
        print(f"{args.file}:{problem}", file=sys.stderr)
    where = f"campaign {args.campaign}" if args.campaign else "the center"
    print(f"dnc: {len(numbers)} numbers on {where}'s do-not-call list, {len(problems)} bad lines")
    return 0


def cmd_dnc(args: argparse.Namespace) -> int:
    with database(Path(args.run_dir), echo=False) as dsn:
        return asyncio.run(_dnc(dsn, args))


async def _state(dsn: str, campaign_id: str, state: CampaignState) -> CampaignState:
    store = await CampaignStore.connect(dsn)
    try:
        return await store.set_state(campaign_id, state)
    finally:
        await store.close()


def cmd_state(args: argparse.Namespace) -> int:
    with database(Path(args.run_dir), echo=False) as dsn:
        now = asyncio.run(_state(dsn, args.campaign, _STATES[args.state]))
    print(f"campaign {args.campaign}: {now.value}")
    return 0


async def _status(dsn: str, campaign_id: str) -> dict[str, Any]:
    store = await CampaignStore.connect(dsn)
    try:
        return await store.status(campaign_id, now=time.time())
    finally:
        await store.close()


def cmd_status(args: argparse.Namespace) -> int:
    with database(Path(args.run_dir), echo=False) as dsn:
        status = asyncio.run(_status(dsn, args.campaign))
    if args.format == "json":
        print(json.dumps(status, sort_keys=True))
        return 0
    print(f"campaign {status['campaign']} ({status['name']}): {status['state']}, {status['mode']}")
    contacts = ", ".join(f"{k} {v}" for k, v in sorted(status["contacts"].items())) or "none"
    attempts = ", ".join(f"{k} {v}" for k, v in sorted(status["attempts"].items())) or "none"
    print(f"  contacts: {contacts}")
    print(f"  attempts: {attempts}")
    print(
        f"  abandoned {status['abandoned']} of {status['live_answered']} live-answered "
        f"({status['abandonment_rate']:.2%}) over {status['abandon_window_days']:g} days"
    )
    return 0
