"""The event hub (pure): fan-out, filtering by role through the access table, coalescing of keyed
changes, a slow reader dropped without holding anyone up; the thresholds' levels and crossings."""

from __future__ import annotations

import dataclasses

import pytest

from callcenter.app.controller import queue_limits
from callcenter.config import model as cm
from callcenter.config.load import load_config
from callcenter.reporting import feed
from callcenter.web.access import Principal
from callcenter.web.feed import public_sees, sees_for
from tests.centers import REPO


def call(kind: str, call_id: str, queue: str, agent: str | None = None, at: float = 1.0) -> feed.Change:
    return feed.Change(
        kind,
        at,
        agent_id=agent,
        call_id=call_id,
        queues=frozenset({queue}),
        data={"caller_number": "+12125550100", "queue": queue},
    )


def agent(agent_id: str, state: str, queues: set[str], at: float = 1.0) -> feed.Change:
    return feed.agent_change(agent_id, at, state=state, reason="r", since=at, call_id=None, queues=queues)


def snapshot(at: float, waiting: int) -> feed.Change:
    return feed.Change(feed.SNAPSHOT, at, data={"waiting": waiting}, key="snapshot")


def test_every_subscriber_gets_what_it_sees_in_order() -> None:
    hub = feed.Hub()
    woken: list[str] = []
    a = hub.subscribe(lambda c: True, lambda: woken.append("a"))
    b = hub.subscribe(lambda c: "sales" in c.queues, lambda: woken.append("b"))
    changes = [
        call(feed.CALL_QUEUED, "c1", "sales"),
        call(feed.CALL_QUEUED, "c2", "billing"),
        call(feed.CALL_ANSWERED, "c1", "sales", "1001"),
    ]
    assert [hub.publish(c) for c in changes] == [2, 1, 2]
    assert a.take() == changes
    assert b.take() == [changes[0], changes[2]]
    assert a.take() == [] and b.take() == []
    assert woken == ["a", "b", "a", "a", "b"]
    assert hub.published == 3


def test_keyed_changes_coalesce_to_the_latest_in_place() -> None:
    hub = feed.Hub()
    sub = hub.subscribe(lambda c: True)
    hub.publish(snapshot(1.0, 1))
    hub.publish(agent("1001", "available", {"sales"}))
    hub.publish(call(feed.CALL_QUEUED, "c1", "sales"))
    for i in range(50):
        hub.publish(snapshot(2.0 + i, i))
        hub.publish(agent("1001", "on_call" if i % 2 else "ringing", {"sales"}, at=2.0 + i))
    got = sub.take()
    # the snapshot and the agent keep their first position, with the latest values; the call
    # event is never coalesced away
    assert [c.kind for c in got] == [feed.SNAPSHOT, feed.AGENT_STATE, feed.CALL_QUEUED]
    assert got[0].data == {"waiting": 49}
    assert got[1].data["state"] == "on_call" and got[1].at == 51.0
    assert hub.latest(lambda c: True) == [got[0], got[1]]


def test_a_slow_reader_is_dropped_and_the_others_go_on() -> None:
    hub = feed.Hub(max_pending=10)
    woken = []
    slow = hub.subscribe(lambda c: True, lambda: woken.append("slow"))
    fast = hub.subscribe(lambda c: True)
    for i in range(10):
        hub.publish(call(feed.CALL_QUEUED, f"c{i}", "sales"))
        assert len(fast.take()) == 1
    assert slow.pending == 10 and not slow.dropped
    assert hub.publish(call(feed.CALL_QUEUED, "c10", "sales")) == 1  # only the fast reader
    assert slow.dropped and slow.pending == 0 and slow.take() == []
    assert woken[-1] == "slow"  # woken so its stream ends
    assert slow not in hub.subscribers and fast in hub.subscribers
    assert hub.dropped == 1
    assert [c.call_id for c in fast.take()] == ["c10"]
    # keyed changes never fill a reader: a board that never reads holds one snapshot
    idle = hub.subscribe(lambda c: c.kind == feed.SNAPSHOT)
    for i in range(1000):
        hub.publish(snapshot(float(i), i))
    assert idle.pending == 1 and not idle.dropped


def test_unsubscribed_readers_get_nothing() -> None:
    hub = feed.Hub()
    sub = hub.subscribe(lambda c: True)
    hub.unsubscribe(sub)
    hub.unsubscribe(sub)  # twice is fine
    assert hub.publish(snapshot(1.0, 0)) == 0 and sub.take() == []


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown change kind 'call.teleported'"):
        feed.Change("call.teleported", 1.0)


# ------------------------------------------------------------------------------------ who sees what
AGENT_1001 = Principal("ann", "agent", agent_id="1001")
SUP_SALES = Principal("lee", "supervisor", queues=frozenset({"sales"}), agent_id="9001")
ADMIN = Principal("root", "admin")

