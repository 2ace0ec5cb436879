"""Test helper: a SIP phone's media, in Python: an RTP peer on a loopback UDP port.

SIPp carries a test phone's SIP; its SDP names an ``RtpPeer``'s port as the media port, so
every RTP packet Asterisk sends that phone arrives here, timed, and what the phone sends is
ours: a PCMU tone of its own frequency (so a listener can tell who it hears: ``share``, a
Goertzel filter per 20 ms frame), digital silence, or nothing at all (a dead leg), with RFC 4733
keys (``press``) inserted in the same RTP stream, as a phone sends them: sequence numbers and
timestamps keep increasing across audio and keys.

The peer answers where audio comes from (symmetric RTP, as Asterisk is itself): it starts
sending once Asterisk's first packet arrives (its source is Asterisk's RTP address), unless
``remote`` is set first. Tones are multiples of 50 Hz, whole periods in a 160-sample frame, so
a frame is the same every time and sits on a Goertzel bin.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import math
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

PCMU: Final = 0
DTMF: Final = 101  # telephone-event in the test phones' SDP
FRAME: Final = 160  # samples in 20 ms at 8 kHz
PTIME: Final = 0.02
DTMF_EVENTS: Final = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_BIAS, _CLIP = 0x84, 32635


def _ulaw_decode(u: int) -> int:
    u = ~u & 0xFF
    exponent, mantissa = (u >> 4) & 0x07, u & 0x0F
    sample = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return -sample if u & 0x80 else sample


ULAW_DECODE: Final = tuple(_ulaw_decode(u) for u in range(256))


def ulaw_encode(sample: int) -> int:
    """G.711 mu-law of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), _CLIP) + _BIAS
    exponent = max(0, (magnitude >> 7).bit_length() - 1)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


SILENCE: Final = bytes([ulaw_encode(0)]) * FRAME


def tone_frame(freq: int, amplitude: int = 6000) -> bytes:
    """20 ms of a ``freq`` Hz tone in PCMU (``freq`` a multiple of 50 Hz: whole periods)."""
    if freq % 50:
        raise ValueError(f"{freq} Hz is not a whole number of periods in 20 ms")
    return bytes(
        ulaw_encode(round(amplitude * math.sin(2 * math.pi * freq * n / 8000))) for n in range(FRAME)
    )


def _energy(payload: bytes) -> int:
    return sum(ULAW_DECODE[b] ** 2 for b in payload)


def tone_share(payload: bytes, freq: int) -> float:
    """How much of the frame's energy is at ``freq`` (Goertzel; 1.0 for that tone alone, about
    0.5 each for two tones of equal level, 0.0 for silence)."""
    samples = [ULAW_DECODE[b] for b in payload]
    energy = sum(s * s for s in samples)
    if energy < len(samples) * 100**2:  # quieter than -50 dBFS or so: silence
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / 8000)
    s1 = s2 = 0.0
    for s in samples:
        s1, s2 = s + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return min(1.0, power / (len(samples) / 2 * energy))


@dataclass(frozen=True)
class Packet:
    at: float  # the loop's time at arrival
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    payload: bytes


