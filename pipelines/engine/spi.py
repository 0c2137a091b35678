"""The plugin interfaces (the SPI): what the engine calls, and the traits it asks of a plugin.

A plugin declares `Settings` (a frozen dataclass) and overrides a few methods; it is found by name
through pipelines.engine.registry. The engine knows plugins only through these classes: how many
header lines a parser skips, which decoder reads an object's first bytes, how a formatter counts
the rows of a file it wrote, and whether an output takes a job's text through a fused path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.records import Batch, Schema, Source

if TYPE_CHECKING:
    from pipelines.engine.plan import PlanItem


class Plugin:
    Settings: ClassVar[type]

    def __init__(self, settings: Any, where: str) -> None:
        self.settings = settings
        self.where = where  # "file: key path", for errors found when the plugin is checked


def checked_sources(sources: Iterable[Source], nothing_where: str, noun: str) -> Iterator[Source]:
    """`sources` one at a time (a listing of a million objects is never held whole), failing on an
    empty one, or at the end when there were none. A plan lists them all before it writes anything."""
    from pipelines.engine.errors import DataError, RunError

    found = False
    for source in sources:
        if source.size == 0:
            raise DataError(f"the {noun} is empty (0 bytes)", where=source.uri)
        found = True
        yield source
    if not found:
        raise RunError(f"no {noun} matches", where=nothing_where)


class InputPlugin(Plugin):
    """A byte input (files, S3 objects: read through decoders and a parser), or, with
    `reads_records`, a record input (Kafka) that yields rows itself and plans its own items."""

    reads_records: ClassVar[bool] = False

    def list_sources(self) -> Iterator[Source]:
        """Everything to read, as listed, each checked to exist and be non-empty (see checked_sources)."""
        raise NotImplementedError

    def check_items(self, items: tuple[PlanItem, ...]) -> None:
        """Fails if an item is not what the plan saw (an object changed or gone since)."""
        from pipelines.engine.errors import RunError

        for item in items:
            now = self.current(item.source)
            if now is None:
                raise RunError("the object is gone since the plan was made", where=item.uri)
            if (now.etag, now.size) != (item.etag, item.size):
                raise RunError(
                    f"the object changed since the plan was made (ETag {item.etag} and {item.size} bytes, "
                    f"now {now.etag} and {now.size} bytes); make a new plan",
                    where=item.uri,
                )

    # Record inputs only:
    def schema(self) -> Schema:
        raise NotImplementedError

    def plan_items(self) -> tuple[list[PlanItem], int]:
        """The items to read (e.g. Kafka partitions' offset ranges, fixed now) and the shard size
        to pack them by, in the items' own unit (records)."""
        raise NotImplementedError

    def read(self, item: PlanItem, errors: ErrorSink, batch_rows: int) -> Iterator[tuple[Batch, int, int]]:
        """Yields (batch of good rows, records consumed including bad ones sent to `errors`, bytes read)."""
        raise NotImplementedError

    def after_finish(self, items: list[PlanItem]) -> None:
        """Called once the whole job finished at the output (Kafka: commit a group's offsets, when asked)."""

    def config_diff(self, items: list[PlanItem]) -> dict[str, Any] | None:
        """What the next run's config should change, once this job finished (Embulk's config diff, e.g.
        the S3 input's {"in": {"last_path": ...}}): it goes into the job summary. None by default."""
        return None

    def open(self, source: Source, offset: int = 0) -> IO[bytes]:
        """A binary stream of the source's bytes from `offset`, read in chunks (never the whole object at once)."""
        raise NotImplementedError

    def current(self, source: Source) -> Source | None:
        """The source as it is now (size, ETag), or None if it is gone."""
        raise NotImplementedError


class DecoderPlugin(Plugin):
    """Bytes to bytes for byte inputs (gzip, zstd, none)."""

    # The first bytes of every stream this decoder reads: how an object without configured decoders
    # is recognised (pipelines.engine.decoding). Empty: never chosen by detection.
    magic: ClassVar[bytes] = b""
    # True for a decoder that returns the bytes as they are ("none"): an object read through only such
    # decoders may be split into byte ranges.
    passthrough: ClassVar[bool] = False

    @classmethod
    def detects(cls, head: bytes) -> bool:
        """Whether an object starting with `head` (HEAD_BYTES of it) is this decoder's: its magic starts it."""
        return bool(cls.magic) and head.startswith(cls.magic)

    def decode(self, stream: IO[bytes], source: Source) -> IO[bytes]:
        raise NotImplementedError


class ParserPlugin(Plugin):
    def schema(self) -> Schema:
        raise NotImplementedError

    # How an uncompressed object may be read as several byte ranges: "lines" (at line starts), a quote
    # character (at record starts, found by counting quotes at plan time), or None (never).
    split_mode: str | None = None

    def header_lines(self) -> int:
        """Lines at the start of an object that are not records (the plan keeps them in the first range)."""
        return 0

    def adjust_exec(self, exec_settings: Any) -> Any:
        """The job's exec settings as this parser's options change them (Embulk's stop_on_invalid_record
        sets the error threshold: pipelines.plugins.invalid_records); as they are by default."""
        return exec_settings

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool = True, split: bool = False
    ) -> Iterator[tuple[Batch, int]]:
        """Yields (batch of good rows, rows consumed including bad ones sent to `errors`).

        `header`: the stream starts at the object's start (header lines to skip); `split`: it is
        one byte range of a split object (`source.uri` names the range, lines count from it).
        """
        raise NotImplementedError

    def fused_encoder(self, layout: Any) -> Any:
        """An encoder that turns this parser's input straight into records by `layout` (a
        pipelines.native.encoded.RecordLayout; key_index -1: rows only counted), which its
        `read_batches(..., encoder)` takes (see pipelines.native.fused); None by default."""
        return None


