"""The ACD service against a scripted PBX at the AMI seam (events as the real traces show them).

The fake answers actions like Asterisk (``Success``), refuses CR/LF like the codec, and lets a
test emit the events a real Asterisk 22 sends (OriginateResponse, Newchannel, BridgeEnter,
Hangup). Time is a FakeClock: wrap-up, ring guards, relaxation and announcements move only when
the test advances it."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.acd import agents as ag
from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.config import model as m
from callcenter.config.load import load_config
from callcenter.config.model import Config
from callcenter.errors import (
    AgentStateError,
    AMIActionError,
    DialOutRefusedError,
    DomainError,
    UnsafeValueError,
)
from callcenter.ports import QueuedCall, StoredCall, StoredState
from callcenter.reporting.records import AgentStateChange, CallEvent, CallRecord, Disposition, RecordingRecord
from tests.centers import REPO, example
from tests.fakes import AcdRig, FakeAGISession, FakeAMI, MemoryACDStore, acd_rig


@pytest.fixture(scope="module")
def config() -> Config:
    return example()


@pytest.fixture
async def rig(config: Config, tmp_path: Path) -> AsyncIterator[AcdRig]:
    async with acd_rig(config, tmp_path) as r:
        yield r


# ------------------------------------------------------------------------------------ the life of a call
async def test_answered_call_rings_bridges_records_wraps_up(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-1", "sales", data={"account": "42"})
    setvars = {a["Variable"]: a["Value"] for a in rig.ami.actions("Setvar") if a["Channel"] == caller}
    assert setvars[names.VAR_CALL_ID] == "call-1" and setvars[names.VAR_QUEUE] == "sales"
    assert setvars[names.VAR_CUSTOMER] == '{"account":"42"}'
    assert rig.ami.actions("Redirect")[0]["Context"] == names.CTX_HOLD
    o = rig.ami.last_originate()
    assert o["Channel"] == "PJSIP/agent1001" and o["Context"] == names.CTX_AGENT_LEG
    assert o["Timeout"] == "15000" and o["ChannelId"].startswith("ccleg-")
    assert f"{names.VAR_CALLER_CHANNEL}={caller}" in o["Variable"]
    assert f"{names.VAR_RECORDING_FILE}=" in o["Variable"]  # sales records always
    assert rig.acd.agent_state("1001").status is ag.Status.RINGING

    leg, agent_chan = await rig.answer(caller)
    assert rig.acd.agent_state("1001").status is ag.Status.ON_CALL
    assert rig.acd.call_state("call-1") == "connected"
    (rec,) = rig.sink.of(RecordingRecord)
    assert rec.path.endswith("/call-1-1.wav") and rec.path.startswith("2027/")

    rig.clock.advance(60)
    await rig.hangup(caller, cause="16")
    await rig.hangup(agent_chan, leg)
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP
    assert rig.sink.disposition("call-1") is Disposition.ANSWERED
    ended = [r for r in rig.sink.of(RecordingRecord) if r.duration_seconds is not None]
    assert ended and ended[0].duration_seconds == 60.0
    await rig.advance(15)  # the sales queue's wrap-up
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    assert rig.sink.agent_states("1001") == [
        "available", "reserved", "ringing", "on_call", "wrap_up", "available"
    ]  # fmt: skip
    assert rig.sink.kinds("call-1")[:3] == ["queue_enter", "offer", "answer"]


def call_record(rig: AcdRig, call_id: str, field: str) -> object:
    """The latest value of ``field`` logged for ``call_id`` (the call log merges them so)."""
    values = [getattr(r, field) for r in rig.sink.of(CallRecord) if r.call_id == call_id]
    values = [v for v in values if v is not None]
    return values[-1] if values else None


async def test_hold_and_wrap_up_are_measured_whoever_ends_the_call(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-h1", "sales")
    leg, agent_chan = await rig.answer(caller)
    rig.clock.advance(10)
    rig.ami.emit("MusicOnHoldStart", Channel=caller, Uniqueid="caller", Class="default")
    rig.ami.emit("MusicOnHoldStart", Channel=agent_chan, Uniqueid=leg, Class="default")  # not the caller
    await rig.advance(25)
    rig.ami.emit("MusicOnHoldStop", Channel=caller, Uniqueid="caller")
    await rig.advance(25)
    await rig.hangup(caller, cause="16")  # the caller ends the call
    await rig.hangup(agent_chan, leg)
    assert call_record(rig, "call-h1", "hangup_by") == "caller"
    assert (call_record(rig, "call-h1", "hold_seconds"), call_record(rig, "call-h1", "talk_seconds")) == (
        25.0,
        35.0,
    )
    assert [k for k in rig.sink.kinds("call-h1") if k in ("hold", "unhold")] == ["hold", "unhold"]
    await rig.advance(6)
    await rig.acd.dispose("1001", "sale", by="agent")  # the disposition ends it after 6 s of 15
    assert call_record(rig, "call-h1", "wrapup_seconds") == 6.0

    caller = await rig.call("call-h2", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.advance(30)
    await rig.hangup(agent_chan, leg)  # the agent ends this one, and wraps up the full 15 s
    await rig.hangup(caller, cause="16")
    assert call_record(rig, "call-h2", "wrapup_seconds") is None  # still wrapping up
    await rig.advance(15)
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    assert call_record(rig, "call-h2", "wrapup_seconds") == 15.0
    assert call_record(rig, "call-h2", "hold_seconds") == 0.0


async def test_hold_from_the_desktop_parks_the_caller_and_bridges_it_back(rig: AcdRig) -> None:
    changes: list[tuple[str, object]] = []
    rig.acd.on_change = lambda c: changes.append((c.kind, c.data.get("held")))
    await rig.acd.login("1001")
    caller = await rig.call("call-hd", "sales")
    leg, agent_chan = await rig.answer(caller)
    rig.clock.advance(10)
    await rig.acd.hold("call-hd", by="alice")
    moved = rig.ami.actions("Redirect")[-1]
    assert (moved["Channel"], moved["Context"]) == (caller, names.CTX_HELD)
    assert (moved["ExtraChannel"], moved["ExtraContext"]) == (agent_chan, names.CTX_HELD_AGENT)
    assert rig.acd.snapshot()["calls"]["call-hd"]["held"] is True
    assert ("call.held", True) in changes
    with pytest.raises(DomainError) as again:
        await rig.acd.hold("call-hd")
    assert again.value.code == "already_held"
    for refused in (rig.acd.transfer_to_queue("call-hd", "billing"), rig.acd.record("call-hd")):
        with pytest.raises(DomainError) as on_hold:
            await refused
        assert on_hold.value.code == "on_hold"
    rig.ami.emit("MusicOnHoldStart", Channel=caller, Uniqueid="caller", Class="default")  # cc-held
    # A PCI pause while held mutes the recording on the agent's leg, which is still up.
    assert await rig.acd.pci_pause("call-hd", by="alice")
    assert rig.ami.actions("MixMonitorMute")[-1]["Channel"] == agent_chan
    await rig.advance(20)
    await rig.acd.unhold("call-hd", by="alice")
    back = rig.ami.actions("Redirect")[-1]
    assert (back["Channel"], back["Context"]) == (
        agent_chan,
        names.CTX_AGENT_LEG,
    ) and "ExtraChannel" not in back
    cleared = rig.ami.actions("Setvar")[-1]
    assert (cleared["Channel"], cleared["Variable"], cleared["Value"]) == (
        agent_chan,
        names.VAR_RECORDING_FILE,
        "",
    )
    rig.ami.emit("MusicOnHoldStop", Channel=caller, Uniqueid="caller")  # Bridge() took it back
    rig.ami.emit("BridgeEnter", Channel=agent_chan, Uniqueid=leg, BridgeUniqueid="b2")
    rig.ami.emit("BridgeEnter", Channel=caller, Uniqueid="caller", BridgeUniqueid="b2")
    await rig.settle()
    assert len([r for r in rig.sink.of(RecordingRecord) if r.call_id == "call-hd"]) == 1  # no second file
    assert ("call.unheld", False) in changes
    with pytest.raises(DomainError) as not_held:
        await rig.acd.unhold("call-hd")
    assert not_held.value.code == "not_held"
    await rig.advance(10)
    await rig.hangup(caller, cause="16")
    await rig.hangup(agent_chan, leg)
    assert (call_record(rig, "call-hd", "hold_seconds"), call_record(rig, "call-hd", "talk_seconds")) == (
        20.0,
        20.0,
    )
    assert [k for k in rig.sink.kinds("call-hd") if k in ("hold", "unhold")] == ["hold", "unhold"]


async def test_a_held_caller_hanging_up_ends_the_call_and_the_agent_wraps_up(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-hx", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.acd.hold("call-hx")
    rig.ami.emit("MusicOnHoldStart", Channel=caller, Uniqueid="caller", Class="default")
    await rig.advance(30)
    await rig.hangup(caller, cause="16")
    # its leg waits in cc-held-agent, out of any bridge: the ACD hangs it up
    assert rig.ami.actions("Hangup")[-1]["Channel"] == agent_chan
    await rig.hangup(agent_chan, leg)
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP
    assert call_record(rig, "call-hx", "hangup_by") == "caller"
    assert call_record(rig, "call-hx", "hold_seconds") == 30.0
    assert rig.sink.disposition("call-hx") is Disposition.ANSWERED


async def test_rona_reoffers_to_the_next_agent_and_applies_the_queue_rule(rig: AcdRig) -> None:
    await rig.acd.login("1002")  # billing 4
    await rig.acd.login("1004")  # billing 7: best for nothing here, longest idle picks 1002
    await rig.call("call-2", "billing")
    assert rig.ami.last_originate()["Channel"] == "PJSIP/agent1002"
    await rig.no_answer()
    # billing: rona_count 1, action not_ready
    st = rig.acd.agent_state("1002")
    assert (st.status, st.reason) == (ag.Status.NOT_READY, "rona")
    assert rig.ami.last_originate()["Channel"] == "PJSIP/agent1004"
    assert "rona" in rig.sink.kinds("call-2")
    await rig.acd.resume("1002")
    assert rig.acd.agent_state("1002").status is ag.Status.AVAILABLE


async def test_rona_count_two_keeps_the_agent_but_never_reoffers_it_the_same_call(rig: AcdRig) -> None:
    await rig.acd.login("1001")  # sales: rona_count 2, action pause(missed)
    await rig.call("call-3", "sales")
    await rig.no_answer(reason="5")  # busy
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    assert len(rig.ami.actions("Originate")) == 1, "not the same call again"
    await rig.call("call-4", "sales")
    await rig.no_answer()
    st = rig.acd.agent_state("1001")
    assert (st.status, st.reason) == (ag.Status.PAUSED, "missed")


async def test_caller_abandons_while_the_agent_rings(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-5", "sales")
    leg, agent_chan = await rig.agent_rings()
    await rig.hangup(caller, cause="16")
    hangups = rig.ami.actions("Hangup")
    assert hangups and hangups[-1]["Channel"] == agent_chan
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    assert rig.sink.disposition("call-5") is Disposition.ABANDONED_QUEUE
    # The late OriginateResponse of the cancelled leg changes nothing.
    rig.ami.emit("OriginateResponse", Response="Failure", Uniqueid=leg, Reason="1")
    await rig.hangup(agent_chan, leg)
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    assert rig.acd.router.is_available("1001")


async def test_abandon_while_waiting(rig: AcdRig) -> None:
    caller = await rig.call("call-6", "support")
    assert rig.acd.router.waiting_count("support") == 1
    await rig.hangup(caller)
    assert rig.acd.router.waiting_count() == 0
    assert rig.sink.disposition("call-6") is Disposition.ABANDONED_QUEUE
    assert rig.acd.call_state("call-6") is None


async def test_login_paused_is_never_offered_then_resume_takes_the_call(rig: AcdRig) -> None:
    await rig.acd.login("1001", paused_reason="training")
    await rig.call("call-7", "sales")
    assert rig.ami.actions("Originate") == []
    with pytest.raises(DomainError) as err:
        await rig.acd.pause("1001", "nap")
    assert err.value.code == "unknown_pause_reason"
    await rig.acd.resume("1001")
    await rig.settle()
    assert rig.ami.last_originate()["Channel"] == "PJSIP/agent1001"


async def test_pause_asked_on_a_call_applies_after_the_one_wrap_up(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-8", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.acd.pause("1001", "lunch")
    assert rig.acd.agent_state("1001").status is ag.Status.ON_CALL
    await rig.hangup(caller)
    await rig.hangup(agent_chan, leg)
    await rig.advance(15)
    st = rig.acd.agent_state("1001")
    assert (st.status, st.reason) == (ag.Status.PAUSED, "lunch")


async def test_blind_transfer_to_a_queue_keeps_the_data_and_wraps_the_agent_up(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-9", "sales", data={"account": "7"})
    leg, agent_chan = await rig.answer(caller)
    await rig.acd.transfer_to_queue("call-9", "billing")
    redirect = rig.ami.actions("Redirect")[-1]
    assert (redirect["Channel"], redirect["Context"]) == (caller, names.CTX_HOLD)
    await rig.hangup(agent_chan, leg)  # its Bridge() ended
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP
    assert rig.acd.call_state("call-9") == "waiting"
    await rig.acd.login("1004")  # billing 7
    await rig.settle()
    o = rig.ami.last_originate()
    assert o["Channel"] == "PJSIP/agent1004" and f"{names.VAR_CALLER_CHANNEL}={caller}" in o["Variable"]
    assert "transfer" in rig.sink.kinds("call-9")
    customer = [a["Value"] for a in rig.ami.actions("Setvar") if a["Variable"] == names.VAR_CUSTOMER]
    assert customer == ['{"account":"7"}', '{"account":"7"}']


async def test_blind_transfer_to_a_number_and_unsafe_values(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-10", "sales")
    await rig.answer(caller)
    with pytest.raises(UnsafeValueError):
        await rig.acd.transfer_to_number("call-10", "123\r\nAction: Hangup")
    await rig.acd.transfer_to_number("call-10", "+12125550199")
    sv = rig.ami.actions("Setvar")[-1]
    assert (sv["Variable"], sv["Value"]) == (names.VAR_TRANSFER_TARGET, "+12125550199")
    r = rig.ami.actions("Redirect")[-1]
    assert (r["Context"], r["Exten"]) == (names.CTX_TRANSFER, "s")
    assert rig.sink.disposition("call-10") is Disposition.TRANSFERRED
    with pytest.raises(UnsafeValueError):
        await rig.acd.enqueue(QueuedCall("../../etc/passwd", "PJSIP/x", "sales"))
    with pytest.raises(UnsafeValueError):
        await rig.acd.enqueue(QueuedCall("fine-id", "PJSIP/x\r\nAction: Hangup", "sales"))
    assert rig.acd.call_state("fine-id") is None


async def test_a_transfer_asterisk_refuses_is_not_logged_as_one(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-11", "sales")
    leg, agent_chan = await rig.answer(caller)
    rig.ami.refuse |= {"Redirect", "Atxfer"}
    with pytest.raises(AMIActionError):
        await rig.acd.transfer_to_number("call-11", "+12125550199")
    with pytest.raises(AMIActionError):
        await rig.acd.transfer_to_queue("call-11", "billing")
    with pytest.raises(AMIActionError):
        await rig.acd.attended_transfer("call-11", "+12125550199")
    # Nothing happened: no transfer in the log, the caller still talks to the same agent.
    assert "transfer" not in rig.sink.kinds("call-11")
    assert rig.sink.disposition("call-11") is Disposition.ANSWERED
    assert rig.acd.call_state("call-11") == "connected"
    assert rig.acd.agent_state("1001").status is ag.Status.ON_CALL
    refused = [
        e.detail for e in rig.sink.events("call-11", kind="note") if e.detail and "refused" in e.detail
    ]
    assert [d["refused"] for d in refused] == ["TransferToNumber", "TransferToQueue", "AttendedTransfer"]
    # Asterisk takes the next one: logged then.
    rig.ami.refuse.clear()
    await rig.acd.transfer_to_number("call-11", "+12125550199")
    assert rig.sink.kinds("call-11").count("transfer") == 1
    assert rig.sink.disposition("call-11") is Disposition.TRANSFERRED


async def test_transfers_and_callbacks_outside_the_dial_out_policy_are_refused_and_logged(
    rig: AcdRig,
) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-20", "sales")
    await rig.answer(caller)
    sent = len(rig.ami.sent)
    refusals = [
        (rig.acd.transfer_to_number, "+19005550100", "premium_rate"),
        (rig.acd.transfer_to_number, "911", "emergency"),
        (rig.acd.attended_transfer, "+881612345678", "satellite"),
        (rig.acd.attended_transfer, "+447911123456", "country"),
        (rig.acd.accept_callback, "+15550001111", "invalid_number"),
    ]
    for method, number, reason in refusals:
        with pytest.raises(DialOutRefusedError) as err:
            await method("call-20", number)
        assert (err.value.code, err.value.reason) == ("dial_out_refused", reason)
    assert len(rig.ami.sent) == sent  # nothing reached Asterisk
    logged = rig.sink.events("call-20", kind="dial_out_refused")
    assert [(e.detail or {}).get("reason") for e in logged] == [r for _, _, r in refusals]
    assert (logged[0].detail or {})["purpose"] == "transfer"
    assert rig.acd.call_state("call-20") is not None  # the call goes on with its agent


async def test_attended_transfer_uses_atxfer_on_the_agent_leg(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-11", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.acd.attended_transfer("call-11", "2002")
    a = rig.ami.actions(names.ACTION_ATXFER)[-1]
    assert (a["Channel"], a["Context"], a["Exten"]) == (agent_chan, names.CTX_ATXFER, names.ATXFER_EXTEN)
    await rig.hangup(agent_chan, leg)
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP  # one wrap-up, not reset


async def test_pci_pause_mutes_logs_and_resumes_by_itself(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-12", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.settle()
    assert await rig.acd.pci_pause("call-12", by="1001")
    mute = rig.ami.actions(names.ACTION_MIXMONITOR_MUTE)[-1]
    assert (mute["Channel"], mute["State"]) == (agent_chan, "1")
    assert not await rig.acd.pci_pause("call-12", by="1001")  # already paused
    await rig.advance(180)
    assert rig.ami.actions(names.ACTION_MIXMONITOR_MUTE)[-1]["State"] == "0"
    ev = [r for r in rig.sink.of(CallEvent) if r.call_id == "call-12" and str(r.kind).startswith("pci")]
    assert [(str(e.kind), (e.detail or {}).get("by")) for e in ev] == [
        ("pci_pause", "1001"),
        ("pci_resume", "auto"),
    ]
    await rig.hangup(caller)
    done = [r for r in rig.sink.of(RecordingRecord) if r.pci_paused_seconds is not None]
    assert done[0].pci_paused_seconds == 180.0


async def test_announcements_and_max_wait_to_voicemail(rig: AcdRig) -> None:
    caller = await rig.call("call-13", "billing")  # announce every 60 s, max wait 900 -> voicemail 8200
    await rig.advance(60)
    prompts = [a["Value"] for a in rig.ami.actions("Setvar") if a["Variable"] == names.VAR_PROMPT]
    sounds = rig.acd.config.asterisk.sounds_dir  # our prompts are installed there
    assert prompts == [f"{sounds}/en/queue-position&digits/1"]  # nobody staffed: no wait estimate
    assert rig.ami.actions("Redirect")[-1]["Context"] == names.CTX_ANNOUNCE
    for _ in range(14):
        await rig.advance(60)
    await rig.advance(1)
    mb = [a for a in rig.ami.actions("Setvar") if a["Variable"] == names.VAR_MAILBOX]
    assert mb and mb[-1]["Value"] == "8200"
    r = rig.ami.actions("Redirect")[-1]
    assert (r["Channel"], r["Context"]) == (caller, names.CTX_VOICEMAIL)
    assert rig.sink.disposition("call-13") is Disposition.VOICEMAIL


async def test_callback_keeps_the_place_and_rings_the_agent_first(rig: AcdRig) -> None:
    await rig.advance(9 * 3600)  # noon in Miami: inside the callbacks' calling window
    caller = await rig.call("call-14", "support")
    await rig.acd.accept_callback("call-14", "+13055550144")
    await rig.hangup(caller)
    assert rig.acd.router.is_waiting("call-14")
    await rig.acd.login("1003")  # support 8
    await rig.settle()
    o = rig.ami.last_originate()
    assert o["Context"] == names.CTX_TRANSFER and f"{names.VAR_TRANSFER_TARGET}=+13055550144" in o["Variable"]
    leg, chan = await rig.agent_rings()
    rig.ami.emit("OriginateResponse", Response="Success", Uniqueid=leg, Reason="4")
    # The customer does not answer: tried again after the retry delay, same agent or another.
    rig.ami.emit("DialEnd", Channel=chan, DialStatus="NOANSWER")
    await rig.hangup(chan, leg)
    assert rig.acd.call_state("call-14") == "retry"
    n = len(rig.ami.actions("Originate"))
    await rig.advance(300)  # retry delay; 1003's wrap-up is long over
    assert len(rig.ami.actions("Originate")) == n + 1
    leg, chan = await rig.agent_rings()
    rig.ami.emit("OriginateResponse", Response="Success", Uniqueid=leg, Reason="4")
    rig.ami.emit("DialEnd", Channel=chan, DialStatus="ANSWER")
    await rig.hangup(chan, leg)
    assert rig.sink.disposition("call-14") is Disposition.CALLBACK_COMPLETED
    assert rig.acd.call_state("call-14") is None
    attempts = [e.detail["status"] for e in rig.sink.of(CallEvent) if str(e.kind) == "callback_attempt"]
    assert attempts == ["NOANSWER", "ANSWER"]


async def test_pin_lockout(rig: AcdRig) -> None:
    """Five wrong PINs from one source lock the agent out from that source for 15 minutes; the
    agent's own phone still logs in; a PIN without a source is refused outright."""
    there = ("endpoint:lobby", "caller:+15550001111")
    for _ in range(5):
        with pytest.raises(DomainError) as err:
            await rig.acd.login("1001", pin="0000", sources=there)
        assert err.value.code == "bad_pin"
    pin = rig.acd.config.agents["1001"].pin.value
    with pytest.raises(DomainError) as err:
        await rig.acd.login("1001", pin=pin, sources=there)
    assert err.value.code == "locked_out"
    with pytest.raises(DomainError) as err:
        await rig.acd.login("1001", pin=pin, sources=("endpoint:other", "caller:+15550001111"))
    assert err.value.code == "locked_out"  # the same caller ID from another phone
    with pytest.raises(DomainError) as err:
        await rig.acd.login("1001", pin=pin)
    assert err.value.code == "bad_request"
    await rig.acd.login("1001", pin=pin, sources=("endpoint:agent1001", "caller:3001"))
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    await rig.acd.logout("1001")
    rig.clock.advance(901)
    await rig.acd.login("1001", pin=pin, sources=there)
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE


