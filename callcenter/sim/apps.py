"""Shell: the dialplan applications the simulated PBX runs, one coroutine each.

``APPLICATIONS[name](pbx, chan, data)`` runs the application on ``chan`` with its substituted
data and returns ``None`` (next priority), ``STOP`` (end the dialplan: hang up), a
``(context, exten, priority)`` tuple (jump), or a short status string an AGI ``EXEC`` reports
(``"-1"`` when the channel went away or was pulled into a bridge). Media is time: a prompt lasts
as long as its WAV, music on hold until interrupted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import zoneinfo
from typing import Any, Final

from callcenter.sim.channel import UNKNOWN, UP, Channel
from callcenter.sim.pbx import (
    ANSWER_WAIT,
    DIALPLAN,
    PBX,
    SPY_ATTACH,
    STOP,
    App,
    DialResult,
    MixMonitor,
    SimulatorError,
    split_args,
)
from callcenter.sim.sounds import write_recording

DIAL_VARS: Final = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)


def _gone(why: str) -> bool:
    return why in ("hangup", "goto", "pulled")


# ---------------------------------------------------------------- basic
async def app_noop(pbx: PBX, chan: Channel, data: str) -> Any:
    return None


async def app_answer(pbx: PBX, chan: Channel, data: str) -> Any:
    if chan.state != UP:
        pbx.answer(chan)
        why = await pbx.wait(chan, ANSWER_WAIT)
        if _gone(why):
            return "-1"
    return None


async def app_wait(pbx: PBX, chan: Channel, data: str) -> Any:
    try:
        seconds = float(split_args(data)[0] or 0)
    except ValueError:
        seconds = 0.0
    why = await pbx.wait(chan, max(0.0, seconds))
    return "-1" if _gone(why) else None


async def app_hangup(pbx: PBX, chan: Channel, data: str) -> Any:
    text = data.strip()
    if text.isdigit():
        chan.hangupcause = int(text)
    elif not chan.hangupcause:
        chan.hangupcause = 16
    if not chan.soft_event_sent:
        chan.soft_event_sent = True
        pbx.chan_event("SoftHangupRequest", chan, [("Cause", "16")])
    chan.soft = True
    return STOP


async def app_set(pbx: PBX, chan: Channel, data: str) -> Any:
    name, sep, value = data.partition("=")
    if not sep:
        raise SimulatorError(f"Set requires name=value, got {data!r}")
    pbx.set_variable(chan, name.strip(), value)
    return None


def _goto_target(pbx: PBX, chan: Channel, spec: str) -> tuple[str, str, int]:
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) == 1:
        ctx, exten, prio = chan.context, chan.exten, parts[0]
    elif len(parts) == 2:
        ctx, exten, prio = chan.context, parts[0], parts[1]
    else:
        ctx, exten, prio = parts[0], parts[1], parts[2]
    if prio.lstrip("-").isdigit():
        return ctx, exten, int(prio)
    label = pbx.dialplan.resolve_label(ctx, exten, prio)
    if label is None:
        raise SimulatorError(f"Goto: no label {prio!r} in {ctx},{exten}")
    return ctx, exten, label


async def app_goto(pbx: PBX, chan: Channel, data: str) -> Any:
    return _goto_target(pbx, chan, data)


def _branch(pbx: PBX, chan: Channel, cond: bool, rest: str) -> Any:
    yes, _, no = rest.partition(":")
    target = yes if cond else no
    if not target.strip():
        return None
    return _goto_target(pbx, chan, target)


async def app_gotoif(pbx: PBX, chan: Channel, data: str) -> Any:
    cond, _, rest = data.partition("?")
    return _branch(pbx, chan, cond.strip() not in ("", "0"), rest)


_DOW: Final = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_MON: Final = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def _in_range(value: int, spec: str, names: list[str] | None, base: int) -> bool:
    spec = spec.strip().lower()
    if spec in ("", "*"):
        return True
    for part in spec.split("&"):
        lo, sep, hi = part.partition("-")

        def num(s: str) -> int:
            s = s.strip()
            if names is not None and s in names:
                return names.index(s) + base
            return int(s)

        a = num(lo)
        b = num(hi) if sep else a
        if a <= b and a <= value <= b:
            return True
        if a > b and (value >= a or value <= b):
            return True
    return False


def time_matches(when: dt.datetime, times: str, weekdays: str, mdays: str, months: str) -> bool:
    """GotoIfTime's test: ``HH:MM-HH:MM``, ``mon-fri``, ``1-31``, ``jan-dec`` (``*`` any)."""
    t = times.strip()
    if t not in ("", "*"):
        ok = False
        for part in t.split("&"):
            lo, _, hi = part.partition("-")
            h1, _, m1 = lo.partition(":")
            h2, _, m2 = (hi or lo).partition(":")
            start = int(h1) * 60 + int(m1 or 0)
            end = int(h2) * 60 + int(m2 or 0)
            minute = when.hour * 60 + when.minute
            if start <= end and start <= minute <= end or start > end and (minute >= start or minute <= end):
                ok = True
        if not ok:
            return False
    return (
        _in_range(when.weekday(), weekdays, _DOW, 0)
        and _in_range(when.day, mdays, None, 0)
        and _in_range(when.month, months, _MON, 1)
    )