class FormatterPlugin(Plugin):
    """Rows to the bytes of one file, for file and object outputs: `begin`, `rows` per batch, `end`.

    One instance writes one file at a time; `begin` starts the next file (outputs rotate files).
    """

    file_ext: ClassVar[str] = ""  # the default file extension (csv, jsonl, avro)
    compressed: ClassVar[bool] = False  # True for formats with their own compression (Avro): no encoders then

    def bind(self, schema: Schema) -> None:
        """Checks the formatter against the schema it will receive."""

    def begin(self) -> bytes:
        """A file's first bytes (CSV header line, Avro header)."""
        return b""

    def rows(self, rows: list[list[Any]]) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        """A file's last bytes (an Avro block not yet written)."""
        return b""

    def count_rows(self, stream: IO[bytes]) -> int:
        """The rows in a file this formatter wrote (decoded), read back in chunks: how the manifest's
        row counts are checked (`pipelines verify --count-rows`)."""
        raise NotImplementedError


class Compressor:
    """A streaming compressor: `compress` may return b"" while it buffers; `finish` returns the rest."""

    def compress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        raise NotImplementedError


class EncoderPlugin(Plugin):
    """Bytes to bytes for file and object outputs (gzip, zstd), one compressor per file."""

    file_ext: ClassVar[str] = ""  # added to the file name: gz, zst

    def compressor(self) -> Compressor:
        raise NotImplementedError


class FilterPlugin(Plugin):
    def bind(self, schema: Schema) -> Schema:
        """Checks the filter against its input schema and returns its output schema."""
        raise NotImplementedError

    def apply(self, batch: Batch, errors: ErrorSink) -> None:
        """Changes the batch in place (rows, and for row filters which rows remain)."""
        raise NotImplementedError


class FusedPath:
    """An output's own reading of a parser's text (see OutputPlugin.fused_path): `batches` yields, in
    line order, pieces that are either Batches of rows (for the filters and `output.write`) or records
    already made for the output (for `write`), each with the records it consumed."""

    def batches(
        self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int, header: bool, split: bool
    ) -> Iterator[tuple[Any, int]]:
        raise NotImplementedError

    def write(self, records: Any) -> None:
        """Hands records made by `batches` (not a Batch) to the output."""
        raise NotImplementedError


@dataclass(frozen=True)
class OutputResult:
    rows_written: int  # acknowledged by the destination
    partition_rows: list[int] | None = None  # rows per partition, for outputs that have partitions
    # Files the shard wrote (file and object outputs), each {"uri", "rows", "bytes", "sha256"}: they go
    # into the shard report, and `finish` lists them all in the manifest.
    files: list[dict[str, Any]] | None = None
    # Outputs that write several topics (the Kafka output's topic_column, or with tombstones):
    # {topic: {"rows": [per partition], "tombstones": [per partition]}}, every topic written.
    topics: dict[str, dict[str, list[int]]] | None = None


@dataclass(frozen=True)
class JobTotals:
    """What `finish` gets once every shard has committed: the sums of the shard reports."""

    job_id: str
    shard_count: int
    total_rows: int
    partition_rows: list[int] | None = None  # summed per partition (Kafka outputs)
    files: list[dict[str, Any]] | None = None  # every shard's files, in shard order (file and object outputs)
    topics: dict[str, dict[str, list[int]]] | None = None  # OutputResult.topics summed over the shards


class OutputPlugin(Plugin):
    """open -> write* -> flush -> commit, or abort on any failure."""

    # File and object outputs take `formatter:` and `encoders:` (built by the config from the
    # registry, set before `bind`); outputs with takes_formatter a `formatter:` alone (the stdout
    # output); others refuse them.
    writes_files: ClassVar[bool] = False
    takes_formatter: ClassVar[bool] = False
    formatter: FormatterPlugin | None = None
    encoders: list[EncoderPlugin] = []

    def bind(self, schema: Schema) -> None:
        """Checks the output's options against the schema it will receive."""

    def open(self, job_id: str, shard: int | None) -> None:
        """Connects and checks the destination; nothing is written yet."""

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        raise NotImplementedError

    def fused_path(self, job: Any) -> FusedPath | None:
        """A way to take the job's input text straight to this output's records, for the rows it can,
        chosen once per shard after `open` (the Kafka output's compiled CSV path); None by default."""
        return None

    def flush(self) -> OutputResult:
        """Waits until everything written is acknowledged; says how much."""
        raise NotImplementedError

    def commit(self, record: str | None = None) -> None:
        """Makes the written rows visible, with `record` (the shard report) where the output can keep it atomically."""
        raise NotImplementedError

    def abort(self) -> int:
        """Undoes what it can of a failed run; returns how many rows stay written (0 if all were undone)."""
        return 0

    def close(self) -> None:
        pass

    def committed_record(self, job_id: str, shard: int | None) -> str | None:
        """The record an earlier commit of this shard kept, if the output keeps them (for resume)."""
        return None

    def abort_job(self, job_id: str, shard_count: int) -> dict[str, Any]:
        """After a failed job: let go of whatever its shards may have left open (the Kafka output
        fences their transactions). Nothing to do by default."""
        return {}

    def finish(self, totals: JobTotals) -> dict[str, Any] | None:
        """Once every shard has committed: what completes the job at the destination (Kafka: end markers,
        files: the manifest). Idempotent: a second call completes nothing twice. Returns what it did, for
        the summary ({"markers": N} or {"manifest": uri, "files": N})."""
        return None
