"""Shell: the simulated PBX's AMI server (TCP), speaking as Asterisk 22 does.

Uses the product's sans-IO codec (:mod:`callcenter.asterisk.ami`) for framing. Each session reads
in large blocks, runs its actions one at a time (as an Asterisk manager session does: a
synchronous Originate holds the session until the call is answered or fails), and receives the
engine's events once logged in with events on. An event is encoded once for all sessions; a
session whose unread output passes ``max_backlog`` bytes is disconnected (a slow reader must not
hold the PBX).

Responses, error messages and EventList shapes follow the traces in
``tests/fixtures/asterisk-traces`` (``Originate successfully queued``, ``Extension does not
exist.``, ``Originate failed``, ``No such channel``, ``Channel does not exist: X`` ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from callcenter.asterisk.ami import AMIParser, Message, encode, encode_greeting
from callcenter.errors import AMIProtocolError, UnsafeValueError
from callcenter.sim.apps import start_mixmonitor
from callcenter.sim.channel import UNKNOWN, Channel, duration_hms
from callcenter.sim.expr import UnknownFunctionError
from callcenter.sim.pbx import PBX, OriginateRefused, OriginateRequest, SimulatorError, valid_digit

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]

READ_CHUNK: Final = 1 << 16
_EVENT_NAME: Final = re.compile(r"\^?Event: ?([A-Za-z0-9_]+)\$?")
AUTH_TIMEOUT: Final = 30.0
GOODBYE: Final = "Thanks for all the fish."


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on", "y")


def _safe_encode(headers: Headers) -> bytes:
    try:
        return encode(headers)
    except UnsafeValueError:
        cleaned = [(k, v.replace("\r", " ").replace("\n", " ").replace("\x00", "")) for k, v in headers]
        return encode(cleaned)


@dataclass(slots=True)
class EventFilter:
    """``eventfilter`` semantics: with any whitelist entry, an event must match one; a blacklist
    entry (``!``) drops what it matches. Patterns are regexes over ``Name: value`` lines."""

    allow: list[re.Pattern[str]] = field(default_factory=list)
    deny: list[re.Pattern[str]] = field(default_factory=list)
    # The usual filters name an event (``!Event: Newexten``): checked by name, without regexes.
    allow_names: set[str] = field(default_factory=set)
    deny_names: set[str] = field(default_factory=set)

    def add(self, spec: str) -> None:
        spec = spec.strip()
        negate = spec.startswith("!")
        body = spec[1:] if negate else spec
        plain = _EVENT_NAME.fullmatch(body)
        if plain is not None:
            (self.deny_names if negate else self.allow_names).add(plain.group(1))
            return
        (self.deny if negate else self.allow).append(re.compile(body))

    def passes(self, name: str, headers: Headers) -> bool:
        if name in self.deny_names:
            return False
        if not self.allow and not self.deny:
            return not self.allow_names or name in self.allow_names
        if name in self.allow_names and not self.deny:
            return True
        lines = [f"Event: {name}", *(f"{k}: {v}" for k, v in headers)]
        if self.allow_names and name not in self.allow_names and not self.allow:
            return False
        if self.allow and not any(p.search(line) for p in self.allow for line in lines):
            return False
        return not any(p.search(line) for p in self.deny for line in lines)


class AMISession:
    def __init__(self, server: AMIServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authed = False
        self.events_on = True
        self.filter = EventFilter(
            [*server.filter.allow],
            [*server.filter.deny],
            set(server.filter.allow_names),
            set(server.filter.deny_names),
        )
        self.closing = False
        self.username = ""

    # ------------------------------------------------------------ output
    def send(self, headers: Headers) -> None:
        if self.closing:
            return
        self.writer.write(_safe_encode(headers))

    def respond(self, action: Message, response: str, *extra: tuple[str, str]) -> None:
        headers: Headers = [("Response", response)]
        aid = action.get("ActionID")
        if aid is not None:
            headers.append(("ActionID", aid))
        headers.extend(extra)
        self.send(headers)

    def error(self, action: Message, message: str) -> None:
        self.respond(action, "Error", ("Message", message))

    def deliver(self, name: str, headers: Headers, data: bytes) -> None:
        if self.closing or not self.authed or not self.events_on:
            return
        if not self.filter.passes(name, headers):
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > self.server.max_backlog:
            log.warning("AMI client %s reads too slowly; disconnecting", self.username)
            self.closing = True
            transport.abort()
            return
        self.writer.write(data)

    def _closing(self) -> bool:
        return self.closing

    # ------------------------------------------------------------ input
    async def serve(self) -> None:
        parser = AMIParser(greeting=False, max_message_size=self.server.max_message_size)
        self.writer.write(encode_greeting())
        try:
            while not self.closing:
                timeout = AUTH_TIMEOUT if not self.authed else self.server.idle_timeout
                try:
                    async with asyncio.timeout(timeout):
                        data = await self.reader.read(READ_CHUNK)
                except TimeoutError:
                    log.info("AMI session idle for %.0f s; closing", timeout)
                    return
                try:
                    messages = parser.feed(data)
                except AMIProtocolError as exc:
                    log.warning("AMI client broke the protocol: %s", exc)
                    return
                for msg in messages:
                    if isinstance(msg, Message):
                        await self.handle(msg)
                        if self._closing():
                            break
                if not data:
                    return
        except (ConnectionError, OSError) as exc:
            log.info("AMI session ended: %s", exc)
        finally:
            self.closing = True
            self.server.sessions.discard(self)
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    async def handle(self, msg: Message) -> None:
        action = msg.get("Action")
        if action is None:
            self.error(msg, "Missing action in request")
            return
        name = action.strip().lower()
        if name == "login":
            self.login(msg)
            return
        if name == "logoff":
            self.respond(msg, "Goodbye", ("Message", GOODBYE))
            self.closing = True
            return
        if not self.authed:
            self.error(msg, "Authentication Required")
            return
        handler = self.server.actions.get(name)
        if handler is None:
            self.error(
                msg,
                f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands.",
            )
            return
        await handler(self, msg)

    def login(self, msg: Message) -> None:
        user = msg.get("Username", "")
        secret = msg.get("Secret", "")
        if user != self.server.username or secret != self.server.secret:
            self.error(msg, "Authentication failed")
            self.closing = True
            return
        self.authed = True
        self.username = user or ""
        events = msg.get("Events")
        if events is not None:
            self.events_on = events.strip().lower() not in ("off", "no", "false", "0")
        self.respond(msg, "Success", ("Message", "Authentication accepted"))
        pbx = self.server.pbx
        uptime = str(int(pbx.clock.monotonic() - pbx.booted_at) + 1)
        if self.events_on:
            self.send(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                    ("Status", "Fully Booted"),
                ]
            )
        peer = self.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        sock = self.writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        stamp = _event_tv(pbx.clock.now())
        self.server.broadcast(
            "SuccessfulAuth",
            [
                ("Privilege", "security,all"),
                ("EventTV", stamp),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", self.username),
                ("SessionID", f"0x{id(self) & 0xFFFFFFFFFFFF:x}"),
                ("LocalAddress", f"IPV4/TCP/{sock[0]}/{sock[1]}"),
                ("RemoteAddress", f"IPV4/TCP/{peer[0]}/{peer[1]}"),
                ("UsingPassword", "0"),
                ("SessionTV", stamp),
            ],
        )


def _event_tv(now: float) -> str:
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


Action = Callable[[AMISession, Message], Awaitable[None]]


class AMIServer:
    """Serve AMI for ``pbx`` on ``host:port`` (port 0 picks a free one: see ``port``)."""

    def __init__(
        self,
        pbx: PBX,
        *,
        host: str = "127.0.0.1",
        port: int = 5038,
        username: str = "callcenter",
        secret: str = "callcenter",  # noqa: S107 - the simulator's default login
        eventfilters: list[str] | None = None,
        max_backlog: int = 64 << 20,
        max_message_size: int = 1 << 20,
        idle_timeout: float = 24 * 3600.0,
        reload: Callable[[], str] | None = None,
    ) -> None:
        self.pbx = pbx
        self.host = host
        self.requested_port = port
        self.port = port
        self.username = username
        self.secret = secret
        self.filter = EventFilter()
        for spec in eventfilters or []:
            self.filter.add(spec)
        self.max_backlog = max_backlog
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.reload_hook = reload
        self.sessions: set[AMISession] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.actions: dict[str, Action] = {
            "ping": act_ping,
            "events": act_events,
            "filter": act_filter,
            "originate": act_originate,
            "redirect": act_redirect,
            "hangup": act_hangup,
            "bridge": act_bridge,
            "setvar": act_setvar,
            "getvar": act_getvar,
            "playdtmf": act_playdtmf,
            "mixmonitor": act_mixmonitor,
            "mixmonitormute": act_mixmonitormute,
            "stopmixmonitor": act_stopmixmonitor,
            "coreshowchannels": act_coreshowchannels,
            "status": act_status,
            "command": act_command,
            "reload": act_reload,
            "atxfer": act_atxfer,
        }
        pbx.listeners.append(self._on_event)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.requested_port, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions):
            s.closing = True
            s.writer.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._on_event in self.pbx.listeners:
            self.pbx.listeners.remove(self._on_event)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AMISession(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.ensure_future(session.serve())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, name: str, privilege: str, headers: Headers) -> None:
        if not self.sessions:
            return
        data: bytes | None = None
        for s in self.sessions:
            if s.authed and s.events_on and not s.closing:
                if data is None:
                    data = _safe_encode([("Event", name), *headers])
                s.deliver(name, headers, data)

    def broadcast(self, name: str, headers: Headers) -> None:
        self._on_event(name, headers[0][1] if headers else "", headers)


# ---------------------------------------------------------------- actions
def _chan(session: AMISession, msg: Message, header: str = "Channel") -> Channel | None:
    ident = (msg.get(header) or "").strip()
    return session.server.pbx.find_channel(ident) if ident else None


async def act_ping(session: AMISession, msg: Message) -> None:
    now = session.server.pbx.clock.now()
    session.respond(msg, "Success", ("Ping", "Pong"), ("Timestamp", f"{now:.6f}"))


async def act_events(session: AMISession, msg: Message) -> None:
    mask = (msg.get("EventMask") or "on").strip().lower()
    session.events_on = mask not in ("off", "no", "false", "0", "")
    session.respond(msg, "Success", ("Events", "On" if session.events_on else "Off"))


async def act_filter(session: AMISession, msg: Message) -> None:
    op = (msg.get("Operation") or "Add").strip().lower()
    spec = msg.get("Filter")
    if op != "add" or not spec:
        session.error(msg, "Reached end of filter list" if not spec else "Unknown operation")
        return
    try:
        session.filter.add(spec)
    except re.error:
        session.error(msg, "Filter Not Added")
        return
    session.respond(msg, "Success", ("Message", "Filter Added Successfully"))


def _originate_request(msg: Message) -> OriginateRequest:
    variables: list[tuple[str, str]] = []
    for raw in msg.get_all("Variable"):
        for part in raw.split(","):
            k, sep, v = part.partition("=")
            if sep and k.strip():
                variables.append((k.strip(), v))
    try:
        timeout_ms = int(msg.get("Timeout") or 30000)
    except ValueError:
        timeout_ms = 30000
    prio_text = (msg.get("Priority") or "1").strip()
    return OriginateRequest(
        channel=(msg.get("Channel") or "").strip(),
        context=msg.get("Context"),
        exten=msg.get("Exten"),
        priority=int(prio_text) if prio_text.isdigit() else 1,
        application=msg.get("Application"),
        data=msg.get("Data") or "",
        timeout_ms=timeout_ms,
        callerid=msg.get("CallerID"),
        variables=variables,
        channel_id=msg.get("ChannelId") or None,
        other_channel_id=msg.get("OtherChannelId") or None,
        action_id=msg.get("ActionID"),
        is_async=_truthy(msg.get("Async")),
    )


async def act_originate(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    req = _originate_request(msg)
    prio_text = (msg.get("Priority") or "1").strip()
    if not prio_text.isdigit() and req.exten and req.context:
        label = pbx.dialplan.resolve_label(req.context, req.exten, prio_text)
        if label is not None:
            req.priority = label
    try:
        pbx.check_originate(req)
    except OriginateRefused as exc:
        session.error(msg, exc.message)
        return
    if req.is_async:
        session.respond(msg, "Success", ("Message", "Originate successfully queued"))
        pbx.spawn(pbx.originate(req), name=f"originate {req.action_id}")
        return
    ok, _ = await pbx.originate(req)
    if ok:
        session.respond(msg, "Success", ("Message", "Originate successfully queued"))
    else:
        session.error(msg, "Originate failed")


async def act_redirect(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    ident = (msg.get("Channel") or "").strip()
    if not ident:
        session.error(msg, "Channel not specified")
        return
    chan = pbx.find_channel(ident)
    if chan is None:
        session.error(msg, f"Channel does not exist: {ident}")
        return
    context = (msg.get("Context") or chan.context).strip()
    exten = (msg.get("Exten") or "").strip()
    prio_text = (msg.get("Priority") or "1").strip()
    priority = (
        int(prio_text) if prio_text.isdigit() else pbx.dialplan.resolve_label(context, exten, prio_text)
    )
    if priority is None or not pbx.dialplan.exists(context, exten, priority):
        session.error(msg, "Extension does not exist.")
        return
    extra = None
    extra_ident = (msg.get("ExtraChannel") or "").strip()
    if extra_ident:
        extra = pbx.find_channel(extra_ident)
        if extra is None:
            session.error(msg, f"ExtraChannel does not exist: {extra_ident}")
            return
    session.respond(msg, "Success", ("Message", "Redirect successful"))
    pbx.redirect(chan, context, exten, priority)
    if extra is not None:
        pbx.redirect(
            extra,
            (msg.get("ExtraContext") or context).strip(),
            (msg.get("ExtraExten") or exten).strip(),
            int(msg.get("ExtraPriority") or priority),
        )


async def act_hangup(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    ident = (msg.get("Channel") or "").strip()
    if not ident:
        session.error(msg, "No channel specified")
        return
    try:
        cause = int(msg.get("Cause") or 0)
    except ValueError:
        cause = 0
    if ident.startswith("/") and ident.endswith("/") and len(ident) > 1:
        try:
            regex = re.compile(ident[1:-1])
        except re.error:
            session.error(msg, "Invalid regex")
            return
        hits = [c for c in list(pbx.channels.values()) if regex.search(c.name) and not c.gone]
        for c in hits:
            pbx.request_hangup(c, cause or None)
        session.respond(msg, "Success", ("Message", f"{len(hits)} channels hung up."))
        return
    chan = pbx.find_channel(ident)
    if chan is None:
        session.error(msg, "No such channel")
        return
    session.respond(msg, "Success", ("Message", "Channel Hungup"))
    pbx.request_hangup(chan, cause or None)


async def act_bridge(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    one_id = (msg.get("Channel1") or "").strip()
    two_id = (msg.get("Channel2") or "").strip()
    one = pbx.find_channel(one_id)
    if one is None:
        session.error(msg, f"Channel1 does not exist: {one_id}")
        return
    two = pbx.find_channel(two_id)
    if two is None:
        session.error(msg, f"Channel2 does not exist: {two_id}")
        return
    session.respond(msg, "Success", ("Message", "Channels have been bridged"))
    for chan in (one, two):
        if chan.bridge is not None:
            pbx.leave_bridge(chan.bridge, chan)
    bridge = pbx.new_bridge()
    pbx.pull_into_bridge(bridge, one)
    pbx.pull_into_bridge(bridge, two)
    pbx.varset(one, "BRIDGEPEER", two.name)
    pbx.varset(two, "BRIDGEPEER", one.name)
    for chan in (one, two):
        if chan.wake is None and not any(t.get_name() == chan.name for t in pbx.tasks):
            pbx.spawn(pbx.run(chan), name=chan.name)


async def act_setvar(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    name = (msg.get("Variable") or "").strip()
    value = msg.get("Value") or ""
    if not name:
        session.error(msg, "No variable specified")
        return
    ident = (msg.get("Channel") or "").strip()
    if not ident:
        pbx.dialplan.globals[name] = value
        session.respond(msg, "Success", ("Message", "Variable Set"))
        return
    chan = pbx.find_channel(ident)
    if chan is None:
        session.error(msg, "No such channel")
        return
    pbx.set_variable(chan, name, value)
    session.respond(msg, "Success", ("Message", "Variable Set"))


async def act_getvar(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    name = (msg.get("Variable") or "").strip()
    if not name:
        session.error(msg, "No variable specified")
        return
    ident = (msg.get("Channel") or "").strip()
    if not ident:
        session.respond(msg, "Success", ("Variable", name), ("Value", pbx.dialplan.globals.get(name, "")))
        return
    chan = pbx.find_channel(ident)
    if chan is None:
        session.error(msg, "No such channel")
        return
    try:
        value = pbx.get_variable(chan, name)
    except SimulatorError as exc:
        session.error(msg, exc.message)
        return
    except UnknownFunctionError as exc:  # reported to the client, as Asterisk does
        session.error(msg, str(exc))
        return
    session.respond(msg, "Success", ("Variable", name), ("Value", value or ""))


async def act_playdtmf(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    chan = _chan(session, msg)
    if chan is None:
        session.error(msg, "No such channel")
        return
    digit = (msg.get("Digit") or "").strip()
    if not digit or not valid_digit(digit[0]):
        session.error(msg, "No digit specified")
        return
    try:
        duration = int(msg.get("Duration") or 100)
    except ValueError:
        duration = 100
    await pbx.clock.sleep(duration / 1000.0)
    # Queued whatever the channel's state; on an unanswered SIP channel the digit goes nowhere
    # and no DTMF event follows (the Local ;2 behind a ;1 gets it in any state).
    session.respond(msg, "Success", ("Message", "DTMF successfully queued"))
    target = chan.peer if chan.peer is not None and not chan.peer.gone else None
    if target is not None:
        pbx.send_dtmf(target, digit[0], duration)
    elif pbx.send_dtmf(chan, digit[0], duration, direction="Sent"):
        pbx.notify(chan, "dtmf_sent", digit[0])


async def act_mixmonitor(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    chan = _chan(session, msg)
    if chan is None:
        session.error(msg, "No such channel")
        return
    file = (msg.get("File") or "").strip() or f"{chan.uniqueid}.wav"
    session.respond(msg, "Success")
    start_mixmonitor(pbx, chan, file, msg.get("Options") or "")


async def act_mixmonitormute(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    chan = _chan(session, msg)
    if chan is None:
        session.error(msg, "No such channel")
        return
    direction = (msg.get("Direction") or "both").strip()
    state = "1" if _truthy(msg.get("State")) else "0"
    session.respond(msg, "Success")
    if chan.mixmonitor is not None:
        chan.mixmonitor.mute(pbx.clock.monotonic(), state == "1")
    pbx.chan_event("MixMonitorMute", chan, [("Direction", direction), ("State", state)])


async def act_stopmixmonitor(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    chan = _chan(session, msg)
    if chan is None:
        session.error(msg, "No such channel")
        return
    if chan.mixmonitor is None:
        session.error(msg, "Could not stop monitoring channel")
        return
    session.respond(msg, "Success")
    chan.mixmonitor.stop(pbx)


def _listing(pbx: PBX) -> list[Channel]:
    return sorted((c for c in pbx.channels.values() if not c.gone), key=lambda c: c.seq)


async def act_coreshowchannels(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    aid = msg.get("ActionID")
    session.respond(msg, "Success", ("EventList", "start"), ("Message", "Channels will follow"))
    chans = _listing(pbx)
    now = pbx.clock.monotonic()
    for c in chans:
        headers: Headers = [("Event", "CoreShowChannel")]
        if aid is not None:
            headers.append(("ActionID", aid))
        app, data = (c.app, c.appdata) if not c.pulled else ("", "")
        headers += c.snapshot()
        headers += [
            ("Application", app),
            ("ApplicationData", data),
            ("Duration", duration_hms(now - c.created)),
            ("BridgeId", c.bridge.uniqueid if c.bridge is not None else ""),
        ]
        session.send(headers)
    done: Headers = [("Event", "CoreShowChannelsComplete")]
    if aid is not None:
        done.append(("ActionID", aid))
    done += [("EventList", "Complete"), ("ListItems", str(len(chans)))]
    session.send(done)


async def act_status(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    aid = msg.get("ActionID")
    ident = (msg.get("Channel") or "").strip()
    if ident:
        one = pbx.find_channel(ident)
        if one is None:
            session.error(msg, "No such channel")
            return
        chans = [one]
    else:
        chans = _listing(pbx)
    wanted = [v.strip() for v in (msg.get("Variables") or "").split(",") if v.strip()]
    session.respond(msg, "Success", ("EventList", "start"), ("Message", "Channel status will follow"))
    now = pbx.clock.monotonic()
    for c in chans:
        headers: Headers = [("Event", "Status"), ("Privilege", "Call"), *c.snapshot()]
        app, data = (c.app, c.appdata) if not c.pulled else ("(null)", "(null)")
        headers += [
            ("Type", c.tech),
            ("DNID", c.dnid),
            ("EffectiveConnectedLineNum", c.conn_num),
            ("EffectiveConnectedLineName", c.conn_name),
            ("TimeToHangup", "0"),
            ("BridgeID", c.bridge.uniqueid if c.bridge is not None else ""),
            ("Application", app),
            ("Data", data),
            ("Nativeformats", "(ulaw)" if c.tech == "PJSIP" else "(slin)"),
            ("Readformat", "ulaw" if c.tech == "PJSIP" else "slin"),
            ("Readtrans", ""),
            ("Writeformat", "ulaw" if c.tech == "PJSIP" else "slin"),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(int(now - c.created))),
        ]
        for var in wanted:
            # Asterisk 22 prints a requested variable the channel lacks as NAME=(null).
            value = c.variables.get(var)
            headers.append(("Variable", f"{var}={value if value is not None else '(null)'}"))
        if aid is not None:
            headers.append(("ActionID", aid))
        session.send(headers)
    done: Headers = [("Event", "StatusComplete")]
    if aid is not None:
        done.append(("ActionID", aid))
    done += [("EventList", "Complete"), ("ListItems", str(len(chans))), ("Items", str(len(chans)))]
    session.send(done)


def _concise(pbx: PBX) -> list[str]:
    now = pbx.clock.monotonic()
    lines = []
    for c in _listing(pbx):
        cid = "" if c.caller_num == UNKNOWN else c.caller_num
        lines.append(
            "!".join(
                [
                    c.name,
                    c.context,
                    c.exten,
                    str(c.priority),
                    {6: "Up", 4: "Ring", 5: "Ringing", 0: "Down", 7: "Busy"}.get(c.state, "Unknown"),
                    c.app,
                    c.appdata,
                    cid,
                    "",
                    "",
                    "3",
                    str(int(now - c.created)),
                    c.bridge.uniqueid if c.bridge else "(None)",
                    c.uniqueid,
                ]
            )  # fmt: skip
        )
    return lines


async def act_command(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    command = " ".join((msg.get("Command") or "").split())
    if command == "core show channels concise":
        output = _concise(pbx)
    elif command in ("core show channels", "core show calls"):
        active = [c for c in pbx.channels.values() if not c.gone]
        output = [f"{len(active)} active channels", f"{len(active) // 2} active calls"]
    elif command in ("dialplan reload", "core reload", "module reload", "module reload pbx_config.so"):
        hook = session.server.reload_hook
        output = [hook() if hook is not None else "Dialplan reloaded."]
    elif command == "core show version":
        output = ["Asterisk 22 (callcenter simulated PBX)"]
    else:
        output = [
            f"No such command '{command}' (type 'core show help {command}' for other possible commands)"
        ]
    session.respond(
        msg, "Success", ("Message", "Command output follows"), *[("Output", line) for line in output or [""]]
    )


async def act_atxfer(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    ident = (msg.get("Channel") or "").strip()
    if not ident:
        session.error(msg, "No channel specified")
        return
    chan = pbx.find_channel(ident)
    if chan is None:
        session.error(msg, "Channel specified does not exist")
        return
    exten = (msg.get("Exten") or "").strip()
    context = (msg.get("Context") or chan.context).strip()
    if not exten:
        session.error(msg, "No extension specified")
        return
    if not pbx.dialplan.exists(context, exten, 1):
        session.error(msg, "Extension does not exist.")
        return
    if chan.bridge is None:
        session.error(msg, "Channel is not in a bridge")
        return
    session.respond(msg, "Success", ("Message", "Atxfer successfully queued"))
    pbx.spawn(pbx.attended_transfer(chan, context, exten), name=f"atxfer {chan.name}")


async def act_reload(session: AMISession, msg: Message) -> None:
    hook = session.server.reload_hook
    if hook is not None:
        hook()
    session.respond(msg, "Success", ("Message", "Module Reloaded."))
