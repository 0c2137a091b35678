"""Byte streams to text: counted reads, and decoded chunks that end at line boundaries.

Parsers read `TextChunks` through C-level iterators (io.StringIO per chunk), so
there is no Python call per line; the chunks are kept briefly so that the raw
text of a bad row can be quoted in the error output.
"""

from __future__ import annotations

import codecs
import io
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError, DataError
from pipelines.engine.records import Source

CHUNK_BYTES = 1 << 20
MAX_RAW_LINES = 20
MAX_RECENT_CHARS = 4 * CHUNK_BYTES  # decoded text kept for the raw text of bad rows
MAX_LINE_BYTES = 64 << 20  # a longer line (no LF: say, a file whose lines end with CR alone) is refused


class Readable:
    """A minimal read-only stream: subclasses define `read`; `readinto` is derived for gzip readers."""

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class CountingStream(Readable):
    """A read-only stream that counts the bytes read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


class PrefixedStream(Readable):
    """A stream whose first bytes were already read (to detect the compression) and are given back."""

    def __init__(self, prefix: bytes, raw: IO[bytes]) -> None:
        self.prefix = prefix
        self.raw = raw

    def read(self, size: int = -1) -> bytes:
        if not self.prefix:
            return self.raw.read(size)
        if size is None or size < 0:
            data, self.prefix = self.prefix + self.raw.read(), b""
            return data
        data, self.prefix = self.prefix[:size], self.prefix[size:]
        if len(data) < size:
            data += self.raw.read(size - len(data))
        return data

    def close(self) -> None:
        self.raw.close()


def read_chunks(stream: IO[bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The stream's bytes, `size` at a time, to its end."""
    while chunk := stream.read(size):
        yield chunk


def text_stream(stream: IO[bytes], encoding: str = "utf-8") -> IO[str]:
    """A buffered text view of a stream that has only `read` (a decoder's output), with newlines as
    they are (newline=""), as the csv module wants."""
    return io.TextIOWrapper(io.BufferedReader(_RawReader(stream), CHUNK_BYTES), encoding=encoding, newline="")