PHONE = ("endpoint:agent1001", "caller:1001")  # where the PINs are typed


async def test_pin_lockout_follows_the_security_section_also_after_a_reload(
    config: Config, tmp_path: Path
) -> None:
    strict = dataclasses.replace(config, security=m.Security(pin_attempts=2, lockout_seconds=60.0))
    async with acd_rig(strict, tmp_path) as rig:
        pin = rig.acd.config.agents["1001"].pin.value
        for _ in range(2):
            with pytest.raises(DomainError) as err:
                await rig.acd.login("1001", pin="0000", sources=PHONE)
            assert err.value.code == "bad_pin"
        with pytest.raises(DomainError) as err:
            await rig.acd.login("1001", pin=pin, sources=PHONE)
        assert err.value.code == "locked_out"
        rig.clock.advance(59)
        with pytest.raises(DomainError) as err:
            await rig.acd.login("1001", pin=pin, sources=PHONE)
        assert err.value.code == "locked_out"
        rig.clock.advance(2)
        await rig.acd.login("1001", pin=pin, sources=PHONE)
        # A new config takes effect at once: one wrong PIN now locks agent 1002 for 10 s.
        rig.acd.reload(dataclasses.replace(config, security=m.Security(pin_attempts=1, lockout_seconds=10.0)))
        with pytest.raises(DomainError):
            await rig.acd.login("1002", pin="0000", sources=PHONE)
        with pytest.raises(DomainError) as err:
            await rig.acd.login("1002", pin=rig.acd.config.agents["1002"].pin.value, sources=PHONE)
        assert err.value.code == "locked_out"
        rig.clock.advance(11)
        await rig.acd.login("1002", pin=rig.acd.config.agents["1002"].pin.value, sources=PHONE)


