"""Composition root: ``callcenter sim`` runs the simulated PBX alone, so the controller (or any
AMI tool) can connect to it as to Asterisk.

    callcenter sim --config DIR --ami 127.0.0.1:5038 --agi 127.0.0.1:4573 --scenario NAME

``--config`` is a directory of rendered Asterisk configuration (``extensions.conf``,
``manager.conf``, optionally ``pjsip.conf`` naming the agents' endpoints). ``--scenario`` is a
built-in name (idle, smoke, busy-hour, outbound) or a YAML file (see ``callcenter.sim.people``).
``--speed 60`` runs simulated time sixty times faster than the wall clock.

``start_sim`` and ``center_scenario`` start the simulator in the controller's own process for a
configured center (``callcenter run --sim`` and ``callcenter demo``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import sys
from pathlib import Path

import yaml

from callcenter.asterisk import names
from callcenter.clock import Clock, RealClock, ScaledClock
from callcenter.config import model as cm
from callcenter.errors import ConfigError
from callcenter.sim.dialplan import Dialplan
from callcenter.sim.people import (
    BUILTIN,
    AgentProfile,
    Dist,
    Rate,
    Scenario,
    builtin_scenario,
    scenario_from_dict,
)
from callcenter.sim.server import SimulatedPBX


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="run the simulated PBX (AMI server, FastAGI client, simulated people)")
    p.add_argument("--config", required=True, help="directory of rendered Asterisk configuration")
    p.add_argument("--ami", default="127.0.0.1:5038", help="address to serve AMI on (127.0.0.1:5038)")
    p.add_argument(
        "--agi", default=None, help="the controller's FastAGI address (default: as in the dialplan)"
    )
    p.add_argument("--scenario", default="idle", help=f"built-in ({', '.join(BUILTIN)}) or a YAML file")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (1)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same run")
    p.add_argument("--duration", type=float, default=None, help="stop after this many simulated seconds")
    p.add_argument("--ami-user", default=None, help="AMI username (default: from manager.conf)")
    p.add_argument("--ami-secret", default=None, help="AMI secret (default: from manager.conf)")
    p.add_argument(
        "--recordings", default=None, help="where MixMonitor and VoiceMail write (CONFIG/recordings)"
    )
    p.set_defaults(func=cmd_sim)


def _hostport(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{what} must be HOST:PORT, got {text!r}", key=what)
    return host or "127.0.0.1", int(port)


def _agents_from_pjsip(config: Path) -> list[str]:
    path = config / "pjsip.conf"
    if not path.is_file():
        return []
    agents: list[str] = []
    section = None
    for line in path.read_text().splitlines():
        s = line.split(";", 1)[0].strip()
        if s.startswith("[") and "]" in s:
            section = s[1 : s.index("]")]
        elif section and re.fullmatch(r"type\s*=\s*endpoint", s) and section not in agents:
            agents.append(section)
    return [a for a in agents if a.lower().startswith("agent")]


def _dids(dialplan: Dialplan) -> list[str]:
    ctx = dialplan.contexts.get(names.CTX_INBOUND)
    if ctx is None:
        return []
    return [e for e in ctx.extensions if not e.startswith("_") and e not in ("s", "i", "t", "h")]


def load_scenario(name: str, config: Path, dialplan: Dialplan) -> Scenario:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read scenario: {exc}", file=str(path)) from exc
        return scenario_from_dict(data or {}, name=path.stem)
    agents = _agents_from_pjsip(config) or [f"agent{1001 + i}" for i in range(10)]
    return builtin_scenario(name, dids=_dids(dialplan), agents=agents)


def center_scenario(name: str, config: cm.Config, minutes: float) -> Scenario:
    """The built-in scenario ``name`` for this center's DIDs and agents, arrivals for ``minutes``."""
    dids = [n.dialed for n in config.numbers]
    agents = [a.endpoint for a in config.agents.values()]
    base = builtin_scenario(name, dids=dids, agents=agents)
    # Agents wear headsets that auto-answer within a second (what outbound needs: a person who
    # answers must hear an agent within 2 s); now and then one misses a call (RONA).
    profiles = tuple(
        AgentProfile(endpoint=a.endpoint, answer_delay=Dist("uniform", 0.3, 1.2), no_answer_probability=0.03)
        for a in config.agents.values()
    ) + tuple(
        # Supervisors' phones: answer, listen for a few minutes, hang up.
        AgentProfile(
            endpoint=sup.endpoint,
            answer_delay=Dist("uniform", 1.0, 2.0),
            no_answer_probability=0.0,
            talk=Dist("uniform", 120.0, 240.0),
            agent_hangs_up=1.0,
        )
        for sup in config.supervisors.values()
    )
    # The built-in busy hour is sized at 20 calls/hour per agent; the example center also runs
    # outbound campaigns on the same agents, so inbound is scaled to leave them room.
    callers = tuple(
        dataclasses.replace(c, rate=tuple(Rate(r.start, r.per_hour * 0.55) for r in c.rate))
        for c in base.callers
    )
    return Scenario(
        base.name,
        callers=callers,
        agents=profiles,
        outbound=base.outbound,
        duration=minutes * 60.0,
    )


async def start_sim(
    conf_dir: Path,
    run_dir: Path,
    *,
    clock: Clock,
    seed: int,
    sounds_dirs: tuple[Path, ...] = (),
    ami_port: int = 0,
) -> SimulatedPBX:
    """The simulated PBX on loopback, serving AMI on ``ami_port`` (0: a free port), with nobody
    in it yet: once the controller's FastAGI server listens, let the people in with
    ``sim.start_people(scenario, agi_port=...)`` (``center_scenario`` builds the scenario)."""
    sim = SimulatedPBX(
        conf_dir,
        clock=clock,
        seed=seed,
        ami_port=ami_port,
        agi_host="127.0.0.1",
        recordings_dir=run_dir / "recordings",
        sounds_dirs=list(sounds_dirs),
    )
    await sim.start()
    return sim


async def run_sim(args: argparse.Namespace) -> int:
    config = Path(args.config)
    ami_host, ami_port = _hostport(args.ami, "--ami")
    agi_host, agi_port = _hostport(args.agi, "--agi") if args.agi else (None, None)
    clock = RealClock() if args.speed == 1.0 else ScaledClock(args.speed)
    sim = SimulatedPBX(
        config,
        clock=clock,
        seed=args.seed,
        ami_host=ami_host,
        ami_port=ami_port,
        agi_host=agi_host,
        agi_port=agi_port,
        ami_user=args.ami_user,
        ami_secret=args.ami_secret,
        recordings_dir=args.recordings,
        sounds_dirs=[d for d in (Path("ivr_prompts"),) if d.is_dir()],
    )
    sim.scenario = load_scenario(args.scenario, config, sim.dialplan)
    await sim.start()
    print(
        f"sim: AMI on {ami_host}:{sim.ami_port}, scenario {sim.scenario.name}, "
        f"speed x{args.speed:g}, seed {args.seed}",
        flush=True,
    )
    try:
        if args.duration is not None:
            await clock.sleep(args.duration)
        else:
            await asyncio.Event().wait()
    finally:
        stats = sim.population.stats if sim.population is not None else None
        await sim.close()
        if stats is not None:
            print(f"sim: {stats}", file=sys.stderr)
        for fault in sim.pbx.faults:
            print(f"sim: dialplan fault: {fault}", file=sys.stderr)
    return 1 if sim.pbx.faults else 0


def cmd_sim(args: argparse.Namespace) -> int:
    return asyncio.run(run_sim(args))
