"""The compiled hot loops (setup.py: pipelines/native/_fastrows.c, pipelines/native/_fastkafka.c) give
exactly what the Python loops give: the same rows, line numbers and errors from the CSV parser on
random text, and the same keys, values, partitions and headers in a real Kafka topic."""

from __future__ import annotations

import datetime as dt
import io
import random
from typing import Any

import orjson
import pytest

from pipelines.engine import textio
from pipelines.engine.columns import ColumnSettings
from pipelines.kafka.murmur2 import murmur2, partition_for
from pipelines.plugins.csv_parser import CsvParser, CsvParserSettings
from pipelines.engine.records import Source

from conftest import Errors, config_with, consume_all, create_topic, job_vars, put_audiences, run_cli, split_records, summary_of

fastrows = pytest.importorskip("pipelines.native._fastrows", reason="the C extensions are not built (no C compiler at install)")


@pytest.fixture
def fastkafka() -> Any:
    """pipelines.native._fastkafka, for the tests that compare its loops: a failure with the reason, not
    a skip, when it cannot be used (it refuses any confluent-kafka but the pin in
    container/constraints.txt, which the image ships; tests/test_native_versions.py)."""
    from pipelines.native.kafka import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.fail(f"the compiled Kafka loops are not used here: {reason}", pytrace=False)
    from pipelines.native import _fastkafka

    return _fastkafka


def parse(data: bytes, native: bool, monkeypatch: pytest.MonkeyPatch, columns: list[dict[str, Any]], **options: Any) -> tuple:
    monkeypatch.setenv("PIPELINES_NATIVE", "1" if native else "0")
    settings = CsvParserSettings(columns=tuple(ColumnSettings(**c) for c in columns), **options)
    parser = CsvParser(settings, "in.parser")
    assert (parser.split_rows is not None) == (native and not options.get("escape"))
    errors = Errors()
    batches = []
    try:
        for batch, consumed in parser.batches(io.BytesIO(data), Source("mem://x.csv", len(data)), errors, 7):
            batches.append((batch.rows, batch.line_nos, consumed))
        failure = None
    except Exception as exc:  # a byte range ending in quotes (split=True) and such: must fail alike
        failure = (type(exc).__name__, str(exc))
    return batches, errors.seen, failure


COLUMNS = [
    {"name": "id", "type": "long"},
    {"name": "name"},
    {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "at", "type": "timestamp"},
]

FIELDS = {
    "id": ["1", "-7", "+12", "007", " 5", "1_000", "99999999999999999999", "x", "", "1.5", "123456789012345678"],
    "name": ["a", "", "é", "日本", "two words", '"quoted"', '"with ""doubled"""', '"multi\nline"', '"a,b"', "null", 'mid"quote'],
    "score": ["1.5", "-0.0", "1e300", "nan", "inf", "x", "", "3", " 2.5 "],
    "ok": ["true", "false", "Yes", "no", "1", "0", "maybe", "", "TRUE"],
    "at": ["2026-11-01T12:00:00Z", "2026-11-01 12:00:00", "2026-11-01T12:00:00+02:00", "yesterday", ""],
}
ODDITIES = ["", "\r", '"unterminated', '"x"y', "a,b,c,d,e,f,g", "1", '"', ",,,,"]


def random_csv(rng: random.Random, rows: int) -> bytes:
    lines = []
    for _ in range(rows):
        roll = rng.random()
        if roll < 0.06:
            lines.append(rng.choice(ODDITIES))
            continue
        lines.append(",".join(rng.choice(FIELDS[c["name"]]) for c in COLUMNS))
    ending = rng.choice(["\n", "\r\n"])
    text = ending.join(lines) + rng.choice([ending, ""])
    return text.encode()


