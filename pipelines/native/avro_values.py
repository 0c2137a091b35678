"""Avro values made in C: the plan of a record schema, and the Kafka output's rows as records.

The Kafka output's Avro values (serialize_format: avro) are, on the Python path, a dict per row
(pipelines.engine.avro.writing.record_converter) written by fastavro (pipelines.kafka.avro_wire).
For a record schema of simple fields (string, long, int, double, float, boolean, and long
timestamp-micros/-millis; each maybe in a union with null) whose columns hold those types as they
are, `avro_plan` describes each field for `avro_records` (pipelines/native/_avrowrite.c), which
writes whole batches of rows as records (key, Confluent wire-format value) for the compiled
produce loop. `AvroRecords.choose` gives None for any other schema, and the Python path runs.

The same plan drives the fused CSV path's Avro values (pipelines.native.fused).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from pipelines.native.compiled import compiled

# How _avrowrite.c and _fastrows.c number the Avro types they write.
CODES = {"string": 0, "long": 1, "int": 2, "double": 3, "float": 4, "boolean": 5, "timestamp-micros": 6, "timestamp-millis": 7}
# The codes a column type is written as with no conversion but a range check (see writing._writer).
FITS = {
    "string": {0},
    "long": {1, 2},
    "double": {3, 4},
    "boolean": {5},
    "timestamp": {6, 7},
}
RECORD_LENGTHS = struct.Struct("=II")  # a record's key and value lengths, as produce_records reads them

# One field's entry: (column index or -1, code, union branch of null or -1, union branch of the value or -1).
Field = tuple[int, int, int, int]


def field_code(avro_type: Any) -> int | None:
    """The code of a non-union field type, or None when it is not one the loops write."""
    if isinstance(avro_type, str):
        return CODES.get(avro_type) if avro_type not in ("timestamp-micros", "timestamp-millis") else None
    if not isinstance(avro_type, dict):
        return None
    base, logical = avro_type.get("type"), avro_type.get("logicalType")
    if logical is None:
        return field_code(base) if isinstance(base, str) else None
    if base == "long" and logical in ("timestamp-micros", "timestamp-millis"):
        return CODES[logical]
    return None


def field_entry(field: dict[str, Any], columns: dict[str, tuple[int, str]]) -> Field | None:
    """A record field's plan entry, given the value's columns {name: (row index, column type)}; None
    when the loops would not write it exactly as fastavro does."""
    avro_type = field["type"]
    null_branch = value_branch = -1
    if isinstance(avro_type, list):
        others = [b for b, t in enumerate(avro_type) if t != "null"]
        nulls = [b for b, t in enumerate(avro_type) if t == "null"]
        if len(others) != 1 or len(nulls) > 1:
            return None
        value_branch, avro_type = others[0], avro_type[others[0]]
        null_branch = nulls[0] if nulls else -1
    code = field_code(avro_type)
    if code is None:
        return None
    if field["name"] not in columns:  # written as its default: only a null default is planned
        return (-1, code, null_branch, value_branch) if null_branch >= 0 and field.get("default") is None else None
    index, column_type = columns[field["name"]]
    return (index, code, null_branch, value_branch) if code in FITS.get(column_type, ()) else None


def avro_plan(avro_schema: dict[str, Any], columns: dict[str, tuple[int, str]]) -> tuple[Field, ...] | None:
    """The plan of a record schema for rows whose value columns are `columns` {name: (row index,
    type)}, or None. Every column is a field of the schema (record_converter checked that)."""
    fields = avro_schema.get("fields") if isinstance(avro_schema, dict) and avro_schema.get("type") == "record" else None
    if not isinstance(fields, list):
        return None
    plan = [field_entry(field, columns) for field in fields]
    return None if any(entry is None for entry in plan) else tuple(plan)  # type: ignore[misc]


class AvroRecords:
    """`avro_records` bound to one output's key column, schema id header and plan."""

    def __init__(self, function: Any, key_index: int, header: bytes, plan: tuple[Field, ...]) -> None:
        self.function, self.key_index, self.header, self.plan = function, key_index, header, plan

    @classmethod
    def choose(
        cls, avro_schema: dict[str, Any], header: bytes, key_index: int | None, schema: Any, value_indexes: Sequence[int]
    ) -> AvroRecords | None:
        """For a keyed output whose key column is a string and whose schema has a plan: the encoder, or None."""
        function = compiled("pipelines.native._avrowrite", "avro_records")
        if function is None or key_index is None or schema.columns[key_index].type != "string":
            return None
        columns = {schema.columns[i].name: (i, schema.columns[i].type) for i in value_indexes}
        plan = avro_plan(avro_schema, columns)
        return None if plan is None else cls(function, key_index, header, plan)

    def __call__(self, rows: list[list[Any]], start: int) -> tuple[int, int, bytes]:
        """(the position it stopped at, records written, the records): see _avrowrite.c."""
        return self.function(rows, start, self.key_index, self.header, self.plan)


def record_bytes(key: str, value: bytes) -> bytes:
    """One record in the layout avro_records writes (for a row the Python path encoded)."""
    data = key.encode()
    return RECORD_LENGTHS.pack(len(data), len(value)) + data + value
