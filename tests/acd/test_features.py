"""Agents' feature codes from a phone: the route answers before any prompt, a PIN is counted only
when digits were entered, and a dead leg ends the call with a hangup that says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.acd import agents as ag
from callcenter.acd.features import AgentFeatures
from callcenter.asterisk import names
from callcenter.asterisk.agi import AGIReply
from callcenter.config.load import load_config
from callcenter.config.model import Config
from callcenter.errors import AGICommandError, AGIHangupError
from callcenter.reporting.records import CallRecord
from tests.fakes import AcdRig as Rig
from tests.fakes import acd_rig as make_rig

REPO = Path(__file__).resolve().parents[2]
RINGING = 4  # CHANNEL STATUS of a channel nobody answered (AST_STATE_RING)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(REPO / "dialplans")


@pytest.fixture
async def rig(config: Config, tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(config, tmp_path) as r:
        yield r


@dataclass
class Phone:
    """A FastAGI session on a phone's channel, as Asterisk answers it: prompts and DTMF reach the
    phone only once the channel is up (a prompt on a ringing channel is heard by nobody and a
    GET DATA there gets no digits). ``digits`` answer GET DATA in turn; ``refuse`` makes Asterisk
    refuse that command (510)."""

    env: dict[str, str]
    digits: list[str] = field(default_factory=list)
    up: bool = True
    refuse: str | None = None
    commands: list[tuple[str, tuple[str | int, ...]]] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)  # prompts played while the channel was up

    async def command(self, command: str, *args: str | int, timeout: float) -> AGIReply:
        assert timeout > 0
        self.commands.append((command, args))
        if command == self.refuse:
            raise AGICommandError("Invalid or unknown command", command=command, status=510)
        if command == "CHANNEL STATUS":
            return AGIReply.ok(names.AST_STATE_UP if self.up else RINGING)
        if command == "ANSWER":
            self.up = True
            return AGIReply.ok(0)
        if command in ("STREAM FILE", "GET DATA"):
            if self.up:
                self.heard.append(str(args[0]).rsplit("/", 1)[-1])
            if command == "GET DATA":
                typed = self.digits.pop(0) if self.digits else ""
                if typed == "hangup":
                    raise AGIHangupError("hung up")
                return AGIReply.ok(typed if self.up else "", data=None if typed and self.up else "timeout")
        return AGIReply.ok(0)

    def names(self) -> list[str]:
        return [c for c, _ in self.commands]


def phone(endpoint: str, feature: str, dialled: str) -> dict[str, str]:
    return {
        "agi_network_script": names.AGI_FEATURE,
        "agi_channel": f"PJSIP/{endpoint}-0000002a",
        "agi_arg_1": feature,
        "agi_extension": dialled,
    }


def pin_of(rig: Rig, agent_id: str) -> str:
    return rig.acd.config.agents[agent_id].pin.value


# ------------------------------------------------------------------------------ answering
async def test_a_channel_the_dialplan_left_ringing_is_answered_before_the_pin_prompt(rig: Rig) -> None:
    features = AgentFeatures(rig.acd)
    p = Phone(phone("agent1001", "agent_login", "*11"), [pin_of(rig, "1001")], up=False)
    await features.handle(p)
    assert p.names()[:2] == ["CHANNEL STATUS", "ANSWER"]
    assert p.heard == ["enter-pin", "agent-logged-in"]
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE


async def test_an_answered_channel_is_not_answered_again(rig: Rig) -> None:
    features = AgentFeatures(rig.acd)
    await rig.acd.login("1001")
    p = Phone(phone("agent1001", "agent_pause", "*13"))
    await features.handle(p)
    assert "ANSWER" not in p.names() and p.heard == ["agent-paused"]
    assert rig.acd.agent_state("1001").status is ag.Status.PAUSED


async def test_every_feature_code_answers_before_its_first_prompt(rig: Rig) -> None:
    features = AgentFeatures(rig.acd)
    await rig.acd.login("1002")
    for feature, dialled in (
        ("agent_pause", "*13"),
        ("agent_unpause", "*14"),
        ("pci_pause", "*15"),
        ("record_start", "*17"),
        ("agent_logout", "*12"),
        ("agent_login", "*11"),
    ):
        p = Phone(phone("agent1002", feature, dialled), ["0000"], up=False)
        await features.handle(p)
        plays = [i for i, c in enumerate(p.names()) if c in ("STREAM FILE", "GET DATA")]
        assert plays and p.names().index("ANSWER") < plays[0], feature


# ------------------------------------------------------------------------------ PINs
async def test_no_digits_is_no_wrong_pin(rig: Rig) -> None:
    """Three calls of three empty entries (a phone that cannot send DTMF) lock nobody out; the
    agent then logs in with the right PIN."""
    features = AgentFeatures(rig.acd)
    for _ in range(3):
        p = Phone(phone("agent1003", "agent_login", "*11"), ["", "", ""])
        await features.handle(p)
        assert p.heard == ["enter-pin", "no-input"] * 3
    assert rig.acd.agent_state("1003").status is ag.Status.LOGGED_OUT
    p = Phone(phone("agent1003", "agent_login", "*11"), [pin_of(rig, "1003")])
    await features.handle(p)
    assert p.heard == ["enter-pin", "agent-logged-in"]
    assert rig.acd.agent_state("1003").status is ag.Status.AVAILABLE


async def test_wrong_digits_still_lock_the_id_and_empty_entries_do_not_add_to_them(rig: Rig) -> None:
    features = AgentFeatures(rig.acd)
    p = Phone(phone("agent1004", "agent_login", "*11"), ["1", "", "2"])
    await features.handle(p)
    assert p.heard == ["enter-pin", "pin-invalid", "enter-pin", "no-input", "enter-pin", "pin-invalid"]
    p = Phone(phone("agent1004", "agent_login", "*11"), ["3", "4", "5"])
    await features.handle(p)  # wrong PINs 3 to 5: the fifth locks the id (the limit is 5)
    assert p.heard == ["enter-pin", "pin-invalid"] * 3
    p = Phone(phone("agent1004", "agent_login", "*11"), [pin_of(rig, "1004")])
    await features.handle(p)
    assert p.heard == ["enter-pin", "locked-out"]


async def test_wrong_pins_from_another_phone_never_lock_the_agent_out_of_their_own(rig: Rig) -> None:
    """Someone at the lobby phone types agent 1003's id and wrong PINs until locked out: that
    phone and its caller ID are locked out of 1003, and 1003 logs in from their own phone."""
    features = AgentFeatures(rig.acd)
    lobby = {**phone("lobby", "agent_login", "*11"), "agi_callerid": "+15550001111"}
    p = Phone(dict(lobby), ["1003", "1", "2", "3"])
    await features.handle(p)
    p = Phone(dict(lobby), ["1003", "4", "5", "6"])
    await features.handle(p)  # the fifth wrong PIN locks the lobby phone out of 1003
    assert p.heard == ["enter-agent-id", *(["enter-pin", "pin-invalid"] * 2), "enter-pin", "locked-out"]
    p = Phone(dict(lobby), ["1003", pin_of(rig, "1003")])
    await features.handle(p)
    assert p.heard == ["enter-agent-id", "enter-pin", "locked-out"]
    moved = {**phone("meeting-room", "agent_login", "*11"), "agi_callerid": "+15550001111"}
    p = Phone(moved, ["1003", pin_of(rig, "1003")])
    await features.handle(p)
    assert p.heard[-1] == "locked-out"  # the same caller ID from another phone
    own = {**phone("agent1003", "agent_login", "*11"), "agi_callerid": "3003"}
    p = Phone(own, [pin_of(rig, "1003")])
    await features.handle(p)
    assert p.heard == ["enter-pin", "agent-logged-in"]
    assert rig.acd.agent_state("1003").status is ag.Status.AVAILABLE


async def test_a_failed_command_of_ours_never_counts(rig: Rig) -> None:
    features = AgentFeatures(rig.acd, pin_attempts=1)
    for _ in range(8):  # more than the 5 that would lock
        p = Phone(phone("agent1005", "agent_login", "*11"), ["1234"], refuse="GET DATA")
        await features.handle(p)
        assert p.heard == []
    p = Phone(phone("agent1005", "agent_login", "*11"), [pin_of(rig, "1005")])
    await features.handle(p)
    assert p.heard == ["enter-pin", "agent-logged-in"]


async def test_hanging_up_at_the_pin_prompt_counts_nothing(rig: Rig) -> None:
    features = AgentFeatures(rig.acd, pin_attempts=1)
    for _ in range(6):
        await features.handle(Phone(phone("agent1006", "agent_login", "*11"), ["hangup"]))
    p = Phone(phone("agent1006", "agent_login", "*11"), [pin_of(rig, "1006")])
    await features.handle(p)
    assert rig.acd.agent_state("1006").status is ag.Status.AVAILABLE


async def test_from_another_phone_an_empty_agent_id_asks_nothing_more(rig: Rig) -> None:
    features = AgentFeatures(rig.acd)
    p = Phone(phone("lobby", "agent_login", "*11"), [""])
    await features.handle(p)
    assert p.heard == ["enter-agent-id", "no-input"]


# ------------------------------------------------------------------------------ dead legs
def hangups(rig: Rig, call_id: str) -> list[str]:
    return [r.hangup_by for r in rig.sink.of(CallRecord) if r.call_id == call_id and r.hangup_by]


async def test_a_caller_leg_without_media_ends_the_call_as_a_media_timeout(rig: Rig) -> None:
    """Asterisk hangs up a leg that sent no RTP for rtp_timeout seconds with cause 44: the call
    log says the caller's media timed out and the agent is freed (wrap-up)."""
    await rig.acd.login("1001")
    caller = await rig.call("call-rtp", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.hangup(caller, cause="44")
    await rig.hangup(agent_chan, leg)
    assert hangups(rig, "call-rtp") == ["caller_media_timeout"]
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP


async def test_the_agent_leg_hung_up_first_still_records_the_callers_media_timeout(rig: Rig) -> None:
    """The bridge dissolves when the dead caller leg leaves it; the agent leg's Hangup may arrive
    first: the caller's cause 44 that follows still names the end."""
    await rig.acd.login("1001")
    caller = await rig.call("call-rtp2", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.hangup(agent_chan, leg)
    await rig.hangup(caller, cause="44")
    assert hangups(rig, "call-rtp2") == ["agent", "caller_media_timeout"]  # the last one wins
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP


async def test_a_caller_hanging_up_ends_the_call_as_the_callers_when_the_agent_legs_hangup_comes_first(
    rig: Rig,
) -> None:
    """On a real Asterisk 22 the agent leg's Hangup came before the caller's in 2 calls of 12
    after the caller's BYE (tests/test_real_phones.py); the caller's HangupRequest, first of all,
    says who ended the call. The agent's own BYE is a HangupRequest on its leg: the agent's end."""
    await rig.acd.login("1001")
    caller = await rig.call("call-bye", "sales")
    leg, agent_chan = await rig.answer(caller)
    rig.ami.emit("HangupRequest", Channel=caller, Uniqueid="caller")
    await rig.hangup(agent_chan, leg)
    await rig.hangup(caller)
    assert hangups(rig, "call-bye") == ["caller"]
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP
    await rig.advance(20)
    caller = await rig.call("call-agent-bye", "sales")
    leg, agent_chan = await rig.answer(caller)
    rig.ami.emit("HangupRequest", Channel=agent_chan, Uniqueid=leg)
    await rig.hangup(agent_chan, leg)
    await rig.hangup(caller)
    assert hangups(rig, "call-agent-bye") == ["agent"]


async def test_an_agent_phone_without_media_or_session_refresh(rig: Rig) -> None:
    await rig.acd.login("1001")
    caller = await rig.call("call-rtp3", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.hangup(agent_chan, leg, cause="44")
    assert hangups(rig, "call-rtp3") == ["agent_media_timeout"]
    await rig.hangup(caller)
    await rig.advance(rig.acd.config.queues["sales"].wrapup + 1)
    caller = await rig.call("call-timer", "sales")
    leg, agent_chan = await rig.answer(caller)
    await rig.hangup(caller, cause="18")
    assert hangups(rig, "call-timer") == ["caller_session_timeout"]
