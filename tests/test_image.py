"""The one image, built from container/Dockerfile by `bin/image build` (buildah, on a Debian bookworm
slim base made from Debian's archive with mmdebstrap) and run as AWS runs it: podman with runc, host
network, the image's user, the root file system read-only with only /tmp writable.

- Fargate: the command and environment statemachine.json's RunShard gives the container, for one
  shard of a real plan, against the real broker and moto; SIGTERM to the container's first process.
- Lambda: awslambdaric in the image, served by a local Lambda Runtime API
  (pipelines/devstack/lambda_runtime.py), answers the status, plan and finish tasks.
- The workflow: a workflow server started with --image runs every ECS task and Lambda invocation of
  the real statemachine.json in the image; the API's requests go to the function too.

These tests skip, saying why, only where buildah, podman, runc or mmdebstrap is missing; .ci/run
installs them from Debian's archive.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from typing import Any

import boto3
import pytest
from conftest import REPO, command_lines_until, consume_all, put_audiences, rows_and_markers
from slow_s3 import slow_s3

TOOLS = ("buildah", "podman", "runc", "mmdebstrap")
TAG = "audience-pipelines:dev"
SIGKILL_AFTER = 30.0


@pytest.fixture(scope="session")
def image() -> str:
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install buildah podman runc mmdebstrap; .ci/run does)")
    from pipelines.devstack.image import build

    started = time.monotonic()
    build(TAG)
    print(f"\nimage {TAG} built (or found up to date) in {time.monotonic() - started:.1f} s")
    return TAG


def in_image(tag: str, args: list[str], env: dict[str, str] | None = None, **options: Any) -> subprocess.CompletedProcess:
    """One run of the image as an ECS task (the values of `env` passed by name only)."""
    from pipelines.devstack.image import container_env, run_command

    env = env or {}
    command = run_command(tag, args, env, **options)
    return subprocess.run(command, env=container_env({**os.environ, **env}), capture_output=True, text=True, timeout=300)


def engine_env(**more: str) -> dict[str, str]:
    """What the task definition and the task role give a shard: the engine's variables, AWS's."""
    from pipelines.devstack.image import passed_environment

    return {**passed_environment(os.environ), **more}


# ------------------------------------------------------------------------------- as built


def test_the_image_runs_as_uid_10001_on_a_read_only_root(image):
    probe = (
        "import os, shutil, sys, sysconfig, pipelines.native._fastrows, pipelines.native._fastkafka\n"
        "def writable(path):\n"
        "    try:\n"
        "        open(path, 'w').close(); return True\n"
        "    except OSError as exc:\n"
        "        return exc.strerror\n"
        "print(__import__('json').dumps({'uid': os.getuid(), 'gid': os.getgid(), 'python': sys.version.split()[0],\n"
        "    'app': writable('/app/x'), 'root': writable('/x'), 'tmp': writable('/tmp/x'), 'cwd': os.getcwd(),\n"
        "    'gcc': shutil.which('gcc'), 'pip': shutil.which('pip'), 'configs': sorted(os.listdir('/app/configs')),\n"
        "    'pid': os.getpid()}))\n"
    )
    result = in_image(image, ["-c", probe], entrypoint="python")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["uid"], seen["gid"], seen["pid"]) == (10001, 10001, 1), seen
    assert seen["python"].startswith("3.11."), seen
    assert (seen["app"], seen["root"], seen["tmp"]) == ("Read-only file system", "Read-only file system", True), seen
    assert seen["cwd"] == "/app" and seen["gcc"] is None
    assert seen["configs"] == sorted(p.name for p in (REPO / "configs").iterdir()), "the configs ship in the image"

    started = time.monotonic()
    helped = in_image(image, ["--help"])
    print(f"`pipelines --help` in the image (container start included): {time.monotonic() - started:.2f} s")
    assert helped.returncode == 0 and "Usage: pipelines" in helped.stdout, helped.stderr


# ------------------------------------------------------------------------ Fargate mode


def intrinsic(expression: str, data: dict[str, Any]) -> Any:
    """Evaluates the intrinsic functions RunShard uses (States.Array, States.Format, States.JsonToString,
    'literals' and $.paths), so the test gives the container what statemachine.json gives it."""
    tokens = re.findall(r"States\.\w+|'(?:[^'\\]|\\.)*'|\$\.[\w.]+|[(),]", expression)
    position = 0

    def value() -> Any:
        nonlocal position
        token = tokens[position]
        position += 1
        if token.startswith("'"):
            return token[1:-1]
        if token.startswith("$."):
            found: Any = data
            for key in token[2:].split("."):
                found = found[key]
            return found
        assert tokens[position] == "(", expression
        position += 1
        args = []
        while tokens[position] != ")":
            args.append(value())
            position += tokens[position] == ","
        position += 1
        if token == "States.Array":
            return args
        if token == "States.Format":
            return args[0].replace("{}", "{!s}").format(*args[1:])
        assert token == "States.JsonToString", token
        return json.dumps(args[0], separators=(",", ":"))

    return value()


def run_shard_overrides(item: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The RunShard task's container override (Command, Environment) for one Map item."""
    machine = json.loads((REPO / "statemachine.json").read_text())
    processor = machine["States"]["Shards"]["ItemProcessor"]["States"]["RunShard"]
    override = processor["Parameters"]["Overrides"]["ContainerOverrides"][0]
    command = intrinsic(override["Command.$"], item)
    environment = {e["Name"]: (intrinsic(e["Value.$"], item) if "Value.$" in e else e["Value"]) for e in override["Environment"]}
    return command, environment


