"""The fused Avro import (pipelines/native/fused_avro.py; block_records in pipelines/native/_avroread.c)
gives exactly what the rows path gives: the avro parser's rows, the validate and add_columns filters,
then the Kafka output's keys and JSON or Avro values. On random container files full of values it
must leave to the rows path (nulls, empty keys, missing required values, values that do not convert
or are written otherwise), the same records in the same order, the same error output and the same
records consumed, with the compiled loops on (fused, and rows only) and off; on an ordinary file,
every block is encoded. Then the same topic from `pipelines run` with and without them."""

from __future__ import annotations

import io
import json
import math
import random
import struct
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
import yaml
from conftest import Errors, consume_all, create_topic, rows_and_markers, run_cli, split_records, summary_of

from pipelines.engine.columns import ColumnSettings
from pipelines.engine.errors import DataError
from pipelines.engine.records import Schema, Source
from pipelines.native.fused import EncodedRecords, record_encoder
from pipelines.plugins.avro_parser import AvroParser, AvroParserSettings
from pipelines.plugins.column_filters import (
    AddColumnsFilter,
    AddColumnsSettings,
    AddedColumn,
)
from pipelines.plugins.kafka_output import KafkaOutput, KafkaOutputSettings
from pipelines.plugins.validate_filter import (
    ColumnRule,
    ValidateFilter,
    ValidateSettings,
)

avroread = pytest.importorskip("pipelines.native._avroread", reason="the C extensions are not built (no C compiler at install)")

NAN, INF = math.nan, math.inf
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
SCHEMA_ID = 7


# ---------------------------------------------------------------- random files and jobs

# Each field of the file: {Avro type: (column type, ordinary values, values out of the ordinary)}.
# A None among the odd values is used only where the type is a union with null.
FLOATS = [1e16, 0.1, -0.0, 1e-5, 2.5e-5, -9.99e-5, 1e-4, 1e-7, 5e-324, 1.7976931348623157e308, 1e22, 123456789012345678.0,
          0.000123, 1e15, 9.2e18, NAN, INF, -INF, None]
FLOAT32 = [0.1, -0.0, 1e16, 3.4e38, 1e-45, 2.5e-5, 16777217.0, NAN, INF, None]
TIMES = [T0.replace(microsecond=0), datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), datetime(1900, 2, 28, 1, 2, 3, 4000, tzinfo=UTC), -1, 1, None]
FIELDS: dict[str, dict[Any, tuple[str, Any, list[Any]]]] = {
    "user_id": {
        "string": ("string", lambda i: f"u{i:06d}", ["", "ü-日本", 'a"b\\c\n\x01', "🎉", "\u2028", " "]),
        ("null", "string"): ("string", lambda i: f"u{i:06d}", ["", None, "é"]),
        ("string", "null"): ("string", lambda i: f"u{i:06d}", ["", None]),
        "long": ("string", lambda i: i * 7919 - 10**6, [0, -(2**63), 2**63 - 1]),
    },
    "country": {
        ("null", "string"): ("string", lambda i: ("DE", "JP", "FR")[i % 3], ["", None, "Aÿ", "\x00\x1f\x7f", '"', "\\", "x" * 300]),
        "string": ("string", lambda i: ("DE", "JP", "FR")[i % 3], ["", "Ω", "\t"]),
    },
    "score": {
        "double": ("double", lambda i: i / 8, FLOATS[:-1]),
        ("null", "double"): ("double", lambda i: i / 8, FLOATS),
        "float": ("double", lambda i: i / 4, FLOAT32[:-1]),
        ("float", "null"): ("double", lambda i: i / 4, FLOAT32),
        "long": ("double", lambda i: i * 3, [2**53 + 1, -(2**63), 10**17]),
    },
    "visits": {
        "int": ("long", lambda i: i % 1000 - 500, [2**31 - 1, -(2**31)]),
        "long": ("long", lambda i: i % 1000, [2**40, -(2**63), 2**63 - 1]),
        ("null", "long"): ("long", lambda i: i % 1000, [2**40, None]),
        "double": ("long", lambda i: float(i % 1000), [1.5, 1e19, -0.0, -(2.0**63), NAN]),
    },
    "opted_in": {
        "boolean": ("boolean", lambda i: i % 3 != 0, []),
        ("boolean", "null"): ("boolean", lambda i: i % 3 != 0, [None]),
        "long": ("boolean", lambda i: i % 2, [2, -1]),
    },
    "updated_at": {
        ("null", "micros"): ("timestamp", lambda i: T0 + timedelta(microseconds=i * 1000003), TIMES),
        "micros": ("timestamp", lambda i: T0 + timedelta(microseconds=i * 1000003), TIMES[:-1]),
        ("millis", "null"): ("timestamp", lambda i: T0 + timedelta(milliseconds=i * 1003), TIMES),
        "micros text": ("string", lambda i: T0 + timedelta(microseconds=i * 999), TIMES[:-1]),
    },
    "label": {
        "long": ("string", lambda i: i * 31, [-(2**63)]),
        "double": ("string", lambda i: i / 3, [1e16, 1e-5, -0.0, NAN, INF]),
        "boolean": ("string", lambda i: i % 2 == 0, []),
        ("null", "string"): ("string", lambda i: f"l{i}", ["", None]),
    },
}
SKIPPED = [  # fields no column takes: read and skipped
    {"name": "skip_bytes", "type": "bytes"},
    {"name": "skip_text", "type": ["null", "string"]},
    {"name": "skip_float", "type": "float"},
    {"name": "skip_time", "type": MICROS},
]


