"""Rows straight to Kafka records: the import's parser, filters and output fused in C.

For the common import (a csv parser, `validate` with `required` rules and `add_columns`, a Kafka
output writing keyed JSON values through the compiled produce loop), most rows need no Python
object at all: `encode_records` (pipelines/native/_fastrows.c) turns their text into each record's key and
JSON value, exactly as the parser, the filters and the output would, and the output produces them
in one C call (`produce_records`, pipelines/native/_fastkafka.c). Any record out of the ordinary (a
quote, a wrong number of fields, a value that does not convert or is written differently, an empty
key or required value, text that is not ASCII) goes the usual way, through rows, the filters and the
error output, in its place in line order.

`record_layout` says what every parser's encoder writes (the key, the required columns, the value's
parts: pipelines.native.encoded.RecordLayout); `record_encoder` asks the parser for its encoder
(ParserPlugin.fused_encoder: pipelines.native.text_encoders for csv and jsonl,
pipelines.native.fused_avro for avro), which its `read_batches` takes.

`FusedImport.choose(job, output)` is the Kafka output's `fused_path` (pipelines.engine.spi): chosen
once per shard, after the output is open, or None when any piece of the job is not one it
reproduces exactly. The engine then reads the shard's items through it, and hands the records it
made to its `write`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from pipelines.engine.spi import FusedPath
from pipelines.native.compiled import COLUMN_KINDS
from pipelines.native.encoded import EncodedRecords, RecordLayout

__all__ = ["EncodedRecords", "FusedCount", "FusedImport", "RecordLayout", "record_encoder", "record_layout"]

if TYPE_CHECKING:
    from pipelines.engine.config import Job
    from pipelines.engine.error_output import ErrorSink
    from pipelines.engine.records import Source


class _ParserPath(FusedPath):
    """A shard's objects read by its parser's `read_batches` with an encoder, the records going to `output`."""

    def __init__(self, parser: Any, encoder: Any, output: Any) -> None:
        self.parser, self.encoder, self.output = parser, encoder, output

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool, split: bool
    ) -> Iterator[tuple[Any, int]]:
        return self.parser.read_batches(stream, source, errors, batch_rows, header, split, self.encoder)


class FusedImport(_ParserPath):
    """A shard's objects read by its parser with an encoder (record_encoder), the records going to the Kafka output."""

    @classmethod
    def choose(cls, job: Job, output: Any) -> FusedImport | None:
        """For a job whose Kafka output is open: the fused path, or None.

        None for rows routed per row (topic_column, partition_column_name, column_for_deletion:
        pipelines.kafka.routing): the fused encoders write one keyed value per row to one topic, so
        such an output has no batch producer (producer.batches_natively declines) and its rows take
        the rows path. `routing` is checked here too, so that holds whatever the producer does."""
        if output.batch_producer is None or output.key_index is None or getattr(output, "routing", None) is not None:
            return None
        if output.serializer is None:
            encoder = record_encoder(job.parser, job.filters, output.key_index, output.value_indexes, output.value_names)
        elif output.avro_records is not None:  # Avro values, of a schema pipelines.native.avro_values plans
            encoder = record_encoder(job.parser, job.filters, output.key_index, [], [], output.avro_records)
        else:
            return None
        return None if encoder is None else cls(job.parser, encoder, output)

    def write(self, records: EncodedRecords) -> None:
        self.output.write_encoded(records)


class FusedCount(_ParserPath):
    """A shard's objects read by its parser with an encoder that only counts the rows that would reach
    the output (the null output's path: nothing is made of them)."""

    @classmethod
    def choose(cls, job: Job, output: Any) -> FusedCount | None:
        """For a job whose parser counts rows in C (its `fused_encoder` with no key) and whose filters
        the encoders reproduce: the path, or None."""
        columns = job.parser.schema().columns
        filtered = _filter_effects(job.filters, len(columns)) if all(c.type in COLUMN_KINDS for c in columns) else None
        if filtered is None:
            return None
        encoder = job.parser.fused_encoder(RecordLayout(-1, filtered[0], ()))  # no key, no value: counted only
        return None if encoder is None else cls(job.parser, encoder, output)

    def write(self, records: EncodedRecords) -> None:
        self.output.rows += records.count


