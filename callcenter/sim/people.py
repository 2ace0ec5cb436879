"""Pure: the simulated people's parameters and their seeded random draws.

A :class:`Scenario` says who calls which DID and how often (a Poisson process with a rate
schedule), what they press at each menu prompt, how long they wait before abandoning and whether
they call back; how agents' phones behave (answer delay, no-answer and reject probabilities, talk
and wrap-up times, who hangs up); and what outbound targets do (answer, busy, no answer,
answering machine). Every draw takes a ``random.Random`` the caller seeded, so the same seed gives
the same run. No I/O and no clock: times are offsets in seconds.

Scenarios load from plain mappings (YAML) with :func:`scenario_from_dict`; built-ins come from
:func:`builtin_scenario`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from callcenter.asterisk import names
from callcenter.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Dist:
    """A duration distribution in seconds: ``fixed`` (a), ``uniform`` (a..b), ``exp`` (mean a),
    ``lognormal`` (mean a, sigma b of the log), ``normal`` (mean a, sd b), clipped at ``min``."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0
    min: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            v = self.a
        elif self.kind == "uniform":
            v = rng.uniform(self.a, self.b)
        elif self.kind == "exp":
            v = rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        elif self.kind == "lognormal":
            sigma = self.b or 0.5
            mu = math.log(max(self.a, 1e-9)) - sigma * sigma / 2
            v = rng.lognormvariate(mu, sigma)
        elif self.kind == "normal":
            v = rng.gauss(self.a, self.b)
        else:
            raise ValueError(f"unknown distribution {self.kind!r}")
        return max(self.min, v)

    @property
    def mean(self) -> float:
        return {"uniform": (self.a + self.b) / 2}.get(self.kind, self.a)


def dist(value: Any, *, where: str = "") -> Dist:
    """``30`` -> fixed; ``{exp: 180}``; ``{uniform: [2, 5]}``; ``{lognormal: [240, 0.6]}``."""
    if isinstance(value, Dist):
        return value
    if isinstance(value, int | float):
        return Dist("fixed", float(value))
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, arg),) = value.items()
        if isinstance(arg, int | float):
            return Dist(str(kind), float(arg))
        if isinstance(arg, Sequence) and len(arg) == 2:
            return Dist(str(kind), float(arg[0]), float(arg[1]))
    raise ConfigError(f"cannot read a distribution from {value!r}", key=where or None)


@dataclass(frozen=True, slots=True)
class Rate:
    """From ``start`` seconds into the run, ``per_hour`` calls per hour (until the next one)."""

    start: float
    per_hour: float


