"""Pure: what a waiting caller hears: position and expected wait, as Asterisk's core sound names.

Asterisk's core sounds hold ``digits/0`` to ``digits/20`` and the tens (``digits/30`` ...
``digits/90``), not 21-99: a number is said as its tens then its units, as Asterisk's own
``SayNumber`` does (``main/say.c``), so "23" is ``digits/20&digits/3``.
"""

from __future__ import annotations

import posixpath

from callcenter.acd import routing as rt
from callcenter.config import model as cm

MAX_SAID = 99  # positions and minutes above this are said as 99 ("99 or more")


def number_sounds(n: int) -> list[str]:
    """The core sounds that say ``n`` (0-99; larger numbers are said as 99)."""
    n = max(0, min(MAX_SAID, n))
    if n <= 20 or n % 10 == 0:
        return [f"digits/{n}"]
    return [f"digits/{n - n % 10}", f"digits/{n % 10}"]


def announcement_prompt(ann: rt.Announcement, language: str, queue: cm.Queue, *, sounds_dir: str = "") -> str:
    """What ``cc-announce`` plays (``Playback`` sound names joined by ``&``): "your position is
    <n>", "your expected wait is about <m> minutes", per the queue's announce options. Our own
    prompts are named under ``sounds_dir`` (where they are installed)."""

    def ours(prompt_id: str) -> str:
        return posixpath.join(sounds_dir, cm.prompt_sound(prompt_id, language))

    parts: list[str] = []
    if queue.announce_position:
        parts += [ours("queue-position"), *number_sounds(ann.position)]
    if queue.announce_wait and ann.ewt is not None:
        minutes = max(1, round(ann.ewt / 60))
        parts += [ours("queue-wait"), *number_sounds(minutes), ours("minutes")]
    return "&".join(parts) or ours("please-hold")
