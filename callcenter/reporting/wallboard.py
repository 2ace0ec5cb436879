"""Pure: the wallboard's picture of the center at one instant, and its plain-text rendering.

The controller builds a ``Snapshot`` from its live state (the ACD's queues and agents, the dialer's
pacing, the counts so far); the live terminal view, the plain periodic lines (when stdout is not a
terminal), the HTTP wallboard's server-sent events and ``/api/status`` all show the same snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class QueueView:
    name: str
    waiting: int = 0
    longest_wait: float = 0.0  # seconds, of the callers waiting now
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_in_target: int = 0
    sl_target_seconds: float = 20.0
    sl_target_fraction: float = 0.8
    ewt: float | None = None  # expected wait for a new caller, seconds
    answer_wait_total: float = 0.0  # seconds waited by the answered calls
    handled: int = 0  # answered calls whose talk is over
    handle_total: float = 0.0  # their talk + hold + wrap-up, seconds
    agents: Mapping[str, int] = field(default_factory=dict)  # its agents by state
    levels: Mapping[str, str] = field(default_factory=dict)  # metric -> ok | amber | red
    limits: Mapping[str, float | None] = field(default_factory=dict)  # the thresholds applied
    label: str = ""  # the queue's name as people know it

    @property
    def asa(self) -> float | None:
        """Average speed of answer (seconds); None before any answered call."""
        return self.answer_wait_total / self.answered if self.answered else None

    @property
    def aht(self) -> float | None:
        """Average handle time (talk + hold + wrap-up, seconds); None before any call ended."""
        return self.handle_total / self.handled if self.handled else None

    @property
    def service_level(self) -> float | None:
        """Answered within target over offered (abandons count against); None before any call."""
        if self.offered == 0:
            return None
        return self.answered_in_target / self.offered

    @property
    def abandonment(self) -> float | None:
        if self.offered == 0:
            return None
        return self.abandoned / self.offered


@dataclass(frozen=True)
class DialerView:
    campaign: str
    mode: str
    state: str = "running"  # running | paused | stopped | done
    dial_ratio: float = 1.0  # the pacing gain (1: one line per expected free agent)
    in_flight: int = 0
    attempts: int = 0
    connected: int = 0
    abandoned: int = 0
    abandonment_rate: float = 0.0  # of live-answered calls
    reason: str = ""  # why pacing is what it is


@dataclass(frozen=True)
class Snapshot:
    at: float  # UNIX seconds (simulated time in the demo)
    elapsed: float = 0.0  # seconds since the run began
    duration: float | None = None  # planned length of the run, for a progress bar
    queues: tuple[QueueView, ...] = ()
    agents_by_state: Mapping[str, int] = field(default_factory=dict)
    dialers: tuple[DialerView, ...] = ()
    calls_active: int = 0
    calls_total: int = 0
    monitoring: int = 0
    timezone: str = "UTC"  # the center's, for its clock and its day
    center: str = ""  # the center's name

    @property
    def progress(self) -> float | None:
        if not self.duration:
            return None
        return max(0.0, min(1.0, self.elapsed / self.duration))

    def totals(self) -> QueueView:
        return QueueView(
            name="all",
            waiting=sum(q.waiting for q in self.queues),
            longest_wait=max((q.longest_wait for q in self.queues), default=0.0),
            offered=sum(q.offered for q in self.queues),
            answered=sum(q.answered for q in self.queues),
            abandoned=sum(q.abandoned for q in self.queues),
            answered_in_target=sum(q.answered_in_target for q in self.queues),
            answer_wait_total=sum(q.answer_wait_total for q in self.queues),
            handled=sum(q.handled for q in self.queues),
            handle_total=sum(q.handle_total for q in self.queues),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["agents_by_state"] = dict(self.agents_by_state)
        data["progress"] = self.progress
        for q, view in zip(data["queues"], self.queues, strict=True):
            q["service_level"] = view.service_level
            q["abandonment"] = view.abandonment
            q["asa"] = view.asa
            q["aht"] = view.aht
            q["agents"] = dict(view.agents)
            q["levels"] = dict(view.levels)
            q["limits"] = dict(view.limits)
        t = self.totals()
        data["totals"] = {
            "waiting": t.waiting,
            "longest_wait": t.longest_wait,
            "offered": t.offered,
            "answered": t.answered,
            "abandoned": t.abandoned,
            "service_level": t.service_level,
            "abandonment": t.abandonment,
            "asa": t.asa,
            "aht": t.aht,
        }
        return data


def today_bounds(now: float, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The center's day around ``now``: local midnight to the next local midnight (DST-aware)."""
    tz = ZoneInfo(timezone)
    day = dt.datetime.fromtimestamp(now, tz).date()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return start, end


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _mmss(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def plain_line(snap: Snapshot) -> str:
    """One line for logs and CI: progress, totals, queues, agents, dialers."""
    t = snap.totals()
    parts = []
    if snap.progress is not None:
        parts.append(f"[{snap.progress * 100:3.0f}%]")
    parts.append(f"t={_mmss(snap.elapsed)}")
    parts.append(
        f"calls {snap.calls_active} active/{snap.calls_total} total; offered {t.offered} "
        f"answered {t.answered} abandoned {t.abandoned} SL {_pct(t.service_level)}"
    )
    queues = " ".join(
        f"{q.name}:{q.waiting}w/{_mmss(q.longest_wait)}" for q in snap.queues if q.waiting or q.offered
    )
    if queues:
        parts.append(f"| queues {queues}")
    agents = " ".join(f"{k}={v}" for k, v in sorted(snap.agents_by_state.items()) if v)
    if agents:
        parts.append(f"| agents {agents}")
    for d in snap.dialers:
        parts.append(
            f"| dialer {d.campaign} {d.mode} {d.state} gain {d.dial_ratio:.2f} "
            f"abandon {d.abandonment_rate * 100:.1f}%"
        )
    if snap.monitoring:
        parts.append(f"| monitoring {snap.monitoring}")
    return " ".join(parts)
