"""`in: {type: file, path_prefix: ./data/audience_}`: local files, like Embulk's file input."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import IO

from pipelines.engine.errors import ConfigError, RunError
from pipelines.engine.spi import InputPlugin, checked_sources
from pipelines.engine.records import Source


@dataclass(frozen=True)
class FileInputSettings:
    path_prefix: str
    path_match_pattern: str | None = None


class FileInput(InputPlugin):
    Settings = FileInputSettings

    def __init__(self, settings: FileInputSettings, where: str) -> None:
        super().__init__(settings, where)
        self.pattern = compile_pattern(settings.path_match_pattern, f"{where}.path_match_pattern")

    def list_sources(self) -> Iterator[Source]:
        prefix = self.settings.path_prefix
        folder, base = os.path.split(prefix)
        folder_path = Path(folder or ".")
        if not folder_path.is_dir():
            raise RunError(f"folder '{folder_path}' does not exist", where=f"path_prefix {prefix}")
        paths = sorted(
            p for p in folder_path.rglob("*") if p.is_file() and str(p.relative_to(folder_path)).startswith(base)
        )
        sources = [file_source(p) for p in paths if self.pattern is None or self.pattern.search(str(p))]
        return checked_sources(sources, f"path_prefix {prefix}", "file")

    def open(self, source: Source, offset: int = 0) -> IO[bytes]:
        try:
            stream = open(source.uri, "rb")
        except OSError as exc:
            raise RunError(f"cannot open: {exc.strerror}", where=source.uri) from None
        stream.seek(offset)
        return stream

    def current(self, source: Source) -> Source | None:
        path = Path(source.uri)
        return file_source(path) if path.is_file() else None


def file_source(path: Path) -> Source:
    """A local file, versioned by its modification time and size (its "ETag")."""
    stat = path.stat()
    return Source(str(path), stat.st_size, f"{stat.st_mtime_ns}-{stat.st_size}")


def compile_pattern(pattern: str | None, where: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"invalid regular expression: {exc}", where=where) from None
