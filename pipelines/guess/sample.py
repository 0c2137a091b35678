"""The sample: the first bytes of the first object, read through the input plugin and decompressed,
streamed and cut at a limit (an object is never read whole)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from pipelines.engine import registry
from pipelines.engine.decoding import HEAD_BYTES, decoder_for_head
from pipelines.engine.errors import DataError
from pipelines.engine.records import Source
from pipelines.engine.spi import DecoderPlugin, InputPlugin
from pipelines.engine.textio import PrefixedStream

SAMPLE_BYTES = 2 << 20  # decompressed bytes read from the first object
READ_BYTES = 256 << 10  # one read


@dataclass(frozen=True)
class Sample:
    uri: str
    size: int  # of the object, as listed
    compression: str | None  # the decoder its first bytes name (gzip, zstd), None for plain bytes or the seed's own
    data: bytes  # the first bytes after decompression, whole lines (but for an object of one unfinished line)
    whole: bool  # the sample is the whole object

    def describe(self) -> str:
        size = _size(len(self.data))
        if self.whole:
            return f"all of {self.uri} ({size}{' decompressed' if self.compression else ''})"
        return f"the first {size}{' (decompressed)' if self.compression else ''} of {self.uri}"


def read_sample(input_plugin: InputPlugin, decoders: list[DecoderPlugin] | None, limit: int = SAMPLE_BYTES) -> Sample:
    """The first `limit` decoded bytes of the first object the input lists, cut after the last whole line."""
    source = next(iter(input_plugin.list_sources()))  # none: RunError; an empty object: DataError
    raw = input_plugin.open(source)
    try:
        stream, compression = _decoded(raw, source, decoders)
        data, whole = _read_at_most(stream, limit)
    finally:
        raw.close()
    if not whole:
        cut = data.rfind(b"\n")
        if cut < 0:
            raise DataError(f"no line break in the first {_size(limit)}: not CSV, TSV or JSON lines", where=source.uri)
        data = data[: cut + 1]
    if not data.strip():
        what = "decompresses to nothing" if compression else "holds only blank lines"
        raise DataError(f"the sample is empty: the object {what}", where=source.uri)
    return Sample(source.uri, source.size, compression, data, whole)


def _decoded(raw: IO[bytes], source: Source, decoders: list[DecoderPlugin] | None) -> tuple[IO[bytes], str | None]:
    """The object's bytes through the seed's decoders, or through the decoder its magic bytes name."""
    if decoders is not None:
        stream = raw
        for decoder in decoders:
            stream = decoder.decode(stream, source)
        return stream, None
    head = raw.read(HEAD_BYTES)
    stream = PrefixedStream(head, raw)
    cls = decoder_for_head(head)
    if cls is None:
        return stream, None
    return cls(cls.Settings(), "guess").decode(stream, source), registry.name_of("decoder", cls)


def _read_at_most(stream: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes, and whether that was all of them (one byte more is asked to know)."""
    buffer = bytearray()
    while len(buffer) <= limit:
        chunk = stream.read(min(READ_BYTES, limit + 1 - len(buffer)))
        if not chunk:
            return bytes(buffer), True
        buffer += chunk
    return bytes(buffer[:limit]), False


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} bytes"