def avro_type(choice: Any) -> Any:
    names = {"micros": MICROS, "millis": MILLIS, "micros text": MICROS}
    if isinstance(choice, tuple):
        return [names.get(t, t) for t in choice]
    return names.get(choice, choice)


class RandomJob:
    """A random file schema, its columns, filters and Kafka output (JSON or Avro values), and records."""

    def __init__(self, rng: random.Random, avro_values: bool) -> None:
        self.rng = rng
        self.choices = {name: rng.choice(list(types)) for name, types in FIELDS.items()}
        fields = [{"name": name, "type": avro_type(choice)} for name, choice in self.choices.items()]
        fields += rng.sample(SKIPPED, rng.randint(0, len(SKIPPED)))
        rng.shuffle(fields)
        self.file_schema = {"type": "record", "name": "Row", "namespace": "t", "fields": fields}
        names = [n for n in FIELDS if n == "user_id" or rng.random() < 0.85]
        rng.shuffle(names)
        self.columns = [ColumnSettings(n, FIELDS[n][self.choices[n]][0]) for n in names]
        self.required = ["user_id"] * (rng.random() < 0.7) + [n for n in names if n != "user_id" and rng.random() < 0.2]
        self.avro_values = avro_values

    def record(self, i: int, odd: float) -> dict[str, Any]:
        record: dict[str, Any] = {"skip_bytes": bytes(range(i % 5)), "skip_text": None if i % 2 else "ß", "skip_float": i / 3,
                                  "skip_time": -i * 1000003}
        for name, choice in self.choices.items():
            _, ordinary, others = FIELDS[name][choice]
            nullable = isinstance(choice, tuple)
            others = [v for v in others if v is not None or nullable]
            record[name] = self.rng.choice(others) if others and self.rng.random() < odd else ordinary(i)
        return record

    def records(self, n: int, odd: float) -> list[dict[str, Any]]:
        return [self.record(i, odd) for i in range(n)]


def container(schema: dict[str, Any], records: list[dict[str, Any]], codec: str, sync_interval: int) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec=codec, sync_interval=sync_interval)
    return out.getvalue()


# ---------------------------------------------------------------- the two paths

