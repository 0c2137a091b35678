"""`formatter: {type: jsonl}`: one JSON object per row and line, keys in schema order (orjson).

Timestamps are ISO 8601 strings, json columns their JSON value, nulls `null`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.engine.formatting import jsonl_formatter
from pipelines.plugins.base import FormatterPlugin
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
