"""Agents and supervisors on SIP phones, against a REAL Asterisk 22 (``ASTERISK_BIN``; skipped
without it or without SIPp) and the whole controller (``controller_for``) running the example
center.

Every party is SIPp (``tests/sipp.py``): agents' and supervisors' phones on 127.0.0.1 register to
their rendered PJSIP endpoints with digest auth (an agent's phone is a SIPp server that answers
the ACD's INVITE and the PBX's qualify OPTIONS, registered with its Contact), callers call a DID
from the carrier's own address ``CARRIER_ADDRESS``. Each phone's media is a
``tests.media.RtpPeer``: it sends its own tone (caller 600 Hz, agent 1000 Hz, supervisor 1500
Hz) and RFC 4733 keys in one RTP stream, and keeps what it receives, so who hears whom is measured
on the RTP each phone gets.

1. An agent logs in with ``*11`` and the PIN, pauses with ``*13`` + a reason's digits and resumes
   with ``*14``: each call answered (200 OK) and its confirmation heard; then a carrier call goes
   through the IVR (keys) into the queue, the ACD rings the agent's phone, they are bridged and
   hear each other, the caller hangs up: the call log names the agent; wrap-up, then available.
2. A supervisor dials ``*81`` + the agent's id during that kind of call, enters the PIN, hears
   both parties; 5 (whisper): the agent hears the supervisor, the caller does not; 6 (barge):
   both do. The monitoring log reads listen -> whisper -> barge.
3. The caller's media stops mid-call: the carrier's RTP timeout (5 s here) ends the call with
   cause 44, the agent is freed and the call log says ``caller_media_timeout``.

Every wait is bounded; every port is a free loopback port; every SIPp process is stopped in a
``finally`` and the module's Asterisk with the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.app.controller import Controller
from callcenter.app.plugins import standard_plugins
from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.commands.demo import DEMO_PINS
from callcenter.config import model as cm
from callcenter.reporting.records import MEDIA_TIMEOUT_CAUSE
from tests import sipp
from tests.asterisk_harness import (
    CARRIER_ADDRESS,
    Center,
    Watcher,
    admin,
    controller_for,
    free_port,
    hang_up_everything,
    real_center,
    wait_until,
)
from tests.media import RtpPeer

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(150)]

CALLER_TONE, AGENT_TONE, SUPERVISOR_TONE = 600, 1000, 1500
RTP_TIMEOUT = 5  # the carrier's, in this module (the example's is 30 s)
WRAPUP = 2.0  # the queues', in this module
DID = "18005550100"
AGENT = "1001"
SUPERVISOR = "9001"
SUPERVISOR_PIN = DEMO_PINS[SUPERVISOR]  # dialplans/people.yaml stores its hash


def _quick(config: cm.Config) -> cm.Config:
    """The example center with a 5 s RTP timeout on the carrier and 2 s wrap-ups."""
    carrier = config.trunks["carrier"]
    carrier = dataclasses.replace(carrier, media=dataclasses.replace(carrier.media, rtp_timeout=RTP_TIMEOUT))
    queues = {q: dataclasses.replace(queue, wrapup=WRAPUP) for q, queue in config.queues.items()}
    return dataclasses.replace(
        config, trunks=cm.frozen_map({**config.trunks, "carrier": carrier}), queues=cm.frozen_map(queues)
    )


@pytest.fixture(scope="module")
def center() -> Iterator[Center]:
    with real_center(tweak=_quick) as c:
        yield c


# ============================================================================ the parties
@dataclass
class Rig:
    """What a test's parties share: SIPp, the PBX's SIP address, the admin AMI's events, the
    controller, and every SIPp process and RTP peer to end."""

    center: Center
    sipp: str
    watcher: Watcher
    ctl: Controller
    work: Path
    procs: list[sipp.SippProcess] = dataclasses.field(default_factory=list)
    peers: list[RtpPeer] = dataclasses.field(default_factory=list)

    @property
    def remote(self) -> str:
        return f"127.0.0.1:{self.center.asterisk.sip_port}"

    async def media(self, tone: int | None, host: str = "127.0.0.1") -> RtpPeer:
        peer = await RtpPeer(tone, host=host).open()
        self.peers.append(peer)
        return peer

    async def start(self, scenario: str, remote: str | None, **kw: Any) -> sipp.SippProcess:
        kw.setdefault("media_port", free_port())
        proc = await sipp.start(self.sipp, scenario, remote, workdir=self.work, **kw)
        self.procs.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.procs:
            await proc.stop()
        for peer in self.peers:
            await peer.close()


@contextlib.asynccontextmanager
async def rig(center: Center, dsn: str, work: Path, *, http: bool = False) -> AsyncIterator[Rig]:
    binary = sipp.require_sipp()
    async with admin(center) as client:
        watcher = Watcher(client)
        try:
            async with controller_for(center, dsn, work, plugins=standard_plugins(), http=http) as ctl:
                r = Rig(center, binary, watcher, ctl, work)
                try:
                    yield r
                finally:
                    await r.close()
        finally:
            await hang_up_everything(client)
            await watcher.close()


def phone_party(center: Center, endpoint: str) -> sipp.Party:
    """The SIP identity of the phone registered as ``endpoint`` (an agent's or a supervisor's)."""
    cfg = center.config
    person: cm.Agent | cm.Supervisor | None = cfg.agent_by_endpoint(endpoint) or cfg.supervisor_by_endpoint(
        endpoint
    )
    assert person is not None and person.sip_password is not None, endpoint
    return sipp.Party(endpoint, password=person.sip_password.value, display=person.name)


async def udp_bound(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Wait until another process (SIPp) has bound ``host:port`` (polling a port of another
    process: there is no event to wait on)."""
    async with asyncio.timeout(timeout):
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    return
            await asyncio.sleep(0.02)


