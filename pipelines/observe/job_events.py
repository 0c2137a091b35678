"""What the entry points call when a shard or a job starts or ends: the metrics line (metrics.py)
and the lineage event (lineage.py). Each does nothing unless turned on, and never raises.

    CLI `run --shard`, the Lambda's run_shard   shard_ended
    CLI `run` (every shard, then finish)         job_started, job_ended
    the workflow's status task                   job_started (RUNNING), job_ended (SUCCEEDED, FAILED)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.observe import lineage, metrics
from pipelines.observe.counts import Counts

CONFIG_SUFFIXES = (".liquid", ".yml", ".yaml")


def pipeline_name(config: Path | str) -> str:
    """A config's pipeline name: its file name without .yml.liquid (as the workflow names it)."""
    name = Path(config).name
    for suffix in CONFIG_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def shard_ended(job: Any, job_id: str, shard: int, status: str, counts: Any) -> None:
    _guarded(metrics.emit, "shard", pipeline_name(job.path), status, Counts.of(counts), job_id, shard)


def job_started(job: Any, job_id: str, pipeline: str | None = None) -> None:
    if lineage.enabled():
        _guarded(_send, "START", job, job_id, pipeline or pipeline_name(job.path), None, None)


def job_ended(job: Any, job_id: str, status: str, counts: Any, error: str | None = None, pipeline: str | None = None) -> None:
    """A job ended with `status` (succeeded or failed); `job` may be None (a config that no longer
    loads): the lineage event then names no datasets."""
    pipeline = pipeline or pipeline_name(job.path)
    counted = Counts.of(counts) if counts is not None else Counts()
    _guarded(metrics.emit, "job", pipeline, status, counted, job_id)
    if lineage.enabled():
        state = "COMPLETE" if status == "succeeded" else "FAIL"
        _guarded(_send, state, job, job_id, pipeline, counted, error if state == "FAIL" else None)


def _send(state: str, job: Any, job_id: str, pipeline: str, counts: Counts | None, error: str | None) -> None:
    from pipelines.observe.datasets import job_datasets

    datasets = job_datasets(job) if job is not None else ([], [])
    lineage.send(lineage.build_event(state, job_id, pipeline, datasets, counts, error))


def _guarded(call: Any, *args: Any) -> None:
    """Metrics and lineage never fail a job: an error is logged on stderr and the job goes on."""
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001
        from pipelines.engine.progress import log_event

        log_event("observe_failed", what=getattr(call, "__name__", "?"), error=f"{type(exc).__name__}: {exc}")
