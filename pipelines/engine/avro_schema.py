"""Avro schemas <-> our Schema, and fast conversions between rows and Avro records.

Column types from an Avro record schema (`columns_from_avro`):

    string, enum, uuid                      -> string
    int, long                               -> long
    float, double                           -> double
    boolean                                 -> boolean
    long as timestamp-millis/-micros        -> timestamp (aware, UTC)
    long as local-timestamp-millis/-micros  -> timestamp (taken as UTC)
    int as date, int/long as time-*         -> string (ISO 8601 text)
    bytes/fixed as decimal                  -> string (the exact decimal text)
    bytes, fixed                            -> string (base64 text)
    record, array, map, other unions        -> json
    ["null", X]                             -> the type of X (nullable)

Our Avro schema for a Schema (`avro_from_columns`): a record whose every field is
["null", T] with default null; timestamp -> long as timestamp-micros; json -> string
holding the JSON text.

`RowConverter` (Avro records as fastavro reads them -> rows in column order) and
`record_converter` (rows -> records for fastavro to write) are built once per schema and
convert whole batches: values already of the column's type pass through untouched.

fastavro is imported inside functions only: the CLI imports nothing of this module.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from operator import itemgetter
from typing import Any
from uuid import UUID

from pipelines.engine.columns import BOOLEANS, _boolean_value, _double, _double_value, _finite, _long, _long_value, _string_value, _timestamp
from pipelines.engine.errors import ConfigError, DataError
from pipelines.engine.records import Column, Schema

AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
TIMESTAMP_TYPES = ("timestamp-millis", "timestamp-micros")
LOCAL_TIMESTAMP_TYPES = ("local-timestamp-millis", "local-timestamp-micros")
TIME_TYPES = ("time-millis", "time-micros")
CONVERT_ERRORS = (ValueError, TypeError, OverflowError, ArithmeticError, AttributeError)

# What fastavro gives for a field (its "kind"), from the field's Avro type. Kinds:
# string, enum, uuid, int, long, float, double, boolean, timestamp, local-timestamp, date, time,
# decimal, bytes (bytes and fixed), complex (record, array, map: dicts and lists), union (several
# non-null branches: any of those), null.
_KIND_OF_PRIMITIVE = {
    "string": "string",
    "int": "int",
    "long": "long",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "bytes": "bytes",
    "null": "null",
}
_COLUMN_TYPE_OF_KIND = {
    "string": "string",
    "enum": "string",
    "uuid": "string",
    "int": "long",
    "long": "long",
    "float": "double",
    "double": "double",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "local-timestamp": "timestamp",
    "date": "string",
    "time": "string",
    "decimal": "string",
    "bytes": "string",
    "complex": "json",
    "union": "json",
    "null": "string",
}


class _Names:
    """Named types (record, enum, fixed) seen so far, by full and short name, for references."""

    def __init__(self) -> None:
        self.types: dict[str, dict[str, Any]] = {}

    def add(self, schema: dict[str, Any], namespace: str | None) -> str | None:
        name = schema.get("name")
        if not isinstance(name, str):
            return namespace
        space = schema.get("namespace", namespace)
        full = name if "." in name or not space else f"{space}.{name}"
        self.types[full] = schema
        self.types.setdefault(full.rsplit(".", 1)[-1], schema)
        return full.rsplit(".", 1)[0] if "." in full else space

    def get(self, name: str, namespace: str | None) -> dict[str, Any] | None:
        if namespace and "." not in name and f"{namespace}.{name}" in self.types:
            return self.types[f"{namespace}.{name}"]
        return self.types.get(name)


def _kind(avro_type: Any, names: _Names, namespace: str | None = None) -> str:
    """The kind of value fastavro reads for `avro_type` (see _KIND_OF_PRIMITIVE); registers named types."""
    if isinstance(avro_type, list):
        kinds = [_kind(branch, names, namespace) for branch in avro_type]
        non_null = [k for k in kinds if k != "null"]
        if len(non_null) == 1:
            return non_null[0]
        return "union" if non_null else "null"
    if isinstance(avro_type, str):
        if avro_type in _KIND_OF_PRIMITIVE:
            return _KIND_OF_PRIMITIVE[avro_type]
        named = names.get(avro_type, namespace)
        if named is None:
            raise ValueError(f"unknown type name '{avro_type}'")
        return _named_kind(named)
    if not isinstance(avro_type, dict) or "type" not in avro_type:
        raise ValueError(f"not an Avro type: {avro_type!r}")
    type_name, logical = avro_type["type"], avro_type.get("logicalType")
    if type_name in ("record", "error", "enum", "fixed"):
        inner = names.add(avro_type, namespace)
        if type_name in ("record", "error"):
            for field in avro_type.get("fields", []):
                _kind(field["type"], names, inner)
    elif type_name == "array":
        _kind(avro_type.get("items"), names, namespace)
    elif type_name == "map":
        _kind(avro_type.get("values"), names, namespace)
    elif not isinstance(type_name, str) or type_name not in _KIND_OF_PRIMITIVE:
        return _kind(type_name, names, namespace)  # {"type": {"type": ...}} or {"type": "SomeName"}
    if logical in TIMESTAMP_TYPES and type_name == "long":
        return "timestamp"
    if logical in LOCAL_TIMESTAMP_TYPES and type_name == "long":
        return "local-timestamp"
    if logical == "date" and type_name == "int":
        return "date"
    if logical in TIME_TYPES and type_name in ("int", "long"):
        return "time"
    if logical == "decimal" and type_name in ("bytes", "fixed"):
        return "decimal"
    if logical == "uuid" and type_name == "string":
        return "uuid"
    return _named_kind(avro_type) if type_name in ("record", "error", "enum", "fixed") else _KIND_OF_PRIMITIVE.get(type_name, "complex")


def _named_kind(schema: dict[str, Any]) -> str:
    type_name = schema["type"]
    if type_name == "enum":
        return "enum"
    if type_name == "fixed":
        return "decimal" if schema.get("logicalType") == "decimal" else "bytes"
    return "complex"


def _has_binary(avro_type: Any, names: _Names, seen: set[str] | None = None) -> bool:
    """Whether values of `avro_type` may hold bytes or decimals (which JSON has no form for)."""
    seen = set() if seen is None else seen
    if isinstance(avro_type, list):
        return any(_has_binary(branch, names, seen) for branch in avro_type)
    if isinstance(avro_type, str):
        if avro_type == "bytes":
            return True
        named = names.get(avro_type, None)
        if named is None or avro_type in seen:
            return False
        seen.add(avro_type)
        return _has_binary(named, names, seen)
    if not isinstance(avro_type, dict):
        return False
    type_name = avro_type.get("type")
    if type_name in ("bytes", "fixed"):
        return True
    if type_name in ("record", "error"):
        if isinstance(avro_type.get("name"), str):
            seen.add(avro_type["name"])
        return any(_has_binary(f["type"], names, seen) for f in avro_type.get("fields", []))
    if type_name == "array":
        return _has_binary(avro_type.get("items"), names, seen)
    if type_name == "map":
        return _has_binary(avro_type.get("values"), names, seen)
    return isinstance(type_name, (dict, list)) and _has_binary(type_name, names, seen)


def _record_fields(avro_schema: Any, where: str, error: type[ConfigError] | type[DataError] = ConfigError) -> list[dict[str, Any]]:
    if not isinstance(avro_schema, dict) or avro_schema.get("type") not in ("record", "error"):
        got = avro_schema.get("type") if isinstance(avro_schema, dict) else avro_schema
        raise error(
            f"expected an Avro record schema ({{\"type\": \"record\", \"fields\": [...]}}), got a schema of type {got!r}: "
            "rows need named fields",
            where=where,
        )
    fields = avro_schema.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str) and "type" in f for f in fields):
        raise error("the record schema needs 'fields': a list of {name, type}", where=where)
    return fields


def _field_kinds(avro_schema: dict[str, Any], where: str, error: type[ConfigError] | type[DataError] = ConfigError) -> tuple[dict[str, tuple[str, Any]], _Names]:
    """{field name: (kind, Avro type)} of a record schema, in field order."""
    fields = _record_fields(avro_schema, where, error)
    names = _Names()
    namespace = names.add(avro_schema, avro_schema.get("namespace"))
    kinds: dict[str, tuple[str, Any]] = {}
    for field in fields:
        try:
            kinds[field["name"]] = (_kind(field["type"], names, namespace), field["type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise error(f"field '{field['name']}': {exc}", where=where) from None
    return kinds, names


def columns_from_avro(avro_schema: dict[str, Any], where: str = "Avro schema") -> tuple[Column, ...]:
    """The columns of a record schema's fields, typed as the module's table says."""
    kinds, _ = _field_kinds(avro_schema, where)
    return tuple(Column(name, _COLUMN_TYPE_OF_KIND[kind]) for name, (kind, _) in kinds.items())


_AVRO_TYPE_OF_COLUMN: dict[str, Any] = {
    "string": "string",
    "long": "long",
    "double": "double",
    "boolean": "boolean",
    "timestamp": {"type": "long", "logicalType": "timestamp-micros"},
    "json": "string",  # the JSON text
}


def avro_from_columns(
    schema: Schema, name: str = "Row", namespace: str = "audience_pipelines", where: str | None = None
) -> dict[str, Any]:
    """A record schema for rows of `schema`: every field ["null", T] with default null."""
    for column in schema.columns:
        if not AVRO_NAME.match(column.name):
            raise ConfigError(
                f"column '{column.name}' is not a valid Avro field name (letters, digits and _, not starting with a digit); "
                "rename it with a rename filter",
                where=where,
            )
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": [{"name": c.name, "type": ["null", _AVRO_TYPE_OF_COLUMN[c.type]], "default": None} for c in schema.columns],
    }


def required_fields(avro_schema: dict[str, Any]) -> list[str]:
    """Fields a writer must give a value: not nullable and without a default."""
    out = []
    for field in _record_fields(avro_schema, "Avro schema"):
        nullable = isinstance(field["type"], list) and "null" in field["type"] or field["type"] == "null"
        if "default" not in field and not nullable:
            out.append(field["name"])
    return out


def load_avsc(avsc: Any, avsc_file: str | None, where: str) -> dict[str, Any] | None:
    """The schema of an `avsc` (mapping or JSON text) or `avsc_file` option, checked by fastavro; None if neither."""
    import json

    if avsc_file is not None:
        where = f"{where}.avsc_file"
        try:
            with open(avsc_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read the Avro schema file {avsc_file}: {exc.strerror or exc}", where=where) from None
        avsc = text
    elif avsc is not None:
        where = f"{where}.avsc"
    else:
        return None
    if isinstance(avsc, str):
        try:
            avsc = json.loads(avsc)
        except ValueError as exc:
            raise ConfigError(f"the Avro schema is not valid JSON: {exc}", where=where) from None
    else:
        avsc = json.loads(json.dumps(avsc, default=dict))  # YAML mappings (read-only proxies) -> plain JSON data
    if not isinstance(avsc, dict):
        raise ConfigError(f"expected an Avro record schema (a mapping), got {type(avsc).__name__}", where=where)
    try:
        import fastavro

        fastavro.parse_schema(avsc)
    except Exception as exc:  # noqa: BLE001 - fastavro raises several types for bad schemas
        raise ConfigError(f"invalid Avro schema: {exc}", where=where) from None
    return avsc


# ------------------------------------------------------------------ Avro values -> column values


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _jsonable(value: Any) -> Any:
    """A value with its bytes as base64 text and its decimals as exact text, so that JSON can hold it."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return _base64(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return _base64(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")


