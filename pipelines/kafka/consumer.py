"""The Kafka input's consumers and its consume loop over one planned offset range.

Partitions are assigned by hand, read `read_committed`, and no offset is ever committed or reset
here: a range is read from its start to its end even while the topic keeps growing, and records
deleted (retention) since the plan fail the shard rather than being skipped. A broker restart is
ridden over: librdkafka reconnects and fetches on, errors that pass are noted, and only
STALL_SECONDS without progress fail the shard, as retryable (exit 75).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from pipelines.engine.errors import ConfigError, RunError, TransientRunError
from pipelines.engine.plan import PlanItem
from pipelines.kafka.connection import client_config, librdkafka_logger
from pipelines.kafka.memory import release_free_memory
from pipelines.kafka.ranges import partition_of
from pipelines.native.kafka import with_errors

STALL_SECONDS = 60.0  # no record and no progress for this long below the snapshot's end: retryable failure

# Bounded memory whatever the topic: at most this much prefetched per consumer (librdkafka's default
# queue holds 100,000 messages and 64 MB a partition). And no pause between fetches: by default a
# partition whose queue reached its threshold waits a whole second (fetch.queue.backoff.ms) before it
# fetches again, which held a read to a quarter of its speed here.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "queued.min.messages": 30_000,
    "queued.max.messages.kbytes": 16_384,
    "fetch.queue.backoff.ms": 10,
    "max.partition.fetch.bytes": 4 << 20,
    "fetch.wait.max.ms": 100,
}
# Consumer settings `other_consumer_configs` may not set.
FORCED = ("isolation.level", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "enable.partition.eof", "group.id")

# A fetch: (consumer, records wanted, timeout in seconds, the range's end) -> (batch, error events, last offset).
Fetch = Callable[[Any, int, float, int], tuple[Any, list[tuple[int, int, str]], int]]


def new_consumer(settings: Any, where: str, group: str, python_log: bool = True, **extra: Any) -> Any:
    """A read_committed consumer of `group` that commits nothing by itself (`where`: the input's, for
    a bad setting); `python_log` False: librdkafka logs nothing (no Python callback at all)."""
    from confluent_kafka import Consumer, KafkaException

    from pipelines.kafka.memory import limit_malloc_arenas

    limit_malloc_arenas()
    config = {
        **CONSUMER_DEFAULTS,
        **client_config(settings),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "error",  # records deleted by retention fail the shard, never skip silently
        **({"logger": librdkafka_logger()} if python_log else {"log_level": 0}),
        **dict(settings.other_consumer_configs),
        **extra,
    }
    try:
        return Consumer(config)
    except KafkaException as exc:
        raise ConfigError(f"invalid consumer setting: {exc.args[0].str()}", where=where) from None


def compiled_consumer_ok(settings: Any) -> bool:
    """The compiled loop reads a consumer made without Python callbacks: not with msk_iam (its
    token callback) nor with PIPELINES_KAFKA_DEBUG=1 (librdkafka's log into Python)."""
    import os

    from pipelines.native.kafka import unavailable_reason

    return settings.auth != "msk_iam" and os.environ.get("PIPELINES_KAFKA_DEBUG") != "1" and unavailable_reason() is None


def consume_range(settings: Any, where: str, item: PlanItem, batch_rows: int, fetch: Fetch | None = None) -> Iterator[Any]:
    """The range's records in batches (read_committed, offsets in [start, end)): with `fetch` None,
    lists of confluent_kafka Messages; else what `fetch` (the compiled consume) gives."""
    from confluent_kafka import TopicPartition

    assert item.end is not None
    if item.start >= item.end:
        return
    # No Python callback may run inside the compiled loop: its consumer has no logger, and
    # librdkafka's error events are kept off its queue (detach_error_events).
    consumer = new_consumer(settings, where, f"pipelines.export.{settings.topic}", python_log=fetch is None, **{"enable.partition.eof": True})
    try:
        if fetch is not None:
            detach_error_events(consumer)
        consumer.assign([TopicPartition(settings.topic, partition_of(item), item.start)])
        yield from _consume_until_end(consumer, settings.topic, item, batch_rows, fetch)
    finally:
        consumer.close()
        release_free_memory()


def _consume_until_end(consumer: Any, topic: str, item: PlanItem, batch_rows: int, fetch: Fetch | None) -> Iterator[Any]:
    """The loop of consume_range, on its assigned consumer."""
    from confluent_kafka import TopicPartition

    partition, end = partition_of(item), item.end
    assert end is not None
    position, last_progress, passing = item.start, time.monotonic(), None
    errors_in = with_errors()
    while position < end:
        # consume waits its whole timeout when fewer records than asked for are left (the range's
        # last offsets are often transaction markers, which take offsets but are not messages):
        # the range's tail is asked for with a short timeout, again until it is read.
        wanted = min(batch_rows, end - position)
        timeout = 0.2 if wanted == batch_rows else 0.02
        if fetch is not None:
            batch, failures, last = fetch(consumer, wanted, timeout, end)
        else:
            batch, failures, last = python_batch(consumer.consume(wanted, timeout), errors_in, end)
        position, passing = check_failures(failures, position, passing, item)
        if last >= 0:
            position = max(position, last + 1)
            last_progress = time.monotonic()
            if fetch is not None or batch:
                yield batch
        elif position < end:
            # Transaction markers and aborted records take offsets but yield no message.
            (now,) = consumer.position([TopicPartition(topic, partition)])
            if now.offset > position:
                position, last_progress = now.offset, time.monotonic()
            elif time.monotonic() - last_progress > STALL_SECONDS:
                why = f"; last error: {passing}" if passing else ""
                raise TransientRunError(
                    f"no records arrive at offset {position} (the snapshot ends at {end}) for {STALL_SECONDS:g} s{why}",
                    where=item.label,
                )


def check_failures(failures: list[tuple[int, int, str]], position: int, passing: str | None, item: PlanItem) -> tuple[int, str | None]:
    """The position and the last error that passes, after a batch's error events (code, offset, text):
    a partition's end moves the position; an error of a broker restarting or a connection lost
    is noted (librdkafka fetches again); records deleted (retention) or any other error fail the shard."""
    from confluent_kafka import KafkaError

    for code, offset, text in failures:
        if code == KafkaError._PARTITION_EOF:
            position = max(position, offset)  # the last stable offset: nothing more below it
        elif code == KafkaError._AUTO_OFFSET_RESET:
            raise RunError(
                f"offset {position} is out of range: records were deleted (retention) since the plan; make a new plan",
                where=item.label,
            )
        elif code in passing_errors():
            passing = text
        else:  # confluent_kafka reports a consumer's error events as neither fatal nor retriable
            raise RunError(f"reading failed: {text}", where=item.label)
    return position, passing


def python_batch(messages: list[Any], errors_in: Callable[[list[Any]], list[int]], end: int) -> tuple[list[Any], list[tuple[int, int, str]], int]:
    """What the compiled consume gives, from confluent_kafka Messages: (the messages below `end`,
    their error events as (code, offset, text), the highest offset of a message, -1 for none)."""
    failing = errors_in(messages)
    batch = messages if not failing else [m for i, m in enumerate(messages) if i not in failing]
    failures = [(m.error().code(), m.offset(), m.error().str()) for m in (messages[i] for i in failing)]
    last = batch[-1].offset() if batch else -1
    if last >= end - 1:
        batch = [m for m in batch if m.offset() < end]
    return batch, failures, last


@functools.cache
def passing_errors() -> frozenset[int]:
    """Error codes of a consumer's events that pass once a broker is back or its leadership moved:
    librdkafka fetches again by itself, so the read goes on (STALL_SECONDS bounds the wait)."""
    from confluent_kafka import KafkaError as E

    return frozenset((
        E._TRANSPORT, E._ALL_BROKERS_DOWN, E._TIMED_OUT, E._RESOLVE, E.NOT_LEADER_FOR_PARTITION, E.LEADER_NOT_AVAILABLE,
        E.UNKNOWN_TOPIC_OR_PART, E.REQUEST_TIMED_OUT, E.NETWORK_EXCEPTION, E.BROKER_NOT_AVAILABLE, E.REPLICA_NOT_AVAILABLE,
        E.FENCED_LEADER_EPOCH, E.UNKNOWN_LEADER_EPOCH, E.OFFSET_NOT_AVAILABLE, E.KAFKA_STORAGE_ERROR,
        E.COORDINATOR_NOT_AVAILABLE, E.NOT_COORDINATOR, E.COORDINATOR_LOAD_IN_PROGRESS, E._WAIT_COORD,  # no group is used
    ))


def detach_error_events(consumer: Any) -> None:
    """Keeps librdkafka's error events (what a broker restart gives) off the queue the compiled
    consume serves (see _fastkafka.c: served there, confluent_kafka's error callback would abort the
    process). Those that came before (a consumer made while the broker is away) are served here by
    confluent_kafka's own consume, which drops them (no error_cb is set): it is called before
    anything is assigned. Only with the compiled loop, which loads only with the confluent-kafka
    version whose handle layout it reads. Call it before `assign`."""
    from pipelines.native.compiled import compiled

    compiled("pipelines.native._fastkafka", "detach_error_events")(consumer)
    consumer.consume(1000, 0)  # no partition is assigned: only the events queued before the forward was undone
