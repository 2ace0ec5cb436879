"""Pure: ``callcenter doctor``'s judgement of the PBX a center runs on.

Two halves, no I/O in either:

* :func:`requirements`: what the center needs from its PBX, read from the configuration and the
  files ``callcenter render`` writes: the modules (``modules.conf``, the applications
  ``extensions.conf`` runs, the PJSIP objects, codecs and file formats), the sounds (Asterisk's
  core sounds by name, the center's own prompts by path) and music-on-hold directories, the
  phones and trunks, and the AMI user's read classes as rendered.
* :func:`diagnose`: given what the PBX answered over AMI (:class:`PBXFacts`, the messages as the
  codec parsed them) and what was found on disk (:class:`FileFacts`), one :class:`Check` per
  subject: OK, WARN, FAIL or SKIP (not checked, and why), with what is missing and how to fix it.
  :func:`format_report` prints them; :func:`exit_status` is 1 when any check failed.

The shell (``callcenter.commands.doctor``) asks the PBX (only the actions :func:`may_send`
allows, each bounded by a timeout) and looks at the files (only when the PBX runs on this host).
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.config import model as m

# ----------------------------------------------------------------------------- AMI names
# The read-only actions doctor sends (besides ``Getvar``); the controller never sends them.
ACTION_LIST_COMMANDS: Final = "ListCommands"
ACTION_CORE_SETTINGS: Final = "CoreSettings"
ACTION_MODULE_CHECK: Final = "ModuleCheck"
ACTION_PJSIP_SHOW_ENDPOINTS: Final = "PJSIPShowEndpoints"
ACTION_PJSIP_SHOW_ENDPOINT: Final = "PJSIPShowEndpoint"
ACTION_PJSIP_SHOW_CONTACTS: Final = "PJSIPShowContacts"
# Asterisk's built-in variable holding its data directory (``astdatadir``): sounds live in
# ``${ASTDATADIR}/sounds``. Read with ``Getvar`` and no channel.
VAR_DATA_DIR: Final = "ASTDATADIR"

SUPPORTED_MAJOR: Final = 22
# The language Asterisk looks core sounds up in: the product sets no channel language, so
# Asterisk's default applies (``sounds/en/<name>``, then ``sounds/<name>``).
CORE_SOUNDS_LANGUAGE: Final = "en"

# What a file's extension must be for Asterisk to play it (one of its format modules).
AUDIO_EXTENSIONS: Final = frozenset(
    {
        "wav", "WAV", "wav16", "gsm", "ulaw", "ul", "mu", "pcm", "alaw", "al", "alw", "sln",
        "raw", "sln12", "sln16", "sln24", "sln32", "sln44", "sln48", "sln96", "sln192",
        "g722", "g729", "g723", "g726-16", "g726-24", "g726-32", "g726-40", "ilbc", "siren7",
        "siren14", "ogg", "vox",
    }
)  # fmt: skip

# Where Asterisk's sound packages put the core sounds (Debian's, then a source install's).
WELL_KNOWN_SOUND_DIRS: Final = ("/usr/share/asterisk/sounds", "/var/lib/asterisk/sounds")
WELL_KNOWN_MOH_DIRS: Final = ("/usr/share/asterisk/moh", "/var/lib/asterisk/moh")
SOUND_PACKAGES: Final = "asterisk-core-sounds-en-wav"
MUSIC_PACKAGES: Final = "asterisk-moh-opsound-wav"


class Status(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not checked (and the check says why)


_SEVERITY: Final = {Status.OK: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)


@dataclass(frozen=True)
class Check:
    """One subject's verdict: ``summary`` in a line, ``details`` (what is missing), ``fix``."""

    name: str
    status: Status
    summary: str
    details: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()


@dataclass(frozen=True)
class Need:
    """Something the center needs (a module file, a sound, an endpoint) and why."""

    name: str
    why: str


# ============================================================================ requirements
# Dialplan applications -> the module that registers them (``None``: Asterisk's core). From
# Asterisk 22's sources (main/pbx_builtins.c, main/features.c, apps/, res/).
APP_MODULES: Final[Mapping[str, str | None]] = {
    "Answer": None,
    "Background": None,
    "Busy": None,
    "Congestion": None,
    "Goto": None,
    "GotoIf": None,
    "GotoIfTime": None,
    "Hangup": None,
    "NoOp": None,
    "Progress": None,
    "Ringing": None,
    "SayDigits": None,
    "SayNumber": None,
    "Set": None,
    "Wait": None,
    "WaitExten": None,
    "Bridge": None,  # main/features.c (the two-party bridge needs bridge_simple, below)
    "AGI": "res_agi.so",
    "AMD": "app_amd.so",
    "BridgeWait": "app_bridgewait.so",
    "ChanSpy": "app_chanspy.so",
    "Dial": "app_dial.so",
    "Echo": "app_echo.so",
    "ExecIf": "app_exec.so",
    "Gosub": "app_stack.so",
    "Milliwatt": "app_milliwatt.so",
    "MixMonitor": "app_mixmonitor.so",
    "MusicOnHold": "res_musiconhold.so",
    "Playback": "app_playback.so",
    "Playtones": "app_playtones.so",
    "Read": "app_read.so",
    "Record": "app_record.so",
    "Return": "app_stack.so",
    "StopMixMonitor": "app_mixmonitor.so",
    "VoiceMail": "app_voicemail.so",
    "WaitForSilence": "app_waitforsilence.so",
}
CODEC_MODULES: Final[Mapping[str, str]] = {
    "ulaw": "codec_ulaw.so",
    "alaw": "codec_alaw.so",
    "gsm": "codec_gsm.so",
    "g722": "codec_g722.so",
    "g726": "codec_g726.so",
    "adpcm": "codec_adpcm.so",
    "ilbc": "codec_ilbc.so",
    "speex": "codec_speex.so",
    "lpc10": "codec_lpc10.so",
}
RECORDING_FORMAT_MODULES: Final[Mapping[m.RecordingFormat, str]] = {
    m.RecordingFormat.WAV: "format_wav.so",
    m.RecordingFormat.WAV49: "format_wav_gsm.so",
    m.RecordingFormat.GSM: "format_gsm.so",
}
# What VoiceMail(box,u) plays when the box has no recorded greeting: "the person at extension
# <digits> is unavailable", the instructions, the beep (apps/app_voicemail.c).
VOICEMAIL_SOUNDS: Final = ("vm-theperson", "vm-isunavail", "vm-intro", "beep") + tuple(
    f"digits/{d}" for d in range(10)
)


