"""Predictive vs progressive on a small seeded day (the bench's model, scaled down)."""

from __future__ import annotations

from bench.dialer import simulate
from callcenter.outbound.dialer import Mode


def test_predictive_beats_progressive_within_the_abandonment_limit() -> None:
    kw = {"agents": 25, "contacts": 5000, "hours": 1.5, "seed": 3}
    progressive = simulate(Mode.PROGRESSIVE, **kw)  # type: ignore[arg-type]
    predictive = simulate(Mode.PREDICTIVE, **kw)  # type: ignore[arg-type]
    assert progressive["abandoned"] == 0  # one line per free agent never abandons anyone
    assert predictive["abandonment_rate"] <= 0.03
    assert predictive["connects_per_agent_hour"] > 1.1 * progressive["connects_per_agent_hour"]
    assert predictive["occupancy"] > progressive["occupancy"]
