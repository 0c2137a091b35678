"""`in: {type: kafka, brokers: [...], topic: ..., columns: [...]}`: a bounded snapshot of a topic.

The plan fixes, per partition, the offsets to read: from the earliest offset (or the first
record at `start_timestamp`, or just after the end marker of job `start_after_job`) to the
partition's last stable offset at plan time, read `read_committed`. So an export of a topic
that keeps receiving writes ends at that snapshot, and reruns read the same records.
Partitions are split into offset ranges of at most `records_per_shard` and packed into shards.

Partitions are assigned by hand: nothing joins a consumer group, and no group offsets are
committed unless `commit_offsets: true` with a `group_id` (then the snapshot's end offsets,
once the job has finished). End markers of imports are never rows; `only_job_id` keeps only
the records of one job (header `pipelines.job_id`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pipelines.engine.columns import ColumnSettings, records_converter, schema_of
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError, RunError, TransientRunError
from pipelines.kafka.connection import KafkaConnectionSettings, client_config, is_auth_error, unreachable
from pipelines.kafka.memory import release_free_memory
from pipelines.native.kafka import split_messages, with_errors
from pipelines.engine.plan import PlanItem
from pipelines.plugins.base import InputPlugin
from pipelines.engine.records import Batch, Schema
from pipelines.engine.settings import option

JOB_ID_HEADER = "pipelines.job_id"
MARKER = ("pipelines.marker", b"end")
STALL_SECONDS = 60.0  # no record and no progress for this long below the snapshot's end: retryable failure
RETRY_PAUSE_SECONDS = 0.5  # between ListOffsets attempts while a broker (re)starts
RAW_LIMIT = 2000  # characters of a bad record's value kept in the error output

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
FORCED = ("isolation.level", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "enable.partition.eof", "group.id")


@dataclass(frozen=True)
class KafkaInputSettings(KafkaConnectionSettings):
    brokers: tuple[str, ...]
    topic: str
    serialize_format: Literal["json", "avro"] = "json"
    columns: tuple[ColumnSettings, ...] = ()  # required for json; for avro, default: the registry's latest schema
    key_column_name: str | None = None  # a column that takes the record's key
    start_timestamp: str | None = None  # ISO 8601 (UTC when no zone) or epoch milliseconds
    start_after_job: str | None = None  # start after this job's end marker in every partition
    only_job_id: str | None = None  # keep only the records of this job
    records_per_shard: int = 2_000_000
    commit_offsets: bool = False
    group_id: str | None = None  # the consumer group whose offsets commit_offsets sets
    schema_registry_url: str | None = None
    schema_registry_user_info: str | None = option(None, secret=True)
    value_subject: str | None = None  # default: "<topic>-value"
    connect_timeout_seconds: float = 15.0
    other_consumer_configs: Mapping[str, str] = option(factory=dict)

    def __post_init__(self) -> None:
        if not self.brokers or not all(self.brokers):
            raise ValueError("brokers: give at least one host:port")
        if self.start_timestamp is not None and self.start_after_job is not None:
            raise ValueError("give start_timestamp or start_after_job, not both")
        if self.records_per_shard < 1:
            raise ValueError("records_per_shard must be at least 1")
        if self.commit_offsets and not self.group_id:
            raise ValueError("commit_offsets needs group_id: the group whose offsets to commit")
        if self.serialize_format == "json" and not self.columns:
            raise ValueError("columns: declare the columns to read from the JSON values")
        if self.serialize_format == "avro" and not self.schema_registry_url:
            raise ValueError("serialize_format avro needs schema_registry_url (values carry a registry schema id)")
        for key in FORCED:
            if key in self.other_consumer_configs:
                raise ValueError(f"other_consumer_configs: '{key}' is fixed by the engine (a bounded, committed snapshot)")
        self.check_connection(self.other_consumer_configs)


def timestamp_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 time (UTC when it has no zone) or of a number of milliseconds."""
    if text.strip().isdigit():
        return int(text)
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


def _text(value: bytes) -> str:
    """A bad record's value for the error output: text, cut to RAW_LIMIT characters."""
    return value[:RAW_LIMIT].decode("utf-8", "replace")


