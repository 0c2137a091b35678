"""The Kafka output's producer: its configuration, and a producer of the topic that keeps what the
brokers acknowledged.

Safe by default: idempotent producer, acks=all, the Java client's murmur2 partitioning. Rows are
produced row by row in Python, or, for keyed JSON values, in batches by the compiled loop
(pipelines.native.kafka); either way only rows the brokers acknowledged are counted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from pipelines.engine.errors import ConfigError, RunError, TransientRunError
from pipelines.engine.plan import SHARD_MAX_SECONDS
from pipelines.engine.spi import OutputResult
from pipelines.kafka.connection import (
    brokers_label,
    client_config,
    is_auth_error,
    librdkafka_logger,
    partition_count,
    topic_partition_count,
)
from pipelines.kafka.routing import TopicCounts

# A shard's transaction spans its whole run: its timeout is the shard's longest time limit
# (pipelines.engine.plan.SHARD_MAX_SECONDS, 15 min, the broker's default transaction.max.timeout.ms). It is
# also how long a shard killed mid-run (SIGKILL, a lost task) holds read_committed readers of its
# partitions back, unless the job is aborted (`pipelines abort`, the workflow's AbortJob), which
# fences its transactions at once.
TRANSACTION_TIMEOUT_MS = SHARD_MAX_SECONDS * 1000

# Chosen for throughput with bounded memory; `other_producer_configs` overrides any of them.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    "linger.ms": 25,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    # librdkafka holds about 450 bytes a queued message here (the record, its header, its state), so
    # this count, not max.kbytes (payload only), bounds the queue: 100,000 is ~45 MB. 500,000 let a
    # shard reach 322 MB while the broker stalled; paired 3M-row imports ran as fast with 100,000.
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 65_536,
    "message.timeout.ms": 300_000,
}
# Producer settings `other_producer_configs` may not set.
FORCED = ("enable.idempotence", "acks", "partitioner", "delivery.report.only.error", "transactional.id")


def producer_config(settings: Any, job_id: str, shard: int | None) -> dict[str, Any]:
    """The librdkafka configuration of the producer of a shard (None: of the finish step) of a job:
    with transactions, its transactional id is the job's and the shard's."""
    config: dict[str, Any] = {
        **PRODUCER_DEFAULTS,
        **client_config(settings),
        "compression.type": settings.compression,
        "client.id": f"pipelines-{job_id}",
        **embulk_producer_options(settings),
        **dict(settings.other_producer_configs),
    }
    if settings.transactional:
        config["transactional.id"] = f"pipelines-{job_id}-{shard if shard is not None else 'finish'}"
        config["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return config


def embulk_producer_options(settings: Any) -> dict[str, Any]:
    """librdkafka settings from embulk-output-kafka's `retries` and `record_batch_size` (Java's batch.size,
    bytes), when given (pipelines.kafka.embulk_options checks them); `acks` is always all."""
    options: dict[str, Any] = {}
    if getattr(settings, "retries", None) is not None:
        options["retries"] = settings.retries
    if getattr(settings, "record_batch_size", None) is not None:
        options["batch.size"] = settings.record_batch_size
    return options


def batches_natively(settings: Any, key_index: int | None, routed: bool = False) -> bool:
    """Whether keyed values (JSON, or Avro records made by pipelines.native.avro_values or the Python
    path) go through the compiled batch loop (pipelines.native.kafka).

    Not for `routed` rows (topic_column, partition_column_name, column_for_deletion: see
    pipelines.kafka.routing): the compiled loops write one topic, murmur2-partitioned, with a value
    each. Declining here declines the fused path too (FusedImport.choose needs the batch loop), so
    such rows go through rows, the filters and the Python produce path."""
    if key_index is None or routed:
        return False
    from pipelines.native.kafka import unavailable_reason

    return unavailable_reason() is None


class TopicProducer:
    """A confluent_kafka Producer of the output's topic and what its callbacks said: rows
    acknowledged per partition (`partition_rows`), failed deliveries, a fatal error, a failed
    authentication. `batch_producer` is the compiled batch loop over it, when one is used."""

    batch_producer: Any = None

    def __init__(
        self, settings: Any, where: str, job_id: str, shard: int | None, headers: Sequence[tuple[str, bytes]] = (), only_errors: bool = False
    ) -> None:
        """Connects and checks the topic. `headers` go on every row; with `only_errors` the producer
        reports failed deliveries only (delivery.report.only.error)."""
        from confluent_kafka import KafkaException, Producer

        from pipelines.kafka.memory import limit_malloc_arenas

        self.settings, self.headers = settings, list(headers)
        self.brokers = brokers_label(settings)
        self.produced = self.failed = 0
        self.first_failure: str | None = None
        self.fatal: str | None = None
        self.auth_error: str | None = None
        limit_malloc_arenas()
        config = producer_config(settings, job_id, shard)
        config["on_delivery"] = self.on_delivery
        if only_errors:
            config["delivery.report.only.error"] = True
        config["error_cb"] = self.on_error
        config["logger"] = librdkafka_logger()
        try:
            self.producer = Producer(config)
        except KafkaException as exc:
            raise ConfigError(f"invalid producer setting: {exc.args[0].str()}", where=where) from None
        self.partitions = partition_count(self.producer, settings, lambda: self.auth_error, " (create it first)")
        self.client_id = config["client.id"]
        self.partition_rows = [0] * self.partitions
        self.markers_acknowledged = 0  # end markers (finish step); their offsets per topic and partition:
        self.topic_marker_offsets: dict[str, dict[int, int]] = {}
        self.topic_partitions: dict[str, int | None] = {settings.topic: self.partitions}
        self.routed: TopicCounts | None = None  # per-topic counts, when rows are routed (produce_routed)
        self.murmur2: Any = None  # the compiled murmur2, when routed rows are counted as produced (only_errors)

    def partitions_of(self, topic: str) -> int | None:
        """The partition count of `topic` (asked of the brokers once), or None if it does not exist."""
        if topic not in self.topic_partitions:
            self.topic_partitions[topic] = topic_partition_count(self.producer, self.settings, topic, lambda: self.auth_error)
        return self.topic_partitions[topic]

    def compiled_batches(self, key_index: int, value_indexes: list[int], value_names: list[str]) -> Any:
        """The compiled batch loop over the producer, or None.

        Its producer reports failed deliveries only (delivery.report.only.error): rows are counted
        per partition as they are produced, partitioned with murmur2 exactly as the
        `murmur2_random` partitioner would, and a failure fails the run as on the Python path."""
        from pipelines.native.kafka import batch_producer

        return batch_producer(
            self.producer,
            self.client_id,
            topic=self.settings.topic,
            key_index=key_index,
            value_indexes=value_indexes,
            names=value_names,
            headers=self.headers,
            # In a transaction a failed delivery fails the commit (see transactions.run_step): no
            # callback per row, which costs confluent_kafka the GIL for every message it serves.
            on_delivery=None if self.settings.transactional else self.on_delivery,
        )

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.partition_rows[msg.partition()] += 1
            return
        self.failed += 1
        if self.first_failure is None:
            self.first_failure = f"{err.str()} (partition {msg.partition()})"

    def on_routed_delivery(self, err: Any, msg: Any) -> None:
        """The delivery report of a routed row (produce_routed): counted per topic and partition."""
        if err is None:
            assert self.routed is not None
            self.routed.count(msg.topic(), msg.partition(), msg.value() is None)
            return
        self.on_delivery(err, msg)

    def on_marker(self, err: Any, msg: Any) -> None:
        """The delivery report of an end marker: counted, and its offset kept (per topic: `topic_marker_offsets`)."""
        if err is not None:
            self.on_delivery(err, msg)
            return
        self.markers_acknowledged += 1
        self.topic_marker_offsets.setdefault(msg.topic(), {})[msg.partition()] = msg.offset()

    def on_error(self, err: Any) -> None:
        if err.fatal():
            self.fatal = err.str()
        elif is_auth_error(err):
            self.auth_error = err.str()

    def raise_if_failed(self) -> None:
        if self.fatal:
            raise RunError(f"the producer failed: {self.fatal}", where=self.brokers)
        if self.failed:
            raise RunError(f"{self.failed} row(s) were not acknowledged; first: {self.first_failure}", where=self.brokers)

    def served(self) -> None:
        """Delivery reports served (failures counted) after a batch; raises if any row failed."""
        self.producer.poll(0)
        self.raise_if_failed()

    def produce_rows(self, rows: list[list[Any]]) -> list[int]:
        """Produces rows through the compiled batch loop: the positions of those whose key is empty
        (not produced). Call `served` after."""
        try:
            produced, empty_keys = self.batch_producer.produce(rows, self.partition_rows)
        except RuntimeError as exc:
            raise RunError(str(exc), where=self.brokers) from None
        self.produced += produced
        return empty_keys

    def produce_encoded(self, encoded: Any) -> None:
        """Produces records already encoded (pipelines.native.fused: `.data`) through the compiled batch loop."""
        try:
            self.produced += self.batch_producer.produce_encoded(encoded.data, self.partition_rows)
        except RuntimeError as exc:
            raise RunError(str(exc), where=self.brokers) from None
        self.served()

    def produce_values(self, values: list[bytes | None], keys: list[str] | None) -> None:
        """Produces each value (None: a row already sent to the error output) with its key."""
        produce, poll = self.producer.produce, self.producer.poll
        topic, headers = self.settings.topic, self.headers
        produced = 0
        for r, value in enumerate(values):
            if value is None:
                continue
            key = keys[r] if keys is not None else None
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    poll(0.05)  # the local queue is full: let deliveries drain it
            produced += 1
        self.produced += produced
        self.served()

    def count_per_topic(self) -> None:
        """Counts rows per topic from now on (rows, tombstones: see produce_routed), the output's topic included."""
        self.routed = TopicCounts()
        self.routed.add_topic(self.settings.topic, self.partitions)

    def produce_routed(self, records: list[tuple[str, int | None, str | None, bytes | None]]) -> None:
        """Produces (topic, partition or None for murmur2 of the key, key, value or None for a
        tombstone) records, counted per topic: as produced when `murmur2` is set (the partition
        chosen here as the murmur2_random partitioner would; failed deliveries fail the run), else by
        on_routed_delivery."""
        assert self.routed is not None, "call count_per_topic() first"
        produce, poll, headers, murmur2 = self.producer.produce, self.producer.poll, self.headers, self.murmur2
        options: dict[str, Any] = {} if murmur2 is not None else {"on_delivery": self.on_routed_delivery}
        for topic, partition, key, value in records:
            count = self.topic_partitions[topic] or 0  # known: RowRouting.target asked
            self.routed.add_topic(topic, count)
            if murmur2 is not None:
                if partition is None:
                    partition = (murmur2(key.encode()) & 0x7FFFFFFF) % count if key is not None else random.randrange(count)
                self.routed.count(topic, partition, value is None)
            while True:
                try:
                    produce(topic, value, key, partition=-1 if partition is None else partition, headers=headers, **options)
                    break
                except BufferError:
                    poll(0.05)  # the local queue is full: let deliveries drain it
        self.produced += len(records)
        self.served()

    def flush(self) -> OutputResult:
        """Waits until the brokers acknowledged every row (or the delivery timeout failed it)."""
        remaining = self.producer.flush(self.settings.connect_timeout_seconds + PRODUCER_DEFAULTS["message.timeout.ms"] / 1000)
        self.raise_if_failed()
        if remaining:
            raise TransientRunError(f"{remaining} row(s) were not acknowledged in time", where=self.brokers)
        acknowledged = sum(self.partition_rows) + (self.routed.total() if self.routed is not None else 0) + self.markers_acknowledged
        if acknowledged != self.produced:
            raise RunError(f"{self.produced} row(s) sent but {acknowledged} acknowledged", where=self.brokers)
        if self.routed is not None:
            # The output's topic is among `topics`: not repeated as partition_rows (the report rides in 4 KB of offset metadata).
            return OutputResult(self.produced, None, topics=self.routed.report())
        return OutputResult(self.produced, list(self.partition_rows))


