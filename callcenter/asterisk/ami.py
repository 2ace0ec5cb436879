"""Pure: the sans-IO AMI codec (bytes in, messages out; headers in, bytes out).

No sockets, no asyncio, no clock: usable on both sides of the link. The controller's client feeds
what Asterisk sends (the greeting line, then responses and events); the simulated PBX feeds what a
client sends (actions) with ``greeting=False``.

Wire format, as Asterisk 22 speaks it (see ``tests/fixtures/asterisk-traces``):

* the first line a server sends is the greeting, ``Asterisk Call Manager/11.0.0\\r\\n``;
* a message is a run of ``Name: value`` lines ended by an empty line. Asterisk writes CRLF and,
  reading, accepts CRLF or a bare LF as a line end (a lone CR is part of the value). That is why a
  value carrying ``\\r\\nAction: Hangup`` turns into one more header of the same action, and why
  :func:`encode` refuses CR and LF anywhere;
* header names repeat (several ``Variable:``, several ``Output:`` lines of a ``Command``), so a
  message keeps its headers in order, as a tuple of pairs.

API::

    parser = AMIParser(max_message_size=1 << 20, greeting=True)
    for item in parser.feed(data):          # feed(b"") means EOF
        if isinstance(item, Greeting): ...  # item.text == "Asterisk Call Manager/11.0.0"
        else: item.kind, item.name, item.get("ActionID"), item.get_all("Output")
    wire = encode([("Action", "Ping"), ("ActionID", "1")])  # UnsafeValueError on CR/LF

Parsing: a header line is split at its first ``:``; one space after the colon is dropped (Asterisk
writes exactly one), so ``parse(encode(headers)) == headers`` for any names without ``:``, CR or
LF and any values without CR or LF. A line without a colon, an oversized message or an unfinished
message at EOF raises :class:`~callcenter.errors.AMIProtocolError`; after that the parser is
dead (every later ``feed`` raises again). Bytes are decoded as UTF-8, undecodable bytes replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from callcenter.errors import AMIProtocolError, UnsafeValueError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "AMIParser",
    "Greeting",
    "Message",
    "encode",
    "encode_action",
    "encode_greeting",
    "check_value",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 1 << 20  # one message (a big Command output fits)
GREETING_PREFIX: Final = "Asterisk Call Manager/"

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's first line, without its line end (``Asterisk Call Manager/11.0.0``)."""

    text: str

    @property
    def version(self) -> str | None:
        """The protocol version after ``Asterisk Call Manager/``, if the greeting has that form."""
        if self.text.startswith(GREETING_PREFIX):
            return self.text[len(GREETING_PREFIX) :]
        return None


