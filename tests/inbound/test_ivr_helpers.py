"""Helpers shared by the IVR tests (no tests here): a small center built straight from the config
model, and a scripted driver for the pure interpreter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.config import model as m
from callcenter.inbound.ivr import (
    CallInfo,
    Digits,
    Effect,
    Exit,
    Finish,
    HungUp,
    Input,
    Interpreter,
    IvrState,
    Log,
    Lookup,
    LookupDone,
    LookupOutcome,
    Play,
    Played,
    Read,
    SetVariable,
)
from callcenter.reporting.records import CallEvent, CallRecord

NY = "America/New_York"
# Monday 2026-11-23 15:00 UTC = 10:00 EST: open
OPEN_NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC).timestamp()
# Sunday 2026-11-22 15:00 UTC: closed
CLOSED_NOW = dt.datetime(2026, 11, 22, 15, 0, tzinfo=dt.UTC).timestamp()
# Thanksgiving 2026-11-26 15:00 UTC: holiday
HOLIDAY_NOW = dt.datetime(2026, 11, 26, 15, 0, tzinfo=dt.UTC).timestamp()

DID = "18005550100"


def tr(a: str, b: str) -> m.TimeRange:
    h1, m1 = (int(x) for x in a.split(":"))
    h2, m2 = (int(x) for x in b.split(":"))
    return m.TimeRange(dt.time(h1, m1), dt.time(h2, m2))


def center() -> m.Center:
    weekday = (tr("08:00", "20:00"),)
    return m.Center(
        name="Test",
        timezone=NY,
        hours={0: weekday, 1: weekday, 2: weekday, 3: weekday, 4: weekday, 5: (tr("09:00", "13:00"),)},
        holidays=(
            m.Holiday(dt.date(2026, 11, 26), "Thanksgiving"),
            m.Holiday(dt.date(2026, 11, 27), "Day after", (tr("09:00", "13:00"),)),
            m.Holiday(dt.date(2026, 12, 25), "Christmas"),
        ),
        languages=("en", "es"),
    )


def queue(qid: str, skills: Mapping[str, int] | None = None, priority: int = 0) -> m.Queue:
    return m.Queue(id=qid, name=qid, skills=m.frozen_map(skills or {}), priority=priority)


def main_flow() -> m.Flow:
    """A flow like the example center's: hours, lookup, welcome, language, menu, sub-menu, collect."""
    nodes: list[m.IVRNode] = [
        m.HoursNode(id="hours", open="lookup", closed="closed", holiday="holiday"),
        m.HangupNode(id="closed", prompt="closed"),
        m.HangupNode(id="holiday", prompt="holiday-closed"),
        m.LookupNode(
            id="lookup",
            timeout=0.3,
            tier_priority=m.frozen_map({"vip": 50, "gold": 20}),
            found="welcome",
            not_found="welcome",
        ),
        m.PromptNode(id="welcome", prompts=("welcome",), next="language"),
        m.LanguageNode(
            id="language",
            prompt="language-menu",
            choices=m.frozen_map({"1": "en", "2": "es"}),
            timeout=3,
            max_attempts=1,
            next="main-menu",
        ),
        m.MenuNode(
            id="main-menu",
            prompt="main-menu",
            choices=m.frozen_map(
                {"1": "sales", "2": "to-billing", "3": "support", "4": "callback", "0": "general"}
            ),
            repeat_key="*",
            timeout=5,
            max_attempts=3,
            invalid_prompt="invalid-option",
            timeout_prompt="no-input",
            fallback="general",
        ),
        m.SetNode(
            id="sales",
            skills=m.frozen_map({"sales": 5}),
            data=m.frozen_map({"intent": "sales"}),
            next="q-sales",
        ),
        m.QueueNode(id="q-sales", queue="sales", prompt="transfer-sales"),
        m.GotoFlowNode(id="to-billing", flow="billing"),
        m.MenuNode(
            id="support",
            prompt="support-menu",
            choices=m.frozen_map({"1": "support-q", "2": "outage", "9": "main-menu"}),
            invalid_prompt="invalid-option",
            fallback="support-q",
        ),
        m.HangupNode(id="outage", prompt="outage-info"),
        m.QueueNode(id="support-q", queue="support"),
        m.CallbackNode(id="callback", queue="general", prompt="callback-confirm"),
        m.QueueNode(id="general", queue="general"),
    ]
    return m.Flow(id="main", start="hours", nodes=m.frozen_map({n.id: n for n in nodes}))


def billing_flow() -> m.Flow:
    nodes: list[m.IVRNode] = [
        m.CollectNode(
            id="account",
            prompt="enter-account",
            variable="account",
            min_digits=6,
            max_digits=8,
            terminator="#",
            timeout=6,
            validation=m.Validation.LUHN,
            max_attempts=3,
            invalid_prompt="account-invalid",
            next="billing-menu",
            fallback="billing-menu",
        ),
        m.MenuNode(
            id="billing-menu",
            prompt="billing-menu",
            choices=m.frozen_map({"1": "q-billing", "2": "dispute", "3": "vm"}),
            invalid_prompt="invalid-option",
            timeout_prompt="no-input",
            fallback="q-billing",
        ),
        m.SetNode(id="dispute", priority=30, data=m.frozen_map({"intent": "dispute"}), next="q-billing"),
        m.QueueNode(id="q-billing", queue="billing", prompt="transfer-billing"),
        m.VoicemailNode(id="vm", mailbox="8200", prompt="voicemail-intro"),
    ]
    return m.Flow(id="billing", start="account", nodes=m.frozen_map({n.id: n for n in nodes}))


def config(*extra_flows: m.Flow, numbers: Iterable[m.Number] = ()) -> m.Config:
    flows = {f.id: f for f in (main_flow(), billing_flow(), *extra_flows)}
    return m.Config(
        center=center(),
        numbers=(m.Number(number="+" + DID, flow="main"), *numbers),
        flows=m.frozen_map(flows),
        queues=m.frozen_map(
            {
                "sales": queue("sales", {"sales": 3}, priority=5),
                "support": queue("support", {"support": 2}),
                "billing": queue("billing", {"billing": 4}, priority=10),
                "general": queue("general"),
            }
        ),
    )


def call(caller: str = "2125550100", e164: str | None = "+12125550100", call_id: str = "c1") -> CallInfo:
    return CallInfo(call_id=call_id, caller=caller, dialed=DID, caller_e164=e164)


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
