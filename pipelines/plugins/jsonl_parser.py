"""`parser: {type: jsonl, columns: [...]}`: one JSON object per line; columns picked and typed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO

from pipelines.engine.batches import BatchBuilder
from pipelines.engine.columns import ColumnSettings, record_converter, schema_of
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.records import Batch, Schema, Source
from pipelines.engine.spi import ParserPlugin
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
        out = BatchBuilder(source.uri, chunks.raw_lines, errors, batch_rows)
        to_row, loads = self.to_row, orjson.loads
        for line_no, line in enumerate(chain.from_iterable(map(io.StringIO, chunks)), start=1):
            if not line.strip():
                continue
            try:
                record = loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
                row = to_row(record)
            except orjson.JSONDecodeError as exc:
                errors.add(out.uri, line_no, f"invalid JSON: {exc}", line.rstrip("\r\n"))
                continue
            except ValueError as exc:
                errors.add(out.uri, line_no, str(exc), line.rstrip("\r\n"))
                continue
            if out.add(row, line_no):
                yield from out.flush()
        yield from out.finish()
