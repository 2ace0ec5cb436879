"""Pure: the simulated PBX's reading of ``extensions.conf`` (contexts, extensions, priorities).

Parses the subset the product renders (and the traces' own dialplans use): ``[context]`` sections,
``exten => name,priority(label),App(args)``, ``same => n,...``, ``include => other``, ``;``
comments (``\\;`` is a literal semicolon), ``[globals]`` variables. Extension patterns follow
Asterisk: ``_`` then ``X`` (0-9), ``Z`` (1-9), ``N`` (2-9), ``[a-z0-9]`` classes, ``.`` (one or
more) and ``!`` (zero or more); an exact name beats a pattern, the most specific pattern wins.

Every application must be one the simulator implements (``KNOWN_APPLICATIONS``) and every
``${FUNC(...)}`` one it knows (``KNOWN_FUNCTIONS``): :func:`parse` raises a located
:class:`~callcenter.errors.ConfigError` naming context, extension and priority otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from callcenter.errors import ConfigError, ValidationError

KNOWN_APPLICATIONS: Final = frozenset(
    {
        "AGI",
        "AMD",
        "Answer",
        "Background",
        "Bridge",
        "Busy",
        "ChanSpy",
        "Congestion",
        "Dial",
        "Goto",
        "GotoIf",
        "GotoIfTime",
        "Hangup",
        "Milliwatt",
        "MixMonitor",
        "MusicOnHold",
        "NoOp",
        "Playback",
        "Progress",
        "Ringing",
        "Set",
        "WaitForSilence",
        "StopMixMonitor",
        "VoiceMail",
        "Wait",
        "WaitExten",
    }
)

KNOWN_FUNCTIONS: Final = frozenset(
    {
        "CALLERID",
        "CHANNEL",
        "CONNECTEDLINE",
        "CUT",
        "EXISTS",
        "IF",
        "ISNULL",
        "LEN",
        "PJSIP_HEADER",
        "TOLOWER",
        "TOUPPER",
    }
)

_FUNC_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\(")


@dataclass(frozen=True, slots=True)
class Step:
    """One priority: the application, its raw (unsubstituted) data and where it was written."""

    context: str
    exten: str
    priority: int
    app: str
    data: str
    label: str | None
    line: int


@dataclass(slots=True)
class Extension:
    name: str
    steps: dict[int, Step] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    name: str
    extensions: dict[str, Extension] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    # Patterns in definition order; matching sorts candidates by specificity.
    patterns: list[tuple[str, re.Pattern[str], tuple[int, ...]]] = field(default_factory=list)


def _pattern_regex(pattern: str) -> tuple[re.Pattern[str], tuple[int, ...]]:
    """Compile ``_NXX.``-style pattern (without the leading ``_``); also return its specificity
    key (per position, how many characters it admits: smaller is more specific)."""
    out: list[str] = []
    key: list[int] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        up = ch.upper()
        if up == "X":
            out.append("[0-9]")
            key.append(10)
        elif up == "Z":
            out.append("[1-9]")
            key.append(9)
        elif up == "N":
            out.append("[2-9]")
            key.append(8)
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"unclosed [ in pattern _{pattern}")
            body = pattern[i + 1 : end]
            out.append("[" + re.escape(body).replace("\\-", "-") + "]")
            key.append(max(1, len(body)))
            i = end
        elif ch == ".":
            out.append(".+")
            key.append(1000)
        elif ch == "!":
            out.append(".*")
            key.append(1001)
        else:
            out.append(re.escape(ch))
            key.append(1)
        i += 1
    return re.compile("".join(out) + r"\Z"), tuple(key)


def _strip_comment(line: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if ch == ";":
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def _split_app(text: str) -> tuple[str, str]:
    text = text.strip()
    paren = text.find("(")
    if paren < 0:
        return text, ""
    app = text[:paren].strip()
    data = text[paren + 1 :]
    if data.endswith(")"):
        data = data[:-1]
    return app, data


@dataclass(slots=True)
class Dialplan:
    """The parsed dialplan: contexts by name, plus ``[globals]`` variables."""

    contexts: dict[str, Context] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)
    file: str = "extensions.conf"

    # ------------------------------------------------------------ lookup
    def has_context(self, context: str) -> bool:
        return context in self.contexts

    def match(self, context: str, exten: str, _seen: frozenset[str] = frozenset()) -> Extension | None:
        """The extension of ``context`` (or its includes) that ``exten`` reaches, if any."""
        ctx = self.contexts.get(context)
        if ctx is None or context in _seen:
            return None
        found = ctx.extensions.get(exten)
        if found is not None:
            return found
        best: tuple[tuple[int, ...], str] | None = None
        for name, regex, key in ctx.patterns:
            if regex.match(exten) and (best is None or key < best[0]):
                best = (key, name)
        if best is not None:
            return ctx.extensions[best[1]]
        seen = _seen | {context}
        for inc in ctx.includes:
            hit = self.match(inc, exten, seen)
            if hit is not None:
                return hit
        return None

    def find(self, context: str, exten: str, priority: int) -> Step | None:
        ext = self.match(context, exten)
        if ext is None:
            return None
        return ext.steps.get(priority)

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        return self.find(context, exten, priority) is not None

    def resolve_label(self, context: str, exten: str, label: str) -> int | None:
        ext = self.match(context, exten)
        if ext is None:
            return None
        return ext.labels.get(label)

    def steps(self) -> Iterable[Step]:
        for ctx in self.contexts.values():
            for ext in ctx.extensions.values():
                yield from ext.steps.values()


def parse(text: str, *, file: str = "extensions.conf", check: bool = True) -> Dialplan:
    """Parse ``extensions.conf`` text; located :class:`ConfigError` (or a :class:`ValidationError`
    holding several) on anything the simulator cannot run."""
    plan = Dialplan(file=file)
    problems: list[ConfigError] = []
    current: str | None = None
    last: tuple[str, str, int] | None = None  # (context, exten, priority) for "same => n"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                problems.append(ConfigError("unclosed [context]", file=file, line=lineno))
                continue
            current = line[1:end].strip()
            last = None
            if current not in ("general", "globals"):
                plan.contexts.setdefault(current, Context(current))
            continue
        if current is None:
            problems.append(ConfigError("a line outside any [context]", file=file, line=lineno))
            continue
        if current == "general":
            continue
        key, sep, value = line.partition("=>")
        if not sep:
            key, sep, value = line.partition("=")
            if current == "globals" and sep:
                plan.globals[key.strip()] = value.strip()
                continue
            problems.append(ConfigError(f"cannot read {line!r}", file=file, line=lineno))
            continue
        key = key.strip().lower()
        value = value.strip()
        ctx = plan.contexts[current]
        if key == "include":
            ctx.includes.append(value)
            continue
        if key not in ("exten", "same"):
            problems.append(ConfigError(f"unknown directive {key!r}", file=file, line=lineno))
            continue
        if key == "exten":
            name, _, rest = value.partition(",")
            name = name.strip()
        else:
            if last is None or last[0] != current:
                problems.append(ConfigError("'same =>' without a previous exten", file=file, line=lineno))
                continue
            name, rest = last[1], value
        prio_text, _, app_text = rest.partition(",")
        prio_text = prio_text.strip()
        label: str | None = None
        lab = re.fullmatch(r"([^()]*)\(([^()]*)\)", prio_text)
        if lab:
            prio_text, label = lab.group(1).strip(), lab.group(2).strip()
        if prio_text == "hint":
            continue
        if prio_text == "n":
            if last is None or last[1] != name or last[0] != current:
                problems.append(
                    ConfigError(
                        f"priority n for {name!r} without a previous priority", file=file, line=lineno
                    )
                )
                continue
            priority = last[2] + 1
        else:
            try:
                priority = int(prio_text)
            except ValueError:
                problems.append(ConfigError(f"bad priority {prio_text!r}", file=file, line=lineno))
                continue
        app, data = _split_app(app_text)
        ext = ctx.extensions.get(name)
        if ext is None:
            ext = ctx.extensions[name] = Extension(name)
            if name.startswith("_"):
                try:
                    regex, spec = _pattern_regex(name[1:])
                except ValueError as exc:
                    problems.append(ConfigError(str(exc), file=file, line=lineno))
                    continue
                ctx.patterns.append((name, regex, spec))
        step = Step(current, name, priority, app, data, label, lineno)
        ext.steps[priority] = step
        if label:
            ext.labels[label] = priority
        last = (current, name, priority)
        if check:
            where = f"[{current}] {name},{priority}"
            if app not in KNOWN_APPLICATIONS:
                problems.append(
                    ConfigError(
                        f"{where}: application {app!r} is not one the simulated PBX runs",
                        file=file,
                        line=lineno,
                        key=app,
                    )
                )
            for fn in _FUNC_RE.findall(data):
                if fn not in KNOWN_FUNCTIONS:
                    problems.append(
                        ConfigError(
                            f"{where}: function {fn!r} is not one the simulated PBX knows",
                            file=file,
                            line=lineno,
                            key=fn,
                        )
                    )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ValidationError(problems)
    return plan
