"""The Confluent wire format of Avro values in Kafka: magic byte 0, the writer schema's registry id
(4 bytes, big-endian), then the Avro binary encoding of the record (no container, no schema).

    serializer = AvroSerializer(avro_schema, schema_id)
    values, bad = serializer.encode_batch(records)      # bytes per record (None for bad ones)

    deserializer = AvroDeserializer(registry)             # writer schemas looked up by id, cached
    record = deserializer.decode(value)                   # WireFormatError (a ValueError) if not decodable
    records, positions, bad = deserializer.decode_batch(values)

    rows = AvroRowDecoder(deserializer, columns, where="kafka topic t")
    good_rows, positions, bad = rows(values)              # values -> rows of `columns`, per writer schema

AvroRowDecoder reads the values of a batch's first schema id with the compiled reader
(pipelines/native/_avroread.c) when it is built and the schema is one it reads; fastavro reads
the others, and the values it hands back (another schema id, not decodable, a value that does not
convert), so that they are reported as before.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from typing import Any

MAGIC = 0
HEADER = struct.Struct(">bI")  # magic byte, schema id
HEADER_SIZE = HEADER.size  # 5
ENCODE_ERRORS = (ValueError, TypeError, OverflowError, KeyError, AttributeError)
DECODE_ERRORS = (ValueError, TypeError, EOFError, IndexError, KeyError, OverflowError, UnicodeDecodeError, MemoryError)


class WireFormatError(ValueError):
    """A value that is not a Confluent wire-format Avro record (the caller makes it a row error)."""


def header(schema_id: int) -> bytes:
    """The 5 bytes before every value written with schema `schema_id`."""
    return HEADER.pack(MAGIC, schema_id)


def schema_id_of(value: bytes) -> int:
    """The registry id of the schema `value` was written with."""
    if value is None or len(value) < HEADER_SIZE:
        size = 0 if value is None else len(value)
        raise WireFormatError(f"a Confluent Avro value has at least {HEADER_SIZE} bytes, this one {size}")
    if value[0] != MAGIC:
        raise WireFormatError(f"not a Confluent Avro value: it starts with byte {value[0]}, not the magic byte 0")
    return HEADER.unpack_from(value)[1]


class AvroSerializer:
    """Records (dicts) -> wire-format values, all with one schema and its registry id."""

    def __init__(self, avro_schema: dict[str, Any], schema_id: int) -> None:
        import fastavro

        self.avro_schema = avro_schema
        self.schema_id = schema_id
        self.parsed = fastavro.parse_schema(avro_schema)
        self.prefix = header(schema_id)
        self._write = fastavro.schemaless_writer

    def encode(self, record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self.prefix)
        self._write(buffer, self.parsed, record)
        return buffer.getvalue()

    def encode_batch(self, records: Sequence[dict[str, Any] | None]) -> tuple[list[bytes | None], list[tuple[int, str]]]:
        """(values aligned with `records`, None where a record does not fit the schema;
        [(position, reason)] of those). All records go into one buffer, then it is cut.

        A None record (one already rejected, see pipelines.engine.avro.writing.record_converter) gives None and no reason."""
        buffer = io.BytesIO()
        write, parsed, prefix, tell = self._write, self.parsed, self.prefix, buffer.tell
        ends: list[int] = []
        bad: list[tuple[int, str]] = []
        start = 0
        for position, record in enumerate(records):
            if record is None:
                ends.append(-1)
                continue
            buffer.write(prefix)
            try:
                write(buffer, parsed, record)
            except ENCODE_ERRORS as exc:
                buffer.seek(start)
                buffer.truncate()
                ends.append(-1)
                bad.append((position, f"does not fit the Avro schema: {exc}"))
                continue
            start = tell()
            ends.append(start)
        data = buffer.getvalue()
        values: list[bytes | None] = []
        begin = 0
        for end in ends:
            if end < 0:
                values.append(None)
            else:
                values.append(data[begin:end])
                begin = end
        return values, bad


class AvroDeserializer:
    """Wire-format values -> records (dicts), each decoded with its writer schema from the registry.

    `registry` is a SchemaRegistry (or anything with `schema(schema_id) -> dict`). An unknown schema id
    is the registry's SchemaNotFound (a RunError: the whole run is wrong, not one value).
    """

    def __init__(self, registry: Any, reader_schema: dict[str, Any] | None = None) -> None:
        import fastavro

        self.registry = registry
        self.reader_schema = fastavro.parse_schema(reader_schema) if reader_schema is not None else None
        self._parsed: dict[int, Any] = {}
        self._read = fastavro.schemaless_reader
        self._parse = fastavro.parse_schema

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed writer schema of `schema_id` (asked once from the registry)."""
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = self._parsed[schema_id] = self._parse(self.registry.schema(schema_id))
        return parsed

    def decode(self, value: bytes) -> dict[str, Any]:
        return self.decode_with_id(value)[1]

    def decode_with_id(self, value: bytes) -> tuple[int, dict[str, Any]]:
        schema_id = schema_id_of(value)
        writer = self.writer_schema(schema_id)
        stream = io.BytesIO(value)
        stream.seek(HEADER_SIZE)
        try:
            record = self._read(stream, writer, self.reader_schema)
        except DECODE_ERRORS as exc:
            raise WireFormatError(f"cannot decode the Avro value with schema id {schema_id}: {type(exc).__name__}: {exc}") from None
        if stream.tell() != len(value):
            raise WireFormatError(
                f"the Avro value with schema id {schema_id} has {len(value) - stream.tell()} byte(s) after the record "
                "(written with another schema?)"
            )
        return schema_id, record

    def decode_batch(self, values: Sequence[bytes]) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
        """(decoded records, their positions in `values`, [(position, reason)] of the undecodable ones)."""
        records, positions, bad = [], [], []
        for position, value in enumerate(values):
            try:
                records.append(self.decode(value))
            except WireFormatError as exc:
                bad.append((position, str(exc)))
                continue
            positions.append(position)
        return records, positions, bad


