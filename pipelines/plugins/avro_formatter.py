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

    def _drain(self) -> bytes:
        data = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return data

    def begin(self) -> bytes:
        from fastavro.write import Writer

        s = self.settings
        self.writer = Writer(
            self.buffer, self.parsed, codec=s.codec, sync_interval=s.block_bytes, compression_level=s.codec_compression_level
        )
        self.writer.flush()  # the header (fastavro writes it with the first block otherwise)
        return self._drain()

    def rows(self, rows: list[list[Any]]) -> bytes:
        records, bad = self.to_records(rows)
        if bad:
            position, reason = bad[0]
            raise DataError(f"a row does not fit the Avro schema: {reason}", where=f"{self.where} (row {position + 1} of a batch)")
        write = self.writer.write
        for record in records:
            write(record)
        return self._drain()  # blocks fastavro completed (every block_bytes of records)

    def end(self) -> bytes:
        self.writer.flush()
        self.writer = None
        return self._drain()

    def count_rows(self, stream: IO[bytes]) -> int:
        """The records of the Avro container file, block by block."""
        import fastavro

        from pipelines.engine.avro.codecs import ensure_zstandard_codec

        ensure_zstandard_codec()  # this formatter's default codec
        return sum(1 for _ in fastavro.reader(stream))
