"""The queued call's table (``callcenter.acd.call_state``): each transition, then a random walk
over the table with the agent table and the router (several calls and agents) that proves the
ACD's promises: no call with two agents on it, no agent with two calls, nobody left reserved,
every timer cancelled or fired, and every call ends once callers hang up and time passes."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.acd import agents as ag
from callcenter.acd import call_state as cs
from callcenter.acd import routing as rt
from callcenter.acd.service import policy_from_config
from callcenter.asterisk import names
from callcenter.config import model as cm
from callcenter.errors import AgentStateError, DomainError, RoutingError
from callcenter.ports import QueuedCall
from callcenter.reporting.records import CallEvent, CallRecord, Disposition, LegRecord

T0 = 1_000.0
SALES = cm.Queue(
    "sales",
    "Sales",
    {"s": 3},
    wrapup=15.0,
    ring_timeout=15.0,
    rona_count=2,
    rona_action=cm.RonaAction.PAUSE,
    rona_pause_reason="missed",
    recording=cm.RecordingPolicy.ALWAYS,
    announce_period=60.0,
    max_wait=120.0,
    overflow=cm.Overflow(cm.OverflowKind.VOICEMAIL, "8000"),
)
GENERAL = cm.Queue(
    "general", "General", {"s": 1}, strategy=cm.Strategy.RING_ALL, wrapup=5.0, ring_timeout=10.0
)
QUIET = cm.Queue("quiet", "Quiet", {}, announce_period=None, max_wait=60.0, wrapup=0.0)
SETUP = cs.Setup({q.id: q for q in (SALES, GENERAL, QUIET)}, ring_guard=10.0, recorder=True)


def call_in(queue: str = "sales", call_id: str = "c1", **kw: Any) -> cs.Call:
    info = QueuedCall(call_id, f"PJSIP/carrier-{call_id}", queue, caller_number="+15550001", **kw)
    return cs.Call(info, queue, queued_at=T0)


def step(
    call: cs.Call, event: cs.Event, now: float = T0, setup: cs.Setup = SETUP
) -> tuple[cs.Call, list[Any]]:
    return cs.transition(call, event, now, setup)


def of(effects: Iterable[Any], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def logged(effects: Iterable[Any], kind: type) -> list[Any]:
    return [e.record for e in effects if isinstance(e, cs.Log) and isinstance(e.record, kind)]


def agent_events(effects: Iterable[Any]) -> list[tuple[str, str]]:
    return [(e.agent_id, type(e.event).__name__) for e in of(effects, cs.AgentEvent)]


def offered(queue: str = "sales", agent: str = "a1", leg: str = "L1") -> cs.Call:
    c, _ = step(call_in(queue), cs.Offered(agent, leg))
    return c


def connected(queue: str = "sales", agent: str = "a1", leg: str = "L1") -> cs.Call:
    c = offered(queue, agent, leg)
    c, _ = step(c, cs.LegChannel(leg, f"PJSIP/{agent}-1"))
    c, _ = step(c, cs.LegAnswered(leg), T0 + 5)
    return c


def ringing_all(agents: tuple[str, ...] = ("a1", "a2", "a3")) -> cs.Call:
    c = call_in("general")
    for i, a in enumerate(agents):
        c, _ = step(c, cs.Offered(a, f"R{i}", agents))
        c, _ = step(c, cs.LegChannel(f"R{i}", f"PJSIP/{a}-r"))
    return c


# ------------------------------------------------------------------------------------ the tables
def test_both_tables_are_total() -> None:
    for status in cs.CallStatus:
        for kind in cs.CALL_EVENTS:
            assert (status, kind) in cs.CALL_TABLE, (status, kind)
    for leg_status in cs.LegStatus:
        for leg_kind in cs.LEG_EVENTS:
            assert (leg_status, leg_kind) in cs.LEG_TABLE, (leg_status, leg_kind)
    assert len(cs.CALL_TABLE) == len(cs.CallStatus) * len(cs.CALL_EVENTS)
    assert len(cs.LEG_TABLE) == len(cs.LegStatus) * len(cs.LEG_EVENTS)


def test_public_states_are_the_acd_strings() -> None:
    assert {s: cs.PUBLIC[s] for s in cs.CallStatus} == {
        cs.CallStatus.WAITING: "waiting",
        cs.CallStatus.OFFERED: "offered",
        cs.CallStatus.RINGING_ALL: "offered",
        cs.CallStatus.CONNECTED: "connected",
        cs.CallStatus.CALLBACK_PENDING: "retry",
        cs.CallStatus.TRANSFERRED: "transferred",
        cs.CallStatus.ENDED: "ended",
        cs.CallStatus.CLOSED: None,
    }


# ------------------------------------------------------------------------------------ joining the line
def test_enqueue_logs_and_puts_the_caller_on_hold() -> None:
    info = QueuedCall("c1", "PJSIP/carrier-1", "sales", priority=2, data={"account": "7"})
    c, effects = cs.enqueue(info, T0, SETUP)
    assert (c.status, c.queue, c.queued_at) == (cs.CallStatus.WAITING, "sales", T0)
    (rec,) = logged(effects, CallRecord)
    assert (rec.queue, rec.queued_at, rec.priority) == ("sales", T0, 2)
    assert [str(e.kind) for e in logged(effects, CallEvent)] == ["queue_enter"]
    (hold,) = of(effects, cs.Redirect)
    assert (hold.channel, hold.context) == ("PJSIP/carrier-1", names.CTX_HOLD)
    assert dict(hold.variables) == {
        names.VAR_CALL_ID: "c1",
        names.VAR_QUEUE: "sales",
        names.VAR_MOH_CLASS: "default",
        names.VAR_CUSTOMER: '{"account":"7"}',
    }
    _, effects = cs.enqueue(dataclasses.replace(info, redirect_to_hold=False), T0, SETUP)
    assert not of(effects, cs.Redirect) and of(effects, cs.SetVariables)


def test_hold_ready_starts_announcements_and_joins_the_router() -> None:
    c, effects = step(call_in(), cs.HoldReady(priority=3, arrived_at=T0 - 10))
    assert effects[0] == cs.StartTimer(cs.TimerKind.ANNOUNCE, "c1", T0 + 60)
    (enq,) = of(effects, cs.RouterEnqueue)
    assert (enq.request.queue, enq.request.priority, enq.arrived_at) == ("sales", 3, T0 - 10)
    assert c.next_announce == T0 + 60
    _, effects = step(call_in("quiet"), cs.HoldReady())
    assert not of(effects, cs.StartTimer)


def test_hold_ready_after_the_caller_left_is_ignored() -> None:
    c, _ = step(call_in(), cs.CallerHungUp(16))
    assert c.status is cs.CallStatus.CLOSED
    c2, effects = step(c, cs.HoldReady())
    assert c2 == c and of(effects, cs.Ignored)


# ------------------------------------------------------------------------------------ offers
def test_offer_reserves_rings_and_originates() -> None:
    c, effects = step(call_in(), cs.Offered("a1", "L1"))
    assert (c.status, c.agent_id, c.leg_id) == (cs.CallStatus.OFFERED, "a1", "L1")
    assert c.legs == (cs.Leg("L1", "c1", "a1", "sales"),)
    assert agent_events(effects) == [("a1", "Reserve"), ("a1", "Ring")]
    assert cs.StartTimer(cs.TimerKind.RING_GUARD, "L1", T0 + 15 + 10) in effects
    (o,) = of(effects, cs.Originate)
    assert (o.context, o.recording, o.caller_channel) == (
        names.CTX_AGENT_LEG,
        cs.RecordingPlan.OWN,
        "PJSIP/carrier-c1",
    )
    assert of(effects, cs.Count) == [cs.Count("offers")]
    assert [type(r).__name__ for r in (e.record for e in of(effects, cs.Log))] == ["CallEvent", "LegRecord"]


def test_ring_all_offers_one_leg_per_agent_into_hold() -> None:
    c = ringing_all(("a1", "a2"))
    assert (c.status, c.ring, c.agent_id) == (cs.CallStatus.RINGING_ALL, ("R0", "R1"), None)
    _, effects = step(call_in("general"), cs.Offered("a1", "R0", ("a1", "a2")))
    (o,) = of(effects, cs.Originate)
    assert o.context == names.CTX_HOLD and o.recording is cs.RecordingPlan.NONE  # general never records
    assert c.public == "offered"


def test_an_offer_for_a_call_no_longer_in_line_is_refused() -> None:
    with pytest.raises(DomainError) as err:
        step(connected(), cs.Offered("a2", "L2"))
    assert err.value.code == "invalid_call_transition"


def test_a_callback_offer_dials_the_number_from_cc_transfer_without_recording() -> None:
    c, _ = step(call_in(), cs.AcceptCallback("+15559990000"))
    _, effects = step(c, cs.Offered("a1", "L1"))
    (o,) = of(effects, cs.Originate)
    assert (o.context, o.callback_number, o.recording) == (
        names.CTX_TRANSFER,
        "+15559990000",
        cs.RecordingPlan.NONE,
    )


# ------------------------------------------------------------------------------------ answers
def test_answer_connects_the_call() -> None:
    c = offered()
    c, effects = step(c, cs.LegAnswered("L1", "PJSIP/a1-1"), T0 + 5)
    assert (c.status, c.answered_at) == (cs.CallStatus.CONNECTED, T0 + 5)
    leg = c.leg("L1")
    assert leg is not None and (leg.status, leg.channel) == (cs.LegStatus.ANSWERED, "PJSIP/a1-1")
    assert agent_events(effects) == [("a1", "Answer")]
    assert cs.Unroute("c1") in effects
    assert cs.CancelTimer(cs.TimerKind.ANNOUNCE, "c1") in effects
    assert cs.CancelTimer(cs.TimerKind.RING_GUARD, "L1") in effects
    (rec,) = logged(effects, CallRecord)
    assert (rec.agent_id, rec.disposition) == ("a1", Disposition.ANSWERED)
    assert [str(e.kind) for e in logged(effects, CallEvent)] == ["answer", "queue_exit"]


def test_ring_all_first_answer_wins_the_others_are_released() -> None:
    c = ringing_all()
    c, effects = step(c, cs.LegAnswered("R1"))
    assert (c.status, c.agent_id, c.leg_id, c.ring) == (cs.CallStatus.CONNECTED, "a2", "R1", ())
    assert effects[0] == cs.RedirectLeg("c1", "R1", names.CTX_AGENT_LEG)
    assert {h.channel for h in of(effects, cs.Hangup)} == {"PJSIP/a1-r", "PJSIP/a3-r"}
    cancels = [
        (e.agent_id, e.event) for e in of(effects, cs.AgentEvent) if isinstance(e.event, ag.CancelOffer)
    ]
    assert cancels == [
        ("a1", ag.CancelOffer("c1", "answered_elsewhere")),
        ("a3", ag.CancelOffer("c1", "answered_elsewhere")),
    ]
    assert [x.status for x in c.legs] == [
        cs.LegStatus.CANCELLED,
        cs.LegStatus.ANSWERED,
        cs.LegStatus.CANCELLED,
    ]
    # A loser that answers a moment late changes nothing.
    c2, effects = step(c, cs.LegAnswered("R0"))
    assert c2 == c and of(effects, cs.Ignored)


def test_answer_after_the_caller_left_is_ignored() -> None:
    c, _ = step(offered(), cs.CallerHungUp(16))
    c2, effects = step(c, cs.LegAnswered("L1"))
    assert c2 == c and of(effects, cs.Ignored) and not of(effects, cs.AgentEvent)


# ------------------------------------------------------------------------------------ RONA
def test_rona_requeues_without_the_agent_and_applies_the_queue_rule() -> None:
    c = offered()
    c, _ = step(c, cs.LegChannel("L1", "PJSIP/a1-1"))
    c, effects = step(c, cs.LegFailed("L1", "busy"))
    assert (c.status, c.agent_id, c.leg_id) == (cs.CallStatus.WAITING, None, None)
    (noans,) = [e.event for e in of(effects, cs.AgentEvent)]
    assert noans == ag.NoAnswer("c1", cause="busy", max_missed=2, action="pause", pause_reason="missed")
    assert cs.Requeue("c1", ("a1",)) in effects
    assert cs.Hangup("PJSIP/a1-1") in effects
    assert [e.detail for e in logged(effects, CallEvent)] == [{"cause": "busy"}]
    assert c.leg("L1") is not None and c.leg("L1").status is cs.LegStatus.FAILED  # type: ignore[union-attr]


def test_a_leg_that_hangs_up_unanswered_is_a_rona_by_its_cause() -> None:
    c, effects = step(offered(), cs.LegHungUp("L1", 17))
    assert c.legs == () and c.status is cs.CallStatus.WAITING
    assert [e.detail for e in logged(effects, CallEvent)] == [{"cause": "busy"}]
    assert not of(effects, cs.Hangup)  # it is gone already
    assert len(logged(effects, LegRecord)) == 2


def test_ring_all_call_waits_again_only_when_every_leg_failed() -> None:
    c = ringing_all(("a1", "a2"))
    c, effects = step(c, cs.LegFailed("R0", "busy"))
    assert c.status is cs.CallStatus.RINGING_ALL and c.ring == ("R1",) and not of(effects, cs.Requeue)
    c, effects = step(c, cs.RingGuardDue("R1"), T0 + 25)
    assert c.status is cs.CallStatus.WAITING and c.ring_missed == frozenset()
    assert cs.Requeue("c1", ("a1", "a2")) in effects


def test_ring_guard_reaps_a_settled_leg_that_never_became_a_channel() -> None:
    c, effects = step(offered(), cs.RingGuardDue("L1"), T0 + 25)
    assert c.legs == () and c.status is cs.CallStatus.WAITING
    assert [e.detail for e in logged(effects, CallEvent)] == [{"cause": "timeout"}]
    answered = connected()
    c2, effects = step(answered, cs.RingGuardDue("L1"))
    assert c2 == answered and of(effects, cs.Ignored)


def test_a_late_channel_of_a_cancelled_leg_is_hung_up() -> None:
    c, _ = step(offered(), cs.CallerHungUp(16))
    assert c.leg("L1") is not None and c.leg("L1").settled  # type: ignore[union-attr]
    c, effects = step(c, cs.LegChannel("L1", "PJSIP/a1-9"))
    assert cs.Hangup("PJSIP/a1-9") in effects
    c, effects = step(offered(), cs.LegChannel("L1", "PJSIP/a1-9"))
    assert effects == [] and c.leg("L1") is not None and c.leg("L1").channel == "PJSIP/a1-9"  # type: ignore[union-attr]


def test_events_for_an_unknown_leg_are_ignored() -> None:
    c = offered()
    for ev in (cs.LegAnswered("nope"), cs.LegHungUp("nope"), cs.RingGuardDue("nope")):
        c2, effects = step(c, ev)
        assert c2 == c and of(effects, cs.Ignored)


# ------------------------------------------------------------------------------------ the caller leaves
def test_abandon_while_waiting_closes_the_call() -> None:
    c, effects = step(call_in(), cs.CallerHungUp(16), T0 + 30)
    assert c.status is cs.CallStatus.CLOSED and c.public is None
    (rec,) = logged(effects, CallRecord)
    assert (rec.disposition, rec.hangup_cause, rec.hangup_by) == (Disposition.ABANDONED_QUEUE, 16, "caller")
    assert of(effects, cs.Count) == [cs.Count("abandoned")]
    assert cs.Unroute("c1") in effects and cs.CancelTimer(cs.TimerKind.ANNOUNCE, "c1") in effects


def test_abandon_while_ringing_cancels_the_leg_and_frees_the_agent() -> None:
    c = offered()
    c, _ = step(c, cs.LegChannel("L1", "PJSIP/a1-1"))
    c, effects = step(c, cs.CallerHungUp(16))
    assert c.status is cs.CallStatus.CLOSED
    assert cs.Hangup("PJSIP/a1-1") in effects
    assert [e.event for e in of(effects, cs.AgentEvent)] == [ag.CancelOffer("c1")]
    leg = c.leg("L1")
    assert leg is not None and leg.status is cs.LegStatus.CANCELLED  # followed until its Hangup
    c, effects = step(c, cs.LegHungUp("L1", 16))
    assert c.legs == () and not of(effects, cs.AgentEvent)


def test_a_callback_caller_that_hangs_up_keeps_its_place() -> None:
    c, effects = step(call_in(), cs.AcceptCallback("+15550002"))
    assert cs.MarkCallback("c1") in effects
    assert logged(effects, CallRecord)[0].disposition is Disposition.CALLBACK_REQUESTED
    c, effects = step(c, cs.CallerHungUp(16))
    assert (c.status, c.caller_gone) == (cs.CallStatus.WAITING, True)
    assert [e.detail for e in logged(effects, CallEvent)] == [{"callback_waiting": True}]
    # Offered, then the (already gone) caller side is withdrawn: the call goes back in line.
    c, _ = step(c, cs.Offered("a1", "L1"))
    c, effects = step(c, cs.Withdraw())
    assert c.status is cs.CallStatus.WAITING and cs.Requeue("c1") in effects


def test_caller_hangs_up_while_talking_the_agent_leg_is_followed_to_its_end() -> None:
    c, effects = step(connected(), cs.CallerHungUp(16), T0 + 65)
    assert c.status is cs.CallStatus.CLOSED
    (rec,) = logged(effects, CallRecord)
    assert (rec.talk_seconds, rec.hangup_by) == (60.0, "caller")
    assert cs.RecordingEnded("c1") in effects
    c, effects = step(c, cs.LegHungUp("L1", 16), T0 + 66)
    assert c.legs == ()
    assert [e.event for e in of(effects, cs.AgentEvent)] == [
        ag.CallEnded("c1", wrap_up_seconds=15.0, queue="sales")
    ]
    assert of(effects, cs.RecordHandled) == [cs.RecordHandled("sales", "a1", 61 + 15, 61)]


def test_music_on_the_callers_leg_while_connected_is_hold_and_talk_excludes_it() -> None:
    c, effects = step(connected(), cs.CallerHeld(), T0 + 15)
    assert [str(e.kind) for e in logged(effects, CallEvent)] == ["hold"]
    c, _ = step(c, cs.CallerHeld(), T0 + 16)  # a second start while on hold changes nothing
    c, effects = step(c, cs.CallerUnheld(), T0 + 35)
    (unhold,) = logged(effects, CallEvent)
    assert str(unhold.kind) == "unhold" and unhold.detail == {"seconds": 20.0}
    c, _ = step(c, cs.CallerHeld(), T0 + 55)  # on hold when the caller hangs up
    c, effects = step(c, cs.CallerHungUp(16), T0 + 65)
    (rec,) = logged(effects, CallRecord)
    assert (rec.hold_seconds, rec.talk_seconds) == (30.0, 30.0)


def test_music_while_in_line_is_not_hold() -> None:
    c, effects = step(call_in("sales"), cs.CallerHeld(), T0 + 2)
    assert logged(effects, CallEvent) == [] and c.hold_started is None


def test_agent_hangs_up_first_the_call_ends_and_waits_for_the_caller() -> None:
    c, effects = step(connected(), cs.LegHungUp("L1", 16), T0 + 65)
    assert c.status is cs.CallStatus.ENDED and c.public == "ended"
    (rec,) = logged(effects, CallRecord)
    # The wrap-up is logged when it ends, as measured (the ACD's shell), not as configured here.
    assert (rec.hangup_by, rec.wrapup_seconds, rec.talk_seconds) == ("agent", None, 60.0)
    c, effects = step(c, cs.CallerHungUp(16), T0 + 66)
    assert c.status is cs.CallStatus.CLOSED and logged(effects, CallRecord)[0].hangup_cause == 16


def test_the_callers_hangup_request_makes_it_the_callers_end_whichever_hangup_comes_first() -> None:
    """A real Asterisk reports the bridged call's two Hangups in either order; the caller's
    HangupRequest (its BYE) comes before both: the agent leg's Hangup reported first then still
    ends the call as the caller's."""
    c, effects = step(connected(), cs.CallerHangupRequested(), T0 + 64)
    assert c.status is cs.CallStatus.CONNECTED and c.caller_leaving and effects == []
    c, effects = step(c, cs.LegHungUp("L1", 16), T0 + 65)
    assert c.status is cs.CallStatus.ENDED
    assert [r.hangup_by for r in logged(effects, CallRecord)] == ["caller"]
    assert agent_events(effects) == [("a1", "CallEnded")]
    c, effects = step(c, cs.CallerHungUp(16), T0 + 65)
    assert c.status is cs.CallStatus.CLOSED and not [
        r.hangup_by for r in logged(effects, CallRecord) if r.hangup_by
    ]
    for waiting in (call_in(), offered()):  # before an agent has it: the Hangup decides
        same, effects = step(waiting, cs.CallerHangupRequested())
        assert same == waiting and of(effects, cs.Ignored)