@pytest.mark.parametrize("seed", range(40))
def test_csv_parser_compiled_loop_equals_the_csv_module(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(textio, "CHUNK_BYTES", rng.choice([16, 64, 200, 1 << 20]))  # records across chunk ends
    data = random_csv(rng, rng.randint(0, 120))
    options = rng.choice(
        [
            {},
            {"skip_header_lines": rng.randint(1, 3)},
            {"null_string": "null"},
            {"allow_extra_columns": True, "allow_optional_columns": True},
            {"delimiter": ";"},
        ]
    )
    if options.get("delimiter"):
        data = data.replace(b",", b";")
    assert parse(data, True, monkeypatch, COLUMNS, **options) == parse(data, False, monkeypatch, COLUMNS, **options)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n\n",
        b"1,a,1.5,true,2026-11-01T12:00:00Z",
        b'1,"a\nb\nc",1.5,true,\n2,"",,,\n',
        b'1,"never closed,1.5,true,\n2,b,,,\n',
        b"1,a,1.5,true,\r\n\r\n2,b,2,false,\r\n",
        b'1,"x"y,1,true,\n2,b,2,false,\n',
        b"1,a\rb,1,true,\n",
        b"1,a,1,true,",
        b'1,"a",1,true,""',
        "1,caf\u00e9,1,true,\n2,\u65e5\u672c,2,false,\n".encode(),
        b"1,a,1,true,\n2,caf\xe9,1,true,\n3,c,3,true,\n",  # bad bytes: reported in line order
    ],
)
def test_csv_parser_compiled_loop_edge_cases(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    for options in ({}, {"skip_header_lines": 1}, {"quote": ""}):
        assert parse(data, True, monkeypatch, COLUMNS, **options) == parse(data, False, monkeypatch, COLUMNS, **options)


def test_murmur2_in_c_equals_kafkas(fastkafka: Any) -> None:
    rng = random.Random(1)
    for size in range(0, 40):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert fastkafka.murmur2(data) == murmur2(data)
    # values from the Java client's tests (org.apache.kafka.common.utils.UtilsTest)
    assert fastkafka.murmur2(b"21") == -973932308
    assert fastkafka.murmur2(b"foobar") == -790332482


def test_batch_producer_writes_what_the_python_loop_writes(stack, topic, fastkafka) -> None:
    """Every value type through both loops into one topic: the same bytes, keys, partitions and headers."""
    from confluent_kafka import Producer

    from pipelines.native.kafka import BatchProducer, batch_producer

    utc = dt.timezone.utc
    rows = [
        ["u1", "plain", 1, 1.5, True, None, dt.datetime(2026, 11, 1, 12, 0, tzinfo=utc)],
        ["u2", 'quote " back \\ nl \n tab \t ctl \x01 \x7f', -(2**63), 1e-7, False, "", dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=utc)],
        ["ü3", "日本 é \u2028", 2**63 - 1, -0.0, None, 0, dt.datetime(1999, 12, 31, 23, 59, 59)],
        [12345, "a key that is an int", 0, 1e300, True, {"nested": [1, 2]}, dt.datetime(2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))],
        ["u5", "big float", 2**64 - 1, 123456789012345678.0, False, [1, "x"], dt.date(2026, 11, 1)],
        ["", "empty key: not produced", 0, 0.0, False, None, None],
        [None, "no key: not produced", 0, 0.0, False, None, None],
    ]
    names = ["user_id", "text", "n", "x", "flag", "other", "at"]
    config = {"bootstrap.servers": stack.kafka_bootstrap, "client.id": "native-test", "delivery.report.only.error": True}
    producer = Producer(config)
    failures: list[Any] = []
    fast = batch_producer(
        producer,
        "native-test",
        topic=topic,
        key_index=0,
        value_indexes=list(range(len(names))),
        names=names,
        headers=[("pipelines.job_id", b"job-c")],
        on_delivery=lambda err, msg: failures.append(err),
    )
    assert isinstance(fast, BatchProducer)
    counts = [0] * 6
    produced, empty = fast.produce([list(r) for r in rows], counts)
    assert (produced, empty) == (5, [5, 6])
    # The Python loop: what KafkaOutput does without the extension (orjson, murmur2_random).
    slow = Producer({**config, "delivery.report.only.error": False, "partitioner": "murmur2_random"})
    for row in rows[:5]:
        key = row[0] if isinstance(row[0], str) else str(row[0])
        slow.produce(topic, orjson.dumps(dict(zip(names, row))), key, headers=[("pipelines.job_id", b"job-p")])
    assert producer.flush(30) == 0 and slow.flush(30) == 0 and not failures

    records = consume_all(stack.kafka_bootstrap, topic, "read_uncommitted")
    by_job: dict[bytes, dict] = {b"job-c": {}, b"job-p": {}}
    for record in records:
        (job,) = [v for k, v in record.headers() if k == "pipelines.job_id"]
        by_job[job][record.key()] = (record.value(), record.partition())
    assert by_job[b"job-c"] == by_job[b"job-p"] and len(by_job[b"job-c"]) == 5
    for key, (value, partition) in by_job[b"job-c"].items():
        assert partition == partition_for(key, 6)
    assert counts == [sum(1 for _, p in by_job[b"job-c"].values() if p == q) for q in range(6)]


