"""The login throttle: slows a guesser per (name, address), never locks anyone out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callcenter.web.throttle import LoginThrottle


def test_free_tries_then_doubling_delays_up_to_the_cap() -> None:
    t = LoginThrottle(free=3, base=1.0, max_delay=8.0)
    for _ in range(3):
        assert t.wait("lee", "10.0.0.9", 100.0) == 0.0
        t.failed("lee", "10.0.0.9", 100.0)
    assert t.wait("lee", "10.0.0.9", 100.0) == 1.0
    assert [t.delay(n) for n in range(3, 9)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert t.wait("lee", "10.0.0.9", 101.0) == 0.0  # the delay passes by itself: no lockout


def test_a_guesser_elsewhere_does_not_slow_the_owner() -> None:
    t = LoginThrottle(free=1)
    for i in range(50):
        t.failed("lee", "203.0.113.7", float(i))
    assert t.wait("lee", "203.0.113.7", 50.0) > 0
    assert t.wait("lee", "10.0.0.9", 50.0) == 0.0  # the owner at their own desk
    assert t.wait("kim", "203.0.113.7", 50.0) == 0.0


def test_success_clears_and_the_table_is_bounded() -> None:
    t = LoginThrottle(free=0, capacity=3)
    t.failed("lee", "a", 0.0)
    t.succeeded("lee", "a")
    assert t.wait("lee", "a", 0.0) == 0.0
    for c in "bcde":
        t.failed("lee", c, 0.0)
    assert t.wait("lee", "b", 0.0) == 0.0  # the oldest forgotten
    assert t.wait("lee", "e", 0.0) > 0


@given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=40))
def test_the_wait_never_exceeds_the_cap(times: list[float]) -> None:
    t = LoginThrottle(free=2, base=0.5, max_delay=30.0)
    now = 0.0
    for dt in sorted(times):
        now = dt
        t.failed("x", "y", now)
        assert 0.0 <= t.wait("x", "y", now) <= 30.0
