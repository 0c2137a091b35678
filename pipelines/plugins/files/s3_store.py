"""Objects in an S3 bucket: each a multipart upload sent from one part buffer per shard, completed on commit."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from pipelines.engine.errors import RunError
from pipelines.engine.progress import log_event
from pipelines.plugins.files.names import is_part_file
from pipelines.plugins.files.store import MIB, FileStore

MIN_PART_SIZE = 5 * MIB  # S3's minimum, for every part but the last
MAX_PART_SIZE = 5 << 30
DEFAULT_PART_SIZE = 8 * MIB
MAX_PARTS = 10_000  # S3's maximum parts of an upload


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
