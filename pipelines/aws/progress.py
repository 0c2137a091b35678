"""A job's live progress, kept in its item of the jobs table while the workflow runs it.

The Plan step records how many shards there are (``shards_total``, with ``bytes_total`` and
``planned_at``). Then each shard, as it commits, adds its counts with one conditional UpdateItem::

    ADD  shards_done :one, shards_committed :{shard}, committed_rows_read :r, committed_rows_written :w,
         committed_rows_skipped :s, committed_bytes_read :b
    SET  last_commit_at = :now
    IF   attribute_exists(job_id) AND NOT contains(shards_committed, :shard)

``shards_committed`` is the number set of the shards already counted, so DynamoDB itself refuses a
second addition for the same shard, atomically: a retried task that finds its shard committed, a
Lambda retry, or a rerun with ``--force`` records again and changes nothing. Shards of one job
committing at once each add theirs (``ADD`` is atomic).

Recording is best effort: a failure (DynamoDB unreachable, no permission, no such job) logs one
warning line on stderr and never fails the shard or the job; a shard counted before logs that
(``job_progress_counted_already``). The job's final counts are still
the summed shard reports that MarkSucceeded stores; these are for watching it run.

boto3 is imported inside functions: the CLI imports this module lazily and stays fast.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

TABLE_ENV = "PIPELINES_JOBS_TABLE"
COMMITTED = {  # item attribute -> the shard report's field it adds up
    "committed_rows_read": "rows_read",
    "committed_rows_written": "rows_written",
    "committed_rows_skipped": "rows_skipped",
    "committed_bytes_read": "bytes_read",
}
ADDED, COUNTED_ALREADY, NO_JOB, NOT_RECORDED = "added", "counted already", "no such job", "not recorded"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class CommittedShard(Protocol):
    """What a shard's counts are read from: pipelines.engine.run.ShardReport."""

    job_id: str
    shard: int
    rows_read: int
    rows_written: int
    rows_skipped: int
    bytes_read: int


@dataclass(frozen=True)
class JobProgress:
    """The progress attributes of a job's item (None when nothing was recorded yet)."""

    shards_total: int | None = None
    shards_done: int = 0
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    bytes_read: int = 0
    bytes_total: int | None = None
    planned_at: str | None = None
    last_commit_at: str | None = None

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> JobProgress | None:
        """From a job's deserialized item; None before the plan and any shard recorded anything."""
        if plain.get("shards_total") is None and plain.get("shards_done") is None:
            return None
        number = {key: int(plain[key]) for key in ("shards_total", "bytes_total") if plain.get(key) is not None}
        counts = {field: int(plain.get(attribute) or 0) for attribute, field in COMMITTED.items()}
        return cls(
            shards_done=int(plain.get("shards_done") or 0),
            planned_at=plain.get("planned_at"),
            last_commit_at=plain.get("last_commit_at"),
            **number,
            **counts,
        )

    def to_api(self, running: bool, ended_at: str | None, now: datetime | None = None) -> dict[str, Any]:
        """The counts, with the seconds since the plan (until the end, for an ended job), rows written
        per second, and while it runs, the seconds left estimated from the shards done so far."""
        elapsed = _seconds_between(self.planned_at, ended_at, now)
        rate = round(self.rows_written / elapsed, 1) if elapsed else None
        eta = None
        if running and elapsed is not None and self.shards_total and self.shards_done:
            left = max(self.shards_total - self.shards_done, 0)
            eta = round(elapsed * left / self.shards_done, 1)
        return {
            "shards_done": self.shards_done,
            "shards_total": self.shards_total,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_skipped": self.rows_skipped,
            "bytes_read": self.bytes_read,
            "bytes_total": self.bytes_total,
            "elapsed_seconds": None if elapsed is None else round(elapsed, 1),
            "rows_per_second": rate,
            "eta_seconds": eta,
        }


def _seconds_between(start: str | None, end: str | None, now: datetime | None) -> float | None:
    if start is None:
        return None
    began = datetime.strptime(start, TIME_FORMAT).replace(tzinfo=UTC)
    until = datetime.strptime(end, TIME_FORMAT).replace(tzinfo=UTC) if end else (now or datetime.now(UTC))
    return max((until - began).total_seconds(), 0.0)


# ------------------------------------------------------------------------------ recording


