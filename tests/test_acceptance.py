"""Acceptance scenarios: the example center on a REAL Asterisk 22 (``ASTERISK_BIN``) with SIPp as
every party, the controller with the plugins ``callcenter run`` starts, a private PostgreSQL.
Marked ``acceptance``: run only by ``make acceptance`` (pytest ``--acceptance``), never by
``make test``.

The parties and their media are those of ``tests/test_real_phones.py`` (agents' phones are SIPp
servers registered to their PJSIP endpoints; callers come from the carrier's address with RFC
4733 keys in their RTP). Each scenario ends with the call log read back from PostgreSQL:

1. a carrier call to each DID goes through its IVR menus (keys typed as RFC 4733 events) into the
   queue the keys chose, and leaves one call-log row naming that queue;
2. RONA: the best agent's phone rings and is never picked up (the PBX CANCELs it), the agent is
   paused with the queue's RONA reason, and the next agent's phone, answering after 2 s of
   ringing, takes the call;
3. an agent on a recorded call dials ``*15`` (PCI pause) and ``*16`` (resume) from a second line
   of the phone, then ``*12`` to log out once the call ended;
4. a supervisor user starts a listen-in over the HTTP API (bearer token): the supervisor's SIP
   phone rings, answers and hears both parties, the caller hears nothing of it; the API stops it;
5. an agent transfers the caller from the API, blind to a queue (the next agent answers) or
   attended to another agent's extension (Atxfer: the agents talk, the first hangs up);
6. ring-all: both free agents' phones ring; one answers, the other gets the PBX's CANCEL and is
   not counted as a RONA;
7. hold from the API: the caller hears its queue's music (not the agent), the agent silence;
   unhold bridges them again, and the call log's hold_seconds is the hold's length.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.config import model as cm
from callcenter.store import users
from callcenter.web.auth import hash_password
from tests import sipp
from tests.asterisk_harness import CARRIER_ADDRESS, Center, free_port, real_center, wait_until
from tests.test_real_phones import (
    AGENT_TONE,
    CALLER_TONE,
    SUPERVISOR,
    SUPERVISOR_PIN,
    SUPERVISOR_TONE,
    AgentPhone,
    Bridged,
    Caller,
    Rig,
    _db,
    _quick,
    bridged,
    dial_feature,
    hear_each_other,
    phone_party,
    playing,
    register,
    rig,
    udp_bound,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.acceptance, pytest.mark.timeout(240)]

RING_TIMEOUT = 6.0  # the queues' ring time before RONA, in this module (the example's is 15-25 s)


def _accept(config: cm.Config) -> cm.Config:
    """``_quick`` (5 s RTP timeout, 2 s wrap-ups) and a 6 s ring time, one RONA pauses; the
    general queue rings all its agents at once."""
    config = _quick(config)
    queues = {
        q: dataclasses.replace(queue, ring_timeout=RING_TIMEOUT, rona_count=1)
        for q, queue in config.queues.items()
    }
    # a small team rung all at once (scenario 6)
    queues["general"] = dataclasses.replace(queues["general"], strategy=cm.Strategy.RING_ALL)
    return dataclasses.replace(config, queues=cm.frozen_map(queues))


@pytest.fixture(scope="module")
def center() -> Iterator[Center]:
    with real_center(tweak=_accept) as c:
        yield c


# ============================================================================ the parties
async def phone_of(
    r: Rig, agent_id: str, scenario: Callable[[sipp.Party, int], str], *, tone: int = AGENT_TONE
) -> AgentPhone:
    """The agent's (or supervisor's) phone as a SIPp server running ``scenario(party, media
    port)`` for the INVITE it gets (and answering qualify OPTIONS), registered, and reachable
    for the PBX."""
    person = r.center.config.agents.get(agent_id) or r.center.config.supervisors[agent_id]
    party = phone_party(r.center, person.endpoint)
    media = await r.media(tone)
    port = free_port()
    mark = r.watcher.last()
    ringer = await r.start(
        scenario(party, media.port), None, port=port, deadline=200, recv_timeout_ms=180_000, answers=True
    )
    await udp_bound(port)
    await register(r, party, contact_port=port)
    await r.watcher.wait(
        lambda m: (
            m.name == "ContactStatus"
            and m.get("AOR") == person.endpoint
            and m.get("ContactStatus") == "Reachable"
            and f":{port}" in (m.get("URI") or "")
        ),
        f"{agent_id}'s phone was never reachable (qualify)",
        after=mark,
    )
    return AgentPhone(party, ringer, media, free_port())


def answers_after(ring_ms: int) -> Callable[[sipp.Party, int], str]:
    return lambda party, media_port: sipp.answer(party, media_port=media_port, ring_ms=ring_ms)


def never_answers(party: sipp.Party, media_port: int) -> str:
    return sipp.never_answers(party)


async def carrier_call(r: Rig, did: str, number: str, keys: list[tuple[str, str]]) -> Caller:
    """A carrier call to ``did`` (as the carrier sends it: digits, no ``+``) from ``number``; each
    (prompt, keys) pair typed when the IVR plays that prompt, in order. The caller hangs up when
    the test pokes it."""
    media = await r.media(CALLER_TONE, host=CARRIER_ADDRESS)
    mark = r.watcher.last()
    proc = await r.start(
        sipp.call(
            sipp.Call(sipp.Party(number, display="Test Caller"), media_port=media.port, until_poked=True),
            r.work,
        ),
        r.remote,
        local_ip=CARRIER_ADDRESS,
        port=free_port(),
        service=did.lstrip("+"),
        deadline=150,
        recv_timeout_ms=140_000,
    )
    new = await r.watcher.wait(
        lambda m: (
            m.name == "Newchannel"
            and (m.get("Channel") or "").startswith("PJSIP/carrier-")
            and m.get("CallerIDNum") == number
        ),
        f"no PJSIP/carrier channel for {did}",
        after=mark,
    )
    chan = new.get("Channel") or ""
    for prompt, typed in keys:
        await r.watcher.wait(
            playing(chan, prompt), f"{did}: the IVR never played {prompt}", after=new, timeout=40
        )
        await media.press(typed)
    return Caller(proc, media, chan)


def queued(channel: str) -> Callable[[Message], bool]:
    """The caller waits in a queue: music on hold starts on its channel (``cc-hold``)."""
    return lambda m: m.name == "MusicOnHoldStart" and m.get("Channel") == channel


async def bridged_after(r: Rig, caller: Caller, endpoint: str, after: Message) -> Bridged:
    """``bridged`` for an offer after the event ``after`` (an earlier offer failed)."""
    answered = await r.watcher.wait(
        lambda m: m.name == "OriginateResponse" and (m.get("Uniqueid") or "").startswith("ccleg-"),
        "the ACD never offered the call again",
        timeout=60,
        after=after,
    )
    assert answered.get("Response") == "Success", answered.headers
    assert (answered.get("Channel") or "").startswith(f"PJSIP/{endpoint}-"), answered.headers
    leg = answered.get("Uniqueid")
    enter_caller = await r.watcher.wait(
        lambda m: m.name == "BridgeEnter" and m.get("Channel") == caller.channel,
        "caller not bridged",
        after=after,
    )
    enter_leg = await r.watcher.wait(
        lambda m: m.name == "BridgeEnter" and m.get("Uniqueid") == leg, "agent leg not bridged", after=after
    )
    assert enter_caller.get("BridgeUniqueid") == enter_leg.get("BridgeUniqueid")
    reply = await r.watcher.client.send_action(
        names.ACTION_GETVAR, {"Channel": caller.channel, "Variable": names.VAR_CALL_ID}, timeout=10
    )
    call_id = reply.get("Value")
    assert call_id
    return Bridged(
        enter_leg.get("Channel") or "", max(r.watcher.at(enter_caller), r.watcher.at(enter_leg)), call_id
    )


async def call_rows(dsn: str, number: str) -> list[dict[str, object]]:
    return [dict(x) for x in await _db(dsn, "SELECT * FROM calls WHERE caller_number = $1", number)]


# ============================================================================ 1. every DID
# (DID, keys typed at each prompt, the queue they lead to)
ROUTES = [
    ("+18005550100", [("language-menu", "1"), ("main-menu", "1")], "sales"),
    ("+12125550111", [("language-menu", "1"), ("main-menu", "3"), ("support-menu", "1")], "support"),
    ("+12125550122", [("enter-account", "12345674#"), ("billing-menu", "1")], "billing"),
    ("+13055550133", [("language-menu", "2"), ("main-menu", "0")], "general"),
]


@pytest.mark.parametrize(("did", "keys", "queue"), ROUTES, ids=[r[0] for r in ROUTES])
async def test_a_carrier_call_to_each_did_goes_through_its_ivr_into_the_chosen_queue(
    center: Center, db_dsn: str, tmp_path: Path, did: str, keys: list[tuple[str, str]], queue: str
) -> None:
    number = "+1212555" + did[-4:]
    async with rig(center, db_dsn, tmp_path) as r:
        caller = await carrier_call(r, did, number, keys)
        await r.watcher.wait(queued(caller.channel), f"{did}: the caller never waited in a queue", timeout=30)
        await wait_until(
            lambda: r.ctl.acd.snapshot()["waiting"].get(queue) == 1, f"{did}: nobody waits in {queue}"
        )
        caller.proc.poke()  # the caller gives up
        done = await caller.proc.finish()
        assert done.ok, done.explain()
        await wait_until(lambda: not r.ctl.acd.snapshot()["calls"], f"{did}: the call is still open")
    rows = await call_rows(db_dsn, number)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["queue"], row["disposition"], row["hangup_by"]) == (queue, "abandoned_queue", "caller"), row
    assert row["did"] == did.lstrip("+")
    assert row["answered_at"] is None and row["agent_id"] is None


# ============================================================================ 2. RONA
async def test_an_agent_phone_that_never_answers_is_paused_and_the_next_agent_answers_after_ringing(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    number = "+12125559001"
    sales = center.config.queues["sales"]
    assert sales.rona_action is cm.RonaAction.PAUSE  # the example's: pause with a reason
    async with rig(center, db_dsn, tmp_path) as r:
        ctl = r.ctl
        deaf = await phone_of(r, "1001", never_answers)  # sales 9: offered first
        slow = await phone_of(r, "1002", answers_after(2000))  # sales 6
        await ctl.acd.login("1001")
        await ctl.acd.login("1002")
        caller = await carrier_call(r, "+18005550100", number, [("language-menu", "1"), ("main-menu", "1")])
        first = await r.watcher.wait(
            lambda m: m.name == "OriginateResponse" and (m.get("Uniqueid") or "").startswith("ccleg-"),
            "the ACD never offered the call",
            timeout=30,
        )
        assert first.get("Response") == "Failure", first.headers
        assert first.get("Channel") == "PJSIP/agent1001", (
            first.headers
        )  # (a failed Originate: its dial string)
        rona = await deaf.ringer.finish()  # CANCEL answered, 487, ACK
        assert rona.ok, rona.explain()
        assert "CANCEL sip:" in rona.messages
        state = ctl.acd.agent_state("1001")
        assert (state.status.value, state.reason) == ("paused", sales.rona_pause_reason)
        talk = await bridged_after(r, caller, "agent1002", first)
        await hear_each_other(slow, caller, talk)
        caller.proc.poke()
        for proc in (caller.proc, slow.ringer):
            done = await proc.finish()
            assert done.ok, done.explain()
        await wait_until(
            lambda: ctl.acd.agent_state("1002").status.value == "available", "1002 never available again"
        )
    rows = await call_rows(db_dsn, number)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["disposition"], row["agent_id"], row["queue"], row["hangup_by"]) == (
        "answered",
        "1002",
        "sales",
        "caller",
    ), row
    missed = await _db(
        db_dsn, "SELECT state, reason FROM agent_states WHERE agent_id = '1001' ORDER BY seq DESC LIMIT 1"
    )
    assert [(x["state"], x["reason"]) for x in missed] == [("paused", sales.rona_pause_reason)]
    legs = await _db(
        db_dsn,
        "SELECT agent_id, answered_at IS NOT NULL AS up FROM call_legs"
        " WHERE call_id = $1 AND agent_id IS NOT NULL ORDER BY started_at",
        talk.call_id,
    )
    assert [(x["agent_id"], x["up"]) for x in legs] == [("1001", False), ("1002", True)], legs
    offers = await _db(
        db_dsn,
        "SELECT kind, agent_id FROM call_events"
        " WHERE call_id = $1 AND kind IN ('offer', 'rona', 'answer') ORDER BY seq",
        talk.call_id,
    )
    assert [(x["kind"], x["agent_id"]) for x in offers] == [
        ("offer", "1001"),
        ("rona", "1001"),
        ("offer", "1002"),
        ("answer", "1002"),
    ], offers


# ============================================================================ 3. feature codes in a call
async def test_pci_pause_and_resume_from_a_second_line_then_logout_with_the_feature_codes(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    codes = center.config.feature_codes
    number = "+12125559002"
    async with rig(center, db_dsn, tmp_path) as r:
        ctl = r.ctl
        phone = await phone_of(r, "1001", answers_after(0))
        await ctl.acd.login("1001")
        caller = await carrier_call(r, "+18005550100", number, [("language-menu", "1"), ("main-menu", "1")])
        talk = await bridged(r, caller, "agent1001")  # sales: recorded (always)
        await r.watcher.wait(lambda m: m.name == "MixMonitorStart", "the call is not recorded")
        # each confirmation plays only when the recording was muted / unmuted
        await dial_feature(
            r, phone.party, phone.out_port, codes.pci_pause, prompt=None, keys="", confirmation="pci-paused"
        )
        await dial_feature(
            r, phone.party, phone.out_port, codes.pci_resume, prompt=None, keys="", confirmation="pci-resumed"
        )
        caller.proc.poke()
        for proc in (caller.proc, phone.ringer):
            done = await proc.finish()
            assert done.ok, done.explain()
        await wait_until(lambda: ctl.acd.agent_state("1001").status.value == "available", "never available")
        await dial_feature(
            r,
            phone.party,
            phone.out_port,
            codes.agent_logout,
            prompt=None,
            keys="",
            confirmation="agent-logged-out",
        )
        assert ctl.acd.agent_state("1001").status.value == "logged_out"
    kinds = await _db(
        db_dsn,
        "SELECT kind FROM call_events WHERE call_id = $1 AND kind LIKE 'pci_%' ORDER BY seq",
        talk.call_id,
    )
    assert [k["kind"] for k in kinds] == ["pci_pause", "pci_resume"], kinds
    rows = await call_rows(db_dsn, number)
    assert len(rows) == 1 and rows[0]["agent_id"] == "1001", rows


# ============================================================================ 4. listen-in from the API
async def test_a_supervisor_starts_a_listen_in_from_the_http_api_and_the_phone_rings_and_hears(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    number = "+12125559003"
    conn = await asyncpg.connect(db_dsn, timeout=10)
    try:
        await users.add_user(
            conn,
            "grace",
            "supervisor",
            hash_password("grace-password"),
            queues=["sales", "general"],
            agent_id=SUPERVISOR,
        )
        token = await users.issue_token(conn, "grace")
    finally:
        await asyncio.wait_for(conn.close(), 10)
    async with rig(center, db_dsn, tmp_path, http=True) as r:
        ctl = r.ctl
        assert ctl.http is not None
        phone = await phone_of(r, "1001", answers_after(0))
        boss = await phone_of(r, SUPERVISOR, answers_after(1000), tone=SUPERVISOR_TONE)
        await ctl.acd.login("1001")
        caller = await carrier_call(r, "+18005550100", number, [("language-menu", "1"), ("main-menu", "1")])
        talk = await bridged(r, caller, "agent1001")
        base = f"http://127.0.0.1:{ctl.http.port}"
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            async with http.post(
                f"{base}/api/monitor/sessions",
                json={
                    "supervisor_id": SUPERVISOR,
                    "agent_id": "1001",
                    "mode": "listen",
                    "pin": SUPERVISOR_PIN,
                },
                headers=auth,
            ) as resp:
                body = await resp.json()
                assert resp.status == 201, body
            started = await r.watcher.wait(
                lambda m: m.name == "ChanSpyStart" and m.get("SpyeeChannel") == talk.leg,
                "ChanSpy never started",
            )
            assert (started.get("SpyerChannel") or "").startswith(f"PJSIP/super{SUPERVISOR}-"), (
                started.headers
            )
            at = r.watcher.at(started)
            await boss.media.until(
                lambda: boss.media.hears(CALLER_TONE, since=at) and boss.media.hears(AGENT_TONE, since=at),
                "the supervisor does not hear the call",
            )
            assert not caller.media.hears(SUPERVISOR_TONE, since=at, frames=5)  # a listen-in is silent
            async with http.get(f"{base}/api/monitor/sessions", headers=auth) as resp:
                listed = await resp.json()
                assert resp.status == 200 and len(listed["sessions"]) == 1, listed
            sid = body["session_id"]
            async with http.post(f"{base}/api/monitor/sessions/{sid}/stop", json={}, headers=auth) as resp:
                assert resp.status == 200, await resp.text()
        done = await boss.ringer.finish()  # the PBX hung the supervisor's phone up
        assert done.ok, done.explain()
        await wait_until(lambda: ctl.monitor.sessions == {}, "the monitoring session did not end")
        caller.proc.poke()
        for proc in (caller.proc, phone.ringer):
            done = await proc.finish()
            assert done.ok, done.explain()
    sessions = await _db(db_dsn, "SELECT * FROM monitor_sessions WHERE call_id = $1", talk.call_id)
    assert [(s["supervisor_id"], s["agent_id"], s["mode"]) for s in sessions] == [
        (SUPERVISOR, "1001", "listen")
    ]
    audit = await _db(db_dsn, "SELECT * FROM audit_log ORDER BY 1")
    assert any("monitor" in str(dict(a)) for a in audit), audit


# ============================================================================ 5. transfers
OTHER_TONE = 1200  # the second agent's phone


async def api_user(dsn: str, name: str, role: str, **kw: object) -> str:
    """A user of the HTTP API and a bearer token for it (as ``callcenter users add`` / ``token``)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await users.add_user(conn, name, role, hash_password(f"{name}-password"), **kw)
        return str(await users.issue_token(conn, name))
    finally:
        await asyncio.wait_for(conn.close(), 10)


