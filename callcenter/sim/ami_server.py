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

What ``callcenter doctor`` asks is answered in the shapes of ``tests/fixtures/asterisk-doctor``:
``ListCommands`` (the actions served here, with Asterisk 22's synopsis and write classes),
``CoreSettings``, ``ModuleCheck`` (against ``modules``), ``Getvar ASTDATADIR`` (``data_dir``) and
``PJSIPShowEndpoints``/``PJSIPShowContacts``/``PJSIPShowEndpoint`` from the engine's endpoints
(a phone registered or not, the trunks reachable; ``EndpointDetail`` carries a few of Asterisk's
~150 headers). With ``write_classes`` set, an action none of whose classes the user has is refused
with ``Permission denied``, as Asterisk does; ``None`` (the default) allows every action. An
Originate of an application that can reach a shell (``System``, ``Exec``, ``MixMonitor``, ...) or
of data naming a dangerous function (``SHELL``, ``EVAL``, ...) needs write class ``system``
(Asterisk 22's ``is_originate_app_permitted``). ``users`` adds more logins, each with its own
write classes (``callcenter apply``'s user).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from callcenter.asterisk.ami import AMIParser, Message, encode, encode_greeting
from callcenter.errors import AMIProtocolError, UnsafeValueError
from callcenter.sim.apps import start_mixmonitor
from callcenter.sim.channel import UNKNOWN, Channel, duration_hms
from callcenter.sim.expr import UnknownFunctionError
from callcenter.sim.pbx import PBX, Endpoint, OriginateRefused, OriginateRequest, SimulatorError, valid_digit
from callcenter.sim.sounds import SYSTEM_SOUND_DIRS

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]

READ_CHUNK: Final = 1 << 16
_EVENT_NAME: Final = re.compile(r"\^?Event: ?([A-Za-z0-9_]+)\$?")
AUTH_TIMEOUT: Final = 30.0
GOODBYE: Final = "Thanks for all the fish."

# The Asterisk the simulator answers as: the 22 whose traces it was measured against.
ASTERISK_VERSION: Final = "22.10.1"
AMI_VERSION: Final = "11.0.0"
# Each action served here: its name as Asterisk spells it, its synopsis and the write classes
# that unlock it (none: any logged-in user), as Asterisk 22's ListCommands gives them.
ACTION_INFO: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    name.lower(): (name, synopsis, classes)
    for name, synopsis, classes in (
        ("Atxfer", "Attended transfer.", ("call",)),
        ("Bridge", "Bridge two channels already in the PBX.", ("call",)),
        ("Command", "Execute Asterisk CLI Command.", ("command",)),
        ("CoreSettings", "Show PBX core settings (version etc).", ("system", "reporting")),
        ("CoreShowChannels", "List currently active channels.", ("system", "reporting")),
        ("Events", "Control Event Flow.", ()),
        ("Filter", "Dynamically add filters for the current manager session.", ("system",)),
        ("Getvar", "Gets a channel variable or function value.", ("call", "reporting")),
        ("Hangup", "Hangup channel.", ("system", "call")),
        ("ListCommands", "List available manager commands.", ()),
        ("Login", "Login Manager.", ()),
        ("Logoff", "Logoff Manager.", ()),
        (
            "MixMonitor",
            "Record a call and mix the audio during the recording.  Use of StopMixMonitor is required"
            " to guarantee the audio file is available for processing during dialplan execution.",
            ("system",),
        ),
        ("MixMonitorMute", "Mute / unMute a Mixmonitor recording.", ("system", "call")),
        ("ModuleCheck", "Check if module is loaded.", ("system",)),
        ("Originate", "Originate a call.", ("originate",)),
        ("Ping", "Keepalive command.", ()),
        ("PJSIPShowContacts", "Lists PJSIP Contacts.", ("system",)),
        ("PJSIPShowEndpoint", "Detail listing of an endpoint and its objects.", ("system",)),
        ("PJSIPShowEndpoints", "Lists PJSIP endpoints.", ("system",)),
        ("PlayDTMF", "Play DTMF signal on a specific channel.", ("call",)),
        ("Redirect", "Redirect (transfer) a call.", ("call",)),
        ("Reload", "Send a reload event.", ("system", "config")),
        ("Setvar", "Sets a channel variable or function value.", ("call",)),
        ("Status", "List channel status.", ("system", "call", "reporting")),
        (
            "StopMixMonitor",
            "Stop recording a call through MixMonitor, and free the recording's file handle.",
            ("system", "call"),
        ),
    )
}
# Originate of these applications (any case, anywhere in the name) or with these functions in its
# Data needs write class system, as manager.c's originate_app_permissions list them; Queue only
# with its AGI argument (agi or system).
ORIGINATE_SYSTEM_APPS: Final = (
    "agi", "dbdeltree", "exec", "externalivr", "mixmonitor", "originate", "reload", "system",
)  # fmt: skip
ORIGINATE_SYSTEM_DATA: Final = ("CURL", "DB", "EVAL", "FILE", "ODBC", "REALTIME", "SHELL")
ORIGINATE_FORBIDDEN: Final = "Originate Access Forbidden: app or data blacklisted"


def originate_app_permitted(app: str, data: str, classes: frozenset[str] | None) -> bool:
    """Whether a user with write ``classes`` (None: all) may Originate ``app(data)``."""
    if classes is None or "all" in classes:
        return True
    lowered = app.lower()
    for word in ORIGINATE_SYSTEM_APPS:
        if word in lowered:
            return "system" in classes
    if "queue" in lowered and data:
        args = data.split(",")
        if len(args) > 5 and args[5].strip():  # Queue(queue,options,URL,announce,timeout,AGI,...)
            return bool(classes & {"agi", "system"})
        return True
    for word in ORIGINATE_SYSTEM_DATA:
        if word in data:
            return "system" in classes
    return True


@dataclass(frozen=True)
class AMIUser:
    """Another manager.conf user: its secret and write classes (None: every action)."""

    secret: str
    write_classes: frozenset[str] | None = None


# The modules of a stock Asterisk 22 whose part the simulator plays (``ModuleCheck``).
MODULES: Final = frozenset(
    {
        "app_amd", "app_bridgewait", "app_chanspy", "app_dial", "app_milliwatt", "app_mixmonitor",
        "app_playback", "app_voicemail", "app_waitforsilence", "bridge_holding", "bridge_simple",
        "chan_pjsip",
        "codec_alaw", "codec_ulaw", "format_gsm", "format_pcm", "format_wav", "format_wav_gsm",
        "pbx_config", "res_agi", "res_musiconhold", "res_pjsip", "res_pjsip_authenticator_digest",
        "res_pjsip_caller_id", "res_pjsip_dtmf_info", "res_pjsip_endpoint_identifier_ip",
        "res_pjsip_endpoint_identifier_user", "res_pjsip_outbound_authenticator_digest",
        "res_pjsip_outbound_registration", "res_pjsip_registrar", "res_pjsip_sdp_rtp",
        "res_pjsip_session", "res_rtp_asterisk",
    }
)  # fmt: skip
# What ``Reload Module=`` accepts besides loaded modules that can reload: Asterisk's built-in
# subsystems (measured on Asterisk 22.10: "manager" and "features" reload, "Module Reloaded").
BUILTIN_RELOADS: Final = frozenset({"manager", "features", "logger", "http", "dnsmgr", "cdr", "cel", "acl"})
# Loaded modules that do reload (the rest answer "Module does not support reload", as app_dial,
# app_chanspy, app_mixmonitor, res_agi and chan_pjsip do on Asterisk 22.10).
RELOADABLE_MODULES: Final = frozenset(
    {"pbx_config", "res_musiconhold", "res_pjsip", "app_voicemail", "res_pjsip_outbound_registration"}
)
# Where the simulated phones and trunks are reached, for their PJSIP contacts.
CONTACT_HOST: Final = "127.0.0.1"
CONTACT_PORT: Final = 5060
REGISTRATION_SECONDS: Final = 3600


def default_data_dir() -> str:
    """Asterisk's data dir as the simulator plays it: above the first system sounds directory it
    reads core sounds from (``/usr/share/asterisk``), else Asterisk's default."""
    for sounds in SYSTEM_SOUND_DIRS:
        if sounds.is_dir():
            return str(sounds.parent.parent)
    return "/var/lib/asterisk"


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
        if not self.server.permits(name, self.username):
            self.error(msg, "Permission denied")
            return
        await handler(self, msg)

    def login(self, msg: Message) -> None:
        user = msg.get("Username", "")
        secret = msg.get("Secret", "")
        if not self.server.authenticates(user, secret):
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
        write_classes: Iterable[str] | None = None,
        users: dict[str, AMIUser] | None = None,
        modules: Iterable[str] = MODULES,
        data_dir: str | None = None,
    ) -> None:
        self.pbx = pbx
        # The user's write classes (manager.conf ``write``); None: every action allowed.
        self.write_classes = frozenset(write_classes) if write_classes is not None else None
        self.users = dict(users or {})  # more logins besides ``username``
        self.modules = frozenset(m.removesuffix(".so") for m in modules)
        self.data_dir = data_dir if data_dir is not None else default_data_dir()
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
            "listcommands": act_listcommands,
            "coresettings": act_coresettings,
            "modulecheck": act_modulecheck,
            "pjsipshowendpoints": act_pjsipshowendpoints,
            "pjsipshowendpoint": act_pjsipshowendpoint,
            "pjsipshowcontacts": act_pjsipshowcontacts,
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

    def authenticates(self, user: str | None, secret: str | None) -> bool:
        if user == self.username:
            return secret == self.secret
        other = self.users.get(user or "")
        return other is not None and secret == other.secret

    def write_of(self, user: str) -> frozenset[str] | None:
        """``user``'s write classes (None: every action)."""
        other = self.users.get(user) if user != self.username else None
        return other.write_classes if other is not None else self.write_classes

    def permits(self, action: str, user: str | None = None) -> bool:
        """Whether ``user`` (default: the main one) may send ``action`` (lower case): it needs no
        class, or one of its classes is granted (``all`` grants every class)."""
        granted = self.write_of(user if user is not None else self.username)
        if granted is None:
            return True
        classes = ACTION_INFO.get(action, ("", "", ()))[2]
        return not classes or "all" in granted or bool(granted.intersection(classes))


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
    app = (msg.get("Application") or "").strip()
    if app and not originate_app_permitted(
        app, msg.get("Data") or "", session.server.write_of(session.username)
    ):
        session.error(msg, ORIGINATE_FORBIDDEN)
        return
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
        # Asterisk's built-in directory variables come before the globals.
        found = session.server.data_dir if name == "ASTDATADIR" else pbx.dialplan.globals.get(name, "")
        session.respond(msg, "Success", ("Variable", name), ("Value", found))
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
    chan.mixmonitor.stop(pbx, announce=True)


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
    if not pbx.atxfer_code:
        session.error(msg, "No attended transfer feature code found")
        return
    if not pbx.dialplan.exists(context, exten, 1):
        session.error(msg, "Extension does not exist.")
        return
    if chan.bridge is None:
        session.error(msg, "Channel is not in a bridge")
        return
    session.respond(msg, "Success", ("Message", "Atxfer successfully queued"))
    # Asterisk types the code and then the Exten as DTMF on the channel: the bridge acts on it only
    # when the channel may transfer (Bridge() option T), and reads no target from a non-digit
    # Exten ("s": "Dialed no digits"); either way the call stays as it was.
    if chan.extra.get("may_transfer") and all(valid_digit(d) for d in exten):
        pbx.spawn(pbx.attended_transfer(chan, context, exten), name=f"atxfer {chan.name}")


