"""Pure: the sans-IO FastAGI codec, both sides of the link.

No sockets, no asyncio. Lines end with a bare LF (Asterisk writes ``\\n``; a trailing CR is
tolerated when reading). Wire format as Asterisk 22 speaks it (``tests/fixtures/asterisk-traces``):

1. Asterisk connects and sends the environment: ``agi_<name>: <value>`` lines, then an empty line.
2. The script sends one command per line (``GET VARIABLE "CALLERID(num)"``); Asterisk answers
   ``200 result=N [(data)] [endpos=M]``, ``510 Invalid or unknown command``, ``511 ...`` (dead
   channel), or a multi-line usage error ``520-...`` up to ``520 End of proper usage.``.
   ``result=-1`` means the channel went away (e.g. MusicOnHold cut short by a ``Bridge()``).
3. When Asterisk notices the channel has gone it sends an unsolicited ``HANGUP`` line; the
   answer to the pending command still follows it. It is a notice, not a reply.

The controller's side (the FastAGI server)::

    parser = AGIParser()                     # max_env_size=, max_line=, max_reply_lines=
    for item in parser.feed(data):           # feed(b"") means EOF
        AGIEnvironment(env={"agi_network_script": "ivr", ...})   # exactly once, first
        AGIReply(code=200, result="1", data="5551230001", endpos=None, lines=(...))
        HangupNotice()
    wire = format_command("GET VARIABLE", "CALLERID(num)")   # b'GET VARIABLE "CALLERID(num)"\\n'

The Asterisk side (the simulated PBX)::

    encode_env({"agi_network_script": "ivr", ...})   # b"agi_network_script: ivr\\n...\\n"
    CommandReader().feed(data) -> list[list[str]]     # each command line tokenised
    parse_command('SET VARIABLE "X" "a b"') == ["SET", "VARIABLE", "X", "a b"]
    encode_reply(AGIReply.ok("1", data="5551230001"))  # b"200 result=1 (5551230001)\\n"
    encode_usage_error("Usage text...")               # the 520- multi-line form
    HANGUP_LINE                                       # b"HANGUP\\n"
    FAILURE_LINE (the script's side: b"failure\\n" ends the AGI with AGISTATUS=FAILURE)

Errors: malformed input, an oversized line or block and EOF in the middle of the environment or
of a reply raise :class:`~callcenter.errors.AGIProtocolError` (the parser is then dead); a CR, LF
or NUL in any value to be sent raises :class:`~callcenter.errors.UnsafeValueError` before any byte
is produced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from callcenter.errors import AGIProtocolError, UnsafeValueError

__all__ = [
    "DEFAULT_MAX_ENV_SIZE",
    "DEFAULT_MAX_LINE",
    "FAILURE_LINE",
    "HANGUP_LINE",
    "AGIEnvironment",
    "AGIParser",
    "AGIReply",
    "CommandReader",
    "HangupNotice",
    "encode_env",
    "encode_reply",
    "encode_usage_error",
    "format_command",
    "parse_command",
    "parse_reply_line",
    "quote_arg",
    "script_name",
]

DEFAULT_MAX_ENV_SIZE: Final = 64 * 1024
DEFAULT_MAX_LINE: Final = 64 * 1024
DEFAULT_MAX_REPLY_LINES: Final = 200
MAX_ARGS: Final = 128  # Asterisk's res_agi MAX_ARGS
HANGUP_LINE: Final = b"HANGUP\n"
# A line a script sends to make Asterisk end the AGI with AGISTATUS=FAILURE: res_agi's run_agi
# treats a line starting with "failure" as its special case (a child that could not exec sends
# it). The server sends it when it will not or cannot serve a call, so the dialplan's static
# fallback runs; closing the socket without it would give AGISTATUS=SUCCESS.
FAILURE_LINE: Final = b"failure\n"

# Reply codes (res_agi.c: AGI_RESULT_SUCCESS 200, invalid command 510, dead channel 511, usage 520).
CODE_SUCCESS: Final = 200
CODE_INVALID: Final = 510
CODE_DEAD_CHANNEL: Final = 511
CODE_USAGE: Final = 520

_REPLY_200 = re.compile(r"200 result=(\S*)(?: \((.*)\))?(?: endpos=(-?\d+))?\Z", re.DOTALL)
_CODE_LINE = re.compile(r"(\d{3})([ -])(.*)\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class AGIEnvironment:
    """The ``agi_*`` block, keys as Asterisk spells them (``agi_request``, ``agi_channel``...)."""

    env: dict[str, str]

    @property
    def script(self) -> str:
        return script_name(self.env)


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """Asterisk's unsolicited ``HANGUP`` line: the channel is gone (the pending reply still follows)."""


