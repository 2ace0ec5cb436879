"""Shell: the simulated people at work: callers arriving on DIDs, agents' phones, outbound
targets behind the trunk, and agents and supervisors dialling codes from their desk phones. They
act through the engine (inbound calls, phone calls, DTMF, hangups, answering) and wait on the
injected clock, so an accelerated clock runs a busy hour in a minute.

Each person draws from its own ``random.Random`` derived from the scenario seed and a stable
name, so one caller's choices do not shift when another's timing changes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

from callcenter.asterisk import names
from callcenter.sim.channel import UP, Channel
from callcenter.sim.pbx import PBX, DialResult
from callcenter.sim.people import AgentProfile, CallerProfile, OutboundProfile, Scenario

log = logging.getLogger(__name__)


def person_rng(seed: int, name: str) -> random.Random:
    return random.Random((seed << 32) ^ zlib.crc32(name.encode()))  # noqa: S311 - simulation


@dataclass(slots=True)
class Stats:
    offered: int = 0
    answered_by_agent: int = 0
    abandoned: int = 0
    caller_hangups: int = 0
    agent_hangups: int = 0
    redials: int = 0
    voicemails: int = 0
    dtmf_sent: int = 0
    agent_calls: int = 0
    agent_no_answer: int = 0
    outbound_calls: int = 0
    outbound_outcomes: dict[str, int] = field(default_factory=dict)


def far_end(chan: Channel) -> Channel | None:
    """Follow bridges and Local pairs from ``chan`` to the channel at the other end of the call."""
    seen = {id(chan)}
    cur: Channel | None = chan
    for _ in range(8):
        if cur is None or cur.bridge is None:
            return None
        other = next((m for m in cur.bridge.members if m is not cur), None)
        if other is None:
            return None
        if other.peer is None or id(other.peer) in seen:
            return other
        seen.update({id(other), id(other.peer)})
        cur = other.peer
    return None


class Task:
    """Small helper: tasks a person owns, cancelled when the person is done."""

    def __init__(self, pbx: PBX) -> None:
        self.pbx = pbx
        self.tasks: list[asyncio.Task[Any]] = []

    def later(self, delay: float, fn: Any, *args: Any) -> None:
        async def run() -> None:
            await self.pbx.clock.sleep(delay)
            fn(*args)

        self.tasks.append(self.pbx.spawn(run()))

    def cancel(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.tasks.clear()


class Caller:
    """One call from one person: presses keys at prompts, waits on hold with limited patience,
    talks, leaves a voicemail, maybe calls again after abandoning."""

    def __init__(
        self, population: Population, profile: CallerProfile, number: str, rng: random.Random
    ) -> None:
        self.population = population
        self.profile = profile
        self.number = number
        self.rng = rng
        self.pbx = population.pbx
        self.timers = Task(self.pbx)
        self.patience_timer = Task(self.pbx)
        self.chan: Channel | None = None
        self.bridged = False
        self.prompts: list[str] = []
        self.pressed: list[str] = []
        self.abandoned = False
        self.hung_up_by_me = False

    def call(self) -> Channel:
        p = self.profile
        self.chan = self.pbx.inbound_call(
            p.did, caller_num=self.number, caller_name="", context=p.context, owner=self
        )
        self.population.stats.offered += 1
        return self.chan

    def hang_up(self) -> None:
        if self.chan is not None and not self.chan.gone:
            self.hung_up_by_me = True
            self.pbx.remote_hangup(self.chan)

    def press(self, digits: str) -> None:
        chan = self.chan
        if chan is None or chan.gone or chan.state != UP:
            return
        for i, d in enumerate(digits):
            self.timers.later(0.25 * i, self._digit, d)

    def _digit(self, d: str) -> None:
        if self.chan is not None and not self.chan.gone:
            self.pressed.append(d)
            self.population.stats.dtmf_sent += 1
            self.pbx.send_dtmf(self.chan, d, 120)

    def abandon(self) -> None:
        if self.bridged or self.chan is None or self.chan.gone:
            return
        self.abandoned = True
        self.population.stats.abandoned += 1
        self.hang_up()
        if self.rng.random() < self.profile.redial_probability:
            self.population.stats.redials += 1
            self.population.redial(self.profile, self.number, self.profile.redial_delay.sample(self.rng))

    def on_event(self, pbx: PBX, chan: Channel, what: str, detail: str) -> None:
        if what == "prompt":
            self.prompts.append(detail)
            digits = self.profile.choose(self.rng, detail)
            if digits:
                self.timers.later(self.profile.think.sample(self.rng), self.press, digits)
        elif what == "moh" and not self.bridged:
            self.patience_timer.cancel()
            self.patience_timer.later(self.profile.patience.sample(self.rng), self.abandon)
        elif what == "bridged":
            self.bridged = True
            self.patience_timer.cancel()
            self.population.stats.answered_by_agent += 1
        elif what == "app" and detail == "VoiceMail":
            self.population.stats.voicemails += 1
            self.timers.later(self.profile.voicemail.sample(self.rng) + 4.0, self.hang_up)
        elif what == "hangup":
            self.timers.cancel()
            self.patience_timer.cancel()
            self.population.finished(self)

    def talk_then_hang_up(self, seconds: float) -> None:
        self.timers.later(seconds, self._caller_ends)

    def _caller_ends(self) -> None:
        if self.chan is not None and not self.chan.gone:
            self.population.stats.caller_hangups += 1
            self.hang_up()


class AgentPhone:
    """An agent's SIP phone (an :class:`~callcenter.sim.pbx.Endpoint`)."""

    def __init__(self, population: Population, profile: AgentProfile, rng: random.Random) -> None:
        self.population = population
        self.profile = profile
        self.rng = rng
        self.registered = profile.registered
        self.calls: list[Channel] = []
        self.wrapup_until = 0.0
        self.timers = Task(population.pbx)

    @property
    def busy(self) -> bool:
        return any(not c.gone and c.state == UP for c in self.calls)

    async def incoming(self, pbx: PBX, chan: Channel) -> None:
        chan.owner = self
        self.population.stats.agent_calls += 1
        if self.busy:
            chan.hangupcause = 17
            pbx.signal_outcome(chan, DialResult("BUSY", 17))
            return
        self.calls.append(chan)
        await pbx.clock.sleep(0.05)
        if chan.gone:
            return
        pbx.ringing(chan)
        roll = self.rng.random()
        if roll < self.profile.reject_probability:
            await pbx.clock.sleep(self.profile.answer_delay.sample(self.rng))
            chan.hangupcause = 21
            pbx.signal_outcome(chan, DialResult("REJECTED", 21))
            return
        if roll < self.profile.reject_probability + self.profile.no_answer_probability:
            self.population.stats.agent_no_answer += 1
            return  # rings until the caller gives up
        delay = self.profile.answer_delay.sample(self.rng)
        delay = max(delay, self.wrapup_until - pbx.clock.monotonic())
        await pbx.clock.sleep(delay)
        if not chan.gone:
            pbx.answer(chan)

    def on_event(self, pbx: PBX, chan: Channel, what: str, detail: str) -> None:
        if what == "bridged":
            talk = self.profile.talk.sample(self.rng)
            if self.rng.random() < self.profile.agent_hangs_up:
                self.timers.later(talk, self._agent_ends, chan)
            else:
                caller = far_end(chan)
                owner = caller.owner if caller is not None else None
                if isinstance(owner, Caller):
                    owner.talk_then_hang_up(talk)
                else:
                    self.timers.later(talk, self._agent_ends, chan)
        elif what == "hangup":
            if chan in self.calls:
                self.calls.remove(chan)
            self.wrapup_until = pbx.clock.monotonic() + self.profile.wrapup.sample(self.rng)

    def _agent_ends(self, chan: Channel) -> None:
        if not chan.gone:
            self.population.stats.agent_hangups += 1
            self.population.pbx.remote_hangup(chan)


