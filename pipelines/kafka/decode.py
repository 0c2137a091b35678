"""The Kafka input's record values to rows: JSON objects (by the compiled decoder when it can, else
orjson), or Avro in the Confluent wire format (by the compiled reader when it can, else fastavro).
A decoder takes a batch of values and gives (rows, their positions in the batch, [(position,
reason)] of the values that are not rows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.engine.columns import ColumnSettings, records_converter

RAW_LIMIT = 2000  # characters of a bad record's value kept in the error output

Decoded = tuple[list[list[Any]], list[int], list[tuple[int, str]]]
Decoder = Callable[[list[bytes]], Decoded]


def json_rows(columns: tuple[ColumnSettings, ...]) -> Decoder:
    """JSON values -> (rows, their positions, [(position, reason)] of the bad ones)."""
    import orjson

    loads, convert = orjson.loads, records_converter(columns)
    fast = compiled_json_rows(columns)

    def decode(values: list[bytes]) -> Decoded:
        if fast is not None:
            rows = fast(values)
            if rows is not None:
                return rows, list(range(len(rows))), []
        try:
            records = list(map(loads, values))
            if set(map(type, records)) == {dict}:
                return convert(records)
        except orjson.JSONDecodeError:
            pass
        return _json_rows_one_by_one(values, loads, convert)

    return decode


def _json_rows_one_by_one(values: list[bytes], loads: Callable[[bytes], Any], convert: Callable[[list[Any]], Decoded]) -> Decoded:
    """Some value is not a JSON object: which, read one by one."""
    import orjson

    records, where, bad = [], [], []
    for position, value in enumerate(values):
        try:
            record = loads(value)
        except orjson.JSONDecodeError as exc:
            bad.append((position, f"invalid JSON: {exc}"))
            continue
        if not isinstance(record, dict):
            bad.append((position, f"expected a JSON object, got {type(record).__name__}"))
            continue
        records.append(record)
        where.append(position)
    rows, positions, failed = convert(records)
    bad += [(where[p], reason) for p, reason in failed]
    return rows, [where[p] for p in positions], sorted(bad)


def compiled_json_rows(columns: tuple[ColumnSettings, ...]) -> Callable[[list[bytes]], list[list[Any]] | None] | None:
    """The compiled decoder of flat JSON objects (pipelines/native/_fastrows.c), giving the rows orjson and
    records_converter give, or None for a batch with anything out of the ordinary (which the Python
    path then decodes and reports); None when there is a json column or it is not built."""
    from pipelines.engine.columns import text_converter
    from pipelines.native.compiled import COLUMN_KINDS, compiled

    json_rows = compiled("pipelines.native._fastrows", "json_rows")
    if json_rows is None or any(c.type not in COLUMN_KINDS for c in columns):
        return None

    names = tuple(c.name.encode() for c in columns)
    kinds = tuple(COLUMN_KINDS[c.type] for c in columns)
    timestamp_parsers = tuple(text_converter(c) if c.type == "timestamp" else None for c in columns)  # cached
    return lambda values: json_rows(values, names, kinds, timestamp_parsers)


def avro_rows(registry: Any, columns: tuple[ColumnSettings, ...], where: str) -> Decoder:
    """Confluent wire-format Avro values, each decoded with its writer schema from the registry."""
    from pipelines.kafka.avro_wire import AvroDeserializer, AvroRowDecoder

    return AvroRowDecoder(AvroDeserializer(registry), columns, where)


def value_text(value: bytes) -> str:
    """A bad record's value for the error output: text, cut to RAW_LIMIT characters."""
    return value[:RAW_LIMIT].decode("utf-8", "replace")


def raw_values(offsets: list[int], values: list[bytes]) -> Callable[[int], str]:
    """The text of the value at an offset (offsets ascending), for the error output; looked up only then."""
    from bisect import bisect_left

    def raw(offset: int) -> str:
        i = bisect_left(offsets, offset)
        return value_text(values[i]) if i < len(offsets) and offsets[i] == offset else ""

    return raw
