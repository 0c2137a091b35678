"""Exactly once, against the real broker: a transaction per shard, fencing of killed attempts, resume,
end markers, and a broker restart in the middle of a run. Plans and reports live in moto S3."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest
from conftest import (
    REPO, config_with, consume_all, end_offsets, job_vars, put_audiences, rows_and_markers, run_cli, summary_of, wait_for_rows,
)
from slow_s3 import slow_s3


def streams_style_read(bootstrap: str, topic: str, job_id: str) -> dict[int, list[str]]:
    """Reads each partition like a Kafka Streams task would: read_committed, up to the job's end marker,
    then checks the marker's count against the job's rows seen in that partition. Returns keys by partition."""
    records = sorted(consume_all(bootstrap, topic), key=lambda m: (m.partition(), m.offset()))
    _, markers = rows_and_markers(records)
    keys: dict[int, list[str]] = {p: [] for p in markers}
    marker_seen: set[int] = set()
    for msg in records:
        headers = dict(msg.headers() or [])
        if headers.get("pipelines.job_id") != job_id.encode():
            continue
        assert msg.partition() not in marker_seen, "a row of the job after its end marker"
        if headers.get("pipelines.marker") == b"end":
            marker = json.loads(msg.value())
            assert marker["partition_rows"] == len(keys[msg.partition()]), (msg.partition(), marker)
            marker_seen.add(msg.partition())
        else:
            keys[msg.partition()].append(msg.key().decode())
    partitions = len(end_offsets(bootstrap, topic))
    assert marker_seen == set(range(partitions)), "every partition has the job's end marker"
    total = sum(len(v) for v in keys.values())
    assert all(m["total_rows"] == total for m in markers.values())
    return keys


def assert_exactly_once(keys: dict[int, list[str]], expected_ids: list[str]) -> None:
    seen = Counter(k for ks in keys.values() for k in ks)
    doubled = [k for k, n in seen.items() if n > 1]
    assert not doubled, f"{len(doubled)} rows twice, e.g. {doubled[:3]}"
    assert set(seen) == set(expected_ids), f"{len(set(expected_ids) - set(seen))} rows missing"


def start_cli(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *args], cwd=REPO, env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_killed_shard_rerun_gives_every_row_once(stack, s3, bucket, topic, tmp_path):
    ids = put_audiences(s3, bucket, count=3, rows=150_000)
    config = config_with(tmp_path, batch_rows=200)
    plan = f"s3://{bucket}/_jobs/killed/plan.json"
    made = run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", "killed", "--shard-size", "1KiB")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["shards"] == 3  # one gzip object each

    with slow_s3(stack.aws_endpoint_url, f"/{bucket}/in/", 256 * 1024) as endpoint:  # the shard runs ~6 s
        victim = start_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "1", AWS_ENDPOINT_URL=endpoint)
        wait_for_rows(stack.kafka_bootstrap, topic, 5_000, victim)  # midway: rows sent, not committed
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="_jobs/killed/shards/00001.json")  # it did not finish

    for shard in ("0", "1", "2"):
        result = run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", shard)
        assert result.returncode == 0, result.stderr
    report = json.loads(run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "1").stdout.splitlines()[-1])
    assert report["status"] == "skipped" and report["attempt"] == 2  # the rerun after the kill
    finished = run_cli("finish", config, *job_vars(bucket, topic), "--plan", plan)
    assert finished.returncode == 0, finished.stderr
    summary = summary_of(finished)
    assert (summary["rows_written"], summary["end_markers"], summary["shards"]) == (len(ids), 6, 3)

    assert sum(end_offsets(stack.kafka_bootstrap, topic).values()) > len(ids) + 6  # the killed attempt's rows are in the log ...
    assert_exactly_once(streams_style_read(stack.kafka_bootstrap, topic, "killed"), ids)  # ... but never read


def test_report_lost_after_commit_is_taken_from_kafka(stack, s3, bucket, topic, tmp_path):
    """A shard killed between its commit and writing its report is not run again: the report rode in the transaction."""
    ids = put_audiences(s3, bucket, count=1, rows=2_000)
    config = config_with(tmp_path)
    plan = f"s3://{bucket}/_jobs/lost/plan.json"
    assert run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", "lost").returncode == 0
    first = run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "0")
    assert first.returncode == 0, first.stderr
    s3.delete_object(Bucket=bucket, Key="_jobs/lost/shards/00000.json")

    again = run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "0")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["status"] == "skipped"
    restored = json.loads(s3.get_object(Bucket=bucket, Key="_jobs/lost/shards/00000.json")["Body"].read())
    assert restored == {k: v for k, v in json.loads(first.stdout.splitlines()[-1]).items() if k != "status"}

    finished = run_cli("finish", config, *job_vars(bucket, topic), "--plan", plan)
    assert finished.returncode == 0, finished.stderr
    again_finished = run_cli("finish", config, *job_vars(bucket, topic), "--plan", plan)  # markers are sent once
    assert again_finished.returncode == 0, again_finished.stderr
    assert_exactly_once(streams_style_read(stack.kafka_bootstrap, topic, "lost"), ids)


def test_finish_refuses_while_shards_are_missing(stack, s3, bucket, topic, tmp_path):
    put_audiences(s3, bucket, count=3, rows=100)
    config = config_with(tmp_path)
    plan = f"s3://{bucket}/_jobs/partial/plan.json"
    assert run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", "partial", "--shard-size", "1").returncode == 0
    assert run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "1").returncode == 0
    result = run_cli("finish", config, *job_vars(bucket, topic), "--plan", plan)
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error == [
        f"error: job partial: 2 of 3 shard(s) have no report yet: 0, 2; run them with "
        f"`pipelines run CONFIG --plan {plan} --shard N`"
    ]
    assert rows_and_markers(consume_all(stack.kafka_bootstrap, topic))[1] == {}  # no end marker


def test_two_processes_and_resume(stack, s3, bucket, topic, tmp_path):
    ids = put_audiences(s3, bucket, count=4, rows=5_000)
    config = config_with(tmp_path)
    result = run_cli("run", config, *job_vars(bucket, topic, MAX_THREADS="2"), "--job-id", "pair", "--shard-size", "1")
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["shards"], summary["shards_skipped"], summary["rows_written"]) == (4, 0, len(ids))
    assert '"event":"shard_started"' in result.stderr

    rerun = run_cli("run", config, *job_vars(bucket, topic), "--job-id", "pair")  # resume: nothing left to do
    assert rerun.returncode == 0, rerun.stderr
    assert (summary_of(rerun)["shards_skipped"], summary_of(rerun)["rows_written"]) == (4, len(ids))
    assert_exactly_once(streams_style_read(stack.kafka_bootstrap, topic, "pair"), ids)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_broker_restart_during_a_run(stack, s3, bucket, topic, tmp_path, kill):
    if not hasattr(stack, "state_dir"):
        pytest.skip("needs the test run's own stack (not PIPELINES_TEST_REUSE_STACK)")
    from pipelines.devstack.stack import restart_kafka

    ids = put_audiences(s3, bucket, count=4, rows=40_000)
    config = config_with(tmp_path, batch_rows=1000)
    job_id = f"restart-{kill}"
    args = ["run", config, *job_vars(bucket, topic), "--job-id", job_id, "--shard-size", "1"]
    running = start_cli(*args)
    wait_for_rows(stack.kafka_bootstrap, topic, 20_000, running)
    restarter = threading.Thread(target=restart_kafka, args=(stack.state_dir,), kwargs={"pause": 1.0, "kill": kill})
    restarter.start()
    stdout, stderr = running.communicate(timeout=300)
    restarter.join()
    print(f"broker restart: exit {running.returncode}; {[l for l in stderr.splitlines() if l.startswith('error: ')]}")
    # Completed, or failed cleanly: one error line, a failed summary, no traceback.
    assert "Traceback" not in stderr, stderr
    assert running.returncode in (0, 1, 75), stderr
    if running.returncode != 0:
        assert json.loads(stdout.splitlines()[-1])["status"] == "failed"
        assert len([line for line in stderr.splitlines() if line.startswith("error: ")]) == 1, stderr

    rerun = run_cli(*args)  # resumes the same plan
    assert rerun.returncode == 0, rerun.stderr
    assert summary_of(rerun)["rows_written"] == len(ids)
    assert_exactly_once(streams_style_read(stack.kafka_bootstrap, topic, job_id), ids)


def test_s3_object_changed_or_gone_between_plan_and_run(stack, s3, bucket, topic, tmp_path):
    put_audiences(s3, bucket, count=2, rows=100)
    config = config_with(tmp_path)
    plan = f"s3://{bucket}/_jobs/changed/plan.json"
    assert run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", "changed", "--shard-size", "1").returncode == 0
    s3.put_object(Bucket=bucket, Key="in/part-0.csv.gz", Body=gzip.compress(b"user_id,country,score,opted_in,updated_at\n"))
    s3.delete_object(Bucket=bucket, Key="in/part-1.csv.gz")

    changed = run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "0")
    gone = run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "1")
    assert changed.returncode == gone.returncode == 1
    assert f"error: s3://{bucket}/in/part-0.csv.gz: the object changed since the plan was made (ETag " in changed.stderr
    assert f"error: s3://{bucket}/in/part-1.csv.gz: the object is gone since the plan was made" in gone.stderr
    assert set(end_offsets(stack.kafka_bootstrap, topic).values()) == {0}  # nothing sent