@dataclass(frozen=True, slots=True)
class AGIReply:
    """One reply to a command.

    ``code``: 200, 510, 511, 520... ``result``: the text after ``result=`` for a 200 (a number for
    most commands, the digits for GET DATA, possibly empty), else ``None``. ``data``: the text in
    parentheses (a variable's value, ``timeout``...). ``endpos``: STREAM FILE's sample offset.
    ``lines``: the raw reply lines without line ends (several for ``520-``).
    """

    code: int
    result: str | None = None
    data: str | None = None
    endpos: int | None = None
    lines: tuple[str, ...] = field(default=())

    @classmethod
    def ok(cls, result: str | int, *, data: str | None = None, endpos: int | None = None) -> AGIReply:
        """A ``200 result=...`` reply (for the simulated PBX)."""
        text = str(result)
        line = f"200 result={text}"
        if data is not None:
            line += f" ({data})"
        if endpos is not None:
            line += f" endpos={endpos}"
        return cls(CODE_SUCCESS, text, data, endpos, (line,))

    @property
    def result_int(self) -> int | None:
        """``result`` as an integer when it is one (``None`` for ``''`` or non-numeric digits)."""
        if self.result is None:
            return None
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def success(self) -> bool:
        return self.code == CODE_SUCCESS

    @property
    def hungup(self) -> bool:
        """``200 result=-1``: the channel went away while the command ran, or 511 (dead channel)."""
        return (self.code == CODE_SUCCESS and self.result == "-1") or self.code == CODE_DEAD_CHANNEL

    @property
    def text(self) -> str:
        """The message of a non-200 reply (first line after the code), or the whole 200 line."""
        if not self.lines:
            return ""
        first = self.lines[0]
        return first[4:] if self.code != CODE_SUCCESS and len(first) > 4 else first


AGIEvent = AGIEnvironment | AGIReply | HangupNotice


def parse_reply_line(line: str) -> AGIReply:
    """Parse one single-line reply (``200 result=...``, ``510 ...``); ``AGIProtocolError`` if not."""
    if line.startswith("200 "):
        m = _REPLY_200.match(line)
        if m is None:
            raise AGIProtocolError(f"malformed 200 reply: {line[:120]!r}")
        result, data, endpos = m.groups()
        return AGIReply(CODE_SUCCESS, result, data, int(endpos) if endpos is not None else None, (line,))
    m = _CODE_LINE.match(line)
    if m is None or m.group(2) != " ":
        raise AGIProtocolError(f"malformed AGI reply line: {line[:120]!r}")
    return AGIReply(int(m.group(1)), None, None, None, (line,))


