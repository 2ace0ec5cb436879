"""The pure IVR interpreter: every node type, every timeout/invalid/retry branch, hours at DST
changes and on holidays, deep flows, loops, hostile input."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.asterisk import names
from callcenter.config import model as m
from callcenter.inbound.ivr import (
    MAX_AUTO_HOPS,
    MAX_INPUTS,
    CallInfo,
    Digits,
    Effect,
    Exit,
    ExitKind,
    Finish,
    HungUp,
    Input,
    Interpreter,
    IvrState,
    IvrStateError,
    Log,
    Lookup,
    LookupDone,
    LookupOutcome,
    Play,
    Played,
    Read,
    SetVariable,
    local_time,
    luhn_ok,
    mask,
)
from callcenter.reporting.records import CallEvent, CallRecord, Disposition
from tests.centers import CLOSED_NOW, DID, HOLIDAY_NOW, OPEN_NOW, call, ivr_config


# ----------------------------------------------------------------------------- a scripted driver
@dataclass
class Run:
    """The record of a scripted run."""

    state: IvrState
    effects: list[Effect] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    plays: list[Play] = field(default_factory=list)
    lookups: list[Lookup] = field(default_factory=list)
    variables: list[SetVariable] = field(default_factory=list)

    @property
    def exit(self) -> Exit:
        assert self.state.exit is not None
        return self.state.exit

    @property
    def logs(self) -> list[Any]:
        return [e.record for e in self.effects if isinstance(e, Log)]

    @property
    def events(self) -> list[CallEvent]:
        return [r for r in self.logs if isinstance(r, CallEvent)]

    @property
    def records(self) -> list[CallRecord]:
        return [r for r in self.logs if isinstance(r, CallRecord)]

    def node_events(self, node: str | None = None) -> list[CallEvent]:
        return [e for e in self.events if e.kind == "ivr_node" and (node is None or e.node == node)]


def check_batch(effects: list[Effect]) -> None:
    """Every batch ends with exactly one effect that needs an answer or ends the IVR."""
    waiting = [i for i, e in enumerate(effects) if isinstance(e, Play | Read | Lookup | Finish)]
    assert waiting == [len(effects) - 1], effects


def drive(
    ivr: Interpreter,
    digits: Iterable[str],
    *,
    now: float = OPEN_NOW,
    info: CallInfo | None = None,
    lookup: LookupDone | Callable[[Lookup], LookupDone] | None = None,
    hang_up_after: int | None = None,
    max_steps: int = 100_000,
) -> Run:
    """Run a call: each Read is answered by the next of ``digits`` ("" = timeout; when the script
    runs out, the caller hangs up), each Play by Played, each Lookup by ``lookup`` (default:
    not found). ``hang_up_after``: the caller hangs up after that many answers."""
    script = iter(digits)
    state, effects = ivr.start(info or call(), now)
    run = Run(state)
    answers = 0
    for _ in range(max_steps):
        check_batch(effects)
        run.effects.extend(effects)
        last = effects[-1]
        for e in effects:
            if isinstance(e, SetVariable):
                run.variables.append(e)
        if isinstance(last, Finish):
            run.state = state
            assert state.done and state.exit == last.exit
            return run
        event: Input
        if hang_up_after is not None and answers >= hang_up_after:
            event = HungUp()
        elif isinstance(last, Read):
            run.reads.append(last)
            nxt = next(script, None)
            event = HungUp() if nxt is None else Digits(nxt)
        elif isinstance(last, Play):
            run.plays.append(last)
            event = Played()
        else:
            assert isinstance(last, Lookup)
            run.lookups.append(last)
            if lookup is None:
                event = LookupDone(LookupOutcome.NOT_FOUND)
            elif callable(lookup):
                event = lookup(last)
            else:
                event = lookup
        answers += 1
        state, effects = ivr.feed(state, event, now)
    raise AssertionError("the IVR did not finish")


SOUNDS = m.AsteriskSettings().sounds_dir
VIP = LookupDone(LookupOutcome.FOUND, tier="vip", data={"name": "Ada", "account": "42"})


def snd(prompt: str, lang: str = "en") -> str:
    return f"{SOUNDS}/{lang}/{prompt}"


@pytest.fixture
def ivr() -> Interpreter:
    return Interpreter(ivr_config())


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


# ----------------------------------------------------------------------------- the happy path
def test_menu_choice_goes_to_queue_with_gathered_skills_priority_and_data(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "1"], lookup=VIP)
    ex = run.exit
    assert ex.kind is ExitKind.QUEUE
    assert ex.queue == "sales"
    assert ex.skills == {"sales": 5}  # the IVR's own requirement (the ACD adds the queue's)
    assert ex.priority == 50  # the VIP tier's priority
    assert ex.language == "en"
    assert ex.data == {
        "customer_name": "Ada",
        "customer_account": "42",
        "customer_tier": "vip",
        "intent": "sales",
    }
    assert ex.customer_tier == "vip"
    assert ex.disposition is None  # the ACD decides how a queued call ends
    # prompts heard: welcome, language menu, main menu, then the queue's own prompt
    assert [p.sounds for p in run.plays] == [(snd("welcome"),), (snd("transfer-sales"),)]
    assert [r.sounds for r in run.reads] == [(snd("language-menu"),), (snd("main-menu"),)]
    assert run.lookups[0].number == "+12125550100" and run.lookups[0].timeout == 0.3
    path = [e.node for e in run.node_events()]
    assert path == ["hours", "lookup", "welcome", "language", "main-menu", "sales", "q-sales"]
    # the call row: started, then the IVR end with priority and data
    first, last = run.records[0], run.records[-1]
    assert first.started_at == OPEN_NOW and first.did == DID and first.caller_number == "+12125550100"
    assert last.ivr_ended_at == OPEN_NOW and last.priority == 50 and last.disposition is None


def test_every_step_is_logged_with_node_input_and_outcome(ivr: Interpreter) -> None:
    run = drive(ivr, ["", "3", "1"])
    events = run.node_events()
    by_node = {e.node: e.detail for e in events}
    assert by_node["hours"] == {"flow": "main", "type": "hours", "outcome": "open", "next": "lookup"}
    assert by_node["language"] is not None and by_node["language"]["outcome"] == "timeout"
    assert by_node["support"] is not None and by_node["support"]["input"] == "1"
    assert all(e.call_id == "c1" and e.at == OPEN_NOW for e in events)
    assert run.exit.queue == "support"
    assert any(e.kind == "lookup" for e in run.events)


def test_queue_priority_defaults_and_overrides(ivr: Interpreter) -> None:
    assert drive(ivr, ["1", "0"]).exit.priority == 0  # general queue, nothing set
    billing = drive(ivr, ["1", "2", "", "", "", "1"])  # no account: fallback to the menu, then 1
    assert billing.exit.queue == "billing" and billing.exit.priority == 0  # the ACD adds the queue's 10
    dispute = drive(ivr, ["1", "2", "", "", "", "2"])  # set priority 30
    assert dispute.exit.priority == 30 and dispute.exit.data["intent"] == "dispute"
    assert dispute.exit.skills == {}


# ----------------------------------------------------------------------------- menus
def test_menu_timeouts_replay_with_timeout_prompt_then_fall_back(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "", "", ""])
    menu_reads = run.reads[1:]
    assert menu_reads[0].sounds == (snd("main-menu"),)
    assert menu_reads[1].sounds == (snd("no-input"), snd("main-menu"))
    assert menu_reads[2].sounds == (snd("no-input"), snd("main-menu"))
    assert all(r.max_digits == 1 and r.timeout == 5 for r in menu_reads)
    assert run.exit.queue == "general"  # the fallback
    outcomes = [e.detail["outcome"] for e in run.node_events("main-menu") if e.detail]
    assert outcomes == ["timeout", "timeout", "timeout"]


def test_menu_invalid_digits_count_and_fall_back(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "7", "8", "5"])
    assert run.reads[2].sounds == (snd("invalid-option"), snd("main-menu"))
    assert run.exit.queue == "general"
    attempts = [e.detail.get("attempt") for e in run.node_events("main-menu") if e.detail]
    assert attempts == [1, 2, 3]


def test_menu_invalid_then_valid_goes_on(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "7", "", "3", "2"])
    assert run.exit.kind is ExitKind.HANGUP and run.exit.reason == "message"
    assert run.plays[-1].sounds == (snd("outage-info"),)


def test_repeat_key_replays_without_counting(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "*", "*", "*", "*", "*", "1"])
    assert run.exit.queue == "sales"
    assert [r.sounds for r in run.reads[2:7]] == [(snd("main-menu"),)] * 5


def test_menu_without_timeout_prompt_just_replays(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "3", "", "1"])  # support menu has no timeout prompt
    assert run.reads[3].sounds == (snd("support-menu"),)
    assert run.exit.queue == "support"


def test_submenu_back_to_main(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "3", "9", "0"])
    assert run.exit.queue == "general"


@pytest.mark.parametrize("junk", ["a", "12", "1 2", "\x00", "-1", "١", "#*#", "(timeout)"])
def test_non_dtmf_or_unexpected_data_is_invalid_input(ivr: Interpreter, junk: str) -> None:
    run = drive(ivr, ["1", junk, "1"])
    first = run.node_events("main-menu")[0].detail
    assert first is not None and first["outcome"] == "invalid"
    assert run.exit.queue == "sales"


def test_ten_thousand_digits_are_invalid_and_logged_truncated(ivr: Interpreter) -> None:
    flood = "1" * 10_000
    run = drive(ivr, ["1", flood, flood, flood])
    assert run.exit.queue == "general"
    logged = [e.detail["input"] for e in run.node_events("main-menu") if e.detail]
    assert all(isinstance(x, str) and len(x) < 64 for x in logged)


# ----------------------------------------------------------------------------- language
def test_language_choice_switches_prompts_and_sets_the_channel(ivr: Interpreter) -> None:
    run = drive(ivr, ["2", "1"])
    assert run.reads[1].sounds == (snd("main-menu", "es"),)
    assert run.plays[-1].sounds == (snd("transfer-sales", "es"),)
    assert run.exit.language == "es"
    assert SetVariable("CHANNEL(language)", "es") in run.variables
    assert SetVariable(names.VAR_LANGUAGE, "es") in run.variables
    assert run.records[-1].language == "es"


def test_language_invalid_keeps_current_after_max_attempts(ivr: Interpreter) -> None:
    run = drive(ivr, ["9", "1"])
    assert run.exit.language == "en" and run.variables == []


def test_prompt_without_audio_in_language_falls_back_to_default() -> None:
    cfg = ivr_config()
    audio = frozenset({(p, "en") for p in ("welcome", "language-menu", "main-menu", "transfer-sales")})
    cfg = m.Config(
        center=cfg.center,
        numbers=cfg.numbers,
        flows=cfg.flows,
        queues=cfg.queues,
        prompts=m.PromptCatalog(audio=audio | {("main-menu", "es")}),
    )
    run = drive(Interpreter(cfg), ["2", "1"])
    assert run.reads[1].sounds == (snd("main-menu", "es"),)
    assert run.plays[-1].sounds == (snd("transfer-sales", "en"),)  # no Spanish recording


# ----------------------------------------------------------------------------- collect
def test_collect_valid_account_is_stored_and_masked_in_the_log(ivr: Interpreter) -> None:
    good = next(f"{n:06d}" for n in range(100000, 999999) if luhn_ok(f"{n:06d}"))
    run = drive(ivr, ["1", "2", good + "#", "1"])
    read = run.reads[2]
    assert read.max_digits == 8 and read.terminator == "#" and read.timeout == 6
    assert run.exit.data["account"] == good
    logged = run.node_events("account")[0].detail
    assert logged is not None and logged["input"] == mask(good) and good not in str(logged)
    # the call row keeps only the masked value (card-like digits are never stored whole)
    last = run.records[-1]
    assert isinstance(last, CallRecord) and last.data is not None and last.data["account"] == mask(good)


def test_collect_invalid_retries_with_invalid_prompt_then_falls_back(ivr: Interpreter) -> None:
    bad_luhn = next(f"{n:06d}" for n in range(100000, 999999) if not luhn_ok(f"{n:06d}"))
    run = drive(ivr, ["1", "2", "123#", bad_luhn, "12345678901", "1"])
    assert run.reads[3].sounds == (snd("account-invalid"), snd("enter-account"))
    outcomes = [e.detail["outcome"] for e in run.node_events("account") if e.detail]
    assert outcomes == ["invalid", "invalid", "invalid"]
    assert "account" not in run.exit.data
    assert run.exit.queue == "billing"


def test_collect_validations() -> None:
    node = m.CollectNode(
        id="c", prompt="p", variable="v", min_digits=2, max_digits=4, next="n", fallback="f",
        validation=m.Validation.ACCOUNT,
    )  # fmt: skip
    from callcenter.inbound.ivr import valid_collected

    assert valid_collected(node, "12")
    assert not valid_collected(node, "01")
    assert not valid_collected(node, "1")
    assert not valid_collected(node, "12345")
    assert not valid_collected(node, "1a")
    assert not valid_collected(node, "١٢")  # non-ASCII digits
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert mask("1234") == "****" and mask("123456") == "**3456"


# ----------------------------------------------------------------------------- hours, DST, holidays
def test_closed_and_holiday_branches_hang_up_after_hours(ivr: Interpreter) -> None:
    closed = drive(ivr, [], now=CLOSED_NOW)
    assert closed.exit.kind is ExitKind.HANGUP and closed.exit.node == "closed"
    assert closed.exit.disposition is Disposition.AFTER_HOURS
    assert closed.plays[0].sounds == (snd("closed"),)
    holiday = drive(ivr, [], now=HOLIDAY_NOW)
    assert holiday.exit.node == "holiday" and holiday.exit.disposition is Disposition.AFTER_HOURS
    ev = holiday.node_events("hours")[0].detail
    assert ev is not None and ev["outcome"] == "holiday"
    assert ev["holiday"] == "Thanksgiving"  # the holiday's name in the call's IVR log


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # spring forward (2026-03-08): 12:30 UTC is 07:30 EST the Monday before, 08:30 EDT after
        (utc(2026, 3, 2, 12, 30), "closed"),
        (utc(2026, 3, 9, 12, 30), "open"),
        (utc(2026, 3, 9, 11, 59), "closed"),  # 07:59 EDT
        (utc(2026, 3, 9, 12, 0), "open"),  # 08:00 EDT sharp
        # evening close at 20:00 local: 00:59 UTC next day in EDT is 20:59 (closed)
        (utc(2026, 3, 10, 0, 30), "closed"),
        (utc(2026, 3, 9, 23, 59), "open"),  # 19:59 EDT
        # fall back (2026-11-01): the Monday after, 12:30 UTC is 07:30 EST; the Monday before 08:30 EDT
        (utc(2026, 10, 26, 12, 30), "open"),
        (utc(2026, 11, 2, 12, 30), "closed"),
        (utc(2026, 11, 2, 13, 0), "open"),
        # Saturday short hours, Sunday closed
        (utc(2026, 11, 21, 14, 0), "open"),  # Sat 09:00 EST
        (utc(2026, 11, 21, 18, 0), "closed"),  # Sat 13:00 EST
        (utc(2026, 11, 22, 15, 0), "closed"),
        # holidays: Thanksgiving closed, the day after open 09:00-13:00 only
        (utc(2026, 11, 26, 15, 0), "holiday"),
        (utc(2026, 11, 27, 15, 0), "open"),
        (utc(2026, 11, 27, 19, 0), "holiday"),
        # the holiday is the local date: 03:00 UTC on the 26th is still the 25th in New York
        (utc(2026, 11, 26, 3, 0), "closed"),  # Wed 22:00 EST
        (utc(2026, 11, 27, 4, 59), "holiday"),  # Thu 23:59 EST, Thanksgiving
        (utc(2026, 12, 26, 3, 0), "holiday"),  # Christmas 22:00 EST
        (utc(2026, 12, 26, 5, 30), "closed"),  # Sat 00:30 EST
    ],
)
def test_hours_in_the_centers_timezone_across_dst(ivr: Interpreter, when: float, expected: str) -> None:
    run = drive(ivr, ["1", "0"], now=when)
    ev = run.node_events("hours")[0].detail
    assert ev is not None and ev["outcome"] == expected, local_time(when, ivr.tz)


def test_repeated_hour_at_fall_back_is_handled() -> None:
    # a center open 01:00-02:00 on Sundays: at fall back (2026-11-01) that local hour happens twice
    cfg = ivr_config()
    c = cfg.center
    center = m.Center(
        name=c.name,
        timezone=c.timezone,
        hours={6: (m.TimeRange(dt.time(1, 0), dt.time(2, 0)),)},
        languages=c.languages,
    )
    ivr = Interpreter(m.Config(center=center, numbers=cfg.numbers, flows=cfg.flows, queues=cfg.queues))
    first = utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    second = utc(2026, 11, 1, 6, 30)  # 01:30 EST
    after = utc(2026, 11, 1, 7, 30)  # 02:30 EST
    outcomes = []
    for when in (first, second, after):
        ev = drive(ivr, ["1", "0"], now=when).node_events("hours")[0].detail
        assert ev is not None
        outcomes.append(ev["outcome"])
    assert outcomes == ["open", "open", "closed"]


# ----------------------------------------------------------------------------- lookup
def test_lookup_timeout_or_error_goes_not_found_and_the_call_goes_on(ivr: Interpreter) -> None:
    for outcome in (LookupOutcome.TIMEOUT, LookupOutcome.ERROR, LookupOutcome.NOT_FOUND):
        run = drive(ivr, ["1", "1"], lookup=LookupDone(outcome))
        assert run.exit.priority == 0 and "customer_tier" not in run.exit.data
        ev = run.node_events("lookup")[0].detail
        assert ev is not None and ev["outcome"] == str(outcome)


def test_lookup_tier_without_boost_keeps_priority(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "1"], lookup=LookupDone(LookupOutcome.FOUND, tier="bronze"))
    assert run.exit.priority == 0 and run.exit.customer_tier == "bronze"


def test_lookup_skipped_when_the_number_is_not_e164(ivr: Interpreter) -> None:
    run = drive(ivr, ["1", "1"], info=call(caller="anonymous", e164=None))
    assert run.lookups == []
    ev = run.node_events("lookup")[0].detail
    assert ev is not None and ev["outcome"] == "invalid_number"


# ----------------------------------------------------------------------------- terminals
def test_voicemail_and_callback_exits(ivr: Interpreter) -> None:
    vm = drive(ivr, ["1", "2", "", "", "", "3"])
    assert vm.exit.kind is ExitKind.VOICEMAIL and vm.exit.mailbox == "8200"
    assert vm.exit.disposition is Disposition.VOICEMAIL
    assert vm.plays[-1].sounds == (snd("voicemail-intro"),)
    cb = drive(ivr, ["1", "4"])
    assert cb.exit.kind is ExitKind.CALLBACK and cb.exit.queue == "general"
    assert cb.exit.number == "+12125550100" and cb.exit.disposition is Disposition.CALLBACK_REQUESTED


def test_callback_to_a_collected_number() -> None:
    flow = m.Flow(
        id="cb",
        start="num",
        nodes=m.frozen_map(
            {
                "num": m.CollectNode(
                    id="num",
                    prompt="enter-number",
                    variable="cbnum",
                    min_digits=10,
                    max_digits=10,
                    next="cb",
                    fallback="cb",
                ),  # fmt: skip
                "cb": m.CallbackNode(id="cb", queue="general", number_variable="cbnum"),
            }
        ),
    )
    untrusted = m.Number(number="+18005550199", flow="cb", trunk="spoofable")
    cfg = ivr_config(flow, numbers=[untrusted])
    trunks = {**cfg.trunks, "spoofable": m.Trunk("spoofable", "sip.other.example", trust_caller_id=False)}
    cfg = dataclasses.replace(cfg, trunks=m.frozen_map(trunks))
    info = CallInfo("c9", "x", "18005550199", None)
    run = drive(Interpreter(cfg), ["2125550199#"], info=info)
    assert run.exit.number == "+12125550199"  # keyed in, checked and normalised by the policy
    run = drive(Interpreter(cfg), [""] * 3, info=info)  # nothing collected, anonymous caller
    assert run.exit.kind is ExitKind.HANGUP and run.exit.reason == "no_callback_number"
    assert run.exit.disposition is Disposition.FAILED
    # The caller ID of a trunk not trusted to assert it is never called back.
    run = drive(Interpreter(cfg), [""] * 3, info=CallInfo("c9", "3055550144", "18005550199", "+13055550144"))
    assert run.exit.kind is ExitKind.HANGUP and run.exit.reason == "no_callback_number"
    trusted = dataclasses.replace(
        cfg, numbers=(*cfg.numbers[:-1], dataclasses.replace(untrusted, trunk="carrier"))
    )
    run = drive(
        Interpreter(trusted), [""] * 3, info=CallInfo("c9", "3055550144", "18005550199", "+13055550144")
    )
    assert run.exit.number == "+13055550144"


@pytest.mark.parametrize(
    ("keyed", "reason"),
    [("19005550100", "premium_rate"), ("911", "emergency"), ("011881612345678", "satellite")],
)
def test_a_callback_the_dial_out_policy_refuses_waits_in_line_instead(keyed: str, reason: str) -> None:
    flow = m.Flow(
        id="cb",
        start="num",
        nodes=m.frozen_map(
            {
                "num": m.CollectNode(
                    id="num",
                    prompt="enter-number",
                    variable="n",
                    min_digits=3,
                    max_digits=15,
                    next="cb",
                    fallback="cb",
                ),
                "cb": m.CallbackNode(id="cb", queue="general", number_variable="n"),
            }
        ),
    )
    cfg = ivr_config(flow, numbers=[m.Number(number="+18005550199", flow="cb", trunk="carrier")])
    run = drive(Interpreter(cfg), [keyed + "#"], info=CallInfo("c9", "x", "18005550199", None))
    assert run.exit.kind is ExitKind.QUEUE and run.exit.queue == "general"
    refused = [e for e in run.events if str(e.kind) == "dial_out_refused"]
    assert [(e.detail or {}).get("reason") for e in refused] == [reason]


def test_unknown_number_ends_at_once(ivr: Interpreter) -> None:
    state, effects = ivr.start(CallInfo("c2", "1", "999", None), OPEN_NOW)
    assert state.done and state.exit is not None
    assert state.exit.reason == "no_flow" and state.exit.disposition is Disposition.FAILED


# ----------------------------------------------------------------------------- hang-ups, misuse
@pytest.mark.parametrize("after", range(0, 6))
def test_hang_up_at_any_step_is_an_abandon_logged_at_that_node(ivr: Interpreter, after: int) -> None:
    run = drive(ivr, ["1", "2", "", "", ""], lookup=VIP, hang_up_after=after)
    assert run.exit.kind is ExitKind.ABANDONED
    assert run.exit.disposition is Disposition.ABANDONED_IVR
    last_event = run.node_events()[-1]
    assert last_event.detail is not None and last_event.detail["outcome"] == "caller_hangup"
    assert last_event.node == run.exit.node
    rec = run.records[-1]
    assert rec.ended_at == OPEN_NOW and rec.hangup_by == "caller"


def test_feeding_a_finished_or_wrong_state_is_refused(ivr: Interpreter) -> None:
    state, _ = ivr.start(call(), OPEN_NOW)  # waiting for the lookup
    with pytest.raises(IvrStateError):
        ivr.feed(state, Digits("1"), OPEN_NOW)
    with pytest.raises(IvrStateError):
        ivr.feed(state, Played(), OPEN_NOW)
    run = drive(ivr, ["1", "1"])
    with pytest.raises(IvrStateError):
        ivr.feed(run.state, Digits("1"), OPEN_NOW)


# ----------------------------------------------------------------------------- loops and depth
def _flow(fid: str, start: str, *nodes: m.IVRNode) -> m.Flow:
    return m.Flow(id=fid, start=start, nodes=m.frozen_map({n.id: n for n in nodes}))


def test_a_loop_without_caller_input_is_cut() -> None:
    loop = _flow("loop", "a", m.SetNode(id="a", next="b"), m.SetNode(id="b", priority=1, next="a"))
    cfg = ivr_config(loop, numbers=[m.Number(number="+18005550111", flow="loop")])
    state, effects = Interpreter(cfg).start(CallInfo("c3", "1", "18005550111", None), OPEN_NOW)
    assert state.done and state.exit is not None
    assert state.exit.reason == "loop" and state.exit.disposition is Disposition.FAILED
    assert state.visits == MAX_AUTO_HOPS + 1


def test_a_flow_that_only_loops_through_caller_input_is_bounded() -> None:
    loop = _flow(
        "spin",
        "menu",
        m.MenuNode(id="menu", prompt="p", choices=m.frozen_map({"9": "again", "1": "q"}), fallback="q"),
        m.SetNode(id="again", next="menu"),
        m.QueueNode(id="q", queue="general"),
    )
    cfg = ivr_config(loop, numbers=[m.Number(number="+18005550122", flow="spin")])
    info = CallInfo("c4", "1", "18005550122", None)
    ok = drive(Interpreter(cfg), ["9"] * 200 + ["1"], info=info)
    assert ok.exit.queue == "general" and len(ok.reads) == 201
    flood = drive(Interpreter(cfg), ["9"] * (MAX_INPUTS + 10), info=info)
    assert flood.exit.reason == "too_many_inputs" and len(flood.reads) == MAX_INPUTS + 1


def test_deep_flows_chained_by_goto() -> None:
    flows = []
    depth = 60
    for i in range(depth):
        nxt: m.IVRNode = (
            m.GotoFlowNode(id="go", flow=f"f{i + 1}")
            if i + 1 < depth
            else m.QueueNode(id="go", queue="general")
        )
        flows.append(
            _flow(
                f"f{i}",
                "set",
                m.SetNode(
                    id="set",
                    data=m.frozen_map({f"level{i}": str(i)}),
                    skills=m.frozen_map({"s": i}),
                    next="menu",
                ),
                m.MenuNode(id="menu", prompt="p", choices=m.frozen_map({"1": "go"}), fallback="go"),
                nxt,
            )
        )
    cfg = ivr_config(*flows, numbers=[m.Number(number="+18005550133", flow="f0")])
    run = drive(Interpreter(cfg), ["1"] * depth, info=CallInfo("c5", "1", "18005550133", None))
    assert run.exit.queue == "general" and run.exit.flow == f"f{depth - 1}"
    assert len(run.exit.data) == depth and run.exit.skills == {"s": depth - 1}


# ----------------------------------------------------------------------------- properties
@settings(max_examples=150, deadline=None)
@given(
    script=st.lists(
        st.one_of(st.sampled_from(["", "0", "1", "2", "3", "4", "9", "*", "#"]), st.text(max_size=12)),
        max_size=40,
    ),
    when=st.floats(min_value=utc(2026, 1, 1), max_value=utc(2027, 1, 1)),
    tier=st.sampled_from([None, "vip", "gold", "x"]),
    hang=st.one_of(st.none(), st.integers(0, 30)),
)
def test_any_caller_behaviour_ends_in_a_defined_exit(
    script: list[str], when: float, tier: str | None, hang: int | None
) -> None:
    ivr = Interpreter(ivr_config())
    done = LookupDone(LookupOutcome.FOUND, tier=tier) if tier else LookupDone(LookupOutcome.TIMEOUT)
    run = drive(ivr, script, now=when, lookup=done, hang_up_after=hang)
    ex = run.exit
    assert ex.kind in set(ExitKind)
    if ex.kind is ExitKind.QUEUE:
        assert ex.queue in ("sales", "support", "billing", "general")
        assert ex.priority >= 0
    else:
        assert ex.disposition is not None
    # every logged event belongs to the call, and every logged input is short and printable
    for e in run.events:
        assert e.call_id == "c1"
        if e.detail and "input" in e.detail:
            text = str(e.detail["input"])
            assert len(text) < 64 and text.isprintable()


# ----------------------------------------------------------------------------- the example center
_EXAMPLE: list[Interpreter] = []


def _example() -> Interpreter:
    if not _EXAMPLE:
        from pathlib import Path

        from callcenter.config.load import load_config

        repo = Path(__file__).resolve().parents[2]
        _EXAMPLE.append(Interpreter(load_config(repo / "dialplans", env={"CC_AMI_SECRET": "x"})))
    return _EXAMPLE[0]


@settings(max_examples=100, deadline=None)
@given(
    script=st.lists(
        st.sampled_from(["", "0", "1", "2", "3", "4", "9", "*", "#", "12345678#", "x"]), max_size=30
    ),
    when=st.floats(min_value=utc(2026, 1, 1), max_value=utc(2027, 1, 1)),
)
def test_the_example_centers_flows_always_end_in_a_defined_exit(script: list[str], when: float) -> None:
    ivr = _example()
    run = drive(ivr, script, now=when, info=CallInfo("ex", "2125550100", "18005550100", "+12125550100"))
    ex = run.exit
    if ex.kind is ExitKind.QUEUE:
        assert ex.queue in ivr.config.queues
    elif ex.kind is ExitKind.VOICEMAIL:
        assert ex.mailbox in ivr.config.mailboxes
    for read in run.reads:
        assert all(snd.startswith(ivr.sounds_dir + "/") for snd in read.sounds)


# ----------------------------------------------------------------------------- type-ahead
def _typeahead_config(interruptible: bool) -> m.Config:
    flow = _flow(
        "ta",
        "hello",
        m.PromptNode(id="hello", prompts=("welcome", "main-menu"), next="set", interruptible=interruptible),
        m.SetNode(id="set", data=m.frozen_map({"x": "1"}), next="menu"),
        m.MenuNode(
            id="menu", prompt="main-menu", choices=m.frozen_map({"1": "q1", "2": "q2"}), fallback="q2"
        ),
        m.QueueNode(id="q1", queue="sales"),
        m.QueueNode(id="q2", queue="general"),
    )
    return ivr_config(flow, numbers=[m.Number(number="+18005550144", flow="ta")])


def test_a_key_over_an_interruptible_prompt_answers_the_next_menu() -> None:
    ivr = Interpreter(_typeahead_config(True))
    state, effects = ivr.start(CallInfo("t", "1", "18005550144", None), OPEN_NOW)
    assert effects[-1] == Play((snd("welcome"), snd("main-menu")), True)
    state, effects = ivr.feed(state, Played("1"), OPEN_NOW)
    assert state.done and state.exit is not None and state.exit.queue == "sales"
    events = [e.record for e in effects if isinstance(e, Log) and isinstance(e.record, CallEvent)]
    assert [e.detail["outcome"] for e in events if e.kind == "ivr_node" and e.detail] == [
        "interrupted",
        "set",
        "choice",
        "queue",
    ]


def test_a_key_over_a_plain_prompt_is_ignored_and_the_menu_plays() -> None:
    ivr = Interpreter(_typeahead_config(False))
    state, _ = ivr.start(CallInfo("t", "1", "18005550144", None), OPEN_NOW)
    state, effects = ivr.feed(state, Played("1"), OPEN_NOW)
    assert not state.done and state.waiting == "read"
    ivr_ta = Interpreter(_typeahead_config(True))
    state, _ = ivr_ta.start(CallInfo("t", "1", "18005550144", None), OPEN_NOW)
    state, effects = ivr_ta.feed(state, Played("x"), OPEN_NOW)  # not DTMF: no type-ahead
    assert not state.done and state.typeahead == ""
