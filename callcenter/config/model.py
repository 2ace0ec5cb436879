"""Pure: the typed model of one call center, as ops describe it in ``dialplans/*.yaml``.

Everything here is a frozen dataclass (immutable, comparable, safe to share between tasks). The
loader (``callcenter.config.load``) builds a ``Config`` from YAML and reports every mistake with
file, line and key; ``callcenter.config.validate`` checks the cross-references. Code that *uses*
the configuration (IVR, ACD, supervisor, dialer, renderer) reads only this module's types.

Conventions:

* Ids are short safe words (``[a-z][a-z0-9_-]*`` for named things; digits for agent ids and
  extensions). Mappings keyed by id keep the YAML's order (dicts are ordered) and are exposed as
  ``Mapping`` so nobody mutates them.
* Durations are seconds (``int`` or ``float``), levels are ints, times of day are
  ``datetime.time`` in the center's local time, dates are ``datetime.date``.
* Secrets (PINs, passwords) are ``Secret``: the value is resolved from ``${ENV_VAR}`` at load time
  and hidden from ``repr``.
* IVR flows are graphs of nodes; every transition is a **node id in the same flow**. Inline
  actions written in YAML (``"1": {queue: sales}``) are turned by the loader into nodes of their
  own with derived ids (``main.1``), so the interpreter only ever follows node ids. Entering
  another flow is a ``GotoFlowNode``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def frozen_map(items: Mapping[K, V] | None = None) -> Mapping[K, V]:
    """A read-only view of a copy of ``items`` (keeps insertion order)."""
    return MappingProxyType(dict(items or {}))


# =============================================================================== small values
@dataclass(frozen=True)
class Where:
    """A place in the configuration sources: file (relative to the config dir) and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Secret:
    """A secret value. ``env`` names the environment variable it came from (``${ENV}``), if any;
    ``in_yaml``: the value is written in the YAML (literally, or a ``${ENV:-default}``'s default)."""

    value: str = field(repr=False)
    env: str | None = None
    in_yaml: bool = True

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True)
class TimeRange:
    """``start <= t < end`` in local time; ``end == 00:00`` means midnight at the end of the day."""

    start: dt.time
    end: dt.time

    def contains(self, t: dt.time) -> bool:
        if self.end == dt.time(0, 0):
            return t >= self.start
        return self.start <= t < self.end


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()


@dataclass(frozen=True)
class Holiday:
    """A date with special hours: ``hours`` empty means closed all day."""

    date: dt.date
    name: str
    hours: tuple[TimeRange, ...] = ()


class ScheduleStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    HOLIDAY = "holiday"  # a named closure (or outside a holiday's special hours)


@dataclass(frozen=True)
class Center:
    """The center itself: name, time zone, opening hours, holidays and languages."""

    name: str
    timezone: str  # an IANA name, checked to exist by the loader
    hours: Mapping[int, tuple[TimeRange, ...]]  # weekday (0 = Monday) -> open ranges; absent = closed
    holidays: tuple[Holiday, ...] = ()
    languages: tuple[str, ...] = ("en",)  # the first is the default
    country: str = "US"  # default region for phone-number normalisation (ISO 3166 alpha-2)

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def holiday_on(self, day: dt.date) -> Holiday | None:
        for h in self.holidays:
            if h.date == day:
                return h
        return None

    def status_at(self, local: dt.datetime) -> ScheduleStatus:
        """Open, closed or holiday at ``local`` (a wall-clock time in ``timezone``; the caller
        converts, DST included). Pure: never reads the clock."""
        t = local.time().replace(tzinfo=None)
        holiday = self.holiday_on(local.date())
        if holiday is not None:
            if any(r.contains(t) for r in holiday.hours):
                return ScheduleStatus.OPEN
            return ScheduleStatus.HOLIDAY
        if any(r.contains(t) for r in self.hours.get(local.weekday(), ())):
            return ScheduleStatus.OPEN
        return ScheduleStatus.CLOSED


