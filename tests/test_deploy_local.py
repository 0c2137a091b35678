"""bin/deploy-local and `pipelines dev up`: the Terraform module applied for real to the local stack's
emulator, an import run through what it created, then destroyed.

The session's `deployed` fixture (tests/conftest.py) applies terraform/examples/local
(`pipelines.devstack.deploy`, what bin/deploy-local and `pipelines dev up` run) to the session's
stack (a real Kafka broker and the workflow server on free ports) once; at the session's end it
destroys it and checks that nothing is left. The workflow tests (test_local_workflow.py,
test_duplicate_starts.py, test_readme_commands.py) run on it too.
`test_the_module_applied_to_the_emulator_runs_an_api_import` POSTs an import to the
HTTP API Terraform created, served by the API bridge (`pipelines.devstack.api_gateway`: the route,
its integration, the Lambda function). The job runs on the module's resources only: the state
machine rendered by `templatefile`, its Lambda function (run with the function's environment, so
the jobs table and the work dir are the module's), the ECS cluster and task definition (the shard
runs with the container's environment), the bucket (the input under imports/, an allowed prefix;
the plan under _jobs/). The job is SUCCEEDED, its rows are in Kafka once each with their end markers,
and the schedule keeps Scheduler's placeholders.

It skips, saying why, where terraform or a local copy of the hashicorp/aws provider is missing
(no provider can be downloaded here), as tests/test_terraform.py does. The apply takes about 80 s:
the provider waits for the KMS key, then the SQS queue, then its policy to read back the same
several times in a row (6 polls 5 s apart for each SQS resource), as it does on AWS.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from conftest import consume_all, create_topic, rows_and_markers
from workflow_setup import api_call, wait_for_job, warm_up_group_coordinator

from pipelines.devstack import deploy
from pipelines.devstack.api_gateway import api_gateway_responder, match_route
from pipelines.devstack.module_bridges import validate_definition

PIPELINE = "send_audience_to_kafka"
ROWS = 1200
JOB_TIMEOUT_S = 120


def client(service: str, endpoint: str):
    return boto3.session.Session().client(service, region_name="us-east-1", endpoint_url=endpoint)


@pytest.fixture
def api(deployed: SimpleNamespace, stack) -> Iterator[str]:
    """The HTTP API Terraform created, served by the API bridge on a free port."""
    from pipelines.aws.api import make_server

    endpoint = stack.aws_endpoint_url
    responder = api_gateway_responder(deployed.outputs["api_id"], client("apigatewayv2", endpoint), client("lambda", endpoint))
    server = make_server(0, respond=responder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def put_import(endpoint: str, bucket: str, key: str) -> None:
    from pipelines.devstack.sample import write_audience_csv

    raw = io.BytesIO()
    write_audience_csv(raw, ROWS, seed=11)
    client("s3", endpoint).put_object(Bucket=bucket, Key=key, Body=gzip.compress(raw.getvalue()))


def test_the_module_applied_to_the_emulator_runs_an_api_import(deployed, api, stack, capsys) -> None:
    from conftest import DEPLOYED_NAME

    endpoint, outputs = stack.aws_endpoint_url, deployed.outputs
    bucket, table = outputs["bucket_name"], outputs["jobs_table_name"]
    assert (bucket, table, outputs["function_name"]) == (DEPLOYED_NAME, f"{DEPLOYED_NAME}-jobs", DEPLOYED_NAME)
    definition = json.loads(client("stepfunctions", endpoint).describe_state_machine(stateMachineArn=outputs["state_machine_arn"])["definition"])
    assert outputs["cluster_arn"] in json.dumps(definition) and "${" not in json.dumps(definition)  # templatefile filled it

    topic, key = f"audience-{uuid.uuid4().hex[:10]}", f"imports/{uuid.uuid4().hex[:8]}.csv.gz"
    create_topic(stack.kafka_bootstrap, topic, 3)
    warm_up_group_coordinator(stack.kafka_bootstrap)
    put_import(endpoint, bucket, key)
    assert api_call(api, "GET", "/nothing-here")[0] == 404  # no such route in the API Terraform created

    started = time.monotonic()
    status, answer = api_call(api, "POST", "/imports", {"pipeline": PIPELINE, "params": {"S3_BUCKET": bucket, "S3_KEY": key, "KAFKA_TOPIC": topic}})
    assert status == 202, answer
    job_id = answer["job_id"]
    final = wait_for_job(api, job_id, JOB_TIMEOUT_S, poll_s=0.5)
    job_seconds = time.monotonic() - started
    assert (final["status"], final["rows_written"], final["error"]) == ("SUCCEEDED", ROWS, None), json.dumps(final, indent=1)

    # The run used the module's resources: its execution, its table, its bucket's work dir.
    assert answer["execution_arn"].startswith(outputs["state_machine_arn"].replace(":stateMachine:", ":execution:"))
    item = client("dynamodb", endpoint).get_item(TableName=table, Key={"job_id": {"S": job_id}})
    assert item["Item"]["status"]["S"] == "SUCCEEDED"
    client("s3", endpoint).head_object(Bucket=bucket, Key=f"_jobs/{job_id}/plan.json")
    history = client("stepfunctions", endpoint).get_execution_history(executionArn=answer["execution_arn"], maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert "RunInLambda" in entered and entered[-2:] == ["MarkSucceeded", "Succeeded"], entered  # one small shard

    records = [m for m in consume_all(stack.kafka_bootstrap, topic) if ("pipelines.job_id", job_id.encode()) in (m.headers() or [])]
    rows, markers = rows_and_markers(records)
    assert len(rows) == ROWS and set(Counter(m.key() for m in rows).values()) == {1}
    assert sorted(markers) == [0, 1, 2] and sum(m["partition_rows"] for m in markers.values()) == ROWS

    # The schedule's input keeps Scheduler's context attributes as Scheduler looks for them (not \u003c-escaped).
    schedule = client("scheduler", endpoint).get_schedule(Name=f"{DEPLOYED_NAME}-nightly-export", GroupName="default")
    scheduled = schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", "2026-12-07T03:00:00Z")
    scheduled = json.loads(scheduled.replace("<aws.scheduler.schedule-arn>", outputs["schedule_arns"]["nightly-export"]))
    assert scheduled["params"] == {"SCHEDULED_TIME": "2026-12-07T03:00:00Z", "EXPORT_BUCKET": bucket}, scheduled

    with capsys.disabled():
        print(f"\ndeploy-local: apply {deployed.apply_seconds:.0f} s, POST /imports -> SUCCEEDED {job_seconds:.1f} s")


# ----------------------------------------------------------------------------- without the stack


def test_deploy_needs_the_stacks_endpoints(tmp_path: Path) -> None:
    with pytest.raises(deploy.DeployError, match=r"pipelines dev up"):
        deploy.stack_variables({})
    with pytest.raises(deploy.DeployError, match=r"not the local emulator"):
        deploy.stack_variables({"AWS_ENDPOINT_URL": "https://states.eu-west-1.amazonaws.com", "KAFKA_BOOTSTRAP": "b:9092"})
    variables = deploy.stack_variables({"AWS_ENDPOINT_URL": "http://127.0.0.1:5001", "KAFKA_BOOTSTRAP": "127.0.0.1:9092,127.0.0.1:9093"})
    assert json.loads(variables["TF_VAR_kafka_bootstrap_servers"]) == ["127.0.0.1:9092", "127.0.0.1:9093"]


def test_the_sources_are_copied_out_of_the_repository(tmp_path: Path) -> None:
    folder = deploy.copy_sources(tmp_path)
    assert folder == tmp_path / "src" / "terraform" / "examples" / "local" and (folder / "main.tf").is_file()
    assert (tmp_path / "src" / "statemachine.json").is_file() and (tmp_path / "src" / "workflow" / "s3_drop_rule.json").is_file()


def test_api_routes_match_as_api_gateway_matches_them() -> None:
    keys = ["POST /imports", "GET /jobs", "GET /jobs/{id}"]
    assert match_route(keys, "GET", "/jobs/abc") == ("GET /jobs/{id}", {"id": "abc"})
    assert match_route(keys, "POST", "/imports") == ("POST /imports", {})
    assert match_route(keys, "GET", "/imports") is None and match_route(keys, "GET", "/jobs/a/b") is None
    assert match_route([*keys, "$default"], "DELETE", "/x") == ("$default", {})


def test_the_definition_validator_bridge() -> None:
    definition = (Path(__file__).resolve().parent.parent / "statemachine.json").read_text()
    assert validate_definition(definition)["result"] == "OK"
    failed = validate_definition('{"StartAt": "A", "States": {"A": {"Type": "Nope"}}}')
    assert failed["result"] == "FAIL" and failed["diagnostics"][0]["severity"] == "ERROR"


def test_a_bucket_with_delete_markers_can_be_emptied_after_its_versioning_is_suspended(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `terraform destroy` does to the module's bucket once jobs have deleted objects in it:
    suspend versioning, then delete every version, delete markers too (bridge_s3_delete_marker_dispose)."""
    from moto import mock_aws

    from pipelines.devstack.module_bridges import bridge_s3_delete_marker_dispose

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the session's stack, if started, is not this in-process moto
    bridge_s3_delete_marker_dispose()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="module-bucket")
        s3.put_bucket_versioning(Bucket="module-bucket", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="module-bucket", Key="_jobs/j/shards/00001.json", Body=b"{}")
        s3.delete_object(Bucket="module-bucket", Key="_jobs/j/shards/00001.json")  # a delete marker over the object
        s3.put_bucket_versioning(Bucket="module-bucket", VersioningConfiguration={"Status": "Suspended"})
        listed = s3.list_object_versions(Bucket="module-bucket")
        versions = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]
        assert len(versions) == 2
        answer = s3.delete_objects(Bucket="module-bucket", Delete={"Objects": versions})
        assert not answer.get("Errors"), answer
        s3.delete_bucket(Bucket="module-bucket")