class AvroRowDecoder:
    """Wire-format values -> rows of `columns` (objects with name and type, like ColumnSettings),
    converted per writer schema with pipelines.engine.avro.reading.RowConverter (one built per schema id)."""

    def __init__(self, deserializer: AvroDeserializer, columns: Sequence[Any], where: str) -> None:
        from pipelines.native.compiled import compiled

        self.deserializer = deserializer
        self.columns = list(columns)
        self.where = where
        self._converters: dict[int, Any] = {}
        self._plans: dict[int, Any] = {}  # schema id -> the compiled reader's plan, or None
        self._wire_rows = compiled("pipelines.native._avroread", "wire_rows") if deserializer.reader_schema is None else None

    def converter(self, schema_id: int) -> Any:
        from pipelines.engine.avro.reading import RowConverter

        conv = self._converters.get(schema_id)
        if conv is None:
            schema = self.deserializer.reader_schema or self.deserializer.writer_schema(schema_id)
            conv = self._converters[schema_id] = RowConverter(self.columns, schema, f"{self.where} (schema id {schema_id})")
        return conv

    def plan(self, schema_id: int) -> Any:
        """The compiled reader's plan for values of `schema_id` (pipelines.engine.avro.reading.compiled_plan),
        made once; None when it cannot read them, or when the columns cannot come from that schema at all
        (fastavro's path then reports it as before)."""
        if schema_id not in self._plans:
            from pipelines.engine.avro.reading import compiled_plan
            from pipelines.engine.errors import DataError

            try:
                self.converter(schema_id)
            except DataError:
                self._plans[schema_id] = None
            else:
                self._plans[schema_id] = compiled_plan(self.columns, self.deserializer.writer_schema(schema_id))
        return self._plans[schema_id]

    def __call__(self, values: Sequence[bytes]) -> tuple[list[list[Any]], list[int], list[tuple[int, str]]]:
        """(rows of the good values, their positions in `values`, [(position, reason)] of the bad ones)."""
        compiled = self._compiled_rows(values)
        return compiled if compiled is not None else self._fastavro_rows(values)

    def _compiled_rows(self, values: Sequence[bytes]) -> tuple[list[list[Any]], list[int], list[tuple[int, str]]] | None:
        """What __call__ gives, with the values of the first schema id read by the compiled reader and
        the ones it hands back by fastavro; None when it cannot read them."""
        if self._wire_rows is None or not isinstance(values, list):
            return None
        first = next((v for v in values if isinstance(v, bytes) and len(v) >= HEADER_SIZE and v[0] == MAGIC), None)
        if first is None:
            return None
        schema_id = schema_id_of(first)
        plan = self.plan(schema_id)
        if plan is None:
            return None
        rows, handed_back = self._wire_rows(values, schema_id, plan, len(self.columns))
        if not handed_back:
            return rows, list(range(len(values))), []
        back = set(handed_back)
        found = list(zip((p for p in range(len(values)) if p not in back), rows))
        more, kept, bad = self._fastavro_rows([values[p] for p in handed_back])
        found += [(handed_back[k], row) for k, row in zip(kept, more)]
        found.sort(key=lambda item: item[0])
        return [row for _, row in found], [p for p, _ in found], [(handed_back[k], reason) for k, reason in bad]

    def _fastavro_rows(self, values: Sequence[bytes]) -> tuple[list[list[Any]], list[int], list[tuple[int, str]]]:
        """What __call__ gives, each value read by fastavro and its record converted by RowConverter."""
        decode = self.deserializer.decode_with_id
        groups: dict[int, tuple[list[dict[str, Any]], list[int]]] = {}
        bad: list[tuple[int, str]] = []
        for position, value in enumerate(values):
            try:
                schema_id, record = decode(value)
            except WireFormatError as exc:
                bad.append((position, str(exc)))
                continue
            group = groups.get(schema_id)
            if group is None:
                group = groups[schema_id] = ([], [])
            group[0].append(record)
            group[1].append(position)
        if len(groups) == 1 and not bad:
            ((schema_id, (records, _)),) = groups.items()
            return self.converter(schema_id)(records)
        found: list[tuple[int, list[Any]]] = []
        for schema_id, (records, where) in groups.items():
            rows, kept, failed = self.converter(schema_id)(records)
            found += [(where[k], row) for k, row in zip(kept, rows)]
            bad += [(where[k], reason) for k, reason in failed]
        found.sort(key=lambda item: item[0])
        bad.sort()
        return [row for _, row in found], [p for p, _ in found], bad
