"""Shell: the live terminal view of the demo (rich), or plain periodic lines when not a terminal.

``LiveView(source, details=..., interval=...)`` polls ``source() -> Snapshot`` (and ``details()``,
what a supervisor needs beyond the wallboard's counts: agents able to take each queue's calls by
state, ASA and AHT, each campaign's pacing in plain words against its abandonment limit) and draws
it; ``async run()`` until cancelled. On a terminal: the simulated time, a progress bar, a queue
table, agents by state and a dialer table, redrawn in place (cells wrap at words; nothing is cut).
Otherwise (CI, a pipe): ``plain_lines`` every ``plain_interval`` seconds, a dialer on a line of its own.

``LiveDetails(controller)`` builds the details from the running controller; ``await run()`` keeps
its ASA/AHT fresh from the call log.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

import asyncpg
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from callcenter.clock import Clock, RealClock
from callcenter.config import model as cm
from callcenter.reporting.wallboard import QueueView, Snapshot
from callcenter.store import run_report

if TYPE_CHECKING:
    from callcenter.app.controller import Controller

log = logging.getLogger("callcenter.demo")

STATE_STYLE = {
    "available": "green",
    "reserved": "yellow",
    "ringing": "yellow",
    "on_call": "cyan",
    "wrap_up": "blue",
    "paused": "magenta",
    "not_ready": "red",
    "logged_out": "dim",
}
BUSY = ("reserved", "ringing", "on_call", "wrap_up")
OFF = ("paused", "not_ready")


@dataclass(frozen=True)
class QueueDetail:
    """The agents whose skills meet the queue's, by what they do now, and the queue's ASA/AHT."""

    free: int = 0
    busy: int = 0
    paused: int = 0
    asa: float | None = None
    aht: float | None = None


@dataclass(frozen=True)
class DialerDetail:
    campaign: str
    state: str  # running, paused, stopped, done
    pacing: str  # in plain words
    in_flight: int = 0
    connected: int = 0
    abandoned: int = 0
    abandonment: float = 0.0  # of live-answered calls, over the campaign's rolling window
    limit: float = 0.03  # the campaign's abandonment limit

    @property
    def over_limit(self) -> bool:
        return self.connected + self.abandoned > 0 and self.abandonment > self.limit


@dataclass(frozen=True)
class Details:
    queues: Mapping[str, QueueDetail] = field(default_factory=dict)
    dialers: tuple[DialerDetail, ...] = ()
    time_label: str = ""  # "simulated time Thu 10:23 EST"


# ------------------------------------------------------------------------------- building the details
def agents_by_queue(config: cm.Config, status: Mapping[str, str]) -> dict[str, tuple[int, int, int]]:
    """Per queue: (free, busy, paused) among the logged-in agents whose skills meet the queue's
    minimum levels (``status``: agent id -> state)."""
    out: dict[str, tuple[int, int, int]] = {}
    for qid, q in config.queues.items():
        free = busy = off = 0
        for agent_id, agent in config.agents.items():
            if not all(agent.skills.get(s, 0) >= level for s, level in q.skills.items()):
                continue
            st = status.get(agent_id, "logged_out")
            free += st == "available"
            busy += st in BUSY
            off += st in OFF
        out[qid] = (free, busy, off)
    return out


_PACING = re.compile(r"^(?P<mode>\w+): dial (?P<lines>\d+) \((?P<reason>.*?); answer rate")
_REASONS = {
    "one line per free agent": "one call per free agent",
    "abandonment at the guard: progressive until back under target": (
        "abandonment near its limit: one call per free agent until it is back under target"
    ),
}


def plain_pacing(mode: str, explain: str | None, *, fallback: bool) -> str:
    """The dialer's pacing in a supervisor's words, from its ``PacingDecision.explain()``."""
    m = _PACING.match(explain or "")
    if m is None:
        return f"{mode}: starting"
    lines, reason = int(m["lines"]), m["reason"]
    if reason.startswith("warming up: "):
        measured = reason.removeprefix("warming up: ").replace(" attempts measured", "")
        reason = f"one call per free agent while it learns the answer rate ({measured} calls measured)"
    reason = _REASONS.get(reason, reason)
    calls = f"{lines} new call{'' if lines == 1 else 's'} now"
    if mode == "predictive" and not fallback and m["mode"] == "predictive":
        return f"predictive: {calls}, paced for agents free soon ({reason})"
    return f"{mode}: {calls}, {reason}"


def time_label(at: float, timezone: str, *, simulated: bool) -> str:
    local = dt.datetime.fromtimestamp(at, dt.UTC).astimezone(ZoneInfo(timezone))
    return f"{'simulated time' if simulated else 'time'} {local:%a %H:%M %Z}"


class LiveDetails:
    """The details of the running ``controller`` (``details()``); ``run()`` refreshes ASA/AHT."""

    def __init__(self, controller: Controller, *, refresh: float = 60.0, simulated: bool = True) -> None:
        self.controller = controller
        self.refresh = refresh
        self.simulated = simulated
        self._times: dict[str, run_report.QueueTimes] = {}

    async def run(self) -> None:
        ctl = self.controller
        since = dt.datetime.fromtimestamp(ctl.started_at, dt.UTC)
        while True:
            if ctl.pool is not None:
                try:
                    async with ctl.pool.acquire(timeout=10) as conn:
                        self._times = await run_report.queue_times(conn, since, timeout=10)
                except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                    log.debug("live view: ASA/AHT not refreshed: %s", exc)
            await ctl.clock.sleep(self.refresh)

    def __call__(self) -> Details:
        ctl = self.controller
        config = ctl.config
        status = {a: str(s["status"]) for a, s in ctl.acd.snapshot()["agents"].items()}
        queues = {}
        for qid, (free, busy, off) in agents_by_queue(config, status).items():
            t = self._times.get(qid)
            queues[qid] = QueueDetail(
                free, busy, off, t.asa_seconds if t else None, t.aht_seconds if t else None
            )
        dialers = []
        for cid, camp in config.campaigns.items():
            if ctl.dialer is None:
                break
            try:
                st = ctl.dialer.status(cid)
            except (KeyError, ValueError):
                continue
            outcomes = st.get("outcomes") or {}
            dialers.append(
                DialerDetail(
                    campaign=cid,
                    state=str(st.get("state", "")),
                    pacing=plain_pacing(
                        str(st.get("mode", "")), st.get("pacing"), fallback=bool(st.get("fallback"))
                    ),
                    in_flight=int(st.get("in_flight") or 0),
                    connected=int(outcomes.get("connected", 0)),
                    abandoned=int(outcomes.get("abandoned", 0)),
                    abandonment=float(st.get("abandonment_rate") or 0.0),
                    limit=float(camp.abandon_limit),
                )
            )
        label = time_label(ctl.clock.now(), config.center.timezone, simulated=self.simulated)
        return Details(queues=queues, dialers=tuple(dialers), time_label=label)


# ------------------------------------------------------------------------------- drawing
def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _pct1(value: float) -> str:
    return f"{value * 100:.1f}%"


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ewt(q: QueueView) -> str:
    """No expected wait for a queue that has had no caller yet (it would be a guess)."""
    return "-" if q.offered == 0 and q.waiting == 0 else _mmss(q.ewt)


def _limit_text(d: DialerDetail) -> Text:
    if d.over_limit:
        return Text(f"{_pct1(d.limit)} OVER", style="bold red")
    return Text(_pct1(d.limit), style="green" if d.connected else "")


def render(snap: Snapshot, title: str = "callcenter", details: Details | None = None) -> Group:
    details = details or Details()
    parts: list[object] = []
    header = Text(f"{title}  ", style="bold")
    if details.time_label:
        header.append(f"{details.time_label}  ")
    run = f"run {_mmss(snap.elapsed)}" + (f" of {_mmss(snap.duration)}" if snap.duration else "")
    header.append(f"{run}  calls now {snap.calls_active}, so far {snap.calls_total}")
    if snap.monitoring:
        header.append(f"  supervisors listening {snap.monitoring}")
    parts.append(header)
    if snap.progress is not None:
        done = round(snap.progress * 40)
        parts.append(Text(f"{'█' * done}{'░' * (40 - done)} {snap.progress * 100:3.0f}%"))
    qt = Table(
        title="Queues: callers waiting, longest wait; ASA, AHT in seconds; agents with the queue's "
        "skills free, busy, off (paused)",
        expand=False,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    cols = (
        "queue",
        "wait",
        "max",
        "offer",
        "answ",
        "aband",
        "SL",
        "ASA",
        "AHT",
        "EWT",
        "free",
        "busy",
        "off",
    )
    for col in cols:
        qt.add_column(col, justify="left" if col == "queue" else "right")
    for q in (*snap.queues, snap.totals()):
        sl = q.service_level
        style = "" if sl is None else ("green" if sl >= q.sl_target_fraction else "red")
        qd = details.queues.get(q.name)
        staffed = (str(qd.free), str(qd.busy), str(qd.paused)) if qd else ("", "", "")
        qt.add_row(
            q.name,
            str(q.waiting),
            _mmss(q.longest_wait),
            str(q.offered),
            str(q.answered),
            _pct(q.abandonment),
            Text(_pct(sl), style=style),
            _secs(qd.asa) if qd else "",
            _secs(qd.aht) if qd else "",
            _ewt(q) if q.name != "all" else "",
            *staffed,
        )
    parts.append(qt)
    agents = Text("Agents  ")
    for state, count in sorted(snap.agents_by_state.items()):
        agents.append(f"{state.replace('_', ' ')} {count}  ", style=STATE_STYLE.get(state.split(":")[0], ""))
    parts.append(agents)
    if details.dialers:
        dt_ = Table(
            title="Outbound campaigns: abandoned calls, % of answered, against the limit",
            expand=False,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for col in ("campaign", "state", "in flight", "connected", "abandoned", "abandon %", "limit"):
            dt_.add_column(col, justify="left" if col in ("campaign", "state") else "right")
        for d in details.dialers:
            dt_.add_row(
                d.campaign,
                d.state,
                str(d.in_flight),
                str(d.connected),
                str(d.abandoned),
                Text(_pct1(d.abandonment), style="bold red" if d.over_limit else ""),
                _limit_text(d),
            )
        parts.append(dt_)
        for d in details.dialers:  # a line of its own each: wrapped at words, never cut
            line = Text(f"{d.campaign}: ", style="bold")
            line.append(d.pacing)
            if d.over_limit:
                line.append("  over its abandonment limit", style="bold red")
            parts.append(line)
    return Group(*parts)  # type: ignore[arg-type]


def plain_lines(snap: Snapshot, details: Details | None = None) -> list[str]:
    """For logs and CI: one line for the center, one per campaign (no line is cut)."""
    details = details or Details()
    t = snap.totals()
    head = []
    if snap.progress is not None:
        head.append(f"[{snap.progress * 100:3.0f}%]")
    head.append(details.time_label or f"t={_mmss(snap.elapsed)}")
    head.append(
        f"calls now {snap.calls_active}, so far {snap.calls_total}; offered {t.offered} answered "
        f"{t.answered} abandoned {t.abandoned} ({_pct(t.abandonment)}) SL {_pct(t.service_level)}"
    )
    for q in snap.queues:
        qd = details.queues.get(q.name)
        if not (q.waiting or q.offered):
            continue
        item = f"| {q.name}: {q.waiting} waiting, longest {_mmss(q.longest_wait)}, SL {_pct(q.service_level)}"
        if qd is not None:
            item += (
                f", ASA {_secs(qd.asa)} s, AHT {_secs(qd.aht)} s, "
                f"agents {qd.free} free/{qd.busy} busy/{qd.paused} paused"
            )
        head.append(item)
    agents = " ".join(f"{k}={v}" for k, v in sorted(snap.agents_by_state.items()) if v)
    if agents:
        head.append(f"| agents {agents}")
    if snap.monitoring:
        head.append(f"| supervisors listening {snap.monitoring}")
    lines = [" ".join(head)]
    for d in details.dialers:
        flag = " OVER THE LIMIT" if d.over_limit else ""
        lines.append(
            f"  campaign {d.campaign} ({d.state}): {d.pacing}; in flight {d.in_flight}, connected "
            f"{d.connected}, abandoned {d.abandoned} = {_pct1(d.abandonment)} of answered "
            f"(limit {_pct1(d.limit)}){flag}"
        )
    return lines


class LiveView:
    def __init__(
        self,
        source: Callable[[], Snapshot],
        *,
        details: Callable[[], Details] | None = None,
        title: str = "callcenter",
        interval: float = 0.5,
        plain_interval: float = 5.0,
        stream: TextIO | None = None,
        force_plain: bool | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.source = source
        self.details = details or Details
        self.title = title
        self.interval = interval
        self.plain_interval = plain_interval
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.plain = (not isatty) if force_plain is None else force_plain

    def _print_plain(self) -> None:
        for line in plain_lines(self.source(), self.details()):
            print(line, file=self.stream, flush=True)

    async def run(self) -> None:
        if self.plain:
            while True:
                self._print_plain()
                await self.clock.sleep(self.plain_interval)
        console = Console(file=self.stream)
        picture = render(self.source(), self.title, self.details())
        with Live(picture, console=console, refresh_per_second=4) as live:
            while True:
                await self.clock.sleep(self.interval)
                live.update(render(self.source(), self.title, self.details()))

    def final(self) -> None:
        """Print the last picture once (after the live view stopped)."""
        if self.plain:
            self._print_plain()
        else:
            Console(file=self.stream).print(render(self.source(), self.title, self.details()))
