"""Composition root: ``callcenter validate [DIR]``: check ops' YAML, report every problem located.

Exit status 0 when clean, 2 when there is any problem (each printed as ``file:line: key: what``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callcenter.config.load import MISSING, load
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check dialplans/ YAML: every problem with file, line and key")
    add_config_args(p)
    p.set_defaults(func=cmd_validate)


def load_or_report(args: argparse.Namespace) -> Config | None:
    """Load the configuration; print every problem to stderr and return None if there are any."""
    try:
        loaded = load(args.directory, prompts_dir=args.prompts if args.prompts is not None else MISSING)
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


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    print(f"{args.directory}: OK ({summary(config)})")
    return 0
