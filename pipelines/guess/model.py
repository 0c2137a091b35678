"""What a guess is made of: columns, the key column, the parser options, and notes on what the
sample left open. A note starting with CHECK is an ambiguity the user should look at."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHECK = "check: "


def check(text: str) -> str:
    """A note on something the sample does not settle (written as `# check: ...`, and shown on stderr)."""
    return CHECK + text


def about(subject: str, note: str) -> str:
    """`note` said of `subject` (a column): "check: amount: ..." or "amount: ..."."""
    if note.startswith(CHECK):
        return f"{CHECK}{subject}: {note[len(CHECK):]}"
    return f"{subject}: {note}"


def show(value: Any, limit: int = 40) -> str:
    """A sampled value as a note quotes it: JSON-quoted, cut at `limit` characters."""
    import json

    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


@dataclass
class ColumnGuess:
    name: str
    type: str = "string"
    format: str | None = None  # strptime format of a timestamp column; None: ISO 8601
    notes: list[str] = field(default_factory=list)
    rows: int = 0  # sampled rows
    filled: int = 0  # of them, with a value (not empty, not null)
    distinct: int = 0  # distinct values

    def settings(self) -> dict[str, Any]:
        """The column as the parser's `columns:` declares it."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.format is not None:
            out["format"] = self.format
        return out


@dataclass
class KeyGuess:
    """`key_column_name` of a Kafka output: the column that looks like a user id, or None."""

    name: str | None
    notes: list[str]


@dataclass
class Guess:
    summary: str  # what was read, in a few words
    decoders: list[str] | None  # the decoders guessed from the bytes ([] for plain bytes); None: the seed's own
    parser: dict[str, Any]  # the parser's options, the seed's among them, in a stable order
    notes: list[str]  # on the charset, the layout and the sample
    column_notes: dict[str, list[str]]  # by column name
    key: KeyGuess | None  # for a Kafka output whose seed sets no key_column_name