@dataclass(frozen=True)
class Requirements:
    """What one center needs from its PBX (see :func:`requirements`)."""

    modules: tuple[Need, ...] = ()
    unwanted_modules: tuple[str, ...] = ()  # modules.conf ``noload``
    unknown_apps: tuple[str, ...] = ()  # applications whose module this table does not know
    core_sounds: tuple[Need, ...] = ()  # sound names relative to Asterisk's sounds dir
    own_sounds: tuple[Need, ...] = ()  # absolute paths, no extension
    music: tuple[tuple[str, str], ...] = ()  # (class, directory), from musiconhold.conf
    phones: tuple[Need, ...] = ()  # PJSIP endpoint -> whose phone
    trunks: tuple[Need, ...] = ()  # PJSIP endpoint -> the carrier
    ami_user: str = ""
    ami_read: tuple[str, ...] | None = None  # the AMI user's read classes in manager.conf
    sounds_dir: str = ""  # asterisk.sounds_dir, where the center's prompts are installed


Section = tuple[str, tuple[tuple[str, str], ...]]


def conf_sections(text: str) -> list[Section]:
    """An Asterisk ``.conf`` file as (section, ((key, value), ...)) in order; ``;`` comments,
    ``=>`` as ``=``, template suffixes (``[name](!)``) dropped, repeated sections kept apart."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and "]" in line:
            out.append((line[1 : line.index("]")].strip(), []))
            continue
        key, sep, value = line.partition("=")
        if not sep or not out:
            continue
        out[-1][1].append((key.strip(), value.removeprefix(">").strip()))
    return [(name, tuple(pairs)) for name, pairs in out]


def _values(pairs: Iterable[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in pairs if k == key]


@dataclass(frozen=True)
class DialplanStep:
    context: str
    app: str
    args: str


def dialplan_steps(text: str) -> list[DialplanStep]:
    """Every ``exten =>`` / ``same =>`` step of an ``extensions.conf``: its context, application
    and argument text."""
    steps: list[DialplanStep] = []
    context = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and "]" in line:
            context = line[1 : line.index("]")]
            continue
        key, sep, rest = line.partition("=>")
        key = key.strip()
        if not sep or key not in ("exten", "same"):
            continue
        fields = rest.split(",", 2 if key == "exten" else 1)
        if len(fields) < (3 if key == "exten" else 2):
            continue
        call = fields[-1].strip()
        app, paren, args = call.partition("(")
        if paren and args.endswith(")"):
            args = args[:-1]
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", app.strip()):
            steps.append(DialplanStep(context, app.strip(), args if paren else ""))
    return steps


class _Needs:
    """Needs in first-seen order, one per name (the first reason kept)."""

    def __init__(self) -> None:
        self.items: dict[str, Need] = {}

    def add(self, name: str, why: str) -> None:
        self.items.setdefault(name, Need(name, why))

    def __iter__(self) -> Iterator[Need]:
        return iter(self.items.values())


def requirements(config: m.Config, files: Mapping[str, str], *, played: Iterable[Need] = ()) -> Requirements:
    """What ``config`` needs from its PBX, read from the rendered ``files`` (name -> text) and
    ``played``: the sounds the controller plays at run time (relative names are core sounds,
    absolute paths the center's own), which the shell enumerates from the ACD's own functions."""
    modules = _Needs()
    unwanted: list[str] = []
    unknown: list[str] = []
    core = _Needs()
    own = _Needs()

    steps = dialplan_steps(files.get("extensions.conf", ""))
    for step in steps:
        where = f"{step.app}() in [{step.context}]"
        if step.app not in APP_MODULES:
            if step.app not in unknown:
                unknown.append(step.app)
        elif (module := APP_MODULES[step.app]) is not None:
            modules.add(module, where)
        if step.app == "Bridge":
            modules.add("bridge_simple.so", f"two-party bridges: {where}")
        if "PJSIP/" in step.args:
            modules.add("chan_pjsip.so", f"PJSIP channels: {where}")
        if step.app == "Playback":
            for sound in step.args.split(",", 1)[0].split("&"):
                sound = sound.strip()
                if sound and "${" not in sound:
                    (own if sound.startswith("/") else core).add(sound, where)
        if step.app == "VoiceMail":
            for sound in VOICEMAIL_SOUNDS:
                core.add(sound, f"the voicemail greeting: {where}")

    _pjsip_modules(files.get("pjsip.conf", ""), modules)
    if steps:
        modules.add("format_wav.so", "the center's prompts are WAV files")
    modules.add(RECORDING_FORMAT_MODULES[config.recording.format], f"recordings in {config.recording.format}")
    for _, pairs in conf_sections(files.get("modules.conf", "")):
        for name in _values(pairs, "load"):
            modules.add(name, "modules.conf loads it")
        unwanted += _values(pairs, "noload")

    sounds_dir = config.asterisk.sounds_dir
    for prompt in config.prompts.prompts.values():
        for language in prompt.texts:
            own.add(posixpath.join(sounds_dir, m.prompt_sound(prompt.id, language)), f"prompt {prompt.id}")
    for need in played:
        (own if need.name.startswith("/") else core).add(need.name, need.why)

    music = tuple(
        (name, directory)
        for name, pairs in conf_sections(files.get("musiconhold.conf", ""))
        if name != "general" and (directory := next(iter(_values(pairs, "directory")), ""))
    )
    phones = tuple(Need(a.endpoint, f"agent {a.id} ({a.name})") for a in config.agents.values()) + tuple(
        Need(s.endpoint, f"supervisor {s.id} ({s.name})") for s in config.supervisors.values()
    )
    trunks = tuple(Need(t.id, f"trunk to {t.host}:{t.port}") for t in config.trunks.values())
    user = config.asterisk.ami.username
    read: tuple[str, ...] | None = None
    for name, pairs in conf_sections(files.get("manager.conf", "")):
        if name == user:
            read = tuple(c.strip() for v in _values(pairs, "read") for c in v.split(",") if c.strip())
    return Requirements(
        modules=tuple(modules),
        unwanted_modules=tuple(unwanted),
        unknown_apps=tuple(unknown),
        core_sounds=tuple(core),
        own_sounds=tuple(own),
        music=music,
        phones=phones,
        trunks=trunks,
        ami_user=user,
        ami_read=read,
        sounds_dir=sounds_dir,
    )


def _pjsip_modules(text: str, modules: _Needs) -> None:
    """The res_pjsip modules the PJSIP objects in ``pjsip.conf`` need."""
    sections = conf_sections(text)
    if not sections:
        return
    by_type: dict[str, list[Section]] = {}
    for section in sections:
        kind = next(iter(_values(section[1], "type")), "")
        by_type.setdefault(kind, []).append(section)
    endpoints = by_type.get("endpoint", [])
    if endpoints:
        for name, why in (
            ("res_pjsip.so", "pjsip.conf"),
            ("chan_pjsip.so", "PJSIP endpoints"),
            ("res_pjsip_session.so", "SIP calls (INVITE sessions)"),
            ("res_pjsip_sdp_rtp.so", "SIP call media (SDP/RTP)"),
            ("res_rtp_asterisk.so", "RTP media"),
        ):
            modules.add(name, why)
    for name, pairs in endpoints:
        if _values(pairs, "auth"):
            modules.add("res_pjsip_authenticator_digest.so", f"phones authenticate (endpoint {name})")
            modules.add("res_pjsip_endpoint_identifier_user.so", f"phones identified by user name ({name})")
        if _values(pairs, "outbound_auth"):
            modules.add("res_pjsip_outbound_authenticator_digest.so", f"outbound auth (endpoint {name})")
        if any(v == "info" for v in _values(pairs, "dtmf_mode")):
            modules.add("res_pjsip_dtmf_info.so", f"SIP INFO DTMF (endpoint {name})")
        if _values(pairs, "trust_id_inbound") or _values(pairs, "send_pai"):
            modules.add("res_pjsip_caller_id.so", f"caller id headers (endpoint {name})")
        for allow in _values(pairs, "allow"):
            for codec in allow.split(","):
                if (module := CODEC_MODULES.get(codec.strip())) is not None:
                    modules.add(module, f"codec {codec.strip()} (endpoint {name})")
    for name, pairs in by_type.get("aor", []):
        if any(v not in ("", "0") for v in _values(pairs, "max_contacts")):
            modules.add("res_pjsip_registrar.so", f"phones register (aor {name})")
    for name, _ in by_type.get("registration", []):
        modules.add("res_pjsip_outbound_registration.so", f"outbound registration {name}")
    for name, _ in by_type.get("identify", []):
        modules.add("res_pjsip_endpoint_identifier_ip.so", f"carriers identified by address ({name})")


# ============================================================================ what the PBX said
@dataclass(frozen=True)
class Reply:
    """One AMI action's outcome: the response then any list events, or Asterisk's error text.
    ``asked`` False: not sent (``denied`` when the AMI user may not send it, else because the
    PBX had stopped answering)."""

    messages: tuple[Message, ...] = ()
    error: str | None = None
    asked: bool = True
    denied: bool = False

    @property
    def ok(self) -> bool:
        return self.asked and self.error is None and bool(self.messages)

    def events(self, name: str) -> list[Message]:
        return [msg for msg in self.messages if msg.is_event and msg.name == name]


NOT_ASKED: Final = Reply(asked=False)
DENIED: Final = Reply(asked=False, denied=True)


@dataclass(frozen=True)
class PBXFacts:
    """What the PBX answered. ``link_error``/``login_error``: no session (nothing else asked);
    ``stopped``: an action went unanswered, so the ones after it were not asked."""

    address: str
    user: str
    link_error: str | None = None
    login_error: str | None = None
    greeting: str = ""
    stopped: str | None = None
    commands: Reply = NOT_ASKED  # ListCommands
    settings: Reply = NOT_ASKED  # CoreSettings
    data_dir: Reply = NOT_ASKED  # Getvar ASTDATADIR
    modules: Mapping[str, Reply] = field(default_factory=dict)  # ModuleCheck per module file
    endpoints: Reply = NOT_ASKED  # PJSIPShowEndpoints
    contacts: Reply = NOT_ASKED  # PJSIPShowContacts
    trunks: Mapping[str, Reply] = field(default_factory=dict)  # PJSIPShowEndpoint per trunk


@dataclass(frozen=True)
class FileFacts:
    """What was found on disk where the PBX reads: ``checked`` False when the PBX is not on this
    host (``where`` says why). ``sounds``: the sound paths (no extension) that exist as audio
    files; ``music``: directory -> audio files in it (``None``: no such directory);
    ``other_sounds``/``other_music``: well-known directories elsewhere that hold them."""

    checked: bool
    where: str
    sounds: frozenset[str] = frozenset()
    music: Mapping[str, int | None] = field(default_factory=dict)
    other_sounds: tuple[str, ...] = ()
    other_music: tuple[str, ...] = ()


def audio_stem(filename: str) -> str | None:
    """``welcome`` for ``welcome.wav`` (a format Asterisk plays), else None."""
    stem, dot, ext = filename.rpartition(".")
    return stem if dot and stem and ext in AUDIO_EXTENSIONS else None


def sounds_dir_of(data_dir: str) -> str:
    return posixpath.join(data_dir, "sounds")


def core_sound_paths(name: str, sounds_dir: str) -> tuple[str, ...]:
    """Where Asterisk looks for core sound ``name`` (language directory first), no extension."""
    return (posixpath.join(sounds_dir, CORE_SOUNDS_LANGUAGE, name), posixpath.join(sounds_dir, name))


def sound_paths(req: Requirements, data_dir: str | None) -> tuple[str, ...]:
    """Every path (no extension) the file check should look for."""
    out = [n.name for n in req.own_sounds]
    if data_dir:
        sounds = sounds_dir_of(data_dir)
        out += [p for n in req.core_sounds for p in core_sound_paths(n.name, sounds)]
    return tuple(dict.fromkeys(out))


def probe_sound(sounds_dir: str) -> str:
    """The file that tells whether a sounds directory holds the English core sounds."""
    return posixpath.join(sounds_dir, CORE_SOUNDS_LANGUAGE, "digits", "1")


_PRIV: Final = re.compile(r"\(Priv: ([^)]*)\)\s*$")


def allowed_actions(reply: Reply) -> dict[str, frozenset[str]] | None:
    """From ``ListCommands``: action name (lower case) -> the write classes that unlock it
    (empty: none needed). Asterisk lists only the actions the logged-in user may send."""
    if not reply.ok:
        return None
    out: dict[str, frozenset[str]] = {}
    for name, value in reply.messages[0].headers:
        if name in ("Response", "ActionID", "Message"):
            continue
        match = _PRIV.search(value)
        classes = match.group(1) if match else ""
        out[name.lower()] = frozenset(
            c.strip() for c in classes.split(",") if c.strip() and c.strip() not in ("all", "<none>")
        )
    return out


def may_send(commands: Reply, action: str) -> bool:
    """Whether to send ``action``: listed by ``ListCommands`` (or ``ListCommands`` unanswered)."""
    allowed = allowed_actions(commands)
    return allowed is None or action.lower() in allowed


# ============================================================================ the checks
@dataclass(frozen=True)
class RequiredAction:
    action: str
    why: str
    classes: tuple[str, ...]  # the write classes Asterisk 22 accepts for it


# The actions the controller sends, with the write classes Asterisk 22 lists for each
# (``ListCommands``). Supervisors' ChanSpy and recordings' MixMonitor run in the dialplan (no
# action: the MixMonitor action needs system); ``callcenter apply`` reloads as its own user.
_RESTART: Final = "rebuild the picture after a restart"
REQUIRED_ACTIONS: Final = (
    RequiredAction(
        names.ACTION_ORIGINATE, "ring agents, dial campaigns, connect supervisors", ("originate",)
    ),
    RequiredAction(names.ACTION_REDIRECT, "move callers: announcements, overflow, transfers", ("call",)),
    RequiredAction(names.ACTION_HANGUP, "end legs (RONA, stop a listen-in)", ("system", "call")),
    RequiredAction(names.ACTION_SETVAR, "hand values to the dialplan", ("call",)),
    RequiredAction(names.ACTION_GETVAR, "read channel values", ("call", "reporting")),
    RequiredAction(names.ACTION_STATUS, _RESTART, ("system", "call", "reporting")),
    RequiredAction(names.ACTION_MIXMONITOR_MUTE, "PCI pause of recordings", ("system", "call")),
    RequiredAction(names.ACTION_STOP_MIXMONITOR, "stop recordings", ("system", "call")),
    RequiredAction(names.ACTION_ATXFER, "attended transfers", ("call",)),
)
# The read classes whose events the controller follows: channels, bridges, originate results,
# MixMonitor and ChanSpy (call); the supervisor's mode keys (dtmf).
REQUIRED_READ: Final = ("call", "dtmf")
# Write classes that give an AMI user more than the controller needs, detected by an action
# only that class unlocks; severity and the reason.
RISKY_CLASSES: Final = {
    "command": (Status.FAIL, "runs any Asterisk CLI command (core stop, module unload, ...)"),
    "config": (Status.FAIL, "reads and rewrites Asterisk's configuration files (GetConfig, UpdateConfig)"),
    "system": (
        Status.WARN,
        "with originate it lets this AMI user run shell commands (Originate of System() or SHELL(), "
        "the path CVE-2024-42365 closed only for users without system); the controller does not "
        "need it (recordings start in the dialplan, `callcenter apply` reloads as its own user)",
    ),
    "agi": (Status.WARN, "runs AGI commands on any channel; the controller uses FastAGI, not AMI"),
    "user": (Status.WARN, "sends arbitrary events to every AMI client; the controller does not"),
    "message": (Status.WARN, "sends SIP messages; the controller does not"),
}
_DIAGNOSTIC_ACTIONS: Final = {
    "version": (ACTION_CORE_SETTINGS, ("system", "reporting")),
    "modules": (ACTION_MODULE_CHECK, ("system",)),
    "endpoints": (ACTION_PJSIP_SHOW_ENDPOINTS, ("system",)),
    "sounds": (names.ACTION_GETVAR, ("call", "reporting")),
}
_LIST_LIMIT: Final = 12


def _listing(items: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _denied(name: str, reply: Reply, facts: PBXFacts, action: str, classes: Sequence[str]) -> Check | None:
    """The SKIP check for a reply that was never asked for, else None."""
    if reply.asked:
        return None
    if reply.denied:
        return Check(
            name,
            Status.SKIP,
            f"not checked: AMI user {facts.user} may not send {action} (write class {' or '.join(classes)})",
            fix=(
                "run doctor as an AMI user that may (CALLCENTER_AMI_USER and CALLCENTER_AMI_SECRET),"
                " or check on the Asterisk CLI",
            ),
        )
    return Check(name, Status.SKIP, "not checked: the PBX stopped answering")


def diagnose(req: Requirements, facts: PBXFacts, files: FileFacts) -> list[Check]:
    """Every check, in the order they print. An unreachable PBX or a refused login is one
    failed check (nothing else can be asked)."""
    if facts.link_error is not None:
        return [
            Check(
                "AMI",
                Status.FAIL,
                f"cannot reach the PBX's AMI at {facts.address}: {facts.link_error}",
                fix=(
                    "is Asterisk running on that host (systemctl status asterisk;"
                    " asterisk -rx 'core show version')?",
                    "is the rendered manager.conf in Asterisk's config dir with enabled = yes and this"
                    " port and bindaddr (callcenter apply), and the manager reloaded"
                    " (asterisk -rx 'manager reload')?",
                    "is the address right (asterisk.ami in dialplans/, or CALLCENTER_AMI_HOST and"
                    " CALLCENTER_AMI_PORT) and no firewall in between?",
                ),
            )
        ]
    if facts.login_error is not None:
        return [
            Check(
                "AMI",
                Status.FAIL,
                f"the PBX at {facts.address} refused AMI user {facts.user}: {facts.login_error}",
                fix=(
                    "the user and secret must match Asterisk's manager.conf: run `callcenter apply` so it"
                    " holds the ones in dialplans/ (asterisk.ami; the secret usually from CC_AMI_SECRET),"
                    " then asterisk -rx 'manager reload'",
                    "or give the right ones in CALLCENTER_AMI_USER and CALLCENTER_AMI_SECRET; the user's"
                    " permit= in manager.conf must also allow this host",
                ),
            )
        ]
    checks = [_ami_link(facts)]
    checks.append(_version(facts))
    checks.append(_modules(req, facts))
    checks.append(_permissions(req, facts))
    checks.append(_phones(req, facts))
    checks.append(_trunks(req, facts))
    checks += _files(req, facts, files)
    return checks


def _ami_link(facts: PBXFacts) -> Check:
    if facts.stopped is not None:
        return Check(
            "AMI",
            Status.FAIL,
            f"logged in to {facts.address} as {facts.user}, then the PBX stopped answering: {facts.stopped}",
            fix=("is Asterisk overloaded or hung? (asterisk -rx 'core show taskprocessors'; its logs)",),
        )
    greeting = f" ({facts.greeting})" if facts.greeting else ""
    return Check("AMI", Status.OK, f"logged in to {facts.address} as {facts.user}{greeting}")


def _version(facts: PBXFacts) -> Check:
    name = "Asterisk version"
    action, classes = _DIAGNOSTIC_ACTIONS["version"]
    if (skip := _denied(name, facts.settings, facts, action, classes)) is not None:
        return skip
    if not facts.settings.ok:
        return Check(name, Status.FAIL, f"{action} failed: {facts.settings.error}")
    version = facts.settings.messages[0].get("AsteriskVersion", "") or ""
    match = re.match(r"(?:certified[/-])?(\d+)\.", version)
    if match is None:
        return Check(
            name,
            Status.WARN,
            f"Asterisk {version or '(no version given)'}: cannot tell the major version",
            fix=(
                f"callcenter is built and tested for Asterisk {SUPPORTED_MAJOR}"
                f" (the {SUPPORTED_MAJOR}.x LTS)",
            ),
        )
    if int(match.group(1)) != SUPPORTED_MAJOR:
        return Check(
            name,
            Status.FAIL,
            f"Asterisk {version}: callcenter supports Asterisk {SUPPORTED_MAJOR} ({SUPPORTED_MAJOR}.x LTS)",
            fix=(f"run it on Asterisk {SUPPORTED_MAJOR}.x",),
        )
    return Check(name, Status.OK, f"Asterisk {version}")


def _modules(req: Requirements, facts: PBXFacts) -> Check:
    name = "modules"
    action, classes = _DIAGNOSTIC_ACTIONS["modules"]
    replies = [facts.modules.get(n.name, NOT_ASKED) for n in req.modules]
    if replies and (skip := _denied(name, replies[0], facts, action, classes)) is not None:
        return skip
    missing = [n for n, r in zip(req.modules, replies, strict=True) if r.asked and r.error is not None]
    unknown = [n for n, r in zip(req.modules, replies, strict=True) if not r.asked]
    loaded_unwanted = [u for u in req.unwanted_modules if (r := facts.modules.get(u)) is not None and r.ok]
    details = [f"not loaded: {n.name} ({n.why})" for n in missing]
    details += [f"loaded although modules.conf says noload: {u}" for u in loaded_unwanted]
    details += [f"no module known for application {app}(): not checked" for app in req.unknown_apps]
    details += [f"not asked: {n.name}" for n in unknown]
    fix: list[str] = []
    if missing:
        fix.append(
            "load each (asterisk -rx 'module load NAME') and keep them loaded at start (the rendered"
            " modules.conf); a module whose file is not in Asterisk's module dir must be built"
            " (menuselect) or installed"
        )
    if loaded_unwanted:
        fix.append(
            "the rendered modules.conf is not the one Asterisk read: `callcenter apply`, then restart"
            " Asterisk"
        )
    status = (
        Status.FAIL
        if missing
        else Status.WARN
        if loaded_unwanted or req.unknown_apps
        else Status.SKIP
        if unknown
        else Status.OK
    )
    needed = len(req.modules)
    summary = (
        f"{len(missing)} of {needed} modules the config needs are not loaded"
        if missing
        else f"all {needed} modules the config needs are loaded"
        if not unknown
        else f"{needed - len(unknown)} of {needed} modules checked"
    )
    return Check(name, status, summary, tuple(details), tuple(fix))


def _permissions(req: Requirements, facts: PBXFacts) -> Check:
    name = "AMI permissions"
    allowed = allowed_actions(facts.commands)
    if allowed is None:
        why = facts.commands.error or "no answer"
        return Check(name, Status.SKIP, f"not checked: {ACTION_LIST_COMMANDS} failed ({why})")
    details: list[str] = []
    fix: list[str] = []
    statuses: list[Status] = [Status.OK]
    lacking = [r for r in REQUIRED_ACTIONS if r.action.lower() not in allowed]
    for r in lacking:
        details.append(f"may not send {r.action} (write class {' or '.join(r.classes)}): needed to {r.why}")
    if lacking:
        statuses.append(Status.FAIL)
        classes = sorted({r.classes[0] for r in lacking})
        fix.append(
            f"add {', '.join(classes)} to the write line of [{facts.user}] in manager.conf (the rendered"
            " one has them: `callcenter apply`), then asterisk -rx 'manager reload'"
        )
    granted = sorted({next(iter(c)) for c in allowed.values() if len(c) == 1})
    for cls in granted:
        if cls in RISKY_CLASSES:
            severity, reason = RISKY_CLASSES[cls]
            statuses.append(severity)
            details.append(f"has write class {cls}: {reason}")
    forbidden = [c for c in granted if c in RISKY_CLASSES and RISKY_CLASSES[c][0] is Status.FAIL]
    if forbidden:
        fix.append(
            f"remove {' and '.join(forbidden)} from the write line of [{facts.user}] in manager.conf"
            " (`callcenter apply` renders it without them), then asterisk -rx 'manager reload'"
        )
    if req.ami_read is None:
        details.append(f"read classes: manager.conf as rendered has no user {req.ami_user}")
    else:
        absent = [c for c in REQUIRED_READ if c not in req.ami_read and "all" not in req.ami_read]
        details.append(
            "read classes are not visible over AMI; manager.conf as rendered grants"
            f" read = {','.join(req.ami_read)}"
        )
        if absent:
            statuses.append(Status.FAIL)
            details.append(f"the controller also needs read classes {', '.join(absent)} (events it follows)")
            fix.append(f"add {', '.join(absent)} to the user's read line in manager.conf")
    status = worst(statuses)
    summary = (
        f"AMI user {facts.user} may send every action the controller uses"
        if not lacking
        else f"AMI user {facts.user} may not send {len(lacking)} action(s) the controller uses"
    )
    if status is Status.WARN and not lacking:
        summary += ", and more than it needs"
    return Check(name, status, summary, tuple(details), tuple(fix))


def _contacts_by_endpoint(reply: Reply) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = {}
    for event in reply.events("ContactList"):
        out.setdefault(event.get("Endpoint", "") or "", []).append(event)
    return out


def _phones(req: Requirements, facts: PBXFacts) -> Check:
    name = "phones"
    action, classes = _DIAGNOSTIC_ACTIONS["endpoints"]
    if not req.phones:
        return Check(name, Status.OK, "no agents or supervisors in the config")
    if (skip := _denied(name, facts.endpoints, facts, action, classes)) is not None:
        return skip
    if facts.endpoints.error is not None:
        return Check(name, Status.FAIL, f"{action} failed: {facts.endpoints.error}")
    configured = {e.get("ObjectName", ""): e for e in facts.endpoints.events("EndpointList")}
    # Asterisk answers an empty contact list with an error ("No Contacts found"): no contacts.
    contacts = _contacts_by_endpoint(facts.contacts)
    absent, unregistered, unreachable, registered = [], [], [], []
    for phone in req.phones:
        if phone.name not in configured:
            absent.append(phone)
            continue
        mine = contacts.get(phone.name)
        listed = (configured[phone.name].get("Contacts", "") or "").strip(",")
        if mine is None and not listed:
            unregistered.append(phone)
        elif mine is not None and all(c.get("Status") == "Unreachable" for c in mine):
            unreachable.append(phone)
        else:
            registered.append(phone)
    details = [f"{p.name} ({p.why}): not configured on the PBX" for p in absent]
    details += [f"{p.name} ({p.why}): registered but not answering the PBX's OPTIONS" for p in unreachable]
    details += [f"{p.name} ({p.why}): not registered" for p in unregistered]
    fix: list[str] = []
    if absent:
        fix.append("pjsip.conf on the PBX is not the rendered one: `callcenter apply` (reloads res_pjsip)")
    if unreachable:
        fix.append(
            "the PBX cannot reach those phones at their registered address: NAT or a firewall between"
            " them (rewrite_contact, keep-alives, the phone's NAT settings)"
        )
    if unregistered:
        fix.append(
            "each phone registers to this PBX with user = its endpoint name and the sip_password from"
            " people.yaml (a phone switched off or away shows here too)"
        )
    status = Status.FAIL if absent or unreachable else Status.WARN if unregistered else Status.OK
    summary = f"{len(registered)} of {len(req.phones)} agents' and supervisors' phones registered"
    return Check(name, status, summary, tuple(details), tuple(fix))


def _trunks(req: Requirements, facts: PBXFacts) -> Check:
    name = "trunks"
    if not req.trunks:
        return Check(name, Status.OK, "no trunks in the config")
    details: list[str] = []
    statuses: list[Status] = []
    fix: list[str] = []
    reachable = 0
    for trunk in req.trunks:
        reply = facts.trunks.get(trunk.name, NOT_ASKED)
        if (skip := _denied(name, reply, facts, ACTION_PJSIP_SHOW_ENDPOINT, ("system",))) is not None:
            return skip
        if reply.error is not None:
            statuses.append(Status.FAIL)
            details.append(f"{trunk.name} ({trunk.why}): not configured on the PBX ({reply.error})")
            fix.append(
                "pjsip.conf on the PBX is not the rendered one: `callcenter apply` (reloads res_pjsip)"
            )
            continue
        contacts = reply.events("ContactStatusDetail")
        states = [c.get("Status", "") or "" for c in contacts]
        if "Reachable" in states:
            reachable += 1
            rtts = [
                int(c.get("RoundtripUsec", "") or "0")
                for c in contacts
                if c.get("Status") == "Reachable" and (c.get("RoundtripUsec", "") or "").isdigit()
            ]
            statuses.append(Status.OK)
            details.append(f"{trunk.name}: reachable" + (f" ({min(rtts) / 1000:.1f} ms)" if rtts else ""))
        elif states and all(s == "Unreachable" for s in states):
            statuses.append(Status.FAIL)
            uris = ", ".join(c.get("URI", "") or "" for c in contacts)
            details.append(f"{trunk.name} ({trunk.why}): unreachable: no answer to OPTIONS at {uris}")
            fix.append(
                "check the trunk's host and port in trunks.yaml, that the name resolves on the PBX,"
                " and that the firewall lets SIP through both ways"
            )
        elif states:
            statuses.append(Status.WARN)
            details.append(
                f"{trunk.name} ({trunk.why}): not qualified yet ({', '.join(sorted(set(states)))})"
            )
            fix.append(
                "Asterisk sends its first OPTIONS to a trunk within qualify_frequency seconds of"
                " starting: run doctor again in a minute"
            )
        else:
            statuses.append(Status.WARN)
            details.append(f"{trunk.name} ({trunk.why}): no contact to reach it")
    summary = f"{reachable} of {len(req.trunks)} trunks reachable"
    return Check(name, worst(statuses), summary, tuple(details), tuple(dict.fromkeys(fix)))


def _data_dir(facts: PBXFacts) -> str | None:
    if not facts.data_dir.ok:
        return None
    return (facts.data_dir.messages[0].get("Value", "") or "").strip() or None


def _files(req: Requirements, facts: PBXFacts, files: FileFacts) -> list[Check]:
    names_ = ("core sounds", "center prompts", "music on hold")
    if not files.checked:
        why = f"not checked: {files.where}; run `callcenter doctor` on the PBX's host to check its files"
        return [Check(n, Status.SKIP, why) for n in names_]
    return [_core_sounds(req, facts, files), _own_sounds(req, files), _music(req, files)]


def _in_core_package(sound: str) -> bool:
    """Whether Asterisk's core sound set has ``sound``: its digits go 0-20, then the tens
    (a number like 23 is said as ``digits/20`` then ``digits/3``)."""
    head, _, tail = sound.partition("/")
    if head == "digits" and tail.isdigit():
        n = int(tail)
        return n <= 20 or (n < 100 and n % 10 == 0)
    return True


def _core_sounds(req: Requirements, facts: PBXFacts, files: FileFacts) -> Check:
    name = "core sounds"
    action, classes = _DIAGNOSTIC_ACTIONS["sounds"]
    if not req.core_sounds:
        return Check(name, Status.OK, "the config plays no Asterisk core sounds")
    if (skip := _denied(name, facts.data_dir, facts, action, classes)) is not None:
        return skip
    data_dir = _data_dir(facts)
    if data_dir is None:
        why = facts.data_dir.error or "empty"
        return Check(
            name, Status.SKIP, f"not checked: the PBX did not say its data dir (Getvar {VAR_DATA_DIR}: {why})"
        )
    sounds = sounds_dir_of(data_dir)
    missing = [
        n for n in req.core_sounds if not any(p in files.sounds for p in core_sound_paths(n.name, sounds))
    ]
    if not missing:
        return Check(
            name, Status.OK, f"all {len(req.core_sounds)} found in {sounds} (language {CORE_SOUNDS_LANGUAGE})"
        )
    installable = [n for n in missing if _in_core_package(n.name)]
    unsayable = [n for n in missing if not _in_core_package(n.name)]
    details: list[str] = []
    fix: list[str] = []
    if installable:
        by_why: dict[str, list[str]] = {}
        for n in installable:
            by_why.setdefault(n.why, []).append(n.name)
        details += [f"missing: {_listing(found)} ({why})" for why, found in by_why.items()]
        elsewhere = [d for d in files.other_sounds if d != sounds]
        if elsewhere:
            fix.append(
                f"they are in {elsewhere[0]}, but this Asterisk reads {sounds}: set astdatadir =>"
                f" {posixpath.dirname(elsewhere[0])} in asterisk.conf [directories] and restart, or"
                f" link {posixpath.join(sounds, CORE_SOUNDS_LANGUAGE)} to"
                f" {posixpath.join(elsewhere[0], CORE_SOUNDS_LANGUAGE)}"
            )
        else:
            fix.append(
                f"install Asterisk's English core sounds: apt-get install {SOUND_PACKAGES} (Debian/Ubuntu),"
                " or unpack asterisk-core-sounds-en-wav-current.tar.gz into"
                f" {posixpath.join(sounds, CORE_SOUNDS_LANGUAGE)}"
            )
    if unsayable:
        details.append(
            f"no Asterisk sound set has {_listing([n.name for n in unsayable], 6)} ({unsayable[0].why}):"
            " Asterisk says a number above 20 in two files (digits/20, then digits/3)"
        )
        fix.append(
            "until the announcement says such numbers in parts, callers at those positions or"
            " waits hear nothing for the number (announce_position / announce_wait in acd.yaml)"
        )
    summary = (
        f"{len(missing)} of {len(req.core_sounds)} missing from {sounds} (language {CORE_SOUNDS_LANGUAGE})"
    )
    # What no package provides is the center's to fix, not the PBX's: a warning.
    return Check(name, Status.FAIL if installable else Status.WARN, summary, tuple(details), tuple(fix))


def _own_sounds(req: Requirements, files: FileFacts) -> Check:
    name = "center prompts"
    if not req.own_sounds:
        return Check(name, Status.OK, "the config plays no prompts of its own")
    missing = [n for n in req.own_sounds if n.name not in files.sounds]
    where = req.sounds_dir
    if not missing:
        return Check(name, Status.OK, f"all {len(req.own_sounds)} found under {where}")
    shown = [posixpath.relpath(n.name, where) if n.name.startswith(where + "/") else n.name for n in missing]
    return Check(
        name,
        Status.FAIL,
        f"{len(missing)} of {len(req.own_sounds)} missing under {where}",
        (f"missing: {_listing(shown)}",),
        (
            "on the PBX's host: callcenter apply --install-prompts (copies ivr_prompts/<lang>/*.wav"
            f" to {where}; `make prompts` makes any that are not recorded yet)",
        ),
    )


def _music(req: Requirements, files: FileFacts) -> Check:
    name = "music on hold"
    if not req.music:
        return Check(name, Status.OK, "no music-on-hold classes in musiconhold.conf")
    details: list[str] = []
    empty = 0
    for cls, directory in req.music:
        count = files.music.get(directory)
        if count is None:
            details.append(f"class {cls}: no directory {directory}")
        elif count == 0:
            details.append(f"class {cls}: no audio files in {directory}")
        else:
            continue
        empty += 1
    if not empty:
        return Check(name, Status.OK, f"all {len(req.music)} classes have audio files")
    source = next(iter(files.other_music), None)
    fix = (
        f"put audio files (8 kHz WAV) in each directory, e.g. {MUSIC_PACKAGES} (Debian/Ubuntu)"
        + (
            f": ln -s {source}/*.wav into each"
            if source
            else f": apt-get install {MUSIC_PACKAGES}, then link its files in"
        )
        + "; then asterisk -rx 'moh reload'",
    )
    return Check(
        name, Status.FAIL, f"{empty} of {len(req.music)} classes would play silence", tuple(details), fix
    )


# ============================================================================ the report
def exit_status(checks: Iterable[Check]) -> int:
    """0 when nothing failed (warnings and skipped checks allowed), else 1."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def format_report(checks: Sequence[Check], *, title: str) -> str:
    lines = [title]
    for c in checks:
        lines.append(f"{c.status.value:<5} {c.name}: {c.summary}")
        lines += [f"        {d}" for d in c.details]
        lines += [f"      fix: {f}" for f in c.fix]
    counts = {s: sum(1 for c in checks if c.status is s) for s in Status}
    lines.append(
        f"doctor: {counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), {counts[Status.FAIL]} failed,"
        f" {counts[Status.SKIP]} not checked"
    )
    return "\n".join(lines) + "\n"
