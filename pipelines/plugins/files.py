"""The files of file and object outputs: rows -> formatter -> encoders -> a store, rotated by size.

Names are deterministic, so a rerun of a shard writes (and overwrites) the same ones:

    {path_prefix}{job_id}/part-{shard:05d}-{seq:05d}.{file_ext}[.gz][.zst]
    {path_prefix}{job_id}/_manifest.json        written by `finish`, last

`path_prefix` is a plain prefix, as in Embulk: `exports/audience/` puts the job's folder under
`exports/audience/`, `out/audience_` makes it `out/audience_{job_id}/`. `file_ext` defaults to the
formatter's (csv, jsonl, avro); each encoder adds its own (gz, zst). Every shard writes at least
one file (seq 00000, with only the CSV header if it got no rows), then a new one each time the
current one reaches `max_rows_per_file` rows or `max_bytes_per_file` stored (encoded) bytes.
A file of 0 rows is valid (a header-only CSV, an empty gzip or zstd stream, a zero-record Avro file)
and its shard report lists it, but the manifest lists only files with rows: an export of no rows (an
empty snapshot) has a manifest that lists no files.

A shard's files stay invisible until it commits: on S3 each is a multipart upload left incomplete
(one part buffer per shard, sent as soon as it fills), completed on commit; on a local disk each is a
hidden temporary file, renamed on commit. Abort removes them; the next attempt of a killed shard
removes what it left. `finish` checks the files the shard reports list, deletes other part files of
the job (a killed attempt's), and writes the manifest (pipelines.engine.manifest).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError, RunError
from pipelines.engine.manifest import MANIFEST_NAME, Manifest, ManifestFile
from pipelines.engine.spi import Compressor, EncoderPlugin, FormatterPlugin, JobTotals, OutputPlugin, OutputResult
from pipelines.engine.progress import log_event
from pipelines.engine.records import Batch, Schema

MIB = 1 << 20
MIN_PART_SIZE = 5 * MIB  # S3's minimum, for every part but the last
MAX_PART_SIZE = 5 << 30
DEFAULT_PART_SIZE = 8 * MIB
MAX_PARTS = 10_000  # S3's maximum parts of an upload
# With max_bytes_per_file, rows are formatted this much at a time at most (and at least MIN_CHUNK_BYTES),
# and the file's size checked after each: a file ends at most one chunk past the limit (plus what a
# compressor still holds).
CHUNK_BYTES = MIB
MIN_CHUNK_BYTES = 16 << 10
PROBE_ROWS = 100  # rows formatted first, to learn the size of a row
PART_FILE = re.compile(r"part-\d{5}-\d{5}\.")


def is_part_file(name: str, folder: str) -> bool:
    """`name` is a part file directly in `folder` (which ends with '/', or is '')."""
    rest = name[len(folder):] if name.startswith(folder) else ""
    return "/" not in rest and PART_FILE.match(rest) is not None


def check_job_id(job_id: str, where: str) -> None:
    if not job_id or job_id in (".", "..") or any(c in job_id for c in "/\\\0"):
        raise RunError(f"the job id {job_id!r} cannot name a folder (no '/', not '.' or '..')", where=where)


@dataclass(frozen=True)
class FileNames:
    path_prefix: str
    file_ext: str  # with the encoders' extensions: csv.gz

    def job_folder(self, job_id: str) -> str:
        return f"{self.path_prefix}{job_id}/"

    def shard_prefix(self, job_id: str, shard: int) -> str:
        return f"{self.job_folder(job_id)}part-{shard:05d}-"

    def file(self, job_id: str, shard: int, seq: int) -> str:
        return f"{self.shard_prefix(job_id, shard)}{seq:05d}.{self.file_ext}"

    def manifest(self, job_id: str) -> str:
        return self.job_folder(job_id) + MANIFEST_NAME


def file_names(path_prefix: str, file_ext: str | None, formatter: FormatterPlugin, encoders: list[EncoderPlugin]) -> FileNames:
    """`file_ext` (Embulk's `.csv` or `csv`), or the formatter's, then each encoder's extension."""
    ext = (file_ext or formatter.file_ext).removeprefix(".")
    return FileNames(path_prefix, ".".join([ext, *(e.file_ext for e in encoders)]))


# ---------------------------------------------------------------- stores


class FileStore:
    """Where an output's files go, by name (a local path or an S3 key).

    A shard writes its files one at a time (`begin`, `write`*, `end`); none is visible before
    `commit`, and `abort` removes them all. `finish` uses the listing and whole-file methods.
    """

    def uri(self, name: str) -> str:
        raise NotImplementedError

    def name(self, uri: str) -> str:
        """The name of a file given by its URI; a RunError if it is not in this store."""
        raise NotImplementedError

    def clear_shard(self, shard_prefix: str) -> int:
        """Removes the invisible files an earlier, killed attempt of the shard left; returns how many."""
        raise NotImplementedError

    def begin(self, name: str) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def end(self) -> None:
        """Ends the current file: all its bytes are stored, still invisible."""
        raise NotImplementedError

    def commit(self) -> None:
        """Makes every file ended since the last commit visible."""
        raise NotImplementedError

    def abort(self) -> None:
        """Removes every file of this attempt (best effort: what stays is removed by the next attempt or `finish`)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def listing(self, folder: str) -> dict[str, int]:
        """Visible files directly in `folder` (ending with '/'): name -> size."""
        raise NotImplementedError

    def clear_incomplete(self, folder: str) -> int:
        """Removes the invisible files of every shard under `folder`; returns how many."""
        raise NotImplementedError

    def delete(self, names: list[str]) -> None:
        raise NotImplementedError

    def read(self, name: str) -> bytes | None:
        raise NotImplementedError

    def put(self, name: str, data: bytes) -> None:
        """Writes a whole file at once; it appears complete or not at all."""
        raise NotImplementedError


class LocalFileStore(FileStore):
    """Files on a local disk, each written as `.{name}.{random}.tmp` beside its final name, renamed on commit."""

    def __init__(self) -> None:
        self.file: Any = None
        self.current: tuple[str, str] | None = None  # (name, temporary path)
        self.pending: list[tuple[str, str]] = []
        self.committed: list[str] = []
        self.created_folders: list[str] = []

    def uri(self, name: str) -> str:
        return name

    def name(self, uri: str) -> str:
        return uri

    @staticmethod
    def _temporary(name: str) -> str:
        folder, base = os.path.split(name)
        return os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")

    def _remove_temporary(self, folder: str, starting: str) -> int:
        try:
            entries = os.listdir(folder or ".")
        except OSError:  # no folder (yet), or not one: begin() says why
            return 0
        removed = 0
        for entry in entries:
            if entry.startswith("." + starting) and entry.endswith(".tmp"):
                try:
                    os.remove(os.path.join(folder, entry))
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def clear_shard(self, shard_prefix: str) -> int:
        folder, starting = os.path.split(shard_prefix)
        return self._remove_temporary(folder, starting)

    def begin(self, name: str) -> None:
        folder = os.path.dirname(name)
        tmp = self._temporary(name)
        try:
            if folder and not os.path.isdir(folder):
                try:
                    os.makedirs(folder)
                    self.created_folders.append(folder)
                except FileExistsError:  # made meanwhile by another shard's process
                    pass
            self.file = open(tmp, "wb")
        except OSError as exc:
            raise RunError(f"cannot create the output file: {exc.strerror or exc}", where=name) from None
        self.current = (name, tmp)

    def write(self, data: bytes) -> None:
        assert self.file is not None and self.current is not None
        try:
            self.file.write(data)
        except OSError as exc:
            raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=self.current[0]) from None

    def end(self) -> None:
        assert self.file is not None and self.current is not None
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        except OSError as exc:
            raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=self.current[0]) from None
        self.file = None
        self.pending.append(self.current)
        self.current = None

    def commit(self) -> None:
        folders = set()
        while self.pending:
            name, tmp = self.pending[0]
            try:
                os.replace(tmp, name)
            except OSError as exc:
                raise RunError(f"cannot write the output file: {exc.strerror or exc}", where=name) from None
            self.pending.pop(0)
            self.committed.append(name)
            folders.add(os.path.dirname(name) or ".")
        for folder in folders:  # the renames themselves are durable
            _fsync_folder(folder)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        leftovers = [tmp for _, tmp in self.pending] + ([self.current[1]] if self.current else []) + self.committed
        for path in leftovers:
            try:
                os.remove(path)
            except OSError:
                pass
        self.pending, self.current, self.committed = [], None, []
        for folder in reversed(self.created_folders):
            try:
                os.rmdir(folder)  # only if empty: another shard's files stay
            except OSError:
                pass
        self.created_folders = []

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def listing(self, folder: str) -> dict[str, int]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return {}
        return {os.path.join(folder, e.name): e.stat().st_size for e in entries if e.is_file() and not e.name.startswith(".")}

    def clear_incomplete(self, folder: str) -> int:
        return self._remove_temporary(folder.rstrip("/") or ".", "part-")

    def delete(self, names: list[str]) -> None:
        for name in names:
            try:
                os.remove(name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise RunError(f"cannot delete: {exc.strerror or exc}", where=name) from None

    def read(self, name: str) -> bytes | None:
        try:
            with open(name, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RunError(f"cannot read: {exc.strerror or exc}", where=name) from None

    def put(self, name: str, data: bytes) -> None:
        tmp = self._temporary(name)
        try:
            os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name)
        except OSError as exc:
            raise RunError(f"cannot write: {exc.strerror or exc}", where=name) from None


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PartBody(io.RawIOBase):
    """A part as a stream over a view of the shard's buffer: the HTTP layer sends it in blocks, and
    botocore rewinds it to hash it or to retry, without a copy of the part (bytes would be copied whole)."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self.view)

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), len(self.view) - self.position)
        buffer[:count] = self.view[self.position : self.position + count]
        self.position += count
        return count

    def read(self, size: int | None = -1) -> bytes:
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self.position + size)
        data = bytes(self.view[self.position : end])
        self.position = max(self.position, end)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: len(self.view)}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position


