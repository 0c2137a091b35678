"""`in: {type: s3, bucket: ..., path_prefix: ...}`: S3 objects, streamed, with embulk-input-s3's options
(docs/embulk/input-s3-and-parsers.md): auth_method and its keys, http_proxy, path_match_pattern,
total_file_count_limit, incremental with last_path (the summary's config_diff), skip_glacier_objects,
and the retry settings (pipelines.engine.s3_access).

A GET that S3 answers with a 5xx or a throttle is retried by botocore (standard mode, 9 tries, or
$AWS_MAX_ATTEMPTS); a body that breaks while read resumes where it broke (ResumingS3Body). What
still fails after that exits 75 (pipelines.engine.s3: one rule for reads and writes).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from pipelines.engine.errors import ConfigError, DataError, RunError, TransientRunError
from pipelines.engine.spi import InputPlugin, checked_sources
from pipelines.plugins.file_input import compile_pattern
from pipelines.engine.records import Source
from pipelines.engine.s3 import READ_TIMEOUT_SECONDS, S3Client, s3_client, s3_error
from pipelines.engine.s3_access import S3Access, embulk_retries
from pipelines.plugins.s3_input_auth import AuthMethod, HttpProxy, check_auth
from pipelines.engine.settings import option
from pipelines.engine.textio import Readable

# A body that breaks (a reset, a read timeout, a connection closed early) resumes at the byte reached;
# READ_TRIES tries in a row that each read less than PROGRESS_BYTES before breaking fail the read.
READ_TRIES = 5
PROGRESS_BYTES = 1 << 20
BACKOFF_SECONDS = 0.5  # before the 2nd try; doubling, at most MAX_BACKOFF_SECONDS, with jitter
MAX_BACKOFF_SECONDS = 8.0


GLACIER_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})  # a GET fails until the object is restored


@dataclass(frozen=True)
class S3InputSettings:
    bucket: str
    path_prefix: str | None = None
    path: str | None = None  # one object; with path_prefix too, path wins (as in Embulk)
    path_match_pattern: str | None = None
    endpoint: str | None = None
    region: str | None = None
    auth_method: AuthMethod | None = None  # absent: the keys if given, else boto's default chain
    access_key_id: str | None = option(None, secret=True)
    secret_access_key: str | None = option(None, secret=True)
    session_token: str | None = option(None, secret=True)
    profile_file: str | None = None
    profile_name: str | None = None
    http_proxy: HttpProxy | None = None
    total_file_count_limit: int | None = None
    incremental: bool = True  # the summary's config_diff gives the next last_path
    last_path: str | None = None  # objects listed after this key only
    skip_glacier_objects: bool = False
    maximum_retries: int | None = None
    initial_retry_interval_millis: int | None = None
    maximum_retry_interval_millis: int | None = None
    read_timeout_seconds: float = READ_TIMEOUT_SECONDS  # S3 sending nothing this long breaks a read (then resumed)

    refused_options: ClassVar[dict[str, str]] = {
        "min_task_size": (
            "is spelled --shard-size here (`pipelines plan`/`run --shard-size BYTES`, default 128MiB): a shard takes "
            "objects until it holds that many bytes, as a task does with min_task_size"
        ),
        "use_modified_time": (
            "is not supported: a plan records each object's key, size and ETag, not its modification time, so the "
            "next run could not be told where to start; use incremental with last_path (keys that sort in upload order)"
        ),
        "last_modified_time": "is not supported (see use_modified_time); use incremental with last_path",
    }

    def __post_init__(self) -> None:
        if self.path is None and self.path_prefix is None:
            raise ValueError("set 'path' (one object) or 'path_prefix' (every object under it)")
        if not self.read_timeout_seconds > 0:
            raise ValueError("read_timeout_seconds must be more than 0")
        if self.total_file_count_limit is not None and self.total_file_count_limit < 1:
            raise ValueError("total_file_count_limit must be at least 1")
        for name in ("maximum_retries", "initial_retry_interval_millis", "maximum_retry_interval_millis"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name} must be 0 or more")
        check_auth(self)

    @property
    def access(self) -> S3Access:
        retries = embulk_retries(self.maximum_retries, self.initial_retry_interval_millis, self.maximum_retry_interval_millis)
        proxy = self.http_proxy.url if self.http_proxy is not None else None
        return S3Access(
            self.auth_method, self.access_key_id, self.secret_access_key, self.session_token, self.profile_file,
            self.profile_name, retries, proxy,
        )


class S3Input(S3Client, InputPlugin):
    Settings = S3InputSettings

    def __init__(self, settings: S3InputSettings, where: str) -> None:
        super().__init__(settings, where)
        self.pattern = compile_pattern(settings.path_match_pattern, f"{where}.path_match_pattern")
        self.notes: list[str] = []
        if settings.path is not None and settings.path_prefix is not None:
            self.notes.append(f"{where}.path_prefix: not used, since path is set (as in Embulk: path wins)")
        if settings.path is not None and settings.path_match_pattern is not None:
            raise ConfigError("path_match_pattern goes with path_prefix, not path", where=f"{where}.path_match_pattern")

    @functools.cached_property
    def client(self) -> Any:
        s = self.settings
        return s3_client(s.endpoint, s.region, read_timeout=s.read_timeout_seconds, access=s.access)

    def list_sources(self) -> Iterator[Source]:
        listed = self._listed()
        if self.settings.path is None and self.settings.last_path is not None:
            return _non_empty(listed)  # nothing new since last_path is a run with nothing to do
        return checked_sources(listed, f"s3://{self.settings.bucket}/{self.settings.path_prefix}", "object")

    def config_diff(self, items: list[Any]) -> dict[str, Any] | None:
        """Embulk's config diff: with `incremental`, the last key this job read, as the next run's `last_path`."""
        s = self.settings
        if not s.incremental or s.path is not None:
            return None
        prefix = f"s3://{s.bucket}/"
        keys = [item.uri.removeprefix(prefix) for item in items]
        last = max(keys, default=None) or s.last_path
        return None if last is None else {"in": {"last_path": last}}

    def _listed(self) -> Iterator[Source]:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.settings.path if self.settings.path is not None else self.settings.path_prefix or ""
        try:
            if self.settings.path is not None:
                yield self._head(self.settings.path)
            else:
                yield from self._list(key)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"s3://{self.settings.bucket}/{key}") from None

    def _head(self, key: str) -> Source:
        head = self.client.head_object(Bucket=self.settings.bucket, Key=key)
        return Source(f"s3://{self.settings.bucket}/{key}", head["ContentLength"], head.get("ETag"))

    def _list(self, prefix: str) -> Iterator[Source]:
        s = self.settings
        paginator = self.client.get_paginator("list_objects_v2")
        after = {"StartAfter": s.last_path} if s.last_path else {}
        count = 0
        for page in paginator.paginate(Bucket=s.bucket, Prefix=prefix, **after):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/") or (self.pattern is not None and not self.pattern.search(key)):
                    continue
                if item.get("StorageClass") in GLACIER_CLASSES:
                    if s.skip_glacier_objects:
                        continue
                    raise RunError(
                        f"the object is stored in {item['StorageClass']} and cannot be read before it is restored; "
                        "restore it, or set skip_glacier_objects: true to leave such objects out",
                        where=f"s3://{s.bucket}/{key}",
                    )
                yield Source(f"s3://{s.bucket}/{key}", item["Size"], item.get("ETag"))
                count += 1
                if count == s.total_file_count_limit:
                    return

    def open(self, source: Source, offset: int = 0) -> IO[bytes]:
        return ResumingS3Body(self.client, source, offset)

    def current(self, source: Source) -> Source | None:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, key = source.uri.removeprefix("s3://").partition("/")
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            error = s3_error(exc, source.uri)
            if error.message == "the object does not exist":
                return None
            raise error from None
        return Source(source.uri, head["ContentLength"], head.get("ETag"))


class ResumingS3Body(Readable):
    """Streams an object from `offset` with one GET, pinned to the listed ETag (If-Match).

    A body that breaks (a connection reset, S3 sending nothing for the read timeout, a connection
    closed before the end) is resumed, after a backoff, with a ranged GET from the byte reached,
    If-Match the same ETag: a changed object is never stitched (it fails as changed, exit 1).
    READ_TRIES tries in a row that each break before PROGRESS_BYTES fail with a TransientRunError
    (exit 75). Memory holds what one read returns; each read costs a few attribute lookups more.
    """

    def __init__(self, client: Any, source: Source, offset: int = 0) -> None:
        bucket, _, key = source.uri.removeprefix("s3://").partition("/")
        self.client, self.source, self.bucket, self.key = client, source, bucket, key
        self.etag = source.etag
        self.offset = offset  # of the next byte to return, in the object
        self.body: Any = None
        self.tried_from = offset  # where the current try began
        self.broken = 0  # tries in a row that broke before PROGRESS_BYTES
        self.errors = _read_errors()

    def _open(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        args = {"Bucket": self.bucket, "Key": self.key}
        if self.etag:
            args["IfMatch"] = self.etag
        if self.offset:
            args["Range"] = f"bytes={self.offset}-"
        try:
            response = self.client.get_object(**args)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.source.uri) from None
        if self.offset and not str(response.get("ContentRange") or "").startswith(f"bytes {self.offset}-"):
            response["Body"].close()
            answered = response.get("ContentRange") or "the whole object"
            raise RunError(f"S3 answered a GET of the bytes from {self.offset} on with {answered}", where=self.source.uri)
        self.etag = self.etag or response.get("ETag")  # a resumed read must get the same object
        self.body, self.tried_from = response["Body"], self.offset

    def read(self, size: int | None = -1) -> bytes:
        while True:
            if self.body is None:
                if self.offset >= self.source.size:
                    return b""  # it broke after the last byte
                self._open()
            try:
                data = self.body.read(size if size is not None and size >= 0 else None)
            except self.errors as exc:
                self._resume_after(exc)
                continue
            self.offset += len(data)
            if not data and self.offset < self.source.size:
                raise DataError(f"the object ended at byte {self.offset} of {self.source.size}", where=self.source.uri)
            return data

    def _resume_after(self, exc: BaseException) -> None:
        """Drops the broken body and waits before the next try; past READ_TRIES in a row, fails."""
        from botocore.exceptions import FlexibleChecksumError

        from pipelines.engine.progress import log_event

        self._drop_body()
        if isinstance(exc, FlexibleChecksumError):  # bytes already handed on were wrong: no resuming past them
            raise TransientRunError(
                f"the object's bytes did not match its checksum ({exc}); it may pass on retry", where=self.source.uri
            ) from None
        self.broken = 1 if self.offset - self.tried_from >= PROGRESS_BYTES else self.broken + 1
        what = self._describe(exc)
        if self.broken >= READ_TRIES:
            raise TransientRunError(
                f"reading the object failed at byte {self.offset} of {self.source.size}: {what} ({READ_TRIES} tries in a row, "
                "each resumed at the byte reached after a backoff); it may pass on retry",
                where=self.source.uri,
            ) from None
        delay = min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (self.broken - 1)) * random.uniform(0.5, 1.0)
        log_event("s3_read_resumed", uri=self.source.uri, at_byte=self.offset, error=what, next_try=self.broken + 1, delay=round(delay, 2))
        time.sleep(delay)

    def _describe(self, exc: BaseException) -> str:
        """What broke the body, in words."""
        from botocore.exceptions import ReadTimeoutError
        from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

        text = str(exc)
        if isinstance(exc, ReadTimeoutError | Urllib3ReadTimeout | TimeoutError):
            return f"S3 sent nothing for {self.client.meta.config.read_timeout:g} s (the read timeout)"
        if "reset" in text.lower() or isinstance(exc, ConnectionResetError):
            return "the connection was reset"
        if "IncompleteRead" in text or "IncompleteRead" in type(exc).__name__:
            return "the connection closed before the end of the body"
        return text.splitlines()[0][:200] if text else type(exc).__name__

    def _drop_body(self) -> None:
        body, self.body = self.body, None
        try:
            body.close()
        except Exception:  # noqa: BLE001 - the connection is broken already: nothing to keep
            pass

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


def _non_empty(sources: Iterator[Source]) -> Iterator[Source]:
    """`sources`, failing on an empty object (as checked_sources does) but not on there being none."""
    for source in sources:
        if source.size == 0:
            raise DataError("the object is empty (0 bytes)", where=source.uri)
        yield source


@functools.cache
def _read_errors() -> tuple[type[BaseException], ...]:
    """What a broken body raises while read: botocore's wrappers, urllib3's and the socket's own."""
    from botocore.exceptions import BotoCoreError
    from urllib3.exceptions import HTTPError

    return (BotoCoreError, HTTPError, OSError)
