"""Composition root: ``callcenter apply [DIR] --out /etc/asterisk``: validate, render, write, and
reload Asterisk over AMI; on any reload failure the previous files are restored and reloaded.

Asterisk is reached at ``asterisk.ami``'s address as the apply user (``asterisk.ami_apply``, write
class ``config`` only): the controller's own AMI user may not reload. Secrets are checked as by
``validate`` (``--allow-demo-secrets`` for the demo).

Then the running controller takes the same configuration live: ``--controller URL`` (or
``$CALLCENTER_URL``) names its HTTP API and ``$CALLCENTER_TOKEN`` (or ``--token-file``) an admin's
API token (``callcenter users token NAME``); it reads its own YAML again, validates it and
answers with the version it now runs, which must be the version applied here (the content hash of
the validated config, printed either way). Without a controller URL, ``kill -HUP`` the
``callcenter run`` process does the same.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from callcenter.asterisk.ami_client import AMIClient
from callcenter.commands.render import output_dir
from callcenter.commands.validate import add_config_args, add_demo_secrets_arg, load_or_report
from callcenter.config.load import default_prompts_dir
from callcenter.config.model import Config
from callcenter.config.render import DEFAULT_TEMPLATES, AMIReloader, ApplyResult, apply, install_prompts
from callcenter.config.version import config_version
from callcenter.errors import CallcenterError, ConfigError

CONTROLLER_TIMEOUT = 30.0  # seconds for the controller to read, validate and take the config


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
    p.add_argument(
        "--controller",
        default=os.environ.get("CALLCENTER_URL"),
        help="the running controller's HTTP API to reload, e.g. http://127.0.0.1:8080 ($CALLCENTER_URL)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding an admin's API token (default: $CALLCENTER_TOKEN)",
    )
    p.set_defaults(func=cmd_apply)


class ControllerReloadError(CallcenterError):
    """The running controller did not take the configuration (unreachable, refused, invalid)."""

    code = "controller_reload_failed"


async def reload_controller(url: str, token: str, *, timeout: float = CONTROLLER_TIMEOUT) -> str:
    """Ask the controller at ``url`` to take its configuration again; its new version."""
    endpoint = url.rstrip("/") + "/api/config/reload"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(endpoint, json={}, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            data: Any = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ControllerReloadError(f"cannot reach the controller at {url}: {exc}") from exc
    if status == 200 and isinstance(data, dict) and isinstance(data.get("config_version"), str):
        return str(data["config_version"])
    err = data.get("error", {}) if isinstance(data, dict) else {}
    problems = "".join(f"\n  {p}" for p in err.get("problems", ()))
    raise ControllerReloadError(
        f"the controller refused the configuration ({status} {err.get('code', '?')}): "
        f"{err.get('message', '')}{problems}"
    )


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text().strip())
        except OSError as exc:
            raise ControllerReloadError(f"{args.token_file}: cannot read the token: {exc}") from exc
    token = os.environ.get("CALLCENTER_TOKEN", "").strip()
    if not token:
        raise ControllerReloadError("no API token: set $CALLCENTER_TOKEN or give --token-file")
    return token


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
    version = config_version(config)
    if not args.controller:
        print(
            f"apply: config version {version}; the controller was not reloaded (--controller URL, or SIGHUP)"
        )
        return 0
    live = asyncio.run(reload_controller(args.controller, _token(args)))
    if live != version:
        print(
            f"apply: the controller runs config version {live}, not {version}: it reads another "
            "directory or other environment variables",
            file=sys.stderr,
        )
        return 1
    print(f"apply: config version {version} is live on the controller at {args.controller}")
    return 0