def test_withdraw_is_refused_once_an_agent_has_the_call() -> None:
    c = connected()
    assert not cs.withdrawable(c) and cs.withdrawable(offered())
    c2, effects = step(c, cs.Withdraw())
    assert c2 == c and of(effects, cs.Ignored)


def test_agent_leaving_during_the_offer_requeues_without_it() -> None:
    c, effects = step(offered(), cs.OfferWithdrawn("a1"))
    assert c.status is cs.CallStatus.WAITING and cs.Requeue("c1", ("a1",)) in effects
    assert not of(effects, cs.AgentEvent)  # the agent table already logged it out
    c2, effects = step(offered(), cs.OfferWithdrawn("a9"))
    assert c2.status is cs.CallStatus.OFFERED and of(effects, cs.Ignored)
    c, effects = step(ringing_all(("a1", "a2")), cs.OfferWithdrawn("a2"))
    assert c.status is cs.CallStatus.RINGING_ALL and c.ring == ("R0",) and cs.Hangup("PJSIP/a2-r") in effects


# ------------------------------------------------------------------------------------ the router's verdicts
def test_max_wait_sends_the_caller_to_voicemail_or_hangs_up() -> None:
    c, effects = step(call_in(), cs.Expired("sales"))
    assert c.status is cs.CallStatus.CLOSED
    (r,) = of(effects, cs.Redirect)
    assert (r.context, r.variables) == (names.CTX_VOICEMAIL, ((names.VAR_MAILBOX, "8000"),))
    assert logged(effects, CallRecord)[0].disposition is Disposition.VOICEMAIL
    c, effects = step(call_in("quiet"), cs.Expired("quiet"))
    assert of(effects, cs.Hangup) == [cs.Hangup("PJSIP/carrier-c1")]
    assert logged(effects, CallRecord)[0].disposition is Disposition.OVERFLOWED
    c2, effects = step(call_in(), cs.Expired("gone"))
    assert c2.status is cs.CallStatus.WAITING and of(effects, cs.Ignored)


