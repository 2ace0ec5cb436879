"""The record types and their merge rule (pure): any order of partial updates gives one same row."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.reporting.records import (
    CALLS,
    TABLES,
    AgentStateChange,
    CallEvent,
    CallRecord,
    Disposition,
    EventKind,
    SeqSource,
    TableSpec,
    group_rows,
    merge_rows,
)

FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "disposition": st.sampled_from(list(Disposition)),
        "agent_id": st.sampled_from(["1001", "1002", "1003"]),
        "queue": st.sampled_from(["sales", "support"]),
        "answered_at": st.floats(1e9, 2e9),
        "hold_seconds": st.floats(0, 600),
        "transfers": st.integers(0, 5),
    },
)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(FIELDS, min_size=1, max_size=6),
    revisions=st.lists(st.floats(1e9, 2e9), min_size=6, max_size=6, unique=True),
    order=st.randoms(use_true_random=False),
    replay=st.lists(st.integers(0, 5), max_size=6),
)
def test_merge_latest_known_value_wins_and_replays_change_nothing(
    parts: list[dict[str, object]], revisions: list[float], order: object, replay: list[int]
) -> None:
    records = [CallRecord("c1", revisions[i], **p) for i, p in enumerate(parts)]  # type: ignore[arg-type]
    in_order = sorted(records, key=lambda r: r.at)
    (row,) = merge_rows(CALLS, [r.row() for r in in_order])
    for name in ("disposition", "agent_id", "queue", "answered_at", "hold_seconds", "transfers"):
        known = [(r.at, r.row()[CALLS.index(name)]) for r in records if getattr(r, name) is not None]
        assert row[CALLS.index(name)] == (max(known)[1] if known else None)
    assert row[CALLS.index("revision")] == max(r.at for r in records)
    # A replay of any records already merged (a crash between COMMIT and acknowledgement) is a no-op.
    again = [records[i % len(records)].row() for i in replay]
    assert merge_rows(CALLS, [row, *again]) == [row]
    # In any arrival order, what the newest record knows wins (the final disposition wins).
    shuffled = [r.row() for r in records]
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    (any_order,) = merge_rows(CALLS, shuffled)
    newest = max(records, key=lambda r: r.at).row()
    assert all(v is None or any_order[i] == v for i, v in enumerate(newest))


def test_rows_match_their_table_layout() -> None:
    for spec in TABLES:
        assert len(set(spec.column_names)) == len(spec.columns)
        assert set(spec.key) <= set(spec.column_names)
        assert TableSpec.from_wire(json.loads(json.dumps(spec.to_wire()))) == spec
    ev = CallEvent("c1", 1.5, EventKind.HOLD, detail={"b": 1, "a": "x"})
    assert len(ev.row()) == len(ev.TABLE.columns)
    assert ev.row()[-1] == '{"a":"x","b":1}'
    assert (
        CallRecord("c1", 1.0, disposition=Disposition.VOICEMAIL).row()[CALLS.index("disposition")]
        == "voicemail"
    )


def test_group_rows_splits_per_table_and_merges_upserts() -> None:
    items = [
        (r.TABLE, r.row())
        for r in (
            CallRecord("c1", 1.0, queue="sales"),
            CallEvent("c1", 1.0, EventKind.QUEUE_ENTER, seq=1),
            AgentStateChange("7", 1.0, "available", seq=1),
            CallRecord("c1", 2.0, disposition=Disposition.ANSWERED),
            CallEvent("c1", 2.0, EventKind.ANSWER, seq=2),
        )
    ]
    groups = group_rows(items)
    assert [(g.spec.name, len(g.rows)) for g in groups] == [
        ("calls", 1),
        ("call_events", 2),
        ("agent_states", 1),
    ]
    (call,) = groups[0].rows
    assert call[CALLS.index("queue")] == "sales" and call[CALLS.index("disposition")] == "answered"


def test_seq_source_is_strictly_increasing() -> None:
    s = SeqSource()
    values = [s.next(100.0), s.next(100.0), s.next(99.0), s.next(100.5)]
    assert values == [100_000_000, 100_000_001, 100_000_002, 100_500_000]
    with pytest.raises(ValueError):
        TableSpec.from_wire(["t", "delete", None, [], []])
