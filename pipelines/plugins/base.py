"""Base classes of the plugins. A plugin declares `Settings` (a frozen dataclass) and overrides a few methods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any, ClassVar

from pipelines.error_output import ErrorSink
from pipelines.records import Batch, Schema, Source


class Plugin:
    Settings: ClassVar[type]

    def __init__(self, settings: Any, where: str) -> None:
        self.settings = settings
        self.where = where  # "file: key path", for errors found when the plugin is checked


def checked_sources(sources: list[Source], nothing_where: str, noun: str) -> list[Source]:
    """`sources`, unless there are none or one is empty: then the error says which, before anything is written."""
    from pipelines.errors import DataError, RunError

    if not sources:
        raise RunError(f"no {noun} matches", where=nothing_where)
    for source in sources:
        if source.size == 0:
            raise DataError(f"the {noun} is empty (0 bytes)", where=source.uri)
    return sources


class InputPlugin(Plugin):
    def list_sources(self) -> list[Source]:
        """Everything to read, checked to exist and be non-empty before anything is written."""
        raise NotImplementedError

    def open(self, source: Source) -> IO[bytes]:
        """A binary stream of the source's bytes, read in chunks (never the whole object at once)."""
        raise NotImplementedError


class DecoderPlugin(Plugin):
    def decode(self, stream: IO[bytes], source: Source) -> IO[bytes]:
        raise NotImplementedError


class ParserPlugin(Plugin):
    def schema(self) -> Schema:
        raise NotImplementedError

    def batches(self, stream: IO[bytes], source: Source, errors: ErrorSink, batch_rows: int) -> Iterator[tuple[Batch, int]]:
        """Yields (batch of good rows, rows consumed including bad ones sent to `errors`)."""
        raise NotImplementedError


class FilterPlugin(Plugin):
    def bind(self, schema: Schema) -> Schema:
        """Checks the filter against its input schema and returns its output schema."""
        raise NotImplementedError

    def apply(self, batch: Batch, errors: ErrorSink) -> None:
        """Changes the batch in place (rows, and for row filters which rows remain)."""
        raise NotImplementedError


class OutputPlugin(Plugin):
    def bind(self, schema: Schema) -> None:
        """Checks the output's options against the schema it will receive."""

    def open(self, job_id: str, shard: int | None) -> None:
        """Connects and checks the destination; nothing is written yet."""

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        raise NotImplementedError

    def commit(self) -> int:
        """Makes the written rows visible; returns how many the destination acknowledged."""
        raise NotImplementedError

    def abort(self) -> int:
        """Undoes what it can of a failed run; returns how many rows stay written (0 if all were undone)."""
        return 0

    def close(self) -> None:
        pass