def test_overflow_moves_the_call() -> None:
    c, effects = step(call_in(), cs.Overflowed("sales", "general"))
    assert c.queue == "general" and logged(effects, CallRecord)[0].overflow_queue == "general"


def test_accepting_a_callback_for_a_call_out_of_line_is_refused() -> None:
    with pytest.raises(RoutingError) as err:
        step(connected(), cs.AcceptCallback("+1555"))
    assert err.value.code == "unknown_call"


# ------------------------------------------------------------------------------------ timers
def test_announce_timer_plays_and_reschedules_only_while_waiting() -> None:
    c, _ = step(call_in(), cs.HoldReady())
    c, effects = step(c, cs.TimerDue(cs.TimerKind.ANNOUNCE), T0 + 60)
    assert effects == [cs.StartTimer(cs.TimerKind.ANNOUNCE, "c1", T0 + 120), cs.Announce("c1")]
    c2, effects = step(c, cs.TimerDue(cs.TimerKind.ANNOUNCE), T0 + 61)  # an older timer
    assert c2 == c and of(effects, cs.Ignored)
    c3, _ = step(c, cs.Offered("a1", "L1"))
    c4, effects = step(c3, cs.TimerDue(cs.TimerKind.ANNOUNCE), T0 + 120)
    assert c4 == c3 and of(effects, cs.Ignored)


