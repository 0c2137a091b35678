"""The Lambda entry point: one handler, dispatching on the event's "task".

    {"task": "status", "job_id", "pipeline", "status", "counts"?, "error"?}   job status (DynamoDB + EventBridge)
    {"task": "plan", "job_id", "pipeline", "params"}                       -> plan_uri, shards_bucket/key, shard_count, bytes
                                                                           (shards.json: [{shard, timeout_seconds}])
    {"task": "run_shard", "job_id", "pipeline", "params", "plan_uri", "shard"}  a small job's shard, in the Lambda
    {"task": "finish", "job_id", "pipeline", "params", "plan_uri"}         -> end markers, summed counts
    {"task": "abort", "job_id", "pipeline", "params", "plan_uri"}          after a failure: fences the job's open transactions
    {"task": "trigger", "pipeline", "params", "trigger"}                   an S3 drop or a schedule: create the job, start it
    an API Gateway HTTP API event ("requestContext")                       POST /imports, GET /jobs/{id}, GET /jobs

Each returns a small JSON object: the state machine's payloads stay far below 256 KB whatever
the job's size (file lists live in the plan in S3). Errors propagate as exceptions, so their class
name (ConfigError, RunError, TransientRunError) is what the state machine's Retry and Catch match.
The plan and run_shard tasks also record the job's live progress (pipelines/aws/progress.py).
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipelines.aws.pipeline_configs import config_path, params_of
from pipelines.engine.errors import ConfigError

SHARD_BYTES_ENV = "PIPELINES_SHARD_BYTES"


def load(event: dict[str, Any]) -> Any:
    """The job an event names: its pipeline's config rendered with its params."""
    from pipelines.engine.config import load_job

    return load_job(config_path(event.get("pipeline")), params_of(event))


def require(event: dict[str, Any], *keys: str) -> list[Any]:
    missing = [k for k in keys if event.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"the {event.get('task')!r} task needs {', '.join(missing)}")
    return [event[k] for k in keys]


def shard_bytes() -> int:
    """The plan's shard size: $PIPELINES_SHARD_BYTES (tests set it small to get several shards), else the default."""
    from pipelines.engine.plan import DEFAULT_SHARD_BYTES

    raw = os.environ.get(SHARD_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_SHARD_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{SHARD_BYTES_ENV} must be a whole number of bytes >= 1, got {raw!r}")
    return int(raw)


def plan_task(event: dict[str, Any]) -> dict[str, Any]:
    """Writes the plan (or finds the one a retried Plan step already wrote) and the Map's item list."""
    from pipelines.aws.progress import record_plan
    from pipelines.engine import storage
    from pipelines.engine.config import WORK_DIR_ENV
    from pipelines.engine.plan import shard_task_timeout
    from pipelines.engine.run import default_plan_uri, read_plan, write_plan

    (job_id,) = require(event, "job_id")
    job = load(event)
    plan_uri = default_plan_uri(job, job_id)
    if not plan_uri.startswith("s3://"):
        raise ConfigError(
            f"the workflow needs its work dir on S3 (the Map reads the shard list there), not {job.exec.work_dir!r}: "
            f"set {WORK_DIR_ENV} in the deployment (Terraform does) or exec.work_dir in the config"
        )
    plan = read_plan(plan_uri) if storage.read_text(plan_uri) is not None else write_plan(job, job_id, plan_uri, shard_bytes())
    shards_uri = storage.join(storage.parent(plan_uri), "shards.json")
    items = [{"shard": s.index, "timeout_seconds": shard_task_timeout(s)} for s in plan.shards]
    storage.write_text(shards_uri, json.dumps(items))
    record_plan(job_id, len(plan.shards), plan.estimated_bytes)
    bucket, _, key = shards_uri.removeprefix("s3://").partition("/")
    return {
        "plan_uri": plan_uri,
        "shards_bucket": bucket,
        "shards_key": key,
        "shard_count": len(plan.shards),
        "bytes": plan.estimated_bytes,
    }


def run_shard_task(event: dict[str, Any]) -> dict[str, Any]:
    """A small job's shard, in the Lambda; its counts go to the job's progress (once, also when a
    retry finds it committed) and, as it ends, to the shard's metrics line."""
    from pipelines.aws.progress import record_shard
    from pipelines.engine.progress import RunStats
    from pipelines.engine.run import done_report, make_error_sink, read_plan, run_shard
    from pipelines.observe.job_events import shard_ended

    plan_uri, shard = require(event, "plan_uri", "shard")
    job = load(event)
    plan = read_plan(plan_uri)
    report = done_report(job, plan, plan_uri, int(shard))
    skipped = report is not None
    if report is None:
        stats = RunStats()
        try:
            report = run_shard(job, plan, plan_uri, int(shard), stats, make_error_sink(job, plan.job_id, int(shard)))
        except Exception:
            shard_ended(job, plan.job_id, int(shard), "failed", stats)
            raise
        shard_ended(job, plan.job_id, int(shard), "succeeded", report)
    if event.get("job_id") == report.job_id:
        record_shard(report)
    return {"shard": report.shard, "rows_written": report.rows_written, "rows_skipped": report.rows_skipped, "skipped": skipped}


def finish_task(event: dict[str, Any]) -> dict[str, Any]:
    from pipelines.engine.run import finish_job, read_plan

    (plan_uri,) = require(event, "plan_uri")
    job = load(event)
    summary = finish_job(job, read_plan(plan_uri), plan_uri)
    return {
        "rows_read": summary.rows_read,
        "rows_written": summary.rows_written,
        "rows_skipped": summary.rows_skipped,
        "bytes_read": summary.bytes_read,
        "end_markers": summary.end_markers,
        "manifest": summary.manifest,
    }


def abort_task(event: dict[str, Any]) -> dict[str, Any]:
    """The failure path's AbortJob: what the job's shards may hold open is let go (see shards.abort_job)."""
    from pipelines.engine import storage
    from pipelines.engine.run import abort_job

    (plan_uri,) = require(event, "plan_uri")
    if storage.read_text(plan_uri) is None:
        return {"aborted": False, "reason": "no plan"}
    return {"aborted": True, **abort_job(load(event), plan_uri)}


def status_task(event: dict[str, Any]) -> dict[str, Any]:
    """A job's status change; RUNNING starts its lineage run, SUCCEEDED and FAILED end it and write its
    metrics line (once: a repeated transition is refused before anything is emitted)."""
    from pipelines.aws.jobs import JobStore
    from pipelines.aws.job_observation import observe_transition

    job_id, status = require(event, "job_id", "status")
    job = JobStore.from_env().transition(job_id, status, counts=event.get("counts"), error=event.get("error"))
    observe_transition(job, event.get("counts"))
    return {"job_id": job_id, "status": job.status}


def trigger_task(event: dict[str, Any]) -> dict[str, Any]:
    from pipelines.aws.triggers import trigger_task as start_triggered_job

    return start_triggered_job(event)


TASKS = {
    "status": status_task,
    "plan": plan_task,
    "run_shard": run_shard_task,
    "finish": finish_task,
    "abort": abort_task,
    "trigger": trigger_task,
}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda function's entry point (pipelines.aws.handler.handler)."""
    if isinstance(event, dict) and "requestContext" in event:
        from pipelines.aws.api import lambda_api

        return lambda_api(event)
    task = event.get("task") if isinstance(event, dict) else None
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return TASKS[task](event)