async def test_a_pause_past_its_max_minutes_is_logged_as_an_overrun(rig: AcdRig) -> None:
    # break: at most 15 minutes; training: no limit (dialplans/center.yaml)
    await rig.acd.login("1001")
    await rig.acd.login("1002")
    await rig.acd.pause("1001", "break")
    await rig.acd.pause("1002", "training")
    await rig.advance(14 * 60)
    assert rig.acd.agent_state("1001").reason == "break"
    await rig.advance(60)
    state = rig.acd.agent_state("1001")
    assert (state.status, state.reason) == (ag.Status.PAUSED, "overrun:break")
    assert state.since == rig.clock.now()
    assert rig.acd.agent_state("1002").reason == "training"
    changes = [(r.state, r.reason) for r in rig.sink.of(AgentStateChange) if r.agent_id == "1001"]
    assert changes[-2:] == [("paused", "break"), ("paused", "overrun:break")]
    # A new pause starts its own limit; resuming before it ends leaves no overrun.
    await rig.acd.resume("1001")
    await rig.acd.pause("1001", "break")
    await rig.advance(10 * 60)
    await rig.acd.resume("1001")
    await rig.acd.pause("1001", "lunch")  # 60 minutes
    await rig.advance(10 * 60)
    assert rig.acd.agent_state("1001").reason == "lunch"
    await rig.advance(50 * 60)
    assert rig.acd.agent_state("1001").reason == "overrun:lunch"