async def app_gotoiftime(pbx: PBX, chan: Channel, data: str) -> Any:
    spec, _, rest = data.partition("?")
    fields = [f.strip() for f in spec.split(",")]
    while len(fields) < 5:
        fields.append("*")
    tz: dt.tzinfo | None = None
    if fields[4] not in ("", "*"):
        try:
            tz = zoneinfo.ZoneInfo(fields[4])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise SimulatorError(f"GotoIfTime: unknown timezone {fields[4]!r}") from exc
    when = dt.datetime.fromtimestamp(pbx.clock.now(), tz)
    return _branch(pbx, chan, time_matches(when, *fields[:4]), rest)


# ---------------------------------------------------------------- media
async def play(pbx: PBX, chan: Channel, files: str, *, digits: str = "") -> tuple[str, str | None, float]:
    """Play ``a&b`` prompts. Returns (outcome, digit, seconds played): outcome ``done``,
    ``digit`` (interrupted by one of ``digits``), ``missing``, or a ``wait`` interruption.
    On a channel that carries no media (unanswered SIP) a prompt still takes its length, as
    Asterisk streams it, but nobody hears it: the person on the channel is not told."""
    played = 0.0
    for name in [f for f in files.split("&") if f]:
        length = pbx.sounds.duration(name)
        if length is None:
            return "missing", None, played
        if chan.media:
            pbx.notify(chan, "prompt", name)
        started = pbx.clock.monotonic()
        remaining = length
        if not digits:
            chan.dtmf.clear()  # digits that arrived before a prompt nobody listens to are lost
        while True:
            why = await pbx.wait(chan, remaining, dtmf=bool(digits))
            if why == "dtmf":
                digit = chan.dtmf.popleft()
                if digit in digits:
                    played += pbx.clock.monotonic() - started
                    return "digit", digit, played
                remaining = max(0.0, length - (pbx.clock.monotonic() - started))
                continue
            break
        if why == "timeout":
            played += length  # complete: the prompt's own length, not the clock's jitter
            continue
        played += pbx.clock.monotonic() - started
        return why, None, played
    return "done", None, played


async def app_playback(pbx: PBX, chan: Channel, data: str) -> Any:
    """Playback() answers the channel first, unless ``noanswer`` (or ``skip``: nothing is played
    on a channel not yet answered)."""
    args = split_args(data)
    options = {o.strip() for o in (args[1] if len(args) > 1 else "").split("&")}
    if chan.state != UP:
        if "skip" in options:
            pbx.varset(chan, "PLAYBACKSTATUS", "SUCCESS")
            return None
        if "noanswer" not in options:
            pbx.answer(chan)
    ends = _far_end(chan).extra.get("greeting_ends")
    if ends is not None:  # an answering machine: it records from the end of its beep
        whole = pbx.clock.now() >= float(ends)
        pbx.stats["machine_messages_whole" if whole else "machine_messages_cut"] += 1
    outcome, _, _ = await play(pbx, chan, args[0])
    if chan.gone:
        return "-1"
    pbx.varset(chan, "PLAYBACKSTATUS", "FAILED" if outcome == "missing" else "SUCCESS")
    return "-1" if _gone(outcome) else None


