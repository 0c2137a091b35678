"""Avro values as text: JSON text of a value as fastavro reads it, base64 text of bytes.

Both directions use them: reading.py (a record, array, map or union into a string or json column)
and writing.py (a json column into an Avro string field).
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any
from uuid import UUID


def base64_text(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64_text(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")


def json_text(value: Any) -> str:
    """JSON text of a value as fastavro reads it (bytes as base64, decimals as text)."""
    import orjson

    return orjson.dumps(value, default=_json_default).decode()