@dataclass
class _Upload:
    key: str
    upload_id: str
    parts: list[dict[str, Any]] = field(default_factory=list)


class S3FileStore(FileStore):
    """Objects in one bucket, each a multipart upload completed on commit.

    One buffer for the shard: a part is sent as soon as `part_size` bytes are in it, and a file's
    last (smaller) part when the file ends, so memory stays about one part whatever the file count.
    """

    def __init__(self, client: Any, bucket: str, part_size: int = DEFAULT_PART_SIZE) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.buffer = bytearray()
        self.upload: _Upload | None = None
        self.pending: list[_Upload] = []
        self.completed: list[tuple[str, str]] = []  # (key, ETag) completed by this attempt

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{name}"

    def name(self, uri: str) -> str:
        prefix = f"s3://{self.bucket}/"
        if not uri.startswith(prefix):
            raise RunError(f"not in the output's bucket '{self.bucket}'", where=uri)
        return uri[len(prefix):]

    def _call(self, method: str, key: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        from pipelines.engine.s3 import s3_error  # one rule for S3 reads and writes: 5xx, throttles, timeouts exit 75

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.uri(key)) from None

    def _incomplete(self, prefix: str) -> list[tuple[str, str]]:
        """(key, upload id) of the incomplete multipart uploads under `prefix`."""
        found, args = [], {"Prefix": prefix}
        while True:
            page = self._call("list_multipart_uploads", prefix, **args)
            found += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
            if not page.get("IsTruncated"):
                return found
            args = {"Prefix": prefix, "KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    def _abort_uploads(self, prefix: str) -> int:
        """Aborts the incomplete uploads of part files under `prefix`, in its folder only: not another
        job's whose folder is below it (a path_prefix may end inside this job's folder), nor other files'."""
        folder = prefix[: prefix.rfind("/") + 1]
        uploads = [(key, upload_id) for key, upload_id in self._incomplete(prefix) if is_part_file(key, folder)]
        for key, upload_id in uploads:
            try:
                self._call("abort_multipart_upload", key, Key=key, UploadId=upload_id)
            except RunError as exc:
                if "NoSuchUpload" not in exc.message:  # aborted meanwhile
                    raise
        return len(uploads)

    def clear_shard(self, shard_prefix: str) -> int:
        return self._abort_uploads(shard_prefix)

    def begin(self, name: str) -> None:
        response = self._call("create_multipart_upload", name, Key=name)
        self.upload = _Upload(name, response["UploadId"])

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            self._send_buffered(self.part_size)

    def _send_buffered(self, size: int) -> None:
        """Sends the buffer's first `size` bytes as the next part, from the buffer itself (no copy)."""
        with memoryview(self.buffer) as view, view[:size] as part:
            self._send(part)
        try:
            del self.buffer[:size]
        except BufferError:  # a view of the part still held somewhere: keep the rest in a new buffer
            self.buffer = bytearray(self.buffer[size:])

    def _send(self, data: memoryview) -> None:
        upload = self.upload
        assert upload is not None
        if len(upload.parts) >= MAX_PARTS:
            raise RunError(
                f"the file reached S3's {MAX_PARTS} parts of {self.part_size} bytes; set max_bytes_per_file "
                "lower or part_size higher",
                where=self.uri(upload.key),
            )
        number = len(upload.parts) + 1
        body = PartBody(data)
        response = self._call("upload_part", upload.key, Key=upload.key, UploadId=upload.upload_id, PartNumber=number, Body=body)
        upload.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def end(self) -> None:
        assert self.upload is not None
        if self.buffer or not self.upload.parts:  # the last part may be small, or empty for an empty file
            self._send_buffered(len(self.buffer))
        self.pending.append(self.upload)
        self.upload = None

    def commit(self) -> None:
        while self.pending:
            upload = self.pending[0]
            response = self._call(
                "complete_multipart_upload", upload.key,
                Key=upload.key, UploadId=upload.upload_id, MultipartUpload={"Parts": upload.parts},
            )
            self.pending.pop(0)
            self.completed.append((upload.key, response.get("ETag", "")))

    def abort(self) -> None:
        failures = []
        uploads = self.pending + ([self.upload] if self.upload else [])
        self.buffer = bytearray()
        self.upload, self.pending = None, []
        for upload in uploads:
            try:
                self._call("abort_multipart_upload", upload.key, Key=upload.key, UploadId=upload.upload_id)
            except RunError as exc:
                failures.append(str(exc))
        for key, etag in self.completed:  # a commit that failed halfway: remove what it made visible
            try:
                # only our own version: a newer attempt of the shard may have written the key since
                if self._call("head_object", key, Key=key).get("ETag") == etag:
                    self._call("delete_object", key, Key=key)
            except RunError as exc:
                if exc.message != "the object does not exist":
                    failures.append(str(exc))
        self.completed = []
        if failures:
            log_event("output_abort_incomplete", left=len(failures), first=failures[0])

    def listing(self, folder: str) -> dict[str, int]:
        sizes, args = {}, {"Prefix": folder, "Delimiter": "/"}
        while True:
            page = self._call("list_objects_v2", folder, **args)
            sizes.update({item["Key"]: item["Size"] for item in page.get("Contents", []) if not item["Key"].endswith("/")})
            if not page.get("IsTruncated"):
                return sizes
            args = {"Prefix": folder, "Delimiter": "/", "ContinuationToken": page["NextContinuationToken"]}

    def clear_incomplete(self, folder: str) -> int:
        return self._abort_uploads(folder)

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            response = self._call("delete_objects", batch[0], Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise RunError(f"cannot delete {len(errors)} object(s): {first.get('Code')} {first.get('Message', '')}", where=self.uri(first["Key"]))

    def read(self, name: str) -> bytes | None:
        try:
            return self._call("get_object", name, Key=name)["Body"].read()
        except RunError as exc:
            if exc.message == "the object does not exist":
                return None
            raise

    def put(self, name: str, data: bytes) -> None:
        self._call("put_object", name, Key=name, Body=data)


# ---------------------------------------------------------------- the writer


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


# ---------------------------------------------------------------- outputs


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


def finish_files(store: FileStore, names: FileNames, totals: JobTotals, description: dict[str, Any]) -> dict[str, Any]:
    """Checks the job's files against the shard reports, deletes part files no report lists, writes the manifest.

    The manifest lists the reported files with rows; a file of 0 rows (what a shard that got no rows
    wrote) is left where it is, unlisted. So an export of no rows (no shard, or shards that got no rows)
    gets a manifest with `total_rows` 0 and an empty `files` list.
    Idempotent: once the manifest exists it is returned as it is.
    """
    job_id = totals.job_id
    manifest_name = names.manifest(job_id)
    manifest_uri = store.uri(manifest_name)
    check_job_id(job_id, manifest_uri)
    files = _files_to_list(totals)
    existing = store.read(manifest_name)
    if existing is not None:
        manifest = Manifest.from_json(existing, manifest_uri)
        if files is not None and [f.to_dict() for f in manifest.files if f.rows] != files:
            raise RunError(
                "the job's manifest lists other files than its shard reports (was a shard rerun after finish?); "
                "delete the manifest to write a new one",
                where=manifest_uri,
            )
        return {"manifest": manifest_uri, "files": len(manifest.files), "already_finished": True}
    if files is None:
        raise RunError("the shard reports list no files (were they written by another output?)", where=manifest_uri)
    folder = names.job_folder(job_id)
    aborted = store.clear_incomplete(folder)
    stale = _check_files(store, folder, files, totals.files or [], totals.total_rows, manifest_uri)
    store.delete(stale)
    manifest = Manifest(
        job_id=job_id,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        total_rows=totals.total_rows,
        shard_count=totals.shard_count,
        format=description["format"],
        formatter=description["formatter"],
        encoders=description["encoders"],
        file_ext=description["file_ext"],
        columns=description["columns"],
        files=[ManifestFile(e["uri"], e["rows"], e["bytes"], e["sha256"]) for e in files],
    )
    store.put(manifest_name, manifest.to_json().encode())
    log_event("manifest_written", manifest=manifest_uri, files=len(manifest.files), deleted=len(stale), aborted=aborted)
    return {"manifest": manifest_uri, "files": len(manifest.files)}


def _files_to_list(totals: JobTotals) -> list[dict[str, Any]] | None:
    """The reported files the manifest lists: those with rows (a shard that got none wrote one file of 0
    rows); [] for a job without shards (an empty snapshot); None when no shard report lists files."""
    if totals.files is None:
        return [] if totals.shard_count == 0 else None
    return [entry for entry in totals.files if entry["rows"] > 0]


def _check_files(
    store: FileStore, folder: str, files: list[dict[str, Any]], reported: list[dict[str, Any]], total_rows: int, manifest_uri: str
) -> list[str]:
    """Every file to list exists with its reported size, and their rows add up to the job's; returns the
    part files in `folder` that no report lists (a killed attempt's), to delete."""
    present = store.listing(folder)
    for entry in files:
        name = store.name(entry["uri"])
        size = present.get(name)
        if size is None:
            raise RunError("a shard report lists this file, but it does not exist", where=entry["uri"])
        if size != entry["bytes"]:
            raise RunError(f"the file has {size} bytes, its shard report says {entry['bytes']}", where=entry["uri"])
    rows = sum(entry["rows"] for entry in files)
    if rows != total_rows:
        raise RunError(f"the files hold {rows} rows, the shards wrote {total_rows}", where=manifest_uri)
    known = {store.name(entry["uri"]) for entry in reported}
    return sorted(n for n in present if n not in known and is_part_file(n, folder))
