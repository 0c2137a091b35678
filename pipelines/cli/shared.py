"""What the `pipelines` commands share beyond click types: how an error ends a command, and the
template variables of a run (click only at import: the engine is imported when a command runs)."""

from __future__ import annotations

import sys

import click


def fail(exc: Exception) -> None:
    """Prints a PipelineError as one line on stderr and exits with its code."""
    from pipelines.engine.errors import PipelineError

    if isinstance(exc, PipelineError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    raise exc


def with_params(variables: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """$PIPELINES_PARAMS (a JSON object) overlaid with the --var values."""
    from pipelines.engine.config import params_from_env
    from pipelines.engine.errors import PipelineError

    try:
        return {**params_from_env(), **dict(variables)}
    except PipelineError as exc:
        fail(exc)
        raise
