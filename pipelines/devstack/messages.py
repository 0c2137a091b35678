"""What the local stack tells its user: progress lines (to stderr by default, never to stdout: the
CLI prints the shell lines there) and :class:`StackError`, whose messages quote the last lines of a
tool's output or of a service's log."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

Log = Callable[[str], None]

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StackError(Exception):
    """A problem with the local stack, carrying a clear message for the user."""


def tail(text: str, lines: int = 10) -> str:
    plain = _ANSI_ESCAPE.sub("", text)  # Maven 3.8 colours its output even in batch mode
    kept = [line.rstrip() for line in plain.splitlines() if line.strip()][-lines:]
    return "\n".join(f"  {line}" for line in kept) or "  (no output)"


def tail_file(path: Path, lines: int = 10) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "  (log not readable)"
    return tail(text, lines)
