"""Columns from records: CSV (header or not, names, the common width) and JSON lines (keys), each typed
by pipelines.guess.values; and the key column of a Kafka output, the one that looks like a user id."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipelines.engine.errors import DataError
from pipelines.guess.layout import CsvLayout, JsonLayout
from pipelines.guess.model import ColumnGuess, KeyGuess, about, check
from pipelines.guess.values import Values, conforms, json_type, text_type

NAME = re.compile(r"[^\W\d][\w .\-/#()&%]{0,63}")  # a header field: starts with a letter, short
# Normalised names (lower case, no separators) that say "user id", best first; then names ending so.
KEY_NAMES = (
    "userid", "uid", "customerid", "memberid", "accountid", "clientid", "contactid", "personid", "profileid",
    "visitorid", "id", "ユーザーid", "会員id", "顧客id", "会員番号", "顧客番号",
)
KEY_SUFFIXES = ("userid", "customerid", "memberid", "accountid")


@dataclass
class CsvColumns:
    columns: list[ColumnGuess]
    skip_header_lines: int
    notes: list[str] = field(default_factory=list)


def csv_columns(layout: CsvLayout, seed_parser: dict[str, Any], where: str) -> CsvColumns:
    records = layout.records
    if not records:
        raise DataError("no record of the sample reads as CSV", where=where)
    width = Counter(len(f) for _, f in records).most_common(1)[0][0]
    null = seed_parser.get("null_string")
    if "skip_header_lines" in seed_parser:
        skip = int(seed_parser["skip_header_lines"])
        header = next((f for line, f in reversed(records) if line <= skip), None)
        body, note = [(line, f) for line, f in records if line > skip], None
        types = _types(_values(body, width, null))
    else:
        header, body, types, note = _header_and_body(records, width, null)
        skip = (body[0][0] - 1 if body else records[0][0]) if header is not None else 0
    names, name_notes = _names(header, width)
    columns = [ColumnGuess(n, t, f, [about(n, s) for s in notes]) for n, (t, f, notes) in zip(names, types)]
    _add_stats(columns, _values(body, width, null), len(body))
    notes = [n for n in [note, *name_notes, _width_note(body, width, header)] if n]
    return CsvColumns(columns, skip, notes)


def _values(records: list[tuple[int, list[str]]], width: int, null: str | None) -> list[Values]:
    """Each column's values, from the records of the common width (the parser refuses the others)."""
    values = [Values() for _ in range(width)]
    for line, fields in records:
        if len(fields) == width:
            for column, text in zip(values, fields):
                column.add(None if text == null else text, line)
    return values


def _types(values: list[Values]) -> list[tuple[str, str | None, list[str]]]:
    return [text_type(v) for v in values]


def _header_and_body(records: list[tuple[int, list[str]]], width: int, null: str | None) -> tuple[list[str] | None, list[Any], list[Any], str | None]:
    """(header fields or None, the data records, their types, a note): the first record is a header when
    a typed column's first value is not of its type, or, every column being text, when it looks like names."""
    first, rest = records[0][1], records[1:]
    rest_values = _values(rest, width, null)
    types = _types(rest_values)
    typed = [(i, t, f) for i, (t, f, _) in enumerate(types) if t != "string"]
    if any(i < len(first) and first[i] and first[i] != null and not conforms(t, f)(first[i]) for i, t, f in typed):
        return first, rest, types, None
    if not typed and rest and _looks_like_names(first, rest_values):
        return first, rest, types, check(
            "header: every column is text, so the types do not tell; the first line was taken for column names "
            "(its fields look like names and do not recur below); set skip_header_lines: 0 if it is data"
        )
    note = None if typed or not rest else check(
        "header: every column is text, so the types do not tell; the first line was read as data; "
        "set skip_header_lines: 1 if it holds column names"
    )
    return None, records, _types(_values(records, width, null)), note


def _looks_like_names(fields: list[str], values: list[Values]) -> bool:
    if len(set(fields)) != len(fields) or not all(NAME.fullmatch(f.strip()) for f in fields):
        return False
    return not any(f in column.counts for f, column in zip(fields, values))


