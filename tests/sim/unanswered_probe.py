"""Test helper: what a real Asterisk 22 does with a SIP call that nothing answers.

A SIPp "phone" (endpoint ``phone``, identified by IP, RFC 4733 DTMF) calls three extensions of a
small private configuration, each running FastAGI and none answering in the dialplan:

``noanswer``
    the script never answers: ``CHANNEL STATUS``, ``STREAM FILE``, ``GET DATA`` while raw RFC 4733
    digits are sent to the channel's RTP address (a phone cannot know it: no SDP reaches it before
    the 200 OK), ``WAIT FOR DIGIT`` while the AMI sends ``PlayDTMF`` to the channel, ``EXEC
    Playback`` with ``noanswer``, ``CHANNEL STATUS``; then the dialplan's ``Hangup()``.
``fallthrough``
    the script only asks ``CHANNEL STATUS``; the dialplan then ends without ``Hangup()``.
``answered``
    the control: the script sends ``ANSWER``, then ``STREAM FILE`` and ``GET DATA`` while SIPp
    sends RFC 2833 digits 1, 2, # from its pcaps after the 200 OK; then ``Hangup()``.
``answeredfall``
    the script sends ``ANSWER``; the dialplan then ends without ``Hangup()``.
``local``
    no SIP: an AMI ``Originate`` of ``Local/local@probe`` (application ``Wait``); its ``;2`` half
    runs the script, which never answers: ``WAIT FOR DIGIT`` while the AMI sends ``PlayDTMF`` to
    the ``;1`` half, then ``STREAM FILE``; then ``Hangup()``.

The phone's media port is a UDP socket of this helper (not SIPp's), so every RTP packet Asterisk
sends the phone is counted and the counts are written into the AGI transcript at each command.
``capture(out_dir)`` writes ``PREFIX.ami.txt``, ``PREFIX.agi.txt`` and SIPp's message trace
``PREFIX.sipp-messages.log`` per call, in the format of ``tests/fixtures/asterisk-traces``
(``#`` lines are the capture's own timestamps and direction marks).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from tests.asterisk_harness import ADMIN_USER, RealAsterisk, free_port, running_asterisk

SOUNDS = Path("/usr/share/asterisk/sounds/en")  # Debian's core sounds (the build's dir is empty)
PCAPS = Path("/usr/share/sip-tester")
MEDIA_NOTE = "media the phone got during that command"
CALLS = ("noanswer", "fallthrough", "answered", "answeredfall", "local")

MODULES = """[modules]
autoload = yes
noload = chan_iax2.so
noload = chan_skinny.so
noload = chan_mgcp.so
noload = chan_unistim.so
noload = res_phoneprov.so
noload = res_pjsip_phoneprov_provider.so
noload = pbx_dundi.so
noload = app_queue.so
"""

PJSIP = """[global]
type = global
user_agent = probe

[transport-udp]
type = transport
protocol = udp
bind = 0.0.0.0:5060

[phone]
type = endpoint
transport = transport-udp
context = probe
disallow = all
allow = ulaw
dtmf_mode = rfc4733
direct_media = no

[phone-identify]
type = identify
endpoint = phone
match = 127.0.0.1
"""

EXTENSIONS = """[general]
static = yes

