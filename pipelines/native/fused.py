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
parts); `record_encoder` picks the parser's encoder, which its `read_batches` takes.

`FusedImport.choose(job, output)` is the Kafka output's `fused_path` (pipelines.engine.spi): chosen
once per shard, after the output is open, or None when any piece of the job is not one it
reproduces exactly. The engine then reads the shard's items through it, and hands the records it
made to its `write`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from pipelines.engine.spi import FusedPath
from pipelines.native.compiled import COLUMN_KINDS, compiled

if TYPE_CHECKING:
    from pipelines.engine.config import Job
    from pipelines.engine.error_output import ErrorSink
    from pipelines.engine.records import Source


@dataclass(frozen=True)
class EncodedRecords:
    """Records made from a run of CSV rows: `count` records in `data`, each a native uint32 key length,
    a uint32 value length, the key, the value (what produce_records reads)."""

    data: bytes
    count: int


class RecordEncoder:
    """encode_records bound to one job's columns, filters and value layout: the CSV parser's encoder
    (text, pos, final, limit, line) -> (how it ended, pos, line, EncodedRecords or None)."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.encode_records = compiled("pipelines.native._fastrows", "encode_records")
        self.args = args  # encode_records's arguments after (text, pos, final, limit, line)

    def __call__(self, text: str, pos: int, final: bool, limit: int, line: int) -> tuple[int, int, int, EncodedRecords | None]:
        done, pos, line, count, data = self.encode_records(text, pos, final, limit, line, *self.args)
        return done, pos, line, (EncodedRecords(data, count) if count else None)


class FusedImport(FusedPath):
    """A shard's objects read by its parser with an encoder (record_encoder), the records going to the Kafka output."""

    def __init__(self, parser: Any, encoder: Any, output: Any) -> None:
        self.parser, self.encoder, self.output = parser, encoder, output

    @classmethod
    def choose(cls, job: Job, output: Any) -> FusedImport | None:
        """For a job whose Kafka output is open: the fused path, or None."""
        if output.batch_producer is None or output.key_index is None:
            return None
        if output.serializer is None:
            encoder = record_encoder(job.parser, job.filters, output.key_index, output.value_indexes, output.value_names)
        elif output.avro_records is not None:  # Avro values, of a schema pipelines.native.avro_values plans
            encoder = record_encoder(job.parser, job.filters, output.key_index, [], [], output.avro_records)
        else:
            return None
        return None if encoder is None else cls(job.parser, encoder, output)

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool, split: bool
    ) -> Iterator[tuple[Any, int]]:
        return self.parser.read_batches(stream, source, errors, batch_rows, header, split, self.encoder)

    def write(self, records: EncodedRecords) -> None:
        self.output.write_encoded(records)


@dataclass(frozen=True)
class RecordLayout:
    """What a fused encoder writes for each row of the parser's columns, whatever the parser: the key
    (the string column `key_index`), the columns `required` (neither null nor empty, by the validate
    filter), and the value's `parts`: for a JSON value, ('"name":' bytes, with ',' before all but the
    first; a column index or the constant's JSON bytes); for an Avro value (`avro` = (wire-format
    header, one (code, null branch, value branch) a part)), (b"", a column index or the constant's
    Avro bytes) in the record schema's order."""

    key_index: int
    required: tuple[int, ...]
    parts: tuple[Any, ...]
    avro: tuple[bytes, tuple[tuple[int, int, int], ...]] | None = None


class FusedCount(FusedPath):
    """A shard's objects read by its parser with an encoder that only counts the rows that would reach
    the output (the null output's path: nothing is made of them)."""

    def __init__(self, parser: Any, encoder: Any, output: Any) -> None:
        self.parser, self.encoder, self.output = parser, encoder, output

    @classmethod
    def choose(cls, job: Job, output: Any) -> FusedCount | None:
        """For a job whose parser is a csv or jsonl one and whose filters the encoders reproduce: the path, or None."""
        from pipelines.plugins.csv_parser import CsvParser
        from pipelines.plugins.jsonl_parser import JsonlParser

        columns = job.parser.schema().columns
        filtered = _filter_effects(job.filters, len(columns)) if all(c.type in COLUMN_KINDS for c in columns) else None
        if filtered is None:
            return None
        layout = RecordLayout(-1, filtered[0], ())  # no key, no value: counted only
        if type(job.parser) is CsvParser:
            encoder: Any = csv_encoder(job.parser, layout)
        elif type(job.parser) is JsonlParser:
            encoder = jsonl_encoder(job.parser, layout)
        else:
            return None
        return None if encoder is None else cls(job.parser, encoder, output)

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool, split: bool
    ) -> Iterator[tuple[Any, int]]:
        return self.parser.read_batches(stream, source, errors, batch_rows, header, split, self.encoder)

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
    if layout is None:
        return None
    from pipelines.plugins.csv_parser import CsvParser

    from pipelines.plugins.jsonl_parser import JsonlParser

    if type(parser) is CsvParser:
        return csv_encoder(parser, layout)
    if type(parser) is JsonlParser:
        return jsonl_encoder(parser, layout)
    from pipelines.plugins.avro_parser import AvroParser

    if type(parser) is AvroParser:
        from pipelines.native.fused_avro import avro_encoder

        return avro_encoder(parser, layout)
    return None


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


def csv_encoder(parser: Any, layout: RecordLayout) -> RecordEncoder | None:
    """encode_records bound to the CSV parser's settings and `layout`; None for a parser it does not read."""
    if parser.split_rows is None or compiled("pipelines.native._fastrows", "encode_records") is None:
        return None
    columns = parser.settings.columns
    if any(c.type == "timestamp" and c.format for c in columns):
        return None
    args = _encoder_args(parser, layout.key_index, layout.required, layout.parts)
    return RecordEncoder(args if layout.avro is None else args + (layout.avro,))


class JsonRecordEncoder:
    """encode_json_records bound to one job's columns and layout: the jsonl parser's encoder
    (data, pos, limit, line) -> (how it ended, pos, line, EncodedRecords or None)."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.encode = compiled("pipelines.native._fastrows", "encode_json_records")
        self.args = args  # encode_json_records's arguments after (data, pos, limit, line)

    def __call__(self, data: bytes, pos: int, limit: int, line: int) -> tuple[int, int, int, EncodedRecords | None]:
        done, pos, line, count, records = self.encode(data, pos, limit, line, *self.args)
        return done, pos, line, (EncodedRecords(records, count) if count else None)


def jsonl_encoder(parser: Any, layout: RecordLayout) -> JsonRecordEncoder | None:
    """encode_json_records bound to the jsonl parser's columns and `layout`; None for columns it does
    not read (a timestamp with a format), or without the extension."""
    columns = parser.settings.columns
    if compiled("pipelines.native._fastrows", "encode_json_records") is None or any(c.format for c in columns):
        return None
    kinds = tuple(COLUMN_KINDS[c.type] for c in columns)
    names = tuple(c.name.encode() for c in columns)
    args = (kinds, names, layout.key_index, layout.required, layout.parts)
    return JsonRecordEncoder(args if layout.avro is None else args + (layout.avro,))


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


def _encoder_args(parser: Any, key_index: int, required: tuple[int, ...], parts: tuple[Any, ...]) -> tuple[Any, ...]:
    from pipelines.engine.columns import BOOLEANS

    s = parser.settings
    booleans = tuple((word, value) for word, value in BOOLEANS.items() if word.isascii())
    kinds = tuple(COLUMN_KINDS[c.type] for c in s.columns)
    return (kinds, booleans, s.null_string, s.delimiter, s.quote or "", key_index, required, parts)