ADDED = (AddedColumn("segment_id", "long", "7"), AddedColumn("tag", value='a"b é'), AddedColumn("since", "timestamp", "2026-01-01T00:00:00Z"))


def value_schema(job: RandomJob, schema: Schema, value_names: list[str]) -> dict[str, Any]:
    """An Avro value schema for the job's value columns that the compiled Avro loop plans."""
    rng = job.rng
    types = {"string": ["null", "string"], "long": rng.choice([["null", "long"], ["int", "null"]]),
             "double": rng.choice([["null", "double"], ["null", "float"]]), "boolean": ["null", "boolean"],
             "timestamp": ["null", rng.choice([MICROS, MILLIS])]}
    fields = [{"name": n, "type": types[schema.columns[schema.index(n)].type]} for n in value_names]
    for f in fields:
        if f["name"] in ("user_id", "country") and rng.random() < 0.5:
            f["type"] = "string"  # not nullable: a null is the Python path's error
    fields.append({"name": "absent", "type": ["null", "long"], "default": None})
    rng.shuffle(fields)
    return {"type": "record", "name": "Member", "fields": fields}


def build(job: RandomJob) -> tuple[AvroParser, list[Any], KafkaOutput]:
    """The job's parser, filters and Kafka output, bound (the output's Avro values as they are once it opens)."""
    from pipelines.engine.avro.writing import record_converter
    from pipelines.kafka.avro_wire import AvroSerializer
    from pipelines.native.avro_values import AvroRecords

    parser = AvroParser(AvroParserSettings(columns=tuple(job.columns)), "in.parser")
    filters = [
        ValidateFilter(ValidateSettings(columns=tuple(ColumnRule(n, required=True) for n in job.required)), "filters[0]"),
        AddColumnsFilter(AddColumnsSettings(columns=ADDED), "filters[1]"),
    ]
    schema = parser.schema()
    for f in filters:
        schema = f.bind(schema)
    ignored = tuple(n for n in schema.names if n != "user_id" and job.rng.random() < 0.2)
    options: dict[str, Any] = {"brokers": ("127.0.0.1:1",), "topic": "t", "key_column_name": "user_id", "ignore_columns": ignored}
    if job.avro_values:
        names = [n for n in schema.names if n not in ignored]
        options.update(serialize_format="avro", schema_registry_url="http://127.0.0.1:1", avsc=value_schema(job, schema, names))
    output = KafkaOutput(KafkaOutputSettings(**options), "out")
    output.bind(schema)
    if job.avro_values:
        avsc = options["avsc"]
        output.serializer = AvroSerializer(avsc, SCHEMA_ID)
        output.to_records = record_converter(schema, avsc, output.value_indexes)
        output.avro_records = AvroRecords.choose(avsc, output.serializer.prefix, output.key_index, schema, output.value_indexes)
    return parser, filters, output