def _names(header: list[str] | None, width: int) -> tuple[list[str], list[str]]:
    """Column names: the header's fields (blank ones c<i>, repeated ones numbered), else c0, c1, ..."""
    if header is None:
        return [f"c{i}" for i in range(width)], []
    names, notes, seen = [], [], Counter[str]()
    for i in range(width):
        name = header[i].strip() if i < len(header) else ""
        if not name:
            name = f"c{i}"
            notes.append(check(f"header: column {i + 1} has no name; called {name}"))
        seen[name] += 1
        if seen[name] > 1:
            notes.append(check(f"header: {name} names more than one column; the {_nth(seen[name])} is {name}_{seen[name]}"))
            name = f"{name}_{seen[name]}"
        names.append(name)
    if len(header) != width:
        notes.append(check(f"header: {len(header)} fields, but the rows have {width}; columns are named after the rows"))
    return names, notes


def _nth(n: int) -> str:
    return {2: "second", 3: "third"}.get(n, f"{n}th")


def _width_note(body: list[tuple[int, list[str]]], width: int, header: list[str] | None) -> str | None:
    other = [(line, len(f)) for line, f in body if len(f) != width]
    if not other:
        return None
    line, n = other[0]
    return check(
        f"{len(other)} row(s) have other than {width} fields (first: line {line}, {n} fields): the parser sends them to the "
        "error output (allow_optional_columns or allow_extra_columns lets short or long rows through)"
    )


def _add_stats(columns: list[ColumnGuess], values: list[Values], rows: int) -> None:
    for column, v in zip(columns, values):
        column.rows, column.filled, column.distinct = rows, v.filled, len(v.counts)


def json_columns(layout: JsonLayout, where: str) -> list[ColumnGuess]:
    """A column per key, in first-seen order, typed from its non-null values."""
    if not layout.records:
        raise DataError("no line of the sample is a JSON object", where=where)
    values: dict[str, list[tuple[Any, int]]] = {}
    present: Counter[str] = Counter()
    for line, record in layout.records:
        for key, value in record.items():
            column = values.setdefault(key, [])
            present[key] += 1
            if value is not None:
                column.append((value, line))
    rows, columns = len(layout.records), []
    for name, found in values.items():
        type_name, fmt, notes = json_type(found)
        if present[name] < rows:
            notes.append(f"in {present[name]} of {rows} sampled records (null where it is missing)")
        notes = [about(name, n) for n in notes]
        distinct = len({v if isinstance(v, str | int | float) else repr(v) for v, _ in found})
        columns.append(ColumnGuess(name, type_name, fmt, notes, rows, len(found), distinct))
    return columns


def key_column(columns: list[ColumnGuess]) -> KeyGuess:
    """The column that looks like a user id (by its name), with what the sample says of its values."""
    ranked = sorted((rank, i) for i, c in enumerate(columns) if (rank := _key_rank(c.name)) is not None)
    if not ranked:
        return KeyGuess(None, [check(
            "key_column_name: no column looks like a user id (user_id, uid, customer_id, id, ...): the records go "
            "without a key, spread over the partitions; set key_column_name to keep each user's records in one partition"
        )])
    chosen = columns[ranked[0][1]]
    problems = []
    if len(ranked) > 1:
        problems.append(f"{', '.join(columns[i].name for _, i in ranked[1:])} could be one too")
    if chosen.filled < chosen.rows:
        problems.append(f"it is empty in {chosen.rows - chosen.filled} of {chosen.rows} sampled rows (their records get no key)")
    if chosen.distinct < chosen.filled:
        problems.append(f"its values repeat ({chosen.distinct} distinct in {chosen.filled})")
    if problems:
        return KeyGuess(chosen.name, [check(f"key_column_name: {chosen.name} looks like a user id, but " + "; ".join(problems))])
    return KeyGuess(chosen.name, [f"key_column_name: {chosen.name}, the column that looks like a user id"])


def _key_rank(name: str) -> int | None:
    normal = re.sub(r"[\W_]+", "", name.lower())
    if normal in KEY_NAMES:
        return KEY_NAMES.index(normal)
    for i, suffix in enumerate(KEY_SUFFIXES):
        if normal.endswith(suffix):
            return len(KEY_NAMES) + i
    return None
