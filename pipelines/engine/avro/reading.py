"""Avro records -> rows: `RowConverter`, built once per writer (or reader) schema, converts
records (dicts, as fastavro reads them) to rows in column order, each value to its column's type
by the reader table (`_reader`: Avro kind x column type). Values already of the column's type pass
through untouched.

`compiled_plan` says how pipelines/native/_avroread.c reads records of a writer schema straight
into the same rows, for the schemas it can (simple fields, and the conversions of
`COMPILED_CONVERSIONS`); None for the others, which fastavro and RowConverter read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from operator import itemgetter
from typing import Any

from pipelines.engine.avro.kinds import (
    COLUMN_TYPE_OF_KIND,
    CONVERT_ERRORS,
    INCOMPATIBLE,
    describe_kind,
    field_kinds,
    has_binary,
    listing,
)
from pipelines.engine.avro.values import base64_text, json_text
from pipelines.engine.columns import BOOLEANS, _boolean_value, _double, _double_value, _finite, _long, _long_value, _string_value, _timestamp
from pipelines.engine.errors import DataError


def _jsonable(value: Any) -> Any:
    """A value with its bytes as base64 text and its decimals as exact text, so that JSON can hold it."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64_text(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _isoformat(value: date | time) -> str:
    return value.isoformat()


def _any_to_string(value: Any) -> str:
    if isinstance(value, dict | list):
        return json_text(value)
    if isinstance(value, bytes):
        return base64_text(value)
    if isinstance(value, date | time):
        return value.isoformat()
    return _string_value(value)


def _decimal_to_long(value: Decimal) -> int:
    if value != value.to_integral_value():
        raise ValueError("not a whole number")
    return _long_value(int(value))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc)


def _midnight_utc(value: date) -> datetime:
    return datetime.combine(value, time(), timezone.utc)


def _any_to_timestamp(parse: Callable[[str], datetime]) -> Callable[[Any], datetime]:
    def convert(value: Any) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else _utc(value)
        if isinstance(value, date):
            return _midnight_utc(value)
        if isinstance(value, str):
            return parse(value)
        raise ValueError("not a timestamp")

    return convert


def _reader(kind: str, column_type: str, fmt: str | None, binary: bool) -> Any:
    """Converter of an Avro value of `kind` to `column_type`: a function, None (as is), or INCOMPATIBLE."""
    if column_type == "string":
        table: dict[str, Any] = {
            "string": None, "enum": None, "uuid": str, "decimal": str, "int": str, "long": str,
            "float": repr, "double": repr, "boolean": _string_value, "timestamp": _isoformat,
            "local-timestamp": _isoformat, "date": _isoformat, "time": _isoformat, "bytes": base64_text,
            "complex": json_text, "union": _any_to_string, "null": None,
        }
    elif column_type == "long":
        table = {
            "int": None, "long": None, "float": _long_value, "double": _long_value, "string": _long, "enum": _long,
            "decimal": _decimal_to_long, "union": _long_value, "null": None,
        }
    elif column_type == "double":
        table = {
            "int": float, "long": float, "float": _finite, "double": _finite, "string": _double, "enum": _double,
            "decimal": _double_value, "union": _double_value, "null": None,
        }
    elif column_type == "boolean":
        table = {"boolean": None, "string": BOOLEANS.__getitem__, "enum": BOOLEANS.__getitem__, "int": _boolean_value,
                 "long": _boolean_value, "union": _boolean_value, "null": None}
    elif column_type == "timestamp":
        parse = _timestamp(fmt)
        table = {"timestamp": None, "local-timestamp": _utc, "date": _midnight_utc, "string": parse,
                 "union": _any_to_timestamp(parse), "null": None}
    elif column_type == "json":
        needs = _jsonable if binary else None
        table = {"bytes": base64_text, "decimal": str, "complex": needs, "union": needs}
        return table.get(kind)
    else:
        raise ValueError(f"unknown column type {column_type!r}")
    return table.get(kind, INCOMPATIBLE)


class RowConverter:
    """Avro records (dicts, as fastavro reads them) -> rows of `columns` (objects with name, type
    and optionally format, like ColumnSettings), each value converted to its column's type.

    Built once per writer (or reader) schema: a column whose Avro type cannot become the column's
    type at all, or that the schema lacks, is a DataError naming `where` when it is built.
    """

    def __init__(self, columns: Sequence[Any], avro_schema: dict[str, Any], where: str) -> None:
        kinds, names = field_kinds(avro_schema, where, DataError)
        self.names = [c.name for c in columns]
        missing = [n for n in self.names if n not in kinds]
        if missing:
            raise DataError(
                f"the Avro schema has no {listing('field', missing)} (its fields: {', '.join(kinds)})",
                where=where,
            )
        self.converters: list[tuple[int, str, str, Callable[[Any], Any]]] = []
        for i, column in enumerate(columns):
            kind, avro_type = kinds[column.name]
            binary = kind in ("complex", "union") and has_binary(avro_type, names)
            conv = _reader(kind, column.type, getattr(column, "format", None), binary)
            if conv is INCOMPATIBLE:
                raise DataError(
                    f"column '{column.name}' ({column.type}) cannot be read from the Avro field of type "
                    f"{describe_kind(kind, avro_type)}; declare the column as {COLUMN_TYPE_OF_KIND[kind]}",
                    where=where,
                )
            if conv is not None:
                self.converters.append((i, column.name, column.type, conv))
        if len(self.names) == 1:
            only = self.names[0]
            self._rows: Callable[[list[dict[str, Any]]], list[list[Any]]] = lambda records: [[r[only]] for r in records]
        else:
            get = itemgetter(*self.names)
            self._rows = lambda records: list(map(list, map(get, records)))

    def __call__(self, records: list[dict[str, Any]]) -> tuple[list[list[Any]], list[int], list[tuple[int, str]]]:
        """(rows of the good records, their positions in `records`, [(position, reason)] of the bad ones)."""
        rows = self._rows(records)
        converters = self.converters
        if not converters:
            return rows, list(range(len(rows))), []
        good: list[list[Any]] = []
        positions: list[int] = []
        bad: list[tuple[int, str]] = []
        for r, row in enumerate(rows):
            try:
                for i, name, type_name, conv in converters:
                    value = row[i]
                    if value is not None:
                        row[i] = conv(value)
            except CONVERT_ERRORS as exc:
                reason = f"column '{name}' ({type_name}): cannot convert {row[i]!r}"
                bad.append((r, f"{reason}: {exc}" if str(exc) else reason))
                continue
            good.append(row)
            positions.append(r)
        return good, positions, bad