@dataclass(frozen=True, slots=True)
class CallerProfile:
    did: str
    rate: tuple[Rate, ...] = (Rate(0.0, 60.0),)
    context: str = names.CTX_INBOUND
    number_prefix: str = "555"
    # prompt name (or "*" for any prompt, "moh" never) -> [(digits, weight)]; "" presses nothing.
    choices: Mapping[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    think: Dist = Dist("uniform", 0.5, 2.5)  # from a prompt's start to the first key press
    patience: Dist = Dist("exp", 120.0)  # how long one waits on hold before abandoning
    talk: Dist = Dist("lognormal", 180.0, 0.6)  # used when the caller hangs up first
    redial_probability: float = 0.3
    redial_delay: Dist = Dist("uniform", 60.0, 600.0)
    voicemail: Dist = Dist("uniform", 8.0, 30.0)
    max_calls: int | None = None

    def rate_at(self, t: float) -> float:
        current = 0.0
        for r in self.rate:
            if r.start <= t:
                current = r.per_hour
        return current

    def next_arrival(self, rng: random.Random, t: float, horizon: float = 86400.0) -> float | None:
        """The next arrival after ``t`` (thinning over the piecewise-constant schedule)."""
        peak = max((r.per_hour for r in self.rate), default=0.0)
        if peak <= 0:
            return None
        while t < horizon:
            t += rng.expovariate(peak / 3600.0)
            if rng.random() * peak <= self.rate_at(t):
                return t
        return None

    def choose(self, rng: random.Random, prompt: str) -> str:
        options = self.choices.get(prompt) or self.choices.get("*") or ()
        if not options:
            return ""
        total = sum(w for _, w in options)
        pick = rng.random() * total
        for digits, weight in options:
            pick -= weight
            if pick <= 0:
                return digits
        return options[-1][0]


@dataclass(frozen=True, slots=True)
class AgentProfile:
    endpoint: str  # the PJSIP endpoint name, e.g. "agent1001"
    registered: bool = True
    answer_delay: Dist = Dist("uniform", 1.0, 4.0)
    no_answer_probability: float = 0.05
    reject_probability: float = 0.0
    talk: Dist = Dist("lognormal", 180.0, 0.6)
    wrapup: Dist = Dist("uniform", 5.0, 30.0)
    agent_hangs_up: float = 0.5  # probability the agent ends the conversation


@dataclass(frozen=True, slots=True)
class OutboundProfile:
    trunk: str = "carrier"
    answer: float = 0.55
    busy: float = 0.1
    no_answer: float = 0.2
    machine: float = 0.15
    ring: Dist = Dist("uniform", 3.0, 12.0)
    talk: Dist = Dist("lognormal", 120.0, 0.7)
    machine_greeting: Dist = Dist("uniform", 2.5, 6.0)

    def outcome(self, rng: random.Random) -> str:
        pick = rng.random() * (self.answer + self.busy + self.no_answer + self.machine)
        for name, weight in (("answer", self.answer), ("busy", self.busy), ("no_answer", self.no_answer)):
            if pick < weight:
                return name
            pick -= weight
        return "machine"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    callers: tuple[CallerProfile, ...] = ()
    agents: tuple[AgentProfile, ...] = ()
    outbound: OutboundProfile = OutboundProfile()
    duration: float | None = None  # stop new arrivals after this many simulated seconds


def _rates(value: Any) -> tuple[Rate, ...]:
    if isinstance(value, int | float):
        return (Rate(0.0, float(value)),)
    out = []
    for item in value or []:
        out.append(Rate(float(item.get("from", 0.0)), float(item["per_hour"])))
    return tuple(out) or (Rate(0.0, 0.0),)


def _choices(value: Any) -> dict[str, tuple[tuple[str, float], ...]]:
    out: dict[str, tuple[tuple[str, float], ...]] = {}
    for prompt, opts in (value or {}).items():
        if isinstance(opts, Mapping):
            out[str(prompt)] = tuple((str(d), float(w)) for d, w in opts.items())
        else:
            out[str(prompt)] = tuple((str(d), 1.0) for d in opts)
    return out


def scenario_from_dict(data: Mapping[str, Any], *, name: str = "scenario") -> Scenario:
    """Build a scenario from YAML-shaped data (see the module docstring for the shapes)."""
    callers = []
    for i, c in enumerate(data.get("callers") or []):
        where = f"callers[{i}]"
        if "did" not in c:
            raise ConfigError("a caller profile needs a 'did'", key=where)
        callers.append(
            CallerProfile(
                did=str(c["did"]),
                rate=_rates(c.get("rate", c.get("per_hour", 60))),
                context=str(c.get("context", names.CTX_INBOUND)),
                number_prefix=str(c.get("number_prefix", "555")),
                choices=_choices(c.get("choices")),
                think=dist(c.get("think", {"uniform": [0.5, 2.5]}), where=where + ".think"),
                patience=dist(c.get("patience", {"exp": 120}), where=where + ".patience"),
                talk=dist(c.get("talk", {"lognormal": [180, 0.6]}), where=where + ".talk"),
                redial_probability=float(c.get("redial_probability", 0.3)),
                redial_delay=dist(
                    c.get("redial_delay", {"uniform": [60, 600]}), where=where + ".redial_delay"
                ),
                voicemail=dist(c.get("voicemail", {"uniform": [8, 30]}), where=where + ".voicemail"),
                max_calls=c.get("max_calls"),
            )
        )
    agents = []
    for i, a in enumerate(data.get("agents") or []):
        where = f"agents[{i}]"
        if isinstance(a, str):
            a = {"endpoint": a}
        agents.append(
            AgentProfile(
                endpoint=str(a["endpoint"]),
                registered=bool(a.get("registered", True)),
                answer_delay=dist(a.get("answer_delay", {"uniform": [1, 4]}), where=where + ".answer_delay"),
                no_answer_probability=float(a.get("no_answer_probability", 0.05)),
                reject_probability=float(a.get("reject_probability", 0.0)),
                talk=dist(a.get("talk", {"lognormal": [180, 0.6]}), where=where + ".talk"),
                wrapup=dist(a.get("wrapup", {"uniform": [5, 30]}), where=where + ".wrapup"),
                agent_hangs_up=float(a.get("agent_hangs_up", 0.5)),
            )
        )
    o = data.get("outbound") or {}
    outbound = OutboundProfile(
        trunk=str(o.get("trunk", "carrier")),
        answer=float(o.get("answer", 0.55)),
        busy=float(o.get("busy", 0.1)),
        no_answer=float(o.get("no_answer", 0.2)),
        machine=float(o.get("machine", 0.15)),
        ring=dist(o.get("ring", {"uniform": [3, 12]})),
        talk=dist(o.get("talk", {"lognormal": [120, 0.7]})),
        machine_greeting=dist(o.get("machine_greeting", {"uniform": [2.5, 6]})),
    )
    duration = data.get("duration")
    return Scenario(
        name=str(data.get("name", name)),
        callers=tuple(callers),
        agents=tuple(agents),
        outbound=outbound,
        duration=float(duration) if duration is not None else None,
    )


BUILTIN: Final = ("idle", "smoke", "busy-hour", "outbound")


def builtin_scenario(name: str, *, dids: Sequence[str], agents: Sequence[str]) -> Scenario:
    """The named built-in scenario for a center with these DIDs and agent endpoints."""
    agent_profiles = tuple(AgentProfile(endpoint=a) for a in agents)
    if name == "idle":
        return Scenario("idle", agents=agent_profiles)
    if name == "smoke":
        callers = tuple(
            CallerProfile(did=d, rate=(Rate(0.0, 30.0),), choices={"*": (("1", 1.0),)}) for d in dids
        )
        return Scenario("smoke", callers=callers, agents=agent_profiles)
    if name == "busy-hour":
        per_did = 20.0 * max(1, len(agents)) / max(1, len(dids))
        callers = tuple(
            CallerProfile(
                did=d,
                rate=(Rate(0.0, per_did * 0.5), Rate(600.0, per_did), Rate(2400.0, per_did * 0.6)),
                choices={"*": (("1", 0.5), ("2", 0.3), ("", 0.2))},
            )
            for d in dids
        )
        return Scenario("busy-hour", callers=callers, agents=agent_profiles, duration=3600.0)
    if name == "outbound":
        return Scenario("outbound", agents=agent_profiles, outbound=OutboundProfile())
    raise ConfigError(f"unknown scenario {name!r} (built-in: {', '.join(BUILTIN)}; or a YAML file)")