async def act_reload(session: AMISession, msg: Message) -> None:
    """As Asterisk 22: a module that is not loaded is an error ("No such module"), as is one
    that cannot reload; the whole configuration (no ``Module``) or a reloadable one reloads."""
    module = (msg.get("Module") or "").strip().removesuffix(".so")
    if module and module not in BUILTIN_RELOADS:
        if module not in session.server.modules:
            session.error(msg, "No such module")
            return
        if module not in RELOADABLE_MODULES:
            session.error(msg, "Module does not support reload")
            return
    hook = session.server.reload_hook
    if hook is not None:
        hook()
    session.respond(msg, "Success", ("Message", "Module Reloaded"))


# ---------------------------------------------------------------- what `callcenter doctor` asks
def _event(msg: Message, name: str, *headers: tuple[str, str]) -> Headers:
    """An event answering ``msg``: ``Event``, then ``ActionID`` (if any), then ``headers``."""
    out: Headers = [("Event", name)]
    aid = msg.get("ActionID")
    if aid is not None:
        out.append(("ActionID", aid))
    out.extend(headers)
    return out


def _complete(session: AMISession, msg: Message, name: str, items: int) -> None:
    session.send(_event(msg, name, ("EventList", "Complete"), ("ListItems", str(items))))


async def act_listcommands(session: AMISession, msg: Message) -> None:
    listed = sorted(
        (
            info
            for key, info in ACTION_INFO.items()
            if key in session.server.actions or key in ("login", "logoff")
        ),
        key=lambda info: info[0].lower(),
    )
    session.respond(
        msg,
        "Success",
        *[
            (name, f"{synopsis}  (Priv: {','.join((*classes, 'all')) if classes else '<none>'})")
            for name, synopsis, classes in listed
            if session.server.permits(name.lower(), session.username)
        ],
    )


