"""A broker restart during an export (configs/export_audience_to_s3.yml.liquid), against the real broker
(restarted with `pipelines.devstack.stack.restart_kafka`, as tests/test_exactly_once.py does for imports),
moto and a topic holding one import that nothing writes to again: every export of it reads the same snapshot.

The export must end with the files and the manifest an export of the same snapshot makes without a
restart: the same file names, rows, bytes and sha256 in each, and nothing else in the job's folder.

- One shard, the broker stopped (SIGTERM) or killed (SIGKILL) while the shard reads: the read rides
  over the outage (librdkafka reconnects and fetches on from its position; the compiled consume loop
  no longer meets librdkafka's error events, which aborted the process, see
  kafka_input.detach_error_events), and the run exits 0.
- Many shards in one process, the broker killed between shards: a shard that starts while the broker
  is away waits `connect_timeout_seconds` (15) for it; a killed broker takes longer to come back (its
  log recovery), so the run may exit 75 with one `error:` line naming the brokers, and a rerun resumes
  the job (committed shards are skipped) and completes it. Either way the files are the same.

Each part upload goes through a proxy that holds it 0.1 s (tests/fault_s3.py, no fault), baseline and
restarted runs alike, so the export lasts long enough for the restart to land in the middle of it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from conftest import REPO, create_topic, run_cli, summary_of
from fault_s3 import handler_for
from test_exports import (
    EXPORT,
    audience,
    checked_manifest,
    export_vars,
    import_job,
    objects,
    read_csv_export,
    uploads,
)

ROWS = 300_000
PART_DELAY_SECONDS = 0.1
ONE_SHARD = {"MAX_ROWS_PER_FILE": "10000"}  # 30 files, one shard (RECORDS_PER_SHARD 2,000,000)
MANY_SHARDS = {"MAX_ROWS_PER_FILE": "10000", "RECORDS_PER_SHARD": "25000"}  # 14 shards, run one after the other


@contextmanager
def slow_parts(target: str, seconds: float) -> Iterator[str]:
    """An S3 endpoint forwarding to `target` (moto) that holds each UploadPart `seconds` before forwarding it."""
    from slow_s3 import serving

    base = handler_for(target, ())

    class SlowParts(base):  # type: ignore[misc, valid-type]
        def _slow_forward(self) -> None:
            if self.command == "PUT" and "partNumber=" in self.path:
                time.sleep(seconds)
            self._forward()

        do_PUT = _slow_forward

    with serving(SlowParts) as url:
        yield url


@pytest.fixture(scope="module")
def snapshot(stack) -> Iterator[SimpleNamespace]:
    """One import of ROWS rows in a topic of its own; exports of it, each made once, by their options."""
    if not hasattr(stack, "state_dir"):
        pytest.skip("needs the test run's own stack (not PIPELINES_TEST_REUSE_STACK)")
    from pipelines.engine.s3 import s3_client

    s3 = s3_client()
    bucket, topic = f"restart-{uuid.uuid4().hex[:10]}", f"audience-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    create_topic(stack.kafka_bootstrap, topic, 6)
    expected = audience(s3, bucket, ROWS, seed=21)
    assert import_job(bucket, topic, f"import-{topic}")["rows_written"] == ROWS
    with slow_parts(stack.aws_endpoint_url, PART_DELAY_SECONDS) as endpoint:
        yield SimpleNamespace(s3=s3, bucket=bucket, topic=topic, expected=expected, endpoint=endpoint, baselines={})


def export_command(snapshot: SimpleNamespace, job_id: str, options: dict[str, str]) -> list[str]:
    return ["run", EXPORT, *export_vars(snapshot.bucket, snapshot.topic, **options), "--job-id", job_id]


def baseline(snapshot: SimpleNamespace, options: dict[str, str]) -> tuple[dict, float]:
    """The export of the snapshot without a restart (made once per options): its comparable manifest, its seconds."""
    key = json.dumps(options, sort_keys=True)
    if key not in snapshot.baselines:
        job_id = f"calm-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        result = run_cli(*export_command(snapshot, job_id, options), env={"AWS_ENDPOINT_URL": snapshot.endpoint})
        seconds = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        manifest = checked_manifest(snapshot.s3, snapshot.bucket, job_id)
        assert read_csv_export(snapshot.s3, manifest) == snapshot.expected
        snapshot.baselines[key] = (comparable(snapshot, job_id), seconds)
    return snapshot.baselines[key]


def comparable(snapshot: SimpleNamespace, job_id: str) -> dict:
    """The job's manifest without what names the job or the time: file names in the job's folder, with
    their rows, bytes and sha256; totals, shard count, format, encoders, columns."""
    text = snapshot.s3.get_object(Bucket=snapshot.bucket, Key=f"exports/{job_id}/_manifest.json")["Body"].read()
    manifest = json.loads(text)
    folder = f"s3://{snapshot.bucket}/exports/{job_id}/"
    files = [{**f, "uri": f["uri"].removeprefix(folder)} for f in manifest.pop("files")]
    assert all("/" not in f["uri"] for f in files), files
    return {**{k: v for k, v in manifest.items() if k not in ("job_id", "created")}, "files": files}


def broker_down(bootstrap: str, timeout: float = 30) -> None:
    """Waits until the broker's port refuses connections."""
    host, port = bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.02)
    raise AssertionError(f"the broker at {bootstrap} still answers {timeout} s after its restart began")