async def register(r: Rig, party: sipp.Party, *, contact_port: int) -> None:
    """REGISTER ``party`` with its Contact at ``contact_port``; Asterisk says 200 OK, not 404."""
    done = await sipp.run(
        r.sipp,
        sipp.register(party, contact_port=contact_port),
        r.remote,
        workdir=r.work,
        port=free_port(),
        media_port=free_port(),
        deadline=20,
    )
    assert done.ok, done.explain()
    assert "SIP/2.0 200 OK" in done.messages and "SIP/2.0 404" not in done.messages


@dataclass
class AgentPhone:
    """An agent's registered phone: ``ringer`` the SIPp server that answers the ACD's INVITE (its
    media ``media``), calls out from ``out_port``."""

    party: sipp.Party
    ringer: sipp.SippProcess
    media: RtpPeer
    out_port: int


async def agent_phone(r: Rig, agent_id: str) -> AgentPhone:
    """Start the agent's phone (a SIPp server answering its next INVITE and every qualify OPTIONS),
    register it, and wait until the PBX has found its Contact reachable."""
    agent = r.center.config.agents[agent_id]
    party = phone_party(r.center, agent.endpoint)
    media = await r.media(AGENT_TONE)
    port = free_port()
    mark = r.watcher.last()
    ringer = await r.start(
        sipp.answer(party, media_port=media.port),
        None,
        port=port,
        deadline=140,
        recv_timeout_ms=120_000,
        answers=True,
    )
    await udp_bound(port)
    await register(r, party, contact_port=port)
    await r.watcher.wait(
        lambda m: (
            m.name == "ContactStatus"
            and m.get("AOR") == agent.endpoint
            and m.get("ContactStatus") == "Reachable"
            and f":{port}" in (m.get("URI") or "")
        ),
        "the agent's phone was never reachable (qualify)",
        after=mark,
    )
    return AgentPhone(party, ringer, media, free_port())


def playing(channel: str, prompt: str) -> Callable[[Message], bool]:
    """The controller's AGI starts playing ``prompt`` (a sound path ending in it) on ``channel``."""
    return lambda m: (
        m.name == "AGIExecStart" and m.get("Channel") == channel and f'/{prompt}"' in (m.get("Command") or "")
    )


