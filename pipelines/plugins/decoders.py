"""Decoders: gzip (ISA-L when available), zstd, bzip2, none. Each names its magic bytes, by which
pipelines.engine.decoding recognises an object without configured decoders."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import IO

from pipelines.engine.errors import DataError
from pipelines.engine.spi import DecoderPlugin
from pipelines.engine.records import Source
from pipelines.engine.textio import PrefixedStream, Readable

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"  # then the block size, '1' to '9'


class CheckedStream(Readable):
    """Turns a decompressor's failure into a DataError naming the object."""

    def __init__(self, inner: IO[bytes], source: Source, format_name: str, errors: tuple[type[BaseException], ...]) -> None:
        self.inner = inner
        self.source = source
        self.format_name = format_name
        self.errors = errors
        self.bytes_out = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.inner.read(size)
        except EOFError:
            raise DataError(
                f"{self.format_name} stream is truncated: it ended after {self.bytes_out} decompressed bytes, "
                "before its end marker (was the upload cut short?)",
                where=self.source.uri,
            ) from None
        except self.errors as exc:
            raise DataError(
                f"{self.format_name} stream is corrupt after {self.bytes_out} decompressed bytes: {exc}",
                where=self.source.uri,
            ) from None
        self.bytes_out += len(data)
        return data

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class NoSettings:
    pass


class GzipDecoder(DecoderPlugin):
    Settings = NoSettings
    magic = GZIP_MAGIC

    def decode(self, stream: IO[bytes], source: Source) -> IO[bytes]:
        try:
            from isal import igzip as gzip_module
            from isal.isal_zlib import error as isal_error

            errors: tuple[type[BaseException], ...] = (OSError, zlib.error, isal_error)
        except ImportError:  # pragma: no cover - isal is a dependency, but gzip works without it
            import gzip as gzip_module

            errors = (OSError, zlib.error)
        return CheckedStream(gzip_module.GzipFile(fileobj=stream, mode="rb"), source, "gzip", errors)


class ZstdDecoder(DecoderPlugin):
    Settings = NoSettings
    magic = ZSTD_MAGIC

    def decode(self, stream: IO[bytes], source: Source) -> IO[bytes]:
        import zstandard

        return CheckedStream(ZstdFrames(stream), source, "zstd", (zstandard.ZstdError,))


class ZstdFrames(Readable):
    """Streams the frames of a zstd object one after another; EOFError if the last one is cut short.

    (zstandard's stream_reader returns b'' at a truncated end, which would lose rows silently.)
    """

    def __init__(self, raw: IO[bytes], chunk: int = 1 << 18) -> None:
        import zstandard

        self.raw = raw
        self.chunk = chunk
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._obj = self._new()
        self._pending = b""
        self._buffer = bytearray()
        self._in_frame = False

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            data = self._pending or self.raw.read(self.chunk)
            self._pending = b""
            if not data:
                if self._in_frame:
                    raise EOFError
                break
            self._in_frame = True
            self._buffer += self._obj.decompress(data)
            if self._obj.eof:
                self._pending = self._obj.unused_data
                self._obj = self._new()
                self._in_frame = False
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def close(self) -> None:
        self.raw.close()


class Bzip2Decoder(DecoderPlugin):
    """bzip2, streamed one stream after another (pbzip2 and `cat a.bz2 b.bz2` write several): memory
    holds one block (at most 900 kB compressed). A cut-short object is a DataError naming it."""

    Settings = NoSettings
    magic = BZIP2_MAGIC

    @classmethod
    def detects(cls, head: bytes) -> bool:
        return len(head) >= 4 and head.startswith(BZIP2_MAGIC) and head[3:4] in b"123456789"

    def decode(self, stream: IO[bytes], source: Source) -> IO[bytes]:
        import bz2

        return CheckedStream(bz2.BZ2File(stream, "rb"), source, "bzip2", (OSError, ValueError))


class NoDecoder(DecoderPlugin):
    Settings = NoSettings
    passthrough = True

    def decode(self, stream: IO[bytes], source: Source) -> IO[bytes]:
        return stream
