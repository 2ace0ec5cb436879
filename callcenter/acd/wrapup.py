"""Pure: the rules of a disposition (wrap-up code) and of what an agent's screen may show.

``choose(codes, code)`` checks an agent's choice against the codes of its call's queue or campaign
(``Config.disposition_codes``): one of them is required when there are any (``disposition_required``),
anything else is refused (``unknown_disposition``); both raise ``DispositionError`` (422 on the API).
``clean_notes`` keeps an agent's notes printable and bounded. ``mask_card_like`` hides card-like
digit runs (13-19 digits, spaces or dashes between) in any value shown on a screen, keeping the last
four.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final

from callcenter.config.model import DispositionCode
from callcenter.errors import DispositionError

NOTES_MAX: Final = 1000
_CARD_LIKE: Final = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")


def choose(codes: Sequence[DispositionCode], code: str | None) -> DispositionCode | None:
    """The chosen code among ``codes`` (None when the call has no codes and none was given)."""
    code = (code or "").strip()
    known = {c.code: c for c in codes}
    if not code:
        if known:
            raise DispositionError(
                f"choose a disposition: one of {', '.join(known)}", code="disposition_required", field="code"
            )
        return None
    if code not in known:
        offered = ", ".join(known) if known else "this call has no disposition codes"
        raise DispositionError(
            f"unknown disposition {code[:40]!r} ({offered})", code="unknown_disposition", field="code"
        )
    return known[code]


def clean_notes(text: str | None, limit: int = NOTES_MAX) -> str | None:
    """Notes as stored: control, format, surrogate, private-use and unassigned characters removed
    (line breaks and tabs kept as a newline and a space), surrounding blanks trimmed, at most
    ``limit`` characters; None if empty."""
    if not text:
        return None
    text = text[: limit * 4].replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    kept = "".join(ch for ch in text if ch == "\n" or not unicodedata.category(ch).startswith("C"))
    kept = kept.strip()[:limit].rstrip()
    return kept or None


def mask_card_like(value: str) -> str:
    """``value`` with every card-like digit run masked but its last four digits."""

    def hide(m: re.Match[str]) -> str:
        digits = re.sub(r"[^0-9]", "", m.group(0))
        return "*" * (len(digits) - 4) + digits[-4:]

    return _CARD_LIKE.sub(hide, value)
