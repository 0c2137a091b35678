"""The schema registry down, overloaded or refusing a schema around an Avro import
(configs/send_audience_to_kafka_avro.yml.liquid), against the real broker, moto and the stack's real
registry, faults injected by a proxy in front of it (tests/fault_registry.py) or a port nobody listens on.

At the start: a registry that cannot be reached (refused, or hung past the client's 10 s timeout) or
answers 5xx fails the run with exit 75 (may pass on retry) and one `error:` line naming the registry's
URL, before anything is sent; one answering 4xx for the schema (409 incompatible, 422, 401) fails it for
good, exit 1. In the middle: the import asks the registry once per process, when the first shard opens
the Kafka output (POST /subjects/<topic>-value/versions; the finish step's end markers are JSON and ask
nothing), so a registry gone after that request does not touch the run. A shard run in its own process
(a Fargate task of the workflow) asks once for itself: started while the registry is down, it exits 75
having sent nothing, and its retry completes the job exactly.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest
from conftest import (
    CONFIGS,
    consume_all,
    end_offsets,
    free_port,
    put_audiences,
    rows_and_markers,
    run_cli,
    summary_of,
)
from fault_registry import fault_registry

from pipelines.engine.errors import EXIT_RETRYABLE, EXIT_RUN_FAILED

IMPORT_AVRO = CONFIGS / "send_audience_to_kafka_avro.yml.liquid"
REGISTRY_PATH = "/apis/ccompat/v7"


def avro_config(tmp_path: Path, batch_rows: int = 1000) -> str:
    """The Avro import config with small batches (several a shard), and its Kafka partial."""
    text = IMPORT_AVRO.read_text().replace("exec:\n", f"exec:\n  batch_rows: {batch_rows}\n")
    (tmp_path / "avro.yml.liquid").write_text(text)
    (tmp_path / "_kafka.yml.liquid").write_text((CONFIGS / "_kafka.yml.liquid").read_text())
    return str(tmp_path / "avro.yml.liquid")


def avro_vars(bucket: str, topic: str, registry: str) -> list[str]:
    pairs = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic, "SCHEMA_REGISTRY_URL": registry}
    return [arg for key, value in pairs.items() for arg in ("--var", f"{key}={value}")]


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def assert_failed_before_sending(result, bootstrap: str, topic: str, code: int, registry: str) -> str:
    """Exit `code`, one error line naming `registry`, a failed summary, and nothing in the topic; the line."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = error_lines(result)
    assert line.startswith(f"error: schema registry {registry}: "), line
    assert summary_of(result)["status"] == "failed"
    assert set(end_offsets(bootstrap, topic).values()) == {0}, "nothing was sent, not even an aborted transaction"
    return line


def assert_exactly_imported(bootstrap: str, topic: str, job_id: str, ids: list[str]) -> None:
    rows, markers = rows_and_markers(consume_all(bootstrap, topic))
    keys = Counter(m.key().decode() for m in rows if ("pipelines.job_id", job_id.encode()) in m.headers())
    assert len(rows) == sum(keys.values()), "only the job's rows"
    assert set(keys.values()) == {1} and set(keys) == set(ids), f"{len(set(ids) - set(keys))} missing"
    assert all(m.value()[0] == 0 for m in rows), "Avro in the Confluent wire format"
    assert sorted(markers) == list(range(6)) and sum(m["partition_rows"] for m in markers.values()) == len(ids)


# ------------------------------------------------------------------ down at the start


def test_a_registry_nobody_listens_on_fails_the_import_with_exit_75(stack, s3, bucket, topic, tmp_path):
    put_audiences(s3, bucket, count=1, rows=500)
    dead = f"http://127.0.0.1:{free_port()}{REGISTRY_PATH}"

    result = run_cli("run", avro_config(tmp_path), *avro_vars(bucket, topic, dead), "--job-id", "dead-registry")

    line = assert_failed_before_sending(result, stack.kafka_bootstrap, topic, EXIT_RETRYABLE, dead)
    assert f"cannot reach the schema registry (POST /subjects/{topic}-value/versions): " in line, line
    assert "Connection refused" in line and line.endswith("; it may pass on retry"), line


def test_a_hung_registry_fails_the_import_with_exit_75_after_its_timeout(stack, s3, bucket, topic, tmp_path):
    put_audiences(s3, bucket, count=1, rows=500)
    with socket.socket() as hung:  # listens (connections complete in the kernel) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}{REGISTRY_PATH}"
        result = run_cli("run", avro_config(tmp_path), *avro_vars(bucket, topic, url), "--job-id", "hung-registry")

    line = assert_failed_before_sending(result, stack.kafka_bootstrap, topic, EXIT_RETRYABLE, url)
    assert "cannot reach the schema registry (POST " in line and "timed out" in line, line


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (503, EXIT_RETRYABLE, "HTTP 503"),
        (500, EXIT_RETRYABLE, "HTTP 500"),
        (429, EXIT_RETRYABLE, "HTTP 429"),
        (422, EXIT_RUN_FAILED, "HTTP 422"),
        (401, EXIT_RUN_FAILED, "check the registry credentials"),
    ],
)
def test_a_registry_answering_an_error_fails_the_import_with_the_exit_code_of_its_kind(
    stack, s3, bucket, topic, tmp_path, status, code, says
):
    put_audiences(s3, bucket, count=1, rows=500)
    with fault_registry(stack.schema_registry_url) as proxy:
        proxy.fail_after(0, status=status)
        result = run_cli("run", avro_config(tmp_path), *avro_vars(bucket, topic, proxy.url), "--job-id", f"registry-{status}")

    line = assert_failed_before_sending(result, stack.kafka_bootstrap, topic, code, proxy.url)
    assert f"POST /subjects/{topic}-value/versions: " in line and says in line, line
    assert proxy.requests == [f"POST {REGISTRY_PATH}/subjects/{topic}-value/versions"], "asked once: no retry inside the run"


