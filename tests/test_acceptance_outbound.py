"""Acceptance: the outbound dialer on a REAL Asterisk 22 (``ASTERISK_BIN``), its ``dialer`` trunk
pointed at a SIPp target on loopback that plays greetings made with sox. Marked ``acceptance``:
run only by ``make acceptance`` (pytest ``--acceptance``), never by ``make test``.

The example center runs with the controller ``callcenter run`` starts (the dialer plugin); its
``renewals`` campaign (AMD on, the message left after a machine's beep) dials one imported
contact, progressive, with agent 1001 logged in. The test's copy of the config points the
``dialer`` trunk at the target (``TARGET_ADDRESS``, UDP, no registration: a SIPp target does
not take REGISTER), and the test asks Asterisk to qualify the trunk once the target listens (a
contact found unreachable is never dialled). Each scenario ends with the contact's attempt read
back from ``campaign_attempts``:

1. human: "hello" (one 1 s burst, then silence) -> AMD HUMAN -> agent 1001's SIP phone rings and
   is bridged to the contact (each hears the other) -> ``connected``;
2. machine: a 4 s greeting of tone bursts, a 1 kHz beep, silence -> AMD MACHINE ->
   ``WaitForSilence`` -> the campaign's message reaches the target only after the beep ended
   (and its silence) -> ``machine_message``;
3. busy: the target answers 486 -> ``busy``;
4. no answer: the target rings until the PBX CANCELs it at the campaign's ring time ->
   ``no_answer``;
5. silence: the target answers and says nothing -> AMD MACHINE (cause INITIALSILENCE, after
   ``initial_silence``, as Asterisk's AMD decides) -> the message -> ``machine_message``.

Busy and no answer free the agent the progressive campaign held for the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from callcenter.asterisk.ami import Message
from callcenter.config import model as cm
from callcenter.outbound import service as ds
from callcenter.outbound.dialer import CampaignState
from callcenter.outbound.runtime import runtime_from_config
from callcenter.store.campaigns import CampaignStore
from tests import sipp
from tests.asterisk_harness import Center, command, free_port, real_center, wait_until
from tests.media import RtpPeer, pcmu_frames
from tests.test_acceptance import answers_after, phone_of
from tests.test_real_phones import AGENT_TONE, Rig, _db, _quick, rig, udp_bound

pytestmark = [pytest.mark.asterisk, pytest.mark.acceptance, pytest.mark.timeout(180)]

CAMPAIGN = "renewals"
AGENT = "1001"  # in sales, the campaign's queue
TARGET_ADDRESS = "127.0.0.3"  # loopback, not the phones' 127.0.0.1
RING_TIMEOUT = 8.0  # the campaign's, in this module (the example's is 25 s)
TARGET_PORT = free_port()  # the dialer trunk's host port: each test's SIPp target listens there
CONTACT_TONE = 700  # "hello" and the greeting's bursts
log = logging.getLogger(__name__)


def _outbound(config: cm.Config) -> cm.Config:
    """``_quick``, the ``dialer`` trunk at the SIPp target (UDP, no registration, no auth), and
    only the ``renewals`` campaign, progressive (an agent held before each dial), no agent kept
    idle for inbound, ringing ``RING_TIMEOUT`` seconds."""
    config = _quick(config)
    trunk = dataclasses.replace(
        config.trunks["dialer"], host=TARGET_ADDRESS, port=TARGET_PORT, transport=cm.Transport.UDP, auth=None
    )
    camp = dataclasses.replace(
        config.campaigns[CAMPAIGN],
        mode=cm.DialMode.PROGRESSIVE,
        ring_timeout=RING_TIMEOUT,
        blend=cm.CampaignBlend(inbound_first=True, min_idle_for_inbound=0),
    )
    return dataclasses.replace(
        config,
        trunks=cm.frozen_map({**config.trunks, "dialer": trunk}),
        campaigns=cm.frozen_map({CAMPAIGN: camp}),
    )


@pytest.fixture(scope="module")
def center() -> Iterator[Center]:
    with real_center(tweak=_outbound) as c:
        yield c


# ============================================================================ the greetings (sox)
def sox_wav(path: Path, *effects: list[str]) -> bytes:
    """A 16-bit mono 8 kHz WAV made by sox: the pieces ``effects`` (each one ``synth`` argument
    list) one after another."""
    parts = []
    for n, synth in enumerate(effects):
        part = path.with_name(f"{path.stem}-{n}.wav")
        subprocess.run(
            ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(part), "synth", *synth],
            check=True,
            capture_output=True,
            timeout=30,
        )
        parts.append(str(part))
    subprocess.run(["sox", *parts, str(path)], check=True, capture_output=True, timeout=30)
    return path.read_bytes()


def burst(seconds: float, freq: int = CONTACT_TONE) -> list[str]:
    return [f"{seconds}", "sine", str(freq), "vol", "0.4"]


def silence(seconds: float) -> list[str]:
    return [f"{seconds}", "sine", "0", "vol", "0"]


def hello(work: Path) -> list[bytes]:
    """A person: "hello" (1 s) then 2.5 s of silence (AMD needs 0.8 s of it); the line's own
    tone follows (the person talks on)."""
    return pcmu_frames(sox_wav(work / "hello.wav", burst(1.0), silence(2.5)))


BEEP_SECONDS = 0.5


def machine_greeting(work: Path) -> tuple[list[bytes], int]:
    """An answering machine: 4 s of words (0.4 s bursts 0.2 s apart), 0.3 s of silence, a 1 kHz
    beep, then 8 s of silence; and the index of the beep's last frame."""
    words: list[list[str]] = []
    for i in range(7):
        words += [burst(0.4, CONTACT_TONE + 50 * (i % 3)), silence(0.2)]
    pieces = [*words[:-1], silence(0.3), burst(BEEP_SECONDS, 1000), silence(8.0)]
    frames = pcmu_frames(sox_wav(work / "machine.wav", *pieces))
    greeting = pcmu_frames(sox_wav(work / "greeting-only.wav", *words[:-1], silence(0.3)))
    return frames, len(greeting) + int(BEEP_SECONDS / 0.02) - 1