def test_callback_retried_until_reached_or_out_of_attempts() -> None:
    setup = dataclasses.replace(SETUP, callback_retry_delay=60.0, callback_max_attempts=2)
    c, _ = step(call_in(), cs.AcceptCallback("+1555"), setup=setup)
    c, _ = step(c, cs.CallerHungUp(16), setup=setup)
    for attempt in (1, 2):
        c, _ = step(c, cs.Offered("a1", f"L{attempt}"), setup=setup)
        c, _ = step(c, cs.LegAnswered(f"L{attempt}", f"PJSIP/a1-{attempt}"), setup=setup)
        c, effects = step(c, cs.DialEnded(f"L{attempt}", "NOANSWER"), setup=setup)
        assert c.callback_attempts == attempt
        c, effects = step(c, cs.LegHungUp(f"L{attempt}", 16), T0 + 10, setup=setup)
        if attempt == 1:
            assert c.status is cs.CallStatus.CALLBACK_PENDING and c.public == "retry"
            assert cs.StartTimer(cs.TimerKind.CALLBACK_RETRY, "c1", T0 + 70) in effects
            c, effects = step(c, cs.TimerDue(cs.TimerKind.CALLBACK_RETRY), T0 + 70, setup=setup)
            assert c.status is cs.CallStatus.WAITING
            (enq,) = of(effects, cs.RouterEnqueue)
            assert (enq.arrived_at, enq.callback) == (T0, True)
    assert c.status is cs.CallStatus.CLOSED
    assert Disposition.FAILED in [r.disposition for r in logged(effects, CallRecord)]


def test_callback_reached_ends_the_call() -> None:
    c, _ = step(call_in(), cs.AcceptCallback("+1555"))
    c, _ = step(c, cs.Offered("a1", "L1"))
    c, _ = step(c, cs.LegAnswered("L1", "PJSIP/a1-1"))
    c, effects = step(c, cs.DialEnded("L1", "ANSWER"))
    assert logged(effects, CallRecord)[0].disposition is Disposition.CALLBACK_COMPLETED
    assert logged(effects, CallRecord)[0].disposition is Disposition.CALLBACK_COMPLETED
    c, effects = step(c, cs.LegHungUp("L1", 16))
    assert c.status is cs.CallStatus.CLOSED and cs.CancelTimer(cs.TimerKind.CALLBACK_RETRY, "c1") in effects
    _, effects = step(connected(), cs.DialEnded("L1", "ANSWER"))
    assert of(effects, cs.Ignored)  # not a callback