def record_encoder(
    parser: Any, filters: list[Any], key_index: int, value_indexes: list[int], value_names: list[str], avro: Any = None
) -> Any:
    """What gives what `parser`, then `filters`, then a Kafka output keyed by the column `key_index` with
    the JSON values {value_names[j]: row[value_indexes[j]]} give (with `avro`, a
    pipelines.native.avro_values.AvroRecords: the Avro values it writes), for the parser's
    `read_batches`; None when any of them does something the parser's encoder does not reproduce,
    or without the extension."""
    layout = record_layout(parser.schema().columns, filters, key_index, value_indexes, value_names, avro)
    return None if layout is None else parser.fused_encoder(layout)


def record_layout(
    columns: Any, filters: list[Any], key_index: int, value_indexes: list[int], value_names: list[str], avro: Any = None
) -> RecordLayout | None:
    """The RecordLayout of rows of `columns` (pipelines.engine.records.Column) through `filters` into
    the Kafka output's records (see record_encoder); None when a filter or a column is not one the
    fused encoders reproduce."""
    if any(c.type not in COLUMN_KINDS for c in columns):
        return None
    if key_index >= len(columns) or columns[key_index].type != "string":
        return None
    filtered = _filter_effects(filters, len(columns))
    if filtered is None:
        return None
    required, constants = filtered
    if avro is None:
        return RecordLayout(key_index, required, _value_parts(value_indexes, value_names, constants, len(columns)))
    avro_parts = _avro_parts(avro, constants, len(columns))
    if avro_parts is None:
        return None
    parts, codes = avro_parts
    return RecordLayout(key_index, required, parts, (avro.header, codes))


def _filter_effects(filters: list[Any], ncols: int) -> tuple[tuple[int, ...], list[Any]] | None:
    """(the required columns, the added columns' values in schema order after the parser's) of filters
    that only check `required` and add constants; None for any other filter."""
    from pipelines.plugins.column_filters import AddColumnsFilter
    from pipelines.plugins.validate_filter import ValidateFilter

    required: set[int] = set()
    constants: list[Any] = []
    for f in filters:
        if type(f) is ValidateFilter:
            for index, rule, pattern, allowed in f.checks:
                if pattern is not None or allowed is not None or index >= ncols:
                    return None
                if rule.required:
                    required.add(index)
        elif type(f) is AddColumnsFilter:
            constants += f.values
        else:
            return None
    return tuple(sorted(required)), constants


def _value_parts(value_indexes: list[int], value_names: list[str], constants: list[Any], ncols: int) -> tuple[Any, ...]:
    """Each JSON value member: its label (`"name":`, after a comma but the first) and the column it
    takes, or the added constant's JSON."""
    import orjson

    parts = []
    for j, (index, name) in enumerate(zip(value_indexes, value_names)):
        label = (b"," if j else b"") + orjson.dumps(name) + b":"
        parts.append((label, index if index < ncols else orjson.dumps(constants[index - ncols])))
    return tuple(parts)


def _avro_parts(avro: Any, constants: list[Any], ncols: int) -> tuple[tuple[Any, ...], tuple[tuple[int, int, int], ...]] | None:
    """The parts and codes of encode_records's Avro values, from the plan of `avro` (an AvroRecords):
    a column's field as (b"", its index) and its (code, null branch, value branch); an added
    column's, or a field no column gives, as its constant's Avro bytes (made by avro_records itself).
    None if a constant does not encode."""
    parts, codes = [], []
    for index, code, null_branch, value_branch in avro.plan:
        if 0 <= index < ncols:
            parts.append((b"", index))
            codes.append((code, null_branch, value_branch))
            continue
        value = None if index < 0 else constants[index - ncols]
        stop, _, data = avro.function([[value]], 0, -1, b"", ((0, code, null_branch, value_branch),))
        if stop != 1:
            return None
        parts.append((b"", data[8:]))  # after the record's two lengths (no key)
        codes.append((code, null_branch, value_branch))
    return tuple(parts), tuple(codes)
