"""The real statemachine.json, run by moto's Step Functions engine in the workflow server
(pipelines/devstack/workflow_server.py), against the real Kafka broker and moto S3/DynamoDB.

Bridges used here (each documented in workflow_server.py):
  a. bridge_service_parameters   ecs:runTask.sync parameters reach moto's ECS with boto's names
  b. bridge_lambda_invoke        MarkRunning / Plan / RunInLambda / Finish / Mark* run pipelines.aws.handler
  c. bridge_ecs_run_task         each shard's Fargate task is a `python -m pipelines run ...` subprocess
     bridge_ecs_sync_exit_code   a shard exiting non-zero fails its state with States.TaskFailed
     bridge_sync_task_retry      a retried shard task runs again (moto would time it out at once)
  d. bridge_map_failures         a shard failing for good fails the Map (ToleratedFailureCount 0)
     bridge_fail_state_error_names  the Failed state re-raises States.ExceedToleratedFailureThreshold
  e. bridge_events_to_sfn        S3 drop / custom event -> rule -> execution (the last test, on its own)
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import consume_all, create_topic, rows_and_markers
from workflow_setup import (  # noqa: F401 - re-exported: the shared setup is importable from here too
    EXECUTION_TIMEOUT_S,
    PIPELINE,
    REGION,
    SMALL_JOB_BYTES,
    client,
    create_resources,
    put_objects,
    run_job,
    shard_logs,
    start_job,
    wait_for_execution,
    wait_until_answers,
    warm_up_group_coordinator,
    workflow_server,
)

from pipelines.aws.jobs import JobStore


@pytest.fixture(scope="module")
def workflow(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The workflow server (tests/workflow_setup.py), every object its own shard."""
    with workflow_server(stack, tmp_path_factory.mktemp("workflow-logs"), {"PIPELINES_SHARD_BYTES": "1"}) as workflow:
        yield workflow


@pytest.fixture
def bucket() -> str:
    return f"audiences-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(stack) -> str:
    name = f"audience-{uuid.uuid4().hex[:10]}"
    create_topic(stack.kafka_bootstrap, name, 6)
    return name


def test_two_shards_run_as_fargate_tasks_end_to_end(workflow, stack, bucket, topic):
    put_objects(workflow.endpoint, bucket, [1500, 2500])
    job_id, execution, entered = run_job(workflow, bucket, topic)

    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"), entered)
    assert entered[:5] == ["MarkRunning", "Config", "Plan", "SmallJob?", "Shards"] and "RunInLambda" not in entered
    assert entered[-3:] == ["Finish", "MarkSucceeded", "Succeeded"]
    logs = shard_logs(workflow, job_id)  # the Map's child executions are not in the parent's history
    assert sum('"status": "succeeded"' in log for log in logs) == 2, logs
    job = JobStore(workflow.table).get(job_id)
    assert (job.status, job.rows_read, job.rows_written, job.rows_skipped, job.error) == ("SUCCEEDED", 4000, 4000, 0, None)
    assert (job.progress.shards_done, job.progress.shards_total, job.progress.rows_written) == (2, 2, 4000)  # the tasks' own additions

    rows, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    keys = Counter(msg.key() for msg in rows)
    assert len(keys) == 4000 and set(keys.values()) == {1}  # every row once
    assert sorted(markers) == list(range(6)) and sum(m["partition_rows"] for m in markers.values()) == 4000
    assert job.end_markers == 6


def test_a_small_job_runs_its_shard_in_the_lambda(workflow, stack, bucket, topic):
    put_objects(workflow.endpoint, bucket, [700])
    job_id, execution, entered = run_job(workflow, bucket, topic)

    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"), entered)
    assert entered == ["MarkRunning", "Config", "Plan", "SmallJob?", "RunInLambda", "Finish", "MarkSucceeded", "Succeeded"]
    job = JobStore(workflow.table).get(job_id)
    assert (job.status, job.rows_written) == ("SUCCEEDED", 700)
    rows, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len({msg.key() for msg in rows}) == len(rows) == 700 and len(markers) == 6


