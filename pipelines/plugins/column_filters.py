"""Column filters: rename, remove_columns, keep_columns, add_columns."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter, methodcaller
from typing import Any, Literal

from pipelines.engine.columns import ColumnSettings, text_converter
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError
from pipelines.engine.spi import FilterPlugin
from pipelines.engine.records import Batch, Column, Schema
from pipelines.engine.settings import did_you_mean, option


def require_columns(schema: Schema, names: tuple[str, ...] | list[str] | str, where: str) -> None:
    """Every name must be a column of `schema`.

    `names` as a tuple is an option's YAML list: a missing name is reported at `where[i]`.
    A single name (a str, or a list built by the caller such as `[key_column_name]`) is reported at `where`.
    """
    indexed = isinstance(names, tuple)
    for i, name in enumerate([names] if isinstance(names, str) else names):
        if name not in schema.names:
            raise ConfigError(
                f"no column '{name}'{did_you_mean(name, schema.names)}; columns here: {', '.join(schema.names)}",
                where=f"{where}[{i}]" if indexed else where,
            )


@dataclass(frozen=True)
class RenameSettings:
    columns: Mapping[str, str]


class RenameFilter(FilterPlugin):
    """`{type: rename, columns: {old_name: new_name}}`"""

    Settings = RenameSettings

    def bind(self, schema: Schema) -> Schema:
        for old in self.settings.columns:
            if old not in schema.names:
                raise ConfigError(
                    f"no column '{old}' to rename{did_you_mean(old, schema.names)}", where=f"{self.where}.columns.{old}"
                )
        renamed = tuple(Column(self.settings.columns.get(c.name, c.name), c.type) for c in schema.columns)
        names = [c.name for c in renamed]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f"renaming makes two columns named '{name}'", where=f"{self.where}.columns")
        return Schema(renamed)

    def apply(self, batch: Batch, errors: ErrorSink) -> None:
        pass  # rows are positional: only the schema changes


class _SelectColumns(FilterPlugin):
    def _select(self, schema: Schema, keep: list[int]) -> Schema:
        if not keep:
            raise ConfigError("no column would be left", where=self.where)
        self.getter = itemgetter(*keep)
        self.single = len(keep) == 1
        return Schema(tuple(schema.columns[i] for i in keep))

    def apply(self, batch: Batch, errors: ErrorSink) -> None:
        getter = self.getter
        if self.single:
            batch.rows = [[getter(row)] for row in batch.rows]
        else:
            batch.rows = [list(getter(row)) for row in batch.rows]


@dataclass(frozen=True)
class RemoveColumnsSettings:
    remove: tuple[str, ...]


class RemoveColumnsFilter(_SelectColumns):
    """`{type: remove_columns, remove: [a, b]}`"""

    Settings = RemoveColumnsSettings

    def bind(self, schema: Schema) -> Schema:
        require_columns(schema, self.settings.remove, f"{self.where}.remove")
        return self._select(schema, [i for i, n in enumerate(schema.names) if n not in self.settings.remove])


@dataclass(frozen=True)
class KeepColumnsSettings:
    keep: tuple[str, ...]


class KeepColumnsFilter(_SelectColumns):
    """`{type: keep_columns, keep: [a, b]}` (in that order)"""

    Settings = KeepColumnsSettings

    def bind(self, schema: Schema) -> Schema:
        require_columns(schema, self.settings.keep, f"{self.where}.keep")
        return self._select(schema, [schema.index(n) for n in self.settings.keep])


@dataclass(frozen=True)
class AddedColumn:
    name: str
    type: Literal["string", "long", "double", "boolean", "timestamp", "json"] = "string"
    value: str | None = None
    env: str | None = None  # read the value from this environment variable at run time
    format: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.env is None):
            raise ValueError(f"column '{self.name}': set exactly one of 'value' or 'env'")


@dataclass(frozen=True)
class AddColumnsSettings:
    columns: tuple[AddedColumn, ...] = option(factory=tuple)


class AddColumnsFilter(FilterPlugin):
    """`{type: add_columns, columns: [{name: segment_id, type: long, value: "42"}, {name: src, env: SOURCE}]}`"""

    Settings = AddColumnsSettings

    def bind(self, schema: Schema) -> Schema:
        names = list(schema.names)
        self.values: list[Any] = []
        for i, c in enumerate(self.settings.columns):
            where = f"{self.where}.columns[{i}]"
            if c.name in names:
                raise ConfigError(f"column '{c.name}' already exists", where=f"{where}.name")
            names.append(c.name)
            self.values.append(self._value(c, where))
        return Schema(schema.columns + tuple(Column(c.name, c.type) for c in self.settings.columns))

    def _value(self, c: AddedColumn, where: str) -> Any:
        if c.env is not None:
            text = os.environ.get(c.env)
            if text is None:
                raise ConfigError(f"environment variable {c.env} is not set", where=f"{where}.env")
        else:
            text = c.value
        conv = text_converter(ColumnSettings(c.name, c.type, c.format))
        if conv is None or text == "":
            return text if conv is None else None
        try:
            return conv(text)
        except (ValueError, TypeError):
            shown = "the value of $" + c.env if c.env else repr(text)
            raise ConfigError(f"{shown} is not a valid {c.type}", where=f"{where}.{'env' if c.env else 'value'}") from None

    def apply(self, batch: Batch, errors: ErrorSink) -> None:
        # row.extend(values) for every row, looped in C (a deque that keeps nothing drains the map)
        deque(map(methodcaller("extend", self.values), batch.rows), maxlen=0)
