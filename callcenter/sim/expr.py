"""Pure: dialplan variable substitution (``${VAR}``, ``${VAR:off:len}``, ``${FUNC(args)}``) and
``$[...]`` expressions, as Asterisk evaluates them.

``substitute(text, env)`` expands innermost first. ``env`` is the seam to the channel: it resolves
variables and functions; an unknown function raises :class:`UnknownFunctionError` (the caller
reports it with context and priority). ``$[...]`` supports ``|``, ``&``, ``=``/``==``, ``!=``,
``<``, ``>``, ``<=``, ``>=``, ``+``, ``-``, ``*``, ``/``, ``%``, unary ``!`` and ``-``, ``=~``
(regex), ``cond ? a :: b`` and parentheses; numbers compare as numbers, everything else as
strings; true is ``1``, false ``0``.
"""

from __future__ import annotations

import math
import re
from typing import Protocol

from callcenter.errors import CallcenterError


class UnknownFunctionError(CallcenterError):
    """A dialplan function the simulator does not implement."""

    code = "sim_unknown_function"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown dialplan function {name!r}")
        self.name = name


class Env(Protocol):
    def variable(self, name: str) -> str:
        """The value of ``${name}`` ('' when unset)."""

    def function(self, name: str, args: str) -> str:
        """The value of ``${name(args)}``; raise :class:`UnknownFunctionError` if unknown."""


def _close(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket closing the one just before ``start`` (nesting aware), or -1."""
    depth = 1
    i = start
    while i < len(text):
        ch = text[i]
        if ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def substitute(text: str, env: Env) -> str:
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n and text[i + 1] in "{[":
            opening = text[i + 1]
            closing = "}" if opening == "{" else "]"
            end = _close(text, i + 2, opening, closing)
            if end < 0:
                out.append(text[i:])
                break
            inner = substitute(text[i + 2 : end], env)
            out.append(_resolve(inner, env) if opening == "{" else evaluate(inner))
            i = end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_SUBSTR = re.compile(r"^(.*?):(-?\d+)(?::(-?\d+))?$")


def _resolve(inner: str, env: Env) -> str:
    paren = inner.find("(")
    if paren > 0 and inner.endswith(")") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", inner[:paren]):
        return env.function(inner[:paren], inner[paren + 1 : -1])
    m = _SUBSTR.match(inner)
    if m and ":" in inner and "(" not in m.group(1):
        value = env.variable(m.group(1))
        offset = int(m.group(2))
        length = int(m.group(3)) if m.group(3) is not None else None
        if offset < 0:
            offset = max(0, len(value) + offset)
        part = value[offset:]
        if length is not None:
            part = part[:length] if length >= 0 else part[:length]
        return part
    return env.variable(inner)


# ---------------------------------------------------------------- $[ ... ] expressions
_TOKEN = re.compile(
    r'\s*(?:("(?:[^"\\]|\\.)*")|(=~|==|!=|<=|>=|::|[|&=<>+\-*/%!?()])|([^\s|&=<>+\-*/%!?()"]+))'
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            break
        if m.group(1) is not None:
            out.append(("s", m.group(1)[1:-1]))
        elif m.group(2) is not None:
            out.append(("op", m.group(2)))
        else:
            out.append(("s", m.group(3)))
        pos = m.end()
    return out


def _num(value: str) -> float | None:
    try:
        num = float(value)
    except ValueError:
        return None
    return num if math.isfinite(num) else None


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "0"
    return str(int(value)) if value == int(value) else repr(value)


def _truth(value: str) -> bool:
    num = _num(value)
    if num is not None:
        return num != 0
    return value != ""


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> str | None:
        if self.i < len(self.t) and self.t[self.i][0] == "op":
            return self.t[self.i][1]
        return None

    def take(self) -> tuple[str, str]:
        tok = self.t[self.i]
        self.i += 1
        return tok

    def ternary(self) -> str:
        cond = self.or_()
        if self.peek() == "?":
            self.take()
            a = self.ternary()
            if self.peek() == "::":
                self.take()
            b = self.ternary()
            return a if _truth(cond) else b
        return cond

    def or_(self) -> str:
        left = self.and_()
        while self.peek() == "|":
            self.take()
            right = self.and_()
            left = left if _truth(left) else right
        return left

    def and_(self) -> str:
        left = self.cmp()
        while self.peek() == "&":
            self.take()
            right = self.cmp()
            left = left if (_truth(left) and _truth(right)) else "0"
        return left

    def cmp(self) -> str:
        left = self.add()
        while self.peek() in ("=", "==", "!=", "<", ">", "<=", ">=", "=~"):
            op = self.take()[1]
            right = self.add()
            if op == "=~":
                m = re.match(right, left)
                left = str(len(m.group(0))) if m else "0"
                continue
            a, b = _num(left), _num(right)
            pair: tuple[float, float] | tuple[str, str] = (
                (a, b) if a is not None and b is not None else (left, right)
            )
            x, y = pair
            result = {
                "=": x == y,
                "==": x == y,
                "!=": x != y,
                "<": x < y,  # type: ignore[operator]
                ">": x > y,  # type: ignore[operator]
                "<=": x <= y,  # type: ignore[operator]
                ">=": x >= y,  # type: ignore[operator]
            }[op]
            left = "1" if result else "0"
        return left

    def add(self) -> str:
        left = self.mul()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            right = self.mul()
            a, b = _num(left) or 0.0, _num(right) or 0.0
            left = _fmt(a + b if op == "+" else a - b)
        return left

    def mul(self) -> str:
        left = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()[1]
            right = self.unary()
            a, b = _num(left) or 0.0, _num(right) or 0.0
            if op == "*":
                left = _fmt(a * b)
            elif b == 0:
                left = "0"
            elif op == "/":
                left = _fmt(float(int(a / b)))
            else:
                left = _fmt(a % b)
        return left

    def unary(self) -> str:
        op = self.peek()
        if op == "!":
            self.take()
            return "0" if _truth(self.unary()) else "1"
        if op == "-":
            self.take()
            return _fmt(-(_num(self.unary()) or 0.0))
        return self.atom()

    def atom(self) -> str:
        if self.i >= len(self.t):
            return ""
        kind, value = self.take()
        if kind == "op" and value == "(":
            inner = self.ternary()
            if self.peek() == ")":
                self.take()
            return inner
        if kind == "op":
            return ""
        return value


def evaluate(expr: str) -> str:
    """The value of an (already substituted) ``$[...]`` body."""
    tokens = _tokens(expr)
    if not tokens:
        return ""
    return _Parser(tokens).ternary()
