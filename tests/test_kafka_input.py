"""The Kafka input against the real broker: a bounded snapshot (a live topic's export ends at the plan's
offsets), where it starts (earliest, a timestamp, after a job's end markers), one job's rows only,
group offsets only when asked, and bad records counted and written, never dropped."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import consume_all, create_topic, run_cli, summary_of

COLUMNS = """  columns:
    - {name: user_id, type: string}
    - {name: score, type: double}
"""


def export_config(tmp_path: Path, bootstrap: str, topic: str, extra: str = "", exec_: str = "") -> str:
    """A Kafka input printing JSON lines (the stdout output), its work in tmp_path."""
    path = tmp_path / f"export-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(
        "in:\n  type: kafka\n"
        f"  brokers: ['{bootstrap}']\n  topic: {topic}\n" + COLUMNS + extra
        + "out: {type: stdout}\n"
        f"exec:\n  work_dir: {tmp_path / 'work'}\n  error_output: {tmp_path / 'errors'}/\n" + exec_
    )
    return str(path)


def import_config(tmp_path: Path, bootstrap: str, topic: str, rows: list[tuple[str, float]], transactional: bool = True) -> str:
    """A local CSV into the topic with the engine (end markers included)."""
    data = tmp_path / f"in-{uuid.uuid4().hex[:6]}.csv"
    data.write_text("user_id,score\n" + "".join(f"{u},{s}\n" for u, s in rows))
    path = tmp_path / f"import-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(
        f"in:\n  type: file\n  path_prefix: {data}\n  parser:\n    type: csv\n    skip_header_lines: 1\n"
        + "".join("  " + line + "\n" for line in COLUMNS.splitlines())
        + f"out:\n  type: kafka\n  brokers: ['{bootstrap}']\n  topic: {topic}\n  key_column_name: user_id\n"
        f"  transactional: {str(transactional).lower()}\n"
        f"exec:\n  work_dir: {tmp_path / 'work'}\n"
    )
    return str(path)


def exported(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()[:-1]]


def produce(bootstrap: str, topic: str, values: list[bytes | None], **kwargs) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value, f"k{i}".encode(), **kwargs)
    assert producer.flush(30) == 0


def rows(prefix: str, count: int) -> list[tuple[str, float]]:
    return [(f"{prefix}{i}", i / 4) for i in range(count)]


def test_an_export_of_a_topic_that_keeps_receiving_writes_ends_at_its_snapshot(stack, tmp_path):
    """A writer produces all along (plain and transactional records, some aborted); the export reads
    exactly the committed records below the offsets its plan fixed, and ends."""
    from confluent_kafka import KafkaException, Producer

    topic = f"live-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 3)
    produce(stack.kafka_bootstrap, topic, [json.dumps({"user_id": f"pre{i}", "score": i}).encode() for i in range(20_000)])

    stop, written = threading.Event(), [0]

    def transactional_writer() -> Producer:
        txn = Producer({"bootstrap.servers": stack.kafka_bootstrap, "transactional.id": f"w-{topic}"})
        txn.init_transactions(30)
        return txn

    def writer() -> None:
        plain = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True, "linger.ms": 2})
        txn = transactional_writer()
        n = 0
        while not stop.is_set():
            for _ in range(200):
                plain.produce(topic, json.dumps({"user_id": f"live{n}", "score": n}).encode(), f"live{n}".encode())
                n += 1
            try:
                txn.begin_transaction()
                txn.produce(topic, json.dumps({"user_id": f"txn{n}", "score": n}).encode(), f"txn{n}".encode())
                (txn.commit_transaction if n % 400 else txn.abort_transaction)(30)
            except KafkaException:
                # The broker, busy with the export, can time a transaction out; librdkafka then makes the
                # producer's error fatal (INVALID_TXN_STATE). A writer in production starts a new producer,
                # which fences the old one; so does this one, so that it keeps writing all along.
                txn = transactional_writer()
            plain.poll(0)
            written[0] = n
            time.sleep(0.002)
        plain.flush(30)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while written[0] < 2000:
            time.sleep(0.05)
        config = export_config(tmp_path, stack.kafka_bootstrap, topic, "  records_per_shard: 15000\n")
        result = run_cli("run", config, "--job-id", "live-export", timeout=120)
        at_end = written[0]
    finally:
        stop.set()
        thread.join(30)
    got = exported(result)
    summary = summary_of(result)
    assert at_end > 2000, "the writer kept writing during the export"

    plan = json.loads((tmp_path / "work" / "live-export" / "plan.json").read_text())
    ends = {}
    for shard in plan["shards"]:
        for item in shard["items"]:
            partition = int(item["uri"].rsplit("/", 1)[1])
            ends[partition] = max(ends.get(partition, 0), item["end"])
    expected = [
        json.loads(m.value())["user_id"]
        for m in consume_all(stack.kafka_bootstrap, topic)
        if m.offset() < ends.get(m.partition(), 0)
    ]
    assert sorted(r["user_id"] for r in got) == sorted(expected)
    assert len(got) == summary["rows_written"] == summary["rows_read"] > 20_000
    assert summary["shards"] >= 3
    assert not any(u.startswith("txn") and int(u[3:]) % 400 == 0 for u in expected), "aborted records are not read"


def test_one_jobs_rows_and_the_rows_after_a_job(stack, tmp_path):
    """Two imports with end markers; `only_job_id` keeps one job's rows, `start_after_job` starts after a
    job's end markers (from its finish step's committed offsets, or, without transactions, by a scan)."""
    for transactional in (True, False):
        topic = f"jobs-{uuid.uuid4().hex[:8]}"
        create_topic(stack.kafka_bootstrap, topic, 4)
        first, second = rows("a", 3000), rows("b", 2000)
        for job_id, data in (("job-a", first), ("job-b", second)):
            result = run_cli("run", import_config(tmp_path, stack.kafka_bootstrap, topic, data, transactional), "--job-id", f"{job_id}-{topic}")
            assert result.returncode == 0, result.stderr

        only_a = exported(run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, f"  only_job_id: job-a-{topic}\n")))
        assert sorted((r["user_id"], r["score"]) for r in only_a) == sorted(first)
        after_a = exported(run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, f"  start_after_job: job-a-{topic}\n")))
        assert sorted((r["user_id"], r["score"]) for r in after_a) == sorted(second), transactional
        everything = exported(run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic)))
        assert len(everything) == 5000  # the 8 end markers are not rows

        result = run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, "  start_after_job: no-such-job\n"))
        assert result.returncode == 1
        assert "job no-such-job has no end marker in partition 0" in result.stderr


def test_start_at_a_timestamp(stack, tmp_path):
    topic = f"times-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 2)
    base = 1_790_000_000_000
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    for i in range(100):
        producer.produce(topic, json.dumps({"user_id": f"u{i}", "score": i}).encode(), f"u{i}".encode(), timestamp=base + i * 1000)
    assert producer.flush(30) == 0
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((base + 60_000) / 1000))
    got = exported(run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, f"  start_timestamp: '{start}'\n")))
    assert sorted(int(r["user_id"][1:]) for r in got) == list(range(60, 100))
    got = exported(run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, f"  start_timestamp: '{base + 99_500}'\n")))
    assert got == []


def test_group_offsets_are_committed_only_when_asked(stack, tmp_path):
    from confluent_kafka import Consumer, TopicPartition

    topic = f"groups-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 2)
    produce(stack.kafka_bootstrap, topic, [json.dumps({"user_id": f"u{i}", "score": i}).encode() for i in range(500)])
    group = f"g-{topic}"

    def committed() -> list[int]:
        consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": group})
        try:
            return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)]
        finally:
            consumer.close()

    assert len(exported(run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, f"  group_id: {group}\n")))) == 500
    assert committed() == [-1001, -1001]  # none
    assert len(exported(run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, f"  group_id: {group}\n  commit_offsets: true\n")))) == 500
    assert sum(committed()) == 500


def test_bad_records_are_counted_and_written_with_their_offsets(stack, tmp_path):
    topic = f"bad-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 1)
    values = [json.dumps({"user_id": f"u{i}", "score": i}).encode() for i in range(10)]
    values[3] = b"{not json"
    values[5] = json.dumps({"user_id": "u5", "score": "high"}).encode()
    values[7] = None  # a tombstone
    produce(stack.kafka_bootstrap, topic, values)

    result = run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic))
    assert result.returncode == 1
    assert summary_of(result)["status"] == "failed"

    result = run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic, exec_="  max_errors: 5\n"))
    got = exported(result)
    summary = summary_of(result)
    assert len(got) == 7 and (summary["rows_read"], summary["rows_skipped"]) == (10, 3)
    (error_file,) = summary["error_outputs"]
    errors = [json.loads(line) for line in Path(error_file).read_text().splitlines()]
    assert [(e["line"], e["source"]) for e in errors] == [(o, f"kafka://{topic}/0#offsets=0-10") for o in (3, 5, 7)]
    assert "invalid JSON" in errors[0]["reason"] or "cannot read the value" in errors[0]["reason"]
    assert errors[0]["raw"] == "{not json"
    assert "column 'score' (double): cannot convert 'high'" in errors[1]["reason"]
    assert "tombstone" in errors[2]["reason"]


def test_records_deleted_between_plan_and_run_fail_the_shard(stack, tmp_path):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = f"retention-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 1)
    produce(stack.kafka_bootstrap, topic, [json.dumps({"user_id": f"u{i}", "score": i}).encode() for i in range(100)])
    config = export_config(tmp_path, stack.kafka_bootstrap, topic)
    plan = str(tmp_path / "retention-plan.json")
    assert run_cli("plan", config, "--out", plan).returncode == 0
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 40)]).values():
        future.result(30)
    result = run_cli("run", config, "--plan", plan)
    assert result.returncode == 1
    assert "records from offset 0 to 39 were deleted (retention) since the plan was made; make a new plan" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  parser: {type: csv}\n", "in.parser: the kafka input reads records, not files: it takes no parser"),
        ("  start_timestamp: yesterday\n", "in.start_timestamp: not a time: 'yesterday'"),
        ("  commit_offsets: true\n", "commit_offsets needs group_id"),
        ("  serialize_format: avro\n", "serialize_format avro needs schema_registry_url"),
        ("  other_consumer_configs: {isolation.level: read_uncommitted}\n", "'isolation.level' is fixed by the engine"),
    ],
)
def test_config_errors_name_the_key(tmp_path, extra, message):
    config = export_config(tmp_path, "127.0.0.1:1", "t", extra)
    result = run_cli("validate", config)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr


def test_an_empty_snapshot_is_an_empty_export(stack, tmp_path):
    topic = f"empty-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 2)
    result = run_cli("run", export_config(tmp_path, stack.kafka_bootstrap, topic))
    assert exported(result) == []
    assert (summary_of(result)["rows_written"], summary_of(result)["shards"]) == (0, 0)
