"""Pure: the skills router, indexed so that no decision scans every agent and call.

The router holds the waiting calls and the available agents and answers four kinds of event, each
returning the ``Decision``s to carry out (``callcenter.acd.service`` does that on the PBX)::

    router.enqueue(call, now)            a call arrives: the best available agent, else it waits
    router.agent_available(agent, now)   an agent frees: the best waiting call it can take
    router.tick(now)                     relaxation steps, max wait (overflow/expire) that are due
    router.set_queue(policy, now)        a queue's rules edited: waiting calls re-evaluated at once

Rules:

* A call needs skills with minimum levels (its queue's plus the IVR's, the higher level wins) and
  has a priority. A call that waits relaxes per its queue's schedule (``RelaxStep``: after N
  seconds cap every required level at ``min_level``, and/or accept agents with ``add_skill`` at
  ``add_skill_level`` as an alternative). The schedule is evaluated continuously: editing a queue
  re-stages the calls already waiting.
* An agent that frees takes the best call it can serve: highest priority, then longest wait
  (arrival time, then arrival order). Priority is strict; a low-priority call routes as soon as an
  eligible agent frees while no higher-priority call that agent can serve waits.
* A call that arrives (or relaxes) takes the best eligible available agent by its queue's
  strategy: ``longest_idle`` (earliest available), ``least_calls`` (fewest handled, then longest
  idle), ``least_talk_time`` (least talk time handled, then longest idle), ``best_skill`` (highest
  proficiency on the call's primary skill, i.e. the first required one, then longest idle),
  ``round_robin`` (the next agent after the last one this queue offered to, in registration
  order). Ties end on registration order, so decisions are deterministic.
* ``ring_all`` (small teams): a call that routes is offered to EVERY eligible available agent at
  once, one ``Offer`` each, all naming the whole group in ``Offer.ring`` (longest idle first); each
  of them is reserved. The shell rings them all; the first to answer gets the call
  (``remove_call``), the others are released with ``agent_available`` (no RONA). A leg that fails
  is that agent's miss; when every leg of the group failed the shell ``requeue``s the call with
  ``exclude`` = the whole group. A group of one is a plain offer (``ring`` empty). An agent that
  frees and whose best call is a ring-all call rings with every other eligible available agent.
* An offered call leaves the waiting set; ``requeue`` puts it back in its old place (RONA), and
  the agent that missed it is not offered it again. ``accept_callback`` keeps a caller's place and
  marks the call so its offer says ``callback=True``.
* EWT of a call = position x average handle time (last ``handle_time_window`` calls of the queue,
  else ``default_handle_time``) / staffed agents (logged in and holding the queue's skills).

Indexes: waiting calls are grouped in buckets by their effective criteria (few: queues x skill
mixes x relaxation stages), each a heap in (priority, arrival) order; an agent that frees looks at
the head of each non-empty bucket it can serve. Available agents are indexed per skill: a sorted
list of registration ordinals (round robin) and heaps by idle time, by calls handled and by level;
a call walks the index of its most selective skill (or, for ``best_skill``, its primary skill) in
strategy order and stops at the first eligible agent. Heaps use lazy deletion with a version
number per agent / call.

``ScanRouter`` is the reference: the same rules as a straightforward scan over all agents and
calls. The property tests and ``bench/routing.py`` check that both make the same decisions.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from callcenter.errors import RoutingError

Strategy = Literal["longest_idle", "least_calls", "least_talk_time", "best_skill", "round_robin", "ring_all"]
STRATEGIES: tuple[str, ...] = (
    "longest_idle",
    "least_calls",
    "least_talk_time",
    "best_skill",
    "round_robin",
    "ring_all",
)
Requirement = tuple[tuple[str, int], ...]  # (skill, min level), primary skill first
Criteria = tuple[Requirement, ...]  # alternatives: an agent meeting any one qualifies

INF = float("inf")
ANY_SKILL = "*"  # every agent has it at level 1: what a queue with no required skill asks for


@dataclass(frozen=True, slots=True)
class RelaxStep:
    """After ``after_seconds`` of waiting: cap every required level at ``min_level`` and/or accept
    ``add_skill`` at ``add_skill_level`` as an alternative."""

    after_seconds: float
    min_level: int | None = None
    add_skill: str | None = None
    add_skill_level: int = 1


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    name: str
    skills: Mapping[str, int] = field(default_factory=dict)
    strategy: Strategy = "longest_idle"
    priority: int = 0  # added to each call's priority
    relaxation: tuple[RelaxStep, ...] = ()
    max_wait: float | None = None
    overflow_queue: str | None = None  # at max wait: move there (keeping arrival time), else Expired
    callback_threshold: float | None = None  # offer a callback when EWT exceeds this
    default_handle_time: float = 180.0
    handle_time_window: int = 20


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What the IVR hands over: the call, its queue, extra skills (skill -> min level), priority."""

    call_id: str
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0


# ------------------------------------------------------------------------------------ decisions
@dataclass(frozen=True, slots=True)
class Offer:
    """Reserve ``agent_id`` and ring it for ``call_id`` (the call has left the waiting set).

    ``ring``: for a ring-all queue, every agent offered ``call_id`` at once (this one included,
    longest idle first; one ``Offer`` each, in that order); empty for a one-agent offer."""

    call_id: str
    agent_id: str
    queue: str
    callback: bool = False
    waited: float = 0.0
    ring: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Relaxed:
    call_id: str
    queue: str
    stage: int
    criteria: Criteria


