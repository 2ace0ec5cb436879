"""The skills router: rules one by one, then property tests against the plain-scan reference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.acd.routing import (
    CallRequest,
    Expired,
    Offer,
    OfferCallback,
    Overflowed,
    QueuePolicy,
    Relaxed,
    RelaxStep,
    Router,
    ScanRouter,
)
from callcenter.errors import RoutingError


def offers(decisions: list[Any]) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


def make(*policies: QueuePolicy) -> Router:
    return Router(policies)


def test_agent_frees_takes_priority_then_longest_wait() -> None:
    r = make(QueuePolicy("sales", {"sales": 1}))
    assert r.enqueue(CallRequest("old", "sales"), 1.0) == []
    assert r.enqueue(CallRequest("new", "sales"), 2.0) == []
    assert r.enqueue(CallRequest("vip", "sales", priority=5), 3.0) == []
    r.add_agent("a1", {"sales": 3})
    assert offers(r.agent_available("a1", 4.0)) == [("vip", "a1")]
    r.add_agent("a2", {"sales": 3})
    assert offers(r.agent_available("a2", 4.0)) == [("old", "a2")]
    assert r.waiting_count() == 1


def test_agent_only_takes_calls_it_is_skilled_for() -> None:
    r = make(QueuePolicy("q", {}))
    r.enqueue(CallRequest("fr", "q", {"french": 5}), 1.0)
    r.enqueue(CallRequest("de", "q", {"german": 2}), 2.0)
    r.add_agent("a", {"german": 9, "french": 4})
    assert offers(r.agent_available("a", 3.0)) == [("de", "a")]


def test_longest_idle_least_calls_best_skill_round_robin() -> None:
    skills = {"s": 1}
    for strategy, expected in [
        ("longest_idle", "a2"),
        ("least_calls", "a3"),
        ("best_skill", "a1"),
        ("round_robin", "a1"),
    ]:
        r = make(QueuePolicy("q", skills, strategy=strategy))  # type: ignore[arg-type]
        r.add_agent("a1", {"s": 9})
        r.add_agent("a2", {"s": 2})
        r.add_agent("a3", {"s": 5})
        r.record_handled("q", "a1", 60)
        r.record_handled("q", "a2", 60)
        r.agent_available("a3", 20.0)
        r.agent_available("a1", 15.0)
        r.agent_available("a2", 10.0)
        assert offers(r.enqueue(CallRequest("c", "q"), 30.0)) == [("c", expected)], strategy


def test_least_talk_time_counts_talk_not_calls() -> None:
    r = make(QueuePolicy("q", {"s": 1}, strategy="least_talk_time"))
    for a in ("a1", "a2", "a3"):
        r.add_agent(a, {"s": 1})
    r.record_handled("q", "a1", 100, talk_seconds=30)  # one short call
    r.record_handled("q", "a2", 400, talk_seconds=300)  # one long call
    r.record_handled("q", "a3", 40, talk_seconds=10)
    r.record_handled("q", "a3", 40, talk_seconds=10)  # two short calls: least talk
    for a, t in (("a1", 1.0), ("a2", 2.0), ("a3", 3.0)):
        r.agent_available(a, t)
    assert offers(r.enqueue(CallRequest("c1", "q"), 10.0)) == [("c1", "a3")]
    assert offers(r.enqueue(CallRequest("c2", "q"), 11.0)) == [("c2", "a1")]
    r.record_handled("q", "a2", 0, talk_seconds=0)  # while available: re-indexed
    assert offers(r.enqueue(CallRequest("c3", "q"), 12.0)) == [("c3", "a2")]


def test_ring_all_offers_every_eligible_agent_at_once_and_releases_the_others() -> None:
    r = make(QueuePolicy("team", {"s": 2}, strategy="ring_all"), QueuePolicy("other", {"s": 1}))
    r.add_agent("a1", {"s": 5})
    r.add_agent("a2", {"s": 2})
    r.add_agent("low", {"s": 1})  # not skilled enough for the team queue
    r.add_agent("a3", {"s": 9})
    for a, t in (("a3", 1.0), ("a1", 2.0), ("a2", 3.0), ("low", 4.0)):
        r.agent_available(a, t)
    d = r.enqueue(CallRequest("c1", "team"), 10.0)
    assert offers(d) == [("c1", "a3"), ("c1", "a1"), ("c1", "a2")]  # longest idle first
    assert all(isinstance(o, Offer) and o.ring == ("a3", "a1", "a2") for o in d)
    assert [a for a in ("a1", "a2", "a3", "low") if r.is_available(a)] == ["low"]
    assert r.enqueue(CallRequest("c2", "team"), 11.0) == []  # everyone is reserved
    # a1 answers first: the others are released; the first freed takes c2 alone, the next one
    # finds nothing waiting.
    r.remove_call("c1")
    (o,) = r.agent_available("a3", 12.0)
    assert isinstance(o, Offer) and (o.call_id, o.agent_id, o.ring) == ("c2", "a3", ())
    assert r.agent_available("a2", 12.0) == []
    # c2 missed by a3: back in line, a3 excluded; a2 is the only one left to ring.
    assert offers(r.requeue("c2", 13.0, exclude=["a3"])) == [("c2", "a2")]
    # A whole group that missed a call never rings for it again.
    r.agent_available("a3", 14.0)
    r.remove_call("c2")
    r.agent_available("a2", 15.0)
    d = r.enqueue(CallRequest("c3", "team"), 16.0)
    assert offers(d) == [("c3", "a3"), ("c3", "a2")]
    assert r.requeue("c3", 17.0, exclude=["a3", "a2"]) == []
    assert r.agent_available("a3", 18.0) == [] and r.agent_available("a2", 18.0) == []
    assert r.is_waiting("c3")
    d = r.agent_available("a1", 19.0)
    assert offers(d) == [("c3", "a1")]


def test_ring_all_an_agent_that_frees_rings_with_the_others() -> None:
    r = make(QueuePolicy("team", {"s": 1}, strategy="ring_all"))
    r.add_agent("a1", {"s": 1})
    r.add_agent("a2", {"s": 1})
    r.enqueue(CallRequest("c1", "team"), 0.0)
    (o,) = r.agent_available("a1", 1.0)
    assert isinstance(o, Offer) and o.ring == ()
    assert r.requeue("c1", 2.0, exclude_agent="a1") == []
    d = r.agent_available("a2", 3.0)
    assert offers(d) == [("c1", "a2")]


def test_round_robin_remembers_where_it_stopped() -> None:
    r = make(QueuePolicy("q", {"s": 1}, strategy="round_robin"))
    for i in range(4):
        r.add_agent(f"a{i}", {"s": 1})
        r.agent_available(f"a{i}", 0.0)
    got = []
    for n in range(6):
        (call, agent), *_ = offers(r.enqueue(CallRequest(f"c{n}", "q"), 1.0 + n))
        got.append(agent)
        r.agent_available(agent, 2.0 + n)
    assert got == ["a0", "a1", "a2", "a3", "a0", "a1"]


def test_relaxation_lowers_levels_then_adds_a_skill_and_is_applied_at_its_time() -> None:
    p = QueuePolicy(
        "q",
        {"billing": 7},
        relaxation=(RelaxStep(30, min_level=3), RelaxStep(90, add_skill="general")),
    )
    r = make(p)
    r.add_agent("junior", {"billing": 3})
    r.add_agent("generalist", {"general": 1})
    r.agent_available("junior", 0.0)
    r.agent_available("generalist", 0.0)
    assert r.enqueue(CallRequest("c1", "q"), 0.0) == []
    assert r.enqueue(CallRequest("c2", "q"), 10.0) == []
    assert r.next_deadline() == 30.0
    assert r.tick(29.9) == []
    d = r.tick(30.0)
    assert isinstance(d[0], Relaxed) and d[0].stage == 1
    assert offers(d) == [("c1", "junior")]
    assert r.tick(89.0) != []  # c2 relaxes at 40 but junior is busy
    assert r.criteria("c2") == ((("billing", 3),),)
    d = r.tick(100.0)
    assert offers(d) == [("c2", "generalist")]


def test_editing_a_queue_applies_to_calls_already_waiting() -> None:
    r = make(QueuePolicy("q", {"x": 8}))
    r.add_agent("a", {"x": 4})
    r.agent_available("a", 0.0)
    assert r.enqueue(CallRequest("c", "q"), 0.0) == []
    assert r.tick(1000.0) == []
    d = r.set_queue(QueuePolicy("q", {"x": 8}, relaxation=(RelaxStep(60, min_level=4),)), 1000.0)
    assert offers(d) == [("c", "a")]


def test_max_wait_overflows_keeping_arrival_then_expires() -> None:
    r = make(
        QueuePolicy("first", {"a": 1}, max_wait=60, overflow_queue="second"),
        QueuePolicy("second", {"b": 1}, max_wait=100),
    )
    r.enqueue(CallRequest("early", "first"), 0.0)
    r.enqueue(CallRequest("second-own", "second"), 10.0)
    d = r.tick(60.0)
    assert d == [Overflowed("early", "first", "second")]
    assert r.position("early") == 1  # arrived earlier than the second queue's own caller
    assert r.tick(109.0) == []
    d = r.tick(200.0)
    assert [type(x) for x in d] == [Expired, Expired]
    assert {x.call_id for x in d} == {"early", "second-own"}
    assert r.waiting_count() == 0


def test_requeue_after_rona_keeps_place_and_skips_the_agent_that_missed() -> None:
    r = make(QueuePolicy("q", {"s": 1}))
    r.add_agent("a1", {"s": 1})
    r.add_agent("a2", {"s": 1})
    r.enqueue(CallRequest("c1", "q"), 0.0)
    r.enqueue(CallRequest("c2", "q"), 1.0)
    assert offers(r.agent_available("a1", 2.0)) == [("c1", "a1")]
    assert r.requeue("c1", 5.0, exclude_agent="a1") == []
    assert r.position("c1") == 1
    assert offers(r.agent_available("a1", 6.0)) == [("c2", "a1")]  # not c1 again
    assert offers(r.agent_available("a2", 7.0)) == [("c1", "a2")]


def test_ewt_position_and_callback_offer() -> None:
    r = make(QueuePolicy("q", {"s": 1}, callback_threshold=100, default_handle_time=120))
    assert r.ewt("q") is None  # nobody staffed
    for i in range(2):
        r.add_agent(f"a{i}", {"s": 1})
    d = r.enqueue(CallRequest("c1", "q"), 0.0)
    assert d == []  # ewt 1 x 120 / 2 = 60
    d = r.enqueue(CallRequest("c2", "q"), 1.0)
    assert d == [OfferCallback("c2", "q", 120.0)]
    ann = r.announcement("c2")
    assert (ann.position, ann.ewt, ann.offer_callback) == (2, 120.0, False)  # offered once only
    r.record_handled("q", None, 60)
    assert r.ewt("q", 1) == 30.0
    r.accept_callback("c2")
    r.remove_call("c1")
    (offer,) = r.agent_available("a0", 5.0)
    assert isinstance(offer, Offer) and offer.callback and offer.call_id == "c2"


def test_errors_have_codes() -> None:
    r = make(QueuePolicy("q"))
    with pytest.raises(RoutingError) as e:
        r.enqueue(CallRequest("c", "nope"), 0.0)
    assert e.value.code == "unknown_queue"
    r.enqueue(CallRequest("c", "q"), 0.0)
    with pytest.raises(RoutingError) as e:
        r.enqueue(CallRequest("c", "q"), 0.0)
    assert e.value.code == "duplicate_call"
    with pytest.raises(RoutingError) as e:
        r.agent_available("ghost", 0.0)
    assert e.value.code == "unknown_agent"


def test_queue_without_skills_takes_any_agent() -> None:
    r = make(QueuePolicy("q"))
    r.add_agent("a", {})
    r.agent_available("a", 0.0)
    assert offers(r.enqueue(CallRequest("c", "q"), 1.0)) == [("c", "a")]


# ------------------------------------------------------------------------------------ properties
SKILLS = ["s0", "s1", "s2", "s3"]
STRATEGIES = ["longest_idle", "least_calls", "least_talk_time", "best_skill", "round_robin", "ring_all"]

queue_policies = st.builds(
    lambda name, req, strat, prio, relax, mw: QueuePolicy(
        name,
        req,
        strategy=strat,
        priority=prio,
        relaxation=relax,
        max_wait=mw,
        overflow_queue=("q0" if name != "q0" else "q1") if mw else None,
        callback_threshold=50.0,
    ),
    st.just("q"),
    st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=2),
    st.sampled_from(STRATEGIES),
    st.integers(0, 2),
    st.lists(
        st.builds(
            RelaxStep,
            st.integers(1, 100).map(float),
            st.one_of(st.none(), st.integers(1, 6)),
            st.one_of(st.none(), st.sampled_from(SKILLS)),
        ),
        max_size=2,
    ).map(tuple),
    st.one_of(st.none(), st.integers(20, 200).map(float)),
)

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("call"),
            st.integers(0, 2),
            st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=2),
            st.integers(0, 3),
        ),
        st.tuples(st.just("free"), st.integers(0, 7)),
        st.tuples(st.just("busy"), st.integers(0, 7)),
        st.tuples(st.just("answer"), st.integers(0, 7)),
        st.tuples(st.just("rona"), st.integers(0, 7)),
        st.tuples(st.just("abandon"), st.integers(0, 40)),
        st.tuples(st.just("time"), st.integers(1, 60)),
        st.tuples(st.just("edit"), st.integers(0, 2)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policies=st.lists(queue_policies, min_size=3, max_size=3),
    agents=st.lists(
        st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=3), min_size=8, max_size=8
    ),
    stream=ops,
)
def test_indexed_router_matches_the_scan_and_keeps_every_invariant(
    policies: list[QueuePolicy], agents: list[dict[str, int]], stream: list[Any]
) -> None:
    pols = [
        QueuePolicy(
            f"q{i}",
            p.skills,
            strategy=p.strategy,
            priority=p.priority,
            relaxation=p.relaxation,
            max_wait=p.max_wait,
            overflow_queue=p.overflow_queue,
            callback_threshold=p.callback_threshold,
        )
        for i, p in enumerate(policies)
    ]
    fast, slow = Router(pols), ScanRouter(pols)
    pols_by_name = {p.name: p for p in pols}
    now = 0.0
    held: dict[str, str] = {}  # agent -> call currently offered or talking
    missed: dict[str, set[str]] = {}  # ring-all call -> agents of its group whose leg failed
    queue_of: dict[str, str] = {}
    gone: set[str] = set()
    for i, sk in enumerate(agents):
        fast.add_agent(f"a{i}", sk)
        slow.add_agent(f"a{i}", sk)

    def both(f: str, *args: Any, **kw: Any) -> list[Any]:
        d1 = getattr(fast, f)(*args, **kw)
        d2 = getattr(slow, f)(*args, **kw)
        assert d1 == d2, (f, args)
        offered: dict[str, str] = {}  # this batch: agent -> call
        for i, d in enumerate(d1):
            if isinstance(d, Offer):
                assert d.agent_id not in held and d.agent_id not in offered, "an agent was offered two calls"
                assert d.call_id not in held.values(), "a call was offered to two agents"
                assert d.call_id not in gone
                if d.call_id in offered.values():  # only as a member of one ring-all group
                    assert d.ring and d.agent_id in d.ring, "a call was offered to two agents"
                if d.ring and d.agent_id == d.ring[0]:  # a ring-all group: one Offer each, together
                    assert pols_by_name[d.queue].strategy == "ring_all" and len(d.ring) > 1
                    group = [x for x in d1 if isinstance(x, Offer) and x.call_id == d.call_id]
                    assert [x.agent_id for x in group] == list(d.ring)
                    assert all(x.ring == d.ring for x in group)
                    assert d1[i : i + len(group)] == group
                offered[d.agent_id] = d.call_id
            elif isinstance(d, Expired):
                gone.add(d.call_id)
        held.update(offered)
        return list(d1)

    n = 0
    for op in stream:
        kind = op[0]
        if kind == "call":
            n += 1
            cid = f"c{n}"
            queue_of[cid] = f"q{op[1]}"
            both("enqueue", CallRequest(cid, f"q{op[1]}", op[2], op[3]), now)
        elif kind == "free":
            aid = f"a{op[1]}"
            if aid not in held:
                both("agent_available", aid, now)
        elif kind == "busy":
            aid = f"a{op[1]}"
            fast.agent_unavailable(aid)
            slow.agent_unavailable(aid)
        elif kind == "answer":
            aid = f"a{op[1]}"
            if aid in held:
                cid = held.pop(aid)
                fast.remove_call(cid)
                slow.remove_call(cid)
                gone.add(cid)
                # A ring-all call collapses to the one who answered: the others are released.
                for other in sorted(a for a, c in held.items() if c == cid):
                    held.pop(other)
                    both("agent_available", other, now)
                assert cid not in held.values()
                fast.record_handled(queue_of[cid], aid, 30.0, talk_seconds=20.0 + op[1])
                slow.record_handled(queue_of[cid], aid, 30.0, talk_seconds=20.0 + op[1])
                both("agent_available", aid, now)
        elif kind == "rona":
            aid = f"a{op[1]}"
            if aid in held:
                cid = held.pop(aid)
                missed.setdefault(cid, set()).add(aid)
                if cid not in held.values():  # the last leg of its group failed: back in line
                    both("requeue", cid, now, exclude=sorted(missed.pop(cid)))
        elif kind == "abandon":
            cid = f"c{op[1]}"
            if cid not in held.values() and cid not in gone:
                removed = fast.remove_call(cid)
                assert removed == slow.remove_call(cid)
                if removed:
                    gone.add(cid)
        elif kind == "time":
            now += op[1]
            both("tick", now)
        elif kind == "edit":
            p = pols[op[1]]
            both(
                "set_queue",
                QueuePolicy(p.name, p.skills, strategy=p.strategy, relaxation=(RelaxStep(5, min_level=1),)),
                now,
            )
        assert fast.waiting_count() == slow.waiting_count()
        _assert_stable(slow)

    # No starvation: finish every call in hand and free everyone, over and over, moving time on:
    # every call an agent could ever serve gets offered.
    for _round in range(40):
        for aid, cid in list(held.items()):
            held.pop(aid)
            fast.remove_call(cid)
            slow.remove_call(cid)
            gone.add(cid)
            both("agent_available", aid, now)
        for i in range(len(agents)):
            if f"a{i}" not in held:
                both("agent_available", f"a{i}", now)
        now += 100
        both("tick", now)
    _assert_stable(slow)
    for c in slow._calls.values():
        if c.waiting:
            assert not any(
                any(all(a.skills.get(s, 0) >= lvl for s, lvl in req) for req in c.criteria)
                and a.agent_id not in c.excluded
                for a in slow._agents.values()
            ), "a waiting call could be served by some agent but starves"


def _assert_stable(r: ScanRouter) -> None:
    """The router never leaves an available agent idle next to a call it can take."""
    for c in r._calls.values():
        if not c.waiting:
            continue
        for a in r._agents.values():
            if a.available and a.agent_id not in c.excluded:
                assert not any(all(a.skills.get(s, 0) >= lvl for s, lvl in req) for req in c.criteria), (
                    c.call_id,
                    a.agent_id,
                )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 100)), min_size=1, max_size=30))
def test_priority_is_respected(calls: list[tuple[int, int]]) -> None:
    r = Router([QueuePolicy("q", {"s": 1})])
    for i, (prio, t) in enumerate(calls):
        r.enqueue(CallRequest(f"c{i}", "q", priority=prio), float(t))
    r.add_agent("a", {"s": 1})
    got = []
    for i in range(len(calls)):
        (o,) = r.agent_available("a", 1000.0 + i)
        assert isinstance(o, Offer)
        got.append(int(o.call_id[1:]))
    keys = [(-calls[i][0], float(calls[i][1]), i) for i in got]
    assert keys == sorted(keys)