class AGIParser:
    """The controller's side: ``feed(bytes) -> list[AGIEnvironment | AGIReply | HangupNotice]``.

    The first item is always the environment. ``feed(b"")`` is EOF: in the middle of the
    environment, of a line or of a multi-line reply it raises ``AGIProtocolError``.
    """

    __slots__ = ("_buf", "_dead", "_env", "_env_done", "_env_size", "_eof", "_max_env", "_max_line",
                 "_max_reply_lines", "_multi")  # fmt: skip

    def __init__(
        self,
        *,
        max_env_size: int = DEFAULT_MAX_ENV_SIZE,
        max_line: int = DEFAULT_MAX_LINE,
        max_reply_lines: int = DEFAULT_MAX_REPLY_LINES,
    ) -> None:
        self._max_env = max_env_size
        self._max_line = max_line
        self._max_reply_lines = max_reply_lines
        self._buf = b""
        self._env: dict[str, str] = {}
        self._env_done = False
        self._env_size = 0
        self._multi: list[str] | None = None  # lines of a 520- reply so far
        self._dead: AGIProtocolError | None = None
        self._eof = False

    def _fail(self, message: str) -> AGIProtocolError:
        self._dead = AGIProtocolError(message)
        self._buf = b""
        return self._dead

    def feed(self, data: bytes) -> list[AGIEvent]:
        if self._dead is not None:
            raise AGIProtocolError(f"parser already failed: {self._dead.message}")
        if self._eof:
            raise AGIProtocolError("data fed after EOF")
        out: list[AGIEvent] = []
        if not data:
            self._eof = True
            if not self._env_done:
                raise self._fail(
                    f"connection closed before the end of the AGI environment "
                    f"({len(self._env)} variables, {len(self._buf)} bytes pending)"
                )
            if self._buf:
                raise self._fail(f"connection closed in the middle of a line ({len(self._buf)} bytes)")
            if self._multi is not None:
                raise self._fail("connection closed in the middle of a 520 usage reply")
            return out
        buf = self._buf + data if self._buf else data
        end = buf.rfind(b"\n")
        if end >= 0:
            complete = buf[:end]
            if complete.isascii():  # the usual case: one decode and one split for the lot
                if len(complete) > self._max_line and max(map(len, complete.split(b"\n"))) > self._max_line:
                    raise self._fail(f"AGI line longer than {self._max_line} bytes")
                for line in complete.decode("ascii").split("\n"):
                    size = len(line) + 1
                    if line[-1:] == "\r":
                        line = line[:-1]
                    if self._env_done:
                        self._reply_line(line, out)
                    else:
                        self._env_line(line, size, out)
            else:
                for raw in complete.split(b"\n"):
                    if len(raw) > self._max_line:
                        raise self._fail(f"AGI line longer than {self._max_line} bytes")
                    size = len(raw) + 1
                    if raw[-1:] == b"\r":
                        raw = raw[:-1]
                    line = raw.decode("utf-8", "replace")
                    if self._env_done:
                        self._reply_line(line, out)
                    else:
                        self._env_line(line, size, out)
        rest = buf[end + 1 :]
        if len(rest) > self._max_line:
            raise self._fail(f"AGI line longer than {self._max_line} bytes")
        if not self._env_done and self._env_size + len(rest) > self._max_env:
            raise self._fail(f"AGI environment larger than {self._max_env} bytes")
        self._buf = rest
        return out

    def _env_line(self, line: str, size: int, out: list[AGIEvent]) -> None:
        self._env_size += size
        if self._env_size > self._max_env:
            raise self._fail(f"AGI environment larger than {self._max_env} bytes")
        if not line:
            self._env_done = True
            out.append(AGIEnvironment(self._env))
            return
        name, sep, value = line.partition(":")
        if not sep or not name.startswith("agi_") or " " in name:
            raise self._fail(f"malformed AGI environment line: {line[:120]!r}")
        if value[:1] == " ":
            value = value[1:]
        self._env[name] = value

    def _reply_line(self, line: str, out: list[AGIEvent]) -> None:
        multi = self._multi
        if multi is not None:
            multi.append(line)
            if len(multi) > self._max_reply_lines:
                raise self._fail(f"multi-line AGI reply longer than {self._max_reply_lines} lines")
            code = multi[0][:3]
            if line.startswith(code + " "):
                self._multi = None
                out.append(AGIReply(int(code), None, None, None, tuple(multi)))
            return
        if line == "HANGUP":
            out.append(HangupNotice())
            return
        if line.startswith("200 "):
            try:
                out.append(parse_reply_line(line))
            except AGIProtocolError as exc:
                raise self._fail(exc.message) from exc
            return
        m = _CODE_LINE.match(line)
        if m is None:
            raise self._fail(f"malformed AGI reply line: {line[:120]!r}")
        if m.group(2) == "-":
            self._multi = [line]
            return
        out.append(AGIReply(int(m.group(1)), None, None, None, (line,)))


# ---------------------------------------------------------------- the Asterisk side: commands in
def parse_command(line: str) -> list[str]:
    """Split one command line into arguments exactly as Asterisk's ``res_agi`` ``parse_args`` does:
    blanks separate words, double quotes group (``""`` is an empty word), a backslash makes the
    next character literal. A trailing LF (and CR) is dropped. At most 128 words."""
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    args: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                if len(args) >= MAX_ARGS - 1:
                    break
                args.append("")
                cur = []
                whitespace = False
            continue
        if ch in " \t" and not quoted and not escaped:
            if not whitespace:
                args[-1] = "".join(cur)
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            if len(args) >= MAX_ARGS - 1:
                break
            args.append("")
            cur = []
            whitespace = False
        cur.append(ch)
        escaped = False
    if args and not whitespace:
        args[-1] = "".join(cur)
    return args


