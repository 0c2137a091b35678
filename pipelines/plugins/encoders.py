"""Encoders of file and object outputs: `encoders: [{type: gzip, level: 6}]` or `[{type: zstd, level: 3}]`.

Each file gets its own compressor, and each file is one standard stream (one gzip member, one zstd
frame) that `gzip -d`, `zstd -d` and the gzip/zstd decoders read back. Output is deterministic: the
gzip header carries no file name and mtime 0, so a rerun of a shard writes the same bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from pipelines.engine.spi import Compressor, EncoderPlugin

GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


@dataclass(frozen=True)
class GzipEncoderSettings:
    level: int = 6  # gzip's scale, as Embulk's gzip encoder: 0 (stored) to 9 (smallest)

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 9:
            raise ValueError(f"level must be between 0 and 9, got {self.level}")


def isal_level(level: int) -> int:
    """ISA-L has levels 0-3 (all of them compress); gzip's 1-9 map onto them, 6 (the default) to 2."""
    return 0 if level <= 2 else 1 if level <= 5 else 2 if level <= 8 else 3


class ObjectCompressor(Compressor):
    """A zlib-style compressobj (zlib, isal_zlib, zstandard) as a Compressor."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def compress(self, data: bytes) -> bytes:
        return self.obj.compress(data)

    def finish(self) -> bytes:
        return self.obj.flush()


class GzipEncoder(EncoderPlugin):
    """gzip with ISA-L (several times faster than zlib) for levels 1-9; level 0 stores, with zlib."""

    Settings = GzipEncoderSettings
    file_ext = "gz"

    def compressor(self) -> Compressor:
        level = self.settings.level
        if level > 0:
            try:
                from isal import isal_zlib
            except ImportError:  # pragma: no cover - isal is a dependency; zlib writes the same format
                pass
            else:
                return ObjectCompressor(isal_zlib.compressobj(isal_level(level), isal_zlib.DEFLATED, GZIP_WBITS))
        return ObjectCompressor(zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS))


@dataclass(frozen=True)
class ZstdEncoderSettings:
    level: int = 3  # zstd's default; 1-19 (and 20-22, slow), negative levels for speed

    def __post_init__(self) -> None:
        if not -7 <= self.level <= 22 or self.level == 0:
            raise ValueError(f"level must be between 1 and 22 (or -7 to -1 for speed), got {self.level}")


class ZstdEncoder(EncoderPlugin):
    Settings = ZstdEncoderSettings
    file_ext = "zst"

    def compressor(self) -> Compressor:
        import zstandard

        return ObjectCompressor(zstandard.ZstdCompressor(level=self.settings.level).compressobj())
