"""JSON lines straight to Kafka records (encode_json_records, the jsonl parser's fused path): the
same records, error-output entries and counts as the parser's rows, the filters and the Kafka
output's JSON or Avro values give, on random lines full of values it must leave to them."""

from __future__ import annotations

import io
import random
from typing import Any

import orjson
import pytest

from conftest import Errors, split_records
from pipelines.engine import textio
from pipelines.engine.columns import ColumnSettings
from pipelines.engine.records import Source
from pipelines.plugins.jsonl_parser import JsonlParser, JsonlParserSettings

pytest.importorskip("pipelines.native._fastrows", reason="the C extensions are not built (no C compiler at install)")

COLUMNS = [
    {"name": "user_id"},
    {"name": "n", "type": "long"},
    {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "at", "type": "timestamp"},
]
# JSON texts of each column's values: ordinary ones, and ones the fused path must leave to the rows.
VALUES = {
    "user_id": ['"u1"', '"u2"', '""', '"caf\u00e9"', '"a\\\\b"', '"tab\\there"', '"\\u00e9"', '"q\\"q"', "null", "12",
                "true", '"null"', '"\u65e5\u672c"', "[1]", '{"a": 1}'],
    "n": ["1", "-7", "007", "-0", "0", "123456789012345678", "1234567890123456789", "1.0", "1e3", '"5"', "null", "true",
          "-", "1.", "99999999999999999999"],
    "score": ["94.787", "94.7870", "1.5", "-0.0", "0", "3", "0.0001", "0.00001", "123456789012345", "1234567890123456",
              "1e5", "1E-7", '"1.5"', "null", "false", "0.1234567890123456"],
    "ok": ["true", "false", '"true"', '"yes"', "1", "0", "null"],
    "at": ['"2026-11-01T12:00:00Z"', '"2026-11-01T12:00:00"', '"2026-11-01T12:00:00+00:00"', '"2024-02-29T00:00:00Z"',
           '"2026-02-29T00:00:00Z"', '"2026-11-01T12:00:00.5Z"', '"2026-11-01 12:00:00"', '"2026-11-01T12:00:00+02:00"',
           '""', "null", "1700000000"],
}


def ordinary_line(rng: random.Random) -> str:
    return (f'{{"user_id": "u{rng.randint(0, 10**6)}", "n": {rng.randint(-99, 99)}, "score": {rng.randint(0, 99999) / 1000}, '
            f'"ok": true, "at": "2026-11-0{rng.randint(1, 9)}T12:00:00Z"}}')


def odd_line(rng: random.Random) -> str:
    """A line of random values, members in random order, some missing or repeated, maybe with an extra key or white space."""
    members = [(name, rng.choice(VALUES[name])) for name in VALUES if rng.random() < 0.9]
    if rng.random() < 0.2:
        members.append((rng.choice(["extra", "n", "user_id"]), rng.choice(['"x"', "1", "null", '"\\n"', "[]", "2.5"])))
    rng.shuffle(members)
    space = rng.choice(["", " ", "\t"])
    body = f",{space}".join(f'"{name}":{space}{value}' for name, value in members)
    return rng.choice([f"{{{body}}}", f"{space}{{{body}}}{space}", f"{{{body}}}\r", f"{{{body}}} x", "[1]", "", "   ", "{", "null"])


def random_jsonl(rng: random.Random, rows: int) -> bytes:
    lines = [ordinary_line(rng) if rng.random() < 0.7 else odd_line(rng) for _ in range(rows)]
    return ("\n".join(lines) + rng.choice(["\n", ""])).encode()


def filters_and_schema(parser: JsonlParser) -> tuple[list[Any], Any]:
    from pipelines.plugins.column_filters import AddColumnsFilter, AddColumnsSettings, AddedColumn
    from pipelines.plugins.validate_filter import ColumnRule, ValidateFilter, ValidateSettings

    filters = [
        ValidateFilter(ValidateSettings(columns=(ColumnRule("user_id", required=True), ColumnRule("n"))), "filters[0]"),
        AddColumnsFilter(AddColumnsSettings(columns=(AddedColumn("segment_id", "long", "7"), AddedColumn("tag", value='a"b'))), "filters[1]"),
    ]
    schema = parser.schema()
    for f in filters:
        schema = f.bind(schema)
    return filters, schema