@dataclass(frozen=True, slots=True)
class Overflowed:
    """Max wait reached; the call now waits in ``to_queue`` (keeping its arrival time)."""

    call_id: str
    from_queue: str
    to_queue: str


@dataclass(frozen=True, slots=True)
class Expired:
    """Max wait reached and no overflow queue: the call has left; send it per queue config."""

    call_id: str
    queue: str
    waited: float


@dataclass(frozen=True, slots=True)
class OfferCallback:
    call_id: str
    queue: str
    ewt: float


Decision = Offer | Relaxed | Overflowed | Expired | OfferCallback


@dataclass(frozen=True, slots=True)
class Announcement:
    position: int  # 1 = next
    ewt: float | None  # seconds; None when nobody is staffed
    offer_callback: bool


# ------------------------------------------------------------------------------------ shared rules
def stage_at(policy: QueuePolicy, entered: float, now: float) -> int:
    """How many relaxation steps apply at ``now`` to a call that joined the queue at ``entered``
    (compared as ``entered + after <= now``, the same sum the deadlines use)."""
    return sum(1 for step in policy.relaxation if entered + step.after_seconds <= now)


def next_deadline_for(policy: QueuePolicy, entered: float, stage: int) -> float | None:
    """When the call next needs a look: its next relaxation step or its max wait."""
    steps = sorted(s.after_seconds for s in policy.relaxation)
    deadline = entered + steps[stage] if stage < len(steps) else None
    if policy.max_wait is not None:
        mw = entered + policy.max_wait
        deadline = mw if deadline is None else min(deadline, mw)
    return deadline


def base_requirement(policy: QueuePolicy, extra: Mapping[str, int]) -> Requirement:
    merged: dict[str, int] = {}
    for skill, level in (*policy.skills.items(), *extra.items()):
        merged[skill] = max(level, merged.get(skill, 0))
    return tuple(merged.items()) or ((ANY_SKILL, 1),)


def criteria_for(policy: QueuePolicy, base: Requirement, stage: int) -> Criteria:
    steps = sorted(policy.relaxation, key=lambda s: s.after_seconds)[:stage]
    cap: int | None = None
    added: list[tuple[str, int]] = []
    for step in steps:
        if step.min_level is not None:
            cap = step.min_level if cap is None else min(cap, step.min_level)
        if step.add_skill is not None:
            added.append((step.add_skill, max(1, step.add_skill_level)))
    alts: list[Requirement] = []
    for req in (base, *[((s, lvl),) for s, lvl in added]):
        capped = tuple((s, max(1, min(lvl, cap)) if cap is not None else lvl) for s, lvl in req)
        if capped not in alts:
            alts.append(capped)
    return tuple(alts)


def meets(skills: Mapping[str, int], req: Requirement) -> bool:
    for skill, level in req:
        if skills.get(skill, 0) < level:
            return False
    return True


def meets_any(skills: Mapping[str, int], criteria: Criteria) -> bool:
    return any(meets(skills, req) for req in criteria)


# ------------------------------------------------------------------------------------ records
class _Agent:
    __slots__ = ("agent_id", "ordinal", "skills", "available", "version", "idle_since", "calls", "talk")

    def __init__(self, agent_id: str, ordinal: int, skills: Mapping[str, int]) -> None:
        self.agent_id = agent_id
        self.ordinal = ordinal
        self.skills = {ANY_SKILL: 1, **skills}
        self.available = False
        self.version = 0
        self.idle_since = 0.0
        self.calls = 0
        self.talk = 0.0  # seconds talked (least_talk_time)


class _Call:
    __slots__ = (
        "call_id",
        "queue",
        "extra",
        "priority",
        "arrived",
        "entered",
        "seq",
        "stage",
        "criteria",
        "bucket",
        "version",
        "deadline",
        "callback",
        "callback_offered",
        "excluded",
        "waiting",
    )

    def __init__(self, req: CallRequest, arrived: float, seq: int) -> None:
        self.call_id = req.call_id
        self.queue = req.queue
        self.extra = dict(req.skills)
        self.priority = req.priority
        self.arrived = arrived
        self.entered = arrived
        self.seq = seq
        self.stage = 0
        self.criteria: Criteria = ()
        self.bucket: _Bucket | None = None
        self.version = 0
        self.deadline: float | None = None
        self.callback = False
        self.callback_offered = False
        self.excluded: frozenset[str] = frozenset()
        self.waiting = False

    def key(self, policy_priority: int) -> tuple[int, float, int]:
        return (-(self.priority + policy_priority), self.arrived, self.seq)

    def criteria_at(self, policy: QueuePolicy, now: float) -> None:
        self.stage = stage_at(policy, self.entered, now)
        self.criteria = criteria_for(policy, base_requirement(policy, self.extra), self.stage)
        self.deadline = next_deadline_for(policy, self.entered, self.stage)


class _Bucket:
    __slots__ = ("bid", "criteria", "index_skills", "heap", "live", "compat")

    def __init__(self, bid: int, criteria: Criteria) -> None:
        self.bid = bid
        self.criteria = criteria
        # An agent that can serve an alternative has its first skill: the bucket is listed
        # under the first skill of each alternative, and an agent looks only under its skills.
        self.index_skills = tuple(dict.fromkeys(req[0][0] for req in criteria if req))
        self.heap: list[tuple[int, float, int, int, _Call]] = []
        self.live = 0
        self.compat = bytearray()  # per agent ordinal: 0 unknown, 1 can serve, 2 cannot


