"""Shell: supervisors listen, whisper and barge on agents' calls (ChanSpy), from a phone or the API.

A supervisor dials a monitor code and an agent id (``*811001``: listen to agent 1001). The rendered
dialplan runs the FastAGI ``spy`` route (:meth:`MonitorService.handle`), then ``cc-spy`` runs
``ChanSpy(${CC_SPY_TARGET},${CC_SPY_OPTIONS})`` if the route set the target. The route answers the
call first if the dialplan has not, then validates first and acts last: a configured supervisor,
not locked out, the right PIN (asked through the IVR engine, counted by
:class:`~callcenter.acd.pin.PinGuard`: no digits at all, or a failed command of ours, is no wrong
PIN; nothing about the agent is revealed before it), an agent in the supervisor's queues
(``rules.in_scope``); then the options and, last, the target (the dialplan spies as soon as it is
set). Every attempt and session is a ``MonitorSession`` record with its outcome (``ok``,
``bad_pin``, ``locked_out``, ``out_of_scope``...).

With the AMI attached (:meth:`attach`) the service follows each session: ``ChanSpyStart`` /
``ChanSpyStop`` / the supervisor's ``Hangup``, and ``DTMFEnd`` 4/5/6 on the supervisor's channel as
the mode switch (ChanSpy changes mode on those keys and Asterisk emits no event for it).

PCI pause: no action reaches ChanSpy's audiohook (``MixMonitorMute`` mutes only MixMonitor), so
while a call's recording is paused its supervisors are redirected to ``cc-hold`` and brought back
to ``cc-spy`` in their current mode afterwards. The call is found from the ``MixMonitorMute`` on the
caller's channel through the bridges and Local channel halves that link it to the spied agent
(:meth:`MonitorService.linked`), or by call id (:meth:`MonitorService.pci_changed`).

The API (``supervision.http``) does the same checks, then ``start`` rings the supervisor's phone
into ``cc-spy``, ``set_mode`` restarts ChanSpy with new options, ``stop`` hangs up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from callcenter.acd.pin import PinCheck, PinGuard
from callcenter.asterisk import events, names
from callcenter.clock import Clock
from callcenter.config import model as m
from callcenter.errors import AsteriskError, CallcenterError, DomainError
from callcenter.inbound import ivr as core
from callcenter.inbound.service import AgiChannel, ChannelGone, IvrSettings
from callcenter.ports import AgentCalls, AGISession, AMILink, RecordSink
from callcenter.reporting.records import CallEvent, EventKind, MonitorSession
from callcenter.supervision.rules import (
    AGENT_FLOW,
    MODE_FLOW,
    MODE_KEYS,
    MODES,
    PIN_FLOW,
    agent_from_extension,
    endpoint_of,
    engine_config,
    in_scope,
    local_peer,
    pin_sources,
    spy_target,
)

log = logging.getLogger("callcenter.supervision.service")

PENDING = "pending:"  # an API session's channel before Asterisk names the supervisor's leg


# ============================================================================ seams
@dataclass(frozen=True)
class MonitorSettings:
    """``max_pin_failures`` and ``lockout_seconds``: None takes the config's ``security``."""

    max_pin_failures: int | None = None
    lockout_seconds: float | None = None
    pin_attempts: int = 3  # per call
    pin_timeout: float = 6.0
    wait_for_call: bool = True  # an idle agent: wait for the next call (else hang up)
    action_timeout: float = 5.0


@dataclass
class SpySession:
    """One supervisor's monitoring of one agent (the spy channel's life)."""

    session_id: str
    supervisor_id: str
    agent_id: str
    channel: str  # the supervisor's channel (the spyer)
    mode: str
    created_at: float
    call_id: str | None = None
    started_at: float | None = None
    spying: bool = False
    pci_hold: bool = False
    restarting: bool = False  # taken out of ChanSpy by us to change the mode (API)
    uniqueid: str | None = None  # an API session's supervisor leg, before its name is known
    spyee: str | None = None  # the agent's channel ChanSpy attached to
    modes: list[str] = field(default_factory=list)

    def view(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "supervisor_id": self.supervisor_id,
            "agent_id": self.agent_id,
            "call_id": self.call_id,
            "mode": self.mode,
            "modes": list(self.modes),
            "spying": self.spying,
            "pci_hold": self.pci_hold,
            "channel": self.channel,
            "started_at": self.started_at,
        }


