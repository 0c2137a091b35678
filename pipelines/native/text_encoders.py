"""The text parsers' fused encoders: CSV text (encode_records) and JSON lines (encode_json_records),
both in pipelines/native/_fastrows.c, bound to a parser's settings and a RecordLayout. With the
layout's key_index -1 they only count the rows (the null output's path)."""

from __future__ import annotations

from typing import Any

from pipelines.native.compiled import COLUMN_KINDS, compiled
from pipelines.native.encoded import EncodedRecords, RecordLayout


class RecordEncoder:
    """encode_records bound to one job's columns, filters and value layout: the CSV parser's encoder
    (text, pos, final, limit, line) -> (how it ended, pos, line, EncodedRecords or None)."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.encode_records = compiled("pipelines.native._fastrows", "encode_records")
        self.args = args  # encode_records's arguments after (text, pos, final, limit, line)

    def __call__(self, text: str, pos: int, final: bool, limit: int, line: int) -> tuple[int, int, int, EncodedRecords | None]:
        done, pos, line, count, data = self.encode_records(text, pos, final, limit, line, *self.args)
        return done, pos, line, (EncodedRecords(data, count) if count else None)


def csv_encoder(parser: Any, layout: RecordLayout) -> RecordEncoder | None:
    """encode_records bound to the CSV parser's settings and `layout`; None for a parser it does not read."""
    if parser.split_rows is None or compiled("pipelines.native._fastrows", "encode_records") is None:
        return None
    if any(c.custom_timestamp for c in parser.columns):  # the C loop reads ISO 8601 in UTC only
        return None
    args = _encoder_args(parser, layout.key_index, layout.required, layout.parts)
    return RecordEncoder(args if layout.avro is None else args + (layout.avro,))


class JsonRecordEncoder:
    """encode_json_records bound to one job's columns and layout: the jsonl parser's encoder
    (data, pos, limit, line) -> (how it ended, pos, line, EncodedRecords or None)."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.encode = compiled("pipelines.native._fastrows", "encode_json_records")
        self.args = args  # encode_json_records's arguments after (data, pos, limit, line)

    def __call__(self, data: bytes, pos: int, limit: int, line: int) -> tuple[int, int, int, EncodedRecords | None]:
        done, pos, line, count, records = self.encode(data, pos, limit, line, *self.args)
        return done, pos, line, (EncodedRecords(records, count) if count else None)


def jsonl_encoder(parser: Any, layout: RecordLayout) -> JsonRecordEncoder | None:
    """encode_json_records bound to the jsonl parser's columns and `layout`; None for columns it does
    not read (a timestamp with a format, time zone or date), for lines it does not read as the parser
    does (Embulk's json parser's record column, invalid escapes read), or without the extension."""
    columns = parser.columns
    if compiled("pipelines.native._fastrows", "encode_json_records") is None or not parser.compiled_lines:
        return None
    if any(c.custom_timestamp for c in columns):
        return None
    kinds = tuple(COLUMN_KINDS[c.type] for c in columns)
    names = tuple(c.name.encode() for c in columns)
    args = (kinds, names, layout.key_index, layout.required, layout.parts)
    return JsonRecordEncoder(args if layout.avro is None else args + (layout.avro,))


def _encoder_args(parser: Any, key_index: int, required: tuple[int, ...], parts: tuple[Any, ...]) -> tuple[Any, ...]:
    from pipelines.engine.columns import BOOLEANS

    s = parser.settings
    booleans = tuple((word, value) for word, value in BOOLEANS.items() if word.isascii())
    kinds = tuple(COLUMN_KINDS[c.type] for c in parser.columns)
    return (kinds, booleans, s.null_string, s.delimiter, s.quote or "", key_index, required, parts)
