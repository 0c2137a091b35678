"""A column's type from its sampled values: the narrowest of long, double, boolean, timestamp (ISO 8601
or a strptime format) and json that the engine's own converters (pipelines.engine.columns) read every
value as, else string. Where most values fit a type and a few do not, the column stays string and a
note says which values kept it there."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from pipelines.engine.columns import ColumnSettings, text_converter, value_converter
from pipelines.guess.model import check, show

# What a value must look like before the engine's converter is asked (int() and float() take more:
# "1_000", " 12", "nan", "infinity"); an integer with a leading zero is text, so the zero stays.
SHAPES = {
    "long": re.compile(r"[+-]?(?:0|[1-9][0-9]*)"),
    "double": re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"),
    "boolean": re.compile(r"(?i:true|false|yes|no|on|off|t|f|y|n)"),
    "iso": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}\S*(?: ?[+-][0-9:]{4,5})?)?"),
    "format": re.compile(r"[0-9]{1,4}[/年.\-][0-9]{1,2}[/月.\-][0-9]{1,4}.*"),
    "json": re.compile(r"[\[{].*[\]}]", re.S),
}
DIGITS = re.compile(r"[+-]?[0-9]+")
# strptime formats tried after ISO 8601 (which the engine reads without a format)
TIMESTAMP_FORMATS = (
    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M", "%Y/%m/%d",
    "%Y-%m-%d %H:%M:%S %z", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日",
    "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y", "%d/%m/%Y",
    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y",
)
CANDIDATES: tuple[tuple[str, str | None], ...] = (
    ("long", None), ("double", None), ("boolean", None), ("timestamp", None),
    *(("timestamp", f) for f in TIMESTAMP_FORMATS), ("json", None),
)
NULL_WORDS = frozenset(["n/a", "na", "#n/a", "null", "none", "nil", "nan", "-", "--", "\\n", "?", "unknown"])
PRESCREEN = 20  # distinct values a candidate type is first tried on: if none fits, it is not the column's
TypeGuess = tuple[str, str | None, list[str]]  # type, format, notes


class Values:
    """A column's sampled texts: how often each occurs, the line it first occurs on, and the empty count."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first_line: dict[str, int] = {}
        self.empty = 0

    def add(self, text: str | None, line: int) -> None:
        if not text:
            self.empty += 1
            return
        self.counts[text] += 1
        self.first_line.setdefault(text, line)

    @property
    def filled(self) -> int:
        return sum(self.counts.values())


def conforms(type_name: str, fmt: str | None) -> Callable[[str], bool]:
    """Whether the engine reads a text as `type_name` (with `fmt`): its shape, then its converter."""
    shape = SHAPES["format" if fmt else "iso" if type_name == "timestamp" else type_name]
    convert = text_converter(ColumnSettings("sample", type_name, fmt))  # type: ignore[arg-type]

    def check_text(text: str) -> bool:
        if shape.fullmatch(text) is None:
            return False
        try:
            value = convert(text)  # type: ignore[misc]
        except (ValueError, TypeError, OverflowError):
            return False
        return type_name != "json" or isinstance(value, dict | list)

    return check_text


def _misfits(fits: Callable[[str], bool], values: Values) -> tuple[int, list[str]] | None:
    """(occurrences that do not fit, the distinct ones in first-seen order, at most 3), or None when
    fewer than half fit (it is not the column's type)."""
    prescreen = list(values.counts)[:PRESCREEN]
    if not any(map(fits, prescreen)):
        return None
    total, bad, examples = values.filled, 0, []
    for text, n in values.counts.items():
        if not fits(text):
            bad += n
            if len(examples) < 3:
                examples.append(text)
            if bad * 2 > total:
                return None
    return bad, examples


