"""`pipelines guess` as a function: seed -> sample -> guess -> the config's text, validated as `validate`
validates it; and the preview of its first rows, read by the engine's own input, decoders and parser."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.engine.config import Job, build_job, parse_yaml, template_variables
from pipelines.engine.errors import ConfigError
from pipelines.guess import writer
from pipelines.guess.charset import decode_sample
from pipelines.guess.columns import csv_columns, json_columns, key_column
from pipelines.guess.layout import NAMES, CsvLayout, read_layout
from pipelines.guess.model import CHECK, ColumnGuess, Guess, KeyGuess, check, show
from pipelines.guess.sample import SAMPLE_BYTES, Sample, read_sample
from pipelines.guess.seed import Seed, load_seed

FEW_ROWS = 20  # fewer sampled rows than this, and the types rest on little


@dataclass
class Guessed:
    text: str  # the complete config
    job: Job  # it, validated
    guess: Guess
    sample: Sample
    rendered: str | None  # why the seed's template was not kept (None: it was, or the seed is plain YAML)

    @property
    def checks(self) -> list[str]:
        """The notes on what the sample left open, as the config's `# check:` comments say them."""
        notes = [*self.guess.notes, *(n for ns in self.guess.column_notes.values() for n in ns), *(self.guess.key.notes if self.guess.key else [])]
        return [n for n in notes if n.startswith(CHECK)]


def guess_config(seed_path: Path, variables: Mapping[str, str], output: Path | None = None, sample_bytes: int = SAMPLE_BYTES) -> Guessed:
    """The seed completed from a sample of its first object; to be written to `output` (or printed)."""
    seed = load_seed(seed_path, variables)
    sample = read_sample(seed.input, seed.decoders, sample_bytes)
    guess = guess_from(seed, sample)
    text, job, reason = compose(seed, guess, output or seed_path, variables)
    return Guessed(text, job, guess, sample, reason)


def guess_from(seed: Seed, sample: Sample) -> Guess:
    parser = seed.parser
    decoded = decode_sample(sample.data, sample.whole, sample.uri, parser.get("charset"))
    layout = read_layout(decoded.text, parser, sample.whole, sample.uri)
    options: dict[str, Any] = {"type": "jsonl", "charset": decoded.charset}
    notes = decoded.notes + layout.notes
    if isinstance(layout, CsvLayout):
        found = csv_columns(layout, parser, sample.uri)
        columns, notes = found.columns, notes + found.notes
        options.update(type="csv", delimiter=layout.delimiter, quote=layout.quote, skip_header_lines=found.skip_header_lines)
    else:
        columns = json_columns(layout, sample.uri)
    rows = columns[0].rows if columns else 0
    if rows < FEW_ROWS:
        notes.append(check(f"only {rows} row(s) in the sample: the types rest on them alone"))
    options["columns"] = [c.settings() for c in columns]
    return Guess(
        summary=_summary(sample, _compression(seed, sample), decoded.charset, layout, options, rows),
        decoders=None if seed.decoders is not None else [sample.compression] if sample.compression else [],
        parser=writer.ordered({**options, **parser}),
        notes=notes,
        column_notes={} if "columns" in parser else {c.name: c.notes for c in columns},
        key=_key(seed, columns),
    )


def _compression(seed: Seed, sample: Sample) -> str:
    if seed.decoders:
        return "through the seed's decoders"
    return sample.compression or "not compressed"


def _summary(sample: Sample, compression: str, charset: str, layout: Any, options: dict[str, Any], rows: int) -> str:
    if isinstance(layout, CsvLayout):
        kind = "TSV" if layout.delimiter == "\t" else f"CSV ({NAMES.get(layout.delimiter, show(layout.delimiter))}-separated)"
        shape = f"{kind}, {'with a header line' if options['skip_header_lines'] else 'no header line'}"
    else:
        shape = "JSON lines"
    return f"guessed from {sample.describe()}, {rows} row(s): {compression}, {charset}, {shape}"