async def act_coresettings(session: AMISession, msg: Message) -> None:
    session.respond(
        msg,
        "Success",
        ("AMIversion", AMI_VERSION),
        ("AsteriskVersion", ASTERISK_VERSION),
        ("SystemName", ""),
        ("CoreMaxCalls", "0"),
        ("CoreMaxLoadAvg", "0.000000"),
        ("CoreRunUser", ""),
        ("CoreRunGroup", ""),
        ("CoreMaxFilehandles", "0"),
        ("CoreRealTimeEnabled", "No"),
        ("CoreCDRenabled", "No"),
        ("CoreHTTPenabled", "No"),
        ("SoundsSearchCustomDir", "No"),
    )


async def act_modulecheck(session: AMISession, msg: Message) -> None:
    module = (msg.get("Module") or "").strip().removesuffix(".so")
    if module not in session.server.modules:
        session.error(msg, "Module not loaded")
        return
    session.respond(msg, "Success", ("Version", ""))


@dataclass(frozen=True, slots=True)
class _SipEndpoint:
    name: str
    trunk: bool
    registered: bool
    channels: int

    @property
    def uri(self) -> str:
        if self.trunk:
            return f"sip:{CONTACT_HOST}:{CONTACT_PORT}"
        return f"sip:{self.name}@{CONTACT_HOST}:{CONTACT_PORT}"

    @property
    def contact_hash(self) -> str:
        return hashlib.md5(self.uri.encode(), usedforsecurity=False).hexdigest()

    @property
    def device_state(self) -> str:
        if not self.registered:
            return "Unavailable"
        return "In use" if self.channels else "Not in use"