async def dial_feature(
    r: Rig, party: sipp.Party, out_port: int, code: str, *, prompt: str | None, keys: str, confirmation: str
) -> tuple[sipp.SippRun, RtpPeer, float]:
    """The phone dials ``code``; when ``prompt`` plays it types ``keys`` (RFC 4733), then hears
    ``confirmation`` and Asterisk hangs up. Returns the SIPp run, the call's media and when the
    confirmation started (loop time)."""
    media = await r.media(None)
    mark = r.watcher.last()
    proc = await r.start(
        sipp.call(sipp.Call(party, media_port=media.port, remote_hangup=True), r.work),
        r.remote,
        port=out_port,
        service=code,
        deadline=45,
        recv_timeout_ms=40_000,
    )
    new = await r.watcher.wait(
        lambda m: (
            m.name == "Newchannel"
            and (m.get("Channel") or "").startswith(f"PJSIP/{party.user}-")
            and m.get("Exten") == code
        ),
        f"no channel for {code}",
        after=mark,
    )
    chan = new.get("Channel") or ""
    assert new.get("Context") == names.CTX_AGENT_PHONES
    if prompt is not None:
        await r.watcher.wait(playing(chan, prompt), f"{code}: {prompt} never played", after=new)
        await media.press(keys)
    confirmed = await r.watcher.wait(playing(chan, confirmation), f"{code}: no {confirmation}", after=new)
    done = await proc.finish()
    assert done.ok, done.explain()
    return done, media, r.watcher.at(confirmed)


def answered_invite(messages: str) -> bool:
    """SIPp's trace holds a 200 OK to its (authenticated) INVITE."""
    return bool(re.search(r"SIP/2\.0 200 OK[^\n]*\n(?:[^\n]+\n)*CSeq: \d+ INVITE", messages))


@dataclass
class Caller:
    proc: sipp.SippProcess
    media: RtpPeer
    channel: str


async def call_in(r: Rig, number: str, keys: dict[str, str], *, hangs_up: bool = True) -> Caller:
    """A carrier call to ``DID`` from ``number``: a key of ``keys`` pressed when the IVR plays the
    prompt named with it. ``hangs_up``: the caller hangs up when the test pokes it (else it waits
    for the PBX's BYE). Returns once the IVR has taken the last key."""
    media = await r.media(CALLER_TONE, host=CARRIER_ADDRESS)
    mark = r.watcher.last()
    proc = await r.start(
        sipp.call(
            sipp.Call(
                sipp.Party(number, display="Test Caller"),
                media_port=media.port,
                until_poked=hangs_up,
                remote_hangup=not hangs_up,
            ),
            r.work,
        ),
        r.remote,
        local_ip=CARRIER_ADDRESS,
        port=free_port(),
        service=DID,
        deadline=120,
        recv_timeout_ms=110_000,
    )
    new = await r.watcher.wait(
        lambda m: m.name == "Newchannel" and (m.get("Channel") or "").startswith("PJSIP/carrier-"),
        "no PJSIP/carrier channel",
        after=mark,
    )
    chan = new.get("Channel") or ""
    assert new.get("CallerIDNum") == number
    for prompt, key in keys.items():
        await r.watcher.wait(playing(chan, prompt), f"the IVR never played {prompt}", after=new, timeout=40)
        await media.press(key)
    return Caller(proc, media, chan)


@dataclass
class Bridged:
    leg: str  # the agent leg's channel (PJSIP/<endpoint>-...)
    at: float  # when both were in the bridge (loop time)
    call_id: str


