"""The Kafka output's transactions: one per shard run, so a failed run leaves nothing for
`read_committed` consumers.

A shard's report is committed atomically with its rows, as the metadata of an offset its
transaction commits for the shard's own consumer group (`pipelines.<job>.shard-NNNNN`, the finish
step's `pipelines.<job>.finish`): a rerun reads it back to know the shard is done. A failed job's
transactional ids can be fenced at once (`abort_job`), so its open transactions stop holding
readers back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.engine.errors import RunError, TransientRunError
from pipelines.kafka.connection import (
    brokers_label,
    client_config,
    librdkafka_logger,
    unreachable,
)
from pipelines.kafka.producer import TopicProducer, producer_config

# Kafka keeps at most this much metadata with a committed offset (offset.metadata.max.bytes).
MAX_RECORD_BYTES = 4096
FENCE_THREADS = 8  # transactional ids fenced at once by abort_job
# How long abort() may block in librdkafka (whose transaction calls do not return to Python for a
# signal): a SIGTERM'd shard (ECS kills 30 s after it) must abort, and exit, well within that.
ABORT_TIMEOUT_SECONDS = 10


def run_step(settings: Any, step: Callable[[float], Any]) -> None:
    """Runs a transaction step, given the timeout: a row that failed for good fails the run; any other
    failure is retryable (TransientRunError)."""
    from confluent_kafka import KafkaError, KafkaException

    try:
        step(settings.connect_timeout_seconds)
    except KafkaException as exc:
        err = exc.args[0]
        if err.txn_requires_abort() and not err.retriable():
            # A message failed for good (rows produced without a callback each, see
            # TopicProducer.compiled_batches): librdkafka fails the commit; another attempt would fail alike.
            reason = KafkaError(err.code()).str()
            raise RunError(f"row(s) were not acknowledged; first: {reason}; the transaction was aborted", where=brokers_label(settings)) from None
        raise TransientRunError(f"Kafka transaction failed: {err.str()}", where=brokers_label(settings)) from None


def begin(producer: Any, settings: Any) -> None:
    """Begins the producer's transaction, fencing any earlier producer of its transactional id."""
    run_step(settings, lambda timeout: (producer.init_transactions(timeout), producer.begin_transaction()))


def commit(
    producer: Any, settings: Any, group: str | None = None, record: str | None = None, offsets_after: dict[str, list[int]] | None = None
) -> None:
    """Commits the producer's transaction, with `record` kept by `group` (see send_record) when given."""
    if record is not None and group is not None:
        send_record(producer, settings, group, record, offsets_after)
    run_step(settings, lambda timeout: producer.commit_transaction(timeout))


def shard_group(job_id: str, shard: int | None) -> str:
    """The consumer group whose committed offset keeps the report of a shard (None: of the finish step)."""
    return f"pipelines.{job_id}." + ("finish" if shard is None else f"shard-{shard:05d}")


def send_record(producer: Any, settings: Any, group: str, record: str, offsets_after: dict[str, list[int]] | None = None) -> None:
    """Stores `record` as the metadata of an offset committed in the transaction by `group` (on
    partition 0 of the output's topic; with `offsets_after`, {topic: [offset per partition]}, the
    group's offset of every partition of those topics is set to those)."""
    from confluent_kafka import Consumer, TopicPartition

    if len(record.encode()) > MAX_RECORD_BYTES:
        raise RunError(f"the shard report is {len(record)} bytes, more than Kafka keeps with an offset ({MAX_RECORD_BYTES})")
    consumer = Consumer({**client_config(settings), "group.id": group})
    try:
        topic = settings.topic
        if offsets_after is None:
            offsets = [TopicPartition(topic, 0, 0, metadata=record)]
        else:
            offsets = [
                TopicPartition(name, p, o, metadata=record if (name, p) == (topic, 0) else "")
                for name, after in offsets_after.items() for p, o in enumerate(after)
            ]
        run_step(settings, lambda timeout: producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), timeout))
    finally:
        consumer.close()


def committed_record(settings: Any, job_id: str, shard: int | None) -> str | None:
    """The record a committed transaction of this shard (None: of the finish step) stored, if any
    (always None without transactions)."""
    if not settings.transactional:
        return None
    import time

    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    consumer = Consumer({**client_config(settings), "group.id": shard_group(job_id, shard), "logger": librdkafka_logger()})
    # A group coordinator that is loading or moving answers "not coordinator" for a moment: ask again.
    passing = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE)
    deadline = time.monotonic() + settings.connect_timeout_seconds
    try:
        while True:
            try:
                (committed,) = consumer.committed([TopicPartition(settings.topic, 0)], timeout=settings.connect_timeout_seconds)
                break
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError._TIMED_OUT:
                    raise unreachable(settings, brokers_label(settings), None) from None
                if code not in passing or time.monotonic() > deadline:
                    raise TransientRunError(f"cannot read committed shard reports: {exc.args[0].str()}", where=brokers_label(settings)) from None
                time.sleep(0.2)
    finally:
        consumer.close()
    return committed.metadata if committed.offset >= 0 and committed.metadata else None


def abort(out: TopicProducer | None, settings: Any) -> int:
    """Aborts the producer's transaction: how many rows stay written. Without a transaction nothing
    can be taken back: what was produced (valid rows read before the failure) is delivered, and
    exactly what the brokers acknowledged is counted."""
    from confluent_kafka import KafkaException

    if out is None:
        return 0
    if settings.transactional:
        try:
            out.producer.abort_transaction(ABORT_TIMEOUT_SECONDS)
        except KafkaException:
            pass  # the transaction coordinator aborts it after transaction.timeout.ms anyway
        return 0
    remaining = out.producer.flush(ABORT_TIMEOUT_SECONDS)
    return out.produced - out.failed - remaining


def abort_job(settings: Any, job_id: str, shard_count: int) -> dict[str, Any]:
    """Fences every transactional id of the job, its shards' and its finish step's: a transaction
    still open under one (a shard killed mid-run) is aborted by its coordinator at once, so
    read_committed readers move on now rather than after transaction.timeout.ms. What was
    committed stays. A shard still running under one of them fails its commit (fenced)."""
    if not settings.transactional:
        return {"fenced": 0}
    from concurrent.futures import ThreadPoolExecutor

    ids: list[int | None] = [*range(shard_count), None]
    with ThreadPoolExecutor(FENCE_THREADS) as pool:
        list(pool.map(lambda shard: _fence(settings, job_id, shard), ids))
    return {"fenced": len(ids)}


def _fence(settings: Any, job_id: str, shard: int | None) -> None:
    from confluent_kafka import Producer

    producer = Producer({**producer_config(settings, job_id, shard), "logger": librdkafka_logger()})
    try:
        run_step(settings, lambda timeout: producer.init_transactions(timeout))
    finally:
        producer.flush(0)
