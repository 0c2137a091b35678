"""`parser: {type: csv, columns: [...]}`, with Embulk's csv parser options.

Two loops give the same rows, line numbers and errors: the compiled one (split_rows in
pipelines/native/_fastrows.c, which hands the records it does not read to the csv module one at a
time), and the csv module's alone, where the extension is missing or an escape character differs from
the quote. A fused path (pipelines.native.fused) may offer each text to its encoder first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any, Literal

from pipelines.engine.batches import BatchBuilder
from pipelines.engine.columns import BOOLEANS, ColumnSettings, schema_of, text_converter, with_timestamp_defaults
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import DataError
from pipelines.engine.newlines import Newline, with_newline
from pipelines.engine.records import Batch, Schema, Source
from pipelines.engine.spi import ParserPlugin
from pipelines.engine.textio import TextChunks, check_charset
from pipelines.native.compiled import COLUMN_KINDS, CONVERTER_KIND, compiled
from pipelines.plugins.csv_tokenizer import NEWLINE_TEXT, STRAY_QUOTES, CsvTokenizer, InvalidRecord, numbered_lines

MAX_QUOTED_CHARS = 16 << 20
csv.field_size_limit(MAX_QUOTED_CHARS)

# How a call of split_rows, or of an encoder (pipelines.native.fused), ended: a full batch, the end
# of the text, a record left to the csv module (split_rows) or to the rows path (an encoder); for
# split_rows, BAD_WIDTH or any other value is a record with a wrong field count or a bad value.
BATCH_FULL, TEXT_END, LEFT_RECORD, BAD_WIDTH = 0, 1, 2, 3
ROW_READY = 1  # type_fields: the fields are a row

# An encoder: (text, pos, final, limit, line) -> (how it ended, pos, line, records or None).
Encoder = Callable[[str, int, bool, int, int], tuple[int, int, int, Any]]


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
    header_line: bool | None = None  # Embulk's older spelling of skip_header_lines: 1
    charset: str = "UTF-8"
    null_string: str | None = None
    allow_extra_columns: bool = False
    allow_optional_columns: bool = False
    # Embulk's options (docs/embulk/input-s3-and-parsers.md): the ones that change how text is split
    # take the tokenizer loop (pipelines.plugins.csv_tokenizer), not the compiled one.
    newline: Newline = "CRLF"
    line_delimiter_recognized: Newline | None = None  # Embulk 0.9's: CR reads lines ended by CR (as newline: CR)
    trim_if_not_quoted: bool = False
    comment_line_marker: str | None = None
    quotes_in_quoted_fields: Literal["ACCEPT_ONLY_RFC4180_ESCAPED", "ACCEPT_STRAY_QUOTES_ASSUMING_NO_DELIMITERS_IN_FIELDS"] = (
        "ACCEPT_ONLY_RFC4180_ESCAPED"
    )
    max_quoted_size_limit: int | None = None  # characters; without it, MAX_QUOTED_CHARS
    stop_on_invalid_record: bool | None = None  # pipelines.plugins.invalid_records
    default_timezone: str | None = None
    default_timestamp_format: str | None = None
    default_date: str | None = None

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("columns: declare at least one column")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        for name in ("quote", "escape"):
            value = getattr(self, name)
            if value is not None and len(value) > 1:
                raise ValueError(f"{name} must be one character (or empty), got {value!r}")
        marks = {"delimiter": self.delimiter, "quote": self.quote or None, "escape": self.escape or None}
        for name, value in marks.items():
            if value is not None and ("\r" in value or "\n" in value):
                raise ValueError(f"{name} cannot be a line break")
        if any(mark and mark in self.delimiter for mark in (marks["quote"], marks["escape"])):
            raise ValueError(f"delimiter {self.delimiter!r} cannot also be the quote or escape character")
        if self.skip_header_lines < 0:
            raise ValueError("skip_header_lines must be 0 or more")
        if self.header_line is not None and self.skip_header_lines:
            raise ValueError("set skip_header_lines or header_line (its older spelling), not both")
        if self.comment_line_marker == "":
            raise ValueError("comment_line_marker must not be empty (leave it out for no comment lines)")
        limit = self.max_quoted_size_limit
        if limit is not None and not 1 <= limit <= MAX_QUOTED_CHARS:
            raise ValueError(
                f"max_quoted_size_limit must be between 1 and {MAX_QUOTED_CHARS} (16 MiB): a quoted value is held "
                "whole in memory while it is read"
            )

    @property
    def tokenized(self) -> bool:
        """Whether an option of Embulk's tokenizer is set (read by pipelines.plugins.csv_tokenizer)."""
        return (
            self.trim_if_not_quoted or self.comment_line_marker is not None or self.max_quoted_size_limit is not None
            or self.quotes_in_quoted_fields == STRAY_QUOTES or len(self.delimiter) > 1
        )


