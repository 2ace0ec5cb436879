"""The shared fakes stand for the seams they claim: each has every member of its Protocol in
``callcenter/ports.py``, with the same parameters (names, kinds, async or not), checked at run
time; and they behave as the real ones where the tests rely on it."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Protocol

import pytest

from callcenter import ports
from callcenter.asterisk.events import EventGap, Hangup
from callcenter.clock import AutojumpClock, FakeClock, RealClock, ScaledClock
from callcenter.errors import UnsafeValueError
from tests.fakes import (
    FakeAgentCalls,
    FakeAgentPool,
    FakeAGISession,
    FakeAMI,
    FakeDirectory,
    FakeDistributor,
    FakeReloader,
    MemoryACDStore,
    RecordSink,
    within,
)


def protocol_members(proto: type) -> dict[str, Any]:
    """Name -> declared member (function or property) of ``proto`` and its Protocol bases."""
    members: dict[str, Any] = {}
    for base in reversed(proto.__mro__):
        if base in (object, Protocol) or not getattr(base, "_is_protocol", False):
            continue
        for name, value in vars(base).items():
            if (not name.startswith("_") or name == "__call__") and (
                inspect.isfunction(value) or isinstance(value, property)
            ):
                members[name] = value
    return members


def mismatches(fake: object, proto: type) -> list[str]:
    problems = []
    for name, declared in protocol_members(proto).items():
        if not hasattr(fake, name):
            problems.append(f"{name}: missing")
            continue
        if isinstance(declared, property):
            continue  # an attribute or a property on the fake both read the same
        impl = getattr(fake, name)
        if inspect.iscoroutinefunction(declared) != inspect.iscoroutinefunction(impl):
            problems.append(f"{name}: async in one, not the other")
        wanted = list(inspect.signature(declared).parameters.values())[1:]  # without self
        have = inspect.signature(impl).parameters
        for p in wanted:
            q = have.get(p.name)
            if p.kind is p.VAR_POSITIONAL:
                q = next((x for x in have.values() if x.kind is p.VAR_POSITIONAL), None)
            if q is None or q.kind != p.kind:
                problems.append(f"{name}: parameter {p.name} ({p.kind.name}) not taken alike")
            elif (p.default is p.empty) != (q.default is q.empty):
                problems.append(f"{name}: parameter {p.name} optional in one, not the other")
        extra = [q for q in have.values() if q.name not in {p.name for p in wanted}]
        extra = [q for q in extra if q.default is q.empty and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
        if extra:
            problems.append(f"{name}: needs more than the Protocol gives: {[q.name for q in extra]}")
    return problems


CASES = [
    (FakeAMI(), ports.AMILink),
    (FakeAMI(), ports.ActionSender),
    (RecordSink(), ports.RecordSink),
    (FakeAGISession({"agi_channel": "PJSIP/x-1"}), ports.AGISession),
    (FakeDistributor(), ports.CallDistributor),
    (FakeAgentCalls(), ports.AgentCalls),
    (FakeAgentPool(1), ports.AgentPool),
    (MemoryACDStore(ports.StoredState()), ports.ACDStore),
    (FakeDirectory(), ports.CustomerDirectory),
    (FakeReloader(), ports.Reloader),
    (AutojumpClock(), ports.Clock),
    (FakeClock(), ports.Clock),
    (RealClock(), ports.Clock),
    (ScaledClock(2.0), ports.Clock),
]


@pytest.mark.parametrize(
    ("fake", "proto"), CASES, ids=lambda x: type(x).__name__ if not isinstance(x, type) else x.__name__
)
def test_each_fake_has_its_protocols_members(fake: object, proto: type) -> None:
    assert protocol_members(proto), proto
    assert mismatches(fake, proto) == []


def test_the_check_itself_sees_a_missing_or_different_member() -> None:
    class Half:
        def submit(self, record: object, extra: int) -> None: ...

    assert mismatches(object(), ports.RecordSink) == ["submit: missing"]
    assert mismatches(Half(), ports.RecordSink) == ["submit: needs more than the Protocol gives: ['extra']"]


async def test_fake_ami_delivers_raw_and_typed_events_and_gaps_and_refuses_cr_lf() -> None:
    ami = FakeAMI()
    raw: list[str] = []
    typed: list[Hangup] = []
    gaps: list[EventGap] = []
    ami.subscribe("Hangup", lambda m: raw.append(m.get("Channel") or ""))
    stop = ami.on(Hangup, typed.append)
    ami.on_gap(gaps.append)
    ami.emit("Hangup", Channel="PJSIP/a-1", Cause="16")
    stop()
    ami.emit("Hangup", Channel="PJSIP/a-2", Cause="16")
    ami.gap()
    assert raw == ["PJSIP/a-1", "PJSIP/a-2"]
    assert [h.message.get("Channel") for h in typed] == ["PJSIP/a-1"]
    assert len(gaps) == 1 and gaps[0].reason == "link"
    await ami.send_action("Originate", [("Variable", "A=1"), ("Variable", "B=2")], timeout=1)
    assert ami.last_originate() == {"Variable": "A=1|B=2"}
    with pytest.raises(UnsafeValueError):
        await ami.send_action("Hangup", {"Channel": "x\r\nAction: Logoff"}, timeout=1)
    with pytest.raises(AssertionError):
        await ami.send_action("Ping")  # unbounded


async def test_within_and_until_count_the_given_clocks_seconds(autojump_clock: AutojumpClock) -> None:
    sink = RecordSink()
    with pytest.raises(TimeoutError):
        await sink.until(lambda: bool(sink.records), timeout=3600.0, clock=autojump_clock)
    assert autojump_clock.monotonic() == 3600.0  # an hour of simulated time, no real hour
    assert await within(asyncio.sleep(0, "done"), timeout=1.0, clock=autojump_clock) == "done"
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), timeout=0.01)  # real seconds without a clock