class Message:
    """One AMI message: its headers in wire order (names may repeat).

    ``kind`` is ``"response"``, ``"event"`` or ``"action"`` (from the first header when it is one
    of ``Response``, ``Event``, ``Action``, as Asterisk writes them, else from the first of those
    anywhere; ``None`` if none); ``name`` is that header's value (the event name, the action name,
    or ``Success``/``Error``/``Follows``/``Goodbye`` for a response). Equality and hashing are by
    headers only.

    Messages made by :class:`AMIParser` are validated eagerly (every line has a colon) but split
    into header pairs lazily, on first use of ``headers``/``get``/...: ``kind``, ``name`` and
    ``action_id`` are read straight from the text, so an event nobody looks at costs almost nothing.
    """

    __slots__ = ("_headers", "_index", "_kind", "_raw")

    _headers: Headers | None
    _index: dict[str, str] | None
    _kind: tuple[str | None, str | None] | None
    _raw: str | None

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._headers = headers if type(headers) is tuple else tuple(headers)
        self._index = None
        self._kind = None
        self._raw = None

    @classmethod
    def _from_block(cls, raw: str) -> Message:
        """A message from one validated block of header lines joined by LF (no blank line)."""
        message = cls.__new__(cls)
        message._raw = raw
        message._headers = None
        message._index = None
        message._kind = None
        return message

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = tuple(_HEADER.findall(self._raw or ""))
        return headers

    # ------------------------------------------------------------ lookup
    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self.headers:
                key = name.lower()
                if key not in index:
                    index[key] = value
            self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), else ``default``."""
        return self._lookup().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        """The first value of header ``name``; ``KeyError`` if absent."""
        return self._lookup()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in wire order."""
        key = name.lower()
        return [v for n, v in self.headers if n.lower() == key]

    # ------------------------------------------------------------ classification
    def _classify(self) -> tuple[str | None, str | None]:
        cached = self._kind
        if cached is not None:
            return cached
        raw = self._raw
        if raw is not None:
            first = raw[: raw.find("\n")] if "\n" in raw else raw
            name, _, value = first.partition(":")
            kind = _KINDS.get(name.lower())
            if kind is not None:
                result: tuple[str | None, str | None] = (kind, value[1:] if value[:1] == " " else value)
                self._kind = result
                return result
        elif self._headers:
            name, value = self._headers[0]
            kind = _KINDS.get(name.lower())
            if kind is not None:
                self._kind = (kind, value)
                return self._kind
        index = self._lookup()
        result = (None, None)
        for key in ("response", "event", "action"):
            if key in index:
                result = (_KINDS[key], index[key])
                break
        self._kind = result
        return result

    @property
    def kind(self) -> str | None:
        return self._classify()[0]

    @property
    def name(self) -> str | None:
        return self._classify()[1]

    @property
    def is_response(self) -> bool:
        return self.kind == "response"

    @property
    def is_event(self) -> bool:
        return self.kind == "event"

    @property
    def is_action(self) -> bool:
        return self.kind == "action"

    @property
    def action_id(self) -> str | None:
        """The first ``ActionID`` header (read from the text without splitting the message)."""
        raw = self._raw
        if raw is not None and self._index is None:
            if raw[:9].lower() == "actionid:":
                start = 9
            else:
                found = raw.lower().find("\nactionid:")
                if found < 0:
                    return None
                start = found + 10
            stop = raw.find("\n", start)
            value = raw[start:] if stop < 0 else raw[start:stop]
            return value[1:] if value[:1] == " " else value
        return self._lookup().get("actionid")

    def to_dict(self) -> dict[str, str]:
        """First value per header name, names as first spelled on the wire."""
        out: dict[str, str] = {}
        for name, value in self.headers:
            out.setdefault(name, value)
        return out

    def encode(self) -> bytes:
        return encode(self.headers)

    # ------------------------------------------------------------ value semantics
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return self.headers == other.headers
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        return f"Message({self.headers!r})"


_KINDS: Final = {"response": "response", "event": "event", "action": "action"}
# One header line: the name up to the first colon, one optional space, the value to the line end.
_HEADER: Final = re.compile(r"([^:\n]*): ?([^\n]*)\n?")
# A non-empty line without a colon, searched in "\n" + text + "\n" (blank lines separate messages).
_BAD_LINE: Final = re.compile(r"\n([^:\n]+)\n")