def plan_update(job_id: str, shard_count: int, bytes_total: int, now: str) -> dict[str, Any]:
    """update_item's arguments recording the plan: the shard count and bytes (a retried Plan step
    sets the same values again; ``planned_at`` keeps the first)."""
    return {
        "Key": {"job_id": {"S": job_id}},
        "UpdateExpression": "SET shards_total = :total, bytes_total = :bytes, planned_at = if_not_exists(planned_at, :now)",
        "ConditionExpression": "attribute_exists(job_id)",
        "ExpressionAttributeValues": {":total": {"N": str(shard_count)}, ":bytes": {"N": str(bytes_total)}, ":now": {"S": now}},
    }


def shard_update(report: CommittedShard, now: str) -> dict[str, Any]:
    """update_item's arguments adding one committed shard's counts, unless that shard was counted."""
    names = {"#done": "shards_done", "#set": "shards_committed", "#at": "last_commit_at"}
    values = {":one": {"N": "1"}, ":shards": {"NS": [str(report.shard)]}, ":shard": {"N": str(report.shard)}, ":now": {"S": now}}
    additions = ["#done :one", "#set :shards"]
    for i, (attribute, field) in enumerate(COMMITTED.items()):
        names[f"#c{i}"], values[f":c{i}"] = attribute, {"N": str(int(getattr(report, field)))}
        additions.append(f"#c{i} :c{i}")
    return {
        "Key": {"job_id": {"S": report.job_id}},
        "UpdateExpression": f"ADD {', '.join(additions)} SET #at = :now",
        "ConditionExpression": "attribute_exists(job_id) AND NOT contains(#set, :shard)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def record_plan(job_id: str, shard_count: int, bytes_total: int, *, table: str | None = None, client: Any = None) -> str:
    """Best effort: the job's shard count, once planned. Returns what happened (ADDED: recorded)."""
    where = {"job_id": job_id}
    return _update(table, client, plan_update(job_id, shard_count, bytes_total, _now()), where)


JOB_ID_ENV = "PIPELINES_JOB_ID"  # set by the state machine on each shard task: the job it belongs to


def record_committed(report: CommittedShard) -> None:
    """A committed shard's counts, added to its job's live progress when the workflow runs it (the
    state machine sets $PIPELINES_JOB_ID on each shard task): once per shard, best effort, never
    failing the shard. Elsewhere (a `pipelines run` in a shell), nothing. The `run` command hooks it
    into the engine (pipelines.engine.run.shard_commit_hooks)."""
    if os.environ.get(JOB_ID_ENV) == report.job_id:
        record_shard(report)


def record_shard(report: CommittedShard, *, table: str | None = None, client: Any = None) -> str:
    """Best effort: adds a committed shard's counts to its job, once per shard. Returns ADDED,
    COUNTED_ALREADY, NO_JOB or NOT_RECORDED (a warning on stderr says why)."""
    where = {"job_id": report.job_id, "shard": report.shard}
    return _update(table, client, shard_update(report, _now()), where)


def _update(table: str | None, client: Any, arguments: dict[str, Any], where: dict[str, Any]) -> str:
    """One conditional update_item; every failure is a warning, never an exception."""
    from pipelines.engine.errors import aws_error_code

    table = table or os.environ.get(TABLE_ENV, "").strip()
    if not table:
        return _warn(NOT_RECORDED, where, f"{TABLE_ENV} is not set")
    try:
        (client or progress_client()).update_item(TableName=table, **arguments)
    except Exception as exc:  # noqa: BLE001 - progress must never fail the shard or the job
        if aws_error_code(exc) != "ConditionalCheckFailedException":
            return _warn(NOT_RECORDED, where, f"{type(exc).__name__}: {exc}", table=table)
        if not (getattr(exc, "response", None) or {}).get("Item"):
            return _warn(NO_JOB, where, "the job is not in the table", table=table)
        _log("job_progress_counted_already", where)
        return COUNTED_ALREADY
    return ADDED


def _log(event: str, where: dict[str, Any], **fields: Any) -> None:
    from pipelines.engine.progress import log_event

    log_event(event, **where, **fields)


def _warn(outcome: str, where: dict[str, Any], reason: str, **more: Any) -> str:
    _log("job_progress_not_recorded", where, level="warning", outcome=outcome, reason=reason, **more)
    return outcome


@functools.cache
def progress_client() -> Any:
    """A DynamoDB client that gives up quickly: progress must not hold a committed shard for long."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.session.Session().client("dynamodb", config=config)


def _now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)
