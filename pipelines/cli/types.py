"""Click parameter types shared by the `pipelines` commands (click only: imported at CLI start)."""

from __future__ import annotations

from typing import Any

import click


class KeyValue(click.ParamType):
    """KEY=VALUE, for --var and --param."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"expected KEY=VALUE, got {value!r}", param, ctx)
        return key.strip(), val