def json_text(value: Any) -> str:
    """JSON text of a value as fastavro reads it (bytes as base64, decimals as text)."""
    import orjson

    return orjson.dumps(value, default=_json_default).decode()


def _isoformat(value: date | time) -> str:
    return value.isoformat()


def _any_to_string(value: Any) -> str:
    if isinstance(value, dict | list):
        return json_text(value)
    if isinstance(value, bytes):
        return _base64(value)
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


_INCOMPATIBLE = object()


def _reader(kind: str, column_type: str, fmt: str | None, binary: bool) -> Any:
    """Converter of an Avro value of `kind` to `column_type`: a function, None (as is), or _INCOMPATIBLE."""
    if column_type == "string":
        table: dict[str, Any] = {
            "string": None, "enum": None, "uuid": str, "decimal": str, "int": str, "long": str,
            "float": repr, "double": repr, "boolean": _string_value, "timestamp": _isoformat,
            "local-timestamp": _isoformat, "date": _isoformat, "time": _isoformat, "bytes": _base64,
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
        table = {"bytes": _base64, "decimal": str, "complex": needs, "union": needs}
        return table.get(kind)
    else:
        raise ValueError(f"unknown column type {column_type!r}")
    return table.get(kind, _INCOMPATIBLE)


def _listing(noun: str, names: list[str]) -> str:
    return f"{noun} {names[0]!r}" if len(names) == 1 else f"{noun}s " + ", ".join(repr(n) for n in names)


def _describe_kind(kind: str, avro_type: Any) -> str:
    import json

    text = json.dumps(avro_type, default=str, separators=(",", ":"))
    return text if len(text) <= 80 else kind


class RowConverter:
    """Avro records (dicts, as fastavro reads them) -> rows of `columns` (objects with name, type
    and optionally format, like ColumnSettings), each value converted to its column's type.

    Built once per writer (or reader) schema: a column whose Avro type cannot become the column's
    type at all, or that the schema lacks, is a DataError naming `where` when it is built.
    """

    def __init__(self, columns: Sequence[Any], avro_schema: dict[str, Any], where: str) -> None:
        kinds, names = _field_kinds(avro_schema, where, DataError)
        self.names = [c.name for c in columns]
        missing = [n for n in self.names if n not in kinds]
        if missing:
            raise DataError(
                f"the Avro schema has no {_listing('field', missing)} (its fields: {', '.join(kinds)})",
                where=where,
            )
        self.converters: list[tuple[int, str, str, Callable[[Any], Any]]] = []
        for i, column in enumerate(columns):
            kind, avro_type = kinds[column.name]
            binary = kind in ("complex", "union") and _has_binary(avro_type, names)
            conv = _reader(kind, column.type, getattr(column, "format", None), binary)
            if conv is _INCOMPATIBLE:
                raise DataError(
                    f"column '{column.name}' ({column.type}) cannot be read from the Avro field of type "
                    f"{_describe_kind(kind, avro_type)}; declare the column as {_COLUMN_TYPE_OF_KIND[kind]}",
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


# ------------------------------------------------------------------ column values -> Avro values


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
    """Converter of a column value to a field of `kind` for fastavro to write: a function, None, or _INCOMPATIBLE."""
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
    return table.get(kind, _INCOMPATIBLE)


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
    kinds, _ = _field_kinds(avro_schema, where or "Avro schema")
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
            f"{_listing('column', unknown)} {'is not a field' if len(unknown) == 1 else 'are not fields'} of the Avro schema "
            f"(fields: {', '.join(kinds)}); add the field to the schema, or leave the column out of the value (ignore_columns)",
            where=where,
        )
    lacking = [f for f in required_fields(avro_schema) if f not in names]
    if lacking:
        raise ConfigError(
            f"the Avro schema requires {_listing('field', lacking)} (not nullable, no default), "
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
        if conv is _INCOMPATIBLE:
            raise ConfigError(
                f"column '{column.name}' ({column.type}) cannot be written as the Avro field of type "
                f"{_describe_kind(kind, avro_type)}",
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


# ------------------------------------------------------------------ codecs


_codecs_checked = False


def ensure_zstandard_codec() -> None:
    """Lets fastavro read and write the Avro `zstandard` codec with the `zstandard` package (a
    dependency of ours) when it has no zstd module of its own (before Python 3.14, without backports.zstd)."""
    global _codecs_checked
    if _codecs_checked:
        return
    _codecs_checked = True
    import fastavro._read as fast_read
    import fastavro._write as fast_write

    try:
        from compression import zstd  # noqa: F401 - Python 3.14+
    except ImportError:
        try:
            from backports import zstd  # noqa: F401
        except ImportError:
            fast_read.BLOCK_READERS["zstandard"] = _zstandard_read_block
            fast_write.BLOCK_WRITERS["zstandard"] = _zstandard_write_block
            try:
                import fastavro._read_py as py_read
                import fastavro._write_py as py_write

                py_read.BLOCK_READERS["zstandard"] = _zstandard_read_block_py
                py_write.BLOCK_WRITERS["zstandard"] = _zstandard_write_block_py
            except ImportError:  # pragma: no cover
                pass


def _read_varlong(fo: Any) -> int:
    shift = result = 0
    while True:
        byte = fo.read(1)
        if not byte:
            raise EOFError("the file ends inside a block header")
        b = byte[0]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7


def _write_varlong(fo: Any, n: int) -> None:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    fo.write(bytes(out))


def _zstd_decompress(data: bytes) -> bytes:
    import zstandard

    obj = zstandard.ZstdDecompressor().decompressobj()
    out = obj.decompress(data)
    if not obj.eof:
        raise EOFError("a zstandard block is truncated")
    return out


def _zstandard_read_block(fo: Any) -> Any:
    from io import BytesIO

    length = _read_varlong(fo)
    data = fo.read(length)
    if len(data) != length:
        raise EOFError(f"Expected {length} bytes, read {len(data)}")
    return BytesIO(_zstd_decompress(data))


def _zstandard_write_block(fo: Any, block_bytes: bytes, compression_level: int | None) -> None:
    import zstandard

    data = zstandard.ZstdCompressor(level=compression_level or 3).compress(block_bytes)
    _write_varlong(fo, len(data))
    fo.write(data)


def _zstandard_read_block_py(decoder: Any) -> Any:
    from io import BytesIO

    return BytesIO(_zstd_decompress(decoder.read_bytes()))


def _zstandard_write_block_py(encoder: Any, block_bytes: bytes, compression_level: int | None) -> None:
    import zstandard

    encoder.write_bytes(zstandard.ZstdCompressor(level=compression_level or 3).compress(block_bytes))
