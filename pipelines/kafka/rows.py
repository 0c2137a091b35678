"""A planned offset range of the Kafka input read as batches of rows.

Its records come through the compiled consume (pipelines.native.kafka) when it can be used, else
through confluent_kafka's; end markers of imports are never rows, and with `only_job_id` other jobs'
records are left out. Values are decoded into rows; a value that is not one, or a tombstone (no
value), goes to the error output under its offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.plan import PlanItem
from pipelines.engine.records import Batch
from pipelines.kafka.consumer import compiled_consumer_ok, consume_range
from pipelines.kafka.decode import Decoder, raw_values, value_text
from pipelines.kafka.markers import MARKER
from pipelines.native.kafka import split_messages

# A batch of a range's records: (values, their offsets, their keys, offsets of tombstones).
Records = tuple[list[bytes], list[int], list[Any], list[int]]


def range_records(settings: Any, where: str, item: PlanItem, batch_rows: int, job: tuple[str, bytes] | None) -> Iterator[Records]:
    """The range as (values, offsets, keys, tombstones) batches, end markers and (with `job`, a
    header) other jobs' records left out: read by the compiled loop (pipelines.native.kafka) when it can."""
    from pipelines.native.kafka import compiled_consume

    consume = compiled_consume() if compiled_consumer_ok(settings) else None
    if consume is not None:
        marker_name, marker_value = MARKER
        job_name, job_value = job if job is not None else (None, None)

        def fetch(consumer: Any, wanted: int, timeout: float, end: int) -> tuple[Any, list[tuple[int, int, str]], int]:
            return consume(consumer, wanted, int(timeout * 1000), end, marker_name, marker_value, job_name, job_value)

        yield from consume_range(settings, where, item, batch_rows, fetch)
        return
    split = split_messages()
    for messages in consume_range(settings, where, item, batch_rows, None):
        yield split(messages, MARKER, job)


def read_rows(
    records: Iterator[Records], source: str, errors: ErrorSink, decode: Decoder, key_index: int | None
) -> Iterator[tuple[Batch, int, int]]:
    """Batches of rows from batches of records, each with the records and the value bytes it
    consumed; with `key_index`, the record's key (as text) goes into that column."""
    for values, offsets, keys, tombstones in records:
        # End markers and other jobs' records are left out; tombstones (no value) go to the error output.
        failed = [(offset, "the record has no value (a tombstone)", "") for offset in tombstones]
        rows, positions, bad = decode(values) if values else ([], [], [])
        failed += [(offsets[p], f"cannot read the value: {reason}", value_text(values[p])) for p, reason in bad]
        for offset, reason, raw_text in sorted(failed):
            errors.add(source, offset, reason, raw_text)
        row_offsets = offsets if len(positions) == len(offsets) else [offsets[p] for p in positions]
        if key_index is not None:
            for row, p in zip(rows, positions):
                key = keys[p]
                row[key_index] = key.decode("utf-8", "replace") if key is not None else None
        if values or tombstones:
            batch = Batch(rows, row_offsets, source, raw_values(offsets, values))
            yield batch, len(values) + len(tombstones), sum(map(len, values))
