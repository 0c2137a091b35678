"""The bounded snapshot the Kafka input plans: per partition, the offsets to read.

From the earliest offset (or the first record at `start_timestamp`, or just after the end marker of
job `start_after_job`) to the partition's last stable offset at plan time, read `read_committed`,
cut at the end marker of job `only_job_id` once it has finished. So an export of a topic that keeps
receiving writes ends at that snapshot, and reruns read the same records. Also: checking before a
shard runs that its records are all still there, and committing the snapshot's end for a group.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from pipelines.engine.errors import RunError, TransientRunError
from pipelines.engine.plan import PlanItem
from pipelines.kafka.connection import (
    brokers_label,
    client_config,
    is_auth_error,
    librdkafka_logger,
    partition_count,
)
from pipelines.kafka.consumer import new_consumer
from pipelines.kafka.markers import marker_ends, scan_for_marker
from pipelines.kafka.ranges import partition_of, partition_ranges, partition_uri

RETRY_PAUSE_SECONDS = 0.5  # between ListOffsets attempts while a broker (re)starts


def timestamp_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 time (UTC when it has no zone) or of a number of milliseconds."""
    if text.strip().isdigit():
        return int(text)
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


class TopicOffsets:
    """An admin client asking the brokers for the topic's partitions and their offsets."""

    def __init__(self, settings: Any) -> None:
        from confluent_kafka.admin import AdminClient

        from pipelines.kafka.memory import limit_malloc_arenas

        self.settings = settings
        self.auth_error: str | None = None
        limit_malloc_arenas()
        self.admin = AdminClient({**client_config(settings), "logger": librdkafka_logger(), "error_cb": self._on_error})

    def _on_error(self, err: Any) -> None:
        if is_auth_error(err):
            self.auth_error = err.str()

    def partitions(self) -> int:
        return partition_count(self.admin, self.settings, lambda: self.auth_error)

    def offsets(self, partitions: int, spec: Any) -> list[int]:
        """One offset per partition from ListOffsets (read_committed: `latest` is the last stable offset).

        A broker that is (re)starting answers for a moment with errors that pass (no leader yet, a
        leader epoch it does not know yet): asked again until `connect_timeout_seconds` have passed,
        then a TransientRunError (exit 75). An authorization error is not asked again."""
        from confluent_kafka import IsolationLevel, KafkaException, TopicPartition

        request = {TopicPartition(self.settings.topic, p): spec for p in range(partitions)}
        deadline = time.monotonic() + self.settings.connect_timeout_seconds
        while True:
            try:
                left = max(deadline - time.monotonic(), 1.0)
                futures = self.admin.list_offsets(request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=left)
                return [futures[tp].result().offset for tp in sorted(futures, key=lambda tp: tp.partition)]
            except KafkaException as exc:
                err = exc.args[0]
                if _lasting(err) or time.monotonic() + RETRY_PAUSE_SECONDS > deadline:
                    raise TransientRunError(f"cannot list offsets: {err.str()}", where=brokers_label(self.settings)) from None
            time.sleep(RETRY_PAUSE_SECONDS)


def plan_snapshot(settings: Any, where: str, start_ms: int | None) -> list[PlanItem]:
    """The snapshot's offset ranges, of at most `records_per_shard` offsets each."""
    from confluent_kafka.admin import OffsetSpec

    topic = TopicOffsets(settings)
    partitions = topic.partitions()
    ends = topic.offsets(partitions, OffsetSpec.latest())
    earliest = topic.offsets(partitions, OffsetSpec.earliest())
    if start_ms is not None:
        found = topic.offsets(partitions, OffsetSpec.for_timestamp(start_ms))
        starts = [end if offset < 0 else offset for offset, end in zip(found, ends)]  # -1: no record that late
    elif settings.start_after_job is not None:
        starts = after_marker(settings, where, settings.start_after_job, earliest, ends)
    else:
        starts = earliest
    if settings.only_job_id is not None:
        # A job's records all come before its end marker: stop there when the job has finished.
        markers = marker_ends(settings, where, settings.only_job_id, partitions)
        if markers is not None:
            ends = [min(end, marker) for end, marker in zip(ends, markers)]
    starts = [min(start, end) for start, end in zip(starts, ends)]
    return partition_ranges(settings.topic, starts, ends, settings.records_per_shard)


def after_marker(settings: Any, where: str, job_id: str, earliest: list[int], ends: list[int]) -> list[int]:
    """Per partition, the offset after job `job_id`'s end marker: from its finish step's committed
    offsets, or else found by reading the partition up to the snapshot's end."""
    found = marker_ends(settings, where, job_id, len(ends))
    if found is not None:
        return found
    starts = []
    for partition, (lo, hi) in enumerate(zip(earliest, ends)):
        offset = scan_for_marker(settings, where, job_id, partition, lo, hi)
        if offset is None:
            raise RunError(
                f"job {job_id} has no end marker in partition {partition} (offsets {lo} to {hi}): "
                "it has not finished, or it wrote to another topic",
                where=partition_uri(settings.topic, partition),
            )
        starts.append(offset + 1)
    return starts


def check_items(settings: Any, items: tuple[PlanItem, ...]) -> None:
    """Every range's records are all still there (retention may have deleted the oldest since the
    plan): one metadata and one ListOffsets request for the whole shard."""
    from confluent_kafka.admin import OffsetSpec

    if not items:
        return
    topic = TopicOffsets(settings)
    partitions = topic.partitions()
    earliest = topic.offsets(partitions, OffsetSpec.earliest())
    for item in items:
        partition = partition_of(item)
        if partition >= partitions:
            raise RunError(f"partition {partition} is gone since the plan was made", where=item.uri)
        if earliest[partition] > item.start:
            raise RunError(
                f"records from offset {item.start} to {earliest[partition] - 1} were deleted (retention) since the plan was made; make a new plan",
                where=item.label,
            )


def commit_snapshot_end(settings: Any, where: str, items: list[PlanItem]) -> None:
    """Moves the offsets of the group `group_id` to the end of the snapshot's ranges (never back)."""
    from confluent_kafka import KafkaException, TopicPartition

    ends: dict[int, int] = {}
    for item in items:
        partition = partition_of(item)
        ends[partition] = max(ends.get(partition, 0), item.end or 0)
    consumer = new_consumer(settings, where, settings.group_id or "")
    try:
        wanted = [TopicPartition(settings.topic, p) for p in sorted(ends)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=settings.connect_timeout_seconds)}
        offsets = [TopicPartition(settings.topic, p, end) for p, end in sorted(ends.items()) if end > committed.get(p, -1)]
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        raise TransientRunError(f"cannot commit the group's offsets: {exc.args[0].str()}", where=brokers_label(settings)) from None
    finally:
        consumer.close()


def _lasting(err: Any) -> bool:
    """An error another attempt meets again: a failed authentication or authorization."""
    from confluent_kafka import KafkaError

    return is_auth_error(err) or err.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)
