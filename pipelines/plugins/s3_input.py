"""`in: {type: s3, bucket: ..., path_prefix: ...}`: S3 objects, streamed, like Embulk's S3 input."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import IO, Any

from pipelines.errors import ConfigError, DataError, RunError, TransientRunError
from pipelines.plugins.base import InputPlugin, checked_sources
from pipelines.plugins.file_input import compile_pattern
from pipelines.records import Source
from pipelines.settings import option
from pipelines.textio import Readable

READ_RETRIES = 5


@dataclass(frozen=True)
class S3InputSettings:
    bucket: str
    path_prefix: str | None = None
    path: str | None = None
    path_match_pattern: str | None = None
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = option(None, secret=True)
    secret_access_key: str | None = option(None, secret=True)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.path_prefix is None):
            raise ValueError("set exactly one of 'path' (one object) or 'path_prefix' (every object under it)")


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
# What a client is made from besides the arguments: a change (tests, a Lambda reused with new
# settings) makes a new one.
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_PROFILE")


def s3_client(endpoint: str | None = None, region: str | None = None, access_key_id: str | None = None, secret_access_key: str | None = None) -> Any:
    """An S3 client, made once per settings and process: making one loads botocore's service
    models (a quarter of a second), and a run reads and writes through several."""
    key = (endpoint, region, access_key_id, secret_access_key, *(os.environ.get(name) for name in _CLIENT_ENV))
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _new_s3_client(endpoint, region, access_key_id, secret_access_key)
        return client


def _new_s3_client(endpoint: str | None, region: str | None, access_key_id: str | None, secret_access_key: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 8, "mode": "standard"}, read_timeout=120, connect_timeout=10)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


def s3_error(exc: Exception, uri: str) -> RunError:
    """A RunError for a boto/botocore exception, in words."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return RunError("the bucket does not exist", where=uri)
        if code in ("NoSuchKey", "404", "NotFound"):
            return RunError("the object does not exist", where=uri)
        if code in ("PreconditionFailed", "412"):
            return RunError("the object changed since it was listed (its ETag differs)", where=uri)
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return RunError(f"access denied ({code})", where=uri)
        return RunError(f"S3 error {code}: {exc.response.get('Error', {}).get('Message', '')}", where=uri)
    if isinstance(exc, BotoCoreError):
        return TransientRunError(f"cannot reach S3: {exc}", where=uri)
    return RunError(str(exc), where=uri)


class S3Client:
    """The S3 client of a plugin whose settings name `endpoint`, `region`, `access_key_id` and
    `secret_access_key` (the S3 input and output), made on first use."""

    settings: Any

    @functools.cached_property
    def client(self) -> Any:
        s = self.settings
        return s3_client(s.endpoint, s.region, s.access_key_id, s.secret_access_key)


class S3Input(S3Client, InputPlugin):
    Settings = S3InputSettings

    def __init__(self, settings: S3InputSettings, where: str) -> None:
        super().__init__(settings, where)
        self.pattern = compile_pattern(settings.path_match_pattern, f"{where}.path_match_pattern")
        if settings.path is not None and settings.path_match_pattern is not None:
            raise ConfigError("path_match_pattern goes with path_prefix, not path", where=f"{where}.path_match_pattern")

    def list_sources(self) -> list[Source]:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = self.settings.bucket
        try:
            if self.settings.path is not None:
                sources = [self._head(self.settings.path)]
            else:
                sources = self._list(self.settings.path_prefix or "")
        except (ClientError, BotoCoreError) as exc:
            key = self.settings.path if self.settings.path is not None else self.settings.path_prefix
            raise s3_error(exc, f"s3://{bucket}/{key}") from None
        return checked_sources(sources, f"s3://{bucket}/{self.settings.path_prefix}", "object")

    def _head(self, key: str) -> Source:
        head = self.client.head_object(Bucket=self.settings.bucket, Key=key)
        return Source(f"s3://{self.settings.bucket}/{key}", head["ContentLength"], head.get("ETag"))

    def _list(self, prefix: str) -> list[Source]:
        paginator = self.client.get_paginator("list_objects_v2")
        sources = []
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/") or (self.pattern is not None and not self.pattern.search(key)):
                    continue
                sources.append(Source(f"s3://{self.settings.bucket}/{key}", item["Size"], item.get("ETag")))
        return sources

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
    """Streams an object; a dropped connection resumes from the last byte read, pinned to the listed ETag."""

    def __init__(self, client: Any, source: Source, offset: int = 0) -> None:
        bucket, _, key = source.uri.removeprefix("s3://").partition("/")
        self.client, self.source, self.bucket, self.key = client, source, bucket, key
        self.offset = offset
        self.body: Any = None

    def _open(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        args = {"Bucket": self.bucket, "Key": self.key}
        if self.source.etag:
            args["IfMatch"] = self.source.etag
        if self.offset:
            args["Range"] = f"bytes={self.offset}-"
        try:
            self.body = self.client.get_object(**args)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.source.uri) from None

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        for attempt in range(READ_RETRIES):
            if self.body is None:
                self._open()
            try:
                data = self.body.read(size if size >= 0 else None)
            except (BotoCoreError, HTTPError, OSError) as exc:
                self.body = None
                if attempt == READ_RETRIES - 1:
                    raise TransientRunError(f"reading failed at byte {self.offset}: {exc}", where=self.source.uri) from None
                continue
            self.offset += len(data)
            if not data and self.offset < self.source.size:
                raise DataError(f"the object ended at byte {self.offset} of {self.source.size}", where=self.source.uri)
            return data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
