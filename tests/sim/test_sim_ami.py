"""The simulator's AMI server and engine beyond the captures: login and event control, the
actions the product uses, agents' phones (answer, RONA, busy, reject, unregistered), Dial,
ChanSpy's DTMF mode switch, MixMonitor WAVs with a muted span, GotoIfTime, faults reported with
context and priority, and ``callcenter sim`` itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.clock import AutojumpClock
from callcenter.sim import SimulatedPBX
from callcenter.sim.apps import time_matches
from callcenter.sim.people import AgentProfile, Dist, Scenario
from callcenter.sim.replay import AMIPeer, Headers

PLAN = """
[hold]
exten => s,1,Answer()
 same => n,MusicOnHold(default)
[leg]
exten => s,1,NoOp(agent leg for ${CALLER})
 same => n,Bridge(${CALLER})
 same => n,Hangup()
[dialer]
exten => s,1,Answer()
 same => n,Dial(PJSIP/${TARGET},5)
 same => n,NoOp(DIALSTATUS=${DIALSTATUS})
 same => n,Hangup()
[spy]
exten => s,1,Answer()
 same => n,ChanSpy(${SPYTARGET},qEd)
 same => n,Hangup()
[sup]
exten => _X.,1,Answer()
 same => n,Wait(3600)
[bad]
exten => s,1,NoOp(${NOSUCH(x)})
[xfer]
exten => s,1,NoOp(transfer to ${XT})
 same => n,Answer()
 same => n,Wait(3600)
[hours]
exten => s,1,GotoIfTime(00:00-23:59,*,*,*?open,1:closed,1)
exten => open,1,Set(WHERE=open)
 same => n,Wait(3600)
exten => closed,1,Set(WHERE=closed)
 same => n,Wait(3600)