async def bridged(r: Rig, caller: Caller, endpoint: str) -> Bridged:
    """Wait until the ACD's leg to ``endpoint`` answered and is bridged with the caller."""
    answered = await r.watcher.wait(
        lambda m: m.name == "OriginateResponse" and (m.get("Uniqueid") or "").startswith("ccleg-"),
        "the ACD never offered the call",
        timeout=60,
    )
    assert answered.get("Response") == "Success", answered.headers
    assert answered.get("Channel", "").startswith(f"PJSIP/{endpoint}-"), answered.headers
    leg = answered.get("Uniqueid")
    enter_caller = await r.watcher.wait(
        lambda m: m.name == "BridgeEnter" and m.get("Channel") == caller.channel, "caller not bridged"
    )
    enter_leg = await r.watcher.wait(
        lambda m: m.name == "BridgeEnter" and m.get("Uniqueid") == leg, "agent leg not bridged"
    )
    assert enter_caller.get("BridgeUniqueid") == enter_leg.get("BridgeUniqueid")
    call_id = (
        await r.watcher.client.send_action(
            names.ACTION_GETVAR, {"Channel": caller.channel, "Variable": names.VAR_CALL_ID}, timeout=10
        )
    ).get("Value")
    assert call_id
    at = max(r.watcher.at(enter_caller), r.watcher.at(enter_leg))
    return Bridged(enter_leg.get("Channel") or "", at, call_id)


async def hear_each_other(phone: AgentPhone, caller: Caller, talk: Bridged) -> None:
    """Once bridged, each hears the other's tone (RTP both ways)."""
    await phone.media.until(
        lambda: phone.media.hears(CALLER_TONE, since=talk.at), "the agent hears no caller"
    )
    await caller.media.until(
        lambda: caller.media.hears(AGENT_TONE, since=talk.at), "the caller hears no agent"
    )


def status(ctl: Controller, agent_id: str = AGENT) -> str:
    return ctl.acd.agent_state(agent_id).status.value


async def _db(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(query, *args, timeout=10))
    finally:
        await asyncio.wait_for(conn.close(), 10)


async def wrap_up_then_available(ctl: Controller) -> None:
    await wait_until(lambda: status(ctl) in ("wrap_up", "available"), "the agent was not freed", timeout=20)
    await wait_until(lambda: status(ctl) == "available", "the agent never became available again", timeout=20)


async def agent_states(dsn: str, call_id: str) -> list[str]:
    """The agent's states from the call's offer on."""
    rows = await _db(dsn, "SELECT state, call_id FROM agent_states WHERE agent_id = $1 ORDER BY seq", AGENT)
    states = [(r["state"], r["call_id"]) for r in rows]
    first = next(n for n, (_, c) in enumerate(states) if c == call_id)
    return [s for s, _ in states[first:]]