async def post(port: int, token: str, path: str, body: dict[str, object]) -> dict[str, object]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
        http.post(
            f"http://127.0.0.1:{port}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp,
    ):
        got = await resp.json()
        assert resp.status in (200, 201), (resp.status, got)
        return dict(got)


@pytest.mark.parametrize("attended", [False, True], ids=["blind-to-a-queue", "attended-to-an-agent"])
async def test_an_agent_transfers_the_caller_blind_to_a_queue_or_attended_to_another_agent(
    center: Center, db_dsn: str, tmp_path: Path, attended: bool
) -> None:
    number = "+1212555910" + ("2" if attended else "1")
    token = await api_user(db_dsn, "alice", "agent", agent_id="1001")
    async with rig(center, db_dsn, tmp_path, http=True) as r:
        ctl = r.ctl
        assert ctl.http is not None
        first = await phone_of(r, "1001", answers_after(0))
        second = await phone_of(r, "1002", answers_after(1000), tone=OTHER_TONE)
        await ctl.acd.login("1001")
        if not attended:
            await ctl.acd.login("1002")  # the queue's next agent
            await ctl.acd.pause("1002", "break")  # not offered the first call
        caller = await carrier_call(r, "+18005550100", number, [("language-menu", "1"), ("main-menu", "1")])
        talk = await bridged(r, caller, "agent1001")
        await hear_each_other(first, caller, talk)
        mark = r.watcher.last()
        assert mark is not None
        if attended:
            await post(
                ctl.http.port,
                token,
                f"/api/calls/{talk.call_id}/transfer",
                {"number": "2002", "attended": True},
            )
            # the agent talks to the colleague first (1002's phone rings, answers after 1 s) ...
            await first.media.until(
                lambda: first.media.hears(OTHER_TONE, since=r.watcher.at(mark)), "1001 never spoke to 1002"
            )
            # ... then hangs up, which completes the transfer
            await r.watcher.client.send_action(names.ACTION_HANGUP, {"Channel": talk.leg}, timeout=10)
        else:
            await ctl.acd.resume("1002")
            await post(ctl.http.port, token, f"/api/calls/{talk.call_id}/transfer", {"queue": "general"})
            await bridged_after(r, caller, "agent1002", mark)
        done = await first.ringer.finish()  # the first agent's phone was hung up
        assert done.ok, done.explain()
        now = asyncio.get_running_loop().time()
        await caller.media.until(
            lambda: caller.media.hears(OTHER_TONE, since=now), "the caller never reached 1002"
        )
        await second.media.until(
            lambda: second.media.hears(CALLER_TONE, since=now), "1002 never hears the caller"
        )
        caller.proc.poke()
        for proc in (caller.proc, second.ringer):
            done = await proc.finish()
            assert done.ok, done.explain()
        await wait_until(lambda: ctl.acd.agent_state("1001").status.value == "available", "1001 never freed")
    rows = await call_rows(db_dsn, number)
    assert len(rows) == 1, rows
    # An attended transfer completes when the first agent hangs up: the log ends the agent's part
    # there ("agent"); it does not follow the caller's talk with the colleague.
    ended_by = "agent" if attended else "caller"
    assert (rows[0]["disposition"], rows[0]["hangup_by"]) == ("answered", ended_by), rows[0]
    transfers = await _db(
        db_dsn, "SELECT detail FROM call_events WHERE call_id = $1 AND kind = 'transfer'", talk.call_id
    )
    assert len(transfers) == 1, transfers
    detail = (
        json.loads(transfers[0]["detail"])
        if isinstance(transfers[0]["detail"], str)
        else transfers[0]["detail"]
    )
    assert (detail["kind"], detail["target"]) == (("attended", "2002") if attended else ("blind", "general"))
    legs = await _db(
        db_dsn,
        "SELECT agent_id FROM call_legs WHERE call_id = $1"
        " AND answered_at IS NOT NULL AND agent_id IS NOT NULL ORDER BY started_at",
        talk.call_id,
    )
    assert [x["agent_id"] for x in legs][:1] == ["1001"], legs