class CsvParser(ParserPlugin):
    Settings = CsvParserSettings

    def __init__(self, settings: CsvParserSettings, where: str) -> None:
        super().__init__(settings, where)
        self.columns = with_timestamp_defaults(settings.columns, settings)
        self._schema = schema_of(self.columns, where)
        self.charset = check_charset(settings.charset, f"{where}.charset")
        self.dialect: dict[str, Any] = {"delimiter": settings.delimiter[0], "strict": True}  # (one character: else the tokenizer)
        if settings.quote:
            self.dialect.update(quotechar=settings.quote, doublequote=True)
            if settings.escape and settings.escape != settings.quote:
                self.dialect["escapechar"] = settings.escape
        else:
            self.dialect.update(quoting=csv.QUOTE_NONE, escapechar=settings.escape or None)
        self.converters = [(i, c.name, c.type, conv) for i, c in enumerate(self.columns) if (conv := text_converter(c)) is not None]
        module_only = settings.tokenized or (settings.escape and settings.escape != settings.quote)
        self.split_rows = None if module_only else _fast_rows()
        # What split_rows and type_fields take for each column: its kind, and the converter (or mapping) of that kind.
        self.column_kinds = tuple(COLUMN_KINDS.get(c.type, CONVERTER_KIND) for c in self.columns)
        self.column_converters = tuple(BOOLEANS if c.type == "boolean" else text_converter(c) for c in self.columns)

    def schema(self) -> Schema:
        return self._schema

    def header_lines(self) -> int:
        return 1 if self.settings.header_line else self.settings.skip_header_lines

    def adjust_exec(self, exec_settings: Any) -> Any:
        from pipelines.plugins.invalid_records import exec_for

        return exec_for(self.settings.stop_on_invalid_record, exec_settings, self.where)

    @property
    def split_mode(self) -> str | None:
        """How an uncompressed object may be split: at record starts found by counting quotes (the quote
        character), at line starts without quoting, or (None) not at all when an escape character could
        hide a quote."""
        s = self.settings
        if s.escape and s.escape != s.quote:
            return None
        if "CR" in (s.newline, s.line_delimiter_recognized) or s.comment_line_marker is not None \
                or s.quotes_in_quoted_fields == STRAY_QUOTES:
            return None  # byte ranges start after an LF, outside quotes counted as RFC 4180 counts them
        return s.quote or "lines"

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool = True, split: bool = False
    ) -> Iterator[tuple[Batch, int]]:
        return self.read_batches(stream, source, errors, batch_rows, header, split)

    def read_batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool, split: bool,
        encoder: Encoder | None = None,
    ) -> Iterator[tuple[Any, int]]:
        """`batches`; with an `encoder` (a fused path, pipelines.native.fused), each text is offered to it
        first, and the records it makes come in line order between the batches of rows."""
        s = self.settings
        chunks = TextChunks(with_newline(stream, s.newline, s.line_delimiter_recognized), self.charset, source, errors)
        # Counted from here: skipping the header decodes the first chunk, whose bad-charset lines go to `errors`.
        out = BatchBuilder(source.uri, chunks.raw_lines, errors, batch_rows)
        skip = self.header_lines() if header else 0
        if self.settings.tokenized:
            yield from _tokenizer_batches(self, chunks, out, skip, split)
        elif self.split_rows is None:
            yield from _module_batches(self, chunks, out, skip, split)
        else:
            yield from _CompiledLoop(self, chunks, out, split, encoder).batches(skip)

    def fused_encoder(self, layout: Any) -> Any:
        """The compiled encoder (pipelines.native.text_encoders), or None where an option changes the reading."""
        from pipelines.native.text_encoders import csv_encoder

        return csv_encoder(self, layout)

    def row_of(self, fields: list[Any], start: int, end: int, out: BatchBuilder) -> list[Any] | None:
        """The csv module's fields of lines start..end as a typed row; None for a blank line, or for a
        bad record (sent to the error output)."""
        if not fields:
            return None  # a blank line is not a row
        s = self.settings
        ncols = len(self.columns)
        if len(fields) != ncols:
            n = len(fields)
            if n > ncols and s.allow_extra_columns:
                del fields[ncols:]
            elif n < ncols and s.allow_optional_columns:
                fields.extend([None] * (ncols - n))
            else:
                out.bad(start, end, _width_reason(ncols, n))
                return None
        if s.null_string is not None:
            fields = [None if f == s.null_string else f for f in fields]
        try:
            for i, name, type_name, conv in self.converters:
                value = fields[i]
                fields[i] = conv(value) if value else None
        except (ValueError, TypeError, OverflowError):
            out.bad(start, end, _value_reason(name, type_name, fields[i]))
            return None
        return fields


