"""The dialer's pure core: windows, pacing maths, DNC, max attempts, retries, abandonment."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import CampaignError
from callcenter.outbound.contacts import Contact, DncList
from callcenter.outbound.dialer import (
    AbandonmentLedger,
    AgentLoad,
    AnswerStats,
    CallingWindow,
    CampaignSettings,
    ContactStatus,
    Dialer,
    HandleTimes,
    Mode,
    Outcome,
    PacingSettings,
    _binomial_tail_excess,
    expected_abandons,
    next_open,
    pace,
    progressive_lines,
    window_open,
)

NY = ("America/New_York",)
LA = ("America/Los_Angeles",)
LONDON = ("Europe/London",)


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def local(zone: str, instant: float) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(instant, ZoneInfo(zone))


# ----------------------------------------------------------------------------- windows
WINDOW = CallingWindow(time(9), time(20))


def test_window_follows_us_dst_change() -> None:
    # 13:30 UTC is 08:30 EST on Saturday 7 March 2026 but 09:30 EDT on Sunday 8 March.
    assert not window_open(WINDOW, NY, ts(2026, 3, 7, 13, 30))
    assert window_open(WINDOW, NY, ts(2026, 3, 8, 13, 30))
    # and back in November: 13:30 UTC is 09:30 EDT on 31 Oct, 08:30 EST on 1 Nov
    assert window_open(WINDOW, NY, ts(2026, 10, 31, 13, 30))
    assert not window_open(WINDOW, NY, ts(2026, 11, 1, 13, 30))


def test_window_between_the_us_and_eu_changes() -> None:
    # 20 March 2026: New York already on EDT (UTC-4), London still on GMT.
    at = ts(2026, 3, 20, 12, 30)
    assert window_open(WINDOW, LONDON, at)
    assert not window_open(WINDOW, NY, at)  # 08:30 EDT
    assert window_open(WINDOW, LONDON + NY, ts(2026, 3, 20, 13, 0))
    assert not window_open(WINDOW, LONDON + NY, ts(2026, 3, 20, 20, 0))  # 20:00 London: closed


def test_next_open_across_zones_is_the_strictest() -> None:
    at = ts(2026, 6, 1, 13, 0)  # 09:00 in New York, 06:00 in Los Angeles
    opens = next_open(WINDOW, NY + LA, at)
    assert opens == ts(2026, 6, 1, 16, 0)  # 09:00 Pacific
    assert local("America/Los_Angeles", opens).time() == time(9)


def test_next_open_skips_closed_days_and_is_exact() -> None:
    weekdays = CallingWindow(time(9), time(20), frozenset(range(5)))
    friday_late = ts(2026, 6, 6, 1, 0)  # Friday 21:00 EDT
    opens = next_open(weekdays, NY, friday_late)
    assert opens is not None
    assert local("America/New_York", opens) == datetime(2026, 6, 8, 9, 0, tzinfo=local(NY[0], opens).tzinfo)
    assert window_open(weekdays, NY, opens)
    assert not window_open(weekdays, NY, opens - 1)
    assert next_open(weekdays, NY, opens + 60) == opens + 60


def test_next_open_in_a_dst_gap_opens_after_the_gap() -> None:
    early = CallingWindow(time(2, 30), time(4))
    at = ts(2026, 3, 8, 6, 0)  # 01:00 EST, the night the clocks jump 02:00 -> 03:00
    opens = next_open(early, NY, at)
    assert opens is not None
    assert opens > at
    opened = local("America/New_York", opens)
    assert opened.date().day == 8 and time(3) <= opened.time() < time(4)


def test_next_open_none_when_zones_never_overlap() -> None:
    narrow = CallingWindow(time(9), time(10))
    assert next_open(narrow, ("Asia/Tokyo", "America/New_York"), ts(2026, 6, 1)) is None


def test_window_validation() -> None:
    with pytest.raises(CampaignError):
        CallingWindow(time(20), time(9))
    with pytest.raises(CampaignError):
        CallingWindow(days=frozenset({7}))


@given(
    st.floats(min_value=ts(2026, 1, 1), max_value=ts(2027, 1, 1)), st.sampled_from([NY, LA, LONDON, NY + LA])
)
@settings(max_examples=150)
def test_next_open_is_open_and_nothing_earlier_after_now(at: float, zones: tuple[str, ...]) -> None:
    opens = next_open(WINDOW, zones, at)
    assert opens is not None and opens >= at
    assert window_open(WINDOW, zones, opens)
    if opens > at:  # closed a minute before, and at the start
        assert not window_open(WINDOW, zones, max(at, opens - 60))


# ----------------------------------------------------------------------------- pacing maths
def test_binomial_tail_excess_matches_brute_force() -> None:
    from math import comb

    n, p = 7, 0.3
    excess = _binomial_tail_excess(n, p)
    for m in range(n + 1):
        brute = sum(comb(n, h) * p**h * (1 - p) ** (n - h) * max(0, h - m) for h in range(n + 1))
        assert excess[m] == pytest.approx(brute)
    assert excess[0] == pytest.approx(n * p)


def test_expected_abandons() -> None:
    assert expected_abandons(3, 0.9, 3, 0.0) == 0.0  # never more people than idle agents
    assert expected_abandons(2, 0.5, 1, 0.0) == pytest.approx(0.25)
    from math import exp

    assert expected_abandons(2, 0.5, 1, 0.7) == pytest.approx(0.25 * exp(-0.7))
    # more agents coming free means fewer abandons
    assert expected_abandons(20, 0.3, 2, 3.0) < expected_abandons(20, 0.3, 2, 1.0)


def measured(
    rate: float = 0.3, attempts: int = 400, person_after: float = 12.0, other: float = 20.0
) -> AnswerStats:
    stats = AnswerStats()
    humans = round(attempts * rate)
    for i in range(attempts):
        stats.add(person_after if i < humans else other, human=i < humans)
    return stats


def handles(mean: float = 180.0) -> HandleTimes:
    times = HandleTimes()
    for i in range(200):
        times.add(mean * (0.5 + i / 200))
    return times


def test_progressive_and_preview() -> None:
    agents = AgentLoad(logged_in=10, idle=5, busy_elapsed=(10.0,) * 5)
    assert progressive_lines(agents, 2) == 3
    s = PacingSettings()
    d = pace(Mode.PROGRESSIVE, agents, [1.0, 2.0], measured(), handles(), s)
    assert (d.lines, d.mode) == (3, Mode.PROGRESSIVE)
    assert pace(Mode.PREVIEW, agents, [], measured(), handles(), s).lines == 0


def test_no_line_says_whether_agents_are_logged_out_or_paused() -> None:
    s = PacingSettings()
    for mode in (Mode.PROGRESSIVE, Mode.PREDICTIVE):
        nobody = pace(mode, AgentLoad(logged_in=0, idle=0), [], measured(), handles(), s)
        assert (nobody.lines, nobody.reason) == (0, "no agent logged in")
        paused = pace(mode, AgentLoad(logged_in=0, idle=0, paused=3), [], measured(), handles(), s)
        assert (paused.lines, paused.reason) == (0, "all 3 agent(s) paused or not ready")


def test_predictive_warms_up_and_falls_back_as_progressive() -> None:
    agents = AgentLoad(logged_in=10, idle=4, busy_elapsed=(100.0,) * 6)
    s = PacingSettings()
    d = pace(Mode.PREDICTIVE, agents, [], measured(attempts=50), handles(), s)
    assert (d.lines, d.mode) == (4, Mode.PROGRESSIVE) and "warming up" in d.reason
    d = pace(Mode.PREDICTIVE, agents, [], measured(), handles(), s, fallback=True)
    assert (d.lines, d.mode) == (4, Mode.PROGRESSIVE) and "guard" in d.reason


def test_predictive_overdials_within_target_and_explains() -> None:
    s = PacingSettings()
    agents = AgentLoad(logged_in=20, idle=4, busy_elapsed=tuple(float(x) for x in range(60, 320, 16)))
    d = pace(Mode.PREDICTIVE, agents, [], measured(0.3), handles(), s)
    assert d.mode is Mode.PREDICTIVE
    assert d.lines > 4  # more than one line per idle agent
    assert d.expected_abandon_rate <= s.target
    assert d.lines <= 3 * 20
    assert "predictive: dial" in d.explain()
    # a lower answer rate asks for more lines; a tighter target for fewer
    lower = pace(Mode.PREDICTIVE, agents, [], measured(0.15), handles(), s)
    assert lower.lines > d.lines
    tight = pace(Mode.PREDICTIVE, agents, [], measured(0.3), handles(), s, gain=0.2)
    assert tight.lines < d.lines
    # lines already in flight are counted
    busy_lines = pace(Mode.PREDICTIVE, agents, [1.0] * 10, measured(0.3), handles(), s)
    assert busy_lines.lines < d.lines


def test_predictive_respects_line_cap() -> None:
    s = PacingSettings(max_lines_per_agent=1.5, abandon_limit=0.5)
    agents = AgentLoad(logged_in=4, idle=4)
    d = pace(Mode.PREDICTIVE, agents, [1.0], measured(0.05), handles(), s)
    assert d.lines == 5  # ceil(1.5 * 4) - 1 in flight


def test_handle_time_conditional() -> None:
    times = handles(100.0)  # uniform-ish 50..150
    assert times.p_done_within(140.0, 20.0) == pytest.approx(1.0)
    assert times.p_done_within(0.0, 10.0) == 0.0
    assert 0.2 < times.p_done_within(100.0, 20.0) < 0.6
    assert HandleTimes(prior_mean=100).p_done_within(0, 100) == pytest.approx(1 - 0.36787944, rel=1e-6)


def test_answer_stats_conditional() -> None:
    stats = measured(0.3, person_after=10.0, other=25.0)
    assert stats.answer_rate() == pytest.approx((120 + 6) / 420)
    assert stats.p_person_given_unresolved(5.0) == pytest.approx(0.3)
    assert stats.p_person_given_unresolved(15.0) == 0.0
    assert stats.time_to_person() == 10.0


# ----------------------------------------------------------------------------- ledger
def test_ledger_rolls() -> None:
    ledger = AbandonmentLedger(window=100.0)
    ledger.record(0.0, abandoned=True)
    for t in range(1, 10):
        ledger.record(float(t), abandoned=False)
    assert ledger.counts(50.0) == (10, 1)
    assert ledger.rate(50.0) == pytest.approx(0.1)
    assert ledger.counts(100.5) == (9, 0)
    assert ledger.rate(1000.0) == 0.0


# ----------------------------------------------------------------------------- the campaign
T0 = ts(2026, 6, 1, 16, 0)  # noon in New York, 09:00 in Los Angeles: both windows open


def contacts(n: int, zones: tuple[str, ...] = NY) -> list[Contact]:
    return [Contact(key=f"k{i}", phone=f"+1212555{i:04d}", zones=zones) for i in range(n)]


def settings_for(**kw: object) -> CampaignSettings:
    return CampaignSettings(name="spring", **kw)  # type: ignore[arg-type]


def test_dnc_checked_before_every_dial() -> None:
    dialer = Dialer(settings_for(), dnc=DncList(frozenset({"+12125550001"})))
    dialer.add_contacts(contacts(4), now=T0)
    _, attempts = dialer.plan(AgentLoad(2, 2), T0)
    assert [a.contact.key for a in attempts] == ["k0", "k2"]
    assert dialer.contact("k1").status is ContactStatus.DNC
    dialer.update_dnc(DncList(dialer.dnc.numbers | {"+12125550003"}))  # added while running
    _, attempts = dialer.plan(AgentLoad(4, 4), T0 + 1)
    assert attempts == []
    assert dialer.contact("k3").status is ContactStatus.DNC


def test_retry_delay_per_outcome_and_max_attempts() -> None:
    delays = {Outcome.BUSY: 60.0, Outcome.NO_ANSWER: 600.0, Outcome.MACHINE: 1200.0, Outcome.FAILED: 30.0}
    dialer = Dialer(settings_for(max_attempts=3, retry_delays=delays))
    dialer.add_contacts(contacts(1), now=T0)
    (a1,) = dialer.plan(AgentLoad(1, 1), T0)[1]
    state = dialer.on_outcome(a1.attempt_id, Outcome.BUSY, T0 + 5)
    assert state.status is ContactStatus.PENDING and state.next_at == T0 + 65
    assert dialer.plan(AgentLoad(1, 1), T0 + 64)[1] == []
    (a2,) = dialer.plan(AgentLoad(1, 1), T0 + 65)[1]
    assert a2.number == 2
    dialer.on_outcome(a2.attempt_id, Outcome.MACHINE, T0 + 70)
    assert dialer.contact("k0").next_at == T0 + 1270
    (a3,) = dialer.plan(AgentLoad(1, 1), T0 + 1270)[1]
    state = dialer.on_outcome(a3.attempt_id, Outcome.NO_ANSWER, T0 + 1300)
    assert state.status is ContactStatus.EXHAUSTED and state.attempts == 3
    assert dialer.plan(AgentLoad(1, 1), T0 + 99999)[1] == []
    assert dialer.finished


def test_final_outcomes_end_the_contact() -> None:
    dialer = Dialer(settings_for())
    dialer.add_contacts(contacts(2), now=T0)
    a, b = dialer.plan(AgentLoad(2, 2), T0)[1]
    dialer.on_person(a.attempt_id, T0 + 10)
    assert dialer.in_flight() == [b]
    assert dialer.on_connected(a.attempt_id, T0 + 11).status is ContactStatus.DONE
    assert dialer.on_outcome(b.attempt_id, Outcome.MACHINE_MESSAGE, T0 + 30).status is ContactStatus.DONE
    assert dialer.finished
    with pytest.raises(CampaignError) as info:
        dialer.on_connected(a.attempt_id, T0 + 12)
    assert info.value.code == "no_attempt"


def test_contacts_wait_for_their_window() -> None:
    dialer = Dialer(settings_for())
    early = ts(2026, 6, 1, 14, 0)  # 10:00 in New York, 07:00 in Los Angeles
    dialer.add_contacts([Contact("west", "+14155550100", LA), Contact("east", "+12125550100", NY)], now=early)
    _, attempts = dialer.plan(AgentLoad(2, 2), early)
    assert [a.contact.key for a in attempts] == ["east"]
    assert dialer.contact("west").next_at == ts(2026, 6, 1, 16, 0)
    assert dialer.plan(AgentLoad(2, 1), ts(2026, 6, 1, 15, 59))[1] == []
    assert [a.contact.key for a in dialer.plan(AgentLoad(2, 2), ts(2026, 6, 1, 16, 0))[1]] == ["west"]


def test_pause_resume_stop() -> None:
    dialer = Dialer(settings_for())
    dialer.add_contacts(contacts(3), now=T0)
    dialer.pause()
    decision, attempts = dialer.plan(AgentLoad(3, 3), T0)
    assert attempts == [] and "paused" in decision.reason
    dialer.resume()
    assert len(dialer.plan(AgentLoad(1, 1), T0)[1]) == 1
    dialer.stop()
    assert dialer.plan(AgentLoad(3, 3), T0)[1] == []
    with pytest.raises(CampaignError) as info:
        dialer.resume()
    assert info.value.code == "campaign_stopped"


def test_restore_never_redials_an_attempt_in_flight() -> None:
    dialer = Dialer(settings_for(max_attempts=2))
    c = contacts(3)
    dialer.restore_contact(c[0], attempts=1, status=ContactStatus.DIALING, next_at=T0 - 100, now=T0)
    dialer.restore_contact(c[1], attempts=2, status=ContactStatus.PENDING, next_at=T0 - 100, now=T0)
    dialer.restore_contact(c[2], attempts=1, status=ContactStatus.DONE, next_at=0, now=T0)
    assert dialer.plan(AgentLoad(3, 3), T0)[1] == []
    assert dialer.contact("k0").last_outcome is Outcome.UNKNOWN
    assert dialer.contact("k1").status is ContactStatus.EXHAUSTED
    (again,) = dialer.plan(AgentLoad(3, 3), T0 + 3600)[1]
    assert (again.contact.key, again.number) == ("k0", 2)


def test_preview_flow() -> None:
    dialer = Dialer(settings_for(mode=Mode.PREVIEW))
    dialer.add_contacts(contacts(2), now=T0)
    assert dialer.plan(AgentLoad(1, 1), T0)[1] == []
    held = dialer.preview_next("a1", T0)
    assert held is not None and held.contact.key == "k0"
    with pytest.raises(CampaignError):
        dialer.preview_dial("k0", "a2", T0)
    dialer.preview_skip("k0", "a1", T0, delay=60)
    nxt = dialer.preview_next("a1", T0 + 1)
    assert nxt is not None and nxt.contact.key == "k1"
    attempt = dialer.preview_dial("k1", "a1", T0 + 2)
    assert attempt.agent_id == "a1" and attempt.number == 1


def test_abandon_feedback_and_fallback() -> None:
    s = settings_for(mode=Mode.PREDICTIVE, pacing=PacingSettings(warmup_attempts=0))
    dialer = Dialer(s)
    dialer.add_contacts(contacts(200), now=T0)
    now = T0
    # 30 connected then 2 abandoned: 2/32 = 6% >= guard (2.5%)
    for i in range(32):
        (a,) = dialer.plan(AgentLoad(1, 1), now)[1]
        dialer.on_person(a.attempt_id, now + 1)
        if i < 30:
            dialer.on_connected(a.attempt_id, now + 2)
        else:
            gain_before = dialer.gain
            dialer.on_abandoned(a.attempt_id, now + 2)
            if i == 30:  # the first abandon lowers the gain; in fallback the gain is frozen
                assert dialer.gain < gain_before
            else:
                assert dialer.fallback and dialer.gain == gain_before
        now += 10
    decision, (a,) = dialer.plan(AgentLoad(1, 1), now)
    assert dialer.fallback and decision.mode is Mode.PROGRESSIVE
    dialer.on_connected(a.attempt_id, now + 1)
    now += 10
    # progressive never abandons; the rate falls back under the 2% target after enough live calls
    while dialer.fallback:
        _, attempts = dialer.plan(AgentLoad(1, 1), now)
        (a,) = attempts
        dialer.on_connected(a.attempt_id, now + 1)
        now += 10
    live, abandoned = dialer.ledger.counts(now)
    assert abandoned / live <= s.pacing.target
    assert live == 100  # 2 / 100 = 2 %


@given(
    st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=120),
    st.integers(min_value=1, max_value=4),
    st.sets(st.integers(min_value=0, max_value=11)),
)
@settings(max_examples=150, deadline=None)
def test_attempts_never_exceed_max_and_dnc_never_dialled(
    outcomes: list[Outcome], max_attempts: int, dnc_idx: set[int]
) -> None:
    book = contacts(12)
    dnc = DncList(frozenset(book[i].phone for i in dnc_idx))
    delays = dict.fromkeys(Outcome, 1.0)
    dialer = Dialer(settings_for(max_attempts=max_attempts, retry_delays=delays), dnc=dnc)
    dialer.add_contacts(book, now=T0)
    per_contact: dict[str, int] = {}
    now = T0
    feed = itertools.cycle(outcomes)
    for _ in range(200):
        _, attempts = dialer.plan(AgentLoad(3, 3), now)
        for a in attempts:
            assert a.contact.phone not in dnc
            per_contact[a.contact.key] = per_contact.get(a.contact.key, 0) + 1
            assert a.number == per_contact[a.contact.key] <= max_attempts
            outcome = next(feed)
            if outcome in (Outcome.CONNECTED, Outcome.ABANDONED):
                dialer.on_person(a.attempt_id, now + 1)
            dialer.on_outcome(a.attempt_id, outcome, now + 2)
        now += 5
        if dialer.finished:
            break
    assert dialer.finished
    for state in dialer.contacts():
        assert state.attempts <= max_attempts
        assert state.status in (ContactStatus.DONE, ContactStatus.EXHAUSTED, ContactStatus.DNC)


def test_wrap_up_agents_are_foreseen_better_than_talking_ones() -> None:
    dialer = Dialer(settings_for(mode=Mode.PREDICTIVE, pacing=PacingSettings(warmup_attempts=0)))
    for i in range(100):
        dialer.on_call_end(60.0 + i * 2.4, 5.0 + (i % 25))  # talk 60..300 s, wrap-up 5..29 s
    assert len(dialer.handle_times) == 100 and len(dialer.wrap_times) == 100
    from callcenter.outbound.dialer import _soon_free

    horizon = 15.0
    in_wrap = AgentLoad(10, 0, (), (20.0,) * 10)  # ten agents 20 s into wrap-up: all end within 10 s
    talking = AgentLoad(10, 0, (100.0,) * 10)  # ten agents 100 s into a call: each needs a wrap-up too
    soon_wrap = _soon_free(in_wrap, dialer.handle_times, dialer.talk_times, dialer.wrap_times, horizon)
    soon_talk = _soon_free(talking, dialer.handle_times, dialer.talk_times, dialer.wrap_times, horizon)
    assert soon_wrap == pytest.approx(10.0)
    assert soon_talk < 2.0


# ----------------------------------------------------------------------------- the forecast
def test_expected_free_within_from_known_elapsed_times() -> None:
    from callcenter.outbound.dialer import expected_free_within

    times = HandleTimes()
    for i in range(100):
        times.add(100.0 + i)  # handle times 100..199 s, one each
    agents = AgentLoad(logged_in=5, idle=2, busy_elapsed=(150.0, 0.0, 198.5))
    # 150 s in: 49 calls of 151..199 s remain, 10 of them end by 160 s; 0 s in: none ends by 10 s;
    # 198.5 s in: the one 199 s call is all that remains, it ends in time
    assert expected_free_within(agents, times, 10.0) == pytest.approx(2 + 10 / 49 + 0 + 1)
    assert expected_free_within(agents, times, 0.0) == pytest.approx(2)  # idle ones only
    # more time, more agents free; never more than logged in
    horizons = [0.0, 5.0, 20.0, 60.0, 200.0]
    free = [expected_free_within(agents, times, h) for h in horizons]
    assert free == sorted(free) and free[-1] == pytest.approx(5.0)


def test_waiting_people_take_the_first_agents_free() -> None:
    # one person waiting, one idle agent: it is that person's, so a new line risks an abandon
    assert expected_abandons(1, 1.0, 1, 0.0, waiting=1) == pytest.approx(1.0)
    assert expected_abandons(1, 1.0, 1, 0.0) == 0.0
    # two waiting, no agent: both abandon unless agents free (the lines' people come on top)
    assert expected_abandons(2, 0.5, 0, 0.0, waiting=2) == pytest.approx(3.0)
    s = PacingSettings()
    agents = AgentLoad(logged_in=20, idle=4, busy_elapsed=tuple(float(x) for x in range(60, 320, 16)))
    free = pace(Mode.PREDICTIVE, agents, [], measured(0.3), handles(), s)
    held = pace(Mode.PREDICTIVE, agents, [], measured(0.3), handles(), s, waiting=3)
    assert held.lines < free.lines
    assert pace(Mode.PROGRESSIVE, agents, [1.0], measured(), handles(), s, waiting=2).lines == 1


@given(
    st.sampled_from([Mode.PROGRESSIVE, Mode.PREDICTIVE]),
    st.integers(min_value=0, max_value=30),
    st.data(),
    st.lists(st.floats(min_value=0.0, max_value=40.0), max_size=60),
    st.floats(min_value=0.05, max_value=0.9),
    st.floats(min_value=1.0, max_value=4.0),
    st.floats(min_value=0.01, max_value=4.0),
    st.integers(min_value=0, max_value=5),
)
@settings(max_examples=150, deadline=None)
def test_pacing_never_dials_without_agents_nor_past_the_line_cap(
    mode: Mode,
    logged_in: int,
    data: st.DataObject,
    in_flight: list[float],
    rate: float,
    max_ratio: float,
    gain: float,
    waiting: int,
) -> None:
    idle = data.draw(st.integers(min_value=0, max_value=logged_in))
    busy = data.draw(st.lists(st.floats(0.0, 600.0), min_size=logged_in - idle, max_size=logged_in - idle))
    split = data.draw(st.integers(min_value=0, max_value=len(busy)))
    agents = AgentLoad(logged_in, idle, tuple(busy[:split]), tuple(busy[split:]))
    s = PacingSettings(max_lines_per_agent=max_ratio)
    wraps = HandleTimes(prior_mean=15.0)
    for i in range(40):
        wraps.add(5.0 + i * 0.6)
    d = pace(
        mode,
        agents,
        in_flight,
        measured(rate),
        handles(),
        s,
        gain=gain,
        talk_times=handles(),
        wrap_times=wraps,
        waiting=waiting,
    )
    assert d.lines >= 0
    if logged_in == 0:
        assert d.lines == 0
    elif mode is Mode.PROGRESSIVE:
        assert len(in_flight) + waiting + d.lines <= max(idle, len(in_flight) + waiting)
    else:
        # lines in flight after dialling: never past max_ratio per agent logged in
        assert len(in_flight) + d.lines <= max(len(in_flight), math.ceil(max_ratio * logged_in))
        assert d.expected_abandon_rate <= s.target * gain + 1e-12


def test_agents_sure_to_free_get_no_poisson_spread() -> None:
    from callcenter.outbound.dialer import _sure_and_spread, expected_free_within

    # three agents certain to be free, two coin flips: 3 sure, the rest (mean 1) as a Poisson
    assert _sure_and_spread([1.0, 1.0, 1.0, 0.5, 0.5]) == (3, pytest.approx(1.0))
    assert _sure_and_spread([0.1] * 10) == (0, pytest.approx(1.0))  # all uncertain: plain Poisson
    assert _sure_and_spread([]) == (0, 0.0)
    # an agent whose end is known counts once its end falls within the horizon
    agents = AgentLoad(logged_in=4, idle=1, free_in=(3.0, 12.0, 40.0))
    assert expected_free_within(agents, handles(), 10.0) == pytest.approx(2.0)
    assert expected_free_within(agents, handles(), 12.0) == pytest.approx(3.0)
    # knowing the ends lets the pacing place more lines than the same agents only guessed at
    s = PacingSettings()
    known = AgentLoad(
        logged_in=10, idle=0, free_in=(1.0, 2.0, 3.0, 4.0, 5.0, 300.0, 300.0, 300.0, 300.0, 300.0)
    )
    d = pace(Mode.PREDICTIVE, known, [], measured(0.3, person_after=6.0), handles(), s)
    assert d.lines >= 5 and d.expected_free == pytest.approx(5.0)


def test_gain_steps_shrink_as_live_answers_accumulate() -> None:
    s = settings_for(mode=Mode.PREDICTIVE, pacing=PacingSettings(warmup_attempts=0, gain_max=1e9))
    dialer = Dialer(s)
    steps = []
    now = T0
    for _ in range(3000):
        before = dialer.gain
        dialer.record_live(now, abandoned=False)
        error = (s.pacing.target - dialer.abandon_ema) / s.pacing.target
        steps.append(math.log(dialer.gain / before) / error)
        now += 1
    assert steps[0] == pytest.approx(s.pacing.gain_step)
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(steps))  # ever more gently
    assert steps[-1] == pytest.approx(s.pacing.gain_step_floor)


def test_running_calls_count_as_censored_early_in_the_day() -> None:
    times = HandleTimes()
    for i in range(20):
        times.add(30.0 + i)  # the first calls to end were short: 30..49 s
    assert times.p_done_within(45.0, 10.0) == pytest.approx(1.0)  # alone: all end by 55 s
    # twenty more calls still running at 60 s: they were not short; Kaplan-Meier keeps them
    km = times.with_running([60.0] * 20)
    assert km.p_done_within(45.0, 10.0) == pytest.approx(4 / 24)  # 4 of the 24 still at risk end
    assert km.p_done_within(0.0, 100.0) == pytest.approx(0.5)
    # with no running call, or once the window holds a steady sample, the measurements alone
    assert times.with_running([]) is times
    full = HandleTimes(keep=30)
    for i in range(40):
        full.add(30.0 + i)
    assert full.with_running([200.0] * 10) is full
