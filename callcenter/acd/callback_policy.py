"""Pure: when a callback may ring its customer: the callback policy's calling window, in every
time zone the number may be in (``callcenter.phone.zones_for``), as the dialer does for contacts.

``next_open(window, zones, now)`` is ``now`` when the window is open in every zone, else the first
instant it is (a window opens at some zone's window start), or None when it never is within a
week. Never reads the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from callcenter.config import model as cm

HORIZON_DAYS = 8


def is_open(window: cm.CallingWindow, zones: Sequence[str], at: float) -> bool:
    for zone in zones:
        local = dt.datetime.fromtimestamp(at, ZoneInfo(zone))
        if local.weekday() not in window.days:
            return False
        t = local.time().replace(tzinfo=None)
        if t < window.start or (window.end != dt.time(0, 0) and t >= window.end):
            return False
    return True


def next_open(window: cm.CallingWindow, zones: Sequence[str], now: float) -> float | None:
    if is_open(window, zones, now):
        return now
    candidates: set[float] = set()
    for zone in zones:
        tz = ZoneInfo(zone)
        today = dt.datetime.fromtimestamp(now, tz).date()
        for d in range(HORIZON_DAYS):
            day = today + dt.timedelta(days=d)
            start = dt.datetime.combine(day, window.start, tzinfo=tz).timestamp()
            if start > now:
                candidates.add(start)
    for at in sorted(candidates):
        if is_open(window, zones, at):
            return at
    return None
