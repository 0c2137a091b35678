"""The batch builder: where a parser puts its rows, as Embulk's PageBuilder is where a plugin puts its
records. Every parser yields (batch, records consumed) pairs through one, so the batching and the
count that keeps `rows read = rows written + rows skipped` true are written once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.records import Batch


class BatchBuilder:
    """Collects one source's rows into batches of at most `batch_rows`.

    Each pair it hands out counts as consumed the rows in the batch plus the records sent to the
    error output since the previous pair. `rows` and `line_nos` are plain lists that a compiled loop
    may append to directly; `raw_line(start, end)` gives the text of lines for error reports.
    """

    __slots__ = ("uri", "raw_line", "errors", "batch_rows", "rows", "line_nos", "_errors_before")

    def __init__(self, uri: str, raw_line: Callable[..., str], errors: ErrorSink, batch_rows: int) -> None:
        self.uri = uri
        self.raw_line = raw_line
        self.errors = errors
        self.batch_rows = batch_rows
        self.rows: list[list[Any]] = []
        self.line_nos: list[int] = []
        self._errors_before = errors.count  # bad records from here on count as consumed

    def add(self, row: list[Any], line_no: int) -> bool:
        """Adds a row that starts at `line_no`; True when the batch is full (then `flush` it)."""
        self.rows.append(row)
        self.line_nos.append(line_no)
        return len(self.rows) >= self.batch_rows

    def extend(self, rows: list[list[Any]], line_nos: list[int]) -> None:
        """Adds rows made together (a block converted at once)."""
        self.rows += rows
        self.line_nos += line_nos

    def bad(self, start: int, end: int, reason: str) -> None:
        """A record on lines start..end goes to the error output, with its text."""
        self.errors.add(self.uri, start, reason, self.raw_line(start, end))

    def flush(self, raw_line: Callable[..., str] | None = None) -> Iterator[tuple[Batch, int]]:
        """Hands on the rows so far as a batch (with `raw_line` if the batch has its own); the builder
        starts a new one."""
        batch = Batch(self.rows, self.line_nos, self.uri, raw_line or self.raw_line)
        self.rows, self.line_nos = [], []
        yield from self.hand_over(batch, len(batch.rows))

    def hand_over(self, piece: Any, taken: int) -> Iterator[tuple[Any, int]]:
        """Hands on `piece` with the records it consumed: `taken`, plus those sent to the error output
        since the last hand-over. The count starts again once the consumer is done with the piece:
        bad rows its filters and output find are theirs, not the parser's."""
        yield piece, taken + self.errors.count - self._errors_before
        self._errors_before = self.errors.count

    def finish(self) -> Iterator[tuple[Batch, int]]:
        """The last pair, if anything was consumed since the one before (bad records alone included)."""
        if self.rows or self.errors.count > self._errors_before:
            yield from self.flush()
