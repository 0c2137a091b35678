"""Kafka authentication: SASL/SCRAM against the real broker's SCRAM listener (the local stack adds one,
with SCRAM_USER's credentials written when its storage is formatted), credentials read from a Secrets
Manager secret in the moto server; MSK IAM tokens signed offline; config errors."""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from pathlib import Path

import pytest
from conftest import consume_all, create_topic, run_cli, summary_of

from pipelines.devstack.stack import SCRAM_PASSWORD, SCRAM_USER


def secret(stack, value: dict | str) -> str:
    import boto3

    client = boto3.client("secretsmanager")
    text = value if isinstance(value, str) else json.dumps(value)
    return client.create_secret(Name=f"AmazonMSK_test-{uuid.uuid4().hex[:8]}", SecretString=text)["ARN"]


def scram_bootstrap(stack) -> str:
    if getattr(stack, "kafka_scram_bootstrap", None) is None:
        pytest.skip("needs the test run's own stack (with its SASL/SCRAM listener)")
    return stack.kafka_scram_bootstrap


def auth_lines(arn: str) -> str:
    return f"  auth: scram\n  tls: false\n  sasl_secret_arn: '{arn}'\n"


def test_import_and_export_over_sasl_scram_with_the_secret_in_secrets_manager(stack, tmp_path):
    bootstrap = scram_bootstrap(stack)
    arn = secret(stack, {"username": SCRAM_USER, "password": SCRAM_PASSWORD})
    topic = f"scram-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 2)
    data = tmp_path / "in.csv"
    data.write_text("user_id,score\n" + "".join(f"u{i},{i}\n" for i in range(500)))
    columns = "    columns:\n      - {name: user_id, type: string}\n      - {name: score, type: double}\n"
    imports = tmp_path / "import.yml"
    imports.write_text(
        f"in:\n  type: file\n  path_prefix: {data}\n  parser:\n    type: csv\n    skip_header_lines: 1\n{columns}"
        f"out:\n  type: kafka\n  brokers: ['{bootstrap}']\n  topic: {topic}\n  key_column_name: user_id\n{auth_lines(arn)}"
        f"exec:\n  work_dir: {tmp_path / 'work'}\n"
    )
    result = run_cli("run", str(imports))
    assert result.returncode == 0, result.stderr
    assert summary_of(result)["rows_written"] == 500
    assert SCRAM_PASSWORD not in result.stdout + result.stderr
    assert len([m for m in consume_all(stack.kafka_bootstrap, topic) if m.key() is not None]) == 500

    exports = tmp_path / "export.yml"
    exports.write_text(
        f"in:\n  type: kafka\n  brokers: ['{bootstrap}']\n  topic: {topic}\n{auth_lines(arn)}"
        "  columns:\n    - {name: user_id, type: string}\n    - {name: score, type: double}\n"
        f"out: {{type: stdout}}\nexec:\n  work_dir: {tmp_path / 'work'}\n"
    )
    result = run_cli("run", str(exports))
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(line)["user_id"] for line in result.stdout.splitlines()[:-1]) == sorted(f"u{i}" for i in range(500))


def test_a_wrong_password_is_an_authentication_failure_not_an_unreachable_broker(stack, tmp_path):
    bootstrap = scram_bootstrap(stack)
    arn = secret(stack, {"username": SCRAM_USER, "password": "not-the-password"})
    config = tmp_path / "export.yml"
    config.write_text(
        f"in:\n  type: kafka\n  brokers: ['{bootstrap}']\n  topic: any\n{auth_lines(arn)}  connect_timeout_seconds: 5\n"
        "  columns: [{name: user_id, type: string}]\nout: {type: stdout}\n"
        f"exec:\n  work_dir: {tmp_path / 'work'}\n"
    )
    result = run_cli("run", str(config))
    assert result.returncode == 1, result.stderr
    assert "authentication failed (auth: scram)" in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout


def test_secret_errors_name_the_secret_never_its_value(stack):
    from pipelines.engine.errors import ConfigError, RunError
    from pipelines.kafka.connection import scram_secret

    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_nothing-AbCdEf"
    with pytest.raises(RunError) as error:
        scram_secret(missing)
    assert error.value.where == missing and "ResourceNotFoundException" in error.value.message
    arn = secret(stack, "hunter2-is-not-json")
    with pytest.raises(ConfigError) as error:
        scram_secret(arn)
    assert 'must be JSON {"username": "...", "password": "..."}' in error.value.message
    assert "hunter2" not in str(error.value)


def test_msk_iam_tokens_are_signed_for_the_clusters_region(monkeypatch):
    from pipelines.kafka.connection import client_config
    from pipelines.plugins.kafka_input import KafkaInputSettings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    settings = KafkaInputSettings(brokers=("b-1.example:9098",), topic="t", columns=(), auth="msk_iam", region="eu-west-1", serialize_format="avro", schema_registry_url="http://r")
    config = client_config(settings)
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    token, expiry = config["oauth_cb"]("")
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert parsed.netloc == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"] and "X-Amz-Signature" in query
    assert expiry > 0


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("  auth: scram\n", "auth scram needs sasl_secret_arn"),
        ("  auth: scram\n  sasl_secret_arn: a\n  sasl_username: u\n  sasl_password: p\n", "give sasl_secret_arn or sasl_username/sasl_password, not both"),
        ("  sasl_username: u\n", "go with auth: scram, not auth: none"),
        ("  auth: msk_iam\n  tls: false\n", "auth msk_iam needs TLS"),
        ("  auth: msk_iam\n  other_producer_configs: {security.protocol: PLAINTEXT}\n", "'security.protocol' is set by auth: msk_iam"),
        ("  auth: kerberos\n", "expected one of none, scram, msk_iam"),
    ],
)
def test_auth_config_errors(tmp_path: Path, lines: str, message: str):
    config = tmp_path / "c.yml"
    config.write_text(
        "in:\n  type: file\n  path_prefix: /tmp/never-read/x\n  parser:\n    type: jsonl\n    columns: [{name: a}]\n"
        f"out:\n  type: kafka\n  brokers: [x:1]\n  topic: t\n{lines}"
    )
    result = run_cli("validate", str(config))
    assert result.returncode == 2 and message in result.stderr, result.stderr
