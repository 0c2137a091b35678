"""Faults a shard meets in production, injected against the real broker and moto: a shard killed and
never rerun (its open transaction holds read_committed readers back until `pipelines abort` fences
it), and a shard that runs past its own time limit (aborted, exit 75, retried)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from conftest import REPO, config_with, consume_all, end_offsets, job_vars, put_audiences, run_cli, wait_for_rows
from slow_s3 import slow_s3

SLOW_BYTES_PER_SECOND = 256 * 1024  # a 150,000-row object takes a shard ~6 s to read through it


def start_shard(config: str, bucket: str, topic: str, plan: str, endpoint: str, **env: str) -> subprocess.Popen:
    args = ["run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "0"]
    environment = {**os.environ, "AWS_ENDPOINT_URL": endpoint, **env}
    return subprocess.Popen([sys.executable, "-m", "pipelines", *args], env=environment, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def commit_probe(bootstrap: str, topic: str) -> bytes:
    """One record committed to every partition by another transactional producer: what a reader
    behind an open transaction cannot see until that transaction ends."""
    from confluent_kafka import Producer

    marker = f"probe-{uuid.uuid4().hex[:8]}".encode()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": marker.decode()})
    producer.init_transactions(30)
    producer.begin_transaction()
    for partition in range(6):
        producer.produce(topic, b"probe", marker, partition=partition)
    producer.commit_transaction(30)
    return marker


def probe_visible(bootstrap: str, topic: str, marker: bytes) -> int:
    """How many of the probe's records a read_committed reader sees now."""
    return sum(1 for m in consume_all(bootstrap, topic) if m.key() == marker)


@pytest.mark.integration
def test_a_killed_shard_holds_readers_back_until_the_job_is_aborted(stack, s3, bucket, topic, tmp_path):
    put_audiences(s3, bucket, count=1, rows=150_000)
    config = config_with(tmp_path, batch_rows=200)
    plan = f"s3://{bucket}/_jobs/killed/plan.json"
    made = run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", "killed")
    assert made.returncode == 0, made.stderr
    with slow_s3(stack.aws_endpoint_url, f"/{bucket}/in/", SLOW_BYTES_PER_SECOND) as endpoint:
        shard = start_shard(config, bucket, topic, plan, endpoint)
        wait_for_rows(stack.kafka_bootstrap, topic, 5_000, shard)  # its transaction is open
        shard.kill()  # SIGKILL: no abort, as a lost task or an out-of-memory kill
        shard.communicate()
    held = {p for p, offset in end_offsets(stack.kafka_bootstrap, topic).items() if offset > 0}  # what the shard wrote to
    marker = commit_probe(stack.kafka_bootstrap, topic)
    time.sleep(3)
    assert held and probe_visible(stack.kafka_bootstrap, topic, marker) == 6 - len(held), "held back where the shard's transaction is open"

    started = time.monotonic()
    aborted = run_cli("abort", config, *job_vars(bucket, topic), "--plan", plan)
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout.splitlines()[-1]) == {"job_id": "killed", "shards": 1, "fenced": 2}
    while probe_visible(stack.kafka_bootstrap, topic, marker) < 6:
        assert time.monotonic() - started < 30, "readers still held back 30 s after the abort"
        time.sleep(0.2)
    print(f"readers moved on {time.monotonic() - started:.1f} s after `pipelines abort` (else: transaction.timeout.ms, 15 min)")
    rows = [m for m in consume_all(stack.kafka_bootstrap, topic) if m.key() != marker]
    assert rows == [], "nothing of the killed shard is visible"


@pytest.mark.integration
def test_a_shard_past_its_time_limit_aborts_and_exits_75(stack, s3, bucket, topic, tmp_path):
    """PIPELINES_SHARD_TIME_LIMIT=2 on a shard that needs ~6 s: SIGALRM stops it as SIGTERM would
    (transaction aborted, exit 75, which the workflow retries); without the limit the rerun succeeds."""
    from pipelines.engine.errors import TimedOut

    ids = put_audiences(s3, bucket, count=1, rows=150_000)
    config = config_with(tmp_path, batch_rows=200)
    plan = f"s3://{bucket}/_jobs/limited/plan.json"
    made = run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", "limited")
    assert made.returncode == 0, made.stderr
    with slow_s3(stack.aws_endpoint_url, f"/{bucket}/in/", SLOW_BYTES_PER_SECOND) as endpoint:
        started = time.monotonic()
        shard = start_shard(config, bucket, topic, plan, endpoint, PIPELINES_SHARD_TIME_LIMIT="2")
        stdout, stderr = shard.communicate(timeout=120)
    seconds = time.monotonic() - started
    assert shard.returncode == 75, stderr
    assert f"error: {TimedOut.shard_message(2)}" in stderr.splitlines(), stderr
    assert seconds < 2 + 15, "stopped at its limit, not at the end of its input"
    assert json.loads(stdout.splitlines()[-1])["error"] == TimedOut.shard_message(2)
    assert consume_all(stack.kafka_bootstrap, topic) == [], "its transaction was aborted"

    rerun = run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "0")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.splitlines()[-1])["rows_written"] == len(ids)