def test_encoded_records_reach_the_topic_keyed_partitioned_and_counted(stack, topic, fastkafka) -> None:
    """produce_encoded (produce_records in C) against the real broker: each record's key, value and
    header as encoded, in murmur2's partition, with the per-partition counts; a full local queue
    (queue.buffering.max.messages) is waited out, not lost."""
    from confluent_kafka import Producer

    from pipelines.native.kafka import batch_producer

    records = [(f"u{i}".encode(), orjson.dumps({"user_id": f"u{i}", "i": i})) for i in range(3000)]
    data = b"".join(len(k).to_bytes(4, "little") + len(v).to_bytes(4, "little") + k + v for k, v in records)
    config = {"bootstrap.servers": stack.kafka_bootstrap, "client.id": "encoded-test", "delivery.report.only.error": True,
              "queue.buffering.max.messages": 500, "linger.ms": 5}
    producer = Producer(config)
    failures: list[Any] = []
    fast = batch_producer(producer, "encoded-test", topic=topic, key_index=0, value_indexes=[0], names=["user_id"],
                          headers=[("pipelines.job_id", b"job-e")], on_delivery=lambda err, msg: failures.append(err))
    counts = [0] * 6
    assert fast.produce_encoded(data, counts) == 3000
    assert producer.flush(30) == 0 and not failures
    seen = {r.key(): (r.value(), r.partition(), r.headers()) for r in consume_all(stack.kafka_bootstrap, topic, "read_uncommitted")}
    assert seen == {k: (v, partition_for(k, 6), [("pipelines.job_id", b"job-e")]) for k, v in records}
    assert counts == [sum(1 for _, p, _ in seen.values() if p == q) for q in range(6)]


def test_import_without_the_compiled_loops_writes_the_same_topic(stack, s3, bucket, tmp_path, fastkafka) -> None:
    """PIPELINES_NATIVE=0 (as without a C compiler): the import gives the same records, partitions and counts."""
    put_audiences(s3, bucket, 2, 3000)
    config = config_with(tmp_path, batch_rows=1000)
    seen = []
    for native in ("1", "0"):
        topic = f"native-{native}-{bucket}"
        create_topic(stack.kafka_bootstrap, topic, 6)
        result = run_cli("run", config, *job_vars(bucket, topic, SEGMENT_ID="7"), env={"PIPELINES_NATIVE": native})
        assert result.returncode == 0, result.stderr
        assert summary_of(result)["rows_written"] == 6000
        records = [r for r in consume_all(stack.kafka_bootstrap, topic) if r.key() is not None]
        seen.append(sorted((r.key(), r.partition(), r.value(), r.headers()[0][0]) for r in records))
    assert seen[0] == seen[1] and len(seen[0]) == 6000


