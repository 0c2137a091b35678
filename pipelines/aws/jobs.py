"""Job status: one DynamoDB item per job, every change also published to EventBridge.

A job goes QUEUED -> RUNNING -> SUCCEEDED | FAILED (or QUEUED -> FAILED when it fails before
running). Each transition is one conditional ``update_item`` on the job's current status, so
DynamoDB itself rejects a duplicate (RUNNING -> RUNNING, say, from a second trigger of the same
job) or out-of-order one (QUEUED -> SUCCEEDED, anything out of SUCCEEDED or FAILED); there is no
read-then-write race. A rejected transition raises :class:`TransitionRejected` and changes
nothing; an applied one is then published as an event
(``DetailType: "Audience Pipeline Job Status Change"``) so the platform can react without polling.

The item: ``job_id`` (hash key), ``pipeline``, ``params`` (a JSON string), ``status``,
``created_at``, ``updated_at``, ``<status>_at`` for each status reached, the counts
(``rows_read``, ``rows_written``, ``rows_skipped``, ``end_markers``) and ``error``
(``{"Error", "Cause"}``, as a Step Functions Catch hands it over). Timestamps are ISO 8601 UTC
with microseconds, so they sort as strings. While the workflow runs the job, the Plan step and
each committed shard add its live progress to the same item (``shards_total``, ``shards_done``,
``committed_*``: see pipelines/aws/progress.py); transitions leave those attributes alone.

boto3 is imported inside functions: the CLI imports this module lazily and stays fast without it.
"""

from __future__ import annotations

import builtins
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pipelines.aws.progress import JobProgress
from pipelines.engine.errors import ConfigError, RunError, TransientRunError, aws_error_code

QUEUED, RUNNING, SUCCEEDED, FAILED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
# target status -> the statuses it may be reached from
ALLOWED_FROM: dict[str, tuple[str, ...]] = {RUNNING: (QUEUED,), SUCCEEDED: (RUNNING,), FAILED: (QUEUED, RUNNING)}
COUNT_FIELDS = ("rows_read", "rows_written", "rows_skipped", "end_markers")
DETAIL_TYPE = "Audience Pipeline Job Status Change"
MAX_ERROR_NAME = 256
MAX_CAUSE = 4096  # Step Functions causes (an ECS task description, a stack trace) can be ~32 KB


class JobExists(RunError):
    """A job with this id was created before: a duplicate trigger. ``job`` is the stored one."""

    def __init__(self, job: JobRecord) -> None:
        self.job = job
        super().__init__(f"job {job.job_id} exists already (pipeline {job.pipeline}, {job.status}, created {job.created_at})")


class TransitionRejected(RunError):
    """A transition DynamoDB refused: the job is missing or not in a status it may leave for ``to_status``.

    ``from_status`` is the status read after the refusal (None: no such job); it is for the
    message, the refusal itself was decided by the conditional write.
    """

    def __init__(self, job_id: str, from_status: str | None, to_status: str) -> None:
        self.job_id, self.from_status, self.to_status = job_id, from_status, to_status
        allowed = " or ".join(ALLOWED_FROM.get(to_status, ())) or "no status"
        if from_status is None:
            message = f"job {job_id} does not exist: cannot mark it {to_status}"
        elif from_status == to_status:
            message = f"job {job_id} is already {to_status}: duplicate transition rejected"
        else:
            message = f"job {job_id} is {from_status}: cannot go to {to_status} (only from {allowed}); rejected"
        super().__init__(message)


class _Refused(Exception):
    """A conditional write DynamoDB refused; ``job`` is the item as it was (None: there was none)."""

    def __init__(self, job: JobRecord | None) -> None:
        super().__init__(job.job_id if job else "no job")
        self.job = job


