"""When a callback may ring its customer: the policy's window in every zone of the number."""

from __future__ import annotations

import datetime as dt

from callcenter.acd.callback_policy import is_open, next_open
from callcenter.config import model as m

WEEKDAYS = m.CallingWindow(dt.time(9), dt.time(21), frozenset(range(5)))


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_the_window_holds_in_every_zone_of_the_number() -> None:
    ny, la = "America/New_York", "America/Los_Angeles"
    friday_noon_ny = utc(2027, 1, 15, 17, 0)  # 12:00 in New York, 09:00 in Los Angeles
    assert is_open(WEEKDAYS, (ny,), friday_noon_ny) and is_open(WEEKDAYS, (ny, la), friday_noon_ny)
    early = utc(2027, 1, 15, 15, 0)  # 10:00 in New York, 07:00 in Los Angeles
    assert is_open(WEEKDAYS, (ny,), early) and not is_open(WEEKDAYS, (ny, la), early)
    assert next_open(WEEKDAYS, (ny, la), early) == utc(2027, 1, 15, 17, 0)
    # Friday 22:00 in New York: closed until Monday 09:00 (the weekend is not in the window).
    late = utc(2027, 1, 16, 3, 0)
    assert next_open(WEEKDAYS, (ny,), late) == utc(2027, 1, 18, 14, 0)
    assert next_open(m.CallingWindow(dt.time(9), dt.time(21), frozenset()), (ny,), late) is None
    # A window until midnight.
    evening = m.CallingWindow(dt.time(18), dt.time(0), frozenset(range(7)))
    assert is_open(evening, (ny,), utc(2027, 1, 16, 4, 59)) and not is_open(
        evening, (ny,), utc(2027, 1, 16, 5, 0)
    )
