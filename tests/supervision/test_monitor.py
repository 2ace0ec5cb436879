"""Supervisors' monitoring: the ``spy`` FastAGI route over real loopback sockets (scripted
Asterisk side), the PIN over the IVR engine, scope, lockout, modes, and the AMI follow-up of
sessions (fake AMI link at the seam)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi import AGIReply, encode_reply
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami import Message
from callcenter.asterisk.events import BridgeEnter, BridgeLeave
from callcenter.clock import FakeClock
from callcenter.config import model as m
from callcenter.errors import AMIActionError, DomainError
from callcenter.reporting.records import CallEvent, MonitorSession
from callcenter.supervision.rules import agent_from_extension, endpoint_of, spy_target
from callcenter.supervision.service import MonitorService, MonitorSettings
from tests.centers import OPEN_NOW, ivr_config
from tests.fakes import Caller, FakeAgentCalls, FakeAMI, RecordSink, place_call

SOUNDS = m.AsteriskSettings().sounds_dir


def snd(p: str) -> str:
    return f"{SOUNDS}/en/{p}"


def center_config() -> m.Config:
    base = ivr_config()
    agents = {
        "1001": m.Agent("1001", "Alice", "agent1001", "2001", m.frozen_map({"sales": 9}), m.Secret("1")),
        "1003": m.Agent("1003", "Carla", "agent1003", "2003", m.frozen_map({"support": 8}), m.Secret("3")),
    }
    supervisors = {
        "9001": m.Supervisor("9001", "Grace", "super9001", m.Secret("246810"), ("sales",)),
        "9002": m.Supervisor("9002", "Hugo", "super9002", m.Secret("1357"), ("sales", "support")),
    }
    return dataclasses.replace(base, agents=m.frozen_map(agents), supervisors=m.frozen_map(supervisors))


def spy_env(endpoint: str, mode: str, dialled: str, n: int = 1) -> dict[str, str]:
    return {
        "agi_network": "yes",
        "agi_network_script": "spy",
        "agi_request": f"agi://127.0.0.1:4573/spy,{mode}",
        "agi_channel": f"PJSIP/{endpoint}-{n:08x}",
        "agi_uniqueid": f"1795420700.{n}",
        "agi_callerid": "2901",
        "agi_context": "cc-features",
        "agi_extension": dialled,
        "agi_priority": "1",
        "agi_arg_1": mode,
    }


@dataclass
class Phone(Caller):
    """The scripted supervisor's phone, with a channel state: ``answered`` says whether the
    dialplan answered before the AGI; ``CHANNEL STATUS`` reports it and ``ANSWER`` changes it."""

    answered: bool = True

    def respond(self, words: list[str]) -> bytes:
        index = len(self.commands)
        if self.gone or self.hang_up_at == index or words[0] not in ("CHANNEL", "ANSWER"):
            return super().respond(words)
        self.commands.append(words)
        if words[0] == "ANSWER":
            self.answered = True
            return encode_reply(AGIReply.ok(0))
        return encode_reply(AGIReply.ok(names.AST_STATE_UP if self.answered else 4))

    def answered_at(self) -> int | None:
        """The index of the ANSWER command sent (None: none was)."""
        return next((i for i, w in enumerate(self.commands) if w[0] == "ANSWER"), None)

    def first_prompt_at(self) -> int | None:
        plays = (["STREAM", "FILE"], ["GET", "DATA"])
        return next((i for i, w in enumerate(self.commands) if w[:2] in plays), None)


@dataclass
class Rig:
    service: MonitorService
    server: FastAGIServer
    sink: RecordSink
    acd: FakeAgentCalls
    ami: FakeAMI
    clock: FakeClock

    async def dial(
        self, endpoint: str, mode: str, dialled: str, keys: list[str], n: int = 1, *, answered: bool = True
    ) -> Phone:
        return await place_call(
            self.server.port, Phone(keys, answered=answered), environment=spy_env(endpoint, mode, dialled, n)
        )

    def sessions(self) -> list[MonitorSession]:
        return [r for r in self.sink.records if isinstance(r, MonitorSession)]

    def outcomes(self) -> list[str | None]:
        return [r.outcome for r in self.sessions() if r.outcome is not None]

    def call_events(self) -> list[CallEvent]:
        return [r for r in self.sink.records if isinstance(r, CallEvent)]


@contextlib.asynccontextmanager
async def rig(settings: MonitorSettings | None = None, config: m.Config | None = None) -> AsyncIterator[Rig]:
    sink, acd, ami, clock = (
        RecordSink(),
        FakeAgentCalls({"1001": "call-A", "1003": "call-C"}),
        FakeAMI(),
        FakeClock(OPEN_NOW),
    )
    ids = iter(f"spy-{i}" for i in range(1, 1000))
    service = MonitorService(
        config or center_config(),
        writer=sink,
        clock=clock,
        acd=acd,
        ami=ami,
        settings=settings,
        new_session_id=lambda: next(ids),
    )
    detach = service.attach()
    server = FastAGIServer({names.AGI_SPY: service.handle}, host="127.0.0.1", port=0)
    async with server:
        yield Rig(service, server, sink, acd, ami, clock)
    detach()
    assert server.failed == 0


# ----------------------------------------------------------------------------- pure helpers
def test_helpers() -> None:
    assert endpoint_of("PJSIP/super9001-0000000a") == "super9001"
    assert endpoint_of("Local/3001@supervisors-00000001;1") is None
    assert endpoint_of("PJSIP/super9001") is None
    assert agent_from_extension("*811001", "*81") == "1001"
    assert agent_from_extension("*81", "*81") == ""
    assert agent_from_extension("*82100", "*81") is None
    assert agent_from_extension("*81abc", "*81") is None
    agent = center_config().agents["1001"]
    assert spy_target(agent) == "PJSIP/agent1001-"


# ----------------------------------------------------------------------------- the route
@pytest.mark.parametrize(
    ("mode", "code", "options"),
    [("listen", "*81", "qEd"), ("whisper", "*82", "qEwd"), ("barge", "*83", "qEBd")],
)
async def test_each_mode_sets_the_chanspy_target_and_options(mode: str, code: str, options: str) -> None:
    async with rig() as r:
        caller = await r.dial("super9001", mode, f"{code}1001", ["246810"])
    assert caller.variables[names.VAR_SPY_OPTIONS] == options
    assert caller.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"
    assert list(caller.variables)[-1] == names.VAR_SPY_TARGET  # set last: the dialplan spies on it
    assert caller.played() == [snd("enter-pin")]
    assert r.outcomes() == ["ok"]
    rec = r.sessions()[0]
    assert (rec.supervisor_id, rec.agent_id, rec.call_id, rec.mode) == ("9001", "1001", "call-A", mode)
    assert "PJSIP/super9001-00000001" in r.service.sessions


async def test_not_a_supervisor_is_refused_with_a_prompt_and_logged() -> None:
    async with rig() as r:
        caller = await r.dial("agent1003", "listen", "*811001", [])
    assert caller.played() == [snd("spy-not-allowed")]
    assert names.VAR_SPY_TARGET not in caller.variables
    assert r.outcomes() == ["unauthorised"]


async def test_agent_outside_the_supervisors_queues_is_refused() -> None:
    async with rig() as r:
        caller = await r.dial("super9001", "listen", "*811003", ["246810"])  # 1003 serves support only
    assert caller.played()[-1] == snd("spy-not-allowed")
    assert names.VAR_SPY_TARGET not in caller.variables
    assert r.outcomes() == ["out_of_scope"]
    async with rig() as r:
        caller = await r.dial("super9002", "listen", "*811003", ["1357"])  # Hugo may
    assert caller.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1003-"


async def test_unknown_agent_is_refused() -> None:
    async with rig() as r:
        caller = await r.dial("super9001", "listen", "*817777", ["246810"])
        unauthenticated = await r.dial("super9001", "listen", "*817777", ["1", "2", "3"], n=2)
    assert caller.played() == [snd("enter-pin"), snd("spy-not-allowed")]
    assert snd("spy-not-allowed") not in unauthenticated.played()  # nothing revealed without the PIN
    assert r.outcomes() == ["unknown_agent", "bad_pin"]


async def test_wrong_pins_then_lockout_then_unlocked_after_the_lockout_time() -> None:
    async with rig(MonitorSettings(lockout_seconds=600)) as r:
        first = await r.dial("super9001", "listen", "*811001", ["1", "2", "3"])
        assert first.played() == [snd("enter-pin"), snd("pin-invalid")] * 3
        assert r.outcomes() == ["bad_pin"]
        second = await r.dial("super9001", "listen", "*811001", ["4", "5"], n=2)  # failures 4 and 5
        assert second.played()[-1] == snd("locked-out")
        assert r.outcomes() == ["bad_pin", "locked_out"]
        # locked: even the right PIN is not asked for
        third = await r.dial("super9001", "listen", "*811001", ["246810"], n=3)
        assert third.played() == [snd("locked-out")] and names.VAR_SPY_TARGET not in third.variables
        # another supervisor is not affected
        other = await r.dial("super9002", "listen", "*811001", ["1357"], n=4)
        assert names.VAR_SPY_TARGET in other.variables
        r.clock.advance(600)
        fourth = await r.dial("super9001", "listen", "*811001", ["246810"], n=5)
        assert fourth.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"
    assert r.outcomes() == ["bad_pin", "locked_out", "locked_out", "ok", "ok"]


async def test_the_security_section_sets_the_lockout_and_a_reload_changes_it() -> None:
    config = dataclasses.replace(center_config(), security=m.Security(pin_attempts=2, lockout_seconds=30.0))
    async with rig(config=config) as r:
        caller = await r.dial("super9001", "listen", "*811001", ["1", "2"])
        assert caller.played()[-1] == snd("locked-out")
        assert r.outcomes() == ["locked_out"]
        r.clock.advance(31)
        ok = await r.dial("super9001", "listen", "*811001", ["246810"], n=2)
        assert ok.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"
        looser = m.Security(pin_attempts=4, lockout_seconds=30.0)
        r.service.reload(dataclasses.replace(config, security=looser))
        three = await r.dial("super9001", "listen", "*811001", ["1", "2", "3"], n=3)
        assert three.played() == [snd("enter-pin"), snd("pin-invalid")] * 3  # not locked at 3 now
    assert r.outcomes() == ["locked_out", "ok", "bad_pin"]


async def test_a_right_pin_resets_the_failure_count() -> None:
    async with rig() as r:
        await r.dial("super9001", "listen", "*811001", ["0", "0", "246810"])
        assert r.service.guard.failures == {}
        assert r.outcomes() == ["ok"]


async def test_no_pin_at_all_is_refused_but_never_counted() -> None:
    """A phone that sends no DTMF (or a supervisor who types nothing) is not guessing PINs: two
    calls of three empty entries each lock nobody out, and the right PIN still works."""
    async with rig(MonitorSettings(max_pin_failures=3)) as r:
        caller = await r.dial("super9001", "listen", "*811001", ["", "", ""])
        assert caller.played() == [snd("enter-pin"), snd("no-input")] * 3
        again = await r.dial("super9001", "listen", "*811001", ["", "", ""], n=2)
        assert r.outcomes() == ["bad_pin", "bad_pin"] and names.VAR_SPY_TARGET not in caller.variables
        assert names.VAR_SPY_TARGET not in again.variables
        assert r.service.guard.failures == {} and r.service.guard.locked_until == {}
        mixed = await r.dial("super9001", "listen", "*811001", ["", "1", "246810"], n=3)
        assert r.service.guard.failures == {}  # the right PIN cleared the one wrong entry
    assert mixed.played() == [
        snd("enter-pin"),
        snd("no-input"),
        snd("enter-pin"),
        snd("pin-invalid"),
        snd("enter-pin"),
    ]
    assert mixed.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"


async def test_api_without_a_pin_is_refused_and_not_counted() -> None:
    async with rig(MonitorSettings(max_pin_failures=2)) as r:
        for _ in range(3):
            with pytest.raises(DomainError) as err:
                await r.service.start("9001", "1001", "listen", pin="", source="api:ops@127.0.0.1")
            assert err.value.code == "bad_pin"
        assert r.service.guard.failures == {}
        session = await r.service.start("9001", "1001", "listen", pin="246810", source="api:ops@127.0.0.1")
    assert session.agent_id == "1001"


async def test_the_route_answers_a_call_the_dialplan_left_unanswered() -> None:
    """A dialplan without Answer() before the AGI: the route answers before the first prompt (a
    phone hears nothing and sends no DTMF before); an answered call is not answered again."""
    async with rig() as r:
        ringing = await r.dial("super9001", "listen", "*811001", ["246810"], answered=False)
        up = await r.dial("super9001", "listen", "*811001", ["246810"], n=2)
    assert ringing.commands[0][:2] == ["CHANNEL", "STATUS"]
    answered_at, first_prompt = ringing.answered_at(), ringing.first_prompt_at()
    assert answered_at is not None and first_prompt is not None and answered_at < first_prompt
    assert ringing.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"
    assert up.answered_at() is None and up.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"
    assert r.outcomes() == ["ok", "ok"]


async def test_ask_mode_menu() -> None:
    async with rig() as r:
        caller = await r.dial("super9001", "ask", "*801001", ["246810", "5"])
        bad = await r.dial("super9001", "ask", "*801001", ["246810", "9", "7"], n=2)
    assert caller.variables[names.VAR_SPY_OPTIONS] == "qEwd"
    assert snd("spy-mode-menu") in caller.played()
    assert names.VAR_SPY_TARGET not in bad.variables
    assert r.outcomes() == ["ok", "no_mode"]


async def test_agent_id_asked_when_only_the_code_was_dialled() -> None:
    async with rig() as r:
        caller = await r.dial("super9001", "listen", "*81", ["1001", "246810"])
    assert caller.played()[:2] == [snd("enter-agent-id"), snd("enter-pin")]
    assert caller.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"


async def test_idle_agent_waits_for_the_next_call_or_ends() -> None:
    async with rig() as r:
        r.acd.calls.clear()
        caller = await r.dial("super9001", "listen", "*811001", ["246810"])
    assert caller.played()[-1] == snd("spy-agent-idle")
    assert caller.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"  # ChanSpy waits on the prefix
    assert r.outcomes() == ["waiting"]
    async with rig(MonitorSettings(wait_for_call=False)) as r:
        r.acd.calls.clear()
        caller = await r.dial("super9001", "listen", "*811001", ["246810"])
    assert names.VAR_SPY_TARGET not in caller.variables and r.outcomes() == ["agent_idle"]


async def test_hanging_up_during_the_pin_is_logged() -> None:
    async with rig() as r:
        await place_call(  # 0 CHANNEL STATUS, 1 GET DATA (the PIN), 2 STREAM FILE pin-invalid
            r.server.port, Phone(["1"], hang_up_at=2), environment=spy_env("super9001", "listen", "*811001")
        )
    assert r.outcomes() == ["ended"]
    assert r.service.sessions == {}


# ----------------------------------------------------------------------------- AMI follow-up
async def test_session_start_mode_switches_and_end_are_logged() -> None:
    async with rig() as r:
        await r.dial("super9001", "listen", "*811001", ["246810"])
        spyer = "PJSIP/super9001-00000001"
        r.ami.emit("ChanSpyStart", SpyerChannel=spyer, SpyeeChannel="PJSIP/agent1001-0000000b")
        for digit in ("5", "6", "6", "4", "9"):
            r.ami.emit("DTMFEnd", Channel=spyer, Digit=digit, Direction="Received")
        r.ami.emit("DTMFEnd", Channel=spyer, Digit="5", Direction="Sent")  # not the supervisor's key
        r.ami.emit("ChanSpyStop", SpyerChannel=spyer, SpyeeChannel="PJSIP/agent1001-0000000b")
        r.ami.emit("Hangup", Channel=spyer)
    kinds = [(e.kind, e.detail["mode"] if e.detail else None) for e in r.call_events()]
    assert kinds == [
        ("monitor_start", "listen"),
        ("monitor_mode", "whisper"),
        ("monitor_mode", "barge"),
        ("monitor_mode", "listen"),
        ("monitor_end", "listen"),
    ]
    assert all(e.call_id == "call-A" and e.agent_id == "1001" for e in r.call_events())
    end = r.call_events()[-1].detail
    assert end is not None and end["modes"] == "listen,whisper,barge,listen"
    assert r.outcomes()[-1] == "ended" and r.service.sessions == {}


async def test_two_supervisors_on_one_agent_are_two_sessions() -> None:
    async with rig() as r:
        await r.dial("super9001", "listen", "*811001", ["246810"], n=1)
        await r.dial("super9002", "barge", "*831001", ["1357"], n=2)
        a, b = "PJSIP/super9001-00000001", "PJSIP/super9002-00000002"
        for spyer in (a, b):
            r.ami.emit("ChanSpyStart", SpyerChannel=spyer, SpyeeChannel="PJSIP/agent1001-0000000b")
        r.ami.emit("DTMFEnd", Channel=a, Digit="5", Direction="Received")
        # the agent's call ends: ChanSpy (option E) stops both
        for spyer in (a, b):
            r.ami.emit("ChanSpyStop", SpyerChannel=spyer, SpyeeChannel="PJSIP/agent1001-0000000b")
    events = r.call_events()
    by_session: dict[str, list[str]] = {}
    for e in events:
        assert e.detail is not None
        by_session.setdefault(str(e.detail["session_id"]), []).append(str(e.kind))
    assert by_session == {
        "spy-1": ["monitor_start", "monitor_mode", "monitor_end"],
        "spy-2": ["monitor_start", "monitor_end"],
    }
    assert r.service.sessions == {}


async def test_waiting_session_takes_the_call_id_when_the_spy_starts() -> None:
    async with rig() as r:
        r.acd.calls.clear()
        await r.dial("super9001", "listen", "*811001", ["246810"])
        r.acd.calls["1001"] = "call-NEW"
        r.ami.emit(
            "ChanSpyStart", SpyerChannel="PJSIP/super9001-00000001", SpyeeChannel="PJSIP/agent1001-0000000c"
        )
    assert r.call_events()[0].call_id == "call-NEW"
    assert r.sessions()[-1].call_id == "call-NEW" and r.sessions()[-1].outcome == "ok"


async def test_pci_pause_takes_the_supervisor_off_and_back_in_the_current_mode() -> None:
    async with rig() as r:
        await r.dial("super9001", "listen", "*811001", ["246810"])
        spyer = "PJSIP/super9001-00000001"
        r.ami.emit("ChanSpyStart", SpyerChannel=spyer, SpyeeChannel="PJSIP/agent1001-0000000b")
        r.ami.emit("DTMFEnd", Channel=spyer, Digit="5", Direction="Received")
        await r.service.pci_changed("call-A", paused=True)
        r.ami.emit("ChanSpyStop", SpyerChannel=spyer)  # the redirect ends ChanSpy: not the session
        assert spyer in r.service.sessions
        await r.service.pci_changed("call-A", paused=True)  # twice: nothing more
        await r.service.pci_changed("call-OTHER", paused=False)  # another call: nothing
        await r.service.pci_changed("call-A", paused=False)
        r.ami.emit("ChanSpyStart", SpyerChannel=spyer, SpyeeChannel="PJSIP/agent1001-0000000b")
    assert r.ami.history() == [
        ("Redirect", {"Channel": spyer, "Context": "cc-hold", "Exten": "s", "Priority": "1"}),
        ("Setvar", {"Channel": spyer, "Variable": "CC_SPY_OPTIONS", "Value": "qEwd"}),
        ("Redirect", {"Channel": spyer, "Context": "cc-spy", "Exten": "s", "Priority": "1"}),
    ]
    kinds = [e.kind for e in r.call_events()]
    assert kinds == ["monitor_start", "monitor_mode", "pci_pause", "pci_resume"]


# ----------------------------------------------------------------------------- the API
async def test_api_start_rings_the_supervisor_into_chanspy_and_follows_it() -> None:
    async with rig() as r:
        s = await r.service.start("9001", "1001", "listen", pin="246810", source="api:ops@127.0.0.1")
        action, headers = r.ami.history()[0]
        assert action == "Originate" and headers["Channel"] == "PJSIP/super9001"
        assert (headers["Context"], headers["Exten"], headers["Priority"]) == ("cc-spy", "s", "1")
        assert headers["ChannelId"] == "spy-1-sup"
        # repeated Variable headers reach the action as given
        originate = [h for h in r.ami.sent if h[0] == "Originate"][0][1]
        assert ("Variable", "CC_SPY_TARGET=PJSIP/agent1001-") in originate
        assert ("Variable", "CC_SPY_OPTIONS=qEd") in originate
        r.ami.emit("OriginateResponse", Response="Success", Uniqueid="spy-1-sup")
        r.ami.emit(
            "ChanSpyStart",
            SpyerChannel="PJSIP/super9001-00000009",
            SpyerUniqueid="spy-1-sup",
            SpyeeChannel="PJSIP/agent1001-0000000b",
        )
        assert s.channel == "PJSIP/super9001-00000009" and s.spying
        assert r.service.snapshot()[0]["session_id"] == "spy-1"
        await r.service.set_mode("spy-1", "barge")
        assert r.ami.history()[-2:] == [
            ("Setvar", {"Channel": s.channel, "Variable": "CC_SPY_OPTIONS", "Value": "qEBd"}),
            ("Redirect", {"Channel": s.channel, "Context": "cc-spy", "Exten": "s", "Priority": "1"}),
        ]
        r.ami.emit("ChanSpyStop", SpyerChannel=s.channel)  # the restart: not the end
        r.ami.emit("ChanSpyStart", SpyerChannel=s.channel, SpyeeChannel="PJSIP/agent1001-0000000b")
        assert r.service.snapshot()[0]["mode"] == "barge"
        await r.service.stop("spy-1")
        assert r.ami.history()[-1] == ("Hangup", {"Channel": s.channel})
        assert r.service.sessions == {}
    kinds = [(e.kind, e.detail["mode"] if e.detail else None) for e in r.call_events()]
    assert kinds == [("monitor_start", "listen"), ("monitor_mode", "barge"), ("monitor_end", "barge")]
    assert r.outcomes() == ["ringing", "ok", "ended"]


async def test_api_changes_are_logged_only_once_asterisk_made_them() -> None:
    """A mode change or a stop on a session whose phone still rings, or one Asterisk refuses, is
    not logged as done; a ringing session the supervisor cancels ends with its end time."""
    async with rig() as r:
        await r.service.start("9001", "1001", "listen", pin="246810", source="api:ops@127.0.0.1")
        with pytest.raises(DomainError) as err:
            await r.service.set_mode("spy-1", "barge")  # nothing to switch yet: it rings
        assert err.value.code == "not_started"
        with pytest.raises(DomainError) as err:
            await r.service.stop("spy-1")  # Asterisk has not named the leg yet
        assert err.value.code == "not_started"
        r.ami.emit("Newchannel", Channel="PJSIP/super9001-00000011", Uniqueid="spy-1-sup", ChannelState="5")
        r.ami.refuse.add("Hangup")
        with pytest.raises(AMIActionError):
            await r.service.stop("spy-1")
        assert [x.session_id for x in r.service.sessions.values()] == ["spy-1"]
        r.ami.refuse.clear()
        await r.service.stop("spy-1")
        assert r.ami.history()[-1] == ("Hangup", {"Channel": "PJSIP/super9001-00000011"})
    assert r.outcomes() == ["ringing", "cancelled"]
    assert [x.mode for x in r.sessions()] == ["listen", "listen"]
    assert r.sessions()[-1].ended_at is not None
    assert r.call_events() == []  # no monitor_start, mode or end for a session that never ran


async def test_a_refused_mode_switch_is_not_logged_and_open_sessions_end_at_close() -> None:
    async with rig() as r:
        await r.service.start("9001", "1001", "listen", pin="246810", source="api:ops@127.0.0.1")
        r.ami.emit("OriginateResponse", Response="Success", Uniqueid="spy-1-sup")
        r.ami.emit("ChanSpyStart", SpyerChannel="PJSIP/super9001-9", SpyerUniqueid="spy-1-sup")
        r.ami.refuse.add("Redirect")
        with pytest.raises(AMIActionError):
            await r.service.set_mode("spy-1", "barge")
        assert r.service.snapshot()[0]["mode"] == "listen"
        assert [str(e.kind) for e in r.call_events()] == ["monitor_start"]
        r.service.close()  # the controller stops: the session still open is ended, with its end time
    assert r.outcomes() == ["ringing", "ok", "controller_stopped"]
    assert r.sessions()[-1].ended_at is not None


async def test_api_supervisor_not_answering_ends_the_session() -> None:
    async with rig() as r:
        await r.service.start("9001", "1001", "whisper", pin="246810", source="api:ops@127.0.0.1")
        r.ami.emit("OriginateResponse", Response="Failure", Uniqueid="spy-1-sup", Reason="3")
    assert r.outcomes() == ["ringing", "no_answer"] and r.service.sessions == {}


@pytest.mark.parametrize(
    ("sup", "agent", "mode", "pin", "code"),
    [
        ("9999", "1001", "listen", "x", "unauthorised"),
        ("9001", "1001", "listen", "000", "bad_pin"),
        ("9001", "7777", "listen", "246810", "unknown_agent"),
        ("9001", "1001", "shout", "246810", "bad_mode"),
        ("9001", "1003", "listen", "246810", "out_of_scope"),
    ],
)
async def test_api_refusals_have_stable_codes_and_are_logged(
    sup: str, agent: str, mode: str, pin: str, code: str
) -> None:
    from callcenter.errors import DomainError

    async with rig() as r:
        with pytest.raises(DomainError) as err:
            await r.service.start(sup, agent, mode, pin=pin, source="api:ops@127.0.0.1")
    assert err.value.code == code and r.outcomes() == [code] and r.ami.history() == []


async def test_wrong_pins_lock_out_their_source_not_the_supervisor() -> None:
    """Wrong PINs from one API client lock that client out of the supervisor; the supervisor's own
    phone and another client with the right PIN still get in. Wrong PINs from the phone lock the
    phone (its endpoint and caller ID), and the API still works."""
    from callcenter.errors import DomainError

    async with rig() as r:
        await r.dial("super9001", "listen", "*811001", ["1", "2", "3"])  # 3 wrong by phone
        codes = []
        for _ in range(6):
            with pytest.raises(DomainError) as err:
                await r.service.start("9001", "1001", "listen", pin="0", source="api:ops@10.0.0.66")
            codes.append(err.value.code)
        assert codes == ["bad_pin"] * 4 + ["locked_out"] * 2
        with pytest.raises(DomainError) as err:  # locked: even the right PIN, from that client
            await r.service.start("9001", "1001", "listen", pin="246810", source="api:ops@10.0.0.66")
        assert err.value.code == "locked_out"
        session = await r.service.start("9001", "1001", "listen", pin="246810", source="api:ops@10.0.0.7")
        assert session.supervisor_id == "9001"
        phone = await r.dial("super9001", "listen", "*811001", ["246810"], n=2)
        assert phone.variables[names.VAR_SPY_TARGET] == "PJSIP/agent1001-"
        # five wrong from the phone (after its count was cleared): the phone is locked ...
        await r.dial("super9001", "listen", "*811001", ["1", "2", "3"], n=3)
        locked = await r.dial("super9001", "listen", "*811001", ["4", "5"], n=4)
        assert locked.played()[-1] == snd("locked-out")
        assert r.service.guard.locked_from("9001", r.clock.now(), ("caller:2901",)) is not None
        # ... and the supervisor is not: the API still lets the right PIN in
        again = await r.service.start("9001", "1001", "listen", pin="246810", source="api:ops@10.0.0.7")
    assert again.supervisor_id == "9001"


async def test_api_routes() -> None:
    import json

    from callcenter.supervision.http import register_routes
    from callcenter.web.access import Principal
    from callcenter.web.http import HTTPServer, Router
    from tests.fakes import TokenTable, bearer, http_exchange, http_request, http_split

    supervisor = Principal("lee", "supervisor", frozenset({"billing", "support"}), "9002")
    async with rig() as r:
        router = Router()
        register_routes(router, r.service)
        server = HTTPServer(router, authenticator=TokenTable({"t9002": supervisor}))
        await server.start()

        async def call(method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
            request = http_request(path, body, method, bearer("t9002"))
            status, payload = http_split(await http_exchange(server.port, request))
            return status, json.loads(payload)

        try:
            # Acting as another supervisor, or on an agent outside the user's queues: refused.
            other = json.dumps({"supervisor_id": "9001", "agent_id": "1003", "mode": "listen", "pin": "1"})
            status, err = await call("POST", "/api/monitor/sessions", other.encode())
            assert (status, err["error"]["code"]) == (403, "forbidden") and "not_yourself" in err["error"][
                "message"
            ]
            away = json.dumps({"supervisor_id": "9002", "agent_id": "1001", "mode": "listen", "pin": "1"})
            status, err = await call("POST", "/api/monitor/sessions", away.encode())
            assert (status, err["error"]["code"]) == (403, "forbidden") and "out_of_scope" in err["error"][
                "message"
            ]
            body = json.dumps({"supervisor_id": "9002", "agent_id": "1003", "mode": "whisper", "pin": "1357"})
            status, view = await call("POST", "/api/monitor/sessions", body.encode())
            assert status == 201 and view["mode"] == "whisper"
            status, listing = await call("GET", "/api/monitor/sessions")
            assert [x["agent_id"] for x in listing["sessions"]] == ["1003"]
            status, err = await call("POST", "/api/monitor/sessions/spy-1/mode", b'{"mode": null}')
            assert (status, err["error"]["code"], err["error"]["field"]) == (422, "wrong_type", "mode")
            status, err = await call("POST", "/api/monitor/sessions/spy-1/mode", b'{"mode": "barge"}')
            assert (status, err["error"]["code"]) == (409, "not_started")  # the phone still rings
            r.ami.emit("ChanSpyStart", SpyerChannel="PJSIP/super9002-1", SpyerUniqueid="spy-1-sup")
            status, view = await call("POST", "/api/monitor/sessions/spy-1/mode", b'{"mode": "barge"}')
            assert view.get("mode") == "barge", view
            status, _ = await call("POST", "/api/monitor/sessions/spy-1/stop")
            assert status == 200 and r.service.sessions == {}
            # Wrong PINs over the API count against the client (its user and address) by itself.
            wrong = json.dumps({"supervisor_id": "9002", "agent_id": "1003", "mode": "listen", "pin": "1"})
            codes = [
                (await call("POST", "/api/monitor/sessions", wrong.encode()))[1]["error"]["code"]
                for _ in range(6)
            ]
            assert codes == ["bad_pin"] * 4 + ["locked_out"] * 2
            now = r.clock.now()
            assert r.service.guard.locked_from("9002", now, ("api:lee@127.0.0.1",)) is not None
            assert r.service.guard.locked_from("9002", now, ("api:lee@10.0.0.7",)) is None
            assert r.service.guard.locked_from("9002", now, ("endpoint:super9002",)) is None
        finally:
            await server.close()


async def test_a_muted_recording_takes_the_supervisors_of_that_bridge_off_the_call() -> None:
    async with rig() as r:
        await r.dial("super9001", "listen", "*811001", ["246810"], n=1)
        await r.dial("super9002", "listen", "*811003", ["1357"], n=2)
        a, b = "PJSIP/super9001-00000001", "PJSIP/super9002-00000002"
        caller, leg = "PJSIP/carrier-00000003", "PJSIP/agent1001-00000004"
        for chan in (caller, leg):
            r.ami.emit("BridgeEnter", Channel=chan, BridgeUniqueid="br-1")
        r.ami.emit("BridgeEnter", Channel="PJSIP/agent1003-00000005", BridgeUniqueid="br-2")
        r.ami.emit("ChanSpyStart", SpyerChannel=a, SpyeeChannel=leg)
        r.ami.emit("ChanSpyStart", SpyerChannel=b, SpyeeChannel="PJSIP/agent1003-00000005")
        r.ami.emit("MixMonitorMute", Channel=caller, Direction="both", State="1")
        await r.service.drain()
        assert r.ami.history() == [
            ("Redirect", {"Channel": a, "Context": "cc-hold", "Exten": "s", "Priority": "1"})
        ]
        r.ami.emit("ChanSpyStop", SpyerChannel=a)
        r.ami.emit("MixMonitorMute", Channel=caller, Direction="both", State="0")
        await r.service.drain()
        assert [x[0] for x in r.ami.history()] == ["Redirect", "Setvar", "Redirect"]
        assert r.ami.history()[-1][1]["Context"] == "cc-spy"
        r.ami.emit("BridgeLeave", Channel=caller, BridgeUniqueid="br-1")
        r.ami.emit("MixMonitorMute", Channel=caller, Direction="both", State="1")  # no longer bridged
        await r.service.drain()
        assert len(r.ami.history()) == 3
    kinds = [(e.kind, e.call_id) for e in r.call_events() if e.kind in ("pci_pause", "pci_resume")]
    assert kinds == [("pci_pause", "call-A"), ("pci_resume", "call-A")]


async def test_pci_told_twice_acts_once_and_a_call_ending_in_the_pause_frees_the_supervisor() -> None:
    async with rig() as r:
        await r.dial("super9001", "listen", "*811001", ["246810"])
        a, caller, leg = "PJSIP/super9001-00000001", "PJSIP/carrier-00000003", "PJSIP/agent1001-00000004"
        for chan in (caller, leg):
            r.ami.emit("BridgeEnter", Channel=chan, BridgeUniqueid="br-1")
        r.ami.emit("ChanSpyStart", SpyerChannel=a, SpyeeChannel=leg)
        # the ACD tells the monitor directly AND the recording's mute event arrives
        await r.service.pci_changed("call-A", paused=True)
        r.ami.emit("MixMonitorMute", Channel=caller, State="1")
        await r.service.drain()
        r.ami.emit("ChanSpyStop", SpyerChannel=a)
        r.ami.emit("MixMonitorMute", Channel=caller, State="0")
        await r.service.drain()
        await r.service.pci_changed("call-A", paused=False)
        assert [x[0] for x in r.ami.history()] == ["Redirect", "Setvar", "Redirect"]
        r.ami.emit("ChanSpyStart", SpyerChannel=a, SpyeeChannel=leg)
        # paused again, and the call ends while the supervisor hears music
        await r.service.pci_changed("call-A", paused=True)
        r.ami.emit("ChanSpyStop", SpyerChannel=a)
        assert a in r.service.sessions
        r.ami.emit("Hangup", Channel=leg)
        await r.service.drain()
        assert r.ami.history()[-1] == ("Hangup", {"Channel": a})
        assert r.service.sessions == {}
    assert r.outcomes()[-1] == "ended"


def test_linked_channels_through_bridges_and_local_halves() -> None:
    from callcenter.supervision.rules import local_peer

    assert local_peer("Local/s@cc-endpoints-0000000a;1") == "Local/s@cc-endpoints-0000000a;2"
    assert local_peer("Local/s@cc-endpoints-0000000a;2") == "Local/s@cc-endpoints-0000000a;1"
    assert local_peer("PJSIP/agent1001-0000000b") is None
    service = MonitorService(center_config(), writer=RecordSink(), clock=FakeClock(OPEN_NOW))
    # caller <-> Local ;1 in bridge A; Local ;2 <-> the agent's PJSIP phone in bridge B
    for chan, bridge in (
        ("PJSIP/carrier-00000001", "A"),
        ("Local/agent1001@cc-endpoints-00000002;1", "A"),
        ("Local/agent1001@cc-endpoints-00000002;2", "B"),
        ("PJSIP/agent1001-00000003", "B"),
        ("PJSIP/carrier-00000009", "C"),
    ):
        service._on_bridge_enter(
            BridgeEnter.from_message(
                Message((("Event", "BridgeEnter"), ("Channel", chan), ("BridgeUniqueid", bridge)))
            )
        )
    linked = service.linked("PJSIP/carrier-00000001")
    assert "PJSIP/agent1001-00000003" in linked and "PJSIP/carrier-00000009" not in linked
    service._on_bridge_leave(
        BridgeLeave.from_message(
            Message(
                (("Event", "BridgeLeave"), ("Channel", "PJSIP/agent1001-00000003"), ("BridgeUniqueid", "B"))
            )
        )
    )
    assert "PJSIP/agent1001-00000003" not in service.linked("PJSIP/carrier-00000001")