def test_the_time_limit_follows_the_shards_size(monkeypatch):
    from pipelines.engine.plan import (
        SHARD_MAX_SECONDS,
        SHARD_MIN_SECONDS,
        SHARD_SLOWEST_BYTES_PER_SECOND,
        TASK_START_SECONDS,
        PlanItem,
        ShardSpec,
        shard_task_timeout,
        shard_time_limit,
    )
    from pipelines.plugins.kafka_output import TRANSACTION_TIMEOUT_MS

    def shard(size: int, uri: str = "s3://b/k") -> ShardSpec:
        return ShardSpec(0, (PlanItem(uri, size, "etag"),))

    monkeypatch.delenv("PIPELINES_SHARD_TIME_LIMIT", raising=False)
    assert shard_time_limit(shard(1)) == SHARD_MIN_SECONDS
    assert shard_time_limit(shard(600 * SHARD_SLOWEST_BYTES_PER_SECOND)) == 600
    assert shard_time_limit(shard(10 << 30)) == SHARD_MAX_SECONDS == TRANSACTION_TIMEOUT_MS // 1000
    assert shard_time_limit(shard(1_000_000, "kafka://t/0")) == SHARD_MAX_SECONDS  # records, at an estimated size
    assert shard_task_timeout(shard(1)) == SHARD_MIN_SECONDS + TASK_START_SECONDS
    monkeypatch.setenv("PIPELINES_SHARD_TIME_LIMIT", "7")
    assert shard_time_limit(shard(10 << 30)) == 7
    monkeypatch.setenv("PIPELINES_SHARD_TIME_LIMIT", "0")
    with pytest.raises(Exception, match="PIPELINES_SHARD_TIME_LIMIT must be a whole number of seconds >= 1"):
        shard_time_limit(shard(1))


@pytest.mark.integration
def test_abort_removes_the_uploads_a_killed_export_left(stack, s3, bucket, topic):
    """A killed export's multipart uploads stay incomplete (invisible, and billed until a lifecycle
    rule ends them); `pipelines abort` removes them, and leaves the job rerunnable."""
    from test_exports import EXPORT, audience, checked_manifest, export_vars, import_job, objects, uploads

    expected = audience(s3, bucket, 150_000, seed=3)
    import_job(bucket, topic, f"import-{topic}")
    job_id = f"aborted-{topic}"
    prefix = f"exports/{job_id}/"
    args = [*export_vars(bucket, topic, MAX_ROWS_PER_FILE="10000"), "--job-id", job_id]
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "run", EXPORT, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(uploads(s3, bucket, prefix)) < 3:
            assert process.poll() is None and time.monotonic() < deadline, "no multipart uploads while the export ran"
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait(30)
    left = len(uploads(s3, bucket, prefix))
    plan = f"s3://{bucket}/_jobs/{job_id}/plan.json"
    aborted = run_cli("abort", EXPORT, *export_vars(bucket, topic), "--plan", plan)
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout.splitlines()[-1])["incomplete_removed"] >= left >= 3
    assert uploads(s3, bucket, prefix) == [] and objects(s3, bucket, prefix) == {}

    rerun = run_cli("run", EXPORT, *args)
    assert rerun.returncode == 0, rerun.stderr
    assert checked_manifest(s3, bucket, job_id).total_rows == sum(expected.values())


def peak_rss_while(process: subprocess.Popen, seconds: float) -> int:
    """The highest VmRSS (bytes) of `process` seen over `seconds` (or until it ends)."""
    peak, deadline = 0, time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        try:
            status = open(f"/proc/{process.pid}/status").read()
        except OSError:
            break
        rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        peak = max(peak, rss)
        time.sleep(0.1)
    return peak