def partition_of(item: PlanItem) -> int:
    """The partition of a plan item `kafka://topic/N`."""
    return int(item.uri.rsplit("/", 1)[1])


def partition_ranges(topic: str, starts: list[int], ends: list[int], per_shard: int) -> list[PlanItem]:
    """Offset ranges [start, end) of at most `per_shard` offsets, partition by partition; empty ones left out."""
    items = []
    for partition, (start, end) in enumerate(zip(starts, ends)):
        for lo in range(start, end, per_shard):
            items.append(PlanItem(f"kafka://{topic}/{partition}", end, None, lo, min(lo + per_shard, end)))
    return items


class KafkaInput(InputPlugin):
    Settings = KafkaInputSettings
    reads_records = True

    def __init__(self, settings: KafkaInputSettings, where: str) -> None:
        super().__init__(settings, where)
        if settings.start_timestamp is not None:
            try:
                self.start_ms: int | None = timestamp_ms(settings.start_timestamp)
            except ValueError:
                raise ConfigError(
                    f"not a time: {settings.start_timestamp!r} (ISO 8601 like 2026-11-01T00:00:00Z, or epoch milliseconds)",
                    where=f"{where}.start_timestamp",
                ) from None
        else:
            self.start_ms = None
        self._schema = schema_of(settings.columns, where) if settings.columns else None
        self._registry: Any = None
        self._decoder: Any = None
        self.auth_error: str | None = None

    # -- schema ---------------------------------------------------------------------------------

    @functools.cached_property
    def columns(self) -> tuple[ColumnSettings, ...]:
        """The declared columns, or the fields of the subject's latest schema (asked once)."""
        if self.settings.columns:
            return self.settings.columns
        from pipelines.plugins.avro_schema import columns_from_avro

        subject = self.settings.value_subject or f"{self.settings.topic}-value"
        _, avro = self.registry.latest(subject)
        return tuple(ColumnSettings(c.name, c.type) for c in columns_from_avro(avro))  # type: ignore[arg-type]

    def schema(self) -> Schema:
        if self._schema is None:
            self._schema = schema_of(self.columns, self.where)
        if self.settings.key_column_name is not None and self.settings.key_column_name not in self._schema.names:
            raise ConfigError(
                f"key_column_name '{self.settings.key_column_name}' is not among the columns ({', '.join(self._schema.names)})",
                where=f"{self.where}.key_column_name",
            )
        return self._schema

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from pipelines.kafka.schema_registry import SchemaRegistry

            self._registry = SchemaRegistry(self.settings.schema_registry_url, self.settings.schema_registry_user_info)
        return self._registry

    # -- clients --------------------------------------------------------------------------------

    @property
    def _brokers(self) -> str:
        return "Kafka " + ",".join(self.settings.brokers)

    def _where(self, partition: int | None = None) -> str:
        return f"kafka://{self.settings.topic}" + (f"/{partition}" if partition is not None else "")

    def _consumer(self, group: str, python_log: bool = True, **extra: Any) -> Any:
        from confluent_kafka import Consumer, KafkaException

        from pipelines.kafka.memory import limit_malloc_arenas
        from pipelines.plugins.kafka_output import librdkafka_logger

        limit_malloc_arenas()
        config = {
            **CONSUMER_DEFAULTS,
            **client_config(self.settings),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "error",  # records deleted by retention fail the shard, never skip silently
            **({"logger": librdkafka_logger()} if python_log else {"log_level": 0}),
            **dict(self.settings.other_consumer_configs),
            **extra,
        }
        try:
            return Consumer(config)
        except KafkaException as exc:
            raise ConfigError(f"invalid consumer setting: {exc.args[0].str()}", where=self.where) from None

    def _admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        from pipelines.kafka.memory import limit_malloc_arenas
        from pipelines.plugins.kafka_output import librdkafka_logger

        limit_malloc_arenas()
        return AdminClient({**client_config(self.settings), "logger": librdkafka_logger(), "error_cb": self._on_error})

    def _on_error(self, err: Any) -> None:
        if is_auth_error(err):
            self.auth_error = err.str()

    def _partitions(self, admin: Any) -> int:
        from confluent_kafka import KafkaException

        try:
            metadata = admin.list_topics(self.settings.topic, timeout=self.settings.connect_timeout_seconds)
        except KafkaException:
            admin.poll(0)  # error events (a failed authentication) reach error_cb only when polled
            raise unreachable(self.settings, self._brokers, self.auth_error) from None
        topic = metadata.topics.get(self.settings.topic)
        if topic is None or topic.error is not None:
            raise RunError(f"topic '{self.settings.topic}' does not exist", where=self._brokers)
        return len(topic.partitions)

    def _offsets(self, admin: Any, partitions: int, spec: Any) -> list[int]:
        """One offset per partition from ListOffsets (read_committed: `latest` is the last stable offset).

        A broker that is (re)starting answers for a moment with errors that pass (no leader yet, a
        leader epoch it does not know yet): asked again until `connect_timeout_seconds` have passed,
        then a TransientRunError (exit 75). An authorization error is not asked again."""
        from confluent_kafka import IsolationLevel, KafkaException, TopicPartition

        request = {TopicPartition(self.settings.topic, p): spec for p in range(partitions)}
        timeout = self.settings.connect_timeout_seconds
        deadline = time.monotonic() + timeout
        while True:
            try:
                left = max(deadline - time.monotonic(), 1.0)
                futures = admin.list_offsets(request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=left)
                return [futures[tp].result().offset for tp in sorted(futures, key=lambda tp: tp.partition)]
            except KafkaException as exc:
                err = exc.args[0]
                if _lasting(err) or time.monotonic() + RETRY_PAUSE_SECONDS > deadline:
                    raise TransientRunError(f"cannot list offsets: {err.str()}", where=self._brokers) from None
            time.sleep(RETRY_PAUSE_SECONDS)

    # -- plan -----------------------------------------------------------------------------------

    def plan_items(self) -> tuple[list[PlanItem], int]:
        from confluent_kafka.admin import OffsetSpec

        admin = self._admin()
        partitions = self._partitions(admin)
        ends = self._offsets(admin, partitions, OffsetSpec.latest())
        earliest = self._offsets(admin, partitions, OffsetSpec.earliest())
        if self.start_ms is not None:
            found = self._offsets(admin, partitions, OffsetSpec.for_timestamp(self.start_ms))
            starts = [end if offset < 0 else offset for offset, end in zip(found, ends)]  # -1: no record that late
        elif self.settings.start_after_job is not None:
            starts = self._after_marker(self.settings.start_after_job, earliest, ends)
        else:
            starts = earliest
        if self.settings.only_job_id is not None:
            # A job's records all come before its end marker: stop there when the job has finished.
            markers = self._marker_ends(self.settings.only_job_id, partitions)
            if markers is not None:
                ends = [min(end, marker) for end, marker in zip(ends, markers)]
        starts = [min(start, end) for start, end in zip(starts, ends)]
        return partition_ranges(self.settings.topic, starts, ends, self.settings.records_per_shard), self.settings.records_per_shard

    def _marker_ends(self, job_id: str, partitions: int) -> list[int] | None:
        """Per partition, the offset just after `job_id`'s end marker, as its finish step committed them
        (group `pipelines.<job>.finish`); None if the job has not finished with per-partition offsets."""
        from confluent_kafka import KafkaException, TopicPartition

        consumer = self._consumer(f"pipelines.{job_id}.finish")
        try:
            wanted = [TopicPartition(self.settings.topic, p) for p in range(partitions)]
            committed = consumer.committed(wanted, timeout=self.settings.connect_timeout_seconds)
        except KafkaException as exc:
            raise TransientRunError(f"cannot read job {job_id}'s end marker offsets: {exc.args[0].str()}", where=self._brokers) from None
        finally:
            consumer.close()
        offsets = [tp.offset for tp in sorted(committed, key=lambda tp: tp.partition)]
        return offsets if all(offset >= 0 for offset in offsets) and len(offsets) == partitions else None

    def _after_marker(self, job_id: str, earliest: list[int], ends: list[int]) -> list[int]:
        """Per partition, the offset after job `job_id`'s end marker: from its finish step's committed
        offsets, or else found by reading the partition up to the snapshot's end."""
        found = self._marker_ends(job_id, len(ends))
        if found is not None:
            return found
        starts = []
        for partition, (lo, hi) in enumerate(zip(earliest, ends)):
            offset = self._scan_for_marker(job_id, partition, lo, hi)
            if offset is None:
                raise RunError(
                    f"job {job_id} has no end marker in partition {partition} (offsets {lo} to {hi}): "
                    "it has not finished, or it wrote to another topic",
                    where=self._where(partition),
                )
            starts.append(offset + 1)
        return starts

    def _scan_for_marker(self, job_id: str, partition: int, lo: int, hi: int) -> int | None:
        marker_job = (JOB_ID_HEADER, job_id.encode())
        for messages in self._messages(PlanItem(self._where(partition), hi, None, lo, hi), 10_000):
            for message in messages:
                headers = message.headers()
                if headers and MARKER in headers and marker_job in headers:
                    return message.offset()
        return None

    # -- run ------------------------------------------------------------------------------------

    def check_items(self, items: tuple[PlanItem, ...]) -> None:
        """Every range's records are all still there (retention may have deleted the oldest since the
        plan): one metadata and one ListOffsets request for the whole shard."""
        from confluent_kafka.admin import OffsetSpec

        if not items:
            return
        admin = self._admin()
        partitions = self._partitions(admin)
        earliest = self._offsets(admin, partitions, OffsetSpec.earliest())
        for item in items:
            partition = partition_of(item)
            if partition >= partitions:
                raise RunError(f"partition {partition} is gone since the plan was made", where=item.uri)
            if earliest[partition] > item.start:
                raise RunError(
                    f"records from offset {item.start} to {earliest[partition] - 1} were deleted (retention) since the plan was made; make a new plan",
                    where=item.label,
                )

    def _messages(self, item: PlanItem, batch_rows: int) -> Iterator[list[Any]]:
        """The range's messages in lists (read_committed, offsets in [start, end)), ending at `end`
        even while the topic keeps growing."""
        yield from self._consume(item, batch_rows, None)

    def _records(self, item: PlanItem, batch_rows: int, job: tuple[str, bytes] | None) -> Iterator[tuple[list[bytes], list[int], list[Any], list[int]]]:
        """The range as (values, offsets, keys, tombstones) batches, end markers and (with `job`) other
        jobs' records left out: read by the compiled loop (pipelines.native.kafka) when it can."""
        from pipelines.native.kafka import compiled_consume

        consume = compiled_consume() if self._compiled_consumer_ok() else None
        if consume is not None:
            marker_name, marker_value = MARKER
            job_name, job_value = job if job is not None else (None, None)

            def fetch(consumer: Any, wanted: int, timeout: float, end: int) -> tuple[Any, list[tuple[int, int, str]], int]:
                return consume(consumer, wanted, int(timeout * 1000), end, marker_name, marker_value, job_name, job_value)

            yield from self._consume(item, batch_rows, fetch)
            return
        split = split_messages()
        for messages in self._consume(item, batch_rows, None):
            yield split(messages, MARKER, job)

    def _compiled_consumer_ok(self) -> bool:
        """The compiled loop reads a consumer made without Python callbacks: not with msk_iam (its
        token callback) nor with PIPELINES_KAFKA_DEBUG=1 (librdkafka's log into Python)."""
        import os

        from pipelines.native.kafka import unavailable_reason

        return self.settings.auth != "msk_iam" and os.environ.get("PIPELINES_KAFKA_DEBUG") != "1" and unavailable_reason() is None

    def _consume(self, item: PlanItem, batch_rows: int, fetch: Any) -> Iterator[Any]:
        """The loop of _messages (fetch None: lists of Messages) and _records (fetch: the compiled
        consume, yielding its batches). A broker restart is ridden over: librdkafka reconnects and
        fetches on from the position, errors that pass are noted (_check_failures), and only
        STALL_SECONDS without progress fail the shard, as retryable (exit 75)."""
        from confluent_kafka import TopicPartition

        partition, start, end = partition_of(item), item.start, item.end
        assert end is not None
        if start >= end:
            return
        # No Python callback may run inside the compiled loop: its consumer has no logger, and
        # librdkafka's error events are kept off its queue (detach_error_events).
        consumer = self._consumer(f"pipelines.export.{self.settings.topic}", python_log=fetch is None, **{"enable.partition.eof": True})
        try:
            if fetch is not None:
                detach_error_events(consumer)
            consumer.assign([TopicPartition(self.settings.topic, partition, start)])
            position, last_progress, passing = start, time.monotonic(), None
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
                    batch, failures, last = _python_batch(consumer.consume(wanted, timeout), errors_in, end)
                position, passing = self._check_failures(failures, position, passing, item)
                if last >= 0:
                    position = max(position, last + 1)
                    last_progress = time.monotonic()
                    if fetch is not None or batch:
                        yield batch
                elif position < end:
                    # Transaction markers and aborted records take offsets but yield no message.
                    (now,) = consumer.position([TopicPartition(self.settings.topic, partition)])
                    if now.offset > position:
                        position, last_progress = now.offset, time.monotonic()
                    elif time.monotonic() - last_progress > STALL_SECONDS:
                        why = f"; last error: {passing}" if passing else ""
                        raise TransientRunError(
                            f"no records arrive at offset {position} (the snapshot ends at {end}) for {STALL_SECONDS:g} s{why}",
                            where=item.label,
                        )
        finally:
            consumer.close()
            release_free_memory()

    def _check_failures(self, failures: list[tuple[int, int, str]], position: int, passing: str | None, item: PlanItem) -> tuple[int, str | None]:
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

    def read(self, item: PlanItem, errors: ErrorSink, batch_rows: int) -> Iterator[tuple[Batch, int, int]]:
        source = item.label
        decode = self._avro_rows() if self.settings.serialize_format == "avro" else self._json_rows()
        key_index = self.schema().index(self.settings.key_column_name) if self.settings.key_column_name else None
        job = (JOB_ID_HEADER, self.settings.only_job_id.encode()) if self.settings.only_job_id is not None else None
        for values, offsets, keys, tombstones in self._records(item, batch_rows, job):
            # End markers and other jobs' records are left out; tombstones (no value) go to the error output.
            failed = [(offset, "the record has no value (a tombstone)", "") for offset in tombstones]
            rows, positions, bad = decode(values) if values else ([], [], [])
            failed += [(offsets[p], f"cannot read the value: {reason}", _text(values[p])) for p, reason in bad]
            for offset, reason, raw_text in sorted(failed):
                errors.add(source, offset, reason, raw_text)
            row_offsets = offsets if len(positions) == len(offsets) else [offsets[p] for p in positions]
            if key_index is not None:
                for row, p in zip(rows, positions):
                    key = keys[p]
                    row[key_index] = key.decode("utf-8", "replace") if key is not None else None
            if values or tombstones:
                batch = Batch(rows, row_offsets, source, _raw_values(offsets, values))
                yield batch, len(values) + len(tombstones), sum(map(len, values))

    def _json_rows(self) -> Callable[[list[bytes]], tuple[list[list[Any]], list[int], list[tuple[int, str]]]]:
        """JSON values -> (rows, their positions, [(position, reason)] of the bad ones)."""
        import orjson

        loads, convert = orjson.loads, records_converter(self.columns)
        fast = compiled_json_rows(self.columns)

        def decode(values: list[bytes]) -> tuple[list[list[Any]], list[int], list[tuple[int, str]]]:
            if fast is not None:
                rows = fast(values)
                if rows is not None:
                    return rows, list(range(len(rows))), []
            try:
                records = list(map(loads, values))
                if set(map(type, records)) == {dict}:
                    return convert(records)
            except orjson.JSONDecodeError:
                pass
            records, where, bad = [], [], []  # some value is not a JSON object: find which, one by one
            for position, value in enumerate(values):
                try:
                    record = loads(value)
                except orjson.JSONDecodeError as exc:
                    bad.append((position, f"invalid JSON: {exc}"))
                    continue
                if not isinstance(record, dict):
                    bad.append((position, f"expected a JSON object, got {type(record).__name__}"))
                    continue
                records.append(record)
                where.append(position)
            rows, positions, failed = convert(records)
            bad += [(where[p], reason) for p, reason in failed]
            return rows, [where[p] for p in positions], sorted(bad)

        return decode

    def _avro_rows(self) -> Callable[[list[bytes]], tuple[list[list[Any]], list[int], list[tuple[int, str]]]]:
        """Confluent wire-format Avro values, each decoded with its writer schema from the registry."""
        from pipelines.kafka.avro_wire import AvroDeserializer, AvroRowDecoder

        if self._decoder is None:
            self._decoder = AvroRowDecoder(AvroDeserializer(self.registry), self.columns, self.where)
        return self._decoder

    def after_finish(self, items: list[PlanItem]) -> None:
        """With commit_offsets: the group's offsets move to the snapshot's end (never back)."""
        if not self.settings.commit_offsets or not items:
            return
        from confluent_kafka import KafkaException, TopicPartition

        ends: dict[int, int] = {}
        for item in items:
            partition = partition_of(item)
            ends[partition] = max(ends.get(partition, 0), item.end or 0)
        consumer = self._consumer(self.settings.group_id or "")
        try:
            wanted = [TopicPartition(self.settings.topic, p) for p in sorted(ends)]
            committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=self.settings.connect_timeout_seconds)}
            offsets = [TopicPartition(self.settings.topic, p, end) for p, end in sorted(ends.items()) if end > committed.get(p, -1)]
            if offsets:
                consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise TransientRunError(f"cannot commit the group's offsets: {exc.args[0].str()}", where=self._brokers) from None
        finally:
            consumer.close()


