"""The compiled Avro reader (setup.py: pipelines/native/_avroread.c) gives exactly what fastavro and
RowConverter give: the same rows, positions, bad values and reasons from Kafka values in the
Confluent wire format, and the same batches, record numbers and error output from Avro container
files, for every field type and column type it reads; for the rest it steps aside."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest

from conftest import Errors
from pipelines.engine.avro.reading import (
    AS_IS,
    COMPILED_CONVERSIONS,
    FINITE,
    INCOMPATIBLE,
    TO_BOOLEAN,
    TO_DOUBLE,
    TO_LONG,
    TO_TEXT,
    _isoformat,
    _reader,
    compiled_plan,
)
from pipelines.engine.columns import ColumnSettings, _boolean_value, _finite, _long_value, _string_value
from pipelines.engine.records import Source
from pipelines.kafka.avro_wire import AvroDeserializer, AvroRowDecoder, header
from pipelines.kafka.schema_registry import SchemaNotFound
from pipelines.plugins.avro_parser import AvroParser, AvroParserSettings

avroread = pytest.importorskip("pipelines.native._avroread", reason="the C extensions are not built (no C compiler at install)")

NAN, INF = math.nan, math.inf
COLUMN_TYPES = ("string", "long", "double", "boolean", "timestamp", "json")
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
DAY_ONE, LAST_DAY = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
TIMES = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    datetime(1900, 2, 28, 1, 2, 3, tzinfo=UTC),
    datetime(2000, 2, 29, 12, tzinfo=UTC),
    datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
    DAY_ONE,
    LAST_DAY + timedelta(hours=23, minutes=59, seconds=59, milliseconds=999),
]

# Avro field type -> (values fastavro writes and reads back, values it writes but cannot read back)
FIELD_TYPES: dict[str, tuple[Any, list[Any], list[Any]]] = {
    "null": ("null", [None], []),
    "boolean": ("boolean", [True, False], []),
    "int": ("int", [0, 1, -1, 7, 2**31 - 1, -(2**31)], []),
    "long": ("long", [0, 1, -1, 7, 2**63 - 1, -(2**63), 2**53 + 1, 123456789012], []),
    "float": ("float", [0.0, -0.0, 1.5, 0.1, 2.0, 1e10, 16777217.0, 3.4e38, 1e-45, NAN, INF, -INF], []),
    "double": ("double", [0.0, -0.0, 0.1, 1.0, 9.2e18, 9.3e18, -(2.0**63), 2.0**63, 1e308, 5e-324, NAN, INF, -INF], []),
    "string": ("string", ["", "a", "é", "日本語", "🎉 ok", "x" * 300, "true", "1", " 5 ", "2024-05-06T07:08:09"], []),
    "timestamp-millis": (
        MILLIS,
        [*TIMES, -1, 1, -62135596800000, 253402300799999],
        [-62135596800001, 253402300800000, 2**63 - 1, -(2**63)],
    ),
    "timestamp-micros": (
        MICROS,
        [*TIMES, LAST_DAY + timedelta(days=1, microseconds=-1), DAY_ONE + timedelta(microseconds=1), -1, 1, -62135596800000000],
        [-62135596800000001, 253402300800000000, 2**63 - 1, -(2**63)],
    ),
}
EXTRA_FIELDS = [  # fields no column takes: read and skipped
    {"name": "skip_bytes", "type": "bytes"},
    {"name": "skip_long", "type": ["null", "long"]},
    {"name": "skip_text", "type": "string"},
    {"name": "skip_time", "type": MICROS},
    {"name": "skip_float", "type": ["float", "null"]},
]


def wrappings(name: str) -> list[tuple[str, Any]]:
    avro_type = FIELD_TYPES[name][0]
    if name == "null":
        return [("plain", avro_type)]
    return [("plain", avro_type), ("null first", ["null", avro_type]), ("null last", [avro_type, "null"])]


def schema_with(avro_type: Any) -> dict[str, Any]:
    fields = [{"name": "k", "type": "string"}, EXTRA_FIELDS[0], {"name": "v", "type": avro_type}, *EXTRA_FIELDS[1:]]
    return {"type": "record", "name": "R", "namespace": "t", "fields": fields}


def records_of(values: list[Any], nullable: bool) -> list[dict[str, Any]]:
    values = values + [None] * 2 if nullable else values
    return [
        {
            "k": f"k{i}",
            "v": v,
            "skip_bytes": bytes(range(i % 7)),
            "skip_long": None if i % 2 else -i,
            "skip_text": "ü" * (i % 3),
            "skip_time": -i * 1000003,
            "skip_float": None if i % 3 else i / 3,
        }
        for i, v in enumerate(values)
    ]


CASES = [
    pytest.param(name, wrap, avro_type, column_type, id=f"{name}-{wrap}-{column_type}")
    for name in FIELD_TYPES
    for wrap, avro_type in wrappings(name)
    for column_type in COLUMN_TYPES
]


class FakeRegistry:
    def __init__(self, schemas: dict[int, dict[str, Any]]) -> None:
        self.schemas = schemas

    def schema(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self.schemas:
            raise SchemaNotFound(f"no schema id {schema_id}", where="schema registry fake")
        return self.schemas[schema_id]


def outcome(run: Callable[[], Any]) -> str:
    """What `run` gives or raises, as text: repr tells -0.0 from 0.0, 1 from 1.0 and True, nan, time zones.
    Object addresses are left out: fastavro's messages name its stream ("cannot read double from
    <_io.BytesIO object at 0x...>"), a new one each time."""
    try:
        text = repr(("ok", run()))
    except Exception as exc:  # noqa: BLE001 - both paths must fail alike
        text = repr(("error", type(exc).__name__, str(exc)))
    return re.sub(r" at 0x[0-9a-f]+>", " at 0x...>", text)


