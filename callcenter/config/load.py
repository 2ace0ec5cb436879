"""Shell: read ``dialplans/*.yaml`` (and ``ivr_prompts/``) into a ``Config``, reporting every
problem with file, line and key, all in one run.

The YAML is read with PyYAML's *composer* only (never its constructor), so that every value keeps
its line, duplicate keys, anchors/aliases and tags are refused, and each scalar is converted by
*this* module according to the schema (``no`` stays a language code, ``010`` stays a string of
digits). Unknown keys are errors. Values that would change a dialplan's meaning (CR/LF, ``;``,
``,``, ``)``, ``${``...) or escape a directory (``..``) are refused where they could do harm.

Secrets may be written ``${ENV_VAR}`` or ``${ENV_VAR:-default}``; they are resolved from ``env``.

Sections (top-level keys), which may be spread over several files:

* once, in one file: ``center``, ``asterisk``, ``phones``, ``recording``, ``feature_codes``,
  ``fallback``, ``security``, ``dialout``;
* maps keyed by id, merged across files: ``trunks``, ``flows``, ``queues``, ``music``,
  ``mailboxes``, ``campaigns``, ``pause_reasons``;
* lists, concatenated: ``numbers``, ``skills``, ``agents``, ``supervisors``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import functools
import ipaddress
import os
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import phonenumbers
import yaml

from callcenter.config import model as m
from callcenter.config import secrets
from callcenter.config.validate import check
from callcenter.errors import ConfigError, ValidationError

MAX_FILE_BYTES: Final = 1_000_000  # a center's YAML is a few KB; 1 MB is generous
MAX_NODES: Final = 200_000  # YAML nodes per file (bounds the work on hostile input)
MAX_DEPTH: Final = 40

ID_RE: Final = re.compile(r"[a-z][a-z0-9_-]{0,63}")
DIGITS_RE: Final = re.compile(r"[0-9]{1,20}")
EXTEN_RE: Final = re.compile(r"[0-9]{2,10}")
ENDPOINT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LANG_RE: Final = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
E164_RE: Final = re.compile(r"\+[1-9][0-9]{6,14}")
FEATURE_RE: Final = re.compile(r"[*#]?[0-9*#]{1,8}")
DTMF_RE: Final = re.compile(r"[0-9*#]")
HOST_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")
CIDR_RE: Final = re.compile(r"[0-9A-Fa-f.:]{2,45}(/[0-9]{1,3})?")
CODEC_RE: Final = re.compile(r"[a-z0-9_]{2,16}")
USER_RE: Final = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
VAR_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
REL_PATH_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
ABS_PATH_RE: Final = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+")
EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,}")
# Display text (names, labels) may travel into a caller id or a NoOp(): no dialplan syntax.
SAFE_TEXT_RE: Final = re.compile(r"[^\x00-\x1f\x7f;,()\[\]\"<>\\$`{}|]{1,80}")
NOTE_RE: Final = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
SECRET_REF_RE: Final = re.compile(r"\$\{([A-Z_][A-Z0-9_]{0,63})(?::-(.*))?\}")
CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SECRET_RE: Final = re.compile(r"[^\x00-\x20\x7f;,()\[\]\"'\\$`{}|#]{1,64}")

Path_ = tuple[str, ...]
T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


class _Missing:
    pass


MISSING: Final = _Missing()


@dataclass
class Locations:
    """Where each configuration path (``("queues", "sales", "wrapup")``) was written."""

    places: dict[Path_, m.Where] = field(default_factory=dict)

    def record(self, path: Path_, where: m.Where) -> None:
        self.places.setdefault(path, where)

    def find(self, path: Path_) -> m.Where | None:
        """The place of ``path`` or of its nearest written ancestor."""
        for n in range(len(path), 0, -1):
            where = self.places.get(path[:n])
            if where is not None:
                return where
        return None


def dotted(path: Path_) -> str:
    return ".".join(path)


class Problems:
    """Collects located problems; ``raise_if_any`` turns them into one ``ValidationError``."""

    def __init__(self, locations: Locations) -> None:
        self.items: list[ConfigError] = []
        self.locations = locations

    def add(self, message: str, path: Path_, where: m.Where | None = None) -> None:
        where = where or self.locations.find(path)
        self.items.append(
            ConfigError(
                message,
                file=where.file if where else None,
                line=where.line if where else None,
                key=dotted(path) or None,
            )
        )

    def raise_if_any(self) -> None:
        if self.items:
            self.items.sort(key=lambda e: (e.file or "", e.line or 0))
            raise ValidationError(self.items)


# ============================================================================ strict YAML reading
class _StrictLoader(yaml.SafeLoader):
    """Composes nodes only; refuses aliases, anchors, explicit tags and runaway documents."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._count = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark

        def refuse(message: str) -> yaml.MarkedYAMLError:
            return yaml.MarkedYAMLError(None, None, message, mark)

        if isinstance(event, yaml.AliasEvent):
            raise refuse("aliases (*name) are not allowed; write the value out")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise refuse(f"anchors (&{anchor}) are not allowed; write the value out")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in ("!", "tag:yaml.org,2002:str"):
            raise refuse(f"tags ({tag}) are not allowed")
        self._count += 1
        if self._count > MAX_NODES:
            raise refuse("document too large (too many values)")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise refuse("document nested too deeply")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def read_yaml(path: Path, rel: str, problems: Problems) -> yaml.MappingNode | None:
    """Compose one YAML file; report (and return None) on any reading or syntax problem."""
    here = m.Where(rel, 1)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.add(f"file too large ({size} bytes; the limit is {MAX_FILE_BYTES})", (), here)
            return None
        data = path.read_bytes()
    except OSError as exc:
        problems.add(f"cannot read: {exc.strerror or exc}", (), here)
        return None
    if b"\x00" in data:
        problems.add("binary file: expected UTF-8 YAML text", (), here)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.add("not UTF-8 text: expected UTF-8 YAML", (), m.Where(rel, line))
        return None
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        problems.add("empty file: expected a mapping of sections (center:, queues:, ...)", (), here)
        return None
    try:
        loader = _StrictLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        ch = exc.character
        code = ch if isinstance(ch, int) else ord(ch)
        problems.add(
            f"not YAML text: character U+{code:04X} is not allowed (control characters are refused)",
            (),
            m.Where(rel, line),
        )
        return None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        reason = exc.problem or exc.context or "YAML syntax error"
        lines = text.splitlines()
        if mark is not None and mark.line < len(lines) and "\t" in lines[mark.line]:
            reason = f"{reason} (a tab character: indent with spaces)"
        elif mark is not None:
            hint = indentation_hint(lines, int(mark.line))
            if hint is not None:
                bad, said = hint
                reason = f"{said} (the YAML reader stopped at line {line}: {reason})"
                line = bad + 1
        problems.add(f"YAML syntax error: {reason}", (), m.Where(rel, line))
        return None
    except yaml.YAMLError as exc:
        problems.add(f"YAML error: {exc}", (), here)
        return None
    finally:
        loader.dispose()
    if not isinstance(node, yaml.MappingNode):
        problems.add(f"expected a mapping of sections (center:, queues:, ...), found {_kind(node)}", (), here)
        return None
    return node


def indentation_hint(lines: list[str], at: int) -> tuple[int, str] | None:
    """The likely cause of a YAML syntax error found at line index ``at``: a line at or just
    before it indented differently from the lines around it, which share one indentation (a key
    pushed in or pulled out by mistake). Returns (line index, what to say) or None."""

    def content(i: int) -> bool:
        stripped = lines[i].strip()
        return bool(stripped) and not stripped.startswith("#")

    def indent(i: int) -> int:
        return len(lines[i]) - len(lines[i].lstrip(" "))

    def neighbour(i: int, step: int) -> int | None:
        j = i + step
        while 0 <= j < len(lines):
            if content(j):
                return j
            j += step
        return None

    for cand in range(min(at, len(lines) - 1), max(-1, at - 4), -1):
        if not content(cand):
            continue
        before, after = neighbour(cand, -1), neighbour(cand, 1)
        if before is None or after is None:
            continue
        opens_block = lines[before].rstrip().endswith(":")
        mine, around = indent(cand), indent(before)
        if mine != around and indent(after) == around and not opens_block:
            return cand, (
                f"bad indentation: line {cand + 1} is indented {mine} spaces where the lines "
                f"around it ({before + 1} and {after + 1}) have {around}; indent it like them"
            )
    return None