@dataclass(frozen=True)
class JobRecord:
    """One job's item in the jobs table: its status and what it did (not the config's Job, which is
    what a run does)."""

    job_id: str
    pipeline: str
    status: str
    params: dict[str, Any]
    created_at: str
    updated_at: str
    rows_read: int | None = None
    rows_written: int | None = None
    rows_skipped: int | None = None
    end_markers: int | None = None
    error: dict[str, str] | None = None
    queued_at: str | None = None
    running_at: str | None = None
    succeeded_at: str | None = None
    failed_at: str | None = None
    progress: JobProgress | None = None  # what its committed shards added so far (pipelines/aws/progress.py)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> JobRecord:
        """A job from a low-level DynamoDB item (``{"status": {"S": ...}, ...}``)."""
        from boto3.dynamodb.types import TypeDeserializer

        plain = {key: TypeDeserializer().deserialize(value) for key, value in item.items()}
        counts = {key: int(plain[key]) for key in COUNT_FIELDS if plain.get(key) is not None}
        times = {f"{s.lower()}_at": plain.get(f"{s.lower()}_at") for s in STATUSES}
        return cls(
            job_id=plain["job_id"],
            pipeline=plain["pipeline"],
            status=plain["status"],
            params=json.loads(plain.get("params") or "{}"),
            created_at=plain["created_at"],
            updated_at=plain["updated_at"],
            error=plain.get("error"),
            progress=JobProgress.from_plain(plain),
            **counts,
            **times,
        )

    def to_api(self, now: datetime | None = None) -> dict[str, Any]:
        """What ``GET /jobs/{id}`` answers: the final counts once it succeeded, and its progress (the
        committed shards' counts, rows/s and, while it runs, the seconds left) once planned."""
        progress = None
        if self.progress is not None:
            progress = self.progress.to_api(self.status == RUNNING, self.succeeded_at or self.failed_at, now)
        return {
            "job_id": self.job_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "rows_written": self.rows_written,
            "rows_read": self.rows_read,
            "rows_skipped": self.rows_skipped,
            "error": self.error,
            "progress": progress,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class JobStore:
    """The jobs table and the bus its status events go to. Clients are created on first use."""

    table: str
    event_bus: str = "default"
    source: str = "audience-pipelines"

    @classmethod
    def from_env(cls) -> JobStore:
        table = os.environ.get("PIPELINES_JOBS_TABLE", "").strip()
        if not table:
            raise ConfigError("PIPELINES_JOBS_TABLE is not set: it names the DynamoDB table holding the job statuses")
        return cls(table, event_bus=os.environ.get("PIPELINES_EVENT_BUS", "").strip() or "default")

    @cached_property
    def dynamodb(self) -> Any:
        return _client("dynamodb")

    @cached_property
    def events(self) -> Any:
        return _client("events")

    # ------------------------------------------------------------------ writes

    def create(self, job_id: str, pipeline: str, params: dict[str, Any]) -> JobRecord:
        """Stores a new QUEUED job; :class:`JobExists` if the id is taken (a duplicate trigger)."""
        if not job_id or not pipeline:
            raise ValueError("a job needs a job_id and a pipeline")
        now = _now()
        values = {
            "job_id": job_id,
            "pipeline": pipeline,
            "params": json.dumps(params, sort_keys=True, separators=(",", ":")),
            "status": QUEUED,
            "created_at": now,
            "updated_at": now,
            "queued_at": now,
        }
        try:
            self._write_if(
                "put_item", job_id, f"cannot create job {job_id}", Item=_serialize(values), ConditionExpression="attribute_not_exists(job_id)"
            )
        except _Refused as refused:
            if refused.job is None:  # deleted right after the refusal
                raise RunError(f"cannot create job {job_id}: it existed a moment ago and is gone now") from refused.__cause__
            raise JobExists(refused.job) from None
        job = JobRecord.from_item(_serialize(values))
        self._publish(job, previous_status=None)
        return job

    def transition(
        self,
        job_id: str,
        to_status: str,
        *,
        counts: dict[str, Any] | None = None,
        error: dict[str, Any] | str | None = None,
    ) -> JobRecord:
        """Moves the job to ``to_status`` if DynamoDB finds it in a status allowed to go there.

        ``counts``: the keys in :data:`COUNT_FIELDS` are stored (others are ignored, so a whole
        run summary can be passed); ``error``: a Step Functions ``{"Error", "Cause"}`` or a
        message, only with FAILED. Raises :class:`TransitionRejected` when the job is missing
        or the transition is a duplicate or out of order; nothing is written then.
        """
        sources = _sources(to_status, error)
        if not sources:  # nothing goes to QUEUED: there is no condition to write
            current = self.get(job_id)
            raise TransitionRejected(job_id, current.status if current else None, to_status)
        updates = _updates(to_status, counts, error)
        try:
            response = self._write_if(
                "update_item", job_id, f"cannot mark job {job_id} {to_status}", **_update_arguments(job_id, updates, sources)
            )
        except _Refused as refused:
            raise TransitionRejected(job_id, refused.job.status if refused.job else None, to_status) from None
        old = response["Attributes"]
        job = JobRecord.from_item({**old, **_serialize(updates)})
        self._publish(job, previous_status=JobRecord.from_item(old).status)
        return job

    def _write_if(self, operation: str, job_id: str, what: str, **arguments: Any) -> dict[str, Any]:
        """A conditional write of the job's item (``put_item``, ``update_item``) and its response.

        Raises :class:`_Refused` with the item as it was when the condition failed (DynamoDB
        returns it with the refusal), and any other failure as :meth:`_error` describes it (``what``).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.dynamodb, operation)(TableName=self.table, ReturnValuesOnConditionCheckFailure="ALL_OLD", **arguments)
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise self._error(exc, what) from exc
            raise _Refused(self._refused_by(exc, job_id)) from exc
        except BotoCoreError as exc:
            raise self._error(exc, what) from exc

    # ------------------------------------------------------------------- reads

    def _refused_by(self, exc: Any, job_id: str) -> JobRecord | None:
        """The job as it was when a conditional write was refused (DynamoDB returns it with the refusal)."""
        existing = exc.response.get("Item")
        return JobRecord.from_item(existing) if existing else self.get(job_id)

    def get(self, job_id: str) -> JobRecord | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            item = self.dynamodb.get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, f"cannot read job {job_id}") from exc
        return JobRecord.from_item(item) if item else None

    def list(self, limit: int = 50, status: str | None = None) -> builtins.list[JobRecord]:
        """The newest ``limit`` jobs (by ``created_at``), only those in ``status`` if given. Scans the table."""
        from botocore.exceptions import BotoCoreError, ClientError

        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
        arguments: dict[str, Any] = {"TableName": self.table}
        if status is not None:
            arguments.update(
                FilterExpression="#status = :status",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":status": {"S": status}},
            )
        try:
            pages = self.dynamodb.get_paginator("scan").paginate(**arguments)
            jobs = [JobRecord.from_item(item) for page in pages for item in page.get("Items", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, "cannot list jobs") from exc
        jobs.sort(key=lambda job: (job.created_at, job.job_id), reverse=True)
        return jobs[: max(limit, 0)]

    # ----------------------------------------------------------------- helpers

    def _publish(self, job: JobRecord, previous_status: str | None) -> None:
        """One status-change event; a failure is a RunError saying the status itself was written."""
        from botocore.exceptions import BotoCoreError, ClientError

        detail: dict[str, Any] = {"job_id": job.job_id, "pipeline": job.pipeline, "status": job.status, "previous_status": previous_status}
        if job.rows_written is not None:
            detail["rows_written"] = job.rows_written
        if job.error is not None:
            detail["error"] = job.error
        entry = {"Source": self.source, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail), "EventBusName": self.event_bus}
        try:
            response = self.events.put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as exc:
            reason = f"{aws_error_code(exc)}: {exc}" if isinstance(exc, ClientError) else str(exc)
        else:
            if not response.get("FailedEntryCount"):
                return
            failed = response["Entries"][0]
            reason = f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
        raise RunError(
            f"job {job.job_id} is {job.status} in table {self.table}, but its status event was not published "
            f"to EventBridge bus {self.event_bus} ({reason})"
        )

    def _error(self, exc: Exception, what: str) -> RunError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            if aws_error_code(exc) == "ResourceNotFoundException":
                return RunError(f"{what}: the jobs table {self.table} does not exist")
            return RunError(f"{what}: DynamoDB error {aws_error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}")
        return TransientRunError(f"{what}: cannot reach DynamoDB: {exc}")


def create_table(client: Any, name: str) -> None:
    """Creates the jobs table (on demand, hash key ``job_id``) unless it exists; waits until it is active."""
    from botocore.exceptions import ClientError

    try:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if aws_error_code(exc) != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def _client(service: str) -> Any:
    """A client from its own session (thread-safe to create); boto3 honours AWS_ENDPOINT_URL itself."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(service, config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _serialize(values: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {key: serializer.serialize(value) for key, value in values.items()}


def _sources(to_status: str, error: object) -> tuple[str, ...]:
    """The statuses a job may reach ``to_status`` from; a ValueError for an unknown status, or an
    error given with another status than FAILED."""
    if to_status not in STATUSES:
        raise ValueError(f"unknown status {to_status!r}: expected one of {', '.join(STATUSES)}")
    if error is not None and to_status != FAILED:
        raise ValueError(f"an error goes with FAILED, not {to_status}")
    return ALLOWED_FROM.get(to_status, ())


def _updates(to_status: str, counts: dict[str, Any] | None, error: dict[str, Any] | str | None) -> dict[str, Any]:
    """The attributes a transition to ``to_status`` sets: the status, its times, the counts, the error."""
    now = _now()
    updates: dict[str, Any] = {"status": to_status, "updated_at": now, f"{to_status.lower()}_at": now}
    updates.update(_counts(counts or {}))
    if error is not None:
        updates["error"] = _error_value(error)
    return updates


def _update_arguments(job_id: str, updates: dict[str, Any], sources: tuple[str, ...]) -> dict[str, Any]:
    """update_item's arguments: SET ``updates``, if the job exists in one of the ``sources`` statuses;
    the old item returned (for the event's previous status)."""
    names = {f"#u{i}": key for i, key in enumerate(updates)}
    values = {f":u{i}": value for i, value in enumerate(updates.values())}
    values.update({f":from{i}": status for i, status in enumerate(sources)})
    names["#status"] = "status"
    return {
        "Key": {"job_id": {"S": job_id}},
        "UpdateExpression": "SET " + ", ".join(f"#u{i} = :u{i}" for i in range(len(updates))),
        "ConditionExpression": "attribute_exists(job_id) AND #status IN (" + ", ".join(f":from{i}" for i in range(len(sources))) + ")",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": _serialize(values),
        "ReturnValues": "ALL_OLD",
    }


def _counts(counts: dict[str, Any]) -> dict[str, int]:
    stored = {}
    for key in COUNT_FIELDS:
        value = counts.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"count {key} must be a whole number >= 0, not {value!r}")
        stored[key] = value
    return stored


def _error_value(error: dict[str, Any] | str) -> dict[str, str]:
    """``{"Error", "Cause"}`` with the cause truncated; a plain message becomes the cause of a ``JobFailed``."""
    if isinstance(error, str):
        error = {"Error": "JobFailed", "Cause": error}
    name = str(error.get("Error") or "JobFailed")[:MAX_ERROR_NAME]
    cause = str(error.get("Cause") or "")
    if len(cause) > MAX_CAUSE:
        cause = f"{cause[:MAX_CAUSE]}... [{len(cause) - MAX_CAUSE} more characters]"
    return {"Error": name, "Cause": cause}
