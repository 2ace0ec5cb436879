"""Composition root: ``callcenter run --config DIR [--sim]``, the production entry point.

The controller against a real Asterisk (AMI host, port, user and secret from the config's
``asterisk.ami`` or ``CALLCENTER_AMI_HOST/PORT/USER/SECRET``) and a real PostgreSQL
(``DATABASE_URL``; the private cluster when unset). ``--sim`` starts the simulated PBX in the same
process instead of connecting to Asterisk. Ctrl-C or SIGTERM stops everything cleanly and flushes
the call log. SIGHUP makes the controller read and validate its YAML again and take it live (as
``callcenter apply --controller URL`` does over the API); a config with a problem changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from callcenter.app.controller import Controller, Links, login_all
from callcenter.app.plugins import standard_plugins
from callcenter.clock import RealClock
from callcenter.commands.db import migrate_dsn
from callcenter.commands.sim import center_scenario, start_sim
from callcenter.commands.validate import load_or_report
from callcenter.config import model as cm
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.errors import CallcenterError
from callcenter.sim.server import SimulatedPBX
from callcenter.store.database import database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the controller (real Asterisk, or --sim)")
    p.add_argument("--config", type=Path, default=Path("dialplans"), help="the center's YAML (dialplans)")
    p.add_argument("--prompts", type=Path, default=None, help="prompts directory (ivr_prompts)")
    p.add_argument("--sim", action="store_true", help="run against the simulated PBX in this process")
    p.add_argument("--scenario", default="smoke", help="with --sim: the simulated people (smoke)")
    p.add_argument("--http", default="127.0.0.1:8080", help="HTTP API / wallboard / metrics address")
    p.add_argument("--agi-port", type=int, default=None, help="FastAGI port (default: from config)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.set_defaults(func=cmd_run)


log = logging.getLogger("callcenter")


def reload_on_sighup(loop: asyncio.AbstractEventLoop, controller: Controller) -> Callable[[], None]:
    """SIGHUP reloads ``controller`` from its source; returns what removes the handler. The
    outcome (the version now live, or every problem) goes to the log and to stdout."""
    pending: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            version = await controller.reload()
        except CallcenterError as exc:
            log.error("SIGHUP: configuration not taken, nothing changed: %s", exc)
            print(f"run: configuration not taken, nothing changed: {exc}", flush=True)
            return
        print(f"run: config version {version} is live", flush=True)

    def on_hup() -> None:
        task = loop.create_task(reload(), name="config-reload")
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove


def _http(text: str) -> tuple[str | None, int]:
    if text in ("", "off", "none"):
        return None, 0
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _run(args: argparse.Namespace, config: cm.Config, dsn: str) -> int:
    await migrate_dsn(dsn)
    run_dir = Path(args.run_dir)
    clock = RealClock()
    http_host, http_port = _http(args.http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim: SimulatedPBX | None = None
    links = Links.from_config(config, http_host=http_host, http_port=http_port, agi_port=args.agi_port)
    if args.sim:
        out = run_dir / "asterisk"
        write_files(render(config), out)
        # On the config's AMI port: `callcenter apply` (which reads the same YAML) reaches it.
        sim = await start_sim(out, run_dir, clock=clock, seed=1, ami_port=config.asterisk.ami.port)
        links = Links(**{**links.__dict__, "ami_host": "127.0.0.1", "ami_port": sim.ami_port})
    prompts = args.prompts

    def source() -> cm.Config:
        return load_config(args.config, **({} if prompts is None else {"prompts_dir": prompts}))

    controller = Controller(
        config,
        dsn=dsn,
        run_dir=run_dir,
        clock=clock,
        links=links,
        plugins=standard_plugins(),
        source=source,
    )
    remove_hup = reload_on_sighup(loop, controller)
    task = asyncio.create_task(controller.run(stop))
    try:
        await asyncio.wait(
            {task, asyncio.ensure_future(controller.ready.wait())}, return_when="FIRST_COMPLETED"
        )
        if controller.ready.is_set():
            if sim is not None and controller.agi is not None:
                await login_all(controller)
                sim.start_people(
                    center_scenario(args.scenario, config, minutes=60.0), agi_port=controller.agi.port
                )
            where = f"http://{links.http_host}:{controller.http.port}/" if controller.http else "off"
            print(f"run: controller ready (wallboard {where}); Ctrl-C stops", flush=True)
        await task
    finally:
        remove_hup()
        if not task.done():
            stop.set()
            await task
        if sim is not None:
            await sim.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    args.directory = args.config
    config = load_or_report(args)
    if config is None:
        return 2
    with database(Path(args.run_dir), echo=True) as dsn:
        return asyncio.run(_run(args, config, dsn))