class PhoneCall:
    """A call placed from a desk phone (an agent's or a supervisor's endpoint), e.g. a feature
    code: a SIP channel in state Ring until something answers it (see ``PBX.phone_call``).

    The person types ``keys[prompt]`` (then the next entry at the prompt's next play) when they
    hear a prompt (its base name, ``enter-pin``); a prompt played before the call is answered is
    not heard, so nothing is typed. ``heard`` and ``pressed`` say what happened; when the call
    ends, ``answered`` tells whether the phone ever got its 200 OK (if not, it showed a failure:
    Asterisk declines the INVITE with 603) and ``ended`` is set."""

    def __init__(self, population: Population, endpoint: str, exten: str, keys: dict[str, list[str]]) -> None:
        self.population = population
        self.pbx = population.pbx
        self.endpoint = endpoint
        self.exten = exten
        self.keys = {prompt: list(seq) for prompt, seq in keys.items()}
        self.timers = Task(self.pbx)
        self.heard: list[str] = []
        self.pressed: list[str] = []
        self.answered = False
        self.cause: int | None = None
        self.ended = asyncio.Event()
        self.chan: Channel | None = None

    def on_event(self, pbx: PBX, chan: Channel, what: str, detail: str) -> None:
        if chan.state == UP:
            self.answered = True
        if what == "prompt":
            name = detail.rsplit("/", 1)[-1]
            self.heard.append(name)
            queue = self.keys.get(name)
            if queue:
                for i, digit in enumerate(queue.pop(0)):
                    self.timers.later(0.3 + 0.25 * i, self._digit, digit)
        elif what == "hangup":
            self.timers.cancel()
            self.cause = int(detail) if detail.isdigit() else None
            self.ended.set()

    def _digit(self, digit: str) -> None:
        chan = self.chan
        if chan is not None and self.pbx.send_dtmf(chan, digit, 120):
            self.pressed.append(digit)

    def hang_up(self) -> None:
        if self.chan is not None and not self.chan.gone:
            self.pbx.remote_hangup(self.chan)


