"""Avro container blocks straight to Kafka records: the fused import's encoder for the avro parser.

Without it, the avro parser reads each block of a file into rows in C (block_rows in
pipelines/native/_avroread.c), and the rows then go through the filters and the Kafka output: a
Python object per value, twice the CSV import's time. For the imports pipelines.native.fused
reproduces (validate with `required` rules, add_columns, a Kafka output keyed by a string column
writing JSON values, or Avro values of a schema the compiled loop plans), `block_records` (the same
file) decodes a block's records straight into the records the output would produce: the same plan
as block_rows, then each record's key and value written from the block's bytes.

A block is the unit, not a record: a block with any record out of the ordinary (one block_rows hands
back, a null or empty key, a missing required value, a value written otherwise than the Python path
writes it) is not encoded at all, and the parser reads it into rows as before, so the error output's
entries, record numbers and counts stay the Python path's. The plan depends on the file's writer
schema, which is known once the file's header is read: the parser binds the encoder to each file
(`AvroBlockEncoder.bind`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pipelines.native.compiled import compiled
from pipelines.native.encoded import EncodedRecords, RecordLayout

# A file's block encoder: (a block's decompressed bytes, its record count) -> its records, or None.
BlockEncoder = Callable[[Any, int], EncodedRecords | None]


class AvroBlockEncoder:
    """block_records bound to a job's columns and RecordLayout; `bind` gives one file's block encoder."""

    def __init__(self, function: Any, columns: Sequence[Any], layout: RecordLayout) -> None:
        self.function, self.columns = function, tuple(columns)
        args: tuple[Any, ...] = (layout.key_index, layout.required, layout.parts)
        self.layout_args = args if layout.avro is None else args + (layout.avro,)

    def bind(self, writer_schema: Any) -> BlockEncoder | None:
        """The block encoder of a file written with `writer_schema` (read without a reader schema), or
        None when block_records does not read that schema (pipelines.engine.avro.reading.compiled_plan)."""
        from pipelines.engine.avro.reading import compiled_plan

        plan = compiled_plan(self.columns, writer_schema)
        if plan is None:
            return None
        function, args = self.function, (plan, len(self.columns), *self.layout_args)

        def encode(data: Any, count: int) -> EncodedRecords | None:
            records = function(data, count, *args)
            return None if records is None else EncodedRecords(records, count)

        return encode


def avro_encoder(parser: Any, layout: RecordLayout) -> AvroBlockEncoder | None:
    """block_records bound to the avro parser's columns and `layout`; None without the extension, or
    for a parser with a reader schema (fastavro resolves each file's records through it)."""
    function = compiled("pipelines.native._avroread", "block_records")
    if function is None or parser.reader_schema is not None:
        return None
    return AvroBlockEncoder(function, parser.columns, layout)
