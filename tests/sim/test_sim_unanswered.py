"""An unanswered SIP channel on the simulated PBX behaves as on a real Asterisk 22.

``tests/fixtures/unanswered`` holds what a real Asterisk did (``tests/sim/unanswered_probe.py``,
re-run by ``test_real_asterisk_still_does_what_the_fixture_shows`` when ``ASTERISK_BIN`` is set):
a phone's call that nothing answers runs its FastAGI script; prompts play for their length to
nobody, ``GET DATA`` and ``WAIT FOR DIGIT`` time out because no DTMF passes (neither the phone's
nor an AMI ``PlayDTMF``, which is still "queued"), ``CHANNEL STATUS`` says Ring; when the dialplan
ends the phone's INVITE is declined (603) and ``Hangup`` keeps the channel's cause (16 after
``Hangup()``, 0 when the dialplan simply ends, answered or not). A Local channel passes DTMF between
its halves before it is answered.

The same probe runs against the simulator (the phone is a simulated desk phone whose heard prompts
stand for RTP received); its transcripts must give the same facts. Unit tests below pin each rule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from callcenter.clock import FakeClock, ScaledClock
from callcenter.sim import SimulatedPBX
from callcenter.sim.apps import APPLICATIONS
from callcenter.sim.channel import RING, UP, Channel
from callcenter.sim.dialplan import parse
from callcenter.sim.pbx import PBX
from callcenter.sim.people import Scenario
from tests.asterisk_harness import ADMIN_USER, free_port, require_asterisk, short_tempdir
from tests.sim.unanswered_probe import (
    AMI,
    CALLS,
    EXTENSIONS,
    Facts,
    Log,
    capture,
    local_halves_in_order,
    read_facts,
    run_call,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "unanswered"
SECRET = "probe-secret"


class SimPhone:
    """The probe's phone on the simulator: the owner of the call's channel; a prompt it hears
    stands for the RTP a SIPp phone receives."""

    def __init__(self, pbx: PBX) -> None:
        self.pbx = pbx
        self.heard = 0
        self.mark = 0
        self.answered = False

    def on_event(self, pbx: PBX, chan: Channel, what: str, detail: str) -> None:
        self.answered = self.answered or chan.state == UP
        if what == "prompt":
            self.heard += 1

    def heard_since_mark(self) -> int:
        n, self.mark = self.heard - self.mark, self.heard
        return n

    async def dtmf_before_answer(self, channel: str, ami: AMI, log: Log) -> None:
        chan = self.pbx.find_channel(channel)
        assert chan is not None
        passed = self.pbx.send_dtmf(chan, "1", 160)
        log.note(f"the phone sends digit 1: {'passed' if passed else 'went nowhere'}")

    async def dtmf_after_answer(self, channel: str) -> None:
        chan = self.pbx.find_channel(channel)
        assert chan is not None
        for digit in "12#":
            await self.pbx.clock.sleep(0.3)
            self.pbx.send_dtmf(chan, digit, 280)


async def run_on_sim(out: Path) -> dict[str, tuple[Facts, bool]]:
    """Every probe call on one simulator (channel numbers run on as in the capture)."""
    agi_port = free_port()
    sim = SimulatedPBX(
        dialplan_text=EXTENSIONS.format(agi=agi_port),
        clock=ScaledClock(10),
        ami_user=ADMIN_USER,
        ami_secret=SECRET,
        recordings_dir=out / "rec",
    )
    answered: dict[str, bool] = {}
    async with sim:
        t0 = time.monotonic()
        for call in CALLS:
            phone = SimPhone(sim.pbx)

            async def place(ami: AMI, log: Log, call: str = call, phone: SimPhone = phone) -> None:
                log.note(f"the simulated phone calls {call} (endpoint phone, context probe)")
                sim.pbx.phone_call("phone", call, context="probe", caller_num="2001", owner=phone)

            await run_call(
                call, out, ami_port=sim.ami_port, ami_secret=SECRET, agi_port=agi_port, phone=phone, t0=t0,
                place=place,
            )  # fmt: skip
            answered[call] = phone.answered
    return {call: (read_facts(out, call), answered[call]) for call in CALLS}


def sip_final(answered: bool) -> str:
    return "SIP/2.0 200 OK" if answered else "SIP/2.0 603 Decline"


@pytest.fixture(scope="module")
def fixture_facts() -> dict[str, Facts]:
    return {call: read_facts(FIXTURE, call) for call in CALLS}


def test_the_fixture_shows_what_an_unanswered_phone_gets(fixture_facts: dict[str, Facts]) -> None:
    """The facts the simulator follows, read from the real capture."""
    noanswer = fixture_facts["noanswer"]
    assert [reply for _, reply, _ in noanswer.agi] == [
        "200 result=4",  # CHANNEL STATUS: Ring
        "200 result=0 endpos=3404",  # STREAM FILE: played in full, to nobody
        "200 result= (timeout)",  # GET DATA: the phone's digit never arrives
        "200 result=0",  # WAIT FOR DIGIT: nor does PlayDTMF's
        "200 result=0",  # EXEC Playback ...,noanswer
        "200 result=4",
    ]
    assert not any(media for _, _, media in noanswer.agi)  # not one RTP packet reached the phone
    assert noanswer.dtmf == () and noanswer.newstate == ()
    assert noanswer.responses == (("dtmf-5", "Success", "DTMF successfully queued"),)
    assert noanswer.hangups == (("PJSIP/phone-00000000", "16", "4"),)
    assert noanswer.sip_final == "SIP/2.0 603 Decline"
    assert fixture_facts["fallthrough"].hangups == (("PJSIP/phone-00000001", "0", "4"),)
    assert fixture_facts["fallthrough"].sip_final == "SIP/2.0 603 Decline"
    answered = fixture_facts["answered"]
    assert [media for _, _, media in answered.agi] == [False, False, True, True]
    assert answered.agi[-1][1] == "200 result=12"
    assert fixture_facts["answeredfall"].hangups == (("PJSIP/phone-00000003", "0", "6"),)
    assert fixture_facts["local"].agi[1] == ("WAIT FOR DIGIT 3000", "200 result=53", False)


async def test_the_simulator_does_what_the_fixture_shows(
    fixture_facts: dict[str, Facts], tmp_path: Path
) -> None:
    results = await run_on_sim(tmp_path)
    for call in CALLS:
        facts, answered = results[call]
        expected = fixture_facts[call]
        if expected.sip_final is not None:
            assert sip_final(answered) == expected.sip_final, call
        # The one reordering allowed: the simulator destroys a Local ;2 that ends unanswered at
        # once, Asterisk reports its Hangup after the ;1's.
        assert dataclasses.replace(
            facts, sip_final=expected.sip_final, hangups=tuple(sorted(facts.hangups))
        ) == dataclasses.replace(expected, hangups=tuple(sorted(expected.hangups))), call


@pytest.mark.asterisk
@pytest.mark.timeout(240)
async def test_real_asterisk_still_does_what_the_fixture_shows(
    fixture_facts: dict[str, Facts], tmp_path: Path
) -> None:
    """The capture again, on ``ASTERISK_BIN``: the same facts as the stored transcripts (to
    refresh them: ``python -m tests.sim.unanswered_probe tests/fixtures/unanswered``)."""
    binary = require_asterisk()
    with short_tempdir() as root:
        facts = await capture(binary, root, tmp_path)
    for call in CALLS:
        assert facts[call] == fixture_facts[call], call


# ------------------------------------------------------------------------------ the rules, one by one
PLAN = """[phones]
exten => 100,1,NoOp(nobody answers)
 same => n,Playback(beep,noanswer)
 same => n,MusicOnHold(default,1)
 same => n,Playback(beep)
 same => n,Wait(5)