def routed_murmur2() -> Any:
    """The compiled murmur2 (pipelines/native/_fastkafka.c) for routed rows (produce_routed), or None:
    without it each routed row's delivery report counts it, which costs a Python call per row."""
    from pipelines.native.compiled import compiled, enabled

    return compiled("pipelines.native._fastkafka", "murmur2") if enabled() else None


def shard_producer(
    settings: Any, where: str, job_id: str, shard: int | None, headers: Sequence[tuple[str, bytes]],
    key_index: int | None, value_indexes: list[int], value_names: list[str], routed: bool = False,
) -> TopicProducer:
    """The producer of a shard: keyed JSON values go through the compiled batch loop when it can be
    used (its producer then reports failed deliveries only), else row by row (always for `routed` rows)."""
    batched = batches_natively(settings, key_index, routed)
    murmur2 = routed_murmur2() if routed else None
    out = TopicProducer(settings, where, job_id, shard, headers, only_errors=batched or murmur2 is not None)
    out.murmur2 = murmur2
    if batched:
        assert key_index is not None
        out.batch_producer = out.compiled_batches(key_index, value_indexes, value_names)
        if out.batch_producer is None:  # its handle did not check out: every delivery report is needed
            out = TopicProducer(settings, where, job_id, shard, headers)
    return out