def _module_batches(parser: CsvParser, chunks: TextChunks, out: BatchBuilder, skip: int, split: bool) -> Iterator[tuple[Batch, int]]:
    """The csv module's loop: every record read by csv.reader, typed by `row_of`."""
    lines = chain.from_iterable(map(io.StringIO, chunks))
    for number in range(1, skip + 1):
        header = next(lines, None)
        if header is None:
            yield from out.finish()  # header lines with bad bytes still count as read
            return
        _check_header_line(header, number, out.uri)
    reader = csv.reader(lines, **parser.dialect)
    prev = skip  # physical line where the previous record ended
    while True:
        try:
            for fields in reader:
                start, prev = prev + 1, skip + reader.line_num
                row = parser.row_of(fields, start, prev, out)
                if row is not None and out.add(row, start):
                    yield from out.flush()
            break
        except csv.Error as exc:
            start, prev = prev + 1, skip + reader.line_num
            if split:
                raise _range_ends_in_quotes(out.uri, start, exc) from None
            out.bad(start, prev, _malformed_reason(exc))
    yield from out.finish()


def _tokenizer_batches(parser: CsvParser, chunks: TextChunks, out: BatchBuilder, skip: int, split: bool) -> Iterator[tuple[Batch, int]]:
    """Embulk's tokenizer options' loop (pipelines.plugins.csv_tokenizer), record by record."""
    s = parser.settings
    tokenizer = CsvTokenizer(
        s.delimiter, s.quote or "", s.escape or "", s.trim_if_not_quoted, s.quotes_in_quoted_fields == STRAY_QUOTES,
        s.max_quoted_size_limit or MAX_QUOTED_CHARS, NEWLINE_TEXT[s.newline],
    )
    next_line, line_no = numbered_lines(iter(chunks))
    for _ in range(skip):
        header = next_line()
        if header is None:
            break
        _check_header_line(header, line_no(), out.uri)
    comment = s.comment_line_marker
    while (line := next_line()) is not None:
        start = line_no()
        if not line or (comment is not None and line.startswith(comment)):
            continue  # blank and comment lines are not records
        try:
            fields: list[Any] = tokenizer.split(line, next_line)
        except InvalidRecord as exc:
            if split and "ends inside a quoted value" in str(exc):
                raise _range_ends_in_quotes(out.uri, start, exc) from None
            out.bad(start, line_no(), str(exc))
            continue
        row = parser.row_of(fields, start, line_no(), out)
        if row is not None and out.add(row, start):
            yield from out.flush()
    yield from out.finish()