def _jump_for_digits(pbx: PBX, chan: Channel, typed: str) -> tuple[str, str, int] | None:
    if pbx.dialplan.exists(chan.context, typed, 1):
        return chan.context, typed, 1
    if pbx.dialplan.exists(chan.context, "i", 1):
        pbx.varset(chan, "INVALID_EXTEN", typed)
        return chan.context, "i", 1
    return None


async def _collect(pbx: PBX, chan: Channel, first: str, timeout: float) -> tuple[str, str | None]:
    """Gather digits after ``first`` until no longer extension can match (or ``timeout``)."""
    typed = first
    while True:
        ext = pbx.dialplan.match(chan.context, typed)
        longer = (
            any(
                name.startswith(typed) and name != typed
                for name in pbx.dialplan.contexts[chan.context].extensions
            )
            if chan.context in pbx.dialplan.contexts
            else False
        )
        if ext is not None and not longer:
            return typed, None
        if not chan.dtmf:
            why = await pbx.wait(chan, timeout, dtmf=True)
            if why == "timeout":
                return typed, None
            if why != "dtmf":
                return typed, why
        typed += chan.dtmf.popleft()


async def app_background(pbx: PBX, chan: Channel, data: str) -> Any:
    """Background() answers the channel first, unless option ``n`` (``s``: return at once on a
    channel not yet answered)."""
    args = split_args(data)
    options = args[1] if len(args) > 1 else ""
    if chan.state != UP:
        if "s" in options:
            return None
        if "n" not in options:
            pbx.answer(chan)
    outcome, digit, _ = await play(pbx, chan, args[0], digits="0123456789*#")
    if chan.gone or _gone(outcome):
        return "-1"
    if outcome == "missing":
        pbx.varset(chan, "BACKGROUNDSTATUS", "FAILED")
        return None
    if digit is not None:
        typed, why = await _collect(pbx, chan, digit, 5.0)
        if why:
            return "-1"
        jump = _jump_for_digits(pbx, chan, typed)
        if jump is None:
            return STOP
        return jump
    return None


async def app_waitexten(pbx: PBX, chan: Channel, data: str) -> Any:
    args = split_args(data)
    try:
        seconds = float(args[0]) if args and args[0] else 10.0
    except ValueError:
        seconds = 10.0
    if not chan.dtmf:
        why = await pbx.wait(chan, seconds, dtmf=True)
        if why == "timeout":
            if pbx.dialplan.exists(chan.context, "t", 1):
                return chan.context, "t", 1
            return STOP
        if why != "dtmf":
            return "-1"
    typed, why2 = await _collect(pbx, chan, chan.dtmf.popleft(), 5.0)
    if why2:
        return "-1"
    jump = _jump_for_digits(pbx, chan, typed)
    return jump if jump is not None else STOP


async def app_musiconhold(pbx: PBX, chan: Channel, data: str) -> Any:
    args = split_args(data)
    klass = args[0] or "default"
    seconds: float | None = None
    if len(args) > 1 and args[1].strip():
        try:
            seconds = float(args[1])
        except ValueError:
            seconds = None
    pbx.moh_start(chan, klass)
    why = await pbx.wait(chan, seconds)
    if chan.moh_class is not None and not chan.gone:
        pbx.moh_stop(chan)
    return "-1" if _gone(why) else None


async def app_milliwatt(pbx: PBX, chan: Channel, data: str) -> Any:
    why = await pbx.wait(chan, None)
    return "-1" if _gone(why) else None


async def app_ringing(pbx: PBX, chan: Channel, data: str) -> Any:
    pbx.ringing(chan)
    return None


async def app_progress(pbx: PBX, chan: Channel, data: str) -> Any:
    return None


async def _busy_like(pbx: PBX, chan: Channel, data: str, status: str, cause: int) -> Any:
    pbx.busy(chan, status, cause)
    try:
        seconds: float | None = float(data) if data.strip() else None
    except ValueError:
        seconds = None
    await pbx.wait(chan, seconds)
    return STOP


