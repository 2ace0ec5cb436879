"""Against a REAL Asterisk 22 (``ASTERISK_BIN``; skipped without it): our rendered configuration of
the example center loads cleanly, the controller's AMI user logs in with the rendered secret, and
the controller drives real calls: the FastAGI IVR takes DTMF and queues the call on music on
hold, an unregistered agent phone is a RONA, and an agent reached over a Local channel answers,
is bridged to the caller and recorded by MixMonitor. With the controller down, the static
fallback path runs. SIPp (``tests/sipp.py``) is the carrier, from its own loopback address
``CARRIER_ADDRESS``, and an agent's phone on 127.0.0.1 that registers with digest auth and logs
in with ``*11`` and RFC 4733 DTMF; a carrier leg that sends no audio is ended by the RTP timeout.
Every wait is bounded; everything listens on loopback ports chosen free.

The harness (``tests/asterisk_harness.py``) adds test-only contexts to the dialplan:
``cc-test-agents`` (an agent "phone" that answers and plays a tone, dialled as
``Local/<endpoint>@cc-test-agents``) and nothing else; callers are ``Local/<DID>@cc-inbound``
channels whose ``;1`` half waits while the test presses keys on it with ``PlayDTMF``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.asterisk.ami_client import AMIClient
from callcenter.config import model as cm
from callcenter.errors import CallcenterError
from callcenter.reporting.records import MEDIA_TIMEOUT_CAUSE, ended_by
from tests import sipp
from tests.asterisk_harness import (
    CARRIER_ADDRESS,
    Center,
    Watcher,
    admin,
    call_in,
    command,
    controller_for,
    example_center,
    free_port,
    hang_up_everything,
    music_dirs,
    real_center,
    rendered_files,
    require_asterisk,
    running_asterisk,
    short_tempdir,
    wait_until,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]

# Startup noise of modules that autoload=yes loads and the center does not use (their config
# files are not part of the rendered set), and the outbound registration to the example
# carrier's host, which does not exist on a test machine. Everything else is reported.
STARTUP_NOISE = (
    r"Unable to load config",
    r"Missing config file",
    r"declined to load",
    r"Declined modules which depend",
    r"Some non-required modules failed to load",
    r"Could not find valid ccss\.conf",
    r"Failed to load configuration file",
    r"No such configuration file",
    r"unable to load config",
    r"Unable to load .*\.conf\. Not logging",
    r"configuration file '.*' not found",
    r"No follow me config file",
    r"/keys: No such file or directory",
    r"Unable to open key directory",
    r"may be removed in a future release",
    r"No response received from 'sip:out\.carrier\.example",
)


@pytest.fixture(scope="module")
def center() -> Iterator[Center]:
    with real_center() as c:
        yield c


# ============================================================================ 1. configuration
CONTEXTS = (
    names.CTX_INBOUND,
    names.CTX_FALLBACK,
    names.CTX_HOLD,
    names.CTX_ANNOUNCE,
    names.CTX_AGENT_LEG,
    names.CTX_ENDPOINTS,
    names.CTX_FEATURES,
    names.CTX_AGENT_PHONES,
    names.CTX_SPY,
    names.CTX_OUTBOUND,
    names.CTX_VOICEMAIL,
    names.CTX_TRANSFER,
)


async def test_rendered_configuration_loads_in_real_asterisk(center: Center) -> None:
    ast = center.asterisk
    async with admin(center) as client:
        for ctx in CONTEXTS:
            out = await command(client, f"dialplan show {ctx}")
            assert f"Context '{ctx}' created by 'pbx_config'" in out, (ctx, out)
        inbound = await command(client, f"dialplan show {names.CTX_INBOUND}")
        for n in center.config.numbers:
            did = n.dialed
            assert f"'{did}' =>" in inbound, did
            assert f"AGI(agi://127.0.0.1:{center.agi_port}/{names.AGI_IVR})" in inbound
        endpoints = await command(client, "pjsip show endpoints")
        for agent in center.config.agents.values():
            assert f"Endpoint:  {agent.endpoint}/{agent.extension}" in endpoints, agent.endpoint
        assert "Endpoint:  carrier" in endpoints and "Endpoint:  dialer" in endpoints
        auth = await command(client, "pjsip show auth agent1001-auth")
        assert "from-env-1001" in auth  # the ${CC_SIP_1001} secret came from the environment
        moh = await command(client, "moh show classes")
        for cls in ("default", "calm", "upbeat"):
            assert f"Class: {cls}" in moh
        files = await command(client, "moh show files")
        for cls in ("default", "calm", "upbeat"):
            assert f"/moh/{cls}/" in files, (cls, files)  # each class found its files
        vm = await command(client, "voicemail show users")
        assert "3 voicemail users configured" in vm
        for box in center.config.mailboxes:
            assert f"callcenter {box}" in vm
        outbound = await command(client, f"dialplan show renewals@{names.CTX_OUTBOUND}")
        # AMD with the campaign's parameters, and the message waits for the greeting's beep
        assert "AMD(2500,1500,800,5000,100,50,3,256,5000)" in outbound, outbound
        assert "WaitForSilence(1000,1,20)" in outbound, outbound
        for module in (
            "res_pjsip.so",
            "res_agi.so",
            "app_mixmonitor.so",
            "app_chanspy.so",
            "app_amd.so",
            "app_waitforsilence.so",
        ):
            reply = await client.send_action("ModuleCheck", {"Module": module}, timeout=10)
            assert reply.get("Response") == "Success", module
        queue = await command(client, "module show like app_queue")
        assert "0 modules loaded" in queue  # the controller is the ACD, not app_queue
        user = await command(client, f"manager show user {center.config.asterisk.ami.username}")
        assert "write perm: call,agent,originate" in user  # no system: no shell through Originate
    problems = ast.problems(ignore=STARTUP_NOISE)
    assert problems == [], "\n".join(problems)


async def test_controller_user_logs_in_with_the_rendered_secret_and_no_more(center: Center) -> None:
    a = center.config.asterisk.ami
    good = AMIClient(
        port=center.asterisk.ami_port,
        username=a.username,
        secret=center.ami_secret,
        ping_interval=0,
        reconnect=False,
    )
    await asyncio.wait_for(good.connect(), 10)
    try:
        pong = await good.send_action(names.ACTION_PING, timeout=10)
        assert pong.get("Response") == "Success"
        with pytest.raises(CallcenterError) as exc:  # no `command` class: no CLI over AMI
            await good.send_action(names.ACTION_COMMAND, {"Command": "core show version"}, timeout=10)
        assert "Permission denied" in str(exc.value)
    finally:
        await asyncio.wait_for(good.close(), 10)
    bad = AMIClient(
        port=center.asterisk.ami_port, username=a.username, secret="wrong", ping_interval=0, reconnect=False
    )
    with pytest.raises(CallcenterError):
        await asyncio.wait_for(bad.connect(), 10)
    await asyncio.wait_for(bad.close(), 10)


# ============================================================================ 2. the controller
async def _db(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(query, *args, timeout=10))
    finally:
        await asyncio.wait_for(conn.close(), 10)


async def test_ivr_takes_dtmf_and_queues_the_call_on_hold(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(center, db_dsn, tmp_path) as ctl:
                # What the controller's own (least-privilege, filtered) AMI user receives.
                ctl_seen: set[str] = set()
                ctl_stream = ctl.ami.events()

                async def collect() -> None:
                    async for item in ctl_stream:
                        if isinstance(item, Message):
                            ctl_seen.add(item.name or "")

                collector = asyncio.create_task(collect())
                did = "18005550100"
                caller = await call_in(client, watcher, did, {"language-menu": "1", "main-menu": "0"})
                moh = await watcher.wait(
                    lambda m: m.name == "MusicOnHoldStart" and m.get("Channel") == caller.line,
                    "the caller never reached music on hold",
                    timeout=60,
                )
                assert moh.get("Class") == "default"
                got = await client.send_action(
                    names.ACTION_GETVAR, {"Channel": caller.line, "Variable": names.VAR_QUEUE}, timeout=10
                )
                assert got.get("Value") == "general"
                call_id = (
                    await client.send_action(
                        names.ACTION_GETVAR,
                        {"Channel": caller.line, "Variable": names.VAR_CALL_ID},
                        timeout=10,
                    )
                ).get("Value")
                assert call_id
                calls = ctl.acd.snapshot()["calls"]
                assert call_id in calls and calls[call_id]["queue"] == "general"
                # The keys reached the IVR's channel as DTMF (1 for English, then 0).
                digits = [
                    m.get("Digit")
                    for m in watcher.seen
                    if m.name == "DTMFEnd" and m.get("Channel") == caller.line
                ]
                assert digits == ["1", "0"], digits
                await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
                await watcher.wait(
                    lambda m: m.name == "Hangup" and m.get("Channel") == caller.line, "no hang-up", timeout=20
                )
                await wait_until(lambda: call_id not in ctl.acd.snapshot()["calls"], "the ACD kept the call")
                ctl_stream.close()
                await asyncio.wait_for(collector, 10)
                # manager.conf's eventfilters and read classes work in Asterisk 22: no dialplan,
                # VarSet or AGI events reach the controller; the call and DTMF events do.
                assert not ctl_seen & {"Newexten", "VarSet", "AGIExecStart", "AGIExecEnd"}, ctl_seen
                assert {"Newchannel", "Hangup", "DTMFEnd", "MusicOnHoldStart"} <= ctl_seen, ctl_seen
        finally:
            await hang_up_everything(client)
            await watcher.close()
    rows = await _db(db_dsn, "SELECT * FROM calls WHERE call_id = $1", call_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["did"] in (did, "+" + did)
    assert row["queue"] == "general"
    assert row["caller_number"] and row["caller_number"].endswith("2125551234")
    assert row["queued_at"] is not None and row["ended_at"] is not None
    assert row["disposition"] == "abandoned_queue"
    # Every prompt the IVR streamed was found (absolute paths under asterisk.sounds_dir).
    gone = [
        ln for ln in center.asterisk.full_log().splitlines() if "ivr_prompts" in ln and "does not exist" in ln
    ]
    assert gone == [], gone


async def test_unregistered_agent_phone_is_a_rona(center: Center, db_dsn: str, tmp_path: Path) -> None:
    """The agents' PJSIP endpoints have no registered phone: Originate fails at once
    (OriginateResponse Failure), the ACD counts a RONA and the agent goes not_ready."""
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(center, db_dsn, tmp_path) as ctl:
                await ctl.acd.login("1006")  # general: 8; the only agent logged in
                caller = await call_in(
                    client, watcher, "18005550100", {"language-menu": "1", "main-menu": "0"}
                )
                failure = await watcher.wait(
                    lambda m: (
                        m.name == "OriginateResponse" and (m.get("Uniqueid") or "").startswith("ccleg-")
                    ),
                    "the ACD never offered the call",
                    timeout=60,
                )
                assert failure.get("Response") == "Failure"
                assert failure.get("Channel") == "PJSIP/agent1006"
                assert failure.get("Reason") == "0"
                await wait_until(
                    lambda: ctl.acd.agent_state("1006").status.value == "not_ready", "agent not not_ready"
                )
                assert ctl.acd.stats["rona"] == 1
                call_id = (
                    await client.send_action(
                        names.ACTION_GETVAR,
                        {"Channel": caller.line, "Variable": names.VAR_CALL_ID},
                        timeout=10,
                    )
                ).get("Value")
                assert call_id in ctl.acd.snapshot()["calls"]  # still waiting, on hold
                await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
                await wait_until(lambda: call_id not in ctl.acd.snapshot()["calls"], "the ACD kept the call")
        finally:
            await hang_up_everything(client)
            await watcher.close()
    events = await _db(
        db_dsn, "SELECT kind, agent_id, detail FROM call_events WHERE call_id = $1 ORDER BY seq", call_id
    )
    ronas = [e for e in events if e["kind"] == "rona"]
    assert len(ronas) == 1 and ronas[0]["agent_id"] == "1006"
    assert "unavailable" in str(ronas[0]["detail"])
    states = [
        r["state"]
        for r in await _db(db_dsn, "SELECT state FROM agent_states WHERE agent_id = '1006' ORDER BY seq")
    ]
    assert "not_ready" in states, states


async def test_agent_over_local_channel_answers_is_bridged_and_recorded(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    """With agent_channel = Local/<endpoint>@cc-test-agents the agent's "phone" answers: the
    rendered cc-agent-leg starts MixMonitor (sales records always) and Bridge()s the caller."""
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(
                center, db_dsn, tmp_path, agent_channel="Local/{endpoint}@cc-test-agents"
            ) as ctl:
                await ctl.acd.login("1001")  # sales: 9
                caller = await call_in(
                    client, watcher, "18005550100", {"language-menu": "1", "main-menu": "1"}
                )
                answered = await watcher.wait(
                    lambda m: (
                        m.name == "OriginateResponse" and (m.get("Uniqueid") or "").startswith("ccleg-")
                    ),
                    "the ACD never offered the call",
                    timeout=60,
                )
                assert answered.get("Response") == "Success", answered.headers
                leg = answered.get("Uniqueid")
                enter_caller = await watcher.wait(
                    lambda m: m.name == "BridgeEnter" and m.get("Channel") == caller.line,
                    "caller not bridged",
                )
                enter_leg = await watcher.wait(
                    lambda m: m.name == "BridgeEnter" and m.get("Uniqueid") == leg, "agent leg not bridged"
                )
                assert enter_caller.get("BridgeUniqueid") == enter_leg.get("BridgeUniqueid")
                started = await watcher.wait(
                    lambda m: m.name == "MixMonitorStart" and m.get("Uniqueid") == leg, "no MixMonitor"
                )
                assert started is not None
                await wait_until(
                    lambda: ctl.acd.agent_state("1001").status.value == "on_call", "agent not on_call"
                )
                call_id = (
                    await client.send_action(
                        names.ACTION_GETVAR,
                        {"Channel": caller.line, "Variable": names.VAR_CALL_ID},
                        timeout=10,
                    )
                ).get("Value")
                await asyncio.sleep(1.5)  # talk time: a second and a half of tone into the recording
                await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
                # No MixMonitorStop here: Asterisk sends it only for StopMixMonitor, not when the
                # recorded channel hangs up (app_mixmonitor.c stop_mixmonitor_full).
                await watcher.wait(
                    lambda m: m.name == "Hangup" and m.get("Uniqueid") == leg, "leg not hung up"
                )
                await wait_until(
                    lambda: ctl.acd.agent_state("1001").status.value == "wrap_up", "agent not in wrap-up"
                )
        finally:
            await hang_up_everything(client)
            await watcher.close()
    seen = watcher.seen
    calls = await _db(db_dsn, "SELECT * FROM calls WHERE call_id = $1", call_id)
    assert len(calls) == 1
    row = calls[0]
    assert row["queue"] == "sales" and row["agent_id"] == "1001"
    assert row["disposition"] == "answered" and row["answered_at"] is not None
    recs = await _db(db_dsn, "SELECT * FROM recordings WHERE call_id = $1", call_id)
    assert len(recs) == 1, recs
    path = Path(recs[0]["path"])
    if not path.is_absolute():
        path = Path(center.config.recording.directory) / path
    # MixMonitor's own thread closes the file just after the hang-up.
    await wait_until(lambda: path.is_file() and path.stat().st_size > 44 + 8000, f"no audio in {path}", 10)
    assert not any(m.name == "MixMonitorStop" for m in seen)


async def test_without_the_controller_the_static_fallback_runs(center: Center) -> None:
    """Nothing listens on the FastAGI port: AGISTATUS=FAILURE sends the call to cc-fallback, which
    plays the message, tries the agents' phones (none registered) and takes a message."""
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            caller = await call_in(client, watcher, "12125550111", {})
            apps: list[str] = []

            def fallback_app(m: Message) -> bool:
                if (
                    m.name == "Newexten"
                    and m.get("Channel") == caller.line
                    and m.get("Context") == names.CTX_FALLBACK
                ):
                    apps.append(m.get("Application") or "")
                return (
                    m.name == "Newexten"
                    and m.get("Application") == "VoiceMail"
                    and m.get("Channel") == caller.line
                )

            vm = await watcher.wait(fallback_app, "the call never reached voicemail", timeout=40)
            assert vm.get("AppData") == "8000@callcenter,u"
            order = [a for a in apps if a in ("Answer", "Playback", "Dial", "VoiceMail")]
            assert order == ["Answer", "Playback", "Dial", "VoiceMail"], apps
            status = await client.send_action(
                names.ACTION_GETVAR, {"Channel": caller.line, "Variable": names.VAR_AGISTATUS}, timeout=10
            )
            assert status.get("Value") == "FAILURE"
            dial = await client.send_action(
                names.ACTION_GETVAR, {"Channel": caller.line, "Variable": names.VAR_DIALSTATUS}, timeout=10
            )
            assert dial.get("Value") == "CHANUNAVAIL"
            await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
        finally:
            await hang_up_everything(client)
            await watcher.close()
    text = center.asterisk.full_log()
    played = [ln for ln in text.splitlines() if "fallback-message" in ln]
    assert any("Playing" in ln for ln in played), played
    assert not any("does not exist" in ln for ln in played), played


