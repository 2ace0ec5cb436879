"""The wallboard snapshot, its plain line, and the rich live view."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from callcenter.clock import FakeClock
from callcenter.commands.demo_view import LiveView, render
from callcenter.reporting.wallboard import DialerView, QueueView, Snapshot, plain_line


def _snap() -> Snapshot:
    return Snapshot(
        at=1_700_000_000.0,
        elapsed=125.0,
        duration=250.0,
        queues=(
            QueueView(
                "sales",
                waiting=3,
                longest_wait=42.0,
                offered=10,
                answered=7,
                abandoned=1,
                answered_in_target=6,
            ),
            QueueView("support", offered=0),
        ),
        agents_by_state={"available": 2, "on_call": 5, "wrap_up": 1, "paused": 0},
        dialers=(DialerView("renewals", "predictive", dial_ratio=1.6, abandonment_rate=0.012),),
        calls_active=8,
        calls_total=20,
    )


def test_service_level_counts_abandons_against() -> None:
    q = _snap().queues[0]
    assert q.service_level == 0.6
    assert q.abandonment == 0.1
    assert _snap().queues[1].service_level is None
    assert _snap().totals().offered == 10


def test_plain_line_says_what_an_operator_looks_for() -> None:
    line = plain_line(_snap())
    assert line.startswith("[ 50%] t=2:05")
    assert "SL 60%" in line and "sales:3w/0:42" in line
    assert "on_call=5" in line and "paused" not in line
    assert "dialer renewals predictive running gain 1.60 abandon 1.2%" in line
    assert _snap().to_dict()["queues"][0]["service_level"] == 0.6


def test_rich_render_draws_queues_and_agents() -> None:
    out = io.StringIO()
    Console(file=out, width=120).print(render(_snap()))
    text = out.getvalue()
    assert "sales" in text and "support" in text and "60%" in text
    assert "on_call 5" in text and "predictive" in text


async def test_plain_mode_prints_periodic_lines() -> None:
    out = io.StringIO()
    clock = FakeClock()
    view = LiveView(_snap, stream=out, plain_interval=5.0, clock=clock)
    assert view.plain  # a StringIO is not a terminal
    task = asyncio.create_task(view.run())
    await clock.wait_for_sleepers(1)
    assert out.getvalue().count("\n") == 1
    clock.advance(5.0)
    await clock.wait_for_sleepers(1)
    assert out.getvalue().count("\n") == 2
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert "SL 60%" in out.getvalue()
