"""End markers: how an import tells the topic's consumers it is complete, and how an export finds
where a job ended.

Every record an import writes carries its job id (header `pipelines.job_id`). Once every shard has
committed, the finish step writes one end marker to every partition (header `pipelines.marker: end`,
a JSON value with the partition's and the job's row counts), once, in its own transaction, whose
committed offsets (group `pipelines.<job>.finish`) point just past each marker: an export finds a
job's end from them, or else by scanning the partition.
"""

from __future__ import annotations

from typing import Any

from pipelines.engine.errors import RunError, TransientRunError
from pipelines.engine.plan import PlanItem
from pipelines.engine.spi import JobTotals
from pipelines.kafka.connection import brokers_label, librdkafka_logger
from pipelines.kafka.consumer import consume_range, new_consumer
from pipelines.kafka.producer import TopicProducer
from pipelines.kafka.ranges import partition_uri
from pipelines.kafka.transactions import (
    abort,
    begin,
    commit,
    committed_record,
    shard_group,
)

JOB_ID_HEADER = "pipelines.job_id"
MARKER_HEADER = "pipelines.marker"
MARKER = (MARKER_HEADER, b"end")  # the header that makes a record an end marker
SCAN_BATCH = 10_000  # records read at a time when scanning a partition for a marker


# Set to 1 by bench/import_bench.py only, to measure what the header costs: the records then carry
# no job id, so exports filtering by job cannot find them. Never set it for a real import.
NO_HEADER_FOR_BENCHMARKS = "PIPELINES_BENCH_WITHOUT_JOB_HEADER"


def job_header(job_id: str) -> tuple[str, bytes]:
    """The header every record of the job carries."""
    return (JOB_ID_HEADER, job_id.encode())


def job_headers(job_id: str) -> list[tuple[str, bytes]]:
    """The headers of the job's records: its job_header (none with $PIPELINES_BENCH_WITHOUT_JOB_HEADER=1, a warning then)."""
    import os

    if os.environ.get(NO_HEADER_FOR_BENCHMARKS) == "1":
        import logging

        logging.getLogger(__name__).warning("%s=1: the records carry no %s header (for benchmarks only)", NO_HEADER_FOR_BENCHMARKS, JOB_ID_HEADER)
        return []
    return [job_header(job_id)]


def write_end_markers(settings: Any, where: str, totals: JobTotals) -> dict[str, Any]:
    """Sends one end marker to every partition of every topic the job wrote, once: a second finish
    of the same job sends none."""
    import orjson

    done = committed_record(settings, totals.job_id, None)
    if done is not None:
        return {**orjson.loads(done), "already_finished": True}
    out = TopicProducer(settings, where, totals.job_id, None)
    topics = _marker_topics(out, totals)
    if settings.transactional:
        begin(out.producer, settings)
    for topic, counts in topics.items():
        _produce_markers(out, totals, topic, counts)
    try:
        out.flush()
    except RunError as exc:
        if "failed to validate record" not in exc.message:
            raise
        raise RunError(
            f"{exc.message}: on a compacted topic the brokers refuse an end marker without a key, and the "
            "topic's cleanup.policy could not be read (DescribeConfigs); allow reading it, so markers there get an empty key",
            where=exc.where,
        ) from None
    result: dict[str, Any] = {"markers": sum(len(c["rows"]) for c in topics.values()), "total_rows": totals.total_rows}
    if totals.topics is not None:
        result["tombstones"] = sum(sum(c["tombstones"]) for c in topics.values())
    if settings.transactional:
        # The finish group's offsets point just past each marker: an export can start after
        # this job (kafka input `start_after_job`) or stop at its end (`only_job_id`) without a scan.
        after = {topic: [o + 1 for _, o in sorted(offsets.items())] for topic, offsets in out.topic_marker_offsets.items()}
        try:
            commit(out.producer, settings, shard_group(totals.job_id, None), orjson.dumps(result).decode(), after)
        except BaseException:
            abort(out, settings)
            raise
    return {**result, "already_finished": False}


