"""Pure: CSV lists (contacts, customers) read row by row, every problem located by line and column."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    column: str | None
    reason: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class Reader(Protocol):
    """What :func:`data_rows` needs of ``csv.reader``."""

    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...


def data_rows(reader: Reader, problems: list[RowProblem]) -> Iterator[tuple[int, list[str]]]:
    """The rows after the header, each with the line it starts on; blank rows are skipped and an
    unreadable row is added to ``problems`` (reason ``csv``) without stopping the rest."""
    end_of_previous = reader.line_num
    while True:
        line = end_of_previous + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(RowProblem(line, None, "csv", f"unreadable row: {exc}"))
            end_of_previous = reader.line_num
            continue
        end_of_previous = reader.line_num
        if row and any(cell.strip() for cell in row):
            yield line, row
