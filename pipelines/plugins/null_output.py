"""`out: {type: "null"}`: accepts every row and writes nothing, as Embulk's null output.

It counts the rows it was given, so a run measures the read path alone (decoding, parsing,
filters): the summary's rows_written is the rows that reached the output. Bad rows still go
to the error output (the engine writes them before the output sees a batch). Quote the name
in YAML: a bare `null` is YAML's null, not the string.

Its fused path (pipelines.native.fused.FusedCount) reads csv and jsonl text in C and only counts the
rows that would reach it, with no Python object per row; any row out of the ordinary goes through
rows and the filters as on any other output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.records import Batch
from pipelines.engine.spi import FusedPath, OutputPlugin, OutputResult


@dataclass(frozen=True)
class NullOutputSettings:
    pass


class NullOutput(OutputPlugin):
    Settings = NullOutputSettings

    def open(self, job_id: str, shard: int | None) -> None:
        self.rows = 0

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        self.rows += len(batch.rows)

    def fused_path(self, job: Any) -> FusedPath | None:
        from pipelines.native.fused import FusedCount

        return FusedCount.choose(job, self)

    def flush(self) -> OutputResult:
        return OutputResult(self.rows)

    def commit(self, record: str | None = None) -> None:
        pass

    def abort(self) -> int:
        return 0  # nothing was written, so nothing stays
