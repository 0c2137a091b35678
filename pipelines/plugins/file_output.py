"""`out: {type: file, path_prefix: ./out/, formatter: {type: csv}, encoders: [{type: gzip}]}`

Files on a local disk, named, rotated and made visible on commit as the pipelines.plugins.files package
does (names, writer, local_store; the manifest by finish):

    {path_prefix}{job_id}/part-{shard:05d}-{seq:05d}.{file_ext}[.gz|.zst]
    {path_prefix}{job_id}/_manifest.json      (finish, last)

Each file is written under a hidden temporary name and renamed on commit, so a failed run leaves none.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.plugins.files.local_store import LocalFileStore
from pipelines.plugins.files.output import FileWritingOutput
from pipelines.plugins.files.store import FileStore


@dataclass(frozen=True)
class FileOutputSettings:
    path_prefix: str
    file_ext: str | None = None  # default: the formatter's (csv, jsonl, avro); the encoders' are added
    max_rows_per_file: int | None = None
    max_bytes_per_file: int | None = None  # stored (encoded) bytes

    def __post_init__(self) -> None:
        if not self.path_prefix:
            raise ValueError("path_prefix cannot be empty")
        for name in ("max_rows_per_file", "max_bytes_per_file"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")


class FileOutput(FileWritingOutput):
    Settings = FileOutputSettings

    def new_store(self) -> FileStore:
        return LocalFileStore()
