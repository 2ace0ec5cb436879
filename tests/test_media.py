"""The test phones' helpers: ``tests/media.py`` (G.711 mu-law, tone shares, two RTP peers on
loopback hearing each other's tones and RFC 4733 keys in one stream) and the SIPp scenarios of
``tests/sipp.py`` (well-formed, and saying what the real-phone tests rely on)."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import wave
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests import sipp
from tests.media import (
    DTMF,
    DTMF_EVENTS,
    SILENCE,
    ULAW_DECODE,
    Packet,
    RtpPeer,
    pcmu_frames,
    tone_frame,
    tone_share,
    ulaw_encode,
)


def test_ulaw_round_trip_keeps_each_sample_within_its_step() -> None:
    for sample in range(-32000, 32001, 37):
        back = ULAW_DECODE[ulaw_encode(sample)]
        assert abs(back - sample) <= max(8, abs(sample) // 16), sample
    assert SILENCE == bytes([0xFF]) * 160 and ULAW_DECODE[0xFF] == 0


def test_tone_share_tells_tones_apart() -> None:
    assert tone_share(tone_frame(1000), 1000) > 0.95
    assert tone_share(tone_frame(1000), 600) < 0.01
    assert tone_share(SILENCE, 1000) == 0.0
    a = [ULAW_DECODE[b] for b in tone_frame(600, 4000)]
    b = [ULAW_DECODE[x] for x in tone_frame(1500, 4000)]
    mixed = bytes(ulaw_encode(x + y) for x, y in zip(a, b, strict=True))
    assert 0.4 < tone_share(mixed, 600) < 0.6 and 0.4 < tone_share(mixed, 1500) < 0.6
    assert tone_share(mixed, 1000) < 0.05
    with pytest.raises(ValueError, match="whole number"):
        tone_frame(1010)


async def test_two_peers_hear_each_other_and_keys_go_in_the_same_stream() -> None:
    async with RtpPeer(600) as phone, RtpPeer(1500) as pbx:
        phone.aim("127.0.0.1", pbx.port)  # the phone sends first; the other answers where it came from
        await pbx.until(lambda: pbx.hears(600, frames=5), "the other peer hears nothing")
        await phone.until(lambda: phone.hears(1500, frames=5), "no answer")
        assert pbx.remote == ("127.0.0.1", phone.port) and not phone.hears(600, frames=1)
        await phone.press("1#")

        def ends() -> list[Packet]:
            return [p for p in pbx.received if p.payload_type == DTMF and p.payload[1] & 0x80]

        await pbx.until(lambda: len(ends()) == 6, "the keys' end packets did not all arrive")
        keys = [p for p in pbx.received if p.payload_type == DTMF]
        assert [p.payload[0] for p in ends()] == [DTMF_EVENTS["1"]] * 3 + [DTMF_EVENTS["#"]] * 3
        assert [p.marker for p in keys].count(True) == 2  # each key's first packet
        # one stream: sequence numbers keep rising through audio and keys alike
        seqs = [p.seq for p in pbx.received]
        assert all(b - a in (0, 1) for a, b in zip(seqs, seqs[1:], strict=False)), seqs
        # a key's packets share its start time stamp; their duration grows by 20 ms steps
        first = [p for p in keys if p.payload[0] == DTMF_EVENTS["1"]]
        assert len({p.timestamp for p in first}) == 1
        durations = [struct.unpack("!H", p.payload[2:4])[0] for p in first]
        assert durations[:7] == [160 * n for n in range(1, 8)]
        phone.mute()
        muted = asyncio.get_running_loop().time()
        await phone.until(lambda: bool(phone.audio(since=muted + 0.2)), "the other side stopped too")
        assert not pbx.audio(since=muted + 0.1)


def _wav(samples: list[int], rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


async def test_a_played_wav_goes_out_frame_by_frame_before_the_peers_own_tone() -> None:
    tone = [round(6000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(400)]  # 50 ms
    frames = pcmu_frames(_wav(tone))
    assert [len(f) for f in frames] == [160, 160, 160]  # the last one padded with silence
    assert frames[0] == tone_frame(1000) and frames[2][80:] == SILENCE[80:]
    with pytest.raises(ValueError, match="16-bit mono 8 kHz"):
        pcmu_frames(_wav(tone, rate=16000))
    async with RtpPeer(600) as line, RtpPeer() as pbx:
        line.play(frames)
        line.aim("127.0.0.1", pbx.port)
        await pbx.until(lambda: len(pbx.audio()) >= 5, "nothing arrived")
        got = [p.payload for p in pbx.audio()]
        assert got[:3] == frames and got[3] == tone_frame(600)  # then the peer's own tone
        assert len(line.script_sent) == 3 and line.script_sent == sorted(line.script_sent)


def _scenario(text: str) -> ET.Element:
    return ET.fromstring(text.encode("iso-8859-1"))  # noqa: S314 - our own scenario text


def test_sipp_scenarios_are_well_formed_and_say_what_the_tests_rely_on(tmp_path: Path) -> None:
    phone = sipp.Party("agent1001", password="pw", display="Alice")
    reg = _scenario(sipp.register(phone, contact_port=40123))
    assert "Contact: <sip:agent1001@[local_ip]:40123>" in "".join(reg.itertext())
    ringer = _scenario(sipp.answer(phone, media_port=41000))
    steps = [(e.tag, e.get("request") or e.get("response") or e.get("id") or "") for e in ringer]
    assert steps[0] == ("recv", "INVITE")
    assert ("recv", "BYE") in steps and ("label", "reinvite") in steps  # re-INVITEs answered
    assert "m=audio 41000 RTP/AVP 0 101" in "".join(ringer.itertext())
    assert ringer[-1].find("action/exec").get("int_cmd") == "stop_now"  # type: ignore[union-attr]
    poked = _scenario(sipp.call(sipp.Call(phone, media_port=42000, until_poked=True), tmp_path))
    tags = [(e.tag, e.get("request") or e.get("response") or "") for e in poked]
    assert ("recv", sipp.POKE) in tags and "m=audio 42000 RTP/AVP 0 101" in "".join(poked.itertext())
    bye_after_poke = [t for t in tags[tags.index(("recv", sipp.POKE)) :] if t[0] == "send"]
    assert bye_after_poke, tags
    busy = _scenario(sipp.busy(sipp.Party("+12125550145")))
    assert [e.tag for e in busy] == ["recv", "send", "recv", "nop"]
    assert "".join(busy[1].itertext()).strip().startswith("SIP/2.0 486 Busy Here")