async def app_busy(pbx: PBX, chan: Channel, data: str) -> Any:
    return await _busy_like(pbx, chan, data, "BUSY", 17)


async def app_congestion(pbx: PBX, chan: Channel, data: str) -> Any:
    return await _busy_like(pbx, chan, data, "CONGESTION", 34)


# ---------------------------------------------------------------- bridging
async def bridge_with(pbx: PBX, chan: Channel, other: Channel) -> str:
    """Bridge ``chan`` (which keeps running its application) with ``other`` (pulled out of what
    it runs). Returns when the bridge ends: ``unbridged`` or why ``chan`` left."""
    bridge = pbx.new_bridge()
    pbx.pull_into_bridge(bridge, other)
    pbx.enter_bridge(bridge, chan)
    pbx.varset(other, "BRIDGEPEER", chan.name)
    pbx.varset(chan, "BRIDGEPEER", other.name)
    chan_cid = (chan.caller_num, chan.caller_name)
    pbx.set_connected(chan, other.caller_num, other.caller_name, propagate=True)
    pbx.set_connected(other, *chan_cid, propagate=True)
    pbx.notify(other, "bridged", chan.name)
    pbx.notify(chan, "bridged", other.name)
    why = await pbx.wait(chan, None, bridged=True)
    if chan.bridge is not None:
        pbx.leave_bridge(chan.bridge, chan)
    return why


async def app_bridge(pbx: PBX, chan: Channel, data: str) -> Any:
    args = split_args(data)
    other = pbx.find_channel(args[0].strip())
    if other is None or other is chan:
        pbx.varset(chan, "BRIDGERESULT", "NONEXISTENT")
        return None
    if chan.state != UP:
        pbx.answer(chan)
    if "T" in (args[1] if len(args) > 1 else ""):
        chan.extra["may_transfer"] = True  # the initiator may transfer (features' atxfer code)
    why = await bridge_with(pbx, chan, other)
    if not chan.gone:
        pbx.varset(chan, "BRIDGERESULT", "SUCCESS")
    return "-1" if why in ("hangup", "goto") else None


class SpySession:
    """One ChanSpy attachment: ``mode`` is listen / whisper / barge (DTMF 4/5/6 with ``d``)."""

    def __init__(self, pbx: PBX, spyer: Channel, spyee: Channel, mode: str) -> None:
        self.pbx = pbx
        self.spyer = spyer
        self.spyee = spyee
        self.mode = mode
        self.modes = [mode]
        self.stopped = False

    def headers(self) -> list[tuple[str, str]]:
        return [("Privilege", "call,all"), *self.spyer.snapshot("Spyer"), *self.spyee.snapshot("Spyee")]

    def _rebridge(self, rounds: int) -> None:
        """Attaching or detaching an audiohook re-evaluates the spyee's bridge: Asterisk sets
        BRIDGEPEER again on its members (once on attach, twice on detach, as the trace shows)."""
        bridge = self.spyee.bridge
        if bridge is None or len(bridge.members) != 2:
            return
        a, b = bridge.members
        for _ in range(rounds):
            self.pbx.varset(a, "BRIDGEPEER", b.name)
            self.pbx.varset(b, "BRIDGEPEER", a.name)

    def start(self) -> None:
        self.spyee.spies.append(self)
        self.spyer.extra["spy"] = self
        self.pbx.emit("ChanSpyStart", "call,all", self.headers())
        self._rebridge(1)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self in self.spyee.spies:
            self.spyee.spies.remove(self)
        self._rebridge(2)
        self.pbx.emit("ChanSpyStop", "call,all", self.headers())
        self.pbx.wake(self.spyer)


