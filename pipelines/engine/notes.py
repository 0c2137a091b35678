"""Notes on a validated config: options accepted that do not do all they do in Embulk (exec.min_output_tasks,
an S3 input's path_prefix beside path), said at load time (`pipelines validate`, `run`, ...) on stderr
rather than ignored silently. A plugin or the exec settings list theirs in a `notes` attribute."""

from __future__ import annotations

from typing import Any


def job_notes(job: Any) -> list[str]:
    """Every note of the job's exec settings and plugins, in config order."""
    parts = [job.input, *(job.decoders or []), job.parser, *job.filters, job.output, job.exec]
    return [note for part in parts if part is not None for note in getattr(part, "notes", ())]
