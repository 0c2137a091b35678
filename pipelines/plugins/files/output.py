"""FileWritingOutput, the OutputPlugin base of the file and object outputs, and the settings of its manifest."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError
from pipelines.engine.records import Batch, Schema
from pipelines.engine.spi import JobTotals, OutputPlugin, OutputResult
from pipelines.plugins.files.finish import finish_files
from pipelines.plugins.files.names import FileNames, check_job_id, file_names
from pipelines.plugins.files.store import FileStore
from pipelines.plugins.files.writer import RotatingFileWriter


class FileWritingOutput(OutputPlugin):
    """The machinery of file and object outputs; a subclass says where (`new_store`) and how files are named.

    Its settings have `path_prefix`, `file_ext`, `max_rows_per_file` and `max_bytes_per_file`.
    """

    writes_files = True
    schema: Schema | None = None
    writer: RotatingFileWriter | None = None

    def new_store(self) -> FileStore:
        raise NotImplementedError

    def bind(self, schema: Schema) -> None:
        if self.formatter is None:
            raise ConfigError("the output has no formatter", where=self.where)
        self.formatter.bind(schema)
        self.schema = schema

    def file_names(self) -> FileNames:
        assert self.formatter is not None
        return file_names(self.settings.path_prefix, self.settings.file_ext, self.formatter, self.encoders)

    def open(self, job_id: str, shard: int | None) -> None:
        assert self.formatter is not None, "bind the output first"
        check_job_id(job_id, self.where)
        s = self.settings
        store = self.new_store()
        self.writer = RotatingFileWriter(
            store, self.file_names(), self.formatter, self.encoders, job_id, shard or 0, s.max_rows_per_file, s.max_bytes_per_file
        )
        try:
            self.writer.open()
        except BaseException:
            store.abort()  # run_shard aborts only once open has returned
            raise

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        assert self.writer is not None
        self.writer.write(batch.rows)

    def flush(self) -> OutputResult:
        assert self.writer is not None
        files = self.writer.close_files()
        return OutputResult(self.writer.rows, files=list(files))

    def commit(self, record: str | None = None) -> None:
        assert self.writer is not None
        self.writer.store.commit()

    def abort(self) -> int:
        if self.writer is not None:
            self.writer.store.abort()
        return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.store.close()

    def finish(self, totals: JobTotals) -> dict[str, Any]:
        return finish_files(self.new_store(), self.file_names(), totals, self.describe())

    def abort_job(self, job_id: str, shard_count: int) -> dict[str, Any]:
        """After a failed job: removes the invisible files its shards left (a shard killed mid-run
        leaves its multipart uploads incomplete, which S3 bills until a lifecycle rule ends them)."""
        check_job_id(job_id, self.where)
        return {"incomplete_removed": self.new_store().clear_incomplete(self.file_names().job_folder(job_id))}

    def describe(self) -> dict[str, Any]:
        """How to read the files, for the manifest."""
        from pipelines.engine import registry

        assert self.formatter is not None and self.schema is not None, "bind the output first"
        return {
            "format": registry.name_of("formatter", type(self.formatter)) or self.formatter.file_ext,
            "formatter": plain_settings(self.formatter.settings),
            "encoders": [{"type": registry.name_of("encoder", type(e)), **plain_settings(e.settings)} for e in self.encoders],
            "file_ext": self.file_names().file_ext,
            "columns": [{"name": c.name, "type": c.type} for c in self.schema.columns],
        }


def plain_settings(settings: Any) -> dict[str, Any]:
    """A settings dataclass as JSON data, without its secrets."""
    from pipelines.engine.settings import secret_keys

    hidden = secret_keys(type(settings))

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return {k: v for k, v in plain(settings).items() if k not in hidden}