MIXED = [
    call(feed.CALL_QUEUED, "c1", "sales"),
    call(feed.CALL_OFFERED, "c1", "sales", "1001"),
    call(feed.CALL_ANSWERED, "c2", "billing", "1002"),
    agent("1001", "on_call", {"sales"}),
    agent("1002", "on_call", {"billing"}),
    feed.Change(feed.THRESHOLD, 1.0, queues=frozenset({"billing"}), data={"queue": "billing"}),
    snapshot(1.0, 3),
]


def seen(who: Principal | None) -> list[tuple[str, str | None, str | None]]:
    hub = feed.Hub()
    sub = hub.subscribe(sees_for(who))
    for c in MIXED:
        hub.publish(c)
    return [(c.kind, c.call_id, c.agent_id) for c in sub.take()]


def test_an_agent_sees_its_own_agent_and_calls_only() -> None:
    assert seen(AGENT_1001) == [
        ("call.offered", "c1", "1001"),
        ("agent.state", None, "1001"),
        ("snapshot", None, None),
    ]


def test_a_supervisor_sees_its_queues() -> None:
    assert seen(SUP_SALES) == [
        ("call.queued", "c1", None),
        ("call.offered", "c1", "1001"),
        ("agent.state", None, "1001"),
        ("snapshot", None, None),
    ]


def test_an_admin_sees_everything_and_the_public_board_aggregates_only() -> None:
    assert len(seen(ADMIN)) == len(MIXED)
    assert seen(None) == [("threshold", None, None), ("snapshot", None, None)]
    assert all(not public_sees(c) for c in MIXED if c.kind in feed.CALL_KINDS)


# ------------------------------------------------------------------------------------ thresholds
LIMITS = feed.Limits(
    service_level_amber=0.8,
    service_level_red=0.65,
    longest_wait_amber=30,
    longest_wait_red=60,
    waiting_amber=4,
    waiting_red=8,
)


@pytest.mark.parametrize(
    ("sl", "longest", "waiting", "expected"),
    [
        (None, 0.0, 0, ("ok", "ok", "ok", "ok")),  # no call yet: nothing to warn about
        (0.8, 29.9, 3, ("ok", "ok", "ok", "ok")),
        (0.79, 30.0, 4, ("amber", "amber", "amber", "amber")),
        (0.64, 59.0, 8, ("red", "amber", "red", "red")),
        (0.9, 61.0, 0, ("ok", "red", "ok", "red")),
    ],
)
def test_levels(sl: float | None, longest: float, waiting: int, expected: tuple[str, str, str, str]) -> None:
    got = feed.levels(LIMITS, service_level=sl, longest_wait=longest, waiting=waiting)
    assert (got["service_level"], got["longest_wait"], got["waiting"], got["overall"]) == expected


def test_unwatched_metrics_stay_ok() -> None:
    got = feed.levels(feed.Limits(), service_level=0.0, longest_wait=9999.0, waiting=999)
    assert set(got.values()) == {"ok"}


def test_crossings_name_each_metric_that_moved() -> None:
    before = {"sales": {"service_level": "ok", "longest_wait": "amber", "waiting": "ok", "overall": "amber"}}
    after = {
        "sales": {"service_level": "amber", "longest_wait": "amber", "waiting": "ok", "overall": "amber"},
        "billing": {"service_level": "ok", "longest_wait": "red", "waiting": "ok", "overall": "red"},
    }
    values = {"sales": {"service_level": 0.7}, "billing": {"longest_wait": 75.0}}
    got = feed.crossings(before, after, values, 5.0)
    assert [c.data for c in got] == [
        {"queue": "billing", "metric": "longest_wait", "level": "red", "previous": "ok", "value": 75.0},
        {"queue": "sales", "metric": "service_level", "level": "amber", "previous": "ok", "value": 0.7},
    ]
    assert all(c.kind == feed.THRESHOLD and c.at == 5.0 for c in got)
    assert feed.crossings(after, after, values, 6.0) == []


def test_a_queues_configured_thresholds_drive_its_levels() -> None:
    """From the YAML to the colours: ``queues.<id>.thresholds`` reach the hub's limits."""
    sales = load_config(REPO / "dialplans").queues["sales"]
    assert queue_limits(sales) == LIMITS  # the example sets 80/65 %, 30/60 s, 4/8 waiting
    stricter = dataclasses.replace(
        sales,
        thresholds=cm.Thresholds(
            service_level=cm.Threshold(95, 90), longest_wait=cm.Threshold(10, 20), waiting=cm.Threshold(1, 2)
        ),
    )
    got = feed.levels(queue_limits(stricter), service_level=0.92, longest_wait=15.0, waiting=2)
    assert (got["service_level"], got["longest_wait"], got["waiting"]) == ("amber", "amber", "red")