def both(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> tuple[str, str]:
    """(Python path, compiled path) outcomes of `run`."""
    got = []
    for native in ("0", "1"):
        monkeypatch.setenv("PIPELINES_NATIVE", native)
        got.append(outcome(run))
    return got[0], got[1]


def encode(schema: dict[str, Any], record: dict[str, Any], schema_id: int = 7) -> bytes:
    out = io.BytesIO()
    out.write(header(schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def wire_rows(schemas: dict[int, dict[str, Any]], columns: list[ColumnSettings], values: list[Any]) -> Any:
    return AvroRowDecoder(AvroDeserializer(FakeRegistry(schemas)), columns, "kafka t")(values)


def container(schema: dict[str, Any], records: list[dict[str, Any]], codec: str = "null", sync_interval: int = 300) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec=codec, sync_interval=sync_interval)
    return out.getvalue()


def parsed(data: bytes, columns: list[ColumnSettings], batch_rows: int = 5, **settings: Any) -> Any:
    """Every batch (rows, record numbers, records consumed, the error output's text of each row) and the error output."""
    parser = AvroParser(AvroParserSettings(columns=tuple(columns), **settings), "in.parser")
    errors = Errors()
    batches = [
        (batch.rows, batch.line_nos, consumed, [batch.raw_line(n) for n in batch.line_nos])
        for batch, consumed in parser.batches(io.BytesIO(data), Source("mem://x.avro", len(data)), errors, batch_rows)
    ]
    return batches, errors.seen


# ---------------------------------------------------------------- the plan


TEXT_OF_KIND = {"int": str, "long": str, "float": repr, "double": repr, "boolean": _string_value, "timestamp": _isoformat}


def test_compiled_conversions_are_the_reader_tables() -> None:
    """Each conversion the compiled reader makes is the one RowConverter's table gives for that kind and column type."""
    expected = {AS_IS: None, TO_LONG: _long_value, TO_DOUBLE: float, FINITE: _finite, TO_BOOLEAN: _boolean_value}
    for (kind, column_type), conversion in COMPILED_CONVERSIONS.items():
        got = _reader(kind, column_type, None, False)
        want = TEXT_OF_KIND[kind] if conversion == TO_TEXT else expected[conversion]
        assert got is want, (kind, column_type, conversion, got)
    for kind in ("null", "boolean", "int", "long", "float", "double", "string", "timestamp"):
        for column_type in COLUMN_TYPES:
            if _reader(kind, column_type, None, False) is INCOMPATIBLE:
                assert (kind, column_type) not in COMPILED_CONVERSIONS


@pytest.mark.parametrize(
    "avro_type",
    [
        {"type": "enum", "name": "E", "symbols": ["A", "B"]},
        {"type": "fixed", "name": "F", "size": 2},
        {"type": "array", "items": "long"},
        {"type": "map", "values": "long"},
        {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "long"}]},
        {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
        {"type": "string", "logicalType": "uuid"},
        {"type": "int", "logicalType": "date"},
        {"type": "int", "logicalType": "time-millis"},
        {"type": "long", "logicalType": "local-timestamp-millis"},
        ["null", "long", "string"],
        ["long", "string"],
        ["null"],
        ["null", ["null", "long"]],
    ],
)
def test_plan_leaves_other_field_types_to_the_python_path(avro_type: Any) -> None:
    schema = schema_with(avro_type)
    assert compiled_plan([ColumnSettings("v", "json"), ColumnSettings("k")], schema) is None
    assert compiled_plan([ColumnSettings("k")], schema) is None  # even skipped: fastavro may fail on it


def test_plan_of_the_audience_schema() -> None:
    schema = {
        "type": "record",
        "name": "Row",
        "fields": [
            {"name": "user_id", "type": ["null", "string"]},
            {"name": "score", "type": ["null", "double"]},
            {"name": "extra", "type": "bytes"},
            {"name": "updated_at", "type": ["null", MICROS]},
        ],
    }
    columns = [ColumnSettings("updated_at", "timestamp"), ColumnSettings("user_id"), ColumnSettings("score", "double")]
    assert compiled_plan(columns, schema) == ((5, 0, 1, AS_IS), (4, 0, 2, FINITE), (6, -1, -1, AS_IS), (8, 0, 0, AS_IS))
    assert compiled_plan([*columns, ColumnSettings("missing")], schema) is None
    assert compiled_plan([*columns, ColumnSettings("user_id")], schema) is None  # two columns of one name
    assert compiled_plan([ColumnSettings("extra")], schema) is None  # bytes into text: base64, not compiled
    assert compiled_plan([ColumnSettings("user_id", "long")], schema) is None  # text parsed as a number: not compiled
    assert compiled_plan([ColumnSettings("x")], {"type": "record", "name": "N", "fields": [{"name": "x", "type": "null"}]}) is None


@pytest.mark.parametrize(
    ("plan", "ncols"),
    [
        (((5, -1, 0, AS_IS), (5, -1, 0, AS_IS)), 1),  # a column taken twice
        (((5, -1, 1, AS_IS),), 2),  # a column no field takes
        (((6, -1, 0, AS_IS),), 1),  # bytes into a column
        (((5, 2, 0, AS_IS),), 1),  # a null branch past 1
        (((9, -1, 0, AS_IS),), 1),  # no such type
        (((5, -1, 0, TO_LONG),), 1),  # a conversion strings do not have
        (((0, -1, 0, AS_IS),), 1),  # records of no bytes
        (((5, -1),), 1),
    ],
)
def test_compiled_reader_refuses_a_plan_it_cannot_follow(plan: Any, ncols: int) -> None:
    with pytest.raises((ValueError, TypeError)):
        avroread.wire_rows([b"\0\0\0\0\7\0"], 7, plan, ncols)
    with pytest.raises((ValueError, TypeError)):
        avroread.block_rows(b"\0", 1, plan, ncols)


# ---------------------------------------------------------------- every type into every column


@pytest.mark.parametrize(("name", "wrap", "avro_type", "column_type"), CASES)
def test_wire_values_of_every_type_decode_alike(monkeypatch: pytest.MonkeyPatch, name: str, wrap: str, avro_type: Any, column_type: str) -> None:
    schema = schema_with(avro_type)
    good, unreadable = FIELD_TYPES[name][1], FIELD_TYPES[name][2]
    values = [encode(schema, r) for r in records_of(good + unreadable, wrap != "plain")]
    columns = [ColumnSettings("v", column_type), ColumnSettings("k")]
    if (_kind_of(name), column_type) in COMPILED_CONVERSIONS:
        assert compiled_plan(columns, schema) is not None
    python, native = both(monkeypatch, lambda columns=columns: wire_rows({7: schema}, columns, values))
    assert native == python


@pytest.mark.parametrize(("name", "wrap", "avro_type", "column_type"), CASES)
def test_container_blocks_of_every_type_read_alike(monkeypatch: pytest.MonkeyPatch, name: str, wrap: str, avro_type: Any, column_type: str) -> None:
    schema = schema_with(avro_type)
    data = container(schema, records_of(FIELD_TYPES[name][1], wrap != "plain"))
    columns = [ColumnSettings("v", column_type), ColumnSettings("k")]
    python, native = both(monkeypatch, lambda: parsed(data, columns))
    assert native == python


def _kind_of(name: str) -> str:
    return "timestamp" if name.startswith("timestamp") else name


def test_compiled_reader_makes_the_rows_fastavro_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled path really runs, and makes the values themselves (not only the same repr)."""
    schema = schema_with(["null", MILLIS])
    records = records_of([datetime(1969, 12, 31, 23, 59, 59, 1000, tzinfo=UTC)], True)
    values = [encode(schema, r) for r in records]
    plan = compiled_plan([ColumnSettings("v", "timestamp"), ColumnSettings("k")], schema)
    rows, handed_back = avroread.wire_rows(values, 7, plan, 2)
    assert handed_back == []
    assert rows == [[datetime(1969, 12, 31, 23, 59, 59, 1000, tzinfo=UTC), "k0"], [None, "k1"], [None, "k2"]]
    assert rows[0][0].tzinfo is UTC  # timezone.utc, as fastavro's
    text_plan = compiled_plan([ColumnSettings("v", "string"), ColumnSettings("k")], schema)
    assert avroread.wire_rows(values[:1], 7, text_plan, 2)[0] == [["1969-12-31T23:59:59.001000+00:00", "k0"]]


# ---------------------------------------------------------------- values out of the ordinary

SMALL = {
    "type": "record",
    "name": "Small",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "n", "type": ["null", "long"]},
        {"name": "note", "type": "string"},
        {"name": "score", "type": "double"},
    ],
}
OTHER = {
    "type": "record",
    "name": "Other",
    "fields": [{"name": "score", "type": "float"}, {"name": "id", "type": "string"}, {"name": "n", "type": "int"}],
}
SMALL_COLUMNS = [ColumnSettings("n", "long"), ColumnSettings("id"), ColumnSettings("score", "double")]


def small(i: int, **changes: Any) -> bytes:
    return encode(SMALL, {"id": f"u{i}", "n": None if i % 2 else i, "note": "Aÿ", "score": i / 2, **changes})


def bad_values() -> list[Any]:
    good = small(1)
    utf8 = good.index(b"A\xc3\xbf")
    values: list[Any] = [good[:k] for k in range(len(good))]  # cut short anywhere, the header too
    values += [
        good + b"\0",  # a byte after the record
        b"\1" + good[1:],  # not the magic byte
        small(2)[:-1] + b"\x01",
        encode(OTHER, {"score": 0.25, "id": "o", "n": 3}, 8),  # another schema id
        good[:utf8] + b"A\xff\xbf" + good[utf8 + 3 :],  # not UTF-8, in a field no column takes
        encode(SMALL, {"id": "ÿ", "n": 1, "note": "", "score": 1.0}).replace(b"\xc3\xbf", b"\xc3\x28"),  # nor in a column
        header(7) + b"\x04id" + b"\x04\x02" + b"\x00" + bytes(8),  # union branch 2
        header(7) + b"\x04id" + b"\x01\x02" + b"\x00" + bytes(8),  # union branch -1 (the last, to fastavro)
        header(7) + b"\x04id" + b"\x02" + b"\x80" * 10 + b"\x00" + b"\x00" + bytes(8),  # a long of 11 bytes
        header(7) + b"\x04id" + b"\x02" + b"\xff" * 9 + b"\x7f" + b"\x00" + bytes(8),  # of 10, past 64 bits
        header(7) + b"\x04id" + b"\x02\x02" + b"\x7f" + bytes(8),  # a negative length
        small(3, score=NAN),  # does not convert
        None,
        bytearray(small(4)),
        small(5),
    ]
    return values


def test_bad_wire_values_are_reported_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    values = bad_values()
    python, native = both(monkeypatch, lambda: wire_rows({7: SMALL, 8: OTHER}, SMALL_COLUMNS, values))
    assert native == python
    rows, positions, bad = wire_rows({7: SMALL, 8: OTHER}, SMALL_COLUMNS, values)  # PIPELINES_NATIVE=1, as both() leaves it
    assert positions[-1] == len(values) - 1 and rows[-1] == [None, "u5", 2.5]
    reasons = dict(bad)
    assert "byte(s) after the record" in reasons[len(small(1))]
    assert "not the magic byte 0" in reasons[len(small(1)) + 1]
    assert "UnicodeDecodeError" in reasons[len(small(1)) + 4]
    assert "cannot convert nan" in reasons[len(values) - 4]


def test_bad_wire_values_among_good_ones_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    goods = [small(i) for i in range(40)]
    values = [v for pair in zip(goods, bad_values()) for v in pair] + goods[len(bad_values()) :]
    python, native = both(monkeypatch, lambda: wire_rows({7: SMALL, 8: OTHER}, SMALL_COLUMNS, values))
    assert native == python


def test_wire_values_of_an_unknown_schema_id_fail_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [small(1), encode(OTHER, {"score": 1.0, "id": "o", "n": 3}, 9), small(2)]
    python, native = both(monkeypatch, lambda: wire_rows({7: SMALL}, SMALL_COLUMNS, values))
    assert native == python and "SchemaNotFound" in native
    first_unknown = [encode(OTHER, {"score": 1.0, "id": "o", "n": 3}, 9), small(1)]
    python, native = both(monkeypatch, lambda: wire_rows({7: SMALL}, SMALL_COLUMNS, first_unknown))
    assert native == python and "SchemaNotFound" in native


def test_wire_values_of_a_schema_without_a_column_fail_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [*SMALL_COLUMNS, ColumnSettings("missing")]
    python, native = both(monkeypatch, lambda: wire_rows({7: SMALL}, columns, [small(1), small(2)]))
    assert native == python and "DataError" in native and "has no field 'missing'" in native
    python, native = both(monkeypatch, lambda: wire_rows({7: SMALL}, columns, [small(1)[:-1]]))  # nothing decodes: no error
    assert native == python and "ok" in native


def test_wire_batch_mostly_of_another_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    other = [encode(OTHER, {"score": i / 8, "id": f"o{i}", "n": i}, 8) for i in range(20)]
    values = [small(0), *other, small(1)]
    python, native = both(monkeypatch, lambda: wire_rows({7: SMALL, 8: OTHER}, SMALL_COLUMNS, values))
    assert native == python


def test_any_boolean_byte_but_zero_is_true_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"type": "record", "name": "B", "fields": [{"name": "b", "type": "boolean"}, {"name": "c", "type": ["boolean", "null"]}]}
    values = [header(7) + bytes([b, 0, c]) for b in (0, 1, 2, 255) for c in (0, 1, 128)] + [header(7) + b"\x02\x02"]
    for column_type in ("boolean", "string", "json"):
        columns = [ColumnSettings("c", column_type), ColumnSettings("b", column_type)]
        python, native = both(monkeypatch, lambda columns=columns: wire_rows({7: schema}, columns, values))
        assert native == python and ("True" in native or "'true'" in native)
    rows, handed_back = avroread.wire_rows(values, 7, compiled_plan([ColumnSettings("b", "boolean"), ColumnSettings("c", "boolean")], schema), 2)
    assert handed_back == [] and rows[-1] == [True, None] and rows[7] == [True, True]


def test_compiled_reader_hands_back_what_it_does_not_read() -> None:
    plan = compiled_plan(SMALL_COLUMNS, SMALL)
    values = bad_values()
    rows, handed_back = avroread.wire_rows(values, 7, plan, len(SMALL_COLUMNS))
    assert len(rows) + len(handed_back) == len(values)
    assert handed_back == sorted(handed_back) and len(values) - 1 not in handed_back
    assert rows[-1] == [None, "u5", 2.5]
    # fastavro reads a 10-byte long past 64 bits as the compiled reader does: that one is not handed back
    assert len(values) - 6 not in handed_back


# ---------------------------------------------------------------- container files


def audience(n: int) -> list[dict[str, Any]]:
    return [
        {
            "user_id": f"u{i:09d}",
            "country": ("JP", "US", "FR", "DE")[i % 4],
            "score": None if i % 7 == 0 else i / 8,
            "opted_in": i % 3 != 0,
            "updated_at": datetime(2026, 11, 1 + i % 28, 12, tzinfo=UTC) + timedelta(microseconds=i),
            "segment_id": i * 1000003,
        }
        for i in range(n)
    ]


AUDIENCE = {
    "type": "record",
    "name": "Row",
    "fields": [
        {"name": "user_id", "type": ["null", "string"], "default": None},
        {"name": "country", "type": ["null", "string"], "default": None},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "opted_in", "type": ["null", "boolean"], "default": None},
        {"name": "updated_at", "type": ["null", MICROS], "default": None},
        {"name": "segment_id", "type": ["null", "long"], "default": None},
    ],
}
AUDIENCE_COLUMNS = [
    ColumnSettings("user_id"),
    ColumnSettings("country"),
    ColumnSettings("score", "double"),
    ColumnSettings("opted_in", "boolean"),
    ColumnSettings("updated_at", "timestamp"),
    ColumnSettings("segment_id", "long"),
]


@pytest.mark.parametrize("codec", ["null", "deflate", "zstandard"])
@pytest.mark.parametrize("batch_rows", [1, 7, 1000])
def test_container_files_read_alike_in_any_batches(monkeypatch: pytest.MonkeyPatch, codec: str, batch_rows: int) -> None:
    from pipelines.engine.avro.codecs import ensure_zstandard_codec

    ensure_zstandard_codec()
    records = audience(300)
    records[100]["score"] = NAN  # a bad row: its block goes the Python path
    data = container(AUDIENCE, records, codec, sync_interval=2000)
    python, native = both(monkeypatch, lambda: parsed(data, AUDIENCE_COLUMNS, batch_rows))
    assert native == python
    assert "cannot convert nan" in native


def test_container_blocks_are_read_by_the_compiled_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_NATIVE", "1")
    data = container(AUDIENCE, audience(50), sync_interval=500)
    parser = AvroParser(AvroParserSettings(columns=tuple(AUDIENCE_COLUMNS)), "in.parser")
    read = parser._compiled_reader(fastavro.block_reader(io.BytesIO(data)))
    assert read is not None
    blocks = list(fastavro.block_reader(io.BytesIO(data)))
    assert len(blocks) > 2 and all(read(b) is not None for b in blocks)
    with_avsc = AvroParser(AvroParserSettings(columns=tuple(AUDIENCE_COLUMNS[:2]), avsc=AUDIENCE), "in.parser")
    assert with_avsc._compiled_reader(fastavro.block_reader(io.BytesIO(data))) is None  # a reader schema: fastavro resolves
    monkeypatch.setenv("PIPELINES_NATIVE", "0")
    assert parser._compiled_reader(fastavro.block_reader(io.BytesIO(data))) is None


def test_container_through_a_reader_schema_reads_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    data = container(AUDIENCE, audience(30))
    python, native = both(monkeypatch, lambda: parsed(data, AUDIENCE_COLUMNS[:3], avsc=AUDIENCE))
    assert native == python


@pytest.mark.parametrize("cut", [1, 10, 200, 1000])
def test_truncated_and_corrupt_files_fail_alike(monkeypatch: pytest.MonkeyPatch, cut: int) -> None:
    data = container(AUDIENCE, audience(100), sync_interval=1500)
    python, native = both(monkeypatch, lambda: parsed(data[:-cut], AUDIENCE_COLUMNS))
    assert native == python


def test_container_string_not_utf8_fails_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    records = audience(40)
    records[25]["country"] = "Aÿ"
    data = container(AUDIENCE, records).replace(b"A\xc3\xbf", b"A\xff\xbf")
    python, native = both(monkeypatch, lambda: parsed(data, AUDIENCE_COLUMNS))
    assert native == python and "UnicodeDecodeError" in native


@pytest.mark.parametrize("name", ["timestamp-millis", "timestamp-micros"])
def test_container_timestamp_outside_datetime_fails_alike(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    schema = schema_with(FIELD_TYPES[name][0])
    for value in FIELD_TYPES[name][2]:
        data = container(schema, records_of([*FIELD_TYPES[name][1], value], False))
        python, native = both(monkeypatch, lambda data=data: parsed(data, [ColumnSettings("v", "timestamp")]))
        assert native == python and "error" in native


def test_container_record_count_past_the_block_fails_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]}
    data = container(schema, [{"n": i} for i in range(3)])
    sync = data[-16:]
    block = data.index(sync) + 16  # the first block: its count (3: zigzag 6), its size, its records
    assert data[block] == 6
    python, native = both(monkeypatch, lambda: parsed(data[:block] + b"\x08" + data[block + 1 :], [ColumnSettings("n", "long")]))
    assert native == python and "error" in native
    python, native = both(monkeypatch, lambda: parsed(data[:block] + b"\x04" + data[block + 1 :], [ColumnSettings("n", "long")]))
    assert native == python