# =============================================================================== Asterisk links
@dataclass(frozen=True)
class AMISettings:
    """How the controller reaches Asterisk's manager interface (and the user rendered for it)."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "callcenter"
    secret: Secret = Secret("")
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 5.0


@dataclass(frozen=True)
class AMIApplyUser:
    """The second manager user, for ``callcenter apply`` alone (``Reload``; write class ``config``,
    no events); reached at ``asterisk.ami``'s host and port. The controller's user cannot reload."""

    username: str = "callcenter-apply"
    secret: Secret = Secret("")


@dataclass(frozen=True)
class AGISettings:
    """Where Asterisk reaches the controller's FastAGI server (``agi://host:port/<script>``)."""

    host: str = "127.0.0.1"
    port: int = 4573
    bind: str = "127.0.0.1"  # the address the controller listens on
    # Peers (IP addresses or networks) besides loopback that may connect; required to bind
    # beyond loopback.
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class AsteriskSettings:
    ami: AMISettings = AMISettings()
    agi: AGISettings = AGISettings()
    ami_apply: AMIApplyUser | None = None  # rendered as its own manager user when set
    sounds_dir: str = "/var/lib/asterisk/sounds/callcenter"  # where prompts are installed
    moh_dir: str = "/var/lib/asterisk/moh"


# =============================================================================== trunks, numbers
class Transport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class DtmfMode(enum.StrEnum):
    """How an endpoint's DTMF travels (PJSIP's ``dtmf_mode``)."""

    RFC4733 = "rfc4733"  # telephone-event RTP packets (RFC 4733 / 2833): most phones and carriers
    INFO = "info"  # SIP INFO requests (some desk phones and softphones)
    INBAND = "inband"  # tones in the audio: only with an uncompressed codec (ulaw, alaw)
    AUTO = "auto"  # RFC 4733 when the far end offers it, else inband
    AUTO_INFO = "auto_info"  # RFC 4733 when the far end offers it, else SIP INFO


class SessionTimers(enum.StrEnum):
    """SIP session timers (RFC 4028, PJSIP's ``timers``): ``yes`` uses them when the far end
    supports them, ``required`` refuses a peer without them, ``always`` uses them regardless."""

    NO = "no"
    YES = "yes"
    REQUIRED = "required"
    ALWAYS = "always"


@dataclass(frozen=True)
class SipMedia:
    """What a PJSIP endpoint (a trunk, or every phone) does about DTMF and dead legs.

    A leg that sends no RTP for ``rtp_timeout`` seconds (``rtp_timeout_hold`` while on hold) is
    ended by Asterisk with hangup cause 44; a dialog that is not refreshed within
    ``timers_sess_expires`` ends with cause 18. Either frees the agent on the other side; the
    call log says ``media_timeout`` / ``session_timeout`` (``reporting.records.ended_by``).
    ``0`` turns an RTP timeout off."""

    dtmf_mode: DtmfMode = DtmfMode.RFC4733
    rtp_timeout: int = 30
    rtp_timeout_hold: int = 300
    timers: SessionTimers = SessionTimers.YES
    timers_sess_expires: int = 1800
    timers_min_se: int = 90


@dataclass(frozen=True)
class TrunkAuth:
    username: str
    password: Secret


@dataclass(frozen=True)
class Trunk:
    """A SIP carrier: outbound registration/auth and inbound identification by its own source
    addresses (``match``) only, never by the user name in From."""

    id: str
    host: str
    port: int = 5060
    transport: Transport = Transport.UDP
    auth: TrunkAuth | None = None  # what we answer the carrier's challenges with (registration, calls)
    inbound_auth: TrunkAuth | None = None  # what the carrier must answer ours with, if it can
    match: tuple[str, ...] = ()  # IPs / CIDRs identifying the carrier's inbound INVITEs
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    trust_caller_id: bool = True  # take the carrier's P-Asserted-Identity / Remote-Party-ID
    caller_id: str | None = None  # outbound caller id number (E.164) when a campaign sets none
    outbound: bool = True  # may carry the dialer's calls
    media: SipMedia = SipMedia()


@dataclass(frozen=True)
class Number:
    """A DID / toll-free number (E.164) answered by an IVR flow."""

    number: str  # E.164, e.g. +18005550100
    flow: str
    trunk: str | None = None
    label: str = ""
    language: str | None = None  # start the flow in this language (else the center's default)

    @property
    def dialed(self) -> str:
        """The number as Asterisk sees it in ``${EXTEN}`` (digits, no ``+``)."""
        return self.number.lstrip("+")