# ============================================================================ the service
class MonitorService:
    """The ``spy`` FastAGI route and the follow-up of monitoring sessions over AMI."""

    def __init__(
        self,
        config: m.Config,
        *,
        writer: RecordSink,
        clock: Clock,
        acd: AgentCalls | None = None,
        ami: AMILink | None = None,
        settings: MonitorSettings | None = None,
        ivr_settings: IvrSettings | None = None,
        new_session_id: Callable[[], str] | None = None,
        endpoint_of_channel: Callable[[str], str | None] = endpoint_of,
        target_of: Callable[[m.Agent], str] = spy_target,
    ) -> None:
        """``endpoint_of_channel`` (which endpoint a calling channel is: PJSIP names by default)
        and ``target_of`` (ChanSpy's prefix for an agent's channels) are seams for sites whose
        phones are not PJSIP, and for tests on Local channels."""
        self.endpoint_of_channel = endpoint_of_channel
        self.target_of = target_of
        self.settings = settings or MonitorSettings()
        self.ivr_settings = ivr_settings or IvrSettings()
        self.writer = writer
        self.clock = clock
        self.acd = acd
        self.ami = ami
        self.new_session_id = new_session_id or (lambda: "spy-" + uuid.uuid4().hex)
        self.guard = PinGuard()
        self.sessions: dict[str, SpySession] = {}  # by supervisor channel
        self.bridge_of: dict[str, str] = {}  # channel -> the bridge it is in (BridgeEnter/Leave)
        self.bridge_members: dict[str, set[str]] = {}  # bridge -> its channels
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self.reload(config)

    def reload(self, config: m.Config) -> None:
        self.config = config
        s = self.settings
        self.guard.max_failures = (
            config.security.pin_attempts if s.max_pin_failures is None else s.max_pin_failures
        )
        self.guard.lockout_seconds = (
            config.security.lockout_seconds if s.lockout_seconds is None else s.lockout_seconds
        )
        self.engine = core.Interpreter(engine_config(config, pin_timeout=self.settings.pin_timeout))

    # ------------------------------------------------------------------ logging
    def _record(
        self,
        s: SpySession,
        *,
        outcome: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
    ) -> None:
        self.writer.submit(
            MonitorSession(
                session_id=s.session_id,
                at=self.clock.now(),
                supervisor_id=s.supervisor_id,
                agent_id=s.agent_id,
                call_id=s.call_id,
                mode=s.mode,
                outcome=outcome,
                started_at=started_at,
                ended_at=ended_at,
            )
        )

    def _call_event(self, s: SpySession, kind: EventKind, **detail: str | None) -> None:
        if s.call_id is None:
            return
        self.writer.submit(
            CallEvent(
                call_id=s.call_id,
                at=self.clock.now(),
                kind=kind,
                agent_id=s.agent_id,
                detail={
                    "supervisor_id": s.supervisor_id,
                    "session_id": s.session_id,
                    "mode": s.mode,
                    **detail,
                },
            )
        )

    # ------------------------------------------------------------------ the spy route
    async def handle(self, session: AGISession) -> None:
        """The ``spy`` route: validate, then set CC_SPY_OPTIONS / CC_SPY_TARGET (see the module
        docstring). Never raises for what the caller or Asterisk does."""
        io = AgiChannel(session, self.ivr_settings)
        attempt = _Attempt(self, io)
        try:
            await attempt.run()
        except ChannelGone:
            attempt.log("ended", note="supervisor hung up")
            if attempt.spy is not None and not attempt.spy.spying:
                self._end(attempt.spy)
        except (CallcenterError, TimeoutError, OSError, core.IvrStateError) as exc:
            log.warning("spy attempt on %s failed: %r", io.channel, exc)
            attempt.log("failed", note=type(exc).__name__)

    # ------------------------------------------------------------------ AMI follow-up
    def attach(self) -> Callable[[], None]:
        """Subscribe to the AMI events that follow the sessions; returns the detach function."""
        if self.ami is None:
            return lambda: None
        ami = self.ami
        self._unsubscribe += [
            ami.on(events.ChanSpyStart, self._on_spy_start),
            ami.on(events.ChanSpyStop, self._on_spy_stop),
            ami.on(events.DTMFEnd, self._on_dtmf),
            ami.on(events.Hangup, self._on_hangup),
            ami.on(events.OriginateResponse, self._on_originate),
            ami.on(events.BridgeEnter, self._on_bridge_enter),
            ami.on(events.BridgeLeave, self._on_bridge_leave),
            ami.on(events.MixMonitorMute, self._on_mute),
            ami.on(events.Newchannel, self._on_newchannel),
        ]

        def detach() -> None:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._unsubscribe.clear()

        return detach

    def _session_of(self, spyer: events.ChannelSnapshot) -> SpySession | None:
        channel = spyer.channel
        s = self.sessions.get(channel)
        if s is None:  # an API session: known by the Uniqueid we gave its leg
            uniqueid = spyer.uniqueid
            s = next((x for x in self.sessions.values() if uniqueid and x.uniqueid == uniqueid), None)
            if s is not None and channel:
                self.sessions.pop(s.channel, None)
                s.channel = channel
                self.sessions[channel] = s
        return s

    def close(self) -> None:
        """The controller stops: the sessions still open are logged as ended (with their end
        time); Asterisk's spies go on without it."""
        for s in list(self.sessions.values()):
            self._end(s, outcome="controller_stopped")

    def _on_newchannel(self, ev: events.Newchannel) -> None:
        """An API session's supervisor leg exists: its channel name is known from now on (it can
        be hung up while it still rings)."""
        if any(x.uniqueid and x.uniqueid == ev.channel.uniqueid for x in self.sessions.values()):
            self._session_of(ev.channel)

    def _on_spy_start(self, ev: events.ChanSpyStart) -> None:
        s = self._session_of(ev.spyer)
        if s is None:
            return
        now = self.clock.now()
        s.pci_hold = s.restarting = False
        if self.acd is not None:
            s.call_id = self.acd.call_of_agent(s.agent_id) or s.call_id
        first = s.started_at is None
        s.spying = True
        spyee = ev.spyee.channel if ev.spyee is not None else None
        s.spyee = spyee or s.spyee
        if first:
            s.started_at = now
            self._record(s, outcome="ok", started_at=now)
            self._call_event(s, EventKind.MONITOR_START, spyee=spyee)
        else:  # back in ChanSpy after a PCI pause or a mode change from the API
            self._record(s)

    def _on_dtmf(self, ev: events.DTMFEnd) -> None:
        s = self.sessions.get(ev.channel.channel)
        if s is None or not s.spying or (ev.direction or "Received") != "Received":
            return
        mode = MODE_KEYS.get(ev.digit)
        if mode is None or mode == s.mode:
            return
        s.mode = mode
        s.modes.append(mode)
        self._record(s)
        self._call_event(s, EventKind.MONITOR_MODE)

    def _on_spy_stop(self, ev: events.ChanSpyStop) -> None:
        s = self._session_of(ev.spyer)
        if s is None:
            return
        s.spying = False
        if s.pci_hold or s.restarting:  # we took it out of ChanSpy ourselves; it comes back
            return
        self._end(s)

    def _on_hangup(self, ev: events.Hangup) -> None:
        channel = ev.channel.channel
        self._leave_bridge(channel)
        s = self.sessions.get(channel)
        if s is None:
            uniqueid = ev.channel.uniqueid
            s = next((x for x in self.sessions.values() if uniqueid and x.uniqueid == uniqueid), None)
        if s is not None:
            self._end(s)
            return
        # the spied call ended while its supervisors were held off it (PCI): ChanSpy is not there
        # to end their sessions, so hang them up
        held = [x for x in self.sessions.values() if x.spyee == channel and (x.pci_hold or x.restarting)]
        if held and self.ami is not None:
            task = asyncio.get_running_loop().create_task(self._hang_up_all(held))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hang_up_all(self, sessions: list[SpySession]) -> None:
        for s in sessions:
            try:
                if self.ami is not None:
                    await self.ami.send_action(
                        names.ACTION_HANGUP, {"Channel": s.channel}, timeout=self.settings.action_timeout
                    )
            except CallcenterError as exc:
                log.warning("spy session %s: hang-up failed: %r", s.session_id, exc)
            self._end(s)

    def _on_originate(self, ev: events.OriginateResponse) -> None:
        if ev.succeeded:
            return
        uniqueid = ev.uniqueid
        s = next((x for x in self.sessions.values() if uniqueid and x.uniqueid == uniqueid), None)
        if s is not None:  # the supervisor's phone did not answer (or is not registered)
            self._end(s, outcome="no_answer")

    def _end(self, s: SpySession, *, outcome: str = "ended") -> None:
        if self.sessions.pop(s.channel, None) is None:
            return
        self._record(s, outcome=outcome, ended_at=self.clock.now())
        if s.started_at is not None:
            self._call_event(s, EventKind.MONITOR_END, modes=",".join(s.modes))

    # ------------------------------------------------------------------ the same actions from the API
    def snapshot(self) -> list[dict[str, object]]:
        """The sessions in progress (for the API and the wallboard)."""
        return [s.view() for s in self.sessions.values()]

    def _check_api(
        self, supervisor_id: str, agent_id: str, mode: str, pin: str, source: str
    ) -> tuple[m.Supervisor, m.Agent]:
        """Validate an API request exactly as the feature code does (PIN counted and locked out
        per ``source``, the API client; scope); refusals are ``DomainError`` with a stable code,
        and logged."""
        cfg, now = self.config, self.clock.now()
        sup = cfg.supervisors.get(supervisor_id)
        agent = cfg.agents.get(agent_id)

        def refuse(code: str, message: str) -> DomainError:
            self.writer.submit(
                MonitorSession(
                    session_id=self.new_session_id(), at=now, supervisor_id=supervisor_id, agent_id=agent_id,
                    mode=mode if mode in MODES else None, outcome=code, started_at=now, ended_at=now,
                )
            )  # fmt: skip
            return DomainError(message, code=code)

        if sup is None:
            raise refuse("unauthorised", f"no supervisor {supervisor_id!r}")
        if not source:
            raise DomainError("a PIN needs where it was typed (the API client)", code="bad_request")
        checked = self.guard.check(sup.id, pin, sup.pin.value, now, sources=(source,))
        if checked is PinCheck.LOCKED:
            raise refuse("locked_out", f"supervisor {sup.id} is locked out of monitoring")
        if checked is PinCheck.LOCKED_NOW:
            log.warning("supervisor %s locked out of monitoring from API client %r", sup.id, source)
            raise refuse("locked_out", f"supervisor {sup.id} is now locked out of monitoring")
        if checked is not PinCheck.OK:  # wrong, or none at all (not counted)
            raise refuse("bad_pin", "wrong PIN" if checked is PinCheck.WRONG else "no PIN given")
        if agent is None:
            raise refuse("unknown_agent", f"no agent {agent_id!r}")
        if mode not in MODES:
            raise refuse("bad_mode", f"mode must be one of {', '.join(MODES)}")
        if not in_scope(cfg, sup, agent):
            raise refuse("out_of_scope", f"agent {agent.id} is not in supervisor {sup.id}'s queues")
        return sup, agent

    async def start(
        self,
        supervisor_id: str,
        agent_id: str,
        mode: str,
        *,
        pin: str,
        source: str,
        ring_timeout: float = 30.0,
    ) -> SpySession:
        """Ring the supervisor's phone; when answered it spies on the agent in ``mode`` (AMI
        ``Originate`` into ``cc-spy`` with CC_SPY_TARGET / CC_SPY_OPTIONS set). ``source`` names
        the API client (``callcenter.acd.pin.api_source``: its user and address; required):
        wrong PINs lock that client out, not the owner."""
        if self.ami is None:
            raise DomainError("monitoring from the API needs the AMI link", code="no_ami")
        sup, agent = self._check_api(supervisor_id, agent_id, mode, pin, source)
        now = self.clock.now()
        session_id = self.new_session_id()
        uniqueid = f"{session_id}-sup"
        s = SpySession(
            session_id=session_id,
            supervisor_id=sup.id,
            agent_id=agent.id,
            channel=f"{PENDING}{uniqueid}",
            mode=mode,
            created_at=now,
            call_id=self.acd.call_of_agent(agent.id) if self.acd is not None else None,
            uniqueid=uniqueid,
            modes=[mode],
        )
        self.sessions[s.channel] = s
        self._record(s, outcome="ringing", started_at=now)
        try:
            await self.ami.send_action(
                names.ACTION_ORIGINATE,
                [
                    ("Channel", f"PJSIP/{sup.endpoint}"),
                    ("Context", names.CTX_SPY),
                    ("Exten", "s"),
                    ("Priority", "1"),
                    ("ChannelId", uniqueid),
                    ("Timeout", str(int(ring_timeout * 1000))),
                    ("CallerID", f"Monitor {agent.id} <{agent.id}>"),
                    ("Variable", f"{names.VAR_SPY_TARGET}={self.target_of(agent)}"),
                    ("Variable", f"{names.VAR_SPY_OPTIONS}={m.SPY_OPTIONS[mode]}"),
                    ("Async", "true"),
                ],
                timeout=self.settings.action_timeout,
            )
        except AsteriskError:
            self._end(s)
            raise
        return s

    async def set_mode(self, session_id: str, mode: str) -> SpySession:
        """Change a session's mode from the API: ChanSpy restarts with the new options (its own
        DTMF 4/5/6 switch is the supervisor's keypad)."""
        s = self._by_id(session_id)
        if mode not in MODES:
            raise DomainError(f"mode must be one of {', '.join(MODES)}", code="bad_mode")
        if self.ami is None or mode == s.mode:
            return s
        if s.started_at is None:
            raise DomainError(
                f"session {session_id} has not started: the supervisor's phone still rings",
                code="not_started",
            )
        # Asterisk first; the change is logged once it took it.
        await self.ami.send_action(
            names.ACTION_SETVAR,
            {"Channel": s.channel, "Variable": names.VAR_SPY_OPTIONS, "Value": m.SPY_OPTIONS[mode]},
            timeout=self.settings.action_timeout,
        )
        if s.spying and not s.pci_hold:
            s.restarting = True
            try:
                await self._redirect(s, names.CTX_SPY)
            except CallcenterError:
                s.restarting = False
                raise
        s.mode = mode
        s.modes.append(mode)
        self._record(s)
        self._call_event(s, EventKind.MONITOR_MODE, note="api")
        return s

    async def stop(self, session_id: str) -> None:
        """End a session from the API (hang up the supervisor's leg)."""
        s = self._by_id(session_id)
        if s.channel.startswith(PENDING):
            raise DomainError(
                f"session {session_id}: the supervisor's phone is not reached yet; try again",
                code="not_started",
            )
        if self.ami is not None:
            await self.ami.send_action(
                names.ACTION_HANGUP, {"Channel": s.channel}, timeout=self.settings.action_timeout
            )
        # Asterisk hung the leg up: a ringing session was cancelled, a running one stopped.
        self._end(s, outcome="ended" if s.started_at is not None else "cancelled")

    def _by_id(self, session_id: str) -> SpySession:
        for s in self.sessions.values():
            if s.session_id == session_id:
                return s
        raise DomainError(f"no monitoring session {session_id!r}", code="unknown_session")

    # ------------------------------------------------------------------ PCI pause
    async def pci_changed(self, call_id: str, *, paused: bool) -> None:
        """Silence (``paused``) or restore what the supervisors of ``call_id`` hear."""
        await self._pci([s for s in self.sessions.values() if s.call_id == call_id], paused)

    async def _pci(self, sessions: list[SpySession], paused: bool) -> None:
        if self.ami is None:
            return
        for s in sessions:
            try:
                if paused and (s.spying or s.restarting) and not s.pci_hold:
                    s.pci_hold = True
                    await self._redirect(s, names.CTX_HOLD)
                    self._call_event(s, EventKind.PCI_PAUSE, note="supervisor taken off the call")
                elif not paused and s.pci_hold:
                    s.pci_hold, s.restarting = False, True  # a second resume is a no-op
                    await self.ami.send_action(
                        names.ACTION_SETVAR,
                        {
                            "Channel": s.channel,
                            "Variable": names.VAR_SPY_OPTIONS,
                            "Value": m.SPY_OPTIONS[s.mode],
                        },
                        timeout=self.settings.action_timeout,
                    )
                    await self._redirect(s, names.CTX_SPY)
                    self._call_event(s, EventKind.PCI_RESUME, note="supervisor back on the call")
            except CallcenterError as exc:
                log.warning(
                    "spy session %s: PCI %s failed: %r", s.session_id, "pause" if paused else "resume", exc
                )

    def _on_bridge_enter(self, ev: events.BridgeEnter) -> None:
        channel, bridge = ev.channel.channel, ev.bridge.uniqueid
        if channel and bridge:
            self._leave_bridge(channel)
            self.bridge_of[channel] = bridge
            self.bridge_members.setdefault(bridge, set()).add(channel)

    def _on_bridge_leave(self, ev: events.BridgeLeave) -> None:
        channel = ev.channel.channel
        if channel and self.bridge_of.get(channel) == ev.bridge.uniqueid:
            self._leave_bridge(channel)

    def _leave_bridge(self, channel: str) -> None:
        bridge = self.bridge_of.pop(channel, None)
        if bridge is not None:
            members = self.bridge_members.get(bridge)
            if members is not None:
                members.discard(channel)
                if not members:
                    del self.bridge_members[bridge]

    def linked(self, channel: str, *, limit: int = 32) -> set[str]:
        """The channels carrying the same call as ``channel``: through bridges and through the two
        halves of Local channels (``...;1`` / ``...;2``), e.g. caller -> bridge -> Local agent leg
        -> its other half -> the bridge with the agent's phone."""
        seen = {channel}
        frontier = [channel]
        while frontier and len(seen) < limit:
            current = frontier.pop()
            bridge = self.bridge_of.get(current)
            nexts = list(self.bridge_members.get(bridge, ())) if bridge is not None else []
            peer = local_peer(current)
            if peer is not None:
                nexts.append(peer)
            for n in nexts:
                if n not in seen:
                    seen.add(n)
                    frontier.append(n)
        return seen

    def _on_mute(self, ev: events.MixMonitorMute) -> None:
        """``MixMonitorMute`` (the ACD's PCI pause of a recording): the supervisors spying on that
        call leave or rejoin it. The recording is on the caller's channel, the spy on the agent's:
        they are linked through the bridge (and Local channel halves)."""
        channel, paused = ev.channel.channel, ev.state
        spying = [s for s in self.sessions.values() if s.spyee is not None]
        if not spying:
            return
        linked = self.linked(channel)
        sessions = [s for s in spying if s.spyee in linked]
        if sessions:
            task = asyncio.get_running_loop().create_task(self._pci(sessions, paused))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the PCI changes under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _redirect(self, s: SpySession, context: str) -> None:
        if self.ami is None:  # pragma: no cover - checked by the caller
            return
        await self.ami.send_action(
            names.ACTION_REDIRECT,
            {"Channel": s.channel, "Context": context, "Exten": "s", "Priority": "1"},
            timeout=self.settings.action_timeout,
        )


