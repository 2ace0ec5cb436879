"""Test helper: the rendered ``extensions.conf`` with or without an ``Answer()`` in the feature-code
context (``names.CTX_FEATURES``), so a test can check what a phone gets from each.

``answering_features(text)`` makes every feature code answer before its first step (unchanged
when the context already answers); ``unanswered_features(text)`` turns every ``Answer()`` of the
context into a ``NoOp`` (unchanged when it has none). Other contexts are left as they are.
"""

from __future__ import annotations

import re

from callcenter.asterisk import names

_SECTION = re.compile(r"(?m)^\[(?P<name>[^\]]+)\][^\n]*\n")
_FIRST_STEP = re.compile(r"(?m)^(?P<head>exten\s*=>\s*[^,\n]+,\s*1\s*,)(?P<app>.*)$")
_ANSWER = re.compile(r"\bAnswer\(([^)\n]*)\)")


def _split(text: str, context: str) -> tuple[str, str, str]:
    """(before, the context's body, after); the body runs to the next ``[section]``."""
    for match in _SECTION.finditer(text):
        if match.group("name") == context:
            start = match.end()
            nxt = _SECTION.search(text, start)
            end = nxt.start() if nxt else len(text)
            return text[:start], text[start:end], text[end:]
    raise ValueError(f"no [{context}] in the dialplan")


def features_answer(text: str) -> bool:
    """Whether the feature-code context runs ``Answer()`` anywhere."""
    return bool(_ANSWER.search(_split(text, names.CTX_FEATURES)[1]))


def answering_features(text: str) -> str:
    if features_answer(text):
        return text
    before, body, after = _split(text, names.CTX_FEATURES)
    body = _FIRST_STEP.sub(lambda m: f"{m['head']}Answer()\n same => n,{m['app']}", body)
    return before + body + after


def unanswered_features(text: str) -> str:
    before, body, after = _split(text, names.CTX_FEATURES)
    return before + _ANSWER.sub(r"NoOp(Answer removed: \1)", body) + after
