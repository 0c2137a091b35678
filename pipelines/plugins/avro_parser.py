"""`parser: {type: avro}`: Avro object container files (.avro), read block by block.

The columns come from `columns: [{name, type}]` (fields picked by name and converted to the
column's type, as pipelines.engine.avro.schemas's table says), or from a reader schema given as `avsc`
(inline: a YAML mapping or JSON text) or `avsc_file` (a path): its fields become the columns, and
each file is read through it by Avro's resolution rules (a field the file lacks takes the reader
schema's default). One of them is required: the columns must be known when the config is
checked, before any file is opened. With both, the columns must be fields of the reader schema.

Any codec fastavro reads: null, deflate, bzip2, xz, zstandard (with the zstandard package),
snappy (with cramjam) and lz4 (with lz4) when those are installed. Rows are numbered by record
(1-based) in the error output. A file cut short or corrupt inside a block is a DataError naming
the file, the block and the records it held; one cut exactly between two blocks cannot be told
from a complete file (Avro has no end marker).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from pipelines.engine.columns import ColumnSettings, schema_of
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError, DataError, PipelineError
from pipelines.engine.spi import ParserPlugin
from pipelines.engine.batches import BatchBuilder
from pipelines.engine.records import Batch, Schema, Source
from pipelines.engine.textio import Readable

RAW_LIMIT = 4096  # characters of a bad record's JSON text kept in the error output


@dataclass(frozen=True)
class AvroParserSettings:
    columns: tuple[ColumnSettings, ...] = ()
    avsc: Any = None  # the reader schema: a mapping, or its JSON text
    avsc_file: str | None = None

    def __post_init__(self) -> None:
        if self.avsc is not None and self.avsc_file is not None:
            raise ValueError("give the reader schema as avsc or as avsc_file, not both")
        if not self.columns and self.avsc is None and self.avsc_file is None:
            raise ValueError(
                "declare the columns (columns: [{name, type}]) or give a reader schema (avsc or avsc_file) "
                "whose fields become the columns: they are needed before any file is read"
            )


class PositionStream(Readable):
    """`read(n)` returns n bytes unless the stream ends, and `tell()` counts them (fastavro's block reader needs both)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if size is not None and 0 <= size and len(data) < size and data:
            parts = [data]
            got = len(data)
            while got < size:
                more = self.raw.read(size - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        self.raw.close()


class AvroParser(ParserPlugin):
    Settings = AvroParserSettings
    split_mode = None  # blocks start at sync markers found only by reading from the start: files go whole

    def __init__(self, settings: AvroParserSettings, where: str) -> None:
        from pipelines.engine.avro.schemas import columns_from_avro, load_avsc

        super().__init__(settings, where)
        self.reader_schema = load_avsc(settings.avsc, settings.avsc_file, where)
        if settings.columns:
            self.columns = settings.columns
            if self.reader_schema is not None:
                fields = [c.name for c in columns_from_avro(self.reader_schema, f"{where}.avsc")]
                for i, c in enumerate(settings.columns):
                    if c.name not in fields:
                        raise ConfigError(
                            f"'{c.name}' is not a field of the reader schema (fields: {', '.join(fields)})",
                            where=f"{where}.columns[{i}].name",
                        )
        else:
            which = "avsc_file" if settings.avsc_file is not None else "avsc"
            self.columns = tuple(ColumnSettings(c.name, c.type) for c in columns_from_avro(self.reader_schema, f"{where}.{which}"))  # type: ignore[arg-type]
        self._schema = schema_of(self.columns, where)

    def schema(self) -> Schema:
        return self._schema

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool = True, split: bool = False
    ) -> Iterator[tuple[Batch, int]]:
        import fastavro

        from pipelines.engine.avro.codecs import ensure_zstandard_codec
        from pipelines.engine.avro.reading import RowConverter
        from pipelines.engine.avro.values import json_text

        ensure_zstandard_codec()
        uri = source.uri
        try:
            blocks = fastavro.block_reader(PositionStream(stream), self.reader_schema)
        except PipelineError:
            raise
        except Exception as exc:  # noqa: BLE001 - fastavro's header errors are ValueError, EOFError, ...
            raise DataError(f"not an Avro object container file (cannot read its header: {exc})", where=uri) from None
        try:
            convert = RowConverter(self.columns, self.reader_schema or blocks.writer_schema, uri)
        except PipelineError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"cannot use the file's Avro schema: {exc}", where=uri) from None

        out = BatchBuilder(uri, lambda *lines: "", errors, batch_rows)
        pending: list[dict[str, Any]] = []
        first = 1  # record number of pending[0]
        for records in self._blocks(blocks, uri):
            pending += records
            while len(pending) >= batch_rows:
                chunk, pending = pending[:batch_rows], pending[batch_rows:]
                yield from self._batch(chunk, first, convert, out, json_text)
                first += len(chunk)
        if pending:
            yield from self._batch(pending, first, convert, out, json_text)

    @staticmethod
    def _blocks(blocks: Any, uri: str) -> Iterator[list[dict[str, Any]]]:
        """The records of each block in turn; a DataError naming the block where the file breaks."""
        from fastavro._read_common import SchemaResolutionError

        it = iter(blocks)
        block_no, records_before = 0, 0
        while True:
            block_no += 1
            try:
                block = next(it)
            except StopIteration:
                return
            except PipelineError:
                raise
            except Exception as exc:  # noqa: BLE001 - EOFError, ValueError (sync marker), zlib.error, ...
                codec = getattr(blocks, "codec", None)
                if block_no == 1 and ("you need to install" in str(exc) or "Unrecognized codec" in str(exc)):
                    raise DataError(f"cannot read the file's codec '{codec}': {exc}", where=uri) from None
                raise DataError(
                    f"block {block_no} (after record {records_before}) is truncated or corrupt: {_describe(exc)}", where=uri
                ) from None
            try:
                records = list(block)
            except PipelineError:
                raise
            except SchemaResolutionError as exc:
                raise DataError(
                    f"the file's schema cannot be read through the reader schema (avsc): {_describe(exc)}", where=uri
                ) from None
            except Exception as exc:  # noqa: BLE001
                raise DataError(
                    f"block {block_no} (records {records_before + 1}-{records_before + block.num_records}) is corrupt: "
                    f"cannot decode its records: {_describe(exc)}",
                    where=uri,
                ) from None
            records_before += len(records)
            yield records

    @staticmethod
    def _batch(records: list[dict[str, Any]], first: int, convert: Any, out: BatchBuilder, json_text: Any) -> Iterator[tuple[Batch, int]]:
        """Records `first`.. converted at once into a batch; the ones that do not convert go to the error output."""
        rows, positions, bad = convert(records)

        def raw(n: int, end: int | None = None) -> str:
            k = n - first
            return json_text(records[k])[:RAW_LIMIT] if 0 <= k < len(records) else ""

        for position, reason in bad:
            out.errors.add(out.uri, first + position, reason, raw(first + position))
        line_nos = [first + p for p in positions] if len(positions) != len(records) else list(range(first, first + len(records)))
        out.extend(rows, line_nos)
        yield from out.flush(raw)


def _describe(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    text = text if len(text) <= limit else text[: limit - 1] + "…"  # fastavro quotes whole schemas
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