class RtpPeer(asyncio.DatagramProtocol):
    """One phone's media port (see the module docstring). ``open()`` binds it; ``tone`` is what
    it sends (Hz; None: digital silence); ``mute()`` stops every packet (a leg gone silent)."""

    def __init__(self, tone: int | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.frame = SILENCE if tone is None else tone_frame(tone)
        self.received: list[Packet] = []
        self.remote: tuple[str, int] | None = None
        self.sending = True
        self.keys_sent: list[tuple[str, float]] = []  # (key, loop time of its end packet)
        self._keys: asyncio.Queue[tuple[str, asyncio.Future[float]]] = asyncio.Queue()
        self._learned = asyncio.Event()
        self._arrived = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._seq, self._ts, self._ssrc = 1000, 16000, 0x5EC0DE00 + (id(self) & 0xFF)
        self._script: collections.deque[bytes] = collections.deque()
        self.script_sent: list[float] = []  # loop time each ``play``ed frame was sent

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> RtpPeer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        self._task = asyncio.create_task(self._send_loop(), name=f"rtp-{self.port}")
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._transport is not None:
            self._transport.close()

    async def __aenter__(self) -> RtpPeer:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def aim(self, host: str, port: int) -> None:
        """Send to ``host:port`` from now on (instead of waiting for Asterisk's first packet)."""
        self.remote = (host, port)
        self._learned.set()

    # ------------------------------------------------------------------ receiving
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        pt = data[1] & 0x7F
        if pt not in (PCMU, DTMF, 8, 13):  # RTCP (200-204) reads as 72-76 here: not media
            return
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= offset + 4:  # a header extension
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        seq, ts = struct.unpack_from("!HI", data, 2)
        now = asyncio.get_running_loop().time()
        self.received.append(Packet(now, pt, bool(data[1] & 0x80), seq, ts, data[offset:]))
        if self.remote is None:
            self.remote = (addr[0], addr[1])
        self._learned.set()
        self._arrived.set()

    async def until(self, predicate: Callable[[], bool], what: str, *, timeout: float = 20.0) -> None:
        """Wait until ``predicate()`` holds, checked as each packet arrives (bounded)."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(f"{what} (after {timeout} s)") from None

    def audio(self, since: float = 0.0, until: float = math.inf) -> list[Packet]:
        """The PCMU packets that arrived in [since, until)."""
        return [p for p in self.received if p.payload_type == PCMU and since <= p.at < until]

    def loud(self, since: float = 0.0, until: float = math.inf) -> int:
        """How many audio frames that arrived in [since, until) were not silence (a prompt, a
        voice, a tone: -40 dBFS or louder)."""
        return sum(_energy(p.payload) >= FRAME * 300**2 for p in self.audio(since, until))

    def share(self, freq: int, since: float = 0.0, until: float = math.inf) -> float:
        """The mean ``tone_share`` of ``freq`` over the audio that arrived in [since, until)."""
        frames = self.audio(since, until)
        return sum(tone_share(p.payload, freq) for p in frames) / len(frames) if frames else 0.0

    def hears(self, freq: int, since: float = 0.0, until: float = math.inf, *, frames: int = 25) -> bool:
        """At least ``frames`` of the audio since ``since`` carry a fair part of ``freq`` (a fifth
        or more of the frame's energy: two or three tones mixed still count)."""
        return sum(tone_share(p.payload, freq) >= 0.2 for p in self.audio(since, until)) >= frames

    # ------------------------------------------------------------------ sending
    def play(self, frames: list[bytes]) -> None:
        """Send ``frames`` (20 ms PCMU each, e.g. ``pcmu_frames`` of a sox-made WAV) next, in
        place of the peer's own tone; each one's send time goes to ``script_sent``."""
        self._script.extend(frames)

    def mute(self) -> None:
        """Send nothing more (no RTP at all, as a phone whose network went away)."""
        self.sending = False

    async def press(self, keys: str, *, timeout: float = 10.0) -> None:
        """Send ``keys`` as RFC 4733 events in the media stream; returns once the last one ended."""
        futures = []
        for key in keys:
            if key not in DTMF_EVENTS:
                raise ValueError(f"not a DTMF key: {key!r}")
            fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._keys.put_nowait((key, fut))
            futures.append(fut)
        async with asyncio.timeout(timeout):
            for fut in futures:
                await fut

    def _rtp(self, pt: int, payload: bytes, *, marker: bool = False, ts: int | None = None) -> bytes:
        stamp = (self._ts if ts is None else ts) & 0xFFFFFFFF
        second = (0x80 if marker else 0) | pt
        return struct.pack("!BBHII", 0x80, second, self._seq & 0xFFFF, stamp, self._ssrc) + payload

    async def _send_loop(self) -> None:
        """A packet every 20 ms (absolute schedule: a late tick does not slow the stream): audio,
        or the packets of the next queued key (7 updates, then the end packet three times), with
        a short gap of audio between keys."""
        await self._learned.wait()
        loop = asyncio.get_running_loop()
        tick, start = 0, loop.time()
        key: tuple[str, asyncio.Future[float]] | None = None
        key_tick, key_ts, gap = 0, 0, 0
        while True:
            if self.sending and self._transport is not None and self.remote is not None:
                if key is None and gap <= 0 and not self._keys.empty():
                    key, key_tick, key_ts = self._keys.get_nowait(), 0, self._ts
                if key is not None:
                    end = key_tick >= 7
                    event = DTMF_EVENTS[key[0]]
                    body = struct.pack(
                        "!BBH", event, (0x80 if end else 0) | 10, FRAME * (min(key_tick, 7) + 1)
                    )
                    for _ in range(3 if end else 1):
                        self._transport.sendto(
                            self._rtp(DTMF, body, marker=key_tick == 0, ts=key_ts), self.remote
                        )
                    self._seq += 1
                    key_tick += 1
                    if end:
                        self.keys_sent.append((key[0], loop.time()))
                        if not key[1].done():
                            key[1].set_result(loop.time())
                        key, gap = None, 5  # 100 ms of audio before the next key
                else:
                    gap -= 1
                    frame = self.frame
                    if self._script:
                        frame = self._script.popleft()
                        self.script_sent.append(loop.time())
                    self._transport.sendto(self._rtp(PCMU, frame, marker=tick == 0), self.remote)
                    self._seq += 1
            self._ts += FRAME
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * PTIME - loop.time()))


def pcmu_frames(wav: bytes) -> list[bytes]:
    """The 20 ms PCMU frames of a 16-bit mono 8 kHz WAV (as ``sox ... -r 8000 -c 1 -b 16``
    writes it); the last frame padded with silence."""
    with wave.open(io.BytesIO(wav)) as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, 8000):
            raise ValueError("not a 16-bit mono 8 kHz WAV")
        raw = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    ulaw = bytes(ulaw_encode(s) for s in samples)
    ulaw += SILENCE[: (-len(ulaw)) % FRAME]
    return [ulaw[i : i + FRAME] for i in range(0, len(ulaw), FRAME)]