def _marker_topics(out: TopicProducer, totals: JobTotals) -> dict[str, dict[str, list[int]]]:
    """{topic: {"rows": [...], "tombstones": [...]}} of every topic written (the output's topic
    always), each checked to still have the partitions the shards counted."""
    topic = out.settings.topic
    topics = totals.topics if totals.topics is not None else {topic: {"rows": totals.partition_rows or []}}
    for name, counts in topics.items():
        partitions = out.partitions_of(name)
        if partitions is None or len(counts["rows"]) != partitions:
            raise RunError(
                f"topic '{name}' has {partitions or 0} partitions, but the shards counted rows in "
                f"{len(counts['rows'])}: were partitions added during the job?",
                where=out.brokers,
            )
    return topics


def _produce_markers(out: TopicProducer, totals: JobTotals, topic: str, counts: dict[str, list[int]]) -> None:
    """Produces the job's end marker to each partition of `topic`, its offset kept by `out.on_marker`.
    With per-topic counts (totals.topics: topic_column, column_for_deletion) a marker also says its
    topic, and the tombstones among the rows of its partition, its topic and the job."""
    import orjson

    headers = [MARKER, job_header(totals.job_id)]
    key = b"" if is_compacted(out.settings, topic) else None
    for partition, rows in enumerate(counts["rows"]):
        value: dict[str, Any] = {
            "job_id": totals.job_id, "partition": partition, "partition_rows": rows,
            "total_rows": totals.total_rows, "shard_count": totals.shard_count,
        }
        if totals.topics is not None:
            value.update(
                topic=topic, topic_rows=sum(counts["rows"]), partition_tombstones=counts["tombstones"][partition],
                topic_tombstones=sum(counts["tombstones"]),
                total_tombstones=sum(sum(c["tombstones"]) for c in totals.topics.values()),
            )
        out.producer.produce(topic, orjson.dumps(value), key, partition=partition, headers=headers, on_delivery=out.on_marker)
        out.produced += 1


def is_compacted(settings: Any, topic: str) -> bool:
    """Whether the topic's cleanup.policy compacts it: its brokers refuse a record without a key, so an
    end marker there has an empty key (readers look for the marker header on keyless and empty-key
    records: pipelines.native.kafka.split_messages). Not known (no DescribeConfigs right): False."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    from pipelines.kafka.connection import client_config

    admin = AdminClient({**client_config(settings), "logger": librdkafka_logger()})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource], request_timeout=settings.connect_timeout_seconds)[resource].result(settings.connect_timeout_seconds)
    except (KafkaException, TimeoutError):
        return False
    policy = configs.get("cleanup.policy")
    return policy is not None and "compact" in (policy.value or "")


def marker_ends(settings: Any, where: str, job_id: str, partitions: int) -> list[int] | None:
    """Per partition, the offset just after `job_id`'s end marker, as its finish step committed them
    (group `pipelines.<job>.finish`); None if the job has not finished with per-partition offsets."""
    from confluent_kafka import KafkaException, TopicPartition

    consumer = new_consumer(settings, where, shard_group(job_id, None))
    try:
        wanted = [TopicPartition(settings.topic, p) for p in range(partitions)]
        committed = consumer.committed(wanted, timeout=settings.connect_timeout_seconds)
    except KafkaException as exc:
        raise TransientRunError(f"cannot read job {job_id}'s end marker offsets: {exc.args[0].str()}", where=brokers_label(settings)) from None
    finally:
        consumer.close()
    offsets = [tp.offset for tp in sorted(committed, key=lambda tp: tp.partition)]
    return offsets if all(offset >= 0 for offset in offsets) and len(offsets) == partitions else None


def scan_for_marker(settings: Any, where: str, job_id: str, partition: int, lo: int, hi: int) -> int | None:
    """The offset of `job_id`'s end marker in the partition's offsets [lo, hi), read one by one; None if none."""
    marker_job = job_header(job_id)
    item = PlanItem(partition_uri(settings.topic, partition), hi, None, lo, hi)
    for messages in consume_range(settings, where, item, SCAN_BATCH):
        for message in messages:
            headers = message.headers()
            if headers and MARKER in headers and marker_job in headers:
                return message.offset()
    return None