# =============================================================================== IVR flows
class Validation(enum.StrEnum):
    """What collected digits must look like."""

    DIGITS = "digits"  # only the length bounds
    LUHN = "luhn"  # account / card numbers with a Luhn check digit
    ACCOUNT = "account"  # an account number: digits, no leading zero


@dataclass(frozen=True, kw_only=True)
class Node:
    """Base of every IVR node. ``id`` is unique in its flow."""

    id: str


@dataclass(frozen=True, kw_only=True)
class PromptNode(Node):
    """Play ``prompts`` in order (not interruptible unless ``interruptible``), then go ``next``."""

    prompts: tuple[str, ...]
    next: str
    interruptible: bool = False


@dataclass(frozen=True, kw_only=True)
class MenuNode(Node):
    """Play ``prompt`` and wait for one digit.

    A digit in ``choices`` goes to that node. ``repeat_key`` replays the prompt (not counted).
    No digit within ``timeout`` plays ``timeout_prompt``, another digit plays ``invalid_prompt``;
    either counts one attempt; after ``max_attempts`` failed attempts the call goes ``fallback``.
    """

    prompt: str
    choices: Mapping[str, str]  # DTMF digit (0-9 * #) -> node id
    timeout: float = 5.0
    max_attempts: int = 3
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None
    repeat_key: str | None = None
    fallback: str


@dataclass(frozen=True, kw_only=True)
class CollectNode(Node):
    """Play ``prompt`` and collect ``min_digits``..``max_digits`` digits ended by ``terminator``
    (or by reaching ``max_digits``, or by ``timeout`` between digits). Valid input is stored as
    call data under ``variable`` and the call goes ``next``; invalid input plays
    ``invalid_prompt`` and retries; after ``max_attempts`` the call goes ``fallback``."""

    prompt: str
    variable: str
    min_digits: int = 1
    max_digits: int = 16
    terminator: str | None = "#"
    timeout: float = 5.0
    validation: Validation = Validation.DIGITS
    max_attempts: int = 3
    invalid_prompt: str | None = None
    next: str
    fallback: str


@dataclass(frozen=True, kw_only=True)
class HoursNode(Node):
    """Branch on the center's schedule (``Center.status_at``): ``open``, ``closed`` and
    ``holiday`` (the latter defaults to ``closed`` when not given)."""

    open: str
    closed: str
    holiday: str | None = None


@dataclass(frozen=True, kw_only=True)
class LanguageNode(Node):
    """Play ``prompt``; a digit in ``choices`` sets the call's language; no or a wrong digit
    keeps the current one after ``max_attempts``. Then go ``next``."""

    prompt: str
    choices: Mapping[str, str]  # digit -> language code (one of Center.languages)
    timeout: float = 5.0
    max_attempts: int = 2
    next: str


@dataclass(frozen=True, kw_only=True)
class SetNode(Node):
    """Set routing attributes of the call, then go ``next``.

    ``skills`` are added to the call's requirements (skill -> minimum level), ``priority``
    replaces the call's priority, ``data`` is merged into the call's data, ``language`` switches
    the language."""

    skills: Mapping[str, int] = field(default_factory=lambda: frozen_map({}))
    priority: int | None = None
    data: Mapping[str, str] = field(default_factory=lambda: frozen_map({}))
    language: str | None = None
    next: str


@dataclass(frozen=True, kw_only=True)
class LookupNode(Node):
    """Look the caller up in the customers table (by E.164 number) within ``timeout``; the
    customer's tier may raise the priority (``tier_priority``: tier -> priority). Then go
    ``found`` or ``not_found`` (a timeout or failure counts as not found)."""

    timeout: float = 0.3
    tier_priority: Mapping[str, int] = field(default_factory=lambda: frozen_map({}))
    found: str
    not_found: str


@dataclass(frozen=True, kw_only=True)
class GotoFlowNode(Node):
    """Continue in another flow, at its start node."""

    flow: str


@dataclass(frozen=True, kw_only=True)
class QueueNode(Node):
    """Terminal: hand the call to the ACD in ``queue`` (with the skills, priority, language and
    data gathered so far, plus the queue's own requirements). ``prompt`` plays first."""

    queue: str
    prompt: str | None = None
    priority: int | None = None


