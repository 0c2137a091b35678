"""Two more scenarios of issue 4, run like tests/test_workflow_server.py: the real statemachine.json
in moto's Step Functions engine (the workflow server, pipelines/devstack/workflow_server.py), the
real Kafka broker, moto S3/DynamoDB. Each test starts its own workflow server (tests/workflow_setup.py)
because the Plan step's shard size (PIPELINES_SHARD_BYTES) is the server's environment.

Bridges used here (each documented in workflow_server.py):
  a. bridge_service_parameters   ecs:runTask.sync parameters reach moto's ECS with boto's names
  b. bridge_lambda_invoke        MarkRunning / Plan / Finish / Mark* run pipelines.aws.handler
  c. bridge_ecs_run_task         each shard's Fargate task is a `python -m pipelines run ...` subprocess
     bridge_ecs_sync_exit_code   a shard exiting non-zero (here: killed) fails its state with States.TaskFailed
     bridge_sync_task_retry      the retried shard task runs again
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config
from conftest import consume_all, end_offsets, rows_and_markers
from workflow_setup import REGION, client, put_objects, shard_logs, start_job, wait_for_execution, workflow_server

from pipelines.aws.jobs import JobStore

STATE_PAYLOAD_LIMIT = 256 * 1024  # Step Functions' limit for a state's input/output, in bytes (UTF-8)


def new_bucket() -> str:
    return f"audiences-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def per_object_shards(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A workflow server whose plans give every object its own shard."""
    with workflow_server(stack, tmp_path_factory.mktemp("workflow-logs"), {"PIPELINES_SHARD_BYTES": "1"}) as workflow:
        yield workflow


# --------------------------------------------------------------- a shard failing once


def shard_processes(job_id: str, shard: int) -> list[int]:
    """Pids of the running `pipelines run ... --plan .../_jobs/<job_id>/plan.json --shard <shard>` processes
    (the shard tasks the workflow server started, bridge c), read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or "run" not in args or "--shard" not in args:
            continue
        at = args.index("--shard")
        if at + 1 < len(args) and args[at + 1] == str(shard) and any(a.endswith(f"/_jobs/{job_id}/plan.json") for a in args):
            pids.append(int(entry.name))
    return pids


def wait_for_shard_process(job_id: str, shard: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not (pids := shard_processes(job_id, shard)):
        assert time.monotonic() < deadline, f"no process for shard {shard} of {job_id} after {timeout} s"
        time.sleep(0.02)
    assert len(pids) == 1, pids
    return pids[0]


def wait_for_offsets(bootstrap: str, topic: str, at_least: int, pid: int, timeout: float = 60) -> None:
    """Until the topic's end offsets (committed or not) add up to `at_least`, while process `pid` runs."""
    deadline = time.monotonic() + timeout
    while sum(end_offsets(bootstrap, topic).values()) < at_least:
        assert Path(f"/proc/{pid}").exists(), f"process {pid} ended before {at_least} records were in {topic}"
        assert time.monotonic() < deadline, f"fewer than {at_least} records in {topic} after {timeout} s"
        time.sleep(0.01)


def test_a_shard_failing_once_succeeds_on_retry(per_object_shards, stack, topic):
    """Shard 1's first Fargate task dies (SIGKILL, as a task killed under it would) midway through its
    transaction: its state fails with States.TaskFailed (exit code -9), the RunShard Retry runs it
    again, the new attempt fences the killed one's transaction, and the job ends SUCCEEDED with every
    row exactly once."""
    workflow, bucket = per_object_shards, new_bucket()
    rows = [500, 150_000, 500]
    put_objects(workflow.endpoint, bucket, rows)
    job_id, execution = start_job(workflow, bucket, topic)

    victim = wait_for_shard_process(job_id, 1)
    # The other two shards write 1 000 rows and a few transaction markers at most: past 6 000
    # records, shard 1 has rows in the log, in its open transaction.
    wait_for_offsets(stack.kafka_bootstrap, topic, 6_000, victim)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    assert shard_processes(job_id, 1) in ([], [victim])  # no second attempt yet

    described, entered = wait_for_execution(workflow, execution)
    print(f"\nshard 1 killed; the execution ended {time.monotonic() - killed_at:.1f} s later")

    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"), entered)
    assert entered[:5] == ["MarkRunning", "Config", "Plan", "SmallJob?", "Shards"]
    assert entered[-3:] == ["Finish", "MarkSucceeded", "Succeeded"] and "MarkFailed" not in entered

    logs = shard_logs(workflow, job_id)  # one log a task: the Map's child executions are not in the history
    runs = Counter(int(log.splitlines()[0].rsplit("--shard ", 1)[1]) for log in logs)
    assert runs == {0: 1, 1: 2, 2: 1}, logs
    shard_1 = [log for log in logs if log.splitlines()[0].endswith("--shard 1")]
    assert sorted('"status": "succeeded"' in log for log in shard_1) == [False, True], shard_1  # killed, then done
    report = json.loads(client("s3", workflow.endpoint).get_object(Bucket=bucket, Key=f"_jobs/{job_id}/shards/00001.json")["Body"].read())
    assert (report["attempt"], report["rows_written"]) == (2, rows[1])

    job = JobStore(workflow.table).get(job_id)
    total = sum(rows)
    assert (job.status, job.rows_read, job.rows_written, job.rows_skipped, job.error) == ("SUCCEEDED", total, total, 0, None)

    records = consume_all(stack.kafka_bootstrap, topic)  # read_committed
    data, markers = rows_and_markers(records)
    keys = Counter(msg.key() for msg in data)
    assert len(keys) == total and set(keys.values()) == {1}  # every row once
    assert sorted(markers) == list(range(6)) and sum(m["partition_rows"] for m in markers.values()) == total
    assert job.end_markers == 6
    # The killed attempt's rows are in the log (aborted by the retry's fencing), just never read committed.
    assert sum(end_offsets(stack.kafka_bootstrap, topic).values()) > total + 6 + 6_000 - 1_000


