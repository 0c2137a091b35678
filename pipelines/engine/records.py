"""What flows between plugins: a schema, and batches of rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

ColumnType = Literal["string", "long", "double", "boolean", "timestamp", "json"]
COLUMN_TYPES: tuple[str, ...] = ("string", "long", "double", "boolean", "timestamp", "json")


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def index(self, name: str) -> int:
        for i, column in enumerate(self.columns):
            if column.name == name:
                return i
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self.columns)


@dataclass(frozen=True, slots=True)  # slots: a plan of a million objects holds a million of them
class Source:
    """One object or file to read: where it is, how big, and its version."""

    uri: str
    size: int
    etag: str | None = None


@dataclass
class Batch:
    """Rows (lists of values in schema order) read from one source.

    `line_nos[i]` is the line where row i starts in the source; `raw_line(n)`
    gives the text of line n, for error reports.
    """

    rows: list[list[Any]]
    line_nos: list[int]
    source: str
    raw_line: Callable[[int], str] = field(default=lambda n: "")

    def __len__(self) -> int:
        return len(self.rows)

    def keep(self, indexes: list[int]) -> None:
        """Keep only the rows at `indexes` (ascending)."""
        rows, line_nos = self.rows, self.line_nos
        self.rows = [rows[i] for i in indexes]
        self.line_nos = [line_nos[i] for i in indexes]