# ------------------------------------------------------------------------------------ transfers, bridges
def test_blind_transfer_to_a_queue_detaches_the_agent_and_puts_the_caller_on_hold() -> None:
    c, effects = step(connected(), cs.TransferToQueue("general"), T0 + 65)
    assert (c.status, c.queue, c.agent_id, c.leg_id, c.transfers) == (
        cs.CallStatus.WAITING,
        "general",
        None,
        None,
        1,
    )
    assert logged(effects, CallRecord)[0].talk_seconds == 60.0
    (hold,) = of(effects, cs.Redirect)
    assert hold.context == names.CTX_HOLD and (names.VAR_QUEUE, "general") in hold.variables
    assert cs.RecordingEnded("c1") in effects
    # The agent's leg, left behind, ends the agent's call only.
    c2, effects = step(c, cs.LegHungUp("L1", 16), T0 + 66)
    assert c2.status is cs.CallStatus.WAITING and of(effects, cs.AgentEvent)
    with pytest.raises(DomainError) as err:
        step(c, cs.TransferToQueue("sales"))
    assert err.value.code == "not_connected"


def test_blind_transfer_to_a_number_and_attended_transfer() -> None:
    c, effects = step(connected(), cs.TransferToNumber("+15557"))
    assert c.status is cs.CallStatus.TRANSFERRED
    assert of(effects, cs.Redirect) == [
        cs.Redirect("PJSIP/carrier-c1", names.CTX_TRANSFER, ((names.VAR_TRANSFER_TARGET, "+15557"),))
    ]
    c, effects = step(connected(), cs.AttendedTransfer("2002"))
    assert c.status is cs.CallStatus.CONNECTED and of(effects, cs.Atxfer) == [cs.Atxfer("PJSIP/a1-1", "2002")]
    no_channel, _ = step(offered(), cs.LegAnswered("L1"))
    with pytest.raises(DomainError):
        step(no_channel, cs.AttendedTransfer("2002"))


def test_bridge_formed_once_both_sides_entered_while_connected() -> None:
    c = connected()
    c, effects = step(c, cs.BridgeEntered("PJSIP/a1-1"))
    assert effects == []
    c, effects = step(c, cs.BridgeEntered("PJSIP/carrier-c1"))
    assert effects == [cs.BridgeFormed("c1", "L1", "PJSIP/a1-1", "sales", "a1", True)]
    c, _ = step(offered(), cs.BridgeEntered("x"))
    c, effects = step(c, cs.BridgeEntered("y"))
    assert effects == [] and len(c.bridged) == 2
    c, effects = step(c, cs.LegAnswered("L1"))
    assert of(effects, cs.BridgeFormed)  # already bridged when the answer arrives


def held(queue: str = "sales") -> cs.Call:
    c, effects = step(connected(queue), cs.HoldRequested("alice"), T0 + 10)
    return c


def test_hold_from_the_desktop_moves_both_sides_at_once_and_unhold_bridges_again() -> None:
    c, effects = step(connected(), cs.HoldRequested("alice"), T0 + 10)
    assert c.held and c.status is cs.CallStatus.CONNECTED and c.public == "connected"
    assert of(effects, cs.HoldLegs) == [cs.HoldLegs("PJSIP/carrier-c1", "PJSIP/a1-1", SALES.music_class)]
    (note,) = logged(effects, CallEvent)
    assert note.detail == {"hold": "desktop", "by": "alice"}
    with pytest.raises(DomainError) as again:
        step(c, cs.HoldRequested(), T0 + 11)
    assert again.value.code == "already_held"
    c, effects = step(c, cs.UnholdRequested(), T0 + 30)
    assert not c.held
    # back through cc-agent-leg, whose Bridge() takes the caller; no second recording starts
    assert of(effects, cs.Redirect) == [
        cs.Redirect("PJSIP/a1-1", names.CTX_AGENT_LEG, ((names.VAR_RECORDING_FILE, ""),))
    ]
    with pytest.raises(DomainError) as not_held:
        step(c, cs.UnholdRequested(), T0 + 31)
    assert not_held.value.code == "not_held"


def test_hold_is_refused_unless_an_agent_is_connected_to_a_caller() -> None:
    for c in (call_in(), offered(), ringing_all()):
        with pytest.raises(DomainError) as refused:
            step(c, cs.HoldRequested())
        assert refused.value.code == "not_connected"
        with pytest.raises(DomainError):
            step(c, cs.UnholdRequested())
    ended, _ = step(connected(), cs.LegHungUp("L1", 16), T0 + 20)
    with pytest.raises(DomainError) as refused:
        step(ended, cs.HoldRequested())
    assert refused.value.code == "not_connected"
    callback = dataclasses.replace(connected(), caller_gone=True, callback_number="+15550001")
    with pytest.raises(DomainError) as gone:
        step(callback, cs.HoldRequested())
    assert gone.value.code == "caller_gone"


def test_hold_time_is_the_music_measured_once() -> None:
    c = held()
    c, effects = step(c, cs.CallerHeld(), T0 + 10)  # cc-held's music starts
    assert [str(e.kind) for e in logged(effects, CallEvent)] == ["hold"]
    c, _ = step(c, cs.UnholdRequested(), T0 + 30)
    c, effects = step(c, cs.CallerUnheld(), T0 + 30)  # Bridge() pulls the caller out of the music
    assert logged(effects, CallEvent)[0].detail == {"seconds": 20.0}
    c, effects = step(c, cs.CallerHungUp(16), T0 + 65)
    (rec,) = logged(effects, CallRecord)
    assert (rec.hold_seconds, rec.talk_seconds) == (20.0, 40.0)


def test_a_held_caller_hanging_up_ends_the_call_and_the_waiting_agent_leg() -> None:
    c, _ = step(held(), cs.CallerHeld(), T0 + 10)
    c, effects = step(c, cs.CallerHungUp(16), T0 + 40)
    assert c.status is cs.CallStatus.CLOSED and not c.held
    assert of(effects, cs.Hangup) == [cs.Hangup("PJSIP/a1-1")]
    (rec,) = logged(effects, CallRecord)
    assert (rec.hangup_by, rec.hold_seconds, rec.talk_seconds) == ("caller", 30.0, 5.0)
    c, effects = step(c, cs.LegHungUp("L1", 16), T0 + 40)
    assert agent_events(effects) == [("a1", "CallEnded")] and c.legs == ()


def test_the_agent_hanging_up_on_a_held_caller_hangs_the_caller_up() -> None:
    c, effects = step(held(), cs.LegHungUp("L1", 16), T0 + 40)
    assert c.status is cs.CallStatus.ENDED and not c.held
    assert cs.Hangup("PJSIP/carrier-c1") in effects
    assert logged(effects, CallRecord)[0].hangup_by == "agent"


def test_transfers_and_a_second_bridge_wait_for_the_caller_off_hold() -> None:
    c = held()
    for event in (cs.TransferToQueue("general"), cs.TransferToNumber("+15557"), cs.AttendedTransfer("+1")):
        with pytest.raises(DomainError) as refused:
            step(c, event)
        assert refused.value.code == "on_hold"
    assert not cs.recordable(c) and cs.recordable(connected())
    c, _ = step(c, cs.BridgeEntered("PJSIP/a1-1"))
    c, _ = step(c, cs.BridgeEntered("PJSIP/carrier-c1"))
    c, _ = step(c, cs.UnholdRequested(), T0 + 20)
    c, effects = step(c, cs.BridgeEntered("PJSIP/a1-1"), T0 + 20)  # bridged again: formed before
    assert effects == []