def test_a_schema_the_registry_refuses_as_incompatible_fails_for_good(stack, s3, bucket, topic, tmp_path):
    """The real registry's 409: the subject holds a schema the config's cannot replace (BACKWARD compatibility)."""
    from pipelines.kafka.schema_registry import SchemaRegistry

    put_audiences(s3, bucket, count=1, rows=500)
    registry = SchemaRegistry(stack.schema_registry_url)
    fields = [{"name": "user_id", "type": "string"}, {"name": "segment_id", "type": "string"}]
    registry.register(f"{topic}-value", {"type": "record", "name": "AudienceMember", "namespace": "audience_pipelines", "fields": fields})
    registry._call("PUT", f"/config/{topic}-value", {"compatibility": "BACKWARD"})

    result = run_cli("run", avro_config(tmp_path), *avro_vars(bucket, topic, stack.schema_registry_url), "--job-id", "incompatible")

    line = assert_failed_before_sending(result, stack.kafka_bootstrap, topic, EXIT_RUN_FAILED, stack.schema_registry_url)
    assert f"POST /subjects/{topic}-value/versions: HTTP 409" in line, line
    assert "not compatible with the schemas registered under the subject" in line, line


# ------------------------------------------------------------------ down in the middle


def test_a_registry_gone_after_the_first_request_does_not_touch_the_import(stack, s3, bucket, topic, tmp_path):
    """Three shards in one process (shard size 1 byte: one a gzip object), 20 batches each: the registry
    is asked once, when the first shard opens the output, and refuses connections from then on."""
    ids = put_audiences(s3, bucket, count=3, rows=20_000)
    with fault_registry(stack.schema_registry_url) as proxy:
        proxy.fail_after(1, refuse=True)
        args = ["run", avro_config(tmp_path), *avro_vars(bucket, topic, proxy.url), "--job-id", "registry-gone", "--shard-size", "1"]
        result = run_cli(*args)

    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["shards"], summary["rows_written"], summary["end_markers"]) == (3, len(ids), 6)
    assert proxy.requests == [f"POST {REGISTRY_PATH}/subjects/{topic}-value/versions"], proxy.requests
    assert proxy.failed == []
    assert_exactly_imported(stack.kafka_bootstrap, topic, "registry-gone", ids)


def test_a_shard_process_started_while_the_registry_is_down_exits_75_and_its_retry_completes(stack, s3, bucket, topic, tmp_path):
    """As the workflow runs shards (one `pipelines run --plan P --shard I` process each): every shard asks
    the registry for itself. Shard 0 runs while it answers; shard 1 starts once it refuses connections."""
    ids = put_audiences(s3, bucket, count=2, rows=5_000)
    config, plan = avro_config(tmp_path), f"s3://{bucket}/_jobs/per-shard/plan.json"
    with fault_registry(stack.schema_registry_url) as proxy:
        shard = lambda index: run_cli("run", config, *avro_vars(bucket, topic, proxy.url), "--plan", plan, "--shard", str(index))
        made = run_cli("plan", config, *avro_vars(bucket, topic, proxy.url), "--out", plan, "--job-id", "per-shard", "--shard-size", "1")
        assert made.returncode == 0 and json.loads(made.stdout)["shards"] == 2, made.stderr
        assert shard(0).returncode == 0
        asked_by_shard_0 = list(proxy.requests)
        proxy.fail_after(len(proxy.requests), refuse=True)
        down = shard(1)

    assert asked_by_shard_0 == [f"POST {REGISTRY_PATH}/subjects/{topic}-value/versions"], "the plan asks nothing; the shard once"
    assert down.returncode == EXIT_RETRYABLE, down.stderr
    (line,) = error_lines(down)
    assert line.startswith(f"error: schema registry {proxy.url}: cannot reach the schema registry (POST "), line
    assert json.loads(down.stdout.splitlines()[-1])["status"] == "failed"
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="_jobs/per-shard/shards/00001.json").get("Contents"), "no report: it runs again"

    registry_back = avro_vars(bucket, topic, stack.schema_registry_url)  # the retry, the registry answering again
    assert run_cli("run", config, *registry_back, "--plan", plan, "--shard", "1").returncode == 0
    finished = run_cli("finish", config, *registry_back, "--plan", plan)
    assert finished.returncode == 0, finished.stderr
    assert summary_of(finished)["rows_written"] == len(ids)
    assert_exactly_imported(stack.kafka_bootstrap, topic, "per-shard", ids)
