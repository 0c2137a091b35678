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

Without a reader schema, blocks are read by the compiled reader (pipelines/native/_avroread.c)
when it is built and reads the file's schema (pipelines.engine.avro.reading.compiled_plan): rows
straight from the block's bytes. A block it hands back (anything out of the ordinary, a value
that does not convert) is read by fastavro and RowConverter, and reported as before. A fused
path (pipelines.native.fused_avro) may offer each block to its encoder first: a block it encodes
goes to the Kafka output as records, with no rows; the others are read into rows as above.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import IO, Any

from pipelines.engine.batches import BatchBuilder
from pipelines.engine.columns import ColumnSettings, schema_of
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError, DataError, PipelineError
from pipelines.engine.records import Batch, Schema, Source
from pipelines.engine.spi import ParserPlugin
from pipelines.engine.textio import Readable
from pipelines.native.encoded import EncodedRecords

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

    def fused_encoder(self, layout: Any) -> Any:
        """block_records by `layout` (pipelines.native.fused_avro); not for counting alone."""
        from pipelines.native.fused_avro import avro_encoder

        return None if layout.key_index < 0 else avro_encoder(self, layout)

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool = True, split: bool = False
    ) -> Iterator[tuple[Batch, int]]:
        return self.read_batches(stream, source, errors, batch_rows, header, split)

    def read_batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool, split: bool,
        encoder: Any = None,
    ) -> Iterator[tuple[Any, int]]:
        """`batches`; with an `encoder` (a fused path, pipelines.native.fused_avro), bound to the file's
        writer schema, each block is offered to it first, and the records it makes come in record
        order between the batches of rows."""
        uri = source.uri
        blocks, convert = self._open(stream, uri)
        encode = None if encoder is None else encoder.bind(blocks.writer_schema)
        out = BatchBuilder(uri, lambda *lines: "", errors, batch_rows)
        yield from self._read(self._blocks(blocks, uri, self._compiled_reader(blocks), encode), convert, out)

    def _open(self, stream: IO[bytes], uri: str) -> tuple[Any, Any]:
        """fastavro's block reader of the file (its header read) and the RowConverter of its schema; a
        DataError naming the file when either cannot be made."""
        import fastavro

        from pipelines.engine.avro.codecs import ensure_zstandard_codec
        from pipelines.engine.avro.reading import RowConverter

        ensure_zstandard_codec()
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
        return blocks, convert

    def _read(self, pieces: Iterator[Any], convert: Any, out: BatchBuilder) -> Iterator[tuple[Any, int]]:
        """The blocks' pieces as batches of `out.batch_rows` records, numbered from 1; a block's
        EncodedRecords handed over as they are, after the records pending before them."""
        pending: list[Any] = []  # blocks' records (_Records) and rows (_Rows) not in a batch yet
        count, first = 0, 1  # the records pending, the number of the first
        for piece in pieces:
            if type(piece) is EncodedRecords:
                if count:
                    yield from self._batch(pending, first, convert, out)
                    pending, first, count = [], first + count, 0
                first += piece.count
                if piece.count:
                    yield from out.hand_over(piece, piece.count)
                continue
            pending.append(piece)
            count += len(piece)
            while count >= out.batch_rows:
                yield from self._batch(_take(pending, out.batch_rows), first, convert, out)
                first += out.batch_rows
                count -= out.batch_rows
        if count:
            yield from self._batch(pending, first, convert, out)

    def _compiled_reader(self, blocks: Any) -> Callable[[Any], list[list[Any]] | None] | None:
        """The compiled reader of the file's blocks (a block's rows, or None: fastavro reads that
        one), or None: a reader schema, a file schema it does not read, not built."""
        from pipelines.engine.avro.reading import compiled_plan
        from pipelines.native.compiled import compiled

        block_rows = compiled("pipelines.native._avroread", "block_rows")
        if block_rows is None or self.reader_schema is not None:
            return None
        plan, ncols = compiled_plan(self.columns, blocks.writer_schema), len(self.columns)
        if plan is None:
            return None

        def read(block: Any) -> list[list[Any]] | None:
            data = _block_data(block)
            return None if data is None else block_rows(data, block.num_records, plan, ncols)

        return read

    @staticmethod
    def _blocks(
        blocks: Any, uri: str, read: Callable[[Any], list[list[Any]] | None] | None, encode: Callable[[Any, int], Any] | None = None
    ) -> Iterator[Any]:
        """Each block in turn: its records as `encode` makes them (EncodedRecords) when it does, else
        its rows (_Rows) from `read` when it reads them, else its records (_Records); a DataError
        naming the block where the file breaks."""
        it = iter(blocks)
        block_no, records_before = 0, 0
        while True:
            block_no += 1
            block = _next_block(it, blocks, block_no, records_before, uri)
            if block is None:
                return
            encoded = None if encode is None else _encoded(block, encode)
            if encoded is not None:
                records_before += encoded.count
                yield encoded
                continue
            rows = None if read is None else read(block)
            if rows is not None:
                records_before += len(rows)
                yield _Rows(rows, _BlockRecords(block))
                continue
            records = _decoded(block, block_no, records_before, uri)
            records_before += len(records)
            yield _Records(records)

    @staticmethod
    def _batch(pieces: list[Any], first: int, convert: Any, out: BatchBuilder) -> Iterator[tuple[Batch, int]]:
        """Records `first`.. (in pieces of blocks) converted into a batch; the ones that do not convert go to the error output."""
        from pipelines.engine.avro.values import json_text

        starts = []  # the number of each piece's first record
        for piece in pieces:
            starts.append(first)
            first += len(piece)

        def raw(n: int, end: int | None = None) -> str:
            i = bisect_right(starts, n) - 1
            k = n - starts[i] if i >= 0 else -1
            return json_text(pieces[i].record(k))[:RAW_LIMIT] if 0 <= k < len(pieces[i]) else ""

        for piece, start in zip(pieces, starts):
            rows, positions, bad = piece.rows(convert)
            for position, reason in bad:
                out.errors.add(out.uri, start + position, reason, raw(start + position))
            line_nos = [start + p for p in positions] if len(positions) != len(piece) else list(range(start, start + len(piece)))
            out.extend(rows, line_nos)
        yield from out.flush(raw)


