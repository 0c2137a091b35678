"""Avro codecs: `ensure_zstandard_codec` lets fastavro read and write the `zstandard` codec with
the `zstandard` package; `block_writer` gives the writer of a block for a codec, `deflate` with
ISA-L (as the gzip encoder). fastavro, isal and zstandard are imported inside functions only.
"""

from __future__ import annotations

from typing import Any

_codecs_checked = False


def ensure_zstandard_codec() -> None:
    """Lets fastavro read and write the Avro `zstandard` codec with the `zstandard` package (a
    dependency of ours) when it has no zstd module of its own (before Python 3.14, without backports.zstd)."""
    global _codecs_checked
    if _codecs_checked:
        return
    _codecs_checked = True
    import fastavro._read as fast_read
    import fastavro._write as fast_write

    try:
        from compression import zstd  # noqa: F401 - Python 3.14+
    except ImportError:
        try:
            from backports import zstd  # noqa: F401
        except ImportError:
            fast_read.BLOCK_READERS["zstandard"] = _zstandard_read_block
            fast_write.BLOCK_WRITERS["zstandard"] = _zstandard_write_block
            try:
                import fastavro._read_py as py_read
                import fastavro._write_py as py_write

                py_read.BLOCK_READERS["zstandard"] = _zstandard_read_block_py
                py_write.BLOCK_WRITERS["zstandard"] = _zstandard_write_block_py
            except ImportError:  # pragma: no cover
                pass


def _read_varlong(fo: Any) -> int:
    shift = result = 0
    while True:
        byte = fo.read(1)
        if not byte:
            raise EOFError("the file ends inside a block header")
        b = byte[0]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7


def write_varlong(fo: Any, n: int) -> None:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    fo.write(bytes(out))


def _zstd_decompress(data: bytes) -> bytes:
    import zstandard

    obj = zstandard.ZstdDecompressor().decompressobj()
    out = obj.decompress(data)
    if not obj.eof:
        raise EOFError("a zstandard block is truncated")
    return out


def _zstandard_read_block(fo: Any) -> Any:
    from io import BytesIO

    length = _read_varlong(fo)
    data = fo.read(length)
    if len(data) != length:
        raise EOFError(f"Expected {length} bytes, read {len(data)}")
    return BytesIO(_zstd_decompress(data))


def _zstandard_write_block(fo: Any, block_bytes: bytes, compression_level: int | None) -> None:
    import zstandard

    data = zstandard.ZstdCompressor(level=compression_level or 3).compress(block_bytes)
    write_varlong(fo, len(data))
    fo.write(data)


def _zstandard_read_block_py(decoder: Any) -> Any:
    from io import BytesIO

    return BytesIO(_zstd_decompress(decoder.read_bytes()))


def _zstandard_write_block_py(encoder: Any, block_bytes: bytes, compression_level: int | None) -> None:
    import zstandard

    encoder.write_bytes(zstandard.ZstdCompressor(level=compression_level or 3).compress(block_bytes))


def block_writer(codec: str) -> Any:
    """(fo, block_bytes, compression_level) -> None: writes a block's data as fastavro's Writer does
    (its length, then the data compressed by `codec`). `deflate` is ISA-L's raw deflate, several times
    faster than zlib's (the same format; its levels 0-3 from zlib's 1-9 as the gzip encoder maps
    them, 6 by default); the others are fastavro's."""
    if codec == "deflate":
        return _isal_deflate_write_block
    from fastavro._write import BLOCK_WRITERS

    return BLOCK_WRITERS[codec]


def _isal_deflate_write_block(fo: Any, block_bytes: bytes, compression_level: int | None) -> None:
    from isal import isal_zlib

    from pipelines.plugins.encoders import isal_level

    level = 6 if compression_level is None or compression_level < 0 else compression_level
    data = isal_zlib.compress(block_bytes, isal_level(level), wbits=-15) if level > 0 else _stored(block_bytes)
    write_varlong(fo, len(data))
    fo.write(data)


def _stored(block_bytes: bytes) -> bytes:
    import zlib

    compressor = zlib.compressobj(0, zlib.DEFLATED, -15)
    return compressor.compress(block_bytes) + compressor.flush()
