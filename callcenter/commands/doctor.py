"""Composition root: ``callcenter doctor [DIR]``: check the PBX a center will run on, and say what is
missing and how to fix it.

Renders the center's configuration as ``callcenter render`` would, works out what it needs
(:func:`callcenter.config.doctor.requirements`), asks the PBX over AMI (the config's
``asterisk.ami``, or ``CALLCENTER_AMI_HOST/PORT/USER/SECRET`` as ``callcenter run`` reads them,
or ``--ami``/``--ami-user``), and, when the PBX runs on this host, looks for the sound and music
files where Asterisk reads them. Only the actions ``ListCommands`` says the AMI user may send are
sent, each within ``--timeout`` seconds; all of them only read. Exit status 0 when no check
failed, 1 when one did, 2 on bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import posixpath
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from callcenter.acd.announcements import announcement_prompt
from callcenter.acd.routing import Announcement
from callcenter.app.controller import Links
from callcenter.asterisk import names
from callcenter.asterisk.ami_client import AMIClient
from callcenter.commands.validate import add_config_args, load_or_report
from callcenter.config import doctor as dr
from callcenter.config import model as cm
from callcenter.config.render import DEFAULT_TEMPLATES, render
from callcenter.errors import AMIActionError, AMIConnectionError, AMILoginError, AMITimeoutError, ConfigError

FILES_MODES = ("auto", "check", "skip")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor", help="check the PBX a center runs on: version, modules, sounds, AMI rights, phones"
    )
    add_config_args(p)
    p.add_argument("--templates", type=Path, default=DEFAULT_TEMPLATES, help="templates (asterisk-conf)")
    p.add_argument("--ami", default=None, help="the PBX's AMI as HOST:PORT (default: config or environment)")
    p.add_argument("--ami-user", default=None, help="AMI user (default: config or CALLCENTER_AMI_USER)")
    p.add_argument(
        "--files",
        choices=FILES_MODES,
        default="auto",
        help="look for the PBX's sound and music files on this machine: auto (when the AMI host is"
        " this machine), check, skip",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds for each AMI answer (default: asterisk.ami.action_timeout)",
    )
    p.set_defaults(func=cmd_doctor)


@dataclass(frozen=True)
class Target:
    """The PBX's AMI and how long to wait for it."""

    host: str
    port: int
    user: str
    secret: str
    connect_timeout: float
    timeout: float

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def target(config: cm.Config, args: argparse.Namespace) -> Target:
    """The AMI to ask: the config, overridden by the environment (as ``callcenter run``), then
    by the flags. Raises ``ConfigError`` for a bad address or timeout."""
    try:
        links = Links.from_config(config)
    except ValueError as exc:
        raise ConfigError(f"not a port number: {exc}", key="CALLCENTER_AMI_PORT") from exc
    host, port = links.ami_host, links.ami_port
    if args.ami is not None:
        head, sep, tail = args.ami.rpartition(":")
        if not sep or not tail.isdigit():
            raise ConfigError(f"--ami must be HOST:PORT, got {args.ami!r}", key="--ami")
        host, port = head.strip("[]") or "127.0.0.1", int(tail)
    if not 0 < port < 65536:
        raise ConfigError(f"AMI port {port} is not in 1-65535", key="--ami")
    timeout = config.asterisk.ami.action_timeout if args.timeout is None else args.timeout
    if not 0 < timeout <= 600:
        raise ConfigError(f"--timeout must be in (0, 600] seconds, got {timeout}", key="--timeout")
    return Target(
        host=host,
        port=port,
        user=args.ami_user or links.ami_user,
        secret=links.ami_secret,
        connect_timeout=min(config.asterisk.ami.connect_timeout, timeout),
        timeout=timeout,
    )