async def test_originate_refused_counts_as_rona(rig: AcdRig) -> None:
    rig.ami.refuse.add("Originate")
    await rig.acd.login("1002")
    await rig.call("call-15", "billing")
    assert rig.acd.agent_state("1002").status is ag.Status.NOT_READY
    assert rig.acd.router.is_waiting("call-15")


# ------------------------------------------------------------------------------------ restart
def status(
    channel: str, uniqueid: str, *, bridged: bool = False, seconds: int = 0, **variables: str
) -> Message:
    headers = [("Event", "Status"), ("Channel", channel), ("Uniqueid", uniqueid), ("Seconds", str(seconds))]
    if bridged:
        headers.append(("BridgeID", "bridge-1"))
    headers += [("Variable", f"{k}={v}") for k, v in variables.items()]
    return Message(headers)


async def test_restart_rebuilds_holding_and_bridged_calls(config: Config, tmp_path: Path) -> None:
    ami = FakeAMI()
    t0 = 1_800_000_000.0
    ami.status = [
        status("PJSIP/carrier-1", "u1", seconds=40, CC_CALL_ID="held-1", CC_QUEUE="support"),
        status("PJSIP/carrier-2", "u2", bridged=True, CC_CALL_ID="talk-1", CC_QUEUE="sales"),
        status(
            "PJSIP/agent1001-9",
            "ccleg-x",
            bridged=True,
            CC_CALL_ID="talk-1",
            CC_AGENT_ID="1001",
            CC_QUEUE="sales",
        ),
        status("PJSIP/agent1002-9", "ccleg-y", CC_CALL_ID="ring-1", CC_AGENT_ID="1002", CC_QUEUE="billing"),
    ]
    store = MemoryACDStore(
        StoredState(
            agents={
                "1001": ("on_call", "answered"),
                "1002": ("ringing", "ringing"),
                "1003": ("paused", "lunch"),
            },
            calls={"held-1": StoredCall("held-1", "support", t0 - 100)},
        )
    )
    async with acd_rig(config, tmp_path, store=store, ami=ami) as rig:
        assert rig.acd.agent_state("1001").status is ag.Status.ON_CALL
        assert rig.acd.agent_state("1001").call_id == "talk-1"
        assert rig.acd.agent_state("1003").reason == "lunch"
        assert rig.acd.call_state("held-1") == "waiting"
        assert rig.acd.call_state("talk-1") == "connected"
        # The half-offered leg was hung up; 1002 (billing) is available again.
        await rig.settle()
        assert any(a["Channel"] == "PJSIP/agent1002-9" for a in ami.actions("Hangup"))
        assert rig.acd.agent_state("1002").status is ag.Status.AVAILABLE
        # The bridged call ends normally: the agent wraps up.
        await rig.hangup("PJSIP/agent1001-9", "ccleg-x")
        assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP
        # The held caller keeps its first arrival: it is first in line in support.
        await rig.acd.resume("1003")
        await rig.settle()
        o = ami.last_originate()
        assert o["Channel"] == "PJSIP/agent1003" and f"{names.VAR_CALL_ID}=held-1" in o["Variable"]


