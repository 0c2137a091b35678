"""Avro values made in C (pipelines/native/_avrowrite.c, pipelines.native.avro_values) against the
Python path (record_converter + fastavro): the same bytes for every field type it plans, a stop at
every row it leaves, and through the Kafka output, the same topic with the compiled loops on and off
(real broker and schema registry)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import consume_all, create_topic, rows_and_markers, run_cli, split_records, summary_of

from pipelines.engine.avro.schemas import avro_from_columns
from pipelines.engine.avro.writing import record_converter
from pipelines.engine.records import Column, Schema
from pipelines.kafka.avro_wire import AvroSerializer, header
from pipelines.native.avro_values import AvroRecords, avro_plan
from pipelines.native.compiled import compiled

UTC = timezone.utc
pytestmark = pytest.mark.skipif(compiled("pipelines.native._avrowrite", "avro_records") is None, reason="the extension is not built")

SCHEMA = Schema(
    (
        Column("user_id", "string"),
        Column("country", "string"),
        Column("visits", "long"),
        Column("score", "double"),
        Column("opted_in", "boolean"),
        Column("updated_at", "timestamp"),
    )
)
AVSC = {
    "type": "record",
    "name": "Member",
    "fields": [
        {"name": "country", "type": ["string", "null"]},  # null second
        {"name": "visits", "type": "int"},
        {"name": "score", "type": ["null", "float"], "default": None},
        {"name": "opted_in", "type": "boolean"},
        {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "absent", "type": ["null", "long"], "default": None},
        {"name": "user_id", "type": "string"},
    ],
}


def python_values(schema: Schema, avsc: dict[str, Any], rows: list[list[Any]]) -> list[bytes | None]:
    to_records = record_converter(schema, avsc)
    records, bad = to_records(rows)
    values, unfit = AvroSerializer(avsc, 7).encode_batch(records)
    return values


def compiled_records(schema: Schema, avsc: dict[str, Any], rows: list[list[Any]]) -> tuple[int, list[tuple[bytes, bytes]]]:
    encoder = AvroRecords.choose(avsc, header(7), 0, schema, range(len(schema)))
    assert encoder is not None, "the schema has a plan"
    stop, count, data = encoder(rows, 0)
    records = split_records(data)
    assert len(records) == count
    return stop, records


def audience_rows() -> list[list[Any]]:
    t = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    return [
        ["u1", "DE", 0, 0.0, True, t],
        ["u2", None, -1, -0.5, False, datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC)],
        ["ü-ß-日本", "", (1 << 31) - 1, 1e300, True, datetime(1, 1, 1, tzinfo=UTC)],
        ["u4", "x" * 300, -(1 << 31), float("nan"), False, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
        ["u5", "\x00\n\"", 5, float("-inf"), True, t - timedelta(days=20000, microseconds=1)],
        ["u6", None, 6, None, None, None],
    ]


def test_values_from_the_columns_schema_are_the_python_paths_bytes() -> None:
    avsc = avro_from_columns(SCHEMA)
    rows = audience_rows()
    rows[5][2] = 1 << 62  # a long far past 32 bits
    stop, records = compiled_records(SCHEMA, avsc, rows)
    assert stop == len(rows)
    assert [key for key, _ in records] == [r[0].encode() for r in rows]
    assert [value for _, value in records] == python_values(SCHEMA, avsc, rows)


def test_values_of_a_hand_written_schema_are_the_python_paths_bytes() -> None:
    rows = [r for r in audience_rows() if r[4] is not None]  # opted_in and updated_at are not nullable here
    rows[1][3], rows[2][3] = 3.4e38, 1.1  # a float's largest; 1.1 rounds
    stop, records = compiled_records(SCHEMA, AVSC, rows)
    assert stop == len(rows)
    assert [value for _, value in records] == python_values(SCHEMA, AVSC, rows)


@pytest.mark.parametrize(
    "column, value",
    [
        (0, ""),  # an empty key: the Python path sends it to the error output
        (0, None),
        (2, 1 << 31),  # past an Avro int
        (3, 3.5e38),  # past an Avro float
        (4, None),  # null in a field that is not nullable
        (5, datetime(2024, 1, 1)),  # naive
        (5, datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
        (1, "\ud800"),  # a lone surrogate: no UTF-8
        (2, True),  # a bool is not a long column's value
        (3, 1),
    ],
)
def test_it_stops_at_a_row_the_python_path_must_handle(column: int, value: Any) -> None:
    rows = [r for r in audience_rows() if r[4] is not None]
    rows[2][column] = value
    stop, records = compiled_records(SCHEMA, AVSC, rows)
    assert stop == 2 and len(records) == 2
    assert [v for _, v in records] == python_values(SCHEMA, AVSC, rows[:2])


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "array", "items": "string"},
        ["null", "string", "long"],
        {"type": "string", "logicalType": "uuid"},
        {"type": "int", "logicalType": "date"},
    ],
)
def test_fields_it_does_not_write_leave_the_schema_without_a_plan(field_type: Any) -> None:
    avsc = {"type": "record", "name": "R", "fields": [{"name": "country", "type": field_type}]}
    assert avro_plan(avsc, {"country": (1, "string")}) is None


def test_a_missing_field_is_planned_only_with_a_null_default() -> None:
    fields = [{"name": "user_id", "type": "string"}]
    with_null = {"type": "record", "name": "R", "fields": fields + [{"name": "n", "type": ["null", "long"], "default": None}]}
    with_value = {"type": "record", "name": "R", "fields": fields + [{"name": "n", "type": "long", "default": 42}]}
    assert avro_plan(with_null, {"user_id": (0, "string")}) == ((0, 0, -1, -1), (-1, 1, 0, 1))
    assert avro_plan(with_value, {"user_id": (0, "string")}) is None


def test_a_json_column_or_a_key_that_is_not_a_string_leaves_it_to_python() -> None:
    schema = Schema((Column("user_id", "string"), Column("attributes", "json")))
    assert AvroRecords.choose(avro_from_columns(schema), b"", 0, schema, [0, 1]) is None
    keyed_by_long = Schema((Column("id", "long"), Column("country", "string")))
    assert AvroRecords.choose(avro_from_columns(keyed_by_long), b"", 0, keyed_by_long, [0, 1]) is None


# ---------------------------------------------------------------- through the Kafka output

COLUMNS = [
    {"name": "user_id", "type": "string"},
    {"name": "country", "type": "string"},
    {"name": "visits", "type": "long"},
    {"name": "score", "type": "double"},
    {"name": "opted_in", "type": "boolean"},
    {"name": "updated_at", "type": "timestamp"},
]


def jsonl_rows(n: int) -> list[dict[str, Any]]:
    t0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    rows = [
        {
            "user_id": f"user-{i}",
            "country": None if i % 7 == 0 else "DE",
            "visits": i,
            "score": None if i % 4 == 0 else i * 1.5,
            "opted_in": i % 2 == 0,
            "updated_at": (t0 + timedelta(milliseconds=i)).isoformat(),
        }
        for i in range(n)
    ]
    rows[10]["visits"] = 1 << 40  # past an Avro int: the Python path's error, in its place
    rows[20]["user_id"] = ""  # an empty key
    return rows


def run_avro_import(
    folder: Path, stack: Any, topic: str, native: str, parser: dict[str, Any], avsc: dict[str, Any], filters: list[Any] = ()
) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
    """An import of the files in folder/in by `parser` (and `filters`) into `topic` as Avro values of
    `avsc`, with the compiled loops on or off: (summary, records in partition and offset order, error rows)."""
    config = {
        "in": {"type": "file", "path_prefix": f"{folder / 'in'}/", "parser": parser},
        "filters": list(filters),
        "out": {
            "type": "kafka",
            "brokers": [stack.kafka_bootstrap],
            "topic": topic,
            "key_column_name": "user_id",
            "serialize_format": "avro",
            "schema_registry_url": stack.schema_registry_url,
            "avsc": avsc,
        },
        "exec": {"error_output": f"{folder / 'errors'}/", "work_dir": str(folder / "work"), "max_errors": 10},
    }
    (folder / "job.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_cli("run", str(folder / "job.yml"), "--job-id", f"avro-{native}", env={"PIPELINES_NATIVE": native})
    assert result.returncode == 0, result.stderr
    records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len(markers) == 6
    errors = [json.loads(line) for f in (folder / "errors").glob("*.jsonl") for line in f.read_text().splitlines()]
    return summary_of(result), sorted(records, key=lambda m: (m.partition(), m.offset())), errors


def import_avro(tmp_path: Path, stack: Any, topic: str, native: str, avsc: dict[str, Any]) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
    folder = tmp_path / native
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in jsonl_rows(3000)))
    return run_avro_import(folder, stack, topic, native, {"type": "jsonl", "columns": COLUMNS}, avsc)


def test_the_kafka_output_writes_the_same_topic_with_and_without_the_compiled_loops(stack: Any, tmp_path: Path) -> None:
    avsc = {**AVSC, "fields": [f for f in AVSC["fields"] if f["name"] != "opted_in"] + [{"name": "opted_in", "type": ["null", "boolean"]}]}
    got = {}
    for native in ("1", "0"):
        topic = f"avro-values-{native}-{uuid.uuid4().hex[:6]}"
        create_topic(stack.kafka_bootstrap, topic, 6)
        summary, records, errors = import_avro(tmp_path, stack, topic, native, avsc)
        assert (summary["rows_written"], summary["rows_skipped"]) == (2998, 2)
        assert sorted((e["line"], "Avro int" in e["reason"] or "empty" in e["reason"]) for e in errors) == [(11, True), (21, True)]
        got[native] = [(m.partition(), m.key(), m.value()[5:]) for m in records]
    assert got["1"] == got["0"]


# ---------------------------------------------------------------- CSV text straight to Avro records (pipelines.native.fused)

CSV_COLUMNS = [
    {"name": "user_id", "type": "string"},
    {"name": "country", "type": "string"},
    {"name": "visits", "type": "long"},
    {"name": "score", "type": "double"},
    {"name": "opted_in", "type": "boolean"},
    {"name": "updated_at", "type": "timestamp"},
]
CSV_AVSC = {
    "type": "record",
    "name": "Member",
    "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "country", "type": ["null", "string"], "default": None},
        {"name": "visits", "type": ["int", "null"]},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "opted_in", "type": ["null", "boolean"], "default": None},
        {"name": "updated_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": None},
        {"name": "segment_id", "type": ["null", "long"], "default": None},
        {"name": "absent", "type": ["null", "string"], "default": None},
    ],
}


def csv_lines(n: int) -> list[str]:
    lines = ["user_id,country,visits,score,opted_in,updated_at"]
    for i in range(n):
        score = "" if i % 5 == 0 else ("-0.000012345678901234567" if i % 11 == 0 else f"{i * 1.25}")
        stamp = "" if i % 13 == 0 else f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:00:{i % 60:02d}{'Z' if i % 2 else ''}"
        lines.append(f"u{i},{'' if i % 7 == 0 else 'DE'},{'' if i % 9 == 0 else i - 500},{score},{'true' if i % 2 else 'false'},{stamp}")
    lines[100] = 'u99x,"quoted, with a comma",1,2.5,true,2024-01-01T00:00:00'  # a quote: the Python path, in its place
    lines[200] = "u199x,DE,99999999999,2.5,true,2024-01-01T00:00:00"  # past an Avro int: an error
    lines[300] = "u299x,DE,1,1e5,true,2024-01-01T00:00:00"  # an exponent: the Python path
    lines[400] = ",DE,1,2.5,true,2024-01-01T00:00:00"  # no user_id: the validate filter's error
    lines[500] = "u499x,DE,1,2.5,yes,2024-01-01T00:00:00.5"  # a word and a fraction the C loop leaves
    return lines


def import_csv_avro(tmp_path: Path, stack: Any, native: str, avsc: dict[str, Any]) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
    folder = tmp_path / native
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "rows.csv").write_text("\n".join(csv_lines(5000)) + "\n")
    topic = f"avro-fused-{native}-{uuid.uuid4().hex[:6]}"
    create_topic(stack.kafka_bootstrap, topic, 6)
    parser = {"type": "csv", "skip_header_lines": 1, "columns": CSV_COLUMNS}
    filters = [
        {"type": "validate", "columns": [{"name": "user_id", "required": True}]},
        {"type": "add_columns", "columns": [{"name": "segment_id", "type": "long", "value": "7"}]},
    ]
    return run_avro_import(folder, stack, topic, native, parser, avsc, filters)


@pytest.mark.parametrize("score_type", ["double", "float"])
def test_csv_to_avro_values_in_c_are_the_python_paths(stack: Any, tmp_path: Path, score_type: str) -> None:
    fields = [{**f, "type": ["null", score_type]} if f["name"] == "score" else f for f in CSV_AVSC["fields"]]
    avsc = {**CSV_AVSC, "fields": fields}
    got = {native: import_csv_avro(tmp_path, stack, native, avsc) for native in ("1", "0")}
    for summary, records, errors in got.values():
        assert (summary["rows_written"], summary["rows_skipped"]) == (4998, 2)
        assert sorted(e["line"] for e in errors) == [201, 401]
    (_, native_records, native_errors), (_, python_records, python_errors) = got["1"], got["0"]
    assert [(m.partition(), m.key(), m.value()[5:]) for m in native_records] == [(m.partition(), m.key(), m.value()[5:]) for m in python_records]
    assert [e["reason"] for e in native_errors] == [e["reason"] for e in python_errors]



# ---------------------------------------------------------------- Avro container files (formatter: avro)


def container_file(rows: list[list[Any]], native: bool, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> bytes:
    """The Avro file the formatter writes for `rows`, in batches of 7, with the compiled loop on or off."""
    from pipelines.native import compiled as compiled_module
    from pipelines.plugins.avro_formatter import AvroFormatter, AvroFormatterSettings

    monkeypatch.setenv("PIPELINES_NATIVE", "1" if native else "0")
    monkeypatch.setattr(compiled_module, "_loaded", {})
    formatter = AvroFormatter(AvroFormatterSettings(**settings), "out.formatter")
    formatter.bind(SCHEMA)
    assert (formatter.blocks is not None) == native
    data = formatter.begin()
    for at in range(0, len(rows), 7):
        data += formatter.rows(rows[at : at + 7])
    return data + formatter.end()


@pytest.mark.parametrize("codec, level", [("null", None), ("deflate", None), ("deflate", 0), ("deflate", 9), ("zstandard", None)])
def test_the_formatter_writes_the_records_fastavro_writes(monkeypatch: pytest.MonkeyPatch, codec: str, level: int | None) -> None:
    import io

    import fastavro

    rows = audience_rows() * 50
    settings = {"codec": codec, "block_bytes": 1024, "codec_compression_level": level}
    files = {native: container_file(rows, native, monkeypatch, **settings) for native in (True, False)}
    read = {native: fastavro.reader(io.BytesIO(data)) for native, data in files.items()}
    assert read[True].writer_schema == read[False].writer_schema
    records = {native: list(reader) for native, reader in read.items()}
    assert len(records[True]) == len(rows)
    assert repr(records[True]) == repr(records[False])  # repr: NaN equals NaN
    blocks = list(fastavro.block_reader(io.BytesIO(files[True])))
    assert len(blocks) > 5 and sum(b.num_records for b in blocks) == len(rows)


def test_the_formatter_writes_a_row_the_compiled_loop_leaves_in_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import fastavro

    from pipelines.engine.errors import DataError

    rows = audience_rows()
    rows[3][5] = datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2)))  # not UTC: fastavro writes it
    data = container_file(rows, True, monkeypatch)
    assert [r["updated_at"] for r in fastavro.reader(io.BytesIO(data))][3] == datetime(2023, 12, 31, 22, tzinfo=UTC)
    avsc = {**AVSC, "fields": [f for f in AVSC["fields"] if f["name"] != "absent"]}
    too_big = [r for r in audience_rows() if r[4] is not None]
    too_big[2][2:4] = [1 << 40, 1.5]
    with pytest.raises(DataError) as raised:
        container_file(too_big, True, monkeypatch, avsc=avsc)
    assert "out of the range of an Avro int" in raised.value.message and raised.value.where == "out.formatter (row 3 of a batch)"
