"""Pure: the disposition (wrap-up code) of a call as the call log stores it, and its report rows.

``DispositionRecord`` lands in ``call_dispositions`` (migration ``*_dispositions.sql``) through
the call-log writer, one row per (call, agent), merged like ``calls``: the later record wins
column by column, so a disposition given late replaces the ``none`` a timed-out wrap-up stored.
``outcome`` says how the row came to be: ``given`` by a person, or ``timed_out`` /
``logged_out`` / ``no_wrap_up`` when the wrap-up ended without the code its queue or campaign
asks for (``code`` is then ``none``).

``shares`` turns counts per (dimension, name, code) into report rows with each code's share of its
group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from callcenter.reporting.records import Column, Row, TableSpec

OUTCOMES: Final = ("given", "timed_out", "logged_out", "no_wrap_up")
DIMENSIONS: Final = ("queue", "campaign", "agent")

CALL_DISPOSITIONS = TableSpec(
    "call_dispositions",
    tuple(
        Column(name, kind)  # type: ignore[arg-type]
        for name, kind in (
            ("call_id", "text"),
            ("agent_id", "text"),
            ("queue", "text"),
            ("campaign_id", "text"),
            ("code", "text"),
            ("label", "text"),
            ("notes", "text"),
            ("outcome", "text"),
            ("given_by", "text"),
            ("at", "ts"),
            ("revision", "float"),
        )
    ),
    key=("call_id", "agent_id"),
    mode="upsert",
    revision="revision",
)


@dataclass(frozen=True, slots=True)
class DispositionRecord:
    TABLE: ClassVar[TableSpec] = CALL_DISPOSITIONS

    call_id: str
    agent_id: str
    at: float
    queue: str | None = None
    campaign_id: str | None = None
    code: str | None = None
    label: str | None = None
    notes: str | None = None
    outcome: str = "given"
    given_by: str | None = None

    def row(self) -> Row:
        return (
            self.call_id,
            self.agent_id,
            self.queue,
            self.campaign_id,
            self.code,
            self.label,
            self.notes,
            self.outcome,
            self.given_by,
            self.at,
            self.at,
        )


def shares(counts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{dimension, name, code, label, calls, share}`` from counts ``{dimension, name, code,
    label, calls}``: ``share`` is the fraction of the group's (dimension, name) calls, rounded to
    four places; ordered by dimension, name, then most calls first."""
    items = [dict(c) for c in counts]
    totals: dict[tuple[str, str], int] = {}
    for c in items:
        key = (str(c["dimension"]), str(c["name"]))
        totals[key] = totals.get(key, 0) + int(c["calls"])
    out = []
    for c in items:
        total = totals[(str(c["dimension"]), str(c["name"]))]
        share = round(int(c["calls"]) / total, 4) if total else 0.0
        out.append({**c, "calls": int(c["calls"]), "share": share})
    order = {d: i for i, d in enumerate(DIMENSIONS)}
    out.sort(key=lambda r: (order.get(r["dimension"], 9), r["name"], -r["calls"], r["code"]))
    return out
