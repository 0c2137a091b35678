"""`parser: {type: jsonl, columns: [...]}`: one JSON object per line; columns picked and typed.

Embulk's jsonl parser options are taken as they are: stop_on_invalid_record
(pipelines.plugins.invalid_records), newline (pipelines.engine.newlines), and the timestamp
defaults. Embulk's `json` parser is pipelines.plugins.json_parser."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from pipelines.engine.batches import BatchBuilder
from pipelines.engine.columns import ColumnSettings, record_converter, schema_of, with_timestamp_defaults
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.newlines import Newline, with_newline
from pipelines.engine.records import Batch, Schema, Source
from pipelines.engine.spi import ParserPlugin
from pipelines.engine.textio import TextChunks, check_charset


@dataclass(frozen=True)
class JsonlParserSettings:
    columns: tuple[ColumnSettings, ...]
    charset: str = "UTF-8"
    newline: Newline = "CRLF"
    line_delimiter_recognized: Newline | None = None
    stop_on_invalid_record: bool | None = None
    default_timezone: str | None = None
    default_timestamp_format: str | None = None
    default_date: str | None = None

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("columns: declare at least one column")


class JsonlParser(ParserPlugin):
    Settings = JsonlParserSettings
    compiled_lines: ClassVar[bool] = True  # whether the compiled readers may read its lines (json_rows, the encoder)

    def __init__(self, settings: Any, where: str) -> None:
        super().__init__(settings, where)
        self.columns = with_timestamp_defaults(settings.columns, settings)
        self._schema = schema_of(self.columns, where)
        self.charset = check_charset(settings.charset, f"{where}.charset")
        self.to_row = record_converter(self.columns)

    def adjust_exec(self, exec_settings: Any) -> Any:
        from pipelines.plugins.invalid_records import exec_for

        return exec_for(self.settings.stop_on_invalid_record, exec_settings, self.where)

    def repaired(self, line: str) -> str | None:
        """A line that is not valid JSON, mended (Embulk's json parser's invalid_string_escapes), or None."""
        return None

    def schema(self) -> Schema:
        return self._schema

    @property
    def split_mode(self) -> str | None:  # type: ignore[override]
        """At line starts (a JSON line never holds a raw line break); never for lines ended by CR."""
        return None if "CR" in (self.settings.newline, self.settings.line_delimiter_recognized) else "lines"

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool = True, split: bool = False
    ) -> Iterator[tuple[Batch, int]]:
        return self.read_batches(stream, source, errors, batch_rows, header, split)

    def fused_encoder(self, layout: Any) -> Any:
        from pipelines.native.text_encoders import jsonl_encoder

        return jsonl_encoder(self, layout)

    def read_batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool, split: bool,
        encoder: Any = None,
    ) -> Iterator[tuple[Any, int]]:
        """`batches`: each chunk of whole lines read by the compiled decoder (pipelines.kafka.decode.compiled_json_rows,
        the Kafka input's) when it can read every line of it as it is, else line by line in Python.
        With an `encoder` (a fused path, pipelines.native.text_encoders.JsonRecordEncoder), each chunk is
        offered to it first: the records it makes come in line order between the batches of rows,
        and from a line it leaves, the rest of that chunk is read into rows."""
        from pipelines.kafka.decode import compiled_json_rows

        s = self.settings
        chunks = TextChunks(with_newline(stream, s.newline, s.line_delimiter_recognized), self.charset, source, errors)
        out = BatchBuilder(source.uri, chunks.raw_lines, errors, batch_rows)
        fast = compiled_json_rows(self.columns) if self.compiled_lines else None
        line_no = 1
        for chunk in chunks:
            data, pos = chunk.encode(), 0  # "\n" is never part of a UTF-8 sequence: the same lines
            if encoder is not None:
                pos, line_no = yield from _encoded(encoder, data, line_no, out)
                if pos >= len(data):
                    continue
            line_no = self._read_rows(data[pos:] if pos else data, line_no, fast, out)
            if len(out.rows) >= batch_rows:
                yield from out.flush()
        yield from out.finish()

    def _read_rows(self, data: bytes, line_no: int, fast: Any, out: BatchBuilder) -> int:
        """The lines of `data` (numbered from `line_no`) into rows in `out`: returns the next line's number."""
        values = data.split(b"\n")
        if values[-1] == b"":
            values.pop()
        rows = fast(values) if fast is not None and b"\r" not in data else None
        if rows is not None:
            out.extend(rows, list(range(line_no, line_no + len(rows))))
        else:
            self._read_lines(data.decode().split("\n")[: len(values)], line_no, out)
        return line_no + len(values)

    def _read_lines(self, lines: list[str], line_no: int, out: BatchBuilder) -> None:
        """Lines (numbered from `line_no`) read one by one: rows into `out`, bad lines to its error output."""
        import orjson

        to_row, loads = self.to_row, orjson.loads
        for line_no, line in enumerate(lines, start=line_no):
            if not line.strip():
                continue
            try:
                try:
                    record = loads(line)
                except orjson.JSONDecodeError:
                    mended = self.repaired(line)
                    if mended is None:
                        raise
                    record = loads(mended)
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
                out.add(to_row(record), line_no)
            except orjson.JSONDecodeError as exc:
                out.errors.add(out.uri, line_no, f"invalid JSON: {exc}", line.rstrip("\r"))
            except ValueError as exc:
                out.errors.add(out.uri, line_no, str(exc), line.rstrip("\r"))


def _encoded(encoder: Any, data: bytes, line_no: int, out: BatchBuilder) -> Iterator[tuple[Any, int]]:
    """The encoder's records of `data`'s lines from line `line_no` on, after the rows read before;
    returns (where it stopped: the end, or a line it leaves; that line's number)."""
    pos = 0
    while True:
        if out.rows:  # rows read before come first
            yield from out.flush()
        done, pos, line, records = encoder(data, pos, out.batch_rows, line_no - 1)
        line_no = line + 1
        if records is not None:
            yield from out.hand_over(records, records.count)
        if done != 0:  # not a full batch: the end of the data, or a line left for rows
            return pos, line_no