@dataclass(frozen=True, kw_only=True)
class VoicemailNode(Node):
    """Terminal: play ``prompt`` then leave a message in ``mailbox``."""

    mailbox: str
    prompt: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallbackNode(Node):
    """Terminal: register a callback request in ``queue`` for the digits collected into
    ``number_variable`` (or the caller ID, when the number's trunk sets ``trust_caller_id``),
    play ``prompt`` (a confirmation), then hang up. A number the dial-out policy refuses leaves
    the caller waiting in ``queue`` instead."""

    queue: str
    prompt: str | None = None
    number_variable: str | None = None


@dataclass(frozen=True, kw_only=True)
class HangupNode(Node):
    """Terminal: play ``prompt`` (if any) and hang up."""

    prompt: str | None = None


IVRNode = (
    PromptNode
    | MenuNode
    | CollectNode
    | HoursNode
    | LanguageNode
    | SetNode
    | LookupNode
    | GotoFlowNode
    | QueueNode
    | VoicemailNode
    | CallbackNode
    | HangupNode
)

INPUT_NODES = (MenuNode, CollectNode, LanguageNode)  # nodes that wait for the caller


def node_targets(node: IVRNode) -> tuple[str, ...]:
    """The node ids ``node`` may go to next (same flow), in a stable order."""
    match node:
        case PromptNode() | SetNode():
            return (node.next,)
        case MenuNode():
            return (*node.choices.values(), node.fallback)
        case CollectNode():
            return (node.next, node.fallback)
        case HoursNode():
            return tuple(t for t in (node.open, node.closed, node.holiday) if t is not None)
        case LanguageNode():
            return (node.next,)
        case LookupNode():
            return (node.found, node.not_found)
        case _:
            return ()


def node_prompts(node: IVRNode) -> tuple[str, ...]:
    """Every prompt id ``node`` may play."""
    match node:
        case PromptNode():
            return node.prompts
        case MenuNode():
            return tuple(p for p in (node.prompt, node.invalid_prompt, node.timeout_prompt) if p)
        case CollectNode():
            return tuple(p for p in (node.prompt, node.invalid_prompt) if p)
        case LanguageNode():
            return (node.prompt,)
        case QueueNode() | VoicemailNode() | CallbackNode() | HangupNode():
            return (node.prompt,) if node.prompt else ()
        case _:
            return ()


@dataclass(frozen=True)
class Flow:
    """An IVR flow: nodes by id (YAML order) and the node the call starts at."""

    id: str
    start: str
    nodes: Mapping[str, IVRNode]

    def node(self, node_id: str) -> IVRNode:
        return self.nodes[node_id]


# =============================================================================== prompts
@dataclass(frozen=True)
class Prompt:
    """A recorded prompt: text per language (``ivr_prompts/prompts.yaml``)."""

    id: str
    texts: Mapping[str, str]  # language -> text


@dataclass(frozen=True)
class PromptCatalog:
    """Every prompt, and which (prompt, language) pairs have audio on disk
    (``ivr_prompts/<lang>/<id>.wav``)."""

    prompts: Mapping[str, Prompt] = field(default_factory=lambda: frozen_map({}))
    audio: frozenset[tuple[str, str]] = frozenset()

    def has_audio(self, prompt_id: str, language: str) -> bool:
        return (prompt_id, language) in self.audio


def prompt_sound(prompt_id: str, language: str) -> str:
    """The sound name to give Playback / STREAM FILE (relative to ``AsteriskSettings.sounds_dir``,
    no extension): ``<language>/<prompt id>``."""
    return f"{language}/{prompt_id}"


# =============================================================================== ACD
class Strategy(enum.StrEnum):
    """How the ACD picks among eligible available agents."""

    LONGEST_IDLE = "longest_idle"
    LEAST_CALLS = "least_calls"
    LEAST_TALK_TIME = "least_talk_time"  # least talk time handled, then longest idle
    BEST_SKILL = "best_skill"
    ROUND_ROBIN = "round_robin"
    RING_ALL = "ring_all"


class RecordingPolicy(enum.StrEnum):
    NEVER = "never"
    ON_DEMAND = "on_demand"  # started by the agent (feature code / API)
    ALWAYS = "always"