def _sip_endpoints(pbx: PBX) -> dict[str, _SipEndpoint]:
    """The engine's PJSIP endpoints by name: the phones and trunks it was given, and the trunk its
    callers arrive on (any endpoint that is also the default ``*`` is a trunk)."""
    default: Endpoint | None = pbx.endpoints.get("*")
    known: dict[str, tuple[bool, bool]] = {pbx.trunk_endpoint: (True, True)}
    for name, endpoint in pbx.endpoints.items():
        if name != "*":
            known[name] = (endpoint is default, endpoint.registered)
    active: dict[str, int] = {}
    for chan in pbx.channels.values():
        if chan.endpoint and not chan.gone:
            active[chan.endpoint] = active.get(chan.endpoint, 0) + 1
    return {
        name: _SipEndpoint(name, trunk, registered, active.get(name, 0))
        for name, (trunk, registered) in sorted(known.items())
    }


async def act_pjsipshowendpoints(session: AMISession, msg: Message) -> None:
    endpoints = _sip_endpoints(session.server.pbx)
    if not endpoints:
        session.error(msg, "No endpoints found")
        return
    session.respond(
        msg,
        "Success",
        ("EventList", "start"),
        ("Message", "A listing of Endpoints follows, presented as EndpointList events"),
    )
    for e in endpoints.values():
        session.send(
            _event(
                msg,
                "EndpointList",
                ("ObjectType", "endpoint"),
                ("ObjectName", e.name),
                ("Transport", ""),
                ("Aor", e.name),
                ("Auths", ""),
                ("OutboundAuths", ""),
                ("Contacts", f"{e.name}/{e.uri}," if e.registered else ""),
                ("DeviceState", e.device_state),
                ("ActiveChannels", str(e.channels)),
            )
        )
    _complete(session, msg, "EndpointListComplete", len(endpoints))