def export_across_a_restart(
    stack, snapshot: SimpleNamespace, job_id: str, options: dict[str, str], kill: bool, ready: Callable[[], bool]
) -> tuple[subprocess.CompletedProcess, float]:
    """Starts the export, restarts the broker once `ready()`, checks the export still ran while the broker
    was down; the export's result and seconds."""
    from pipelines.devstack.stack import restart_kafka

    command = [sys.executable, "-m", "pipelines", *export_command(snapshot, job_id, options)]
    env = {**os.environ, "AWS_ENDPOINT_URL": snapshot.endpoint}
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restarter = threading.Thread(target=restart_kafka, args=(stack.state_dir,), kwargs={"kill": kill, "pause": 1.0})
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert process.poll() is None, f"the export ended before the restart: {process.communicate()[1]}"
            assert time.monotonic() < deadline, "the export did not get under way in 120 s"
            time.sleep(0.02)
        restarter.start()
        broker_down(stack.kafka_bootstrap)
        assert process.poll() is None, "the export ended before the broker went down: nothing was tested"
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        if restarter.is_alive() or restarter.ident is not None:
            restarter.join()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), time.monotonic() - started


def report(capsys, what: str, calm: float, restarted: float, outcome: str) -> None:
    with capsys.disabled():
        print(f"\n{what}: {ROWS} rows, export without a restart {calm:.1f} s, with the restart {restarted:.1f} s ({outcome})")


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_a_broker_restart_while_a_shard_reads_is_ridden_over_with_the_same_files(stack, snapshot, kill, capsys):
    expected, calm = baseline(snapshot, ONE_SHARD)
    job_id = f"restart-{'kill' if kill else 'term'}-{uuid.uuid4().hex[:6]}"
    started = lambda: len(uploads(snapshot.s3, snapshot.bucket, f"exports/{job_id}/")) >= 2

    result, seconds = export_across_a_restart(stack, snapshot, job_id, ONE_SHARD, kill, started)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and not [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert summary_of(result)["rows_written"] == ROWS
    checked_manifest(snapshot.s3, snapshot.bucket, job_id)  # sizes, sha256, rows; no stray object, no open upload
    assert comparable(snapshot, job_id) == expected, "the same files, rows, bytes and sha256 as without the restart"
    report(capsys, f"broker {'killed' if kill else 'stopped'} mid-read, 1 shard", calm, seconds, "rode over, exit 0")


def test_a_broker_killed_between_shards_gives_the_same_files_at_once_or_after_a_rerun(stack, snapshot, capsys):
    expected, calm = baseline(snapshot, MANY_SHARDS)
    job_id = f"restart-shards-{uuid.uuid4().hex[:6]}"
    reports = lambda: len([k for k in objects(snapshot.s3, snapshot.bucket, f"_jobs/{job_id}/shards/") if k.endswith(".json")])
    result, seconds = export_across_a_restart(stack, snapshot, job_id, MANY_SHARDS, True, lambda: reports() >= 3)

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 75), result.stderr
    outcome = "rode over, exit 0"
    if result.returncode == 75:
        (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert error.startswith(f"error: Kafka {stack.kafka_bootstrap}: "), error
        assert summary_of(result)["status"] == "failed"
        assert not objects(snapshot.s3, snapshot.bucket, f"exports/{job_id}/_manifest.json"), "no manifest before every shard committed"
        done, rerun_started = reports(), time.monotonic()
        rerun = run_cli(*export_command(snapshot, job_id, MANY_SHARDS), env={"AWS_ENDPOINT_URL": snapshot.endpoint})
        assert rerun.returncode == 0, rerun.stderr
        assert summary_of(rerun)["shards_skipped"] == done, "the rerun resumed the job"
        outcome = (
            f"exit 75 after {seconds:.1f} s ({error.removeprefix('error: ')}), then a rerun skipping {done} committed "
            f"shards: exit 0 in {time.monotonic() - rerun_started:.1f} s"
        )
        seconds += time.monotonic() - rerun_started
    checked_manifest(snapshot.s3, snapshot.bucket, job_id)
    assert comparable(snapshot, job_id) == expected, "the same files, rows, bytes and sha256 as without the restart"
    report(capsys, "broker killed between shards, 14 shards", calm, seconds, outcome)
