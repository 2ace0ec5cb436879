"""The PIN guard shared by agents' login and supervisors' monitoring."""

from __future__ import annotations

from callcenter.acd.pin import PinCheck, PinGuard


def test_failures_lock_then_the_lockout_expires() -> None:
    guard = PinGuard(max_failures=3, lockout_seconds=60)
    assert not guard.failure("s", 0) and not guard.failure("s", 1)
    assert guard.failure("s", 2) and guard.locked("s", 3) == 62
    assert guard.locked("s", 62) is None and guard.failures == {}
    guard.failure("s", 100)
    guard.success("s")
    assert guard.failures == {}


def test_check_counts_wrong_pins_and_refuses_while_locked() -> None:
    guard = PinGuard(max_failures=3, lockout_seconds=60)
    assert guard.check("a", "0000", "1234", 0) is PinCheck.WRONG
    assert guard.check("a", "9999", "1234", 1) is PinCheck.WRONG
    assert guard.check("b", "0000", "1234", 1) is PinCheck.WRONG  # counted per id
    assert guard.check("a", "1111", "1234", 2) is PinCheck.LOCKED_NOW
    assert guard.check("a", "1234", "1234", 30) is PinCheck.LOCKED  # even the right PIN waits
    assert guard.check("a", "1234", "1234", 62) is PinCheck.OK
    assert "a" not in guard.failures and guard.failures["b"] == [1]


def test_a_right_pin_clears_the_count() -> None:
    guard = PinGuard(max_failures=2, lockout_seconds=60)
    assert guard.check("a", "0000", "1234", 0) is PinCheck.WRONG
    assert guard.check("a", "1234", "1234", 1) is PinCheck.OK
    assert guard.check("a", "0000", "1234", 2) is PinCheck.WRONG


def test_wrong_pins_older_than_the_window_are_forgotten() -> None:
    guard = PinGuard(max_failures=3, lockout_seconds=60)
    assert guard.check("a", "0", "1234", 0) is PinCheck.WRONG
    assert guard.check("a", "0", "1234", 10) is PinCheck.WRONG
    assert guard.check("a", "0", "1234", 65) is PinCheck.WRONG  # the one at 0 no longer counts
    assert guard.failures["a"] == [10, 65]
    assert guard.check("a", "0", "1234", 66) is PinCheck.LOCKED_NOW
    assert guard.locked("a", 66) == 126


def test_nothing_typed_is_refused_but_never_counted() -> None:
    """An empty entry (a timeout, a phone that could not send DTMF, a prompt that failed) is not
    a guess: it is refused without counting, however often, and locks nobody out."""
    guard = PinGuard(max_failures=2, lockout_seconds=60)
    for t in range(10):
        assert guard.check("a", "", "1234", t) is PinCheck.EMPTY
    assert guard.failures == {} and guard.locked_until == {}
    assert guard.check("a", "0000", "1234", 11) is PinCheck.WRONG
    assert guard.check("a", "", "1234", 12) is PinCheck.EMPTY
    assert guard.failures == {"a": [11]}
    assert guard.check("a", "1234", "1234", 13) is PinCheck.OK


def test_a_locked_id_stays_locked_whatever_is_typed() -> None:
    guard = PinGuard(max_failures=1, lockout_seconds=60)
    assert guard.check("a", "0000", "1234", 0) is PinCheck.LOCKED_NOW
    assert guard.check("a", "", "1234", 1) is PinCheck.LOCKED