async def act_pjsipshowcontacts(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    # A trunk's contact is permanent (from pjsip.conf): Asterisk lists only registered ones.
    phones = [e for e in _sip_endpoints(pbx).values() if e.registered and not e.trunk]
    if not phones:
        session.error(msg, "No Contacts found")
        return
    session.respond(
        msg,
        "Success",
        ("EventList", "start"),
        ("Message", "A listing of Contacts follows, presented as ContactList events"),
    )
    expires = str(int(pbx.clock.now()) + REGISTRATION_SECONDS)
    for e in phones:
        session.send(
            _event(
                msg,
                "ContactList",
                ("ObjectType", "contact"),
                ("ObjectName", f"{e.name};@{e.contact_hash}"),
                ("ViaAddr", CONTACT_HOST),
                ("QualifyTimeout", "3.000000"),
                ("Qualify2xxOnly", "false"),
                ("CallId", f"{e.name}@{CONTACT_HOST}"),
                ("RegServer", ""),
                ("PruneOnBoot", "no"),
                ("Path", ""),
                ("Endpoint", e.name),
                ("ViaPort", str(CONTACT_PORT)),
                ("AuthenticateQualify", "no"),
                ("Uri", e.uri),
                ("QualifyFrequency", "30"),
                ("UserAgent", "callcenter simulated phone"),
                ("ExpirationTime", expires),
                ("OutboundProxy", ""),
                ("Status", "Reachable"),
                ("RoundtripUsec", "0"),
            )
        )
    _complete(session, msg, "ContactListComplete", len(phones))


async def act_pjsipshowendpoint(session: AMISession, msg: Message) -> None:
    pbx = session.server.pbx
    name = (msg.get("Endpoint") or "").strip()
    if not name:
        session.error(msg, "PJSIPShowEndpoint requires an endpoint name")
        return
    if name.lower().startswith("pjsip/"):
        name = name[6:]
    e = _sip_endpoints(pbx).get(name)
    if e is None:
        session.error(msg, f"Unable to retrieve endpoint {name}")
        return
    session.respond(
        msg,
        "Success",
        ("EventList", "start"),
        ("Message", "Following are Events for each object associated with the Endpoint"),
    )
    session.send(
        _event(
            msg,
            "EndpointDetail",
            ("ObjectType", "endpoint"),
            ("ObjectName", e.name),
            ("Aors", e.name),
            ("DeviceState", e.device_state),
            ("ActiveChannels", str(e.channels)),
        )
    )
    items = 1
    if e.registered:
        expires = "0" if e.trunk else str(int(pbx.clock.now()) + REGISTRATION_SECONDS)
        via = (
            ()
            if e.trunk
            else (("ViaAddress", f"{CONTACT_HOST}:{CONTACT_PORT}"), ("CallID", f"{e.name}@{CONTACT_HOST}"))
        )
        session.send(
            _event(
                msg,
                "ContactStatusDetail",
                ("AOR", e.name),
                ("URI", e.uri),
                ("UserAgent", "" if e.trunk else "callcenter simulated phone"),
                ("RegExpire", expires),
                *via,
                ("Status", "Reachable"),
                ("RoundtripUsec", "0"),
                ("EndpointName", e.name),
                ("ID", f"{e.name}{'@@' if e.trunk else ';@'}{e.contact_hash}"),
                ("AuthenticateQualify", "0"),
                ("OutboundProxy", ""),
                ("Path", ""),
                ("QualifyFrequency", "0" if e.trunk else "30"),
                ("QualifyTimeout", "3.000"),
                ("Qualify2xxOnly", "0"),
            )
        )
        items += 1
    _complete(session, msg, "EndpointDetailComplete", items)