# ============================================================================ 6. ring-all
async def test_ring_all_rings_every_free_agent_and_cancels_the_others_when_one_answers(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    number = "+12125559104"
    async with rig(center, db_dsn, tmp_path) as r:
        ctl = r.ctl
        idle = await phone_of(r, "1001", never_answers)
        quick = await phone_of(r, "1002", answers_after(1500))
        await ctl.acd.login("1001")
        await ctl.acd.login("1002")
        caller = await carrier_call(r, "+13055550133", number, [("language-menu", "2"), ("main-menu", "0")])
        talk = await bridged(r, caller, "agent1002")
        lost = await idle.ringer.finish()  # 1001's phone rang too, then got the PBX's CANCEL
        assert lost.ok, lost.explain()
        assert "CANCEL sip:" in lost.messages
        await hear_each_other(quick, caller, talk)
        assert ctl.acd.agent_state("1001").status.value == "available"  # losing the race is no RONA
        caller.proc.poke()
        for proc in (caller.proc, quick.ringer):
            done = await proc.finish()
            assert done.ok, done.explain()
    rows = await call_rows(db_dsn, number)
    assert len(rows) == 1, rows
    assert (rows[0]["disposition"], rows[0]["agent_id"], rows[0]["queue"]) == ("answered", "1002", "general")
    offers = await _db(
        db_dsn,
        "SELECT kind, agent_id FROM call_events WHERE call_id = $1 AND kind IN ('offer', 'rona', 'answer')",
        talk.call_id,
    )
    kinds = sorted((x["kind"], x["agent_id"]) for x in offers)
    assert kinds == [("answer", "1002"), ("offer", "1001"), ("offer", "1002")], kinds


# ============================================================================ 7. hold from the API
async def test_an_agent_holds_the_caller_from_the_api_music_then_unholds_and_the_log_counts_it(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    number = "+12125559105"
    token = await api_user(db_dsn, "holly", "agent", agent_id="1001")
    async with rig(center, db_dsn, tmp_path, http=True) as r:
        ctl = r.ctl
        assert ctl.http is not None
        phone = await phone_of(r, "1001", answers_after(0))
        await ctl.acd.login("1001")
        caller = await carrier_call(r, "+18005550100", number, [("language-menu", "1"), ("main-menu", "1")])
        talk = await bridged(r, caller, "agent1001")
        await hear_each_other(phone, caller, talk)
        loop = asyncio.get_running_loop()
        mark = r.watcher.last()
        await post(ctl.http.port, token, f"/api/calls/{talk.call_id}/hold", {})
        held_at = loop.time()
        music = await r.watcher.wait(
            queued(caller.channel), "no music on hold for the held caller", after=mark
        )
        settled = max(held_at, r.watcher.at(music)) + 0.5  # packets in flight before the Redirect
        # the caller hears its queue's music: loud audio from Asterisk, none of it the agent
        await caller.media.until(
            lambda: caller.media.loud(since=settled) >= 100, "the held caller hears no music"
        )
        quiet = loop.time()
        assert caller.media.share(AGENT_TONE, since=settled) < 0.1, caller.media.share(
            AGENT_TONE, since=settled
        )
        assert not caller.media.hears(AGENT_TONE, since=settled, frames=10)
        # the agent hears silence: nothing loud, none of the caller
        assert phone.media.loud(since=settled, until=quiet) == 0, phone.media.loud(since=settled, until=quiet)
        assert not phone.media.hears(CALLER_TONE, since=settled, frames=1)
        assert ctl.acd.agent_state("1001").status.value == "on_call"
        mark = r.watcher.last()
        await post(ctl.http.port, token, f"/api/calls/{talk.call_id}/unhold", {})
        unheld_at = loop.time()
        again = await r.watcher.wait(
            lambda m: m.name == "BridgeEnter" and m.get("Channel") == caller.channel,
            "the caller was not bridged again",
            after=mark,
        )
        await hear_each_other(phone, caller, Bridged(talk.leg, r.watcher.at(again), talk.call_id))
        held_for = unheld_at - held_at
        caller.proc.poke()
        for proc in (caller.proc, phone.ringer):
            done = await proc.finish()
            assert done.ok, done.explain()
    rows = await call_rows(db_dsn, number)
    assert len(rows) == 1, rows
    assert (rows[0]["disposition"], rows[0]["agent_id"], rows[0]["hangup_by"]) == (
        "answered",
        "1001",
        "caller",
    )
    hold_seconds = rows[0]["hold_seconds"]
    assert hold_seconds is not None and abs(float(hold_seconds) - held_for) <= 1.0, (hold_seconds, held_for)
    kinds = await _db(
        db_dsn,
        "SELECT kind FROM call_events WHERE call_id = $1 AND kind IN ('hold', 'unhold') ORDER BY seq",
        talk.call_id,
    )
    assert [k["kind"] for k in kinds] == ["hold", "unhold"], kinds
