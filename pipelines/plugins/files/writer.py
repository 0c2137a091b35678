"""One shard's files: rows -> formatter -> encoders -> a store, a new file each time one is full."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pipelines.engine.progress import log_event
from pipelines.engine.spi import Compressor, EncoderPlugin, FormatterPlugin
from pipelines.plugins.files.names import FileNames
from pipelines.plugins.files.store import MIB, FileStore

# With max_bytes_per_file, rows are formatted this much at a time at most (and at least MIN_CHUNK_BYTES),
# and the file's size checked after each: a file ends at most one chunk past the limit (plus what a
# compressor still holds).
CHUNK_BYTES = MIB
MIN_CHUNK_BYTES = 16 << 10
PROBE_ROWS = 100  # rows formatted first, to learn the size of a row


@dataclass
class WrittenFile:
    uri: str
    rows: int = 0
    bytes: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)

    def record(self) -> dict[str, Any]:
        return {"uri": self.uri, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256.hexdigest()}


class RotatingFileWriter:
    """One shard's files: `open`, `write` batches of rows, `close_files` (then the store commits or aborts).

    Per file: formatter.begin, formatter.rows per chunk of rows, formatter.end, through a new
    compressor of each encoder, into the store; rows, stored bytes and their sha256 counted.
    """

    def __init__(
        self, store: FileStore, names: FileNames, formatter: FormatterPlugin, encoders: list[EncoderPlugin],
        job_id: str, shard: int, max_rows: int | None = None, max_bytes: int | None = None,
    ) -> None:
        self.store, self.names, self.formatter, self.encoders = store, names, formatter, encoders
        self.job_id, self.shard = job_id, shard
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.files: list[dict[str, Any]] = []
        self.current: WrittenFile | None = None
        self.compressors: list[Compressor] = []
        self.rows = 0
        self.formatted = 0  # bytes the formatter returned for those rows (a self-compressing one holds some back)

    def open(self) -> None:
        """Clears what a killed attempt of the shard left, and starts the first file."""
        cleared = self.store.clear_shard(self.names.shard_prefix(self.job_id, self.shard))
        if cleared:
            log_event("output_cleared_leftovers", job_id=self.job_id, shard=self.shard, files=cleared)
        self._begin()

    def write(self, rows: list[list[Any]]) -> None:
        start, count = 0, len(rows)
        while start < count:
            if self.current is None:
                self._begin()
            current = self.current
            assert current is not None
            take = count - start
            if self.max_rows:
                take = min(take, self.max_rows - current.rows)
            if self.max_bytes:
                take = min(take, self._chunk_rows(self.max_bytes - current.bytes))
            chunk = rows if take == count else rows[start : start + take]
            data = self.formatter.rows(chunk)
            self.formatted += len(data)
            self._emit(self._compress(data))
            current.rows += take
            self.rows += take
            start += take
            if (self.max_rows and current.rows >= self.max_rows) or (self.max_bytes and current.bytes >= self.max_bytes):
                self._end()

    def _chunk_rows(self, room: int) -> int:
        """Rows to format next: about `room` bytes (CHUNK_BYTES at most, MIN_CHUNK_BYTES at least)."""
        if not self.formatted:  # nothing learnt yet (a self-compressing formatter may hold rows back): doubling
            return max(PROBE_ROWS, self.rows)
        row_size = max(1, self.formatted // self.rows)
        return max(1, max(MIN_CHUNK_BYTES, min(CHUNK_BYTES, room)) // row_size)

    def close_files(self) -> list[dict[str, Any]]:
        """Ends the current file; every file of the shard, as the shard report lists them."""
        if self.current is not None:
            self._end()
        return self.files

    def _begin(self) -> None:
        name = self.names.file(self.job_id, self.shard, len(self.files))
        self.store.begin(name)
        self.current = WrittenFile(self.store.uri(name))
        self.compressors = [e.compressor() for e in self.encoders]
        self._emit(self._compress(self.formatter.begin()))

    def _end(self) -> None:
        data = self.formatter.end()
        for compressor in self.compressors:
            data = compressor.compress(data) + compressor.finish()
        self._emit(data)
        self.store.end()
        assert self.current is not None
        self.files.append(self.current.record())
        self.current = None

    def _compress(self, data: bytes) -> bytes:
        for compressor in self.compressors:
            if not data:
                break
            data = compressor.compress(data)
        return data

    def _emit(self, data: bytes) -> None:
        if data:
            assert self.current is not None
            self.current.sha256.update(data)
            self.current.bytes += len(data)
            self.store.write(data)