class _RawReader(io.RawIOBase):
    """A stream with `read`, as the raw stream io.BufferedReader wants."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def check_charset(charset: str, where: str) -> str:
    """The codec name for `charset`, which must exist and keep '\\n' as the byte 0x0A."""
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        raise ConfigError(f"unknown charset '{charset}'", where=where) from None
    if "\n".encode(name) != b"\n":
        raise ConfigError(f"charset '{charset}' is not supported: lines must end with the byte 0x0A", where=where)
    return name


class TextChunks:
    """Iterates the decoded text of a stream, in chunks of whole lines.

    Lines whose bytes are not valid in `charset` are reported to `errors` (and
    read as blank lines, so the line numbers of what follows stay right). Such a
    line is reported only once the lines before it have been handed out, so bad
    rows reach `errors` in line order and max_errors names the first one.
    """

    def __init__(self, stream: IO[bytes], charset: str, source: Source, errors: ErrorSink, first_line: int = 1) -> None:
        self.stream = stream
        self.charset = charset
        self.source = source
        self.errors = errors
        self.next_line = first_line
        self._recent: deque[tuple[int, str]] = deque()
        self._recent_chars = 0
        self._split_cache: tuple[int, list[str]] | None = None
        self._at_start = True

    def __iter__(self) -> Iterator[str]:
        rest = b""
        read = self.stream.read
        while True:
            block = read(CHUNK_BYTES)
            if not block:
                if rest:
                    yield from self._decode(rest)
                return
            cut = block.rfind(b"\n")
            if cut < 0:
                rest += block
                if len(rest) > MAX_LINE_BYTES:
                    raise self._line_too_long()
                continue
            data, rest = rest + block[: cut + 1], block[cut + 1 :]
            yield from self._decode(data)

    def _line_too_long(self) -> DataError:
        return DataError(
            f"line {self.next_line}: no line break (LF) in {MAX_LINE_BYTES >> 20} MiB; a line is held whole while read, so "
            "longer ones are refused (bounded memory). If the lines end with CR alone, set the parser's newline: CR",
            where=self.source.uri,
        )

    def _decode(self, data: bytes) -> Iterator[str]:
        try:
            text = data.decode(self.charset)
        except UnicodeDecodeError:
            yield from self._decode_lines(data)
            return
        yield self._emit(text)

    def _emit(self, text: str) -> str:
        """Hands out `text` (whole lines from self.next_line on), kept briefly for raw_lines."""
        if self._at_start:
            self._at_start = False
            if text.startswith("\ufeff") and self.charset.startswith("utf"):
                text = text[1:]  # a byte order mark (Excel's UTF-8 CSV) is not part of the first field
        first = self.next_line
        self.next_line = first + text.count("\n")
        self._recent.append((first, text))
        self._recent_chars += len(text)
        while len(self._recent) > 1 and self._recent_chars > MAX_RECENT_CHARS:
            self._recent_chars -= len(self._recent.popleft()[1])
        return text

    def _decode_lines(self, data: bytes) -> Iterator[str]:
        out: list[str] = []
        pieces = data.split(b"\n")
        for offset, piece in enumerate(pieces):
            last = offset == len(pieces) - 1
            if last and not piece:
                break
            raw = piece if last else piece + b"\n"
            try:
                out.append(raw.decode(self.charset))
            except UnicodeDecodeError as exc:
                if out:  # the lines before it first
                    yield self._emit("".join(out))
                    out = []
                reason = f"bytes are not valid {self.charset} ({exc.reason} at byte {exc.start + 1} of the line)"
                shown = raw.decode(self.charset, "backslashreplace").rstrip("\r\n")
                self.errors.add(self.source.uri, self.next_line, reason, shown)
                out.append("" if last else "\n")
        if out:
            yield self._emit("".join(out))

    def raw_lines(self, start: int, end: int | None = None) -> str:
        """The text of lines start..end (inclusive), if still held; '' if not."""
        end = start if end is None else min(end, start + MAX_RAW_LINES - 1)
        return "\n".join(self._line(n) for n in range(start, end + 1)).rstrip("\r\n")

    def _line(self, n: int) -> str:
        for first, text in reversed(self._recent):
            if n >= first:
                if self._split_cache is None or self._split_cache[0] != first:
                    self._split_cache = (first, text.split("\n"))
                lines = self._split_cache[1]
                index = n - first
                return lines[index].rstrip("\r") if index < len(lines) else ""
        return ""


class LineRange(Readable):
    """The bytes of the lines that start in [start, end) of a stream.

    `raw` must be positioned at max(start - 1, 0): a range after the first begins after the
    first newline at or after start - 1, and every range reads on past `end` to the end
    of its last line. Adjacent ranges thus share no line and miss none.
    """

    def __init__(self, raw: IO[bytes], start: int, end: int | None) -> None:
        self.raw = raw
        self.pos = max(start - 1, 0)  # offset of raw's next byte in the object
        self.end = end
        self.aligning = start > 0
        self.finishing = False  # past end - 1, looking for the newline that ends the last line
        self.done = False

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # (reading 0 bytes from raw would look like its end)
        wanted = CHUNK_BYTES if size is None or size < 0 else size
        while not self.done:
            data = self.raw.read(wanted)
            if not data:
                self.done = True
                break
            begin = self.pos
            self.pos += len(data)
            if self.aligning:
                cut = data.find(b"\n")
                if cut < 0:
                    continue  # still in the line that began before the range
                self.aligning = False
                data, begin = data[cut + 1 :], begin + cut + 1
                if self.end is not None and begin >= self.end:
                    self.done = True
                    break
                if not data:
                    continue
            if self.end is None or (not self.finishing and begin + len(data) < self.end):
                return data
            cut = data.find(b"\n", 0 if self.finishing else max(self.end - 1 - begin, 0))
            if cut >= 0:
                self.done = True
                return data[: cut + 1]
            self.finishing = True
            return data
        return b""

    def close(self) -> None:
        self.raw.close()
