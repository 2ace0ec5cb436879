"""Composition root: the command line, ``callcenter`` / ``python -m callcenter``.

Each subcommand lives in ``callcenter.commands.<name>`` and exposes ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from callcenter import __version__
from callcenter.errors import CallcenterError

COMMANDS = (
    "db",
    "report",
    "staffing",
    "validate",
    "render",
    "apply",
    "campaign",
    "customers",
    "sim",
    "agent",
    "users",
    "audit",
    "recordings",
    "doctor",
    "run",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callcenter",
        description="On-premises call center on Asterisk: IVR, ACD, recording, supervision, dialer.",
    )
    parser.add_argument("--version", action="version", version=f"callcenter {__version__}")
    parser.add_argument(
        "--run-dir",
        default=os.environ.get("CALLCENTER_RUN_DIR", ".run"),
        help="where private state lives: PostgreSQL cluster, rendered config, recordings (.run)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"callcenter.commands.{name}")
        module.register(sub)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops cleanly, like Ctrl-C
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted; stopped cleanly", file=sys.stderr)
        return 130
    except CallcenterError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
        return 2 if exc.code in {"config_error", "validation_error"} else 1
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
