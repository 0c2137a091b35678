"""Shared fixtures: the local stack (real Kafka broker + moto server), started once per test run.

The stack is the one `pipelines dev up` starts, on free ports in a temporary folder,
so a developer's own stack on the default ports is left alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
import struct
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if os.environ.get("PIPELINES_TEST_REUSE_STACK") == "1":
        # Opt-in for quick iterations: a stack already started with `eval "$(pipelines dev up)"`.
        from types import SimpleNamespace

        yield SimpleNamespace(
            kafka_bootstrap=os.environ["KAFKA_BOOTSTRAP"],
            aws_endpoint_url=os.environ["AWS_ENDPOINT_URL"],
            schema_registry_url=os.environ.get("SCHEMA_REGISTRY_URL"),
        )
        return
    from pipelines.devstack.stack import StackConfig, down, up

    state_dir = tmp_path_factory.mktemp("stack")
    kafka_port, controller_port, moto_port, registry_port, scram_port = free_ports(5)
    info = up(
        StackConfig(
            state_dir, kafka_port, controller_port, moto_port, kafka_heap="384m", registry_port=registry_port, scram_port=scram_port
        )
    )
    saved = {k: os.environ.get(k) for k in info.env()}
    os.environ.update(info.env())
    try:
        yield info
    finally:
        down(state_dir)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# The module's names in the test emulator: not the example's defaults (audience-pipelines, the bucket
# audiences), which other tests use for buckets and objects of their own.
DEPLOYED_NAME = "audience-pipelines-tf"


@pytest.fixture(scope="session")
def deployed(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """terraform/examples/local applied to the session's stack, as `pipelines dev up` applies it: the
    workflow's resources (state machine, Lambda, roles, table, bucket, rules, schedule, API) are the
    module's. Once per session (an apply takes about 80 s); destroyed at its end, which must leave
    none of them (a teardown error otherwise). Skipped, saying why, without terraform or the provider."""
    import shutil
    from types import SimpleNamespace

    from pipelines.devstack import deploy

    if shutil.which("terraform") is None:
        pytest.skip("no terraform on PATH: the local workflow is the Terraform module applied to the emulator")
    if deploy.plugin_dir() is None:
        pytest.skip("no local copy of the hashicorp/aws provider (set PIPELINES_TF_PLUGIN_DIR)")
    work = tmp_path_factory.mktemp("deploy-local")
    env = {
        **os.environ, "AWS_ENDPOINT_URL": stack.aws_endpoint_url, "KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "TF_VAR_name": DEPLOYED_NAME, "TF_VAR_bucket_name": DEPLOYED_NAME,
    }
    started = time.monotonic()
    outputs = deploy.deploy(work, env)
    yield SimpleNamespace(work=work, env=env, outputs=outputs, apply_seconds=time.monotonic() - started)
    deploy.deploy(work, env, destroy=True)
    check_destroyed(stack.aws_endpoint_url, outputs)


def check_destroyed(endpoint: str, outputs: dict[str, Any]) -> None:
    """None of the module's main resources is left in the emulator."""
    import boto3

    session = boto3.session.Session(region_name="us-east-1")
    machines = session.client("stepfunctions", endpoint_url=endpoint).list_state_machines()["stateMachines"]
    assert outputs["state_machine_arn"] not in [m["stateMachineArn"] for m in machines]
    assert outputs["jobs_table_name"] not in session.client("dynamodb", endpoint_url=endpoint).list_tables()["TableNames"]
    assert outputs["bucket_name"] not in [b["Name"] for b in session.client("s3", endpoint_url=endpoint).list_buckets()["Buckets"]]
    functions = session.client("lambda", endpoint_url=endpoint).list_functions()["Functions"]
    assert outputs["function_name"] not in [f["FunctionName"] for f in functions]


@pytest.fixture
def s3(stack: object):
    from pipelines.engine.s3 import s3_client

    return s3_client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def topic(stack) -> str:
    """A new topic with 6 partitions."""
    name = f"audience-{uuid.uuid4().hex[:10]}"
    create_topic(stack.kafka_bootstrap, name, 6)
    return name


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until every partition has a leader in the metadata
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        if topic and topic.error is None and len(topic.partitions) == partitions and all(p.leader >= 0 for p in topic.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} has no leaders after 30 s")


