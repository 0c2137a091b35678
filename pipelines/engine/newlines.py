"""Embulk's `newline` option of text parsers: CRLF (its default), LF or CR (and Embulk 0.9's
`line_delimiter_recognized`, the same values).

CRLF and LF files are read alike (a line ends at LF, a CR before it dropped), as they always were here.
With CR, a lone CR ends a line: `CrToLf` turns every CR (and CRLF) into LF as the bytes stream by,
holding back at most one byte, so the parsers find their lines as usual and memory stays bounded.
"""

from __future__ import annotations

from typing import IO, Literal

from pipelines.engine.textio import Readable

Newline = Literal["CRLF", "LF", "CR"]


class CrToLf(Readable):
    """The bytes of a stream with every CR, and every CRLF, made one LF."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.held = b""  # a CR at the end of the last read: an LF may follow it in the next

    def read(self, size: int = -1) -> bytes:
        while True:
            data = self.raw.read(size)
            if not data:
                data, self.held = self.held, b""
                return data.replace(b"\r", b"\n")
            data = self.held + data
            self.held = b""
            if data.endswith(b"\r"):
                data, self.held = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if data:
                return data

    def close(self) -> None:
        self.raw.close()


def with_newline(stream: IO[bytes], newline: str, recognized: str | None = None) -> IO[bytes]:
    """`stream` as the parsers read it for Embulk's `newline` (or `line_delimiter_recognized`, which wins
    when set): CR lines converted, others as they are."""
    return CrToLf(stream) if (recognized or newline) == "CR" else stream
