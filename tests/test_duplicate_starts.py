"""The same job started twice at once, on the local workflow (tests/test_local_workflow.py's `local`:
the stack's AWS emulator running the real statemachine.json, the jobs table, the Lambda bridged to
pipelines.aws.handler, and the HTTP API in a thread), against the real broker.

- An S3 drop's event delivered twice at the same moment (two threads invoking the Lambda with what the
  S3-drop rule's input transformer makes of the event), and once more while the execution runs: one
  job id, one job record, one execution, one QUEUED/RUNNING/SUCCEEDED each, every row once and one
  end marker a partition. The job is created by a conditional write (DynamoDB refuses the second);
  the delivery that finds the job QUEUED starts its execution again, under the job's id as its name,
  which Step Functions answers with the running execution (same name and input) or refuses; so both
  answers may say "duplicate": false. A delivery that finds the job RUNNING does nothing.
- Two POST /imports with the same job_id at the same moment: one 202, one 409, one execution.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import test_local_workflow
from conftest import create_topic
from test_local_workflow import (
    PIPELINE,
    api,
    client,
    create_topic_if_missing,
    drain,
    gzip_audience,
    job_records,
    status_queue,
)
from workflow_setup import warm_up_group_coordinator

from pipelines.aws.jobs import QUEUED, RUNNING

local = test_local_workflow.local  # its fixture: the local workflow on the stack's emulator, and the API in a thread
ROWS = 20_000
# The import a later delivery must find still running: 20,000 rows could end (about 1 s in the Lambda,
# which runs in a warm process of its own) before a third invocation was answered on a loaded machine.
RUNNING_ROWS = 300_000
TOPIC = "audience-members"  # the S3 drop's params name no topic: the import's default


def at_once(calls: list) -> list:
    """Runs the calls in threads released together; their results (or exceptions) in order."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def drop_delivery(endpoint: str, bucket: str, key: str) -> str:
    """What the Lambda gets for the object's "Object Created" event: the S3-drop rule's input transformer
    (workflow/s3_drop_input.json) applied by the workflow server's own bridge to the event EventBridge sends."""
    from pipelines.devstack.workflow_server import _target_input
    from pipelines.aws.triggers import render_trigger

    head = client("s3", endpoint).head_object(Bucket=bucket, Key=key)
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {"key": key, "size": head["ContentLength"], "etag": head["ETag"].strip('"'), "sequencer": "0064D3901D00059242"},
        "request-id": "DUPLICATE1", "requester": "123456789012", "reason": "PutObject",
    }
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
             "time": "2026-11-22T03:00:00Z", "region": "us-east-1", "resources": [f"arn:aws:s3:::{bucket}"], "detail": detail}
    return _target_input({"InputTransformer": render_trigger("s3_drop_input", {"pipeline": PIPELINE})}, event)


def invoke(local, payload: str) -> dict:
    """One invocation of the module's Lambda, as the rule's target gets it; its answer."""
    response = client("lambda", local.endpoint).invoke(FunctionName=local.function, Payload=payload.encode())
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    return json.loads(body)


def executions_named(local, name: str) -> list[dict]:
    sfn = client("stepfunctions", local.endpoint)
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=local.env["PIPELINES_STATE_MACHINE_ARN"])
    return [e for page in pages for e in page["executions"] if e["name"] == name]