def _key(seed: Seed, columns: list[ColumnGuess]) -> KeyGuess | None:
    """The key column of a Kafka output whose seed sets none; chosen among the seed's columns if it declares them."""
    out = seed.data["out"]
    if out.get("type") != "kafka" or "key_column_name" in out:
        return None
    declared = seed.parser.get("columns")
    if isinstance(declared, list):
        by_name = {c.name: c for c in columns}
        columns = [by_name.get(str(d.get("name")), ColumnGuess(str(d.get("name")))) for d in declared if isinstance(d, dict)]
    return key_column(columns)


def expected(seed: Seed, guess: Guess) -> dict[str, Any]:
    """The seed's data completed by the guess: what the written config must read as."""
    data = copy.deepcopy(seed.data)
    if guess.decoders:
        data["in"]["decoders"] = [{"type": d} for d in guess.decoders]
    data["in"]["parser"] = guess.parser
    if guess.key is not None and guess.key.name is not None:
        data["out"]["key_column_name"] = guess.key.name
    return data


def compose(seed: Seed, guess: Guess, target: Path, variables: Mapping[str, str]) -> tuple[str, Job, str | None]:
    """The config's text for `target`: the seed's text with the guess spliced in, or, when that does not
    read as the seed completed by the guess, the seed as rendered with it (and why); and its Job."""
    data = expected(seed, guess)
    in_added, out_added = writer.in_lines(guess), writer.out_lines(guess.key)
    reason = None
    if seed.templated and target.suffix != ".liquid":
        reason = f"{target.name} is not a *.liquid template"
    else:
        text = writer.splice(seed.text, in_added, out_added, drop_parser="parser" in seed.data["in"])
        reason = "its in: or out: is not a block of keys" if text is None else _differs(text, target, variables, data)
    if reason is not None:
        _refuse_rendered_secrets(seed, variables, reason)
        text = writer.rendered(seed.data, guess, in_added, out_added, reason)
        problem = _differs(text, target, variables, data)
        if problem is not None:
            raise ConfigError(f"the guess cannot be written as {target.name} ({problem}); write it to a *.yml file", where=str(seed.path))
    try:
        job = build_job(data, target)
    except ConfigError as exc:  # the seed's other options against the guessed columns (an Avro schema, a filter)
        raise ConfigError(f"the guessed config does not validate: {exc.message}", where=exc.where) from None
    return text, job, reason


def _refuse_rendered_secrets(seed: Seed, variables: Mapping[str, str], reason: str) -> None:
    """A seed written as rendered would hold its secrets in clear (a password from a --var, say): refused."""
    from pipelines.engine.redact import secret_values

    if secret_values(seed.data, variables):
        raise ConfigError(
            f"the guess cannot keep the seed's template ({reason}), and written as rendered it would hold the seed's "
            "secrets in clear: write it to a *.yml.liquid file, or keep the secrets out of the seed",
            where=str(seed.path),
        )


def _differs(text: str, target: Path, variables: Mapping[str, str], data: dict[str, Any]) -> str | None:
    """None when `text`, loaded as `target` would be, reads as `data`; else what went wrong."""
    try:
        if target.suffix == ".liquid":
            from pipelines.engine.templating import render_liquid

            text = render_liquid(text, target, template_variables(variables))
        loaded = parse_yaml(text, str(target))
    except ConfigError as exc:
        return str(exc)
    return None if loaded == data else "with the guess spliced in, it does not render as the seed completed"


@dataclass
class Preview:
    rows: list[list[Any]]
    rows_read: int
    bad: int
    first_bad: str | None


def preview(job: Job, limit: int) -> Preview:
    """The first `limit` rows of the first object, read as `run` reads them; bad rows counted, not written."""
    import os
    from itertools import islice

    from pipelines.engine.error_output import ErrorPolicy, ErrorSink
    from pipelines.engine.plan import PlanItem
    from pipelines.engine.progress import RunStats
    from pipelines.engine.read import read_items

    errors = ErrorSink(ErrorPolicy(max_errors=None, max_error_rate=1.0), os.devnull)
    items = [PlanItem(s.uri, s.size, s.etag) for s in islice(job.input.list_sources(), 1)]
    rows: list[list[Any]] = []
    stats = RunStats()
    batches = read_items(job, items, errors, stats)
    try:
        for batch in batches:
            rows.extend(batch.rows[: limit - len(rows)])
            if len(rows) >= limit:
                break
    finally:
        batches.close()
        errors.close()
    return Preview(rows, stats.rows_read, errors.count, errors.first)
