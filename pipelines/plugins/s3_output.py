"""`out: {type: s3, bucket: ..., path_prefix: exports/audience/, formatter: {type: csv}, encoders: [{type: gzip}]}`

Embulk S3 output's option names where they exist (bucket, path_prefix, file_ext, endpoint, region,
access_key_id, secret_access_key). The objects (naming, rotation, multipart uploads completed only
when the shard commits) are those of the pipelines.plugins.files package (names, writer, s3_store;
the manifest by finish):

    s3://{bucket}/{path_prefix}{job_id}/part-{shard:05d}-{seq:05d}.{file_ext}[.gz|.zst]
    s3://{bucket}/{path_prefix}{job_id}/_manifest.json      (finish, last)
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.engine.s3 import S3Client
from pipelines.engine.settings import option
from pipelines.plugins.files.output import FileWritingOutput
from pipelines.plugins.files.s3_store import DEFAULT_PART_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, S3FileStore
from pipelines.plugins.files.store import FileStore


@dataclass(frozen=True)
class S3OutputSettings:
    bucket: str
    path_prefix: str = ""
    file_ext: str | None = None  # default: the formatter's (csv, jsonl, avro); the encoders' are added
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = option(None, secret=True)
    secret_access_key: str | None = option(None, secret=True)
    max_rows_per_file: int | None = None
    max_bytes_per_file: int | None = None  # stored (encoded) bytes
    part_size: int = DEFAULT_PART_SIZE  # bytes of a multipart upload part, and of the shard's buffer

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("bucket cannot be empty")
        if self.path_prefix.startswith("/"):
            raise ValueError("path_prefix is an S3 key prefix: it does not start with '/'")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither (to use the environment's credentials)")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB) bytes")
        for name in ("max_rows_per_file", "max_bytes_per_file"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_bytes_per_file is not None and self.max_bytes_per_file > self.part_size * MAX_PARTS:
            raise ValueError(f"max_bytes_per_file is more than S3's {MAX_PARTS} parts of part_size bytes")


class S3Output(S3Client, FileWritingOutput):
    Settings = S3OutputSettings

    def new_store(self) -> FileStore:
        return S3FileStore(self.client, self.settings.bucket, self.settings.part_size)