def wait_until_done(local, job_id: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while (job := local.store.get(job_id)) is None or job.status not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, f"job {job_id}: {job}"
        time.sleep(0.25)
    return job


def assert_imported_once(stack, local, topic: str, job_id: str, rows: int, events_queue: str) -> None:
    """One execution, one SUCCEEDED job with the rows, every row once, one end marker a partition, one event a status."""
    assert len(executions_named(local, job_id)) == 1, executions_named(local, job_id)
    records = job_records(stack.kafka_bootstrap, topic, job_id)
    markers = [m for m in records if ("pipelines.marker", b"end") in m.headers()]
    keys = Counter(m.key() for m in records if m not in markers)
    assert len(keys) == rows and set(keys.values()) == {1}, "every row once"
    assert sorted(m.partition() for m in markers) == list(range(6)), "one end marker a partition"
    assert sum(json.loads(m.value())["partition_rows"] for m in markers) == rows
    statuses = Counter(e["detail"]["status"] for e in drain(local.endpoint, events_queue, 3, timeout=10))
    assert statuses == {"QUEUED": 1, "RUNNING": 1, "SUCCEEDED": 1}, statuses


def test_the_same_drop_delivered_twice_at_once_and_again_while_it_runs_imports_once(local, stack):
    from pipelines.aws.triggers import trigger_job_id

    rows = RUNNING_ROWS  # long enough that the later delivery comes while the one execution runs

    create_topic_if_missing(stack.kafka_bootstrap, TOPIC, 6)
    warm_up_group_coordinator(stack.kafka_bootstrap)
    bucket, key = f"dup-{uuid.uuid4().hex[:10]}", "drops/audience.csv.gz"
    s3 = client("s3", local.endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=gzip_audience(rows, bucket))
    payload = drop_delivery(local.endpoint, bucket, key)
    job_id = trigger_job_id(PIPELINE, json.loads(payload)["trigger"])
    events_queue = status_queue(local.endpoint, job_id)

    first, second = at_once([lambda: invoke(local, payload), lambda: invoke(local, payload)])
    deadline = time.monotonic() + 60
    while (job := local.store.get(job_id)).status == QUEUED:  # the execution runs: MarkRunning passed
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    later = invoke(local, payload)  # the same event once more, while the execution runs
    running = [e["status"] for e in executions_named(local, job_id)]
    job = wait_until_done(local, job_id)

    assert {first["job_id"], second["job_id"], later["job_id"]} == {job_id}
    # The delivery that finds the job QUEUED starts it again: Step Functions answers it with the running
    # execution (same name and input), so it may say "duplicate": false too; one execution either way.
    assert not (first["duplicate"] and second["duplicate"]), (first, second)
    assert later == {"job_id": job_id, "status": RUNNING, "duplicate": True}, later
    assert running == ["RUNNING"], "the later delivery came while the one execution ran"
    assert (job.status, job.rows_read, job.rows_written, job.error) == ("SUCCEEDED", rows, rows, None), job
    assert [j.job_id for j in local.store.list(limit=1000) if j.params.get("S3_BUCKET") == bucket] == [job_id], "one job record"
    assert_imported_once(stack, local, TOPIC, job_id, rows, events_queue)


def test_two_posts_of_the_same_job_id_at_once_are_one_202_and_one_409(local, stack):
    bucket, topic = f"dup-api-{uuid.uuid4().hex[:8]}", f"audience-{uuid.uuid4().hex[:10]}"
    create_topic(stack.kafka_bootstrap, topic, 6)
    s3 = client("s3", local.endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/audience.csv.gz", Body=gzip_audience(2_000, topic))
    job_id = f"dup-{uuid.uuid4().hex[:12]}"
    request = {"pipeline": PIPELINE, "params": {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}, "job_id": job_id}
    events_queue = status_queue(local.endpoint, job_id)

    answers = at_once([lambda: api(local, "POST", "/imports", request), lambda: api(local, "POST", "/imports", request)])

    assert sorted(status for status, _ in answers) == [202, 409], answers
    accepted = next(answer for status, answer in answers if status == 202)
    refused = next(answer for status, answer in answers if status == 409)
    assert accepted["job_id"] == job_id and accepted["execution_arn"].endswith(f":{job_id}")
    assert refused["job_id"] == job_id and refused["status"] in (QUEUED, RUNNING) and "exists already" in refused["error"]
    job = wait_until_done(local, job_id)
    assert (job.status, job.rows_written) == ("SUCCEEDED", 2_000), job
    assert_imported_once(stack, local, topic, job_id, 2_000, events_queue)
