"""Pure: the event hub: one stream of typed changes, fanned out to bounded, filtered, coalescing
subscribers (the agent desktop, the supervisor console, the wallboard).

API (no I/O, no clock reads, no asyncio; the SSE shell is ``callcenter.web.feed``)::

    hub = Hub(max_pending=256)
    sub = hub.subscribe(sees=lambda change: ..., wake=event.set)   # -> Subscriber
    hub.publish(Change(...))           # sync, O(subscribers), never blocks; returns how many took it
    batch = sub.take()                 # the changes pending for it, oldest first ([] when none)
    sub.dropped                        # True once it fell behind by more than max_pending: the
                                       # hub has unsubscribed it, its stream must end (the browser's
                                       # EventSource reconnects and starts again from a snapshot)
    hub.unsubscribe(sub)

``Change`` is one typed change: ``kind`` (one of ``KINDS``), ``at`` (UNIX seconds), the ``agent_id``,
``call_id`` and ``queues`` it touches (what filtering looks at), ``data`` (a JSON-able mapping) and
``key``. Coalescing: a change with a ``key`` replaces the one with the same key still pending for a
subscriber (its position is kept), so a slow reader gets the latest agent state or the latest
wallboard snapshot, not every one in between; changes without a key (call events, threshold
crossings) are each delivered. A subscriber's ``sees`` predicate decides what it receives: the web
shell builds it from the access table (``callcenter.web.access``): an agent its own agent and calls,
a supervisor its queues, the public wallboard aggregate kinds only (``PUBLIC_KINDS``: no caller data).

Kinds::

    call.queued call.offered call.answered call.held call.unheld call.transferred call.ended
                       (a call's life)
    agent.state        an agent's state changed (data: state, reason, since, call_id)
    threshold          a queue's metric crossed a threshold (data: metric, level, previous, value)
    snapshot           the aggregate wallboard picture (key "snapshot": always coalesced)

Where changes come from (the composition root wires them): the ACD calls ``ACD.on_change`` with
each step of a call's life (``call.*``: queued, offered, answered, held and unheld from the
desktop, transferred, ended; data: queue, state, agent_id, caller_number, direction, campaign_id,
queued_at, answered_at, held) and each agent
state change; the controller adds the agent's day (name, calls_today, aht) and publishes on
``Controller.hub``; its picture loop publishes the ``snapshot`` (the wallboard's aggregates, with
each queue's threshold ``levels`` and ``limits``) and the ``threshold`` crossings. Another feature
publishes with ``controller.hub.publish(Change(...))``.

Also here: the thresholds' maths (``levels``: a queue's metrics against its amber/red limits) and
``crossings`` (the threshold changes between two pictures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

CALL_QUEUED: Final = "call.queued"
CALL_OFFERED: Final = "call.offered"
CALL_ANSWERED: Final = "call.answered"
CALL_HELD: Final = "call.held"
CALL_UNHELD: Final = "call.unheld"
CALL_TRANSFERRED: Final = "call.transferred"
CALL_ENDED: Final = "call.ended"
AGENT_STATE: Final = "agent.state"
THRESHOLD: Final = "threshold"
SNAPSHOT: Final = "snapshot"

CALL_KINDS: Final = frozenset(
    {CALL_QUEUED, CALL_OFFERED, CALL_ANSWERED, CALL_HELD, CALL_UNHELD, CALL_TRANSFERRED, CALL_ENDED}
)
KINDS: Final = CALL_KINDS | {AGENT_STATE, THRESHOLD, SNAPSHOT}
#: What the public wallboard may receive: aggregates, never a caller's number or data.
PUBLIC_KINDS: Final = frozenset({SNAPSHOT, THRESHOLD})


@dataclass(frozen=True)
class Change:
    kind: str
    at: float
    agent_id: str | None = None
    call_id: str | None = None
    queues: frozenset[str] = frozenset()
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at,
            "agent_id": self.agent_id,
            "call_id": self.call_id,
            "queues": sorted(self.queues),
            "data": dict(self.data),
        }


def agent_change(
    agent_id: str,
    at: float,
    *,
    state: str,
    reason: str,
    since: float,
    call_id: str | None,
    queues: Iterable[str],
) -> Change:
    """An agent's new state (coalesced per agent: a slow reader gets the latest)."""
    return Change(
        AGENT_STATE,
        at,
        agent_id=agent_id,
        call_id=call_id,
        queues=frozenset(queues),
        data={"state": state, "reason": reason, "since": since, "call_id": call_id},
        key=f"agent:{agent_id}",
    )