def shard_item(bucket: str, topic: str, job_id: str) -> dict[str, Any]:
    """A Map item as the Shards state's ItemSelector builds it (job, pipeline, params, plan, shard)."""
    return {
        "job_id": job_id,
        "pipeline": "send_audience_to_kafka",
        "params": {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic, "KAFKA_SASL_PASSWORD": "never-in-argv-5Qz"},
        "plan_uri": f"s3://{bucket}/_jobs/{job_id}/plan.json",
        "shard": 0,
    }


def plan_job(item: dict[str, Any]) -> None:
    from conftest import run_cli

    pairs = [arg for key, value in item["params"].items() for arg in ("--var", f"{key}={value}")]
    config = str(REPO / "configs" / f"{item['pipeline']}.yml.liquid")
    made = run_cli("plan", config, *pairs, "--out", item["plan_uri"], "--job-id", item["job_id"])
    assert made.returncode == 0, made.stderr


def committed_keys(bootstrap: str, topic: str) -> Counter:
    rows, _ = rows_and_markers(consume_all(bootstrap, topic))
    return Counter(m.key().decode() for m in rows)


def planned_shard(s3: Any, bucket: str, topic: str, objects: int, rows: int) -> tuple[list[str], dict[str, Any], list[str], dict[str, str]]:
    """Audiences in S3, a real plan of them, and its shard 0's container override: (user ids, Map item,
    command, environment)."""
    ids = put_audiences(s3, bucket, count=objects, rows=rows)
    item = shard_item(bucket, topic, f"image-{uuid.uuid4().hex[:8]}")
    plan_job(item)
    return ids, item, *run_shard_overrides(item)


