"""The ``ivr`` FastAGI route over real loopback sockets: the real FastAGI server, a scripted
Asterisk side speaking the wire protocol, fakes only at the seams (ACD, customer directory, clock,
call-log sink)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.clock import FakeClock
from callcenter.config import model as m
from callcenter.inbound.ivr import mask
from callcenter.inbound.service import IvrService
from callcenter.reporting.records import CALLER_TEXT_MAX, CallRecord, Disposition, LegRecord, caller_text
from callcenter.store.customers import Customer
from tests.centers import CLOSED_NOW, OPEN_NOW, ivr_config
from tests.fakes import Caller, FakeDirectory, FakeDistributor, RecordSink, agi_env, place_call

SOUNDS = m.AsteriskSettings().sounds_dir


@dataclass
class Rig:
    service: IvrService
    server: FastAGIServer
    sink: RecordSink
    acd: FakeDistributor
    directory: FakeDirectory
    clock: FakeClock

    async def call(self, caller: Caller, *, environment: dict[str, str] | None = None) -> Caller:
        return await place_call(self.server.port, caller, environment=environment)


def _ids() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"call-{n}"


@contextlib.asynccontextmanager
async def rig(now: float = OPEN_NOW, cfg: m.Config | None = None) -> AsyncIterator[Rig]:
    sink, acd, directory, clock = RecordSink(), FakeDistributor(), FakeDirectory(), FakeClock(start=now)
    ids = _ids()
    service = IvrService(
        cfg or ivr_config(),
        writer=sink,
        distributor=acd,
        customers=directory,
        clock=clock,
        new_call_id=lambda: next(ids),
    )
    server = FastAGIServer({names.AGI_IVR: service.handle}, host="127.0.0.1", port=0, read_timeout=5)
    async with server:
        yield Rig(service, server, sink, acd, directory, clock)
    assert server.failed == 0


# ----------------------------------------------------------------------------- tests
async def test_valid_keys_reach_the_acd_with_everything_gathered() -> None:
    async with rig() as r:
        r.directory.customers["+12125550100"] = Customer(
            "+12125550100", "Ada", "vip", "A-1", {"segment": "residential", "nested": {"x": 1}}
        )
        caller = await r.call(Caller(["1", "1"]))
    assert len(r.acd.calls) == 1
    call = r.acd.calls[0]
    assert (call.call_id, call.queue, call.priority, call.language) == ("call-1", "sales", 50, "en")
    assert call.skills == {"sales": 5}
    assert call.channel == "PJSIP/carrier-1795420631.0" and call.uniqueid == "1795420631.0"
    assert call.caller_number == "+12125550100" and not call.redirect_to_hold
    assert call.data["customer_name"] == "Ada" and call.data["customer_tier"] == "vip"
    assert call.data["customer_account"] == "A-1" and call.data["customer_segment"] == "residential"
    assert "customer_nested" not in call.data
    v = caller.variables
    assert v[names.VAR_CALL_ID] == "call-1" and v[names.VAR_QUEUE] == "sales"
    assert v[names.VAR_PRIORITY] == "50" and v[names.VAR_SKILLS] == "sales:5"
    assert list(v)[-1] == names.VAR_QUEUE  # set last: the dialplan goes to hold on it
    assert caller.played() == [
        f"{SOUNDS}/en/welcome",
        f"{SOUNDS}/en/language-menu",
        f"{SOUNDS}/en/main-menu",
        f"{SOUNDS}/en/transfer-sales",
    ]
    get_data = [w for w in caller.commands if w[:2] == ["GET", "DATA"]]
    assert get_data[1][3:] == ["5000", "1"]
    legs = [x for x in r.sink.records if isinstance(x, LegRecord)]
    assert legs[0].leg_id == "1795420631.0" and legs[0].kind == "caller"
    nodes = [e.node for e in r.sink.events("call-1") if e.kind == "ivr_node"]
    assert nodes == ["hours", "lookup", "welcome", "language", "main-menu", "sales", "q-sales"]
    assert r.service.stats.finished == {"queue": 1} and r.service.stats.active == 0


async def test_invalid_keys_and_silence_fall_back() -> None:
    async with rig() as r:
        caller = await r.call(Caller(["1", "7", "", "x"]))
    assert r.acd.calls[0].queue == "general"
    outcomes = [e.detail["outcome"] for e in r.sink.events() if e.node == "main-menu" and e.detail]
    assert outcomes == ["invalid", "timeout", "invalid"]
    # a retry plays the extra prompt (interruptible STREAM FILE), then the menu with GET DATA
    i = caller.commands.index(["STREAM", "FILE", f"{SOUNDS}/en/invalid-option", "0123456789*#"])
    assert caller.commands[i + 1] == ["GET", "DATA", f"{SOUNDS}/en/main-menu", "5000", "1"]


async def test_caller_pressing_nothing_at_all() -> None:
    async with rig() as r:
        await r.call(Caller(["", "", "", ""]))
    assert r.acd.calls[0].queue == "general" and r.acd.calls[0].language == "en"


@pytest.mark.parametrize("notice", [False, True])
@pytest.mark.parametrize("at", [0, 1, 2, 3, 5])
async def test_hanging_up_at_any_step_is_recorded_and_nothing_escapes(at: int, notice: bool) -> None:
    async with rig() as r:
        await r.call(Caller(["1", "1"], hang_up_at=at, notice=notice))
    assert r.acd.calls == []
    final = r.sink.calls()[-1]
    assert final.disposition is Disposition.ABANDONED_IVR and final.hangup_by == "caller"
    last = [e for e in r.sink.events() if e.kind == "ivr_node"][-1]
    assert last.detail is not None and last.detail["outcome"] == "caller_hangup"
    assert r.service.stats.finished == {"abandoned": 1}


async def test_hang_up_after_the_flow_but_before_the_hand_off() -> None:
    async with rig() as r:
        # commands: SET CC_CALL_ID, STREAM welcome, GET DATA lang, GET DATA menu, STREAM transfer,
        # SET CC_SKILLS <- the caller is gone here
        await r.call(Caller(["1", "1"], hang_up_at=5))
    assert r.acd.calls == []
    assert r.sink.calls()[-1].disposition is Disposition.ABANDONED_IVR


async def test_after_hours_plays_the_message_and_hangs_up() -> None:
    async with rig(now=CLOSED_NOW) as r:
        caller = await r.call(Caller([]))
    assert caller.played() == [f"{SOUNDS}/en/closed"]
    assert r.acd.calls == []
    assert r.sink.calls()[-1].disposition is Disposition.AFTER_HOURS
    assert names.VAR_QUEUE not in caller.variables  # the dialplan hangs up


async def test_lookup_timeout_and_failure_let_the_call_go_on() -> None:
    async with rig() as r:
        r.directory.stall = True
        await r.call(Caller(["1", "1"]))
        r.directory.stall, r.directory.broken = False, True
        await r.call(Caller(["1", "1"]), environment=agi_env("2.2"))
    assert [c.priority for c in r.acd.calls] == [0, 0]
    outcomes = [e.detail["outcome"] for e in r.sink.events() if e.kind == "lookup" and e.detail]
    assert outcomes == ["timeout", "error"]


async def test_unparseable_caller_number_skips_the_lookup() -> None:
    async with rig() as r:
        await r.call(Caller(["1", "1"]), environment=agi_env(caller="anonymous"))
    assert r.acd.calls[0].caller_number == "anonymous"
    out = [e.detail["outcome"] for e in r.sink.events() if e.kind == "lookup" and e.detail]
    assert out == ["invalid_number"]


async def test_voicemail_sets_the_mailbox_for_the_dialplan() -> None:
    async with rig() as r:
        good = next(f"{n:06d}" for n in range(100000, 999999) if _luhn(f"{n:06d}"))
        caller = await r.call(Caller(["1", "2", good, "3"]))
    assert caller.variables[names.VAR_MAILBOX] == "8200"
    assert names.VAR_QUEUE not in caller.variables
    assert r.sink.calls()[-1].disposition is Disposition.VOICEMAIL


async def test_callback_request_goes_to_the_acd() -> None:
    async with rig() as r:
        caller = await r.call(Caller(["1", "4"]))
    assert r.acd.callbacks == [("call-1", "+12125550100")]
    assert r.acd.calls[0].queue == "general" and not r.acd.calls[0].redirect_to_hold
    assert r.sink.calls()[-1].disposition is Disposition.CALLBACK_REQUESTED
    assert caller.commands[-1] == ["HANGUP"] and names.VAR_QUEUE not in caller.variables


async def test_collected_card_digits_stay_masked_on_the_channel_and_in_the_log() -> None:
    good = next(f"{n:08d}" for n in range(10000000, 99999999) if _luhn(f"{n:08d}"))
    async with rig() as r:
        caller = await r.call(Caller(["1", "2", good, "1"]))
    assert r.acd.calls[0].data["account"] == mask(good)  # masked for the agent and on the channel
    assert all(good not in v for v in caller.variables.values())
    assert all(good not in repr(rec) for rec in r.sink.records)


async def test_acd_refusing_the_call_sends_it_to_the_fallback() -> None:
    async with rig() as r:
        r.acd.fail = True
        caller = await r.call(Caller(["1", "1"]))
    assert caller.commands[-1] == ["EXEC", "Goto", "cc-fallback,s,1"]
    assert names.VAR_QUEUE not in caller.variables
    notes = [e for e in r.sink.events() if e.kind == "note"]
    assert notes and notes[0].detail is not None and notes[0].detail["code"] == "queue_closed"
    assert r.service.stats.failed == 1


async def test_a_broken_reply_sends_the_call_to_the_fallback_without_escaping() -> None:
    async with rig() as r:
        caller = await r.call(Caller(["1", "1"], junk_reply_at=2))
    assert caller.commands[-1][:2] == ["EXEC", "Goto"]
    assert r.service.stats.failed == 1


async def test_non_dtmf_data_and_a_digit_flood_from_the_channel() -> None:
    async with rig() as r:
        await r.call(Caller(["1", "1" * 10_000, "abc", "\u0661"]))
    assert r.acd.calls[0].queue == "general"  # three invalid answers: fallback
    logged = [e.detail["input"] for e in r.sink.events() if e.node == "main-menu" and e.detail]
    assert all(len(str(x)) < 64 for x in logged)


async def test_collect_with_a_custom_terminator_uses_wait_for_digit() -> None:
    flow = m.Flow(
        id="pin",
        start="pin",
        nodes=m.frozen_map(
            {
                "pin": m.CollectNode(
                    id="pin",
                    prompt="enter-pin",
                    variable="pin",
                    min_digits=4,
                    max_digits=6,
                    terminator="*",
                    next="q",
                    fallback="bye",
                ),  # fmt: skip
                "q": m.QueueNode(id="q", queue="general"),
                "bye": m.HangupNode(id="bye"),
            }
        ),
    )
    cfg = ivr_config(flow, numbers=[m.Number(number="+18005550177", flow="pin")])
    async with rig(cfg=cfg) as r:
        e = agi_env() | {"agi_extension": "18005550177"}
        caller = await r.call(Caller(["1234*"]), environment=e)
    assert r.acd.calls[0].data == {"pin": "1234"}
    waits = [w for w in caller.commands if w[:3] == ["WAIT", "FOR", "DIGIT"]]
    assert len(waits) == 4


async def test_500_concurrent_ivr_calls() -> None:
    async with rig() as r:
        scripts = [["1", "0"], ["1", "1"], ["1", "4"], ["2", "3", "1"]]
        callers = [Caller(list(scripts[i % 4])) for i in range(500)]
        await asyncio.gather(*(r.call(c, environment=agi_env(f"{i}.1")) for i, c in enumerate(callers)))
        assert r.service.stats.active == 0
    assert r.service.stats.started == 500
    assert sum(r.service.stats.finished.values()) == 500
    assert len({c.call_id for c in r.acd.calls}) == len(r.acd.calls)
    assert len(r.acd.calls) == 500 and len(r.acd.callbacks) == 125
    assert {c.queue for c in r.acd.calls} == {"general", "sales", "support"}
    assert {c.language for c in r.acd.calls if c.queue == "support"} == {"es"}


def _luhn(digits: str) -> bool:
    from callcenter.inbound.ivr import luhn_ok

    return luhn_ok(digits)


def test_settings_are_frozen() -> None:
    from callcenter.inbound.service import IvrSettings

    with pytest.raises(dataclasses.FrozenInstanceError):
        IvrSettings().command_timeout = 1.0  # type: ignore[misc]


async def test_a_sixty_kilobyte_caller_id_is_stored_capped_and_without_control_characters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spoofed = "\x1b[2J2125550100\x07\tFAKE LOG LINE\u202e" + "9" * 60_000  # CR/LF end the line
    async with rig() as r:
        await r.call(Caller(["1", "1"]), environment={**agi_env(), "agi_callerid": spoofed})
    call = r.acd.calls[0]
    assert call.caller_number is not None and len(call.caller_number) <= CALLER_TEXT_MAX
    calls = [x for x in r.sink.records if isinstance(x, CallRecord) and x.caller_number is not None]
    assert calls and all(len(x.caller_number or "") <= CALLER_TEXT_MAX for x in calls)
    stored = calls[0].caller_number or ""
    assert stored.startswith("[2J2125550100FAKE LOG LINE9") and len(stored) == CALLER_TEXT_MAX
    for text in [call.caller_number, stored, *(rec.getMessage() for rec in caplog.records)]:
        assert not any(ch in text for ch in "\x1b\x07\t\u202e"), text


def test_caller_text_strips_controls_and_caps() -> None:
    assert caller_text("Ann\r\nAction: Hangup") == "AnnAction: Hangup"
    assert caller_text("\x00\x7f\x85\u200e\u2066Bo\u00e9") == "Bo\u00e9"  # C0, DEL, C1, format chars
    assert caller_text("5" * 100) == "5" * CALLER_TEXT_MAX and caller_text("12", limit=1) == "1"
    record = CallRecord("c1", 0.0, caller_number="1\n" * 100, called_number="\x1b800", did="x" * 81)
    assert record.caller_number == "1" * CALLER_TEXT_MAX and record.called_number == "800"
    assert record.did == "x" * CALLER_TEXT_MAX and CallRecord("c2", 0.0).caller_number is None