def _raw_values(offsets: list[int], values: list[bytes]) -> Callable[[int], str]:
    """The text of the value at an offset (offsets ascending), for the error output; looked up only then."""
    from bisect import bisect_left

    def raw(offset: int) -> str:
        i = bisect_left(offsets, offset)
        return _text(values[i]) if i < len(offsets) and offsets[i] == offset else ""

    return raw


def _python_batch(messages: list[Any], errors_in: Callable[[list[Any]], list[int]], end: int) -> tuple[list[Any], list[tuple[int, int, str]], int]:
    """What the compiled consume gives, from confluent_kafka Messages: (the messages below `end`,
    their error events as (code, offset, text), the highest offset of a message, -1 for none)."""
    failing = errors_in(messages)
    batch = messages if not failing else [m for i, m in enumerate(messages) if i not in failing]
    failures = [(m.error().code(), m.offset(), m.error().str()) for m in (messages[i] for i in failing)]
    last = batch[-1].offset() if batch else -1
    if last >= end - 1:
        batch = [m for m in batch if m.offset() < end]
    return batch, failures, last


def _lasting(err: Any) -> bool:
    """An error another attempt meets again: a failed authentication or authorization."""
    from confluent_kafka import KafkaError

    return is_auth_error(err) or err.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)


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


def compiled_json_rows(columns: tuple[ColumnSettings, ...]) -> Callable[[list[bytes]], list[list[Any]] | None] | None:
    """The compiled decoder of flat JSON objects (pipelines/native/_fastrows.c), giving the rows orjson and
    records_converter give, or None for a batch with anything out of the ordinary (which the Python
    path then decodes and reports); None when there is a json column or it is not built."""
    from pipelines.engine.columns import text_converter
    from pipelines.native.compiled import compiled

    kinds = {"string": 0, "long": 1, "double": 2, "boolean": 3, "timestamp": 4}
    json_rows = compiled("pipelines.native._fastrows", "json_rows")
    if json_rows is None or any(c.type not in kinds for c in columns):
        return None

    names = tuple(c.name.encode() for c in columns)
    types = tuple(kinds[c.type] for c in columns)
    hows = tuple(text_converter(c) if c.type == "timestamp" else None for c in columns)  # the cached parser
    return lambda values: json_rows(values, names, types, hows)
