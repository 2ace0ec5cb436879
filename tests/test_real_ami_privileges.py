"""Against a REAL Asterisk 22 (``ASTERISK_BIN``; skipped without it), with the rendered
``manager.conf``: the controller's AMI user (write ``call,originate,agent``) cannot reach a shell or
the configuration (Originate of ``System()`` or of ``${SHELL()}`` data, ``UpdateConfig``,
``GetConfig``, the ``MixMonitor`` and ``Command`` actions, ``Reload`` are refused), ``callcenter
apply``'s user reloads and can do nothing else the controller does, and a recording started on
demand on a bridged call goes through the dialplan (no MixMonitor action) and writes a WAV while the
caller and the agent stay connected."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.asterisk import names
from callcenter.asterisk.ami_client import AMIClient
from callcenter.config import model as cm
from callcenter.config.render import RELOAD_MODULES, AMIReloader
from callcenter.errors import AMIActionError
from tests.asterisk_harness import (
    TEST_CONTEXTS,
    Center,
    Watcher,
    admin,
    call_in,
    command,
    controller_for,
    hang_up_everything,
    real_center,
    short_tempdir,
    wait_until,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]

FORBIDDEN = "Originate Access Forbidden: app or data blacklisted"


def _sales_on_demand(config: cm.Config) -> cm.Config:
    queues = dict(config.queues)
    queues["sales"] = dataclasses.replace(queues["sales"], recording=cm.RecordingPolicy.ON_DEMAND)
    return dataclasses.replace(config, queues=cm.frozen_map(queues))


# A far end for Local legs that is busy or congested, as cc-dial-<trunk> passes a trunk's
# answer back (Busy() / Congestion() on the ;2).
FAR_END = """
[cc-test-far-end]
exten => busy,1,Busy()
exten => congested,1,Congestion()
"""


@pytest.fixture(scope="module")
def center() -> Iterator[Center]:
    with real_center(TEST_CONTEXTS + FAR_END, tweak=_sales_on_demand) as c:
        yield c


def _client(center: Center, user: str, secret: str) -> AMIClient:
    return AMIClient(
        port=center.asterisk.ami_port, username=user, secret=secret, ping_interval=0, reconnect=False
    )


async def _refusal(client: AMIClient, action: str, headers: dict[str, str]) -> str:
    with pytest.raises(AMIActionError) as exc:
        await client.send_action(action, headers, timeout=10)
    return exc.value.reason


async def test_the_controller_user_cannot_reach_a_shell_or_the_configuration(center: Center) -> None:
    manager = (center.asterisk.etc / "manager.conf").read_text()
    assert "write = call,originate,agent\n" in manager and "write = config\n" in manager
    with short_tempdir() as tmp:
        witness = Path(tmp) / "pwned"
        client = _client(center, center.config.asterisk.ami.username, center.ami_secret)
        await asyncio.wait_for(client.connect(), 10)
        try:
            local = {"Channel": "Local/s@cc-hold", "Async": "true"}
            for app, data in (
                ("System", f"touch {witness}"),
                ("TrySystem", f"touch {witness}"),
                ("Exec", f"System(touch {witness})"),
                ("MixMonitor", f"/tmp/x.wav,,touch {witness}"),
            ):
                got = await _refusal(
                    client, names.ACTION_ORIGINATE, {**local, "Application": app, "Data": data}
                )
                assert got == FORBIDDEN, app
            got = await _refusal(
                client,
                names.ACTION_ORIGINATE,
                {**local, "Application": "NoOp", "Data": f"${{SHELL(touch {witness})}}"},
            )
            assert got == FORBIDDEN
            for action, headers in (
                (
                    "UpdateConfig",
                    {
                        "SrcFilename": "extensions.conf",
                        "DstFilename": "extensions.conf",
                        "Action-000000": "Append",
                        "Cat-000000": "cc-hold",
                        "Var-000000": "exten",
                        "Value-000000": f"s,9,System(touch {witness})",
                    },
                ),
                ("GetConfig", {"Filename": "manager.conf"}),
                ("MixMonitor", {"Channel": "Local/s@cc-hold-00000001;1", "File": "/tmp/x.wav"}),
                (names.ACTION_COMMAND, {"Command": "core show channels"}),
                (names.ACTION_RELOAD, {"Module": "pbx_config.so"}),
            ):
                assert await _refusal(client, action, headers) == "Permission denied", action
            # What it needs still works: Originate of a dialplan context, Setvar, Status.
            reply = await client.send_action(
                names.ACTION_ORIGINATE,
                {"Channel": "Local/s@cc-hold", "Application": "Wait", "Data": "1", "Async": "true"},
                timeout=10,
            )
            assert reply.get("Response") == "Success"
        finally:
            await asyncio.wait_for(client.close(), 10)
        await asyncio.sleep(0.5)  # anything that slipped through would have run by now
        assert not witness.exists()


async def test_the_apply_user_reloads_and_does_nothing_the_controller_does(center: Center) -> None:
    a = center.config.asterisk.ami_apply
    assert a is not None
    client = _client(center, a.username, a.secret.value)
    await asyncio.wait_for(client.connect(), 10)
    try:
        reload = AMIReloader(client, timeout=20)
        for module in RELOAD_MODULES:
            await reload(module)
        for action, headers in (
            (names.ACTION_ORIGINATE, {"Channel": "Local/s@cc-hold", "Application": "Wait", "Data": "1"}),
            (
                names.ACTION_REDIRECT,
                {"Channel": "PJSIP/x-1", "Context": "cc-hold", "Exten": "s", "Priority": "1"},
            ),
            (names.ACTION_HANGUP, {"Channel": "PJSIP/x-1"}),
            (names.ACTION_COMMAND, {"Command": "core show channels"}),
        ):
            assert await _refusal(client, action, headers) == "Permission denied", action
    finally:
        await asyncio.wait_for(client.close(), 10)
    async with admin(center) as root:
        apply_user = _perms(await command(root, f"manager show user {a.username}"))
        controller = _perms(await command(root, f"manager show user {center.config.asterisk.ami.username}"))
    assert apply_user == {"read perm": "<none>", "write perm": "config"}
    assert controller == {"read perm": "system,call,agent,user,dtmf", "write perm": "call,agent,originate"}


def _perms(shown: str) -> dict[str, str]:
    """The read and write classes ``manager show user`` lists, as Asterisk names them."""
    out = {}
    for line in shown.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("read perm", "write perm"):
            out[key] = value.strip()
    return out


async def _db(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_recording_on_demand_on_a_bridged_call_writes_a_wav(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    """Sales records on demand here. The agent (a Local channel that answers and plays a tone)
    takes the call; the controller starts the recording: Setvar of the file name on the agent
    leg, one Redirect (ExtraChannel: the caller to cc-hold) that runs cc-agent-leg's MixMonitor
    and Bridge() again (the MixMonitor action is refused to this user). The two are bridged
    again and the WAV holds the talk after the start."""
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(
                center, db_dsn, tmp_path, agent_channel="Local/{endpoint}@cc-test-agents"
            ) as ctl:
                await ctl.acd.login("1001")  # sales
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
                leg = answered.get("Uniqueid")
                first = await watcher.wait(
                    lambda m: m.name == "BridgeEnter" and m.get("Uniqueid") == leg, "agent leg not bridged"
                )
                await wait_until(lambda: ctl.acd.agent_state("1001").status.value == "on_call", "not on_call")
                call_id = ctl.acd.call_of_agent("1001")
                assert call_id is not None
                assert not any(m.name == "MixMonitorStart" for m in watcher.seen)  # on demand: not yet
                assert await ctl.acd.record(call_id)
                started = await watcher.wait(
                    lambda m: m.name == "MixMonitorStart" and m.get("Uniqueid") == leg, "no MixMonitor"
                )
                assert started is not None
                again_leg = await watcher.wait(
                    lambda m: (
                        m.name == "BridgeEnter"
                        and m.get("Uniqueid") == leg
                        and m.get("BridgeUniqueid") != first.get("BridgeUniqueid")
                    ),
                    "agent leg not bridged again",
                )
                again_caller = await watcher.wait(
                    lambda m: (
                        m.name == "BridgeEnter"
                        and m.get("Channel") == caller.line
                        and m.get("BridgeUniqueid") == again_leg.get("BridgeUniqueid")
                    ),
                    "caller not bridged again",
                )
                assert again_caller is not None
                assert ctl.acd.call_state(call_id) == "connected"
                assert ctl.acd.agent_state("1001").status.value == "on_call"
                await asyncio.sleep(1.5)  # talk time: the agent's tone goes into the recording
                await client.send_action(names.ACTION_HANGUP, {"Channel": caller.phone}, timeout=10)
                await watcher.wait(
                    lambda m: m.name == "Hangup" and m.get("Uniqueid") == leg, "leg not hung up"
                )
                await wait_until(lambda: ctl.acd.agent_state("1001").status.value == "wrap_up", "no wrap-up")
        finally:
            await hang_up_everything(client)
            await watcher.close()
    seen = watcher.seen
    # What happened to the caller between the two bridges (for the record): measured here.
    caller_events = [
        (m.name, m.get("Context") or "")
        for m in seen
        if m.get("Channel") == caller.line
        and m.name in ("BridgeLeave", "BridgeEnter", "MusicOnHoldStart", "Hangup")
    ]
    assert [n for n, _ in caller_events].count("BridgeEnter") == 2, caller_events
    recs = await _db(db_dsn, "SELECT * FROM recordings WHERE call_id = $1", call_id)
    assert len(recs) == 1, recs
    path = Path(recs[0]["path"])
    if not path.is_absolute():
        path = Path(center.config.recording.directory) / path
    await wait_until(lambda: path.is_file() and path.stat().st_size > 44 + 8000, f"no audio in {path}", 10)
    calls = await _db(db_dsn, "SELECT * FROM calls WHERE call_id = $1", call_id)
    assert calls[0]["disposition"] == "answered" and calls[0]["agent_id"] == "1001"


async def test_a_campaign_leg_the_policy_refuses_never_reaches_the_trunk(center: Center) -> None:
    """The dialer's legs are Local/<number>@cc-dial-<trunk>/n: the rendered context checks the
    dial-out policy again. A premium-rate number (as if it got past the controller) fails the
    Originate without a channel on the trunk; an allowed number is dialled on the trunk, with the
    campaign's caller ID."""
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            uid = {}
            for key, number in (("premium", "+19005550199"), ("allowed", "+12125550143")):
                uid[key] = "cct-" + key
                await client.send_action(
                    names.ACTION_ORIGINATE,
                    {
                        "Channel": names.CAMPAIGN_DIAL_TEMPLATE.format(number=number, trunk="dialer"),
                        "Context": names.CTX_OUTBOUND,
                        "Exten": "s",
                        "Priority": "1",
                        "CallerID": '"Northwind" <+18005550100>',
                        "Variable": f"{names.VAR_AMD}=0",
                        "Timeout": "20000",  # longer than resolving the unreachable trunk's host
                        "Async": "true",
                        "ChannelId": uid[key],
                    },
                    timeout=10,
                )
                response = await watcher.wait(
                    lambda m, u=uid[key]: m.name == "OriginateResponse" and m.get("Uniqueid") == u,
                    f"no OriginateResponse for {key}",
                    timeout=30,
                )
                if key == "allowed":
                    # The example trunk's host does not exist here: Dial says CHANUNAVAIL and the
                    # context answers Congestion(): Reason 8, which the dialer takes as failed.
                    assert (response.get("Response"), response.get("Reason")) == ("Failure", "8")
                if key == "premium":
                    # Hangup(21) on the ;2 before any Dial: Reason 0, failed too.
                    assert (response.get("Response"), response.get("Reason")) == ("Failure", "0")
                    assert not any(
                        m.name == "Newchannel" and (m.get("Channel") or "").startswith("PJSIP/dialer-")
                        for m in watcher.seen
                    )
            # The ;2 ran Dial() on the trunk for the allowed number only, with the campaign's
            # caller ID (which Dial gives the trunk leg as its connected line: PJSIP's From).
            dials = [m for m in watcher.seen if m.name == "Newexten" and m.get("Application") == "Dial"]
            assert [(m.get("AppData"), m.get("CallerIDNum")) for m in dials] == [
                ("PJSIP/+12125550143@dialer", "+18005550100")
            ]
            # Whether the trunk leg is created before its unreachable host fails it depends on
            # name resolution; when it is, it carries the campaign's caller ID.
            for m in watcher.seen:
                if m.name == "DialBegin" and (m.get("DestChannel") or "").startswith("PJSIP/dialer-"):
                    assert m.get("DialString") == "+12125550143@dialer"
                    assert m.get("DestConnectedLineNum") == "+18005550100"
            refused = [
                m.get("AppData")
                for m in watcher.seen
                if m.name == "Newexten" and "dial-out refused" in (m.get("AppData") or "")
            ]
            assert refused == ["dial-out refused: denied prefix +19005550199"]
        finally:
            await hang_up_everything(client)
            await watcher.close()


async def test_busy_and_congestion_on_a_local_leg_reach_the_originate(center: Center) -> None:
    """What the dialer reads from OriginateResponse when a Local leg's ;2 says Busy() or
    Congestion() (as cc-dial-<trunk> does after Dial): Reason 5 (busy) and 8 (congestion)."""
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            got = {}
            for exten in ("busy", "congested"):
                uid = f"cct-far-{exten}"
                await client.send_action(
                    names.ACTION_ORIGINATE,
                    {
                        "Channel": f"Local/{exten}@cc-test-far-end/n",
                        "Application": "Wait",
                        "Data": "1",
                        "Timeout": "5000",
                        "Async": "true",
                        "ChannelId": uid,
                    },
                    timeout=10,
                )
                response = await watcher.wait(
                    lambda m, u=uid: m.name == "OriginateResponse" and m.get("Uniqueid") == u,
                    f"no OriginateResponse for {exten}",
                )
                got[exten] = (response.get("Response"), response.get("Reason"))
            assert got == {"busy": ("Failure", "5"), "congested": ("Failure", "8")}
        finally:
            await hang_up_everything(client)
            await watcher.close()