def row_converter(columns: Sequence[Any], avro_schema: dict[str, Any], where: str = "Avro schema") -> RowConverter:
    """See RowConverter."""
    return RowConverter(columns, avro_schema, where)


# How pipelines/native/_avroread.c numbers the Avro types of its plan's fields (int and long alike),
# and the conversions it makes.
PLAN_TYPES = {"null": 0, "boolean": 1, "int": 2, "long": 2, "float": 3, "double": 4, "string": 5, "bytes": 6}
PLAN_TIMESTAMPS = {"timestamp-millis": 7, "timestamp-micros": 8}
AS_IS, TO_TEXT, TO_LONG, TO_DOUBLE, FINITE, TO_BOOLEAN = range(6)
PLAN_MAX_FIELDS = 1024
_COLUMN_TYPES = ("string", "long", "double", "boolean", "timestamp", "json")

# (kind, column type) -> the conversion _avroread.c makes of such a value, giving what `_reader`'s
# converter gives (tests/test_avro_native.py checks the two tables agree). A pair not here (bytes,
# text parsed into a number, a boolean or a timestamp, ...) leaves the schema to the Python path.
COMPILED_CONVERSIONS: dict[tuple[str, str], int] = {
    **{("null", t): AS_IS for t in _COLUMN_TYPES},
    **{(kind, "json"): AS_IS for kind in ("string", "int", "long", "float", "double", "boolean", "timestamp")},
    **{(kind, "string"): TO_TEXT for kind in ("int", "long", "float", "double", "boolean", "timestamp")},
    ("string", "string"): AS_IS,
    ("int", "long"): AS_IS,
    ("long", "long"): AS_IS,
    ("float", "long"): TO_LONG,
    ("double", "long"): TO_LONG,
    ("int", "double"): TO_DOUBLE,
    ("long", "double"): TO_DOUBLE,
    ("float", "double"): FINITE,
    ("double", "double"): FINITE,
    ("boolean", "boolean"): AS_IS,
    ("int", "boolean"): TO_BOOLEAN,
    ("long", "boolean"): TO_BOOLEAN,
    ("timestamp", "timestamp"): AS_IS,
}


def _plan_type(avro_type: Any) -> tuple[int, int] | None:
    """(type code, the branch of its union that is null, or -1) of a simple field type, or None."""
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or avro_type.count("null") != 1:
            return None
        null_branch = avro_type.index("null")
        inner = _plan_type(avro_type[1 - null_branch])
        return None if inner is None or inner[1] != -1 else (inner[0], null_branch)
    if isinstance(avro_type, dict):
        base, logical = avro_type.get("type"), avro_type.get("logicalType")
        if base == "long" and logical in PLAN_TIMESTAMPS:
            return PLAN_TIMESTAMPS[logical], -1
        if logical is not None:  # dates, times, decimals, uuids, local timestamps...
            return None
        avro_type = base
    code = PLAN_TYPES.get(avro_type) if isinstance(avro_type, str) else None
    return None if code is None else (code, -1)


def compiled_plan(columns: Sequence[Any], avro_schema: Any) -> tuple[tuple[int, int, int, int], ...] | None:
    """How pipelines/native/_avroread.c reads records written with `avro_schema` (read without a
    reader schema) into the rows of `columns` that fastavro and RowConverter give: for each field
    in order, (type code, the branch of its union that is null or -1, the column that takes it or
    -1, the conversion). None when it cannot: a field of another type (record, array, map, enum,
    fixed, other logical types and unions), a column the schema lacks or whose conversion it does
    not make, columns of the same name."""
    try:
        kinds, _ = field_kinds(avro_schema, "Avro schema", DataError)
    except DataError:
        return None
    fields = avro_schema["fields"]
    column_of = {c.name: i for i, c in enumerate(columns)}
    if len(column_of) != len(columns) or len(kinds) != len(fields) or not set(column_of) <= set(kinds) or len(fields) > PLAN_MAX_FIELDS:
        return None
    plan = []
    for field in fields:
        code = _plan_type(field["type"])
        column = column_of.get(field["name"], -1)
        conversion = AS_IS if column < 0 else COMPILED_CONVERSIONS.get((kinds[field["name"]][0], columns[column].type))
        if code is None or conversion is None:
            return None
        plan.append((code[0], code[1], column, conversion))
    if all(code == PLAN_TYPES["null"] and null_branch < 0 for code, null_branch, _, _ in plan):
        return None  # records of no bytes at all
    return tuple(plan)
