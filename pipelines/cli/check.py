"""`pipelines check CONFIG`: every thing a run of CONFIG needs, checked with the run's variables and
credentials, one line each (the checks are pipelines.check)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipelines.cli.shared import config_argument, var_option, with_params

EXIT_CODES = """\b
Exit codes:
  0  every check passed
  1  a check failed (its line says what to do)
  2  the command line is wrong
"""


@click.command(epilog=EXIT_CODES, short_help="Check what a run of CONFIG needs, one line each.")
@config_argument
@var_option
def check(config: Path, variables: tuple[tuple[str, str], ...]) -> None:
    """Check, with the variables and the credentials a run of CONFIG would have, each thing it needs:

    \b
    - the template renders and the config validates;
    - the input lists and reads (S3: under its prefix; a file input: its folder);
    - the outputs, exec.work_dir and exec.error_output take a small probe object, written and deleted;
    - Kafka: the brokers answer and authenticate, the topic exists (its partition count), and a
      transactional output begins and aborts a transaction (writing nothing);
    - Avro with a schema registry: it answers, and the subject takes the schema.

    One line per check: `ok` with what it found, `FAIL` with what failed and what to do, `skip` when
    what it needs failed. Nothing else is written, nothing is registered or created. Run it where the
    job runs (under the task role, after `terraform apply`) before the first import.
    """
    from pipelines.check.runner import run_checks

    results = []
    for result in run_checks(config, with_params(variables)):
        results.append(result)
        click.echo(result.line())
    click.echo(summary(results))
    sys.exit(0 if all(r.ok for r in results) else 1)


def summary(results: list) -> str:
    """``all 8 checks passed``, or ``1 of 8 checks failed, 1 not checked``."""
    from pipelines.check.result import FAILED, SKIPPED

    failed = sum(1 for r in results if r.status == FAILED)
    not_checked = sum(1 for r in results if r.status == SKIPPED)
    if not failed and not not_checked:
        return f"all {len(results)} checks passed"
    return f"{failed} of {len(results)} checks failed" + (f", {not_checked} not checked" if not_checked else "")
