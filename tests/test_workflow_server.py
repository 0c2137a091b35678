"""The real statemachine.json, run by moto's Step Functions engine in the workflow server
(pipelines/devstack/workflow_server.py), against the real Kafka broker and moto S3/DynamoDB.

Bridges used here (each documented in workflow_server.py):
  a. bridge_service_parameters   ecs:runTask.sync parameters reach moto's ECS with boto's names
  b. bridge_lambda_invoke        MarkRunning / Plan / RunInLambda / Finish / Mark* run pipelines.handler
  c. bridge_ecs_run_task         each shard's Fargate task is a `python -m pipelines run ...` subprocess
     bridge_ecs_sync_exit_code   a shard exiting non-zero fails its state with States.TaskFailed
     bridge_sync_task_retry      a retried shard task runs again (moto would time it out at once)
  d. bridge_map_failures         a shard failing for good fails the Map (ToleratedFailureCount 0)
     bridge_fail_state_error_names  the Failed state re-raises States.ExceedToleratedFailureThreshold
  e. bridge_events_to_sfn        S3 drop / custom event -> rule -> execution (the last test, on its own)
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from conftest import REPO, consume_all, create_topic, free_port, rows_and_markers

from pipelines.devstack.sample import write_audience_csv
from pipelines.jobs import JobStore, create_table
from pipelines.workflow import render_definition

REGION = "us-east-1"
PIPELINE = "send_audience_to_kafka"
SMALL_JOB_BYTES = 1 << 20  # one shard up to 1 MiB runs in the Lambda
EXECUTION_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def workflow(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The workflow server on a free port, with the state machine and everything it names created."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    table = f"jobs-{uuid.uuid4().hex[:8]}"
    logs = tmp_path_factory.mktemp("workflow-logs")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PIPELINES_JOBS_TABLE": table,
        "PIPELINES_SHARD_BYTES": "1",  # every object its own shard
        "PIPELINES_WORKFLOW_LOGS": str(logs),
    }
    with open(logs / "server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pipelines.devstack.workflow_server", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    warm_up_group_coordinator(stack.kafka_bootstrap)
    saved_endpoint = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # JobStore and boto3 in this process talk to the workflow server
    try:
        wait_until_answers(endpoint, server, logs / "server.log")
        yield SimpleNamespace(endpoint=endpoint, table=table, logs=logs, **create_resources(endpoint, table))
    finally:
        if saved_endpoint is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved_endpoint
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def warm_up_group_coordinator(bootstrap: str) -> None:
    """On a fresh broker the first reads of committed offsets fail with NOT_COORDINATOR while
    __consumer_offsets is created; a shard hitting that fails (and is retried after up to 10 s)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    topic = f"warm-up-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)
    deadline = time.monotonic() + 60
    ready = 0
    while ready < 5:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"warm-up-{uuid.uuid4().hex}"})
        try:
            consumer.committed([TopicPartition(topic, 0)], timeout=10)
            ready += 1
        except KafkaException:
            assert time.monotonic() < deadline, "no group coordinator after 60 s"
            time.sleep(0.2)
        finally:
            consumer.close()


def shard_logs(workflow: SimpleNamespace, job_id: str) -> list[str]:
    """The logs of the shard tasks the workflow server ran for a job (one a task, retries included)."""
    texts = (path.read_text() for path in sorted(workflow.logs.glob("task-*.log")))
    return [text for text in texts if f"/_jobs/{job_id}/plan.json" in text]