class RonaAction(enum.StrEnum):
    """What happens to an agent after ``rona_count`` consecutive ring-no-answers."""

    NOT_READY = "not_ready"
    PAUSE = "pause"  # paused with reason ``Queue.rona_pause_reason``
    LOGOUT = "logout"


class OverflowKind(enum.StrEnum):
    QUEUE = "queue"
    VOICEMAIL = "voicemail"
    FLOW = "flow"
    HANGUP = "hangup"


@dataclass(frozen=True)
class Overflow:
    """Where a call goes when it has waited ``Queue.max_wait``: another queue (keeping its place
    by arrival time), a mailbox, an IVR flow, or a hang-up with a message (``target`` = prompt)."""

    kind: OverflowKind
    target: str | None = None


@dataclass(frozen=True)
class Relaxation:
    """After ``after_seconds`` of waiting: lower every required level to ``min_level`` and/or
    add ``add_skill`` (at ``add_skill_level``) as an alternative the call accepts."""

    after_seconds: float
    min_level: int | None = None
    add_skill: str | None = None
    add_skill_level: int = 1


@dataclass(frozen=True)
class Threshold:
    """One watched metric's amber and red limits (either may be None: not watched at that level)."""

    amber: float | None = None
    red: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """A queue's wallboard and console thresholds: service level (percent) below, longest wait
    (seconds) and callers waiting above. Absent ones default from the queue's own service-level
    target (amber below the target, red 15 points under it; the wait amber past the target's
    seconds, red past twice them; the number waiting unwatched)."""

    service_level: Threshold | None = None
    longest_wait: Threshold | None = None
    waiting: Threshold | None = None


@dataclass(frozen=True)
class Queue:
    id: str
    name: str
    skills: Mapping[str, int]  # required skill -> minimum proficiency (1-10)
    priority: int = 0  # base priority of its calls (higher first)
    sl_percent: float = 80.0  # service-level target: sl_percent % answered within sl_seconds
    sl_seconds: float = 20.0
    max_wait: float | None = None  # then overflow
    overflow: Overflow | None = None
    announce_period: float | None = 60.0  # position / EWT announcement period (None: never)
    announce_position: bool = True
    announce_wait: bool = True
    music_class: str = "default"
    wrapup: float = 10.0
    recording: RecordingPolicy = RecordingPolicy.NEVER
    callback_offer_after: float | None = None  # offer a callback when EWT exceeds this
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout: float = 15.0  # RONA timeout for the agent leg
    rona_count: int = 1  # consecutive RONAs before rona_action
    rona_action: RonaAction = RonaAction.NOT_READY
    rona_pause_reason: str | None = None
    relaxation: tuple[Relaxation, ...] = ()
    mailbox: str | None = None  # the queue's voicemail box
    caller_id: str | None = None  # shown on the agent's phone instead of the caller's
    dispositions: tuple[str, ...] = ()  # wrap-up codes an agent chooses from (``Config.dispositions``)
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True)
class Agent:
    id: str  # digits, typed at login
    name: str
    endpoint: str  # PJSIP endpoint name
    extension: str  # internal extension (digits)
    skills: Mapping[str, int]  # skill -> proficiency 1-10
    pin: Secret
    mailbox: str | None = None
    sip_password: Secret | None = None  # the phone's SIP registration password (pjsip.conf)
    dtmf_mode: DtmfMode | None = None  # this phone's, when not ``Config.phones.dtmf_mode``


@dataclass(frozen=True)
class Supervisor:
    id: str  # digits
    name: str
    endpoint: str
    pin: Secret
    queues: tuple[str, ...]  # the queues whose agents they may monitor
    extension: str | None = None
    sip_password: Secret | None = None
    dtmf_mode: DtmfMode | None = None  # this phone's, when not ``Config.phones.dtmf_mode``


OVERRUN_PREFIX = "overrun:"


@dataclass(frozen=True)
class PauseReason:
    """A pause reason code: ``code`` is its id, ``digits`` what agents type after the pause
    feature code. A pause longer than ``max_minutes`` is logged as an overrun: the agent stays
    paused, with reason ``overrun:<code>`` from then on (``OVERRUN_PREFIX``)."""

    code: str
    name: str
    digits: str
    max_minutes: int | None = None


