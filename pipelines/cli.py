"""The `pipelines` command. Thin: each command parses options and calls the engine.

Exit codes: 0 success; 1 the run failed; 2 the config or the command line is wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

EPILOG = """\b
Exit codes:
  0  success
  1  the run failed (bad rows past max_errors, missing object, broker unreachable, ...)
  2  the config or the command line is wrong; nothing was read or written
\b
Examples:
  eval "$(pipelines dev up)"
  pipelines validate configs/send_audience_to_kafka.yml.liquid --var S3_BUCKET=audiences
  pipelines run configs/send_audience_to_kafka.yml.liquid --var S3_KEY=drops/2026-11-22.csv.gz
"""


class VarType(click.ParamType):
    """KEY=VALUE, for --var."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"expected KEY=VALUE, got {value!r}", param, ctx)
        return key.strip(), val


config_argument = click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
var_option = click.option(
    "--var",
    "variables",
    type=VarType(),
    multiple=True,
    help="A template variable, as var.KEY; it also overrides env.KEY for this run. Repeatable.",
)


def fail(exc: Exception) -> None:
    """Prints a PipelineError as one line on stderr and exits with its code."""
    from pipelines.errors import PipelineError

    if isinstance(exc, PipelineError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    raise exc


def load(config: Path, variables: tuple[tuple[str, str], ...]) -> Any:
    from pipelines.config import load_job
    from pipelines.errors import PipelineError

    try:
        return load_job(config, dict(variables))
    except PipelineError as exc:
        fail(exc)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="audience-pipelines")
def cli() -> None:
    """Move audiences between S3 and Kafka with Embulk-style configs (in, parser, filters, out, exec).

    CONFIG is a *.yml.liquid file (rendered with Liquid: env.X is the environment,
    var.X a --var value, {% include 'kafka' %} loads _kafka.yml.liquid beside it)
    or a plain *.yml file.
    """


@cli.command()
@config_argument
@var_option
@click.option("--job-id", help="Job id (header pipelines.job_id, transactional.id, error file name). Default: a new one.")
def run(config: Path, variables: tuple[tuple[str, str], ...], job_id: str | None) -> None:
    """Run CONFIG: read, parse, filter, write; print a JSON summary as the last line of stdout.

    Shows progress on stderr (a live line on a terminal, JSON log lines otherwise).
    Rows that fail parsing or validation go to exec.error_output; past
    exec.max_errors (default 0) or exec.max_error_rate the run fails and the
    Kafka transaction is aborted, so read_committed consumers see nothing of it.
    """
    from pipelines.errors import PipelineError
    from pipelines.progress import Progress, RunStats, log_event
    from pipelines.runner import Summary, make_error_sink, new_job_id, run_job

    job = load(config, variables)
    job_id = job_id or new_job_id()
    stats = RunStats()
    errors = make_error_sink(job, job_id)
    progress = Progress(job_id)
    if not progress.tty:
        log_event("start", job_id=job_id, config=str(config))
    try:
        run_job(job, job_id, stats, errors, progress)
    except PipelineError as exc:
        click.echo(Summary.of(job_id, stats, errors, error=str(exc)).to_json())
        fail(exc)
    except KeyboardInterrupt:
        click.echo(Summary.of(job_id, stats, errors, error="interrupted").to_json())
        click.echo("error: interrupted; the transaction was aborted", err=True)
        sys.exit(130)
    summary = Summary.of(job_id, stats, errors)
    if errors.count:
        click.echo(f"warning: {errors.count} bad row(s) skipped, written to {errors.uri}", err=True)
    click.echo(summary.to_json())


@cli.command()
@config_argument
@var_option
@click.option("--rows", default=None, type=click.IntRange(min=1), help="How many rows (default exec.preview_rows, 20).")
def preview(config: Path, variables: tuple[tuple[str, str], ...], rows: int | None) -> None:
    """Show the first rows of CONFIG after its filters, as a table. The output is not called."""
    from pipelines.errors import PipelineError
    from pipelines.runner import format_table, preview_rows

    job = load(config, variables)
    try:
        found = preview_rows(job, rows or job.exec.preview_rows)
    except PipelineError as exc:
        fail(exc)
    click.echo(format_table(job.schema.names, [c.type for c in job.schema.columns], found))


@cli.command()
@config_argument
@var_option
def render(config: Path, variables: tuple[tuple[str, str], ...]) -> None:
    """Print CONFIG as rendered (secrets masked as ******)."""
    from pipelines.config import parse_yaml, render as render_config, template_variables
    from pipelines.errors import PipelineError
    from pipelines.redact import redact, secret_values

    try:
        text = render_config(config, dict(variables))
    except PipelineError as exc:
        fail(exc)
    env = template_variables(dict(variables))["env"]
    try:
        data = parse_yaml(text, str(config))
    except PipelineError as exc:
        # Show what was rendered, so the YAML error can be found in it, then fail.
        click.echo(redact(text, secret_values({}, env)), nl=False)
        fail(exc)
    click.echo(redact(text, secret_values(data, env)), nl=False)


@cli.command()
@config_argument
@var_option
def validate(config: Path, variables: tuple[tuple[str, str], ...]) -> None:
    """Check CONFIG (template, YAML, every plugin's options, the columns they use) without reading or writing."""
    job = load(config, variables)
    columns = ", ".join(f"{c.name}:{c.type}" for c in job.schema.columns)
    click.echo(f"ok: {config} ({columns})")


def _add_dev_commands() -> None:
    from pipelines.devstack.cli import dev

    cli.add_command(dev)


_add_dev_commands()


def main() -> None:
    cli(prog_name="pipelines")
