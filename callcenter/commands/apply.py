"""Composition root: ``callcenter apply [DIR] --out /etc/asterisk``: validate, render, write, and
reload Asterisk over AMI; on any reload failure the previous files are restored and reloaded.

Asterisk is reached at ``asterisk.ami``'s address as the apply user (``asterisk.ami_apply``, write
class ``config`` only): the controller's own AMI user may not reload. Secrets are checked as by
``validate`` (``--allow-demo-secrets`` for the demo).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from callcenter.asterisk.ami_client import AMIClient
from callcenter.commands.render import output_dir
from callcenter.commands.validate import add_config_args, add_demo_secrets_arg, load_or_report
from callcenter.config.load import default_prompts_dir
from callcenter.config.model import Config
from callcenter.config.render import DEFAULT_TEMPLATES, AMIReloader, ApplyResult, apply, install_prompts
from callcenter.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apply", help="render dialplans/ into Asterisk's config dir and reload it (rollback)")
    add_config_args(p)
    add_demo_secrets_arg(p)
    p.add_argument("--out", type=Path, default=None, help="Asterisk's config dir (default: RUN_DIR/asterisk)")
    p.add_argument("--templates", type=Path, default=DEFAULT_TEMPLATES, help="templates (asterisk-conf)")
    p.add_argument(
        "--install-prompts",
        action="store_true",
        help="also copy the prompt WAVs to asterisk.sounds_dir (on the Asterisk machine)",
    )
    p.set_defaults(func=cmd_apply)


async def _apply(config: Config, args: argparse.Namespace) -> ApplyResult:
    ami = config.asterisk.ami
    user = config.asterisk.ami_apply
    if user is None:
        raise ConfigError(
            "no AMI user to reload Asterisk with: add asterisk.ami_apply (username, secret) to the YAML",
            key="asterisk.ami_apply",
        )
    client = AMIClient(
        host=ami.host,
        port=ami.port,
        username=user.username,
        secret=user.secret.value,
        connect_timeout=ami.connect_timeout,
        action_timeout=ami.action_timeout,
        ping_interval=0,
        reconnect=False,
    )
    async with client:
        return await apply(
            config,
            output_dir(args),
            AMIReloader(client, timeout=ami.action_timeout),
            templates=args.templates,
        )


def cmd_apply(args: argparse.Namespace) -> int:
    config = load_or_report(args, check_secrets=not args.allow_demo_secrets)
    if config is None:
        return 2
    if config.asterisk.ami_apply is None:
        print(
            "apply: no AMI user to reload Asterisk with: add asterisk.ami_apply to the YAML", file=sys.stderr
        )
        return 2
    if args.install_prompts:
        prompts_dir = args.prompts if args.prompts is not None else default_prompts_dir(args.directory)
        if prompts_dir is None:
            print("apply: no prompts directory to install from", file=sys.stderr)
            return 2
        n = install_prompts(prompts_dir, Path(config.asterisk.sounds_dir))
        print(f"apply: {n} prompt files installed in {config.asterisk.sounds_dir}")
    result = asyncio.run(_apply(config, args))
    out = output_dir(args)
    print(f"apply: {len(result.files)} files written to {out}; reloaded {', '.join(result.reloaded)}")
    return 0