class _Records:
    """Records of a block (or a run of them) as fastavro reads them, converted with their batch."""

    __slots__ = ("records",)

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def cut(self, start: int, end: int) -> _Records:
        return _Records(self.records[start:end])

    def rows(self, convert: Any) -> tuple[list[list[Any]], list[int], list[tuple[int, str]]]:
        return convert(self.records)

    def record(self, k: int) -> dict[str, Any]:
        return self.records[k]


class _BlockRecords:
    """A block's records as fastavro reads them, read only when asked (for an error report's text)."""

    __slots__ = ("block", "records")

    def __init__(self, block: Any) -> None:
        self.block = block
        self.records: list[dict[str, Any]] | None = None

    def __getitem__(self, k: int) -> dict[str, Any]:
        if self.records is None:
            self.records = list(self.block)
        return self.records[k]


class _Rows:
    """Rows the compiled reader made of a block's records (or of a run of them, from record `start` of the block)."""

    __slots__ = ("block", "converted", "start")

    def __init__(self, converted: list[list[Any]], block: _BlockRecords, start: int = 0) -> None:
        self.converted = converted
        self.block = block
        self.start = start

    def __len__(self) -> int:
        return len(self.converted)

    def cut(self, start: int, end: int) -> _Rows:
        return _Rows(self.converted[start:end], self.block, self.start + start)

    def rows(self, convert: Any) -> tuple[list[list[Any]], list[int], list[tuple[int, str]]]:
        return self.converted, list(range(len(self.converted))), []

    def record(self, k: int) -> dict[str, Any]:
        return self.block[self.start + k]


def _take(pieces: list[Any], n: int) -> list[Any]:
    """The first `n` records of `pieces` (the last one cut if need be), taken out of it."""
    taken: list[Any] = []
    count = 0
    while count < n:
        piece = pieces[0]
        if count + len(piece) <= n:
            taken.append(pieces.pop(0))
            count += len(piece)
        else:
            taken.append(piece.cut(0, n - count))
            pieces[0] = piece.cut(n - count, len(piece))
            count = n
    return taken


def _next_block(it: Iterator[Any], blocks: Any, block_no: int, records_before: int, uri: str) -> Any:
    """The file's next block (number `block_no`), or None at its end; a DataError where the file breaks."""
    try:
        return next(it)
    except StopIteration:
        return None
    except PipelineError:
        raise
    except Exception as exc:  # noqa: BLE001 - EOFError, ValueError (sync marker), zlib.error, ...
        codec = getattr(blocks, "codec", None)
        if block_no == 1 and ("you need to install" in str(exc) or "Unrecognized codec" in str(exc)):
            raise DataError(f"cannot read the file's codec '{codec}': {exc}", where=uri) from None
        raise DataError(
            f"block {block_no} (after record {records_before}) is truncated or corrupt: {_describe(exc)}", where=uri
        ) from None


def _decoded(block: Any, block_no: int, records_before: int, uri: str) -> list[dict[str, Any]]:
    """The block's records as fastavro reads them; a DataError when they do not decode."""
    from fastavro._read_common import SchemaResolutionError

    try:
        return list(block)
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


def _encoded(block: Any, encode: Callable[[Any, int], Any]) -> Any:
    """What `encode` makes of the block's bytes (the view of them released on return), or None."""
    data = _block_data(block)
    return None if data is None else encode(data, block.num_records)


def _block_data(block: Any) -> memoryview | None:
    """A block's decompressed bytes as fastavro holds them (a BytesIO not read yet), or None."""
    data = block.bytes_
    if not isinstance(data, BytesIO) or data.tell() != 0:
        return None
    return data.getbuffer()


def _describe(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    text = text if len(text) <= limit else text[: limit - 1] + "…"  # fastavro quotes whole schemas
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