async def test_apply_reloads_every_module_with_the_apply_user(center: Center) -> None:
    """``callcenter apply`` reloads RELOAD_MODULES over AMI as its own user (write ``config``
    only): real Asterisk accepts each name, and refuses an unknown module (the rollback path)."""
    from callcenter.config.render import RELOAD_MODULES, AMIReloader

    before = len(center.asterisk.messages().splitlines())
    a = center.config.asterisk.ami_apply
    assert a is not None
    client = AMIClient(
        port=center.asterisk.ami_port,
        username=a.username,
        secret=a.secret.value,
        ping_interval=0,
        reconnect=False,
    )
    await asyncio.wait_for(client.connect(), 10)
    try:
        reload = AMIReloader(client, timeout=20)
        for module in RELOAD_MODULES:
            await reload(module)
        with pytest.raises(CallcenterError) as exc:
            await reload("res_no_such_module.so")
        assert "No such module" in str(exc.value)
    finally:
        await asyncio.wait_for(client.close(), 10)
    after = center.asterisk.messages().splitlines()[before:]
    problems = [ln for ln in after if re.search(r"\b(WARNING|ERROR)\[", ln)]
    problems = [p for p in problems if not any(re.search(k, p) for k in STARTUP_NOISE)]
    assert problems == [], "\n".join(problems)


