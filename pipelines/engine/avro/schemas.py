"""Avro schemas <-> our Schema.

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

`load_avsc` reads a schema given as `avsc` (a mapping or JSON text) or `avsc_file` (a path).
fastavro is imported inside functions only.
"""

from __future__ import annotations

import re
from typing import Any

from pipelines.engine.avro.kinds import COLUMN_TYPE_OF_KIND, field_kinds, record_fields
from pipelines.engine.errors import ConfigError
from pipelines.engine.records import Column, Schema

AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def columns_from_avro(avro_schema: dict[str, Any], where: str = "Avro schema") -> tuple[Column, ...]:
    """The columns of a record schema's fields, typed as the module's table says."""
    kinds, _ = field_kinds(avro_schema, where)
    return tuple(Column(name, COLUMN_TYPE_OF_KIND[kind]) for name, (kind, _) in kinds.items())


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
    for field in record_fields(avro_schema, "Avro schema"):
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
