"""`out: {type: stdout}`: rows as JSON lines on standard output (before the summary line)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.formatting import jsonl_formatter
from pipelines.engine.spi import OutputPlugin, OutputResult
from pipelines.engine.records import Batch, Schema


@dataclass(frozen=True)
class StdoutOutputSettings:
    pass


class StdoutOutput(OutputPlugin):
    Settings = StdoutOutputSettings

    def bind(self, schema: Schema) -> None:
        self.format_rows = jsonl_formatter(schema)

    def open(self, job_id: str, shard: int | None) -> None:
        self.rows = 0

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        sys.stdout.buffer.write(self.format_rows(batch.rows))
        self.rows += len(batch.rows)

    def flush(self) -> OutputResult:
        sys.stdout.buffer.flush()
        return OutputResult(self.rows)

    def commit(self, record: str | None = None) -> None:
        pass

    def abort(self) -> int:
        sys.stdout.buffer.flush()
        return self.rows  # printed rows cannot be taken back
