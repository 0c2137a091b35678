"""The two event triggers (S3 drop, schedule): their files under workflow/, their job ids, and the
Lambda task that turns a trigger into a job and an execution.

The files (read by Terraform's ``templatefile`` and by the tests, through :func:`render_trigger`):

    workflow/s3_drop_rule.json     the EventBridge rule's event pattern: S3 "Object Created" in
                                   ${bucket}, key matching ${prefix}*${suffix} (a wildcard filter:
                                   EventBridge ORs the filters listed for one field, so a prefix
                                   filter and a suffix filter side by side would match either)
    workflow/s3_drop_input.json    the rule target's InputTransformer (InputPathsMap, InputTemplate)
    workflow/schedule_input.json   the Scheduler schedule's target Input

How a trigger becomes an import (the design chosen; see also the report of issue 4):

    EventBridge rule / Scheduler schedule
      -> the Lambda (pipelines.aws.handler.handler), event {"task": "trigger", "pipeline", "params", "trigger"}
      -> trigger_task: job id = derived from the trigger (s3_drop_job_id / schedule_job_id)
                       JobStore.create (QUEUED)   -- a duplicate delivery finds the job: JobExists
                       StartExecution named after the job id, input {"job_id", "pipeline", "params"}
      -> the state machine, exactly as for an API import (MarkRunning needs the QUEUED job)

An EventBridge input transformer cannot hash, so the job id cannot be in the execution input the
rule sends; and the state machine's first state could hash (States.Hash) but would still need the
job created before MarkRunning, and a retried create could not tell its own earlier attempt from
a duplicate. Going through the Lambda keeps one path for every trigger: the job is created, then
the execution started under the job's id. Duplicates are refused twice over: by the conditional
create in DynamoDB, and by Step Functions, which refuses a second execution of the same name
(for 90 days after the first closed). A delivery that finds its job still QUEUED (an earlier
attempt created it and died before starting the execution, or the start failed transiently)
starts it again: StartExecution with the same name and input is idempotent while the execution
runs, and ExecutionAlreadyExists once it closed, which means it was started: nothing to do.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pipelines.aws.executions import execution_input
from pipelines.aws.pipeline_configs import config_path, params_of
from pipelines.aws.templatefile import fill, placeholders_in  # noqa: F401 - placeholders_in is read here (tests)
from pipelines.engine.errors import ConfigError, RunError, TransientRunError, aws_error_code

# The placeholders each trigger file holds (Terraform passes exactly these to templatefile).
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "s3_drop_rule": ("bucket", "prefix", "suffix"),
    "s3_drop_input": ("pipeline",),
    "schedule_input": ("export_pipeline", "export_bucket"),
}

HASH_CHARS = 32  # hex digits of SHA-256 kept in a derived job id: 128 bits, collisions out of reach


def workflow_dir() -> Path:
    """workflow/ at the repository root (beside statemachine.json)."""
    return Path(__file__).resolve().parents[2] / "workflow"


def trigger_path(name: str) -> Path:
    if name not in PLACEHOLDERS:
        raise ValueError(f"unknown trigger file {name!r}: expected one of {', '.join(PLACEHOLDERS)}")
    return workflow_dir() / f"{name}.json"


def render_trigger(name: str, values: dict[str, str]) -> dict[str, Any]:
    """workflow/<name>.json with each `${key}` replaced by values[key] (as templatefile does), parsed.

    Strict like pipelines.aws.workflow.render_definition: every placeholder needs a value and every
    value a placeholder. The placeholders sit inside JSON strings and are replaced as they are,
    so a value may not hold a double quote, a backslash or a control character (they would break
    the JSON here and in Terraform alike).
    """
    path = trigger_path(name)

    def json_safe(key: str, value: str) -> None:
        if re.search(r'["\\\x00-\x1f]', value):
            raise ValueError(f"{path.name}: the value of {key} may not hold a double quote, a backslash or a control character: {value!r}")

    return json.loads(fill(path.read_text(encoding="utf-8"), values, path.name, json_safe))


# ----------------------------------------------------------------------------- job ids


def _digest(*parts: str) -> str:
    # Length-prefixed parts: no choice of separator could be spoofed by a key holding it.
    data = "".join(f"{len(p)}:{p}" for p in parts).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def s3_drop_job_id(bucket: str, key: str, etag_or_version: str, pipeline: str = "") -> str:
    """The job id of an S3 drop: ``s3-`` and 32 hex digits of SHA-256 over (pipeline, bucket, key,
    version or ETag). Stable, so the same event delivered twice names the same job; different for
    another key, another version or content, or another pipeline fed by the same object (two rules
    on one bucket must not swallow each other's imports). 35 characters, a valid execution name.

    ETag quotes (``"abc"`` from HeadObject, ``abc`` in events) are ignored, so either form gives
    the same id.
    """
    for what, value in (("bucket", bucket), ("key", key), ("etag or version", etag_or_version)):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"an S3 drop needs a bucket, a key and an ETag or version id; the {what} is {value!r}")
    return f"s3-{_digest('s3', pipeline or '', bucket, key, etag_or_version.strip(chr(34)))}"


def schedule_job_id(schedule_name: str, scheduled_time: str) -> str:
    """The job id of a scheduled run: ``sched-<name>-<YYYYMMDDTHHMMSSZ>``, readable and stable per
    scheduled time (a Scheduler retry or duplicate invocation names the same job). A name with
    other characters than [A-Za-z0-9_-], or too long for the 80-character limit, is cleaned,
    shortened and suffixed with a hash of the original, so ids stay distinct."""
    if not schedule_name or not scheduled_time:
        raise ConfigError(f"a scheduled run needs the schedule name and scheduled time, got {schedule_name!r}, {scheduled_time!r}")
    stamp = re.sub(r"[^0-9TZ]", "", scheduled_time)  # 2026-11-22T03:00:00Z -> 20261122T030000Z
    name = re.sub(r"[^A-Za-z0-9_-]", "-", schedule_name)
    job_id = f"sched-{name}-{stamp}"
    if name != schedule_name or stamp != scheduled_time.replace("-", "").replace(":", "") or len(job_id) > 80:
        suffix = _digest("schedule", schedule_name, scheduled_time)[:12]
        room = 80 - len("sched-") - len(stamp[:20]) - len(suffix) - 2
        job_id = f"sched-{name[:room]}-{stamp[:20]}-{suffix}"
    return job_id


def schedule_name(schedule_arn: str) -> str:
    """``arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/NAME`` -> NAME, or GROUP-NAME outside the default group."""
    resource = schedule_arn.partition(":schedule/")[2]
    group, _, name = resource.partition("/")
    if not group or not name:
        raise ConfigError(f"not a Scheduler schedule ARN: {schedule_arn!r}")
    return name if group == "default" else f"{group}-{name}"


def trigger_job_id(pipeline: str, trigger: dict[str, Any]) -> str:
    """The job id for the ``trigger`` object of a trigger event (see workflow/*_input.json)."""
    kind = trigger.get("type") if isinstance(trigger, dict) else None
    if kind == "s3":
        obj = trigger.get("object") if isinstance(trigger.get("object"), dict) else {}
        # Unversioned buckets send "version-id": "null" (moto does; guard against it on AWS too), and
        # moto spells the ETag field "eTag": fall back to the ETag so new content under the same key imports.
        version = obj.get("version-id")
        if version in (None, "", "null"):
            version = obj.get("etag") or obj.get("eTag") or ""
        return s3_drop_job_id(str(trigger.get("bucket") or ""), str(obj.get("key") or ""), str(version), pipeline)
    if kind == "schedule":
        return schedule_job_id(schedule_name(str(trigger.get("schedule_arn") or "")), str(trigger.get("scheduled_time") or ""))
    raise ConfigError(f"unknown trigger {trigger!r}: expected an object with \"type\": \"s3\" or \"schedule\"")


# ----------------------------------------------------------------------------- the Lambda task

# StartExecution errors worth another delivery of the event (the job stays QUEUED for it).
TRANSIENT_CODES = {"ThrottlingException", "ServiceUnavailable", "InternalFailure", "InternalServerError", "RequestTimeout", "TooManyRequestsException"}


def trigger_task(event: dict[str, Any], *, store: Any = None, start_execution: Any = None) -> dict[str, Any]:
    """``{"task": "trigger", "pipeline", "params", "trigger"}`` (what the S3 rule and the schedule
    send the Lambda): create the job under the derived id and start its execution.

    Returns ``{"job_id", "status", "duplicate"}``. A job that exists and is past QUEUED is a
    duplicate delivery: nothing is done. A QUEUED one is started (again): see the module doc.
    A transient start failure raises TransientRunError with the job left QUEUED, so the event's
    redelivery (Lambda async retries, EventBridge retry policy) starts it; any other start
    failure marks the job FAILED with the cause and raises RunError.
    """
    from pipelines.aws.jobs import FAILED, QUEUED, JobExists, JobStore

    pipeline = event.get("pipeline")
    config_path(pipeline)  # a known pipeline, or a ConfigError naming the known ones
    params = params_of(event)
    job_id = trigger_job_id(pipeline, event.get("trigger") or {})
    store = store or JobStore.from_env()
    if start_execution is None:
        from pipelines.aws.executions import step_functions_starter

        start_execution = step_functions_starter()
    try:
        store.create(job_id, pipeline, params)
    except JobExists as exc:
        if exc.job.status != QUEUED:
            return {"job_id": job_id, "status": exc.job.status, "duplicate": True}
        params = exc.job.params  # the input of the first attempt, so a running execution is matched
    outcome = start_or_classify(start_execution, job_id, execution_input(job_id, pipeline, params))
    if outcome == "started":
        return {"job_id": job_id, "status": QUEUED, "duplicate": False}
    if outcome == "exists":
        return {"job_id": job_id, "status": QUEUED, "duplicate": True}
    kind, message = outcome
    if kind == "transient":
        raise TransientRunError(f"job {job_id}: cannot start its execution yet (the job stays QUEUED for a retry): {message}")
    try:
        store.transition(job_id, FAILED, error={"Error": "StartExecutionFailed", "Cause": message})
    except RunError as exc:
        message = f"{message}; and the job could not be marked FAILED: {exc}"
    raise RunError(f"job {job_id}: cannot start its execution: {message}")


def start_or_classify(start_execution: Any, job_id: str, execution_input: dict[str, Any]) -> Any:
    """Calls start_execution: "started", "exists" (an execution of that name exists: Step Functions
    refused a duplicate), or ("transient" | "failed", message)."""
    try:
        start_execution(job_id, execution_input)
    except Exception as exc:  # noqa: BLE001 - any failure to start is classified and reported
        code = aws_error_code(exc)
        if code == "ExecutionAlreadyExists":
            return "exists"
        transient = code in TRANSIENT_CODES or _is_connection_error(exc) or isinstance(exc, TransientRunError)
        return ("transient" if transient else "failed", f"{code + ': ' if code else ''}{exc}")
    return "started"


def _is_connection_error(exc: Exception) -> bool:
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    return isinstance(exc, BotoCoreError)
