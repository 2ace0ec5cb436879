"""Shell: the live terminal view of the demo (rich), or plain periodic lines when not a terminal.

``LiveView(source, interval=...)`` polls ``source() -> Snapshot`` and draws it; ``async run()`` until
cancelled. On a terminal: a progress bar, a queue table, agents by state and dialer pacing, redrawn in
place. Otherwise (CI, a pipe): one ``plain_line`` every ``plain_interval`` seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from callcenter.clock import Clock, RealClock
from callcenter.reporting.wallboard import Snapshot, plain_line

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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def render(snap: Snapshot, title: str = "callcenter") -> Group:
    parts: list[object] = []
    header = Text(f"{title}  ", style="bold")
    header.append(f"elapsed {_mmss(snap.elapsed)}  calls active {snap.calls_active}  ")
    header.append(f"total {snap.calls_total}  monitoring {snap.monitoring}")
    parts.append(header)
    if snap.progress is not None:
        parts.append(ProgressBar(total=1.0, completed=snap.progress, width=60))
    qt = Table(title="Queues", expand=False)
    for col in ("queue", "waiting", "longest", "offered", "answered", "abandoned", "SL", "EWT"):
        qt.add_column(col, justify="right" if col != "queue" else "left")
    for q in (*snap.queues, snap.totals()):
        sl = q.service_level
        style = "" if sl is None else ("green" if sl >= q.sl_target_fraction else "red")
        qt.add_row(
            q.name,
            str(q.waiting),
            _mmss(q.longest_wait),
            str(q.offered),
            str(q.answered),
            str(q.abandoned),
            Text(_pct(sl), style=style),
            _mmss(q.ewt),
        )
    parts.append(qt)
    agents = Text("Agents  ")
    for state, count in sorted(snap.agents_by_state.items()):
        agents.append(f"{state} {count}  ", style=STATE_STYLE.get(state.split(":")[0], ""))
    parts.append(agents)
    for d in snap.dialers:
        parts.append(
            Text(
                f"Dialer {d.campaign}: {d.mode} {d.state}, gain {d.dial_ratio:.2f}, in flight "
                f"{d.in_flight}, attempts {d.attempts}, connected {d.connected}, abandoned "
                f"{d.abandoned} ({d.abandonment_rate * 100:.1f}% of live answers) {d.reason}"
            )
        )
    return Group(*parts)  # type: ignore[arg-type]


class LiveView:
    def __init__(
        self,
        source: Callable[[], Snapshot],
        *,
        title: str = "callcenter",
        interval: float = 0.5,
        plain_interval: float = 5.0,
        stream: TextIO | None = None,
        force_plain: bool | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.source = source
        self.title = title
        self.interval = interval
        self.plain_interval = plain_interval
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.plain = (not isatty) if force_plain is None else force_plain

    async def run(self) -> None:
        if self.plain:
            while True:
                print(plain_line(self.source()), file=self.stream, flush=True)
                await self.clock.sleep(self.plain_interval)
        console = Console(file=self.stream)
        with Live(render(self.source(), self.title), console=console, refresh_per_second=4) as live:
            while True:
                await self.clock.sleep(self.interval)
                live.update(render(self.source(), self.title))

    def final(self) -> None:
        """Print the last picture once (after the live view stopped)."""
        if self.plain:
            print(plain_line(self.source()), file=self.stream, flush=True)
        else:
            Console(file=self.stream).print(render(self.source(), self.title))
