"""`out: {type: file, path_prefix: ./out/audience, file_ext: jsonl, formatter: {type: jsonl}}`

The file is written under a temporary name and renamed on commit, so a failed run leaves no file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Literal

from pipelines.error_output import ErrorSink
from pipelines.errors import RunError
from pipelines.formatting import csv_formatter, jsonl_formatter
from pipelines.plugins.base import OutputPlugin, OutputResult
from pipelines.records import Batch, Schema
from pipelines.settings import option


@dataclass(frozen=True)
class FormatterSettings:
    type: Literal["jsonl", "csv"] = "jsonl"
    header_line: bool = True


@dataclass(frozen=True)
class FileOutputSettings:
    path_prefix: str
    file_ext: str = "jsonl"
    sequence_format: str = ".%03d"
    formatter: FormatterSettings = option(factory=FormatterSettings)


class FileOutput(OutputPlugin):
    Settings = FileOutputSettings

    def bind(self, schema: Schema) -> None:
        f = self.settings.formatter
        if f.type == "csv":
            self.header, self.format_rows = csv_formatter(schema, f.header_line)
        else:
            self.header, self.format_rows = b"", jsonl_formatter(schema)

    def open(self, job_id: str, shard: int | None) -> None:
        s = self.settings
        self.path = f"{s.path_prefix}{s.sequence_format % (shard or 0)}.{s.file_ext}"
        self.tmp_path = f"{self.path}.{job_id}.tmp"
        folder = os.path.dirname(self.path)
        self.file: IO[bytes] | None = None
        try:
            if folder:
                os.makedirs(folder, exist_ok=True)
            self.file = open(self.tmp_path, "wb")
        except OSError as exc:
            raise RunError(f"cannot create the output file: {exc.strerror or exc}", where=self.path) from None
        self.file.write(self.header)
        self.rows = 0

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        assert self.file is not None
        self.file.write(self.format_rows(batch.rows))
        self.rows += len(batch.rows)

    def flush(self) -> OutputResult:
        assert self.file is not None
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as exc:
            raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=self.path) from None
        return OutputResult(self.rows)

    def commit(self, record: str | None = None) -> None:
        assert self.file is not None
        try:
            self.file.close()
            self.file = None
            os.replace(self.tmp_path, self.path)
        except OSError as exc:
            raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=self.path) from None

    def abort(self) -> int:
        if getattr(self, "file", None) is not None:
            self.file.close()
            self.file = None
        if hasattr(self, "tmp_path") and os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)
        return 0