async def test_restart_closes_calls_gone_from_the_pbx_and_keeps_busy_phones_from_offers(
    config: Config, tmp_path: Path
) -> None:
    """While no controller ran, the static fallback rang 1002's phone directly (no CC_* variables
    on that channel), and two logged calls ended. After the restart those two are closed as
    ``ended_unseen``; 1002 is not offered the waiting call while its phone is busy (no RONA, no
    auto-pause), and takes calls again once that call ends."""
    ami = FakeAMI()
    t0 = 1_800_000_000.0
    ami.status = [
        status("PJSIP/carrier-1", "u1", seconds=40, CC_CALL_ID="held-1", CC_QUEUE="sales"),
        status("PJSIP/carrier-7", "u7", bridged=True),  # the fallback's caller (no call id of ours)
        status("PJSIP/agent1002-77", "u8", bridged=True),  # 1002's phone, rung by the fallback
    ]
    store = MemoryACDStore(
        StoredState(
            agents={"1001": ("paused", "lunch"), "1002": ("available", "login")},
            calls={"held-1": StoredCall("held-1", "sales", t0 - 100)},
            open_calls=("held-1", "gone-1", "gone-2"),
        )
    )
    async with acd_rig(config, tmp_path, store=store, ami=ami) as rig:
        await rig.settle()
        closed = {r.call_id: r.disposition for r in rig.sink.of(CallRecord) if r.disposition}
        assert closed == {"gone-1": Disposition.ENDED_UNSEEN, "gone-2": Disposition.ENDED_UNSEEN}
        state = rig.acd.agent_state("1002")
        assert (state.status, state.reason) == (ag.Status.PAUSED, "phone_busy")
        assert rig.acd.agent_state("1001").reason == "lunch"
        assert ami.actions("Originate") == [] and rig.acd.call_state("held-1") == "waiting"
        assert not any(a["Channel"] == "PJSIP/agent1002-77" for a in ami.actions("Hangup"))
        # The fallback's call ends: 1002 is free, and the waiting caller is offered to it.
        await rig.hangup("PJSIP/agent1002-77", "u8")
        assert ami.last_originate()["Channel"] == "PJSIP/agent1002"
        assert rig.sink.agent_states("1002")[-4:] == ["paused", "available", "reserved", "ringing"]


# ------------------------------------------------------------------------------------ feature codes
def pin_of(rig: AcdRig, agent_id: str) -> str:
    return rig.acd.config.agents[agent_id].pin.value


def phone(agent_endpoint: str, feature: str, dialled: str) -> dict[str, str]:
    return {"agi_channel": f"PJSIP/{agent_endpoint}-0000002a", "agi_arg_1": feature, "agi_extension": dialled}


async def test_feature_codes_login_pause_unpause_logout(rig: AcdRig) -> None:
    from callcenter.acd.features import AgentFeatures

    features = AgentFeatures(rig.acd)
    pin = rig.acd.config.agents["1001"].pin.value
    s = FakeAGISession(phone("agent1001", "agent_login", "*11"), ["9999", pin])
    await features.handle(s)
    assert s.played() == ["pin-invalid", "agent-logged-in"]
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    lunch = rig.acd.config.pause_reasons["lunch"]
    s = FakeAGISession(phone("agent1001", "agent_pause", "*13" + lunch.digits))
    await features.handle(s)
    st = rig.acd.agent_state("1001")
    assert (st.status, st.reason, s.played()) == (ag.Status.PAUSED, "lunch", ["agent-paused"])
    await features.handle(FakeAGISession(phone("agent1001", "agent_unpause", "*14")))
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    await features.handle(FakeAGISession(phone("agent1001", "agent_logout", "*12")))
    assert rig.acd.agent_state("1001").status is ag.Status.LOGGED_OUT


async def test_feature_login_from_another_phone_asks_the_id_and_locks_out(rig: AcdRig) -> None:
    from callcenter.acd.features import AgentFeatures

    features = AgentFeatures(rig.acd)
    env = {"agi_channel": "PJSIP/lobby-00000001", "agi_arg_1": "agent_login", "agi_extension": "*11"}
    s = FakeAGISession(env, ["1002", "1", "2", "3"])
    await features.handle(s)
    assert s.played() == ["pin-invalid"] * 3
    s = FakeAGISession(env, ["1002", "4", "5", pin_of(rig, "1002")])
    await features.handle(s)
    assert s.played() == ["pin-invalid", "pin-invalid", "locked-out"]  # 5 wrong: even the right PIN waits
    assert rig.acd.agent_state("1002").status is ag.Status.LOGGED_OUT
    s = FakeAGISession(env, ["7777"])
    await features.handle(s)
    assert s.played() == ["invalid-option"]


async def test_feature_pci_on_the_agents_call(rig: AcdRig) -> None:
    from callcenter.acd.features import AgentFeatures

    features = AgentFeatures(rig.acd)
    await rig.acd.login("1001")
    caller = await rig.call("call-f", "sales")
    await rig.answer(caller)
    s = FakeAGISession(phone("agent1001", "pci_pause", "*15"))
    await features.handle(s)
    assert s.played() == ["pci-paused"]
    s = FakeAGISession(phone("agent1001", "pci_resume", "*16"))
    await features.handle(s)
    assert s.played() == ["pci-resumed"]
    assert [a["State"] for a in rig.ami.actions(names.ACTION_MIXMONITOR_MUTE)] == ["1", "0"]


