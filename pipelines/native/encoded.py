"""What the fused paths (pipelines.native.fused) pass around: the records an encoder made, and the
layout it makes them by. A leaf module: the parsers, the encoders and the outputs all import it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EncodedRecords:
    """Records an encoder made from a run of rows (CSV, JSON lines or an Avro block): `count` records in `data`, each a native uint32 key length,
    a uint32 value length, the key, the value (what produce_records reads)."""

    data: bytes
    count: int


@dataclass(frozen=True)
class RecordLayout:
    """What a fused encoder writes for each row of the parser's columns, whatever the parser: the key
    (the string column `key_index`), the columns `required` (neither null nor empty, by the validate
    filter), and the value's `parts`: for a JSON value, ('"name":' bytes, with ',' before all but the
    first; a column index or the constant's JSON bytes); for an Avro value (`avro` = (wire-format
    header, one (code, null branch, value branch) a part)), (b"", a column index or the constant's
    Avro bytes) in the record schema's order."""

    key_index: int
    required: tuple[int, ...]
    parts: tuple[Any, ...]
    avro: tuple[bytes, tuple[tuple[int, int, int], ...]] | None = None