class _CompiledLoop:
    """The loop in C (split_rows), with the same rows, line numbers and errors as the csv module's:
    the records it leaves are read by the csv module one at a time. With an `encoder`, each text is
    offered to it first; from a record it leaves, the rest of that text is read into rows."""

    def __init__(self, parser: CsvParser, chunks: TextChunks, out: BatchBuilder, split: bool, encoder: Encoder | None) -> None:
        s = parser.settings
        self.parser, self.chunks, self.out, self.split, self.encoder = parser, chunks, out, split, encoder
        self.split_rows, self.type_fields = parser.split_rows
        self.type_args = (parser.column_kinds, parser.column_converters, s.null_string, s.allow_extra_columns, s.allow_optional_columns)
        self.split_args = (*self.type_args, s.delimiter, s.quote or "")
        self.line = 0  # the last physical line read

    def batches(self, skip: int) -> Iterator[tuple[Any, int]]:
        texts = iter(self.chunks)
        text, pos = self._skip_header(texts, skip)
        final = False  # whether text is the last (read one chunk at a time: a bad-bytes error comes in line order)
        while text is not None:
            pos = yield from self._read_text(text, pos, final)
            if final:
                break
            text, final = _next_text(text[pos:], texts)
            pos = 0
        yield from self.out.finish()

    def _skip_header(self, texts: Iterator[str], skip: int) -> tuple[str | None, int]:
        """The text and position after `skip` physical lines (as the csv module's loop skips them)."""
        text, pos = next(texts, None), 0
        while self.line < skip and text is not None:
            end = text.find("\n", pos)
            _check_header_line(text[pos:] if end < 0 else text[pos:end], self.line + 1, self.out.uri)
            if end < 0:
                text, pos = next(texts, None), 0
            else:
                pos, self.line = end + 1, self.line + 1
        return text, pos

    def _read_text(self, text: str, pos: int, final: bool) -> Iterator[tuple[Any, int]]:
        """Reads `text` from `pos`; returns where its unread rest (the start of an unfinished record) is."""
        out = self.out
        encoding = self.encoder is not None
        while True:
            if encoding:
                done, pos = yield from self._encode(text, pos, final)
                if done == TEXT_END:
                    return pos
                encoding = done == BATCH_FULL  # otherwise it left a record: the rest of this text into rows
                continue
            done, pos, self.line, start, payload = self.split_rows(
                text, pos, final, out.rows, out.line_nos, out.batch_rows, self.line, *self.split_args
            )
            if done == BATCH_FULL:
                yield from out.flush()
            elif done == TEXT_END:
                return pos
            elif done == LEFT_RECORD:
                pos, whole = self._module_record(text, pos, final)
                if not whole:
                    return pos
            else:
                self._bad_record(done, start, payload)

    def _encode(self, text: str, pos: int, final: bool) -> Iterator[tuple[Any, int]]:
        """The encoder's records from `pos`, after the rows read before; returns (how it ended, pos)."""
        out = self.out
        if out.rows:  # rows read before come first
            yield from out.flush()
        done, pos, self.line, records = self.encoder(text, pos, final, out.batch_rows, self.line)  # type: ignore[misc]
        if records is not None:
            yield from out.hand_over(records, records.count)
        return done, pos

    def _module_record(self, text: str, pos: int, final: bool) -> tuple[int, bool]:
        """The record at `pos`, read by the csv module: (where the text goes on, False when the
        record goes on in the next text)."""
        stream = io.StringIO(text)
        stream.seek(pos)
        reader = csv.reader(stream, **self.parser.dialect)
        try:
            fields = next(reader)
        except csv.Error as exc:
            if not final and stream.tell() >= len(text):
                return pos, False
            start, self.line = self.line + 1, self.line + reader.line_num
            if self.split:
                raise _range_ends_in_quotes(self.out.uri, start, exc) from None
            self.out.bad(start, self.line, _malformed_reason(exc))
            return stream.tell(), True
        start, self.line = self.line + 1, self.line + reader.line_num
        if fields:
            status, payload = self.type_fields(fields, *self.type_args)
            if status == ROW_READY:
                self.out.rows.append(fields)
                self.out.line_nos.append(start)
            else:
                self._bad_record(status, start, payload)
        return stream.tell(), True

    def _bad_record(self, done: int, start: int, payload: Any) -> None:
        columns = self.parser.columns
        if done == BAD_WIDTH:
            self.out.bad(start, self.line, _width_reason(len(columns), len(payload)))
        else:
            i, text = payload
            self.out.bad(start, self.line, _value_reason(columns[i].name, columns[i].type, text))


def _next_text(rest: str, texts: Iterator[str]) -> tuple[str | None, bool]:
    """The unread rest of a text joined to the next one, and whether that is the last; at the end,
    the unfinished last record, if any, once more as the last."""
    following = next(texts, None)
    if following is None:
        return (rest or None), True
    return (rest + following if rest else following), False


def _check_header_line(line: str, number: int, uri: str) -> None:
    """Fails on a header line with a CR before its end: a file whose lines end with CR alone, read as one
    header line, would have every row skipped with it, silently."""
    if "\r" in line.rstrip("\r\n"):
        raise DataError(
            f"line {number}: a header line holds a CR before its end: if the lines end with CR alone, set the parser's "
            "newline: CR (read as it is, every row would be skipped as part of the header)",
            where=uri,
        )


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
