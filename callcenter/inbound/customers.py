"""Pure: the customer directory's CSV (``callcenter customers import``), bad rows reported by line.

A header row, then one customer per row. Columns (header names are case-insensitive):

- ``phone`` (also ``number``, ``phone_number``, ``telephone``): required; normalised to E.164 with
  ``callcenter.phone.normalize`` and the center's default region: the key the IVR's lookup uses;
- ``name``, ``account``: optional, shown to the agent;
- ``tier``: optional, a short word (``[a-z0-9_-]``) the lookup node's ``tier_priority`` matches;
- every other column is kept as customer data (the agent's screen-pop).

A bad row never stops the import: it is reported as ``RowProblem(line, column, reason, message)``
and the good rows are kept. A number seen twice is reported at its second line (``duplicate``).
Nothing with a control character is kept: the values reach the agent's screen and the channel.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from callcenter.csvrows import RowProblem, data_rows
from callcenter.errors import InvalidPhoneNumberError
from callcenter.phone import normalize

PHONE_COLUMNS: Final = ("phone", "number", "phone_number", "telephone")
MAX_FIELD_LENGTH: Final = 500
TIER = re.compile(r"^[a-z0-9_-]{1,32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class CustomerRow:
    phone: str  # E.164
    name: str | None = None
    tier: str | None = None
    account: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True, slots=True)
class CustomerImport:
    customers: tuple[CustomerRow, ...]
    problems: tuple[RowProblem, ...]


def parse_customers(text: str, *, default_region: str | None) -> CustomerImport:
    """Parse a customer CSV (see the module docstring). Never raises for a bad row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        raw_header = next(reader)
    except StopIteration:
        return CustomerImport((), (RowProblem(1, None, "empty", "the file is empty: no header row"),))
    except csv.Error as exc:
        return CustomerImport((), (RowProblem(1, None, "csv", f"unreadable header: {exc}"),))
    header = [h.strip().lower() for h in raw_header]
    phone_col = next((header.index(c) for c in PHONE_COLUMNS if c in header), None)
    if phone_col is None:
        message = f"no phone column in the header (one of {', '.join(PHONE_COLUMNS)})"
        return CustomerImport((), (RowProblem(1, None, "no_phone_column", message),))
    named = {c: header.index(c) for c in ("name", "tier", "account") if c in header}
    special = {phone_col, *named.values()}
    problems: list[RowProblem] = []
    customers: list[CustomerRow] = []
    seen: dict[str, int] = {}
    for line, row in data_rows(reader, problems):
        problem = _row_problem(line, header, row)
        if problem is not None:
            problems.append(problem)
            continue
        try:
            e164 = normalize(row[phone_col], default_region)
        except InvalidPhoneNumberError as exc:
            problems.append(RowProblem(line, header[phone_col], exc.reason, str(exc)))
            continue
        if e164 in seen:
            message = f"{e164} already imported at line {seen[e164]}"
            problems.append(RowProblem(line, header[phone_col], "duplicate", message))
            continue
        values = {c: row[i].strip() or None for c, i in named.items()}
        tier = values.get("tier")
        if tier is not None and not TIER.match(tier):
            message = f"tier {tier!r} is not a short word (a-z, 0-9, _ and -)"
            problems.append(RowProblem(line, "tier", "bad_tier", message))
            continue
        seen[e164] = line
        data = {header[i]: cell.strip() for i, cell in enumerate(row) if i not in special and header[i]}
        customers.append(CustomerRow(e164, values.get("name"), tier, values.get("account"), data, line=line))
    return CustomerImport(tuple(customers), tuple(problems))


def _row_problem(line: int, header: list[str], row: list[str]) -> RowProblem | None:
    if len(row) != len(header):
        return RowProblem(line, None, "columns", f"expected {len(header)} columns, found {len(row)}")
    for i, cell in enumerate(row):
        if len(cell) > MAX_FIELD_LENGTH:
            return RowProblem(line, header[i], "too_long", f"value longer than {MAX_FIELD_LENGTH}")
        if _CONTROL.search(cell):
            return RowProblem(line, header[i], "control_characters", "control characters in the value")
    return None
