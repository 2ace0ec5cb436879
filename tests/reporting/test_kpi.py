"""The KPI definitions of callcenter.reporting.kpi on hand-made counts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.reporting.kpi import Counts, KpiSettings, SLVariant, derive, ratio, service_level


def test_every_kpi_from_known_counts() -> None:
    c = Counts(
        offered=10,
        answered=6,
        answered_within=4,
        abandoned_all=3,
        short_abandoned=1,
        abandoned_within=2,
        wait_answered_sum=120.0,
        longest_wait=95.0,
        talk_sum=600.0,
        hold_sum=60.0,
        wrapup_sum=120.0,
        transfers=2,
        callbacks_requested=1,
        callbacks_completed=1,
        overflowed=1,
        fcr_eligible=5,
        fcr_resolved=4,
        busy_seconds=2700.0,
        idle_seconds=900.0,
    )
    d = derive(c, KpiSettings())
    assert d["abandoned"] == 2 and d["short_abandoned"] == 1
    assert d["abandon_rate"] == pytest.approx(2 / 9)
    assert d["service_level"] == pytest.approx(0.4)
    assert d["asa_seconds"] == pytest.approx(20.0)
    assert d["avg_talk_seconds"] == pytest.approx(100.0)
    assert d["avg_hold_seconds"] == pytest.approx(10.0)
    assert d["avg_wrapup_seconds"] == pytest.approx(20.0)
    assert d["aht_seconds"] == pytest.approx(130.0)
    assert d["occupancy"] == pytest.approx(0.75)
    assert d["fcr"] == pytest.approx(0.8)
    assert d["longest_wait_seconds"] == 95.0
    assert (d["transfers"], d["callbacks_requested"], d["callbacks_completed"], d["overflowed"]) == (
        2,
        1,
        1,
        1,
    )
    assert service_level(c, SLVariant.ANSWERED) == pytest.approx(4 / 6)
    assert service_level(c, SLVariant.NO_SHORT) == pytest.approx(4 / 9)
    assert service_level(c, SLVariant.ABANDON_OK) == pytest.approx(6 / 10)


def test_empty_interval_has_no_ratios() -> None:
    d = derive(Counts(), KpiSettings())
    assert d["offered"] == 0
    for key in ("service_level", "asa_seconds", "aht_seconds", "occupancy", "fcr", "abandon_rate"):
        assert d[key] is None


def test_ratio_of_nothing_is_none() -> None:
    assert ratio(1, 0) is None


@settings(max_examples=150, deadline=None)
@given(
    offered=st.integers(0, 500),
    data=st.data(),
)
def test_ratios_stay_within_bounds(offered: int, data: st.DataObject) -> None:
    answered = data.draw(st.integers(0, offered))
    within = data.draw(st.integers(0, answered))
    abandoned = data.draw(st.integers(0, offered - answered))
    short = data.draw(st.integers(0, abandoned))
    ab_within = data.draw(st.integers(0, abandoned))
    c = Counts(
        offered=offered,
        answered=answered,
        answered_within=within,
        abandoned_all=abandoned,
        short_abandoned=short,
        abandoned_within=ab_within,
    )
    for variant in SLVariant:
        sl = service_level(c, variant)
        assert sl is None or 0.0 <= sl <= 1.0
    rate = derive(c, KpiSettings())["abandon_rate"]
    assert rate is None or 0.0 <= rate <= 1.0
