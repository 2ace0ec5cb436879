"""Erlang C against published worked examples, plus properties of the staffing search."""

from __future__ import annotations

import math
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.reporting.erlang import (
    agents_needed,
    asa,
    erlang_b,
    erlang_c,
    evaluate,
    parse_target,
    scheduled,
    service_level,
)


def test_call_centre_helper_worked_example() -> None:
    # Call Centre Helper, "Erlang C formula - made simple with an easy worked example":
    # 100 calls in 30 minutes, AHT 180 s, target 80 % in 20 s, shrinkage 30 %.
    # Published steps: 10 Erlangs; 11 agents Pw 68.2 % SL 39.0 %; 12 agents Pw 44.9 % SL 64.0 %;
    # 13 agents Pw 28.5 % SL 79.6 %; 14 agents Pw 17.4 % SL 88.8 %, ASA 7.8 s, occupancy 71.4 %;
    # 20 agents to schedule with 30 % shrinkage.
    published = {11: (0.682, 0.390), 12: (0.449, 0.640), 13: (0.285, 0.796), 14: (0.174, 0.888)}
    for n, (pw, sl) in published.items():
        s = evaluate(n, 100, 1800, 180, target_seconds=20)
        assert s.traffic_erlangs == pytest.approx(10.0)
        assert s.probability_wait == pytest.approx(pw, abs=0.0006)
        assert s.service_level == pytest.approx(sl, abs=0.0006)
    best = agents_needed(100, 1800, 180, target_level=0.8, target_seconds=20, shrinkage=0.3)
    assert best.agents == 14 and best.scheduled == 20
    assert best.asa_seconds == pytest.approx(7.8, abs=0.05)
    assert best.occupancy == pytest.approx(0.714, abs=0.0005)


def test_westbay_worked_example() -> None:
    # Westbay Engineers, "The Erlang-C formula": 360 calls per half hour, 240 s calls, 55 agents,
    # 15 s target: 48 Erlangs, occupancy 87.3 %, Pw 0.2387 (23.9 %), ASA 8.2 s, service level 84.6 %.
    s = evaluate(55, 360, 1800, 240, target_seconds=15)
    assert s.traffic_erlangs == pytest.approx(48.0)
    assert s.occupancy == pytest.approx(0.873, abs=0.0005)
    assert s.probability_wait == pytest.approx(0.2387, abs=0.0005)
    assert s.asa_seconds == pytest.approx(8.2, abs=0.05)
    assert s.service_level == pytest.approx(0.846, abs=0.0005)


def test_erlang_b_textbook_values() -> None:
    # Erlang B tables: 10 Erlangs on 10 servers block 21.46 %; 5 Erlangs on 10 servers 1.84 %.
    assert erlang_b(10, 10.0) == pytest.approx(0.2146, abs=0.0001)
    assert erlang_b(10, 5.0) == pytest.approx(0.0184, abs=0.0001)
    assert erlang_b(0, 3.0) == 1.0


def test_edges() -> None:
    assert erlang_c(5, 5.0) == 1.0 and service_level(5, 5.0, 100, 20) == 0.0 and math.isinf(asa(5, 5.0, 100))
    assert erlang_c(3, 0.0) == 0.0 and asa(3, 0.0, 100) == 0.0
    zero = agents_needed(0, 1800, 180)
    assert zero.agents == 0 and zero.service_level == 1.0
    assert scheduled(14, 0.0) == 14 and scheduled(7, 0.3) == 10
    with pytest.raises(ValueError):
        scheduled(1, 1.0)
    with pytest.raises(ValueError):
        agents_needed(10, 0, 180)
    capped = agents_needed(100, 1800, 180, max_occupancy=0.6)
    assert capped.agents == 17 and capped.occupancy <= 0.6


def test_parse_target() -> None:
    assert parse_target("80/20") == (0.8, 20.0)
    assert parse_target("90/15.5") == (0.9, 15.5)
    for bad in ("80", "x/20", "100/20", "0/5", "80/-1"):
        with pytest.raises(ValueError):
            parse_target(bad)


@settings(max_examples=150, deadline=None)
@given(
    calls=st.floats(1, 3000),
    aht=st.floats(10, 900),
    level=st.floats(0.5, 0.95),
    secs=st.floats(0, 120),
)
def test_agents_needed_is_the_minimum_that_meets_the_target(
    calls: float, aht: float, level: float, secs: float
) -> None:
    s = agents_needed(calls, 1800, aht, target_level=level, target_seconds=secs)
    assert s.service_level >= level
    assert s.agents > s.traffic_erlangs
    assert service_level(s.agents - 1, s.traffic_erlangs, aht, secs) < level
    assert 0.0 <= s.probability_wait <= 1.0 and 0.0 < s.occupancy < 1.0