class _QueueState:
    __slots__ = ("policy", "keys", "handle_times", "staffed", "rr_last")

    def __init__(self, policy: QueuePolicy) -> None:
        self.policy = policy
        self.keys: list[tuple[int, float, int]] = []  # sorted keys of waiting calls (positions)
        self.handle_times: deque[float] = deque(maxlen=max(1, policy.handle_time_window))
        self.staffed = 0
        self.rr_last = -1

    def aht(self) -> float:
        if not self.handle_times:
            return self.policy.default_handle_time
        return sum(self.handle_times) / len(self.handle_times)


_AgentEntry = tuple[float, float, int, int]  # (k1, k2, ordinal, version)


class _SkillIndex:
    __slots__ = ("ords", "by_idle", "by_calls", "by_level", "by_talk")

    def __init__(self) -> None:
        self.ords: list[int] = []
        self.by_idle: list[_AgentEntry] = []
        self.by_calls: list[_AgentEntry] = []
        self.by_level: list[_AgentEntry] = []
        self.by_talk: list[_AgentEntry] = []  # kept only while a queue uses least_talk_time


# ------------------------------------------------------------------------------------ the router
class Router:
    """The indexed router. Not thread-safe; one task owns it. See the module docstring."""

    def __init__(self, policies: Iterable[QueuePolicy] = ()) -> None:
        self._queues: dict[str, _QueueState] = {}
        self._agents: dict[str, _Agent] = {}
        self._by_ord: dict[int, _Agent] = {}
        self._next_ord = 0
        self._calls: dict[str, _Call] = {}  # waiting or offered
        self._seq = 0
        for p in policies:
            self._queues[p.name] = _QueueState(p)
        self._init_indexes()

    # -------------------------------------------------------------- queues
    def queue_names(self) -> list[str]:
        return list(self._queues)

    def policy(self, queue: str) -> QueuePolicy:
        return self._q(queue).policy

    def set_queue(self, policy: QueuePolicy, now: float) -> list[Decision]:
        """Add or replace a queue's rules; calls waiting in it are re-staged now."""
        old = self._queues.get(policy.name)
        qs = _QueueState(policy)
        if old is not None:
            qs.handle_times.extend(old.handle_times)
            qs.rr_last = old.rr_last
        self._queues[policy.name] = qs
        self._need_talk_index()
        qs.staffed = sum(1 for a in self._agents.values() if meets(a.skills, tuple(policy.skills.items())))
        calls = sorted(
            (c for c in self._calls.values() if c.queue == policy.name and c.waiting),
            key=lambda c: c.key(policy.priority),
        )
        out: list[Decision] = []
        for c in calls:
            old_key = c.key(old.policy.priority) if old else None
            self._unwait(c, old_key, qs_old=old)
            self._wait(c, now)
        for c in calls:
            if c.waiting:
                self._try_route_call(c, now, out)
        return out

    # -------------------------------------------------------------- agents
    def add_agent(self, agent_id: str, skills: Mapping[str, int]) -> None:
        """An agent logs in (staffed, not yet available)."""
        if agent_id in self._agents:
            raise RoutingError(f"agent {agent_id} is already known", code="duplicate_agent")
        a = _Agent(agent_id, self._next_ord, skills)
        self._next_ord += 1
        self._agents[agent_id] = a
        self._by_ord[a.ordinal] = a
        for qs in self._queues.values():
            if meets(a.skills, tuple(qs.policy.skills.items())):
                qs.staffed += 1

    def remove_agent(self, agent_id: str) -> None:
        """An agent logs out."""
        a = self._agent(agent_id)
        self._make_unavailable(a)
        for qs in self._queues.values():
            if meets(a.skills, tuple(qs.policy.skills.items())):
                qs.staffed -= 1
        del self._agents[agent_id]
        del self._by_ord[a.ordinal]

    def is_available(self, agent_id: str) -> bool:
        a = self._agents.get(agent_id)
        return a is not None and a.available

    def agent_available(self, agent_id: str, now: float) -> list[Decision]:
        """The agent can take a call: offer it the best waiting call it can serve, else index it."""
        a = self._agent(agent_id)
        if a.available:
            return []
        a.idle_since = now
        out: list[Decision] = []
        call = self._best_call_for(a)
        if call is None:
            self._make_available(a)
        elif self._q(call.queue).policy.strategy == "ring_all":
            self._make_available(a)  # rings with every other eligible available agent
            self._try_route_call(call, now, out)
        else:
            self._offer(call, a, now, out)
        return out

    def agent_unavailable(self, agent_id: str) -> None:
        a = self._agents.get(agent_id)
        if a is not None:
            self._make_unavailable(a)

    def record_handled(
        self, queue: str, agent_id: str | None, handle_seconds: float, *, talk_seconds: float | None = None
    ) -> None:
        """A call of ``queue`` ended after ``handle_seconds`` of talk + wrap-up (feeds EWT, the
        agent's count for ``least_calls`` and its talk time for ``least_talk_time``: ``talk_seconds``,
        else ``handle_seconds``)."""
        qs = self._queues.get(queue)
        if qs is not None and handle_seconds >= 0:
            qs.handle_times.append(handle_seconds)
        a = self._agents.get(agent_id) if agent_id else None
        if a is not None:
            talk = max(0.0, handle_seconds if talk_seconds is None else talk_seconds)
            if a.available:
                self._make_unavailable(a)
                a.calls += 1
                a.talk += talk
                self._make_available(a)
            else:
                a.calls += 1
                a.talk += talk

    # -------------------------------------------------------------- calls
    def enqueue(self, req: CallRequest, now: float, *, arrived_at: float | None = None) -> list[Decision]:
        """A call joins ``req.queue``; ``arrived_at`` keeps an earlier arrival (restart, transfer)."""
        if req.call_id in self._calls:
            raise RoutingError(f"call {req.call_id} is already queued", code="duplicate_call")
        self._q(req.queue)
        self._seq += 1
        c = _Call(req, now if arrived_at is None else arrived_at, self._seq)
        self._calls[c.call_id] = c
        self._wait(c, now)
        out: list[Decision] = []
        self._try_route_call(c, now, out)
        if c.waiting:
            self._maybe_offer_callback(c, out)
        return out

    def place(self, req: CallRequest, agent_id: str, now: float) -> list[Decision]:
        """A call that has its agent already (the dialer held ``agent_id`` for it before dialling):
        known here as offered to that agent, never waiting; if the agent misses it, ``requeue``
        lines it up like any other call."""
        if req.call_id in self._calls:
            raise RoutingError(f"call {req.call_id} is already queued", code="duplicate_call")
        policy = self._q(req.queue).policy
        self._seq += 1
        c = _Call(req, now, self._seq)
        c.criteria_at(policy, now)
        self._calls[c.call_id] = c
        return [Offer(c.call_id, agent_id, c.queue)]

    def requeue(
        self, call_id: str, now: float, *, exclude_agent: str | None = None, exclude: Iterable[str] = ()
    ) -> list[Decision]:
        """An offered call comes back (RONA, agent gone): same place; ``exclude_agent`` and the
        agents in ``exclude`` (a ring-all group that all missed it) are not offered it again."""
        c = self._call(call_id)
        if c.waiting:
            return []
        missed = {*exclude, *([exclude_agent] if exclude_agent is not None else [])}
        if missed:
            c.excluded = c.excluded | missed
        self._wait(c, now)
        out: list[Decision] = []
        self._try_route_call(c, now, out)
        return out

    def remove_call(self, call_id: str) -> bool:
        """The call is gone (abandoned, answered, overflowed elsewhere). False if unknown."""
        c = self._calls.pop(call_id, None)
        if c is None:
            return False
        if c.waiting:
            self._unwait(c, c.key(self._q(c.queue).policy.priority))
        return True

    def accept_callback(self, call_id: str) -> None:
        c = self._call(call_id)
        c.callback = True

    def is_waiting(self, call_id: str) -> bool:
        c = self._calls.get(call_id)
        return c is not None and c.waiting

    def waiting_count(self, queue: str | None = None) -> int:
        if queue is None:
            return sum(len(q.keys) for q in self._queues.values())
        return len(self._q(queue).keys)

    def criteria(self, call_id: str) -> Criteria:
        return self._call(call_id).criteria

    # -------------------------------------------------------------- time
    def next_deadline(self) -> float | None:
        """When ``tick`` next has work (relaxation or max wait), or None."""
        h = self._deadlines
        while h:
            d, _, ver, c = h[0]
            if c.waiting and c.version == ver and c.call_id in self._calls:
                return d
            heapq.heappop(h)
        return None

    def tick(self, now: float) -> list[Decision]:
        """Apply relaxation steps and max waits due by ``now`` (in deadline order)."""
        out: list[Decision] = []
        h = self._deadlines
        while h and h[0][0] <= now:
            _d, _, ver, c = heapq.heappop(h)
            if not (c.waiting and c.version == ver and self._calls.get(c.call_id) is c):
                continue
            self._due(c, now, out)
        return out

    # -------------------------------------------------------------- announcements / EWT
    def position(self, call_id: str) -> int:
        c = self._call(call_id)
        qs = self._q(c.queue)
        return bisect.bisect_left(qs.keys, c.key(qs.policy.priority)) + 1

    def ewt(self, queue: str, position: int | None = None) -> float | None:
        """Expected wait of the call at ``position`` (default: a new arrival)."""
        qs = self._q(queue)
        if qs.staffed <= 0:
            return None
        pos = len(qs.keys) + 1 if position is None else position
        return pos * qs.aht() / qs.staffed

    def announcement(self, call_id: str) -> Announcement:
        """Position and EWT for a holding caller; says once when to offer a callback."""
        c = self._call(call_id)
        pos = self.position(call_id) if c.waiting else 1
        ewt = self.ewt(c.queue, pos)
        out: list[Decision] = []
        self._maybe_offer_callback(c, out, ewt=ewt)
        return Announcement(pos, ewt, bool(out))

    # ============================================================== internals
    def _q(self, queue: str) -> _QueueState:
        qs = self._queues.get(queue)
        if qs is None:
            raise RoutingError(f"no queue {queue!r}", code="unknown_queue")
        return qs

    def _agent(self, agent_id: str) -> _Agent:
        a = self._agents.get(agent_id)
        if a is None:
            raise RoutingError(f"agent {agent_id} is not logged in", code="unknown_agent")
        return a

    def _call(self, call_id: str) -> _Call:
        c = self._calls.get(call_id)
        if c is None:
            raise RoutingError(f"no call {call_id}", code="unknown_call")
        return c

    def _maybe_offer_callback(self, c: _Call, out: list[Decision], *, ewt: float | None = -1.0) -> None:
        qs = self._q(c.queue)
        th = qs.policy.callback_threshold
        if th is None or c.callback_offered or c.callback or not c.waiting:
            return
        if ewt is not None and ewt < 0:
            ewt = self.ewt(c.queue, self.position(c.call_id))
        if ewt is None or ewt > th:
            c.callback_offered = True
            out.append(OfferCallback(c.call_id, c.queue, INF if ewt is None else ewt))

    def _wait(self, c: _Call, now: float) -> None:
        """Put ``c`` into the waiting set at the stage its wait calls for."""
        qs = self._q(c.queue)
        p = qs.policy
        c.criteria_at(p, now)
        c.version += 1
        c.waiting = True
        key = c.key(p.priority)
        bisect.insort(qs.keys, key)
        self._bucket_add(c, key)
        if c.deadline is not None:
            heapq.heappush(self._deadlines, (c.deadline, c.seq, c.version, c))

    def _unwait(
        self, c: _Call, key: tuple[int, float, int] | None, qs_old: _QueueState | None = None
    ) -> None:
        qs = qs_old or self._q(c.queue)
        if key is not None:
            i = bisect.bisect_left(qs.keys, key)
            if i < len(qs.keys) and qs.keys[i] == key:
                del qs.keys[i]
        self._bucket_remove(c)
        c.version += 1
        c.waiting = False

    def _due(self, c: _Call, now: float, out: list[Decision]) -> None:
        qs = self._q(c.queue)
        p = qs.policy
        if p.max_wait is not None and c.entered + p.max_wait <= now:
            self._unwait(c, c.key(p.priority))
            target = p.overflow_queue
            if target is not None and target in self._queues and target != c.queue:
                out.append(Overflowed(c.call_id, c.queue, target))
                c.queue = target
                c.entered = now  # its place (arrival) is kept; the new queue's clock starts
                c.excluded = frozenset()
                self._wait(c, now)
                self._try_route_call(c, now, out)
            else:
                del self._calls[c.call_id]
                out.append(Expired(c.call_id, c.queue, now - c.arrived))
            return
        old_stage = c.stage
        self._unwait(c, c.key(p.priority))
        self._wait(c, now)
        if c.stage != old_stage:
            out.append(Relaxed(c.call_id, c.queue, c.stage, c.criteria))
        self._try_route_call(c, now, out)

    def _offer(self, c: _Call, a: _Agent, now: float, out: list[Decision]) -> None:
        qs = self._q(c.queue)
        self._unwait(c, c.key(qs.policy.priority))
        self._make_unavailable(a)
        qs.rr_last = a.ordinal
        out.append(Offer(c.call_id, a.agent_id, c.queue, c.callback, now - c.arrived))

    def _try_route_call(self, c: _Call, now: float, out: list[Decision]) -> None:
        if self._q(c.queue).policy.strategy == "ring_all":
            group = self._ring_group(c)
            if group:
                self._offer_ring(c, group, now, out)
            return
        a = self._best_agent_for(c)
        if a is not None:
            self._offer(c, a, now, out)

    def _ring_group(self, c: _Call) -> list[_Agent]:
        """Every eligible available agent for ``c`` (longest idle first): for each alternative,
        the available agents holding its most selective skill (the index, not every agent)."""
        found: dict[int, _Agent] = {}
        for req in c.criteria:
            if not req:
                continue
            sizes = []
            for skill, _lvl in req:
                ix = self._skills.get(skill)
                if ix is None or not ix.ords:
                    break
                sizes.append((len(ix.ords), skill))
            else:
                for o in self._skills[min(sizes)[1]].ords:
                    a = self._by_ord[o]
                    if o not in found and meets(a.skills, req) and a.agent_id not in c.excluded:
                        found[o] = a
        return sorted(found.values(), key=lambda a: (a.idle_since, a.ordinal))

    def _offer_ring(self, c: _Call, group: list[_Agent], now: float, out: list[Decision]) -> None:
        qs = self._q(c.queue)
        self._unwait(c, c.key(qs.policy.priority))
        ring = tuple(a.agent_id for a in group) if len(group) > 1 else ()
        for a in group:
            self._make_unavailable(a)
            qs.rr_last = a.ordinal
            out.append(Offer(c.call_id, a.agent_id, c.queue, c.callback, now - c.arrived, ring))

    # ---------------------------------------------------------------- the indexes
    def _init_indexes(self) -> None:
        self._skills: dict[str, _SkillIndex] = {}
        self._buckets: dict[Criteria, _Bucket] = {}
        self._nonempty: dict[str, dict[int, _Bucket]] = {}  # skill -> non-empty buckets
        self._deadlines: list[tuple[float, int, int, _Call]] = []
        self._talk_index = False  # by_talk heaps kept (a queue uses least_talk_time)
        self._need_talk_index()

    def _need_talk_index(self) -> None:
        """Keep the talk-time heaps once a queue uses ``least_talk_time`` (the agents already
        available are indexed then)."""
        if self._talk_index or not any(q.policy.strategy == "least_talk_time" for q in self._queues.values()):
            return
        self._talk_index = True
        for a in self._agents.values():
            if a.available:
                for skill in a.skills:
                    heapq.heappush(self._skills[skill].by_talk, (a.talk, a.idle_since, a.ordinal, a.version))

    def _bucket_add(self, c: _Call, key: tuple[int, float, int]) -> None:
        b = self._buckets.get(c.criteria)
        if b is None:
            b = self._buckets[c.criteria] = _Bucket(len(self._buckets), c.criteria)
        heapq.heappush(b.heap, (key[0], key[1], key[2], c.version, c))
        b.live += 1
        c.bucket = b
        if b.live == 1:
            for skill in b.index_skills:
                self._nonempty.setdefault(skill, {})[b.bid] = b

    def _bucket_remove(self, c: _Call) -> None:
        b = c.bucket
        if b is None:
            return
        c.bucket = None
        b.live -= 1
        if b.live <= 0:
            b.live = 0
            b.heap.clear()
            for skill in b.index_skills:
                self._nonempty[skill].pop(b.bid, None)
        elif len(b.heap) > 4 * b.live + 64:
            b.heap = [e for e in b.heap if e[4].bucket is b and e[4].version == e[3]]
            heapq.heapify(b.heap)

    def _make_available(self, a: _Agent) -> None:
        a.available = True
        a.version += 1
        for skill, level in a.skills.items():
            ix = self._skills.get(skill)
            if ix is None:
                ix = self._skills[skill] = _SkillIndex()
            bisect.insort(ix.ords, a.ordinal)
            heapq.heappush(ix.by_idle, (a.idle_since, 0.0, a.ordinal, a.version))
            heapq.heappush(ix.by_calls, (float(a.calls), a.idle_since, a.ordinal, a.version))
            heapq.heappush(ix.by_level, (float(-level), a.idle_since, a.ordinal, a.version))
            if self._talk_index:
                heapq.heappush(ix.by_talk, (a.talk, a.idle_since, a.ordinal, a.version))

    def _make_unavailable(self, a: _Agent) -> None:
        if not a.available:
            return
        a.available = False
        a.version += 1
        for skill in a.skills:
            ix = self._skills[skill]
            i = bisect.bisect_left(ix.ords, a.ordinal)
            if i < len(ix.ords) and ix.ords[i] == a.ordinal:
                del ix.ords[i]
            live = len(ix.ords)
            for h in (ix.by_idle, ix.by_calls, ix.by_level, ix.by_talk):
                if len(h) > 4 * live + 64:
                    h[:] = [e for e in h if self._valid(e)]
                    heapq.heapify(h)

    def _valid(self, e: _AgentEntry) -> bool:
        a = self._by_ord.get(e[2])
        return a is not None and a.available and a.version == e[3]

    def _best_call_for(self, a: _Agent) -> _Call | None:
        """The best waiting call ``a`` can serve: one look at each non-empty bucket's head
        (whether ``a`` can serve a bucket is remembered per bucket and agent)."""
        best: _Call | None = None
        best_key: tuple[int, float, int] | None = None
        skills = a.skills
        o = a.ordinal
        nonempty = self._nonempty
        for b in (b for skill in skills if skill in nonempty for b in nonempty[skill].values()):
            h = b.heap
            e = h[0]
            if e[4].bucket is not b or e[4].version != e[3]:
                while h and (h[0][4].bucket is not b or h[0][4].version != h[0][3]):
                    heapq.heappop(h)
                if not h:
                    continue
                e = h[0]
            k = (e[0], e[1], e[2])
            if best_key is not None and k >= best_key:
                continue
            cc = b.compat
            if o >= len(cc):
                cc.extend(bytes(o + 1 - len(cc)))
            v = cc[o]
            if v == 0:
                v = cc[o] = 1 if meets_any(skills, b.criteria) else 2
            if v == 2:
                continue
            if a.agent_id in e[4].excluded:
                found = self._bucket_head(b, a.agent_id)
                if found is None:
                    continue
                e = found
                k = (e[0], e[1], e[2])
                if best_key is not None and k >= best_key:
                    continue
            best_key, best = k, e[4]
        return best

    def _bucket_head(self, b: _Bucket, agent_id: str) -> tuple[int, float, int, int, _Call] | None:
        h = b.heap
        while h:
            e = h[0]
            c = e[4]
            if c.bucket is b and c.version == e[3]:
                break
            heapq.heappop(h)
        if not h:
            return None
        if agent_id not in h[0][4].excluded:
            return h[0]
        # Rare: the head was refused by this agent (RONA); look further, then restore.
        stash = []
        found = None
        while h:
            e = heapq.heappop(h)
            c = e[4]
            if not (c.bucket is b and c.version == e[3]):
                continue
            stash.append(e)
            if agent_id not in c.excluded:
                found = e
                break
        for e in stash:
            heapq.heappush(h, e)
        return found

    def _best_agent_for(self, c: _Call) -> _Agent | None:
        strategy = self._q(c.queue).policy.strategy
        best: _Agent | None = None
        best_key: tuple[float, ...] | None = None
        for req in c.criteria:
            if not req:
                continue
            found = self._walk(c, req, strategy)
            if found is None:
                continue
            a, k = found
            if best_key is None or k < best_key:
                best, best_key = a, k
        return best

    def _walk(
        self, c: _Call, req: Requirement, strategy: Strategy
    ) -> tuple[_Agent, tuple[float, ...]] | None:
        ixs = self._skills
        sizes = []
        for skill, _lvl in req:
            ix = ixs.get(skill)
            if ix is None or not ix.ords:
                return None
            sizes.append((len(ix.ords), skill))
        excluded = c.excluded

        def ok(a: _Agent) -> bool:
            return meets(a.skills, req) and a.agent_id not in excluded

        if strategy == "round_robin":
            ix = ixs[min(sizes)[1]]
            last = self._q(c.queue).rr_last
            n = len(ix.ords)
            start = bisect.bisect_right(ix.ords, last)
            for i in range(n):
                a = self._by_ord[ix.ords[(start + i) % n]]
                if ok(a):
                    return a, (float(_rr_distance(a.ordinal, last, self._next_ord)),)
            return None
        if strategy == "best_skill":
            ix = ixs[req[0][0]]
            heap = ix.by_level
        else:
            ix = ixs[min(sizes)[1]]
            heap = {"least_calls": ix.by_calls, "least_talk_time": ix.by_talk}.get(strategy, ix.by_idle)
        e = self._heap_first(heap, ok)
        if e is None:
            return None
        a = self._by_ord[e[2]]
        return a, (e[0], e[1], float(e[2]))

    def _heap_first(self, heap: list[_AgentEntry], ok: Callable[[_Agent], bool]) -> _AgentEntry | None:
        stash: list[_AgentEntry] = []
        found: _AgentEntry | None = None
        while heap:
            e = heapq.heappop(heap)
            a = self._by_ord.get(e[2])
            if a is None or not a.available or a.version != e[3]:
                continue  # stale: dropped for good
            stash.append(e)
            if ok(a):
                found = e
                break
        for e in stash:
            heapq.heappush(heap, e)
        return found


