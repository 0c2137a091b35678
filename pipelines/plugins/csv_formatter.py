"""`formatter: {type: csv, delimiter: ",", quote_policy: MINIMAL}`, with Embulk's csv formatter options.

    header_line   true       a first line with the column names
    delimiter     ","        one character ("\\t" for TSV)
    quote         '"'        the quote character (MINIMAL and ALL)
    quote_policy  MINIMAL    MINIMAL: quote values holding the delimiter, the quote, CR or LF, and a
                             string equal to null_string (so it reads back as a string, not null);
                             ALL: quote every value except nulls; NONE: never quote, escape instead
    escape        (none)     MINIMAL/ALL: escapes the quote inside quoted values (default: the quote
                             is doubled, ""); NONE: escapes the delimiter, CR, LF and itself ("\\")
    null_string   ""         how a null is written (never quoted)
    newline       LF         the line end: LF, CRLF or CR (a line break inside a value is kept as is)

Values: timestamps in ISO 8601 (2024-01-02T03:04:05+00:00), booleans true/false, json columns as
compact JSON, numbers as Python writes them. A batch is formatted at once by the csv module (C).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import IO, Any, Literal

from pipelines.engine.errors import RunError
from pipelines.engine.spi import FormatterPlugin
from pipelines.engine.records import Schema

NEWLINES = {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}


@dataclass(frozen=True)
class CsvFormatterSettings:
    header_line: bool = True
    delimiter: str = ","
    quote: str = '"'
    quote_policy: Literal["MINIMAL", "ALL", "NONE"] = "MINIMAL"
    escape: str | None = None
    null_string: str = ""
    newline: Literal["LF", "CRLF", "CR"] = "LF"

    def __post_init__(self) -> None:
        for name in ("delimiter", "quote", "escape"):
            value = getattr(self, name)
            if value is not None and len(value) != 1:
                raise ValueError(f"{name} must be one character, got {value!r}")
            if value in ("\r", "\n"):
                raise ValueError(f"{name} cannot be a line break")
        if self.delimiter in (self.quote, self.escape):
            raise ValueError(f"delimiter {self.delimiter!r} cannot also be the quote or escape character")
        specials = {self.delimiter, self.quote, "\r", "\n"} | ({self.escape} if self.escape else set())
        if any(c in specials for c in self.null_string):
            raise ValueError("null_string cannot hold the delimiter, the quote, the escape character or a line break")

    def dialect(self) -> dict[str, Any]:
        """csv.writer / csv.reader options (quoting aside) that write and read these settings."""
        options: dict[str, Any] = {"delimiter": self.delimiter, "lineterminator": NEWLINES[self.newline], "strict": True}
        if self.quote_policy == "NONE":
            return {**options, "quotechar": None, "escapechar": self.escape or "\\"}
        if self.escape is None or self.escape == self.quote:
            return {**options, "quotechar": self.quote, "doublequote": True}
        return {**options, "quotechar": self.quote, "doublequote": False, "escapechar": self.escape}


class NullField:
    """A null, written as null_string and never quoted.

    The csv module leaves numbers unquoted under QUOTE_NONNUMERIC, and takes anything with
    `__float__` for a number: that is how ALL (and MINIMAL's forced quoting) keep nulls bare.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __float__(self) -> float:
        return 0.0


def _timestamp(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _json(value: Any) -> Any:
    import orjson

    return None if value is None else orjson.dumps(value).decode()


def _same(value: Any) -> Any:
    return value


class _BooleanText(dict):
    """true/false by a dict lookup (C); anything else (None) passes through."""

    def __missing__(self, value: Any) -> Any:
        return value


def _cached_timestamps() -> Callable[[Any], Any]:
    from functools import lru_cache

    # Audiences repeat instants a lot; a cache hit costs no Python call.
    return lru_cache(maxsize=4096)(_timestamp)


# What turns a column's values into what the csv module writes (a new one per formatter: the caches).
CONVERTERS: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "boolean": lambda: _BooleanText({True: "true", False: "false"}).__getitem__,
    "timestamp": _cached_timestamps,
    "json": lambda: _json,
}


class CsvFormatter(FormatterPlugin):
    Settings = CsvFormatterSettings
    file_ext = "csv"

    def bind(self, schema: Schema) -> None:
        s: CsvFormatterSettings = self.settings
        self.buffer, self.side = io.StringIO(), io.StringIO()
        self.newline = NEWLINES[s.newline]
        dialect = s.dialect()
        quoting = {"MINIMAL": csv.QUOTE_MINIMAL, "ALL": csv.QUOTE_NONNUMERIC, "NONE": csv.QUOTE_NONE}[s.quote_policy]
        self.writer = csv.writer(self.buffer, quoting=quoting, **dialect)
        # The csv module (before 3.12) quotes or escapes CR and LF only if they are in `lineterminator`:
        # with LF lines, a CR in a value would be left bare. Rows holding such a break (rare), and under
        # MINIMAL a string equal to null_string, go through this writer instead: CRLF-terminated (the
        # terminator is replaced), and under MINIMAL quoting every string while nulls and numbers stay bare.
        careful = csv.QUOTE_NONE if s.quote_policy == "NONE" else csv.QUOTE_NONNUMERIC
        self.careful_writer = csv.writer(self.side, quoting=careful, **{**dialect, "lineterminator": "\r\n"})
        self.stray_break = {"LF": "\r", "CR": "\n", "CRLF": None}[s.newline]
        self.null = NullField(s.null_string)
        self.names = schema.names
        self.column_converters: list[tuple[int, Callable[[Any], Any]]] = []
        self.convert = self._converter(schema)
        self.format_rows = self._compiled_writer(schema)

    def count_rows(self, stream: IO[bytes]) -> int:
        """The records the csv module reads back with these settings, less the header line."""
        from pipelines.engine.textio import text_stream

        settings = self.settings
        quoting = csv.QUOTE_NONE if settings.quote_policy == "NONE" else csv.QUOTE_MINIMAL
        records = sum(1 for _ in csv.reader(text_stream(stream), quoting=quoting, **settings.dialect()))
        return records - (1 if settings.header_line else 0)

    def _compiled_writer(self, schema: Schema) -> Callable[[list[list[Any]]], bytes | None] | None:
        """The compiled writer (pipelines/native/_fastrows.c) for the default settings: MINIMAL, doubled
        quotes, null_string "", LF lines, no json column; None otherwise or when it is not built.
        It hands a batch back (None) whenever a value needs the rules below (an empty string, a CR)."""
        s: CsvFormatterSettings = self.settings
        plain = s.quote_policy == "MINIMAL" and s.null_string == "" and s.newline == "LF" and s.escape in (None, s.quote)
        if not plain or any(c.type == "json" for c in schema.columns) or not (s.delimiter + s.quote).isascii():
            return None
        from pipelines.native.compiled import compiled

        format_rows = compiled("pipelines.native._fastrows", "format_rows")
        if format_rows is None:
            return None
        kinds = tuple({"boolean": 1, "timestamp": 2}.get(c.type, 0) for c in schema.columns)
        delimiter, quote = s.delimiter, s.quote
        return lambda rows: format_rows(rows, kinds, delimiter, quote)

    def _converter(self, schema: Schema) -> Callable[[list[Any]], list[Any]] | None:
        """What turns a row into the values the csv module writes; None when the row goes as it is."""
        s: CsvFormatterSettings = self.settings
        converters = [CONVERTERS[c.type]() if c.type in CONVERTERS else _same for c in schema.columns]
        null = self.null
        if s.quote_policy == "ALL":  # every value a string (quoted), nulls bare
            typed = [(None if f is _same else f) for f in converters]
            return lambda row: [null if v is None else str(v) if f is None else str(f(v)) for f, v in zip(typed, row)]
        # MINIMAL and NONE write None as an empty field: a null needs replacing only for another null_string.
        if s.null_string:
            return lambda row: [null if v is None else f(v) for f, v in zip(converters, row)]
        # Here a batch is converted column by column (transposed), each value by a C-level call:
        # a cached isoformat for timestamps, a dict lookup for booleans (see CONVERTERS).
        self.column_converters = [(i, f) for i, f in enumerate(converters) if f is not _same]
        return None

    def begin(self) -> bytes:
        if not self.settings.header_line:
            return b""
        return self._format([list(self.names)])

    def rows(self, rows: list[list[Any]]) -> bytes:
        if self.format_rows is not None:
            text = self.format_rows(rows)
            if text is not None:
                return text
        if self.convert is not None:
            rows = [self.convert(row) for row in rows]
        elif self.column_converters and rows:
            columns: list[Any] = list(zip(*rows))
            for i, convert in self.column_converters:
                columns[i] = map(convert, columns[i])
            rows = list(zip(*columns))  # type: ignore[arg-type]
        return self._format(rows)

    def _format(self, rows: list[list[Any]]) -> bytes:
        policy = self.settings.quote_policy
        null_string = self.settings.null_string
        try:
            if policy == "ALL":  # every string quoted: nothing needs the careful writer
                return self._write(rows, None).encode("utf-8")
            minimal = policy == "MINIMAL"
            # Rows holding a string equal to null_string need the careful writer; one C-level scan finds
            # whether any does, so a batch without one is written without a Python call per row.
            suspect = minimal and null_string in chain.from_iterable(rows)
            text = self._write(rows, (lambda row: null_string in row) if suspect else None)
            stray = self.stray_break
            if stray is not None and stray in text:  # a line break to quote or escape somewhere: again, row by row
                text = self._write(
                    rows, lambda row: (minimal and null_string in row) or any(type(v) is str and stray in v for v in row)
                )
        except csv.Error as exc:
            raise RunError(f"cannot write a row as CSV ({exc}); use another quote_policy or an escape character") from None
        return text.encode("utf-8")

    def _write(self, rows: list[list[Any]], careful: Callable[[list[Any]], bool] | None) -> str:
        """The rows as CSV text: runs of them by the writer, those `careful` picks by the careful writer."""
        buffer = self.buffer
        buffer.seek(0)
        buffer.truncate()
        start = 0
        if careful is not None:
            for i, row in enumerate(rows):
                if careful(row):
                    if start < i:
                        self.writer.writerows(rows[start:i])
                    buffer.write(self._careful_row(row))
                    start = i + 1
        if start == 0:
            self.writer.writerows(rows)
        elif start < len(rows):
            self.writer.writerows(rows[start:])
        return buffer.getvalue()

    def _careful_row(self, row: list[Any]) -> str:
        side = self.side
        side.seek(0)
        side.truncate()
        self.careful_writer.writerow([self.null if v is None else v for v in row])
        return side.getvalue()[:-2] + self.newline