def test_the_closed_call_is_terminal() -> None:
    c, _ = step(call_in(), cs.CallerHungUp(16))
    for ev in (cs.CallerHungUp(), cs.Withdraw(), cs.Expired("sales"), cs.TimerDue(cs.TimerKind.ANNOUNCE)):
        c2, effects = step(c, ev)
        assert c2 == c and of(effects, cs.Ignored), ev


# ------------------------------------------------------------------------------------ restart
def found(channel: str, uniqueid: str, call_id: str, agent_id: str = "", bridge: str = "") -> cs.Found:
    return cs.Found(channel, uniqueid, call_id, agent_id=agent_id, queue="sales", bridge_id=bridge)


def test_a_local_agent_leg_is_on_the_call_through_its_bridged_half() -> None:
    """What a real Asterisk's Status shows mid-call when agents are Local channels: both halves
    of the agent's leg carry CC_CALL_ID and CC_AGENT_ID, only the ``;1`` is in the caller's
    bridge. The ``;2`` is not a half-offered leg: hanging it up would end the call."""
    leg = "ccleg-f593"
    caller = found("Local/18005550100@cc-inbound-00000000;2", "cct-4-2", "c1", bridge="b1")
    one = found("Local/agent1001@cc-test-agents-00000001;1", leg, "c1", "1001", bridge="b1")
    two = found("Local/agent1001@cc-test-agents-00000001;2", cs.other_half(leg), "c1", "1001")
    for order in itertools.permutations([caller, one, two]):
        seen = cs.survey(order, {"1001"})
        assert seen.callers == {"c1": caller}
        assert seen.on_call == {"1001": one}
        assert seen.hang_up == ()


def test_legs_nobody_follows_after_a_restart_are_hung_up_once_each() -> None:
    caller = found("PJSIP/carrier-7", "u7", "ring-1")
    legs = [  # a ring-all offer over Local channels: both legs ringing, no bridge
        found("Local/agent1001@cc-test-agents-00000002;2", "ccleg-a-2", "ring-1", "1001"),
        found("Local/agent1001@cc-test-agents-00000002;1", "ccleg-a", "ring-1", "1001"),
        found("Local/agent1002@cc-test-agents-00000003;1", "ccleg-b", "ring-1", "1002"),
        found("Local/agent1002@cc-test-agents-00000003;2", "ccleg-b-2", "ring-1", "1002"),
    ]
    seen = cs.survey([caller, *legs], {"1001", "1002"})
    assert seen.on_call == {}
    assert sorted(seen.hang_up) == [  # the ;1 of each: ending one half ends the pair
        "Local/agent1001@cc-test-agents-00000002;1",
        "Local/agent1002@cc-test-agents-00000003;1",
    ]
    # A ;2 whose ;1 is already gone is a leg of its own, hung up too.
    orphan = found("Local/agent1003@cc-test-agents-00000004;2", "ccleg-c-2", "ring-1", "1003")
    assert cs.survey([caller, orphan], {"1003"}).hang_up == (orphan.channel,)


def test_a_bridged_pjsip_leg_stays_only_with_its_caller_and_a_known_agent() -> None:
    caller = found("PJSIP/carrier-2", "u2", "talk-1", bridge="b1")
    talking = found("PJSIP/agent1001-9", "ccleg-x", "talk-1", "1001", bridge="b1")
    ringing = found("PJSIP/agent1002-9", "ccleg-y", "ring-1", "1002")
    left = found("PJSIP/agent1003-9", "ccleg-z", "gone-1", "1003", bridge="b2")  # its caller left
    stranger = found("PJSIP/agent9999-9", "ccleg-w", "talk-1", "9999", bridge="b1")
    seen = cs.survey([caller, talking, ringing, left, stranger], {"1001", "1002", "1003"})
    assert seen.on_call == {"1001": talking}
    assert seen.hang_up == ("PJSIP/agent1002-9", "PJSIP/agent1003-9", "PJSIP/agent9999-9")


# ------------------------------------------------------------------------------------ the random walk
AGENTS = ("a1", "a2", "a3", "a4")
WALK_SALES = dataclasses.replace(SALES, skills={"s": 1}, rona_action=cm.RonaAction.NOT_READY, rona_count=1)
# Every queue has a max wait: a callback whose whole ring-all group missed it is never offered
# to that group again, and with its caller gone only the max wait ends it.
WALK_GENERAL = dataclasses.replace(GENERAL, max_wait=300.0)
WALK_SETUP = cs.Setup(
    {q.id: q for q in (WALK_SALES, WALK_GENERAL, QUIET)},
    ring_guard=10.0,
    callback_retry_delay=60.0,
    callback_max_attempts=2,
    recorder=True,
)
CALL_TIMERS = (cs.TimerKind.ANNOUNCE, cs.TimerKind.CALLBACK_RETRY, cs.TimerKind.RING_GUARD)


