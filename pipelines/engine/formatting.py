"""Rows to JSON lines, a batch at a time: what the stdout output and the jsonl formatter write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.engine.records import Schema


def jsonl_formatter(schema: Schema) -> Callable[[list[list[Any]]], bytes]:
    """Rows -> JSON lines, {name: value} in schema order: by json_lines (pipelines/native/_fastrows.c)
    when it is built, else orjson row by row; the same bytes."""
    import orjson

    from pipelines.native.compiled import compiled

    names = schema.names
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    json_lines = compiled("pipelines.native._fastrows", "json_lines")
    if json_lines is not None:
        labels = tuple((b"," if i else b"") + dumps(name) + b":" for i, name in enumerate(names))
        return lambda rows: json_lines(rows, labels, dumps)

    def format_rows(rows: list[list[Any]]) -> bytes:
        # Appended one by one: orjson's results hold several times their length until freed, so a
        # list of them (for b"".join) costs far more memory, and time, than the bytes themselves.
        out = bytearray()
        for row in rows:
            out += dumps(dict(zip(names, row)), option=newline)
        return bytes(out)

    return format_rows
