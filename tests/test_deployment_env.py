"""pipelines/aws/deployment.py is the list of what the deployed engine reads from its environment (Terraform
sets exactly its ENGINE_ENV and LAMBDA_ENV: tests/test_terraform.py). Here: that list is complete,
i.e. every variable the engine's code and the configs read is declared there or is a job parameter."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.aws import deployment

REPO = Path(__file__).resolve().parent.parent
# Set by AWS itself in Lambda and on Fargate (or by the developer's shell), read through boto3.
AWS_RUNTIME = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_LAMBDA_RUNTIME_API"}
# Job parameters: they reach a run in $PIPELINES_PARAMS (set per run), never from the deployment.
JOB_PARAMS = {
    "S3_BUCKET", "S3_KEY", "KAFKA_TOPIC", "SEGMENT_ID", "MAX_ERRORS", "MAX_THREADS", "EXPORT_BUCKET", "EXPORT_PREFIX",
    "ONLY_JOB_ID", "START_AFTER_JOB", "START_TIMESTAMP", "MAX_ROWS_PER_FILE", "RECORDS_PER_SHARD", "KAFKA_SERIALIZE_FORMAT",
}
DECLARED = set(deployment.ENGINE_ENV) | set(deployment.LAMBDA_ENV) | set(deployment.PER_RUN_ENV) | set(deployment.OPTIONAL_ENV)


def engine_reads() -> set[str]:
    """Variables the engine's code reads (the local stack and the test tooling aside)."""
    names = set()
    for path in (REPO / "pipelines").rglob("*.py"):
        if "devstack" in path.parts:
            continue
        text = path.read_text()
        names |= set(re.findall(r"environ(?:\.get)?\(?\[?\s*\"([A-Z][A-Z0-9_]+)\"", text))
        names |= set(re.findall(r"getenv\(\s*\"([A-Z][A-Z0-9_]+)\"", text))
        names |= set(re.findall(r"^[A-Z_]+_ENV = \"([A-Z][A-Z0-9_]+)\"", text, re.M))
    return names


def configs_read() -> set[str]:
    return {name for path in (REPO / "configs").glob("*.liquid") for name in re.findall(r"env\.([A-Z][A-Z0-9_]+)", path.read_text())}


def test_every_variable_the_engine_reads_is_declared():
    undeclared = engine_reads() - DECLARED - AWS_RUNTIME - {"PIPELINES_API_URL", "PIPELINES_API_SIGN"}  # the operator CLI's, not the engine's
    assert not undeclared, f"declare these in pipelines/aws/deployment.py: {sorted(undeclared)}"


def test_every_variable_the_configs_read_is_declared_or_a_job_parameter():
    undeclared = configs_read() - DECLARED - JOB_PARAMS
    assert not undeclared, f"declare these in pipelines/aws/deployment.py (or as job parameters): {sorted(undeclared)}"


def test_what_terraform_sets_is_read_somewhere():
    read = engine_reads() | configs_read()
    unused = (set(deployment.ENGINE_ENV) | set(deployment.LAMBDA_ENV)) - read
    assert not unused, f"set by the deployment but read by nothing: {sorted(unused)}"


def test_the_sets_do_not_overlap():
    groups = [deployment.ENGINE_ENV, deployment.LAMBDA_ENV, deployment.PER_RUN_ENV, deployment.OPTIONAL_ENV]
    seen: set[str] = set()
    for group in groups:
        assert not seen & set(group)
        seen |= set(group)