class CommandReader:
    """The Asterisk side: split the script's bytes into command lines, each tokenised with
    :func:`parse_command`. ``feed(b"")`` is EOF (an unfinished line raises ``AGIProtocolError``)."""

    __slots__ = ("_buf", "_max_line")

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._buf = b""
        self._max_line = max_line

    def feed(self, data: bytes) -> list[list[str]]:
        if not data:
            if self._buf:
                raise AGIProtocolError(
                    f"connection closed in the middle of a command ({len(self._buf)} bytes)"
                )
            return []
        buf = self._buf + data
        *lines, rest = buf.split(b"\n")
        if len(rest) > self._max_line:
            raise AGIProtocolError(f"AGI command line longer than {self._max_line} bytes")
        self._buf = rest
        out = []
        for raw in lines:
            if len(raw) > self._max_line:
                raise AGIProtocolError(f"AGI command line longer than {self._max_line} bytes")
            out.append(parse_command(raw.decode("utf-8", "replace")))
        return out


# ---------------------------------------------------------------- encoding
def _check(field_name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise UnsafeValueError(
            f"{field_name} contains CR, LF or NUL and cannot be sent over AGI", field=field_name, value=value
        )


def quote_arg(arg: str) -> str:
    """One argument in double quotes, backslash and double quote escaped (``parse_args`` undoes it)."""
    _check("AGI argument", arg)
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


_COMMAND_WORDS = re.compile(r"[A-Z][A-Z ]*[A-Z]|[A-Z]")


def format_command(command: str, *args: str | int) -> bytes:
    """``command`` (upper-case words, e.g. ``"GET VARIABLE"``) and its arguments, each quoted, LF
    ended. Every argument is checked before anything is produced (``UnsafeValueError``)."""
    if not _COMMAND_WORDS.fullmatch(command):
        raise UnsafeValueError(f"invalid AGI command {command!r}", field="command", value=command)
    parts = [command]
    parts.extend(quote_arg(str(a)) for a in args)
    return (" ".join(parts) + "\n").encode("utf-8")


def encode_env(env: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """The environment block Asterisk sends first (keys ``agi_*``), blank line included."""
    items = env.items() if isinstance(env, Mapping) else env
    lines = []
    for name, value in items:
        if not name.startswith("agi_") or ":" in name or " " in name:
            raise UnsafeValueError(f"invalid AGI environment name {name!r}", field=name, value=name)
        _check(name, name)
        _check(name, value)
        lines.append(f"{name}: {value}\n")
    lines.append("\n")
    return "".join(lines).encode("utf-8")


def encode_reply(reply: AGIReply) -> bytes:
    """A reply as Asterisk writes it: its ``lines``, or for a 200 built without lines, the
    ``200 result=N (data) endpos=M`` form."""
    lines = reply.lines
    if not lines:
        if reply.code != CODE_SUCCESS:
            raise ValueError("a non-200 AGIReply needs its lines")
        lines = AGIReply.ok(reply.result or "0", data=reply.data, endpos=reply.endpos).lines
    for line in lines:
        _check("AGI reply", line)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def encode_usage_error(usage: str) -> bytes:
    """The ``520-`` multi-line usage reply Asterisk sends for a command with bad syntax."""
    body = usage.rstrip("\n").split("\n") if usage else []
    lines = ["520-Invalid command syntax.  Proper usage follows:", *body, "520 End of proper usage."]
    for line in lines:
        _check("AGI usage", line.replace("\n", ""))
    return "".join(line + "\n" for line in lines).encode("utf-8")


def script_name(env: Mapping[str, str]) -> str:
    """The route name: ``agi_network_script`` (``ivr`` for ``agi://host/ivr?x=1``) without its
    query string, or the path of ``agi_request``; ``""`` if neither says."""
    script = env.get("agi_network_script")
    if script is None:
        request = env.get("agi_request", "")
        _, sep, tail = request.partition("://")
        script = tail.partition("/")[2] if sep else request
    return script.partition("?")[0].strip("/")