class Subscriber:
    """One reader of the hub: its filter, its pending changes (bounded) and its wake-up."""

    def __init__(self, sees: Callable[[Change], bool], wake: Callable[[], None] | None, limit: int) -> None:
        self.sees = sees
        self.wake = wake
        self.limit = limit
        self.dropped = False
        self.delivered = 0
        self._pending: dict[int, Change] = {}  # seq -> change, in order
        self._keyed: dict[str, int] = {}  # key -> seq of its pending change
        self._seq = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, change: Change) -> bool:
        """Queue ``change`` if this reader sees it; False when it is full (it is then dropped)."""
        if self.dropped or not self.sees(change):
            return False
        if change.key is not None and (seq := self._keyed.get(change.key)) is not None:
            self._pending[seq] = change
            return True
        if len(self._pending) >= self.limit:
            self.dropped = True
            self._pending.clear()
            self._keyed.clear()
            if self.wake is not None:
                self.wake()
            return False
        self._seq += 1
        self._pending[self._seq] = change
        if change.key is not None:
            self._keyed[change.key] = self._seq
        if self.wake is not None:
            self.wake()
        return True

    def take(self) -> list[Change]:
        """Everything pending, oldest first; the reader is empty afterwards."""
        out = list(self._pending.values())
        self._pending.clear()
        self._keyed.clear()
        self.delivered += len(out)
        return out


class Hub:
    """The fan-out: ``publish`` hands a change to every subscriber that sees it."""

    def __init__(self, *, max_pending: int = 256) -> None:
        self.max_pending = max_pending
        self.subscribers: list[Subscriber] = []
        self.published = 0
        self.dropped = 0
        self.last: dict[str, Change] = {}  # the latest change of each key (a new reader's start)

    def subscribe(self, sees: Callable[[Change], bool], wake: Callable[[], None] | None = None) -> Subscriber:
        sub = Subscriber(sees, wake, self.max_pending)
        self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def publish(self, change: Change) -> int:
        """Give ``change`` to every subscriber that sees it; a subscriber more than
        ``max_pending`` behind is dropped. Returns how many took it."""
        self.published += 1
        if change.key is not None:
            self.last[change.key] = change
        taken = 0
        for sub in list(self.subscribers):
            if sub.offer(change):
                taken += 1
            elif sub.dropped:
                self.dropped += 1
                self.subscribers.remove(sub)
        return taken

    def latest(self, sees: Callable[[Change], bool]) -> list[Change]:
        """The latest keyed change of each key a reader sees (agent states, the snapshot): what a
        new reader is sent first."""
        return [c for c in self.last.values() if sees(c)]


# ------------------------------------------------------------------------------------ thresholds
OK: Final = "ok"
AMBER: Final = "amber"
RED: Final = "red"
_RANK: Final = {OK: 0, AMBER: 1, RED: 2}


@dataclass(frozen=True)
class Limits:
    """A queue's amber and red limits: ``service_level`` below (fractions 0-1), ``longest_wait``
    (seconds) and ``waiting`` (callers) above. None: not watched."""

    service_level_amber: float | None = None
    service_level_red: float | None = None
    longest_wait_amber: float | None = None
    longest_wait_red: float | None = None
    waiting_amber: int | None = None
    waiting_red: int | None = None


def _above(value: float, amber: float | None, red: float | None) -> str:
    if red is not None and value >= red:
        return RED
    if amber is not None and value >= amber:
        return AMBER
    return OK


def _below(value: float | None, amber: float | None, red: float | None) -> str:
    if value is None:
        return OK
    if red is not None and value < red:
        return RED
    if amber is not None and value < amber:
        return AMBER
    return OK


def levels(
    limits: Limits, *, service_level: float | None, longest_wait: float, waiting: int
) -> dict[str, str]:
    """Each watched metric's level (``ok``, ``amber``, ``red``) and ``overall`` (the worst)."""
    out = {
        "service_level": _below(service_level, limits.service_level_amber, limits.service_level_red),
        "longest_wait": _above(longest_wait, limits.longest_wait_amber, limits.longest_wait_red),
        "waiting": _above(
            float(waiting),
            None if limits.waiting_amber is None else float(limits.waiting_amber),
            None if limits.waiting_red is None else float(limits.waiting_red),
        ),
    }
    out["overall"] = max(out.values(), key=_RANK.__getitem__)
    return out


def crossings(
    before: Mapping[str, Mapping[str, str]],
    after: Mapping[str, Mapping[str, str]],
    values: Mapping[str, Mapping[str, Any]],
    at: float,
) -> list[Change]:
    """The ``threshold`` changes between two pictures (queue -> metric -> level): one per metric
    whose level moved (a queue seen for the first time counts from ``ok``)."""
    out = []
    for queue, now in sorted(after.items()):
        was = before.get(queue, {})
        for metric, level in sorted(now.items()):
            if metric == "overall":
                continue
            prev = was.get(metric, OK)
            if prev != level:
                out.append(
                    Change(
                        THRESHOLD,
                        at,
                        queues=frozenset({queue}),
                        data={
                            "queue": queue,
                            "metric": metric,
                            "level": level,
                            "previous": prev,
                            "value": values.get(queue, {}).get(metric),
                        },
                    )
                )
    return out