async def app_chanspy(pbx: PBX, chan: Channel, data: str) -> Any:
    args = split_args(data)
    prefix = args[0].strip()
    options = args[1] if len(args) > 1 else ""
    mode = "barge" if "B" in options else "whisper" if "w" in options else "listen"
    if chan.state != UP:  # ChanSpy() answers the spying channel first
        pbx.answer(chan)
    why = await pbx.wait(chan, SPY_ATTACH)
    if why != "timeout":
        return "-1"
    target: Channel | None = None
    while target is None:
        target = pbx.find_channel(prefix) or next(
            (
                c
                for c in pbx.channels.values()
                if prefix and c.name.startswith(prefix) and c is not chan and not c.gone
            ),
            None,
        )
        if target is None:
            why = await pbx.wait(chan, 1.0)
            if why != "timeout":
                return "-1"
    session = SpySession(pbx, chan, target, mode)
    session.start()
    while not session.stopped:
        why = await pbx.wait(chan, None, dtmf="d" in options)
        if why == "dtmf":
            digit = chan.dtmf.popleft()
            new = {"4": "listen", "5": "whisper", "6": "barge"}.get(digit)
            if new is not None and "d" in options:
                session.mode = new
                session.modes.append(new)
            continue
        if why in ("hangup", "goto", "pulled"):
            session.stop()
            return "-1"
    chan.extra.pop("spy", None)
    return None


# ---------------------------------------------------------------- recording
def start_mixmonitor(pbx: PBX, chan: Channel, file: str, options: str = "") -> MixMonitor:
    if chan.mixmonitor is not None:
        chan.mixmonitor.stop(pbx)
    path = pbx.recording_path(file)
    mon = MixMonitor(chan, path, pbx.clock.monotonic())
    chan.mixmonitor = mon
    pbx.varset(chan, "MIXMONITOR_FILENAME", file)
    pbx.chan_event("MixMonitorStart", chan)
    return mon


async def app_mixmonitor(pbx: PBX, chan: Channel, data: str) -> Any:
    args = split_args(data)
    start_mixmonitor(pbx, chan, args[0], args[1] if len(args) > 1 else "")
    return None


async def app_stopmixmonitor(pbx: PBX, chan: Channel, data: str) -> Any:
    if chan.mixmonitor is not None:
        chan.mixmonitor.stop(pbx, announce=True)
    return None


