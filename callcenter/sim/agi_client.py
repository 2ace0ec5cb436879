"""Shell: the simulated PBX's FastAGI client: ``AGI(agi://host:port/script)`` connects to the
controller's FastAGI server, sends the ``agi_*`` environment and answers commands as Asterisk 22's
``res_agi`` does (see ``inbound-agi-bridge.agi.txt`` and ``sip-inbound-dtmf.agi.txt``).

Uses the product's codec (:mod:`callcenter.asterisk.agi`). When the channel goes away (hangup, or
pulled into a bridge during ``EXEC MusicOnHold``) the running command answers ``200 result=-1``,
an unsolicited ``HANGUP`` line follows once, and later commands run in "dead AGI" mode (``GET
VARIABLE``, ``NOOP`` ... still answer; media commands get ``511``) until the script closes the
socket. ``AGISTATUS`` is then ``SUCCESS``, ``HANGUP`` or (no connection) ``FAILURE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

from callcenter.asterisk.agi import (
    HANGUP_LINE,
    AGIReply,
    encode_env,
    encode_reply,
    encode_usage_error,
    parse_command,
)
from callcenter.errors import UnsafeValueError
from callcenter.sim.apps import play
from callcenter.sim.channel import UNKNOWN, UP, Channel
from callcenter.sim.expr import UnknownFunctionError
from callcenter.sim.pbx import AGI_PRIV, PBX, DialplanFault, SimulatorError, split_args
from callcenter.sim.sounds import SAMPLE_RATE

log = logging.getLogger(__name__)

USAGE: Final = {
    "GET DATA": "Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n"
    "Returns the digits received from the channel at the other end.",
    "STREAM FILE": "Send the given file, allowing playback to be interrupted by the given digits, if any.",
    "WAIT FOR DIGIT": "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a "
    "DTMF digit.",
    "GET VARIABLE": "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set.",
    "SET VARIABLE": "Sets a variable to the current channel.",
    "EXEC": "Executes <replaceable>application</replaceable> with given <replaceable>options</replaceable>.",
}
DEAD_OK: Final = frozenset(
    {
        "GET VARIABLE",
        "GET FULL VARIABLE",
        "SET VARIABLE",
        "NOOP",
        "VERBOSE",
        "CHANNEL STATUS",
        "DATABASE GET",
        "DATABASE PUT",
        "HANGUP",
    }
)
DEAD_TEXT: Final = "511 Command Not Permitted on a dead channel or intercepted channel"


class _Session:
    def __init__(
        self, client: FastAGIClient, chan: Channel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.client = client
        self.pbx = client.pbx
        self.chan = chan
        self.reader = reader
        self.writer = writer
        self.hangup_sent = False
        self.goto: list[Any] = [None, None, None]
        self.buf = b""

    @property
    def dead(self) -> bool:
        c = self.chan
        return c.gone or c.soft or c.pulled or c.async_goto is not None

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def notice_hangup(self) -> None:
        if self.dead and not self.hangup_sent:
            self.hangup_sent = True
            self.send(HANGUP_LINE)

    async def next_line(self) -> str | None:
        """The next command line, or None at EOF. Sends HANGUP as soon as the channel goes."""
        timeout = self.client.io_timeout
        while b"\n" not in self.buf:
            read = asyncio.ensure_future(self.reader.read(65536))
            watch: asyncio.Future[Any] | None = None
            if not self.hangup_sent and not self.dead:
                watch = asyncio.ensure_future(self.pbx.wait(self.chan, None))
            try:
                waiters: set[asyncio.Future[Any]] = {read} if watch is None else {read, watch}
                done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if watch is not None and watch in done and not read.done():
                    self.notice_hangup()
                    done, _ = await asyncio.wait({read}, timeout=timeout)
                if not read.done():
                    read.cancel()
                    log.warning("FastAGI script silent for %.0f s on %s; giving up", timeout, self.chan.name)
                    return None
            finally:
                if watch is not None and not watch.done():
                    watch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watch
            data = read.result()
            if not data:
                return None
            self.buf += data
            if len(self.buf) > 1 << 16 and b"\n" not in self.buf:
                log.warning("FastAGI command line too long on %s", self.chan.name)
                return None
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def exec_event(
        self, name: str, cid: str, command: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        self.pbx.chan_event(
            name, self.chan, [("CommandId", cid), ("Command", command), *(extra or [])], AGI_PRIV
        )

    async def serve(self) -> str:
        while True:
            line = await self.next_line()
            if line is None:
                break
            if not line.strip():
                continue
            words = parse_command(line)
            cid = str(self.client.random.randrange(1, 2**31))
            if not self.chan.gone and not self.chan.pulled:
                self.exec_event("AGIExecStart", cid, line)
            try:
                reply, code, text = await self.command(words)
            except (SimulatorError, UnsafeValueError) as exc:
                reply, code, text = b"200 result=-1\n", "200", "Success"
                log.warning("AGI command %r failed on %s: %s", line, self.chan.name, exc)
            if not self.chan.gone and not self.chan.pulled:
                self.exec_event("AGIExecEnd", cid, line, [("ResultCode", code), ("Result", text)])
            self.send(reply)
            self.notice_hangup()
        if self.chan.gone or self.chan.soft:
            return "HANGUP"
        return "SUCCESS"

    # ------------------------------------------------------------ commands
    async def command(self, words: list[str]) -> tuple[bytes, str, str]:
        upper = [w.upper() for w in words]
        name = ""
        args: list[str] = []
        for n in (3, 2, 1):
            key = " ".join(upper[:n])
            if key in HANDLERS or key in USAGE:
                name, args = key, words[n:]
                break
        if not name:
            return b"510 Invalid or unknown command\n", "510", "Invalid or unknown command"
        if self.dead and name not in DEAD_OK:
            return (
                (DEAD_TEXT + "\n").encode(),
                "511",
                "Command Not Permitted on a dead channel or intercepted channel",
            )
        handler = HANDLERS.get(name)
        if handler is None:
            return b"510 Invalid or unknown command\n", "510", "Invalid or unknown command"
        reply = await handler(self, args)
        if reply is None:
            return encode_usage_error(USAGE.get(name, f"Usage: {name}")), "520", "Usage"
        # res_agi reports an EXEC whose application returned -1 as neither success nor failure.
        text = "Unknown Result" if name == "EXEC" and reply.result == "-1" else "Success"
        return encode_reply(reply), "200", text

    def ok(self, result: str | int, data: str | None = None, endpos: int | None = None) -> AGIReply:
        return AGIReply.ok(result, data=data, endpos=endpos)


Handler = Callable[[_Session, list[str]], Awaitable[AGIReply | None]]


async def cmd_answer(s: _Session, args: list[str]) -> AGIReply:
    if s.chan.state != UP:
        s.pbx.answer(s.chan)
    return s.ok(0)


async def cmd_hangup(s: _Session, args: list[str]) -> AGIReply:
    target = s.pbx.find_channel(args[0]) if args else s.chan
    if target is None:
        return s.ok(-1)
    s.pbx.request_hangup(target)
    return s.ok(1)


async def cmd_noop(s: _Session, args: list[str]) -> AGIReply:
    return s.ok(0)


async def cmd_verbose(s: _Session, args: list[str]) -> AGIReply:
    return s.ok(1)


async def cmd_get_variable(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    frozen = s.chan.extra.get("vars_at_pull") if s.chan.pulled else None
    if frozen is not None and "(" not in args[0]:
        value = frozen.get(args[0])
        return s.ok(0) if value is None else s.ok(1, value)
    try:
        value = s.pbx.get_variable(s.chan, args[0])
    except SimulatorError:
        value = None
    except UnknownFunctionError as exc:  # an unknown function answers "not set", as Asterisk does
        log.warning("GET VARIABLE %s: %s", args[0], exc)
        value = None
    if value is None:
        return s.ok(0)
    return s.ok(1, value)


async def cmd_get_full_variable(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    return s.ok(1, s.pbx.substitute(s.chan, args[0]))


async def cmd_set_variable(s: _Session, args: list[str]) -> AGIReply | None:
    if len(args) < 2:
        return None
    s.pbx.set_variable(s.chan, args[0], args[1])
    return s.ok(1)


async def cmd_channel_status(s: _Session, args: list[str]) -> AGIReply:
    target = s.pbx.find_channel(args[0]) if args else (None if s.chan.gone else s.chan)
    if target is None:
        return s.ok(-1)
    return s.ok(target.state)


async def cmd_stream_file(s: _Session, args: list[str]) -> AGIReply | None:
    if len(args) < 2:
        return None
    outcome, digit, played = await play(s.pbx, s.chan, args[0], digits=args[1])
    endpos = int(played * SAMPLE_RATE)
    if outcome == "missing":
        s.pbx.varset(s.chan, "PLAYBACKSTATUS", "FAILED")
        return s.ok(-1, endpos=0)
    if outcome in ("hangup", "pulled", "goto"):
        return s.ok(-1, endpos=endpos)
    s.pbx.varset(s.chan, "PLAYBACKSTATUS", "SUCCESS")
    return s.ok(ord(digit) if digit else 0, endpos=endpos)


async def cmd_get_option(s: _Session, args: list[str]) -> AGIReply | None:
    if len(args) < 2:
        return None
    reply = await cmd_stream_file(s, args[:2])
    if reply is None or reply.result != "0":
        return reply
    timeout = float(args[2]) / 1000.0 if len(args) > 2 and args[2].lstrip("-").isdigit() else 5.0
    why = await s.pbx.wait(s.chan, timeout if timeout > 0 else 5.0, dtmf=True)
    if why == "dtmf":
        digit = s.chan.dtmf.popleft()
        return s.ok(ord(digit), endpos=reply.endpos)
    if why != "timeout":
        return s.ok(-1, endpos=reply.endpos)
    return s.ok(0, endpos=reply.endpos)


async def cmd_get_data(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    timeout_ms = int(args[1]) if len(args) > 1 and args[1].lstrip("-").isdigit() else 0
    maxdigits = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
    timeout = timeout_ms / 1000.0 if timeout_ms > 0 else 2.0
    digits = ""
    outcome, digit, _ = await play(s.pbx, s.chan, args[0], digits="0123456789*#")
    if outcome in ("hangup", "pulled", "goto"):
        return s.ok(-1)
    if digit is not None:
        if digit == "#":
            return s.ok("")
        digits += digit
    while len(digits) < maxdigits:
        why = await s.pbx.wait(s.chan, timeout, dtmf=True)
        if why == "timeout":
            return s.ok(digits, "timeout")
        if why != "dtmf":
            return s.ok(-1)
        d = s.chan.dtmf.popleft()
        if d == "#":
            break
        digits += d
    return s.ok(digits)


async def cmd_wait_for_digit(s: _Session, args: list[str]) -> AGIReply | None:
    if not args or not args[0].lstrip("-").isdigit():
        return None
    ms = int(args[0])
    why = await s.pbx.wait(s.chan, None if ms < 0 else ms / 1000.0, dtmf=True)
    if why == "dtmf":
        return s.ok(ord(s.chan.dtmf.popleft()))
    if why == "timeout":
        return s.ok(0)
    return s.ok(-1)


async def _say(s: _Session, files: list[str], escape: str) -> AGIReply:
    for f in files:
        outcome, digit, _ = await play(s.pbx, s.chan, f, digits=escape)
        if outcome == "digit" and digit:
            return s.ok(ord(digit))
        if outcome in ("hangup", "pulled", "goto"):
            return s.ok(-1)
    return s.ok(0)


async def cmd_say_digits(s: _Session, args: list[str]) -> AGIReply | None:
    if len(args) < 2:
        return None
    return await _say(s, [f"digits/{d}" for d in args[0] if d.isdigit()], args[1])


async def cmd_say_number(s: _Session, args: list[str]) -> AGIReply | None:
    if len(args) < 2:
        return None
    return await _say(s, [f"digits/{d}" for d in args[0].lstrip("-") if d.isdigit()], args[1])


async def cmd_set_music(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    if args[0].lower() == "on":
        s.pbx.moh_start(s.chan, args[1] if len(args) > 1 else "default")
    else:
        s.pbx.moh_stop(s.chan)
    return s.ok(0)


async def cmd_exec(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    wanted = args[0].lower()
    app = next((name for name in s.pbx.applications if name.lower() == wanted), None)
    if app is None:
        log.warning("AGI EXEC of unknown application %r on %s", args[0], s.chan.name)
        s.pbx.faults.append(
            DialplanFault(
                s.chan.name,
                s.chan.context,
                s.chan.exten,
                s.chan.priority,
                f"AGI EXEC: unknown application {args[0]!r}",
            )
        )
        return s.ok(-2)
    data = " ".join(args[1:])
    before = (s.chan.app, s.chan.appdata)
    s.chan.app, s.chan.appdata = app, data
    try:
        result = await s.pbx.exec_app(s.chan, app, data)
    finally:
        if not s.chan.gone:
            s.chan.app, s.chan.appdata = before
    if result == "-1" or s.dead:
        return s.ok(-1)
    if isinstance(result, tuple):
        s.goto = list(result)
    return s.ok(0)


async def cmd_set_context(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    s.goto[0] = args[0]
    return s.ok(0)


async def cmd_set_extension(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    s.goto[1] = args[0]
    return s.ok(0)


async def cmd_set_priority(s: _Session, args: list[str]) -> AGIReply | None:
    if not args:
        return None
    text = args[0]
    if text.isdigit():
        s.goto[2] = int(text)
    else:
        label = s.pbx.dialplan.resolve_label(s.goto[0] or s.chan.context, s.goto[1] or s.chan.exten, text)
        if label is None:
            return s.ok(-1)
        s.goto[2] = label
    return s.ok(0)


async def cmd_database_get(s: _Session, args: list[str]) -> AGIReply | None:
    if len(args) < 2:
        return None
    value = s.client.astdb.get((args[0], args[1]))
    return s.ok(1, value) if value is not None else s.ok(0)


async def cmd_database_put(s: _Session, args: list[str]) -> AGIReply | None:
    if len(args) < 3:
        return None
    s.client.astdb[(args[0], args[1])] = args[2]
    return s.ok(1)


HANDLERS: Final[dict[str, Handler]] = {
    "ANSWER": cmd_answer,
    "HANGUP": cmd_hangup,
    "NOOP": cmd_noop,
    "VERBOSE": cmd_verbose,
    "GET VARIABLE": cmd_get_variable,
    "GET FULL VARIABLE": cmd_get_full_variable,
    "SET VARIABLE": cmd_set_variable,
    "CHANNEL STATUS": cmd_channel_status,
    "STREAM FILE": cmd_stream_file,
    "CONTROL STREAM FILE": cmd_stream_file,
    "GET OPTION": cmd_get_option,
    "GET DATA": cmd_get_data,
    "WAIT FOR DIGIT": cmd_wait_for_digit,
    "SAY DIGITS": cmd_say_digits,
    "SAY NUMBER": cmd_say_number,
    "SET MUSIC": cmd_set_music,
    "EXEC": cmd_exec,
    "SET CONTEXT": cmd_set_context,
    "SET EXTENSION": cmd_set_extension,
    "SET PRIORITY": cmd_set_priority,
    "DATABASE GET": cmd_database_get,
    "DATABASE PUT": cmd_database_put,
}


class FastAGIClient:
    """Runs ``AGI(agi://...)`` for the engine (installed as ``pbx.agi_runner``)."""

    def __init__(
        self,
        pbx: PBX,
        *,
        host: str | None = None,
        port: int | None = None,
        seed: int = 0,
        connect_timeout: float = 5.0,
        io_timeout: float = 600.0,
    ) -> None:
        self.pbx = pbx
        self.host = host
        self.port = port
        self.random = random.Random(seed ^ 0xA61)  # noqa: S311 - ids only
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.astdb: dict[tuple[str, str], str] = {}
        self.sessions = 0

    def environment(self, chan: Channel, url: str, script: str, args: list[str]) -> list[tuple[str, str]]:
        def cid(value: str) -> str:
            return "unknown" if value in ("", UNKNOWN) else value

        env = [
            ("agi_network", "yes"),
            ("agi_network_script", script),
            ("agi_request", url),
            ("agi_channel", chan.name),
            ("agi_language", chan.language),
            ("agi_type", chan.tech),
            ("agi_uniqueid", chan.uniqueid),
            ("agi_version", "UNKNOWN__and_probably_unsupported"),
            ("agi_callerid", cid(chan.caller_num)),
            ("agi_calleridname", cid(chan.caller_name)),
            ("agi_callingpres", "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", chan.dnid or "unknown"),
            ("agi_rdnis", "unknown"),
            ("agi_context", chan.context),
            ("agi_extension", chan.exten),
            ("agi_priority", str(chan.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", chan.accountcode),
            ("agi_threadid", str(self.random.randrange(10**14, 10**15))),
        ]
        env += [(f"agi_arg_{i}", a) for i, a in enumerate(args, start=1)]
        return env

    async def run(self, pbx: PBX, chan: Channel, data: str) -> Any:
        parts = split_args(data)
        url = parts[0].strip()
        split = urlsplit(url)
        if split.scheme != "agi":
            raise SimulatorError(f"AGI(): only agi:// (FastAGI) URLs are simulated, got {url!r}")
        host = self.host or split.hostname or "127.0.0.1"
        port = self.port or split.port or 4573
        script = split.path.lstrip("/") + (f"?{split.query}" if split.query else "")
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            log.warning("FastAGI connect to %s:%s failed for %s: %s", host, port, chan.name, exc)
            return "FAILURE"
        self.sessions += 1
        session = _Session(self, chan, reader, writer)
        try:
            writer.write(encode_env(self.environment(chan, url, script, parts[1:])))
            status = await session.serve()
        except (ConnectionError, OSError) as exc:
            log.info("FastAGI session for %s ended: %s", chan.name, exc)
            status = "HANGUP" if session.dead else "FAILURE"
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if status == "SUCCESS" and any(v is not None for v in session.goto):
            ctx = session.goto[0] or chan.context
            exten = session.goto[1] or chan.exten
            prio = session.goto[2] if session.goto[2] is not None else chan.priority + 1
            if not chan.gone:
                pbx.varset(chan, "AGISTATUS", status)
            return (ctx, exten, prio)
        return status