def test_a_shard_failing_for_good_fails_the_job_with_its_cause(workflow, stack, bucket, topic):
    """Object 1 is a truncated gzip: its shard exits 1 (bad data), which no retry would mend, so it is
    not retried; the Map fails, AbortJob fences the job's transactions, and the job is FAILED with the
    shard's exit code and error, without end markers."""
    put_objects(workflow.endpoint, bucket, [300, 300], truncate={1})
    job_id, execution, entered = run_job(workflow, bucket, topic)

    assert execution["status"] == "FAILED", execution
    assert entered[-3:] == ["AbortJob", "MarkFailed", "Failed"] and "Finish" not in entered
    logs = shard_logs(workflow, job_id)
    assert sum("--shard 1" in log for log in logs) == 1, logs  # no retry
    job = JobStore(workflow.table).get(job_id)
    assert job.status == "FAILED"
    assert job.error["Error"] == "States.ExceedToleratedFailureThreshold"
    assert "item 1: States.TaskFailed" in job.error["Cause"] and '"ExitCode": 1' in job.error["Cause"]
    assert "gzip stream is truncated" in job.error["Cause"], job.error
    assert execution.get("error") == "States.ExceedToleratedFailureThreshold"
    _, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert markers == {}


def test_a_shard_killed_mid_run_is_retried_and_every_row_lands_once(workflow, stack, bucket, topic):
    """SIGKILL to shard 0's process mid-run (the container dying: exit 137, as out of memory): the
    state machine retries it after a backoff; the retry fences the killed attempt's open transaction,
    and the job succeeds with every row once."""
    put_objects(workflow.endpoint, bucket, [1_000_000, 300])
    job_id, execution_arn = start_job(workflow, bucket, topic)
    pid = wait_for_process(f"/_jobs/{job_id}/plan.json\0--shard\x000".encode(), timeout=120)
    time.sleep(0.5)  # reading and producing
    os.kill(pid, signal.SIGKILL)
    execution, entered = wait_for_execution(workflow, execution_arn)

    assert execution["status"] == "SUCCEEDED", execution
    logs = shard_logs(workflow, job_id)
    assert sum("--shard 0" in log for log in logs) == 2, logs  # killed, then retried
    rows, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    keys = Counter(m.key() for m in rows)
    assert len(keys) == 1_000_300 and set(keys.values()) == {1}, "every row once"
    assert sum(m["partition_rows"] for m in markers.values()) == 1_000_300
    progress = JobStore(workflow.table).get(job_id).progress  # what the shards added as they committed: once each
    assert (progress.shards_done, progress.shards_total, progress.rows_written) == (2, 2, 1_000_300)


def wait_for_process(marker: bytes, timeout: float) -> int:
    """The pid of the first process whose command line holds `marker`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (proc / "cmdline").read_bytes():
                    return int(proc.name)
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError(f"no process with {marker!r} in its command line after {timeout} s")


def test_an_s3_event_rule_starts_an_execution_with_the_transformed_input(workflow, bucket):
    """Bridge e alone: S3 object created -> EventBridge rule -> a (Pass) state machine, with the
    target's InputTransformer applied; a second rule's constant Input for a custom event."""
    sfn, events, s3 = (client(name, workflow.endpoint) for name in ("stepfunctions", "events", "s3"))
    role = f"arn:aws:iam::123456789012:role/{bucket}"
    echo = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(name=f"echo-{bucket}", definition=json.dumps(echo), roleArn=role)["stateMachineArn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "drops/"}]}}}
    events.put_rule(Name=f"drop-{bucket}", EventPattern=json.dumps(pattern))
    template = '{"pipeline": "send_audience_to_kafka", "params": {"S3_BUCKET": "<bucket>", "S3_KEY": "<key>"}, "size": <size>}'
    transformer = {"InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key", "size": "$.detail.object.size"}, "InputTemplate": template}
    events.put_targets(Rule=f"drop-{bucket}", Targets=[{"Id": "import", "Arn": machine, "RoleArn": role, "InputTransformer": transformer}])
    events.put_rule(Name=f"custom-{bucket}", EventPattern=json.dumps({"source": [f"test.{bucket}"]}))
    events.put_targets(Rule=f"custom-{bucket}", Targets=[{"Id": "const", "Arn": machine, "RoleArn": role, "Input": '{"constant": true}'}])

    s3.put_object(Bucket=bucket, Key="drops/a.csv.gz", Body=b"12345")
    s3.put_object(Bucket=bucket, Key="elsewhere/b.csv.gz", Body=b"1")  # no match
    events.put_events(Entries=[{"Source": f"test.{bucket}", "DetailType": "t", "Detail": "{}"}])

    deadline = time.monotonic() + 30
    while len(executions := sfn.list_executions(stateMachineArn=machine)["executions"]) < 2:
        assert time.monotonic() < deadline, executions
        time.sleep(0.2)
    inputs = sorted((json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions), key=len)
    assert inputs == [
        {"constant": True},
        {"pipeline": "send_audience_to_kafka", "params": {"S3_BUCKET": bucket, "S3_KEY": "drops/a.csv.gz"}, "size": 5},
    ]
