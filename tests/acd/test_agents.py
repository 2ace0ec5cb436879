"""The agent state machine: every state x event, then the scenarios the incumbents get wrong."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.acd.agents import (
    EVENT_TYPES,
    HELD,
    TABLE,
    AgentState,
    Answer,
    CallEnded,
    CancelOffer,
    Deferred,
    Dispose,
    DispositionMissing,
    Event,
    Hold,
    Login,
    Logout,
    NoAnswer,
    Pause,
    Release,
    Reserve,
    Resume,
    Ring,
    ScheduleWrapUpEnd,
    StateChanged,
    Status,
    WithdrawOffer,
    WrapUpEnd,
    held,
    transition,
)
from callcenter.errors import AgentStateError

S = Status
CALL = "call-1"


def in_state(status: Status) -> AgentState:
    base = AgentState("1001", status, since=0.0)
    if status in (S.RESERVED, S.RINGING, S.ON_CALL):
        return replace(base, call_id=CALL)
    if status is S.WRAP_UP:
        return replace(base, wrap_up_until=50.0, wrap_call_id=CALL)
    if status is S.PAUSED:
        return replace(base, reason="lunch")
    return base


SAMPLES: dict[type[Event], Event] = {
    Login: Login(),
    Logout: Logout(),
    Pause: Pause("break"),
    Resume: Resume(),
    Reserve: Reserve(CALL),
    Hold: Hold(CALL),
    Release: Release(CALL),
    Ring: Ring(CALL),
    Answer: Answer(CALL),
    NoAnswer: NoAnswer(CALL),
    CancelOffer: CancelOffer(CALL),
    CallEnded: CallEnded(CALL, wrap_up_seconds=30),
    WrapUpEnd: WrapUpEnd(),
    Dispose: Dispose(CALL),
}

# state -> event -> expected new status, "same" (no-op / deferred) or the refusal code.
EXPECTED: dict[Status, dict[type[Event], str]] = {
    S.LOGGED_OUT: {
        Login: "available", Logout: "!not_logged_in", Pause: "!not_logged_in", Resume: "!not_logged_in",
        Reserve: "!not_available", Ring: "!no_offer", Answer: "!no_offer", NoAnswer: "!no_offer",
        CancelOffer: "!no_offer", CallEnded: "!not_on_call", WrapUpEnd: "same", Dispose: "!wrong_call",
        Hold: "!not_available", Release: "same",
    },
    S.AVAILABLE: {
        Login: "!already_logged_in", Logout: "logged_out", Pause: "paused", Resume: "!not_paused",
        Reserve: "reserved", Ring: "!no_offer", Answer: "!no_offer", NoAnswer: "!no_offer",
        CancelOffer: "!no_offer", CallEnded: "!not_on_call", WrapUpEnd: "same", Dispose: "!wrong_call",
        Hold: "reserved", Release: "same",
    },
    S.RESERVED: {
        Login: "!already_logged_in", Logout: "logged_out", Pause: "same", Resume: "!not_paused",
        Reserve: "!not_available", Ring: "ringing", Answer: "on_call", NoAnswer: "not_ready",
        CancelOffer: "available", CallEnded: "!not_on_call", WrapUpEnd: "same", Dispose: "!wrong_call",
        Hold: "!not_available", Release: "same",
    },
    S.RINGING: {
        Login: "!already_logged_in", Logout: "logged_out", Pause: "same", Resume: "!not_paused",
        Reserve: "!not_available", Ring: "!no_offer", Answer: "on_call", NoAnswer: "not_ready",
        CancelOffer: "available", CallEnded: "!not_on_call", WrapUpEnd: "same", Dispose: "!wrong_call",
        Hold: "!not_available", Release: "same",
    },
    S.ON_CALL: {
        Login: "!already_logged_in", Logout: "same", Pause: "same", Resume: "!not_paused",
        Reserve: "!not_available", Ring: "!no_offer", Answer: "!no_offer", NoAnswer: "!no_offer",
        CancelOffer: "!no_offer", CallEnded: "wrap_up", WrapUpEnd: "same", Dispose: "same",
        Hold: "!not_available", Release: "same",
    },
    S.WRAP_UP: {
        Login: "!already_logged_in", Logout: "logged_out", Pause: "paused", Resume: "available",
        Reserve: "!not_available", Ring: "!no_offer", Answer: "!no_offer", NoAnswer: "!no_offer",
        CancelOffer: "!no_offer", CallEnded: "!not_on_call", WrapUpEnd: "available", Dispose: "available",
        Hold: "!not_available", Release: "same",
    },
    S.PAUSED: {
        Login: "!already_logged_in", Logout: "logged_out", Pause: "paused", Resume: "available",
        Reserve: "!not_available", Ring: "!no_offer", Answer: "!no_offer", NoAnswer: "!no_offer",
        CancelOffer: "!no_offer", CallEnded: "!not_on_call", WrapUpEnd: "same", Dispose: "!wrong_call",
        Hold: "!not_available", Release: "same",
    },
    S.NOT_READY: {
        Login: "!already_logged_in", Logout: "logged_out", Pause: "paused", Resume: "available",
        Reserve: "!not_available", Ring: "!no_offer", Answer: "!no_offer", NoAnswer: "!no_offer",
        CancelOffer: "!no_offer", CallEnded: "!not_on_call", WrapUpEnd: "same", Dispose: "!wrong_call",
        Hold: "!not_available", Release: "same",
    },
}  # fmt: skip


def test_the_table_is_total() -> None:
    for status in Status:
        for ev in EVENT_TYPES:
            assert (status, ev) in TABLE, (status, ev)
    assert set(EXPECTED) == set(Status)
    assert all(set(row) == set(EVENT_TYPES) for row in EXPECTED.values())


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("ev_type", list(EVENT_TYPES), ids=lambda t: t.__name__)
def test_every_state_and_event(status: Status, ev_type: type[Event]) -> None:
    state = in_state(status)
    expected = EXPECTED[status][ev_type]
    now = 100.0
    if expected.startswith("!"):
        with pytest.raises(AgentStateError) as err:
            transition(state, SAMPLES[ev_type], now)
        assert err.value.code == expected[1:]
        assert err.value.agent_id == "1001" and err.value.state == status.value
        return
    new, effects = transition(state, SAMPLES[ev_type], now)
    if expected == "same":
        assert new.status is status
        assert not any(isinstance(e, StateChanged) for e in effects)
        return
    assert new.status.value == expected
    changes = [e for e in effects if isinstance(e, StateChanged)]
    assert len(changes) == 1, "every change is logged, once"
    (ch,) = changes
    assert (ch.old, ch.new, ch.at, ch.agent_id) == (status, new.status, now, "1001")
    assert ch.reason, "every change carries its reason"
    assert new.since == now
    if new.status not in (S.RESERVED, S.RINGING, S.ON_CALL):
        assert new.call_id is None


def test_login_paused_is_atomic() -> None:
    new, effects = transition(AgentState("1"), Login(paused_reason="training"), 5.0)
    assert (new.status, new.reason) == (S.PAUSED, "training")
    assert effects == [StateChanged("1", S.LOGGED_OUT, S.PAUSED, "training", 5.0)]


def test_one_wrap_up_then_a_pause_asked_during_the_call() -> None:
    s = AgentState("1")
    s, _ = transition(s, Login(), 0)
    s, _ = transition(s, Reserve("c"), 1)
    s, _ = transition(s, Ring("c"), 1)
    s, _ = transition(s, Answer("c"), 3)
    s, eff = transition(s, Pause("lunch"), 10)
    assert s.status is S.ON_CALL and eff == [Deferred("1", "pause", "lunch", 10)]
    s, eff = transition(s, CallEnded("c", wrap_up_seconds=20), 60)
    assert s.status is S.WRAP_UP and ScheduleWrapUpEnd("1", 80) in eff, "the wrap-up is not skipped"
    assert transition(s, WrapUpEnd(), 79)[0] is s  # early timer: no-op
    s, eff = transition(s, WrapUpEnd(), 80)
    assert (s.status, s.reason) == (S.PAUSED, "lunch")
    assert s.calls_handled == 1 and s.pending is None


def test_resume_withdraws_a_pending_pause() -> None:
    s = AgentState("1", S.ON_CALL, call_id="c")
    s, _ = transition(s, Pause("break"), 1)
    s, eff = transition(s, Resume(), 2)
    assert s.pending is None and eff == [Deferred("1", None, "resume", 2)]
    s, _ = transition(s, CallEnded("c"), 3)
    assert s.status is S.AVAILABLE


def test_rona_count_and_actions() -> None:
    s = AgentState("1", S.RINGING, call_id="c")
    s2, _ = transition(s, NoAnswer("c", max_missed=2), 1)
    assert s2.status is S.AVAILABLE and s2.missed == 1
    s3, _ = transition(replace(s2, status=S.RINGING, call_id="d"), NoAnswer("d", max_missed=2), 2)
    assert (s3.status, s3.reason, s3.missed) == (S.NOT_READY, "rona", 2)
    s4, _ = transition(s, NoAnswer("c", cause="busy", action="logout"), 1)
    assert (s4.status, s4.reason) == (S.LOGGED_OUT, "busy")
    s5, _ = transition(s, NoAnswer("c", action="pause", pause_reason="missed"), 1)
    assert (s5.status, s5.reason) == (S.PAUSED, "missed")
    answered, _ = transition(replace(s2, status=S.RINGING, call_id="e"), Answer("e"), 3)
    assert answered.missed == 0


def test_logout_while_offered_withdraws_the_offer() -> None:
    s = AgentState("1", S.RINGING, call_id="c")
    s, eff = transition(s, Logout(), 1)
    assert s.status is S.LOGGED_OUT
    assert WithdrawOffer("1", "c", "logout") in eff


def test_events_for_another_call_are_refused() -> None:
    s = AgentState("1", S.RINGING, call_id="c")
    with pytest.raises(AgentStateError) as err:
        transition(s, Answer("other"), 1)
    assert err.value.code == "wrong_call"


def test_a_pause_needs_a_reason() -> None:
    with pytest.raises(AgentStateError) as err:
        transition(AgentState("1", S.AVAILABLE), Pause(""), 1)
    assert err.value.code == "pause_reason_required"


events = st.one_of(
    st.builds(Login, st.one_of(st.none(), st.just("lunch"))),
    st.just(Logout()),
    st.builds(Pause, st.sampled_from(["break", "lunch"])),
    st.just(Resume()),
    st.builds(Reserve, st.sampled_from(["a", "b"])),
    st.builds(Hold, st.sampled_from(["a", "b"])),
    st.builds(Release, st.sampled_from(["a", "b"])),
    st.builds(Ring, st.sampled_from(["a", "b"])),
    st.builds(Answer, st.sampled_from(["a", "b"])),
    st.builds(NoAnswer, st.sampled_from(["a", "b"]), max_missed=st.integers(1, 3)),
    st.builds(CancelOffer, st.sampled_from(["a", "b"])),
    st.builds(
        CallEnded, st.sampled_from(["a", "b"]), st.sampled_from([0.0, 5.0]), needs_disposition=st.booleans()
    ),
    st.just(WrapUpEnd()),
    st.builds(Dispose, st.sampled_from(["a", "b"])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(events, st.floats(0, 10)), max_size=40))
def test_random_walks_keep_the_invariants(walk: list[tuple[Event, float]]) -> None:
    s = AgentState("1")
    now = 0.0
    for ev, dt in walk:
        now += dt
        try:
            new, effects = transition(s, ev, now)
        except AgentStateError:
            continue
        # Never two calls: a new offer only from available, and only one call held at a time.
        if isinstance(ev, Reserve):
            assert s.status is S.AVAILABLE or held(s) == ev.call_id
            assert new.call_id == ev.call_id
        if isinstance(ev, Hold):
            assert s.status is S.AVAILABLE and held(new) == ev.attempt_id
        if held(s) is not None and isinstance(ev, Release) and ev.attempt_id == held(s):
            assert new.status is not S.RESERVED  # a released hold never leaves the agent reserved
        assert (new.call_id is not None) == (new.status in (S.RESERVED, S.RINGING, S.ON_CALL))
        assert (new.wrap_up_until is not None) == (new.status is S.WRAP_UP)
        changed = [e for e in effects if isinstance(e, StateChanged)]
        assert len(changed) <= 1
        if new.status is not s.status:
            assert len(changed) == 1 and changed[0].reason
        if new.status is S.LOGGED_OUT:
            assert new.pending is None
        # A disposition is owed only during the wrap-up of the agent's last call; once that
        # wrap-up ends without it, the table says so exactly once.
        if new.disposition_due:
            assert new.status is S.WRAP_UP and new.wrap_call_id is not None
        missing = [e for e in effects if isinstance(e, DispositionMissing)]
        owed_and_gone = s.disposition_due and not new.disposition_due and not isinstance(ev, Dispose)
        ended_unwrapped = (
            isinstance(ev, CallEnded)
            and ev.needs_disposition
            and ev.wrap_up_seconds == 0
            and s.disposed_call != ev.call_id
        )
        assert len(missing) == (1 if owed_and_gone or ended_unwrapped else 0)
        for m in missing:
            assert m.call_id == (ev.call_id if isinstance(ev, CallEnded) else s.wrap_call_id)
        s = new


# ------------------------------------------------------------------ the dialer's hold
def test_a_held_agent_is_offered_only_its_own_attempt() -> None:
    s, eff = transition(AgentState("1", S.AVAILABLE), Hold("att-1"), 1.0)
    assert (s.status, s.reason, held(s)) == (S.RESERVED, HELD, "att-1")
    assert [type(e) for e in eff] == [StateChanged]
    with pytest.raises(AgentStateError) as err:
        transition(s, Reserve("inbound-9"), 2.0)  # an inbound call cannot take it
    assert err.value.code == "not_available"
    with pytest.raises(AgentStateError):
        transition(s, Hold("att-2"), 2.0)  # nor another attempt
    offered, _ = transition(s, Reserve("att-1"), 3.0)
    assert (offered.status, offered.call_id, held(offered)) == (S.RESERVED, "att-1", None)
    ringing, _ = transition(offered, Ring("att-1"), 3.0)
    assert ringing.status is S.RINGING
    # Once offered, the hold is spent: a late Release changes nothing.
    assert transition(offered, Release("att-1"), 4.0) == (offered, [])


def test_a_released_hold_frees_the_agent_or_applies_its_pending_pause() -> None:
    s, _ = transition(AgentState("1", S.AVAILABLE), Hold("att-1"), 1.0)
    free, eff = transition(s, Release("att-1", "attempt_busy"), 2.0)
    assert (free.status, free.reason, free.call_id) == (S.AVAILABLE, "attempt_busy", None)
    assert [e.reason for e in eff if isinstance(e, StateChanged)] == ["attempt_busy"]
    pending, _ = transition(s, Pause("lunch"), 1.5)
    assert pending.status is S.RESERVED and pending.pending == "pause"
    paused, _ = transition(pending, Release("att-1"), 2.0)
    assert (paused.status, paused.reason) == (S.PAUSED, "lunch")
    # a release for an attempt it does not hold is a no-op (outcomes race)
    assert transition(s, Release("att-2"), 2.0) == (s, [])
    gone, eff = transition(s, Logout(), 2.0)
    assert gone.status is S.LOGGED_OUT and any(isinstance(e, WithdrawOffer) for e in eff)
