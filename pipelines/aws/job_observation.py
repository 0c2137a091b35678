"""The workflow's job-level metrics and lineage (pipelines/observe), from the status task's
transitions: RUNNING starts the job's lineage run; SUCCEEDED and FAILED end it and write the job's
metrics line, with the counts Finish returned or, for a failed job, what its committed shards added
(its live progress), and the seconds from RUNNING to the end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipelines.aws.jobs import FAILED, RUNNING, SUCCEEDED, JobRecord

CAUSE_CHARS = 2000  # a Step Functions Cause can be a whole ECS task description


def observe_transition(record: JobRecord, counts: dict[str, Any] | None) -> None:
    from pipelines.observe import lineage
    from pipelines.observe.job_events import job_ended, job_started

    if record.status not in (RUNNING, SUCCEEDED, FAILED):
        return
    config = _config(record) if lineage.enabled() else None  # only lineage names the datasets
    if record.status == RUNNING:
        job_started(config, record.job_id, record.pipeline)
        return
    ended_at = record.succeeded_at if record.status == SUCCEEDED else record.failed_at
    seconds = _seconds(record.running_at, ended_at)
    if record.status == SUCCEEDED:
        job_ended(config, record.job_id, "succeeded", {**(counts or {}), "seconds": seconds}, pipeline=record.pipeline)
        return
    done = record.progress
    so_far = {**(vars(done) if done is not None else {}), "seconds": seconds}
    job_ended(config, record.job_id, "failed", so_far, _error_text(record.error), pipeline=record.pipeline)


def _config(record: JobRecord) -> Any:
    """The job's config, for its datasets; None if it does not load (which may be why it failed)."""
    from pipelines.aws.pipeline_configs import config_path, params_of
    from pipelines.engine.config import load_job

    try:
        return load_job(config_path(record.pipeline), params_of({"params": record.params}))
    except Exception:  # noqa: BLE001 (the event is sent without datasets)
        return None


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(end) - parse(start)).total_seconds(), 3)


def _error_text(error: Any) -> str:
    """A Step Functions error as one line: "<Error>: <message>"; a Lambda's Cause is its error as
    JSON ({"errorType", "errorMessage", ...}), of which the message is kept."""
    import json

    if not isinstance(error, dict):
        return str(error or "failed")[:CAUSE_CHARS]
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause) if cause.startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        cause = parsed["errorMessage"]
    return ": ".join(str(part) for part in (error.get("Error"), cause) if part)[:CAUSE_CHARS]