class Trunk:
    """The outbound trunk: each number dialled behaves as the outbound profile draws."""

    registered = True

    def __init__(self, population: Population, profile: OutboundProfile) -> None:
        self.population = population
        self.profile = profile

    async def incoming(self, pbx: PBX, chan: Channel) -> None:
        number = str(chan.extra.get("number", ""))
        rng = person_rng(self.population.seed, f"target:{number}:{self.population.stats.outbound_calls}")
        self.population.stats.outbound_calls += 1
        outcome = self.profile.outcome(rng)
        counts = self.population.stats.outbound_outcomes
        counts[outcome] = counts.get(outcome, 0) + 1
        chan.owner = _Target(self, rng, outcome)
        await pbx.clock.sleep(0.05)
        if chan.gone:
            return
        if outcome == "busy":
            chan.hangupcause = 17
            pbx.signal_outcome(chan, DialResult("BUSY", 17))
            return
        pbx.ringing(chan)
        if outcome == "no_answer":
            return
        await pbx.clock.sleep(self.profile.ring.sample(rng))
        if _gone(chan):
            return
        if outcome == "machine":
            # AMD knows a machine once the greeting runs long (AMD_VERDICT_AFTER s), while the
            # greeting goes on to its end and its beep (BEEP s): a message must wait for both.
            greeting = self.profile.machine_greeting.sample(rng)
            chan.extra["amd"] = ("MACHINE", "LONGGREETING-2000-2000", min(greeting, AMD_VERDICT_AFTER))
            chan.extra["greeting_ends"] = pbx.clock.now() + greeting + BEEP
        else:
            chan.extra["amd"] = ("HUMAN", "HUMAN-300-300", 1.5)
        pbx.answer(chan)
        if outcome == "machine":
            await pbx.clock.sleep(45.0)  # the machine records, then hangs up
            if not chan.gone:
                pbx.remote_hangup(chan)


AMD_VERDICT_AFTER = 2.5  # seconds of greeting AMD() needs to call a machine (its defaults)
BEEP = 0.5  # the answering machine's beep after its greeting