exten => 200,1,NoOp(ends without Hangup)
exten => 300,1,Playback(beep,skip)
 same => n,Wait(5)
exten => 400,1,Background(beep,n)
 same => n,Wait(5)
"""


class Ear:
    """Whatever a person on a channel is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def on_event(self, pbx: PBX, chan: Channel, what: str, detail: str) -> None:
        self.events.append((what, detail, chan.state))

    def told(self, what: str) -> list[tuple[str, str, int]]:
        return [e for e in self.events if e[0] == what]


def engine() -> tuple[PBX, list[tuple[str, list[tuple[str, str]]]]]:
    pbx = PBX(parse(PLAN), applications=APPLICATIONS, clock=FakeClock(start=1_800_000_000.0))
    seen: list[tuple[str, list[tuple[str, str]]]] = []
    pbx.listeners.append(lambda name, _priv, headers: seen.append((name, headers)))
    return pbx, seen


async def until(predicate: Any, pbx: PBX, *, step: float = 0.05, limit: float = 60.0) -> None:
    """Advance the fake clock in small steps (letting the engine run) until ``predicate()``."""
    clock = pbx.clock
    assert isinstance(clock, FakeClock)
    spent = 0.0
    while not predicate():
        assert spent < limit, "condition never met"
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(step)
        spent += step