def test_a_functions_environment_is_found_for_the_lambda_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda bridge runs a function with environment variables (as Terraform creates it) with
    them: function_config finds them in moto's backend, by name or ARN; none for a function without."""
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the session's stack, if started, is not this in-process moto

    from pipelines.devstack.lambda_process import function_config

    with mock_aws(config={"lambda": {"use_docker": False}}):
        iam, lam = boto3.client("iam", region_name="us-east-1"), boto3.client("lambda", region_name="us-east-1")
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("README.txt", "bridged")
        common = {"Runtime": "python3.11", "Role": role, "Handler": "pipelines.aws.handler.handler", "Code": {"ZipFile": code.getvalue()}}
        arn = lam.create_function(FunctionName="with-env", Environment={"Variables": {"PIPELINES_JOBS_TABLE": "t"}}, **common)["FunctionArn"]
        lam.create_function(FunctionName="without-env", **common)
        assert function_config("123456789012", "us-east-1", arn) == ("with-env", {"PIPELINES_JOBS_TABLE": "t"})
        assert function_config("123456789012", "us-east-1", "without-env") == ("without-env", {})
        assert function_config("123456789012", "us-east-1", "missing") == ("missing", {})


def test_a_function_with_an_environment_runs_in_a_warm_process_of_its_own(tmp_path: Path) -> None:
    """lambda_process: awslambdaric serves the handler, an error comes back as Lambda reports it
    (errorType = the exception's class), and the second invocation reuses the warm process."""
    from pipelines.devstack.lambda_process import FunctionProcesses

    processes = FunctionProcesses(tmp_path, Path(__file__).resolve().parent.parent)
    try:
        for _ in range(2):
            answer, failed = processes.invoke_function("fn", {"PIPELINES_JOBS_TABLE": "t"}, b'{"task": "nope"}').answer()
            assert failed and json.loads(answer)["errorType"] == "ConfigError", answer
        assert len(processes.all) == 1
    finally:
        processes.stop_all()


