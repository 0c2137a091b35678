"""Where bad rows go: counted, written with source, line, reason and raw text, never dropped."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

from pipelines.engine.errors import RunError

DEFAULT_LOCATION = "pipelines-errors/"


@dataclass(frozen=True)
class ErrorPolicy:
    location: str = DEFAULT_LOCATION
    max_errors: int | None = None
    max_error_rate: float | None = None

    @property
    def error_limit(self) -> int | None:
        """Bad rows allowed before the run fails; 0 when no threshold is configured (safe default)."""
        if self.max_errors is None and self.max_error_rate is None:
            return 0
        return self.max_errors


def error_file_uri(location: str, job_id: str, shard: int | None = None) -> str:
    """The error file of a job: `location` is an S3 prefix or local folder (ending in /), or a file path."""
    name = f"{job_id}.errors.jsonl" if shard is None else f"{job_id}.shard-{shard:05d}.errors.jsonl"
    if location.startswith("s3://") or location.endswith("/") or os.path.isdir(location):
        return location.rstrip("/") + "/" + name
    if shard is None:
        return location
    root, ext = os.path.splitext(location)
    return f"{root}.shard-{shard:05d}{ext}"


class ErrorSink:
    """Counts bad rows and appends them as JSON lines to the error output, opened on the first one."""

    def __init__(self, policy: ErrorPolicy, uri: str, s3_client_factory=None) -> None:
        self.policy = policy
        self.uri = uri
        self.count = 0
        self.first: str | None = None
        self._file: IO[bytes] | None = None
        self._s3_client_factory = s3_client_factory

    def add(self, source: str, line: int | None, reason: str, raw: str) -> None:
        import orjson

        self.count += 1
        if self.first is None:
            self.first = f"{source} line {line}: {reason}"
        if self._file is None:
            self._file = self._open()
        record = {"source": source, "line": line, "reason": reason, "raw": raw}
        self._file.write(orjson.dumps(record) + b"\n")
        limit = self.policy.error_limit
        if limit is not None and self.count > limit:
            self.close()
            raise RunError(
                f"{self.count} bad row(s), more than max_errors {limit}; first: {self.first}; all written to {self.uri}"
            )

    def check_rate(self, rows_read: int) -> None:
        rate = self.policy.max_error_rate
        if rate is not None and rows_read and self.count / rows_read > rate:
            raise RunError(
                f"{self.count} bad row(s) of {rows_read} ({self.count / rows_read:.4%}) is more than "
                f"max_error_rate {rate:.4%}; first: {self.first}; all written to {self.uri}"
            )

    @property
    def location(self) -> str | None:
        """The error file, if any row went to it."""
        return self.uri if self.count else None

    def _open(self) -> IO[bytes]:
        try:
            return self._open_uri()
        except OSError as exc:
            raise RunError(f"cannot write the error output: {exc.strerror or exc}", where=self.uri) from None

    def _open_uri(self) -> IO[bytes]:
        if self.uri.startswith("s3://"):
            import smart_open

            client = self._s3_client_factory() if self._s3_client_factory else None
            params = {"client": client} if client is not None else {}
            return smart_open.open(self.uri, "wb", transport_params=params)
        directory = os.path.dirname(self.uri)
        if directory:
            os.makedirs(directory, exist_ok=True)
        return open(self.uri, "wb")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
