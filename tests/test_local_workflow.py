"""The local workflow as `pipelines dev up` sets it up: the stack's AWS emulator (the workflow server,
started by the session's `stack` fixture), the Terraform module applied to it (the session's
`deployed` fixture: terraform/examples/local, as `pipelines dev up` and bin/deploy-local apply it),
and the HTTP API (`pipelines.aws.api.make_server`) in a thread. A `POST /imports` then runs the
state machine Terraform rendered from statemachine.json against the real Kafka broker; the Lambda
steps run with the function's environment as Terraform set it, the shard tasks with the task
definition's.

Bridges used (each documented in pipelines/devstack/workflow_server.py):
  a. bridge_service_parameters   ecs:runTask.sync parameters reach moto's ECS with boto's names
  b. bridge_lambda_invoke        MarkRunning / Plan / RunInLambda / Finish / Mark* / trigger run pipelines.aws.handler
  c. bridge_ecs_run_task         each shard's Fargate task is a `python -m pipelines run ...` subprocess
     bridge_ecs_sync_exit_code   (a shard's exit code decides its state)
and one in this file, for the S3 drop:
  f. S3 event -> rule -> SQS -> InputTransformer -> Lambda invoke: moto 5.2.5 cannot deliver an
     EventBridge event to a Lambda target (Rule.send_to_targets raises NotImplementedError, which
     S3's notification path swallows), and it passes S3 events to SQS targets untransformed. So
     the rule rendered from workflow/s3_drop_rule.json gets an SQS target; the test applies the
     target's InputTransformer (workflow/s3_drop_input.json, with the workflow server's own
     `_target_input`) and invokes the Lambda with the result, as EventBridge would.
     `test_the_s3_drop_rule_reaches_the_lambda` checks the direct path (rule -> Lambda target).

Several shards without touching the shared emulator's environment (PIPELINES_SHARD_BYTES is read
by the Plan step inside it): the test writes the job's plan (shard size 1 byte: one shard per
object) where the Plan step looks for it, and submits the job under that id; the Plan step finds
the plan, as it does when a retried Plan step finds its own earlier one.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from conftest import consume_all, create_topic, is_marker, rows_and_markers
from workflow_setup import api_call, warm_up_group_coordinator
from workflow_setup import wait_for_job as wait_for_job_at

from pipelines.devstack.resources import EVENT_BUS
from pipelines.devstack.sample import write_audience_csv
from pipelines.aws.jobs import DETAIL_TYPE, JobStore

PIPELINE = "send_audience_to_kafka"
TIMEOUT_S = 240


def client(service: str, endpoint: str):
    return boto3.session.Session().client(service, region_name="us-east-1", endpoint_url=endpoint)


@pytest.fixture(scope="module")
def local(stack, deployed) -> Iterator[SimpleNamespace]:
    """The workflow the Terraform module created in the stack's emulator, and the API on a free port."""
    from pipelines.aws.api import make_server, step_functions_starter
    from pipelines.devstack.deploy import workflow_env

    endpoint, outputs = stack.aws_endpoint_url, deployed.outputs
    env = workflow_env(outputs, "")
    store = JobStore(env["PIPELINES_JOBS_TABLE"], event_bus=env["PIPELINES_EVENT_BUS"])
    starter = step_functions_starter(env["PIPELINES_STATE_MACHINE_ARN"], client("stepfunctions", endpoint))
    server = make_server(0, store=store, start_execution=starter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    warm_up_group_coordinator(stack.kafka_bootstrap)
    variables = client("lambda", endpoint).get_function_configuration(FunctionName=outputs["function_name"])["Environment"]["Variables"]
    try:
        yield SimpleNamespace(
            endpoint=endpoint,
            env=env,
            store=store,
            drop_bucket=outputs["bucket_name"],
            function=outputs["function_name"],
            schedule_name=f"{outputs['function_name']}-nightly-export",
            function_env=variables,
            api=f"http://127.0.0.1:{server.server_address[1]}",
            logs=getattr(stack, "state_dir", None) and stack.state_dir / "workflow-logs",
        )
    finally:
        server.shutdown()
        server.server_close()


def api(local: SimpleNamespace, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    return api_call(local.api, method, path, body, timeout=30)


def wait_for_job(local: SimpleNamespace, job_id: str) -> dict:
    return wait_for_job_at(local.api, job_id, TIMEOUT_S)


def gzip_audience(rows: int, tag: str) -> bytes:
    raw = io.BytesIO()
    write_audience_csv(raw, rows, seed=len(tag))
    return gzip.compress(raw.getvalue().replace(b"\nu", f"\nu{tag}-".encode()))


def status_queue(endpoint: str, job_id: str) -> str:
    """An SQS queue receiving the job's status events (a rule on the bus they are published to)."""
    events, sqs = client("events", endpoint), client("sqs", endpoint)
    name = f"status-{uuid.uuid4().hex[:10]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["audience-pipelines"], "detail-type": [DETAIL_TYPE], "detail": {"job_id": [job_id]}}
    events.put_rule(Name=name, EventBusName=EVENT_BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, EventBusName=EVENT_BUS, Targets=[{"Id": "observer", "Arn": arn}])
    return url


def drain(endpoint: str, queue_url: str, wanted: int, timeout: float = 10) -> list[dict]:
    sqs, bodies = client("sqs", endpoint), []
    deadline = time.monotonic() + timeout
    while len(bodies) < wanted and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def largest_payload(endpoint: str, execution_arn: str) -> tuple[int, str]:
    """The largest input/output/parameters string in the execution's history, and where it was."""
    from pipelines.devstack.resources import largest_payload as largest_in

    return largest_in(client("stepfunctions", endpoint).get_execution_history(executionArn=execution_arn, maxResults=1000)["events"])


def execution_status(sfn, execution_arn: str, timeout: float = 15) -> str:
    """The execution's status once it has ended. The job's record says SUCCEEDED as the MarkSucceeded
    step writes it; the execution ends a moment later, after that Lambda invocation has returned."""
    deadline = time.monotonic() + timeout
    while (status := sfn.describe_execution(executionArn=execution_arn)["status"]) == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    return status


def job_records(bootstrap: str, topic: str, job_id: str) -> list:
    return [m for m in consume_all(bootstrap, topic) if ("pipelines.job_id", job_id.encode()) in (m.headers() or [])]


def test_api_import_of_three_objects_over_three_shards_end_to_end(local, stack, capsys):
    from pipelines.engine.config import load_job
    from pipelines.aws.pipeline_configs import config_path
    from pipelines.engine.run import default_plan_uri, write_plan

    bucket, topic = f"data-{uuid.uuid4().hex[:10]}", f"audience-{uuid.uuid4().hex[:10]}"
    create_topic(stack.kafka_bootstrap, topic, 6)
    s3 = client("s3", local.endpoint)
    s3.create_bucket(Bucket=bucket)
    counts = [1000, 1500, 2000]
    for n, rows in enumerate(counts):
        s3.put_object(Bucket=bucket, Key=f"in/{n}.csv.gz", Body=gzip_audience(rows, f"o{n}"))
    params = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}
    job_id = f"local-{uuid.uuid4().hex[:12]}"
    job = load_job(config_path(PIPELINE), params)
    assert len(write_plan(job, job_id, default_plan_uri(job, job_id), shard_bytes=1).shards) == 3
    events_queue = status_queue(local.endpoint, job_id)

    started = time.monotonic()
    status, answer = api(local, "POST", "/imports", {"pipeline": PIPELINE, "params": params, "job_id": job_id})
    assert status == 202 and answer["job_id"] == job_id, answer
    final = wait_for_job(local, job_id)
    wall = time.monotonic() - started

    assert (final["status"], final["rows_read"], final["rows_written"], final["rows_skipped"], final["error"]) == ("SUCCEEDED", 4500, 4500, 0, None), final
    sfn = client("stepfunctions", local.endpoint)
    assert execution_status(sfn, answer["execution_arn"]) == "SUCCEEDED"
    history = sfn.get_execution_history(executionArn=answer["execution_arn"], maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert "Shards" in entered and "RunInLambda" not in entered and entered[-2:] == ["MarkSucceeded", "Succeeded"], entered
    if local.logs is not None:  # the shards ran as three `pipelines run` subprocesses (bridge c)
        logs = [p.read_text() for p in local.logs.glob("task-*.log")]
        assert sum(f"/_jobs/{job_id}/plan.json" in text for text in logs) == 3

    rows, markers = rows_and_markers(job_records(stack.kafka_bootstrap, topic, job_id))
    keys = Counter(msg.key() for msg in rows)
    assert len(keys) == 4500 and set(keys.values()) == {1}  # every row once
    assert sorted(markers) == list(range(6)) and sum(m["partition_rows"] for m in markers.values()) == 4500
    assert {m["shard_count"] for m in markers.values()} == {3}

    published = drain(local.endpoint, events_queue, 3)
    statuses = sorted(e["detail"]["status"] for e in published)
    assert statuses == ["QUEUED", "RUNNING", "SUCCEEDED"], published
    assert next(e for e in published if e["detail"]["status"] == "SUCCEEDED")["detail"]["rows_written"] == 4500

    size, where = largest_payload(local.endpoint, answer["execution_arn"])
    assert size < 256 * 1024
    with capsys.disabled():
        print(f"\nlocal workflow e2e (POST /imports -> SUCCEEDED, 3 objects, 3 shards, 4500 rows): {wall:.1f} s wall; "
              f"largest state payload {size} bytes ({where})")


def test_an_s3_drop_delivered_twice_imports_once(local, stack):
    from pipelines.devstack.workflow_server import _target_input
    from pipelines.aws.triggers import render_trigger

    endpoint, bucket = local.endpoint, f"drop2-{uuid.uuid4().hex[:10]}"
    create_topic_if_missing(stack.kafka_bootstrap, "audience-members", 6)  # the drop input's params carry no topic
    s3, events, sqs = (client(name, endpoint) for name in ("s3", "events", "sqs"))
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    queue_url = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = render_trigger("s3_drop_rule", {"bucket": bucket, "prefix": "drops/", "suffix": ".csv.gz"})
    target = {"Id": "importer", "Arn": queue_arn, "InputTransformer": render_trigger("s3_drop_input", {"pipeline": PIPELINE})}
    events.put_rule(Name=bucket, EventBusName=EVENT_BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=bucket, EventBusName=EVENT_BUS, Targets=[target])

    body = gzip_audience(800, bucket)
    for _ in range(2):  # the same object PUT twice: the same ETag
        s3.put_object(Bucket=bucket, Key="drops/audience.csv.gz", Body=body)
    s3.put_object(Bucket=bucket, Key="drops/notes.txt", Body=b"not a drop")  # no match: wrong suffix
    delivered = drain(endpoint, queue_url, 3, timeout=5)
    assert len(delivered) == 2 and {e["detail"]["object"]["key"] for e in delivered} == {"drops/audience.csv.gz"}

    lam, answers = client("lambda", endpoint), []
    for event in delivered:  # bridge f: what EventBridge hands the Lambda target
        response = lam.invoke(FunctionName=local.function, Payload=_target_input(target, event).encode())
        assert "FunctionError" not in response, response["Payload"].read()
        answers.append(json.loads(response["Payload"].read()))
    job_ids = {a["job_id"] for a in answers}
    assert len(job_ids) == 1 and next(iter(job_ids)).startswith("s3-"), answers
    job_id = job_ids.pop()

    final = wait_for_job(local, job_id)
    assert (final["status"], final["rows_written"]) == ("SUCCEEDED", 800), final
    assert final["params"] == {"S3_BUCKET": bucket, "S3_KEY": "drops/audience.csv.gz"}
    executions = client("stepfunctions", endpoint).list_executions(stateMachineArn=local.env["PIPELINES_STATE_MACHINE_ARN"])["executions"]
    assert [e["name"] for e in executions].count(job_id) == 1
    rows, markers = rows_and_markers(job_records(stack.kafka_bootstrap, "audience-members", job_id))
    assert len(rows) == len({m.key() for m in rows}) == 800 and len(markers) == 6


def test_the_s3_drop_rule_reaches_the_lambda(local, stack):
    """The module's drop rule on its bucket (Lambda target; the workflow server bridges moto's missing
    Lambda-target delivery) imports a dropped object. The module's bucket is versioned, so the same
    bytes PUT again are a new version of the object and a second import, as on AWS (the job id is
    made of the version id; one event delivered twice is one job: the test above)."""
    create_topic_if_missing(stack.kafka_bootstrap, "audience-members", 6)
    s3 = client("s3", local.endpoint)
    key, body = f"drops/probe-{uuid.uuid4().hex[:8]}.csv.gz", gzip_audience(10, "probe")
    versions = [s3.put_object(Bucket=local.drop_bucket, Key=key, Body=body)["VersionId"] for _ in range(2)]
    assert len(set(versions)) == 2 and "null" not in versions
    deadline = time.monotonic() + 60
    while True:
        jobs = [j for j in local.store.list(limit=1000) if j.params.get("S3_KEY") == key]
        if len(jobs) == 2 and all(j.status in ("SUCCEEDED", "FAILED") for j in jobs):
            break
        assert time.monotonic() < deadline, f"not two finished jobs for the two versions after 60 s: {jobs}"
        time.sleep(0.5)
    assert [(j.status, j.rows_written) for j in jobs] == [("SUCCEEDED", 10)] * 2, jobs
    from pipelines.aws.triggers import s3_drop_job_id

    assert {j.job_id for j in jobs} == {s3_drop_job_id(local.drop_bucket, key, v, PIPELINE) for v in versions}


def create_topic_if_missing(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient

    if name not in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics:
        create_topic(bootstrap, name, partitions)


def test_the_scheduled_export_runs_through_the_workflow(local, stack):
    """The module's schedule, its input from workflow/schedule_input.json, targets the Lambda; moto stores
    schedules but never fires them, so the test fires it: the Lambda gets the schedule's Input with the
    Scheduler's <aws.scheduler.*> attributes filled in, as AWS would do. The export pipeline
    (configs/export_audience_to_s3.yml.liquid) then runs through the state machine: plan, a Fargate-style
    shard task, and the manifest at the finish."""
    from confluent_kafka import Producer

    from pipelines.devstack.resources import EXPORT_SCHEDULE
    from pipelines.engine.manifest import verify

    schedule = client("scheduler", local.endpoint).get_schedule(Name=local.schedule_name)
    assert schedule["ScheduleExpression"] == EXPORT_SCHEDULE and schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"].endswith(f":function:{local.function}")
    assert json.loads(target["Input"])["pipeline"] == "export_audience_to_s3"

    s3 = client("s3", local.endpoint)
    create_topic_if_missing(stack.kafka_bootstrap, "audience-members", 6)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True})
    for i in range(300):
        value = {"user_id": f"sched{i}", "country": "FR", "score": i / 2, "opted_in": i % 2 == 0, "updated_at": "2026-11-21T10:00:00+00:00", "segment_id": 7}
        producer.produce("audience-members", json.dumps(value).encode(), f"sched{i}".encode())
    assert producer.flush(30) == 0
    expected = sorted(
        json.loads(m.value())["user_id"] for m in consume_all(stack.kafka_bootstrap, "audience-members") if not is_marker(m)
    )
    fired = (
        target["Input"]
        .replace("<aws.scheduler.scheduled-time>", "2026-11-22T03:00:00Z")
        .replace("<aws.scheduler.schedule-arn>", schedule["Arn"])
    )
    answer = client("lambda", local.endpoint).invoke(FunctionName=target["Arn"], Payload=fired.encode())
    assert "FunctionError" not in answer, answer["Payload"].read()
    job_id = json.loads(answer["Payload"].read())["job_id"]
    deadline = time.monotonic() + 90
    while (job := local.store.get(job_id)) is None or job.status not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert (job.status, job.rows_written, job.pipeline) == ("SUCCEEDED", len(expected), "export_audience_to_s3"), job

    manifest_uri = f"s3://{local.drop_bucket}/exports/audience-members/{job_id}/_manifest.json"
    checked = verify(manifest_uri, count_rows=True, client=s3)
    assert checked.ok, checked.problems
    assert checked.manifest.total_rows == checked.rows_counted == len(expected)
    exported = []
    for entry in checked.manifest.files:
        bucket, _, key = entry.uri.removeprefix("s3://").partition("/")
        text = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).decode()
        exported += [row["user_id"] for row in csv.DictReader(io.StringIO(text))]
    assert sorted(exported) == expected


