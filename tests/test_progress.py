"""A job's live progress (pipelines/aws/progress.py): what the Plan step and each committed shard add
to the job's item, against the moto server of the `stack` fixture.

That server is the workflow server, whose DynamoDB writes are atomic as DynamoDB's are (its bridge
f, `bridge_dynamodb_atomic_writes`): the concurrency test below checks both that bridge and that
concurrent commits of one job add up exactly. The workflow end to end (shard tasks, the Lambda's
shard, GET /jobs/{id}, `jobs watch`) is in tests/test_local_workflow.py.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest

from pipelines.aws.jobs import RUNNING, SUCCEEDED, JobStore, create_table
from pipelines.aws.progress import (
    ADDED,
    COUNTED_ALREADY,
    NO_JOB,
    NOT_RECORDED,
    JobProgress,
    record_plan,
    record_shard,
)
from pipelines.engine.run import ShardReport

PARAMS = {"S3_BUCKET": "audiences", "S3_KEY": "drops/a.csv.gz"}


@pytest.fixture
def store(stack: object) -> JobStore:
    name = f"jobs-{uuid.uuid4().hex[:10]}"
    job_store = JobStore(name)
    create_table(job_store.dynamodb, name)
    return job_store


def running_job(store: JobStore) -> str:
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    store.create(job_id, "send_audience_to_kafka", PARAMS)
    store.transition(job_id, RUNNING)
    return job_id


def report(job_id: str, shard: int, rows: int, skipped: int = 0) -> ShardReport:
    return ShardReport(job_id, shard, 1, rows + skipped, rows, skipped, 10 * (rows + skipped), 0.5, 1)


def raw(store: JobStore, job_id: str) -> dict | None:
    return store.dynamodb.get_item(TableName=store.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True).get("Item")


def test_each_committed_shard_adds_its_counts_once(store: JobStore) -> None:
    job_id = running_job(store)
    assert record_plan(job_id, 3, 12345, table=store.table, client=store.dynamodb) == ADDED
    assert record_shard(report(job_id, 0, 100, skipped=2), table=store.table, client=store.dynamodb) == ADDED
    # the same shard again (a retried task finding it committed, a Lambda retry, a --force rerun): refused
    assert record_shard(report(job_id, 0, 100, skipped=2), table=store.table, client=store.dynamodb) == COUNTED_ALREADY
    assert record_shard(report(job_id, 0, 999), table=store.table, client=store.dynamodb) == COUNTED_ALREADY
    assert record_shard(report(job_id, 2, 50), table=store.table, client=store.dynamodb) == ADDED

    progress = store.get(job_id).progress
    assert (progress.shards_total, progress.shards_done, progress.bytes_total) == (3, 2, 12345)
    assert (progress.rows_read, progress.rows_written, progress.rows_skipped, progress.bytes_read) == (152, 150, 2, 1520)
    assert {int(n) for n in raw(store, job_id)["shards_committed"]["NS"]} == {0, 2}
    # a retried Plan step sets the same values and keeps the first planned_at
    planned_at = progress.planned_at
    assert record_plan(job_id, 3, 12345, table=store.table, client=store.dynamodb) == ADDED
    assert store.get(job_id).progress.planned_at == planned_at


def test_concurrent_commits_of_one_job_add_up_exactly(store: JobStore) -> None:
    """12 shards, each recorded by 3 threads at once (a shard and its retries racing): 12 additions."""
    job_id = running_job(store)
    record_plan(job_id, 12, 1, table=store.table, client=store.dynamodb)
    outcomes: list[str] = []
    barrier = threading.Barrier(12 * 3)

    def commit(shard: int) -> None:
        client = JobStore(store.table).dynamodb  # a client per thread, as separate tasks have
        barrier.wait()
        outcomes.append(record_shard(report(job_id, shard, 1000 + shard), table=store.table, client=client))

    threads = [threading.Thread(target=commit, args=(shard,)) for shard in range(12) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes).count(ADDED) == 12 and outcomes.count(COUNTED_ALREADY) == 24
    progress = store.get(job_id).progress
    assert (progress.shards_done, progress.rows_written) == (12, sum(1000 + s for s in range(12)))


def test_failures_are_warnings_never_errors(store: JobStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import boto3
    from botocore.config import Config
    from conftest import free_port

    # no such job: nothing is created
    assert record_shard(report("nobody", 0, 5), table=store.table, client=store.dynamodb) == NO_JOB
    assert record_plan("nobody", 1, 1, table=store.table, client=store.dynamodb) == NO_JOB
    assert raw(store, "nobody") is None
    # no table named
    monkeypatch.delenv("PIPELINES_JOBS_TABLE", raising=False)
    assert record_shard(report("j", 0, 5)) == NOT_RECORDED
    # DynamoDB unreachable
    config = Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
    unreachable = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1", config=config)
    assert record_shard(report("j", 3, 5), table=store.table, client=unreachable) == NOT_RECORDED

    warnings = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "job_progress_not_recorded" in line]
    assert [w["outcome"] for w in warnings] == [NO_JOB, NO_JOB, NOT_RECORDED, NOT_RECORDED]
    assert all(w["event"] == "job_progress_not_recorded" and w["level"] == "warning" for w in warnings)
    assert "PIPELINES_JOBS_TABLE is not set" in warnings[2]["reason"] and warnings[3]["shard"] == 3


def test_transitions_keep_the_progress(store: JobStore) -> None:
    job_id = running_job(store)
    record_plan(job_id, 2, 1, table=store.table, client=store.dynamodb)
    for shard in range(2):
        record_shard(report(job_id, shard, 10), table=store.table, client=store.dynamodb)
    done = store.transition(job_id, SUCCEEDED, counts={"rows_read": 20, "rows_written": 20, "rows_skipped": 0})
    answer = store.get(job_id).to_api()
    assert done.progress == store.get(job_id).progress
    assert answer["rows_written"] == answer["progress"]["rows_written"] == 20
    assert answer["progress"]["shards_done"] == answer["progress"]["shards_total"] == 2
    assert answer["progress"]["eta_seconds"] is None  # it ended


def at(seconds: float) -> str:
    return datetime.fromtimestamp(1_800_000_000 + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_rows_per_second_and_time_left() -> None:
    now = datetime.fromtimestamp(1_800_000_000 + 20, UTC)
    progress = JobProgress(shards_total=8, shards_done=2, rows_read=4000, rows_written=4000, bytes_read=1, planned_at=at(0))
    view = progress.to_api(running=True, ended_at=None, now=now)
    assert (view["elapsed_seconds"], view["rows_per_second"], view["eta_seconds"]) == (20.0, 200.0, 60.0)  # 2 of 8 in 20 s: 60 s left
    assert progress.to_api(running=False, ended_at=at(50), now=now)["elapsed_seconds"] == 50.0  # ended: until its end
    assert progress.to_api(running=False, ended_at=at(50), now=now)["eta_seconds"] is None
    nothing_yet = JobProgress(shards_total=8, planned_at=at(0)).to_api(running=True, ended_at=None, now=now)
    assert (nothing_yet["shards_done"], nothing_yet["rows_per_second"], nothing_yet["eta_seconds"]) == (0, 0.0, None)
    all_done = JobProgress(shards_total=2, shards_done=2, planned_at=at(0)).to_api(running=True, ended_at=None, now=now)
    assert all_done["eta_seconds"] == 0.0  # the Finish step is still to come
    assert JobProgress.from_plain({"job_id": "j", "status": "QUEUED"}) is None


def test_a_shard_records_only_for_the_workflows_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """progress.record_committed, the hook `pipelines run` gives the engine: only where the state
    machine set $PIPELINES_JOB_ID to the shard's job (a `pipelines run` in a shell where `pipelines
    dev up` exported PIPELINES_JOBS_TABLE records nothing)."""
    from pipelines.aws import progress
    from pipelines.engine import run
    from pipelines.engine.run import record_progress

    recorded: list[ShardReport] = []
    monkeypatch.setattr(progress, "record_shard", recorded.append)
    monkeypatch.setattr(run, "shard_commit_hooks", [progress.record_committed])
    monkeypatch.setenv("PIPELINES_JOBS_TABLE", "jobs")
    monkeypatch.delenv("PIPELINES_JOB_ID", raising=False)
    record_progress(report("job-1", 0, 1))
    monkeypatch.setenv("PIPELINES_JOB_ID", "job-2")
    record_progress(report("job-1", 0, 1))
    assert recorded == []
    monkeypatch.setenv("PIPELINES_JOB_ID", "job-1")
    record_progress(report("job-1", 0, 1))
    assert [r.job_id for r in recorded] == ["job-1"]


def test_the_run_command_hooks_progress_only_in_the_workflow(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.aws import progress
    from pipelines.cli.main import _record_workflow_progress
    from pipelines.engine import run

    monkeypatch.setattr(run, "shard_commit_hooks", [])
    monkeypatch.delenv("PIPELINES_JOB_ID", raising=False)
    _record_workflow_progress()
    assert run.shard_commit_hooks == []
    monkeypatch.setenv("PIPELINES_JOB_ID", "job-1")
    _record_workflow_progress()
    _record_workflow_progress()
    assert run.shard_commit_hooks == [progress.record_committed]
