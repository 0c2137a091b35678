"""Tests for the local dev stack (Kafka + the AWS emulator, i.e. the workflow server). The integration tests start the real stack."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_ports

from pipelines.devstack import stack
from pipelines.devstack.stack import StackConfig, StackError, StackInfo


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 with a listening socket on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _sample_info(bootstrap: str = "127.0.0.1:19092") -> StackInfo:
    return StackInfo(
        kafka_bootstrap=bootstrap,
        aws_endpoint_url="http://127.0.0.1:15000",
        kafka_pid=1,
        moto_pid=2,
        state_dir=Path("/nonexistent"),
    )


def test_port_in_use_is_reported_with_port(tmp_path: Path, busy_port: int) -> None:
    controller_port, moto_port = free_ports(2)
    config = StackConfig(tmp_path, kafka_port=busy_port, controller_port=controller_port, moto_port=moto_port)

    with pytest.raises(StackError, match=rf"port {busy_port} on 127\.0\.0\.1 is already in use \(kafka\)"):
        stack.up(config, log=lambda message: None)
    assert not (tmp_path / "stack.json").exists()


def test_moto_port_in_use_names_moto_option(tmp_path: Path, busy_port: int) -> None:
    kafka_port, controller_port = free_ports(2)
    config = StackConfig(tmp_path, kafka_port=kafka_port, controller_port=controller_port, moto_port=busy_port)

    with pytest.raises(StackError, match=rf"port {busy_port} .*--moto-port"):
        stack.up(config, log=lambda message: None)


def test_status_of_empty_dir(tmp_path: Path) -> None:
    report = stack.status(tmp_path)

    assert report["kafka"]["running"] is False and report["kafka"]["answers"] is False
    assert report["kafka"]["pid"] is None
    assert report["moto"]["running"] is False and report["moto"]["answers"] is False
    assert stack.status(tmp_path / "missing")["moto"]["pid"] is None


def test_down_of_empty_dir_returns_nothing(tmp_path: Path) -> None:
    assert stack.down(tmp_path, log=lambda message: None) == []
    assert stack.down(tmp_path / "missing", log=lambda message: None) == []


def test_down_never_signals_a_process_with_other_cmdline(tmp_path: Path) -> None:
    """A recorded pid now running something else (pid reuse) must be left alone."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        recorded = {"name": "kafka", "pid": sleeper.pid, "cmdline": ["java", "kafka.Kafka"]}
        recorded |= {"port": 1, "address": "127.0.0.1:1", "log": "/dev/null"}
        (tmp_path / "stack.json").write_text(json.dumps({"services": [recorded]}))
        assert stack.down(tmp_path, log=lambda message: None) == []
        assert sleeper.poll() is None
        assert not (tmp_path / "stack.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_env_points_at_stack() -> None:
    env = _sample_info().env()

    assert env["KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:15000"
    assert env["MOTO_PORT"] == "15000"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_env_includes_the_workflow_once_created() -> None:
    import dataclasses

    workflow = {"PIPELINES_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:x", "PIPELINES_JOBS_TABLE": "t"}
    info = dataclasses.replace(_sample_info(), workflow=workflow)

    assert "PIPELINES_JOBS_TABLE" not in _sample_info().env()
    assert info.env()["PIPELINES_STATE_MACHINE_ARN"].endswith(":stateMachine:x") and info.env()["KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert "export PIPELINES_JOBS_TABLE=t" in info.shell_lines().splitlines()
    # The workflow's default work dir and error output are its tasks' only: a shell's `pipelines run` keeps the local ones.
    assert not {"PIPELINES_WORK_DIR", "PIPELINES_ERROR_OUTPUT"} & set(info.env()) and "PIPELINES_WORK_DIR" not in info.shell_lines()


def test_emulator_env_has_what_the_workflow_needs(tmp_path: Path) -> None:
    from pipelines.devstack.resources import JOBS_TABLE, state_machine_arn

    base = {"PATH": "/usr/bin", "PIPELINES_SHARD_BYTES": "1", "PIPELINES_JOBS_TABLE": "someone-elses", "PYTHONPATH": "/x",
            "PIPELINES_WORK_DIR": "elsewhere"}
    env = stack.emulator_env(15000, "127.0.0.1:19092", tmp_path, base)

    assert env["KAFKA_BOOTSTRAP"] == "127.0.0.1:19092" and env["MOTO_PORT"] == "15000"
    assert env["PIPELINES_JOBS_TABLE"] == JOBS_TABLE and env["PIPELINES_STATE_MACHINE_ARN"] == state_machine_arn()
    # The workflow's defaults for configs without exec.work_dir / exec.error_output, as Terraform's.
    assert (env["PIPELINES_WORK_DIR"], env["PIPELINES_ERROR_OUTPUT"]) == ("s3://audiences/_jobs", "s3://audiences/_errors/")
    assert env["PIPELINES_WORKFLOW_LOGS"] == str(tmp_path / "workflow-logs")
    repo = Path(stack.__file__).resolve().parent.parent.parent
    assert env["PIPELINES_REPO"] == str(repo) and env["PYTHONPATH"].split(":") == [str(repo), "/x"]
    assert env["PIPELINES_SHARD_BYTES"] == "1" and env["PATH"] == "/usr/bin"  # the caller's environment passes through


@pytest.mark.parametrize("bootstrap", ["127.0.0.1:19092", 'it\'s $(echo odd); `x` "y"'])
def test_shell_lines_are_evalable(bootstrap: str) -> None:
    lines = _sample_info(bootstrap).shell_lines()

    result = subprocess.run(
        ["bash", "-c", 'eval "$EXPORT_LINES"; printf "%s|%s" "$KAFKA_BOOTSTRAP" "$MOTO_PORT"'],
        env={"EXPORT_LINES": lines, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == f"{bootstrap}|15000"
    assert all(line.startswith("export ") for line in lines.splitlines())


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no java, no mvn

    with pytest.raises(StackError, match="Java 17 is required.*not found on PATH"):
        stack.ensure_kafka_jars(log=lambda message: None)


def test_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_CACHE", str(tmp_path))
    assert stack.cache_dir() == tmp_path
    monkeypatch.delenv("PIPELINES_CACHE")
    assert stack.cache_dir() == Path.home() / ".cache" / "audience-pipelines"


def _runs(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java 17 (and Maven or cached jars)")
def test_integration_up_kafka_topic_and_moto_s3_then_down(tmp_path: Path) -> None:
    """Starts the real broker and moto on free ports (~10-15 s), uses both, stops both."""
    import boto3
    from confluent_kafka.admin import AdminClient, NewTopic

    kafka_port, controller_port, moto_port = free_ports(3)
    config = StackConfig(
        tmp_path / "stack", kafka_port=kafka_port, controller_port=controller_port, moto_port=moto_port
    )
    messages: list[str] = []

    info = stack.up(config, log=messages.append)
    try:
        assert info.kafka_bootstrap == f"127.0.0.1:{kafka_port}"
        assert stack.up(config, log=messages.append) == info  # idempotent

        admin = AdminClient({"bootstrap.servers": info.kafka_bootstrap})
        admin.create_topics([NewTopic("devstack-test", 1, 1)])["devstack-test"].result(timeout=30)
        deadline = time.monotonic() + 15  # the controller has it; the broker's metadata may lag a moment (seen under load)
        while "devstack-test" not in admin.list_topics(timeout=10).topics:
            assert time.monotonic() < deadline, "devstack-test was created but the broker never listed it"
            time.sleep(0.2)

        env = info.env()
        s3 = boto3.client(
            "s3",
            endpoint_url=info.aws_endpoint_url,
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket="devstack-test")
        s3.put_object(Bucket="devstack-test", Key="hello.txt", Body=b"hello")
        assert s3.get_object(Bucket="devstack-test", Key="hello.txt")["Body"].read() == b"hello"

        assert _runs(info.moto_pid, "pipelines.devstack.workflow_server")  # the AWS emulator runs the workflow

        report = stack.status(config.state_dir)
        assert report["kafka"]["running"] and report["kafka"]["answers"]
        assert report["moto"]["running"] and report["moto"]["answers"]
    finally:
        stopped = stack.down(config.state_dir, log=messages.append)

    assert len(stopped) == 2
    assert not _runs(info.kafka_pid, "kafka.Kafka")
    assert not _runs(info.moto_pid, "pipelines.devstack.workflow_server")
    assert not (config.state_dir / "stack.json").exists()
    assert stack.status(config.state_dir)["kafka"]["running"] is False


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = shutil.which("java")
    assert java, "java is on the machine"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").symlink_to(java)
    monkeypatch.setenv("PIPELINES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # java, but no mvn

    with pytest.raises(StackError, match=r"Maven \(mvn\) is required"):
        stack.ensure_kafka_jars(log=lambda message: None)


@pytest.mark.integration
def test_broker_that_does_not_come_up_is_a_clear_error_and_nothing_is_left_running(tmp_path: Path) -> None:
    """`pipelines dev up` with a heap size Java refuses: exit 1, the message names Kafka and its log."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    kafka_port, controller_port, moto_port = free_ports(3)
    config = StackConfig(tmp_path, kafka_port, controller_port, moto_port, kafka_heap="not-a-size")
    with pytest.raises(StackError, match=r"kafka did not come up.*kafka\.log") as info:
        stack.up(config, log=lambda message: None)
    assert "Invalid" in str(info.value) or "heap" in str(info.value).lower()
    assert stack.status(tmp_path)["moto"]["running"] is False  # what it started is stopped again
    result = CliRunner().invoke(
        cli, ["dev", "up", "--state-dir", str(tmp_path / "other"), "--kafka-port", str(kafka_port), "--moto-port", str(moto_port),
              "--controller-port", str(kafka_port), "--no-workflow"],
    )
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