def wait_for_rows(bootstrap: str, topic: str, rows: int, process, timeout: float = 60) -> None:
    """Waits until `rows` records (committed or not) are in the topic while `process` still runs."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "watch", "enable.auto.commit": False, "isolation.level": "read_uncommitted"}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        deadline = time.monotonic() + timeout
        while sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in partitions) < rows:
            assert process.poll() is None, "the process finished before the rows were in the topic"
            assert time.monotonic() < deadline, f"fewer than {rows} rows in {topic} after {timeout} s"
            time.sleep(0.005)
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermarks: everything ever written, committed or not."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "offsets", "enable.auto.commit": False, "isolation.level": "read_uncommitted"}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def consume_all(bootstrap: str, topic: str, isolation: str = "read_committed") -> list:
    """Every record of the topic visible at `isolation`, read with manual assignment up to the end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        remaining, records = set(partitions), []
        deadline = time.monotonic() + 30
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"no end of partitions {sorted(remaining)} within 30 s")
            for msg in consumer.consume(10_000, timeout=0.2):
                if msg.error():
                    if msg.error().code() == -191:  # _PARTITION_EOF
                        remaining.discard(msg.partition())
                        continue
                    raise AssertionError(msg.error().str())
                records.append(msg)
        return records
    finally:
        consumer.close()


def run_cli(
    *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), timeout: float = 300
) -> subprocess.CompletedProcess:
    """`pipelines ARGS` in a subprocess, as a user runs it; `unset` names variables to leave out of its environment."""
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=timeout,
    )


def summary_of(result: subprocess.CompletedProcess) -> dict:
    import json

    return json.loads(result.stdout.strip().splitlines()[-1])


def is_marker(msg) -> bool:
    return ("pipelines.marker", b"end") in (msg.headers() or [])


def rows_and_markers(records: list) -> tuple[list, dict[int, dict]]:
    """Data records, and the end markers' values by partition (one marker a partition at most)."""
    import json

    rows, markers = [], {}
    for msg in records:
        if is_marker(msg):
            assert msg.partition() not in markers, f"two end markers in partition {msg.partition()}"
            markers[msg.partition()] = json.loads(msg.value())
        else:
            rows.append(msg)
    return rows, markers


# --- the main import on several gzip objects (tests/test_exactly_once.py, tests/test_container.py)

MAIN_CONFIG = CONFIGS / "send_audience_to_kafka.yml.liquid"


def config_with(tmp_path: Path, **exec_options: object) -> str:
    """The main config (and its Kafka partial) with extra exec options, e.g. small batches."""
    lines = "".join(f"  {key}: {value}\n" for key, value in exec_options.items())
    (tmp_path / "job.yml.liquid").write_text(MAIN_CONFIG.read_text().replace("exec:\n", "exec:\n" + lines))
    (tmp_path / "_kafka.yml.liquid").write_text((CONFIGS / "_kafka.yml.liquid").read_text())
    return str(tmp_path / "job.yml.liquid")


def put_audiences(s3, bucket: str, count: int, rows: int) -> list[str]:
    """`count` gzip CSV objects under in/ of `rows` rows each (distinct user ids); returns every user id."""
    import gzip
    import io

    from pipelines.devstack.sample import write_audience_csv

    ids = []
    for n in range(count):
        raw = io.BytesIO()
        write_audience_csv(raw, rows, seed=n)
        text = raw.getvalue().decode().replace("\nu", f"\nu{n}-")  # distinct ids across objects
        s3.put_object(Bucket=bucket, Key=f"in/part-{n}.csv.gz", Body=gzip.compress(text.encode(), 1))
        ids += [line.split(",", 1)[0] for line in text.splitlines()[1:]]
    return ids


def job_vars(bucket: str, topic: str, **more: str) -> list[str]:
    """--var arguments of the main import reading in/ of `bucket` into `topic`."""
    pairs = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic, **more}
    return [arg for key, value in pairs.items() for arg in ("--var", f"{key}={value}")]


def command_lines_until(process: subprocess.Popen) -> set[bytes]:
    """Every process's command line (/proc/*/cmdline, which any user can read), read over and over
    until `process` ends: where a test looks for a secret that must not be there."""
    seen: set[bytes] = set()
    while process.poll() is None:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                seen.add((proc / "cmdline").read_bytes())
            except OSError:
                pass
        time.sleep(0.01)
    return seen


class Errors:
    """An error sink that keeps (line, reason, raw) of each bad row: the parsers' comparison tests."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    @property
    def count(self) -> int:
        return len(self.seen)

    def add(self, uri: str, line: int, reason: str, raw: str) -> None:
        self.seen.append((line, reason, raw))


def split_records(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) records of the compiled loops' record layout (EncodedRecords.data, avro_records):
    each a native uint32 key length, a uint32 value length, the key, the value; nothing after the last."""
    out, at = [], 0
    while at < len(data):
        key_len, value_len = struct.unpack_from("=II", data, at)
        at += 8
        assert at + key_len + value_len <= len(data), "a record runs past the data"
        out.append((data[at : at + key_len], data[at + key_len : at + key_len + value_len]))
        at += key_len + value_len
    return out
