"""Shell: replay a real Asterisk capture's AMI actions against a PBX (the simulator, or a real
Asterisk) over TCP, and compare what comes back with what the capture recorded.

``load_capture(path)`` reads a transcript from ``tests/fixtures/asterisk-traces`` (``#`` lines
mark direction, the rest is wire data). :func:`replay` connects with the product's AMI codec,
sends each captured action once the PBX has produced the message the capture had seen last
before it (channel names in the action are translated from the capture's to the live ones),
and returns every message received. :func:`compare` reduces both sides to what must match:

* per channel (ids canonicalised by order of first appearance), the ordered list of its events
  with their key headers (state, dialplan position, application, cause, variable, dial status,
  digit, Linkedid ...);
* per ActionID, the response (``Response``, ``Message``, ``EventList``) and the list events;
* per ActionID, the ``OriginateResponse`` (``Response``, ``Reason``, channel, Uniqueid).

Ids, timestamps, bridge UUIDs, ``DeviceStateChange``/``RTCP*`` noise and the interleaving of
independent channels (which varies between two runs of the real Asterisk too) are left out.
"""

from __future__ import annotations

import ast
import asyncio
import difflib
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from callcenter.asterisk.ami import AMIParser, Greeting, Message, encode

Headers = tuple[tuple[str, str], ...]

IGNORED_EVENTS: Final = frozenset(
    {"DeviceStateChange", "RTCPSent", "RTCPReceived", "SuccessfulAuth", "FullyBooted"}
)
KEY_FIELDS: Final = (
    "ChannelStateDesc",
    "Context",
    "Exten",
    "Priority",
    "Linkedid",
    "Application",
    "AppData",
    "Cause",
    "Cause-txt",
    "Variable",
    "Value",
    "DialStatus",
    "Digit",
    "Direction",
    "Class",
    "State",
    "Command",
    "ResultCode",
    "Result",
)
_NAME_RE: Final = re.compile(r"((?:Local|PJSIP|SIP)/[^\s,;]+?)-([0-9a-f]{8})(;[12])?")


@dataclass(slots=True)
class Step:
    kind: str  # "send" | "recv" | "note"
    headers: Headers = ()
    text: str = ""


def load_capture(path: Path) -> list[Step]:
    steps: list[Step] = []
    kind: str | None = None
    buf: list[str] = []

    def flush() -> None:
        nonlocal buf
        if kind in ("send", "recv"):
            headers = tuple(
                (
                    line.split(":", 1)[0],
                    line.split(":", 1)[1][1:]
                    if line.split(":", 1)[1].startswith(" ")
                    else line.split(":", 1)[1],
                )
                for line in buf
                if ":" in line
            )
            if headers:
                steps.append(Step(kind, headers))
        buf = []

    for raw in path.read_bytes().decode("utf-8", "replace").split("\n"):
        line = raw.rstrip("\r")
        if line.startswith("#"):
            flush()
            if ">>>" in line:
                kind = "send"
            elif "<<<" in line and "b'" not in line:
                kind = "recv"
            else:
                kind = None
                if line.startswith("##"):
                    steps.append(Step("note", text=line[2:].strip()))
            continue
        if kind is not None and line:
            buf.append(line)
    flush()
    return steps


class Canon:
    """Canonical names for channels and Uniqueids, by order of first appearance. Only channels
    announced by ``Newchannel`` get a number; a name that never existed (a stale one an action
    carried) reads ``<stale>``."""

    def __init__(self) -> None:
        self.bases: dict[str, str] = {}
        self.uids: dict[str, str] = {}
        self.reverse_bases: dict[str, str] = {}

    def register(self, channel: str) -> None:
        m = _NAME_RE.search(channel)
        if m is None:
            return
        key = m.group(1) + "-" + m.group(2)
        if key not in self.bases:
            canon = f"{m.group(1)}-#{len(self.bases) + 1}"
            self.bases[key] = canon
            self.reverse_bases[canon] = key

    def feed(self, headers: Headers) -> None:
        if headers and headers[0] == ("Event", "Newchannel"):
            self.register(_get(headers, "Channel") or "")

    def text(self, value: str) -> str:
        def sub(m: re.Match[str]) -> str:
            canon = self.bases.get(m.group(1) + "-" + m.group(2))
            return (canon or f"{m.group(1)}-<stale>") + (m.group(3) or "")

        return _NAME_RE.sub(sub, value)

    def uid(self, value: str) -> str:
        if value in ("", "<unknown>"):
            return value
        canon = self.uids.get(value)
        if canon is None:
            canon = f"U{len(self.uids) + 1}"
            self.uids[value] = canon
        return canon


