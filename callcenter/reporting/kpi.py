"""Pure: the call center's KPIs, each defined once, computed from the counts the report SQL returns.

A call counts in the queue it *first* entered (``calls.queue``) and in the interval in which it entered
it (``calls.queued_at``); agent figures count in the interval of ``answered_at``. Waits are measured
from ``queued_at``. The SQL that gathers the counts is ``callcenter.store.reports``.

offered
    calls that entered the queue in the interval (calls still waiting included).
answered
    offered calls an agent answered (``answered_at`` set), whatever happened afterwards (transfers).
abandoned / short_abandoned
    offered calls that ended as ``abandoned_queue``; those whose wait was under the short-abandon
    threshold (``short_abandon_seconds``, default 5 s) are counted only in ``short_abandoned``.
abandon_rate
    ``abandoned / (offered - short_abandoned)``.
service_level (the variant is configurable; the target ``T`` is the queue's, default 20 s)
    ``offered``        answered within T / offered                       (the default)
    ``answered``       answered within T / answered
    ``no_short``       answered within T / (offered - short_abandoned)
    ``abandon_ok``     (answered within T + abandoned within T) / offered
asa_seconds
    average wait of answered calls (queued -> answered).
longest_wait_seconds
    the longest wait of any offered call (to answer, or to hang-up for the others).
avg_talk_seconds / avg_hold_seconds / avg_wrapup_seconds
    per answered call; talk excludes hold (when the ACD did not record talk, it is
    ``ended_at - answered_at - hold``).
aht_seconds
    average handle time = avg talk + avg hold + avg wrap-up.
transfers
    transfers made on offered calls.
fcr
    first-contact resolution: share of answered calls (with a caller number) after which the same
    caller did not call again within ``fcr_days`` days (default 7).
callbacks_requested / callbacks_completed
    offered calls whose caller asked for a callback; callback calls (``callback_of`` set) of the
    queue that reached the customer (disposition ``callback_completed``), in the interval they were
    placed. Callback calls are not counted as offered.
overflowed
    offered calls an overflow rule moved out of their first queue (to another queue or elsewhere).
occupancy
    busy / (busy + idle) agent time, where busy = reserved, ringing, on call, wrap-up and idle =
    available (``callcenter.reporting.records.BUSY_STATES`` / ``IDLE_STATES``); paused, not-ready and
    logged-out time does not count. Per agent in the agent report; in the queue report, over all agents
    of the center in that interval (or over the agents asked for). Finished states are counted in
    15-minute slots (kept by triggers as states end), so a report edge inside a slot counts that
    slot when the slot starts inside the report; states still open count up to now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class SLVariant(StrEnum):
    OFFERED = "offered"
    ANSWERED = "answered"
    NO_SHORT = "no_short"
    ABANDON_OK = "abandon_ok"


@dataclass(frozen=True)
class KpiSettings:
    sl_target_seconds: float = 20.0
    queue_targets: Mapping[str, float] = field(default_factory=dict)
    sl_variant: SLVariant = SLVariant.OFFERED
    short_abandon_seconds: float = 5.0
    fcr_days: int = 7


@dataclass(frozen=True)
class Counts:
    """What the SQL gathers for one (interval, queue) or (interval, agent)."""

    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned_all: int = 0  # every abandon, short ones included
    short_abandoned: int = 0
    abandoned_within: int = 0
    wait_answered_sum: float = 0.0
    longest_wait: float | None = None
    talk_sum: float = 0.0
    hold_sum: float = 0.0
    wrapup_sum: float = 0.0
    transfers: int = 0
    callbacks_requested: int = 0
    callbacks_completed: int = 0
    overflowed: int = 0
    fcr_eligible: int = 0
    fcr_resolved: int = 0
    busy_seconds: float = 0.0
    idle_seconds: float = 0.0


def ratio(num: float, den: float) -> float | None:
    return (num / den) if den > 0 else None


def service_level(c: Counts, variant: SLVariant) -> float | None:
    if variant is SLVariant.OFFERED:
        return ratio(c.answered_within, c.offered)
    if variant is SLVariant.ANSWERED:
        return ratio(c.answered_within, c.answered)
    if variant is SLVariant.NO_SHORT:
        return ratio(c.answered_within, c.offered - c.short_abandoned)
    return ratio(c.answered_within + c.abandoned_within, c.offered)


def derive(c: Counts, settings: KpiSettings) -> dict[str, float | int | None]:
    """The KPI columns of one report row (see the module docstring for each definition)."""
    avg_talk = ratio(c.talk_sum, c.answered)
    avg_hold = ratio(c.hold_sum, c.answered)
    avg_wrap = ratio(c.wrapup_sum, c.answered)
    aht = None if avg_talk is None else avg_talk + (avg_hold or 0.0) + (avg_wrap or 0.0)
    abandoned = c.abandoned_all - c.short_abandoned
    return {
        "offered": c.offered,
        "answered": c.answered,
        "abandoned": abandoned,
        "short_abandoned": c.short_abandoned,
        "abandon_rate": ratio(abandoned, c.offered - c.short_abandoned),
        "service_level": service_level(c, settings.sl_variant),
        "asa_seconds": ratio(c.wait_answered_sum, c.answered),
        "aht_seconds": aht,
        "longest_wait_seconds": c.longest_wait,
        "avg_talk_seconds": avg_talk,
        "avg_hold_seconds": avg_hold,
        "avg_wrapup_seconds": avg_wrap,
        "occupancy": ratio(c.busy_seconds, c.busy_seconds + c.idle_seconds),
        "transfers": c.transfers,
        "fcr": ratio(c.fcr_resolved, c.fcr_eligible),
        "callbacks_requested": c.callbacks_requested,
        "callbacks_completed": c.callbacks_completed,
        "overflowed": c.overflowed,
    }