def test_the_examples_defaults_are_the_names_the_emulator_is_started_with() -> None:
    """`pipelines dev up` applies terraform/examples/local with its defaults; the emulator's own
    environment (aws_emulator.emulator_env) names the same jobs table, state machine and bucket."""
    import re

    from pipelines.devstack import resources

    text = (Path(__file__).resolve().parent.parent / "terraform" / "examples" / "local" / "variables.tf").read_text()
    defaults = dict(re.findall(r'variable "(\w+)" \{[^}]*?default\s+=\s+"([^"]*)"', text))
    assert (defaults["name"], defaults["bucket_name"]) == (resources.NAME, resources.WORK_BUCKET)


def test_dev_up_without_terraform_says_how_to_start_without_the_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No terraform on PATH: `pipelines dev up` is refused before anything starts, and says what to do."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(cli, ["dev", "up", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no terraform binary on PATH" in result.output and "--no-workflow" in result.output, result.output
    assert not (tmp_path / "stack.json").exists()


def test_dev_down_forgets_the_terraform_state(tmp_path: Path) -> None:
    """The emulator keeps its resources in memory: after `pipelines dev down` the next `dev up` creates
    them again, so the state of the last apply is removed."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    work = tmp_path / "deploy-local"
    work.mkdir()
    (work / "terraform.tfstate").write_text("{}")
    result = CliRunner().invoke(cli, ["dev", "down", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0 and not (work / "terraform.tfstate").exists(), result.output
