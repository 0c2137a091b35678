"""`formatter: {type: avro, codec: zstandard}`: Avro object container files, for file and S3 outputs.

Each file is a complete container file (header with the schema, then blocks), so rotated files
are readable on their own. The schema is `avsc`/`avsc_file` when given (checked against the
columns), else derived from the columns: every field nullable, timestamps as timestamp-micros,
json columns as JSON text. Blocks are compressed by the codec, so the output takes no encoders.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, Any, Literal

from pipelines.engine.errors import DataError
from pipelines.engine.spi import FormatterPlugin
from pipelines.engine.records import Schema


@dataclass(frozen=True)
class AvroFormatterSettings:
    codec: Literal["null", "deflate", "zstandard"] = "zstandard"
    codec_compression_level: int | None = None
    avsc: Any = None  # a schema (mapping or JSON text); default: derived from the columns
    avsc_file: str | None = None
    record_name: str = "Row"
    block_bytes: int = 1 << 20  # uncompressed bytes per block (fastavro's sync_interval)

    def __post_init__(self) -> None:
        if self.avsc is not None and self.avsc_file is not None:
            raise ValueError("give avsc or avsc_file, not both")
        if self.block_bytes < 1024:
            raise ValueError("block_bytes must be at least 1024")


class AvroFormatter(FormatterPlugin):
    Settings = AvroFormatterSettings
    file_ext = "avro"
    compressed = True

    def bind(self, schema: Schema) -> None:
        from fastavro import parse_schema

        from pipelines.engine.avro.codecs import ensure_zstandard_codec
        from pipelines.engine.avro.schemas import avro_from_columns, load_avsc
        from pipelines.engine.avro.writing import record_converter

        s = self.settings
        if s.codec == "zstandard":
            ensure_zstandard_codec()
        avro = load_avsc(s.avsc, s.avsc_file, self.where) or avro_from_columns(schema, s.record_name, where=self.where)
        self.avro_schema = avro
        self.parsed = parse_schema(avro)
        self.to_records = record_converter(schema, avro, where=self.where)
        self.buffer = io.BytesIO()
        self.writer: Any = None
        self.blocks = CompiledBlocks.choose(avro, schema, self.parsed, self.to_records, self.where)

    def _drain(self) -> bytes:
        data = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return data

    def begin(self) -> bytes:
        import os

        from fastavro.write import Writer

        s = self.settings
        sync = os.urandom(16)
        self.writer = Writer(
            self.buffer, self.parsed, codec=s.codec, sync_interval=s.block_bytes, compression_level=s.codec_compression_level, sync_marker=sync
        )
        self.writer.flush()  # the header (fastavro writes it with the first block otherwise)
        if self.blocks is not None:
            self.blocks.begin(sync, s.codec, s.codec_compression_level, s.block_bytes)
        return self._drain()

    def rows(self, rows: list[list[Any]]) -> bytes:
        if self.blocks is not None:
            return self.blocks.rows(rows)
        records, bad = self.to_records(rows)
        if bad:
            raise unfit(bad[0], self.where)
        write = self.writer.write
        for record in records:
            write(record)
        return self._drain()  # blocks fastavro completed (every block_bytes of records)

    def end(self) -> bytes:
        self.writer.flush()
        self.writer = None
        return self._drain() + (self.blocks.end() if self.blocks is not None else b"")

    def count_rows(self, stream: IO[bytes]) -> int:
        """The records of the Avro container file, block by block."""
        import fastavro

        from pipelines.engine.avro.codecs import ensure_zstandard_codec

        ensure_zstandard_codec()  # this formatter's default codec
        return sum(1 for _ in fastavro.reader(stream))


def unfit(first: tuple[int, str], where: str) -> DataError:
    """The error of a batch's first row that does not fit the schema: (its position, why)."""
    position, reason = first
    return DataError(f"a row does not fit the Avro schema: {reason}", where=f"{where} (row {position + 1} of a batch)")


class CompiledBlocks:
    """The container file's blocks, for a schema pipelines.native.avro_values plans: their records
    written by avro_records (pipelines/native/_avrowrite.c) a batch at a time, and each row it leaves
    by fastavro, in its place. The header is fastavro's Writer's, with the same sync marker; each block
    is compressed and framed as its Writer does (codecs.block_writer: deflate with ISA-L). A block
    ends with the first batch that takes it past block_bytes."""

    def __init__(self, function: Any, plan: Any, parsed: Any, to_records: Any, where: str) -> None:
        self.function, self.plan, self.parsed, self.to_records, self.where = function, plan, parsed, to_records, where
        self.block, self.count = bytearray(), 0

    @classmethod
    def choose(cls, avro_schema: dict[str, Any], schema: Schema, parsed: Any, to_records: Any, where: str) -> CompiledBlocks | None:
        from pipelines.native.avro_values import avro_plan
        from pipelines.native.compiled import compiled

        function = compiled("pipelines.native._avrowrite", "avro_records")
        if function is None:
            return None
        plan = avro_plan(avro_schema, {c.name: (i, c.type) for i, c in enumerate(schema.columns)})
        return None if plan is None else cls(function, plan, parsed, to_records, where)

    def begin(self, sync: bytes, codec: str, level: int | None, block_bytes: int) -> None:
        from pipelines.engine.avro.codecs import block_writer

        self.sync, self.level, self.block_bytes = sync, level, block_bytes
        self.write_block = block_writer(codec)
        self.block, self.count = bytearray(), 0

    def rows(self, rows: list[list[Any]]) -> bytes:
        """The blocks the rows complete (often none)."""
        start = 0
        while start < len(rows):
            stop, count, data = self.function(rows, start, -1, b"", self.plan, False)
            self.block += data
            self.count += count
            if stop < len(rows):
                self._python_row(rows[stop], stop)
            start = stop + 1
        return self._dump() if len(self.block) >= self.block_bytes else b""

    def _python_row(self, row: list[Any], position: int) -> None:
        """A row the compiled loop left, written by fastavro (a row that does not fit is an error)."""
        from fastavro import schemaless_writer

        records, bad = self.to_records([row])
        if bad:
            raise unfit((position, bad[0][1]), self.where)
        out = io.BytesIO()
        schemaless_writer(out, self.parsed, records[0])
        self.block += out.getvalue()
        self.count += 1

    def _dump(self) -> bytes:
        from pipelines.engine.avro.codecs import write_varlong

        out = io.BytesIO()
        write_varlong(out, self.count)
        self.write_block(out, bytes(self.block), self.level)
        out.write(self.sync)
        self.block, self.count = bytearray(), 0
        return out.getvalue()

    def end(self) -> bytes:
        """The last block, if any records are left."""
        return self._dump() if self.count else b""

