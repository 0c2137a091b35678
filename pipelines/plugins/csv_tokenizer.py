"""The CSV reading of Embulk's tokenizer options: `trim_if_not_quoted`, `comment_line_marker`,
`quotes_in_quoted_fields`, `max_quoted_size_limit`, a `delimiter` of several characters, and
`newline` joining the lines of a quoted value.

The csv parser reads through this loop (in Python, record by record) only when one of those options
is set; otherwise through the compiled loop or the csv module (pipelines.plugins.csv_parser). Fields
come out as the csv module gives them: an empty unquoted field is '' (the parser's row_of types it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

BLANKS = " \t"
STRAY_QUOTES = "ACCEPT_STRAY_QUOTES_ASSUMING_NO_DELIMITERS_IN_FIELDS"
NEWLINE_TEXT = {"CRLF": "\r\n", "LF": "\n", "CR": "\r"}


class InvalidRecord(ValueError):
    """A record the tokenizer cannot read; its message is the reason written to the error output."""


@dataclass(frozen=True)
class CsvTokenizer:
    delimiter: str  # one character or more (Embulk takes a string)
    quote: str  # "" for none
    escape: str  # "" for none (or the quote: "" inside quotes)
    trim: bool
    stray_quotes: bool
    max_quoted: int  # characters of one quoted value
    newline: str  # what joins the lines of a quoted value (Embulk's `newline`)

    def split(self, line: str, next_line: Callable[[], str | None]) -> list[str]:
        """The fields of the record starting with `line`; a quoted value may take more lines from `next_line`."""
        q, esc = self.quote, self.escape
        if (not q or q not in line) and (not esc or esc not in line):
            fields = line.split(self.delimiter)
            return [f.strip(BLANKS) for f in fields] if self.trim else fields
        fields: list[str] = []
        pos = 0
        while True:
            start = pos
            while pos < len(line) and line[pos] in BLANKS:
                pos += 1
            if pos < len(line) and line[pos] == q:
                value, line, pos = self._quoted(line, pos + 1, next_line)
            else:
                value, pos = self._unquoted(line, start)
            fields.append(value)
            if pos >= len(line):
                return fields
            pos += len(self.delimiter)

    def _unquoted(self, line: str, pos: int) -> tuple[str, int]:
        """An unquoted value from `pos` to the next delimiter: (value, position of that delimiter or the end)."""
        end = line.find(self.delimiter, pos)
        end = len(line) if end < 0 else end
        value = line[pos:end]
        esc = self.escape
        if esc and esc != self.quote and esc in value:
            value, end = self._unescaped(line, pos)
        return (value.strip(BLANKS) if self.trim else value), end

    def _unescaped(self, line: str, pos: int) -> tuple[str, int]:
        out: list[str] = []
        while pos < len(line) and not line.startswith(self.delimiter, pos):
            if line[pos] == self.escape and pos + 1 < len(line):
                pos += 1
            out.append(line[pos])
            pos += 1
        return "".join(out), pos

    def _quoted(self, line: str, pos: int, next_line: Callable[[], str | None]) -> tuple[str, str, int]:
        """A quoted value whose opening quote ends before `pos`: (value, the line it ends on, the position after it)."""
        q, esc = self.quote, self.escape
        out: list[str] = []
        size = 0
        while True:
            if pos >= len(line):
                following = next_line()
                if following is None:
                    raise InvalidRecord("the file ends inside a quoted value")
                out.append(self.newline)
                size += len(self.newline)
                line, pos = following, 0
                continue
            c = line[pos]
            if esc and esc != q and c == esc and pos + 1 < len(line):
                out.append(line[pos + 1])
                pos, size = pos + 2, size + 1
            elif c == q and pos + 1 < len(line) and line[pos + 1] == q:
                out.append(q)
                pos, size = pos + 2, size + 1
            elif c == q:
                after = pos + 1
                while after < len(line) and line[after] in BLANKS:
                    after += 1
                if after >= len(line) or line.startswith(self.delimiter, after):
                    return "".join(out), line, after
                if not self.stray_quotes:
                    raise InvalidRecord(f"unexpected {line[after]!r} after the closing quote of a value (column {after + 1})")
                out.append(c)
                pos, size = pos + 1, size + 1
            else:
                out.append(c)
                pos, size = pos + 1, size + 1
            if size > self.max_quoted:
                raise InvalidRecord(f"a quoted value is longer than max_quoted_size_limit ({self.max_quoted} characters)")


def numbered_lines(texts: Iterator[str]) -> tuple[Callable[[], str | None], Callable[[], int]]:
    """(next line, without its line break, or None at the end; the number of the last line given),
    over chunks of whole lines."""
    state = {"line": 0}
    pending: list[str] = []

    def next_line() -> str | None:
        while not pending:
            text = next(texts, None)
            if text is None:
                return None
            parts = text.split("\n")
            if parts[-1] == "":
                parts.pop()
            parts.reverse()
            pending.extend(parts)
        state["line"] += 1
        line = pending.pop()
        return line.removesuffix("\r")

    return next_line, lambda: state["line"]