# ============================================================================ the rig
async def import_contact(config: cm.Config, dsn: str, work: Path, number: str) -> None:
    """``callcenter campaign import`` of one contact into the campaign, which is running."""
    camp = config.campaigns[CAMPAIGN]
    store = await CampaignStore.connect(dsn)
    try:
        await store.upsert_campaign(runtime_from_config(camp, default_region=config.center.country))
        await store.set_state(CAMPAIGN, CampaignState.RUNNING)
        csv = work / "contacts.csv"
        csv.write_text(f"phone,name\n{number},Test Contact\n", encoding="utf-8")
        result, added = await ds.import_file(
            store,
            CAMPAIGN,
            csv,
            default_region=config.center.country,
            default_zone=camp.timezone,
            config=config,
        )
    finally:
        await store.close()
    assert added == 1 and not result.problems, result


async def target(r: Rig, scenario: str) -> sipp.SippProcess:
    """The contact's line: a SIPp server at the trunk's address running ``scenario``, answering
    OPTIONS; once it listens, Asterisk qualifies the trunk and finds it reachable."""
    proc = await r.start(
        scenario,
        None,
        local_ip=TARGET_ADDRESS,
        port=TARGET_PORT,
        deadline=120,
        recv_timeout_ms=100_000,
        answers=True,
    )
    await udp_bound(TARGET_PORT, host=TARGET_ADDRESS)
    await r.watcher.client.send_action("PJSIPQualify", {"Endpoint": "dialer"}, timeout=10)
    # Reachable already (a previous test's target answered the last qualify): no event says so.
    contact = f"dialer/sip:{TARGET_ADDRESS}:{TARGET_PORT}"
    shown = ""

    async def reachable() -> None:
        nonlocal shown
        while True:
            shown = await command(r.watcher.client, "pjsip show contacts")
            if any(contact in line and "Avail" in line for line in shown.splitlines()):
                return
            await asyncio.sleep(0.1)  # the qualify's answer changes no event we could wait on

    try:
        await asyncio.wait_for(reachable(), 20)
    except TimeoutError:
        raise AssertionError(f"the dialer trunk never became reachable (qualify):\n{shown}") from None
    return proc


def answered_leg(m: Message) -> bool:
    """The trunk's leg to the contact is up (the target answered)."""
    return (
        m.name == "Newstate"
        and (m.get("Channel") or "").startswith("PJSIP/dialer-")
        and m.get("ChannelStateDesc") == "Up"
    )


def asterisk_rtp_port(messages: str) -> int:
    """Asterisk's media port from the INVITE it sent the target (SIPp's message log)."""
    invite = messages.split("INVITE sip:", 1)
    assert len(invite) == 2, messages[-2000:]
    found = re.search(r"m=audio (\d+) ", invite[1])
    assert found, invite[1][:2000]
    return int(found.group(1))


async def speak_on_answer(r: Rig, proc: sipp.SippProcess, media: RtpPeer, frames: list[bytes]) -> Message:
    """When the contact's leg is up, its line plays ``frames`` to Asterisk."""
    up = await r.watcher.wait(answered_leg, "the contact never answered", timeout=30)
    media.play(frames)
    media.aim("127.0.0.1", asterisk_rtp_port(proc.sent()))
    return up


