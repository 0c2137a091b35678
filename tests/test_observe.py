"""What an operator sees of a job without an agent (pipelines/observe): CloudWatch EMF lines on stdout
and OpenLineage events, from real runs against the local stack (Kafka broker + moto server).

The lineage endpoint is a small HTTP receiver in this process (127.0.0.1, any free port) that keeps
every event POSTed to it, as a Marquez or DataHub endpoint would receive them. CloudWatch itself
cannot run here: the EMF lines are checked against the format's specification (the `_aws` metadata
naming the namespace, dimension set and metrics, and each value at the top level).
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from local_http import JsonHandler, serving
from conftest import MAIN_CONFIG, run_cli, summary_of

from pipelines.devstack.sample import write_audience_csv
from pipelines.observe.lineage import run_id

ROWS = 2_000
PIPELINE = "send_audience_to_kafka"


class _Collect(JsonHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.events.append({"path": self.path, **json.loads(body)})  # type: ignore[attr-defined]
        self.send_json(201, {})


@pytest.fixture
def receiver() -> Iterator[Any]:
    with serving(_Collect, events=[]) as server:
        yield server


def put_audience(s3, bucket: str, key: str, truncate: bool = False) -> int:
    raw = io.BytesIO()
    write_audience_csv(raw, ROWS, seed=5)
    body = gzip.compress(raw.getvalue())
    body = body[: len(body) // 2] if truncate else body
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return len(body)


def run_import(bucket: str, key: str, topic: str, env: dict[str, str], *extra: str):
    return run_cli(
        "run", str(MAIN_CONFIG), "--var", f"S3_BUCKET={bucket}", "--var", f"S3_KEY={key}",
        "--var", f"KAFKA_TOPIC={topic}", "--var", "SEGMENT_ID=7", *extra, env=env,
    )


def emf_lines(stdout: str) -> list[dict]:
    """The EMF documents on stdout (every line but the summary, which stays last)."""
    lines = stdout.strip().splitlines()
    documents = [json.loads(line) for line in lines[:-1]]
    assert all("_aws" in d for d in documents), lines
    return documents


def check_emf(document: dict, status: str, names: set[str]) -> None:
    directive = document["_aws"]["CloudWatchMetrics"]
    assert len(directive) == 1 and directive[0]["Namespace"] == "AudiencePipelines"
    assert directive[0]["Dimensions"] == [["pipeline", "status"]]
    assert {m["Name"] for m in directive[0]["Metrics"]} == names
    assert (document["pipeline"], document["status"]) == (PIPELINE, status)
    assert isinstance(document["_aws"]["Timestamp"], int)


JOB_METRICS = {"Jobs"} | {f"Job{n}" for n in ("RowsRead", "RowsWritten", "RowsSkipped", "Bytes", "Seconds", "RowsPerSecond")}
SHARD_METRICS = {"Shards", "RowsRead", "RowsWritten", "RowsSkipped", "Bytes", "Seconds", "RowsPerSecond"}


def test_an_import_sends_start_then_complete_and_writes_its_job_metrics(stack, s3, bucket, topic, receiver) -> None:
    size = put_audience(s3, bucket, "drops/observed.csv.gz")
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    env = {"OPENLINEAGE_URL": receiver.url, "PIPELINES_METRICS": "emf"}
    result = run_import(bucket, "drops/observed.csv.gz", topic, env, "--job-id", job_id)
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    (job_line,) = emf_lines(result.stdout)
    check_emf(job_line, "succeeded", JOB_METRICS)
    assert (job_line["Jobs"], job_line["JobRowsWritten"], job_line["JobBytes"]) == ([1.0], [float(ROWS)], [float(size)])
    assert job_line["JobRowsPerSecond"] == [summary["rows_per_second"]] and job_line["job_id"] == job_id

    start, complete = receiver.events
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["path"] == "/api/v1/lineage"
    assert start["run"]["runId"] == complete["run"]["runId"] == run_id(job_id)
    assert complete["run"]["facets"]["audiencePipelines"]["jobId"] == job_id
    assert complete["job"]["namespace"] == "audience-pipelines" and complete["job"]["name"] == PIPELINE
    host, port = stack.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    for event in (start, complete):
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [(f"s3://{bucket}", "drops/observed.csv.gz")]
        assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [(f"kafka://{host}:{port}", topic)]
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == ROWS
    assert complete["inputs"][0]["inputFacets"]["inputStatistics"] == {
        **complete["inputs"][0]["inputFacets"]["inputStatistics"], "rowCount": ROWS, "size": size,
    }


def test_a_failed_import_sends_fail_with_its_error(stack, s3, bucket, topic, receiver) -> None:
    put_audience(s3, bucket, "drops/cut.csv.gz", truncate=True)
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    result = run_import(bucket, "drops/cut.csv.gz", topic, {"OPENLINEAGE_URL": receiver.url, "PIPELINES_METRICS": "emf"},
                        "--job-id", job_id)
    assert result.returncode != 0
    assert summary_of(result)["status"] == "failed"
    (job_line,) = emf_lines(result.stdout)
    check_emf(job_line, "failed", JOB_METRICS)
    assert job_line["JobRowsWritten"] == [0.0]
    start, fail = receiver.events
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert fail["run"]["runId"] == run_id(job_id)
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert "gzip" in message.lower() and "drops/cut.csv.gz" in message, message
    assert fail["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 0


def test_a_shard_task_writes_one_metrics_line_and_none_by_default(stack, s3, bucket, topic, tmp_path) -> None:
    put_audience(s3, bucket, "drops/shard.csv.gz")
    plan = str(tmp_path / "plan.json")
    made = run_cli("plan", str(MAIN_CONFIG), "--var", f"S3_BUCKET={bucket}", "--var", "S3_KEY=drops/shard.csv.gz",
                   "--var", f"KAFKA_TOPIC={topic}", "--var", "SEGMENT_ID=7", "--out", plan)
    assert made.returncode == 0, made.stderr
    args = ("--plan", plan, "--shard", "0")
    quiet = run_import(bucket, "drops/shard.csv.gz", topic, {}, *args, "--force")
    assert quiet.returncode == 0, quiet.stderr
    assert len(quiet.stdout.strip().splitlines()) == 1, "no EMF outside Lambda and ECS unless asked"
    in_ecs = run_import(bucket, "drops/shard.csv.gz", topic, {"ECS_CONTAINER_METADATA_URI_V4": "http://127.0.0.1:9/v4"}, *args, "--force")
    assert in_ecs.returncode == 0, in_ecs.stderr
    (shard_line,) = emf_lines(in_ecs.stdout)
    check_emf(shard_line, "succeeded", SHARD_METRICS)
    assert (shard_line["Shards"], shard_line["RowsRead"], shard_line["shard"]) == ([1.0], [float(ROWS)], 0)
    assert shard_line["job_id"] == summary_of(in_ecs)["job_id"]


def test_an_unreachable_lineage_endpoint_never_fails_the_job(stack, s3, bucket, topic) -> None:
    put_audience(s3, bucket, "drops/nowhere.csv.gz")
    result = run_import(bucket, "drops/nowhere.csv.gz", topic, {"OPENLINEAGE_URL": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    assert summary_of(result)["rows_written"] == ROWS
    assert result.stderr.count('"event":"lineage_not_sent"') == 2, result.stderr


def test_the_workflows_status_task_starts_and_ends_each_jobs_lineage_run(stack, receiver, monkeypatch, capsys) -> None:
    """The state machine's MarkRunning / MarkSucceeded / MarkFailed steps call the Lambda's status
    task: here the same handler, in this process, against the stack's DynamoDB (moto server)."""
    from pipelines.aws.handler import handler
    from pipelines.aws.jobs import JobStore, TransitionRejected, create_table
    from pipelines.aws.progress import record_shard
    from pipelines.engine.run import ShardReport

    table = f"jobs-{uuid.uuid4().hex[:10]}"
    create_table(JobStore(table).dynamodb, table)
    for name, value in {"PIPELINES_JOBS_TABLE": table, "OPENLINEAGE_URL": receiver.url, "PIPELINES_METRICS": "emf"}.items():
        monkeypatch.setenv(name, value)
    params = {"S3_BUCKET": "audiences", "S3_KEY": "drops/a.csv.gz", "KAFKA_TOPIC": "audience", "SEGMENT_ID": "1"}
    good, bad = (f"job-{uuid.uuid4().hex[:8]}" for _ in range(2))
    status = lambda job_id, to, **more: handler({"task": "status", "job_id": job_id, "pipeline": PIPELINE, "status": to, **more})  # noqa: E731
    for job_id in (good, bad):
        JobStore(table).create(job_id, PIPELINE, params)
        status(job_id, "RUNNING")
    record_shard(ShardReport(bad, 0, 1, 100, 90, 10, 1_000, 0.5, 1))  # what the failed job committed before failing
    status(good, "SUCCEEDED", counts={"rows_read": 500, "rows_written": 500, "rows_skipped": 0, "bytes_read": 4_000, "end_markers": 6})
    status(bad, "FAILED", error={"Error": "RunError", "Cause": "shard 1: truncated gzip"})
    with pytest.raises(TransitionRejected):
        status(good, "SUCCEEDED", counts={"rows_written": 500})  # a repeated step emits nothing more

    by_run = {job_id: [e for e in receiver.events if e["run"]["runId"] == run_id(job_id)] for job_id in (good, bad)}
    assert [e["eventType"] for e in by_run[good]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in by_run[bad]] == ["START", "FAIL"]
    complete, fail = by_run[good][1], by_run[bad][1]
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [("s3://audiences", "drops/a.csv.gz")]
    assert complete["outputs"][0]["name"] == "audience"
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 500
    assert fail["run"]["facets"]["errorMessage"]["message"] == "RunError: shard 1: truncated gzip"
    assert fail["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 90

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [(d["job_id"], d["status"], d["JobRowsWritten"]) for d in lines] == [(good, "succeeded", [500.0]), (bad, "failed", [90.0])]
    assert all(d["JobSeconds"][0] >= 0 for d in lines)


def test_a_lambda_errors_cause_gives_its_message() -> None:
    from pipelines.aws.job_observation import _error_text

    lambda_cause = json.dumps({"errorType": "RunError", "errorMessage": "s3://audiences/imports/x/: no object matches", "trace": []})
    assert _error_text({"Error": "RunError", "Cause": lambda_cause}) == "RunError: s3://audiences/imports/x/: no object matches"
    assert _error_text({"Error": "States.TaskFailed", "Cause": "{not json"}) == "States.TaskFailed: {not json"
    assert _error_text("boom") == "boom" and len(_error_text({"Error": "E", "Cause": "x" * 10_000})) == 2000