def _get(headers: Headers, name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v
    return None


def event_key(headers: Headers, canon: Canon) -> tuple[str, ...]:
    """An event reduced to what must match (channel ids canonicalised)."""
    name = headers[0][1]
    out = [name]
    for f in KEY_FIELDS:
        v = _get(headers, f)
        if v is None:
            continue
        if f == "Linkedid":
            v = canon.uid(v)
        elif f in ("AppData", "Value"):
            v = canon.text(v)
            if (
                f == "Value"
                and (_get(headers, "Variable") or "").endswith(("TIME", "TIME_MS"))
                and v.isdigit()
            ):
                v = "<n>"  # elapsed times differ from run to run
        out.append(f"{f}={v}")
    return tuple(out)


def _owners(headers: Headers, canon: Canon) -> list[str]:
    """The canonical channels an event belongs to."""
    owners = []
    for prefix in ("", "Dest", "Spyer", "Spyee", "LocalOne", "LocalTwo"):
        chan = _get(headers, prefix + "Channel")
        uid = _get(headers, prefix + "Uniqueid")
        if chan is not None and uid is not None:
            canon.uid(uid)
            owners.append(canon.text(chan))
    return owners


@dataclass(slots=True)
class Reduced:
    per_channel: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    responses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lists: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    originates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bridges: list[tuple[str, ...]] = field(default_factory=list)


def reduce(messages: Iterable[Headers]) -> Reduced:
    canon = Canon()
    out = Reduced()
    hung: set[str] = set()
    originated: dict[str, Headers] = {}
    for headers in messages:
        if not headers:
            continue
        canon.feed(headers)
        first, value = headers[0]
        aid = _get(headers, "ActionID")
        if first == "Response":
            out.responses[aid or "?"] = (
                value,
                *(
                    f"{k}={canon.text(v)}"
                    for k, v in headers[1:]
                    if k in ("Message", "EventList", "Variable", "Value", "Events", "Ping")
                ),
            )
            continue
        if first != "Event" or value in IGNORED_EVENTS:
            continue
        if value == "OriginateResponse":
            # Named once every message is in: Asterisk raises OriginateResponse from the
            # originating thread and Newchannel through Stasis, so the response may arrive before
            # the Newchannel of the channel it names (the only reordering allowed here).
            originated[aid or "?"] = headers
            continue
        if aid is not None and value in (
            "CoreShowChannel",
            "Status",
            "CoreShowChannelsComplete",
            "StatusComplete",
        ):
            row = (value, canon.text(_get(headers, "Channel") or ""), *event_key(headers, canon)[1:])
            if value.endswith("Complete"):
                row = (value, f"ListItems={_get(headers, 'ListItems')}")
            out.lists.setdefault(aid, []).append(row)
            continue
        if value.startswith("Bridge") and _get(headers, "Channel") is None:
            out.bridges.append((value, f"BridgeNumChannels={_get(headers, 'BridgeNumChannels')}"))
            continue
        key = event_key(headers, canon)
        for owner in _owners(headers, canon):
            if owner in hung:
                continue
            role = "" if _get(headers, "Channel") == canon.reverse_bases.get(owner, owner) else ""
            out.per_channel.setdefault(owner, []).append(key + ((role,) if role else ()))
        if value == "Hangup":
            hung.update(_owners(headers, canon))
    for aid, headers in originated.items():
        out.originates[aid] = (
            _get(headers, "Response") or "",
            f"Reason={_get(headers, 'Reason')}",
            f"Channel={canon.text(_get(headers, 'Channel') or '')}",
        )
    for rows in out.lists.values():
        rows.sort()
    return out


MILESTONES: Final = frozenset({"Newchannel", "Newstate", "Newexten", "BridgeEnter", "BridgeLeave", "Hangup"})


def _loose(events: list[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    # Outside the milestones, the state a racing event's snapshot shows is not compared either.
    def strip(e: tuple[str, ...]) -> tuple[str, ...]:
        return e if e[0] in MILESTONES else tuple(f for f in e if not f.startswith("ChannelStateDesc="))

    # ... nor how many times a racing update repeats (a bridge re-sets BRIDGEPEER once or twice).
    return sorted({strip(e) for e in events}), [e for e in events if e[0] in MILESTONES]


def compare(expected: Iterable[Headers], actual: Iterable[Headers], *, loose: bool = False) -> list[str]:
    """Human-readable differences between two message streams ([] when they agree).

    ``loose``: per channel, the same kinds of events in any order and number, and the same
    order of its milestones
    (Newchannel, Newstate, Newexten, BridgeEnter/Leave, Hangup). Two runs of a real Asterisk
    differ in the order of events its threads emit side by side (a ChanSpyStop before or after
    the BRIDGEPEER updates, a SoftHangupRequest before or after a HangupRequest): compare real
    runs loosely."""
    a, b = reduce(expected), reduce(actual)
    problems: list[str] = []
    for chan in sorted(set(a.per_channel) | set(b.per_channel)):
        ea, eb = a.per_channel.get(chan), b.per_channel.get(chan)
        if ea is None:
            problems.append(f"{chan}: not in the capture, simulator has {len(eb or [])} events")
        elif eb is None:
            problems.append(f"{chan}: missing, the capture has {len(ea)} events")
        elif (_loose(ea) != _loose(eb)) if loose else (ea != eb):
            problems.append(f"{chan}: events differ\n" + _diff(ea, eb))
    for label, da, db in (
        ("response", a.responses, b.responses),
        ("originate", a.originates, b.originates),
        ("list", a.lists, b.lists),
    ):
        for aid in sorted(set(da) | set(db)):
            if da.get(aid) != db.get(aid):
                problems.append(f"{label} {aid}: capture {da.get(aid)!r} != simulator {db.get(aid)!r}")
    if sorted(a.bridges) != sorted(b.bridges):
        problems.append(f"bridge events: capture {a.bridges} != simulator {b.bridges}")
    return problems


def _diff(a: list[tuple[str, ...]], b: list[tuple[str, ...]]) -> str:
    return "\n".join(
        difflib.unified_diff(
            [" ".join(x) for x in a], [" ".join(x) for x in b], "capture", "simulator", lineterm="", n=2
        )
    )


# ---------------------------------------------------------------- driving a live PBX
class AMIPeer:
    """A scripted AMI client over TCP (the product's codec for framing)."""

    def __init__(self) -> None:
        self.messages: list[Headers] = []
        self.changed = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.greeting: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            self.reader, self.writer = await asyncio.open_connection(host, port)
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        if self.reader is None:
            raise RuntimeError("not connected")
        parser = AMIParser(greeting=True)
        try:
            while True:
                data = await self.reader.read(1 << 16)
                for item in parser.feed(data):
                    if isinstance(item, Greeting):
                        self.greeting = item.text
                    elif isinstance(item, Message):
                        self.messages.append(item.headers)
                self.changed.set()
                if not data:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self.closed.set()
            self.changed.set()

    def send_raw(self, data: bytes) -> None:
        if self.writer is None:
            raise RuntimeError("not connected")
        self.writer.write(data)

    def send(self, headers: Iterable[tuple[str, str]]) -> None:
        self.send_raw(encode(headers))

    async def wait_for(
        self, pred: Callable[[Headers], bool], *, timeout: float, start: int = 0
    ) -> Headers | None:
        idx = start
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while idx < len(self.messages):
                        if pred(self.messages[idx]):
                            return self.messages[idx]
                        idx += 1
                    if self.closed.is_set():
                        return None
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            return None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _raw_action(headers: Headers) -> bytes:
    """The captured action as the capture script sent it (values may carry CR/LF on purpose)."""
    return ("".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode()


def _label(headers: Headers) -> tuple[str, str]:
    first, value = headers[0]
    if first == "Response":
        return ("Response", _get(headers, "ActionID") or "")
    return (first, value)


async def replay(
    steps: list[Step],
    host: str,
    port: int,
    *,
    step_timeout: float = 5.0,
    credentials: tuple[str, str] | None = None,
    on_send: Callable[[Headers, AMIPeer], Awaitable[None]] | None = None,
) -> list[Headers]:
    """Send the capture's actions to ``host:port``; returns every message received.

    Before each action, wait (up to ``step_timeout``) until the live PBX has sent as many
    messages like the capture's last one before that action (same event name, or the response
    to the same ActionID), and as many ``Hangup`` events, as the capture had."""
    peer = AMIPeer()
    await peer.connect(host, port)
    cap = Canon()
    live = Canon()
    seen: list[Headers] = []
    try:
        for step in steps:
            if step.kind == "recv":
                seen.append(step.headers)
                continue
            if step.kind != "send":
                continue
            last = next((h for h in reversed(seen) if _get(h, "Event") not in IGNORED_EVENTS), None)
            if last is not None:
                # the capture's last message before this action, and every Hangup it had seen by
                # then (a real PBX under load may report a hang-up after the next message)
                wanted = {_label(last), ("Event", "Hangup")}
                counts = {label: sum(1 for h in seen if _label(h) == label) for label in wanted}

                def enough(_: Headers, counts: dict[tuple[str, str], int] = counts) -> bool:
                    return all(
                        sum(1 for h in peer.messages if _label(h) == label) >= n
                        for label, n in counts.items()
                    )

                await peer.wait_for(enough, timeout=step_timeout)
            cap = Canon()
            for h in seen:
                cap.feed(h)
            live = Canon()
            for h in peer.messages:
                live.feed(h)
            translated = []
            for k, v in step.headers:
                if k in ("Username", "Secret") and credentials is not None:
                    v = credentials[0] if k == "Username" else credentials[1]
                translated.append((k, _translate(v, cap, live)))
            if on_send is not None:
                await on_send(tuple(translated), peer)
            peer.send_raw(_raw_action(tuple(translated)))
            if _get(step.headers, "Action") == "Logoff":
                await peer.wait_for(lambda h: _get(h, "Response") == "Goodbye", timeout=step_timeout)
                break
        return list(peer.messages)
    finally:
        await peer.close()


def _translate(value: str, cap: Canon, live: Canon) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1) + "-" + m.group(2)
        canon = cap.bases.get(key)
        real = live.reverse_bases.get(canon) if canon is not None else None
        if real is None:
            return f"{m.group(1)}-deadbeef{m.group(3) or ''}"  # names no channel the live PBX has
        return real + (m.group(3) or "")

    return _NAME_RE.sub(sub, value)


def capture_messages(steps: list[Step]) -> list[Headers]:
    return [s.headers for s in steps if s.kind == "recv"]


# ---------------------------------------------------------------- the FastAGI side of a capture
def load_agi_capture(path: Path) -> tuple[list[str], list[str]]:
    """(commands the script sent, lines it received after the environment) from a ``.agi.txt``."""
    commands: list[str] = []
    received: list[str] = []
    env_done = False
    for line in path.read_text().splitlines():
        m = re.match(r"#\s*[\d.]+ (>>>|<<<) (.*)$", line)
        if not m:
            continue
        value = ast.literal_eval(m.group(2))
        text = value.decode() if isinstance(value, bytes) else str(value)
        if m.group(1) == ">>>":
            commands.append(text)
        elif env_done:
            received.append(text)
        elif text == "\n":
            env_done = True
    return commands, received


class AGIScript:
    """A FastAGI server that plays a captured script: sends each command after the previous
    reply (a ``520-`` block, ``100`` and ``HANGUP`` lines read as the capture script read them),
    records the environment and every line received."""

    def __init__(self, commands: list[str], *, timeout: float = 30.0) -> None:
        self.commands = commands
        self.timeout = timeout
        self.env: dict[str, str] = {}
        self.received: list[str] = []
        self.sent: list[str] = []
        self.done = asyncio.Event()
        self.progress = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.writers:
            w.close()
        if self.writers:
            try:
                async with asyncio.timeout(5):
                    await self.done.wait()  # let the handler end on its own (no cancellation)
            except TimeoutError:
                pass
        if self.server is not None:
            await self.server.wait_closed()

    async def _readline(self, reader: asyncio.StreamReader) -> str:
        async with asyncio.timeout(self.timeout):
            line = await reader.readline()
        text = line.decode()
        if text:
            self.received.append(text)
        self.progress.set()
        return text

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                line = await self._readline(reader)
                if line in ("\n", ""):
                    break
                k, _, v = line.rstrip("\n").partition(": ")
                self.env[k] = v
            self.received.clear()
            for command in self.commands:
                self.sent.append(command)
                writer.write((command + "\n").encode())
                await writer.drain()
                first = await self._readline(reader)
                if not first:
                    break
                if first.startswith("520-"):
                    while True:
                        more = await self._readline(reader)
                        if not more or more.startswith("520 End"):
                            break
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self.done.set()

    async def wait_sent(self, prefix: str, *, timeout: float) -> bool:
        """Until the script has sent a command starting with ``prefix`` (or timeout)."""
        try:
            async with asyncio.timeout(timeout):
                while not any(c.startswith(prefix) for c in self.sent):
                    self.progress.clear()
                    await self.progress.wait()
        except TimeoutError:
            return False
        return True