async def test_a_phone_call_rings_and_hears_nothing_until_answered() -> None:
    pbx, seen = engine()
    ear = Ear()
    chan = pbx.phone_call("agent1001", "100", context="phones", caller_num="2001", owner=ear)
    assert chan.state == RING and chan.name == "PJSIP/agent1001-00000000" and chan.caller_num == "2001"
    await until(lambda: chan.app == "MusicOnHold", pbx)
    assert ear.told("prompt") == []  # Playback(beep,noanswer): played, not heard
    assert not pbx.send_dtmf(chan, "5")  # the phone's digit goes nowhere: no event, nothing queued
    assert not chan.dtmf and not [n for n, _ in seen if n.startswith("DTMF")]
    await until(lambda: chan.app == "Wait", pbx)
    assert ear.told("moh") == []  # MusicOnHold() does not answer: no music either
    assert ("MusicOnHoldStart", "PJSIP/agent1001-00000000") in [
        (n, dict(h)["Channel"]) for n, h in seen if n == "MusicOnHoldStart"
    ]
    assert chan.state == UP  # Playback() without noanswer answered it first
    assert ear.told("prompt") == [("prompt", "beep", UP)]
    assert pbx.send_dtmf(chan, "5") and list(chan.dtmf) == ["5"]
    await pbx.close()


async def test_playback_skip_and_background_n_leave_the_channel_unanswered() -> None:
    pbx, _ = engine()
    for exten in ("300", "400"):
        ear = Ear()
        chan = pbx.phone_call("agent1001", exten, context="phones", owner=ear)
        await until(lambda chan=chan: chan.app == "Wait", pbx)
        assert chan.state == RING and ear.told("prompt") == []
    await pbx.close()


async def test_the_dialplan_ending_keeps_the_cause_the_channel_has() -> None:
    pbx, seen = engine()
    ear = Ear()
    chan = pbx.phone_call("agent1001", "200", context="phones", owner=ear)
    await until(lambda: chan.gone, pbx)
    mine = [(n, dict(h)) for n, h in seen if dict(h).get("Channel") == chan.name]
    assert [(n, h.get("Cause")) for n, h in mine if n in ("SoftHangupRequest", "Hangup")] == [
        ("SoftHangupRequest", "16"),
        ("Hangup", "0"),
    ]
    assert ear.told("hangup") == [("hangup", "0", RING)]  # never answered: the phone saw a 603
    await pbx.close()


async def test_playdtmf_on_an_unanswered_phone_is_queued_and_goes_nowhere(tmp_path: Path) -> None:
    sim = SimulatedPBX(
        dialplan_text=PLAN, clock=ScaledClock(10), ami_user="u", ami_secret="s", recordings_dir=tmp_path
    )
    async with sim:
        people = sim.start_people(Scenario("desk"))
        call = people.dial("agent1001", "100", context="phones", keys={})
        assert call.chan is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
        try:
            async with asyncio.timeout(10):
                await reader.readline()
                writer.write(b"Action: Login\r\nUsername: u\r\nSecret: s\r\nActionID: 1\r\n\r\n")
                action = f"Action: PlayDTMF\r\nChannel: {call.chan.name}\r\nDigit: 7\r\nActionID: 2\r\n\r\n"
                writer.write(action.encode())
                text = ""
                while "ActionID: 2" not in text:
                    text += (await reader.readuntil(b"\r\n\r\n")).decode()
        finally:
            writer.close()
        reply = text[text.rindex("Response:") :]
        assert reply.startswith("Response: Success\r\nActionID: 2\r\nMessage: DTMF successfully queued")
        assert "Event: DTMF" not in text and not call.chan.dtmf
        call.hang_up()
        async with asyncio.timeout(10):
            await call.ended.wait()
    assert not call.answered and call.heard == []


def test_only_adjacent_halves_of_one_local_channel_are_put_in_order() -> None:
    """The comparison's one reordering: the twin halves of a Local channel hung up back to back."""
    one, two = ("Local/300@phones-00000002;1", "16", "6"), ("Local/300@phones-00000002;2", "16", "6")
    other = ("PJSIP/phone-00000003", "16", "4")
    assert local_halves_in_order((two, one, other)) == (one, two, other)
    assert local_halves_in_order((one, two)) == (one, two)
    assert local_halves_in_order((two, other, one)) == (two, other, one)  # not adjacent: kept
    pjsip = (("PJSIP/b-00000002", "16", "6"), ("PJSIP/a-00000001", "16", "6"))
    assert local_halves_in_order(pjsip) == pjsip  # two real channels: their order is a fact
    other_local = ("Local/400@phones-00000004;1", "16", "6")
    assert local_halves_in_order((two, other_local)) == (two, other_local)
