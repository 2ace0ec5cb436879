"""Composition root: ``callcenter render [DIR] --out OUT``: validate, then write Asterisk's config.

Nothing is written unless the YAML is valid and its secrets pass ``validate``'s check
(``--allow-demo-secrets`` for the demo). Files holding secrets are written mode 0600; the
previous set is kept in ``OUT/.previous``. ``--diff`` is a dry run: what would change, no writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callcenter.commands.validate import add_config_args, add_demo_secrets_arg, load_or_report
from callcenter.config.render import DEFAULT_TEMPLATES, diff_files, render, write_files


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("render", help="validate dialplans/ and render Asterisk's configuration")
    add_config_args(p)
    add_demo_secrets_arg(p)
    p.add_argument("--out", type=Path, default=None, help="output directory (default: RUN_DIR/asterisk)")
    p.add_argument("--templates", type=Path, default=DEFAULT_TEMPLATES, help="templates (asterisk-conf)")
    p.add_argument(
        "--diff",
        action="store_true",
        help="dry run: show what would change in OUT (secrets never shown), write nothing; exit 1 if any",
    )
    p.set_defaults(func=cmd_render)


def output_dir(args: argparse.Namespace) -> Path:
    return args.out if args.out is not None else Path(args.run_dir) / "asterisk"


def cmd_render(args: argparse.Namespace) -> int:
    config = load_or_report(args, check_secrets=not args.allow_demo_secrets)
    if config is None:
        return 2
    out = output_dir(args)
    files = render(config, templates=args.templates)
    if args.diff:
        lines = diff_files(files, out)
        sys.stdout.writelines(lines)
        print(f"render: {'changes' if lines else 'no change'} against {out} (nothing written)")
        return 1 if lines else 0
    backup = write_files(files, out)
    for f in files:
        print(f"render: {out / f.name} ({len(f.text.encode())} bytes{', mode 0600' if f.secret else ''})")
    print(f"render: {len(files)} files written; the previous set is in {backup}")
    return 0
