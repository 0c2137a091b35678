"""`pipelines check CONFIG`: one line per thing a run needs, against the real local stack (Kafka broker,
moto server, schema registry): all ok, then one thing broken at a time (the topic, the bucket, the
prefix, the broker, the credentials, the schema), each named on its line with what to do."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import (
    CONFIGS,
    MAIN_CONFIG,
    create_topic,
    free_port,
    job_vars,
    put_audiences,
    run_cli,
)

from pipelines.devstack.stack import SCRAM_PASSWORD, SCRAM_USER

pytestmark = pytest.mark.integration

MAIN_CHECKS = [
    "template", "config", "input list", "input read", "kafka brokers (out)", "kafka topic (out)", "kafka transactions (out)",
    "work dir write", "error output write",
]


def check(*args: str) -> tuple[int, list[tuple[str, str, str]], str]:
    """(exit code, (status, name, rest) of each check line, the summary line)."""
    result = run_cli("check", *args)
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    parsed = []
    for line in lines[:-1]:
        status, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        parsed.append((status, name, detail))
    return result.returncode, parsed, lines[-1]


def by_name(lines: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    return {name: (status, detail) for status, name, detail in lines}


@pytest.fixture
def audience(s3, bucket: str) -> str:
    put_audiences(s3, bucket, 1, 50)
    return bucket


def test_all_ok_and_the_probes_are_gone(s3, audience: str, topic: str) -> None:
    code, lines, last = check(str(MAIN_CONFIG), *job_vars(audience, topic))
    assert code == 0, lines
    assert [(status, name) for status, name, _ in lines] == [("ok", name) for name in MAIN_CHECKS]
    checks = by_name(lines)
    assert checks["kafka topic (out)"][1] == f"topic '{topic}' exists with 6 partitions"
    assert checks["input list"][1].startswith(f"s3://{audience}/in/ lists; first s3://{audience}/in/part-0.csv.gz")
    assert checks["work dir write"][1].startswith(f"s3://{audience}/_jobs/ takes a probe object")
    assert checks["kafka transactions (out)"][1].startswith("a transaction began and aborted (transactional id pipelines-check-")
    assert last == "all 9 checks passed"
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=audience).get("Contents", [])]
    assert keys == ["in/part-0.csv.gz"]  # the probe objects were deleted


def test_a_missing_topic_fails_its_line_and_is_not_created(stack, audience: str) -> None:
    from confluent_kafka.admin import AdminClient

    missing = f"missing-{uuid.uuid4().hex[:8]}"
    code, lines, last = check(str(MAIN_CONFIG), *job_vars(audience, missing))
    assert code == 1
    checks = by_name(lines)
    status, detail = checks["kafka topic (out)"]
    assert status == "FAIL" and f"topic '{missing}' does not exist" in detail and f"pipelines dev create-topic {missing}" in detail
    assert all(status == "ok" for name, (status, _) in checks.items() if name != "kafka topic (out)")
    assert last == "1 of 9 checks failed"
    assert missing not in AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=10).topics


def test_a_missing_bucket_fails_the_input_and_the_writes(topic: str) -> None:
    code, lines, last = check(str(MAIN_CONFIG), *job_vars("no-such-bucket-here", topic))
    assert code == 1
    checks = by_name(lines)
    assert checks["input list"][0] == "FAIL" and "the bucket does not exist -> check the bucket name" in checks["input list"][1]
    assert checks["input read"] == ("skip", "not checked: the listing failed")
    for name in ("work dir write", "error output write"):
        assert checks[name][0] == "FAIL" and "the bucket does not exist" in checks[name][1]
    assert checks["kafka topic (out)"][0] == "ok"
    assert last == "3 of 9 checks failed, 1 not checked"


def test_an_empty_prefix_fails_the_listing(audience: str, topic: str) -> None:
    code, lines, _ = check(str(MAIN_CONFIG), *job_vars(audience, topic, S3_KEY="nothing-here/"))
    assert code == 1
    checks = by_name(lines)
    assert checks["input list"][0] == "FAIL"
    assert f"s3://{audience}/nothing-here/: no object matches -> check the path" in checks["input list"][1]
    assert [name for name, (status, _) in checks.items() if status != "ok"] == ["input list", "input read"]


def test_an_unreachable_broker_fails_the_brokers_line(audience: str, topic: str) -> None:
    port = free_port()
    code, lines, last = check(str(MAIN_CONFIG), *job_vars(audience, topic, KAFKA_BOOTSTRAP=f"127.0.0.1:{port}", KAFKA_CONNECT_TIMEOUT_SECONDS="2"))
    assert code == 1
    checks = by_name(lines)
    assert checks["kafka brokers (out)"][0] == "FAIL"
    assert f"Kafka 127.0.0.1:{port}: cannot reach the brokers within 2 s" in checks["kafka brokers (out)"][1]
    assert "KAFKA_BOOTSTRAP" in checks["kafka brokers (out)"][1]
    assert checks["kafka topic (out)"][0] == checks["kafka transactions (out)"][0] == "skip"
    assert last == "1 of 9 checks failed, 2 not checked"


def test_an_undefined_variable_stops_at_the_template(audience: str) -> None:
    code, lines, last = check(str(MAIN_CONFIG), "--var", f"S3_BUCKET={audience}")
    assert code == 1
    assert len(lines) == 1 and lines[0][:2] == ("FAIL", "template")
    assert "env.S3_KEY" in lines[0][2] and "pass `--var S3_KEY=...`" in lines[0][2]
    assert last == "1 of 1 checks failed"


# ----------------------------------------------------------------------------- credentials, local files


def scram_config(tmp_path: Path, bootstrap: str, topic: str, arn: str) -> Path:
    """A file input to a Kafka output over the stack's SASL/SCRAM listener, with local work and error folders."""
    data = tmp_path / "in" / "audience.csv"
    data.parent.mkdir()
    data.write_text("user_id,score\nu1,1\n")
    config = tmp_path / "scram.yml"
    config.write_text(
        f"in:\n  type: file\n  path_prefix: {data.parent}/\n  parser:\n    type: csv\n    skip_header_lines: 1\n"
        "    columns:\n      - {name: user_id, type: string}\n      - {name: score, type: double}\n"
        f"out:\n  type: kafka\n  brokers: ['{bootstrap}']\n  topic: {topic}\n  connect_timeout_seconds: 5\n"
        f"  auth: scram\n  tls: false\n  sasl_secret_arn: '{arn}'\n"
        f"exec:\n  work_dir: {tmp_path / 'work' / 'jobs'}\n  error_output: {tmp_path / 'errors'}/\n"
    )
    return config


