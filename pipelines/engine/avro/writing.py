"""Rows -> Avro records: `record_converter`, built once per schema, turns rows into records
(dicts) for fastavro to write, converting the values a field needs in another form (the value
writers, `_writer`: column type x Avro kind). Values already of the field's type pass through
untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from pipelines.engine.avro.kinds import CONVERT_ERRORS, INCOMPATIBLE, describe_kind, field_kinds, listing
from pipelines.engine.avro.schemas import avro_from_columns, required_fields
from pipelines.engine.avro.values import json_text
from pipelines.engine.errors import ConfigError
from pipelines.engine.records import Schema

INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1


def _timestamp_text(value: datetime) -> str:
    return value.isoformat()


def _boolean_text(value: bool) -> str:
    return "true" if value else "false"


def _int_range(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"{value} is out of the range of an Avro int")
    return value


def _to_date(value: datetime) -> date:
    return value.date()


def _writer(column_type: str, kind: str) -> Any:
    """Converter of a column value to a field of `kind` for fastavro to write: a function, None, or INCOMPATIBLE."""
    if kind == "union":
        return None  # fastavro picks the branch that fits the value (a row error if none does)
    if column_type == "string":
        table: dict[str, Any] = {"string": None, "enum": None, "uuid": None}
    elif column_type == "long":
        table = {"long": None, "int": _int_range, "float": None, "double": None, "string": str}
    elif column_type == "double":
        table = {"double": None, "float": None, "string": repr}
    elif column_type == "boolean":
        table = {"boolean": None, "string": _boolean_text}
    elif column_type == "timestamp":
        table = {"timestamp": None, "local-timestamp": None, "date": _to_date, "string": _timestamp_text}
    elif column_type == "json":
        table = {"string": json_text, "complex": None}
    else:
        raise ValueError(f"unknown column type {column_type!r}")
    return table.get(kind, INCOMPATIBLE)


# (column name, column type, converter of a value to what fastavro writes), for the columns needing one
_ValueWriters = list[tuple[str, str, Callable[[Any], Any]]]
_Records = list[dict[str, Any] | None]


def record_converter(
    schema: Schema,
    avro_schema: dict[str, Any] | None = None,
    indexes: Sequence[int] | None = None,
    where: str | None = None,
) -> Callable[[list[list[Any]]], tuple[_Records, list[tuple[int, str]]]]:
    """Rows of `schema` -> records (dicts) for fastavro to write with `avro_schema` (default:
    avro_from_columns(schema)). `indexes`: only these columns (say, without the key column).

    Checks once that every column is a field whose type the column's values fit (a ConfigError
    naming `where` if not), and that the schema needs no field the columns lack. The function
    returns (records aligned with the rows, None where a value does not fit, e.g. a long out of an
    Avro int's range; [(position, reason)] of those).
    """
    picked = list(range(len(schema))) if indexes is None else list(indexes)
    columns = [schema.columns[i] for i in picked]
    if avro_schema is None:
        avro_schema = avro_from_columns(Schema(tuple(columns)), where=where)
    kinds, _ = field_kinds(avro_schema, where or "Avro schema")
    names = [c.name for c in columns]
    _check_fields(avro_schema, kinds, names, where)
    writers = _value_writers(columns, kinds, where)
    to_dicts = _dicts_of(picked, names, len(schema))

    def to_records(rows: list[list[Any]]) -> tuple[_Records, list[tuple[int, str]]]:
        records = to_dicts(rows)
        return records, _write_values(records, writers)

    return to_records


def _check_fields(avro_schema: dict[str, Any], kinds: dict[str, tuple[str, Any]], names: list[str], where: str | None) -> None:
    """A ConfigError unless every column is a field of the schema and every required field a column."""
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise ConfigError(
            f"{listing('column', unknown)} {'is not a field' if len(unknown) == 1 else 'are not fields'} of the Avro schema "
            f"(fields: {', '.join(kinds)}); add the field to the schema, or leave the column out of the value (ignore_columns)",
            where=where,
        )
    lacking = [f for f in required_fields(avro_schema) if f not in names]
    if lacking:
        raise ConfigError(
            f"the Avro schema requires {listing('field', lacking)} (not nullable, no default), "
            f"but the value has no such column (value columns: {', '.join(names)})",
            where=where,
        )


def _value_writers(columns: Sequence[Any], kinds: dict[str, tuple[str, Any]], where: str | None) -> _ValueWriters:
    """The converters the columns' values need to be written as their fields (none where the value
    is written as it is); a ConfigError for a column its field cannot hold."""
    writers: _ValueWriters = []
    for column in columns:
        kind, avro_type = kinds[column.name]
        conv = _writer(column.type, kind)
        if conv is INCOMPATIBLE:
            raise ConfigError(
                f"column '{column.name}' ({column.type}) cannot be written as the Avro field of type "
                f"{describe_kind(kind, avro_type)}",
                where=where,
            )
        if conv is not None:
            writers.append((column.name, column.type, conv))
    return writers


def _dicts_of(picked: list[int], names: list[str], width: int) -> Callable[[list[list[Any]]], _Records]:
    """Rows of `width` columns -> dicts of the `picked` columns' values by `names`."""
    if picked == list(range(width)):
        return lambda rows: [dict(zip(names, row)) for row in rows]
    if len(picked) > 1:
        get = itemgetter(*picked)
        return lambda rows: [dict(zip(names, get(row))) for row in rows]

    def one_column(rows: list[list[Any]]) -> _Records:
        (only,), (name,) = picked, names
        return [{name: row[only]} for row in rows]

    return one_column


def _write_values(records: _Records, writers: _ValueWriters) -> list[tuple[int, str]]:
    """Converts the records' values in place; a record holding a value that does not convert
    becomes None. Returns [(position, reason)] of those, in order."""
    bad: list[tuple[int, str]] = []
    for name, type_name, conv in writers:
        for r, record in enumerate(records):
            if record is None:
                continue
            value = record[name]
            if value is not None:
                try:
                    record[name] = conv(value)
                except CONVERT_ERRORS as exc:
                    bad.append((r, f"column '{name}' ({type_name}): cannot write {value!r} as Avro: {exc}"))
                    records[r] = None
    if len(writers) > 1:
        bad.sort()
    return bad
