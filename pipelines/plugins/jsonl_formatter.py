"""`formatter: {type: jsonl}`: one JSON object per row and line, keys in schema order (orjson).

Timestamps are ISO 8601 strings, json columns their JSON value, nulls `null`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from pipelines.engine.formatting import jsonl_formatter
from pipelines.engine.textio import read_chunks
from pipelines.engine.spi import FormatterPlugin
from pipelines.engine.records import Schema


@dataclass(frozen=True)
class JsonlFormatterSettings:
    pass


class JsonlFormatter(FormatterPlugin):
    Settings = JsonlFormatterSettings
    file_ext = "jsonl"

    def bind(self, schema: Schema) -> None:
        self.format_rows = jsonl_formatter(schema)

    def rows(self, rows: list[list[Any]]) -> bytes:
        return self.format_rows(rows)

    def count_rows(self, stream: IO[bytes]) -> int:
        """One row a line."""
        return sum(chunk.count(b"\n") for chunk in read_chunks(stream))