async def attempt_rows(dsn: str) -> list[dict[str, object]]:
    rows = await _db(
        dsn, "SELECT * FROM campaign_attempts WHERE campaign_id = $1 ORDER BY started_at", CAMPAIGN
    )
    return [dict(x) for x in rows]


async def outcome(dsn: str, timeout: float = 40.0) -> dict[str, object]:
    """The campaign's one attempt, once its outcome is written."""
    got: list[dict[str, object]] = []

    async def poll() -> None:
        nonlocal got
        while True:
            got = await attempt_rows(dsn)
            if got and all(g["outcome"] is not None for g in got):
                return
            await asyncio.sleep(0.2)  # another process's database: nothing to wait on

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"no outcome after {timeout} s: {got}") from None
    assert len(got) == 1, got
    return got[0]


@contextlib.asynccontextmanager
async def dialing(center: Center, dsn: str, work: Path, number: str) -> AsyncIterator[Rig]:
    await import_contact(center.config, dsn, work, number)
    async with rig(center, dsn, work) as r:
        yield r


async def login_agent(r: Rig) -> None:
    await r.ctl.acd.login(AGENT)


# ============================================================================ 1. human
async def test_a_person_saying_hello_is_connected_to_the_agent_within_two_seconds(
    center: Center, db_dsn: str, tmp_path: Path
) -> None:
    number = "+12125550143"
    frames = hello(tmp_path)
    async with dialing(center, db_dsn, tmp_path, number) as r:
        media = await r.media(CONTACT_TONE, host=TARGET_ADDRESS)
        line = await target(r, sipp.answer(sipp.Party(number), media_port=media.port, ring_ms=500))
        phone = await phone_of(r, AGENT, answers_after(0))
        await login_agent(r)
        up = await speak_on_answer(r, line, media, frames)
        verdict = amd_verdict(r, up)
        bridged = await r.watcher.wait(
            lambda m: m.name == "BridgeEnter" and (m.get("Channel") or "").startswith(f"PJSIP/agent{AGENT}-"),
            "the agent was never bridged to the contact",
            timeout=20,
            after=up,
        )
        at = r.watcher.at(bridged)
        await media.until(lambda: media.hears(AGENT_TONE, since=at), "the contact never hears the agent")
        await phone.media.until(
            lambda: phone.media.hears(CONTACT_TONE, since=at), "the agent never hears the contact"
        )
        row = await outcome(db_dsn)
        status, cause = verdict()
        log.info(
            "human: AMD %s (%s); agent bridged %.2f s after the answer", status, cause, at - r.watcher.at(up)
        )
        await r.watcher.client.send_action("Hangup", {"Channel": up.get("Channel") or ""}, timeout=10)
        for proc in (line, phone.ringer):
            done = await proc.finish()
            assert done.ok, done.explain()
    assert status == "HUMAN", (status, cause)
    assert (row["outcome"], row["agent_id"], row["phone"]) == ("connected", AGENT, number), row
    calls = await _db(db_dsn, "SELECT * FROM calls WHERE caller_number = $1", number)
    assert [(c["direction"], c["campaign_id"], c["agent_id"], c["disposition"]) for c in calls] == [
        ("outbound", CAMPAIGN, AGENT, "answered")
    ], calls
    # the agent was held for the attempt before the dial, then offered the answered contact
    states = await _db(
        db_dsn, "SELECT state, reason FROM agent_states WHERE agent_id = $1 ORDER BY at, seq", AGENT
    )
    seen = [(x["state"], x["reason"]) for x in states]
    assert seen.index(("reserved", "held")) < seen.index(("on_call", "answered")), seen
    assert row["person_at"] is not None and row["connected_at"] is not None, row
    # the agent was on the line within connect_within (2 s) of the person being heard
    person, connected = row["person_at"], row["connected_at"]
    assert isinstance(person, dt.datetime) and isinstance(connected, dt.datetime), row
    assert (connected - person).total_seconds() <= center.config.campaigns[CAMPAIGN].connect_within, row


# ============================================================================ 2. machine, 5. silence
def amd_verdict(r: Rig, after: Message) -> Callable[[], tuple[str, str]]:
    """(AMDSTATUS, AMDCAUSE) as the dialplan set them after ``after``."""

    def verdict() -> tuple[str, str]:
        got = {
            m.get("Variable"): m.get("Value") or ""
            for m in r.watcher.seen[r.watcher.seen.index(after) :]
            if m.name == "VarSet" and m.get("Variable") in ("AMDSTATUS", "AMDCAUSE")
        }
        return got.get("AMDSTATUS", ""), got.get("AMDCAUSE", "")

    return verdict