def wait_until_answers(endpoint: str, server: subprocess.Popen, log) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the workflow server exited:\n{log.read_text()[-3000:]}"
        try:
            opener.open(f"{endpoint}/moto-api/data.json", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the workflow server does not answer after 60 s:\n{log.read_text()[-3000:]}")


def client(service: str, endpoint: str):
    return boto3.session.Session().client(service, region_name=REGION, endpoint_url=endpoint)


def create_resources(endpoint: str, table: str) -> dict[str, str]:
    create_table(client("dynamodb", endpoint), table)

    ec2 = client("ec2", endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.10.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(VpcId=vpc, GroupName="shards", Description="shard tasks")["GroupId"]

    ecs = client("ecs", endpoint)
    cluster = ecs.create_cluster(clusterName="pipelines")["cluster"]["clusterArn"]
    task_definition = ecs.register_task_definition(
        family="pipelines-shard",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[{"name": "engine", "image": "audience-pipelines:local", "memory": 2048, "essential": True}],
    )["taskDefinition"]["taskDefinitionArn"]

    iam = client("iam", endpoint)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="pipelines", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("README.txt", "bridged: the workflow server runs pipelines.handler.handler in-process\n")
    function = client("lambda", endpoint).create_function(
        FunctionName="pipelines",
        Runtime="python3.11",
        Role=role,
        Handler="pipelines.handler.handler",
        Code={"ZipFile": code.getvalue()},
    )["FunctionArn"]

    definition = render_definition(
        {
            "function_arn": function,
            "cluster_arn": cluster,
            "task_definition_arn": task_definition,
            "container_name": "engine",
            "subnet_ids": subnet,
            "security_group_ids": group,
            "max_concurrency": "4",
            "small_job_bytes": str(SMALL_JOB_BYTES),
        }
    )
    machine = client("stepfunctions", endpoint).create_state_machine(name="pipelines", definition=definition, roleArn=role)
    return {"state_machine": machine["stateMachineArn"]}


def put_objects(endpoint: str, bucket: str, rows_per_object: list[int], truncate: set[int] = frozenset()) -> None:
    """in/<n>.csv.gz with distinct user ids; the objects in `truncate` cut in half (a broken gzip)."""
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket=bucket)
    for n, rows in enumerate(rows_per_object):
        raw = io.BytesIO()
        write_audience_csv(raw, rows, seed=n)
        body = gzip.compress(raw.getvalue().replace(b"\nu", f"\nu{n}-".encode()))
        s3.put_object(Bucket=bucket, Key=f"in/{n}.csv.gz", Body=body[: len(body) // 2] if n in truncate else body)


def run_job(workflow: SimpleNamespace, bucket: str, topic: str) -> tuple[str, dict, list[str]]:
    """Creates the job, starts its execution and waits for the end; returns the job id, the
    execution's description and the names of the top-level states entered."""
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    params = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}
    JobStore(workflow.table).create(job_id, PIPELINE, params)
    sfn = client("stepfunctions", workflow.endpoint)
    execution = sfn.start_execution(
        stateMachineArn=workflow.state_machine,
        name=job_id,
        input=json.dumps({"job_id": job_id, "pipeline": PIPELINE, "params": params}),
    )["executionArn"]
    deadline = time.monotonic() + EXECUTION_TIMEOUT_S
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution {job_id} still running after {EXECUTION_TIMEOUT_S} s"
        time.sleep(0.5)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    return job_id, described, entered


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
    """Object 1 is a truncated gzip: its shard fails on every attempt (the Retry waits for real:
    10 s x2 backoff with full jitter, 3 retries), the Map fails, and the job is FAILED without end markers."""
    put_objects(workflow.endpoint, bucket, [300, 300], truncate={1})
    job_id, execution, entered = run_job(workflow, bucket, topic)

    assert execution["status"] == "FAILED", execution
    assert entered[-2:] == ["MarkFailed", "Failed"] and "Finish" not in entered
    logs = shard_logs(workflow, job_id)
    assert sum("--shard 1" in log for log in logs) == 4, logs  # the first attempt and 3 retries
    job = JobStore(workflow.table).get(job_id)
    assert job.status == "FAILED"
    assert job.error["Error"] == "States.ExceedToleratedFailureThreshold"
    assert "item 1: States.TaskFailed" in job.error["Cause"] and '"ExitCode": ' in job.error["Cause"]
    assert execution.get("error") == "States.ExceedToleratedFailureThreshold"
    _, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert markers == {}


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