def _kind(node: yaml.Node | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if (
        isinstance(node, yaml.ScalarNode)
        and node.style is None
        and node.value in ("", "~", "null", "Null", "NULL")
    ):
        return "null"
    return f"{node.value!r}"


# ============================================================================ typed readers
class Reader:
    """Reads typed, located values from composed YAML nodes of one file."""

    def __init__(self, rel: str, problems: Problems, env: Mapping[str, str]) -> None:
        self.rel = rel
        self.problems = problems
        self.env = env

    # -- bookkeeping
    def where(self, node: yaml.Node) -> m.Where:
        return m.Where(self.rel, _line(node))

    def bad(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.problems.add(message, path, self.where(node))

    def record(self, node: yaml.Node, path: Path_) -> None:
        self.problems.locations.record(path, self.where(node))

    # -- structure
    def mapping(self, node: yaml.Node, path: Path_, what: str = "a mapping") -> MapReader | None:
        if not isinstance(node, yaml.MappingNode):
            self.bad(node, path, f"expected {what}, found {_kind(node)}")
            return None
        return MapReader(self, node, path)

    def seq(self, node: yaml.Node, path: Path_, what: str = "a list") -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.bad(node, path, f"expected {what}, found {_kind(node)}")
            return None
        return list(node.value)

    # -- scalars
    def raw(self, node: yaml.Node, path: Path_, expected: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.bad(node, path, f"expected {expected}, found {_kind(node)}")
            return None
        value = str(node.value)
        if CONTROL_RE.search(value) or "\n" in value or "\r" in value:
            self.bad(node, path, f"expected {expected}, found text with a line break or control character")
            return None
        return value

    def is_null(self, node: yaml.Node) -> bool:
        return (
            isinstance(node, yaml.ScalarNode)
            and node.style is None
            and node.value in ("", "~", "null", "Null", "NULL")
        )

    def text(
        self,
        node: yaml.Node,
        path: Path_,
        *,
        pattern: re.Pattern[str] = SAFE_TEXT_RE,
        expected: str = 'text without ; , ( ) [ ] " < > \\ $ ` { } |',
    ) -> str | None:
        value = self.raw(node, path, expected)
        if value is None:
            return None
        if not pattern.fullmatch(value):
            self.bad(node, path, f"expected {expected}, found {value!r}")
            return None
        return value

    def note(self, node: yaml.Node, path: Path_) -> str | None:
        """Free text for people (descriptions, labels): any printable text, one line. It is only
        ever rendered into comments and reports, never into dialplan syntax."""
        return self.text(node, path, pattern=NOTE_RE, expected="one line of text (at most 200 characters)")

    def ident(self, node: yaml.Node, path: Path_) -> str | None:
        return self.text(node, path, pattern=ID_RE, expected="an id (lower-case letter, then a-z 0-9 _ -)")

    def integer(self, node: yaml.Node, path: Path_, lo: int, hi: int) -> int | None:
        value = self.raw(node, path, f"a whole number {lo}..{hi}")
        if value is None:
            return None
        if not re.fullmatch(r"[+-]?[0-9]{1,12}", value):
            self.bad(node, path, f"expected a whole number {lo}..{hi}, found {value!r}")
            return None
        n = int(value)
        if not lo <= n <= hi:
            self.bad(node, path, f"expected a whole number {lo}..{hi}, found {n}")
            return None
        return n

    def number(self, node: yaml.Node, path: Path_, lo: float, hi: float) -> float | None:
        expected = f"a number {lo:g}..{hi:g}"
        value = self.raw(node, path, expected)
        if value is None:
            return None
        if not re.fullmatch(r"[+-]?([0-9]{1,12}(\.[0-9]{0,6})?|\.[0-9]{1,6})", value):
            self.bad(node, path, f"expected {expected}, found {value!r}")
            return None
        x = float(value)
        if not lo <= x <= hi:
            self.bad(node, path, f"expected {expected}, found {value}")
            return None
        return x

    def boolean(self, node: yaml.Node, path: Path_) -> bool | None:
        value = self.raw(node, path, "true or false")
        if value is None:
            return None
        low = value.lower()
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
        self.bad(node, path, f"expected true or false, found {value!r}")
        return None

    def clock_time(self, node: yaml.Node, path: Path_, *, end: bool = False) -> dt.time | None:
        value = self.raw(node, path, "a time HH:MM")
        if value is None:
            return None
        mt = re.fullmatch(r"([0-9]{1,2}):([0-9]{2})", value)
        if mt is None:
            self.bad(node, path, f"expected a time HH:MM, found {value!r}")
            return None
        hh, mm = int(mt.group(1)), int(mt.group(2))
        if end and hh == 24 and mm == 0:
            return dt.time(0, 0)
        if hh > 23 or mm > 59:
            self.bad(node, path, f"expected a time HH:MM (00:00..23:59), found {value!r}")
            return None
        return dt.time(hh, mm)

    def date(self, node: yaml.Node, path: Path_) -> dt.date | None:
        value = self.raw(node, path, "a date YYYY-MM-DD")
        if value is None:
            return None
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
                raise ValueError(value)
            return dt.date.fromisoformat(value)
        except ValueError:
            self.bad(node, path, f"expected a date YYYY-MM-DD, found {value!r}")
            return None

    def choice(self, node: yaml.Node, path: Path_, enum_cls: type[E]) -> E | None:
        options = [str(e.value) for e in enum_cls]
        expected = "one of " + ", ".join(options)
        value = self.raw(node, path, expected)
        if value is None:
            return None
        for e in enum_cls:
            if e.value == value:
                return e
        self.bad(node, path, f"expected {expected}, found {value!r}")
        return None

    def secret(self, node: yaml.Node, path: Path_) -> m.Secret | None:
        expected = "a secret (or ${ENV_VAR}) without spaces or ; , ( ) [ ] \" ' \\ $ ` { } | #"
        value = self.raw(node, path, expected)
        if value is None:
            return None
        ref = SECRET_REF_RE.fullmatch(value)
        env_name: str | None = None
        in_yaml = True
        if ref is not None:
            env_name = ref.group(1)
            resolved = self.env.get(env_name)
            in_yaml = resolved is None
            if resolved is None:
                if ref.group(2) is None:
                    self.bad(node, path, f"environment variable {env_name} is not set")
                    return None
                resolved = ref.group(2)
            value = resolved
        if not SECRET_RE.fullmatch(value):
            source = f" (from ${{{env_name}}})" if env_name else ""
            self.bad(node, path, f"expected {expected}{source}, found an unsafe or empty value")
            return None
        return m.Secret(value, env_name, in_yaml)

    def pin(self, node: yaml.Node, path: Path_) -> m.Secret | None:
        s = self.secret(node, path)
        if s is None:
            return None
        if not re.fullmatch(r"[0-9]{4,12}", s.value):
            self.bad(node, path, "expected a PIN of 4 to 12 digits")
            return None
        return s

    def rel_path(self, node: yaml.Node, path: Path_) -> str | None:
        value = self.raw(node, path, "a relative file path")
        if value is None:
            return None
        parts = value.split("/")
        if value.startswith("/") or ".." in parts or not REL_PATH_RE.fullmatch(value):
            self.bad(
                node,
                path,
                f"expected a relative file path inside the config directory (no '..', no leading '/'),"
                f" found {value!r}",
            )
            return None
        return value

    def abs_path(self, node: yaml.Node, path: Path_) -> str | None:
        value = self.raw(node, path, "an absolute directory path")
        if value is None:
            return None
        if ".." in value.split("/") or not ABS_PATH_RE.fullmatch(value.rstrip("/") or "/"):
            self.bad(node, path, f"expected an absolute directory path without '..', found {value!r}")
            return None
        return value.rstrip("/")

    def dir_path(self, node: yaml.Node, path: Path_) -> str | None:
        """An absolute path, or a relative one (to a base chosen by the consumer)."""
        value = self.raw(node, path, "a directory path")
        if value is None:
            return None
        if value.startswith("/"):
            return self.abs_path(node, path)
        return self.rel_path(node, path)


class MapReader:
    """One YAML mapping: typed access by key, duplicate- and unknown-key detection."""

    def __init__(self, r: Reader, node: yaml.MappingNode, path: Path_) -> None:
        self.r = r
        self.node = node
        self.path = path
        self.entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        self.used: set[str] = set()
        r.record(node, path)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                r.bad(key_node, path, f"expected a plain key, found {_kind(key_node)}")
                continue
            key = str(key_node.value)
            if key in self.entries:
                first = _line(self.entries[key][0])
                r.bad(key_node, (*path, key), f"duplicate key (first given at line {first})")
                continue
            self.entries[key] = (key_node, value_node)
            r.record(key_node, (*path, key))

    def keys(self) -> list[str]:
        return list(self.entries)

    def items(self) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        for key, (key_node, value_node) in self.entries.items():
            self.used.add(key)
            yield key, key_node, value_node

    def has(self, key: str) -> bool:
        return key in self.entries and not self.r.is_null(self.entries[key][1])

    def node_of(self, key: str) -> yaml.Node | None:
        entry = self.entries.get(key)
        self.used.add(key)
        if entry is None or self.r.is_null(entry[1]):
            return None
        return entry[1]

    def line(self, key: str | None = None) -> int:
        if key is not None and key in self.entries:
            return _line(self.entries[key][0])
        return _line(self.node)

    def get(
        self,
        key: str,
        read: Callable[[yaml.Node, Path_], T | None],
        default: T | _Missing = MISSING,
        *,
        expected: str = "a value",
    ) -> T | None:
        """Read ``key`` with ``read``; a missing required key is reported (None returned)."""
        node = self.node_of(key)
        if node is None:
            if isinstance(default, _Missing):
                where = m.Where(self.r.rel, _line(self.node))
                self.r.problems.add(f"missing required key {key!r} ({expected})", (*self.path, key), where)
                return None
            return default
        return read(node, (*self.path, key))

    def finish(self) -> None:
        """Report every key that was never asked for (typos must not pass silently)."""
        known = sorted(self.used)
        for key, (key_node, _) in self.entries.items():
            if key not in self.used:
                hint = _closest(key, known)
                expected = f"did you mean {hint!r}?" if hint else "expected one of " + ", ".join(known)
                self.r.bad(key_node, (*self.path, key), f"unknown key {key!r}; {expected}")


def _closest(word: str, options: list[str]) -> str | None:
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    return found[0] if found else None


# ============================================================================ section readers
def _opt(value: T | None, default: T) -> T:
    return default if value is None else value


def read_center(r: Reader, node: yaml.Node, path: Path_) -> m.Center | None:
    mr = r.mapping(node, path)
    if mr is None:
        return None
    name = mr.get("name", r.note, expected="the center's name")
    tz = mr.get("timezone", lambda n, p: _timezone(r, n, p), expected="an IANA time zone")
    hours = _hours(r, mr, "hours", path)
    holidays: list[m.Holiday] = []
    hnode = mr.node_of("holidays")
    if hnode is not None:
        for i, h in enumerate(r.seq(hnode, (*path, "holidays")) or []):
            hp = (*path, "holidays", str(i))
            hm = r.mapping(h, hp, "a holiday {date:, name:, hours:}")
            if hm is None:
                continue
            date = hm.get("date", r.date, expected="YYYY-MM-DD")
            hname = hm.get("name", r.note, expected="a name")
            ranges = _ranges(r, hm.node_of("hours"), (*hp, "hours")) if hm.has("hours") else ()
            hm.finish()
            if date is not None and hname is not None:
                holidays.append(m.Holiday(date, hname, ranges or ()))
    langs: list[str] = []
    lnode = mr.node_of("languages")
    if lnode is not None:
        for i, ln in enumerate(r.seq(lnode, (*path, "languages")) or []):
            code = r.text(ln, (*path, "languages", str(i)), pattern=LANG_RE, expected="a language code")
            if code is not None:
                if code in langs:
                    r.bad(ln, (*path, "languages", str(i)), f"language {code!r} listed twice")
                langs.append(code)
        if not langs:
            r.bad(lnode, (*path, "languages"), "expected at least one language")
    country = mr.get(
        "country",
        lambda n, p: r.text(n, p, pattern=re.compile(r"[A-Z]{2}"), expected="an ISO country code"),
        "US",
    )
    mr.finish()
    if name is None or tz is None or hours is None:
        return None
    return m.Center(
        name=name,
        timezone=tz,
        hours=m.frozen_map(hours),
        holidays=tuple(sorted(holidays, key=lambda h: h.date)),
        languages=tuple(langs) or ("en",),
        country=_opt(country, "US"),
    )


def _timezone(r: Reader, node: yaml.Node, path: Path_) -> str | None:
    value = r.raw(node, path, "an IANA time zone")
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}", value):
        r.bad(node, path, f"expected an IANA time zone such as Europe/Paris, found {value!r}")
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        r.bad(node, path, f"unknown time zone {value!r} (expected an IANA name such as America/New_York)")
        return None
    return value


def _ranges(r: Reader, node: yaml.Node | None, path: Path_) -> tuple[m.TimeRange, ...] | None:
    """``"08:00-18:00"``, a list of those, or ``closed``."""
    if node is None:
        return ()
    items: list[yaml.Node]
    if isinstance(node, yaml.SequenceNode):
        items = list(node.value)
    else:
        items = [node]
    out: list[m.TimeRange] = []
    ok = True
    for i, item in enumerate(items):
        p = path if len(items) == 1 and not isinstance(node, yaml.SequenceNode) else (*path, str(i))
        value = r.raw(item, p, "hours HH:MM-HH:MM or closed")
        if value is None:
            ok = False
            continue
        if value == "closed":
            continue
        mt = re.fullmatch(r"\s*([0-9]{1,2}:[0-9]{2})\s*-\s*([0-9]{1,2}:[0-9]{2})\s*", value)
        if mt is None:
            r.bad(item, p, f"expected hours HH:MM-HH:MM (or closed), found {value!r}")
            ok = False
            continue
        start = _parse_hhmm(mt.group(1), end=False)
        end = _parse_hhmm(mt.group(2), end=True)
        if start is None or end is None:
            r.bad(item, p, f"expected hours HH:MM-HH:MM with times 00:00..24:00, found {value!r}")
            ok = False
            continue
        if end != dt.time(0, 0) and end <= start:
            r.bad(item, p, f"expected the end after the start, found {value!r}")
            ok = False
            continue
        for prev in out:
            if _overlap(prev, m.TimeRange(start, end)):
                r.bad(item, p, f"hours {value!r} overlap another range of the same day")
                ok = False
        out.append(m.TimeRange(start, end))
    if not ok:
        return None
    return tuple(sorted(out, key=lambda t: t.start))


def _overlap(a: m.TimeRange, b: m.TimeRange) -> bool:
    def span(t: m.TimeRange) -> tuple[int, int]:
        s = t.start.hour * 60 + t.start.minute
        e = t.end.hour * 60 + t.end.minute or 24 * 60
        return s, e

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def _parse_hhmm(text: str, *, end: bool) -> dt.time | None:
    hh, mm = (int(x) for x in text.split(":"))
    if end and hh == 24 and mm == 0:
        return dt.time(0, 0)
    if hh > 23 or mm > 59:
        return None
    return dt.time(hh, mm)


def _hours(r: Reader, mr: MapReader, key: str, path: Path_) -> dict[int, tuple[m.TimeRange, ...]] | None:
    node = mr.node_of(key)
    if node is None:
        r.problems.add(
            "missing required key 'hours' (opening hours per weekday: mon: 08:00-18:00)",
            (*path, key),
            m.Where(r.rel, mr.line()),
        )
        return None
    hm = r.mapping(node, (*path, key), "hours per weekday (mon: 08:00-18:00, sat: closed)")
    if hm is None:
        return None
    out: dict[int, tuple[m.TimeRange, ...]] = {}
    ok = True
    for day_key, key_node, value_node in hm.items():
        days = _day_keys(day_key)
        if days is None:
            r.bad(
                key_node,
                (*path, key, day_key),
                f"expected a weekday (mon..sun) or a range such as mon-fri, found {day_key!r}",
            )
            ok = False
            continue
        ranges = _ranges(r, value_node, (*path, key, day_key))
        if ranges is None:
            ok = False
            continue
        for d in days:
            if d in out:
                r.bad(key_node, (*path, key, day_key), f"{m.WEEKDAYS[d]} is given twice")
                ok = False
            if ranges:
                out[d] = ranges
            else:
                out.setdefault(d, ())
    return {d: rs for d, rs in sorted(out.items()) if rs} if ok else None


def _day_keys(key: str) -> list[int] | None:
    k = key.strip().lower()
    if k in m.WEEKDAYS:
        return [m.WEEKDAYS.index(k)]
    mt = re.fullmatch(r"(mon|tue|wed|thu|fri|sat|sun)-(mon|tue|wed|thu|fri|sat|sun)", k)
    if mt is None:
        return None
    a, b = m.WEEKDAYS.index(mt.group(1)), m.WEEKDAYS.index(mt.group(2))
    if b < a:
        return None
    return list(range(a, b + 1))


def read_asterisk(r: Reader, node: yaml.Node, path: Path_) -> m.AsteriskSettings | None:
    mr = r.mapping(node, path)
    if mr is None:
        return None
    ami = m.AMISettings()
    agi = m.AGISettings()
    anode = mr.node_of("ami")
    if anode is not None:
        am = r.mapping(anode, (*path, "ami"))
        if am is not None:
            host = am.get("host", lambda n, q: r.text(n, q, pattern=HOST_RE, expected="a host"), ami.host)
            port = am.get("port", lambda n, q: r.integer(n, q, 1, 65535), ami.port)
            user = am.get(
                "username", lambda n, q: r.text(n, q, pattern=USER_RE, expected="a user name"), ami.username
            )
            secret = am.get("secret", r.secret, expected="the AMI secret, e.g. ${CC_AMI_SECRET}")
            ct = am.get("connect_timeout", lambda n, q: r.number(n, q, 0.1, 120), ami.connect_timeout)
            at = am.get("action_timeout", lambda n, q: r.number(n, q, 0.1, 300), ami.action_timeout)
            pi = am.get("ping_interval", lambda n, q: r.number(n, q, 0.5, 300), ami.ping_interval)
            am.finish()
            ami = m.AMISettings(
                host=_opt(host, ami.host),
                port=_opt(port, ami.port),
                username=_opt(user, ami.username),
                secret=_opt(secret, ami.secret),
                connect_timeout=_opt(ct, ami.connect_timeout),
                action_timeout=_opt(at, ami.action_timeout),
                ping_interval=_opt(pi, ami.ping_interval),
            )
    gnode = mr.node_of("agi")
    if gnode is not None:
        gm = r.mapping(gnode, (*path, "agi"))
        if gm is not None:
            host = gm.get("host", lambda n, q: r.text(n, q, pattern=HOST_RE, expected="a host"), agi.host)
            port = gm.get("port", lambda n, q: r.integer(n, q, 1, 65535), agi.port)
            bind = gm.get("bind", lambda n, q: r.text(n, q, pattern=HOST_RE, expected="an address"), agi.bind)
            allow = gm.get("allow", _agi_allow(r), agi.allow)
            bind_node, allow_node = gm.node_of("bind"), gm.node_of("allow")
            gm.finish()
            agi = m.AGISettings(
                host=_opt(host, agi.host),
                port=_opt(port, agi.port),
                bind=_opt(bind, agi.bind),
                allow=_opt(allow, agi.allow),
            )
            if bind_node is not None and allow_node is None and not _is_loopback(agi.bind):
                r.bad(
                    bind_node,
                    (*path, "agi", "bind"),
                    f"FastAGI bound to {agi.bind!r}, beyond loopback, needs asterisk.agi.allow:"
                    " the addresses of the Asterisk nodes that may connect",
                )
    ami_apply = None
    pnode = mr.node_of("ami_apply")
    if pnode is not None:
        pm = r.mapping(pnode, (*path, "ami_apply"))
        if pm is not None:
            base_user = m.AMIApplyUser()
            user = pm.get(
                "username",
                lambda n, q: r.text(n, q, pattern=USER_RE, expected="a user name"),
                base_user.username,
            )
            secret = pm.get(
                "secret", r.secret, expected="the apply user's AMI secret, e.g. ${CC_AMI_APPLY_SECRET}"
            )
            pm.finish()
            ami_apply = m.AMIApplyUser(
                username=_opt(user, base_user.username), secret=_opt(secret, base_user.secret)
            )
            if ami_apply.username == ami.username:
                r.bad(
                    pnode,
                    (*path, "ami_apply", "username"),
                    f"the apply user must differ from the controller's AMI user {ami.username!r}",
                )
    base = m.AsteriskSettings()
    sounds = mr.get("sounds_dir", r.abs_path, base.sounds_dir)
    moh = mr.get("moh_dir", r.abs_path, base.moh_dir)
    mr.finish()
    return m.AsteriskSettings(
        ami=ami,
        agi=agi,
        ami_apply=ami_apply,
        sounds_dir=_opt(sounds, base.sounds_dir),
        moh_dir=_opt(moh, base.moh_dir),
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _agi_allow(r: Reader) -> Callable[[yaml.Node, Path_], tuple[str, ...] | None]:
    """``asterisk.agi.allow``: a list of IP addresses or networks (``10.0.0.5``, ``10.0.0.0/24``)."""

    def read(node: yaml.Node, path: Path_) -> tuple[str, ...] | None:
        items = r.seq(node, path, "a list of IP addresses or networks")
        if items is None:
            return None
        out: list[str] = []
        for i, item in enumerate(items):
            value = r.raw(item, (*path, str(i)), "an IP address or network")
            if value is None:
                continue
            try:
                out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
            except ValueError:
                r.bad(item, (*path, str(i)), f"expected an IP address or network, found {value!r}")
        return tuple(out) if len(out) == len(items) else None

    return read


MEDIA_KEYS: Final = (
    "dtmf_mode",
    "rtp_timeout",
    "rtp_timeout_hold",
    "timers",
    "timers_sess_expires",
    "timers_min_se",
)


def _timers(r: Reader, node: yaml.Node, path: Path_) -> m.SessionTimers | None:
    """``timers``: one of no, yes, required, always (``true`` / ``false`` mean yes / no)."""
    value = r.raw(node, path, "one of no, yes, required, always")
    if value is not None and value.lower() in ("true", "false", "on", "off"):
        return m.SessionTimers.YES if value.lower() in ("true", "on") else m.SessionTimers.NO
    return r.choice(node, path, m.SessionTimers)


def read_media(r: Reader, mr: MapReader, path: Path_, default: m.SipMedia) -> m.SipMedia:
    """The DTMF mode, RTP timeouts and session timers of an endpoint (keys ``MEDIA_KEYS`` of the
    mapping ``mr``; each missing one keeps ``default``'s)."""
    dtmf = mr.get("dtmf_mode", lambda n, p: r.choice(n, p, m.DtmfMode), default.dtmf_mode)
    rtp = mr.get("rtp_timeout", lambda n, p: r.integer(n, p, 0, 3600), default.rtp_timeout)
    hold = mr.get("rtp_timeout_hold", lambda n, p: r.integer(n, p, 0, 86400), default.rtp_timeout_hold)
    timers = mr.get("timers", lambda n, p: _timers(r, n, p), default.timers)
    expires = mr.get(
        "timers_sess_expires", lambda n, p: r.integer(n, p, 90, 86400), default.timers_sess_expires
    )
    min_se = mr.get("timers_min_se", lambda n, p: r.integer(n, p, 90, 86400), default.timers_min_se)
    media = m.SipMedia(
        dtmf_mode=_opt(dtmf, default.dtmf_mode),
        rtp_timeout=_opt(rtp, default.rtp_timeout),
        rtp_timeout_hold=_opt(hold, default.rtp_timeout_hold),
        timers=_opt(timers, default.timers),
        timers_sess_expires=_opt(expires, default.timers_sess_expires),
        timers_min_se=_opt(min_se, default.timers_min_se),
    )
    if media.timers_min_se > media.timers_sess_expires:
        key = "timers_min_se" if "timers_min_se" in mr.entries else "timers_sess_expires"
        r.problems.add(
            f"timers_sess_expires ({media.timers_sess_expires}) is below timers_min_se "
            f"({media.timers_min_se}): a session could never be refreshed in time",
            (*path, key),
            m.Where(r.rel, mr.line(key)),
        )
    if media.rtp_timeout and media.rtp_timeout < 5:
        r.problems.add(
            f"rtp_timeout {media.rtp_timeout} s would end calls over a short network hiccup "
            "(expected 0 to turn it off, or 5 s and more)",
            (*path, "rtp_timeout"),
            m.Where(r.rel, mr.line("rtp_timeout")),
        )
    return media


def read_phones(r: Reader, node: yaml.Node, path: Path_) -> m.SipMedia | None:
    """``phones``: what every agent's and supervisor's phone endpoint does about DTMF and dead legs."""
    mr = r.mapping(node, path, "phones {" + ", ".join(f"{k}:" for k in MEDIA_KEYS) + "}")
    if mr is None:
        return None
    media = read_media(r, mr, path, m.SipMedia())
    mr.finish()
    return media


def _match(r: Reader, node: yaml.Node, path: Path_) -> str | None:
    """One of a trunk's source addresses: an IPv4/IPv6 address or network (``203.0.113.0/24``)."""
    value = r.text(node, path, pattern=CIDR_RE, expected="an IP address or network (CIDR)")
    if value is None:
        return None
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        r.bad(node, path, f"expected an IP address or network (CIDR), found {value!r}")
        return None
    return value


def read_trunk(r: Reader, tid: str, node: yaml.Node, path: Path_) -> m.Trunk | None:
    mr = r.mapping(node, path)
    if mr is None:
        return None
    d = m.Trunk(id=tid, host="")
    host = mr.get("host", lambda n, p: r.text(n, p, pattern=HOST_RE, expected="a host name or IP"))
    port = mr.get("port", lambda n, p: r.integer(n, p, 1, 65535), d.port)
    transport = mr.get("transport", lambda n, p: r.choice(n, p, m.Transport), d.transport)
    auth = _trunk_auth(r, mr, "auth", path)
    inbound_auth = _trunk_auth(r, mr, "inbound_auth", path)
    match = _list(r, mr, "match", path, lambda n, p: _match(r, n, p))
    codecs = _list(r, mr, "codecs", path, lambda n, p: r.text(n, p, pattern=CODEC_RE, expected="a codec"))
    trust = mr.get("trust_caller_id", r.boolean, d.trust_caller_id)
    cid = mr.get("caller_id", lambda n, p: _e164(r, n, p), None)
    outbound = mr.get("outbound", r.boolean, d.outbound)
    media = read_media(r, mr, path, d.media)
    mr.finish()
    if host is None:
        return None
    match_node = mr.node_of("match")
    written = isinstance(match_node, yaml.SequenceNode) and bool(match_node.value)
    if auth is None and not match and not written:  # (unreadable addresses are reported already)
        r.problems.add(
            "a trunk needs auth (username/password) or match (the carrier's IPs), found neither",
            path,
            m.Where(r.rel, mr.line()),
        )
    return m.Trunk(
        id=tid,
        host=host,
        port=_opt(port, d.port),
        transport=_opt(transport, d.transport),
        auth=auth,
        inbound_auth=inbound_auth,
        match=tuple(match or ()),
        codecs=tuple(codecs) if codecs else d.codecs,
        trust_caller_id=_opt(trust, d.trust_caller_id),
        caller_id=cid,
        outbound=_opt(outbound, d.outbound),
        media=media,
    )


def _trunk_auth(r: Reader, mr: MapReader, key: str, path: Path_) -> m.TrunkAuth | None:
    node = mr.node_of(key)
    if node is None:
        return None
    am = r.mapping(node, (*path, key), f"{key} {{username:, password:}}")
    if am is None:
        return None
    user = am.get("username", lambda n, p: r.text(n, p, pattern=USER_RE, expected="a SIP user name"))
    pw = am.get("password", r.secret, expected="a password or ${ENV_VAR}")
    am.finish()
    return m.TrunkAuth(user, pw) if user is not None and pw is not None else None


def _list(
    r: Reader,
    mr: MapReader,
    key: str,
    path: Path_,
    read: Callable[[yaml.Node, Path_], T | None],
) -> list[T] | None:
    node = mr.node_of(key)
    if node is None:
        return None
    items = r.seq(node, (*path, key))
    if items is None:
        return None
    out: list[T] = []
    for i, item in enumerate(items):
        v = read(item, (*path, key, str(i)))
        if v is not None:
            out.append(v)
    return out


def _e164(r: Reader, node: yaml.Node, path: Path_) -> str | None:
    return r.text(node, path, pattern=E164_RE, expected="an E.164 number such as +18005550100")


def read_number(r: Reader, node: yaml.Node, path: Path_) -> m.Number | None:
    mr = r.mapping(node, path, "a number {number:, flow:}")
    if mr is None:
        return None
    num = mr.get("number", lambda n, p: _e164(r, n, p), expected="an E.164 number")
    flow = mr.get("flow", r.ident, expected="the IVR flow answering it")
    trunk = mr.get("trunk", r.ident, None)
    label = mr.get("label", r.note, "")
    lang = mr.get("language", lambda n, p: r.text(n, p, pattern=LANG_RE, expected="a language code"), None)
    mr.finish()
    if num is None or flow is None:
        return None
    return m.Number(number=num, flow=flow, trunk=trunk, label=_opt(label, ""), language=lang)


# ---------------------------------------------------------------------------- flows
class _FlowBuilder:
    """Reads one flow's nodes, turning inline actions into nodes with derived ids."""

    def __init__(self, r: Reader, flow_id: str, path: Path_) -> None:
        self.r = r
        self.flow_id = flow_id
        self.path = path
        self.nodes: dict[str, m.IVRNode] = {}

    def prompt(self, n: yaml.Node, p: Path_) -> str | None:
        return self.r.ident(n, p)

    def target(self, node: yaml.Node, path: Path_, derived_id: str) -> str | None:
        """A transition: a node id, or an inline action/node (given ``derived_id``)."""
        if isinstance(node, yaml.ScalarNode):
            return self.r.ident(node, path)
        if not isinstance(node, yaml.MappingNode):
            self.r.bad(
                node, path, f"expected a node id or an action such as {{queue: sales}}, found {_kind(node)}"
            )
            return None
        if derived_id in self.nodes:
            self.r.bad(node, path, f"node id {derived_id!r} is used twice")
            return None
        self.r.record(node, (*self.path, "nodes", *derived_id.split(".")))
        built = self.node(node, path, derived_id)
        if built is None:
            return None
        self.nodes[derived_id] = built
        return derived_id

    def node(self, node: yaml.Node, path: Path_, node_id: str) -> m.IVRNode | None:
        r = self.r
        mr = r.mapping(node, path, "a node (type: menu, prompt, ...)")
        if mr is None:
            return None
        shorthand = [k for k in ("queue", "goto_flow", "hangup", "voicemail", "callback") if k in mr.entries]
        if "type" not in mr.entries and len(shorthand) == 1 and len(mr.entries) <= 2:
            return self.shorthand(mr, path, node_id, shorthand[0])
        kind = mr.get(
            "type", lambda n, p: r.text(n, p, pattern=ID_RE, expected="a node type"), expected=_TYPES
        )
        if kind is None:
            mr.finish()
            return None
        reader = _NODE_READERS.get(kind)
        if reader is None:
            r.bad(mr.entries["type"][1], (*path, "type"), f"expected a node type ({_TYPES}), found {kind!r}")
            return None
        built = reader(self, mr, path, node_id)
        mr.finish()
        return built

    def shorthand(self, mr: MapReader, path: Path_, node_id: str, key: str) -> m.IVRNode | None:
        r = self.r
        prompt = mr.get("prompt", self.prompt, None) if key != "hangup" else None
        built: m.IVRNode | None = None
        if key == "queue":
            q = mr.get("queue", r.ident)
            built = m.QueueNode(id=node_id, queue=q, prompt=prompt) if q else None
        elif key == "goto_flow":
            f = mr.get("goto_flow", r.ident)
            built = m.GotoFlowNode(id=node_id, flow=f) if f else None
        elif key == "hangup":
            hn = mr.node_of("hangup")
            hp = self.prompt(hn, (*path, "hangup")) if hn is not None else None
            if hn is not None and hp is None:
                mr.finish()
                return None
            built = m.HangupNode(id=node_id, prompt=hp)
        elif key == "voicemail":
            box = mr.get(
                "voicemail", lambda n, p: r.text(n, p, pattern=DIGITS_RE, expected="a mailbox number")
            )
            built = m.VoicemailNode(id=node_id, mailbox=box, prompt=prompt) if box else None
        elif key == "callback":
            q = mr.get("callback", r.ident)
            built = m.CallbackNode(id=node_id, queue=q, prompt=prompt) if q else None
        mr.finish()
        return built

    # each reader returns None when a required part is missing (already reported)
    def _next(self, mr: MapReader, path: Path_, node_id: str, key: str, required: bool = True) -> str | None:
        node = mr.node_of(key)
        if node is None:
            if required:
                self.r.problems.add(
                    f"missing required key {key!r} (a node id or an action)",
                    (*path, key),
                    m.Where(self.r.rel, mr.line()),
                )
            return None
        return self.target(node, (*path, key), f"{node_id}.{key}")

    def read_prompt(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        r = self.r
        prompts: list[str] | None
        if mr.has("prompt") and not mr.has("prompts"):
            one = mr.get("prompt", self.prompt)
            prompts = [one] if one else None
            mr.used.add("prompts")
        else:
            prompts = _list(r, mr, "prompts", path, self.prompt)
            mr.used.add("prompt")
            if prompts is None:
                r.problems.add(
                    "missing required key 'prompts' (a list of prompt ids)",
                    (*path, "prompts"),
                    m.Where(r.rel, mr.line()),
                )
        inter = mr.get("interruptible", r.boolean, False)
        nxt = self._next(mr, path, node_id, "next")
        if not prompts or nxt is None:
            return None
        return m.PromptNode(id=node_id, prompts=tuple(prompts), next=nxt, interruptible=_opt(inter, False))

    def _digit_map(
        self, mr: MapReader, path: Path_, key: str, read_value: Callable[[str, yaml.Node, Path_], str | None]
    ) -> dict[str, str] | None:
        r = self.r
        node = mr.node_of(key)
        if node is None:
            r.problems.add(
                f"missing required key {key!r} (digit -> action)", (*path, key), m.Where(r.rel, mr.line())
            )
            return None
        cm = r.mapping(node, (*path, key), "a mapping of digit -> action")
        if cm is None:
            return None
        out: dict[str, str] = {}
        lines: dict[str, int] = {}
        ok = True
        for digit, key_node, value_node in cm.items():
            p = (*path, key, digit)
            if not DTMF_RE.fullmatch(digit):
                r.bad(key_node, p, f"expected one DTMF key (0-9, *, #), found {digit!r}")
                ok = False
                continue
            if digit in out:
                r.bad(key_node, p, f"menu digit {digit!r} is used twice (first at line {lines[digit]})")
                ok = False
                continue
            v = read_value(digit, value_node, p)
            if v is None:
                ok = False
                continue
            out[digit] = v
            lines[digit] = _line(key_node)
        if not out and ok:
            r.bad(node, (*path, key), "expected at least one choice")
            return None
        return out if ok else None

    def read_menu(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        r = self.r
        prompt = mr.get("prompt", self.prompt, expected="a prompt id")
        choices = self._digit_map(mr, path, "choices", lambda d, n, p: self.target(n, p, f"{node_id}.{d}"))
        timeout = mr.get("timeout", lambda n, p: r.number(n, p, 0.5, 60), 5.0)
        attempts = mr.get("max_attempts", lambda n, p: r.integer(n, p, 1, 10), 3)
        invalid = mr.get("invalid_prompt", self.prompt, None)
        tprompt = mr.get("timeout_prompt", self.prompt, None)
        repeat = mr.get(
            "repeat_key", lambda n, p: r.text(n, p, pattern=DTMF_RE, expected="one DTMF key"), None
        )
        fallback = self._next(mr, path, node_id, "fallback")
        if repeat is not None and choices is not None and repeat in choices:
            r.bad(
                mr.entries["repeat_key"][1],
                (*path, "repeat_key"),
                f"menu digit {repeat!r} is used twice (as a choice and as the repeat key)",
            )
            return None
        if prompt is None or choices is None or fallback is None:
            return None
        return m.MenuNode(
            id=node_id,
            prompt=prompt,
            choices=m.frozen_map(choices),
            timeout=_opt(timeout, 5.0),
            max_attempts=_opt(attempts, 3),
            invalid_prompt=invalid,
            timeout_prompt=tprompt,
            repeat_key=repeat,
            fallback=fallback,
        )

    def read_collect(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        r = self.r
        prompt = mr.get("prompt", self.prompt, expected="a prompt id")
        var = mr.get(
            "variable",
            lambda n, p: r.text(n, p, pattern=VAR_RE, expected="a variable name (a-z 0-9 _)"),
            expected="where to store the digits",
        )
        lo = mr.get("min_digits", lambda n, p: r.integer(n, p, 1, 32), 1)
        hi = mr.get("max_digits", lambda n, p: r.integer(n, p, 1, 32), 16)
        term_node = mr.node_of("terminator")
        terminator: str | None = "#"
        if "terminator" in mr.entries and term_node is None:
            terminator = None  # terminator: null / none
        elif term_node is not None:
            raw = r.raw(term_node, (*path, "terminator"), "one of # * or none")
            if raw in ("none", "off"):
                terminator = None
            elif raw in ("#", "*"):
                terminator = raw
            elif raw is not None:
                r.bad(term_node, (*path, "terminator"), f"expected one of # * or none, found {raw!r}")
        timeout = mr.get("timeout", lambda n, p: r.number(n, p, 0.5, 60), 5.0)
        validation = mr.get("validation", lambda n, p: r.choice(n, p, m.Validation), m.Validation.DIGITS)
        attempts = mr.get("max_attempts", lambda n, p: r.integer(n, p, 1, 10), 3)
        invalid = mr.get("invalid_prompt", self.prompt, None)
        nxt = self._next(mr, path, node_id, "next")
        fallback = self._next(mr, path, node_id, "fallback")
        if lo is not None and hi is not None and lo > hi:
            r.bad(
                mr.entries["min_digits"][1],
                (*path, "min_digits"),
                f"expected min_digits <= max_digits, found {lo} > {hi}",
            )
            return None
        if prompt is None or var is None or nxt is None or fallback is None:
            return None
        return m.CollectNode(
            id=node_id,
            prompt=prompt,
            variable=var,
            min_digits=_opt(lo, 1),
            max_digits=_opt(hi, 16),
            terminator=terminator,
            timeout=_opt(timeout, 5.0),
            validation=_opt(validation, m.Validation.DIGITS),
            max_attempts=_opt(attempts, 3),
            invalid_prompt=invalid,
            next=nxt,
            fallback=fallback,
        )

    def read_hours(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        op = self._next(mr, path, node_id, "open")
        cl = self._next(mr, path, node_id, "closed")
        hol = self._next(mr, path, node_id, "holiday", required=False)
        if op is None or cl is None:
            return None
        return m.HoursNode(id=node_id, open=op, closed=cl, holiday=hol)

    def read_language(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        r = self.r
        prompt = mr.get("prompt", self.prompt, expected="a prompt id")
        choices = self._digit_map(
            mr,
            path,
            "choices",
            lambda d, n, p: r.text(n, p, pattern=LANG_RE, expected="a language code"),
        )
        timeout = mr.get("timeout", lambda n, p: r.number(n, p, 0.5, 60), 5.0)
        attempts = mr.get("max_attempts", lambda n, p: r.integer(n, p, 1, 10), 2)
        nxt = self._next(mr, path, node_id, "next")
        if prompt is None or choices is None or nxt is None:
            return None
        return m.LanguageNode(
            id=node_id,
            prompt=prompt,
            choices=m.frozen_map(choices),
            timeout=_opt(timeout, 5.0),
            max_attempts=_opt(attempts, 2),
            next=nxt,
        )

    def read_set(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        r = self.r
        skills = _skill_levels(r, mr, "skills", path) or {}
        prio = mr.get("priority", lambda n, p: r.integer(n, p, 0, 100), None)
        data: dict[str, str] = {}
        dnode = mr.node_of("data")
        if dnode is not None:
            dm = r.mapping(dnode, (*path, "data"))
            if dm is not None:
                for k, kn, vn in dm.items():
                    if not VAR_RE.fullmatch(k):
                        r.bad(kn, (*path, "data", k), f"expected a data key (a-z 0-9 _), found {k!r}")
                        continue
                    v = r.text(vn, (*path, "data", k))
                    if v is not None:
                        data[k] = v
        lang = mr.get(
            "language", lambda n, p: r.text(n, p, pattern=LANG_RE, expected="a language code"), None
        )
        nxt = self._next(mr, path, node_id, "next")
        if nxt is None:
            return None
        return m.SetNode(
            id=node_id,
            skills=m.frozen_map(skills),
            priority=prio,
            data=m.frozen_map(data),
            language=lang,
            next=nxt,
        )

    def read_lookup(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        r = self.r
        timeout = mr.get("timeout", lambda n, p: r.number(n, p, 0.01, 10), 0.3)
        tiers: dict[str, int] = {}
        tnode = mr.node_of("tier_priority")
        if tnode is not None:
            tm = r.mapping(tnode, (*path, "tier_priority"), "a mapping tier -> priority")
            if tm is not None:
                for k, kn, vn in tm.items():
                    if not ID_RE.fullmatch(k):
                        r.bad(kn, (*path, "tier_priority", k), f"expected a tier id, found {k!r}")
                        continue
                    v = r.integer(vn, (*path, "tier_priority", k), 0, 100)
                    if v is not None:
                        tiers[k] = v
        found = self._next(mr, path, node_id, "found")
        not_found = self._next(mr, path, node_id, "not_found")
        if found is None or not_found is None:
            return None
        return m.LookupNode(
            id=node_id,
            timeout=_opt(timeout, 0.3),
            tier_priority=m.frozen_map(tiers),
            found=found,
            not_found=not_found,
        )

    def read_goto(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        f = mr.get("flow", self.r.ident, expected="a flow id")
        return m.GotoFlowNode(id=node_id, flow=f) if f else None

    def read_queue(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        q = mr.get("queue", self.r.ident, expected="a queue id")
        prompt = mr.get("prompt", self.prompt, None)
        prio = mr.get("priority", lambda n, p: self.r.integer(n, p, 0, 100), None)
        return m.QueueNode(id=node_id, queue=q, prompt=prompt, priority=prio) if q else None

    def read_voicemail(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        box = mr.get(
            "mailbox",
            lambda n, p: self.r.text(n, p, pattern=DIGITS_RE, expected="a mailbox number"),
            expected="a mailbox number",
        )
        prompt = mr.get("prompt", self.prompt, None)
        return m.VoicemailNode(id=node_id, mailbox=box, prompt=prompt) if box else None

    def read_callback(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        q = mr.get("queue", self.r.ident, expected="a queue id")
        prompt = mr.get("prompt", self.prompt, None)
        var = mr.get(
            "number_variable",
            lambda n, p: self.r.text(n, p, pattern=VAR_RE, expected="a variable name"),
            None,
        )
        return m.CallbackNode(id=node_id, queue=q, prompt=prompt, number_variable=var) if q else None

    def read_hangup(self, mr: MapReader, path: Path_, node_id: str) -> m.IVRNode | None:
        prompt = mr.get("prompt", self.prompt, None)
        return m.HangupNode(id=node_id, prompt=prompt)


_NODE_READERS: dict[str, Callable[[_FlowBuilder, MapReader, Path_, str], m.IVRNode | None]] = {
    "prompt": _FlowBuilder.read_prompt,
    "menu": _FlowBuilder.read_menu,
    "collect": _FlowBuilder.read_collect,
    "hours": _FlowBuilder.read_hours,
    "language": _FlowBuilder.read_language,
    "set": _FlowBuilder.read_set,
    "lookup": _FlowBuilder.read_lookup,
    "goto_flow": _FlowBuilder.read_goto,
    "queue": _FlowBuilder.read_queue,
    "voicemail": _FlowBuilder.read_voicemail,
    "callback": _FlowBuilder.read_callback,
    "hangup": _FlowBuilder.read_hangup,
}
_TYPES = ", ".join(_NODE_READERS)


def read_flow(r: Reader, fid: str, node: yaml.Node, path: Path_) -> m.Flow | None:
    mr = r.mapping(node, path, "a flow {start:, nodes:}")
    if mr is None:
        return None
    start = mr.get("start", r.ident, expected="the id of the first node")
    fb = _FlowBuilder(r, fid, path)
    nnode = mr.node_of("nodes")
    if nnode is None:
        r.problems.add("missing required key 'nodes'", (*path, "nodes"), m.Where(r.rel, mr.line()))
    else:
        nm = r.mapping(nnode, (*path, "nodes"), "a mapping of node id -> node")
        if nm is not None:
            for nid, key_node, value_node in nm.items():
                np_ = (*path, "nodes", nid)
                if not ID_RE.fullmatch(nid):
                    r.bad(key_node, np_, f"expected a node id (a-z 0-9 _ -), found {nid!r}")
                    continue
                if nid in fb.nodes:
                    r.bad(key_node, np_, f"node id {nid!r} is used twice")
                    continue
                built = fb.node(value_node, np_, nid)
                # A node that could not be read (already reported) stands in as a hang-up, so
                # that references to it do not cause follow-on errors.
                if built is None:
                    for derived in [k for k in fb.nodes if k.startswith(f"{nid}.")]:
                        del fb.nodes[derived]
                fb.nodes[nid] = built if built is not None else m.HangupNode(id=nid)
    mr.finish()
    if start is None:
        return None
    # Written order, each inline (derived) node right after its parent.
    position = {nid: i for i, nid in enumerate(fb.nodes)}

    def order(nid: str) -> tuple[int, int]:
        base = nid.split(".", 1)[0]
        return (position.get(base, len(position)), 0 if nid == base else position[nid] + 1)

    ordered = dict(sorted(fb.nodes.items(), key=lambda kv: order(kv[0])))
    return m.Flow(
        id=fid,
        start=start,
        nodes=m.frozen_map(ordered),
    )


# ---------------------------------------------------------------------------- ACD & people
def _skill_levels(r: Reader, mr: MapReader, key: str, path: Path_) -> dict[str, int] | None:
    node = mr.node_of(key)
    if node is None:
        return None
    sm = r.mapping(node, (*path, key), "a mapping skill -> level (1-10)")
    if sm is None:
        return None
    out: dict[str, int] = {}
    ok = True
    for skill, kn, vn in sm.items():
        if not ID_RE.fullmatch(skill):
            r.bad(kn, (*path, key, skill), f"expected a skill id, found {skill!r}")
            ok = False
            continue
        level = r.integer(vn, (*path, key, skill), 1, 10)
        if level is None:
            ok = False
        else:
            out[skill] = level
    return out if ok else None  # None: already reported (no follow-on errors)


def read_queue(r: Reader, qid: str, node: yaml.Node, path: Path_) -> m.Queue | None:
    mr = r.mapping(node, path)
    if mr is None:
        return None
    d = m.Queue(id=qid, name=qid, skills=m.frozen_map({}))
    name = mr.get("name", r.text, qid)  # the agent's phone shows it as the caller id name
    skills = _skill_levels(r, mr, "skills", path)
    if skills is None and "skills" not in mr.entries:
        r.problems.add(
            "missing required key 'skills' (skill -> minimum level)",
            (*path, "skills"),
            m.Where(r.rel, mr.line()),
        )
    prio = mr.get("priority", lambda n, p: r.integer(n, p, 0, 100), d.priority)
    sl_pct, sl_sec = d.sl_percent, d.sl_seconds
    slnode = mr.node_of("service_level")
    if slnode is not None:
        sp = (*path, "service_level")
        raw = r.raw(slnode, sp, "a service level such as 80/20 (percent/seconds)")
        mt = re.fullmatch(r"([0-9]{1,3}(?:\.[0-9]+)?)\s*/\s*([0-9]{1,4})", raw or "")
        if raw is not None and (mt is None or not 0 < float(mt.group(1)) <= 100 or int(mt.group(2)) < 1):
            r.bad(slnode, sp, f"expected a service level such as 80/20 (percent/seconds), found {raw!r}")
        elif mt is not None:
            sl_pct, sl_sec = float(mt.group(1)), float(mt.group(2))
    max_wait = mr.get("max_wait", lambda n, p: r.number(n, p, 1, 86400), None)
    overflow: m.Overflow | None = None
    onode = mr.node_of("overflow")
    if onode is not None:
        overflow = _overflow(r, onode, (*path, "overflow"))
    announce = mr.get("announce_period", lambda n, p: r.number(n, p, 10, 3600), d.announce_period)
    if "announce_period" in mr.entries and mr.node_of("announce_period") is None:
        announce = None
    ann_pos = mr.get("announce_position", r.boolean, d.announce_position)
    ann_wait = mr.get("announce_wait", r.boolean, d.announce_wait)
    music = mr.get("music_class", r.ident, d.music_class)
    wrapup = mr.get("wrapup", lambda n, p: r.number(n, p, 0, 3600), d.wrapup)
    rec = mr.get("recording", lambda n, p: r.choice(n, p, m.RecordingPolicy), d.recording)
    cb = mr.get("callback_offer_after", lambda n, p: r.number(n, p, 0, 86400), None)
    strat = mr.get("strategy", lambda n, p: r.choice(n, p, m.Strategy), d.strategy)
    ring = mr.get("ring_timeout", lambda n, p: r.number(n, p, 3, 300), d.ring_timeout)
    rcount = mr.get("rona_count", lambda n, p: r.integer(n, p, 1, 20), d.rona_count)
    raction = mr.get("rona_action", lambda n, p: r.choice(n, p, m.RonaAction), d.rona_action)
    rreason = mr.get("rona_pause_reason", r.ident, None)
    relax: list[m.Relaxation] = []
    rnode = mr.node_of("relaxation")
    if rnode is not None:
        last = -1.0
        for i, item in enumerate(r.seq(rnode, (*path, "relaxation")) or []):
            rp = (*path, "relaxation", str(i))
            rm = r.mapping(item, rp, "a step {after_seconds:, min_level: | add_skill:}")
            if rm is None:
                continue
            after = rm.get("after_seconds", lambda n, p: r.number(n, p, 0, 86400), expected="seconds")
            lvl = rm.get("min_level", lambda n, p: r.integer(n, p, 1, 10), None)
            add = rm.get("add_skill", r.ident, None)
            add_lvl = rm.get("add_skill_level", lambda n, p: r.integer(n, p, 1, 10), 1)
            rm.finish()
            if (
                lvl is None
                and add is None
                and "min_level" not in rm.entries
                and "add_skill" not in rm.entries
            ):
                r.bad(item, rp, "expected min_level or add_skill in a relaxation step, found neither")
                continue
            if after is None:
                continue
            if after <= last:
                r.bad(
                    item,
                    (*rp, "after_seconds"),
                    f"expected steps in increasing after_seconds, found {after:g}",
                )
            last = after
            relax.append(m.Relaxation(after, lvl, add, _opt(add_lvl, 1)))
    mailbox = mr.get(
        "mailbox", lambda n, p: r.text(n, p, pattern=DIGITS_RE, expected="a mailbox number"), None
    )
    cid = mr.get("caller_id", lambda n, p: _e164(r, n, p), None)
    codes = _disposition_list(r, mr, path)
    tnode = mr.node_of("thresholds")
    thresholds = _thresholds(r, tnode, (*path, "thresholds")) if tnode is not None else m.Thresholds()
    mr.finish()
    if skills is None:
        return None
    return m.Queue(
        id=qid,
        name=_opt(name, qid),
        skills=m.frozen_map(skills),
        priority=_opt(prio, d.priority),
        sl_percent=sl_pct,
        sl_seconds=sl_sec,
        max_wait=max_wait,
        overflow=overflow,
        announce_period=announce,
        announce_position=_opt(ann_pos, d.announce_position),
        announce_wait=_opt(ann_wait, d.announce_wait),
        music_class=_opt(music, d.music_class),
        wrapup=_opt(wrapup, d.wrapup),
        recording=_opt(rec, d.recording),
        callback_offer_after=cb,
        strategy=_opt(strat, d.strategy),
        ring_timeout=_opt(ring, d.ring_timeout),
        rona_count=_opt(rcount, d.rona_count),
        rona_action=_opt(raction, d.rona_action),
        rona_pause_reason=rreason,
        relaxation=tuple(relax),
        mailbox=mailbox,
        caller_id=cid,
        dispositions=codes,
        thresholds=thresholds,
    )


# metric -> (its limits' range, whether red lies below amber, what it measures)
_THRESHOLD_METRICS: dict[str, tuple[float, float, bool, str]] = {
    "service_level": (0, 100, True, "percent answered within the target, below which"),
    "longest_wait": (1, 86400, False, "seconds the longest caller has waited, above which"),
    "waiting": (1, 10000, False, "callers waiting, at or above which"),
}


def _limit(r: Reader, lo: float, hi: float, node: yaml.Node, path: Path_) -> float | None:
    return r.number(node, path, lo, hi)


def _thresholds(r: Reader, node: yaml.Node, path: Path_) -> m.Thresholds:
    """``thresholds: {service_level: {amber: 80, red: 60}, longest_wait: {...}, waiting: {...}}``."""
    tm = r.mapping(node, path, "a mapping of service_level / longest_wait / waiting -> {amber:, red:}")
    if tm is None:
        return m.Thresholds()
    found: dict[str, m.Threshold] = {}
    for metric, (lo, hi, falling, what) in _THRESHOLD_METRICS.items():
        mnode = tm.node_of(metric)
        if mnode is None:
            continue
        mp = (*path, metric)
        lm = r.mapping(mnode, mp, f"{{amber:, red:}} ({what} the queue turns amber, red)")
        if lm is None:
            continue
        limit = functools.partial(_limit, r, lo, hi)
        amber = lm.get("amber", limit, None)
        red = lm.get("red", limit, None)
        lm.finish()
        if amber is None and red is None:
            if "amber" not in lm.entries and "red" not in lm.entries:
                r.bad(mnode, mp, "expected amber or red (or both), found neither")
            continue
        if amber is not None and red is not None and (red > amber if falling else red < amber):
            order = "at or below" if falling else "at or above"
            r.bad(mnode, (*mp, "red"), f"expected red {order} amber ({amber:g}), found {red:g}")
            continue
        found[metric] = m.Threshold(amber, red)
    tm.finish()
    return m.Thresholds(**found)


def _overflow(r: Reader, node: yaml.Node, path: Path_) -> m.Overflow | None:
    om = r.mapping(node, path, "an overflow {queue: | voicemail: | flow: | hangup:}")
    if om is None:
        return None
    kinds = [k for k in ("queue", "voicemail", "flow", "hangup") if k in om.entries]
    if len(kinds) != 1:
        r.bad(node, path, f"expected exactly one of queue, voicemail, flow, hangup; found {kinds or 'none'}")
        om.used.update(om.entries)
        return None
    kind = kinds[0]
    target: str | None
    if kind == "voicemail":
        target = om.get(kind, lambda n, p: r.text(n, p, pattern=DIGITS_RE, expected="a mailbox number"))
    elif kind == "hangup":
        target = om.get(kind, r.ident, None)
    else:
        target = om.get(kind, r.ident)
    om.finish()
    if target is None and kind != "hangup":
        return None
    return m.Overflow(m.OverflowKind(kind), target)


def read_agent(r: Reader, node: yaml.Node, path: Path_) -> m.Agent | None:
    mr = r.mapping(node, path, "an agent {id:, name:, endpoint:, extension:, skills:, pin:}")
    if mr is None:
        return None
    aid = mr.get("id", lambda n, p: r.text(n, p, pattern=DIGITS_RE, expected="an agent id (digits)"))
    name = mr.get("name", r.text, expected="the agent's name")
    ep = mr.get("endpoint", lambda n, p: r.text(n, p, pattern=ENDPOINT_RE, expected="a PJSIP endpoint name"))
    ext = mr.get(
        "extension", lambda n, p: r.text(n, p, pattern=EXTEN_RE, expected="an extension (2-10 digits)")
    )
    skills = _skill_levels(r, mr, "skills", path)
    pin = _pin_or_hash(r, mr, path)
    box = mr.get("mailbox", lambda n, p: r.text(n, p, pattern=DIGITS_RE, expected="a mailbox number"), None)
    sip = mr.get("sip_password", r.secret, expected="the phone's SIP password or ${ENV_VAR}")
    dtmf = mr.get("dtmf_mode", lambda n, p: r.choice(n, p, m.DtmfMode), None)
    mr.finish()
    if aid is None or name is None or ep is None or ext is None or pin is None:
        return None
    return m.Agent(
        id=aid,
        name=name,
        endpoint=ep,
        extension=ext,
        skills=m.frozen_map(skills or {}),
        pin=pin,
        mailbox=box,
        sip_password=sip,
        dtmf_mode=dtmf,
    )


def _pin_or_hash(r: Reader, mr: MapReader, path: Path_) -> m.Secret | None:
    """``pin`` (digits or ${ENV_VAR}) or ``pin_hash`` (``callcenter pin-hash``), exactly one."""
    if mr.has("pin_hash"):
        if mr.has("pin"):
            r.problems.add("give pin or pin_hash, not both", (*path, "pin"), m.Where(r.rel, mr.line("pin")))
        mr.node_of("pin")
        expected = "a PIN hash made by `callcenter pin-hash` (scrypt:...)"
        stored = mr.get("pin_hash", lambda n, p: r.text(n, p, pattern=secrets.PIN_HASH_RE, expected=expected))
        return m.Secret(stored, None, in_yaml=True) if stored is not None else None
    return mr.get("pin", r.pin, expected="a PIN, ${ENV_VAR} or pin_hash")


def read_supervisor(r: Reader, node: yaml.Node, path: Path_) -> m.Supervisor | None:
    mr = r.mapping(node, path, "a supervisor {id:, name:, endpoint:, pin:, queues:}")
    if mr is None:
        return None
    sid = mr.get("id", lambda n, p: r.text(n, p, pattern=DIGITS_RE, expected="a supervisor id (digits)"))
    name = mr.get("name", r.text, expected="the supervisor's name")
    ep = mr.get("endpoint", lambda n, p: r.text(n, p, pattern=ENDPOINT_RE, expected="a PJSIP endpoint name"))
    ext = mr.get("extension", lambda n, p: r.text(n, p, pattern=EXTEN_RE, expected="an extension"), None)
    pin = _pin_or_hash(r, mr, path)
    sip = mr.get("sip_password", r.secret, expected="the phone's SIP password or ${ENV_VAR}")
    dtmf = mr.get("dtmf_mode", lambda n, p: r.choice(n, p, m.DtmfMode), None)
    queues = _list(r, mr, "queues", path, r.ident)
    if queues is None and "queues" not in mr.entries:
        r.problems.add(
            "missing required key 'queues' (the queues this supervisor may monitor)",
            (*path, "queues"),
            m.Where(r.rel, mr.line()),
        )
    mr.finish()
    if sid is None or name is None or ep is None or pin is None or queues is None:
        return None
    return m.Supervisor(
        id=sid,
        name=name,
        endpoint=ep,
        pin=pin,
        queues=tuple(queues),
        extension=ext,
        sip_password=sip,
        dtmf_mode=dtmf,
    )


def read_pause_reason(r: Reader, code: str, node: yaml.Node, path: Path_) -> m.PauseReason | None:
    mr = r.mapping(node, path, "a pause reason {name:, digits:}")
    if mr is None:
        return None
    name = mr.get("name", r.note, code)
    digits = mr.get(
        "digits",
        lambda n, p: r.text(n, p, pattern=re.compile(r"[0-9]{1,3}"), expected="1-3 digits"),
        expected="what agents type after the pause code",
    )
    mx = mr.get("max_minutes", lambda n, p: r.integer(n, p, 1, 1440), None)
    mr.finish()
    if digits is None:
        return None
    return m.PauseReason(code=code, name=_opt(name, code), digits=digits, max_minutes=mx)


def read_disposition(r: Reader, code: str, node: yaml.Node, path: Path_) -> m.DispositionCode | None:
    """A wrap-up code: ``sale: Sale made`` or ``sale: {label: Sale made}``."""
    if code == m.NO_DISPOSITION:
        r.bad(node, path, f"{code!r} is reserved (what a wrap-up that ended without a disposition stores)")
        return None
    if isinstance(node, yaml.MappingNode):
        mr = r.mapping(node, path, "a disposition {label:}")
        if mr is None:  # pragma: no cover - a mapping node always reads
            return None
        label = mr.get("label", r.note, expected="the label agents choose")
        mr.finish()
    else:
        label = r.note(node, path)
    return None if label is None else m.DispositionCode(code, label)


def _disposition_list(r: Reader, mr: MapReader, path: Path_) -> tuple[str, ...]:
    """A queue's or campaign's ``dispositions: [code, ...]`` (each code once; unknown codes are
    found by the cross-checks)."""
    node = mr.node_of("dispositions")
    if node is None:
        return ()
    dp = (*path, "dispositions")
    seen: dict[str, m.Where] = {}
    for i, item in enumerate(r.seq(node, dp, "a list of disposition codes") or []):
        ip = (*dp, str(i))
        code = r.ident(item, ip)
        if code is None:
            continue
        if code in seen:
            r.bad(item, ip, f"disposition {code!r} is listed twice (first at {seen[code]})")
            continue
        seen[code] = r.where(item)
        r.record(item, ip)
    return tuple(seen)


def read_recording(r: Reader, node: yaml.Node, path: Path_) -> m.Recording | None:
    mr = r.mapping(node, path)
    if mr is None:
        return None
    d = m.Recording()
    directory = mr.get("directory", r.abs_path, d.directory)
    fmt = mr.get("format", lambda n, p: r.choice(n, p, m.RecordingFormat), d.format)
    days = mr.get("retention_days", lambda n, p: r.integer(n, p, 1, 3650), d.retention_days)
    pci = d.pci
    pnode = mr.node_of("pci")
    if pnode is not None:
        pm = r.mapping(pnode, (*path, "pci"), "pci {enabled:, auto_resume:}")
        if pm is not None:
            en = pm.get("enabled", r.boolean, True)
            ar = pm.get("auto_resume", lambda n, p: r.number(n, p, 5, 3600), pci.auto_resume)
            if "auto_resume" in pm.entries and pm.node_of("auto_resume") is None:
                ar = None
            pm.finish()
            pci = m.PCIRule(enabled=_opt(en, True), auto_resume=ar)
    mr.finish()
    return m.Recording(
        directory=_opt(directory, d.directory),
        format=_opt(fmt, d.format),
        retention_days=_opt(days, d.retention_days),
        pci=pci,
    )


def read_feature_codes(r: Reader, node: yaml.Node, path: Path_) -> m.FeatureCodes | None:
    mr = r.mapping(node, path)
    if mr is None:
        return None
    d = m.FeatureCodes()
    values: dict[str, str] = {}
    for name, default in d.items():
        v = mr.get(
            name,
            lambda n, p: r.text(n, p, pattern=FEATURE_RE, expected="a feature code such as *81"),
            default,
        )
        values[name] = _opt(v, default)
    mr.finish()
    return m.FeatureCodes(**values)


def _window(r: Reader, mr: Any, path: Path_) -> m.CallingWindow:
    """The ``window`` key of ``mr`` (a calling window), or the default one."""
    window = m.CallingWindow()
    wnode = mr.node_of("window")
    if wnode is None:
        return window
    wp = (*path, "window")
    wm = r.mapping(wnode, wp, "a calling window {start:, end:, days:}")
    if wm is None:
        return window
    start = wm.get("start", r.clock_time, window.start)
    end = wm.get("end", lambda n, p: r.clock_time(n, p, end=True), window.end)
    days: set[int] = set(window.days)
    dnode = wm.node_of("days")
    if dnode is not None:
        raw = r.raw(dnode, (*wp, "days"), "weekdays such as mon-fri")
        if raw is not None:
            days = set()
            for part in raw.split(","):
                ds = _day_keys(part)
                if ds is None:
                    r.bad(
                        dnode, (*wp, "days"), f"expected weekdays such as mon-fri or sat,sun, found {raw!r}"
                    )
                    break
                days.update(ds)
    wm.finish()
    if start is not None and end is not None:
        if end != dt.time(0, 0) and end <= start:
            r.bad(wnode, wp, "expected the window's end after its start")
        window = m.CallingWindow(start, end, frozenset(days))
    return window


def read_callbacks(r: Reader, node: yaml.Node, path: Path_) -> m.CallbackPolicy | None:
    mr = r.mapping(node, path, "callbacks {max_attempts:, retry_delay:, window:, timezone:}")
    if mr is None:
        return None
    d = m.CallbackPolicy()
    attempts = mr.get("max_attempts", lambda n, p: r.integer(n, p, 1, 20), d.max_attempts)
    delay = mr.get("retry_delay", lambda n, p: r.number(n, p, 10, 7 * 86400), d.retry_delay)
    window = _window(r, mr, path)
    tz = mr.get("timezone", lambda n, p: _timezone(r, n, p), None)
    mr.finish()
    return m.CallbackPolicy(_opt(attempts, d.max_attempts), _opt(delay, d.retry_delay), window, tz)


def read_security(r: Reader, node: yaml.Node, path: Path_) -> m.Security | None:
    mr = r.mapping(node, path, "security {pin_attempts:, lockout_seconds:}")
    if mr is None:
        return None
    d = m.Security()
    attempts = mr.get("pin_attempts", lambda n, p: r.integer(n, p, 1, 100), d.pin_attempts)
    lockout = mr.get("lockout_seconds", lambda n, p: r.number(n, p, 1, 86400), d.lockout_seconds)
    mr.finish()
    return m.Security(_opt(attempts, d.pin_attempts), _opt(lockout, d.lockout_seconds))


PREFIX_RE: Final = re.compile(r"\+[1-9][0-9]{0,14}")


def read_dialout(r: Reader, node: yaml.Node, path: Path_) -> m.DialOut | None:
    mr = r.mapping(node, path, "dialout {countries:, number_types:, allow:, deny:, internal:}")
    if mr is None:
        return None
    d = m.DialOut()
    regions = _list(r, mr, "countries", path, lambda n, p: _region(r, n, p))
    types = _list(r, mr, "number_types", path, lambda n, p: _number_type(r, n, p))
    prefix = "an E.164 prefix such as +1900"
    allow = _list(r, mr, "allow", path, lambda n, p: r.text(n, p, pattern=PREFIX_RE, expected=prefix))
    deny = _list(r, mr, "deny", path, lambda n, p: r.text(n, p, pattern=PREFIX_RE, expected=prefix))
    internal = mr.get("internal", r.boolean, d.internal)
    mr.finish()
    denied = tuple(deny) if deny is not None else d.deny
    for i, a in enumerate(allow or ()):
        inside = next((x for x in denied if a.startswith(x)), None)
        if inside is not None:
            r.problems.add(
                f"allowed prefix {a} lies inside denied prefix {inside}",
                (*path, "allow", str(i)),
                m.Where(r.rel, mr.line("allow")),
            )
    return m.DialOut(
        countries=tuple(regions) if regions is not None else d.countries,
        number_types=tuple(types) if types is not None else d.number_types,
        allow=tuple(allow or ()),
        deny=denied,
        internal=_opt(internal, d.internal),
    )


def _region(r: Reader, node: yaml.Node, path: Path_) -> str | None:
    value = r.raw(node, path, "an ISO country code such as US")
    if value is None:
        return None
    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        r.bad(node, path, f"expected an ISO country code such as US, found {value!r}")
        return None
    return value.upper()


def _number_type(r: Reader, node: yaml.Node, path: Path_) -> str | None:
    value = r.raw(node, path, "a number type")
    if value is None:
        return None
    if value not in m.NUMBER_TYPES:
        r.bad(node, path, f"expected one of {', '.join(m.NUMBER_TYPES)}, found {value!r}")
        return None
    return value


def read_music(r: Reader, mid: str, node: yaml.Node, path: Path_) -> m.MusicClass | None:
    mr = r.mapping(node, path, "a music class {directory:, sort:}")
    if mr is None:
        return None
    directory = mr.get("directory", r.dir_path, expected="a directory of audio files")
    sort = mr.get(
        "sort",
        lambda n, p: r.text(n, p, pattern=re.compile(r"random|alpha"), expected="random or alpha"),
        "random",
    )
    mr.finish()
    if directory is None:
        return None
    return m.MusicClass(name=mid, directory=directory, sort=_opt(sort, "random"))


def read_mailbox(r: Reader, box: str, node: yaml.Node, path: Path_) -> m.Mailbox | None:
    mr = r.mapping(node, path, "a mailbox {name:, email:, pin:}")
    if mr is None:
        return None
    name = mr.get("name", r.text, expected="the mailbox's name")
    email = mr.get("email", lambda n, p: r.text(n, p, pattern=EMAIL_RE, expected="an e-mail address"), None)
    pin = mr.get("pin", r.pin, None)
    mr.finish()
    if name is None:
        return None
    return m.Mailbox(id=box, name=name, email=email, pin=pin)


def read_fallback(r: Reader, node: yaml.Node, path: Path_) -> m.Fallback | None:
    mr = r.mapping(node, path, "fallback {prompt:, ring_seconds:, endpoints:, mailbox:, closed_prompt:}")
    if mr is None:
        return None
    prompt = mr.get("prompt", r.ident, expected="a prompt id")
    ring = mr.get("ring_seconds", lambda n, p: r.integer(n, p, 5, 600), 30)
    eps = _list(
        r, mr, "endpoints", path, lambda n, p: r.text(n, p, pattern=ENDPOINT_RE, expected="an endpoint")
    )
    box = mr.get("mailbox", lambda n, p: r.text(n, p, pattern=DIGITS_RE, expected="a mailbox number"), None)
    closed = mr.get("closed_prompt", r.ident, None)
    mr.finish()
    if prompt is None:
        return None
    return m.Fallback(
        prompt=prompt,
        ring_seconds=_opt(ring, 30),
        endpoints=tuple(eps or ()),
        mailbox=box,
        closed_prompt=closed,
    )


def read_campaign(r: Reader, cid: str, node: yaml.Node, path: Path_) -> m.Campaign | None:
    mr = r.mapping(node, path)
    if mr is None:
        return None
    name = mr.get("name", r.note, cid)
    queue = mr.get("queue", r.ident, expected="the agents' queue")
    mode = mr.get(
        "mode", lambda n, p: r.choice(n, p, m.DialMode), expected="preview, progressive or predictive"
    )
    caller_id = mr.get("caller_id", lambda n, p: _e164(r, n, p), expected="an E.164 caller id")
    contacts = mr.get("contacts", r.rel_path, expected="the contacts CSV file")
    skills = _skill_levels(r, mr, "skills", path) or {}
    trunk = mr.get("trunk", r.ident, None)
    window = _window(r, mr, path)
    tz = mr.get("timezone", lambda n, p: _timezone(r, n, p), "UTC")
    attempts = mr.get("max_attempts", lambda n, p: r.integer(n, p, 1, 20), 3)
    retry = m.RetryDelays()
    rnode = mr.node_of("retry")
    if rnode is not None:
        rm = r.mapping(rnode, (*path, "retry"), "retry delays {busy:, no_answer:, machine:, failed:}")
        if rm is not None:
            vals: dict[str, float] = {}
            for k in ("busy", "no_answer", "machine", "failed"):
                v = rm.get(k, lambda n, p: r.number(n, p, 0, 30 * 86400), getattr(retry, k))
                vals[k] = _opt(v, getattr(retry, k))
            rm.finish()
            retry = m.RetryDelays(**vals)
    dnc = mr.get("dnc", r.rel_path, None)
    amd = mr.get("amd", r.boolean, True)
    amd_action = mr.get("amd_action", lambda n, p: r.choice(n, p, m.AMDAction), m.AMDAction.HANGUP)
    amd_msg = mr.get("amd_message", r.ident, None)
    limit = mr.get("abandon_limit", lambda n, p: r.number(n, p, 0, 0.5), 0.03)
    wdays = mr.get("abandon_window_days", lambda n, p: r.integer(n, p, 1, 365), 30)
    within = mr.get("connect_within", lambda n, p: r.number(n, p, 0.5, 10), 2.0)
    ident = mr.get("identification_prompt", r.ident, expected="the prompt played on an abandoned call")
    ratio = mr.get("max_ratio", lambda n, p: r.number(n, p, 1, 10), 3.0)
    ring = mr.get("ring_timeout", lambda n, p: r.number(n, p, 5, 120), 25.0)
    enabled = mr.get("enabled", r.boolean, True)
    codes = _disposition_list(r, mr, path)
    blend = m.CampaignBlend()
    bnode = mr.node_of("blend")
    if bnode is not None:
        bm = r.mapping(bnode, (*path, "blend"), "blend {inbound_first:, min_idle_for_inbound:}")
        if bm is not None:
            first = bm.get("inbound_first", r.boolean, True)
            keep = bm.get("min_idle_for_inbound", lambda n, p: r.integer(n, p, 0, 1000), 0)
            bm.finish()
            blend = m.CampaignBlend(inbound_first=_opt(first, True), min_idle_for_inbound=_opt(keep, 0))
    amd_settings = read_amd_settings(r, mr.node_of("amd_settings"), (*path, "amd_settings"))
    mr.finish()
    if amd_action == m.AMDAction.MESSAGE and amd_msg is None and amd_action is not None:
        r.problems.add(
            "amd_action is message but no amd_message prompt is given",
            (*path, "amd_message"),
            m.Where(r.rel, mr.line("amd_action")),
        )
    if queue is None or mode is None or caller_id is None or contacts is None or ident is None:
        return None
    return m.Campaign(
        id=cid,
        name=_opt(name, cid),
        queue=queue,
        mode=mode,
        caller_id=caller_id,
        contacts=contacts,
        skills=m.frozen_map(skills),
        trunk=trunk,
        window=window,
        timezone=_opt(tz, "UTC"),
        max_attempts=_opt(attempts, 3),
        retry=retry,
        dnc=dnc,
        amd=_opt(amd, True),
        amd_action=_opt(amd_action, m.AMDAction.HANGUP),
        amd_message=amd_msg,
        abandon_limit=_opt(limit, 0.03),
        abandon_window_days=_opt(wdays, 30),
        connect_within=_opt(within, 2.0),
        identification_prompt=ident,
        max_ratio=_opt(ratio, 3.0),
        ring_timeout=_opt(ring, 25.0),
        enabled=_opt(enabled, True),
        dispositions=codes,
        blend=blend,
        amd_settings=amd_settings,
    )


#: amd_settings keys: (lowest, highest) allowed.
AMD_LIMITS: Final = {
    "initial_silence": (500, 10000),
    "greeting": (500, 10000),
    "after_greeting_silence": (100, 5000),
    "total_analysis_time": (1000, 10000),
    "min_word_length": (10, 1000),
    "between_words_silence": (10, 1000),
    "max_words": (1, 10),
    "silence_threshold": (1, 32767),
    "max_word_length": (100, 10000),
    "beep_silence": (200, 5000),
    "beep_max_wait": (1, 60),
}


def _bounded(r: Reader, low: int, high: int, node: yaml.Node, path: Path_) -> int | None:
    return r.integer(node, path, low, high)


def read_amd_settings(r: Reader, node: yaml.Node | None, path: Path_) -> m.AMDSettings:
    """``amd_settings`` (every key optional; AMD()'s defaults otherwise), checked against
    ``AMD_LIMITS`` and against each other."""
    default = m.AMDSettings()
    if node is None:
        return default
    am = r.mapping(node, path, "AMD settings {" + ", ".join(f"{k}:" for k in AMD_LIMITS) + "}")
    if am is None:
        return default
    values: dict[str, int] = {}
    for key, (low, high) in AMD_LIMITS.items():
        got = am.get(key, functools.partial(_bounded, r, low, high), getattr(default, key))
        values[key] = _opt(got, getattr(default, key))
    am.finish()
    settings = m.AMDSettings(**values)
    if settings.total_analysis_time <= settings.initial_silence:
        r.problems.add(
            f"expected total_analysis_time above initial_silence ({settings.initial_silence}), "
            f"found {settings.total_analysis_time}",
            (*path, "total_analysis_time"),
            m.Where(r.rel, am.line("total_analysis_time")),
        )
    return settings


# ============================================================================ prompts
def load_prompts(prompts_dir: Path | None, problems: Problems, env: Mapping[str, str]) -> m.PromptCatalog:
    """``prompts.yaml`` (id -> {language: text}) and the WAVs beside it (``<lang>/<id>.wav``)."""
    if prompts_dir is None:
        return m.PromptCatalog()
    index = prompts_dir / "prompts.yaml"
    rel = f"{prompts_dir.name}/prompts.yaml"
    if not index.is_file():
        problems.add("missing prompts file (prompt id -> text per language)", (), m.Where(rel, 1))
        return m.PromptCatalog()
    root = read_yaml(index, rel, problems)
    if root is None:
        return m.PromptCatalog()
    r = Reader(rel, problems, env)
    top = MapReader(r, root, ("prompts",))
    out: dict[str, m.Prompt] = {}
    audio: set[tuple[str, str]] = set()
    for pid, key_node, value_node in top.items():
        pp = ("prompts", pid)
        if not ID_RE.fullmatch(pid):
            r.bad(key_node, pp, f"expected a prompt id (a-z 0-9 _ -), found {pid!r}")
            continue
        pm = r.mapping(value_node, pp, "a mapping language -> text")
        if pm is None:
            continue
        texts: dict[str, str] = {}
        for lang, lkn, lvn in pm.items():
            if not LANG_RE.fullmatch(lang):
                r.bad(lkn, (*pp, lang), f"expected a language code, found {lang!r}")
                continue
            t = r.raw(lvn, (*pp, lang), "the prompt's text")
            if t is not None:
                if not t.strip():
                    r.bad(lvn, (*pp, lang), "expected the prompt's text, found nothing")
                    continue
                texts[lang] = t
                if (prompts_dir / lang / f"{pid}.wav").is_file():
                    audio.add((pid, lang))
        out[pid] = m.Prompt(pid, m.frozen_map(texts))
    return m.PromptCatalog(m.frozen_map(out), frozenset(audio))


# ============================================================================ the directory
SINGLE_SECTIONS: Final = (
    "center",
    "asterisk",
    "phones",
    "recording",
    "feature_codes",
    "fallback",
    "security",
    "dialout",
    "callbacks",
)
MAP_SECTIONS: Final = (
    "trunks",
    "flows",
    "queues",
    "music",
    "mailboxes",
    "campaigns",
    "pause_reasons",
    "dispositions",
)
LIST_SECTIONS: Final = ("numbers", "skills", "agents", "supervisors")
ALL_SECTIONS: Final = SINGLE_SECTIONS + MAP_SECTIONS + LIST_SECTIONS

_MAP_READERS: Final[dict[str, Callable[[Reader, str, yaml.Node, Path_], Any]]] = {
    "trunks": read_trunk,
    "flows": read_flow,
    "queues": read_queue,
    "music": read_music,
    "mailboxes": read_mailbox,
    "campaigns": read_campaign,
    "pause_reasons": read_pause_reason,
    "dispositions": read_disposition,
}
# Campaign ids become dialplan extension names, where Asterisk ignores "-": no dashes there.
_MAP_KEY_RE: Final = {"mailboxes": DIGITS_RE, "campaigns": re.compile(r"[a-z][a-z0-9_]{0,63}")}


@dataclass
class Loaded:
    """A configuration and where each part of it was written."""

    config: m.Config
    locations: Locations
    directory: Path


def config_files(directory: Path) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` under ``directory`` (recursively), in a stable order."""
    files = [p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(directory).as_posix())


def default_prompts_dir(directory: Path) -> Path | None:
    candidate = directory.resolve().parent / "ivr_prompts"
    return candidate if candidate.is_dir() else None


def load(
    directory: Path,
    *,
    env: Mapping[str, str] | None = None,
    prompts_dir: Path | None | _Missing = MISSING,
    check_files: bool = True,
) -> Loaded:
    """Read and validate a configuration directory. Raises ``ValidationError`` listing every
    problem found (syntax, schema, cross-references), sorted by file and line.

    ``prompts_dir`` defaults to ``ivr_prompts/`` beside ``directory``; ``None`` skips prompts
    (and the prompt checks). ``env`` defaults to ``os.environ`` (for ``${ENV_VAR}`` secrets)."""
    env = os.environ if env is None else env
    locations = Locations()
    problems = Problems(locations)
    if not directory.is_dir():
        raise ConfigError("not a directory", file=str(directory))
    files = config_files(directory)
    if not files:
        raise ConfigError("no *.yaml files found", file=str(directory))

    singles: dict[str, Any] = {}
    single_where: dict[str, m.Where] = {}
    maps: dict[str, dict[str, Any]] = {k: {} for k in MAP_SECTIONS}
    map_where: dict[tuple[str, str], m.Where] = {}
    lists: dict[str, list[Any]] = {k: [] for k in LIST_SECTIONS}

    unreadable: list[str] = []
    for path in files:
        rel = path.relative_to(directory).as_posix()
        root = read_yaml(path, rel, problems)
        if root is None:
            unreadable.append(rel)
            continue
        r = Reader(rel, problems, env)
        top = MapReader(r, root, ())
        for section, key_node, value_node in top.items():
            sp = (section,)
            here = r.where(key_node)
            if section not in ALL_SECTIONS:
                hint = _closest(section, list(ALL_SECTIONS))
                expected = f"did you mean {hint!r}?" if hint else "expected one of " + ", ".join(ALL_SECTIONS)
                r.bad(key_node, sp, f"unknown section {section!r}; {expected}")
                continue
            if section in SINGLE_SECTIONS:
                if section in singles or section in single_where:
                    r.bad(key_node, sp, f"section {section!r} is already given at {single_where[section]}")
                    continue
                single_where[section] = here
                singles[section] = _read_single(r, section, value_node, sp)
            elif section in MAP_SECTIONS:
                sm = r.mapping(value_node, sp, f"a mapping of {section} by id")
                if sm is None:
                    continue
                key_re = _MAP_KEY_RE.get(section, ID_RE)
                for item_id, ikn, ivn in sm.items():
                    ip = (section, item_id)
                    if not key_re.fullmatch(item_id):
                        r.bad(ikn, ip, f"expected an id ({key_re.pattern}), found {item_id!r}")
                        continue
                    if (section, item_id) in map_where:
                        r.bad(
                            ikn,
                            ip,
                            f"{section} {item_id!r} is already defined at {map_where[(section, item_id)]}",
                        )
                        continue
                    map_where[(section, item_id)] = r.where(ikn)
                    maps[section][item_id] = _MAP_READERS[section](r, item_id, ivn, ip)
            else:
                items = r.seq(value_node, sp, f"a list of {section}")
                if items is None:
                    continue
                start = len(lists[section])
                for i, item in enumerate(items):
                    ip = (section, _item_key(item, section, start + i))
                    lists[section].append((_read_list_item(r, section, item, ip), r.where(item)))

    if unreadable:
        # A file that does not read leaves its sections out: checking the others against them
        # would only report knock-on errors ("unknown queue ... (none is defined)"): stop here;
        # the references between files are checked once every file reads.
        problems.raise_if_any()
    center = singles.get("center")
    if "center" not in single_where:
        problems.add("missing required section 'center' (name, timezone, hours, languages)", ())
    prompts = (
        load_prompts(default_prompts_dir(directory), problems, env)
        if isinstance(prompts_dir, _Missing)
        else load_prompts(prompts_dir, problems, env)
    )
    check_prompts = not (prompts_dir is None or (isinstance(prompts_dir, _Missing) and not prompts.prompts))

    if center is None:
        problems.raise_if_any()
        raise ConfigError("the center section could not be read")  # pragma: no cover

    config = m.Config(
        center=center,
        asterisk=singles.get("asterisk") or m.AsteriskSettings(),
        trunks=m.frozen_map({k: v for k, v in maps["trunks"].items() if v is not None}),
        phones=singles.get("phones") or m.SipMedia(),
        numbers=_numbers(lists["numbers"], problems),
        flows=m.frozen_map({k: v for k, v in maps["flows"].items() if v is not None}),
        skills=tuple(v for v, _ in lists["skills"] if v is not None),
        queues=m.frozen_map({k: v for k, v in maps["queues"].items() if v is not None}),
        agents=_by_id(lists["agents"], "agents", problems),
        supervisors=_by_id(lists["supervisors"], "supervisors", problems),
        pause_reasons=m.frozen_map({k: v for k, v in maps["pause_reasons"].items() if v is not None}),
        dispositions=m.frozen_map({k: v for k, v in maps["dispositions"].items() if v is not None}),
        recording=singles.get("recording") or m.Recording(),
        feature_codes=singles.get("feature_codes") or m.FeatureCodes(),
        security=singles.get("security") or m.Security(),
        dialout=singles.get("dialout") or m.DialOut(),
        callbacks=singles.get("callbacks") or m.CallbackPolicy(),
        music=m.frozen_map({k: v for k, v in maps["music"].items() if v is not None}),
        mailboxes=m.frozen_map({k: v for k, v in maps["mailboxes"].items() if v is not None}),
        fallback=singles.get("fallback"),
        campaigns=m.frozen_map({k: v for k, v in maps["campaigns"].items() if v is not None}),
        prompts=prompts,
    )
    _check_skill_list(lists["skills"], problems)
    broken = frozenset((sec, k) for sec in MAP_SECTIONS for k, v in maps[sec].items() if v is None)
    for problem in check(config, check_prompts=check_prompts, broken=broken):
        problems.add(problem.message, problem.path)
    if check_files:
        for camp in config.campaigns.values():
            for key, file in (("contacts", camp.contacts), ("dnc", camp.dnc)):
                if file is not None and not (directory / file).is_file():
                    problems.add(f"file {file!r} does not exist in {directory}", ("campaigns", camp.id, key))
    problems.raise_if_any()
    return Loaded(config, locations, directory)


def load_config(directory: Path, **kwargs: Any) -> m.Config:
    """``load(directory, ...).config``: the model, or ``ValidationError`` with every problem."""
    return load(directory, **kwargs).config


def _read_single(r: Reader, section: str, node: yaml.Node, path: Path_) -> Any:
    if section == "center":
        return read_center(r, node, path)
    if section == "asterisk":
        return read_asterisk(r, node, path)
    if section == "recording":
        return read_recording(r, node, path)
    if section == "feature_codes":
        return read_feature_codes(r, node, path)
    if section == "security":
        return read_security(r, node, path)
    if section == "callbacks":
        return read_callbacks(r, node, path)
    if section == "dialout":
        return read_dialout(r, node, path)
    if section == "phones":
        return read_phones(r, node, path)
    return read_fallback(r, node, path)


def _item_key(node: yaml.Node, section: str, index: int) -> str:
    """The path key of a list item: its id (agents, supervisors), number or name when it has a
    plain one, else its index."""
    key = {"agents": "id", "supervisors": "id", "numbers": "number"}.get(section)
    if key is None:
        if isinstance(node, yaml.ScalarNode) and ID_RE.fullmatch(str(node.value)):
            return str(node.value)
        return str(index)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.ScalarNode):
                if re.fullmatch(r"\+?[0-9]{1,20}", str(v.value)):
                    return str(v.value)
    return str(index)


def _read_list_item(r: Reader, section: str, node: yaml.Node, path: Path_) -> Any:
    if section == "numbers":
        return read_number(r, node, path)
    if section == "skills":
        return r.ident(node, path)
    if section == "agents":
        return read_agent(r, node, path)
    return read_supervisor(r, node, path)


def _check_skill_list(items: list[tuple[str | None, m.Where]], problems: Problems) -> None:
    seen: dict[str, m.Where] = {}
    for skill, where in items:
        if skill is None:
            continue
        if skill in seen:
            problems.add(
                f"skill {skill!r} is listed twice (first at {seen[skill]})", ("skills", skill), where
            )
        seen.setdefault(skill, where)


def _numbers(items: list[tuple[m.Number | None, m.Where]], problems: Problems) -> tuple[m.Number, ...]:
    out: list[m.Number] = []
    first: dict[str, m.Where] = {}
    for num, where in items:
        if num is None:
            continue
        if num.dialed in first:
            problems.add(
                f"duplicate number {num.number} (first at {first[num.dialed]}; a DID maps to one flow)",
                ("numbers", num.number),
                where,
            )
            continue
        first[num.dialed] = where
        out.append(num)
    return tuple(out)


def _by_id(items: list[tuple[Any, m.Where]], section: str, problems: Problems) -> Mapping[str, Any]:
    out: dict[str, Any] = {}
    first: dict[str, m.Where] = {}
    for item, where in items:
        if item is None:
            continue
        if item.id in out:
            problems.add(
                f"duplicate {section[:-1]} id {item.id!r} (first at {first[item.id]})",
                (section, item.id),
                where,
            )
            continue
        out[item.id] = item
        first[item.id] = where
        problems.locations.places[(section, item.id)] = where
    return m.frozen_map(out)