# --------------------------------------------------------------------- defaults and progress (issue 16)

MINIMAL = "send_audience_to_kafka_minimal"


def workflow_defaults_here(local: SimpleNamespace, monkeypatch) -> dict[str, str]:
    """The default work dir and error output Terraform gave the workflow's function, also in this process."""
    defaults = {name: local.function_env[name] for name in ("PIPELINES_WORK_DIR", "PIPELINES_ERROR_OUTPUT")}
    assert defaults["PIPELINES_WORK_DIR"] == f"s3://{local.drop_bucket}/_jobs", defaults
    for name, value in defaults.items():
        monkeypatch.setenv(name, value)
    return defaults


def read_s3_json(local: SimpleNamespace, uri: str) -> dict:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(client("s3", local.endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def start_watch(local: SimpleNamespace, job_id: str):
    """`pipelines jobs watch JOB_ID`, its stdout a pipe (not a terminal): JSON lines."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "pipelines", "jobs", "watch", job_id, "--interval", "0.2", "--api", local.api]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_PROXY": "127.0.0.1"})


def rerun_shard(local: SimpleNamespace, job_id: str, params: dict, plan_uri: str, shard: int, *extra: str):
    """Shard `shard` run again as its Fargate task runs it (the state machine's command and overrides)."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "PIPELINES_JOB_ID": job_id, "PIPELINES_PARAMS": json.dumps(params), "PIPELINES_JOBS_TABLE": local.env["PIPELINES_JOBS_TABLE"]}
    command = [sys.executable, "-m", "pipelines", "run", f"configs/{MINIMAL}.yml.liquid", "--plan", plan_uri, "--shard", str(shard), *extra]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_config_without_exec_runs_on_the_workflows_defaults_and_shows_its_progress(local, stack, monkeypatch, capsys):
    """configs/send_audience_to_kafka_minimal.yml.liquid has no `exec:` at all (as `pipelines guess` writes
    a config). It is shipped rather than written by the test because the workflow server (bridge b, c)
    and an image built from the repository read the configs folder, not a test's folder. The shared
    emulator's environment cannot change per test, so for several shards the test writes the plan
    (one shard per object) where the workflow's default work dir puts it, and the Plan step finds it
    there: had the default not applied, the Plan step would have failed ("needs its work dir on S3").

    While it runs, `pipelines jobs watch` (stdout a pipe: JSON lines) follows it; at the end the counts
    the shards added as they committed equal the job summary's. Then shards are run again as a retried
    task would (report file gone: recovered from Kafka's committed record; and --force): each is
    refused as counted already, and the counts do not move."""
    from pipelines.aws.pipeline_configs import config_path
    from pipelines.engine.config import load_job
    from pipelines.engine.run import default_plan_uri, write_plan

    defaults = workflow_defaults_here(local, monkeypatch)
    bucket, topic = f"data-{uuid.uuid4().hex[:10]}", f"audience-{uuid.uuid4().hex[:10]}"
    create_topic(stack.kafka_bootstrap, topic, 6)
    s3 = client("s3", local.endpoint)
    s3.create_bucket(Bucket=bucket)
    counts = [20_000, 30_000, 40_000]
    for n, rows in enumerate(counts):
        s3.put_object(Bucket=bucket, Key=f"in/{n}.csv.gz", Body=gzip_audience(rows, f"m{n}"))
    params = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}
    job_id = f"minimal-{uuid.uuid4().hex[:12]}"
    job = load_job(config_path(MINIMAL), params)
    plan_uri = default_plan_uri(job, job_id)
    assert plan_uri == f"{defaults['PIPELINES_WORK_DIR']}/{job_id}/plan.json"
    assert len(write_plan(job, job_id, plan_uri, shard_bytes=1).shards) == 3

    status, answer = api(local, "POST", "/imports", {"pipeline": MINIMAL, "params": params, "job_id": job_id})
    assert status == 202, answer
    watch = start_watch(local, job_id)
    final = wait_for_job(local, job_id)
    out, err = watch.communicate(timeout=30)

    assert (final["status"], final["rows_written"], final["error"]) == ("SUCCEEDED", sum(counts), None), final
    entered = execution_states(local, answer["execution_arn"])
    assert "Shards" in entered and "RunInLambda" not in entered, entered
    summary = read_s3_json(local, plan_uri.replace("plan.json", "summary.json"))  # in the default work dir
    progress = final["progress"]
    assert (progress["shards_done"], progress["shards_total"]) == (3, 3)
    assert {k: progress[k] for k in ("rows_read", "rows_written", "rows_skipped", "bytes_read")} == {
        k: summary[k] for k in ("rows_read", "rows_written", "rows_skipped", "bytes_read")
    }
    assert progress["rows_per_second"] > 0 and progress["elapsed_seconds"] > 0 and progress["eta_seconds"] is None

    check_watch_lines(watch.returncode, out, err, job_id, progress)
    check_reruns_are_not_counted(local, job_id, params, plan_uri, progress, s3)
    with capsys.disabled():
        print(f"\n`pipelines jobs watch {job_id}` (not a terminal) during the 3-shard import:\n{out}", end="")


def execution_states(local: SimpleNamespace, execution_arn: str) -> list[str]:
    history = client("stepfunctions", local.endpoint).get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def check_watch_lines(code: int, out: str, err: str, job_id: str, progress: dict) -> None:
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and err == "", (code, err)
    assert lines and all(line["job_id"] == job_id for line in lines)
    assert lines[-1]["status"] == "SUCCEEDED" and lines[-1]["shards_done"] == 3 and lines[-1]["rows_written"] == progress["rows_written"]
    assert any(line["status"] == "RUNNING" for line in lines), lines
    done = [line["shards_done"] or 0 for line in lines]
    assert done == sorted(done), "shards are only ever added"
    seen = [(line["shards_done"], line["rows_written"]) for line in lines if line["shards_done"]]
    assert all(rows > 0 for _, rows in seen)


def check_reruns_are_not_counted(local: SimpleNamespace, job_id: str, params: dict, plan_uri: str, progress: dict, s3) -> None:
    bucket, _, key = plan_uri.removeprefix("s3://").partition("/")
    s3.delete_object(Bucket=bucket, Key=key.replace("plan.json", "shards/00001.json"))  # as if killed before writing it
    recovered = rerun_shard(local, job_id, params, plan_uri, 1)
    assert recovered.returncode == 0 and "done already" in recovered.stderr, recovered.stderr
    forced = rerun_shard(local, job_id, params, plan_uri, 0, "--force")  # commits shard 0 a second time
    assert forced.returncode == 0 and json.loads(forced.stdout.splitlines()[-1])["status"] == "succeeded", forced.stderr
    for run in (recovered, forced):
        events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
        assert [e["event"] for e in events if e["event"].startswith("job_progress")] == ["job_progress_counted_already"], run.stderr
    _, after = api(local, "GET", f"/jobs/{job_id}")
    unchanged = ("shards_done", "rows_read", "rows_written", "rows_skipped", "bytes_read")
    assert {k: after["progress"][k] for k in unchanged} == {k: progress[k] for k in unchanged}


def test_the_lambdas_shard_and_a_bad_row_on_the_workflows_defaults(local, stack, monkeypatch):
    """A small job (one shard, RunInLambda) of the config without `exec:`: its progress comes from the
    Lambda's run_shard task, and invoking that task again (a Lambda retry) adds nothing. Then a drop
    with one bad row: the shard fails (max_errors 0 by default), nothing is counted, and the bad row is
    in the workflow's default error output (the module bucket's _errors/)."""
    defaults = workflow_defaults_here(local, monkeypatch)
    bucket, topic = f"small-{uuid.uuid4().hex[:10]}", f"audience-{uuid.uuid4().hex[:10]}"
    create_topic(stack.kafka_bootstrap, topic, 6)
    s3 = client("s3", local.endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="ok/a.csv.gz", Body=gzip_audience(700, "small"))
    bad = gzip.decompress(gzip_audience(50, "bad")).replace(b"\nubad-", b"\nubad-x,FR,not-a-number,true,2026-11-01T00:00:00Z\nubad-", 1)
    s3.put_object(Bucket=bucket, Key="bad/a.csv", Body=bad)

    job_id = submit_and_wait(local, {"S3_BUCKET": bucket, "S3_KEY": "ok/", "KAFKA_TOPIC": topic}, "SUCCEEDED")
    job = local.store.get(job_id)
    assert (job.progress.shards_done, job.progress.shards_total, job.progress.rows_written) == (1, 1, 700)
    plan_uri = f"{defaults['PIPELINES_WORK_DIR']}/{job_id}/plan.json"
    payload = {"task": "run_shard", "job_id": job_id, "pipeline": MINIMAL, "params": job.params, "plan_uri": plan_uri, "shard": 0}
    again = client("lambda", local.endpoint).invoke(FunctionName=local.function, Payload=json.dumps(payload).encode())
    assert "FunctionError" not in again and json.loads(again["Payload"].read())["skipped"] is True
    assert local.store.get(job_id).progress == job.progress

    failed_id = submit_and_wait(local, {"S3_BUCKET": bucket, "S3_KEY": "bad/", "KAFKA_TOPIC": topic}, "FAILED")
    failed = local.store.get(failed_id)
    error_file = f"{defaults['PIPELINES_ERROR_OUTPUT']}{failed_id}.shard-00000.errors.jsonl"
    assert error_file in failed.error["Cause"], failed.error
    bucket_name, _, key = error_file.removeprefix("s3://").partition("/")
    (row,) = [json.loads(line) for line in client("s3", local.endpoint).get_object(Bucket=bucket_name, Key=key)["Body"].read().splitlines()]
    assert row["raw"].startswith("ubad-x,FR,not-a-number") and row["source"] == f"s3://{bucket}/bad/a.csv"
    assert (failed.progress.shards_total, failed.progress.shards_done) == (1, 0)  # a failed shard adds nothing


def submit_and_wait(local: SimpleNamespace, params: dict, expected: str) -> str:
    status, answer = api(local, "POST", "/imports", {"pipeline": MINIMAL, "params": params})
    assert status == 202, answer
    final = wait_for_job(local, answer["job_id"])
    assert final["status"] == expected, final
    assert "RunInLambda" in execution_states(local, answer["execution_arn"])
    return answer["job_id"]
