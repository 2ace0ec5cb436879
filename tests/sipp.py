"""Test helper: SIPp (Debian's ``sip-tester``) as a SIP phone or a carrier against a real Asterisk.

Scenarios are written here as XML text and run by ``start`` (``finish`` waits for the end) or
``run`` (both): one SIPp process, one call, bounded in time (SIPp's own ``-timeout`` and
``-recv_timeout``, and an asyncio deadline that kills it), its SIP messages traced to a file the
test can read. Digest auth answers Asterisk's 401 challenges.

- ``register``: a phone registers its endpoint, with its Contact at SIPp's own port or at the
  port of another SIPp that answers for it.
- ``call``: a phone or a carrier calls; after the answer it presses keys, then hangs up after a
  while, or when the PBX does (``remote_hangup``), or when the test says so (``until_poked``,
  ``SippProcess.poke``: an in-dialog request on the call's Call-ID, which the test chooses).
- ``answer``: a registered phone rings and answers the PBX's INVITE (an agent's phone the ACD
  calls), answers its qualify OPTIONS meanwhile, and stops itself after the BYE.

Calls answer the re-INVITEs Asterisk sends once a call is bridged (connected-line updates). A
call's media is SIPp's own, or a port of the test's (``media_port``: a ``tests.media.RtpPeer``
that sends audio and keys itself). SIPp's own DTMF is RFC 4733 (``telephone-event``) played from
pcaps written for each call (``dtmf_pcaps``): the pcaps Debian ships all share one RTP stream, so
Asterisk drops a key whose file has lower sequence numbers than the key before it (``*11`` then
``4821`` loses the 2 and the 1); ours number every key of a call in order.

``require_sipp()`` skips the calling test when SIPp is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

DTMF_PAYLOAD_TYPE: Final = 101  # telephone-event in our SDP offer
STOPPED_BY_SCENARIO: Final = 97  # SIPp's exit status after an exec int_cmd="stop_now"
POKE: Final = "INFO"  # the request a Call(until_poked=True) waits for before it hangs up
DTMF_EVENTS: Final = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_runs = itertools.count(1)


def require_sipp() -> str:
    """The sipp binary, or skip the calling test."""
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    return sipp


def _frame(rtp: bytes, ident: int) -> bytes:
    """An Ethernet/IPv4/UDP frame around ``rtp`` (SIPp keeps only the UDP payload and port)."""
    udp = struct.pack("!HHHH", 49176, 10000, 8 + len(rtp), 0) + rtp
    loopback = bytes([127, 0, 0, 1])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0, 64, 17, 0, loopback, loopback)
    return bytes(12) + b"\x08\x00" + ip + udp


def dtmf_pcaps(keys: str, directory: Path, *, prefix: str = "dtmf", ssrc: int = 0x0E05384E) -> list[Path]:
    """One pcap per key of ``keys`` (0-9, * and #): RFC 4733 events as a phone sends them (a
    packet every 20 ms for 140 ms, then the end packet three times), on one RTP stream whose
    sequence numbers and timestamps keep increasing from one key to the next. SIPp plays each
    with ``play_pcap_audio`` (it keeps the RTP header and payload, and takes the UDP ports and
    addresses from the call)."""
    out: list[Path] = []
    seq, timestamp = 1000, 16000
    for n, key in enumerate(keys):
        if key not in DTMF_EVENTS:
            raise ValueError(f"not a DTMF key: {key!r}")
        pcap = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(10):
            end = i >= 7  # the end packet, sent three times with the same sequence number
            marker = 0x80 if i == 0 else 0
            flags = (0x80 if end else 0) | 10  # E bit, volume -10 dBm0
            rtp = struct.pack(
                "!BBHIIBBH", 0x80, marker | DTMF_PAYLOAD_TYPE, seq, timestamp, ssrc, DTMF_EVENTS[key], flags,
                320 * min(i, 7),
            )  # fmt: skip
            if i < 7:
                seq += 1
            frame = _frame(rtp, i)
            usec = 20_000 * min(i, 7)
            pcap += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)) + frame
        seq += 1
        timestamp += 8 * 500  # the next key starts at least 500 ms of audio later
        path = directory / f"{prefix}-{n}.pcap"
        path.write_bytes(bytes(pcap))
        out.append(path)
    return out


@dataclass(frozen=True)
class Party:
    """Who SIPp is: ``user`` goes in From (a phone's endpoint name, or a caller's number from a
    carrier), ``password`` answers digest challenges (None: none expected)."""

    user: str
    password: str | None = None
    display: str = ""

    def from_header(self) -> str:
        name = f'"{self.display}" ' if self.display else ""
        return f"From: {name}<sip:{self.user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"

    def auth(self) -> str:
        if self.password is None:
            return ""
        return f"[authentication username={self.user} password={self.password}]"


def _xml(name: str, body: str) -> str:
    return f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n{body}</scenario>\n'


def _send(message: str, *, retrans: bool = True) -> str:
    lines = "\n".join(f"      {ln}" if ln else "" for ln in message.strip("\n").splitlines())
    attr = ' retrans="500"' if retrans else ""
    return f"  <send{attr}>\n    <![CDATA[\n\n{lines}\n\n    ]]>\n  </send>\n"


def register(party: Party, *, expires: int = 300, contact_port: int | None = None) -> str:
    """REGISTER ``party.user`` (its Contact is SIPp's address and port, or ``contact_port``: where
    another SIPp, the phone's ``answer`` scenario, listens), answering the digest challenge; the
    scenario succeeds on 200 OK."""
    contact = "[local_port]" if contact_port is None else str(contact_port)
    head = f"""\
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{party.user}@[remote_ip]:[remote_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{party.user}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: {{cseq}} REGISTER
Contact: <sip:{party.user}@[local_ip]:{contact}>
Expires: {expires}
Max-Forwards: 70
User-Agent: SIPp
"""
    body = _send(head.format(cseq=1) + "Content-Length: 0\n")
    if party.password is not None:
        body += '  <recv response="401" auth="true"/>\n'
        body += _send(head.format(cseq=2) + f"{party.auth()}\nContent-Length: 0\n")
    body += '  <recv response="200"/>\n'
    return _xml(f"register-{party.user}", body)


def _sdp(media_port: int | None = None) -> str:
    """A PCMU + telephone-event offer or answer; its port is SIPp's own media port, or
    ``media_port`` (a ``tests.media.RtpPeer`` of the test)."""
    port = "[media_port]" if media_port is None else str(media_port)
    return f"""\
v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {port} RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""


@dataclass(frozen=True)
class Call:
    """A call from ``party`` to ``[service]`` (``run``'s ``service``): after the answer, wait
    ``dtmf_after_ms``, press ``keys`` (RFC 4733, ``key_gap_ms`` apart), then either hang up
    after ``hold_ms``, or with ``remote_hangup`` wait (up to ``run``'s deadline) for Asterisk's
    BYE and answer it, or with ``until_poked`` hang up when the test says so
    (``SippProcess.poke``). ``media_port``: the SDP names this port (the test's own
    ``tests.media.RtpPeer``, which then sends the audio and the keys) instead of SIPp's."""

    party: Party
    keys: str = ""
    dtmf_after_ms: int = 1500
    key_gap_ms: int = 800
    hold_ms: int = 2000
    remote_hangup: bool = False
    until_poked: bool = False
    media_port: int | None = None


def _bye_answered() -> str:
    return '  <recv request="BYE"/>\n' + _send(
        """\
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
""",
        retrans=False,
    )


def _in_call(user: str, media_port: int | None, until: str) -> str:
    """Wait in the call for ``until`` (a ``recv`` and what follows it), answering every re-INVITE
    the PBX sends meanwhile (a connected-line update once the call is bridged): 200 OK with the
    same SDP, then its ACK, then back to waiting."""
    reply = _send(
        f"""\
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

{_sdp(media_port)}"""
    )
    return (
        '  <nop next="talking"/>\n'
        '  <label id="reinvite"/>\n'
        f"{reply}"
        '  <recv request="ACK"/>\n'
        '  <label id="talking"/>\n'
        '  <recv request="INVITE" optional="true" next="reinvite"/>\n'
        f"{until}"
    )


def call(spec: Call, pcap_dir: Path) -> str:
    """The scenario for ``spec``: INVITE (with digest auth when the party has a password), the
    answer (200 OK is required), ACK, keys (pcaps written into ``pcap_dir``), then BYE sent or
    received."""
    p = spec.party
    pcaps = dtmf_pcaps(spec.keys, pcap_dir, prefix=f"dtmf-{next(_runs)}")
    invite = f"""\
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{p.from_header()}
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: {{cseq}} INVITE
Contact: <sip:{p.user}@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: SIPp
{{auth}}Content-Type: application/sdp
Content-Length: [len]

{_sdp(spec.media_port)}"""
    cseq = 1
    body = _send(invite.format(cseq=cseq, auth=""))
    if p.password is not None:
        body += '  <recv response="100" optional="true"/>\n'
        body += '  <recv response="401" auth="true"/>\n'
        body += _send(
            f"""\
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
{p.from_header()}
[last_To:]
Call-ID: [call_id]
CSeq: {cseq} ACK
Max-Forwards: 70
Content-Length: 0
""",
            retrans=False,
        )
        cseq = 2
        body += _send(invite.format(cseq=cseq, auth=p.auth() + "\n"))
    body += '  <recv response="100" optional="true"/>\n'
    body += '  <recv response="180" optional="true"/>\n'
    body += '  <recv response="183" optional="true"/>\n'
    body += '  <recv response="200" rtd="true" rrs="true"/>\n'
    in_dialog = f"""\
{{method}} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{p.from_header()}
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {{cseq}} {{method}}
Contact: <sip:{p.user}@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: SIPp
Content-Length: 0
"""
    body += _send(in_dialog.format(method="ACK", cseq=cseq), retrans=False)
    if pcaps:
        body += f'  <pause milliseconds="{spec.dtmf_after_ms}"/>\n'
        for i, pcap in enumerate(pcaps):
            if i:
                body += f'  <pause milliseconds="{spec.key_gap_ms}"/>\n'
            body += f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
    bye = _send(in_dialog.format(method="BYE", cseq=cseq + 1)) + '  <recv response="200" crlf="true"/>\n'
    if spec.remote_hangup:
        body += _in_call(p.user, spec.media_port, _bye_answered())
    elif spec.until_poked:
        body += _in_call(p.user, spec.media_port, f'  <recv request="{POKE}"/>\n' + bye)
    else:
        body += f'  <pause milliseconds="{spec.hold_ms}"/>\n' + bye
    return _xml(f"call-{p.user}", body)


def answer(party: Party, *, media_port: int, ring_ms: int = 0) -> str:
    """A phone that rings and answers: ``INVITE`` -> 180 Ringing, ``ring_ms`` later 200 OK with
    an SDP naming ``media_port`` (the test's ``RtpPeer``), ``ACK``; then it waits for the BYE,
    answers it and stops SIPp (``stop_now``: every qualify OPTIONS counts as a call of its own,
    so ``-m 1`` cannot end it). Run it with ``answers=True`` (``start``): a SIPp server that
    also answers those OPTIONS with 200 OK."""
    ok = f"""\
SIP/2.0 {{status}}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{party.user}@[local_ip]:[local_port]>
User-Agent: SIPp
"""
    body = '  <recv request="INVITE" crlf="true"/>\n'
    body += _send(ok.format(status="180 Ringing") + "Content-Length: 0\n", retrans=False)
    if ring_ms:
        body += f'  <pause milliseconds="{ring_ms}"/>\n'
    body += _send(
        ok.format(status="200 OK")
        + f"Content-Type: application/sdp\nContent-Length: [len]\n\n{_sdp(media_port)}"
    )
    body += '  <recv request="ACK" rtd="true" crlf="true"/>\n'
    body += _in_call(party.user, media_port, _bye_answered())
    body += '  <nop><action><exec int_cmd="stop_now"/></action></nop>\n'
    return _xml(f"answer-{party.user}", body)


def never_answers(party: Party) -> str:
    """A phone that rings and is never picked up: ``INVITE`` -> 180 Ringing, then the PBX gives up
    (``CANCEL`` -> 200 OK, 487 Request Terminated for the INVITE, its ``ACK``) and SIPp stops
    itself. Run it with ``answers=True`` as ``answer``."""
    ringing = f"""\
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{party.user}@[local_ip]:[local_port]>
User-Agent: SIPp
Content-Length: 0
"""
    body = '  <recv request="INVITE" crlf="true">\n'
    body += '    <action><ereg regexp="CSeq: *[0-9]+" search_in="msg" assign_to="invite_cseq"/></action>\n'
    body += "  </recv>\n"
    body += _send(ringing, retrans=False)
    body += '  <recv request="CANCEL"/>\n'
    done = """\
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
{cseq}
User-Agent: SIPp
Content-Length: 0
"""
    body += _send(done.format(status="200 OK", cseq="[last_CSeq:]"), retrans=False)
    body += _send(done.format(status="487 Request Terminated", cseq="[$invite_cseq] INVITE"))
    body += '  <recv request="ACK" crlf="true"/>\n'
    body += '  <nop><action><exec int_cmd="stop_now"/></action></nop>\n'
    return _xml(f"never-answers-{party.user}", body)


def busy(party: Party) -> str:
    """A line that is busy: ``INVITE`` -> 486 Busy Here, its ``ACK``, and SIPp stops itself. Run
    it with ``answers=True`` as ``answer``."""
    body = '  <recv request="INVITE" crlf="true"/>\n'
    body += _send(
        f"""\
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{party.user}@[local_ip]:[local_port]>
User-Agent: SIPp
Content-Length: 0
"""
    )
    body += '  <recv request="ACK" crlf="true"/>\n'
    body += '  <nop><action><exec int_cmd="stop_now"/></action></nop>\n'
    return _xml(f"busy-{party.user}", body)


@dataclass(frozen=True)
class SippRun:
    returncode: int
    output: str  # SIPp's stdout and stderr
    messages: str  # every SIP message sent and received (-trace_msg)
    stops_itself: bool = False  # an ``answer`` scenario: it ends with ``stop_now`` (status 97)

    @property
    def ok(self) -> bool:
        """The call succeeded: SIPp's exit status 0 (every call of the run passed), or for an
        ``answer`` scenario 97, its own ``stop_now`` after the last message (never reached when
        a message of the scenario failed)."""
        return self.returncode == 0 or (self.stops_itself and self.returncode == STOPPED_BY_SCENARIO)

    def explain(self) -> str:
        return (
            f"sipp exited {self.returncode}:\n{self.output[-2000:]}\n--- messages:\n{self.messages[-4000:]}"
        )


class SippProcess:
    """A SIPp run in progress (``start``): ``finish()`` waits for it (bounded) and returns the
    ``SippRun``; ``poke()`` lets a ``Call(until_poked=True)`` hang up; ``stop()`` kills it if it
    still runs (always safe; tests call it in ``finally``)."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        messages: Path,
        call_id: str,
        local: tuple[str, int],
        deadline: float,
        *,
        stops_itself: bool = False,
    ) -> None:
        self.proc = proc
        self.messages = messages
        self.call_id = call_id  # the Call-ID of SIPp's first call (``-cid_str``)
        self.local = local
        self.deadline = deadline
        self.stops_itself = stops_itself
        self._communicate = asyncio.ensure_future(proc.communicate())

    def sent(self) -> str:
        """The SIP messages traced so far."""
        return self.messages.read_text("utf-8", "replace") if self.messages.exists() else ""

    def poke(self) -> None:
        """Send SIPp's call the request a ``Call(until_poked=True)`` waits for before its BYE (a
        bare in-dialog request on its Call-ID; SIPp matches calls by Call-ID alone)."""
        host, port = self.local
        tag = uuid.uuid4().hex[:12]
        text = (
            f"{POKE} sip:sipp@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:9;branch=z9hG4bK{tag}\r\n"
            f"From: <sip:test@{host}>;tag={tag}\r\n"
            f"To: <sip:sipp@{host}:{port}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: 1 {POKE}\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(text.encode(), (host, port))

    async def finish(self, timeout: float | None = None) -> SippRun:
        """Wait until SIPp exits (at most ``timeout``, default the run's deadline, then it is
        killed and the test fails)."""
        try:
            out, _ = await asyncio.wait_for(asyncio.shield(self._communicate), timeout or self.deadline)
        except TimeoutError:
            await self.stop()
            raise AssertionError(
                f"sipp still running after {timeout or self.deadline} s:\n{self.sent()[-3000:]}"
            ) from None
        code = self.proc.returncode
        return SippRun(
            code if code is not None else -1, out.decode("utf-8", "replace"), self.sent(), self.stops_itself
        )

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._communicate), 10)


async def start(
    sipp: str,
    scenario: str,
    remote: str | None,
    *,
    workdir: Path,
    port: int,
    media_port: int,
    local_ip: str = "127.0.0.1",
    service: str = "s",
    deadline: float = 60.0,
    recv_timeout_ms: int = 15000,
    answers: bool = False,
) -> SippProcess:
    """Start ``scenario`` (one call, ``-m 1``) against ``remote`` (``host:port``; None: a server
    scenario that waits for its INVITE) from ``local_ip:port``; SIPp's own timeouts end a stuck
    call, and ``finish`` kills it past ``deadline`` seconds. ``answers``: reply 200 OK to
    OPTIONS, INFO, NOTIFY and UPDATE outside the scenario (``-aa``; a registered phone's
    qualify)."""
    n = next(_runs)
    xml = workdir / f"sipp-{n}.xml"
    xml.write_text(scenario, encoding="utf-8")
    messages = workdir / f"sipp-{n}-messages.log"
    call_id = f"cct{uuid.uuid4().hex[:16]}"
    args = [
        *([remote] if remote else []),
        "-sf", str(xml),
        "-s", service,
        "-i", local_ip,
        "-mi", local_ip,
        "-p", str(port),
        "-mp", str(media_port),
        *(["-m", "1"] if not answers else []),
        "-cid_str", f"{call_id}-%u",
        "-timeout", str(max(1, int(deadline) - 5)),
        "-timeout_error",
        "-recv_timeout", str(recv_timeout_ms),
        "-trace_msg", "-message_file", str(messages),
        "-nostdin",
        *(["-aa"] if answers else []),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sipp, *args, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    return SippProcess(proc, messages, f"{call_id}-1", (local_ip, port), deadline, stops_itself=answers)


async def run(
    sipp: str,
    scenario: str,
    remote: str,
    *,
    workdir: Path,
    port: int,
    media_port: int,
    local_ip: str = "127.0.0.1",
    service: str = "s",
    deadline: float = 60.0,
    recv_timeout_ms: int = 15000,
) -> SippRun:
    """``start`` and ``finish`` one run: the call is over when it returns."""
    proc = await start(
        sipp,
        scenario,
        remote,
        workdir=workdir,
        port=port,
        media_port=media_port,
        local_ip=local_ip,
        service=service,
        deadline=deadline,
        recv_timeout_ms=recv_timeout_ms,
    )
    try:
        return await proc.finish()
    finally:
        await proc.stop()