# ------------------------------------------------------------------ 10 000 objects


def put_tiny_objects(endpoint: str, bucket: str, count: int) -> int:
    """`count` objects in/<n>.csv.gz of 3 rows each (the pipeline's config decodes gzip), put by a
    thread pool; returns the rows in all."""
    s3 = boto3.session.Session().client("s3", region_name=REGION, endpoint_url=endpoint, config=Config(max_pool_connections=32))
    s3.create_bucket(Bucket=bucket)

    def put(n: int) -> None:
        text = "user_id,country,score,opted_in,updated_at\n" + "".join(
            f"u{n:05d}-{i},JP,{i}.5,true,2026-11-01T12:00:00Z\n" for i in range(3)
        )
        s3.put_object(Bucket=bucket, Key=f"in/{n:05d}.csv.gz", Body=gzip.compress(text.encode(), mtime=0))

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, range(count)))
    return 3 * count


def payload_sizes(event: dict) -> Iterator[tuple[str, int]]:
    """(field, bytes) of every string an event's details carry: input, output, parameters, cause, ..."""
    for key, details in event.items():
        if key.endswith("EventDetails") and isinstance(details, dict):
            for field, value in details.items():
                if isinstance(value, str):
                    yield f"{key}.{field}", len(value.encode())


def test_ten_thousand_objects_keep_state_payloads_small(per_object_shards, stack, topic):
    """A plan of 10 000 objects, one shard each, through the state machine: the plan and the shard
    list live in S3 and the state carries only their location and counts, so no payload comes near
    256 KB. The execution runs MarkRunning, Config, Plan and SmallJob? into the Map, which reads its
    10 000 items from S3; once its first items (Fargate tasks) succeeded, every event of the history
    so far is measured. The rest is not run: 10 000 tasks against moto would take far too long, and
    moto's StopExecution does not end a running Distributed Map (the server's teardown stops it)."""
    workflow, bucket = per_object_shards, new_bucket()
    started = time.monotonic()
    total = put_tiny_objects(workflow.endpoint, bucket, 10_000)
    put_seconds = time.monotonic() - started

    job_id, execution = start_job(workflow, bucket, topic)
    sfn = client("stepfunctions", workflow.endpoint)
    first_items = 4
    deadline = time.monotonic() + 90
    while sum('"status": "succeeded"' in log for log in shard_logs(workflow, job_id)) < first_items:
        assert time.monotonic() < deadline, f"fewer than {first_items} shard tasks succeeded after 90 s"
        described = sfn.describe_execution(executionArn=execution)
        assert described["status"] == "RUNNING", described
        time.sleep(0.2)
    run_seconds = time.monotonic() - started - put_seconds
    map_runs = sfn.list_map_runs(executionArn=execution)["mapRuns"]
    items = sfn.describe_map_run(mapRunArn=map_runs[0]["mapRunArn"])["itemCounts"] if map_runs else {}
    described = sfn.describe_execution(executionArn=execution)
    assert described["status"] == "RUNNING", described

    largest = (0, "", "")
    entered, types, events, state = [], [], 0, None
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution, PaginationConfig={"PageSize": 1000}):
        for event in page["events"]:
            events += 1
            types.append(event["type"])
            if "stateEnteredEventDetails" in event:
                state = event["stateEnteredEventDetails"]["name"]
                entered.append(state)
            for field, size in payload_sizes(event):
                assert size < STATE_PAYLOAD_LIMIT, (event["type"], state, field, size)
                largest = max(largest, (size, state or "(execution)", f"{event['type']} {field}"))
    size = len(described["input"].encode())
    assert size < STATE_PAYLOAD_LIMIT
    largest = max(largest, (size, "(execution)", "execution input"))
    assert entered == ["MarkRunning", "Config", "Plan", "SmallJob?", "Shards"], entered
    assert "MapRunStarted" in types, types

    s3 = client("s3", workflow.endpoint)
    plan = json.loads(s3.get_object(Bucket=bucket, Key=f"_jobs/{job_id}/plan.json")["Body"].read())
    planned = [item["uri"] for shard in plan["shards"] for item in shard["items"]]
    assert sorted(planned) == [f"s3://{bucket}/in/{n:05d}.csv.gz" for n in range(10_000)]
    assert len(plan["shards"]) == 10_000
    shard_list = json.loads(s3.get_object(Bucket=bucket, Key=f"_jobs/{job_id}/shards.json")["Body"].read())
    assert shard_list == [{"shard": n, "timeout_seconds": 420} for n in range(10_000)]  # the Map's items, read by its ItemReader
    plan_bytes = s3.head_object(Bucket=bucket, Key=f"_jobs/{job_id}/plan.json")["ContentLength"]
    print(
        f"\n10 000 objects ({total} rows): put in {put_seconds:.1f} s; plan + the Map's first {first_items} items in {run_seconds:.1f} s; "
        f"plan.json {plan_bytes} bytes; Map run item counts so far {items or 'n/a'}; {events} history events; "
        f"largest state payload {largest[0]} bytes in state {largest[1]} ({largest[2]})"
    )