# ----------------------------------------------------------------------------- what is played
def announced_sounds(config: cm.Config) -> list[dr.Need]:
    """Every sound the ACD's queue announcements can name, from the ACD's own function over its
    whole input range (positions 1-100, waits of 1-100 minutes, each center language)."""
    out: dict[str, dr.Need] = {}
    sounds_dir = config.asterisk.sounds_dir
    for queue in config.queues.values():
        why = "queue announcements (position, expected wait)"
        for language in config.center.languages:
            announcements = [Announcement(position=p, ewt=None, offer_callback=False) for p in range(1, 101)]
            announcements += [
                Announcement(position=1, ewt=60.0 * w, offer_callback=False) for w in range(1, 101)
            ]
            for ann in announcements:
                for sound in announcement_prompt(ann, language, queue, sounds_dir=sounds_dir).split("&"):
                    out.setdefault(sound, dr.Need(sound, why))
    return list(out.values())


# ----------------------------------------------------------------------------- the PBX
async def ask_pbx(req: dr.Requirements, t: Target) -> dr.PBXFacts:
    """Log in and ask the PBX every question doctor has; never raises for what the PBX does."""
    client = AMIClient(
        host=t.host,
        port=t.port,
        username=t.user,
        secret=t.secret,
        connect_timeout=t.connect_timeout,
        login_timeout=t.timeout,
        action_timeout=t.timeout,
        ping_interval=0,
        reconnect=False,
        event_mask="off",
        close_timeout=min(2.0, t.timeout),
    )
    try:
        await client.connect()
    except AMILoginError as exc:
        cause = exc.__cause__
        return dr.PBXFacts(
            t.address, t.user, login_error=cause.reason if isinstance(cause, AMIActionError) else exc.message
        )
    except AMIConnectionError as exc:
        return dr.PBXFacts(t.address, t.user, link_error=_cause(exc))
    try:
        return await _questions(client, req, t)
    finally:
        await client.close()


