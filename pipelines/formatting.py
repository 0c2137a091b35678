"""Rows to bytes for the file and stdout outputs: JSON lines or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pipelines.records import Schema


def jsonl_formatter(schema: Schema) -> Callable[[list[list[Any]]], bytes]:
    import orjson

    names = schema.names
    dumps = orjson.dumps

    def format_rows(rows: list[list[Any]]) -> bytes:
        return b"".join([dumps(dict(zip(names, row))) + b"\n" for row in rows])

    return format_rows


def _csv_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_formatter(schema: Schema, header: bool = True) -> tuple[bytes, Callable[[list[list[Any]]], bytes]]:
    """The header line (b'' without one) and a function formatting rows as CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def format_rows(rows: list[list[Any]]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([[_csv_text(v) for v in row] for row in rows])
        return buffer.getvalue().encode()

    return (format_rows([schema.names]) if header else b""), format_rows
