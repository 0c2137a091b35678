"""Column declarations of parsers and their value converters (text -> typed value)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pipelines.engine.records import Column, Schema

TRUE_WORDS = frozenset(["true", "1", "yes", "y", "on", "t"])
FALSE_WORDS = frozenset(["false", "0", "no", "n", "off", "f"])


@dataclass(frozen=True)
class ColumnSettings:
    name: str
    type: Literal["string", "long", "double", "boolean", "timestamp", "json"] = "string"
    format: str | None = None  # strptime format of a timestamp column (Embulk's Ruby style too); ISO 8601 when absent
    timezone: str | None = None  # of a timestamp value that names none (default UTC): Asia/Tokyo, +09:00
    date: str | None = None  # the date of a timestamp whose format has none (default 1970-01-01)

    @property
    def custom_timestamp(self) -> bool:
        """A timestamp column read otherwise than as plain ISO 8601 in UTC (which the C loops read themselves)."""
        return self.type == "timestamp" and (self.format is not None or self.timezone is not None or self.date is not None)


def schema_of(columns: tuple[ColumnSettings, ...], where: str) -> Schema:
    from pipelines.engine.errors import ConfigError
    from pipelines.engine.timestamps import date_of, zone_of

    seen: set[str] = set()
    for i, c in enumerate(columns):
        if c.name in seen:
            raise ConfigError(f"column '{c.name}' is declared twice", where=f"{where}.columns[{i}].name")
        seen.add(c.name)
        for option in ("format", "timezone", "date"):
            if getattr(c, option) is not None and c.type != "timestamp":
                raise ConfigError(f"'{option}' is only for timestamp columns", where=f"{where}.columns[{i}].{option}")
        try:
            zone_of(c.timezone), date_of(c.date)
        except ValueError as exc:
            raise ConfigError(str(exc), where=f"{where}.columns[{i}]") from None
    return Schema(tuple(Column(c.name, c.type) for c in columns))


def with_timestamp_defaults(columns: tuple[ColumnSettings, ...], settings: Any) -> tuple[ColumnSettings, ...]:
    """The columns with the parser's default_timestamp_format, default_timezone and default_date in
    the timestamp columns that set none of their own (Embulk's defaults for `format`, `timezone`, `date`)."""
    import dataclasses

    defaults = {"format": settings.default_timestamp_format, "timezone": settings.default_timezone, "date": settings.default_date}
    if all(v is None for v in defaults.values()):
        return columns
    out = []
    for c in columns:
        if c.type == "timestamp":
            c = dataclasses.replace(c, **{k: getattr(c, k) if getattr(c, k) is not None else v for k, v in defaults.items()})
        out.append(c)
    return tuple(out)


LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1  # a long is a signed 64-bit integer, as in Embulk


def _long(text: str) -> int:
    return _in_long_range(int(text))


def _in_long_range(value: int) -> int:
    if not LONG_MIN <= value <= LONG_MAX:
        raise ValueError("out of the 64-bit range")
    return value


def _double(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf and nan - nan are nan: not finite (one check on the hot path)
        raise ValueError("not a finite number")
    return value


def _finite(value: float) -> float:
    # NaN and infinities have no JSON form: the outputs would write null, losing the value silently.
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError


class _BooleanWords(dict):
    """Exact words map in C (`BOOLEANS[text]`); other spellings (' Yes') take `_boolean` on a miss."""

    def __missing__(self, text: str) -> bool:
        return _boolean(text)


BOOLEANS = _BooleanWords({w: True for w in TRUE_WORDS} | {w: False for w in FALSE_WORDS})
BOOLEANS.update({w.upper(): v for w, v in list(BOOLEANS.items())} | {w.title(): v for w, v in list(BOOLEANS.items())})



def _timestamp(fmt: str | None, zone: str | None = None, day: str | None = None) -> Callable[[str], datetime]:
    from pipelines.engine.timestamps import timestamp_parser

    return timestamp_parser(fmt, zone, day)


def _column_timestamp(column: ColumnSettings) -> Callable[[str], datetime]:
    return _timestamp(column.format, column.timezone, column.date)


def _json(text: str) -> Any:
    import orjson

    return orjson.loads(text)


def text_converter(column: ColumnSettings) -> Callable[[str], Any] | None:
    """Converts a non-empty text field to the column's type (raises ValueError); None for strings."""
    return {
        "string": None,
        "long": _long,
        "double": _double,
        "boolean": BOOLEANS.__getitem__,
        "timestamp": _column_timestamp(column),
        "json": _json,
    }[column.type]


def _long_value(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return _in_long_range(int(value))
    return _in_long_range(int(value))


def _double_value(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    return _finite(float(value))


def _boolean_value(value: Any) -> bool:
    return value if isinstance(value, bool) else _boolean(str(value))


def _string_value(value: Any) -> str:
    if isinstance(value, dict | list):
        raise ValueError
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def value_converter(column: ColumnSettings) -> Callable[[Any], Any] | None:
    """Converts a JSON value to the column's type (raises ValueError/TypeError); None for json columns."""
    timestamp = _column_timestamp(column) if column.type == "timestamp" else None
    return {
        "string": _string_value,
        "long": _long_value,
        "double": _double_value,
        "boolean": _boolean_value,
        "timestamp": lambda v: timestamp(str(v)),  # type: ignore[misc]
        "json": None,
    }[column.type]


def record_converter(columns: tuple[ColumnSettings, ...]) -> Callable[[dict[str, Any]], list[Any]]:
    """A JSON object to a row in column order, each value converted to its column's type (missing: None).

    Raises ValueError naming the column and the value that does not convert.
    """
    names = [c.name for c in columns]
    converters = [(i, c.name, c.type, conv) for i, c in enumerate(columns) if (conv := value_converter(c)) is not None]

    def to_row(record: dict[str, Any]) -> list[Any]:
        row = [record.get(name) for name in names]
        try:
            for i, name, type_name, conv in converters:
                value = row[i]
                if value is not None:
                    row[i] = conv(value)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"column '{name}' ({type_name}): cannot convert {row[i]!r}") from None
        return row

    return to_row


NATIVE_TYPES: dict[str, type] = {"string": str, "long": int, "double": float, "boolean": bool}
_NONE = type(None)


Converted = tuple[list[list[Any]], list[int], list[tuple[int, str]]]  # rows, their positions, [(position, reason)]


def records_converter(columns: tuple[ColumnSettings, ...]) -> Callable[[list[dict[str, Any]]], Converted]:
    """Like `record_converter`, for a batch: JSON objects -> (rows, their positions, [(position, reason)]).

    The batch is converted column by column in C where it can be (a column whose values already have
    the column's type is left as it is; timestamps hit a parse cache); the first value that does not
    convert sends the batch through `record_converter`, record by record, to find the bad ones.
    """
    import operator

    to_row = record_converter(columns)
    names = [c.name for c in columns]
    pick = operator.itemgetter(*names) if len(names) > 1 else (lambda record: (record[names[0]],))
    plans = []
    for i, c in enumerate(columns):
        if c.type == "json":
            continue
        native = NATIVE_TYPES.get(c.type)
        convert = _column_timestamp(c) if c.type == "timestamp" else value_converter(c)
        plans.append((i, c.type, native, convert, value_converter(c)))

    def convert_batch(records: list[dict[str, Any]]) -> Converted:
        if not records:
            return [], [], []
        try:
            values_by_column = list(zip(*map(pick, records)))
            for plan in plans:
                _convert_column(values_by_column, *plan)
        except (KeyError, ValueError, TypeError, OverflowError):
            return _one_by_one(to_row, records)
        return list(map(list, zip(*values_by_column))), list(range(len(records))), []

    return convert_batch


def _convert_column(values_by_column: list[Any], i: int, type_name: str, native: type | None, convert: Any, any_value: Any) -> None:
    """Column `i` of a batch converted in place; a value that does not convert raises."""
    values = values_by_column[i]
    types = set(map(type, values))
    if native is not None and types <= {native, _NONE}:
        if type_name == "long":
            present = values if _NONE not in types else [v for v in values if v is not None]
            if present and (min(present) < LONG_MIN or max(present) > LONG_MAX):
                raise ValueError
        return
    if type_name == "timestamp" and types == {str}:
        values_by_column[i] = list(map(convert, values))
    elif _NONE in types:
        values_by_column[i] = [None if v is None else any_value(v) for v in values]
    else:
        values_by_column[i] = list(map(any_value, values))


def _one_by_one(to_row: Callable[[dict[str, Any]], list[Any]], records: list[dict[str, Any]]) -> Converted:
    """The batch record by record: the rows of the good ones, and a reason for each bad one."""
    rows, positions, bad = [], [], []
    for position, record in enumerate(records):
        try:
            rows.append(to_row(record))
        except ValueError as exc:
            bad.append((position, str(exc)))
            continue
        positions.append(position)
    return rows, positions, bad
