"""Shared setup of the workflow tests: the workflow server (pipelines/devstack/workflow_server.py)
started on a free port, the resources and the state machine created in it, and jobs run through it.

Used by tests/test_workflow_server.py and tests/test_workflow_scenarios.py; `api_call` and
`wait_for_job` (the HTTP API, local or the bridge of the Terraform-made one) also by
tests/test_local_workflow.py and tests/test_deploy_local.py. The server's own
environment (PIPELINES_SHARD_BYTES above all: the Plan step runs inside the server, bridge b)
is chosen per server with `workflow_server(..., extra_env)`.
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
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import boto3
from conftest import REPO, create_topic, free_port

from pipelines.devstack.sample import write_audience_csv
from pipelines.aws.jobs import JobStore, create_table
from pipelines.aws.workflow import render_definition

REGION = "us-east-1"
PIPELINE = "send_audience_to_kafka"
SMALL_JOB_BYTES = 1 << 20  # one shard up to 1 MiB runs in the Lambda
EXECUTION_TIMEOUT_S = 240


@contextmanager
def workflow_server(stack, logs: Path, extra_env: dict[str, str] | None = None, image: str | None = None) -> Iterator[SimpleNamespace]:
    """The workflow server on a free port, with the state machine and everything it names created.

    `extra_env` goes into the server's environment (and so into the Lambda handler it runs and
    the shard subprocesses it starts); with `image`, the server runs tasks and invocations in it. While the server runs, AWS_ENDPOINT_URL in this process
    points at it (JobStore and boto3 here talk to it)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    table = f"jobs-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PIPELINES_JOBS_TABLE": table,
        "PIPELINES_WORKFLOW_LOGS": str(logs),
        **(extra_env or {}),
    }
    with open(logs / "server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pipelines.devstack.workflow_server", "--port", str(port), *(["--image", image] if image else [])],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    saved_endpoint = os.environ.get("AWS_ENDPOINT_URL")
    try:
        warm_up_group_coordinator(stack.kafka_bootstrap)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        wait_until_answers(endpoint, server, logs / "server.log")
        yield SimpleNamespace(endpoint=endpoint, table=table, logs=logs, server=server, **create_resources(endpoint, table))
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


def wait_until_answers(endpoint: str, server: subprocess.Popen, log: Path) -> None:
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
        archive.writestr("README.txt", "bridged: the workflow server runs pipelines.aws.handler.handler in-process\n")
    function = client("lambda", endpoint).create_function(
        FunctionName="pipelines",
        Runtime="python3.11",
        Role=role,
        Handler="pipelines.aws.handler.handler",
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


def start_job(workflow: SimpleNamespace, bucket: str, topic: str) -> tuple[str, str]:
    """Creates the job (QUEUED) and starts its execution, named after the job id; returns both."""
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    params = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}
    JobStore(workflow.table).create(job_id, PIPELINE, params)
    execution = client("stepfunctions", workflow.endpoint).start_execution(
        stateMachineArn=workflow.state_machine,
        name=job_id,
        input=json.dumps({"job_id": job_id, "pipeline": PIPELINE, "params": params}),
    )["executionArn"]
    return job_id, execution


def wait_for_execution(workflow: SimpleNamespace, execution: str) -> tuple[dict, list[str]]:
    """Waits for the execution's end; returns its description and the names of the top-level states entered."""
    sfn = client("stepfunctions", workflow.endpoint)
    deadline = time.monotonic() + EXECUTION_TIMEOUT_S
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution {execution} still running after {EXECUTION_TIMEOUT_S} s"
        time.sleep(0.5)
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    return described, entered


def run_job(workflow: SimpleNamespace, bucket: str, topic: str) -> tuple[str, dict, list[str]]:
    """Creates the job, starts its execution and waits for the end; returns the job id, the
    execution's description and the names of the top-level states entered."""
    job_id, execution = start_job(workflow, bucket, topic)
    described, entered = wait_for_execution(workflow, execution)
    return job_id, described, entered


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never through a proxy


def api_call(base: str, method: str, path: str, body: dict | None = None, timeout: float = 60) -> tuple[int, dict]:
    """(status, JSON answer) of a request to the jobs API at `base`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_job(base: str, job_id: str, timeout_s: float, poll_s: float = 0.25) -> dict:
    """GET /jobs/{id} until the job SUCCEEDED or FAILED (within `timeout_s`): its last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, answer = api_call(base, "GET", f"/jobs/{job_id}")
        assert status == 200, answer
        if answer["status"] in ("SUCCEEDED", "FAILED"):
            return answer
        assert time.monotonic() < deadline, f"job {job_id} still {answer['status']} after {timeout_s} s"
        time.sleep(poll_s)
