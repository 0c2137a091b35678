"""The manifest of a file or object export: `{path_prefix}{job_id}/_manifest.json`, written last by `finish`.

Its presence says the job is complete; it lists every file with its rows, bytes and sha256, and says
how to read them (format, formatter settings, encoders, columns):

    {
      "version": 1,
      "job_id": "export-42",
      "created": "2025-01-02T03:04:05Z",
      "total_rows": 1000000,
      "shard_count": 2,
      "format": "csv",
      "formatter": {"header_line": true, "delimiter": ",", "quote": "\\"", "quote_policy": "MINIMAL", ...},
      "encoders": [{"type": "gzip", "level": 6}],
      "file_ext": "csv.gz",
      "columns": [{"name": "user_id", "type": "string"}, {"name": "score", "type": "double"}],
      "files": [
        {"uri": "s3://audiences/exports/export-42/part-00000-00000.csv.gz", "rows": 500000, "bytes": 4812345, "sha256": "9f86..."},
        {"uri": "s3://audiences/exports/export-42/part-00001-00000.csv.gz", "rows": 500000, "bytes": 4809876, "sha256": "60303..."}
      ]
    }

Every listed file holds at least one row. An export of no rows (an empty snapshot) has a manifest
too, with `"total_rows": 0` and `"files": []`: complete, and empty.

A consumer reads it with `read_manifest(uri)` and checks the files with `verify(uri)`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from pipelines.engine.errors import RunError
from pipelines.engine.textio import Readable

MANIFEST_NAME = "_manifest.json"
VERSION = 1
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestFile:
    uri: str
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Manifest:
    job_id: str
    created: str  # ISO 8601, UTC
    total_rows: int
    shard_count: int
    format: str  # the formatter's type: csv, jsonl, avro
    formatter: dict[str, Any]  # its settings, for a reader (delimiter, header_line, ...)
    encoders: list[dict[str, Any]]  # [{"type": "gzip", "level": 6}], applied in this order
    file_ext: str
    columns: list[dict[str, str]]  # [{"name": ..., "type": ...}]
    files: list[ManifestFile]
    version: int = VERSION

    def to_json(self) -> str:
        data = {"version": self.version, **{k: v for k, v in asdict(self).items() if k != "version"}}
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Manifest:
        try:
            data = json.loads(text)
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
            files = [ManifestFile(f["uri"], int(f["rows"]), int(f["bytes"]), str(f["sha256"])) for f in data["files"]]
            return cls(
                data["job_id"], data["created"], int(data["total_rows"]), int(data["shard_count"]), data["format"],
                dict(data["formatter"]), list(data["encoders"]), data["file_ext"], list(data["columns"]), files,
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RunError(f"not a manifest: {exc!r}" if isinstance(exc, KeyError) else f"not a manifest: {exc}", where=where) from None


# ---------------------------------------------------------------- reading by URI (s3:// or a local path)


def _s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def open_uri(uri: str, client: Any = None) -> IO[bytes]:
    """A binary stream of the file at `uri` (an s3:// URI, with `client` or one from the environment; or a path)."""
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        from pipelines.engine.s3 import s3_client, s3_error

        bucket, key = _s3_parts(uri)
        try:
            return (client or s3_client()).get_object(Bucket=bucket, Key=key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, uri) from None
    try:
        return open(uri, "rb")
    except FileNotFoundError:
        raise RunError("the file does not exist", where=uri) from None
    except OSError as exc:
        raise RunError(f"cannot read: {exc.strerror or exc}", where=uri) from None


def read_manifest(uri: str, client: Any = None) -> Manifest:
    """The manifest at `uri` (`s3://bucket/prefix/job/_manifest.json` or a local path)."""
    stream = open_uri(uri, client)
    try:
        return Manifest.from_json(stream.read(), uri)
    finally:
        stream.close()


# ---------------------------------------------------------------- verifying the files


@dataclass
class Verification:
    """What `verify` found: `problems` is empty when every file is as the manifest says."""

    manifest: Manifest
    problems: list[str] = field(default_factory=list)
    rows_counted: int | None = None  # with count_rows=True

    @property
    def ok(self) -> bool:
        return not self.problems


class HashingStream(Readable):
    """Reads through to `inner`, hashing and counting the bytes."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read() if size is None or size < 0 else self.inner.read(size)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass

    def close(self) -> None:
        self.inner.close()


def verify(uri: str, count_rows: bool = False, client: Any = None) -> Verification:
    """Checks every file of the manifest at `uri`: it exists, has the listed size and sha256, and, with
    `count_rows`, holds the listed number of rows (decoded and parsed back). Never raises for a bad file:
    each problem is a line of `problems`, naming the file."""
    manifest = read_manifest(uri, client)
    result = Verification(manifest, rows_counted=0 if count_rows else None)
    if sum(f.rows for f in manifest.files) != manifest.total_rows:
        result.problems.append(f"{uri}: the files hold {sum(f.rows for f in manifest.files)} rows, total_rows says {manifest.total_rows}")
    for entry in manifest.files:
        try:
            stream = HashingStream(open_uri(entry.uri, client))
        except RunError as exc:
            result.problems.append(str(exc))
            continue
        try:
            rows = count_file_rows(manifest, stream, entry.uri) if count_rows else None
            stream.drain()
        except Exception as exc:  # a file that does not decode is one problem, not the end of the check
            result.problems.append(f"{entry.uri}: cannot read it back: {exc}")
            continue
        finally:
            stream.close()
        if stream.bytes != entry.bytes:
            result.problems.append(f"{entry.uri}: {stream.bytes} bytes, the manifest says {entry.bytes}")
        elif stream.sha256.hexdigest() != entry.sha256:
            result.problems.append(f"{entry.uri}: sha256 {stream.sha256.hexdigest()}, the manifest says {entry.sha256}")
        if rows is not None:
            result.rows_counted = (result.rows_counted or 0) + rows
            if rows != entry.rows:
                result.problems.append(f"{entry.uri}: {rows} rows, the manifest says {entry.rows}")
    return result


def count_file_rows(manifest: Manifest, stream: Any, uri: str) -> int:
    """Rows of one file: its encoders undone, then counted by the formatter that wrote it (found by
    the manifest's format in the registry, with the manifest's formatter settings)."""
    from pipelines.engine import registry
    from pipelines.engine.decoding import undo_encoders

    if manifest.format not in registry.names("formatter"):
        raise RunError(f"cannot count rows of the format {manifest.format!r}", where=uri)
    cls = registry.load("formatter", manifest.format, uri)
    formatter = cls(cls.Settings(**manifest.formatter), uri)
    return formatter.count_rows(undo_encoders(manifest.encoders, stream, uri))