[probe]
exten => noanswer,1,NoOp(FastAGI on a channel nothing answered)
 same => n,AGI(agi://127.0.0.1:{agi}/noanswer)
 same => n,NoOp(AGISTATUS=${{AGISTATUS}})
 same => n,Hangup()
exten => fallthrough,1,NoOp(FastAGI, then the dialplan ends without Hangup)
 same => n,AGI(agi://127.0.0.1:{agi}/fallthrough)
exten => answered,1,NoOp(FastAGI that answers)
 same => n,AGI(agi://127.0.0.1:{agi}/answered)
 same => n,Hangup()
exten => answeredfall,1,NoOp(FastAGI that answers, then the dialplan ends without Hangup)
 same => n,AGI(agi://127.0.0.1:{agi}/answeredfall)
exten => local,1,NoOp(FastAGI on the ;2 half of a Local channel nothing answered)
 same => n,AGI(agi://127.0.0.1:{agi}/local)
 same => n,Hangup()
"""

MANAGER = """[general]
enabled = yes
port = 5038
bindaddr = 127.0.0.1
"""

LOGGER = """[general]
dateformat = %F %T.%3q

[logfiles]
messages.log => notice,warning,error
"""

RTP = """[general]
rtpstart = 20000
rtpend = 30000
"""

SIPP_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Phone" <sip:2001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:2001@[local_ip]:[local_port]>
      Max-Forwards: 70
      User-Agent: SIPp
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [phone_media] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
"""

# A final error response: ACK it (same branch as the INVITE) and stop.
SIPP_REFUSED = """  <recv response="603"/>

  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""

# The control call: 200 OK, ACK, DTMF 1 2 # from the pcaps, then the BYE from Asterisk.
SIPP_ANSWERED = """  <recv response="200" rtd="true" rrs="true"/>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Phone" <sip:2001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:2001@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <pause milliseconds="2500"/>
  <nop><action><exec play_pcap_audio="{pcaps}/dtmf_2833_1.pcap"/></action></nop>
  <pause milliseconds="1200"/>
  <nop><action><exec play_pcap_audio="{pcaps}/dtmf_2833_2.pcap"/></action></nop>
  <pause milliseconds="1200"/>
  <nop><action><exec play_pcap_audio="{pcaps}/dtmf_2833_pound.pcap"/></action></nop>

  <recv request="BYE"/>

  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:2001@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


SIPP_BYE = SIPP_ANSWERED[SIPP_ANSWERED.index("  <recv request") :]


def sipp_scenario(call: str) -> str:
    if call == "answered":
        tail = SIPP_ANSWERED.format(pcaps=PCAPS)
    elif call == "answeredfall":
        tail = SIPP_ANSWERED.format(pcaps=PCAPS).split("  <pause", 1)[0] + SIPP_BYE
    else:
        tail = SIPP_REFUSED
    return SIPP_HEAD.format(name=f"unanswered-{call}") + tail


def probe_files(agi_port: int) -> dict[str, str]:
    return {
        "modules.conf": MODULES,
        "pjsip.conf": PJSIP,
        "extensions.conf": EXTENSIONS.format(agi=agi_port),
        "manager.conf": MANAGER,
        "logger.conf": LOGGER,
        "rtp.conf": RTP,
    }


class Log:
    """One transcript file: wire data as received, ``#`` lines for timestamps and notes."""

    def __init__(self, path: Path, t0: float) -> None:
        self.file = path.open("w", encoding="utf-8", newline="")
        self.t0 = t0

    def ts(self) -> str:
        return f"{time.monotonic() - self.t0:8.3f}"

    def note(self, text: str) -> None:
        self.file.write(f"#{self.ts()} -- {text}\n")
        self.file.flush()

    def write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class AMI:
    """A raw AMI session that logs every byte it sends and receives."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.seen: list[dict[str, str]] = []
        self.waiters: list[tuple[Callable[[dict[str, str]], bool], asyncio.Future[dict[str, str]]]] = []
        self.task: asyncio.Task[None] | None = None

    async def connect(self, port: int, secret: str) -> None:
        async with asyncio.timeout(10):
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
            banner = await self.reader.readline()
        self.log.write(f"#{self.log.ts()} <<< {banner!r}\n")
        self.task = asyncio.create_task(self._read())
        self.send(Action="Login", Username=ADMIN_USER, Secret=secret, ActionID="login")
        await self.wait(lambda m: m.get("ActionID") == "login")

    async def _read(self) -> None:
        buf: list[str] = []
        while True:
            line = await self.reader.readline()
            if not line:
                self.log.write(f"#{self.log.ts()} EOF\n")
                return
            text = line.decode("utf-8", "replace")
            if text != "\r\n":
                buf.append(text)
                continue
            msg = dict(x.rstrip("\r\n").split(": ", 1) for x in buf if ": " in x)
            self.log.write(f"#{self.log.ts()} <<<\n" + "".join(buf) + "\r\n")
            self.seen.append(msg)
            for pred, fut in list(self.waiters):
                if not fut.done() and pred(msg):
                    fut.set_result(msg)
            buf = []

    def send(self, **headers: str) -> None:
        data = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        shown = "".join(f"{k}: {'<one-off>' if k == 'Secret' else v}\r\n" for k, v in headers.items())
        self.log.write(f"#{self.log.ts()} >>>\n{shown}\r\n")
        self.writer.write(data.encode())

    async def wait(self, pred: Callable[[dict[str, str]], bool], timeout: float = 30) -> dict[str, str]:
        for msg in self.seen:
            if pred(msg):
                return msg
        fut: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self.waiters.append((pred, fut))
        async with asyncio.timeout(timeout):
            return await fut

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send(Action="Logoff", ActionID="bye")
            await self.wait(lambda m: m.get("ActionID") == "bye", timeout=5)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.writer.close()


class Phone(Protocol):
    """The far end of the probe's calls, as the probe needs it."""

    def heard_since_mark(self) -> int:
        """Media the phone got since the last call (RTP packets; prompts heard on the simulator)."""

    async def dtmf_before_answer(self, channel: str, ami: AMI, log: Log) -> None:
        """Try to get digit 1 to the unanswered ``channel`` as a phone could at best."""

    async def dtmf_after_answer(self, channel: str) -> None:
        """Digits 1, 2, # during ``GET DATA`` on the answered call (SIPp's scenario sends them)."""


class Media(asyncio.DatagramProtocol):
    """The SIPp phone's RTP port: counts what Asterisk sends it; sends raw RFC 4733 from it."""

    def __init__(self) -> None:
        self.packets = 0
        self.mark = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets += 1

    def heard_since_mark(self) -> int:
        n, self.mark = self.packets - self.mark, self.packets
        return n

    async def dtmf_before_answer(self, channel: str, ami: AMI, log: Log) -> None:
        """The phone has no address to send RTP to (no SDP before the 200 OK): aim RFC 4733 at
        the channel's RTP address, found by asking Asterisk, or else at every RTP port it has open."""
        ami.send(Action="Getvar", Channel=channel, Variable="CHANNEL(rtp,src)", ActionID="rtp-src")
        reply = await ami.wait(lambda m: m.get("ActionID") == "rtp-src")
        host, _, port = reply.get("Value", "").rpartition(":")
        targets = [(host, int(port))] if port.isdigit() else []
        if not targets:
            ports = rtp_ports()
            log.note(f"CHANNEL(rtp,src) is {reply.get('Value')!r}; UDP ports open in the RTP range: {ports}")
            targets = [("127.0.0.1", p) for p in ports if p % 2 == 0]
        assert self.transport is not None
        for target in targets:
            log.note(f"sending raw RFC 4733 digit 1 from the phone's media port to {target}")
            for packet in rfc4733_packets("1"):
                self.transport.sendto(packet, target)
                await asyncio.sleep(0.02)  # media pacing: one RTP packet per 20 ms

    async def dtmf_after_answer(self, channel: str) -> None:
        return None  # SIPp plays its pcaps on its own schedule


def rfc4733_packets(digit: str, *, seq: int = 1, ts: int = 160000, ssrc: int = 0x5EED) -> list[bytes]:
    """One RFC 4733 event (8 updates of 20 ms, then 3 end packets), payload type 101."""
    event = "0123456789*#".index(digit)
    out = []
    for i in range(11):
        end = i >= 8
        duration = min(i + 1, 8) * 160
        marker = 0x80 if i == 0 else 0
        header = struct.pack("!BBHII", 0x80, marker | 101, seq + i, ts, ssrc)
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        out.append(header + payload)
    return out


RTP_RANGE = (20000, 30000)  # rtp.conf above


def rtp_ports() -> list[int]:
    """UDP ports bound on this host inside the probe's RTP range (only Asterisk binds there)."""
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                port = int(line.split()[1].rsplit(":", 1)[1], 16)
                if RTP_RANGE[0] <= port <= RTP_RANGE[1]:
                    ports.add(port)
    return sorted(ports)


@dataclass
class Probe:
    """One call's AGI side: sends the call's commands, logs the dialogue and what the phone got."""

    call: str
    log: Log
    ami: AMI
    phone: Phone
    done: asyncio.Event = field(default_factory=asyncio.Event)
    results: dict[str, str] = field(default_factory=dict)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        finally:
            writer.close()
            self.done.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env: dict[str, str] = {}
        while True:
            async with asyncio.timeout(10):
                line = await reader.readline()
            self.log.write(f"#{self.log.ts()} <<< {line!r}\n")
            if line in (b"\n", b""):
                break
            key, _, value = line.decode().rstrip("\n").partition(": ")
            env[key] = value
        channel = env.get("agi_channel", "")

        async def cmd(command: str, during: Callable[[], Awaitable[None]] | None = None) -> None:
            self.log.write(f"#{self.log.ts()} >>> {(command + chr(10)).encode()!r}\n")
            self.phone.heard_since_mark()
            writer.write((command + "\n").encode())
            helper = asyncio.create_task(during()) if during is not None else None
            reply = None
            try:
                while True:
                    async with asyncio.timeout(30):
                        raw = await reader.readline()
                    self.log.write(f"#{self.log.ts()} <<< {raw!r}\n")
                    if not raw:
                        break
                    text = raw.decode().rstrip("\n")
                    if text.startswith(("200", "5")):
                        reply = text
                        break
            finally:
                if helper is not None:
                    await helper
            self.log.note(f"{MEDIA_NOTE}: {self.phone.heard_since_mark()}")
            self.results[command] = reply or ""

        async def started(word: str) -> None:
            await self.ami.wait(
                lambda m: (
                    m.get("Event") == "AGIExecStart"
                    and m.get("Channel") == channel
                    and m.get("Command", "").startswith(word)
                ),
                timeout=10,
            )

        async def phone_dtmf() -> None:
            await started("GET DATA")
            await self.phone.dtmf_before_answer(channel, self.ami, self.log)

        async def answered_dtmf() -> None:
            await started("GET DATA")
            await self.phone.dtmf_after_answer(channel)

        async def play_dtmf() -> None:
            await started("WAIT FOR DIGIT")
            # On a Local channel, the digit goes to the ;1 half (as a phone's would).
            target = channel[:-2] + ";1" if channel.endswith(";2") else channel
            self.ami.send(Action="PlayDTMF", Channel=target, Digit="5", Duration="200", ActionID="dtmf-5")
            await self.ami.wait(lambda m: m.get("ActionID") == "dtmf-5")

        beep = str(SOUNDS / "beep")
        if self.call == "noanswer":
            await cmd("CHANNEL STATUS")
            await cmd(f'STREAM FILE {beep} ""')
            await cmd(f"GET DATA {beep} 3000 4", phone_dtmf)
            await cmd("WAIT FOR DIGIT 3000", play_dtmf)
            await cmd(f'EXEC Playback "{beep},noanswer"')
            await cmd("CHANNEL STATUS")
        elif self.call == "fallthrough":
            await cmd("CHANNEL STATUS")
        elif self.call == "answeredfall":
            await cmd("ANSWER")
        elif self.call == "local":
            await cmd("CHANNEL STATUS")
            await cmd("WAIT FOR DIGIT 3000", play_dtmf)
            await cmd(f'STREAM FILE {beep} ""')
        else:
            await cmd("ANSWER")
            await cmd("CHANNEL STATUS")
            await cmd(f'STREAM FILE {beep} ""')
            self.log.note("expecting RFC 2833 DTMF 1 2 # from the phone during GET DATA")
            await cmd(f"GET DATA {beep} 6000 4", answered_dtmf)
        self.log.note("the script closes the connection")


@dataclass(frozen=True)
class Facts:
    """What one call's transcripts show, ids and times aside (the fixture and a new capture, or
    a run on the simulator, are compared through this)."""

    agi: tuple[tuple[str, str, bool], ...]  # (command, reply, the phone got media during it)
    newstate: tuple[tuple[str, str], ...]  # (channel, state) of each Newstate
    dtmf: tuple[tuple[str, str, str, str], ...]  # (event, channel, digit, direction)
    soft_hangups: tuple[tuple[str, str], ...]  # (channel, Cause) of each SoftHangupRequest
    hangups: tuple[tuple[str, str, str], ...]  # (channel, Cause, ChannelState) of each Hangup
    responses: tuple[tuple[str, str, str], ...]  # (ActionID, Response, Message) of the probe's actions
    originate: tuple[tuple[str, str], ...]  # (Response, Reason) of each OriginateResponse
    sip_final: str | None  # the final response to the phone's INVITE (None: no SIP in the call)


def _ami_messages(text: str) -> list[dict[str, str]]:
    """The messages received in an AMI transcript (``#... <<<`` blocks), as header maps."""
    out = []
    for block in re.split(r"(?m)^#[ 0-9.]+<<<\n", text)[1:]:
        body = block.split("\r\n\r\n", 1)[0]
        headers = [ln.split(": ", 1) for ln in body.split("\r\n") if ": " in ln]
        out.append({k: v for k, v in headers})
    return out


def _agi_dialogue(text: str) -> list[tuple[str, str, bool]]:
    steps: list[tuple[str, str, bool]] = []
    command: str | None = None
    reply = ""
    for line in text.splitlines():
        sent = re.match(r"^#[ 0-9.]+>>> (b.*)$", line)
        got = re.match(r"^#[ 0-9.]+<<< (b.*)$", line)
        note = re.match(rf"^#[ 0-9.]+-- {MEDIA_NOTE}: (\d+)$", line)
        if sent:
            command, reply = ast.literal_eval(sent.group(1)).decode().rstrip("\n"), ""
        elif got and command is not None and not reply:
            value = ast.literal_eval(got.group(1)).decode().rstrip("\n")
            if value.startswith(("200", "5")):
                reply = value
        elif note and command is not None:
            steps.append((command, reply, int(note.group(1)) > 0))
            command = None
    return steps


def local_halves_in_order(hangups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    """``hangups`` with the two halves of one Local channel (``...;1`` and ``...;2``) in name
    order where they are reported one right after the other: Asterisk hangs both halves up from
    two threads and reports them in either order (about 1 run in 5). Nothing else is reordered:
    a half separated from its twin by another channel's hang-up keeps its place."""
    out = list(hangups)
    for i in range(len(out) - 1):
        a, b = out[i][0], out[i + 1][0]
        twins = a[:-2] == b[:-2] and {a[-2:], b[-2:]} == {";1", ";2"} and a.startswith("Local/")
        if twins and a > b:
            out[i], out[i + 1] = out[i + 1], out[i]
    return tuple(out)


def read_facts(directory: Path, call: str) -> Facts:
    ami = _ami_messages((directory / f"unanswered-{call}.ami.txt").read_bytes().decode())  # CRLF kept
    agi = _agi_dialogue((directory / f"unanswered-{call}.agi.txt").read_text(encoding="utf-8"))
    sip = directory / f"unanswered-{call}.sipp-messages.log"
    final: str | None = None
    if sip.exists():
        final = ""
        for line in sip.read_text(errors="replace").splitlines():
            if line.startswith("SIP/2.0 ") and not line.startswith(("SIP/2.0 100", "SIP/2.0 18")):
                final = line.strip()
                break

    def of(event: str, *keys: str) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(m.get(k, "") for k in keys) for m in ami if m.get("Event") == event)

    return Facts(
        agi=tuple(agi),
        newstate=of("Newstate", "Channel", "ChannelState"),  # type: ignore[arg-type]
        dtmf=tuple(
            (m["Event"], m.get("Channel", ""), m.get("Digit", ""), m.get("Direction", ""))
            for m in ami
            if m.get("Event") in ("DTMFBegin", "DTMFEnd")
        ),
        soft_hangups=of("SoftHangupRequest", "Channel", "Cause"),  # type: ignore[arg-type]
        hangups=local_halves_in_order(of("Hangup", "Channel", "Cause", "ChannelState")),  # type: ignore[arg-type]
        responses=tuple(
            (m["ActionID"], m.get("Response", ""), m.get("Message", ""))
            for m in ami
            if "Response" in m and m.get("ActionID") in ("dtmf-5", "orig")
        ),
        originate=of("OriginateResponse", "Response", "Reason"),  # type: ignore[arg-type]
        sip_final=final,
    )


async def _sipp(ast_: RealAsterisk, call: str, out: Path, media_port: int, log: Log) -> None:
    scenario = out / f"unanswered-{call}.sipp.xml"
    scenario.write_text(sipp_scenario(call))
    messages = out / f"unanswered-{call}.sipp-messages.log"
    messages.unlink(missing_ok=True)
    log.note(f"SIPp calls {call} at 127.0.0.1:{ast_.sip_port} (endpoint phone, context probe)")
    try:
        proc = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(scenario), "-s", call, "-i", "127.0.0.1", "-p", str(free_port()),
            "-mi", "127.0.0.1", "-mp", str(free_port()), "-key", "phone_media", str(media_port),
            "-m", "1", "-l", "1", "-nostdin", "-timeout", "60", "-timeout_error",
            "-trace_msg", "-message_file", str(messages), f"127.0.0.1:{ast_.sip_port}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(90):
            _, err = await proc.communicate()
    finally:
        scenario.unlink(missing_ok=True)
    log.note(f"SIPp exited with status {proc.returncode}")
    if err:
        log.note("SIPp stderr: " + err.decode(errors="replace").strip().replace("\n", " | "))


async def run_call(
    call: str, out: Path, *, ami_port: int, ami_secret: str, agi_port: int, phone: Phone, t0: float,
    place: Callable[[AMI, Log], Awaitable[None]],
) -> None:  # fmt: skip
    """One call of ``CALLS``: the probe serves FastAGI on ``agi_port``, ``place`` makes the call
    (SIPp, or the simulator's phone), and the transcripts go to ``out``."""
    ami_log = Log(out / f"unanswered-{call}.ami.txt", t0)
    agi_log = Log(out / f"unanswered-{call}.agi.txt", t0)
    ami = AMI(ami_log)
    probe = Probe(call, agi_log, ami, phone)
    server = await asyncio.start_server(probe.handle, "127.0.0.1", agi_port)
    try:
        await ami.connect(ami_port, ami_secret)
        if call == "local":
            ami.send(
                Action="Originate", Channel="Local/local@probe", Application="Wait", Data="10",
                Timeout="15000", Async="true", ChannelId="probe-local-1", OtherChannelId="probe-local-2",
                ActionID="orig",
            )  # fmt: skip
            await ami.wait(lambda m: m.get("Event") == "OriginateResponse", timeout=40)
        else:
            await place(ami, ami_log)
        async with asyncio.timeout(20):
            await probe.done.wait()
        wanted = 2 if call == "local" else 1
        await ami.wait(lambda m: sum(1 for x in ami.seen if x.get("Event") == "Hangup") >= wanted, timeout=20)
        await ami.close()
    finally:
        server.close()
        await server.wait_closed()
        ami_log.close()
        agi_log.close()


async def capture(binary: Path, root: Path, out: Path) -> dict[str, Facts]:
    """Run the calls on a private Asterisk; transcripts into ``out`` (which exists); their facts."""
    agi_port, ami_port = free_port(), free_port()
    t0 = time.monotonic()
    loop = asyncio.get_running_loop()
    with running_asterisk(probe_files(agi_port), binary=binary, root=root, ami_port=ami_port) as ast_:
        for call in CALLS:
            media = Media()
            media_port = free_port()
            transport, _ = await loop.create_datagram_endpoint(
                lambda media=media: media, local_addr=("127.0.0.1", media_port)
            )

            async def place(ami: AMI, log: Log, call: str = call, media_port: int = media_port) -> None:
                await _sipp(ast_, call, out, media_port, log)

            try:
                await run_call(
                    call, out, ami_port=ami_port, ami_secret=ast_.admin_secret, agi_port=agi_port,
                    phone=media, t0=t0, place=place,
                )  # fmt: skip
            finally:
                transport.close()
    return {call: read_facts(out, call) for call in CALLS}


def _main() -> None:
    import os
    import sys

    from tests.asterisk_harness import short_tempdir

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("unanswered-capture")
    out.mkdir(parents=True, exist_ok=True)
    with short_tempdir() as root:
        facts = asyncio.run(capture(Path(os.environ["ASTERISK_BIN"]), root, out))
    for call, f in facts.items():
        print(call, f)


if __name__ == "__main__":
    _main()