class _Attempt:
    """One call to a monitor code, from the first check to CC_SPY_TARGET."""

    def __init__(self, service: MonitorService, io: AgiChannel) -> None:
        self.svc = service
        self.io = io
        self.session_id = service.new_session_id()
        self.supervisor: m.Supervisor | None = None
        self.agent_id: str | None = None
        self.mode: str | None = None
        self.logged = False
        self.spy: SpySession | None = None

    def log(self, outcome: str, *, note: str | None = None) -> None:
        if self.logged:
            return
        self.logged = True
        now = self.svc.clock.now()
        sup = self.supervisor.id if self.supervisor else None
        log.info(
            "spy attempt %s: supervisor=%s channel=%s agent=%s mode=%s outcome=%s (%s)",
            self.session_id, sup, self.io.channel, self.agent_id, self.mode, outcome, note or "-",
        )  # fmt: skip
        self.svc.writer.submit(
            MonitorSession(
                session_id=self.session_id,
                at=now,
                supervisor_id=sup,
                agent_id=self.agent_id,
                mode=self.mode,
                outcome=outcome,
                started_at=now,
                ended_at=now,
            )
        )

    async def say(self, prompt: str) -> None:
        await self.io.play(
            core.Play((self.svc.engine.sound(prompt, self.svc.engine.center.default_language),))
        )

    async def run_engine(self, flow: str) -> core.Exit:
        engine = self.svc.engine
        call = core.CallInfo(self.session_id, self.io.env.get("agi_callerid", ""), "", None)
        state, effects = engine.start(call, self.svc.clock.now(), flow=flow)
        state = await self.io.run_flow(engine, state, effects, self.svc.clock)
        if state.exit is None or state.exit.kind is core.ExitKind.ABANDONED:
            raise ChannelGone
        return state.exit

    async def answer(self) -> None:
        """Answer the supervisor's call unless the dialplan did (prompts and DTMF need it up)."""
        status = await self.io.cmd("CHANNEL STATUS")
        if status.result_int == names.AST_STATE_UP:
            return
        log.warning(
            "spy: channel %s was not answered by the dialplan (state %s): answering",
            self.io.channel,
            status.result,
        )
        await self.io.cmd("ANSWER")

    async def run(self) -> None:
        svc, cfg = self.svc, self.svc.config
        await self.answer()
        now = svc.clock.now()
        endpoint = svc.endpoint_of_channel(self.io.channel)
        self.supervisor = cfg.supervisor_by_endpoint(endpoint) if endpoint else None
        mode = self.io.env.get("agi_arg_1", "").strip()
        self.mode = mode if mode in MODES else None
        if self.supervisor is None:
            await self.say("spy-not-allowed")
            return self.log("unauthorised", note=f"endpoint {endpoint!r} is not a supervisor")
        sup = self.supervisor
        sources = pin_sources(endpoint or "", self.io.env.get("agi_callerid", ""))
        if svc.guard.locked_from(sup.id, now, sources) is not None:
            await self.say("locked-out")
            return self.log("locked_out")
        # the agent: from the dialled digits, or asked
        code = getattr(cfg.feature_codes, f"supervisor_{mode}", None) if mode in (*MODES, "ask") else None
        extension = self.io.env.get("agi_extension", "")
        agent_id = agent_from_extension(extension, code) if isinstance(code, str) else None
        if agent_id == "":
            exit_ = await self.run_engine(AGENT_FLOW)
            agent_id = exit_.data.get("agent") if exit_.node == "done" else None
        self.agent_id = agent_id
        # the PIN, over the IVR engine (before anything about the agent is revealed)
        for _ in range(svc.settings.pin_attempts):
            exit_ = await self.run_engine(PIN_FLOW)
            typed = exit_.data.get("pin", "") if exit_.node == "done" else ""
            checked = svc.guard.check(sup.id, typed, sup.pin.value, svc.clock.now(), sources=sources)
            if checked is PinCheck.OK:
                break
            if checked is PinCheck.EMPTY:  # no digits (a timeout, a phone sending none): not counted
                await self.say("no-input")
                continue
            if checked is not PinCheck.WRONG:  # locked by this PIN (or meanwhile by another call)
                log.warning(
                    "supervisor %s locked out of monitoring from %s after wrong PINs", sup.id, sources
                )
                await self.say("locked-out")
                return self.log("locked_out", note="too many wrong PINs")
            await self.say("pin-invalid")
        else:
            return self.log("bad_pin")
        agent = cfg.agents.get(agent_id) if agent_id else None
        if agent is None:
            await self.say("spy-not-allowed")
            return self.log("unknown_agent", note=f"dialled {extension!r}")
        if not in_scope(cfg, sup, agent):
            await self.say("spy-not-allowed")
            return self.log("out_of_scope", note=f"agent {agent.id} serves {list(cfg.queues_of(agent))}")
        if mode == "ask":
            exit_ = await self.run_engine(MODE_FLOW)
            if exit_.node not in MODES:
                return self.log("no_mode")
            self.mode = exit_.node
        if self.mode is None:
            return self.log("unknown_mode", note=f"AGI argument {mode!r}")
        call_id = svc.acd.call_of_agent(agent.id) if svc.acd is not None else None
        if call_id is None and svc.acd is not None:
            await self.say("spy-agent-idle")
            if not svc.settings.wait_for_call:
                return self.log("agent_idle")
        await self.io.cmd("SET VARIABLE", names.VAR_SPY_OPTIONS, m.SPY_OPTIONS[self.mode])
        spy = SpySession(
            session_id=self.session_id,
            supervisor_id=sup.id,
            agent_id=agent.id,
            channel=self.io.channel,
            mode=self.mode,
            created_at=svc.clock.now(),
            call_id=call_id,
            modes=[self.mode],
        )
        svc.sessions[spy.channel] = spy
        self.spy = spy
        self.logged = True
        svc._record(spy, outcome="waiting" if call_id is None else "ok", started_at=spy.created_at)
        await self.io.cmd(
            "SET VARIABLE", names.VAR_SPY_TARGET, svc.target_of(agent)
        )  # last: the dialplan spies
