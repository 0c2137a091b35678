"""Rows to bytes, a batch at a time: JSON lines (the stdout output and the jsonl formatter) and CSV.

The file and object outputs take these as formatter plugins (`pipelines.plugins.jsonl_formatter`,
`pipelines.plugins.csv_formatter`); these functions are for callers without a config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.engine.records import Schema


def jsonl_formatter(schema: Schema) -> Callable[[list[list[Any]]], bytes]:
    import orjson

    names = schema.names
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE

    def format_rows(rows: list[list[Any]]) -> bytes:
        # Appended one by one: orjson's results hold several times their length until freed, so a
        # list of them (for b"".join) costs far more memory, and time, than the bytes themselves.
        out = bytearray()
        for row in rows:
            out += dumps(dict(zip(names, row)), option=newline)
        return bytes(out)

    return format_rows


def csv_formatter(schema: Schema, header: bool = True) -> tuple[bytes, Callable[[list[list[Any]]], bytes]]:
    """The header line (b'' without one) and a function formatting rows as CSV (the csv formatter's defaults)."""
    from pipelines.plugins.csv_formatter import CsvFormatter, CsvFormatterSettings

    formatter = CsvFormatter(CsvFormatterSettings(header_line=header), "csv_formatter")
    formatter.bind(schema)
    return formatter.begin(), formatter.rows