async def test_a_link_gap_is_reconciled_with_the_pbx(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    talking = await rig.call("call-g1", "sales")
    leg, agent_chan = await rig.answer(caller=talking)
    holding = await rig.call("call-g2", "support")
    kept = await rig.call("call-g3", "support")
    # The link drops; meanwhile the talking call ended and the first holder hung up.
    rig.ami.status = [status(kept, "u-kept")]
    rig.ami.gap()
    await rig.settle()
    assert rig.acd.call_state("call-g1") is None and rig.acd.call_state("call-g2") is None
    assert rig.acd.call_state("call-g3") == "waiting"
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP
    assert rig.sink.disposition("call-g2") is Disposition.ABANDONED_QUEUE
    assert holding != kept


async def test_reload_applies_new_queue_rules_to_waiting_calls(rig: AcdRig) -> None:
    import dataclasses

    from callcenter.config.model import Relaxation

    await rig.acd.login("1006")  # sales 3; the sales queue asks 5 (3 only after 30 s)
    await rig.call("call-r", "sales")
    await rig.advance(2)
    assert rig.ami.actions("Originate") == []
    cfg = rig.acd.config
    sales = dataclasses.replace(cfg.queues["sales"], relaxation=(Relaxation(1.0, min_level=3),))
    rig.acd.reload(dataclasses.replace(cfg, queues={**cfg.queues, "sales": sales}))
    await rig.settle()
    assert rig.ami.last_originate()["Channel"] == "PJSIP/agent1006"


async def test_caller_input_never_reaches_the_originate_raw(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    await rig.acd.enqueue(
        QueuedCall("call-h", "PJSIP/carrier-0000beef", "sales", caller_number='"x" <1\r\nAction: Hangup>')
    )
    await rig.settle()
    o = rig.ami.last_originate()
    assert o["CallerID"] == '"Sales" <1>'
    assert rig.acd.agent_state("1001").status is ag.Status.RINGING


async def test_a_queue_caller_id_is_shown_to_the_agent_instead_of_the_callers(rig: AcdRig) -> None:
    cfg = rig.acd.config
    sales = dataclasses.replace(cfg.queues["sales"], caller_id="+18005550100")
    rig.acd.reload(dataclasses.replace(cfg, queues={**cfg.queues, "sales": sales}))
    await rig.acd.login("1001")
    await rig.acd.enqueue(
        QueuedCall("call-q", "PJSIP/carrier-0000cafe", "sales", caller_number="+12125550199")
    )
    await rig.settle()
    assert rig.ami.last_originate()["CallerID"] == '"Sales" <+18005550100>'


# ------------------------------------------------------------------------------------ ring-all
def ring_all(config: Config, *queues: str) -> Config:
    import dataclasses

    from callcenter.config.model import Strategy

    qs = {q: dataclasses.replace(config.queues[q], strategy=Strategy.RING_ALL) for q in queues}
    return dataclasses.replace(config, queues={**config.queues, **qs})


def ring_legs(ami: FakeAMI, since: int = 0) -> dict[str, str]:
    """agent id -> leg id of the Originates sent after the first ``since``."""
    return {
        o["Channel"].removeprefix("PJSIP/agent"): o["ChannelId"] for o in ami.actions("Originate")[since:]
    }


async def test_ring_all_rings_every_eligible_agent_and_the_first_answer_wins(
    config: Config, tmp_path: Path
) -> None:
    async with acd_rig(ring_all(config, "sales"), tmp_path) as rig:
        for a in ("1001", "1002", "1006"):  # sales 9, 6, 3: the queue asks 5
            await rig.acd.login(a)
        caller = await rig.call("call-ra", "sales")
        legs = ring_legs(rig.ami)
        assert set(legs) == {"1001", "1002"}
        origs = rig.ami.actions("Originate")
        assert {o["Context"] for o in origs} == {names.CTX_HOLD}  # none Bridge()s by itself
        files = {v for o in origs for v in o["Variable"].split("|") if v.startswith(names.VAR_RECORDING_FILE)}
        assert len(files) == 1  # one planned file, for whoever wins
        assert rig.acd.agent_state("1006").status is ag.Status.AVAILABLE
        chans = {}
        for a, leg in legs.items():
            chans[a] = f"PJSIP/agent{a}-0000000{a[-1]}"
            rig.ami.emit("Newchannel", Channel=chans[a], Uniqueid=leg, ChannelState="0")
        await rig.settle()
        assert all(rig.acd.agent_state(a).status is ag.Status.RINGING for a in legs)

        rig.ami.emit(
            "OriginateResponse", Response="Success", Channel=chans["1002"], Uniqueid=legs["1002"], Reason="4"
        )
        await rig.settle()
        r = rig.ami.actions("Redirect")[-1]
        assert (r["Channel"], r["Context"]) == (chans["1002"], names.CTX_AGENT_LEG)
        assert rig.ami.actions("Hangup")[-1]["Channel"] == chans["1001"]
        assert rig.acd.agent_state("1002").status is ag.Status.ON_CALL
        assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
        # The loser answered too, a moment late: its leg is hung up, it is no RONA.
        rig.ami.emit(
            "OriginateResponse", Response="Success", Channel=chans["1001"], Uniqueid=legs["1001"], Reason="4"
        )
        await rig.hangup(chans["1001"], legs["1001"])
        st = rig.acd.agent_state("1001")
        assert (st.status, st.missed) == (ag.Status.AVAILABLE, 0)
        assert "rona" not in rig.sink.kinds("call-ra")
        assert rig.sink.agent_states("1001") == ["available", "reserved", "ringing", "available"]
        rig.ami.emit("BridgeEnter", BridgeUniqueid="b1", Channel=chans["1002"], Uniqueid=legs["1002"])
        rig.ami.emit("BridgeEnter", BridgeUniqueid="b1", Channel=caller, Uniqueid="caller")
        await rig.settle()
        (rec,) = rig.sink.of(RecordingRecord)
        assert files == {f"{names.VAR_RECORDING_FILE}={rig.tmp / 'rec' / rec.path}"}
        assert rig.sink.kinds("call-ra").count("answer") == 1
        # A second call rings 1001 alone now (1002 talks): a plain offer straight to the bridge.
        await rig.call("call-rb", "sales")
        o = rig.ami.last_originate()
        assert (o["Channel"], o["Context"]) == ("PJSIP/agent1001", names.CTX_AGENT_LEG)


async def test_ring_all_when_every_leg_fails_the_call_waits_for_others(
    config: Config, tmp_path: Path
) -> None:
    async with acd_rig(ring_all(config, "sales"), tmp_path) as rig:
        for a in ("1001", "1002", "1006"):
            await rig.acd.login(a)
        await rig.call("call-rc", "sales")
        legs = ring_legs(rig.ami)
        rig.ami.emit("OriginateResponse", Response="Failure", Uniqueid=legs["1001"], Reason="5")  # busy
        await rig.settle()
        assert rig.acd.call_state("call-rc") == "offered"  # 1002 still rings
        assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE  # sales: paused after 2 misses
        await rig.advance(15 + 10)  # 1002 rings out (ring timeout + guard)
        assert rig.acd.call_state("call-rc") == "waiting"
        ronas = [e.agent_id for e in rig.sink.of(CallEvent) if str(e.kind) == "rona"]
        assert sorted(ronas) == ["1001", "1002"]  # each missed it
        assert len(rig.ami.actions("Originate")) == 2  # never rung again for this call by them
        await rig.advance(5)  # 30 s: sales relaxes to level 3, 1006 qualifies
        o = rig.ami.last_originate()
        assert (o["Channel"], o["Context"]) == ("PJSIP/agent1006", names.CTX_AGENT_LEG)


async def test_ring_all_caller_abandon_or_logout_leaves_nobody_reserved(
    config: Config, tmp_path: Path
) -> None:
    async with acd_rig(ring_all(config, "general"), tmp_path) as rig:
        agents = ("1001", "1002", "1003", "1004")
        for a in agents:
            await rig.acd.login(a)
        caller = await rig.call("call-rd", "general")
        legs = ring_legs(rig.ami)
        assert set(legs) == set(agents)
        await rig.acd.logout("1003")  # leaves while ringing: its leg goes, the others ring on
        assert rig.acd.call_state("call-rd") == "offered"
        assert rig.acd.agent_state("1003").status is ag.Status.LOGGED_OUT
        await rig.hangup(caller)
        assert rig.sink.disposition("call-rd") is Disposition.ABANDONED_QUEUE
        for a in ("1001", "1002", "1004"):
            assert rig.acd.agent_state(a).status is ag.Status.AVAILABLE, a
            assert rig.acd.router.is_available(a)
        # Late answers of the cancelled legs change nothing.
        for a, leg in legs.items():
            rig.ami.emit(
                "OriginateResponse", Response="Success", Channel=f"PJSIP/agent{a}-1", Uniqueid=leg, Reason="4"
            )
        await rig.settle()
        assert [rig.acd.agent_state(a).status for a in agents] == [
            ag.Status.AVAILABLE, ag.Status.AVAILABLE, ag.Status.LOGGED_OUT, ag.Status.AVAILABLE
        ]  # fmt: skip


RING_KINDS = ["call", "call", "newchannel", "answer", "answer", "answer", "fail", "fail", "talk_end"]
RING_KINDS += ["talk_end", "abandon", "logout", "login", "login", "pause", "time"]
RING_OPS = st.lists(st.tuples(st.sampled_from(RING_KINDS), st.integers(0, 7)), min_size=15, max_size=60)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=RING_OPS)
async def test_ring_all_property_nobody_is_ever_stuck_reserved(
    config: Config, tmp_path: Path, ops: list[tuple[str, int]]
) -> None:
    """Random traffic on a ring-all queue of four: answers (first wins), failures, agents
    hanging up, callers abandoning, agents leaving or pausing mid-offer, ring timeouts. After every
    step an agent reserved or ringing has a live offer for its call and a call has at most one agent
    on it; once the PBX is drained and time passes, nobody is reserved or ringing, and no agent
    was charged a RONA for a leg that another agent's answer cancelled."""
    agents = ("1001", "1002", "1003", "1004")
    async with acd_rig(ring_all(config, "general"), tmp_path) as rig:
        pbx = RingPBX(rig)
        for a in agents:
            await rig.acd.login(a)
        for kind, i in ops:
            await pbx.step(kind, i, agents)
            pbx.check(agents)
        await pbx.drain()
        await rig.advance(100)
        pbx.check(agents)
        stuck = [
            a for a in agents if rig.acd.agent_state(a).status in (ag.Status.RESERVED, ag.Status.RINGING)
        ]
        assert not stuck
        assert all(leg.settled for leg in rig.acd._legs.values())
        ronas = {(e.call_id, e.agent_id) for e in rig.sink.of(CallEvent) if str(e.kind) == "rona"}
        assert ronas <= pbx.missed, "a RONA for a leg the agent never missed"


class RingPBX:
    """Plays the PBX for the ring-all property: channels for the ACD's Originates, its Hangup
    actions obeyed (Hangup events), and the test's random moves."""

    def __init__(self, rig: AcdRig) -> None:
        self.rig = rig
        self.seen = 0  # Originates and Hangups handled so far
        self.hung = 0
        self.legs: dict[str, dict[str, Any]] = {}  # leg id -> agent, call, channel, state
        self.callers: dict[str, str] = {}  # call id -> channel (live)
        self.n = 0
        self.missed: set[tuple[str, str]] = set()  # (call, agent) whose leg failed or rang out

    def _sync(self) -> None:
        for o in self.rig.ami.actions("Originate")[self.seen :]:
            call = next(
                v.split("=", 1)[1] for v in o["Variable"].split("|") if v.startswith(names.VAR_CALL_ID)
            )
            agent = o["Channel"].removeprefix("PJSIP/agent")
            self.legs[o["ChannelId"]] = {"agent": agent, "call": call, "channel": None, "state": "dialing"}
        self.seen = len(self.rig.ami.actions("Originate"))

    async def _obey_hangups(self) -> None:
        while True:
            self._sync()
            hangups = self.rig.ami.actions("Hangup")[self.hung :]
            self.hung += len(hangups)
            if not hangups:
                return
            for h in hangups:
                for leg_id, leg in self.legs.items():
                    if leg["channel"] == h["Channel"] and leg["state"] != "gone":
                        if leg["state"] == "ringing":
                            self.rig.ami.emit(
                                "OriginateResponse", Response="Failure", Uniqueid=leg_id, Reason="1"
                            )
                        await self._leg_gone(leg_id, "16")
                for call, chan in list(self.callers.items()):
                    if chan == h["Channel"]:
                        del self.callers[call]
                        await self.rig.hangup(chan)
            await self.rig.settle()

    def _newchannel(self, leg_id: str) -> dict[str, Any]:
        leg = self.legs[leg_id]
        if leg["state"] == "dialing":
            leg["channel"], leg["state"] = f"PJSIP/agent{leg['agent']}-{leg_id[-8:]}", "ringing"
            self.rig.ami.emit("Newchannel", Channel=leg["channel"], Uniqueid=leg_id, ChannelState="0")
        return leg

    async def _leg_gone(self, leg_id: str, cause: str) -> None:
        leg = self.legs[leg_id]
        leg["state"] = "gone"
        await self.rig.hangup(leg["channel"], leg_id, cause=cause)

    def _pick(self, state: str, i: int) -> str | None:
        ids = sorted(k for k, v in self.legs.items() if v["state"] == state)
        return ids[i % len(ids)] if ids else None

    async def step(self, kind: str, i: int, agents: tuple[str, ...]) -> None:
        rig = self.rig
        self._sync()
        if kind == "call":
            self.n += 1
            call = f"rp-{self.n}"
            self.callers[call] = await rig.call(call, "general")
        elif kind == "newchannel" and (leg_id := self._pick("dialing", i)):
            self._newchannel(leg_id)
        elif kind == "answer" and (leg_id := self._pick("ringing", i) or self._pick("dialing", i)):
            leg = self._newchannel(leg_id)
            leg["state"] = "up"
            rig.ami.emit(
                "OriginateResponse", Response="Success", Channel=leg["channel"], Uniqueid=leg_id, Reason="4"
            )
        elif kind == "fail" and (leg_id := self._pick("ringing", i) or self._pick("dialing", i)):
            self._newchannel(leg_id)
            self.missed.add((self.legs[leg_id]["call"], self.legs[leg_id]["agent"]))
            rig.ami.emit("OriginateResponse", Response="Failure", Uniqueid=leg_id, Reason="3")
            await self._leg_gone(leg_id, "19")
        elif kind == "talk_end" and (leg_id := self._pick("up", i)):
            await self._leg_gone(leg_id, "16")
        elif kind == "abandon" and self.callers:
            call = sorted(self.callers)[i % len(self.callers)]
            await rig.hangup(self.callers.pop(call))
        elif kind in ("logout", "login", "pause"):
            agent = agents[i % len(agents)]
            with contextlib.suppress(DomainError, AgentStateError):
                if kind == "logout":
                    await rig.acd.logout(agent)
                elif kind == "login":
                    await rig.acd.login(agent)
                else:
                    await rig.acd.pause(agent, "lunch")
        elif kind == "time":
            # Ring timeouts (15 s + the 10 s guard) count as misses of the legs still ringing.
            if i >= 4:
                for leg in self.legs.values():
                    if leg["state"] in ("dialing", "ringing"):
                        self.missed.add((leg["call"], leg["agent"]))
            await rig.advance(30.0 if i >= 4 else 5.0)
        await rig.settle()
        await self._obey_hangups()

    async def drain(self) -> None:
        """Every caller hangs up, every leg ends."""
        for call in sorted(self.callers):
            await self.rig.hangup(self.callers.pop(call))
        await self._obey_hangups()
        self._sync()
        for leg_id, leg in sorted(self.legs.items()):
            if leg["state"] != "gone":
                if leg["state"] != "up":
                    self.rig.ami.emit("OriginateResponse", Response="Failure", Uniqueid=leg_id, Reason="1")
                if leg["channel"] is not None:
                    await self._leg_gone(leg_id, "16")
        await self.rig.advance(30.0)  # ring guards of legs that never became channels
        await self._obey_hangups()

    def check(self, agents: tuple[str, ...]) -> None:
        acd = self.rig.acd
        on_call: dict[str, str] = {}
        for a in agents:
            st = acd.agent_state(a)
            if st.status in (ag.Status.RESERVED, ag.Status.RINGING):
                live = [
                    leg
                    for leg in acd._legs.values()
                    if leg.agent_id == a and leg.call_id == st.call_id and not leg.settled
                ]
                assert live and acd.call_state(st.call_id or "") == "offered", (a, st)
            if st.status is ag.Status.ON_CALL:
                assert st.call_id not in on_call, "a call with two agents on it"
                on_call[st.call_id or ""] = a


def test_every_configurable_strategy_reaches_the_router(tmp_path: Path) -> None:
    import shutil

    from callcenter.acd.routing import STRATEGIES
    from callcenter.acd.service import policy_from_config
    from callcenter.config.model import Strategy

    assert {str(s) for s in Strategy} == set(STRATEGIES)
    shutil.copytree(REPO / "dialplans", tmp_path / "d")
    acd_yaml = tmp_path / "d" / "acd.yaml"
    text = acd_yaml.read_text()
    assert "strategy: best_skill" in text
    acd_yaml.write_text(text.replace("strategy: best_skill", "strategy: least_talk_time", 1))
    sales = load_config(tmp_path / "d").queues["sales"]
    assert sales.strategy is Strategy.LEAST_TALK_TIME
    assert policy_from_config(sales).strategy == "least_talk_time"
    for s in Strategy:
        import dataclasses

        assert policy_from_config(dataclasses.replace(sales, strategy=s)).strategy == str(s)


async def test_restart_hangs_up_every_leg_of_a_ring_all_offer(config: Config, tmp_path: Path) -> None:
    ami = FakeAMI()
    ami.status = [
        status("PJSIP/carrier-7", "u7", seconds=5, CC_CALL_ID="ring-1", CC_QUEUE="general"),
        status("PJSIP/agent1001-7", "ccleg-a", CC_CALL_ID="ring-1", CC_AGENT_ID="1001", CC_QUEUE="general"),
        status("PJSIP/agent1002-7", "ccleg-b", CC_CALL_ID="ring-1", CC_AGENT_ID="1002", CC_QUEUE="general"),
    ]
    store = MemoryACDStore(
        StoredState(agents={"1001": ("ringing", "ringing"), "1002": ("reserved", "offer")})
    )
    async with acd_rig(ring_all(config, "general"), tmp_path, store=store, ami=ami) as rig:
        await rig.settle()
        hung = {a["Channel"] for a in ami.actions("Hangup")}
        assert {"PJSIP/agent1001-7", "PJSIP/agent1002-7"} <= hung  # half-offered legs: both gone
        # The caller is back in line and rings both agents again, as one ring-all offer.
        assert {o["Channel"] for o in ami.actions("Originate")} == {"PJSIP/agent1001", "PJSIP/agent1002"}
        assert all(rig.acd.agent_state(a).status is ag.Status.RINGING for a in ("1001", "1002"))


# ------------------------------------------------------------------------------------ races
async def test_an_action_on_a_channel_that_has_gone_is_a_normal_race(
    rig: AcdRig, caplog: pytest.LogCaptureFixture
) -> None:
    """A caller hangs up between the ACD's decision and its action: Asterisk answers "No such
    channel" (Redirect: "Channel does not exist"). Logged at debug, nothing raised, no traceback."""
    from callcenter.acd import call_state as cs

    caplog.set_level(logging.DEBUG, logger="callcenter")
    rig.ami.refuse.update({"Hangup", "Setvar", "Redirect"})
    await rig.acd._act(cs.Hangup("PJSIP/carrier-00000001"))
    await rig.acd._act(cs.SetVariables("PJSIP/carrier-00000001", (("CC_X", "1"),)))
    await rig.acd._act(cs.Redirect("PJSIP/carrier-00000001", "cc-announce", (("CC_X", "1"),)))
    # The same through the ACD's own tasks (what an announcement or a RONA hang-up runs in).
    rig.acd._spawn(rig.acd._act(cs.Hangup("PJSIP/carrier-00000002")), "hangup-test")
    await rig.settle()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records)
    assert any("had gone already" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