def test_scram_credentials_are_checked_and_never_shown(stack, topic: str, tmp_path: Path) -> None:
    import boto3

    if getattr(stack, "kafka_scram_bootstrap", None) is None:
        pytest.skip("needs the test run's own stack (with its SASL/SCRAM listener)")
    secrets = boto3.client("secretsmanager")
    good, wrong = (
        secrets.create_secret(Name=f"AmazonMSK_check-{uuid.uuid4().hex[:8]}", SecretString=json.dumps({"username": SCRAM_USER, "password": pw}))["ARN"]
        for pw in (SCRAM_PASSWORD, "not-the-password")
    )
    code, lines, _ = check(str(scram_config(tmp_path, stack.kafka_scram_bootstrap, topic, good)))
    assert code == 0, lines
    assert by_name(lines)["kafka brokers (out)"][1].endswith("answered (1 broker, auth: scram)")
    assert by_name(lines)["input list"][1].startswith(f"{tmp_path / 'in'}/ lists; first {tmp_path / 'in' / 'audience.csv'}")
    assert not (tmp_path / "work").exists() and not (tmp_path / "errors").exists()  # probed, then the folders removed

    (tmp_path / "wrong").mkdir()
    code, lines, _ = check(str(scram_config(tmp_path / "wrong", stack.kafka_scram_bootstrap, topic, wrong)))
    assert code == 1
    status, detail = by_name(lines)["kafka brokers (out)"]
    assert status == "FAIL" and "authentication failed (auth: scram)" in detail and "check the credentials" in detail
    assert "not-the-password" not in json.dumps(lines) and SCRAM_PASSWORD not in json.dumps(lines)


def test_local_folders_are_probed_and_an_unwritable_one_fails(tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text("a\n1\n")
    config = tmp_path / "local.yml"
    config.write_text(
        f"in:\n  type: file\n  path_prefix: {data}\n  parser:\n    type: csv\n    skip_header_lines: 1\n    columns:\n      - {{name: a, type: long}}\n"
        f"out:\n  type: file\n  path_prefix: {tmp_path / 'out' / 'part-'}\n"
        f"exec:\n  work_dir: {data / 'jobs'}\n  error_output: {tmp_path / 'errors.jsonl'}\n"
    )
    code, lines, _ = check(str(config))
    checks = by_name(lines)
    assert checks["output write"][0] == "ok" and not (tmp_path / "out").exists()
    assert checks["error output write"][0] == "ok"
    status, detail = checks["work dir write"]  # a folder under a file: as unwritable as it gets, even for root
    assert status == "FAIL" and "cannot write: Not a directory" in detail and "make" in detail and "writable" in detail
    assert code == 1


# ----------------------------------------------------------------------------- schema registry


def registry_call(url: str, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def avro_check(bucket: str, topic: str) -> dict[str, tuple[str, str]]:
    code, lines, _ = check(str(CONFIGS / "send_audience_to_kafka_avro.yml.liquid"), *job_vars(bucket, topic))
    checks = by_name(lines)
    assert checks["schema registry (out)"][0] == "ok", lines
    assert code == (0 if all(status == "ok" for status, _ in checks.values()) else 1)
    return checks


def test_the_registry_and_the_subject(stack, audience: str) -> None:
    from pipelines.engine.config import load_job

    if not getattr(stack, "schema_registry_url", None):
        pytest.skip("needs the stack's schema registry")
    topic = f"avro-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 3)
    subject, url = f"{topic}-value", stack.schema_registry_url

    status, detail = avro_check(audience, topic)["schema subject (out)"]
    assert status == "ok" and detail == f"'{subject}' has no schema yet: the run registers the config's schema (auto_register)"

    older = {"type": "record", "name": "AudienceMember", "namespace": "audience_pipelines", "fields": [{"name": "user_id", "type": "string"}]}
    registry_call(url, "POST", f"/subjects/{subject}/versions", {"schema": json.dumps(older)})
    registry_call(url, "PUT", f"/config/{subject}", {"compatibility": "BACKWARD"})
    status, detail = avro_check(audience, topic)["schema subject (out)"]  # segment_id (no default) cannot read older values
    assert status == "FAIL" and "not compatible with the latest version" in detail and "evolve the schema" in detail

    registry_call(url, "PUT", f"/config/{subject}", {"compatibility": "NONE"})
    job = load_job(CONFIGS / "send_audience_to_kafka_avro.yml.liquid", {"S3_BUCKET": audience, "S3_KEY": "in/", "KAFKA_TOPIC": topic})
    schema_id = registry_call(url, "POST", f"/subjects/{subject}/versions", {"schema": json.dumps(job.output.avro.avsc)})["id"]
    status, detail = avro_check(audience, topic)["schema subject (out)"]
    assert status == "ok" and detail == f"the schema is registered under '{subject}' (id {schema_id})"