def format_both(schema_columns: list[tuple[str, str]], rows: list[list[Any]], monkeypatch: pytest.MonkeyPatch, **options: Any) -> list[Any]:
    from pipelines.plugins.csv_formatter import CsvFormatter, CsvFormatterSettings
    from pipelines.engine.records import Column, Schema

    out = []
    for native in ("1", "0"):
        monkeypatch.setenv("PIPELINES_NATIVE", native)
        formatter = CsvFormatter(CsvFormatterSettings(**options), "out.formatter")
        formatter.bind(Schema(tuple(Column(n, t) for n, t in schema_columns)))
        assert (formatter.format_rows is not None) == (native == "1" and not options)
        try:
            out.append(formatter.rows([list(r) for r in rows]))
        except Exception as exc:
            out.append((type(exc).__name__, str(exc)))
    return out


WRITER_VALUES: dict[str, list[Any]] = {
    "string": ["a", "", "with,comma", 'say "hi"', "line\nbreak", "cr\rhere", "é 日本", " spaced ", None, "null"],
    "long": [0, -1, 2**63 - 1, -(2**63), 2**64, None],
    "double": [0.0, -0.0, 1.5, 1e20, 1e-7, 123456789012345678.0, 0.1, None],
    "boolean": [True, False, None],
    "timestamp": [
        dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 11, 1, 12, 0, 0, 5, tzinfo=dt.timezone.utc),
        dt.datetime(999, 1, 2, 3, 4, 5),
        dt.datetime(2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        None,
    ],
}


