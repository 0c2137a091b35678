"""`pipelines guess SEED [-o CONFIG]`: a complete config from a seed and a sample of its input.

Click only at import: the guessing (pipelines.guess) is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipelines.cli.types import KeyValue

if TYPE_CHECKING:
    from pipelines.guess.guesser import Guessed

SAMPLE_BYTES = 2 << 20  # pipelines.guess.sample.SAMPLE_BYTES, here so --help needs no import
PREVIEW_ROWS = 10

EXAMPLES = """\b
Example:
  $ cat seed.yml.liquid
  in:
    type: s3
    bucket: "{{ env.S3_BUCKET }}"
    path_prefix: "{{ env.S3_KEY }}"
  out:
  {% include 'kafka' %}
    topic: audience-members
  $ pipelines guess seed.yml.liquid -o audience.yml.liquid --var S3_BUCKET=audiences --var S3_KEY=drops/a.csv.gz
  $ pipelines validate audience.yml.liquid --var S3_BUCKET=audiences --var S3_KEY=drops/a.csv.gz
\b
Exit codes:
  0  the config is written (or printed)
  1  nothing to guess from: no object, an empty sample, data that is not CSV, TSV or JSON lines text
  2  the seed or the command line is wrong, or the guess cannot be written as asked
"""


@click.command(epilog=EXAMPLES, short_help="Complete a seed config from a sample of its input.")
@click.argument("seed", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the config here (default: print it).")
@click.option(
    "--var", "variables", type=KeyValue(), multiple=True,
    help="A template variable, as var.KEY; it also overrides env.KEY for this run. Repeatable.",
)
@click.option(
    "--sample-bytes", type=click.IntRange(min=1024), default=SAMPLE_BYTES, show_default=True,
    help="Bytes of the first object to read (after decompression).",
)
@click.option("--rows", type=click.IntRange(min=0), default=PREVIEW_ROWS, show_default=True, help="Rows to preview on stderr (0: none).")
def guess(seed: Path, output: Path | None, variables: tuple[tuple[str, str], ...], sample_bytes: int, rows: int) -> None:
    """Complete SEED (a config with at least in: and out:) from a sample of its input: in.decoders,
    in.parser and, for a Kafka output, out.key_column_name. Print the config, or write it to -o.

    It reads the first MiBs of the first object (decompressed) and infers the compression (gzip, zstd),
    the charset (UTF-8, UTF-8 with BOM, CP932/Shift_JIS, EUC-JP), CSV or TSV (delimiter, quote, header)
    or JSON lines, each column's name and type (string, long, double, boolean, timestamp with its
    format, json) and the column that looks like a user id. What the seed sets stays as it is.

    The seed's own text is kept (template tags, includes, comments), with the guess spliced in; a
    *.liquid seed written to a plain *.yml file is written as rendered. What the sample leaves open
    is written as `# check:` comments and repeated on stderr, followed by a preview of the first rows
    parsed with the written config.
    """
    from pipelines.cli.shared import fail, with_params
    from pipelines.engine.errors import PipelineError
    from pipelines.guess.guesser import guess_config

    try:
        guessed = guess_config(seed, with_params(variables), output, sample_bytes)
    except PipelineError as exc:
        fail(exc)
    if output is None:
        click.echo(guessed.text, nl=False)
    else:
        output.write_text(guessed.text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    _report(guessed, rows)


def _report(guessed: Guessed, rows: int) -> None:
    """On stderr: the checks, then the first rows as the written config parses them."""
    from pipelines.cli.shared import fail
    from pipelines.engine.errors import PipelineError
    from pipelines.engine.read import format_table
    from pipelines.guess.guesser import preview

    if guessed.rendered:
        click.echo(f"note: written as rendered: {guessed.rendered}", err=True)
    for note in guessed.checks:
        click.echo(note, err=True)
    if rows == 0:
        return
    job = guessed.job
    try:
        shown = preview(job, rows)
    except PipelineError as exc:
        fail(exc)
    click.echo(format_table(job.schema.names, [c.type for c in job.schema.columns], shown.rows), err=True)
    bad = f"{shown.bad} bad (first: {shown.first_bad})" if shown.bad else "none bad"
    click.echo(f"preview: {len(shown.rows)} row(s) shown of {shown.rows_read} read; {bad}", err=True)
