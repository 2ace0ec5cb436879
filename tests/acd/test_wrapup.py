"""Dispositions: the choice's rules, the notes' cleaning, the masking of card-like digits, and the
agent table's wrap-up that ends on a disposition or at its timeout (stored as ``none``)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.acd.agents import (
    AgentState,
    Answer,
    CallEnded,
    Dispose,
    DispositionMissing,
    Logout,
    Pause,
    Reserve,
    Resume,
    StateChanged,
    Status,
    WrapUpEnd,
    transition,
)
from callcenter.acd.wrapup import NOTES_MAX, choose, clean_notes, mask_card_like
from callcenter.config.model import DispositionCode
from callcenter.errors import AgentStateError, DispositionError

S = Status
CODES = (DispositionCode("sale", "Sale made"), DispositionCode("no_sale", "Not interested"))


# ------------------------------------------------------------------------------------ the choice
def test_a_configured_code_is_chosen() -> None:
    assert choose(CODES, "sale") == CODES[0]
    assert choose(CODES, " no_sale ") == CODES[1]


@pytest.mark.parametrize(
    ("codes", "code", "error"),
    [
        (CODES, None, "disposition_required"),
        (CODES, "", "disposition_required"),
        (CODES, "  ", "disposition_required"),
        (CODES, "bogus", "unknown_disposition"),
        (CODES, "SALE", "unknown_disposition"),
        ((), "sale", "unknown_disposition"),
    ],
)
def test_a_missing_or_unknown_code_is_refused(
    codes: tuple[DispositionCode, ...], code: str | None, error: str
) -> None:
    with pytest.raises(DispositionError) as err:
        choose(codes, code)
    assert err.value.code == error and err.value.field == "code"


def test_a_call_without_codes_needs_none() -> None:
    assert choose((), None) is None
    assert choose((), "") is None


# ------------------------------------------------------------------------------------ notes
def test_notes_lose_control_characters_and_are_capped() -> None:
    assert (
        clean_notes("  wants a quote\r\nby Friday\t(email)\x1b[31m \u202e ")
        == "wants a quote\nby Friday (email)[31m"
    )
    assert clean_notes("\x00\x07  ") is None
    assert clean_notes(None) is None
    assert clean_notes("x" * (NOTES_MAX * 3)) == "x" * NOTES_MAX


@given(st.text(max_size=3000))
def test_cleaned_notes_are_printable_and_bounded(text: str) -> None:
    out = clean_notes(text)
    if out is not None:
        assert len(out) <= NOTES_MAX
        assert all(ch == "\n" or not unicodedata.category(ch).startswith("C") for ch in out)
        assert out == out.strip()


# ------------------------------------------------------------------------------------ masking
@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("4111111111111111", "************1111"),
        ("card 4111 1111 1111 1111 ok", "card ************1111 ok"),
        ("5500-0000-0000-0004", "************0004"),
        ("account 12345678", "account 12345678"),  # too short to be a card
        ("+12125550100", "+12125550100"),  # a phone number stays
    ],
)
def test_card_like_digits_are_masked(raw: str, shown: str) -> None:
    assert mask_card_like(raw) == shown


# ------------------------------------------------------------------------------------ the agent table
def on_call(call: str = "c1") -> AgentState:
    s, _ = transition(AgentState("1001", S.AVAILABLE), Reserve(call), 0)
    s, _ = transition(s, Answer(call), 1)
    return s


def ended(wrap: float = 30, needs: bool = True, s: AgentState | None = None) -> AgentState:
    s, _ = transition(
        s or on_call(), CallEnded("c1", wrap, queue="sales", campaign=None, needs_disposition=needs), 10
    )
    return s


def test_the_disposition_ends_the_wrap_up() -> None:
    s = ended()
    assert (s.status, s.wrap_call_id, s.disposition_due, s.wrap_queue) == (S.WRAP_UP, "c1", True, "sales")
    s, effects = transition(s, Dispose("c1"), 15)
    assert s.status is S.AVAILABLE and not s.disposition_due
    assert [e.reason for e in effects if isinstance(e, StateChanged)] == ["disposition"]
    assert not any(isinstance(e, DispositionMissing) for e in effects)


def test_a_wrap_up_that_times_out_stores_a_missing_disposition() -> None:
    s = ended()
    s, effects = transition(s, WrapUpEnd(), 40)
    assert s.status is S.AVAILABLE
    (missing,) = [e for e in effects if isinstance(e, DispositionMissing)]
    assert (missing.call_id, missing.reason, missing.queue, missing.at) == ("c1", "timed_out", "sales", 40)
    # ...and a disposition given late still counts (it replaces the missing one in the log)
    s, effects = transition(s, Dispose("c1"), 50)
    assert s.status is S.AVAILABLE and effects == []


def test_the_agent_cannot_resume_before_the_disposition() -> None:
    s = ended()
    with pytest.raises(AgentStateError) as err:
        transition(s, Resume(), 12)
    assert err.value.code == "disposition_required"
    # without codes, resuming ends the wrap-up as before
    s2, _ = transition(ended(needs=False), Resume(), 12)
    assert s2.status is S.AVAILABLE


def test_a_pause_asked_in_wrap_up_waits_for_the_disposition() -> None:
    s = ended()
    s, effects = transition(s, Pause("lunch"), 12)
    assert s.status is S.WRAP_UP and s.pending == "pause"
    s, effects = transition(s, Dispose("c1"), 14)
    assert (s.status, s.reason) == (S.PAUSED, "lunch")


def test_logging_out_in_wrap_up_stores_a_missing_disposition() -> None:
    s, effects = transition(ended(), Logout(), 12)
    assert s.status is S.LOGGED_OUT and not s.disposition_due
    assert [(e.reason, e.call_id) for e in effects if isinstance(e, DispositionMissing)] == [
        ("logged_out", "c1")
    ]


def test_a_disposition_given_during_the_call_is_not_asked_again() -> None:
    s, effects = transition(on_call(), Dispose("c1"), 5)
    assert s.status is S.ON_CALL and s.disposed_call == "c1" and effects == []
    s = ended(s=s)
    assert s.status is S.WRAP_UP and not s.disposition_due
    s, effects = transition(s, WrapUpEnd(), 40)
    assert s.status is S.AVAILABLE and not any(isinstance(e, DispositionMissing) for e in effects)
    s2, _ = transition(ended(s=transition(on_call(), Dispose("c1"), 5)[0]), Resume(), 12)
    assert s2.status is S.AVAILABLE


def test_a_queue_without_wrap_up_time_reports_the_disposition_missing_at_once() -> None:
    s = ended(wrap=0)
    assert s.status is S.AVAILABLE and not s.disposition_due
    # the table reported it when the call ended
    _, effects = transition(on_call(), CallEnded("c1", 0, queue="sales", needs_disposition=True), 10)
    assert [e.reason for e in effects if isinstance(e, DispositionMissing)] == ["no_wrap_up"]


def test_only_the_current_or_last_call_takes_a_disposition() -> None:
    with pytest.raises(AgentStateError) as err:
        transition(ended(), Dispose("c2"), 12)
    assert err.value.code == "wrong_call"
    with pytest.raises(AgentStateError) as err:
        transition(on_call(), Dispose("c2"), 5)
    assert err.value.code == "wrong_call"
    with pytest.raises(AgentStateError) as err:
        transition(AgentState("1001", S.AVAILABLE), Dispose("c1"), 5)
    assert err.value.code == "wrong_call"
