"""What the `pipelines` commands share beyond click types: the CONFIG argument and --var option, how
an error ends a command, and the template variables of a run (click only at import: the engine is
imported when a command runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipelines.cli.types import KeyValue

config_argument = click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
var_option = click.option(
    "--var",
    "variables",
    type=KeyValue(),
    multiple=True,
    help="A template variable, as var.KEY; it also overrides env.KEY for this run. Repeatable.",
)


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