# ---------------------------------------------------------------- Dial
async def app_dial(pbx: PBX, chan: Channel, data: str) -> Any:
    args = split_args(data)
    targets = [t for t in args[0].split("&") if t]
    try:
        timeout = float(args[1]) if len(args) > 1 and args[1].strip() else None
    except ValueError:
        timeout = None
    options = args[2] if len(args) > 2 else ""
    for name in DIAL_VARS:
        pbx.varset(chan, name, "")
    legs: list[Channel] = []
    outcomes: dict[str, DialResult] = {}
    cid = (chan.caller_num, chan.caller_name)
    loop = asyncio.get_running_loop()
    dial_started = pbx.clock.monotonic()
    for target in targets:
        tech = target.split("/", 1)[0]
        endpoint = None
        if tech == "Local":
            one, two = pbx.new_local_pair(target, linked=chan)
            number = f"{two.exten}@{two.context}"
            pbx.varset(one, "DIALEDPEERNUMBER", number)
            one.exten = chan.exten  # the outgoing ;1 takes the dialer's extension (as Asterisk shows)
            pbx.chan_event(
                "Newexten",
                one,
                [("Extension", one.exten), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")],
                DIALPLAN,
            )
            pbx.set_callerid(one, *cid)
            pbx.set_connected(one, *cid)
            pbx.varset(two, "DIALEDPEERNUMBER", number)
            pbx.set_callerid(two, *cid)
            pbx.set_connected(two, *cid)
            pbx.local_bridge_event(one, two)
            leg = one
        else:
            endpoint_name, endpoint, number = pbx.endpoint_for(target)
            if endpoint is None or not endpoint.registered:
                continue
            leg = pbx.new_sip_channel(endpoint_name, linked=chan)
            leg.extra["number"] = number
            pbx.chan_event("Newchannel", leg)
            pbx.varset(leg, "DIALEDPEERNUMBER", endpoint_name)
            pbx.set_callerid(leg, *cid)
            pbx.set_connected(leg, *cid)
        legs.append(leg)
        fut: asyncio.Future[DialResult] = loop.create_future()
        leg.dial_outcome = fut

        def done(f: asyncio.Future[DialResult], leg: Channel = leg) -> None:
            if not f.cancelled():
                outcomes[leg.name] = f.result()
                pbx.wake(chan)

        fut.add_done_callback(done)

        def on_ringing(leg: Channel = leg) -> None:
            elapsed = pbx.clock.monotonic() - dial_started
            pbx.varset(chan, "RINGTIME", str(int(elapsed)))
            pbx.varset(chan, "RINGTIME_MS", str(int(elapsed * 1000)))
            pbx.emit(
                "DialState",
                "call,all",
                [
                    ("Privilege", "call,all"),
                    *chan.snapshot(),
                    *leg.snapshot("Dest"),
                    ("DialStatus", "RINGING"),
                ],
            )

        leg.extra["on_ringing"] = on_ringing
        dialstring = target.split("/", 1)[1] if "/" in target else target
        pbx.emit(
            "DialBegin",
            "call,all",
            [("Privilege", "call,all"), *chan.snapshot(), *leg.snapshot("Dest"), ("DialString", dialstring)],
        )
        if leg.peer is not None:
            pbx.start_dialplan(leg.peer, leg.peer.context, leg.peer.exten, 1)
        elif endpoint is not None:
            pbx.spawn(endpoint.incoming(pbx, leg), name=f"phone {leg.name}")
    if not legs:
        pbx.varset(chan, "DIALSTATUS", "CHANUNAVAIL")
        chan.hangupcause = 3
        return None

    def dial_end(leg: Channel, status: str) -> None:
        pbx.emit(
            "DialEnd",
            "call,all",
            [("Privilege", "call,all"), *chan.snapshot(), *leg.snapshot("Dest"), ("DialStatus", status)],
        )

    answered: Channel | None = None
    status = "NOANSWER"
    deadline = None if timeout is None else pbx.clock.monotonic() + timeout
    pending = list(legs)
    while pending and answered is None:
        for leg in list(pending):
            result = outcomes.pop(leg.name, None)
            if result is None:
                continue
            pending.remove(leg)
            leg.dial_outcome = None
            if result.status == "ANSWER":
                answered = leg
                break
            status = result.status if result.status != "HANGUP" else "NOANSWER"
            dial_end(leg, status)
            if not leg.gone:
                pbx.hangup(leg)
        if answered is not None or not pending:
            break
        remaining = None if deadline is None else deadline - pbx.clock.monotonic()
        if remaining is not None and remaining <= 0:
            status = "NOANSWER"
            break
        why = await pbx.wait(chan, remaining)
        if why in ("hangup", "goto", "pulled"):
            status = "CANCEL"
            break
    for leg in pending:
        if leg is answered:
            continue
        leg.dial_outcome = None
        leg.extra.pop("on_ringing", None)
        dial_end(leg, "CANCEL" if answered is not None else status)
        if not leg.gone:
            pbx.hangup(leg)
    if answered is None:
        if not chan.gone:
            pbx.varset(chan, "DIALSTATUS", status)
        return "-1" if status == "CANCEL" else None
    answered.extra.pop("on_ringing", None)
    dial_end(answered, "ANSWER")
    if chan.state != UP:
        pbx.answer(chan)
    pbx.varset(chan, "DIALEDPEERNAME", answered.name)
    started = pbx.clock.monotonic()
    answered.pulled = True
    pbx.spawn(pbx.run(answered), name=answered.name)
    why = await bridge_with(pbx, chan, answered)
    pbx.varset(chan, "ANSWEREDTIME", str(int(pbx.clock.monotonic() - started)))
    pbx.varset(chan, "DIALSTATUS", "ANSWER")
    if why in ("hangup", "goto") or chan.gone:
        return "-1"
    return None if "g" in options else STOP


# ---------------------------------------------------------------- VoiceMail, AMD
async def app_voicemail(pbx: PBX, chan: Channel, data: str) -> Any:
    args = split_args(data)
    box = args[0].split("&")[0].strip() or "default"
    mailbox, _, vmctx = box.partition("@")
    if chan.state != UP:
        pbx.answer(chan)
    outcome, _, _ = await play(pbx, chan, "vm-intro&beep")
    if _gone(outcome) and chan.gone:
        return "-1"
    safe = "".join(ch for ch in f"{vmctx or 'default'}/{mailbox}" if ch.isalnum() or ch in "/-_") or "default"
    started = pbx.clock.monotonic()
    count = next(pbx.voicemail_seq)
    mon = MixMonitor(chan, pbx.recording_path(f"voicemail/{safe}/msg{count:04d}.wav"), started)
    why = await pbx.wait(chan, 300.0)
    mon.chan = chan
    recorded = pbx.clock.monotonic() - started
    mon.stopped = True
    try:
        write_recording(mon.path, recorded)
    except OSError:
        pass
    chan.extra["voicemail"] = str(mon.path)
    if not chan.gone:
        pbx.varset(chan, "VMSTATUS", "SUCCESS" if recorded > 0 else "FAILED")
    return "-1" if _gone(why) else None


def _far_end(chan: Channel) -> Channel:
    """Whom ``chan`` hears: through a Local pair (a dialer leg Local/<number>@cc-dial-<trunk>/n
    whose ;2 Dial()ed the trunk), the channel bridged to the ;2; else ``chan`` itself."""
    two = chan.peer if chan.tech == "Local" and chan.half == 1 else None
    if two is not None and two.bridge is not None:
        others = [m for m in two.bridge.members if m is not two]
        if others:
            return others[0]
    return chan


async def app_amd(pbx: PBX, chan: Channel, data: str) -> Any:
    verdict = _far_end(chan).extra.get("amd", ("HUMAN", "HUMAN-1-1", 1.5))
    status, cause, seconds = verdict
    why = await pbx.wait(chan, float(seconds))
    if _gone(why):
        return "-1"
    pbx.varset(chan, "AMDSTATUS", status)
    pbx.varset(chan, "AMDCAUSE", cause)
    return None


async def app_waitforsilence(pbx: PBX, chan: Channel, data: str) -> Any:
    """WaitForSilence(silence_ms[,iterations[,timeout_s]]): the far end stops talking (a machine's
    greeting and beep end), then ``silence_ms`` of silence: WAITSTATUS SILENCE; TIMEOUT if that
    takes longer than ``timeout_s``."""
    args = split_args(data)
    try:
        silence = max(0.0, float(args[0] or 0) / 1000.0)
        timeout = float(args[2]) if len(args) > 2 and args[2] else math.inf
    except ValueError:
        silence, timeout = 0.0, math.inf
    ends = float(_far_end(chan).extra.get("greeting_ends", pbx.clock.now()))
    need = max(0.0, ends - pbx.clock.now()) + silence
    why = await pbx.wait(chan, min(need, timeout))
    if _gone(why):
        return "-1"
    pbx.varset(chan, "WAITSTATUS", "SILENCE" if need <= timeout else "TIMEOUT")
    return None


# ---------------------------------------------------------------- AGI
async def app_agi(pbx: PBX, chan: Channel, data: str) -> Any:
    runner = pbx.agi_runner
    if runner is None:
        raise SimulatorError("AGI(): the simulated PBX has no FastAGI client configured")
    result = await runner(pbx, chan, data)
    if isinstance(result, tuple):
        return result
    if not chan.gone and not chan.pulled:
        pbx.varset(chan, "AGISTATUS", str(result))
    return "-1" if result == "HANGUP" else None


APPLICATIONS: Final[dict[str, App]] = {
    "AGI": app_agi,
    "AMD": app_amd,
    "WaitForSilence": app_waitforsilence,
    "Answer": app_answer,
    "Background": app_background,
    "Bridge": app_bridge,
    "Busy": app_busy,
    "ChanSpy": app_chanspy,
    "Congestion": app_congestion,
    "Dial": app_dial,
    "Goto": app_goto,
    "GotoIf": app_gotoif,
    "GotoIfTime": app_gotoiftime,
    "Hangup": app_hangup,
    "Milliwatt": app_milliwatt,
    "MixMonitor": app_mixmonitor,
    "MusicOnHold": app_musiconhold,
    "NoOp": app_noop,
    "Playback": app_playback,
    "Progress": app_progress,
    "Ringing": app_ringing,
    "Set": app_set,
    "StopMixMonitor": app_stopmixmonitor,
    "VoiceMail": app_voicemail,
    "Wait": app_wait,
    "WaitExten": app_waitexten,
}

__all__ = ["APPLICATIONS", "UNKNOWN", "SpySession", "start_mixmonitor", "play", "bridge_with"]
