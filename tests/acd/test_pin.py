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


def test_sources_count_and_lock_apart_and_never_the_owner_itself() -> None:
    guard = PinGuard(max_failures=2, lockout_seconds=60)
    phone = ("endpoint:super9001", "caller:2901")
    assert guard.check("9001", "0", "1234", 0, sources=phone) is PinCheck.WRONG
    assert guard.check("9001", "0", "1234", 1, sources=phone) is PinCheck.LOCKED_NOW
    assert guard.check("9001", "1234", "1234", 2, sources=phone) is PinCheck.LOCKED
    # the same caller ID from another phone is locked too: each source refuses on its own
    assert guard.check("9001", "1234", "1234", 2, sources=("endpoint:x", "caller:2901")) is PinCheck.LOCKED
    assert guard.locked_from("9001", 2, ("endpoint:super9001",)) == 61
    # the owner is not locked: another source, or none, still gets in with the right PIN
    assert guard.check("9001", "1234", "1234", 3, sources=("api:10.0.0.7",)) is PinCheck.OK
    assert guard.check("9001", "1234", "1234", 3) is PinCheck.OK
    assert guard.locked("9001", 3) is None
    assert guard.check("9001", "1234", "1234", 61, sources=phone) is PinCheck.OK
