"""The in-queue callback offer: past its queue's ``callback_offer_after`` a waiting caller is sent
to hear the offer (``cc-callback-offer``, the ``callback`` route); the key keeps its place and
hangs up; the agent is rung first and the caller's number dialled from the agent's leg."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from callcenter.acd.callback_offer import CallbackOffers
from callcenter.asterisk import names
from callcenter.clock import FakeClock
from callcenter.config import model as m
from callcenter.ports import QueuedCall
from callcenter.store.callbacks import PgCallbackStore
from tests.centers import example
from tests.fakes import AcdRig, FakeAGISession, acd_rig

NOON_NY = 1_800_000_000.0 + 9 * 3600  # 2027-01-15 17:00 UTC: 12:00 in New York (a Friday)


def offering() -> m.Config:
    """Sales offers a callback once the expected wait passes 60 s, with no announcements."""
    c = example()
    sales = dataclasses.replace(c.queues["sales"], callback_offer_after=60.0, announce_period=None)
    return dataclasses.replace(c, queues={**c.queues, "sales": sales})


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[AcdRig]:
    async with acd_rig(offering(), tmp_path, clock=FakeClock(start=NOON_NY)) as r:
        yield r


async def waiting(rig: AcdRig, call_id: str, number: str) -> str:
    channel = f"PJSIP/carrier-{call_id}"
    await rig.acd.enqueue(QueuedCall(call_id, channel, "sales", caller_number=number))
    await rig.settle()
    return channel


def session(call_id: str, digits: list[str]) -> FakeAGISession:
    env = {"agi_channel": "PJSIP/carrier-x", "agi_network_script": names.AGI_CALLBACK}
    return FakeAGISession(env, digits, variables={names.VAR_CALL_ID: call_id})


async def test_the_caller_hears_the_offer_presses_1_and_is_called_back_agent_first(rig: AcdRig) -> None:
    caller = await waiting(rig, "cb-1", "+12125550123")  # nobody logged in: the wait has no end
    offered = [a["Channel"] for a in rig.ami.actions("Redirect") if a["Context"] == names.CTX_CALLBACK_OFFER]
    assert offered == [caller]
    offers = CallbackOffers(rig.acd)
    s = session("cb-1", ["1"])
    await offers.handle(s)
    (get_data,) = [a for c, a in s.commands if c == "GET DATA"]
    assert str(get_data[0]).endswith("/en/callback-offer")
    assert s.played() == ["callback-accepted"] and s.hung_up
    await rig.hangup(caller)  # the caller leaves, keeping its place
    assert rig.acd.router.is_waiting("cb-1")
    await rig.acd.login("1001")
    await rig.settle()
    o = rig.ami.last_originate()  # the agent first; its leg dials the caller once it answers
    assert o["Channel"] == "PJSIP/agent1001" and o["Context"] == names.CTX_TRANSFER
    assert f"{names.VAR_TRANSFER_TARGET}=+12125550123" in o["Variable"]
    assert (offers.offered, offers.accepted) == (1, 1)


async def test_no_key_keeps_the_caller_waiting_on_hold(rig: AcdRig) -> None:
    await waiting(rig, "cb-2", "+12125550124")
    s = session("cb-2", [""])
    await CallbackOffers(rig.acd).handle(s)
    assert not s.hung_up and s.played() == []
    assert rig.acd.call_state("cb-2") == "waiting"
    await rig.acd.login("1001")
    await rig.settle()
    assert rig.ami.last_originate()["Context"] == names.CTX_AGENT_LEG  # the caller itself, bridged


async def test_no_offer_for_a_number_the_dial_out_policy_refuses(rig: AcdRig) -> None:
    caller = await waiting(rig, "cb-3", "+19005550100")  # premium rate
    assert not [a for a in rig.ami.actions("Redirect") if a["Context"] == names.CTX_CALLBACK_OFFER]
    assert [a["Channel"] for a in rig.ami.actions("Redirect")] == [caller]  # to hold only
    s = session("cb-3", ["1"])
    await CallbackOffers(rig.acd).handle(s)
    assert s.commands == [("GET VARIABLE", (names.VAR_CALL_ID,))] and not s.hung_up


# ------------------------------------------------------------------------------------ kept in PostgreSQL


def with_policy(**kw: object) -> m.Config:
    c = offering()
    return dataclasses.replace(c, callbacks=dataclasses.replace(c.callbacks, **kw))


async def rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch("SELECT call_id, state, attempts, next_at FROM callbacks ORDER BY call_id")
        )
    finally:
        await conn.close()


async def accept(rig: AcdRig, call_id: str, number: str) -> None:
    caller = await waiting(rig, call_id, number)
    await CallbackOffers(rig.acd).handle(session(call_id, ["1"]))
    await rig.hangup(caller)


async def test_a_pending_callback_survives_a_restart_and_is_made_exactly_once(
    tmp_path: Path, db_dsn: str
) -> None:
    store = PgCallbackStore(db_dsn)
    clock = FakeClock(start=NOON_NY)
    try:
        async with acd_rig(with_policy(), tmp_path, callbacks=store, clock=clock) as rig:
            await accept(rig, "cb-r", "+12125550123")
            assert [(r["call_id"], r["state"]) for r in await rows(db_dsn)] == [("cb-r", "pending")]
        # The controller restarts: the callback is back in line; an agent logs in and is rung first.
        async with acd_rig(with_policy(), tmp_path, callbacks=store, clock=clock) as rig:
            await rig.acd.login("1001")
            await rig.settle()
            originates = rig.ami.actions("Originate")
            assert len(originates) == 1 and originates[0]["Context"] == names.CTX_TRANSFER
            assert f"{names.VAR_TRANSFER_TARGET}=+12125550123" in originates[0]["Variable"]
            leg, chan = await rig.agent_rings()
            rig.ami.emit("OriginateResponse", Response="Success", Uniqueid=leg, Reason="4")
            rig.ami.emit("DialEnd", Channel=chan, DialStatus="ANSWER")
            await rig.hangup(chan, leg)
            await rig.acd.idle()
            await rig.acd.drain_callbacks()
        assert [(r["state"], r["attempts"]) for r in await rows(db_dsn)] == [("done", 1)]
        # Restarted again: nothing left to call back.
        async with acd_rig(with_policy(), tmp_path, callbacks=store, clock=clock) as rig:
            await rig.acd.login("1001")
            await rig.settle()
            assert rig.ami.actions("Originate") == []
    finally:
        await store.close()


async def test_callbacks_obey_the_window_the_retry_policy_and_the_do_not_call_list(
    tmp_path: Path, db_dsn: str
) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("INSERT INTO dnc (campaign_id, phone) VALUES ('', '+12125550199')")
    finally:
        await conn.close()
    store = PgCallbackStore(db_dsn)
    clock = FakeClock(start=1_800_000_000.0)  # 03:00 in New York: outside 09:00-21:00
    policy = with_policy(max_attempts=2, retry_delay=120.0)
    try:
        async with acd_rig(policy, tmp_path, callbacks=store, clock=clock) as rig:
            # On the do-not-call list: no callback; the caller stays in line.
            await waiting(rig, "cb-dnc", "+12125550199")
            s = session("cb-dnc", ["1"])
            await CallbackOffers(rig.acd).handle(s)
            assert not s.hung_up and rig.acd.call_state("cb-dnc") == "waiting"
            await rig.acd.withdraw("cb-dnc")
            # Asked at night: the agent is free, but the customer is not rung before 09:00 there.
            await accept(rig, "cb-w", "+12125550124")
            await rig.acd.login("1001")
            await rig.settle()
            assert rig.ami.actions("Originate") == []
            await rig.advance(6 * 3600 - 1)
            assert rig.ami.actions("Originate") == []
            await rig.advance(1)  # 09:00 in New York
            assert len(rig.ami.actions("Originate")) == 1
            # Not reached twice (max_attempts 2), 120 s apart, then given up.
            for n in (1, 2):
                leg, chan = await rig.agent_rings()
                rig.ami.emit("OriginateResponse", Response="Success", Uniqueid=leg, Reason="4")
                rig.ami.emit("DialEnd", Channel=chan, DialStatus="NOANSWER")
                await rig.hangup(chan, leg)
                if n == 1:
                    await rig.advance(119)
                    assert len(rig.ami.actions("Originate")) == 1
                    await rig.advance(16)  # the retry delay and 1001's wrap-up are over
                    assert len(rig.ami.actions("Originate")) == 2
            await rig.acd.idle()
            await rig.acd.drain_callbacks()
        got = {r["call_id"]: (r["state"], r["attempts"]) for r in await rows(db_dsn)}
        assert got == {"cb-w": ("failed", 2)}
    finally:
        await store.close()


async def test_a_number_that_does_not_tell_its_zone_uses_the_policy_timezone(tmp_path: Path) -> None:
    """A toll-free number has no zone of its own: the policy's timezone says when it may ring
    (noon in New York is 02:00 in Tokyo: the callback waits for 09:00 there)."""
    async with acd_rig(with_policy(timezone="Asia/Tokyo"), tmp_path, clock=FakeClock(start=NOON_NY)) as rig:
        await accept(rig, "cb-tf", "+18005550100")
        await rig.acd.login("1001")
        await rig.settle()
        assert rig.ami.actions("Originate") == []
        await rig.advance(7 * 3600)  # 09:00 in Tokyo
        assert len(rig.ami.actions("Originate")) == 1