class AMIParser:
    """Incremental AMI parser: ``feed(bytes) -> list[Greeting | Message]``; ``feed(b"")`` is EOF.

    ``greeting=True`` (the client side) expects the server's greeting line first. The size cap
    applies to the greeting line and to every message, terminator included.
    """

    __slots__ = ("_buf", "_cr", "_dead", "_eof", "_max", "_want_greeting")

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, greeting: bool = True) -> None:
        if max_message_size < 16:
            raise ValueError("max_message_size must be at least 16 bytes")
        self._max = max_message_size
        self._want_greeting = greeting
        # Bytes of an unfinished message, with every CRLF already turned into LF (a CR left in
        # it is data). ``_cr``: the last byte fed was a CR whose LF may come in the next chunk.
        self._buf = b""
        self._cr = False
        self._dead: AMIProtocolError | None = None
        self._eof = False

    @property
    def buffered(self) -> int:
        """How many bytes wait for the rest of their message."""
        return len(self._buf) + self._cr

    def _fail(self, message: str) -> AMIProtocolError:
        self._dead = AMIProtocolError(message)
        self._buf = b""
        return self._dead

    def feed(self, data: bytes) -> list[Greeting | Message]:
        """Parse what arrived; return the greeting and every message it completes, in order."""
        if self._dead is not None:
            raise AMIProtocolError(f"parser already failed: {self._dead.message}")
        if self._eof:
            raise AMIProtocolError("data fed after EOF")
        out: list[Greeting | Message] = []
        if not data:
            self._eof = True
            if self._buf.strip(b"\n") or self._cr:
                what = "greeting" if self._want_greeting else "message"
                raise self._fail(f"connection closed in the middle of a {what} ({self.buffered} bytes)")
            self._buf = b""
            return out
        # CRLF and a bare LF both end a line; a CR not before an LF is data (as in Asterisk).
        if self._cr:
            self._cr = False
            if data[0] != 10:  # not b"\n": the pending CR was data
                data = b"\r" + data
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
            if data[-1] == 13:
                self._cr = True
                data = data[:-1]
        buf = self._buf + data if self._buf else data
        maximum = self._max
        if self._want_greeting:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= maximum:
                if len(buf) + self._cr > maximum:
                    raise self._fail(f"greeting line longer than {maximum} bytes")
                self._buf = buf
                return out
            out.append(Greeting(buf[:nl].decode("utf-8", "replace")))
            self._want_greeting = False
            buf = buf[nl + 1 :]
        if buf[:1] == b"\n":
            buf = buf.lstrip(b"\n")  # blank lines between messages: Asterisk sends none
        end = buf.rfind(b"\n\n")
        if end < 0:
            if len(buf) + self._cr > maximum:
                raise self._fail(f"message longer than {maximum} bytes")
            self._buf = buf
            return out
        rest = buf[end + 2 :]
        if rest[:1] == b"\n":
            rest = rest.lstrip(b"\n")
        if len(rest) + self._cr > maximum:
            raise self._fail(f"message longer than {maximum} bytes")
        self._buf = rest
        text = buf[:end].decode("utf-8", "replace")
        bad = _BAD_LINE.search(f"\n{text}\n")
        if bad is not None:
            raise self._fail(f"header line without a colon: {bad.group(1)[:80]!r}")
        blocks = text.split("\n\n")
        if "\n\n\n" in text:  # several blank lines in a row: Asterisk sends none
            blocks = [b.lstrip("\n") for b in blocks if b.strip("\n")]
        if len(text) + 2 > maximum and max(map(len, blocks)) + 2 > maximum:
            raise self._fail(f"message longer than {maximum} bytes")
        out.extend(map(Message._from_block, blocks))
        return out


# ---------------------------------------------------------------- encoding
def check_value(field: str, value: str) -> None:
    """Raise :class:`UnsafeValueError` if ``value`` carries CR, LF or NUL (it would end or split a
    header on the wire)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise UnsafeValueError(
            f"value for {field!r} contains CR, LF or NUL and cannot be sent over AMI",
            field=field,
            value=value,
        )


def _check_name(name: str) -> None:
    if not name or ":" in name or "\r" in name or "\n" in name or "\x00" in name:
        raise UnsafeValueError(f"invalid AMI header name {name!r}", field=name, value=name)


def encode(headers: Iterable[tuple[str, str]]) -> bytes:
    """``Name: value`` lines with CRLF, then the blank line.

    Every name and value is checked before anything is produced: a name that is empty or has a
    ``:``, or a name or value with CR, LF or NUL, raises :class:`UnsafeValueError`.
    """
    pairs = tuple(headers)
    for name, value in pairs:
        _check_name(name)
        check_value(name, value)
    return ("".join(f"{name}: {value}\r\n" for name, value in pairs) + "\r\n").encode("utf-8")


def encode_action(
    action: str, headers: Iterable[tuple[str, str]] = (), *, action_id: str | None = None
) -> bytes:
    """An action: ``Action: <action>``, then ``ActionID`` (if given), then ``headers``."""
    pairs: list[tuple[str, str]] = [("Action", action)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs.extend(headers)
    return encode(pairs)


def encode_greeting(version: str = "11.0.0") -> bytes:
    """The server's greeting line (for the simulated PBX)."""
    check_value("greeting", version)
    return f"{GREETING_PREFIX}{version}\r\n".encode()