def import_file(data: bytes, job: RandomJob, native: bool, fused: bool, batch_rows: int, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """What the import makes of `data`: ((key, value) records in order, the error output's entries,
    the records consumed, the DataError that ended the file or ""), and how many records were
    encoded by the fused path."""
    monkeypatch.setenv("PIPELINES_NATIVE", "1" if native else "0")
    parser, filters, output = build(job)
    encoder = None
    if fused:
        encoder = record_encoder(parser, filters, output.key_index, output.value_indexes, output.value_names, output.avro_records)
        assert encoder is not None, "the job is one the fused path takes"
    errors, records, consumed, encoded, failure = Errors(), [], 0, 0, ""
    try:
        for piece, n in parser.read_batches(io.BytesIO(data), Source("mem://x.avro", len(data)), errors, batch_rows, True, False, encoder):
            consumed += n
            if type(piece) is EncodedRecords:
                got = split_records(piece.data)
                assert len(got) == piece.count > 0
                records += got
                encoded += piece.count
                continue
            for f in filters:
                if piece.rows:
                    f.apply(piece, errors)
            keys, values = output._python_values(piece, piece.rows, piece.line_nos, errors)
            records += [(key.encode(), value) for key, value in zip(keys or [], values) if value is not None]
    except DataError as exc:
        failure = str(exc)
    return (records, sorted(errors.seen), consumed, failure), encoded


# ---------------------------------------------------------------- comparisons


def random_file(seed: int) -> tuple[RandomJob, bytes, int]:
    rng = random.Random(seed)
    job = RandomJob(rng, avro_values=seed % 2 == 1)
    records = job.records(rng.randint(0, 300), rng.choice([0.0, 0.005, 0.02, 0.1]))
    codec = rng.choice(["null", "deflate"])
    data = container(job.file_schema, records, codec, rng.choice([64, 300, 1000, 4000]))
    if codec == "null" and rng.random() < 0.1 and b"A\xc3\xbf" in data:
        data = data.replace(b"A\xc3\xbf", b"A\xff\xbf", 1)  # a string that is not UTF-8: fastavro's error, in its block
    if rng.random() < 0.05:
        data = data[: rng.randint(len(data) // 2, len(data))]  # cut short
    return job, data, rng.choice([1, 3, 7, 50, 10_000])


@pytest.mark.parametrize("seed", range(120))
def test_fused_avro_import_equals_the_rows_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records, error output and records consumed of the fused path (compiled loops on) are the rows
    path's, with the compiled loops on and off."""
    job, data, batch_rows = random_file(seed)
    python, _ = import_file(data, job, False, False, batch_rows, monkeypatch)
    job, data, batch_rows = random_file(seed)  # the same job again: build() draws from its rng
    rows, _ = import_file(data, job, True, False, batch_rows, monkeypatch)
    job, data, batch_rows = random_file(seed)
    fused, encoded = import_file(data, job, True, True, batch_rows, monkeypatch)
    assert rows == python
    if python[3]:  # the file breaks: the run fails there, and what went before is aborted with it
        assert fused[3] == python[3]
    else:  # the error output's entries are compared sorted: the filters report a batch's rows after
        assert fused == python  # the parser's, and batches end elsewhere when blocks go as records
        assert encoded <= len(python[0])


def test_most_random_files_are_mostly_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparisons above are not all of blocks left to the rows path."""
    total = encoded = 0
    for seed in range(40):
        job, data, batch_rows = random_file(seed)
        (records, _, _, _), n = import_file(data, job, True, True, batch_rows, monkeypatch)
        total, encoded = total + len(records), encoded + n
    assert encoded > total / 3


AUDIENCE = {
    "type": "record",
    "name": "Row",
    "fields": [
        {"name": "user_id", "type": "string"},
        {"name": "country", "type": ["null", "string"]},
        {"name": "score", "type": "double"},
        {"name": "opted_in", "type": "boolean"},
        {"name": "updated_at", "type": MICROS},
    ],
}
AUDIENCE_COLUMNS = [ColumnSettings("user_id"), ColumnSettings("country"), ColumnSettings("score", "double"),
                    ColumnSettings("opted_in", "boolean"), ColumnSettings("updated_at", "timestamp")]


def audience(n: int) -> list[dict[str, Any]]:
    return [
        {"user_id": f"u{i:09d}", "country": ("JP", "DE", None, "Zürich")[i % 4], "score": i % 997 / 10, "opted_in": i % 3 != 0,
         "updated_at": T0 + timedelta(microseconds=i * 1001)}
        for i in range(n)
    ]


class AudienceJob(RandomJob):
    """The audience import: every column, user_id required, no column ignored."""

    def __init__(self, avro_values: bool) -> None:
        self.rng = random.Random(0)
        self.columns, self.required, self.avro_values = AUDIENCE_COLUMNS, ["user_id"], avro_values


@pytest.mark.parametrize("avro_values", [False, True])
@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_every_block_of_an_ordinary_file_is_encoded(monkeypatch: pytest.MonkeyPatch, avro_values: bool, codec: str) -> None:
    data = container(AUDIENCE, audience(3000), codec, 2000)
    assert sum(1 for _ in fastavro.block_reader(io.BytesIO(data))) > 10
    fused, encoded = import_file(data, AudienceJob(avro_values), True, True, 1000, monkeypatch)
    python, _ = import_file(data, AudienceJob(avro_values), False, False, 1000, monkeypatch)
    assert fused == python and encoded == 3000 and fused[1:] == ([], 3000, "")
    if not avro_values:
        value = (b'{"user_id":"u000000001","country":"DE","score":0.1,"opted_in":true,"updated_at":"2026-11-01T12:00:00.001001+00:00",'
                 b'"segment_id":7,"tag":"a\\"b \xc3\xa9","since":"2026-01-01T00:00:00+00:00"}')
        assert fused[0][1] == (b"u000000001", value)


def test_a_block_with_an_odd_record_goes_the_rows_path_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the block holding it: the error is reported with its record number, the blocks around it are encoded."""
    records = audience(3000)
    records[1234]["user_id"] = ""  # an empty key: the validate filter's error
    records[2345]["score"] = 2.5e-5  # written 0.000025 by orjson (not 2.5e-5 as repr): encoded alike
    data = container(AUDIENCE, records, "null", 2000)
    fused, encoded = import_file(data, AudienceJob(False), True, True, 1000, monkeypatch)
    python, _ = import_file(data, AudienceJob(False), False, False, 1000, monkeypatch)
    assert fused == python
    assert [(line, reason) for line, reason, _ in fused[1]] == [(1235, "column 'user_id' is required but empty")]
    assert b'"score":0.000025,' in dict(fused[0])[b"u000002345"]
    assert 2000 < encoded < 2999


def test_a_reader_schema_or_no_extension_leaves_the_rows_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.native.fused_avro import avro_encoder

    monkeypatch.setenv("PIPELINES_NATIVE", "1")
    parser, filters, output = build(AudienceJob(False))
    assert record_encoder(parser, filters, output.key_index, output.value_indexes, output.value_names) is not None
    with_avsc = AvroParser(AvroParserSettings(columns=tuple(AUDIENCE_COLUMNS), avsc=AUDIENCE), "in.parser")
    assert record_encoder(with_avsc, filters, output.key_index, output.value_indexes, output.value_names) is None
    encoder = record_encoder(parser, filters, output.key_index, output.value_indexes, output.value_names)
    assert encoder.bind(AUDIENCE) is not None
    bytes_key = {**AUDIENCE, "fields": [{"name": "user_id", "type": "bytes"}, *AUDIENCE["fields"][1:]]}
    assert encoder.bind(bytes_key) is None  # a file schema block_records does not read: every block as rows
    assert avro_encoder is not None
    monkeypatch.setenv("PIPELINES_NATIVE", "0")
    assert record_encoder(parser, filters, output.key_index, output.value_indexes, output.value_names) is None


@pytest.mark.parametrize(
    "args",
    [
        (((5, -1, 0, 0),), 1, 1, (), ()),  # the key column out of range
        (((5, -1, 0, 0),), 1, 0, (1,), ()),  # a required column out of range
        (((5, -1, 0, 0),), 1, 0, (), ((b"", 3),)),  # a part's column out of range
        (((5, -1, 0, 0),), 1, 0, (), (b"x",)),  # a part that is not a pair
        (((5, -1, 0, 0),), 1, 0, (), ((b"", 0),), (b"\0", ((9, -1, -1),))),  # an Avro code it does not know
        (((5, -1, 0, 0),), 1, 0, (), ((b"", 0),), (b"\0", ())),  # not one code a part
        (((5, -1, 1, 0),), 2, 0, (), ()),  # a plan block_rows refuses
    ],
)
def test_block_records_refuses_arguments_it_cannot_follow(args: tuple) -> None:
    with pytest.raises((ValueError, TypeError)):
        avroread.block_records(b"\x02a", 1, *args)


def test_block_records_contract() -> None:
    """Bytes for a block it writes whole; None for a block with any odd record, or bytes after the last."""
    plan = ((5, -1, 0, 0), (2, 0, 1, 0))  # k: string; n: ["null", "long"] as a long column
    parts = ((b'"k":', 0), (b',"n":', 1), (b',"c":', b"true"))
    block = b"\x02a\x02\x04" + b"\x02b\x00"  # {"k": "a", "n": 2}, {"k": "b", "n": null}
    values = [b'{"k":"a","n":2,"c":true}', b'{"k":"b","n":null,"c":true}']
    assert avroread.block_records(block, 2, plan, 2, 0, (), parts) == b"".join(
        struct.pack("=II", 1, len(value)) + key + value for key, value in zip([b"a", b"b"], values)
    )
    assert avroread.block_records(block, 2, plan, 2, 0, (1,), parts) is None  # n is required
    assert avroread.block_records(block + b"\0", 2, plan, 2, 0, (), parts) is None  # a byte left
    assert avroread.block_records(b"\x00\x00" + block[4:], 2, plan, 2, 0, (), parts) is None  # an empty key
    assert avroread.block_records(block, 3, plan, 2, 0, (), parts) is None  # cut short
    avro = (b"\0\0\0\0\7", ((0, -1, -1), (1, 0, 1), (5, -1, -1)))
    assert avroread.block_records(block, 2, plan, 2, 0, (), ((b"", 0), (b"", 1), (b"", b"\1")), avro) == (
        struct.pack("=II", 1, 10) + b"a\0\0\0\0\7\x02a\x02\x04\x01" + struct.pack("=II", 1, 9) + b"b\0\0\0\0\7\x02b\x00\x01"
    )
    not_nullable = (b"", ((0, -1, -1), (1, -1, -1), (5, -1, -1)))
    assert avroread.block_records(block, 2, plan, 2, 0, (), ((b"", 0), (b"", 1), (b"", b"\1")), not_nullable) is None


def random_doubles(rng: random.Random, n: int) -> list[float]:
    """Doubles of every kind: short decimals at every scale (and their neighbours), any bits, floats widened."""
    values = []
    while len(values) < n:
        kind = rng.random()
        if kind < 0.5:
            v = rng.randint(0, 10 ** rng.randint(1, 17)) / 10 ** rng.randint(0, 22)
            v = rng.choice([v, v, math.nextafter(v, 0), math.nextafter(v, INF), float(f"{v:.15g}")])
        elif kind < 0.8:
            v = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        else:
            v = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
        if math.isfinite(v):
            values.append(-v if rng.random() < 0.3 else v)
    return values


def test_doubles_are_written_as_orjson_writes_them() -> None:
    """A double's JSON is orjson's (written from its digits when short, else by json_float), 1e-5 <=
    |d| < 1e-4 included (orjson writes 0.000025 where repr writes 2.5e-05)."""
    plan, parts = ((4, -1, 0, 4), (5, -1, 1, 0)), ((b"", 0),)  # d: a finite double; k: the key
    values = random_doubles(random.Random(3), 300_000)
    assert any(1e-5 <= abs(v) < 1e-4 for v in values)
    for start in range(0, len(values), 1000):
        chunk = values[start : start + 1000]
        block = b"".join(struct.pack("<d", v) + b"\x02k" for v in chunk)
        data = avroread.block_records(block, len(chunk), plan, 2, 1, (), parts)
        assert [value[1:-1] for _, value in split_records(data)] == [orjson.dumps(v) for v in chunk]  # {value}: no label


# ---------------------------------------------------------------- pipelines run, against the local stack


def e2e_records(n: int) -> list[dict[str, Any]]:
    records = audience(n)
    records[100]["user_id"] = ""  # the validate filter's error, in its block
    records[200]["score"] = NAN  # does not convert: the parser's error
    records[300]["country"] = 'quote " and \\ and \n'
    return records


def run_import(folder: Path, stack: Any, native: str, avro_values: bool) -> tuple[dict[str, Any], list[Any], list[dict[str, Any]]]:
    """`pipelines run` of an Avro file (3 blocks of 2 codecs) into a new topic, with the compiled loops
    on or off: (summary, records in partition and offset order, error rows)."""
    (folder / "in").mkdir(parents=True)
    for i, codec in enumerate(["null", "deflate"]):
        (folder / "in" / f"part-{i}.avro").write_bytes(container(AUDIENCE, e2e_records(2000 + i), codec, 16000))
    topic = f"fused-avro-{native}-{uuid.uuid4().hex[:6]}"
    create_topic(stack.kafka_bootstrap, topic, 3)
    out: dict[str, Any] = {"type": "kafka", "brokers": [stack.kafka_bootstrap], "topic": topic, "key_column_name": "user_id"}
    if avro_values:
        fields = [{"name": n, "type": ["null", t]} for n, t in
                  [("country", "string"), ("score", "double"), ("opted_in", "boolean"), ("updated_at", MILLIS), ("segment_id", "long")]]
        out.update(serialize_format="avro", schema_registry_url=stack.schema_registry_url,
                   avsc={"type": "record", "name": "Member", "fields": [{"name": "user_id", "type": "string"}, *fields]})
    config = {
        "in": {"type": "file", "path_prefix": f"{folder / 'in'}/", "parser": {"type": "avro", "columns": [
            {"name": c.name, "type": c.type} for c in AUDIENCE_COLUMNS]}},
        "filters": [{"type": "validate", "columns": [{"name": "user_id", "required": True}]},
                    {"type": "add_columns", "columns": [{"name": "segment_id", "type": "long", "value": "7"}]}],
        "out": out,
        "exec": {"error_output": f"{folder / 'errors'}/", "work_dir": str(folder / "work"), "max_errors": 10},
    }
    (folder / "job.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_cli("run", str(folder / "job.yml"), "--job-id", f"fused-avro-{native}", env={"PIPELINES_NATIVE": native})
    assert result.returncode == 0, result.stderr
    records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len(markers) == 3
    errors = [json.loads(line) for f in (folder / "errors").glob("*.jsonl") for line in f.read_text().splitlines()]
    return summary_of(result), sorted(records, key=lambda m: (m.partition(), m.offset())), errors


@pytest.mark.parametrize("avro_values", [False, True])
def test_pipelines_run_writes_the_same_topic_with_and_without_the_fused_path(stack: Any, tmp_path: Path, avro_values: bool) -> None:
    got = {native: run_import(tmp_path / native, stack, native, avro_values) for native in ("1", "0")}
    for summary, records, errors in got.values():
        assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (4001, 3997, 4)
        required, nan = "column 'user_id' is required but empty", "column 'score' (double): cannot convert nan: not a finite number"
        assert sorted((e["line"], e["reason"]) for e in errors) == [(101, required)] * 2 + [(201, nan)] * 2  # in each file
    (_, native_records, native_errors), (_, python_records, python_errors) = got["1"], got["0"]
    start = 5 if avro_values else 0  # after the schema id, which differs between the two runs' subjects
    assert [(m.partition(), m.key(), m.value()[start:]) for m in native_records] == [
        (m.partition(), m.key(), m.value()[start:]) for m in python_records
    ]
    def entries(errors: list[dict[str, Any]]) -> list[str]:  # the source named by its file: the runs' folders differ
        return sorted(json.dumps({**e, "source": Path(e["source"]).name}) for e in errors)

    assert entries(native_errors) == entries(python_errors)
