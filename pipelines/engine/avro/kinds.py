"""What fastavro gives for a field of an Avro record schema: its "kind", from the field's Avro type.

Kinds: string, enum, uuid, int, long, float, double, boolean, timestamp, local-timestamp, date, time,
decimal, bytes (bytes and fixed), complex (record, array, map: dicts and lists), union (several
non-null branches: any of those), null. `field_kinds` gives the kind of every field of a record
schema; `COLUMN_TYPE_OF_KIND` the column type each kind becomes (see schemas.py); reading.py and
writing.py convert values by kind.
"""

from __future__ import annotations

from typing import Any

from pipelines.engine.errors import ConfigError, DataError

TIMESTAMP_TYPES = ("timestamp-millis", "timestamp-micros")
LOCAL_TIMESTAMP_TYPES = ("local-timestamp-millis", "local-timestamp-micros")
TIME_TYPES = ("time-millis", "time-micros")
# what converting a value may raise: reading and writing reject that row with the reason
CONVERT_ERRORS = (ValueError, TypeError, OverflowError, ArithmeticError, AttributeError)
INCOMPATIBLE = object()  # in the converter tables: no conversion between this kind and that column type

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
COLUMN_TYPE_OF_KIND = {
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


def has_binary(avro_type: Any, names: _Names, seen: set[str] | None = None) -> bool:
    """Whether values of `avro_type` may hold bytes or decimals (which JSON has no form for)."""
    seen = set() if seen is None else seen
    if isinstance(avro_type, list):
        return any(has_binary(branch, names, seen) for branch in avro_type)
    if isinstance(avro_type, str):
        if avro_type == "bytes":
            return True
        named = names.get(avro_type, None)
        if named is None or avro_type in seen:
            return False
        seen.add(avro_type)
        return has_binary(named, names, seen)
    if not isinstance(avro_type, dict):
        return False
    type_name = avro_type.get("type")
    if type_name in ("bytes", "fixed"):
        return True
    if type_name in ("record", "error"):
        if isinstance(avro_type.get("name"), str):
            seen.add(avro_type["name"])
        return any(has_binary(f["type"], names, seen) for f in avro_type.get("fields", []))
    if type_name == "array":
        return has_binary(avro_type.get("items"), names, seen)
    if type_name == "map":
        return has_binary(avro_type.get("values"), names, seen)
    return isinstance(type_name, (dict, list)) and has_binary(type_name, names, seen)


def record_fields(avro_schema: Any, where: str, error: type[ConfigError] | type[DataError] = ConfigError) -> list[dict[str, Any]]:
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


def field_kinds(avro_schema: dict[str, Any], where: str, error: type[ConfigError] | type[DataError] = ConfigError) -> tuple[dict[str, tuple[str, Any]], _Names]:
    """{field name: (kind, Avro type)} of a record schema, in field order."""
    fields = record_fields(avro_schema, where, error)
    names = _Names()
    namespace = names.add(avro_schema, avro_schema.get("namespace"))
    kinds: dict[str, tuple[str, Any]] = {}
    for field in fields:
        try:
            kinds[field["name"]] = (_kind(field["type"], names, namespace), field["type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise error(f"field '{field['name']}': {exc}", where=where) from None
    return kinds, names


def listing(noun: str, names: list[str]) -> str:
    return f"{noun} {names[0]!r}" if len(names) == 1 else f"{noun}s " + ", ".join(repr(n) for n in names)


def describe_kind(kind: str, avro_type: Any) -> str:
    import json

    text = json.dumps(avro_type, default=str, separators=(",", ":"))
    return text if len(text) <= 80 else kind
