"""Reads a job's plan items through decoders, parser and filters, in batches; and preview.

`pipelines.engine.run` runs shards with these; the CLI, the tests (and the Lambda handler) call both.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

from pipelines.engine.config import Job
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.plan import PlanItem
from pipelines.engine.progress import RunStats
from pipelines.engine.records import Batch, Source
from pipelines.engine.spi import FusedPath
from pipelines.engine.textio import CountingStream, LineRange


def new_job_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def open_item(job: Job, item: PlanItem) -> tuple[CountingStream, Any]:
    """(counted stream, decoded stream) of a plan item: a whole object through its decoders,
    or the lines of a byte range of an uncompressed one."""
    from pipelines.engine.decoding import detect

    if not item.whole:
        counted = CountingStream(LineRange(job.input.open(item.source, max(item.start - 1, 0)), item.start, item.end))
        return counted, counted
    counted = CountingStream(job.input.open(item.source))
    stream: Any = counted
    if job.decoders is None:
        stream = detect(stream, item.source)
    else:
        for decoder in job.decoders:
            stream = decoder.decode(stream, item.source)
    return counted, stream


def read_items(
    job: Job, items: list[PlanItem] | tuple[PlanItem, ...], errors: ErrorSink, stats: RunStats, fused: FusedPath | None = None
) -> Iterator[Any]:
    """Every item decoded, parsed and filtered, in batches; bad rows go to `errors`. Through a `fused`
    path (the output's, see OutputPlugin.fused_path), some pieces are that path's records instead of
    Batches: they skip the filters, which the path applied itself."""
    if job.parser is None:
        yield from _read_records(job, items, errors, stats)
        return
    bytes_before = stats.bytes_read
    for item in items:
        counted, stream = open_item(job, item)
        with closing(counted):
            labelled = Source(item.label, item.size, item.etag)
            reader = job.parser if fused is None else fused
            pieces = reader.batches(stream, labelled, errors, job.exec.batch_rows, header=item.start == 0, split=not item.whole)
            for piece, consumed in pieces:
                stats.rows_read += consumed
                stats.bytes_read = bytes_before + counted.bytes_read
                if type(piece) is Batch:
                    _filter(job, piece, errors)
                stats.rows_skipped = errors.count
                yield piece
        bytes_before += counted.bytes_read
        stats.bytes_read = bytes_before
        stats.objects += 1


def _filter(job: Job, batch: Batch, errors: ErrorSink) -> None:
    for f in job.filters:
        if batch.rows:
            f.apply(batch, errors)


def _read_records(job: Job, items: list[PlanItem] | tuple[PlanItem, ...], errors: ErrorSink, stats: RunStats) -> Iterator[Batch]:
    """The items of a record input (Kafka offset ranges), filtered, in batches."""
    for item in items:
        for batch, consumed, nbytes in job.input.read(item, errors, job.exec.batch_rows):
            stats.rows_read += consumed
            stats.bytes_read += nbytes
            _filter(job, batch, errors)
            stats.rows_skipped = errors.count
            yield batch
        stats.objects += 1


def preview_rows(job: Job, limit: int) -> list[list[Any]]:
    """The first `limit` rows after the filters; the output is not called."""
    from pipelines.engine.error_output import ErrorPolicy

    # Preview shows bad rows' count but never fails on them, and writes them nowhere.
    errors = ErrorSink(ErrorPolicy(max_errors=None, max_error_rate=1.0), "/dev/null")
    rows: list[list[Any]] = []
    stats = RunStats()
    if job.parser is None:
        items, _ = job.input.plan_items()
    else:
        items = [PlanItem(source.uri, source.size, source.etag) for source in job.input.list_sources()]
    for batch in read_items(job, items, errors, stats):
        rows.extend(batch.rows[: limit - len(rows)])
        if len(rows) >= limit:
            break
    return rows


def format_table(names: list[str], types: list[str], rows: list[list[Any]], width: int = 40) -> str:
    """Rows as a text table, Embulk preview style."""

    def cell(value: Any) -> str:
        text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    header = [f"{n}:{t}" for n, t in zip(names, types)]
    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [rule, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |", rule]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in body]
    lines.append(rule)
    return "\n".join(lines)