@pytest.mark.parametrize("seed", range(30))
def test_csv_formatter_compiled_writer_equals_the_csv_module(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    types = [rng.choice(list(WRITER_VALUES)) for _ in range(rng.randint(1, 6))]
    columns = [(f"c{i}", t) for i, t in enumerate(types)]
    # mostly plain values (so whole batches go through C), sometimes anything
    plain = {t: [v for v in vs if v not in ("", "cr\rhere", 2**64) and not (isinstance(v, dt.datetime) and v.utcoffset())] for t, vs in WRITER_VALUES.items()}
    pool = WRITER_VALUES if rng.random() < 0.3 else plain
    rows = [[rng.choice(pool[t]) for t in types] for _ in range(rng.randint(0, 50))]
    options = rng.choice([{}, {}, {}, {"quote_policy": "ALL"}, {"null_string": "NULL"}, {"newline": "CRLF"}])
    fast, slow = format_both(columns, rows, monkeypatch, **options)
    assert fast == slow


@pytest.mark.parametrize("seed", range(30))
def test_jsonl_formatter_compiled_writer_equals_orjson(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.engine.formatting import jsonl_formatter
    from pipelines.engine.records import Column, Schema

    rng = random.Random(seed)
    pool = {**WRITER_VALUES, "json": [{"a": [1, "x"]}, [True, None, 1.5], "text", 7, None], "string": WRITER_VALUES["string"] + ["\x00\x1f", "\u2028"]}
    types = [rng.choice(list(pool)) for _ in range(rng.randint(1, 6))]
    schema = Schema(tuple(Column(f"c{i}" if i else 'name "q"', t) for i, t in enumerate(types)))
    rows = [[rng.choice(pool[t]) for t in types] for _ in range(rng.randint(0, 50))]
    out = {}
    for native in ("1", "0"):
        monkeypatch.setenv("PIPELINES_NATIVE", native)
        try:
            out[native] = jsonl_formatter(schema)([list(r) for r in rows])
        except TypeError as exc:  # 2**64: orjson's own error, from C too (its fallback)
            out[native] = str(exc)
    assert out["1"] == out["0"]


JSON_VALUES: list[bytes] = [
    b'"u1"', b'"caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\/ \\n"', "\"日本\"".encode(), b'""', b"null", b"true", b"false",
    b"0", b"-7", b"123456789012345678", b"1234567890123456789012", b"1.5", b"-0.0", b"1e5", b"2.5E-3", b"01", b"1.",
    b'"2026-11-01T12:00:00Z"', b'"2026-11-01 12:00:00+02:00"', b'"not a time"', b"[1,2]", b'{"a":1}', b'"\\ud800"', b'"bad \\x"',
]


@pytest.mark.parametrize("seed", range(40))
def test_json_decoder_compiled_equals_orjson_and_the_converters(seed: int) -> None:
    from pipelines.engine.columns import records_converter
    from pipelines.plugins.kafka_input import compiled_json_rows

    rng = random.Random(seed)
    types = ["string", "long", "double", "boolean", "timestamp"]
    columns = tuple(ColumnSettings(f"c{i}", rng.choice(types)) for i in range(rng.randint(1, 6)))
    plain = {
        "string": [b'"u1"', b'"caf\\u00e9 \\ud83d\\ude00 \\"q\\""', "\"日本\"".encode(), b'""', b"null"],
        "long": [b"0", b"-7", b"123456789012345678", b"null"],
        "double": [b"1.5", b"-0.0", b"1e5", b"3", b"null"],
        "boolean": [b"true", b"false", b"null"],
        "timestamp": [b'"2026-11-01T12:00:00Z"', b'"2026-11-01 12:00:00+02:00"', b"null"],
    }
    values = []
    for _ in range(rng.randint(0, 30)):
        fields = []
        for c in columns:
            if rng.random() < 0.1:
                continue  # a missing key: None
            pool = JSON_VALUES if rng.random() < 0.05 else plain[c.type]
            fields.append(b'"' + c.name.encode() + b'"' + rng.choice([b":", b" : "]) + rng.choice(pool))
        if rng.random() < 0.2:
            fields.insert(rng.randint(0, len(fields)), b'"other":' + rng.choice(JSON_VALUES))
        rng.shuffle(fields)
        values.append(rng.choice([b"{", b" { "]) + b",".join(fields) + rng.choice([b"}", b"} \n"]))
    fast = compiled_json_rows(columns)
    assert fast is not None
    rows = fast(values)
    try:
        records = [orjson.loads(v) for v in values]
        expected = records_converter(columns)(records)
    except orjson.JSONDecodeError:
        expected = None
    if rows is None:  # handed back: only when the Python path has something to say, or values it must convert
        return
    assert expected is not None and (rows, list(range(len(rows))), []) == expected
    for row, exp in zip(rows, expected[0]):
        assert [type(v) for v in row] == [type(v) for v in exp]  # 3 in a double column is 3.0, not 3


def test_json_decoder_compiled_reads_most_batches() -> None:
    """The plain case (what our imports write) is decoded in C, not handed back."""
    from pipelines.plugins.kafka_input import compiled_json_rows

    columns = tuple(ColumnSettings(n, t) for n, t in [("user_id", "string"), ("score", "double"), ("ok", "boolean"), ("at", "timestamp"), ("seg", "long")])
    value = orjson.dumps({"user_id": "u1", "score": 1.5, "ok": True, "at": "2026-11-01T12:00:00+00:00", "seg": 7, "extra": None})
    rows = compiled_json_rows(columns)([value] * 3)
    assert rows == [["u1", 1.5, True, dt.datetime(2026, 11, 1, 12, tzinfo=dt.timezone.utc), 7]] * 3


def test_export_without_the_compiled_loops_writes_the_same_rows(stack, s3, bucket, topic, tmp_path, fastkafka) -> None:
    """PIPELINES_NATIVE=0: the export (Kafka consume, JSON decoding, CSV writing) gives the same file rows."""
    import gzip

    put_audiences(s3, bucket, 1, 4000)
    assert run_cli("run", config_with(tmp_path), *job_vars(bucket, topic)).returncode == 0
    exported = []
    for native in ("1", "0"):
        prefix = f"out-{native}/"
        result = run_cli(
            "run",
            "configs/export_audience_to_s3.yml.liquid",
            "--var", f"KAFKA_TOPIC={topic}", "--var", f"EXPORT_BUCKET={bucket}", "--var", f"EXPORT_PREFIX={prefix}",
            env={"PIPELINES_NATIVE": native},
        )
        assert result.returncode == 0, result.stderr
        assert summary_of(result)["rows_written"] == 4000
        lines = []
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
            if obj["Key"].endswith(".csv.gz"):
                lines += gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()).decode().splitlines()[1:]
        exported.append(sorted(lines))
    assert exported[0] == exported[1] and len(exported[0]) == 4000


# ------------------------------------------------------------------ CSV text straight to Kafka records

ENCODE_COLUMNS = [
    {"name": "user_id"},
    {"name": "n", "type": "long"},
    {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "at", "type": "timestamp"},
]
ENCODE_FIELDS = {
    "user_id": ["u1", "u2", "", "caf\u00e9", "a\\b", "tab\there", "x\x01y", '"quoted"', '"a,b"', "null", 'mid"q', "u 3"],
    "n": ["1", "-7", "+12", "007", "-0", " 5", "1_000", "123456789012345678", "1234567890123456789", "x", ""],
    "score": ["94.787", "94.7870", "1.5", "-0.0", "-0", "0", "00.10", ".5", "5.", "-.5", "+1.25", "1e5", "0.0001",
              "0.00001", "123456789012345", "1234567890123456", "0.123456789012345", "0.1234567890123456", "nan", "", "x"],
    "ok": ["true", "false", "Yes", "no", "1", "0", "TRUE", "True", "maybe", "", " yes"],
    "at": ["2026-11-01T12:00:00Z", "2026-11-01T12:00:00", "2026-11-01T12:00:00+00:00", "2024-02-29T00:00:00Z",
           "2026-02-29T00:00:00Z", "2026-11-01T24:00:00Z", "2026-13-01T00:00:00Z", "2026-11-01T12:00:00.5Z",
           "2026-11-01 12:00:00", "2026-11-01T12:00:00+02:00", "2026-11-01T12:00:60Z", "0000-01-01T00:00:00Z", ""],
}


def random_audience_csv(rng: random.Random, rows: int) -> bytes:
    lines = []
    for _ in range(rows):
        if rng.random() < 0.05:
            lines.append(rng.choice(ODDITIES))
        elif rng.random() < 0.5:  # mostly ordinary rows, as audiences are
            lines.append(f"u{rng.randint(0, 10**6)},{rng.randint(-99, 99)},{rng.randint(0, 99999) / 1000},true,2026-11-0{rng.randint(1, 9)}T12:00:00Z")
        else:
            lines.append(",".join(rng.choice(ENCODE_FIELDS[c["name"]]) for c in ENCODE_COLUMNS))
    ending = rng.choice(["\n", "\r\n"])
    return (ending.join(lines) + rng.choice([ending, ""])).encode()


def import_records(data: bytes, native: bool, monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple:
    """What the import makes of `data`: (key, JSON value) records in order, the error output's
    entries, the records consumed; natively through encode_records wherever it takes the rows."""
    from pipelines.native.fused import EncodedRecords, record_encoder
    from pipelines.plugins.column_filters import AddColumnsFilter, AddColumnsSettings, AddedColumn
    from pipelines.plugins.validate_filter import ColumnRule, ValidateFilter, ValidateSettings

    monkeypatch.setenv("PIPELINES_NATIVE", "1" if native else "0")
    parser = CsvParser(CsvParserSettings(columns=tuple(ColumnSettings(**c) for c in ENCODE_COLUMNS), **options), "in.parser")
    schema = parser.schema()
    filters = [
        ValidateFilter(ValidateSettings(columns=(ColumnRule("user_id", required=True), ColumnRule("n"))), "filters[0]"),
        AddColumnsFilter(
            AddColumnsSettings(columns=(AddedColumn("segment_id", "long", "7"), AddedColumn("tag", value='a"b'),
                                        AddedColumn("since", "timestamp", "2026-01-01T00:00:00Z"))),
            "filters[1]",
        ),
    ]
    for f in filters:
        schema = f.bind(schema)
    names, key_index = schema.names, schema.index("user_id")
    value_indexes = [i for i, name in enumerate(names) if name != "n"]
    value_names = [names[i] for i in value_indexes]
    encoder = record_encoder(parser, filters, key_index, value_indexes, value_names)
    assert (encoder is not None) == native
    errors, records, consumed, encoded = Errors(), [], 0, 0
    for batch, n in parser.read_batches(io.BytesIO(data), Source("mem://x.csv", len(data)), errors, 7, True, False, encoder):
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
                errors.add("mem://x.csv", line, "empty key", "")  # as KafkaOutput._empty_key
                continue
            records.append((str(key).encode(), orjson.dumps(dict(zip(value_names, [row[i] for i in value_indexes])))))
    return (records, errors.seen, consumed), encoded


@pytest.mark.parametrize("seed", range(40))
def test_encoded_records_equal_the_rows_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """encode_records + produce_records give the records, errors and counts that the parser, the
    filters and the output's JSON give, on random text full of values it must leave to them."""
    rng = random.Random(seed)
    monkeypatch.setattr(textio, "CHUNK_BYTES", rng.choice([16, 64, 200, 1 << 20]))
    data = random_audience_csv(rng, rng.randint(0, 150))
    options = rng.choice([{}, {"skip_header_lines": 1}, {"null_string": "null"}, {"delimiter": ";"}, {"quote": ""},
                          {"allow_extra_columns": True, "allow_optional_columns": True}])
    if options.get("delimiter"):
        data = data.replace(b",", b";")
    (records, errors, consumed), _ = import_records(data, True, monkeypatch, **options)
    (expected, expected_errors, expected_consumed), _ = import_records(data, False, monkeypatch, **options)
    assert (records, consumed) == (expected, expected_consumed)
    # The same entries; their order can differ, as the filters report a batch's rows after the parser's
    # and batches end elsewhere.
    assert sorted(errors) == sorted(expected_errors)


def test_encoded_records_take_ordinary_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an ordinary audience every row is encoded; an odd row leaves only the rest of its text to rows."""
    data = "".join(f"u{i:09d},{i % 50},{i % 997 / 10},{'true' if i % 3 else 'false'},2026-11-{1 + i % 28:02d}T12:00:00Z\n"
                   for i in range(5000)).encode()
    (records, errors, consumed), encoded = import_records(data, True, monkeypatch)
    assert (len(records), errors, consumed, encoded) == (5000, [], 5000, 5000)
    assert records[0] == (b"u000000000", b'{"user_id":"u000000000","score":0.0,"ok":false,"at":"2026-11-01T12:00:00+00:00",'
                                          b'"segment_id":7,"tag":"a\\"b","since":"2026-01-01T00:00:00+00:00"}')
    odd = data.replace(b"\nu000000100,", b'\n"u000000100",', 1)
    (records, errors, consumed), encoded = import_records(odd, True, monkeypatch)
    assert (len(records), errors, consumed) == (5000, [], 5000) and 0 < encoded < 5000
    assert records == import_records(odd, False, monkeypatch)[0][0]


def test_floats_are_written_as_orjson_writes_them() -> None:
    """The compiled JSON writer (_jsonwrite.h's json_float, used by json_lines and the Kafka output's
    produce loop) writes every double as orjson does: the bug was 1e-5 <= |d| < 1e-4, written
    2.5e-5 (repr's digits) where orjson writes 0.000025."""
    import math
    import struct

    rng = random.Random(11)
    values = [2.5e-5, -2.5e-5, 1e-5, 9.999999999999999e-05, 1.2345678901234567e-05, 9.999999999999999e-06, 1e-4, 1e-7, 1e16, 5e-324]
    values += [rng.choice([1, -1]) * 10 ** rng.uniform(-12, 20) for _ in range(20000)]
    values += [v for v in (struct.unpack("<d", rng.randbytes(8))[0] for _ in range(20000)) if math.isfinite(v)]
    rows = [[v] for v in values]
    assert fastrows.json_lines(rows, (b'"x":',), orjson.dumps) == b"".join(orjson.dumps({"x": v}) + b"\n" for v in values)
