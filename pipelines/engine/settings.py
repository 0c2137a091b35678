"""Typed, immutable plugin settings built from plain YAML data.

A plugin declares its options as a frozen dataclass; `build` checks a mapping
against it and names the file and the key path in every error:

    configs/send.yml.liquid: in.parser.columns[2].type: expected one of
    string, long, double, boolean, timestamp, json; got 'int'
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pipelines.engine.errors import ConfigError

_SECRET = "secret"


def option(default: Any = dataclasses.MISSING, *, secret: bool = False, factory: Any = None, key: str | None = None) -> Any:
    """Declare a settings field; `secret` marks it for redaction (and keeps it out of the settings'
    repr, so a traceback or a log line never shows it), `key` is its YAML name if it differs."""
    metadata = {_SECRET: secret, "key": key}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata, repr=not secret)
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


def yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key") or f.name


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class SettingsBuilder:
    """Builds dataclass settings from YAML data, reporting errors against one source file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, where=f"{self.source}: {path}" if path else self.source)

    def build(self, cls: type, raw: Any, path: str, *, ignore: tuple[str, ...] = ("type",)) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise self.error(path, f"expected a mapping of options, got {describe(raw)}")
        hints = typing.get_type_hints(cls)
        fields = {yaml_key(f): f for f in dataclasses.fields(cls)}
        refused = getattr(cls, "refused_options", {})  # Embulk options we cannot honour: {key: why, and what instead}
        for key in raw:
            if key in refused:
                raise self.error(join_path(path, str(key)), f"Embulk's option '{key}' {refused[key]}")
            if key not in fields and key not in ignore:
                raise self.error(join_path(path, str(key)), "unknown option" + did_you_mean(str(key), fields))
        values = {}
        for key, f in fields.items():
            sub = join_path(path, key)
            if key in raw:
                values[f.name] = self.convert(hints[f.name], raw[key], sub)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error(sub, f"missing required option '{key}'")
        try:
            return cls(**values)
        except ValueError as exc:  # a dataclass __post_init__ check
            raise self.error(path, str(exc)) from None

    def convert(self, hint: Any, value: Any, path: str) -> Any:
        origin = get_origin(hint)
        if origin in (Union, types.UnionType):
            options = get_args(hint)
            if value is None and type(None) in options:
                return None
            (inner,) = [o for o in options if o is not type(None)]
            return self.convert(inner, value, path)
        if hint is Any:
            return value
        if origin is Literal:
            choices = get_args(hint)
            if value not in choices:
                names = ", ".join(str(c) for c in choices)
                hint_text = did_you_mean(str(value), [str(c) for c in choices])
                raise self.error(path, f"expected one of {names}; got {describe(value)}{hint_text}")
            return value
        if origin is tuple:
            (inner, _) = get_args(hint)
            if isinstance(value, str | int | float) and not isinstance(value, bool) and inner is str:
                return (str(value),)
            if not isinstance(value, list):
                raise self.error(path, f"expected a list, got {describe(value)}")
            return tuple(self.convert(inner, v, join_path(path, i)) for i, v in enumerate(value))
        if origin in (dict, Mapping):
            if not isinstance(value, Mapping):
                raise self.error(path, f"expected a mapping, got {describe(value)}")
            _, inner = get_args(hint)
            return types.MappingProxyType({str(k): self.convert(inner, v, join_path(path, str(k))) for k, v in value.items()})
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, path, ignore=())
        return self.scalar(hint, value, path)

    def scalar(self, hint: type, value: Any, path: str) -> Any:
        if hint is str:
            if isinstance(value, str):
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
            raise self.error(path, f"expected a string, got {describe(value)}")
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise self.error(path, f"expected true or false, got {describe(value)}")
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                try:
                    return int(value)
                except ValueError:  # "--5", or digits int() does not read, like "²"
                    pass
            raise self.error(path, f"expected an integer, got {describe(value)}")
        if hint is float:
            if not isinstance(value, bool) and isinstance(value, int | float | str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise self.error(path, f"expected a number, got {describe(value)}")
        raise TypeError(f"unsupported settings type {hint!r} at {path}")


def secret_keys(cls: type) -> set[str]:
    """YAML names of the options marked secret in a settings class."""
    return {yaml_key(f) for f in dataclasses.fields(cls) if f.metadata.get(_SECRET)}
