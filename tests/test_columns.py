"""The batch JSON-object converter (Kafka input) agrees with the record-by-record one on every input,
good and bad: same rows, same positions, same reasons."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from pipelines.engine.columns import LONG_MAX, ColumnSettings, record_converter, records_converter

COLUMNS = (
    ColumnSettings("id"),
    ColumnSettings("n", "long"),
    ColumnSettings("x", "double"),
    ColumnSettings("ok", "boolean"),
    ColumnSettings("at", "timestamp"),
    ColumnSettings("j", "json"),
)
VALUES = {
    "id": ["a", "", 5, True, None, {"k": 1}],
    "n": [1, -3, LONG_MAX, LONG_MAX + 1, 2.0, 2.5, "7", "x", True, None],
    "x": [1.5, 2, "3.25", "nan", "inf", "x", False, None],
    "ok": [True, False, "yes", "no", "maybe", 1, None],
    "at": ["2026-11-01T12:00:00Z", "2026-11-01T12:00:00+09:00", "2026-11-01", "nope", 5, None],
    "j": [{"a": [1]}, [1, 2], "text", None],
}


def one_by_one(records: list[dict]) -> tuple[list, list, list]:
    to_row = record_converter(COLUMNS)
    rows, positions, bad = [], [], []
    for position, record in enumerate(records):
        try:
            rows.append(to_row(record))
            positions.append(position)
        except ValueError as exc:
            bad.append((position, str(exc)))
    return rows, positions, bad


def test_batches_of_random_records_convert_as_record_by_record():
    rng = random.Random(3)
    convert = records_converter(COLUMNS)
    for _ in range(300):
        records = []
        for _ in range(rng.randint(0, 12)):
            record = {name: rng.choice(values) for name, values in VALUES.items() if rng.random() < 0.95}
            records.append(record)
        assert convert(records) == one_by_one(records), records


def test_a_clean_batch_keeps_native_values_and_parses_timestamps():
    records = [{"id": "a", "n": 1, "x": 0.5, "ok": True, "at": "2026-11-01T12:00:00Z", "j": {"k": [1]}}] * 3
    rows, positions, bad = records_converter(COLUMNS)(records)
    assert (positions, bad) == ([0, 1, 2], [])
    assert rows[0] == ["a", 1, 0.5, True, datetime(2026, 11, 1, 12, tzinfo=timezone.utc), {"k": [1]}]
    assert all(type(row) is list for row in rows)


def test_a_long_past_64_bits_is_a_bad_row_in_a_batch_of_ints():
    records = [{"id": "a", "n": 1}, {"id": "b", "n": LONG_MAX + 1}]
    rows, positions, bad = records_converter(COLUMNS)(records)
    assert positions == [0] and bad == [(1, f"column 'n' (long): cannot convert {LONG_MAX + 1}")]