"""


def agents(**over: object) -> Scenario:
    base = {"answer_delay": Dist("fixed", 1.0), "talk": Dist("fixed", 3600.0), "agent_hangs_up": 1.0}
    return Scenario(
        "t",
        agents=(
            AgentProfile("agent1", **{**base, "no_answer_probability": 0.0}),  # type: ignore[arg-type]
            AgentProfile("agent2", **{**base, "no_answer_probability": 1.0}),  # type: ignore[arg-type]
            AgentProfile("agent3", **{**base, "reject_probability": 1.0}),  # type: ignore[arg-type]
            AgentProfile("agent4", registered=False),
        ),
    )


@pytest.fixture
async def sim(tmp_path: Path, autojump_clock: AutojumpClock) -> AsyncIterator[SimulatedPBX]:
    s = SimulatedPBX(
        dialplan_text=PLAN,
        clock=autojump_clock,
        ami_user="u",
        ami_secret="p",
        recordings_dir=tmp_path,
        scenario=agents(),
        check_dialplan=False,
    )
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def ami(sim: SimulatedPBX) -> AsyncIterator[AMIPeer]:
    peer = AMIPeer()
    await peer.connect("127.0.0.1", sim.ami_port)
    peer.send([("Action", "Login"), ("Username", "u"), ("Secret", "p"), ("ActionID", "login")])
    assert await peer.wait_for(lambda h: d(h).get("ActionID") == "login", timeout=5)
    yield peer
    await peer.close()


def d(h: Headers) -> dict[str, str]:
    return dict(h)


async def act(peer: AMIPeer, aid: str, *headers: tuple[str, str]) -> dict[str, str]:
    start = len(peer.messages)
    peer.send([*headers, ("ActionID", aid)])
    got = await peer.wait_for(
        lambda h: "Response" in d(h) and d(h).get("ActionID") == aid, timeout=10, start=start
    )
    assert got is not None, f"no response to {aid}"
    return d(got)


async def event(peer: AMIPeer, name: str, timeout: float = 10.0, **match: str) -> dict[str, str]:
    got = await peer.wait_for(
        lambda h: d(h).get("Event") == name and all(d(h).get(k) == v for k, v in match.items()),
        timeout=timeout,
    )
    assert got is not None, f"no {name} {match}"
    return d(got)


async def hold_caller(peer: AMIPeer, cid: str) -> str:
    r = await act(
        peer,
        f"orig-{cid}",
        ("Action", "Originate"),
        ("Channel", "Local/s@hold"),
        ("Application", "Wait"),
        ("Data", "3600"),
        ("Async", "true"),
        ("ChannelId", f"{cid}-1"),
        ("OtherChannelId", f"{cid}-2"),
    )
    assert r["Message"] == "Originate successfully queued"
    moh = await event(peer, "MusicOnHoldStart", Uniqueid=f"{cid}-2")
    return moh["Channel"]


# ------------------------------------------------------------------------------ session control
async def test_login_is_required_and_checked(sim: SimulatedPBX) -> None:
    peer = AMIPeer()
    await peer.connect("127.0.0.1", sim.ami_port)
    try:
        assert await peer.wait_for(lambda h: True, timeout=0.05) is None
        assert peer.greeting == "Asterisk Call Manager/11.0.0"
        assert (await act(peer, "x", ("Action", "Ping")))["Message"] == "Authentication Required"
        bad = await act(peer, "l", ("Action", "Login"), ("Username", "u"), ("Secret", "nope"))
        assert bad == {"Response": "Error", "ActionID": "l", "Message": "Authentication failed"}
        await asyncio.wait_for(peer.closed.wait(), 5)
    finally:
        await peer.close()


async def test_ping_events_off_unknown_action_and_logoff(ami: AMIPeer) -> None:
    pong = await act(ami, "p", ("Action", "Ping"))
    assert pong["Ping"] == "Pong"
    unknown = await act(ami, "z", ("Action", "Frobnicate"))
    assert unknown["Message"].startswith("Invalid/unknown command: Frobnicate.")
    off = await act(ami, "e", ("Action", "Events"), ("EventMask", "off"))
    assert off["Events"] == "Off"
    before = len(ami.messages)
    await act(
        ami,
        "o",
        ("Action", "Originate"),
        ("Channel", "Local/s@hold"),
        ("Application", "Wait"),
        ("Async", "1"),
    )
    await act(ami, "p2", ("Action", "Ping"))
    assert all("Event" not in d(h) for h in ami.messages[before:])
    bye = await act(ami, "bye", ("Action", "Logoff"))
    assert bye["Response"] == "Goodbye" and bye["Message"] == "Thanks for all the fish."


async def test_manager_conf_credentials_and_eventfilter(
    tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    (tmp_path / "extensions.conf").write_text(PLAN)
    (tmp_path / "manager.conf").write_text(
        "[general]\nport = 5038\n[ctl]\nsecret = s3\nread = all\nwrite = call,originate\n"
        "eventfilter = !Event: Newexten\neventfilter=!Event: VarSet\n"
    )
    async with SimulatedPBX(tmp_path, clock=autojump_clock, check_dialplan=False) as sim:
        peer = AMIPeer()
        await peer.connect("127.0.0.1", sim.ami_port)
        try:
            assert (await act(peer, "l", ("Action", "Login"), ("Username", "ctl"), ("Secret", "s3")))[
                "Response"
            ] == "Success"
            await act(
                peer,
                "o",
                ("Action", "Originate"),
                ("Channel", "Local/s@hold"),
                ("Application", "Wait"),
                ("Data", "60"),
                ("Async", "1"),
            )
            await event(peer, "MusicOnHoldStart")
            names = {d(h).get("Event") for h in peer.messages}
            assert "Newchannel" in names and "Newexten" not in names and "VarSet" not in names
        finally:
            await peer.close()


async def test_each_manager_user_is_held_to_its_write_classes(
    tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    """As Asterisk 22 does: a user without ``system`` may not Originate an application that
    reaches a shell (System, Exec, MixMonitor...) or data naming SHELL/EVAL, nor send an action
    none of whose classes it has; a second user has its own classes."""
    (tmp_path / "extensions.conf").write_text(PLAN)
    (tmp_path / "manager.conf").write_text(
        "[general]\nport = 5038\n[ctl]\nsecret = s3\nread = all\nwrite = call,originate,agent\n"
        "[apply]\nsecret = s4\nread =\nwrite = config\n"
    )
    forbidden = "Originate Access Forbidden: app or data blacklisted"
    async with SimulatedPBX(tmp_path, clock=autojump_clock, check_dialplan=False) as sim:
        ctl, apply = AMIPeer(), AMIPeer()
        await ctl.connect("127.0.0.1", sim.ami_port)
        await apply.connect("127.0.0.1", sim.ami_port)
        try:
            assert (await act(ctl, "l", ("Action", "Login"), ("Username", "ctl"), ("Secret", "s3")))[
                "Response"
            ] == "Success"
            for i, (app, data) in enumerate(
                (
                    ("System", "touch /tmp/x"),
                    ("TrySystem", "id"),
                    ("Exec", "System(id)"),
                    ("MixMonitor", "a.wav"),
                )
            ):
                r = await act(
                    ctl,
                    f"o{i}",
                    ("Action", "Originate"),
                    ("Channel", "Local/s@hold"),
                    ("Application", app),
                    ("Data", data),
                    ("Async", "1"),
                )
                assert (r["Response"], r["Message"]) == ("Error", forbidden), app
            r = await act(
                ctl,
                "shell",
                ("Action", "Originate"),
                ("Channel", "Local/s@hold"),
                ("Application", "NoOp"),
                ("Data", "${SHELL(id)}"),
            )
            assert r["Message"] == forbidden
            assert not sim.pbx.channels  # nothing was dialled
            r = await act(ctl, "r", ("Action", "Reload"), ("Module", "pbx_config.so"))
            assert (r["Response"], r["Message"]) == ("Error", "Permission denied")
            r = await act(
                ctl,
                "w",
                ("Action", "Originate"),
                ("Channel", "Local/s@hold"),
                ("Application", "Wait"),
                ("Data", "1"),
                ("Async", "1"),
            )
            assert r["Response"] == "Success"
            assert (await act(apply, "l", ("Action", "Login"), ("Username", "apply"), ("Secret", "s4")))[
                "Response"
            ] == "Success"
            r = await act(apply, "r", ("Action", "Reload"), ("Module", "pbx_config.so"))
            assert r["Response"] == "Success"
            r = await act(apply, "o", ("Action", "Originate"), ("Channel", "Local/s@hold"), ("Exten", "s"))
            assert (r["Response"], r["Message"]) == ("Error", "Permission denied")
            assert (await act(apply, "x", ("Action", "Login"), ("Username", "apply"), ("Secret", "s3")))[
                "Response"
            ] == "Error"
        finally:
            await ctl.close()
            await apply.close()


def test_originate_app_permissions_follow_asterisk() -> None:
    from callcenter.sim.ami_server import originate_app_permitted

    low = frozenset({"call", "originate"})
    assert not originate_app_permitted("System", "id", low)
    assert not originate_app_permitted("tryexec", "", low)
    assert not originate_app_permitted("AGI", "agi://x", low)
    assert not originate_app_permitted("NoOp", "${EVAL(${X})}", low)
    assert not originate_app_permitted("Queue", "q,,,,,agi://evil", low)
    assert originate_app_permitted("Queue", "q,,,,,agi://evil", low | {"agi"})
    assert originate_app_permitted("Queue", "q", low)
    assert originate_app_permitted("Queue", "q,,,,,,gosub", low)
    assert originate_app_permitted("Wait", "5", low)
    assert originate_app_permitted("System", "id", low | {"system"})
    assert originate_app_permitted("System", "id", None)


# ------------------------------------------------------------------------------ actions
async def test_variables_status_listing_and_errors(ami: AMIPeer, sim: SimulatedPBX) -> None:
    chan = await hold_caller(ami, "c1")
    assert (
        await act(ami, "s", ("Action", "Setvar"), ("Channel", chan), ("Variable", "X"), ("Value", "a b"))
    )["Message"] == "Variable Set"
    got = await act(ami, "g", ("Action", "Getvar"), ("Channel", "c1-2"), ("Variable", "X"))
    assert (got["Variable"], got["Value"]) == ("X", "a b")
    assert (await act(ami, "g2", ("Action", "Getvar"), ("Channel", chan), ("Variable", "CALLERID(num)")))[
        "Value"
    ] == ""
    assert (await act(ami, "n", ("Action", "Getvar"), ("Channel", "nope"), ("Variable", "X")))[
        "Message"
    ] == "No such channel"
    listing = await act(ami, "csc", ("Action", "CoreShowChannels"))
    assert (listing["EventList"], listing["Message"]) == ("start", "Channels will follow")
    done = await event(ami, "CoreShowChannelsComplete", ActionID="csc")
    assert done["ListItems"] == "2"
    status = await act(ami, "st", ("Action", "Status"), ("Channel", chan))
    assert status["Message"] == "Channel status will follow"
    row = await event(ami, "Status", ActionID="st")
    assert (row["Application"], row["Type"], row["Priority"]) == ("MusicOnHold", "Local", "2")
    await act(ami, "st2", ("Action", "Status"), ("Channel", chan), ("Variables", "X,NOPE"))
    row2 = await ami.wait_for(
        lambda h: d(h).get("Event") == "Status" and d(h).get("ActionID") == "st2", timeout=5
    )
    assert row2 is not None
    assert [v for k, v in row2 if k == "Variable"] == ["X=a b", "NOPE=(null)"]
    out = await act(ami, "cmd", ("Action", "Command"), ("Command", "core show channels concise"))
    assert out["Message"] == "Command output follows"
    assert (
        await act(ami, "r", ("Action", "Redirect"), ("Channel", chan), ("Context", "nope"), ("Exten", "s"))
    )["Message"] == "Extension does not exist."
    assert (await act(ami, "h", ("Action", "Hangup"), ("Channel", "c1-1")))["Message"] == "Channel Hungup"
    hup = await event(ami, "Hangup", Uniqueid="c1-2")
    assert hup["Cause"] == "0"


async def test_bridge_action_and_mixmonitor_with_a_muted_span(
    ami: AMIPeer, sim: SimulatedPBX, tmp_path: Path
) -> None:
    a = await hold_caller(ami, "a")
    b = await hold_caller(ami, "b")
    assert (await act(ami, "m", ("Action", "MixMonitor"), ("Channel", a), ("File", "r/a.wav")))[
        "Response"
    ] == "Success"
    await event(ami, "MixMonitorStart")
    assert (await act(ami, "br", ("Action", "Bridge"), ("Channel1", a), ("Channel2", b)))["Message"] == (
        "Channels have been bridged"
    )
    assert (await event(ami, "BridgeEnter", Channel=b))["BridgeNumChannels"] == "2"
    await sim.clock.sleep(4.0)
    await act(ami, "mu", ("Action", "MixMonitorMute"), ("Channel", a), ("Direction", "both"), ("State", "1"))
    assert (await event(ami, "MixMonitorMute"))["State"] == "1"
    await sim.clock.sleep(4.0)
    await act(ami, "um", ("Action", "MixMonitorMute"), ("Channel", a), ("Direction", "both"), ("State", "0"))
    await sim.clock.sleep(2.0)
    await act(ami, "h", ("Action", "Hangup"), ("Channel", a))
    await event(ami, "MixMonitorStop")
    await event(ami, "BridgeDestroy")
    with wave.open(str(tmp_path / "r" / "a.wav")) as w:
        frames = w.readframes(w.getnframes())
        seconds = w.getnframes() / 8000
    # Simulated time runs x20 here: a busy machine stretches the spans, so the checks are loose.
    assert 9.5 <= seconds <= 20.0
    samples = [frames[i : i + 2] for i in range(0, len(frames), 2)]
    longest = run = 0
    for sample in samples:
        run = run + 1 if sample == b"\x00\x00" else 0
        longest = max(longest, run)
    assert longest >= 3.5 * 8000  # the muted span is silence
    assert frames[: 8000 * 2] != b"\x00" * 16000  # before it: a tone


async def test_agent_phones_answer_rona_reject_unregistered(ami: AMIPeer) -> None:
    caller = await hold_caller(ami, "q")

    async def ring(endpoint: str, aid: str) -> dict[str, str]:
        await act(
            ami,
            aid,
            ("Action", "Originate"),
            ("Channel", f"PJSIP/{endpoint}"),
            ("Context", "leg"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Variable", f"CALLER={caller}"),
            ("Timeout", "5000"),
            ("Async", "true"),
            ("ChannelId", f"{aid}-leg"),
        )
        return await event(ami, "OriginateResponse", ActionID=aid, timeout=15)

    unreg = await ring("agent4", "r4")
    assert (unreg["Response"], unreg["Reason"], unreg["Uniqueid"]) == ("Failure", "0", "r4-leg")
    rona = await ring("agent2", "r2")
    assert (rona["Response"], rona["Reason"]) == ("Failure", "3")
    assert (await event(ami, "Hangup", Uniqueid="r2-leg"))["Cause"] == "19"
    reject = await ring("agent3", "r3")
    assert reject["Response"] == "Failure"
    assert (await event(ami, "Hangup", Uniqueid="r3-leg"))["Cause"] == "21"
    ok = await ring("agent1", "r1")
    assert (ok["Response"], ok["Reason"], ok["Channel"]) == ("Success", "4", "PJSIP/agent1-00000002")
    enter = await event(ami, "BridgeEnter", Uniqueid="r1-leg")
    assert enter["Linkedid"] == "q-1"  # the oldest Linkedid in the bridge wins
    sync = await act(
        ami,
        "s4",
        ("Action", "Originate"),
        ("Channel", "PJSIP/agent4"),
        ("Application", "Wait"),
        ("Data", "1"),
    )
    assert (sync["Response"], sync["Message"]) == ("Error", "Originate failed")


async def test_a_caller_leg_without_media_ends_with_44_and_so_does_its_agent_leg(
    ami: AMIPeer, sim: SimulatedPBX
) -> None:
    """What a real Asterisk 22 did when a SIP caller bridged with an agent's phone went silent
    (``tests/test_real_phones.py``): the RTP timeout sets cause 44 and soft-hangs the caller up
    (``SoftHangupRequest`` Cause 1, the AST_SOFTHANGUP_DEV flag), the bridge dissolves with that
    cause and the agent leg, its Bridge() over, hangs up with 44 as well."""
    caller = sim.pbx.inbound_call("s", caller_num="+15550001", context="hold")
    moh = await event(ami, "MusicOnHoldStart", Channel=caller.name)
    assert moh["Uniqueid"] == caller.uniqueid
    await act(
        ami,
        "leg",
        ("Action", "Originate"),
        ("Channel", "PJSIP/agent1"),
        ("Context", "leg"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Variable", f"CALLER={caller.name}"),
        ("Async", "true"),
        ("ChannelId", "dead-leg"),
    )
    await event(ami, "BridgeEnter", Uniqueid="dead-leg")
    sim.pbx.media_timeout(caller)
    soft = await event(ami, "SoftHangupRequest", Channel=caller.name)
    assert soft["Cause"] == "1"
    assert (await event(ami, "Hangup", Channel=caller.name))["Cause"] == "44"
    assert (await event(ami, "Hangup", Uniqueid="dead-leg"))["Cause"] == "44"


async def test_attended_transfer_completes_when_the_agent_hangs_up(ami: AMIPeer, sim: SimulatedPBX) -> None:
    caller = await hold_caller(ami, "x")
    await act(
        ami,
        "leg",
        ("Action", "Originate"),
        ("Channel", "PJSIP/agent1"),
        ("Context", "leg"),
        ("Exten", "s"),
        ("Variable", f"CALLER={caller}"),
        ("Async", "true"),
        ("ChannelId", "xleg"),
    )
    await event(ami, "BridgeEnter", Uniqueid="xleg")
    await act(ami, "v", ("Action", "Setvar"), ("Channel", "xleg"), ("Variable", "__XT"), ("Value", "2002"))
    bad = await act(
        ami, "bad", ("Action", "Atxfer"), ("Channel", "xleg"), ("Context", "nope"), ("Exten", "s")
    )
    assert bad["Message"] == "Extension does not exist."
    ok = await act(ami, "t", ("Action", "Atxfer"), ("Channel", "xleg"), ("Context", "xfer"), ("Exten", "s"))
    assert ok["Message"] == "Atxfer successfully queued"
    assert (await event(ami, "MusicOnHoldStart", Uniqueid="x-2"))["Channel"] == caller
    noop = await event(ami, "Newexten", Context="xfer", Application="NoOp")
    assert noop["AppData"] == "transfer to 2002"  # __XT was inherited by the new channel
    await event(ami, "DialEnd", DialStatus="ANSWER", Uniqueid="xleg")
    await act(ami, "h", ("Action", "Hangup"), ("Channel", "xleg"))
    done = await event(ami, "AttendedTransfer")
    assert done["Result"] == "Success" and done["TransferTargetChannel"].startswith("Local/s@xfer-")
    await event(ami, "MusicOnHoldStop", Uniqueid="x-2")
    enter = await event(ami, "BridgeEnter", Channel=done["TransferTargetChannel"])
    assert enter["BridgeNumChannels"] == "2"
    assert (await event(ami, "Hangup", Uniqueid="xleg"))["Cause"] == "16"
    assert sim.pbx.find_channel(caller) is not None  # the caller now talks to the target


async def test_dial_to_phones_sets_dialstatus(ami: AMIPeer, sim: SimulatedPBX) -> None:
    async def dial(target: str, aid: str) -> str:
        await act(
            ami,
            aid,
            ("Action", "Originate"),
            ("Channel", "Local/s@dialer"),
            ("Application", "Wait"),
            ("Data", "3600"),
            ("Variable", f"TARGET={target}"),
            ("Async", "true"),
            ("ChannelId", f"{aid}-1"),
            ("OtherChannelId", f"{aid}-2"),
        )
        ev = await event(ami, "VarSet", Uniqueid=f"{aid}-2", Variable="DIALSTATUS", timeout=15)
        while ev["Value"] == "":
            start = ami.messages.index(tuple(ev.items())) + 1
            got = await ami.wait_for(
                lambda h: d(h).get("Uniqueid") == f"{aid}-2" and d(h).get("Variable") == "DIALSTATUS",
                timeout=15,
                start=start,
            )
            assert got is not None
            ev = d(got)
        return ev["Value"]

    assert await dial("agent4", "d4") == "CHANUNAVAIL"
    assert await dial("agent2", "d2") == "NOANSWER"
    assert (await event(ami, "DialEnd", DialStatus="NOANSWER"))["DestChannel"].startswith("PJSIP/agent2-")
    await act(
        ami,
        "d1",
        ("Action", "Originate"),
        ("Channel", "Local/s@dialer"),
        ("Application", "Wait"),
        ("Data", "3600"),
        ("Variable", "TARGET=agent1"),
        ("Async", "true"),
        ("ChannelId", "d1-1"),
        ("OtherChannelId", "d1-2"),
    )
    answered = await ami.wait_for(
        lambda h: d(h).get("Event") == "DialEnd" and d(h).get("DestChannel", "").startswith("PJSIP/agent1-"),
        timeout=15,
    )
    assert answered is not None and (d(answered)["DialStatus"], d(answered)["Uniqueid"]) == ("ANSWER", "d1-2")
    await event(ami, "BridgeEnter", Uniqueid="d1-2")  # DIALSTATUS=ANSWER comes when the bridge ends


async def test_chanspy_dtmf_switches_modes(ami: AMIPeer, sim: SimulatedPBX) -> None:
    target = await hold_caller(ami, "t")
    await act(
        ami,
        "sp",
        ("Action", "Originate"),
        ("Channel", "Local/9001@sup"),
        ("Context", "spy"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Variable", f"SPYTARGET={target}"),
        ("Async", "true"),
        ("ChannelId", "sp-1"),
        ("OtherChannelId", "sp-2"),
    )
    start = await event(ami, "ChanSpyStart")
    assert (start["SpyeeChannel"], start["SpyerUniqueid"]) == (target, "sp-1")
    for digit in "564":
        await act(ami, f"k{digit}", ("Action", "PlayDTMF"), ("Channel", "sp-2"), ("Digit", digit))
        await event(ami, "DTMFEnd", Digit=digit, Uniqueid="sp-1")
    session = sim.pbx.channels[start["SpyerChannel"]].extra["spy"]
    for _ in range(50):
        if len(session.modes) == 4:
            break
        await asyncio.sleep(0.01)  # the spy's task consumes the queued digit on its next turn
    assert session.modes == ["listen", "whisper", "barge", "listen"]
    await act(ami, "h", ("Action", "Hangup"), ("Channel", "t-1"))
    await event(ami, "ChanSpyStop")
    assert (await event(ami, "Hangup", Uniqueid="sp-1"))["Cause"] == "16"


async def test_faults_name_context_and_priority(ami: AMIPeer, sim: SimulatedPBX) -> None:
    await act(
        ami,
        "b",
        ("Action", "Originate"),
        ("Channel", "Local/s@bad"),
        ("Application", "Wait"),
        ("Data", "1"),
        ("Async", "1"),
    )
    await event(ami, "Hangup")
    fault = sim.pbx.faults[0]
    assert (fault.context, fault.exten, fault.priority) == ("bad", "s", 1)
    assert "NOSUCH" in fault.message


async def test_gotoiftime_uses_the_simulated_clock(ami: AMIPeer) -> None:
    await act(
        ami,
        "h",
        ("Action", "Originate"),
        ("Channel", "Local/s@hours"),
        ("Application", "Wait"),
        ("Data", "1"),
        ("Async", "1"),
    )
    assert (await event(ami, "VarSet", Variable="WHERE"))["Value"] == "open"


def test_time_matching() -> None:
    monday_9 = dt.datetime(2026, 11, 23, 9, 30)  # a Monday
    assert time_matches(monday_9, "08:00-17:00", "mon-fri", "*", "*")
    assert not time_matches(monday_9, "10:00-17:00", "mon-fri", "*", "*")
    assert not time_matches(monday_9, "*", "sat-sun", "*", "*")
    assert time_matches(monday_9, "22:00-10:00", "*", "23", "nov")  # across midnight
    assert not time_matches(monday_9, "*", "*", "1-22", "*")


# ------------------------------------------------------------------------------ the command
def test_callcenter_sim_command_runs(tmp_path: Path) -> None:
    (tmp_path / "extensions.conf").write_text("[cc-inbound]\nexten => 100,1,Answer()\n same => n,Hangup()\n")
    (tmp_path / "manager.conf").write_text("[general]\n[ctl]\nsecret = x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "callcenter", "sim", "--config", str(tmp_path), "--ami", "127.0.0.1:0",
         "--scenario", "smoke", "--speed", "60", "--duration", "120", "--seed", "4"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "AMI on 127.0.0.1:" in proc.stdout
    assert "offered=" in proc.stderr


async def test_a_client_that_stops_reading_is_cut_off(sim: SimulatedPBX) -> None:
    """Its unread output passes the cap: disconnected, while a reading client keeps up."""
    sim.ami.max_backlog = 32 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port, limit=1 << 16)
    writer.write(b"Action: Login\r\nUsername: u\r\nSecret: p\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        while b"Authentication accepted" not in await reader.read(4096):
            pass
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer = AMIPeer()
    await peer.connect("127.0.0.1", sim.ami_port)
    try:
        peer.send([("Action", "Login"), ("Username", "u"), ("Secret", "p"), ("ActionID", "l")])
        assert await peer.wait_for(lambda h: d(h).get("ActionID") == "l", timeout=5)
        async with asyncio.timeout(30):
            n = 0
            while len(sim.ami.sessions) > 1:  # the silent one is still there
                await act(
                    peer,
                    f"o{n}",
                    ("Action", "Originate"),
                    ("Channel", f"Local/{n}@sup"),
                    ("Application", "Wait"),
                    ("Data", "0"),
                    ("Async", "1"),
                )
                n += 1
        assert len(sim.ami.sessions) == 1 and n > 0
    finally:
        writer.close()
        await peer.close()
