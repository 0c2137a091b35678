"""The names of an output's files: the job's folder, its part files, its manifest.

    {path_prefix}{job_id}/part-{shard:05d}-{seq:05d}.{file_ext}[.gz][.zst]
    {path_prefix}{job_id}/_manifest.json

Deterministic, so a rerun of a shard writes (and overwrites) the same ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.engine.errors import RunError
from pipelines.engine.manifest import MANIFEST_NAME
from pipelines.engine.spi import EncoderPlugin, FormatterPlugin

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
