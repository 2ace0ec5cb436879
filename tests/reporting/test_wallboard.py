"""The wallboard snapshot, its plain line, and the rich live view."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from callcenter.clock import FakeClock
from callcenter.commands.demo_view import (
    Details,
    DialerDetail,
    LiveView,
    QueueDetail,
    agents_by_queue,
    plain_lines,
    plain_pacing,
    render,
    time_label,
)
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
    assert "on call 5" in text


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


# ------------------------------------------------------------------ the demo's live view, in plain words
LONG_PACING = plain_pacing(
    "predictive",
    "progressive: dial 2 (abandonment at the guard: progressive until back under target; answer rate "
    "30.0%, agents free soon 1.0, people expected 0.6, predicted abandonment 0.00% vs target 2.00%)",
    fallback=True,
)


def _details() -> Details:
    return Details(
        queues={"sales": QueueDetail(free=0, busy=2, paused=1, asa=12.4, aht=187.0)},
        dialers=(
            DialerDetail("renewals", "running", LONG_PACING, in_flight=2, connected=40, abandoned=9,
                         abandonment=0.18, limit=0.03),
            DialerDetail("reminders", "running", plain_pacing("progressive", None, fallback=False),
                         connected=10, abandoned=0, abandonment=0.0, limit=0.03),
        ),
        time_label=time_label(1_700_000_000.0, "America/New_York", simulated=True),
    )  # fmt: skip


def test_pacing_in_plain_words() -> None:
    assert LONG_PACING == (
        "predictive: 2 new calls now, abandonment near its limit: one call per free agent until it is "
        "back under target"
    )
    warm = plain_pacing(
        "predictive",
        "progressive: dial 1 (warming up: 3/100 attempts measured; answer rate 0.0%, x)",
        fallback=False,
    )
    assert "learns the answer rate (3/100 calls measured)" in warm
    paused = plain_pacing(
        "progressive",
        "progressive: dial 0 (all 2 agent(s) paused or not ready; answer rate 0%",
        fallback=False,
    )
    assert paused == "progressive: 0 new calls now, all 2 agent(s) paused or not ready"
    for text in (LONG_PACING, warm, paused):
        assert "gain" not in text and "fallback" not in text


def test_the_live_view_fits_and_flags_a_campaign_over_its_limit() -> None:
    out = io.StringIO()
    Console(file=out, width=80).print(render(_snap(), "demo", _details()))
    text = out.getvalue()
    assert "simulated time Tue 17:13 EST" in text
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines()), text
    words = " ".join(text.split())
    assert "renewals running 2 40 9 18.0% 3.0% OVER" in words
    assert "reminders running 0 10 0 0.0% 3.0%" in words  # under its limit: not flagged
    assert words.count("OVER") == 1 and words.count("over its abandonment limit") == 1
    assert f"renewals: {LONG_PACING}" in words  # wrapped at words, never cut
    # ASA, AHT, abandonment and the agents who can take sales calls
    assert "12" in text and "187" in text and "10%" in text
    rows = [line.split() for line in text.splitlines() if line.split()]
    sales = next(r for r in rows if r[0] == "sales")
    support = next(r for r in rows if r[0] == "support")
    assert sales[-3:] == ["0", "2", "1"]
    assert support[1:] == ["0", "0:00", "0", "0", "-", "-", "-"], support  # no EWT: never had a call


def test_plain_lines_put_each_campaign_on_its_own_line() -> None:
    lines = plain_lines(_snap(), _details())
    assert len(lines) == 3
    assert lines[0].startswith("[ 50%] simulated time Tue 17:13 EST")
    assert "ASA 12 s, AHT 187 s, agents 0 free/2 busy/1 paused" in lines[0]
    assert lines[1].startswith("  campaign renewals (running): predictive: 2 new calls now")
    assert lines[1].endswith("abandoned 9 = 18.0% of answered (limit 3.0%) OVER THE LIMIT")
    assert not lines[2].endswith("OVER THE LIMIT")


def test_agents_are_counted_for_the_queues_whose_skills_they_have() -> None:
    from tests.centers import example

    config = example()
    status = {a: "available" for a in config.agents}
    counts = agents_by_queue(config, status)
    for qid, q in config.queues.items():
        able = [
            a for a in config.agents.values() if all(a.skills.get(s, 0) >= lv for s, lv in q.skills.items())
        ]
        assert counts[qid] == (len(able), 0, 0)
    first = next(iter(config.agents))
    paused = agents_by_queue(config, {**status, first: "paused"})
    assert sum(c[2] for c in paused.values()) >= 1
