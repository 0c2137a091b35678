"""The sample's layout: JSON lines (every line a JSON object), or CSV/TSV with the delimiter and quote
that split it most evenly, read into records with the engine's own csv dialect (strict, doubled quotes)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pipelines.engine.errors import DataError
from pipelines.guess.model import check, show

DELIMITERS = (",", "\t", ";", "|")  # in order of preference when they split alike
QUOTES = ('"', "")  # "": no quoting
DIALECT_RECORDS = 2000  # records each candidate dialect is tried on
NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


@dataclass
class CsvLayout:
    delimiter: str
    quote: str
    records: list[tuple[int, list[str]]]  # (first physical line, fields); blank lines left out
    notes: list[str] = field(default_factory=list)


@dataclass
class JsonLayout:
    records: list[tuple[int, dict[str, Any]]]  # (line, object)
    notes: list[str] = field(default_factory=list)


def read_layout(text: str, seed_parser: dict[str, Any], whole: bool, where: str) -> CsvLayout | JsonLayout:
    kind = seed_parser.get("type") or _kind(text, where)
    if kind == "jsonl":
        return json_lines(text, whole)
    return csv_records(text, seed_parser, whole)


def _kind(text: str, where: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("{") and _json_object(first) is not None:
        return "jsonl"
    if first.startswith("[{") or first == "[":
        raise DataError("the data looks like a JSON array; guess reads JSON lines (one object per line), CSV and TSV", where=where)
    return "csv"


def _json_object(line: str) -> dict[str, Any] | None:
    import orjson

    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def json_lines(text: str, whole: bool) -> JsonLayout:
    records, bad = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        value = _json_object(line)
        if value is None:
            bad.append(number)
        else:
            records.append((number, value))
    layout = JsonLayout(records)
    if bad:
        layout.notes.append(check(f"{len(bad)} line(s) are not JSON objects (first: line {bad[0]}): the parser sends them to the error output"))
    return layout


def csv_records(text: str, seed_parser: dict[str, Any], whole: bool) -> CsvLayout:
    """Records of the dialect the seed sets, or of the one that splits the sample most evenly."""
    delimiters = (seed_parser["delimiter"],) if "delimiter" in seed_parser else DELIMITERS
    quotes = (seed_parser["quote"] or "",) if "quote" in seed_parser else QUOTES
    candidates = [(_score(text, d, q), d, q) for d in delimiters for q in quotes]  # in order of preference
    scored = sorted(candidates, key=lambda c: c[0][:3], reverse=True)  # stable: the preferred first among equals
    (score, delimiter, quote) = scored[0]
    layout = CsvLayout(delimiter, quote, [])
    layout.notes += _dialect_notes(score, delimiter, scored[1:], seed_parser)
    _read_records(text, delimiter, quote, whole, layout)
    return layout


def dialect(delimiter: str, quote: str) -> dict[str, Any]:
    """The csv module's dialect, as pipelines.plugins.csv_parser builds it (strict; no escape character)."""
    if quote:
        return {"delimiter": delimiter, "strict": True, "quotechar": quote, "doublequote": True}
    return {"delimiter": delimiter, "strict": True, "quoting": csv.QUOTE_NONE, "escapechar": None}


def _records(text: str, delimiter: str, quote: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first physical line, fields or None, csv error or None) of every record; blank lines left out."""
    reader = csv.reader(io.StringIO(text, newline=""), **dialect(delimiter, quote))
    end = 0
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = reader.line_num
            yield start, None, str(exc)
            continue
        end = reader.line_num
        if fields:
            yield start, fields, None


def _score(text: str, delimiter: str, quote: str) -> tuple[bool, bool, float, int]:
    """How evenly the dialect splits the first records: (no errors, more than one field, the share of
    records with the most common field count, that count)."""
    widths: Counter[int] = Counter()
    errors = 0
    for _, fields, error in islice(_records(text, delimiter, quote), DIALECT_RECORDS):
        if fields is None:
            errors += 1
        else:
            widths[len(fields)] += 1
    if not widths:
        return False, False, 0.0, 0
    width, count = widths.most_common(1)[0]
    return errors == 0, width > 1, count / (sum(widths.values()) + errors), width


def _dialect_notes(score: tuple[bool, bool, float, int], delimiter: str, others: list[Any], seed_parser: dict[str, Any]) -> list[str]:
    if "delimiter" in seed_parser:
        return []
    if not score[1]:
        return [check("one column: no delimiter (comma, tab, semicolon, pipe) splits the sample; comma assumed")]
    rivals = [d for s, d, _ in others if d != delimiter and s[:3] == score[:3] and s[1]]
    if rivals:
        return [check(f"delimiter: {NAMES[delimiter]} ({score[3]} fields); {NAMES[rivals[0]]} splits the sample as evenly ({show(rivals[0])})")]
    return []


def _read_records(text: str, delimiter: str, quote: str, whole: bool, layout: CsvLayout) -> None:
    """Every record into `layout`; malformed ones noted (but the last one of a sample cut inside quotes)."""
    errors = []
    for start, fields, error in _records(text, delimiter, quote):
        if fields is None:
            errors.append((start, error))
        else:
            layout.records.append((start, fields))
    if errors and not whole and errors[-1][0] > (layout.records[-1][0] if layout.records else 0):
        errors.pop()  # the sample was cut inside a quoted field
    if errors:
        line, reason = errors[0]
        layout.notes.append(check(f"{len(errors)} malformed record(s) (first: line {line}: {reason}): the parser sends them to the error output"))