def text_type(values: Values, candidates: tuple[tuple[str, str | None], ...] = CANDIDATES) -> TypeGuess:
    """The type of a column of texts (CSV fields, JSON strings), with notes (pipelines.guess.model.about names the column)."""
    if not values.counts:
        return "string", None, [check("empty in every sampled row; string")]
    best: tuple[str, str | None, int, list[str]] | None = None
    for type_name, fmt in candidates:
        misfit = _misfits(conforms(type_name, fmt), values)
        if misfit is None:
            continue
        bad, examples = misfit
        if bad == 0 and type_name == "double" and all(DIGITS.fullmatch(t) for t in values.counts):
            return "string", None, [check("integers beyond the 64-bit range of a long: string, so no digit is lost")]
        if bad == 0:
            return type_name, fmt, _typed_notes(type_name, fmt, values)
        if best is None or bad < best[2]:
            best = (type_name, fmt, bad, examples)
    return "string", None, _string_notes(values, best)


def _typed_notes(type_name: str, fmt: str | None, values: Values) -> list[str]:
    if type_name != "timestamp":
        return []
    texts = list(values.counts)
    notes = []
    others = [f for t, f in CANDIDATES if fmt and t == "timestamp" and f not in (fmt, None) and all(map(conforms(t, f), texts))]
    if others:
        notes.append(check(f"every value reads as {fmt} and as {others[0]} too; check which the data means"))
    if not any(zone in (fmt or "") for zone in ("%z", "%Z")) and _zone_free(texts, fmt):
        notes.append("no time zone in the values: the parser reads them as UTC")
    return notes


def _zone_free(texts: list[str], fmt: str | None) -> bool:
    if fmt is not None:
        return True
    from datetime import datetime

    return any(datetime.fromisoformat(t.strip()).tzinfo is None for t in texts[:PRESCREEN])


def _string_notes(values: Values, best: tuple[str, str | None, int, list[str]] | None) -> list[str]:
    if all(DIGITS.fullmatch(t) for t in values.counts):
        zeros = next((t for t in values.counts if SHAPES["long"].fullmatch(t) is None), next(iter(values.counts)))
        return [f"digits, some with leading zeros (e.g. {show(zeros)}): string, so the zeros stay"]
    if best is None:
        return []
    type_name, fmt, bad, examples = best
    total = values.filled
    what = f"{type_name} ({fmt})" if fmt else type_name
    shown = ", ".join(f"{show(t)} (line {values.first_line[t]})" for t in examples)
    note = f"{what} in {total - bad} of {total} sampled values, but not {shown}: kept as string"
    if len(examples) == 1 and examples[0].strip().lower() in NULL_WORDS:
        note += f"; set `null_string: {show(examples[0])}` in the parser to read it as {what}, with {show(examples[0])} as null"
    return [check(note)]


def json_type(values: list[tuple[Any, int]]) -> TypeGuess:
    """The type of a JSON lines key from its (value, line) pairs, nulls left out."""
    kinds = Counter(_json_kind(v) for v, _ in values)
    if not kinds:
        return "string", None, [check("null or missing in every sampled record; string")]
    if kinds.keys() == {"long"}:
        long_value = value_converter(ColumnSettings("sample", "long"))
        return ("long", None, []) if all(_converts(long_value, v) for v, _ in values) else ("double", None, [])
    if kinds.keys() <= {"long", "double"}:
        return "double", None, []
    if len(kinds) == 1 and kinds.keys() <= {"boolean", "json"}:
        return next(iter(kinds)), None, []
    if kinds.keys() == {"string"}:
        texts = Values()
        for v, line in values:
            texts.add(v, line)
        timestamps = tuple(c for c in CANDIDATES if c[0] == "timestamp")
        return text_type(texts, timestamps)
    mixed = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    if "json" in kinds:
        return "json", None, [check(f"mixed JSON values ({mixed}): json, kept as they are")]
    return "string", None, [check(f"mixed JSON values ({mixed}): string, each written as text")]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return "json"


def _converts(convert: Callable[[Any], Any] | None, value: Any) -> bool:
    try:
        convert(value)  # type: ignore[misc]
    except (ValueError, TypeError, OverflowError):
        return False
    return True