@dataclass(frozen=True)
class DispositionCode:
    """A wrap-up code: ``code`` is its id (stored with the call), ``label`` what agents read."""

    code: str
    label: str


#: The code stored when a wrap-up ended without the disposition its call needed (never configurable).
NO_DISPOSITION: Final = "none"


@dataclass(frozen=True)
class PCIRule:
    """Recording pause for card data: the agent pauses (feature code / API); the recording
    resumes by the agent or at the latest after ``auto_resume`` seconds."""

    enabled: bool = True
    auto_resume: float | None = 180.0


class RecordingFormat(enum.StrEnum):
    WAV = "wav"
    WAV49 = "wav49"
    GSM = "gsm"


@dataclass(frozen=True)
class Recording:
    directory: str = "/var/spool/asterisk/monitor/callcenter"
    format: RecordingFormat = RecordingFormat.WAV
    retention_days: int = 90
    pci: PCIRule = PCIRule()


@dataclass(frozen=True)
class FeatureCodes:
    """What agents and supervisors dial. Agent and supervisor codes are followed by digits where
    noted: pause + reason digits, listen/whisper/barge/ask + agent id."""

    agent_login: str = "*11"
    agent_logout: str = "*12"
    agent_pause: str = "*13"  # optionally followed by a reason's digits
    agent_unpause: str = "*14"
    pci_pause: str = "*15"
    pci_resume: str = "*16"
    record_start: str = "*17"  # on-demand recording
    supervisor_listen: str = "*81"
    supervisor_whisper: str = "*82"
    supervisor_barge: str = "*83"
    supervisor_ask: str = "*80"  # followed by the agent id, then asks the mode

    def items(self) -> tuple[tuple[str, str], ...]:
        """(feature name, code) pairs, in declaration order."""
        return tuple((name, str(getattr(self, name))) for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class Security:
    """PIN checks for agent login and supervisor monitoring: after ``pin_attempts`` wrong PINs
    within ``lockout_seconds`` the id is locked for ``lockout_seconds``."""

    pin_attempts: int = 5
    lockout_seconds: float = 900.0


class DialPurpose(enum.StrEnum):
    """Why the center dials out: each checks the one dial-out policy."""

    TRANSFER = "transfer"  # an agent's blind or attended transfer
    CALLBACK = "callback"  # a caller asked to be called back
    CAMPAIGN = "campaign"  # a campaign contact


# phonenumbers' number types an operator may allow (lower case), plus ``satellite`` (the
# non-geographic satellite codes, which phonenumbers types as mobile).
NUMBER_TYPES: tuple[str, ...] = (
    "fixed_line",
    "mobile",
    "toll_free",
    "voip",
    "personal_number",
    "uan",
    "pager",
    "voicemail",
    "premium_rate",
    "shared_cost",
    "satellite",
)


@dataclass(frozen=True)
class DialOut:
    """What transfers, callbacks and campaigns may dial (``callcenter.config.dialout`` decides).

    A number must be valid, of an allowed ``number_types``, must not start with a ``deny`` prefix
    (E.164) and must be in one of ``countries`` (ISO codes; empty: the center's own country) or,
    when ``allow`` prefixes are given, start with one of them instead. Emergency numbers are
    never dialled.
    ``internal``: transfers may also reach the center's own agent and supervisor extensions.
    ``deny`` and the countries (or ``allow``) are rendered into the dialplan as well."""

    countries: tuple[str, ...] = ()
    number_types: tuple[str, ...] = ("fixed_line", "mobile", "toll_free")
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ("+1900", "+1976", "+808", "+870", "+881", "+882", "+883", "+979")
    internal: bool = True


# ChanSpy options per monitoring mode (q: quiet, E: end when the spied channel hangs up,
# d: DTMF 4/5/6 switch modes, w: whisper, B: barge).
SPY_OPTIONS: Mapping[str, str] = frozen_map({"listen": "qEd", "whisper": "qEwd", "barge": "qEBd"})


@dataclass(frozen=True)
class MusicClass:
    """A music-on-hold class: files in ``directory`` (absolute, or relative to
    ``AsteriskSettings.moh_dir``)."""

    name: str
    directory: str
    sort: str = "random"  # random | alpha


@dataclass(frozen=True)
class Mailbox:
    id: str  # digits, the voicemail box number
    name: str
    email: str | None = None
    pin: Secret | None = None


@dataclass(frozen=True)
class Fallback:
    """The static path when the controller is unreachable (``AGISTATUS`` FAILURE/NOTFOUND):
    ``prompt``, then ring ``endpoints`` (default: every agent's) for ``ring_seconds``, then
    ``mailbox``. With ``closed_prompt``, outside the center's weekly hours (Asterisk's own
    clock, ``GotoIfTime`` in the center's time zone; holidays are not known there) nobody is
    rung: ``closed_prompt`` plays, then ``mailbox``."""

    prompt: str
    ring_seconds: int = 30
    endpoints: tuple[str, ...] = ()
    mailbox: str | None = None
    closed_prompt: str | None = None


# =============================================================================== outbound
class DialMode(enum.StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


class AMDAction(enum.StrEnum):
    MESSAGE = "message"  # leave ``Campaign.amd_message``
    HANGUP = "hangup"  # hang up and retry later


@dataclass(frozen=True)
class CallingWindow:
    """Calls allowed ``start <= local time < end`` on ``days`` (weekday numbers, 0 = Monday),
    in the contact's local time (``end`` 00:00: until midnight)."""

    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(21, 0)
    days: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True)
class RetryDelays:
    """Seconds before another attempt, by the previous attempt's outcome."""

    busy: float = 600.0
    no_answer: float = 3600.0
    machine: float = 14400.0
    failed: float = 1800.0


@dataclass(frozen=True)
class AMDSettings:
    """Asterisk's ``AMD()`` parameters for a campaign (``campaigns.<id>.amd_settings``), in
    milliseconds but ``max_words`` and ``silence_threshold``, in AMD()'s own order; and how a
    message waits for the end of a machine's greeting (its beep) before it plays:
    ``WaitForSilence(beep_silence, 1, beep_max_wait)``, so the machine records it whole."""

    initial_silence: int = 2500
    greeting: int = 1500
    after_greeting_silence: int = 800
    total_analysis_time: int = 5000
    min_word_length: int = 100
    between_words_silence: int = 50
    max_words: int = 3
    silence_threshold: int = 256
    max_word_length: int = 5000
    beep_silence: int = 1000
    beep_max_wait: int = 20  # seconds

    def amd_args(self) -> str:
        return ",".join(
            str(v)
            for v in (
                self.initial_silence,
                self.greeting,
                self.after_greeting_silence,
                self.total_analysis_time,
                self.min_word_length,
                self.between_words_silence,
                self.max_words,
                self.silence_threshold,
                self.max_word_length,
            )
        )


@dataclass(frozen=True)
class CampaignBlend:
    """How a campaign shares its agents with inbound queues (``campaigns.<id>.blend``).

    ``inbound_first`` (default true): an inbound caller already waiting for one of the campaign's
    agents goes first: the dialer neither counts nor holds the agents those callers need.
    ``min_idle_for_inbound``: this many of the campaign's agents stay idle for inbound callers
    about to arrive: the dialer never paces on nor holds the last ones."""

    inbound_first: bool = True
    min_idle_for_inbound: int = 0


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    queue: str
    mode: DialMode
    caller_id: str  # E.164
    contacts: str  # CSV path, relative to the config dir
    skills: Mapping[str, int] = field(default_factory=lambda: frozen_map({}))
    trunk: str | None = None
    window: CallingWindow = CallingWindow()
    timezone: str = "UTC"  # when the number does not tell the contact's zone
    max_attempts: int = 3
    retry: RetryDelays = RetryDelays()
    dnc: str | None = None  # do-not-call list file (one number a line), relative path
    amd: bool = True
    amd_action: AMDAction = AMDAction.HANGUP
    amd_message: str | None = None  # prompt id
    abandon_limit: float = 0.03  # fraction of live-answered calls
    abandon_window_days: int = 30
    connect_within: float = 2.0  # an agent must be on within this of the greeting
    identification_prompt: str = ""  # played on an abandoned call
    max_ratio: float = 3.0  # predictive: at most this many lines per free agent
    ring_timeout: float = 25.0
    enabled: bool = True
    dispositions: tuple[str, ...] = ()  # wrap-up codes of its calls (``Config.dispositions``)
    blend: CampaignBlend = CampaignBlend()
    amd_settings: AMDSettings = AMDSettings()


@dataclass(frozen=True)
class CallbackPolicy:
    """Callbacks a waiting caller asked for (the in-queue offer, an IVR callback node): at most
    ``max_attempts`` calls, ``retry_delay`` seconds apart, only inside ``window`` in the number's
    local time (``timezone`` when the number does not tell it; default: the center's), never to
    a number on a do-not-call list."""

    max_attempts: int = 3
    retry_delay: float = 300.0
    window: CallingWindow = CallingWindow()
    timezone: str | None = None


# =============================================================================== the whole
@dataclass(frozen=True)
class Config:
    """One call center. Build it with ``callcenter.config.load.load_config(dir)``."""

    center: Center
    asterisk: AsteriskSettings = AsteriskSettings()
    trunks: Mapping[str, Trunk] = field(default_factory=lambda: frozen_map({}))
    phones: SipMedia = SipMedia()  # every agent's and supervisor's phone endpoint
    numbers: tuple[Number, ...] = ()
    flows: Mapping[str, Flow] = field(default_factory=lambda: frozen_map({}))
    skills: tuple[str, ...] = ()
    queues: Mapping[str, Queue] = field(default_factory=lambda: frozen_map({}))
    agents: Mapping[str, Agent] = field(default_factory=lambda: frozen_map({}))
    supervisors: Mapping[str, Supervisor] = field(default_factory=lambda: frozen_map({}))
    pause_reasons: Mapping[str, PauseReason] = field(default_factory=lambda: frozen_map({}))
    dispositions: Mapping[str, DispositionCode] = field(default_factory=lambda: frozen_map({}))
    recording: Recording = Recording()
    feature_codes: FeatureCodes = FeatureCodes()
    security: Security = Security()
    dialout: DialOut = DialOut()
    callbacks: CallbackPolicy = CallbackPolicy()
    music: Mapping[str, MusicClass] = field(default_factory=lambda: frozen_map({}))
    mailboxes: Mapping[str, Mailbox] = field(default_factory=lambda: frozen_map({}))
    fallback: Fallback | None = None
    campaigns: Mapping[str, Campaign] = field(default_factory=lambda: frozen_map({}))
    prompts: PromptCatalog = PromptCatalog()

    def number(self, dialed: str) -> Number | None:
        digits = dialed.lstrip("+")
        for n in self.numbers:
            if n.dialed == digits:
                return n
        return None

    def agent_by_endpoint(self, endpoint: str) -> Agent | None:
        for a in self.agents.values():
            if a.endpoint == endpoint:
                return a
        return None

    def supervisor_by_endpoint(self, endpoint: str) -> Supervisor | None:
        for s in self.supervisors.values():
            if s.endpoint == endpoint:
                return s
        return None

    def agent_serves(self, agent: Agent, queue: Queue) -> bool:
        """True when ``agent`` has every skill ``queue`` requires (at any level: relaxation may
        lower the minimum). Used for supervisors' scope and for static ring groups."""
        return all(skill in agent.skills for skill in queue.skills)

    def queues_of(self, agent: Agent) -> tuple[str, ...]:
        return tuple(q.id for q in self.queues.values() if self.agent_serves(agent, q))

    def disposition_codes(
        self, queue: str | None, campaign: str | None = None
    ) -> tuple[DispositionCode, ...]:
        """The wrap-up codes of a call: its campaign's if it has any, else its queue's (empty: no
        disposition is asked for)."""
        ids: tuple[str, ...] = ()
        camp = self.campaigns.get(campaign or "")
        if camp is not None and camp.dispositions:
            ids = camp.dispositions
        elif (q := self.queues.get(queue or "")) is not None:
            ids = q.dispositions
        return tuple(self.dispositions[c] for c in ids if c in self.dispositions)

    def pause_reason_by_digits(self, digits: str) -> PauseReason | None:
        for r in self.pause_reasons.values():
            if r.digits == digits:
                return r
        return None
