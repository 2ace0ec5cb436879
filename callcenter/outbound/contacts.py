"""Pure: campaign contact lists (CSV import, bad rows reported by line) and the do-not-call list.

The shell reads the files; these functions take their text.

Contact CSV: a header row, then one contact per row. Columns (header names are case-insensitive):

- ``phone`` (also ``number``, ``phone_number``, ``telephone``): required; normalised to E.164 with
  ``callcenter.phone.normalize`` and the campaign's default region;
- ``id`` (also ``external_id``, ``contact_id``): optional; a stable key for the contact, else the
  E.164 number is the key;
- ``name``: optional;
- ``timezone``: optional IANA zone overriding the one derived from the number;
- every other column is kept as contact data (the agent's screen-pop).

A bad row never stops the import: it is reported as ``RowProblem(line, column, reason, message)``
and the good rows are kept. A number seen twice is reported at its second line (``duplicate``), a
number on the do-not-call list is not imported and is listed in ``ImportResult.on_dnc``.

DNC file: one number per line (or the first CSV column), ``#`` starts a comment, blank lines
ignored; bad numbers are reported by line like contacts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.csvrows import RowProblem, data_rows
from callcenter.errors import InvalidPhoneNumberError
from callcenter.phone import is_e164, normalize, zones_for

PHONE_COLUMNS: Final = ("phone", "number", "phone_number", "telephone")
ID_COLUMNS: Final = ("id", "external_id", "contact_id")
MAX_FIELD_LENGTH: Final = 1000
MAX_KEY_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class Contact:
    """One person to call. ``zones``: the zones the calling window must hold in (never empty)."""

    key: str
    phone: str
    zones: tuple[str, ...]
    name: str = ""
    data: Mapping[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True, slots=True)
class ImportResult:
    contacts: tuple[Contact, ...]
    problems: tuple[RowProblem, ...]
    on_dnc: tuple[int, ...] = ()
    """Lines whose number is on the do-not-call list (not imported)."""


@dataclass(frozen=True, slots=True)
class DncList:
    """A do-not-call list: a set of E.164 numbers. ``number in dnc`` is the check before a dial."""

    numbers: frozenset[str] = frozenset()

    def __contains__(self, e164: object) -> bool:
        return e164 in self.numbers

    def __len__(self) -> int:
        return len(self.numbers)


def valid_zone(name: str) -> bool:
    if not name or len(name) > 64 or ".." in name or name.startswith("/"):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def parse_contacts(
    text: str,
    *,
    default_region: str | None,
    default_zone: str,
    dnc: DncList | None = None,
    refuse: Callable[[str], str | None] | None = None,
) -> ImportResult:
    """Parse a contact CSV (see the module docstring). Never raises for a bad row. ``refuse``
    (the dial-out policy) gives the reason a number may not be dialled, or None."""
    problems: list[RowProblem] = []
    contacts: list[Contact] = []
    on_dnc: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        raw_header = next(reader)
    except StopIteration:
        return ImportResult((), (RowProblem(1, None, "empty", "the file is empty: no header row"),))
    except csv.Error as exc:
        return ImportResult((), (RowProblem(1, None, "csv", f"unreadable header: {exc}"),))
    header = [h.strip().lower() for h in raw_header]
    phone_col = _pick(header, PHONE_COLUMNS)
    if phone_col is None:
        return ImportResult(
            (),
            (
                RowProblem(
                    1,
                    None,
                    "no_phone_column",
                    f"no phone column in the header (one of {', '.join(PHONE_COLUMNS)})",
                ),
            ),
        )
    id_col = _pick(header, ID_COLUMNS)
    name_col = _pick(header, ("name",))
    tz_col = _pick(header, ("timezone",))
    special = {c for c in (phone_col, id_col, name_col, tz_col) if c is not None}
    seen_phone: dict[str, int] = {}
    seen_key: dict[str, int] = {}
    for line, row in data_rows(reader, problems):
        if len(row) != len(header):
            problems.append(
                RowProblem(line, None, "columns", f"expected {len(header)} columns, found {len(row)}")
            )
            continue
        too_long = [header[i] for i, cell in enumerate(row) if len(cell) > MAX_FIELD_LENGTH]
        if too_long:
            problems.append(
                RowProblem(line, too_long[0], "too_long", f"value longer than {MAX_FIELD_LENGTH}")
            )
            continue
        raw_phone = row[phone_col]
        try:
            e164 = normalize(raw_phone, default_region)
        except InvalidPhoneNumberError as exc:
            problems.append(RowProblem(line, header[phone_col], exc.reason, str(exc)))
            continue
        refused = refuse(e164) if refuse is not None else None
        if refused is not None:
            message = f"{e164}: the dial-out policy refuses it ({refused})"
            problems.append(RowProblem(line, header[phone_col], "dial_out_refused", message))
            continue
        if e164 in seen_phone:
            problems.append(
                RowProblem(
                    line,
                    header[phone_col],
                    "duplicate",
                    f"{e164} already imported at line {seen_phone[e164]}",
                )
            )
            continue
        key = row[id_col].strip() if id_col is not None else ""
        key = key or e164
        if len(key) > MAX_KEY_LENGTH or any(ord(ch) < 32 for ch in key):
            problems.append(RowProblem(line, "id", "bad_id", "contact id too long or has control characters"))
            continue
        if key in seen_key:
            problems.append(
                RowProblem(line, "id", "duplicate", f"id {key!r} already used at line {seen_key[key]}")
            )
            continue
        zones: tuple[str, ...]
        tz_text = row[tz_col].strip() if tz_col is not None else ""
        if tz_text:
            if not valid_zone(tz_text):
                problems.append(RowProblem(line, "timezone", "bad_timezone", f"unknown timezone {tz_text!r}"))
                continue
            zones = (tz_text,)
        else:
            zones = zones_for(e164, default_zone)
        seen_phone[e164] = line
        seen_key[key] = line
        if dnc is not None and e164 in dnc:
            on_dnc.append(line)
            continue
        data = {header[i]: cell for i, cell in enumerate(row) if i not in special and header[i]}
        name = row[name_col].strip() if name_col is not None else ""
        contacts.append(Contact(key=key, phone=e164, zones=zones, name=name, data=data, line=line))
    return ImportResult(tuple(contacts), tuple(problems), tuple(on_dnc))


def parse_dnc(text: str, *, default_region: str | None) -> tuple[DncList, tuple[RowProblem, ...]]:
    """Parse a do-not-call list (see the module docstring)."""
    numbers: set[str] = set()
    problems: list[RowProblem] = []
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        content = raw_line.split("#", 1)[0].strip()
        if not content:
            continue
        first = content.split(",", 1)[0].strip().strip('"')
        if not first or first.lower() in PHONE_COLUMNS:
            continue
        if is_e164(first):
            numbers.add(first)
            continue
        try:
            numbers.add(normalize(first, default_region))
        except InvalidPhoneNumberError as exc:
            problems.append(RowProblem(lineno, None, exc.reason, str(exc)))
    return DncList(frozenset(numbers)), tuple(problems)