def _cause(exc: BaseException) -> str:
    """The most specific reason in an exception chain (``Connection refused``)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def _questions(client: AMIClient, req: dr.Requirements, t: Target) -> dr.PBXFacts:
    stopped: str | None = None
    commands = dr.NOT_ASKED

    async def ask(action: str, headers: Sequence[tuple[str, str]] = (), *, listing: bool = False) -> dr.Reply:
        nonlocal stopped
        if stopped is not None:
            return dr.NOT_ASKED
        if commands.asked and not dr.may_send(commands, action):
            return dr.DENIED
        try:
            if listing:
                return dr.Reply(tuple(await client.send_action_list(action, headers, timeout=t.timeout)))
            return dr.Reply((await client.send_action(action, headers, timeout=t.timeout),))
        except AMIActionError as exc:
            return dr.Reply(error=exc.reason)
        except (AMITimeoutError, AMIConnectionError) as exc:
            stopped = f"{action}: {_cause(exc)}" if isinstance(exc, AMIConnectionError) else str(exc)
            return dr.NOT_ASKED

    commands = await ask(dr.ACTION_LIST_COMMANDS)
    settings = await ask(dr.ACTION_CORE_SETTINGS)
    data_dir = await ask(names.ACTION_GETVAR, [("Variable", dr.VAR_DATA_DIR)])
    modules: dict[str, dr.Reply] = {}
    for module in [n.name for n in req.modules] + list(req.unwanted_modules):
        if module not in modules:
            modules[module] = await ask(dr.ACTION_MODULE_CHECK, [("Module", module)])
    endpoints = await ask(dr.ACTION_PJSIP_SHOW_ENDPOINTS, listing=True)
    contacts = await ask(dr.ACTION_PJSIP_SHOW_CONTACTS, listing=True)
    trunks = {
        trunk.name: await ask(dr.ACTION_PJSIP_SHOW_ENDPOINT, [("Endpoint", trunk.name)], listing=True)
        for trunk in req.trunks
    }
    greeting = client.greeting.text if client.greeting is not None else ""
    return dr.PBXFacts(
        t.address,
        t.user,
        greeting=greeting,
        stopped=stopped,
        commands=commands,
        settings=settings,
        data_dir=data_dir,
        modules=modules,
        endpoints=endpoints,
        contacts=contacts,
        trunks=trunks,
    )


# ----------------------------------------------------------------------------- this host
async def pbx_is_here(host: str, *, timeout: float) -> tuple[bool, str]:
    """Whether the AMI host is this machine (a loopback address, or one this machine owns)."""
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, TimeoutError):
        return False, f"the PBX's host {host} does not resolve here"
    for family, _, _, _, sockaddr in infos:
        address = str(sockaddr[0])
        if ipaddress.ip_address(address.partition("%")[0]).is_loopback:
            return True, f"the PBX at {host} is this machine"
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((address, 0))
        except OSError:
            continue
        return True, f"the PBX at {host} is this machine"
    return False, f"the PBX at {host} is another machine"


def _audio_stems(directory: str, cache: dict[str, frozenset[str]]) -> frozenset[str]:
    if directory not in cache:
        try:
            entries = os.listdir(directory)
        except OSError:
            entries = []
        cache[directory] = frozenset(s for e in entries if (s := dr.audio_stem(e)) is not None)
    return cache[directory]


def existing_sounds(paths: Iterable[str]) -> frozenset[str]:
    """The paths (no extension) that exist as audio files."""
    cache: dict[str, frozenset[str]] = {}
    found = set()
    for path in paths:
        directory, stem = posixpath.split(path)
        if stem in _audio_stems(directory, cache):
            found.add(path)
    return frozenset(found)


def music_files(directories: Iterable[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for directory in directories:
        try:
            out[directory] = sum(1 for e in os.listdir(directory) if dr.audio_stem(e) is not None)
        except OSError:
            out[directory] = None
    return out


def look_at_files(req: dr.Requirements, facts: dr.PBXFacts, here: bool, where: str) -> dr.FileFacts:
    if not here:
        return dr.FileFacts(checked=False, where=where)
    data_dir = (
        (facts.data_dir.messages[0].get("Value", "") or "").strip() or None if facts.data_dir.ok else None
    )
    probes = {d: dr.probe_sound(d) for d in dr.WELL_KNOWN_SOUND_DIRS}
    found = existing_sounds([*dr.sound_paths(req, data_dir), *probes.values()])
    music = music_files([d for _, d in req.music])
    other_music = [d for d, n in music_files(dr.WELL_KNOWN_MOH_DIRS).items() if n]
    return dr.FileFacts(
        checked=True,
        where=where,
        sounds=found,
        music=music,
        other_sounds=tuple(d for d, probe in probes.items() if probe in found),
        other_music=tuple(other_music),
    )


# ----------------------------------------------------------------------------- the command
async def examine(
    config: cm.Config, files: Mapping[str, str], t: Target, *, files_mode: str = "auto"
) -> list[dr.Check]:
    """Every check for ``config`` (rendered as ``files``) on the PBX at ``t``."""
    req = dr.requirements(config, files, played=announced_sounds(config))
    facts = await ask_pbx(req, t)
    if files_mode == "auto":
        here, where = await pbx_is_here(t.host, timeout=t.connect_timeout)
    else:
        here = files_mode == "check"
        where = "--files check" if here else "--files skip"
    return dr.diagnose(req, facts, look_at_files(req, facts, here, where))


def title(config: cm.Config, t: Target) -> str:
    return f"callcenter doctor: the PBX for {config.center.name} at {t.address} (AMI user {t.user})"


async def run(args: argparse.Namespace) -> int:
    """The command without its event loop (tests run it inside theirs)."""
    config = load_or_report(args)
    if config is None:
        return 2
    t = target(config, args)
    files = {f.name: f.text for f in render(config, templates=args.templates)}
    checks = await examine(config, files, t, files_mode=args.files)
    sys.stdout.write(dr.format_report(checks, title=title(config, t)))
    return dr.exit_status(checks)


def cmd_doctor(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))
