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

Speed (the reader must keep up with Asterisk, see ARCHITECTURE.md): Asterisk's own CRLF-only
framing takes a fast path (a few whole-buffer passes, no per-line Python work); anything else
(bare LFs, lone CRs, extra blank lines) takes the general path with the same results. A parsed
message is validated at once but split into header pairs only when ``headers``/``get_all`` is
used; ``kind``, ``name``, ``action_id`` and ``get`` read its text directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
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

    Messages made by :class:`AMIParser` are validated eagerly (every line has a colon) and
    classified eagerly (``kind``, ``name``) but split into header pairs lazily, on first use of
    ``headers``/``get``/...; ``action_id`` is read straight from the text. So an event nobody
    looks at costs little: the reader must keep up with Asterisk.
    """

    __slots__ = ("_crlf", "_headers", "_index", "_low", "_raw", "kind", "name")

    kind: str | None
    name: str | None
    _headers: Headers | None
    _index: dict[str, str] | None
    _raw: str | None
    _low: str | None  # _raw lower-cased, once a lookup needed it
    _crlf: bool

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        self._headers = headers if type(headers) is tuple else tuple(headers)
        self._index = None
        self._raw = None
        self._low = None
        self._crlf = False
        self.kind, self.name = _classify(self._headers)

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            pattern = _HEADER_CRLF if self._crlf else _HEADER
            headers = self._headers = tuple(pattern.findall(self._raw or ""))
        return headers

    # ------------------------------------------------------------ lookup
    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # Built back to front so that the first value of a repeated name wins.
            backwards = self.headers[::-1]
            keys = map(str.lower, map(_first, backwards))
            index = self._index = dict(zip(keys, map(_second, backwards), strict=True))
        return index

    def _find(self, key: str) -> str | None:
        """The first value of the header whose lower-cased name is ``key``; ``None`` if absent.

        A parsed message is searched as text (no split) while it is ASCII, the usual case."""
        raw = self._raw
        if raw is None or self._index is not None:
            return self._lookup().get(key)
        low = self._low
        if low is None:
            if not raw.isascii():  # lower() might change lengths: use the index
                return self._lookup().get(key)
            low = self._low = raw.lower()
        if ":" in key or "\n" in key:
            return None  # no header name holds these
        width = len(key)
        if low[width : width + 1] == ":" and low.startswith(key):
            start = width + 1
        else:
            found = low.find(f"\n{key}:")
            if found < 0:
                return None
            start = found + width + 2
        stop = raw.find("\n", start)
        if stop < 0:
            value = raw[start:]
        else:
            value = raw[start : stop - 1] if self._crlf else raw[start:stop]
        return value[1:] if value[:1] == " " else value

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), else ``default``."""
        value = self._find(name.lower())
        return default if value is None else value

    def __getitem__(self, name: str) -> str:
        """The first value of header ``name``; ``KeyError`` if absent."""
        value = self._find(name.lower())
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name.lower()) is not None

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in wire order."""
        key = name.lower()
        return [v for n, v in self.headers if n.lower() == key]

    # ------------------------------------------------------------ classification
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
        return self._find("actionid")

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
_HEADER_CRLF: Final = re.compile(r"([^:\r\n]*): ?([^\r\n]*)(?:\r\n)?")  # text with CRLF only
# A non-empty line without a colon, searched in "\n" + text + "\n" (blank lines separate messages).
_BAD_LINE: Final = re.compile(r"\n([^:\n]+)\n")
_BAD_LINE_CRLF: Final = re.compile(r"\n([^:\r\n]+)\r\n")
# Every byte but ":" and LF: deleting them leaves ":...:\n" per line with a colon.
_NOT_COLON_OR_LF: Final = bytes(b for b in range(256) if b not in (10, 58))


def _classify(headers: Headers) -> tuple[str | None, str | None]:
    if headers:
        name, value = headers[0]
        kind = _KINDS.get(name.lower())
        if kind is not None:
            return kind, value
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    for key in ("response", "event", "action"):
        if key in first:
            return _KINDS[key], first[key]
    return None, None


def _from_crlf(raw: str) -> Message:
    """A message from one validated block of CRLF-separated header lines, as the parser makes it."""
    message = _new_message(Message)
    message._raw = raw
    message._crlf = True
    message._headers = None
    message._index = None
    message._low = None
    if raw[:7] == "Event: ":
        end = raw.find("\r\n")
        message.kind = "event"
        message.name = raw[7:end] if end >= 0 else raw[7:]
    elif raw[:10] == "Response: ":
        end = raw.find("\r\n")
        message.kind = "response"
        message.name = raw[10:end] if end >= 0 else raw[10:]
    else:
        message.kind, message.name = _classify(message.headers)
    return message


def _from_lf(raw: str) -> Message:
    """The same for LF-separated lines (the general path)."""
    message = _new_message(Message)
    message._raw = raw
    message._crlf = False
    message._headers = None
    message._index = None
    message._low = None
    message.kind, message.name = _classify(message.headers)
    return message


_new_message = object.__new__
_first = itemgetter(0)
_second = itemgetter(1)


class AMIParser:
    """Incremental AMI parser: ``feed(bytes) -> list[Greeting | Message]``; ``feed(b"")`` is EOF.

    ``greeting=True`` (the client side) expects the server's greeting line first. The size cap
    applies to the greeting line and to every message, terminator included.
    """

    __slots__ = ("_buf", "_cr", "_dead", "_eof", "_max", "_raw", "_want_greeting")

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, greeting: bool = True) -> None:
        if max_message_size < 16:
            raise ValueError("max_message_size must be at least 16 bytes")
        self._max = max_message_size
        self._want_greeting = greeting
        # Bytes of an unfinished message. ``_raw``: they are as received, CRLF only (the fast
        # path); else every CRLF in them was already turned into LF (a CR left is data) and
        # ``_cr`` says the last byte fed was a CR whose LF may come in the next chunk.
        self._buf = b""
        self._raw = True
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
        maximum = self._max
        if not data:
            self._eof = True
            if self._buf.strip(b"\r\n") or self._cr:
                what = "greeting" if self._want_greeting else "message"
                raise self._fail(f"connection closed in the middle of a {what} ({self.buffered} bytes)")
            self._buf = b""
            return out
        if self._want_greeting:
            buf = self._buf + data
            nl = buf.find(b"\n")
            if nl < 0 or nl >= maximum:
                if len(buf) > maximum:
                    raise self._fail(f"greeting line longer than {maximum} bytes")
                self._buf = buf
                return out
            line = buf[:nl]
            if line[-1:] == b"\r":
                line = line[:-1]
            out.append(Greeting(line.decode("utf-8", "replace")))
            self._want_greeting = False
            self._buf = b""
            data = buf[nl + 1 :]
            if not data:
                return out
        if self._raw:
            buf = self._buf + data if self._buf else data
            # The fast path: Asterisk's own CRLF-only framing, no stray CR or LF, no blank lines
            # beyond the one after each message. Anything else goes the general way below.
            lf = buf.count(b"\n")
            if lf == buf.count(b"\r") and lf == buf.count(b"\r\n") and buf[:2] != b"\r\n":
                end = buf.rfind(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > maximum:
                        raise self._fail(f"message longer than {maximum} bytes")
                    self._buf = buf
                    return out
                complete = buf[:end]
                if complete[-2:] != b"\r\n" and b"\r\n\r\n\r\n" not in complete:
                    rest = buf[end + 4 :]
                    if len(rest) > maximum:
                        raise self._fail(f"message longer than {maximum} bytes")
                    blocks = complete.decode("utf-8", "replace").split("\r\n\r\n")
                    # Every line has a colon: keeping only ":" and LF leaves ":\n" per such line.
                    marks = complete.translate(None, _NOT_COLON_OR_LF)
                    lines_ended = lf - 2 - rest.count(b"\n")  # LFs in ``complete``
                    if marks.count(b":\n") != lines_ended - (len(blocks) - 1) or marks[-1:] != b":":
                        self._bad_line(complete)
                    if len(complete) + 4 > maximum and max(map(len, blocks)) + 4 > maximum:
                        raise self._fail(f"message longer than {maximum} bytes")
                    self._buf = rest
                    out.extend(map(_from_crlf, blocks))
                    return out
            data = buf
            self._buf = b""
            self._raw = False
        return self._feed_general(data, out)

    def _bad_line(self, complete: bytes) -> None:
        text = complete.decode("utf-8", "replace")
        bad = _BAD_LINE_CRLF.search(f"\n{text}\r\n")
        line = bad.group(1) if bad is not None else text
        raise self._fail(f"header line without a colon: {line[:80]!r}")

    def _feed_general(self, data: bytes, out: list[Greeting | Message]) -> list[Greeting | Message]:
        """Any framing Asterisk accepts: CRLF or a bare LF ends a line, a lone CR is data."""
        maximum = self._max
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
        if buf[:1] == b"\n":
            buf = buf.lstrip(b"\n")  # blank lines between messages: Asterisk sends none
        end = buf.rfind(b"\n\n")
        if end < 0:
            if len(buf) + self._cr > maximum:
                raise self._fail(f"message longer than {maximum} bytes")
            self._buf = buf
            self._back_to_raw()
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
        out.extend(map(_from_lf, blocks))
        self._back_to_raw()
        return out

    def _back_to_raw(self) -> None:
        """Return to the fast path once the buffer holds no CR: its LFs then stand for line ends
        whatever they were on the wire, so they can be written back as CRLF."""
        if not self._cr and b"\r" not in self._buf:
            self._buf = self._buf.replace(b"\n", b"\r\n")
            self._raw = True


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
