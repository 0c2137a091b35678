"""Every bad input of the engine issue, end to end through `pipelines run` against the real broker and
moto S3: the one-line message, the exit code, and what the topic holds afterwards."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest
from conftest import CONFIGS, consume_all, end_offsets, free_port, rows_and_markers, run_cli, summary_of

from pipelines.native.compiled import compiled
from pipelines.devstack.sample import HEADER

MAIN_CONFIG = str(CONFIGS / "send_audience_to_kafka.yml.liquid")
GOOD_ROW = "u{:09d},JP,1.5,true,2026-11-01T12:00:00Z\n"


def rows_csv(n: int, bad: dict[int, str] | None = None) -> bytes:
    """Header plus n rows; bad[i] replaces row i (0-based; row i is on line i + 2)."""
    bad = bad or {}
    return (HEADER + "".join(bad.get(i, GOOD_ROW.format(i)) for i in range(n))).encode()


def run_main(bucket: str, key: str, topic: str, *extra: str, env: dict[str, str] | None = None):
    return run_cli(
        "run", MAIN_CONFIG, "--var", f"S3_BUCKET={bucket}", "--var", f"S3_KEY={key}",
        "--var", f"KAFKA_TOPIC={topic}", *extra, env=env,
    )


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def assert_nothing_written(stack, topic: str) -> None:
    assert set(end_offsets(stack.kafka_bootstrap, topic).values()) == {0}


def test_undefined_template_variable(stack, topic):
    result = run_cli("run", MAIN_CONFIG, "--var", f"KAFKA_TOPIC={topic}", unset=("S3_BUCKET", "S3_KEY"))
    assert result.returncode == 2
    message = error_line(result)
    line = 1 + (CONFIGS / "send_audience_to_kafka.yml.liquid").read_text().splitlines().index('  bucket: "{{ env.S3_BUCKET }}"')
    assert f"send_audience_to_kafka.yml.liquid: line {line}: " in message
    assert "undefined template variable: env.S3_BUCKET" in message
    assert result.stdout == ""
    assert_nothing_written(stack, topic)


def test_unknown_plugin_type(stack, topic, tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text(
        "in: {type: s3, bucket: b, path: k, parser: {type: csv, columns: [{name: user_id}]}}\n"
        f"out: {{type: kafkaa, brokers: ['{stack.kafka_bootstrap}'], topic: {topic}}}\n"
    )
    result = run_cli("run", str(config))
    assert result.returncode == 2
    assert error_line(result) == (
        f"error: {config}: out.type: unknown out plugin type 'kafkaa' (did you mean 'kafka'?); known: file, kafka, null, s3, stdout"
    )
    assert_nothing_written(stack, topic)


def test_missing_required_option(stack, topic, tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text(
        "in: {type: s3, bucket: b, path: k, parser: {type: csv, columns: [{name: user_id}]}}\n"
        f"out: {{type: kafka, brokers: ['{stack.kafka_bootstrap}'], key_column_name: user_id}}\n"
    )
    result = run_cli("run", str(config))
    assert result.returncode == 2
    assert error_line(result) == f"error: {config}: out.topic: missing required option 'topic'"
    assert_nothing_written(stack, topic)


def test_malformed_csv_rows_fail_the_run_by_default(stack, s3, bucket, topic):
    body = rows_csv(50, bad={3: "u000000003,JP\n", 7: "u000000007,JP,not-a-number,true,2026-11-01T12:00:00Z\n"})
    s3.put_object(Bucket=bucket, Key="in/a.csv.gz", Body=gzip.compress(body))
    result = run_main(bucket, "in/a.csv.gz", topic)
    assert result.returncode == 1
    assert error_line(result).startswith(
        f"error: 1 bad row(s), more than max_errors 0; first: s3://{bucket}/in/a.csv.gz line 5: expected 5 columns, got 2; "
        f"all written to s3://{bucket}/_errors/"
    )
    summary = summary_of(result)
    assert summary["status"] == "failed" and summary["rows_written"] == 0
    # The rows before line 5 may have been sent, in the shard's transaction, which was aborted.
    assert consume_all(stack.kafka_bootstrap, topic) == []


def test_malformed_csv_rows_below_max_errors_are_skipped_and_written_out(stack, s3, bucket, topic):
    body = rows_csv(50, bad={3: "u000000003,JP\n", 7: "u000000007,JP,not-a-number,true,2026-11-01T12:00:00Z\n"})
    s3.put_object(Bucket=bucket, Key="in/a.csv.gz", Body=gzip.compress(body))
    result = run_main(bucket, "in/a.csv.gz", topic, "--var", "MAX_ERRORS=2", "--job-id", "skip-two")
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (50, 48, 2)
    error_key = "_errors/skip-two.shard-00000.errors.jsonl"
    assert summary["error_outputs"] == [f"s3://{bucket}/{error_key}"]
    errors = [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=error_key)["Body"].read().splitlines()]
    assert errors == [
        {"source": f"s3://{bucket}/in/a.csv.gz", "line": 5, "reason": "expected 5 columns, got 2", "raw": "u000000003,JP"},
        {
            "source": f"s3://{bucket}/in/a.csv.gz",
            "line": 9,
            "reason": "column 'score' (double): cannot parse 'not-a-number'",
            "raw": "u000000007,JP,not-a-number,true,2026-11-01T12:00:00Z",
        },
    ]
    rows, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert sorted(m.key().decode() for m in rows) == [f"u{i:09d}" for i in range(50) if i not in (3, 7)]
    assert sum(m["partition_rows"] for m in markers.values()) == 48 and len(markers) == 6


def test_bad_row_after_rows_were_sent_aborts_the_transaction(stack, s3, bucket, topic, tmp_path):
    """Rows already produced when the run fails stay invisible to read_committed consumers."""
    config = tmp_path / "small_batches.yml.liquid"
    text = (CONFIGS / "send_audience_to_kafka.yml.liquid").read_text().replace("exec:\n", "exec:\n  batch_rows: 1000\n")
    config.write_text(text)
    (tmp_path / "_kafka.yml.liquid").write_text((CONFIGS / "_kafka.yml.liquid").read_text())
    s3.put_object(Bucket=bucket, Key="in/a.csv.gz", Body=gzip.compress(rows_csv(5000, bad={4500: "broken\n"})))
    result = run_cli("run", str(config), "--var", f"S3_BUCKET={bucket}", "--var", "S3_KEY=in/a.csv.gz", "--var", f"KAFKA_TOPIC={topic}")
    assert result.returncode == 1
    assert "line 4502: expected 5 columns, got 1" in error_line(result)
    assert sum(end_offsets(stack.kafka_bootstrap, topic).values()) >= 4000  # they were sent ...
    assert consume_all(stack.kafka_bootstrap, topic) == []  # ... and aborted


def test_truncated_gzip(stack, s3, bucket, topic):
    body = gzip.compress(rows_csv(2000))
    s3.put_object(Bucket=bucket, Key="in/cut.csv.gz", Body=body[: len(body) // 2])
    result = run_main(bucket, "in/cut.csv.gz", topic)
    assert result.returncode == 1
    assert error_line(result).startswith(f"error: s3://{bucket}/in/cut.csv.gz: gzip stream is truncated")
    assert consume_all(stack.kafka_bootstrap, topic) == []


def test_bytes_not_in_the_declared_charset(stack, s3, bucket, topic):
    body = rows_csv(20).replace(b"u000000004,JP", b"u000000004,J\xff")
    s3.put_object(Bucket=bucket, Key="in/latin.csv.gz", Body=gzip.compress(body))
    result = run_main(bucket, "in/latin.csv.gz", topic)
    assert result.returncode == 1
    message = error_line(result)
    assert f"first: s3://{bucket}/in/latin.csv.gz line 6: bytes are not valid utf-8" in message
    assert consume_all(stack.kafka_bootstrap, topic) == []


def test_empty_object(stack, s3, bucket, topic):
    s3.put_object(Bucket=bucket, Key="in/empty.csv.gz", Body=b"")
    result = run_main(bucket, "in/empty.csv.gz", topic)
    assert result.returncode == 1
    assert error_line(result) == f"error: s3://{bucket}/in/empty.csv.gz: the object is empty (0 bytes)"
    assert_nothing_written(stack, topic)


def test_missing_bucket(stack, topic):
    result = run_main("no-such-bucket-here", "in/a.csv.gz", topic)
    assert result.returncode == 1
    assert error_line(result) == "error: s3://no-such-bucket-here/in/a.csv.gz: the bucket does not exist"
    assert_nothing_written(stack, topic)


def test_missing_key(stack, bucket, topic):
    result = run_main(bucket, "in/nothing-here.csv.gz", topic)
    assert result.returncode == 1
    assert error_line(result) == f"error: s3://{bucket}/in/nothing-here.csv.gz: no object matches"
    assert_nothing_written(stack, topic)


def test_missing_key_given_as_path(stack, bucket, topic, tmp_path):
    config = tmp_path / "path.yml"
    config.write_text(
        f"in: {{type: s3, bucket: {bucket}, path: in/gone.csv, parser: {{type: csv, columns: [{{name: user_id}}]}}}}\n"
        f"out: {{type: kafka, brokers: ['{stack.kafka_bootstrap}'], topic: {topic}, key_column_name: user_id}}\n"
    )
    result = run_cli("run", str(config))
    assert result.returncode == 1
    assert error_line(result) == f"error: s3://{bucket}/in/gone.csv: the object does not exist"
    assert_nothing_written(stack, topic)


def test_unreachable_broker(stack, s3, bucket, topic):
    s3.put_object(Bucket=bucket, Key="in/a.csv.gz", Body=gzip.compress(rows_csv(10)))
    nowhere = f"127.0.0.1:{free_port()}"
    result = run_main(bucket, "in/a.csv.gz", topic, env={"KAFKA_BOOTSTRAP": nowhere, "KAFKA_CONNECT_TIMEOUT_SECONDS": "3"})
    assert result.returncode == 75  # retryable: the workflow runs the shard again
    assert error_line(result) == (
        f"error: Kafka {nowhere}: cannot reach the brokers within 3 s (is Kafka running, and is the address right?)"
    )
    assert summary_of(result)["rows_written"] == 0
    assert_nothing_written(stack, topic)


@pytest.mark.parametrize("missing", ["S3_KEY"])
def test_undefined_variable_names_the_variable(missing, topic):
    result = run_cli("validate", MAIN_CONFIG, "--var", "S3_BUCKET=b", unset=(missing,))
    assert result.returncode == 2
    assert f"env.{missing} is undefined" in error_line(result)


@pytest.mark.parametrize("transactional", [True, False])
def test_failed_delivery_fails_the_run(stack, s3, bucket, tmp_path, transactional):
    """The broker rejects every record (the topic takes at most 64 bytes a batch): no row counts as written."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"tiny-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1, config={"max.message.bytes": "64"})])[topic].result(30)
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=rows_csv(100))
    config = tmp_path / "tiny.yml"
    config.write_text(
        f"in: {{type: s3, bucket: {bucket}, path: in/a.csv, parser: {{type: csv, skip_header_lines: 1, "
        "columns: [{name: user_id}, {name: country}, {name: score}, {name: opted_in}, {name: updated_at}]}}\n"
        f"out: {{type: kafka, brokers: ['{stack.kafka_bootstrap}'], topic: {topic}, key_column_name: user_id, "
        f"transactional: {str(transactional).lower()}}}\n"
    )
    result = run_cli("run", str(config))
    assert result.returncode == 1
    assert "row(s) were not acknowledged; first: Broker: Message size too large" in error_line(result)
    summary = summary_of(result)
    assert summary["status"] == "failed" and summary["rows_read"] == 100 and summary["rows_written"] == 0
    assert consume_all(stack.kafka_bootstrap, topic) == []


def test_failed_run_without_transaction_counts_the_rows_that_stay(stack, s3, bucket, topic, tmp_path):
    """transactional: false cannot take rows back: the failed summary counts exactly those in the topic."""
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=rows_csv(5000, bad={4500: "broken\n"}))
    config = tmp_path / "plain.yml"
    config.write_text(
        f"in: {{type: s3, bucket: {bucket}, path: in/a.csv, parser: {{type: csv, skip_header_lines: 1, "
        "columns: [{name: user_id}, {name: country}, {name: score}, {name: opted_in}, {name: updated_at}]}}\n"
        f"out: {{type: kafka, brokers: ['{stack.kafka_bootstrap}'], topic: {topic}, key_column_name: user_id, transactional: false}}\n"
        "exec: {batch_rows: 1000}\n"
    )
    result = run_cli("run", str(config))
    assert result.returncode == 1
    assert "line 4502: expected 5 columns, got 1" in error_line(result)
    written = summary_of(result)["rows_written"]
    # Encoded (pipelines.native.fused), every row before the bad one is sent; else the four full batches before it.
    assert written == (4500 if compiled("pipelines.native._fastrows", "encode_records") else 4000)
    assert len(consume_all(stack.kafka_bootstrap, topic)) == written
