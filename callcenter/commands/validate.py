"""Composition root: ``callcenter validate [DIR]``: check ops' YAML, report every problem located;
``callcenter pin-hash``: the ``pin_hash`` to store for a PIN read from stdin.

Exit status 0 when clean, 2 when there is any problem (each printed as ``file:line: key: what``).
``validate`` also refuses placeholder and weak secrets and PINs in plain text
(``callcenter.config.secrets``) unless ``--allow-demo-secrets`` (the example center's demo values).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from callcenter.config import secrets
from callcenter.config.load import MISSING, Loaded, load
from callcenter.config.model import Config
from callcenter.errors import ConfigError, ValidationError


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", default="dialplans", type=Path, help="the YAML (dialplans)")
    p.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="the prompts directory (default: ivr_prompts beside DIR)",
    )


def add_demo_secrets_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-demo-secrets",
        action="store_true",
        help="accept placeholder and weak secrets and PINs in plain text (the demo's example center)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check dialplans/ YAML: every problem with file, line and key")
    add_config_args(p)
    add_demo_secrets_arg(p)
    p.set_defaults(func=cmd_validate)
    h = sub.add_parser("pin-hash", help="print the pin_hash to store for a PIN read from stdin")
    h.set_defaults(func=cmd_pin_hash)


def load_or_report(args: argparse.Namespace, *, check_secrets: bool = False) -> Config | None:
    """Load the configuration; print every problem to stderr and return None if there are any.
    ``check_secrets``: weak secrets are problems too."""
    try:
        loaded = load(args.directory, prompts_dir=args.prompts if args.prompts is not None else MISSING)
        if check_secrets:
            secret_problems(loaded)
    except ValidationError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.directory}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return None
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    return loaded.config


def summary(c: Config) -> str:
    nodes = sum(len(f.nodes) for f in c.flows.values())
    return (
        f"{len(c.numbers)} numbers, {len(c.flows)} flows ({nodes} nodes), {len(c.queues)} queues, "
        f"{len(c.skills)} skills, {len(c.agents)} agents, {len(c.supervisors)} supervisors, "
        f"{len(c.campaigns)} campaigns, {len(c.prompts.prompts)} prompts"
    )


def secret_problems(loaded: Loaded) -> None:
    """Raise ``ValidationError`` listing every refused secret, located by file, line and key."""
    errors: list[ConfigError] = []
    for message, path in secrets.problems(loaded.config):
        where = loaded.locations.find(path)
        key = ".".join(path)
        errors.append(
            ConfigError(
                message, file=where.file if where else None, line=where.line if where else None, key=key
            )
        )
    if errors:
        errors.sort(key=lambda e: (e.file or "", e.line or 0))
        raise ValidationError(errors)


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_or_report(args, check_secrets=not args.allow_demo_secrets)
    if config is None:
        return 2
    print(f"{args.directory}: OK ({summary(config)})")
    return 0


def cmd_pin_hash(args: argparse.Namespace) -> int:
    pin = sys.stdin.readline().strip()
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        print("pin-hash: expected a PIN of 4 to 12 digits on stdin", file=sys.stderr)
        return 2
    weak = secrets.pin_weakness(pin)
    if weak is not None:
        print(f"pin-hash: weak PIN ({weak}): choose another", file=sys.stderr)
        return 2
    print(secrets.hash_pin(pin, os.urandom(16)))
    return 0