# ============================================================================ 1. the agent
async def test_agent_logs_in_pauses_resumes_and_takes_a_queued_call_on_a_sip_phone(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    codes = center.config.feature_codes
    agent = center.config.agents[AGENT]
    lunch = next(r for r in center.config.pause_reasons.values() if r.code == "lunch")
    async with rig(center, db_dsn, tmp_path) as r:
        ctl = r.ctl
        phone = await agent_phone(r, AGENT)
        assert status(ctl) == "logged_out"
        # *11 and the PIN
        done, media, confirmed = await dial_feature(
            r, phone.party, phone.out_port, codes.agent_login,
            prompt="enter-pin", keys=agent.pin.value + "#", confirmation="agent-logged-in",
        )  # fmt: skip
        assert answered_invite(done.messages), done.messages[-3000:]
        assert status(ctl) == "available"
        assert media.loud(since=confirmed) >= 25  # the confirmation's audio reached the phone
        # *13 + the lunch reason's digits
        done, media, confirmed = await dial_feature(
            r, phone.party, phone.out_port, codes.agent_pause + lunch.digits,
            prompt=None, keys="", confirmation="agent-paused",
        )  # fmt: skip
        assert answered_invite(done.messages), done.messages[-3000:]
        state = ctl.acd.agent_state(AGENT)
        assert (state.status.value, state.reason) == ("paused", "lunch")
        assert media.loud(since=confirmed) >= 25
        # *14
        done, media, confirmed = await dial_feature(
            r, phone.party, phone.out_port, codes.agent_unpause,
            prompt=None, keys="", confirmation="agent-unpaused",
        )  # fmt: skip
        assert answered_invite(done.messages), done.messages[-3000:]
        assert status(ctl) == "available"
        assert media.loud(since=confirmed) >= 25
        # a queued call: English (1), sales (1)
        caller = await call_in(r, "+12125550142", {"language-menu": "1", "main-menu": "1"})
        talk = await bridged(r, caller, agent.endpoint)
        await wait_until(lambda: status(ctl) == "on_call", "the agent is not on the call")
        await hear_each_other(phone, caller, talk)
        caller.proc.poke()  # the caller hangs up
        hung = await caller.proc.finish()
        assert hung.ok, hung.explain()
        rang = await phone.ringer.finish()  # the PBX hung the agent's phone up
        assert rang.ok, rang.explain()
        await wrap_up_then_available(ctl)
    rows = await _db(db_dsn, "SELECT * FROM calls WHERE call_id = $1", talk.call_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["disposition"], row["agent_id"], row["queue"]) == ("answered", AGENT, "sales")
    assert row["hangup_by"] == "caller" and row["answered_at"] is not None
    assert row["caller_number"] == "+12125550142"
    states = await agent_states(db_dsn, talk.call_id)
    assert states[-2:] == ["wrap_up", "available"] and "on_call" in states, states
    logins = await _db(
        db_dsn,
        "SELECT state, reason FROM agent_states WHERE agent_id = $1 AND call_id IS NULL ORDER BY seq",
        AGENT,
    )
    assert [(x["state"], x["reason"]) for x in logins][:3] == [
        ("available", "login"),
        ("paused", "lunch"),
        ("available", "resume"),
    ], logins


# ============================================================================ 2. the supervisor
async def test_supervisor_listens_whispers_and_barges_from_a_sip_phone(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    sup = center.config.supervisors[SUPERVISOR]
    agent = center.config.agents[AGENT]
    async with rig(center, db_dsn, tmp_path) as r:
        ctl = r.ctl
        phone = await agent_phone(r, AGENT)
        await ctl.acd.login(AGENT)
        # the supervisor's phone registers (it only calls out here)
        boss = phone_party(center, sup.endpoint)
        boss_port = free_port()
        await register(r, boss, contact_port=boss_port)
        # the agent on a call (general: 0)
        caller = await call_in(r, "+12125550143", {"language-menu": "1", "main-menu": "0"})
        talk = await bridged(r, caller, agent.endpoint)
        # *81 + the agent's id, the PIN
        ear = await r.media(SUPERVISOR_TONE)
        mark = r.watcher.last()
        spy = await r.start(
            sipp.call(sipp.Call(boss, media_port=ear.port, remote_hangup=True), r.work),
            r.remote,
            port=boss_port,
            service=center.config.feature_codes.supervisor_listen + AGENT,
            deadline=90,
            recv_timeout_ms=80_000,
        )
        new = await r.watcher.wait(
            lambda m: (
                m.name == "Newchannel" and (m.get("Channel") or "").startswith(f"PJSIP/{sup.endpoint}-")
            ),
            "no channel for the supervisor's call",
            after=mark,
        )
        spyer = new.get("Channel") or ""
        await r.watcher.wait(playing(spyer, "enter-pin"), "the PIN was never asked", after=new)
        await ear.press(SUPERVISOR_PIN + "#")
        started = await r.watcher.wait(
            lambda m: m.name == "ChanSpyStart" and m.get("SpyerChannel") == spyer, "ChanSpy never started"
        )
        assert started.get("SpyeeChannel") == talk.leg
        listen_at = r.watcher.at(started)
        await ear.until(
            lambda: ear.hears(CALLER_TONE, since=listen_at) and ear.hears(AGENT_TONE, since=listen_at),
            "the supervisor does not hear the call",
        )
        # 5: whisper to the agent. ChanSpy switches when the key ends, so nothing of the
        # supervisor may reach the agent before the key's end packet left the phone.
        await ear.press("5")
        whisper_at = ear.keys_sent[-1][1]
        five = await r.watcher.wait(
            lambda m: m.name == "DTMFEnd" and m.get("Channel") == spyer and m.get("Digit") == "5",
            "no 5",
            after=started,
        )
        assert not phone.media.hears(SUPERVISOR_TONE, since=listen_at, until=whisper_at, frames=5)
        await phone.media.until(
            lambda: phone.media.hears(SUPERVISOR_TONE, since=whisper_at),
            "the agent does not hear the whisper",
        )
        # 6: barge (both parties hear the supervisor)
        await ear.press("6")
        barge_at = ear.keys_sent[-1][1]
        await r.watcher.wait(
            lambda m: m.name == "DTMFEnd" and m.get("Channel") == spyer and m.get("Digit") == "6",
            "no 6",
            after=five,  # (the PIN has a 6 too)
        )
        assert not caller.media.hears(SUPERVISOR_TONE, since=talk.at, until=barge_at, frames=5)
        await caller.media.until(
            lambda: caller.media.hears(SUPERVISOR_TONE, since=barge_at), "the caller does not hear the barge"
        )
        await phone.media.until(
            lambda: phone.media.hears(SUPERVISOR_TONE, since=barge_at), "the agent does not hear the barge"
        )
        # the caller hangs up: the agent's leg ends, ChanSpy (E) and the supervisor's call with it
        caller.proc.poke()
        for proc in (caller.proc, phone.ringer, spy):
            done = await proc.finish()
            assert done.ok, done.explain()
        await wait_until(lambda: ctl.monitor.sessions == {}, "the monitoring session did not end")
        await wrap_up_then_available(ctl)
    events = await _db(
        db_dsn,
        "SELECT kind, detail FROM call_events WHERE call_id = $1 AND kind LIKE 'monitor_%' ORDER BY seq",
        talk.call_id,
    )
    assert [(e["kind"], _detail(e)["mode"]) for e in events] == [
        ("monitor_start", "listen"),
        ("monitor_mode", "whisper"),
        ("monitor_mode", "barge"),
        ("monitor_end", "barge"),
    ], events
    assert _detail(events[-1])["modes"] == "listen,whisper,barge"
    sessions = await _db(db_dsn, "SELECT * FROM monitor_sessions WHERE call_id = $1", talk.call_id)
    assert [(s["supervisor_id"], s["agent_id"], s["mode"], s["outcome"]) for s in sessions] == [
        (SUPERVISOR, AGENT, "barge", "ended")
    ]


def _detail(row: asyncpg.Record) -> dict[str, Any]:
    d = row["detail"]
    return dict(json.loads(d) if isinstance(d, str) else d)


# ============================================================================ 3. a dead caller leg
async def test_a_caller_gone_silent_is_hung_up_by_the_rtp_timeout_and_the_agent_freed(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    agent = center.config.agents[AGENT]
    async with rig(center, db_dsn, tmp_path) as r:
        ctl = r.ctl
        phone = await agent_phone(r, AGENT)
        await ctl.acd.login(AGENT)
        caller = await call_in(r, "+12125550144", {"language-menu": "1", "main-menu": "0"}, hangs_up=False)
        talk = await bridged(r, caller, agent.endpoint)
        await hear_each_other(phone, caller, talk)
        loop = asyncio.get_running_loop()
        caller.media.mute()  # the caller's network is gone: no more RTP
        silent_at = loop.time()
        hangup = await r.watcher.wait(
            lambda m: m.name == "Hangup" and m.get("Channel") == caller.channel,
            "the silent caller was never hung up",
            timeout=RTP_TIMEOUT + 15,
        )
        after = r.watcher.at(hangup) - silent_at
        assert hangup.get("Cause") == str(MEDIA_TIMEOUT_CAUSE), hangup.headers
        assert RTP_TIMEOUT - 1 <= after <= RTP_TIMEOUT + 5, after
        for proc in (caller.proc, phone.ringer):  # both phones got the PBX's BYE
            done = await proc.finish()
            assert done.ok, done.explain()
        await wrap_up_then_available(ctl)
    rows = await _db(db_dsn, "SELECT * FROM calls WHERE call_id = $1", talk.call_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row["disposition"], row["agent_id"]) == ("answered", AGENT)
    assert row["hangup_by"] == "caller_media_timeout" and row["hangup_cause"] == MEDIA_TIMEOUT_CAUSE
    states = await agent_states(db_dsn, talk.call_id)
    assert states[-2:] == ["wrap_up", "available"], states