def import_records(data: bytes, native: bool, monkeypatch: pytest.MonkeyPatch, avro: bool = False) -> tuple:
    """What the import makes of `data`: (key, value) records in order, the error output's entries,
    the records consumed; natively through encode_json_records wherever it takes the lines."""
    from pipelines.native.fused import EncodedRecords, record_encoder

    monkeypatch.setenv("PIPELINES_NATIVE", "1" if native else "0")
    parser = JsonlParser(JsonlParserSettings(columns=tuple(ColumnSettings(**c) for c in COLUMNS)), "in.parser")
    filters, schema = filters_and_schema(parser)
    names, key_index = schema.names, schema.index("user_id")
    value_indexes = [i for i, name in enumerate(names) if name != "n"]
    value_names = [names[i] for i in value_indexes]
    writer = avro_writer(schema, key_index, value_indexes) if avro and native else None
    encoder = record_encoder(parser, filters, key_index, value_indexes, value_names, writer)
    assert (encoder is not None) == native
    errors, records, consumed, encoded = Errors(), [], 0, 0
    for batch, n in parser.read_batches(io.BytesIO(data), Source("mem://x.jsonl", len(data)), errors, 7, True, False, encoder):
        consumed += n
        if isinstance(batch, EncodedRecords):  # records made in C: no rows
            assert batch.count <= 7
            got = split_records(batch.data)
            assert len(got) == batch.count
            records += got
            encoded += batch.count
            continue
        for f in filters:
            if batch.rows:
                f.apply(batch, errors)
        for row, line in zip(batch.rows, batch.line_nos):
            key = row[key_index]
            if key is None or key == "":
                errors.add("mem://x.jsonl", line, "empty key", "")  # as KafkaOutput._empty_key
                continue
            values = [row[i] for i in value_indexes]
            value = avro_value(values) if avro else orjson.dumps(dict(zip(value_names, values)))
            records.append((str(key).encode(), value))
    return (records, errors.seen, consumed), encoded


HEADER = b"\x00\x00\x00\x00\x09"  # the wire format's magic byte and schema id 9
AVRO_SCHEMA = {
    "type": "record", "name": "Member", "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "score", "type": ["null", "double"]},
        {"name": "ok", "type": ["null", "boolean"]},
        {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "segment_id", "type": "long"},
        {"name": "tag", "type": "string"},
    ],
}


def avro_writer(schema: Any, key_index: int, value_indexes: list[int]) -> Any:
    """The Kafka output's Avro values (pipelines.native.avro_values.AvroRecords) for AVRO_SCHEMA, schema id 9."""
    from pipelines.native.avro_values import AvroRecords

    writer = AvroRecords.choose(AVRO_SCHEMA, HEADER, key_index, schema, value_indexes)
    assert writer is not None
    return writer


def avro_value(values: list[Any]) -> bytes:
    """The Avro value the Python path writes (fastavro, after the wire-format header)."""
    import fastavro

    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(AVRO_SCHEMA), dict(zip([f["name"] for f in AVRO_SCHEMA["fields"]], values)))
    return HEADER + out.getvalue()


@pytest.mark.parametrize("seed", range(40))
def test_encoded_json_records_equal_the_rows_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(textio, "CHUNK_BYTES", rng.choice([16, 64, 200, 1 << 20]))
    data = random_jsonl(rng, rng.randint(0, 150))
    avro = seed % 4 == 3
    (records, errors, consumed), _ = import_records(data, True, monkeypatch, avro)
    (expected, expected_errors, expected_consumed), _ = import_records(data, False, monkeypatch, avro)
    assert (records, consumed) == (expected, expected_consumed)
    # The same entries; their order can differ, as the filters report a batch's rows after the parser's.
    assert sorted(errors) == sorted(expected_errors)


@pytest.mark.parametrize("avro", [False, True])
def test_ordinary_json_lines_are_all_encoded(avro: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an ordinary audience every line is encoded; an odd line leaves only the rest of its chunk to rows."""
    rng = random.Random(5)
    data = ("\n".join(ordinary_line(rng) for _ in range(5000)) + "\n").encode()
    (records, errors, consumed), encoded = import_records(data, True, monkeypatch, avro)
    assert (len(records), errors, consumed, encoded) == (5000, [], 5000, 5000)
    odd = data.replace(b'"ok": true', b'"ok": "maybe"', 1)
    monkeypatch.setattr(textio, "CHUNK_BYTES", 16384)
    (records, errors, consumed), encoded = import_records(odd, True, monkeypatch, avro)
    assert len(errors) == 1 and errors[0][0] == 1 and consumed == 5000
    assert 5000 - encoded < 1000  # only the first chunk's rest went to rows
