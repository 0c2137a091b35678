"""Runs a validated job: list the sources, open the output, stream batches through the filters, commit or abort.

The CLI, the tests (and later the Lambda handler) call these functions.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.config import Job
from pipelines.error_output import ErrorSink, error_file_uri
from pipelines.errors import RunError
from pipelines.progress import Progress, RunStats
from pipelines.records import Batch, Source
from pipelines.textio import CountingStream


def new_job_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Summary:
    job_id: str
    status: str
    rows_read: int
    rows_written: int
    rows_skipped: int
    bytes_read: int
    seconds: float
    rows_per_second: float
    objects: int
    error_output: str | None
    error: str | None = None

    @classmethod
    def of(cls, job_id: str, stats: RunStats, errors: ErrorSink | None, error: str | None = None) -> Summary:
        seconds = stats.seconds
        return cls(
            job_id=job_id,
            status="failed" if error else "succeeded",
            rows_read=stats.rows_read,
            rows_written=stats.rows_written,
            rows_skipped=errors.count if errors else 0,
            bytes_read=stats.bytes_read,
            seconds=round(seconds, 3),
            rows_per_second=round(stats.rows_written / seconds if seconds else 0.0, 1),
            objects=stats.objects,
            error_output=errors.location if errors else None,
            error=error,
        )

    def to_json(self) -> str:
        import orjson

        return orjson.dumps({k: v for k, v in asdict(self).items() if v is not None or k == "error_output"}).decode()


def make_error_sink(job: Job, job_id: str, shard: int | None = None) -> ErrorSink:
    from pipelines.plugins.s3_input import s3_client

    policy = job.exec.error_policy
    return ErrorSink(policy, error_file_uri(policy.location, job_id, shard), s3_client)


def read_batches(job: Job, sources: list[Source], errors: ErrorSink, stats: RunStats) -> Iterator[Batch]:
    """Every source decoded, parsed and filtered, in batches; bad rows go to `errors`."""
    from pipelines.plugins.decoders import detect

    bytes_before = 0
    for source in sources:
        counted = CountingStream(job.input.open(source))
        with closing(counted):
            stream: Any = counted
            if job.decoders is None:
                stream = detect(stream, source)
            else:
                for decoder in job.decoders:
                    stream = decoder.decode(stream, source)
            for batch, consumed in job.parser.batches(stream, source, errors, job.exec.batch_rows):
                stats.rows_read += consumed
                stats.bytes_read = bytes_before + counted.bytes_read
                for f in job.filters:
                    if batch.rows:
                        f.apply(batch, errors)
                stats.rows_skipped = errors.count
                yield batch
        bytes_before += counted.bytes_read
        stats.bytes_read = bytes_before
        stats.objects += 1


def run_job(job: Job, job_id: str, stats: RunStats, errors: ErrorSink, progress: Progress | None = None, shard: int | None = None) -> None:
    """Runs the whole job into its output inside one transaction; raises on failure after aborting."""
    sources = job.input.list_sources()  # missing or empty objects fail here, before anything is written
    output = job.output
    output.open(job_id, shard)
    try:
        for batch in read_batches(job, sources, errors, stats):
            if batch.rows:
                output.write(batch, errors)
            stats.rows_skipped = errors.count
            if progress:
                progress.update(stats)
        errors.check_rate(stats.rows_read)
        errors.close()
        written = output.commit()
    except BaseException:
        stats.rows_written = output.abort()
        raise
    finally:
        output.close()
        errors.close()
        if progress:
            progress.finish()
    stats.rows_written = written
    stats.rows_skipped = errors.count
    if stats.rows_read != written + errors.count:
        raise RunError(
            f"row accounting does not add up: {stats.rows_read} read, {written} written, {errors.count} skipped"
        )


def preview_rows(job: Job, limit: int) -> list[list[Any]]:
    """The first `limit` rows after the filters; the output is not called."""
    from pipelines.error_output import ErrorPolicy

    # Preview shows bad rows' count but never fails on them, and writes them nowhere.
    errors = ErrorSink(ErrorPolicy(max_errors=None, max_error_rate=1.0), "/dev/null")
    rows: list[list[Any]] = []
    stats = RunStats()
    for batch in read_batches(job, job.input.list_sources(), errors, stats):
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
