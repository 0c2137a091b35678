"""Which decoders read an object: the config's, a manifest's (its encoders undone), or, without
either, the one whose magic bytes start the object. Decoders are found through the registry."""

from __future__ import annotations

from typing import IO, Any

from pipelines.engine import registry
from pipelines.engine.errors import RunError
from pipelines.engine.records import Source
from pipelines.engine.textio import PrefixedStream

HEAD_BYTES = 4  # enough for every registered decoder's magic (gzip 2, zstd 4, bzip2 3 and its block size)


def decoder_for_head(head: bytes) -> type | None:
    """The registered decoder whose magic bytes start `head`, or None (plain bytes)."""
    for name in registry.names("decoder"):
        cls = registry.load("decoder", name, f"decoder {name}")
        if cls.detects(head):
            return cls
    return None


def detect(stream: IO[bytes], source: Source) -> IO[bytes]:
    """The stream decoded by the decoder its first bytes name, or as it is."""
    head = stream.read(HEAD_BYTES)
    stream = PrefixedStream(head, stream)
    cls = decoder_for_head(head)
    return stream if cls is None else cls(cls.Settings(), "detected").decode(stream, source)


def is_compressed(job: Any, source: Source) -> bool:
    """Whether reading the source changes its bytes: configured decoders decide; without them, the
    object's first bytes do. Only an object read as it is may be split into byte ranges."""
    if job.decoders is not None:
        return any(not d.passthrough for d in job.decoders)
    stream = job.input.open(source)
    try:
        head = stream.read(HEAD_BYTES)
    finally:
        stream.close()
    return decoder_for_head(head) is not None


def undo_encoders(encoders: list[dict[str, Any]], stream: IO[bytes], uri: str) -> IO[bytes]:
    """A file's bytes with its encoders (as a manifest lists them) undone, last applied first: each by
    the decoder registered under the encoder's name."""
    source = Source(uri, 0)
    for encoder in reversed(encoders):
        name = encoder.get("type")
        if name not in registry.names("decoder"):
            raise RunError(f"no decoder for the encoder {name!r}", where=uri)
        cls = registry.load("decoder", name, uri)
        stream = cls(cls.Settings(), uri).decode(stream, source)
    return stream
