"""Shell: prompt durations (from WAV files on disk) and MixMonitor's WAV writer.

Media is modelled as time: a prompt lasts as long as its WAV (8 kHz mono 16-bit, Asterisk's
``.wav`` format). Prompts are looked up in the sound directories given to the simulator (the
product's ``ivr_prompts/`` audio), then in a small table of Asterisk core sounds the traces use.
"""

from __future__ import annotations

import logging
import math
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Final

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 8000

# Asterisk core sounds the dialplans and traces name (seconds, measured on Asterisk 22's en set).
CORE_SOUNDS: Final = {
    "beep": 3404 / SAMPLE_RATE,  # STREAM FILE beep -> endpos=3404 in the trace
    "queue-periodic-announce": 7.837,
    "silence/1": 1.0,
    "silence/2": 2.0,
    "silence/3": 3.0,
    "vm-intro": 5.654,
    "vm-goodbye": 0.9,
    "auth-thankyou": 1.0,
    "pls-hold-while-try": 2.4,
    "queue-thankyou": 1.6,
    "queue-youarenext": 1.3,
    "queue-thereare": 0.9,
    "queue-callswaiting": 1.1,
    "queue-holdtime": 1.9,
    "queue-minutes": 0.7,
    "digits/0": 0.5,
    "digits/1": 0.5,
    "digits/2": 0.5,
    "digits/3": 0.5,
    "digits/4": 0.5,
    "digits/5": 0.5,
    "digits/6": 0.5,
    "digits/7": 0.5,
    "digits/8": 0.5,
    "digits/9": 0.5,
    "hello-world": 1.404,
    "tt-monkeys": 9.8,
    "ss-noservice": 3.7,
}


# Where Debian's asterisk-core-sounds packages put the real prompts (used when present).
SYSTEM_SOUND_DIRS: Final = (Path("/usr/share/asterisk/sounds/en"), Path("/var/lib/asterisk/sounds/en"))


class SoundLibrary:
    """Where prompts are and how long each lasts (``None`` when it does not exist)."""

    def __init__(
        self, dirs: Iterable[Path] = (), *, extra: dict[str, float] | None = None, system: bool = True
    ) -> None:
        self.dirs: Sequence[Path] = [Path(d) for d in dirs] + (
            [d for d in SYSTEM_SOUND_DIRS if d.is_dir()] if system else []
        )
        self._cache: dict[str, float | None] = {}
        self._extra = dict(extra or {})

    def duration(self, name: str) -> float | None:
        name = name.strip()
        if name in self._cache:
            return self._cache[name]
        found: float | None = self._extra.get(name)
        # An absolute path (``/var/lib/asterisk/sounds/callcenter/en/menu``) is looked up by its
        # last two parts (``en/menu``), then its base name, in the simulator's sound directories.
        parts = PurePosixPath(name).parts
        candidates = [name] if not name.startswith("/") else ["/".join(parts[-2:]), parts[-1]]
        for cand in candidates:
            if found is not None or ".." in cand or cand.startswith("/"):
                break
            for base in self.dirs:
                for candidate in (base / f"{cand}.wav", base / cand):
                    if candidate.is_file():
                        found = wav_seconds(candidate)
                        break
                if found is not None:
                    break
            if found is None:
                found = CORE_SOUNDS.get(cand)
        if found is None and name.startswith("digits/") and name[7:].isdigit():
            found = 0.4 + 0.15 * len(name[7:])
        self._cache[name] = found
        return found


def wav_seconds(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate() or SAMPLE_RATE
            return w.getnframes() / rate
    except (OSError, EOFError, wave.Error) as exc:
        log.warning("cannot read prompt %s: %s", path, exc)
        return None


def write_recording(path: Path, seconds: float, muted: Sequence[tuple[float, float]] = ()) -> int:
    """Write an 8 kHz mono 16-bit WAV lasting ``seconds``: a quiet 400 Hz tone where audio would
    be, silence in the ``muted`` intervals (offsets from the start). Returns the frame count."""
    frames = max(0, round(seconds * SAMPLE_RATE))
    path.parent.mkdir(parents=True, exist_ok=True)
    # One period of a 400 Hz tone at 8 kHz is 20 samples; amplitude kept low.
    period = b"".join(
        int(round(1000 * _sin(2 * 3.141592653589793 * i / 20))).to_bytes(2, "little", signed=True)
        for i in range(20)
    )
    chunk_frames = 8000
    tone_chunk = period * (chunk_frames // 20)
    silent_chunk = b"\x00\x00" * chunk_frames
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        done = 0
        while done < frames:
            n = min(chunk_frames, frames - done)
            t = done / SAMPLE_RATE
            quiet = any(a <= t < b for a, b in muted)
            w.writeframes((silent_chunk if quiet else tone_chunk)[: n * 2])
            done += n
    return frames


def _sin(x: float) -> float:
    return math.sin(x)
