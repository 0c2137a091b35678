"""`out: {type: stdout}`: rows as JSON lines on standard output (before the summary line), or as
its `formatter` writes them (`formatter: {type: csv}`: CSV with a header line, as Embulk's stdout
output prints rows)."""

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
    takes_formatter = True

    def bind(self, schema: Schema) -> None:
        if self.formatter is not None:
            self.formatter.bind(schema)
            self.format_rows = self.formatter.rows
        else:
            self.format_rows = jsonl_formatter(schema)

    def open(self, job_id: str, shard: int | None) -> None:
        self.rows = 0
        if self.formatter is not None:
            sys.stdout.buffer.write(self.formatter.begin())

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        sys.stdout.buffer.write(self.format_rows(batch.rows))
        self.rows += len(batch.rows)

    def flush(self) -> OutputResult:
        if self.formatter is not None:
            sys.stdout.buffer.write(self.formatter.end())
        sys.stdout.buffer.flush()
        return OutputResult(self.rows)

    def commit(self, record: str | None = None) -> None:
        pass

    def abort(self) -> int:
        sys.stdout.buffer.flush()
        return self.rows  # printed rows cannot be taken back