@settings(max_examples=150, deadline=None)
@given(a=st.floats(0.1, 200), extra=st.integers(1, 40))
def test_more_agents_never_hurt(a: float, extra: int) -> None:
    n = math.floor(a) + extra
    assert erlang_c(n + 1, a) <= erlang_c(n, a) + 1e-12
    assert service_level(n + 1, a, 180, 20) >= service_level(n, a, 180, 20) - 1e-12


def test_staffing_command_single_interval(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    import json

    from callcenter.cli import main

    argv = ["staffing", "--calls", "100", "--interval", "1800", "--aht", "180", "--target", "80/20"]
    assert main([*argv, "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["agents"] == 14 and d["probability_wait"] == pytest.approx(0.1741, abs=1e-4)
    assert d["service_level"] == pytest.approx(0.8884, abs=1e-4)
    assert d["asa_seconds"] == pytest.approx(7.84, abs=0.01) and d["occupancy"] == pytest.approx(
        0.7143, abs=1e-4
    )
    assert main([*argv, "--shrinkage", "0.3", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["agents"], d["agents_on_phones"]) == (20, 14)
    assert main([*argv, "--format", "table"]) == 0
    assert "88.8%" in capsys.readouterr().out
    assert main([*argv, "--target", "80"]) == 2
    assert main([*argv, "--shrinkage", "1.5"]) == 2


def test_staffing_command_forecast_csv(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    import json

    from callcenter.cli import main

    good = tmp_path / "forecast.csv"
    good.write_text("start,calls,aht\n08:00,40,200\n08:30,100\n09:00,0,170\n")
    assert main(["staffing", "--forecast", str(good), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["start"], r["agents"]) for r in rows] == [("08:00", 7), ("08:30", 14), ("09:00", 0)]
    bad = tmp_path / "bad.csv"
    bad.write_text("start,calls\n08:00,12\n08:30,many\n")
    assert main(["staffing", "--forecast", str(bad)]) == 2
    assert "bad.csv:3" in capsys.readouterr().err


def test_erlang_a_tends_to_erlang_c_with_endless_patience() -> None:
    from callcenter.reporting.erlang import erlang_a

    # A day of mean patience: near capacity (11 agents, 10 Erlangs) a few callers still give up.
    for n, tol in ((11, 0.01), (12, 0.002), (13, 0.002), (14, 0.002), (15, 0.002)):
        c = evaluate(n, 100, 1800, 180, target_seconds=20)
        a = erlang_a(n, 100, 1800, 180, 86_400, 20)
        assert a.probability_wait == pytest.approx(c.probability_wait, abs=tol)
        assert a.service_level == pytest.approx(c.service_level, abs=tol)
        assert a.asa_seconds == pytest.approx(c.asa_seconds, rel=10 * tol)
        assert a.probability_abandon < tol


def test_erlang_a_impatient_callers_need_fewer_agents_but_abandon() -> None:
    from callcenter.reporting.erlang import agents_needed_erlang_a, erlang_a

    patient = erlang_a(12, 100, 1800, 180, 600, 20)
    impatient = erlang_a(12, 100, 1800, 180, 60, 20)
    assert impatient.probability_abandon > patient.probability_abandon > 0
    assert impatient.probability_wait < patient.probability_wait
    assert impatient.asa_seconds < patient.asa_seconds
    best = agents_needed_erlang_a(100, 1800, 180, 120, target_level=0.8, target_seconds=20)
    assert best.service_level >= 0.8
    assert erlang_a(best.agents - 1, 100, 1800, 180, 120, 20).service_level < 0.8
    assert best.agents <= agents_needed(100, 1800, 180).agents
    # Under load that Erlang C cannot carry (N <= A) Erlang A still has an answer.
    overload = erlang_a(9, 100, 1800, 180, 60, 20)
    assert 0 < overload.probability_abandon < 1 and overload.occupancy < 1
    with pytest.raises(ValueError):
        erlang_a(10, 100, 1800, 180, 0, 20)


def test_staffing_command_erlang_a(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from callcenter.cli import main

    argv = ["staffing", "--calls", "100", "--interval", "1800", "--aht", "180", "--target", "80/20"]
    assert main([*argv, "--patience", "120", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "erlang_a" and d["agents"] == 12 and d["service_level"] >= 0.8
    assert 0 < d["probability_abandon"] < 0.1
    assert main([*argv, "--patience", "0"]) == 2