@pytest.mark.integration
def test_a_fargate_shard_in_the_image(image, stack, s3, bucket, topic, tmp_path):
    from pipelines.devstack.image import container_env, run_command

    ids, item, command, environment = planned_shard(s3, bucket, topic, objects=2, rows=20_000)
    assert command == ["run", "configs/send_audience_to_kafka.yml.liquid", "--plan", item["plan_uri"], "--shard", "0"]
    assert json.loads(environment["PIPELINES_PARAMS"]) == item["params"]

    env = engine_env(**environment, PIPELINES_METRICS="emf")  # as in ECS, where it is on by default
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        process = subprocess.Popen(run_command(image, command, env), env=container_env({**os.environ, **env}), stdout=out, stderr=err)
        seen = command_lines_until(process)
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert process.returncode == 0, stderr
    metrics, summary = (json.loads(line) for line in stdout.splitlines())  # the shard's EMF line, then the summary
    assert (summary["status"], summary["rows_written"], summary["attempt"]) == ("succeeded", len(ids), 1), summary
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["pipeline", "status"]]
    assert (metrics["Shards"], metrics["RowsWritten"], metrics["status"]) == ([1.0], [float(len(ids))], "succeeded")

    keys = committed_keys(stack.kafka_bootstrap, topic)
    assert set(keys) == set(ids) and set(keys.values()) == {1}, "every row exactly once"
    report = json.loads(s3.get_object(Bucket=bucket, Key=f"_jobs/{item['job_id']}/shards/00000.json")["Body"].read())
    assert report["rows_written"] == len(ids)
    assert seen and not any(b"never-in-argv-5Qz" in line for line in seen), "no param value in any command line"


@pytest.mark.integration
def test_sigterm_to_the_container_aborts_its_shard_and_exits_75(image, stack, s3, bucket, topic):
    from conftest import wait_for_rows

    from pipelines.devstack.image import container_env, run_command, stop
    from pipelines.engine.errors import Terminated

    ids, _, command, environment = planned_shard(s3, bucket, topic, objects=1, rows=150_000)
    name = f"task-{uuid.uuid4().hex[:8]}"
    with slow_s3(stack.aws_endpoint_url, f"/{bucket}/in/", 256 * 1024) as endpoint:  # the input takes ~6 s to read
        env = engine_env(**environment, AWS_ENDPOINT_URL=endpoint)
        process = subprocess.Popen(
            run_command(image, command, env, name=name),
            env=container_env({**os.environ, **env}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_rows(stack.kafka_bootstrap, topic, 5_000, process)  # mid-shard: its transaction is open
        sent = time.monotonic()
        stop(name, "TERM")  # podman kill --signal TERM: to the container's first process, as ECS's StopTask
        _, stderr = process.communicate(timeout=SIGKILL_AFTER)
    seconds = time.monotonic() - sent
    print(f"SIGTERM to the container mid-shard: exit {process.returncode} after {seconds:.2f} s")
    assert process.returncode == 75, stderr
    assert f"error: {Terminated.SHARD}" in stderr.splitlines()
    assert committed_keys(stack.kafka_bootstrap, topic) == Counter(), "the shard's transaction was aborted"

    rerun = in_image(image, command, engine_env(**environment))
    assert rerun.returncode == 0, rerun.stderr
    keys = committed_keys(stack.kafka_bootstrap, topic)
    assert set(keys) == set(ids) and set(keys.values()) == {1}, "the retry gives every row once"


# ------------------------------------------------------------------------- Lambda mode


@pytest.mark.integration
def test_the_lambda_tasks_in_the_image(image, stack, s3, bucket, topic):
    """status, plan and finish through awslambdaric in one warm container; a shard between them in
    another container of the image; a failing invocation's error carries the exception's type."""
    from pipelines.devstack.lambda_runtime import LambdaContainer
    from pipelines.aws.jobs import JobStore, create_table

    table = f"jobs-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb"), table)
    ids = put_audiences(s3, bucket, count=1, rows=5_000)
    job_id = f"lambda-{uuid.uuid4().hex[:8]}"
    params = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}
    JobStore(table).create(job_id, "send_audience_to_kafka", params)
    base = {"job_id": job_id, "pipeline": "send_audience_to_kafka", "params": params}

    container = LambdaContainer(image, {**os.environ, "PIPELINES_JOBS_TABLE": table}, subprocess.DEVNULL)
    try:
        answers = [invoke(container, {"task": "status", "status": "RUNNING", **base})]
        print(f"Lambda container: first invocation answered {container.cold_start_seconds():.2f} s after the container's start")
        answers.append(plan := invoke(container, {"task": "plan", **base}))
        command, environment = run_shard_overrides({**base, "plan_uri": plan["plan_uri"], "shard": 0})
        assert in_image(image, command, engine_env(**environment)).returncode == 0
        answers.append(finish := invoke(container, {"task": "finish", **base, "plan_uri": plan["plan_uri"]}))
        failed = container.invoke(json.dumps({"task": "plan", **base, "pipeline": "nope"}).encode())
    finally:
        container.stop()
    assert answers[0] == {"job_id": job_id, "status": "RUNNING"}
    assert plan["plan_uri"] == f"s3://{bucket}/_jobs/{job_id}/plan.json" and plan["shard_count"] == 1
    assert (finish["rows_written"], finish["end_markers"]) == (len(ids), 6), finish
    assert failed.error["errorType"] == "ConfigError" and "no pipeline 'nope'" in failed.error["errorMessage"]
    _, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert sum(m["partition_rows"] for m in markers.values()) == len(ids)