class World:
    """The table with the agent table and the router, its effects carried out as the ACD shell
    does, and a PBX that answers, fails and hangs up as the walk says."""

    def __init__(self) -> None:
        self.now = T0
        self.router = rt.Router(policy_from_config(q) for q in WALK_SETUP.queues.values())
        self.agents = {a: ag.AgentState(a) for a in AGENTS}
        self.calls: dict[str, cs.Call] = {}  # every call followed (closed ones while legs are up)
        self.timers: dict[tuple[cs.TimerKind, str], float] = {}
        self.started = self.fired = self.cancelled = 0
        self.dialing: dict[str, str | None] = {}  # PBX: originated leg id -> its channel once created
        self.up: dict[str, str] = {}  # PBX: answered leg id -> channel
        self.callers: dict[str, str] = {}  # PBX: call id -> caller channel still up
        self.hangups: list[str] = []  # channels the ACD asked to hang up
        self.detached: set[str] = set()  # answered legs a transfer left behind
        self.n = 0

    # ------------------------------------------------------------ the shell's part
    def call_event(self, call_id: str, event: cs.Event) -> None:
        old = self.calls.get(call_id)
        if old is None:
            return
        new, effects = cs.transition(old, event, self.now, WALK_SETUP)
        if new.status is cs.CallStatus.CLOSED and not new.legs:
            del self.calls[call_id]
        else:
            self.calls[call_id] = new
        self.carry(effects)

    def leg_event(self, leg_id: str, event: cs.Event) -> None:
        for call_id, c in list(self.calls.items()):
            if c.leg(leg_id) is not None:
                self.call_event(call_id, event)
                return

    def agent_event(self, agent_id: str, event: ag.Event, *, strict: bool = True) -> None:
        old = self.agents[agent_id]
        try:
            new, effects = ag.transition(old, event, self.now)
        except AgentStateError:
            if strict:
                raise
            return
        self.agents[agent_id] = new
        for e in effects:
            if isinstance(e, ag.ScheduleWrapUpEnd):
                self.start(cs.TimerKind.WRAP_UP, agent_id, e.at)
            elif isinstance(e, ag.WithdrawOffer):
                self.call_event(e.call_id, cs.OfferWithdrawn(agent_id))
        if new.status is old.status:
            return
        if old.status is ag.Status.LOGGED_OUT:
            self.router.add_agent(agent_id, {"s": 5})
        if new.status is ag.Status.LOGGED_OUT:
            self.router.remove_agent(agent_id)
        elif new.status is ag.Status.AVAILABLE:
            self.apply(self.router.agent_available(agent_id, self.now))
        elif old.status is ag.Status.AVAILABLE:
            self.router.agent_unavailable(agent_id)

    def apply(self, decisions: list[rt.Decision]) -> None:
        for d in decisions:
            if isinstance(d, rt.Offer):
                self.n += 1
                self.call_event(d.call_id, cs.Offered(d.agent_id, f"leg{self.n}", d.ring))
            elif isinstance(d, rt.Overflowed):
                self.call_event(d.call_id, cs.Overflowed(d.from_queue, d.to_queue))
            elif isinstance(d, rt.Expired):
                self.call_event(d.call_id, cs.Expired(d.queue))

    def start(self, kind: cs.TimerKind, key: str, at: float) -> None:
        if (kind, key) in self.timers:
            self.cancelled += 1  # replaced
        self.timers[(kind, key)] = at
        self.started += 1

    def carry(self, effects: list[Any]) -> None:
        for e in effects:
            if isinstance(e, cs.AgentEvent):
                self.agent_event(e.agent_id, e.event, strict=e.strict)
            elif isinstance(e, cs.StartTimer):
                self.start(e.kind, e.key, e.at)
            elif isinstance(e, cs.CancelTimer):
                if self.timers.pop((e.kind, e.key), None) is not None:
                    self.cancelled += 1
            elif isinstance(e, cs.RouterEnqueue):
                decisions = self.router.enqueue(e.request, self.now, arrived_at=e.arrived_at)
                if e.callback and self.router.is_waiting(e.request.call_id):
                    self.router.accept_callback(e.request.call_id)
                self.apply(decisions)
            elif isinstance(e, cs.Requeue):
                self.apply(self.router.requeue(e.call_id, self.now, exclude=e.exclude))
            elif isinstance(e, cs.Unroute):
                self.router.remove_call(e.call_id)
            elif isinstance(e, cs.MarkCallback):
                self.router.accept_callback(e.call_id)
            elif isinstance(e, cs.RecordHandled):
                self.router.record_handled(e.queue, e.agent_id, e.handle_seconds, talk_seconds=e.talk_seconds)
            elif isinstance(e, cs.Originate):
                self.dialing[e.leg_id] = None
            elif isinstance(e, cs.Hangup):
                self.hangups.append(e.channel)

    def fire(self, kind: cs.TimerKind, key: str) -> None:
        self.fired += 1
        if kind is cs.TimerKind.WRAP_UP:
            if self.agents[key].status is ag.Status.WRAP_UP:
                self.agent_event(key, ag.WrapUpEnd())
        elif kind is cs.TimerKind.RING_GUARD:
            self.leg_event(key, cs.RingGuardDue(key))
        else:
            self.call_event(key, cs.TimerDue(kind))

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while True:
            due = [(at, kind, key) for (kind, key), at in self.timers.items() if at <= until]
            rd = self.router.next_deadline()
            first = min(due) if due else None
            if rd is not None and rd <= until and (first is None or rd < first[0]):
                self.now = rd
                self.apply(self.router.tick(rd))
            elif first is not None:
                self.now, kind, key = first
                del self.timers[(kind, key)]
                self.fire(kind, key)
            else:
                break
        self.now = until

    # ------------------------------------------------------------ the PBX and the people
    def pick(self, items: Iterable[str], i: int) -> str | None:
        ordered = sorted(items)
        return ordered[i % len(ordered)] if ordered else None

    def calls_in(self, *statuses: cs.CallStatus) -> list[str]:
        return [k for k, c in self.calls.items() if c.status in statuses]

    def obey_hangups(self) -> None:
        while self.hangups:
            channel = self.hangups.pop(0)
            for leg_id, chan in list(self.dialing.items()):
                if chan == channel:
                    del self.dialing[leg_id]
                    self.leg_event(leg_id, cs.LegFailed(leg_id, "hangup", chan))
                    self.leg_event(leg_id, cs.LegHungUp(leg_id, 16))
            for leg_id, chan in list(self.up.items()):
                if chan == channel:
                    del self.up[leg_id]
                    self.leg_event(leg_id, cs.LegHungUp(leg_id, 16))
            for call_id, chan in list(self.callers.items()):
                if chan == channel:
                    del self.callers[call_id]
                    self.call_event(call_id, cs.CallerHungUp(16))

    def channel_of(self, leg_id: str) -> str:
        chan = self.dialing.get(leg_id)
        if chan is None:
            chan = self.dialing[leg_id] = f"PJSIP/{leg_id}"
            self.leg_event(leg_id, cs.LegChannel(leg_id, chan))
        return chan

    def step(self, kind: str, i: int) -> None:
        if kind == "call":
            self.n += 1
            call_id, queue = f"c{self.n}", ("sales", "general", "quiet")[i % 3]
            info = QueuedCall(call_id, f"PJSIP/caller-{self.n}", queue)
            c, effects = cs.enqueue(info, self.now, WALK_SETUP)
            self.calls[call_id] = c
            self.callers[call_id] = info.channel
            self.carry(effects)
            self.call_event(call_id, cs.HoldReady())
        elif kind == "newchannel" and (leg_id := self.pick(self.dialing, i)):
            self.channel_of(leg_id)
        elif kind == "answer" and (leg_id := self.pick(self.dialing, i)):
            chan = self.channel_of(leg_id)
            del self.dialing[leg_id]
            self.up[leg_id] = chan
            self.leg_event(leg_id, cs.LegAnswered(leg_id, chan))
        elif kind == "fail" and (leg_id := self.pick(self.dialing, i)):
            chan = self.dialing.pop(leg_id)
            self.leg_event(leg_id, cs.LegFailed(leg_id, "rona", chan))
            if chan is not None:
                self.leg_event(leg_id, cs.LegHungUp(leg_id, 19))
        elif kind == "talk_end" and (leg_id := self.pick(self.up, i)):
            del self.up[leg_id]
            self.leg_event(leg_id, cs.LegHungUp(leg_id, 16))
        elif kind == "dial_end" and (leg_id := self.pick(self.up, i)):
            self.leg_event(leg_id, cs.DialEnded(leg_id, "ANSWER" if i % 2 else "NOANSWER"))
        elif kind == "abandon" and (call_id := self.pick(self.callers, i)):
            del self.callers[call_id]
            self.call_event(call_id, cs.CallerHungUp(16))
        elif kind == "withdraw" and (call_id := self.pick(self.calls_in(*cs.IN_LINE), i)):
            self.call_event(call_id, cs.Withdraw())
        elif kind == "callback" and (call_id := self.pick(self.calls_in(*cs.IN_LINE), i)):
            with contextlib.suppress(RoutingError):  # not in the router while being put on hold
                self.call_event(call_id, cs.AcceptCallback("+15550000"))
        elif kind == "transfer" and (call_id := self.pick(self.calls_in(cs.CallStatus.CONNECTED), i)):
            c = self.calls[call_id]
            if c.caller_gone or c.held:
                with pytest.raises(DomainError) as refused:
                    self.call_event(call_id, cs.TransferToNumber("+15557"))
                assert refused.value.code == ("on_hold" if c.held else "caller_gone")
                return
            self.detached.add(c.leg_id or "")
            if i % 2:
                self.call_event(call_id, cs.TransferToQueue("sales"))
                self.call_event(call_id, cs.HoldReady(arrived_at=self.now))
            else:
                self.call_event(call_id, cs.TransferToNumber("+15557"))
        elif kind == "hold" and (call_id := self.pick(self.calls_in(cs.CallStatus.CONNECTED), i)):
            c = self.calls[call_id]
            if c.caller_gone and not c.held:  # a callback's customer is on the agent's leg
                with pytest.raises(DomainError):
                    self.call_event(call_id, cs.HoldRequested())
                return
            self.call_event(call_id, cs.UnholdRequested() if c.held else cs.HoldRequested())
            assert self.calls[call_id].held is not c.held
        elif kind in ("login", "logout", "pause", "resume"):
            agent = AGENTS[i % len(AGENTS)]
            event: ag.Event = {
                "login": ag.Login(),
                "logout": ag.Logout(),
                "pause": ag.Pause("lunch"),
                "resume": ag.Resume(),
            }[kind]
            with contextlib.suppress(AgentStateError):
                self.agent_event(agent, event)
        elif kind == "time":
            self.advance((1.0, 5.0, 30.0, 90.0)[i % 4])
        self.obey_hangups()

    def drain(self) -> None:
        """Callers hang up, the PBX ends every leg (answering callbacks' customers), agents come
        back, time passes: every call must end."""
        for _ in range(12):
            for call_id in sorted(self.callers):
                del self.callers[call_id]
                self.call_event(call_id, cs.CallerHungUp(16))
            self.obey_hangups()
            for leg_id in sorted(self.dialing):
                if leg_id in self.dialing:
                    self.step("answer", sorted(self.dialing).index(leg_id))
            for leg_id in sorted(self.up):
                self.leg_event(leg_id, cs.DialEnded(leg_id, "ANSWER"))
                if leg_id in self.up:
                    del self.up[leg_id]
                    self.leg_event(leg_id, cs.LegHungUp(leg_id, 16))
            self.obey_hangups()
            for agent in AGENTS:
                with contextlib.suppress(AgentStateError):
                    self.agent_event(
                        agent,
                        ag.Login() if self.agents[agent].status is ag.Status.LOGGED_OUT else ag.Resume(),
                    )
            self.advance(400.0)
            if not self.calls and not self.dialing and not self.up:
                break

    # ------------------------------------------------------------ what must always hold
    def check(self) -> None:
        live: dict[str, list[tuple[str, cs.Leg]]] = {a: [] for a in AGENTS}
        for call_id, c in self.calls.items():
            for leg in c.legs:
                if leg.live:
                    live[leg.agent_id].append((call_id, leg))
            answered = {x.leg_id for x in c.legs if x.status is cs.LegStatus.ANSWERED} - self.detached
            assert answered <= ({c.leg_id} if c.leg_id else set()), ("two agents on a call", c)
            if c.status is cs.CallStatus.CONNECTED:
                leg = c.leg(c.leg_id)
                assert leg is not None and leg.status is cs.LegStatus.ANSWERED, c
            assert not c.held or c.status is cs.CallStatus.CONNECTED, ("held, not connected", c)
            for leg in c.legs:
                if leg.status is cs.LegStatus.RINGING:  # it is the call's offer
                    assert (c.status is cs.CallStatus.OFFERED and c.leg_id == leg.leg_id) or (
                        c.status is cs.CallStatus.RINGING_ALL and leg.leg_id in c.ring
                    ), (leg, c)
        for agent, state in self.agents.items():
            assert len(live[agent]) <= 1, ("an agent with two calls", agent, live[agent])
            held = live[agent][0] if live[agent] else None
            if state.status in (ag.Status.RESERVED, ag.Status.RINGING):
                assert held is not None and held[0] == state.call_id, ("stuck reserved", agent, state)
                assert held[1].status is cs.LegStatus.RINGING
            elif state.status is ag.Status.ON_CALL:
                assert (
                    held is not None and held[0] == state.call_id and held[1].status is cs.LegStatus.ANSWERED
                )
            else:
                assert held is None, (agent, state, held)
        for kind, key in self.timers:  # a timer runs only for what is still there
            if kind is cs.TimerKind.ANNOUNCE:
                assert key in self.calls and self.calls[key].status in cs.IN_LINE, key
            elif kind is cs.TimerKind.CALLBACK_RETRY:
                assert self.calls[key].status is cs.CallStatus.CALLBACK_PENDING
            elif kind is cs.TimerKind.RING_GUARD:
                legs = [x for c in self.calls.values() if (x := c.leg(key)) is not None]
                assert legs and (legs[0].status is cs.LegStatus.RINGING or legs[0].channel is None), key


KINDS = ["call", "call", "call", "newchannel", "answer", "answer", "fail", "talk_end", "talk_end"]
KINDS += ["dial_end", "abandon", "withdraw", "callback", "transfer", "login", "login", "logout"]
KINDS += ["pause", "resume", "resume", "time", "time", "hold", "hold"]
OPS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 11)), min_size=10, max_size=120)


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_random_walk_keeps_every_promise(ops: list[tuple[str, int]]) -> None:
    world = World()
    for agent in AGENTS[:3]:
        world.agent_event(agent, ag.Login())
    for kind, i in ops:
        world.step(kind, i)
        world.check()
    world.drain()
    world.check()
    assert world.calls == {}, "a call that never ended"
    assert not world.dialing and not world.up
    busy = {a: s.status for a, s in world.agents.items() if s.status in ag.BUSY}
    assert busy == {}, "an agent left reserved, ringing or on a call"
    assert world.timers == {}, "a timer left running"
    assert world.started == world.fired + world.cancelled
