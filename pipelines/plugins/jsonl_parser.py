"""`parser: {type: jsonl, columns: [...]}`: one JSON object per line; columns picked and typed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any

from pipelines.engine.columns import ColumnSettings, record_converter, schema_of
from pipelines.engine.error_output import ErrorSink
from pipelines.plugins.base import ParserPlugin
from pipelines.engine.records import Batch, Schema, Source
from pipelines.engine.textio import TextChunks, check_charset


@dataclass(frozen=True)
class JsonlParserSettings:
    columns: tuple[ColumnSettings, ...]
    charset: str = "UTF-8"

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("columns: declare at least one column")


class JsonlParser(ParserPlugin):
    Settings = JsonlParserSettings

    def __init__(self, settings: JsonlParserSettings, where: str) -> None:
        super().__init__(settings, where)
        self._schema = schema_of(settings.columns, where)
        self.charset = check_charset(settings.charset, f"{where}.charset")
        self.to_row = record_converter(settings.columns)

    def schema(self) -> Schema:
        return self._schema

    split_mode = "lines"  # a JSON line never holds a raw line break

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool = True, split: bool = False
    ) -> Iterator[tuple[Batch, int]]:
        import orjson

        chunks = TextChunks(stream, self.charset, source, errors)
        uri, to_row, loads = source.uri, self.to_row, orjson.loads
        rows: list[list[Any]] = []
        line_nos: list[int] = []
        errors_before = errors.count
        for line_no, line in enumerate(chain.from_iterable(map(io.StringIO, chunks)), start=1):
            if not line.strip():
                continue
            try:
                record = loads(line)
            except orjson.JSONDecodeError as exc:
                errors.add(uri, line_no, f"invalid JSON: {exc}", line.rstrip("\r\n"))
                continue
            if not isinstance(record, dict):
                errors.add(uri, line_no, f"expected a JSON object, got {type(record).__name__}", line.rstrip("\r\n"))
                continue
            try:
                row = to_row(record)
            except ValueError as exc:
                errors.add(uri, line_no, str(exc), line.rstrip("\r\n"))
                continue
            rows.append(row)
            line_nos.append(line_no)
            if len(rows) >= batch_rows:
                yield Batch(rows, line_nos, uri, chunks.raw_lines), len(rows) + errors.count - errors_before
                rows, line_nos, errors_before = [], [], errors.count
        consumed = len(rows) + errors.count - errors_before
        if consumed:
            yield Batch(rows, line_nos, uri, chunks.raw_lines), consumed
