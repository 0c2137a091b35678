"""Avro: the schema mapping, the object-container parser (`parser: {type: avro}`), the Confluent
wire format, the schema registry client against the stack's real Apicurio registry, and the Kafka
output's `serialize_format: avro` against the real broker and registry."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml
from click.testing import CliRunner
from conftest import consume_all, free_port, rows_and_markers, run_cli, summary_of

from pipelines.engine.avro.codecs import ensure_zstandard_codec
from pipelines.engine.avro.reading import RowConverter
from pipelines.engine.avro.schemas import avro_from_columns, columns_from_avro
from pipelines.engine.avro.writing import record_converter
from pipelines.cli.main import cli
from pipelines.engine.errors import EXIT_CONFIG, EXIT_RUN_FAILED, ConfigError, DataError, RunError, TransientRunError
from pipelines.kafka.avro_wire import AvroDeserializer, AvroRowDecoder, AvroSerializer, WireFormatError, schema_id_of
from pipelines.kafka.schema_registry import SchemaNotFound, SchemaRegistry
from pipelines.engine.records import Column, Schema

UTC = timezone.utc
T0 = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)

AUDIENCE = {
    "type": "record",
    "name": "Member",
    "namespace": "com.example",
    "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "country", "type": ["null", "string"], "default": None},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "visits", "type": "int"},
        {"name": "opted_in", "type": "boolean"},
        {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "seen_at", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}


def members(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "user_id": f"u{i}",
            "country": None if i % 3 == 0 else "DE",
            "score": None if i % 2 else i / 4,
            "visits": i,
            "opted_in": i % 2 == 0,
            "updated_at": T0 + timedelta(seconds=i),
            "seen_at": None if i % 5 == 0 else T0 + timedelta(microseconds=i),
            "tags": ["a", str(i)],
        }
        for i in range(start, start + n)
    ]


def ocf(records: list[dict[str, Any]], schema: dict[str, Any] = AUDIENCE, codec: str = "null", block_size: int = 16000) -> bytes:
    ensure_zstandard_codec()
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec=codec, sync_interval=block_size)
    return out.getvalue()


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


# ---------------------------------------------------------------- schema mapping


def test_columns_from_avro_maps_every_kind_of_field() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "x.y",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
            {"name": "e_again", "type": ["null", "Color"]},
            {"name": "i", "type": "int"},
            {"name": "l", "type": ["null", "long"]},
            {"name": "f", "type": "float"},
            {"name": "d", "type": ["double", "null"]},
            {"name": "b", "type": "boolean"},
            {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "ts_us", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
            {"name": "local_ts", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "raw", "type": "bytes"},
            {"name": "rec", "type": {"type": "record", "name": "Inner", "fields": [{"name": "a", "type": "int"}]}},
            {"name": "rec_again", "type": ["null", "x.y.Inner"]},
            {"name": "arr", "type": {"type": "array", "items": "long"}},
            {"name": "map", "type": {"type": "map", "values": "string"}},
            {"name": "either", "type": ["null", "string", "long"]},
        ],
    }

    columns = columns_from_avro(schema)

    assert [(c.name, c.type) for c in columns] == [
        ("s", "string"), ("e", "string"), ("e_again", "string"), ("i", "long"), ("l", "long"), ("f", "double"),
        ("d", "double"), ("b", "boolean"), ("ts_ms", "timestamp"), ("ts_us", "timestamp"), ("local_ts", "timestamp"),
        ("day", "string"), ("id", "string"), ("amount", "string"), ("raw", "string"), ("rec", "json"),
        ("rec_again", "json"), ("arr", "json"), ("map", "json"), ("either", "json"),
    ]


@pytest.mark.parametrize("schema", ["string", {"type": "array", "items": "long"}, ["null", "string"], {"type": "enum", "name": "E", "symbols": ["A"]}])
def test_columns_from_avro_refuses_a_schema_that_is_not_a_record(schema: Any) -> None:
    with pytest.raises(ConfigError, match=r"in\.parser\.avsc: expected an Avro record schema .*rows need named fields"):
        columns_from_avro(schema, "in.parser.avsc")


def test_avro_from_columns_makes_every_field_nullable() -> None:
    schema = Schema((Column("user_id"), Column("n", "long"), Column("x", "double"), Column("ok", "boolean"), Column("t", "timestamp"), Column("j", "json")))

    avro = avro_from_columns(schema)

    assert avro == {
        "type": "record",
        "name": "Row",
        "namespace": "audience_pipelines",
        "fields": [
            {"name": "user_id", "type": ["null", "string"], "default": None},
            {"name": "n", "type": ["null", "long"], "default": None},
            {"name": "x", "type": ["null", "double"], "default": None},
            {"name": "ok", "type": ["null", "boolean"], "default": None},
            {"name": "t", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}], "default": None},
            {"name": "j", "type": ["null", "string"], "default": None},
        ],
    }
    fastavro.parse_schema(avro)
    assert [(c.name, c.type) for c in columns_from_avro(avro)] == [(c.name, c.type if c.type != "json" else "string") for c in schema.columns]
    with pytest.raises(ConfigError, match="column 'user-id' is not a valid Avro field name"):
        avro_from_columns(Schema((Column("user-id"),)), where="out")


def test_rows_to_records_to_rows_round_trip() -> None:
    schema = Schema((Column("id"), Column("n", "long"), Column("t", "timestamp"), Column("j", "json"), Column("ok", "boolean")))
    rows = [["a", 1, T0, {"k": [1, "two"]}, True], ["b", None, None, None, None], ["c", -(1 << 63), T0.astimezone(timezone(timedelta(hours=2))), [1], False]]
    avro = avro_from_columns(schema)

    records, bad = record_converter(schema)([list(r) for r in rows])
    assert bad == []
    assert records[0] == {"id": "a", "n": 1, "t": T0, "j": '{"k":[1,"two"]}', "ok": True}
    back, positions, bad = RowConverter(
        [Column("id"), Column("n", "long"), Column("t", "timestamp"), Column("j", "json"), Column("ok", "boolean")],
        avro,
        "here",
    )(fastavro_round_trip(avro, records))
    assert bad == [] and positions == [0, 1, 2]
    assert back[0] == ["a", 1, T0, '{"k":[1,"two"]}', True]  # a json column comes back as the text the string field holds
    assert back[2][2] == T0 and back[2][2].tzinfo is not None
    assert back[1] == ["b", None, None, None, None]


def fastavro_round_trip(schema: dict[str, Any], records: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return list(fastavro.reader(io.BytesIO(ocf([r for r in records if r is not None], schema))))


def test_record_converter_checks_the_columns_against_the_schema_once() -> None:
    schema = Schema((Column("user_id"), Column("visits", "long"), Column("extra")))
    with pytest.raises(ConfigError, match=r"out\.avsc: column 'extra' is not a field of the Avro schema .*ignore_columns"):
        record_converter(schema, AUDIENCE, where="out.avsc")
    with pytest.raises(ConfigError, match=r"requires fields 'opted_in', 'updated_at', 'tags' \(not nullable, no default\)"):
        record_converter(schema, AUDIENCE, indexes=[0, 1], where="out.avsc")
    typed = Schema((Column("user_id", "boolean"),))
    avro = {"type": "record", "name": "R", "fields": [{"name": "user_id", "type": "long"}]}
    with pytest.raises(ConfigError, match=r"column 'user_id' \(boolean\) cannot be written as the Avro field of type \"long\""):
        record_converter(typed, avro, where="out.avsc")


def test_record_converter_rejects_a_long_out_of_an_avro_int_as_a_row() -> None:
    schema = Schema((Column("n", "long"),))
    avro = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}

    records, bad = record_converter(schema, avro)([[1], [1 << 40], [None]])

    assert records == [{"n": 1}, None, {"n": None}]
    assert bad == [(1, "column 'n' (long): cannot write 1099511627776 as Avro: 1099511627776 is out of the range of an Avro int")]


def test_row_converter_reports_a_schema_that_lacks_a_column_or_cannot_give_its_type() -> None:
    with pytest.raises(DataError, match=r"s3://b/k\.avro: the Avro schema has no field 'nope' \(its fields: user_id, "):
        RowConverter([Column("nope")], AUDIENCE, "s3://b/k.avro")
    with pytest.raises(DataError, match=r"column 'tags' \(long\) cannot be read from the Avro field .*declare the column as json"):
        RowConverter([Column("tags", "long")], AUDIENCE, "s3://b/k.avro")


def test_row_converter_turns_bytes_and_decimals_into_text() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "raw", "type": "bytes"},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "nested", "type": {"type": "map", "values": "bytes"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        ],
    }
    the_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    records = fastavro_round_trip(schema, [{"raw": b"\x00\xff", "amount": Decimal("12.34"), "nested": {"k": b"hi"}, "day": date(2024, 1, 2), "id": the_id}])

    rows, _, bad = RowConverter(columns_from_avro(schema), schema, "here")(records)

    assert bad == []
    assert rows == [["AP8=", "12.34", {"k": "aGk="}, "2024-01-02", str(the_id)]]


# ---------------------------------------------------------------- the parser, end to end


def run_avro(tmp_path: Path, files: dict[str, bytes], parser: dict[str, Any], **exec_: Any) -> Any:
    """`pipelines run` of a file input with the avro parser into a jsonl file; (result, rows, errors)."""
    (tmp_path / "in").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (tmp_path / "in" / name).write_bytes(data)
    config = {
        "in": {"type": "file", "path_prefix": f"{tmp_path / 'in'}/", "parser": {"type": "avro", **parser}},
        "out": {"type": "file", "path_prefix": str(tmp_path / "out" / "rows"), "file_ext": "jsonl"},
        "exec": {"error_output": f"{tmp_path / 'errors'}/", "work_dir": str(tmp_path / "work"), **exec_},
    }
    path = tmp_path / "job.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", str(path), "--job-id", "job-1"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    out = sorted((tmp_path / "out").rglob("*.jsonl"))  # wherever the file output puts its files
    rows = [json.loads(line) for f in out for line in f.read_text().splitlines()]
    error_files = sorted((tmp_path / "errors").glob("*.jsonl")) if (tmp_path / "errors").exists() else []
    errors = [json.loads(line) for f in error_files for line in f.read_text().splitlines()]
    return result, rows, errors


def expected_row(m: dict[str, Any]) -> dict[str, Any]:
    return {**m, "updated_at": iso(m["updated_at"]), "seen_at": iso(m["seen_at"])}


@pytest.mark.parametrize("codec", ["null", "deflate", "zstandard", "bzip2", "xz"])
def test_parser_reads_every_codec_with_columns_from_the_reader_schema(tmp_path: Path, codec: str) -> None:
    data = members(2500)
    files = {"a.avro": ocf(data[:1200], codec=codec, block_size=2000), "b.avro": ocf(data[1200:], codec=codec)}

    result, rows, errors = run_avro(tmp_path, files, {"avsc": json.dumps(AUDIENCE)}, batch_rows=500)

    assert result.exit_code == 0, result.stderr
    assert errors == []
    assert rows == [expected_row(m) for m in data]
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["rows_read"], summary["rows_written"], summary["objects"]) == (2500, 2500, 2)


def test_parser_picks_and_converts_declared_columns(tmp_path: Path) -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "n_text", "type": ["null", "string"]},
            {"name": "visits", "type": "int"},
            {"name": "when_text", "type": "string"},
            {"name": "flag_text", "type": "string"},
            {"name": "unused", "type": {"type": "map", "values": "long"}},
        ],
    }
    records = [
        {"id": "a", "n_text": "12", "visits": 3, "when_text": "2024-01-02T03:04:05Z", "flag_text": "yes", "unused": {}},
        {"id": "b", "n_text": None, "visits": 4, "when_text": "2024-01-02 03:04:05+02:00", "flag_text": "0", "unused": {"x": 1}},
    ]
    columns = [
        {"name": "visits", "type": "double"},
        {"name": "id"},
        {"name": "n_text", "type": "long"},
        {"name": "when_text", "type": "timestamp"},
        {"name": "flag_text", "type": "boolean"},
    ]

    result, rows, errors = run_avro(tmp_path, {"x.avro": ocf(records, schema)}, {"columns": columns})

    assert result.exit_code == 0, result.stderr
    assert errors == []
    assert rows == [
        {"visits": 3.0, "id": "a", "n_text": 12, "when_text": "2024-01-02T03:04:05+00:00", "flag_text": True},
        {"visits": 4.0, "id": "b", "n_text": None, "when_text": "2024-01-02T03:04:05+02:00", "flag_text": False},
    ]


def test_parser_values_that_do_not_convert_are_bad_rows_numbered_by_record(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": ["null", "string"]}]}
    records = [{"id": f"r{i}", "n": str(i) if i not in (3, 7) else "many"} for i in range(1, 11)]

    result, rows, errors = run_avro(
        tmp_path, {"x.avro": ocf(records, schema, block_size=30)}, {"columns": [{"name": "id"}, {"name": "n", "type": "long"}]},
        max_errors=5, batch_rows=4,
    )

    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(1, 11) if i not in (3, 7)]
    source = str(tmp_path / "in" / "x.avro")
    assert [(e["source"], e["line"]) for e in errors] == [(source, 3), (source, 7)]
    assert errors[0]["reason"].startswith("column 'n' (long): cannot convert 'many'")
    assert json.loads(errors[0]["raw"]) == {"id": "r3", "n": "many"}


def test_parser_reads_files_through_the_reader_schema(tmp_path: Path) -> None:
    old = {"type": "record", "name": "Member", "namespace": "com.example", "fields": [{"name": "user_id", "type": "string"}]}
    reader = {**old, "fields": [*old["fields"], {"name": "segment", "type": "long", "default": 7}]}
    avsc = tmp_path / "member.avsc"
    avsc.write_text(json.dumps(reader))

    result, rows, _ = run_avro(tmp_path, {"old.avro": ocf([{"user_id": "u1"}], old)}, {"avsc_file": str(avsc)})

    assert result.exit_code == 0, result.stderr
    assert rows == [{"user_id": "u1", "segment": 7}]


def test_parser_file_without_a_declared_column_is_a_data_error(tmp_path: Path) -> None:
    result, rows, _ = run_avro(tmp_path, {"x.avro": ocf(members(3))}, {"columns": [{"name": "user_id"}, {"name": "segment", "type": "long"}]})

    assert result.exit_code == EXIT_RUN_FAILED
    assert f"error: {tmp_path / 'in' / 'x.avro'}: the Avro schema has no field 'segment'" in result.stderr
    assert rows == []


@pytest.mark.parametrize("codec", ["null", "deflate", "zstandard"])
def test_parser_truncated_file_is_an_error_naming_the_file_and_the_block(tmp_path: Path, codec: str) -> None:
    data = ocf(members(3000), codec=codec, block_size=4000)
    cut = data[: len(data) * 2 // 3]

    result, _, _ = run_avro(tmp_path, {"cut.avro": cut}, {"avsc": AUDIENCE})

    assert result.exit_code == EXIT_RUN_FAILED, result.stdout
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: {tmp_path / 'in' / 'cut.avro'}: block ")
    assert "is truncated or corrupt" in line and "after record" in line
    assert "Traceback" not in result.stderr


def test_parser_file_the_reader_schema_cannot_read_is_a_clear_error(tmp_path: Path) -> None:
    other = {"type": "record", "name": "Other", "fields": [{"name": "user_id", "type": "long"}]}

    result, _, _ = run_avro(tmp_path, {"x.avro": ocf(members(2))}, {"avsc": other})

    assert result.exit_code == EXIT_RUN_FAILED
    assert f"error: {tmp_path / 'in' / 'x.avro'}: the file's schema cannot be read through the reader schema (avsc): SchemaResolutionError" in result.stderr


def test_parser_codec_without_its_library_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import fastavro._write

    if importlib.util.find_spec("lz4") is not None:
        pytest.skip("lz4 is installed here: fastavro reads the codec")
    monkeypatch.setitem(fastavro._write.BLOCK_WRITERS, "lz4", fastavro._write.BLOCK_WRITERS["null"])  # a file that says lz4
    data = ocf(members(2), codec="lz4")
    monkeypatch.undo()

    result, _, _ = run_avro(tmp_path, {"x.avro": data}, {"avsc": AUDIENCE})

    assert result.exit_code == EXIT_RUN_FAILED
    assert f"error: {tmp_path / 'in' / 'x.avro'}: cannot read the file's codec 'lz4': lz4 codec is supported but you need to install" in result.stderr


def test_parser_not_an_avro_file_is_a_clear_error(tmp_path: Path) -> None:
    result, _, _ = run_avro(tmp_path, {"x.avro": b"user_id,score\nu1,2\n"}, {"avsc": AUDIENCE})

    assert result.exit_code == EXIT_RUN_FAILED
    assert f"error: {tmp_path / 'in' / 'x.avro'}: not an Avro object container file (cannot read its header" in result.stderr


def test_parser_needs_columns_or_a_reader_schema(tmp_path: Path) -> None:
    path = tmp_path / "job.yml"
    config = {"in": {"type": "file", "path_prefix": "/tmp/never-read/", "parser": {"type": "avro"}}, "out": {"type": "stdout"}}
    path.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(cli, ["validate", str(path)])

    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.startswith(f"error: {path}: in.parser: declare the columns (columns: [{{name, type}}]) or give a reader schema")

    config["in"]["parser"] = {"type": "avro", "avsc": {"type": "array", "items": "long"}}
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == EXIT_CONFIG
    assert "in.parser.avsc: expected an Avro record schema" in result.stderr

    config["in"]["parser"] = {"type": "avro", "avsc_file": str(tmp_path / "missing.avsc")}
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == EXIT_CONFIG
    assert "in.parser.avsc_file: cannot read the Avro schema file" in result.stderr


# ---------------------------------------------------------------- the wire format


class FakeRegistry:
    def __init__(self, schemas: dict[int, dict[str, Any]]) -> None:
        self.schemas = schemas
        self.asked: list[int] = []

    def schema(self, schema_id: int) -> dict[str, Any]:
        self.asked.append(schema_id)
        if schema_id not in self.schemas:
            raise SchemaNotFound(f"no schema id {schema_id}", where="schema registry fake")
        return self.schemas[schema_id]


SMALL = {"type": "record", "name": "Small", "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": ["null", "long"], "default": None}]}


def test_serializer_writes_magic_byte_id_and_avro_binary() -> None:
    record = {"id": "user-1", "n": 300}
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, fastavro.parse_schema(SMALL), record)

    value = AvroSerializer(SMALL, 258).encode(record)

    assert value[:5] == b"\x00\x00\x00\x01\x02"  # magic 0, id 258 big-endian
    assert value == b"\x00" + (258).to_bytes(4, "big") + payload.getvalue()
    # by hand: string "user-1" (length 6, zigzag 12), union branch 1 (zigzag 2), long 300 (zigzag 600: varint d8 04)
    assert value[5:] == b"\x0cuser-1" + b"\x02" + b"\xd8\x04"


def test_serializer_batch_keeps_good_values_and_names_the_bad_ones() -> None:
    values, bad = AvroSerializer(SMALL, 7).encode_batch([{"id": "a"}, {"id": "b", "n": "not a long"}, None, {"id": "c", "n": 1}])

    assert values[0] == AvroSerializer(SMALL, 7).encode({"id": "a"})
    assert values[1] is None and values[2] is None
    assert values[3] == AvroSerializer(SMALL, 7).encode({"id": "c", "n": 1})
    assert [p for p, _ in bad] == [1] and bad[0][1].startswith("does not fit the Avro schema")


def test_deserializer_decodes_a_hand_built_value_and_caches_the_schema() -> None:
    registry = FakeRegistry({9: SMALL})
    deserializer = AvroDeserializer(registry)
    value = b"\x00\x00\x00\x00\x09" + b"\x06abc" + b"\x00"  # id 9; "abc"; null branch

    assert deserializer.decode(value) == {"id": "abc", "n": None}
    assert deserializer.decode(value[:-1] + b"\x02\x03") == {"id": "abc", "n": -2}
    assert registry.asked == [9]
    assert schema_id_of(value) == 9


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "at least 5 bytes, this one 0"),
        (b"\x00\x00\x00", "at least 5 bytes, this one 3"),
        (b'{"id": "x"}', "it starts with byte 123, not the magic byte 0"),
        (b"\x00\x00\x00\x00\x09\x06ab", "cannot decode the Avro value with schema id 9"),
        (b"\x00\x00\x00\x00\x09\x06abc\x00\x00", "1 byte(s) after the record"),
    ],
)
def test_deserializer_bad_value_is_a_wire_format_error(value: bytes, message: str) -> None:
    deserializer = AvroDeserializer(FakeRegistry({9: SMALL}))
    with pytest.raises(WireFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        deserializer.decode(value)
    assert isinstance(WireFormatError("x"), ValueError)  # callers that catch ValueError make it a row error


def test_row_decoder_converts_values_of_several_writer_schemas() -> None:
    newer = {**SMALL, "fields": [*SMALL["fields"], {"name": "extra", "type": "string", "default": ""}]}
    deserializer = AvroDeserializer(FakeRegistry({1: SMALL, 2: newer}))
    values = [
        AvroSerializer(SMALL, 1).encode({"id": "a", "n": 1}),
        AvroSerializer(newer, 2).encode({"id": "b", "n": None, "extra": "x"}),
        b"garbage",
        AvroSerializer(SMALL, 1).encode({"id": "c", "n": 3}),
    ]

    rows, positions, bad = AvroRowDecoder(deserializer, [Column("n", "double"), Column("id")], "kafka t")(values)

    assert rows == [[1.0, "a"], [None, "b"], [3.0, "c"]]
    assert positions == [0, 1, 3]
    assert [p for p, _ in bad] == [2]


# ---------------------------------------------------------------- the registry client, against Apicurio


@pytest.fixture
def registry(stack: Any) -> SchemaRegistry:
    assert stack.schema_registry_url, "the stack runs a schema registry"
    return SchemaRegistry(stack.schema_registry_url)


def test_registry_register_latest_and_by_id(registry: SchemaRegistry) -> None:
    subject = f"test-{uuid.uuid4().hex[:8]}-value"

    first = registry.register(subject, SMALL)
    again = registry.register(subject, json.loads(json.dumps(SMALL, indent=3)))  # same schema, other spacing
    assert again == first
    assert registry.check(subject, SMALL) == first
    assert registry.latest(subject) == (first, SMALL)
    assert SchemaRegistry(registry.url).schema(first) == SMALL

    newer = {**SMALL, "fields": [*SMALL["fields"], {"name": "extra", "type": ["null", "string"], "default": None}]}
    second = registry.register(subject, newer)
    assert second != first
    assert registry.latest(subject) == (second, newer)
    assert registry.check(subject, {**SMALL, "name": "Other"}) is None
    assert subject in registry.subjects()


def test_registry_unknown_subject_and_id_are_not_found_errors_naming_the_registry(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaNotFound, match=rf"schema registry {registry.url}: GET /subjects/no-such-subject/versions/latest: HTTP 404"):
        registry.latest("no-such-subject")
    with pytest.raises(SchemaNotFound, match="GET /schemas/ids/987654: HTTP 404"):
        registry.schema(987654)
    with pytest.raises(RunError, match="HTTP 422"):
        registry.register("bad-schema", {"type": "record", "name": "R"})  # no fields: Apicurio cannot tell its type


def test_registry_unreachable_is_transient_and_never_shows_credentials() -> None:
    url = f"http://someone:hunter2-secret@127.0.0.1:{free_port()}/apis/ccompat/v7"

    with pytest.raises(TransientRunError) as caught:
        SchemaRegistry(url, timeout=2).latest("x")
    with pytest.raises(TransientRunError) as caught_too:
        SchemaRegistry(url.replace("someone:hunter2-secret@", ""), user_info="someone:hunter2-secret", timeout=2).schema(1)

    for exc in (caught.value, caught_too.value):
        assert "cannot reach the schema registry" in str(exc)
        assert "hunter2" not in str(exc) and "someone" not in str(exc)
        assert exc.where == f"schema registry http://127.0.0.1:{url.split(':')[-1].split('/')[0]}/apis/ccompat/v7"


# ---------------------------------------------------------------- the Kafka output, against the broker and Apicurio


COLUMNS = [
    {"name": "user_id"},
    {"name": "score", "type": "double"},
    {"name": "visits", "type": "long"},
    {"name": "opted_in", "type": "boolean"},
    {"name": "updated_at", "type": "timestamp"},
    {"name": "attributes", "type": "json"},
]


def input_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "user_id": f"user-{i}",
            "score": None if i % 4 == 0 else i * 1.5,
            "visits": i,
            "opted_in": i % 2 == 0,
            "updated_at": iso(T0 + timedelta(milliseconds=i)),
            "attributes": {"tier": i % 3, "tags": ["x"]} if i % 5 else None,
        }
        for i in range(n)
    ]


def kafka_avro_config(tmp_path: Path, stack: Any, topic: str, rows: list[dict[str, Any]], **out: Any) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "in": {"type": "file", "path_prefix": f"{tmp_path / 'in'}/", "parser": {"type": "jsonl", "columns": COLUMNS}},
        "out": {
            "type": "kafka",
            "brokers": [stack.kafka_bootstrap],
            "topic": topic,
            "key_column_name": "user_id",
            "serialize_format": "avro",
            "schema_registry_url": stack.schema_registry_url,
            **out,
        },
        "exec": {"error_output": f"{tmp_path / 'errors'}/", "work_dir": str(tmp_path / "work"), "max_errors": 10},
    }
    path = tmp_path / "job.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_kafka_output_avro_with_a_schema_made_from_the_columns(stack: Any, topic: str, tmp_path: Path) -> None:
    rows = input_rows(300)
    path = kafka_avro_config(tmp_path, stack, topic, rows)

    result = run_cli("run", str(path), "--job-id", "avro-1")

    assert result.returncode == 0, result.stderr
    assert summary_of(result)["rows_written"] == 300
    registry = SchemaRegistry(stack.schema_registry_url)
    schema_id, registered = registry.latest(f"{topic}-value")
    assert registered == avro_from_columns(Schema(tuple(Column(c["name"], c.get("type", "string")) for c in COLUMNS)))
    records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len(markers) == 6 and len(records) == 300
    deserializer = AvroDeserializer(registry)
    got = {}
    for msg in records:
        value = msg.value()
        assert value[0] == 0 and schema_id_of(value) == schema_id
        got[msg.key().decode()] = deserializer.decode(value)
    expected = {
        r["user_id"]: {
            **r,
            "updated_at": T0 + timedelta(milliseconds=int(r["user_id"].split("-")[1])),
            "attributes": None if r["attributes"] is None else json.dumps(r["attributes"], separators=(",", ":")),
        }
        for r in rows
    }
    assert got == expected


def test_kafka_output_avro_with_an_avsc_leaves_out_ignored_columns_and_rejects_rows_that_do_not_fit(
    stack: Any, topic: str, tmp_path: Path
) -> None:
    avsc = {
        "type": "record",
        "name": "Member",
        "namespace": "com.example",
        "fields": [
            {"name": "visits", "type": "int"},
            {"name": "opted_in", "type": "boolean"},
            {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "segment", "type": "long", "default": 42},
            {"name": "score", "type": ["null", "float"], "default": None},
        ],
    }
    rows = input_rows(20)
    rows[3]["visits"] = 1 << 40  # no Avro int holds it: a bad row, not a wrong value
    path = kafka_avro_config(tmp_path, stack, topic, rows, avsc=avsc, ignore_columns=["user_id", "attributes"], value_subject=f"{topic}-members")

    result = run_cli("run", str(path), "--job-id", "avro-2")

    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["rows_written"], summary["rows_skipped"]) == (19, 1)
    (error,) = [json.loads(line) for f in (tmp_path / "errors").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert error["line"] == 4 and "out of the range of an Avro int" in error["reason"]
    registry = SchemaRegistry(stack.schema_registry_url)
    schema_id, registered = registry.latest(f"{topic}-members")
    assert registered == avsc
    records, _ = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    decoded = {msg.key().decode(): AvroDeserializer(registry).decode(msg.value()) for msg in records}
    assert sorted(decoded) == sorted(r["user_id"] for i, r in enumerate(rows) if i != 3)
    assert decoded["user-5"] == {"visits": 5, "opted_in": False, "updated_at": T0 + timedelta(milliseconds=5), "segment": 42, "score": 7.5}


def test_kafka_output_avro_refuses_an_unregistered_schema_without_auto_register(stack: Any, topic: str, tmp_path: Path) -> None:
    path = kafka_avro_config(tmp_path, stack, topic, input_rows(3), auto_register=False)

    result = run_cli("run", str(path), "--job-id", "avro-3")

    assert result.returncode == EXIT_RUN_FAILED, result.stderr
    assert f"no schema is registered under subject '{topic}-value'" in result.stderr
    assert consume_all(stack.kafka_bootstrap, topic) == []


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ({"serialize_format": "avro"}, "out: serialize_format avro needs schema_registry_url"),
        ({"avsc": SMALL}, "out: avsc: only for serialize_format: avro"),
        (
            {"serialize_format": "avro", "schema_registry_url": "http://127.0.0.1:1", "avsc": {**SMALL, "fields": [{"name": "must", "type": "long"}]}},
            "out.avsc: columns 'user_id', 'score' are not fields of the Avro schema (fields: must)",
        ),
        (
            {"serialize_format": "avro", "schema_registry_url": "http://127.0.0.1:1", "ignore_columns": ["score"],
             "avsc": {**SMALL, "fields": [{"name": "user_id", "type": "string"}, {"name": "must", "type": "long"}]}},
            "out.avsc: the Avro schema requires field 'must' (not nullable, no default)",
        ),
    ],
)
def test_kafka_output_avro_options_are_checked_with_the_config(tmp_path: Path, out: dict[str, Any], expected: str) -> None:
    config = {
        "in": {"type": "file", "path_prefix": "/tmp/never-read/", "parser": {"type": "jsonl", "columns": [{"name": "user_id"}, {"name": "score", "type": "double"}]}},
        "out": {"type": "kafka", "brokers": ["127.0.0.1:1"], "topic": "t", **out},
    }
    path = tmp_path / "job.yml"
    path.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(cli, ["validate", str(path)])

    assert result.exit_code == EXIT_CONFIG, result.output
    assert result.stderr.startswith(f"error: {path}: {expected}"), result.stderr


# ---------------------------------------------------------------- the schema registry in the local stack


def test_stack_env_exports_the_schema_registry_url() -> None:
    from pipelines.devstack.stack import StackInfo

    info = StackInfo("127.0.0.1:1", "http://127.0.0.1:2", 1, 2, Path("/nonexistent"))
    with_registry = StackInfo("127.0.0.1:1", "http://127.0.0.1:2", 1, 2, Path("/nonexistent"), schema_registry_url="http://127.0.0.1:3/apis/ccompat/v7")

    assert "SCHEMA_REGISTRY_URL" not in info.env()
    assert with_registry.env()["SCHEMA_REGISTRY_URL"] == "http://127.0.0.1:3/apis/ccompat/v7"
    assert "export SCHEMA_REGISTRY_URL=http://127.0.0.1:3/apis/ccompat/v7" in with_registry.shell_lines().splitlines()


def test_stack_registry_port_in_use_names_its_option(tmp_path: Path) -> None:
    import socket

    from conftest import free_ports

    from pipelines.devstack import stack

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = stack.StackConfig(tmp_path, *free_ports(3), registry_port=port)
        with pytest.raises(stack.StackError, match=rf"port {port} on 127\.0\.0\.1 is already in use \(schema registry\).*--registry-port"):
            stack.up(config, log=lambda message: None)


def test_stack_fixture_runs_the_registry_and_reports_it(stack: Any) -> None:
    from pipelines.devstack.stack import status

    if not hasattr(stack, "state_dir"):
        pytest.skip("a reused stack (PIPELINES_TEST_REUSE_STACK=1)")
    assert stack.env()["SCHEMA_REGISTRY_URL"] == stack.schema_registry_url
    assert stack.schema_registry_url.startswith("http://127.0.0.1:") and stack.schema_registry_url.endswith("/apis/ccompat/v7")
    report = status(stack.state_dir)["schema-registry"]
    assert report["running"] and report["answers"] and report["pid"] == stack.schema_registry_pid


def test_missing_maven_for_the_registry_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from pipelines.devstack import stack

    java = shutil.which("java")
    assert java, "java is on the machine"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").symlink_to(java)
    monkeypatch.setenv("PIPELINES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    with pytest.raises(stack.StackError, match=r"Maven \(mvn\) is required to download the schema registry"):
        stack.ensure_schema_registry(log=lambda message: None)