class _Target:
    def __init__(self, trunk: Trunk, rng: random.Random, outcome: str) -> None:
        self.trunk = trunk
        self.rng = rng
        self.outcome = outcome

    def on_event(self, pbx: PBX, chan: Channel, what: str, detail: str) -> None:
        if what == "bridged" and self.outcome == "answer":
            talk = self.trunk.profile.talk.sample(self.rng)

            async def end() -> None:
                await pbx.clock.sleep(talk)
                if not chan.gone:
                    pbx.remote_hangup(chan)

            pbx.spawn(end())


def _gone(chan: Channel) -> bool:
    return chan.gone


class Population:
    """Everyone in a :class:`Scenario`, attached to a running engine; ``seed`` is the run's seed
    (each person draws from a generator derived from it)."""

    def __init__(self, pbx: PBX, scenario: Scenario, *, seed: int) -> None:
        self.pbx = pbx
        self.scenario = scenario
        self.seed = seed
        self.stats = Stats()
        self.callers: list[Caller] = []
        self.active: set[Caller] = set()
        self.phones: dict[str, AgentPhone] = {}
        self.started_at = 0.0
        self._serial = 0
        self.changed = asyncio.Event()  # set whenever a caller's call ends (tests wait on it)
        for agent in scenario.agents:
            phone = AgentPhone(self, agent, person_rng(self.seed, f"agent:{agent.endpoint}"))
            self.phones[agent.endpoint] = phone
            self.pbx.endpoints[agent.endpoint] = phone
        self.trunk = Trunk(self, scenario.outbound)
        self.pbx.endpoints.setdefault(scenario.outbound.trunk, self.trunk)
        self.pbx.endpoints.setdefault("*", self.trunk)

    def start(self) -> None:
        self.started_at = self.pbx.clock.monotonic()
        for i, profile in enumerate(self.scenario.callers):
            self.pbx.spawn(
                self._arrivals(profile, person_rng(self.seed, f"arrivals:{i}:{profile.did}")),
                name=f"arrivals {profile.did}",
            )

    async def close(self) -> None:
        for c in list(self.active):
            c.timers.cancel()
            c.patience_timer.cancel()

    def _number(self, profile: CallerProfile, rng: random.Random) -> str:
        return f"{profile.number_prefix}{rng.randrange(10**7):07d}"

    async def _arrivals(self, profile: CallerProfile, rng: random.Random) -> None:
        t = 0.0
        made = 0
        horizon = self.scenario.duration if self.scenario.duration is not None else float("inf")
        while profile.max_calls is None or made < profile.max_calls:
            nxt = profile.next_arrival(rng, t, horizon=min(horizon, t + 7 * 86400.0))
            if nxt is None:
                return
            elapsed = self.pbx.clock.monotonic() - self.started_at
            if nxt > elapsed:
                await self.pbx.clock.sleep(nxt - elapsed)
            t = nxt
            made += 1
            self.place(profile, self._number(profile, rng))

    def place(self, profile: CallerProfile, number: str) -> Caller:
        self._serial += 1
        caller = Caller(self, profile, number, person_rng(self.seed, f"caller:{profile.did}:{self._serial}"))
        self.callers.append(caller)
        self.active.add(caller)
        caller.call()
        return caller

    def dial(
        self,
        endpoint: str,
        exten: str,
        *,
        keys: dict[str, list[str]] | None = None,
        context: str = names.CTX_AGENT_PHONES,
        caller_num: str = "",
    ) -> PhoneCall:
        """The desk phone of ``endpoint`` (an agent's or a supervisor's) dials ``exten`` in its
        endpoint's context; its user types ``keys`` at the prompts they hear."""
        call = PhoneCall(self, endpoint, exten, keys or {})
        call.chan = self.pbx.phone_call(endpoint, exten, context=context, caller_num=caller_num, owner=call)
        return call

    def redial(self, profile: CallerProfile, number: str, delay: float) -> None:
        async def again() -> None:
            await self.pbx.clock.sleep(delay)
            self.place(profile, number)

        self.pbx.spawn(again())

    def finished(self, caller: Caller) -> None:
        self.active.discard(caller)
        self.changed.set()
