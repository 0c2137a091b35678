"""`out: {type: kafka, brokers: [...], topic: ..., key_column_name: user_id}`, with embulk-output-kafka's option names.

Safe by default: idempotent producer, acks=all, the Java client's murmur2 partitioning,
and one Kafka transaction per run, so a failed run leaves nothing for
`read_committed` consumers. `rows_written` counts only rows the brokers acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError, RunError, TransientRunError
from pipelines.plugins.base import JobTotals, OutputPlugin, OutputResult
from pipelines.plugins.column_filters import require_columns
from pipelines.engine.records import Batch, Schema
from pipelines.kafka.connection import KafkaConnectionSettings, client_config, is_auth_error, unreachable
from pipelines.engine.plan import SHARD_MAX_SECONDS
from pipelines.engine.settings import option

JOB_ID_HEADER = "pipelines.job_id"
MARKER_HEADER = "pipelines.marker"
# Kafka keeps at most this much metadata with a committed offset (offset.metadata.max.bytes).
MAX_RECORD_BYTES = 4096
# A shard's transaction spans its whole run: its timeout is the shard's longest time limit
# (pipelines.engine.plan.SHARD_MAX_SECONDS, 15 min, the broker's default transaction.max.timeout.ms). It is
# also how long a shard killed mid-run (SIGKILL, a lost task) holds read_committed readers of its
# partitions back, unless the job is aborted (`pipelines abort`, the workflow's AbortJob), which
# fences its transactions at once.
TRANSACTION_TIMEOUT_MS = SHARD_MAX_SECONDS * 1000
FENCE_THREADS = 8  # transactional ids fenced at once by abort_job
# How long abort() may block in librdkafka (whose transaction calls do not return to Python for a
# signal): a SIGTERM'd shard (ECS kills 30 s after it) must abort, and exit, well within that.
ABORT_TIMEOUT_SECONDS = 10

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
FORCED = ("enable.idempotence", "acks", "partitioner", "delivery.report.only.error", "transactional.id")


def librdkafka_logger() -> logging.Logger:
    """librdkafka's own log (retries while a coordinator loads, reconnects): silent unless
    PIPELINES_KAFKA_DEBUG=1, since failures reach the run through error and delivery callbacks."""
    import os

    logger = logging.getLogger("pipelines.librdkafka")
    if not logger.handlers:
        logger.propagate = False
        if os.environ.get("PIPELINES_KAFKA_DEBUG") == "1":
            logger.setLevel(logging.DEBUG)
            logger.addHandler(logging.StreamHandler())
        else:
            logger.addHandler(logging.NullHandler())
    return logger


@dataclass(frozen=True)
class KafkaOutputSettings(KafkaConnectionSettings):
    brokers: tuple[str, ...]
    topic: str
    key_column_name: str | None = None
    serialize_format: Literal["json", "avro"] = "json"
    ignore_columns: tuple[str, ...] = ()
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "lz4"
    transactional: bool = True
    connect_timeout_seconds: float = 15.0
    other_producer_configs: Mapping[str, str] = option(factory=dict)
    # serialize_format: avro (Confluent wire format: magic 0, schema id, Avro binary); see _avro_schema.
    schema_registry_url: str | None = None
    schema_registry_user_info: str | None = option(None, secret=True)  # "user:password", sent as basic auth
    value_subject: str | None = None  # default "<topic>-value"
    avsc: Any = None  # the value schema inline: a mapping, or its JSON text
    avsc_file: str | None = None  # the value schema in a file
    auto_register: bool = True

    def __post_init__(self) -> None:
        if not self.brokers or not all(self.brokers):
            raise ValueError("brokers: give at least one host:port")
        avro_options = ("schema_registry_url", "schema_registry_user_info", "value_subject", "avsc", "avsc_file")
        if self.serialize_format == "avro":
            if not self.schema_registry_url:
                raise ValueError("serialize_format avro needs schema_registry_url (each value carries a registry schema id)")
            if self.avsc is not None and self.avsc_file is not None:
                raise ValueError("give the Avro schema as avsc or as avsc_file, not both")
        else:
            given = [name for name in avro_options if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for serialize_format: avro")
        for key in FORCED:
            if key in self.other_producer_configs:
                raise ValueError(f"other_producer_configs: '{key}' is fixed by the engine (no lost or doubled rows)")
        self.check_connection(self.other_producer_configs)


class KafkaOutput(OutputPlugin):
    Settings = KafkaOutputSettings
    serializer: Any = None  # with serialize_format avro: the AvroSerializer, set when the output opens
    batch_producer: Any = None  # the compiled batch loop (pipelines.native.kafka), set when the output opens, if usable

    def bind(self, schema: Schema) -> None:
        s = self.settings
        require_columns(schema, s.ignore_columns, f"{self.where}.ignore_columns")
        if s.key_column_name is not None:
            require_columns(schema, [s.key_column_name], f"{self.where}.key_column_name")
            self.key_index: int | None = schema.index(s.key_column_name)
        else:
            self.key_index = None
        self.value_indexes = [i for i, n in enumerate(schema.names) if n not in s.ignore_columns]
        self.value_names = [schema.names[i] for i in self.value_indexes]
        self.whole_row = len(self.value_indexes) == len(schema)
        if not self.value_names:
            raise ConfigError("ignore_columns leaves no column for the value", where=f"{self.where}.ignore_columns")
        self.schema = schema
        if s.serialize_format == "avro":
            self._bind_avro(schema)

    def _bind_avro(self, schema: Schema) -> None:
        """Checks the value columns against the avsc/avsc_file schema now; without one, against the
        registry's schema when the output opens."""
        from pipelines.plugins.avro_schema import avro_from_columns, load_avsc, record_converter

        s = self.settings
        value_schema = Schema(tuple(schema.columns[i] for i in self.value_indexes))
        avro_from_columns(value_schema, where=f"{self.where}.serialize_format")  # the names must be Avro names
        self.avsc = load_avsc(s.avsc, s.avsc_file, self.where)
        self.value_subject = s.value_subject or f"{s.topic}-value"
        if self.avsc is not None:
            which = "avsc_file" if s.avsc_file is not None else "avsc"
            record_converter(schema, self.avsc, self.value_indexes, where=f"{self.where}.{which}")
        self._avro_resolved: tuple[Any, Any] | None = None

    def _avro_schema(self) -> tuple[Any, Any]:
        """(serializer, record converter) of the value schema, resolved once with the registry:

        - avsc/avsc_file given: registered under the subject (auto_register: true), or its id looked
          up there (auto_register: false: it must be registered already);
        - neither: the subject's latest version; if the subject has none and auto_register is true,
          one derived from the value columns (avro_schema.avro_from_columns: every field nullable) is
          registered and used.
        """
        if self._avro_resolved is not None:
            return self._avro_resolved
        from pipelines.plugins.avro_schema import avro_from_columns, record_converter
        from pipelines.kafka.avro_wire import AvroSerializer
        from pipelines.kafka.schema_registry import SchemaNotFound, SchemaRegistry

        s = self.settings
        subject = self.value_subject
        try:
            registry = SchemaRegistry(s.schema_registry_url or "", s.schema_registry_user_info)
        except ValueError as exc:
            raise ConfigError(str(exc), where=f"{self.where}.schema_registry_url") from None
        avro = self.avsc
        if avro is not None:
            schema_id = registry.register(subject, avro) if s.auto_register else registry.check(subject, avro)
            if schema_id is None:
                raise RunError(
                    f"the value schema is not registered under subject '{subject}' and auto_register is false: "
                    "register it first, or set auto_register: true",
                    where=registry.where,
                )
            origin = f"subject '{subject}' (schema id {schema_id})"
        else:
            try:
                schema_id, avro = registry.latest(subject)
                origin = f"the latest schema of subject '{subject}' (id {schema_id})"
            except SchemaNotFound:
                if not s.auto_register:
                    raise RunError(
                        f"no schema is registered under subject '{subject}': give avsc or avsc_file, register one, "
                        "or set auto_register: true to register one made from the columns",
                        where=registry.where,
                    ) from None
                value_schema = Schema(tuple(self.schema.columns[i] for i in self.value_indexes))
                avro = avro_from_columns(value_schema, where=self.where)
                schema_id = registry.register(subject, avro)
                origin = f"subject '{subject}' (schema id {schema_id}, made from the columns)"
        try:
            to_records = record_converter(self.schema, avro, self.value_indexes, where=f"{self.where}: {origin}")
        except ConfigError as exc:
            raise RunError(exc.message, where=exc.where) from None
        self._avro_resolved = (AvroSerializer(avro, schema_id), to_records)
        return self._avro_resolved

    def producer_config(self, job_id: str, shard: int | None) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            **PRODUCER_DEFAULTS,
            **client_config(s),
            "compression.type": s.compression,
            "client.id": f"pipelines-{job_id}",
            **dict(s.other_producer_configs),
        }
        if s.transactional:
            config["transactional.id"] = f"pipelines-{job_id}-{shard if shard is not None else 'finish'}"
            config["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
        return config

    def open(self, job_id: str, shard: int | None) -> None:
        """Connects, checks the topic and begins the shard's transaction (fencing any earlier attempt)."""
        self.job_id, self.shard_index = job_id, shard
        self.produced = 0
        self.failed = 0
        self.first_failure: str | None = None
        self.fatal: str | None = None
        self.headers = [(JOB_ID_HEADER, job_id.encode())]
        if self.settings.serialize_format == "avro":
            self.serializer, self.to_records = self._avro_schema()  # before connecting: a schema problem costs nothing
        batched = self._batches_natively()
        self.producer = self._producer(job_id, shard, only_errors=batched)
        self.partition_rows = [0] * self.partitions
        self.batch_producer = self._batch_producer() if batched else None
        if batched and self.batch_producer is None:  # its handle did not check out: every delivery report is needed
            self.producer = self._producer(job_id, shard)
        if self.settings.transactional:
            self._transaction(lambda timeout: (self.producer.init_transactions(timeout), self.producer.begin_transaction()))

    def _producer(self, job_id: str, shard: int | None, only_errors: bool = False) -> Any:
        from confluent_kafka import KafkaException, Producer

        from pipelines.kafka.memory import limit_malloc_arenas

        limit_malloc_arenas()
        config = self.producer_config(job_id, shard)
        config["on_delivery"] = self._on_delivery
        if only_errors:
            config["delivery.report.only.error"] = True
        config["error_cb"] = self._on_error
        config["logger"] = librdkafka_logger()
        try:
            producer = Producer(config)
        except KafkaException as exc:
            raise ConfigError(f"invalid producer setting: {exc.args[0].str()}", where=self.where) from None
        self.partitions = self._check_topic(producer)
        self.client_id = config["client.id"]
        return producer

    def _batches_natively(self) -> bool:
        """Whether keyed JSON values go through the compiled batch loop (pipelines.native.kafka)."""
        if self.settings.serialize_format != "json" or self.key_index is None:
            return False
        from pipelines.native.kafka import unavailable_reason

        return unavailable_reason() is None

    def _batch_producer(self) -> Any:
        """The compiled batch loop over the producer, or None.

        Its producer reports failed deliveries only (delivery.report.only.error): rows are counted
        per partition as they are produced, partitioned with murmur2 exactly as the
        `murmur2_random` partitioner would, and a failure fails the run as on the Python path."""
        from pipelines.native.kafka import batch_producer

        s = self.settings
        return batch_producer(
            self.producer,
            self.client_id,
            topic=s.topic,
            key_index=self.key_index,
            value_indexes=self.value_indexes,
            names=self.value_names,
            headers=self.headers,
            # In a transaction a failed delivery fails the commit (see _transaction): no callback per
            # row, which costs confluent_kafka the GIL for every message it serves.
            on_delivery=None if s.transactional else self._on_delivery,
        )

    def _transaction(self, step: Any) -> None:
        from confluent_kafka import KafkaError, KafkaException

        try:
            step(self.settings.connect_timeout_seconds)
        except KafkaException as exc:
            err = exc.args[0]
            if err.txn_requires_abort() and not err.retriable():
                # A message failed for good (rows produced without a callback each, see
                # _batch_producer): librdkafka fails the commit; another attempt would fail alike.
                reason = KafkaError(err.code()).str()
                raise RunError(f"row(s) were not acknowledged; first: {reason}; the transaction was aborted", where=self._brokers) from None
            raise TransientRunError(f"Kafka transaction failed: {err.str()}", where=self._brokers) from None

    def _unreachable(self) -> Exception:
        return unreachable(self.settings, self._brokers, getattr(self, "auth_error", None))

    @property
    def _brokers(self) -> str:
        return "Kafka " + ",".join(self.settings.brokers)

    def _check_topic(self, client: Any) -> int:
        from confluent_kafka import KafkaException

        timeout = self.settings.connect_timeout_seconds
        try:
            metadata = client.list_topics(self.settings.topic, timeout=timeout)
        except KafkaException:
            client.poll(0)  # error events (a failed authentication) reach error_cb only when polled
            raise self._unreachable() from None
        topic = metadata.topics.get(self.settings.topic)
        if topic is None or topic.error is not None:
            raise RunError(f"topic '{self.settings.topic}' does not exist (create it first)", where=self._brokers)
        return len(topic.partitions)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.partition_rows[msg.partition()] += 1
            return
        self.failed += 1
        if self.first_failure is None:
            self.first_failure = f"{err.str()} (partition {msg.partition()})"

    def _on_marker(self, err: Any, msg: Any) -> None:
        self._on_delivery(err, msg)
        if err is None:
            self.marker_offsets[msg.partition()] = msg.offset()

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self.fatal = err.str()
        elif is_auth_error(err):
            self.auth_error = err.str()

    def _raise_if_failed(self) -> None:
        if self.fatal:
            raise RunError(f"the producer failed: {self.fatal}", where=self._brokers)
        if self.failed:
            raise RunError(f"{self.failed} row(s) were not acknowledged; first: {self.first_failure}", where=self._brokers)

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        """The batch's keys checked and its values encoded first (JSON, or Avro in the wire format), then produced."""
        if batch.encoded is not None:  # records made by the parser (pipelines.native.fused): only with a batch producer
            try:
                self.produced += self.batch_producer.produce_encoded(batch.encoded.data, self.partition_rows)
            except RuntimeError as exc:
                raise RunError(str(exc), where=self._brokers) from None
            self._served()
            return
        if self.batch_producer is not None:
            try:
                produced, empty_keys = self.batch_producer.produce(batch.rows, self.partition_rows)
            except RuntimeError as exc:
                raise RunError(str(exc), where=self._brokers) from None
            self.produced += produced
            for position in empty_keys:
                self._empty_key(batch, errors, batch.line_nos[position])
            self._served()
            return
        rows, line_nos, keys = self._keyed(batch, errors)
        if self.serializer is not None:
            records, bad = self.to_records(rows)
            values, unfit = self.serializer.encode_batch(records)
            for position, reason in bad + [(p, f"the value {reason}") for p, reason in unfit]:
                line = line_nos[position]
                errors.add(batch.source, line, reason, batch.raw_line(line))
        else:
            import orjson

            dumps, names, indexes = orjson.dumps, self.value_names, self.value_indexes
            if self.whole_row:
                values = [dumps(dict(zip(names, row))) for row in rows]
            else:
                values = [dumps(dict(zip(names, [row[i] for i in indexes]))) for row in rows]
        self._produce(values, keys)

    def _keyed(self, batch: Batch, errors: ErrorSink) -> tuple[list[list[Any]], list[int], list[str] | None]:
        """(rows, their lines, their keys as text): a row whose key column is empty goes to `errors`."""
        key_index = self.key_index
        if key_index is None:
            return batch.rows, batch.line_nos, None
        rows, line_nos, keys = [], [], []
        for row, line in zip(batch.rows, batch.line_nos):
            key = row[key_index]
            if key is None or key == "":
                self._empty_key(batch, errors, line)
                continue
            keys.append(key if isinstance(key, str) else str(key))
            rows.append(row)
            line_nos.append(line)
        return rows, line_nos, keys

    def _empty_key(self, batch: Batch, errors: ErrorSink, line: int) -> None:
        errors.add(batch.source, line, f"key column '{self.settings.key_column_name}' is empty", batch.raw_line(line))

    def _served(self) -> None:
        """Delivery reports served (failures counted) after a batch; raises if any row failed."""
        self.producer.poll(0)
        self._raise_if_failed()

    def _produce(self, values: list[bytes | None], keys: list[str] | None) -> None:
        """Produces each value (None: a row already sent to the error output) with its key."""
        producer = self.producer
        produce, poll = producer.produce, producer.poll
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
        self._served()

    def flush(self) -> OutputResult:
        """Waits until the brokers acknowledged every row (or the delivery timeout failed it)."""
        remaining = self.producer.flush(self.settings.connect_timeout_seconds + PRODUCER_DEFAULTS["message.timeout.ms"] / 1000)
        self._raise_if_failed()
        if remaining:
            raise TransientRunError(f"{remaining} row(s) were not acknowledged in time", where=self._brokers)
        if sum(self.partition_rows) != self.produced:
            raise RunError(f"{self.produced} row(s) sent but {sum(self.partition_rows)} acknowledged", where=self._brokers)
        return OutputResult(self.produced, list(self.partition_rows))

    def commit(self, record: str | None = None) -> None:
        """Commits the transaction; `record` (the shard report) is committed atomically with the rows."""
        if not self.settings.transactional:
            return
        if record is not None:
            self._send_record(self.job_id, self.shard_group(self.job_id, self.shard_index), record)
        self._transaction(lambda timeout: self.producer.commit_transaction(timeout))

    def _send_record(self, job_id: str, group: str, record: str, offsets_after: list[int] | None = None) -> None:
        """Stores `record` as the metadata of an offset committed in the transaction by `group`
        (on partition 0; with `offsets_after`, the group's offset of every partition is set to those)."""
        from confluent_kafka import Consumer, TopicPartition

        if len(record.encode()) > MAX_RECORD_BYTES:
            raise RunError(f"the shard report is {len(record)} bytes, more than Kafka keeps with an offset ({MAX_RECORD_BYTES})")
        consumer = Consumer({**client_config(self.settings), "group.id": group})
        try:
            topic = self.settings.topic
            if offsets_after is None:
                offsets = [TopicPartition(topic, 0, 0, metadata=record)]
            else:
                offsets = [TopicPartition(topic, p, o, metadata=record if p == 0 else "") for p, o in enumerate(offsets_after)]
            self._transaction(lambda timeout: self.producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), timeout))
        finally:
            consumer.close()

    @staticmethod
    def shard_group(job_id: str, shard: int | None) -> str:
        return f"pipelines.{job_id}." + ("finish" if shard is None else f"shard-{shard:05d}")

    def committed_record(self, job_id: str, shard: int | None) -> str | None:
        """The record a committed transaction of this shard (None: of the finish step) stored, if any."""
        if not self.settings.transactional:
            return None
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

        import time

        group = self.shard_group(job_id, shard)
        consumer = Consumer({**client_config(self.settings), "group.id": group, "logger": librdkafka_logger()})
        # A group coordinator that is loading or moving answers "not coordinator" for a moment: ask again.
        passing = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE)
        deadline = time.monotonic() + self.settings.connect_timeout_seconds
        try:
            while True:
                try:
                    (committed,) = consumer.committed([TopicPartition(self.settings.topic, 0)], timeout=self.settings.connect_timeout_seconds)
                    break
                except KafkaException as exc:
                    code = exc.args[0].code()
                    if code == KafkaError._TIMED_OUT:
                        raise self._unreachable() from None
                    if code not in passing or time.monotonic() > deadline:
                        raise TransientRunError(f"cannot read committed shard reports: {exc.args[0].str()}", where=self._brokers) from None
                    time.sleep(0.2)
        finally:
            consumer.close()
        return committed.metadata if committed.offset >= 0 and committed.metadata else None

    def abort(self) -> int:
        from confluent_kafka import KafkaException

        producer = getattr(self, "producer", None)
        if producer is None:
            return 0
        if self.settings.transactional:
            try:
                producer.abort_transaction(ABORT_TIMEOUT_SECONDS)
            except KafkaException:
                pass  # the transaction coordinator aborts it after transaction.timeout.ms anyway
            return 0
        # Without a transaction nothing can be taken back: deliver what was produced (valid rows
        # read before the failure), and count exactly what the brokers acknowledged.
        remaining = producer.flush(ABORT_TIMEOUT_SECONDS)
        return self.produced - self.failed - remaining

    def close(self) -> None:
        self.producer = self.batch_producer = None

    def abort_job(self, job_id: str, shard_count: int) -> dict[str, Any]:
        """Fences every transactional id of the job, its shards' and its finish step's: a transaction
        still open under one (a shard killed mid-run) is aborted by its coordinator at once, so
        read_committed readers move on now rather than after transaction.timeout.ms. What was
        committed stays. A shard still running under one of them fails its commit (fenced)."""
        if not self.settings.transactional:
            return {"fenced": 0}
        from concurrent.futures import ThreadPoolExecutor

        ids: list[int | None] = [*range(shard_count), None]
        with ThreadPoolExecutor(FENCE_THREADS) as pool:
            list(pool.map(lambda shard: self._fence(job_id, shard), ids))
        return {"fenced": len(ids)}

    def _fence(self, job_id: str, shard: int | None) -> None:
        from confluent_kafka import Producer

        config = {**self.producer_config(job_id, shard), "logger": librdkafka_logger()}
        producer = Producer(config)
        try:
            self._transaction(lambda timeout: producer.init_transactions(timeout))
        finally:
            producer.flush(0)

    def finish(self, totals: JobTotals) -> dict[str, Any]:
        """Sends one end marker to every partition, once: a second finish of the same job sends none."""
        import orjson

        job_id, shard_count, partition_rows, total_rows = totals.job_id, totals.shard_count, totals.partition_rows, totals.total_rows
        done = self.committed_record(job_id, None)
        if done is not None:
            return {**orjson.loads(done), "already_finished": True}
        self.job_id, self.shard_index = job_id, None
        self.produced, self.failed, self.first_failure, self.fatal = 0, 0, None, None
        self.producer = self._producer(job_id, None)
        if partition_rows is None or len(partition_rows) != self.partitions:
            raise RunError(
                f"topic '{self.settings.topic}' has {self.partitions} partitions, but the shards counted rows in "
                f"{len(partition_rows or [])}: were partitions added during the job?",
                where=self._brokers,
            )
        self.partition_rows = [0] * self.partitions
        self.marker_offsets = [-1] * self.partitions
        transactional = self.settings.transactional
        if transactional:
            self._transaction(lambda timeout: (self.producer.init_transactions(timeout), self.producer.begin_transaction()))
        headers = [(MARKER_HEADER, b"end"), (JOB_ID_HEADER, job_id.encode())]
        for partition, rows in enumerate(partition_rows):
            value = {"job_id": job_id, "partition": partition, "partition_rows": rows, "total_rows": total_rows, "shard_count": shard_count}
            self.producer.produce(
                self.settings.topic, orjson.dumps(value), None, partition=partition, headers=headers, on_delivery=self._on_marker
            )
            self.produced += 1
        self.flush()
        record = orjson.dumps({"markers": self.partitions, "total_rows": total_rows}).decode()
        try:
            if transactional:
                # The finish group's offsets point just past each marker: an export can start after
                # this job (kafka input `start_after_job`) or stop at its end (`only_job_id`) without a scan.
                self._send_record(job_id, self.shard_group(job_id, None), record, [o + 1 for o in self.marker_offsets])
                self._transaction(lambda timeout: self.producer.commit_transaction(timeout))
        except BaseException:
            self.abort()
            raise
        finally:
            self.close()
        return {"markers": self.partitions, "total_rows": total_rows, "already_finished": False}