def _rr_distance(ordinal: int, last: int, modulus: int) -> int:
    return (ordinal - last - 1) % max(1, modulus)


def strategy_key(
    strategy: Strategy,
    a_skills: Mapping[str, int],
    idle_since: float,
    calls: int,
    ordinal: int,
    req: Requirement,
    rr_last: int,
    modulus: int,
    talk: float = 0.0,
) -> tuple[float, ...]:
    """The ordering key of an agent for one requirement (lower is better); shared by both routers."""
    if strategy == "least_talk_time":
        return (talk, idle_since, float(ordinal))
    if strategy == "round_robin":
        return (float(_rr_distance(ordinal, rr_last, modulus)),)
    if strategy == "best_skill":
        return (float(-a_skills.get(req[0][0], 0)), idle_since, float(ordinal))
    if strategy == "least_calls":
        return (float(calls), idle_since, float(ordinal))
    return (idle_since, 0.0, float(ordinal))


# ------------------------------------------------------------------------------------ the reference
class ScanRouter:
    """The reference router: ``Router``'s rules, each decision a plain scan over every agent and
    every waiting call. For tests (an oracle) and the benchmark's baseline; not for production."""

    def __init__(self, policies: Iterable[QueuePolicy] = ()) -> None:
        self._policies: dict[str, QueuePolicy] = {}
        self._rr: dict[str, int] = {}
        self._handle: dict[str, deque[float]] = {}
        self._agents: dict[str, _Agent] = {}
        self._next_ord = 0
        self._calls: dict[str, _Call] = {}
        self._seq = 0
        for p in policies:
            self._policies[p.name] = p
            self._rr[p.name] = -1
            self._handle[p.name] = deque(maxlen=max(1, p.handle_time_window))

    def set_queue(self, policy: QueuePolicy, now: float) -> list[Decision]:
        old = self._handle.get(policy.name, ())
        self._policies[policy.name] = policy
        self._rr.setdefault(policy.name, -1)
        self._handle[policy.name] = deque(old, maxlen=max(1, policy.handle_time_window))
        calls = sorted(
            (c for c in self._calls.values() if c.queue == policy.name and c.waiting),
            key=lambda c: c.key(policy.priority),
        )
        for c in calls:
            c.criteria_at(policy, now)
        out: list[Decision] = []
        for c in calls:
            if c.waiting:
                self._route_call(c, now, out)
        return out

    def add_agent(self, agent_id: str, skills: Mapping[str, int]) -> None:
        if agent_id in self._agents:
            raise RoutingError(f"agent {agent_id} is already known", code="duplicate_agent")
        self._agents[agent_id] = _Agent(agent_id, self._next_ord, skills)
        self._next_ord += 1

    def agent_available(self, agent_id: str, now: float) -> list[Decision]:
        a = self._agents[agent_id]
        if a.available:
            return []
        a.idle_since = now
        best: _Call | None = None
        best_key: tuple[int, float, int] | None = None
        for c in self._calls.values():
            if not c.waiting or agent_id in c.excluded or not meets_any(a.skills, c.criteria):
                continue
            k = c.key(self._policies[c.queue].priority)
            if best_key is None or k < best_key:
                best, best_key = c, k
        out: list[Decision] = []
        if best is None:
            a.available = True
        elif self._policies[best.queue].strategy == "ring_all":
            a.available = True
            self._route_call(best, now, out)
        else:
            self._offer(best, a, now, out)
        return out

    def agent_unavailable(self, agent_id: str) -> None:
        a = self._agents.get(agent_id)
        if a is not None:
            a.available = False

    def record_handled(
        self, queue: str, agent_id: str | None, handle_seconds: float, *, talk_seconds: float | None = None
    ) -> None:
        if queue in self._handle and handle_seconds >= 0:
            self._handle[queue].append(handle_seconds)
        a = self._agents.get(agent_id) if agent_id else None
        if a is not None:
            a.calls += 1
            a.talk += max(0.0, handle_seconds if talk_seconds is None else talk_seconds)

    def enqueue(self, req: CallRequest, now: float, *, arrived_at: float | None = None) -> list[Decision]:
        if req.call_id in self._calls:
            raise RoutingError(f"call {req.call_id} is already queued", code="duplicate_call")
        policy = self._policies[req.queue]
        self._seq += 1
        c = _Call(req, now if arrived_at is None else arrived_at, self._seq)
        self._calls[c.call_id] = c
        c.criteria_at(policy, now)
        c.waiting = True
        out: list[Decision] = []
        self._route_call(c, now, out)
        if c.waiting and policy.callback_threshold is not None:
            ewt = self.ewt(c.queue, self.position(c.call_id))
            if ewt is None or ewt > policy.callback_threshold:
                c.callback_offered = True
                out.append(OfferCallback(c.call_id, c.queue, INF if ewt is None else ewt))
        return out

    def place(self, req: CallRequest, agent_id: str, now: float) -> list[Decision]:
        if req.call_id in self._calls:
            raise RoutingError(f"call {req.call_id} is already queued", code="duplicate_call")
        self._seq += 1
        c = _Call(req, now, self._seq)
        c.criteria_at(self._policies[req.queue], now)
        self._calls[c.call_id] = c
        return [Offer(c.call_id, agent_id, c.queue)]

    def requeue(
        self, call_id: str, now: float, *, exclude_agent: str | None = None, exclude: Iterable[str] = ()
    ) -> list[Decision]:
        c = self._calls[call_id]
        if c.waiting:
            return []
        missed = {*exclude, *([exclude_agent] if exclude_agent is not None else [])}
        if missed:
            c.excluded = c.excluded | missed
        c.criteria_at(self._policies[c.queue], now)
        c.waiting = True
        out: list[Decision] = []
        self._route_call(c, now, out)
        return out

    def remove_call(self, call_id: str) -> bool:
        return self._calls.pop(call_id, None) is not None

    def waiting_count(self, queue: str | None = None) -> int:
        return sum(1 for c in self._calls.values() if c.waiting and (queue is None or c.queue == queue))

    def position(self, call_id: str) -> int:
        me = self._calls[call_id]
        p = self._policies[me.queue]
        mine = me.key(p.priority)
        return 1 + sum(
            1 for c in self._calls.values() if c.waiting and c.queue == me.queue and c.key(p.priority) < mine
        )

    def ewt(self, queue: str, position: int | None = None) -> float | None:
        p = self._policies[queue]
        staffed = sum(1 for a in self._agents.values() if meets(a.skills, tuple(p.skills.items())))
        if staffed <= 0:
            return None
        pos = self.waiting_count(queue) + 1 if position is None else position
        h = self._handle[queue]
        aht = sum(h) / len(h) if h else p.default_handle_time
        return pos * aht / staffed

    def next_deadline(self) -> float | None:
        due = [c.deadline for c in self._calls.values() if c.waiting and c.deadline is not None]
        return min(due) if due else None

    def tick(self, now: float) -> list[Decision]:
        out: list[Decision] = []
        while True:
            due = [
                c for c in self._calls.values() if c.waiting and c.deadline is not None and c.deadline <= now
            ]
            if not due:
                return out
            due.sort(key=lambda c: (c.deadline, c.seq))
            for c in due:
                if (
                    self._calls.get(c.call_id) is c
                    and c.waiting
                    and c.deadline is not None
                    and c.deadline <= now
                ):
                    self._due(c, now, out)

    def _due(self, c: _Call, now: float, out: list[Decision]) -> None:
        p = self._policies[c.queue]
        if p.max_wait is not None and c.entered + p.max_wait <= now:
            target = p.overflow_queue
            if target is not None and target in self._policies and target != c.queue:
                out.append(Overflowed(c.call_id, c.queue, target))
                c.queue = target
                c.entered = now
                c.excluded = frozenset()
                c.criteria_at(self._policies[target], now)
                self._route_call(c, now, out)
            else:
                del self._calls[c.call_id]
                c.waiting = False
                out.append(Expired(c.call_id, c.queue, now - c.arrived))
            return
        old = c.stage
        c.criteria_at(p, now)
        if c.stage != old:
            out.append(Relaxed(c.call_id, c.queue, c.stage, c.criteria))
        self._route_call(c, now, out)

    def _route_call(self, c: _Call, now: float, out: list[Decision]) -> None:
        p = self._policies[c.queue]
        if p.strategy == "ring_all":
            group = sorted(
                (
                    a
                    for a in self._agents.values()
                    if a.available
                    and a.agent_id not in c.excluded
                    and any(req and meets(a.skills, req) for req in c.criteria)
                ),
                key=lambda a: (a.idle_since, a.ordinal),
            )
            if group:
                c.waiting = False
                ring = tuple(a.agent_id for a in group) if len(group) > 1 else ()
                for a in group:
                    a.available = False
                    self._rr[c.queue] = a.ordinal
                    out.append(Offer(c.call_id, a.agent_id, c.queue, c.callback, now - c.arrived, ring))
            return
        best: _Agent | None = None
        best_key: tuple[float, ...] | None = None
        for a in self._agents.values():
            if not a.available or a.agent_id in c.excluded:
                continue
            for req in c.criteria:
                if req and meets(a.skills, req):
                    k = strategy_key(
                        p.strategy,
                        a.skills,
                        a.idle_since,
                        a.calls,
                        a.ordinal,
                        req,
                        self._rr[c.queue],
                        self._next_ord,
                        a.talk,
                    )
                    if best_key is None or k < best_key:
                        best, best_key = a, k
        if best is not None:
            self._offer(c, best, now, out)

    def _offer(self, c: _Call, a: _Agent, now: float, out: list[Decision]) -> None:
        c.waiting = False
        a.available = False
        self._rr[c.queue] = a.ordinal
        out.append(Offer(c.call_id, a.agent_id, c.queue, c.callback, now - c.arrived))
