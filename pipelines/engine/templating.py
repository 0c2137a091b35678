"""Strict Liquid rendering of configs, with `{% include 'name' %}` loading `_name.yml.liquid` beside the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError


def _partial_path(folder: Path, name: str, where: str) -> Path:
    base = Path(name)
    if base.name != name or name in ("", ".", ".."):
        raise ConfigError(f"include name {name!r} must be a plain name like 'kafka'", where=where)
    return folder / f"_{name}.yml.liquid"


def render_liquid(text: str, path: Path, variables: dict[str, Any]) -> str:
    from liquid import Environment, StrictDefaultUndefined
    from liquid.exceptions import LiquidError
    from liquid.loader import BaseLoader, TemplateSource

    folder = path.parent
    partials: dict[str, str] = {}  # source text -> file, to name the partial an error is in

    class PartialLoader(BaseLoader):
        def get_source(self, env: Any, template_name: str, **kwargs: Any) -> TemplateSource:
            partial = _partial_path(folder, template_name, str(path))
            try:
                source = partial.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ConfigError(
                    f"include '{template_name}' needs {partial.name} beside the config, and there is none",
                    where=str(path),
                ) from None
            partials.setdefault(source, str(partial))
            return TemplateSource(source, str(partial), None)

    env = Environment(loader=PartialLoader(), undefined=StrictDefaultUndefined)
    try:
        return env.from_string(text, name=str(path)).render(**variables)
    except LiquidError as exc:
        raise ConfigError(_describe(exc), where=_where(exc, path, partials)) from None


def _describe(exc: Any) -> str:
    message = getattr(exc, "message", None) or str(exc).splitlines()[0]
    if type(exc).__name__ == "UndefinedError":
        return f"undefined template variable: {message} (set it in the environment or pass --var)"
    return f"template error: {message}"


def _where(exc: Any, path: Path, partials: dict[str, str]) -> str:
    name = str(path)
    token = getattr(exc, "token", None)
    if token is not None and getattr(token, "source", None) and getattr(token, "start_index", -1) >= 0:
        name = partials.get(token.source, name)
        line = token.source.count("\n", 0, token.start_index) + 1
        return f"{name}: line {line}"
    return name  # e.g. a block left open: the error is at the end of the template, with no token to place it