def invoke(container: Any, event: dict[str, Any]) -> dict[str, Any]:
    invocation = container.invoke(json.dumps(event).encode(), timeout=120)
    assert invocation.error is None, invocation.error
    return json.loads(invocation.result)


# ---------------------------------------------------------------------------- workflow


@pytest.mark.integration
@pytest.mark.parametrize("runs_in", ["image", "checkout"])
def test_an_api_import_through_the_workflow_runs_in_the_image(runs_in, request, stack, tmp_path, capsys):
    """POST /imports (to the function, as API Gateway passes it on) -> the real statemachine.json, whose
    Lambda tasks and three Fargate shards all run in containers of the image -> SUCCEEDED, every row
    once, an end marker on every partition. The same job with the checkout's code, for the wall times."""
    from conftest import create_topic
    from workflow_setup import client, put_objects, workflow_server

    from pipelines.aws.api import lambda_forwarder, make_server

    image = request.getfixturevalue("image") if runs_in == "image" else None
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:pipelines"  # the one workflow_server creates
    with workflow_server(stack, tmp_path, {"PIPELINES_SHARD_BYTES": "1", "PIPELINES_STATE_MACHINE_ARN": machine}, image=image) as workflow:
        bucket, topic = f"data-{uuid.uuid4().hex[:10]}", f"audience-{uuid.uuid4().hex[:10]}"
        create_topic(stack.kafka_bootstrap, topic, 6)
        put_objects(workflow.endpoint, bucket, [3000, 4000, 5000])
        server = make_server(0, respond=lambda_forwarder("pipelines", client("lambda", workflow.endpoint)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            started = time.monotonic()
            status, answer = post_import(server, {"pipeline": "send_audience_to_kafka", "params": {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}})
            assert status == 202, answer
            described = wait_for(workflow, answer["execution_arn"])
            wall = time.monotonic() - started
        finally:
            server.shutdown()
            server.server_close()
        assert described["status"] == "SUCCEEDED", described
        tasks = [p.read_text() for p in sorted(tmp_path.glob("task-*.log"))]
        assert len(tasks) == 3, "three shards"
        assert all(t.split()[1].endswith("podman") == bool(image) for t in tasks), "each a container of the image, or a subprocess"
        assert bool(list(tmp_path.glob("lambda-*.log"))) == bool(image), "the function served by containers of the image"

    rows, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    keys = Counter(m.key() for m in rows)
    assert len(keys) == 12_000 and set(keys.values()) == {1}, "every row once"
    assert sorted(markers) == list(range(6)) and sum(m["partition_rows"] for m in markers.values()) == 12_000
    with capsys.disabled():
        print(f"\nworkflow in the {runs_in} (POST /imports -> SUCCEEDED, 3 shards, 12,000 rows): {wall:.1f} s wall")


def post_import(server: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{server.server_address[1]}/imports"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(workflow: Any, execution_arn: str) -> dict[str, Any]:
    from workflow_setup import wait_for_execution

    described, _ = wait_for_execution(workflow, execution_arn)
    return described