@pytest.mark.integration
def test_a_broker_stall_keeps_memory_bounded_and_the_shard_exits_75(stack, tmp_path, topic):
    """The broker stops answering (SIGSTOP) in the middle of a 3M-row import: the shard's producer
    queue fills and the shard waits, its memory bounded (<= 256 MB, a 512 MB Fargate task's half);
    at its time limit it aborts and exits 75, nothing committed; after the stall a rerun gives every
    row once."""
    from conftest import MAIN_CONFIG

    from pipelines.devstack.sample import write_audience_gzip
    from pipelines.devstack.stack import status

    (tmp_path / "in").mkdir()
    write_audience_gzip(str(tmp_path / "in" / "audience.csv.gz"), 3_000_000, 5)
    text = MAIN_CONFIG.read_text()  # the main import, from a local file and with local work files
    text = text.replace("  type: s3\n", "  type: file\n").replace('  bucket: "{{ env.S3_BUCKET }}"\n', "")
    text = text.replace('"{{ env.S3_KEY }}"', f"{tmp_path}/in/").replace('"s3://{{ env.S3_BUCKET }}/_errors/"', f"{tmp_path}/errors/")
    text = text.replace('"s3://{{ env.S3_BUCKET }}/_jobs"', f"{tmp_path}/work")
    config = tmp_path / "job.yml.liquid"
    config.write_text(text)
    (tmp_path / "_kafka.yml.liquid").write_text((MAIN_CONFIG.parent / "_kafka.yml.liquid").read_text())
    plan = str(tmp_path / "work" / "stall" / "plan.json")
    variables = ["--var", f"KAFKA_TOPIC={topic}"]
    made = run_cli("plan", str(config), *variables, "--out", plan, "--job-id", "stall")
    assert made.returncode == 0, made.stderr
    command = [sys.executable, "-m", "pipelines", "run", str(config), *variables, "--plan", plan, "--shard", "0"]
    env = {**os.environ, "PIPELINES_SHARD_TIME_LIMIT": "40"}
    shard = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    broker = status(stack.state_dir)["kafka"]["pid"]  # not stack.kafka_pid: other tests restart the broker
    wait_for_rows(stack.kafka_bootstrap, topic, 50_000, shard)
    os.kill(broker, signal.SIGSTOP)
    try:
        peak = peak_rss_while(shard, 60)
        stdout, stderr = shard.communicate(timeout=90)
    finally:
        os.kill(broker, signal.SIGCONT)
    print(f"broker stalled mid-import: the shard's peak RSS {peak / 2**20:.0f} MB, exit {shard.returncode}")
    assert peak <= 256 * 2**20, f"peak RSS {peak / 2**20:.0f} MB"
    assert shard.returncode == 75, stderr
    assert consume_all(stack.kafka_bootstrap, topic) == [], "nothing committed"

    rerun = run_cli("run", str(config), *variables, "--plan", plan, "--shard", "0", timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.splitlines()[-1])["rows_written"] == 3_000_000


@pytest.mark.integration
def test_a_run_whose_shard_processes_all_exit_75_exits_75(stack, s3, bucket, topic, tmp_path):
    """`run` with shard processes (exec.max_threads 2): each shard stops at its time limit (exit 75),
    so the run as a whole may pass on a retry too: exit 75, not 1."""
    put_audiences(s3, bucket, count=2, rows=150_000)
    config = config_with(tmp_path, batch_rows=200)
    args = ["run", config, *job_vars(bucket, topic, MAX_THREADS="2"), "--job-id", "limited-all", "--shard-size", "1"]
    with slow_s3(stack.aws_endpoint_url, f"/{bucket}/in/", SLOW_BYTES_PER_SECOND) as endpoint:
        result = run_cli(*args, env={"AWS_ENDPOINT_URL": endpoint, "PIPELINES_SHARD_TIME_LIMIT": "2"})
    assert result.returncode == 75, result.stderr
    assert "2 shard(s) failed" in result.stderr and "time limit of 2 s" in result.stderr


def test_many_tiny_objects_are_spread_over_shards():
    """A million tiny objects fit one shard by bytes, but would be a million GETs in one task: a
    shard takes at most MAX_ITEMS_PER_SHARD, and its time limit counts them."""
    from pipelines.engine.plan import MAX_ITEMS_PER_SHARD, SHARD_MIN_SECONDS, PlanItem, pack, shard_time_limit

    items = [PlanItem(f"s3://b/{n:07d}.csv.gz", 100, "etag") for n in range(5 * MAX_ITEMS_PER_SHARD + 1)]
    shards = pack(items, 128 << 20)
    assert [len(s.items) for s in shards] == [MAX_ITEMS_PER_SHARD] * 5 + [1]
    assert [i for s in shards for i in s.items] == items, "every item once, in listing order"
    assert shard_time_limit(shards[0]) == max(SHARD_MIN_SECONDS, MAX_ITEMS_PER_SHARD // 20)
