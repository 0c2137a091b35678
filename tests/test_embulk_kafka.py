"""The Embulk-shaped Kafka output configs of tests/embulk/ run with `pipelines run` against the real
broker and moto: tombstones (column_for_deletion), per-row topics (topic_column) and partitions
(partition_column_name), Avro under a subject name strategy; the records, end markers and summary checked."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pytest
from conftest import consume_all, create_topic, is_marker, rows_and_markers, run_cli, summary_of

from pipelines.kafka.murmur2 import partition_for

EMBULK = Path(__file__).resolve().parent / "embulk"


def create_compacted_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config={"cleanup.policy": "compact"})])[name].result(30)
    create_topic_leaders(bootstrap, name, partitions)


def create_topic_leaders(bootstrap: str, name: str, partitions: int) -> None:
    """Waits until every partition of the topic has a leader."""
    import time

    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _ in range(300):
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        if topic and topic.error is None and len(topic.partitions) == partitions and all(p.leader >= 0 for p in topic.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} has no leaders")


def run_embulk(config: str, bucket: str, topic: str, job_id: str, key: str = "in/", native: str = "1", **more: str):
    """`pipelines run` of a config of tests/embulk/; `native` "0": without the compiled loops (routed rows
    are then counted by their delivery reports, not as produced with the compiled murmur2)."""
    pairs = {"S3_BUCKET": bucket, "S3_KEY": key, "KAFKA_TOPIC": topic, **more}
    args = [arg for name, value in pairs.items() for arg in ("--var", f"{name}={value}")]
    return run_cli("run", str(EMBULK / config), *args, "--job-id", job_id, env={"PIPELINES_NATIVE": native})


def last_by_key(records: list) -> dict[bytes, object]:
    last = {}
    for msg in sorted(records, key=lambda m: (m.partition(), m.offset())):
        last[msg.key()] = msg
    return last


TOMBSTONE_CSV = (
    "user_id,country,score,deleted\n"
    + "".join(f"u{n},FR,{n}.5,false\n" for n in range(40))
    + "u3,FR,0,true\nu7,DE,0,true\nu99,,,true\nu12,FR,1.0,\n"
)


def test_tombstones_config_writes_null_values_under_the_keys_on_a_compacted_topic(stack, s3, bucket, tmp_path):
    topic = f"members-{uuid.uuid4().hex[:8]}"
    create_compacted_topic(stack.kafka_bootstrap, topic, 3)
    s3.put_object(Bucket=bucket, Key="in/members.csv.gz", Body=gzip.compress(TOMBSTONE_CSV.encode()))

    result = run_embulk("kafka_tombstones.yml.liquid", bucket, topic, "job-tomb")

    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (44, 44, 0)
    assert (summary["tombstones"], summary["end_markers"]) == (3, 3)
    records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len(records) == 44
    for msg in records:
        assert msg.partition() == partition_for(msg.key(), 3), msg.key()
    last = last_by_key(records)
    for key in (b"u3", b"u7", b"u99"):
        assert last[key].value() is None, f"{key!r}: the tombstone is the last record of its key"
    assert json.loads(last[b"u12"].value()) == {"user_id": "u12", "country": "FR", "score": 1.0}  # null deleted: kept
    assert json.loads(last[b"u5"].value()) == {"user_id": "u5", "country": "FR", "score": 5.5}
    tombstones = [sum(1 for m in records if m.partition() == p and m.value() is None) for p in range(3)]
    rows = [sum(1 for m in records if m.partition() == p) for p in range(3)]
    assert markers == {
        p: {
            "job_id": "job-tomb", "partition": p, "partition_rows": rows[p], "total_rows": 44, "shard_count": 1,
            "topic": topic, "topic_rows": 44, "partition_tombstones": tombstones[p], "topic_tombstones": 3, "total_tombstones": 3,
        }
        for p in range(3)
    }
    assert_export_reads_no_marker(topic, tmp_path)


def assert_export_reads_no_marker(topic: str, tmp_path: Path) -> None:
    """An export of the compacted topic (whose end markers have an empty key) reads the rows, sets the
    tombstones apart (the error output) and leaves the markers out."""
    config = tmp_path / "export.yml.liquid"
    config.write_text(
        "in:\n  type: kafka\n  brokers: ['{{ env.KAFKA_BOOTSTRAP }}']\n"
        f"  topic: {topic}\n  columns:\n    - {{name: user_id, type: string}}\n    - {{name: country, type: string}}\n"
        "    - {name: score, type: double}\n"
        f"out:\n  type: file\n  path_prefix: {tmp_path}/export/part\n  formatter: {{type: csv}}\n"
        f"exec:\n  max_errors: 10\n  work_dir: {tmp_path}/work\n  error_output: {tmp_path}/errors/\n"
    )
    for native in ("1", "0"):  # the compiled consume loop, and the Python one
        result = run_cli("run", str(config), "--job-id", f"export-tomb-{native}", env={"PIPELINES_NATIVE": native})
        assert result.returncode == 0, result.stderr
        summary = summary_of(result)
        assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (44, 41, 3), (native, summary)


TOPICS_CSV = (
    "user_id,segment,shard_hint,score\n"
    "a1,,,1.0\n"  # the output's topic, murmur2
    "a2,,0,2.0\n"  # the output's topic, partition 0
    "b1,{b},1,3.0\n"
    "b2,{b},0,4.0\n"
    "c1,{c},,5.0\n"  # murmur2 of the key, in topic c's 3 partitions
    "c2,{c},2,6.0\n"
    "x1,no-such-topic-{n},,7.0\n"  # to the error output: no topic
    "b3,{b},5,8.0\n"  # to the error output: topic b has 2 partitions
)


@pytest.mark.parametrize("native", ["1", "0"])
def test_topic_and_partition_columns_write_every_topic_in_one_transaction_with_markers_on_each(stack, s3, bucket, native):
    suffix = uuid.uuid4().hex[:8]
    default, b, c = f"seg-a-{suffix}", f"seg-b-{suffix}", f"seg-c-{suffix}"
    for name, partitions in ((default, 4), (b, 2), (c, 3)):
        create_topic(stack.kafka_bootstrap, name, partitions)
    s3.put_object(Bucket=bucket, Key="in/members.csv", Body=TOPICS_CSV.format(b=b, c=c, n=suffix).encode())

    result = run_embulk("kafka_topic_column.yml.liquid", bucket, default, f"job-topics-{native}", native=native)

    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (8, 6, 2)
    assert summary["end_markers"] == 4 + 2 + 3 and summary["tombstones"] == 0
    placed = {}
    for name, partitions in ((default, 4), (b, 2), (c, 3)):
        records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, name))
        placed.update({m.key().decode(): (name, m.partition()) for m in records})
        assert sorted(markers) == list(range(partitions)), f"a marker on every partition of {name}"
        assert {m["topic_rows"] for m in markers.values()} == {len(records)}
        assert all(m["partition_rows"] == sum(1 for r in records if r.partition() == p) for p, m in markers.items())
        assert all(json.loads(r.value()).keys() == {"user_id", "score"} for r in records)
        marker_offsets = {m.partition(): m.offset() for m in consume_all(stack.kafka_bootstrap, name) if is_marker(m)}
        assert finish_offsets(stack.kafka_bootstrap, f"job-topics-{native}", name, partitions) == {
            p: offset + 1 for p, offset in marker_offsets.items()
        }, f"{name}: the finish step's offsets point past its markers (exports find the job's end)"
    assert placed == {
        "a1": (default, partition_for(b"a1", 4)), "a2": (default, 0),
        "b1": (b, 1), "b2": (b, 0), "c1": (c, partition_for(b"c1", 3)), "c2": (c, 2),
    }
    errors = error_reasons(s3, bucket)
    assert any(f"topic 'no-such-topic-{suffix}' does not exist" in reason for reason in errors), errors
    assert any(f"partition 5 is not one of topic '{b}''s 2 partitions" in reason for reason in errors), errors


def finish_offsets(bootstrap: str, job_id: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets the job's finish step committed (group pipelines.<job>.finish) in the topic."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"pipelines.{job_id}.finish"})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed}


def error_reasons(s3, bucket: str) -> list[str]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="_errors/").get("Contents", [])]
    lines = [line for key in keys for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()]
    return [json.loads(line)["reason"] for line in lines]


def test_avro_with_schema_registry_under_record_name_strategy_with_tombstones(stack, s3, bucket, topic):
    from pipelines.kafka.schema_registry import SchemaRegistry

    namespace = f"embulk_{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=bucket, Key="in/m.csv", Body=b"user_id,score,deleted\nm1,10,false\nm2,20,false\nm1,0,true\n")

    result = run_embulk("kafka_avro_tombstones.yml.liquid", bucket, topic, "job-avro-tomb", AVRO_NAMESPACE=namespace)

    assert result.returncode == 0, result.stderr
    assert summary_of(result)["tombstones"] == 1
    schema_id, _ = SchemaRegistry(stack.schema_registry_url).latest(f"{namespace}.Member")  # RecordNameStrategy's subject
    records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    last = last_by_key(records)
    assert last[b"m1"].value() is None
    value = last[b"m2"].value()
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == schema_id
    assert sum(m["partition_tombstones"] for m in markers.values()) == 1


def test_rows_with_routing_take_the_rows_path_and_the_same_config_without_it_the_fused_path(stack, tmp_path):
    """The fused (compiled CSV-to-Kafka) path declines an output that routes rows; without the routing
    options the same job takes it (when the extensions are built)."""
    from pipelines.engine.config import load_job
    from pipelines.native.kafka import unavailable_reason

    topic = f"fused-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 2)
    text = (EMBULK / "kafka_tombstones.yml.liquid").read_text()
    plain = text.replace("  column_for_deletion: deleted\n", "")
    variables = {"S3_BUCKET": "b", "S3_KEY": "k", "KAFKA_TOPIC": topic}
    chosen = {}
    for name, config in (("routed", text), ("plain", plain)):
        path = tmp_path / f"{name}.yml.liquid"
        path.write_text(config)
        job = load_job(path, variables)
        job.output.open(f"job-{name}", 0)
        try:
            chosen[name] = job.output.fused_path(job)
        finally:
            job.output.abort()
            job.output.close()
    assert chosen["routed"] is None
    if unavailable_reason() is None:
        assert type(chosen["plain"]).__name__ == "FusedImport"
    else:
        pytest.skip(f"no compiled path here: {unavailable_reason()}")


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_failed_shard_leaves_nothing_committed_in_any_topic_it_wrote(stack, s3, bucket, native):
    """One transaction per shard across every topic: rows of two topics produced, then the shard fails
    (a bad row over max_errors 0, in the second object): read_committed readers of either topic see none."""
    from conftest import end_offsets

    suffix = uuid.uuid4().hex[:8]
    default, other = f"fail-a-{suffix}", f"fail-b-{suffix}"
    create_topic(stack.kafka_bootstrap, default, 2)
    create_topic(stack.kafka_bootstrap, other, 2)
    good = "user_id,segment,shard_hint,score\n" + "".join(f"k{n},{other if n % 2 else ''},,1.0\n" for n in range(100))
    s3.put_object(Bucket=bucket, Key="in/1.csv", Body=good.encode())
    s3.put_object(Bucket=bucket, Key="in/2.csv", Body=b"user_id,segment,shard_hint,score\nz1,,9,1.0\n")  # partition 9 of 2

    result = run_embulk("kafka_topic_column.yml.liquid", bucket, default, f"job-fail-{native}", native=native, MAX_ERRORS="0")

    assert result.returncode != 0
    assert "partition 9 is not one of" in result.stderr, result.stderr
    for name in (default, other):
        assert sum(end_offsets(stack.kafka_bootstrap, name).values()) >= 50, f"{name}: the rows were produced"
        assert consume_all(stack.kafka_bootstrap, name) == [], f"{name}: nothing committed"


def test_avro_values_into_per_row_topics_each_under_its_topics_subject(stack, s3, bucket):
    """topic_column with Avro under TopicNameStrategy: each topic's values carry the id of the schema
    registered under "<topic>-value"."""
    from pipelines.kafka.avro_wire import schema_id_of
    from pipelines.kafka.schema_registry import SchemaRegistry

    suffix = uuid.uuid4().hex[:8]
    default, other = f"avro-a-{suffix}", f"avro-b-{suffix}"
    create_topic(stack.kafka_bootstrap, default, 2)
    create_topic(stack.kafka_bootstrap, other, 2)
    s3.put_object(Bucket=bucket, Key="in/m.csv", Body=f"user_id,segment,score\nm1,,1\nm2,{other},2\nm3,{other},3\n".encode())

    result = run_embulk("kafka_avro_topic_column.yml.liquid", bucket, default, "job-avro-topics")

    assert result.returncode == 0, result.stderr
    assert summary_of(result)["end_markers"] == 4
    registry = SchemaRegistry(stack.schema_registry_url)
    for name, keys in ((default, [b"m1"]), (other, [b"m2", b"m3"])):
        schema_id, _ = registry.latest(f"{name}-value")
        records, _ = rows_and_markers(consume_all(stack.kafka_bootstrap, name))
        assert sorted(m.key() for m in records) == keys
        assert {schema_id_of(m.value()) for m in records} == {schema_id}, name


def test_markers_on_a_compacted_topic_whose_policy_cannot_be_read_fail_with_the_cause(stack, tmp_path, monkeypatch):
    """Without DescribeConfigs the finish step cannot know the topic compacts: its keyless markers are
    refused by the brokers, and the error says why and what to allow."""
    from pipelines.engine.config import load_job
    from pipelines.engine.errors import RunError
    from pipelines.engine.spi import JobTotals
    from pipelines.kafka import markers

    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    create_compacted_topic(stack.kafka_bootstrap, topic, 2)
    monkeypatch.setattr(markers, "is_compacted", lambda settings, name: False)
    job = load_job(EMBULK / "kafka_tombstones.yml.liquid", {"S3_BUCKET": "b", "S3_KEY": "k", "KAFKA_TOPIC": topic})
    totals = JobTotals("job-unread-policy", 1, 0, None, None, {topic: {"rows": [0, 0], "tombstones": [0, 0]}})

    with pytest.raises(RunError, match="on a compacted topic the brokers refuse an end marker without a key"):
        job.output.finish(totals)
