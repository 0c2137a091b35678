"""CSV rows straight to Kafka records: the import's parser, filters and output fused in C.

For the common import (a csv parser, `validate` with `required` rules and `add_columns`, a Kafka
output writing keyed JSON values through the compiled produce loop), most rows need no Python
object at all: `encode_records` (pipelines/native/_fastrows.c) turns their text into each record's key and
JSON value, exactly as the parser, the filters and the output would, and the output produces them
in one C call (`produce_records`, pipelines/native/_fastkafka.c). Any record out of the ordinary (a
quote, a wrong number of fields, a value that does not convert or is written differently, an empty
key or required value, text that is not ASCII) goes the usual way, through rows, the filters and the
error output, in its place in line order.

`record_encoding(job)`, once the output is open, gives the parser what encode_records needs, or None
when any piece of the job is not one it reproduces exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.engine.config import Job

# pipelines/native/_fastrows.c: encode_records's column kinds
KINDS = {"string": 0, "long": 1, "double": 2, "boolean": 3, "timestamp": 4}


@dataclass(frozen=True)
class RecordEncoding:
    """encode_records's arguments after (text, pos, final, limit, line)."""

    args: tuple[Any, ...]


def record_encoding(job: Job) -> RecordEncoding | None:
    """For a job whose output is open: the encoding of its records, or None."""
    from pipelines.plugins.kafka_output import KafkaOutput

    output = job.output
    if type(output) is not KafkaOutput or output.batch_producer is None or output.key_index is None:
        return None
    return encoding_for(job.parser, job.filters, output.key_index, output.value_indexes, output.value_names)


def encoding_for(
    parser: Any, filters: list[Any], key_index: int, value_indexes: list[int], value_names: list[str]
) -> RecordEncoding | None:
    """What encode_records needs to give what `parser`, then `filters`, then a Kafka output keyed by
    the column `key_index` with the JSON values {value_names[j]: row[value_indexes[j]]} give; None
    when any of them does something it does not reproduce."""
    from pipelines.engine.columns import BOOLEANS
    from pipelines.plugins.column_filters import AddColumnsFilter
    from pipelines.plugins.csv_parser import CsvParser
    from pipelines.plugins.validate_filter import ValidateFilter

    if type(parser) is not CsvParser or parser.split_rows is None:
        return None
    columns = parser.settings.columns
    ncols = len(columns)
    if any(c.type not in KINDS or (c.type == "timestamp" and c.format) for c in columns):
        return None
    import orjson

    required: set[int] = set()
    constants: list[Any] = []  # the added columns' values, in schema order after the parser's
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
    if key_index >= ncols or columns[key_index].type != "string":
        return None
    parts = []
    for j, (index, name) in enumerate(zip(value_indexes, value_names)):
        label = (b"," if j else b"") + orjson.dumps(name) + b":"
        parts.append((label, index if index < ncols else orjson.dumps(constants[index - ncols])))
    booleans = tuple((word, value) for word, value in BOOLEANS.items() if word.isascii())
    s = parser.settings
    return RecordEncoding(
        (
            tuple(KINDS[c.type] for c in columns),
            booleans,
            s.null_string,
            s.delimiter,
            s.quote or "",
            key_index,
            tuple(sorted(required)),
            tuple(parts),
        )
    )