def _tweak_queue(config: cm.Config, qid: str, **changes: Any) -> cm.Config:
    queues = dict(config.queues)
    queues[qid] = dataclasses.replace(queues[qid], **changes)
    return dataclasses.replace(config, queues=queues)


async def test_waiting_caller_hears_announcements_then_overflows_to_voicemail(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    """The ACD's timers on real channels: every announce_period it Setvars CC_PROMPT and
    Redirects the caller to cc-announce (Playback, then back to hold); at max_wait it sets
    CC_MAILBOX and Redirects to cc-voicemail. (The queue's timing is shortened for the test.)"""
    config = _tweak_queue(
        center.config,
        "general",
        announce_period=5.0,  # longer than the announcement itself (about 2 s)
        max_wait=12.0,
        overflow=cm.Overflow(cm.OverflowKind.VOICEMAIL, "8000"),
    )
    short = dataclasses.replace(center, config=config)
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(short, db_dsn, tmp_path) as ctl:
                caller = await call_in(
                    client, watcher, "18005550100", {"language-menu": "1", "main-menu": "0"}
                )

                def app_on_line(app: str, ctx: str) -> Callable[[Message], bool]:
                    return lambda m: (
                        m.name == "Newexten"
                        and m.get("Channel") == caller.line
                        and m.get("Context") == ctx
                        and m.get("Application") == app
                    )

                played = await watcher.wait(
                    app_on_line("Playback", names.CTX_ANNOUNCE), "no announcement", timeout=40
                )
                await watcher.wait(
                    app_on_line("MusicOnHold", names.CTX_HOLD),
                    "not back on hold after the announcement",
                    after=played,
                )
                vm = await watcher.wait(
                    app_on_line("VoiceMail", names.CTX_VOICEMAIL), "no voicemail overflow", timeout=30
                )
                assert vm.get("AppData") == "8000@callcenter,u"
                call_id = (
                    await client.send_action(
                        names.ACTION_GETVAR,
                        {"Channel": caller.line, "Variable": names.VAR_CALL_ID},
                        timeout=10,
                    )
                ).get("Value")
                await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
                await watcher.wait(
                    lambda m: m.name == "Hangup" and m.get("Channel") == caller.line, "no hang-up"
                )
                assert ctl.acd.stats["abandoned"] == 0
        finally:
            await hang_up_everything(client)
            await watcher.close()
    prompt = played.get("AppData") or ""
    log = center.asterisk.full_log()
    missing = [
        ln
        for ln in log.splitlines()
        if any(f"File {part} does not exist" in ln for part in prompt.split("&"))
    ]
    rows = await _db(db_dsn, "SELECT disposition FROM calls WHERE call_id = $1", call_id)
    assert [r["disposition"] for r in rows] == ["voicemail"]
    # Our prompts are found (acd.announcement_prompt names them under asterisk.sounds_dir).
    assert missing == [], f"Playback({prompt}): " + " | ".join(ln.split("] ")[-1] for ln in missing)


# ============================================================================ 3. real SIP calls
async def test_sip_call_from_the_carrier_reaches_the_ivr(center: Center, db_dsn: str, tmp_path: Path) -> None:
    """A real SIP INVITE (SIPp as the carrier, from its own address CARRIER_ADDRESS: the rendered
    identify matches it) to 18005550100 lands in cc-inbound on PJSIP/carrier, the IVR answers it
    over FastAGI with the caller's number from the From header (trust_id_inbound), and the BYE
    mid-IVR is an IVR abandon in the call log."""
    binary = sipp.require_sipp()
    carrier = sipp.Party("+12125559876", display="Test Caller")
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(center, db_dsn, tmp_path):
                done = await sipp.run(
                    binary,
                    sipp.call(sipp.Call(carrier, hold_ms=4000), tmp_path),
                    f"127.0.0.1:{center.asterisk.sip_port}",
                    workdir=tmp_path,
                    local_ip=CARRIER_ADDRESS,
                    port=free_port(),
                    media_port=free_port(),
                    service="18005550100",
                    deadline=40,
                )
                assert done.ok, done.explain()
                new = await watcher.wait(
                    lambda m: (
                        m.name == "Newchannel" and (m.get("Channel") or "").startswith("PJSIP/carrier-")
                    ),
                    "no PJSIP/carrier channel",
                )
                assert new.get("Context") == names.CTX_INBOUND
                assert new.get("Exten") == "18005550100"
                assert new.get("CallerIDNum") == "+12125559876"
                chan = new.get("Channel")
                start = await watcher.wait(
                    lambda m: m.name == "AGIExecStart" and m.get("Channel") == chan,
                    "the IVR never ran",
                )
                assert (start.get("Command") or "").startswith("SET VARIABLE")
                await watcher.wait(lambda m: m.name == "Hangup" and m.get("Channel") == chan, "no hang-up")
        finally:
            await hang_up_everything(client)
            await watcher.close()
    rows = await _db(
        db_dsn,
        "SELECT did, caller_number, disposition, queue FROM calls WHERE caller_number = '+12125559876'",
    )
    assert [dict(r) for r in rows] == [
        {
            "did": "18005550100",
            "caller_number": "+12125559876",
            "disposition": "abandoned_ivr",
            "queue": None,
        }
    ]


async def test_agent_phone_on_the_pbx_host_registers_dials_login_and_is_answered(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    """A SIP phone on the PBX's own host (127.0.0.1) registers to agent 1001's endpoint with digest
    auth and is identified as that agent, not as the carrier; it dials *11: the call is answered
    (200 OK) before the controller's PIN prompt plays, the PIN typed as RFC 4733 DTMF logs the
    agent in, and the controller hangs up after the confirmation."""
    binary = sipp.require_sipp()
    agent = center.config.agents["1001"]
    assert agent.sip_password is not None
    phone = sipp.Party(agent.endpoint, password=agent.sip_password.value, display=agent.name)
    port = free_port()
    remote = f"127.0.0.1:{center.asterisk.sip_port}"
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(center, db_dsn, tmp_path) as ctl:
                registered = await sipp.run(
                    binary, sipp.register(phone), remote, workdir=tmp_path, port=port, media_port=free_port()
                )
                assert registered.ok, registered.explain()
                assert "SIP/2.0 200 OK" in registered.messages and "SIP/2.0 404" not in registered.messages
                contacts = await command(client, f"pjsip show aor {agent.endpoint}")
                assert f"sip:{agent.endpoint}@127.0.0.1:{port}" in contacts, contacts
                login = sipp.Call(phone, keys=agent.pin.value + "#", remote_hangup=True)
                dialled = await sipp.run(
                    binary,
                    sipp.call(login, tmp_path),
                    remote,
                    workdir=tmp_path,
                    port=port,
                    media_port=free_port(),
                    service=center.config.feature_codes.agent_login,
                    deadline=45,
                )
                assert dialled.ok, dialled.explain()
                assert re.search(r"SIP/2\.0 200 OK[^\n]*\n(?:[^\n]+\n)*CSeq: 2 INVITE", dialled.messages), (
                    dialled.messages[-3000:]
                )
                new = await watcher.wait(
                    lambda m: m.name == "Newchannel" and (m.get("Channel") or "").startswith("PJSIP/"),
                    "no PJSIP channel for the phone",
                )
                chan = new.get("Channel") or ""
                assert chan.startswith(f"PJSIP/{agent.endpoint}-"), chan  # the agent, not the carrier
                assert new.get("Context") == names.CTX_AGENT_PHONES
                assert new.get("Exten") == center.config.feature_codes.agent_login
                up = await watcher.wait(
                    lambda m: (
                        m.name == "Newstate"
                        and m.get("Channel") == chan
                        and m.get("ChannelStateDesc") == "Up"
                    ),
                    "the phone's call was never answered",
                )
                prompt = await watcher.wait(
                    lambda m: (
                        m.name == "AGIExecStart"
                        and m.get("Channel") == chan
                        and '/enter-pin"' in (m.get("Command") or "")
                    ),
                    "the PIN prompt never played",
                )
                assert watcher.seen.index(up) < watcher.seen.index(prompt)  # answered before the prompt
                await wait_until(
                    lambda: ctl.acd.agent_state(agent.id).status.value == "available",
                    "the PIN typed on the phone did not log the agent in",
                )
                await watcher.wait(
                    lambda m: (
                        m.name == "AGIExecStart"
                        and m.get("Channel") == chan
                        and '/agent-logged-in"' in (m.get("Command") or "")
                    ),
                    "no confirmation played",
                )
        finally:
            await hang_up_everything(client)
            await watcher.close()
    assert not any(
        (m.get("Channel") or "").startswith("PJSIP/carrier-") for m in watcher.seen if m.name == "Newchannel"
    )


async def test_a_caller_sending_no_audio_is_hung_up_after_the_rtp_timeout_with_cause_44(
    tmp_path: Path,
) -> None:
    """The carrier's leg sends no RTP: Asterisk ends it rtp_timeout seconds after the answer with
    hangup cause 44, the cause the call log names a media timeout (``records.ended_by``). Its own
    Asterisk (the carrier's rtp_timeout at 5 s), no controller: the call runs the static fallback
    and waits in voicemail, where only the timeout can end it."""
    binary = require_asterisk()
    sipp_bin = sipp.require_sipp()
    with short_tempdir() as root:
        ami_port, agi_port = free_port(), free_port()
        config = example_center(
            root, ami_port=ami_port, agi_port=agi_port, ami_secret="t-" + secrets.token_hex(8)
        )
        carrier = config.trunks["carrier"]
        quick = dataclasses.replace(carrier, media=dataclasses.replace(carrier.media, rtp_timeout=5))
        config = dataclasses.replace(config, trunks=cm.frozen_map({**config.trunks, "carrier": quick}))
        music_dirs(config)
        with running_asterisk(rendered_files(config), binary=binary, root=root, ami_port=ami_port) as ast:
            center = Center(ast, config, "", agi_port)
            async with admin(center) as client:
                watcher = Watcher(client)
                try:
                    silent = sipp.Call(
                        sipp.Party("+12125550199", display="Silent Caller"), remote_hangup=True
                    )
                    done = await sipp.run(
                        sipp_bin,
                        sipp.call(silent, tmp_path),
                        f"127.0.0.1:{ast.sip_port}",
                        workdir=tmp_path,
                        local_ip=CARRIER_ADDRESS,
                        port=free_port(),
                        media_port=free_port(),
                        service="18005550100",
                        deadline=40,
                        recv_timeout_ms=30000,
                    )
                    assert done.ok, done.explain()  # Asterisk's BYE came, and was answered
                    up = await watcher.wait(
                        lambda m: (
                            m.name == "Newstate"
                            and (m.get("Channel") or "").startswith("PJSIP/carrier-")
                            and m.get("ChannelStateDesc") == "Up"
                        ),
                        "the carrier's call was never answered",
                    )
                    chan = up.get("Channel")
                    hangup = await watcher.wait(
                        lambda m: m.name == "Hangup" and m.get("Channel") == chan, "no Hangup event"
                    )
                finally:
                    await hang_up_everything(client)
                    await watcher.close()
            log = ast.full_log()
    assert hangup.get("Cause") == str(MEDIA_TIMEOUT_CAUSE), hangup.headers
    assert ended_by("caller", int(hangup.get("Cause") or 0)) == "caller_media_timeout"
    assert re.search(rf"Disconnecting channel '{re.escape(chan or '')}' for lack of audio RTP activity", log)


async def test_controller_restart_mid_call_rebuilds_from_real_status(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    """A controller stops while an agent talks to a caller; a new one rebuilds from real
    Asterisk's Status (CC_* variables, BridgeID) and the database: the agent is on that call, and
    the caller's hang-up is handled by the new controller."""
    local = "Local/{endpoint}@cc-test-agents"
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(center, db_dsn, tmp_path / "a", agent_channel=local) as first:
                await first.acd.login("1001")
                caller = await call_in(
                    client, watcher, "18005550100", {"language-menu": "1", "main-menu": "1"}
                )
                answered = await watcher.wait(
                    lambda m: (
                        m.name == "OriginateResponse" and (m.get("Uniqueid") or "").startswith("ccleg-")
                    ),
                    "the ACD never offered the call",
                    timeout=60,
                )
                assert answered.get("Response") == "Success"
                await watcher.wait(
                    lambda m: m.name == "BridgeEnter" and m.get("Channel") == caller.line,
                    "caller not bridged",
                )
                await wait_until(
                    lambda: first.acd.agent_state("1001").status.value == "on_call", "not on_call"
                )
                call_id = (
                    await client.send_action(
                        names.ACTION_GETVAR,
                        {"Channel": caller.line, "Variable": names.VAR_CALL_ID},
                        timeout=10,
                    )
                ).get("Value")
            # The first controller is gone; the call goes on in Asterisk.
            mark = len(watcher.seen)
            async with controller_for(center, db_dsn, tmp_path / "b", agent_channel=local) as second:
                state = second.acd.agent_state("1001")
                ended = [  # if the agent is not on the call: which channels ended, and who asked
                    (m.name, m.get("Channel"), m.get("Cause"))
                    for m in watcher.seen[mark:]
                    if m.name in ("SoftHangupRequest", "HangupRequest", "Hangup")
                ]
                assert state.status.value == "on_call", (state, ended)
                assert call_id in second.acd.snapshot()["calls"]
                await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
                await wait_until(
                    lambda: second.acd.agent_state("1001").status.value == "wrap_up",
                    "the new controller did not see the call end",
                )
        finally:
            await hang_up_everything(client)
            await watcher.close()
    rows = await _db(db_dsn, "SELECT * FROM calls WHERE call_id = $1", call_id)
    assert len(rows) == 1
    assert rows[0]["disposition"] == "answered" and rows[0]["agent_id"] == "1001"
    assert rows[0]["ended_at"] is not None


async def test_the_transfer_context_refuses_what_the_dial_out_policy_refuses(center: Center) -> None:
    """Asterisk's own pattern order picks the denied prefix over the allowed country code, the
    center's extensions over any pattern, and the catch-all refusal for everything else."""
    async with admin(center) as client:
        for target, chosen in [
            ("+19005550100", "'_+1900.' =>"),
            ("+12125550199", "'_+1X.' =>"),
            ("+881612345678", "'_+881.' =>"),
            ("+447911123456", "'_+X.' =>"),
            ("911", "'_X.' =>"),
            ("2002", "'2002' =>"),
        ]:
            out = await command(client, f"dialplan show {target}@{names.CTX_TRANSFER}")
            first = next(line.strip() for line in out.splitlines() if "=>" in line)
            assert first.startswith(chosen), (target, out)


async def test_a_premium_transfer_target_is_hung_up_by_the_dialplan(center: Center) -> None:
    """Even if the controller let it through, the rendered cc-transfer refuses +1900 (cause 21)
    without dialling the trunk."""
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            await client.send_action(
                names.ACTION_ORIGINATE,
                [
                    ("Channel", f"Local/s@{names.CTX_TRANSFER}"),
                    ("Application", "Wait"),
                    ("Data", "5"),
                    ("Variable", f"{names.VAR_TRANSFER_TARGET}=+19005550100"),
                    ("Async", "true"),
                ],
                timeout=10,
            )
            refused = await watcher.wait(
                lambda m: (
                    m.name == "Newexten"
                    and m.get("Context") == names.CTX_TRANSFER
                    and m.get("Extension") == "+19005550100"
                    and m.get("Application") == "Hangup"
                ),
                "the denied prefix's Hangup",
            )
            assert refused.get("AppData") == "21"
            hangup = await watcher.wait(
                lambda m: m.name == "Hangup" and (m.get("Channel") or "").endswith(";2"),
                "the Local ;2 hangup",
            )
            assert hangup.get("Cause") == "21"
            dialled = [m.get("DestChannel") for m in watcher.seen if m.name == "DialBegin"]
            assert not [d for d in dialled if (d or "").startswith("PJSIP/")], dialled  # the trunk never
        finally:
            await watcher.close()
