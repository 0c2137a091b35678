"""`parser: {type: csv, columns: [...]}`, with Embulk's csv parser options."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any

from pipelines.engine.columns import BOOLEANS, ColumnSettings, schema_of, text_converter
from pipelines.native.compiled import compiled
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import DataError
from pipelines.plugins.base import ParserPlugin
from pipelines.engine.records import Batch, Encoded, Schema, Source
from pipelines.engine.textio import TextChunks, check_charset

csv.field_size_limit(16 << 20)

# pipelines/native/_fastrows.c: how a column converts, and how a call ended.
FAST_KINDS = {"string": 0, "long": 1, "double": 2, "boolean": 3}
CALL = 4
FULL, END, SLOW, WIDTH = 0, 1, 2, 3
READY = 1
ODD, NOT_ASCII = 2, 5  # encode_records: a record it leaves to split_rows; a text it does not read


def _fast_rows() -> tuple[Any, Any] | None:
    """The compiled loop (split_rows, type_fields), or None (pipelines.native.compiled)."""
    split_rows = compiled("pipelines.native._fastrows", "split_rows")
    return None if split_rows is None else (split_rows, compiled("pipelines.native._fastrows", "type_fields"))


@dataclass(frozen=True)
class CsvParserSettings:
    columns: tuple[ColumnSettings, ...]
    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    skip_header_lines: int = 0
    charset: str = "UTF-8"
    null_string: str | None = None
    allow_extra_columns: bool = False
    allow_optional_columns: bool = False

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("columns: declare at least one column")
        if len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        for name in ("quote", "escape"):
            value = getattr(self, name)
            if value is not None and len(value) > 1:
                raise ValueError(f"{name} must be one character (or empty), got {value!r}")
        marks = {"delimiter": self.delimiter, "quote": self.quote or None, "escape": self.escape or None}
        for name, value in marks.items():
            if value in ("\r", "\n"):
                raise ValueError(f"{name} cannot be a line break")
        if self.delimiter in (marks["quote"], marks["escape"]):
            raise ValueError(f"delimiter {self.delimiter!r} cannot also be the quote or escape character")
        if self.skip_header_lines < 0:
            raise ValueError("skip_header_lines must be 0 or more")


class CsvParser(ParserPlugin):
    Settings = CsvParserSettings

    def __init__(self, settings: CsvParserSettings, where: str) -> None:
        super().__init__(settings, where)
        self._schema = schema_of(settings.columns, where)
        self.charset = check_charset(settings.charset, f"{where}.charset")
        self.dialect: dict[str, Any] = {"delimiter": settings.delimiter, "strict": True}
        if settings.quote:
            self.dialect.update(quotechar=settings.quote, doublequote=True)
            if settings.escape and settings.escape != settings.quote:
                self.dialect["escapechar"] = settings.escape
        else:
            self.dialect.update(quoting=csv.QUOTE_NONE, escapechar=settings.escape or None)
        self.converters = [
            (i, c.name, c.type, conv) for i, c in enumerate(settings.columns) if (conv := text_converter(c)) is not None
        ]
        self.split_rows = _fast_rows() if not (settings.escape and settings.escape != settings.quote) else None
        # How _fastrows converts each column: a kind, and the converter (or mapping) it uses.
        self.kinds = tuple(FAST_KINDS.get(c.type, CALL) for c in settings.columns)
        self.hows = tuple(BOOLEANS if c.type == "boolean" else text_converter(c) for c in settings.columns)

    def schema(self) -> Schema:
        return self._schema

    @property
    def split_mode(self) -> str | None:
        """How an uncompressed object may be split: at record starts found by counting quotes (the quote
        character), at line starts without quoting, or (None) not at all when an escape character could
        hide a quote."""
        s = self.settings
        if s.escape and s.escape != s.quote:
            return None
        return s.quote or "lines"

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool = True, split: bool = False,
        encoding: Any = None,
    ) -> Iterator[tuple[Batch, int]]:
        """(batch, records consumed) pairs; with an `encoding` (pipelines.native.fused), batches of
        encoded records too, for the rows it takes."""
        s = self.settings
        chunks = TextChunks(stream, self.charset, source, errors)
        # Counted from here: skipping the header decodes the first chunk, whose bad-charset lines go to `errors`.
        errors_before = errors.count
        skip = s.skip_header_lines if header else 0
        if self.split_rows is not None:
            yield from self._batches_fast(chunks, errors, batch_rows, skip, split, source.uri, encoding)
            return
        lines = chain.from_iterable(map(io.StringIO, chunks))
        for _ in range(skip):
            if next(lines, None) is None:
                if errors.count > errors_before:  # header lines with bad bytes still count as read
                    yield Batch([], [], source.uri, chunks.raw_lines), errors.count - errors_before
                return
        reader = csv.reader(lines, **self.dialect)
        uri, ncols, converters, null = source.uri, len(s.columns), self.converters, s.null_string
        extra_ok, optional_ok = s.allow_extra_columns, s.allow_optional_columns

        def bad(start: int, end: int, reason: str) -> None:
            errors.add(uri, start, reason, chunks.raw_lines(start, end))

        rows: list[list[Any]] = []
        line_nos: list[int] = []
        prev = skip  # physical line where the previous record ended
        while True:
            try:
                for fields in reader:
                    start, prev = prev + 1, skip + reader.line_num
                    if not fields:
                        continue  # a blank line is not a row
                    if len(fields) != ncols:
                        n = len(fields)
                        if n > ncols and extra_ok:
                            del fields[ncols:]
                        elif n < ncols and optional_ok:
                            fields.extend([None] * (ncols - n))
                        else:
                            bad(start, prev, _width_reason(ncols, n))
                            continue
                    if null is not None:
                        fields = [None if f == null else f for f in fields]
                    try:
                        for i, name, type_name, conv in converters:
                            value = fields[i]
                            fields[i] = conv(value) if value else None
                    except (ValueError, TypeError, OverflowError):
                        bad(start, prev, _value_reason(name, type_name, fields[i]))
                        continue
                    rows.append(fields)
                    line_nos.append(start)
                    if len(rows) >= batch_rows:
                        consumed = len(rows) + errors.count - errors_before
                        yield Batch(rows, line_nos, uri, chunks.raw_lines), consumed
                        rows, line_nos, errors_before = [], [], errors.count
                break
            except csv.Error as exc:
                start, prev = prev + 1, skip + reader.line_num
                if split:
                    raise _range_ends_in_quotes(uri, start, exc) from None
                bad(start, prev, _malformed_reason(exc))
        consumed = len(rows) + errors.count - errors_before
        if consumed:
            yield Batch(rows, line_nos, uri, chunks.raw_lines), consumed

    def _batches_fast(
        self, chunks: TextChunks, errors: ErrorSink, batch_rows: int, skip: int, split: bool, uri: str, encoding: Any = None
    ) -> Iterator[tuple[Batch, int]]:
        """The loop of `batches` in C (pipelines/native/_fastrows.c), with the same rows, line numbers and
        errors: records it leaves to the csv module are read here, one at a time. With an
        `encoding`, each text is first read by encode_records; from a record it leaves, the rest
        of that text is read into rows."""
        s = self.settings
        columns = s.columns
        split_rows, type_fields = self.split_rows
        kinds, hows, null = self.kinds, self.hows, s.null_string
        extra_ok, optional_ok = s.allow_extra_columns, s.allow_optional_columns
        delimiter, quote = s.delimiter, s.quote or ""
        errors_before = errors.count
        rows: list[list[Any]] = []
        line_nos: list[int] = []

        def bad(start: int, end: int, reason: str) -> None:
            errors.add(uri, start, reason, chunks.raw_lines(start, end))

        def bad_record(done: int, start: int, end: int, payload: Any) -> None:
            if done == WIDTH:
                bad(start, end, _width_reason(len(columns), len(payload)))
            else:
                i, text = payload
                bad(start, end, _value_reason(columns[i].name, columns[i].type, text))

        texts = iter(chunks)
        text = next(texts, None)
        line, pos = 0, 0
        while line < skip:  # header lines (physical lines, as the csv path skips them)
            if text is None:
                if errors.count > errors_before:  # header lines with bad bytes still count as read
                    yield Batch([], [], uri, chunks.raw_lines), errors.count - errors_before
                return
            end = text.find("\n", pos)
            if end < 0:
                text, pos = next(texts, None), 0
                continue
            pos, line = end + 1, line + 1
        final = False  # whether text is the last (read one chunk at a time: a bad-bytes error comes in line order)
        encode = None if encoding is None else compiled("pipelines.native._fastrows", "encode_records")
        encoding_args = encoding.args if encode is not None else ()
        while text is not None:
            encoding_this = encode is not None
            while True:
                if encoding_this:
                    if rows:  # rows read before come first
                        yield Batch(rows, line_nos, uri, chunks.raw_lines), len(rows) + errors.count - errors_before
                        rows, line_nos, errors_before = [], [], errors.count
                    done, pos, line, count, data = encode(text, pos, final, batch_rows, line, *encoding_args)
                    if count:
                        yield Batch([], [], uri, chunks.raw_lines, Encoded(data, count)), count + errors.count - errors_before
                        errors_before = errors.count
                    if done == END:
                        break
                    if done != FULL:  # ODD or NOT_ASCII: the rest of this text into rows
                        encoding_this = False
                    continue
                done, pos, line, start, payload = split_rows(
                    text, pos, final, rows, line_nos, batch_rows, line, kinds, hows, null, extra_ok, optional_ok, delimiter, quote
                )
                if done == FULL:
                    yield Batch(rows, line_nos, uri, chunks.raw_lines), len(rows) + errors.count - errors_before
                    rows, line_nos, errors_before = [], [], errors.count
                elif done == END:
                    break
                elif done == SLOW:
                    stream = io.StringIO(text)
                    stream.seek(pos)
                    reader = csv.reader(stream, **self.dialect)
                    try:
                        fields = next(reader)
                    except csv.Error as exc:
                        if not final and stream.tell() >= len(text):
                            break  # the record goes on in the next chunk
                        start, line, pos = line + 1, line + reader.line_num, stream.tell()
                        if split:
                            raise _range_ends_in_quotes(uri, start, exc) from None
                        bad(start, line, _malformed_reason(exc))
                        continue
                    start, line, pos = line + 1, line + reader.line_num, stream.tell()
                    if not fields:
                        continue
                    status, payload = type_fields(fields, kinds, hows, null, extra_ok, optional_ok)
                    if status == READY:
                        rows.append(fields)
                        line_nos.append(start)
                    else:
                        bad_record(status, start, line, payload)
                else:
                    bad_record(done, start, line, payload)
            if final:
                break
            rest = text[pos:]
            following = next(texts, None)
            if following is None:
                text, final = (rest or None), True  # the unfinished last record, if any, once more as the last
            else:
                text = rest + following if rest else following
            pos = 0
        consumed = len(rows) + errors.count - errors_before
        if consumed:
            yield Batch(rows, line_nos, uri, chunks.raw_lines), consumed


# Why a record goes to the error output: the same words from both loops.
def _width_reason(ncols: int, n: int) -> str:
    return f"expected {ncols} columns, got {n}"


def _value_reason(name: str, type_name: str, text: str) -> str:
    return f"column '{name}' ({type_name}): cannot parse {text!r}"


def _malformed_reason(exc: Exception) -> str:
    return f"malformed CSV: {exc}"


def _range_ends_in_quotes(label: str, line: int, exc: Exception) -> DataError:
    # The plan puts range boundaries at record starts; reaching this means the bytes differ from the plan's.
    return DataError(f"line {line}: the byte range ends inside a quoted value ({exc}); make a new plan", where=label)