def loud_times(media: RtpPeer, since: float) -> list[float]:
    """When each loud frame (a prompt, not silence) from the PBX arrived, after ``since``."""
    return [p.at for p in media.audio(since) if media.loud(p.at, p.at + 1e-9)]


MESSAGE_SECONDS = 11.0  # ivr_prompts/en/amd-renewal-message.wav (11.2 s)


@pytest.mark.parametrize("greeting", ["machine", "silence"])
async def test_a_machine_gets_the_whole_message_after_its_greeting_and_beep(
    center: Center, db_dsn: str, tmp_path: Path, greeting: str
) -> None:
    """A machine's greeting then its beep: AMD says MACHINE while the greeting still plays, and
    the message starts only once the beep and ``beep_silence`` of silence are past; it plays
    whole. An answer that stays silent is a machine to AMD too (cause INITIALSILENCE, after
    ``initial_silence``): it gets the message at once."""
    number = "+12125550144"
    settings = center.config.campaigns[CAMPAIGN].amd_settings
    beep_silence = settings.beep_silence / 1000
    if greeting == "machine":
        frames, quiet_from = machine_greeting(tmp_path)
    else:
        frames, quiet_from = pcmu_frames(sox_wav(tmp_path / "silence.wav", silence(20.0))), 0
    async with dialing(center, db_dsn, tmp_path, number) as r:
        media = await r.media(None, host=TARGET_ADDRESS)
        line = await target(r, sipp.answer(sipp.Party(number), media_port=media.port, ring_ms=500))
        await login_agent(r)
        up = await speak_on_answer(r, line, media, frames)
        verdict = amd_verdict(r, up)
        await wait_until(lambda: verdict()[0] != "", "AMD never gave a verdict", timeout=20)
        status, cause = verdict()
        await wait_until(lambda: len(media.script_sent) > quiet_from, "the greeting never played", timeout=20)
        quiet_at = media.script_sent[quiet_from]  # the beep's last frame, or the answer
        done = await line.finish()  # the PBX hangs up after the message
        assert done.ok, done.explain()
        row = await outcome(db_dsn)
        heard = loud_times(media, r.watcher.at(up))
    assert status == "MACHINE", (status, cause)
    if greeting == "silence":
        assert cause.startswith("INITIALSILENCE"), cause
    assert heard, "the machine heard nothing"
    delay, length = heard[0] - quiet_at, heard[-1] - heard[0]
    log.info("%s: AMD %s (%s); message %.2f s after the greeting's end, heard for %.2f s", greeting, status,
             cause, delay, length)  # fmt: skip
    # nothing reached the machine before the beep had ended and its silence passed
    if greeting == "machine":
        assert beep_silence - 0.1 <= delay <= beep_silence + 1.5, (delay, beep_silence)
    else:
        assert (
            settings.initial_silence / 1000 <= delay <= settings.initial_silence / 1000 + beep_silence + 1.5
        )
    assert length >= MESSAGE_SECONDS - 1.0, length  # the message played whole
    assert (row["outcome"], row["person_at"], row["agent_id"]) == ("machine_message", None, None), row


# ============================================================================ 3. busy, 4. no answer
@pytest.mark.parametrize(
    ("scenario", "expected"),
    [(sipp.busy, "busy"), (sipp.never_answers, "no_answer")],
    ids=["busy", "no-answer"],
)
async def test_a_busy_or_unanswered_line_is_logged_as_such(
    center: Center, db_dsn: str, tmp_path: Path, scenario: Callable[[sipp.Party], str], expected: str
) -> None:
    number = "+12125550145"
    async with dialing(center, db_dsn, tmp_path, number) as r:
        line = await target(r, scenario(sipp.Party(number)))
        await login_agent(r)
        done = await line.finish()
        assert done.ok, done.explain()
        row = await outcome(db_dsn)
        await wait_until(
            lambda: r.ctl.acd.agent_state(AGENT).status.value == "available", "the held agent was never freed"
        )
    assert (row["outcome"], row["person_at"], row["connected_at"]) == (expected, None, None), row
    started, ended = row["started_at"], row["ended_at"]
    assert isinstance(started, dt.datetime) and isinstance(ended, dt.datetime), row
    lasted = (ended - started).total_seconds()
    log.info("%s: %s after %.2f s (%s)", expected, row["outcome"], lasted, row["reason"])
    if expected == "no_answer":
        assert "CANCEL sip:" in done.messages
        assert RING_TIMEOUT - 0.5 <= lasted <= RING_TIMEOUT + 3.0, lasted  # the campaign's ring time
    else:
        assert lasted < RING_TIMEOUT, lasted
