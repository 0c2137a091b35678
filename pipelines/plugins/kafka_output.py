"""`out: {type: kafka, brokers: [...], topic: ..., key_column_name: user_id}`, with embulk-output-kafka's option names.

Safe by default: idempotent producer, acks=all, the Java client's murmur2 partitioning,
and one Kafka transaction per run, so a failed run leaves nothing for
`read_committed` consumers. `rows_written` counts only rows the brokers acknowledged.

embulk-output-kafka's options keep their meaning (docs/embulk/output-kafka.md): per-row topics,
partitions and tombstones (pipelines/kafka/routing.py), and `acks`, `retries`, `record_batch_size`,
`treat_producer_exception_as_error` with the values that keep exactly-once (pipelines/kafka/embulk_options.py).

The machinery is in pipelines/kafka/: producer (the producer and its delivery reports), values
(rows to keys and values), transactions (shard reports kept with committed offsets, fencing),
markers (the end markers `finish` writes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError, RunError
from pipelines.engine.records import Batch, Schema
from pipelines.engine.settings import option
from pipelines.kafka import transactions
from pipelines.kafka.connection import KafkaConnectionSettings, librdkafka_logger
from pipelines.kafka.markers import JOB_ID_HEADER, MARKER_HEADER, job_headers, write_end_markers
from pipelines.kafka.producer import FORCED, PRODUCER_DEFAULTS, TRANSACTION_TIMEOUT_MS, TopicProducer, producer_config, shard_producer
from pipelines.kafka.transactions import ABORT_TIMEOUT_SECONDS, FENCE_THREADS, MAX_RECORD_BYTES, shard_group
from pipelines.kafka.routing import RowRouting
from pipelines.kafka.values import avro_values, json_values, keyed_rows
from pipelines.engine.spi import FusedPath, JobTotals, OutputPlugin, OutputResult
from pipelines.plugins.column_filters import require_columns

# The plugin, and names kept importable from here since their code moved to pipelines/kafka/.
__all__ = [
    "ABORT_TIMEOUT_SECONDS",
    "FENCE_THREADS",
    "FORCED",
    "JOB_ID_HEADER",
    "MARKER_HEADER",
    "MAX_RECORD_BYTES",
    "PRODUCER_DEFAULTS",
    "TRANSACTION_TIMEOUT_MS",
    "AvroValueSchema",
    "KafkaOutput",
    "KafkaOutputSettings",
    "librdkafka_logger",
    "producer_config",
    "shard_group",
]


@dataclass(frozen=True)
class KafkaOutputSettings(KafkaConnectionSettings):
    brokers: tuple[str, ...]
    topic: str
    key_column_name: str | None = None
    serialize_format: Literal["json", "avro", "avro_with_schema_registry"] = "json"  # the last: Embulk's name of avro
    ignore_columns: tuple[str, ...] = ()
    # embulk-output-kafka's per-row records (pipelines.kafka.routing): a string, a long, a boolean column.
    topic_column: str | None = None
    partition_column_name: str | None = None
    column_for_deletion: str | None = None
    # embulk-output-kafka's producer options, where they keep exactly-once (pipelines.kafka.embulk_options).
    acks: str | None = None
    retries: int | None = None
    record_batch_size: int | None = None
    treat_producer_exception_as_error: bool = True
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "lz4"
    transactional: bool = True
    connect_timeout_seconds: float = 15.0
    other_producer_configs: Mapping[str, str] = option(factory=dict)
    # serialize_format: avro (Confluent wire format: magic 0, schema id, Avro binary); see AvroValueSchema.
    schema_registry_url: str | None = None
    schema_registry_user_info: str | None = option(None, secret=True)  # "user:password", sent as basic auth
    value_subject: str | None = None  # default: the value_subject_name_strategy's, "<topic>-value"
    subject_name: str | None = None  # embulk-output-kafka's name of value_subject
    value_subject_name_strategy: str | None = None  # TopicNameStrategy, RecordNameStrategy, TopicRecordNameStrategy
    avsc: Any = None  # the value schema inline: a mapping, or its JSON text
    avsc_file: str | None = None  # the value schema in a file
    auto_register: bool = True

    def __post_init__(self) -> None:
        if not self.brokers or not all(self.brokers):
            raise ValueError("brokers: give at least one host:port")
        self._embulk_options()
        avro_options = (
            "schema_registry_url", "schema_registry_user_info", "value_subject", "avsc", "avsc_file", "value_subject_name_strategy",
        )
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

    def _embulk_options(self) -> None:
        """embulk-output-kafka's names folded into ours, and its values that would break exactly-once refused."""
        from pipelines.kafka import embulk_options as embulk

        if self.serialize_format == "avro_with_schema_registry":
            object.__setattr__(self, "serialize_format", "avro")
        if self.subject_name is not None:
            if self.value_subject is not None:
                raise ValueError("give subject_name (Embulk's name) or value_subject, not both")
            object.__setattr__(self, "value_subject", self.subject_name)
            object.__setattr__(self, "subject_name", None)
        object.__setattr__(self, "value_subject_name_strategy", embulk.strategy_name(self.value_subject_name_strategy))
        embulk.check_acks(self.acks)
        embulk.check_retries(self.retries, self.other_producer_configs)
        embulk.check_record_batch_size(self.record_batch_size, self.other_producer_configs)
        embulk.check_treat_producer_exception_as_error(self.treat_producer_exception_as_error)
        if self.column_for_deletion is not None and self.key_column_name is None:
            raise ValueError("column_for_deletion needs key_column_name: a tombstone is a key with a null value")


class KafkaOutput(OutputPlugin):
    """Writes rows as keyed records of the topic, one transaction per shard; `finish` writes end markers."""

    Settings = KafkaOutputSettings
    serializer: Any = None  # with serialize_format avro: the AvroSerializer, set when the output opens
    avro_records: Any = None  # with Avro values and the compiled produce loop: pipelines.native.avro_values.AvroRecords, or None
    out: TopicProducer | None = None  # the open shard's producer

    @property
    def batch_producer(self) -> Any:
        """The compiled batch loop (pipelines.native.kafka) of the open shard, if it is used."""
        return self.out.batch_producer if self.out is not None else None

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
        self.routing = RowRouting.of(s, schema, self.where)
        if s.serialize_format == "avro":
            self.avro = AvroValueSchema(s, self.where, schema, self.value_indexes)

    def open(self, job_id: str, shard: int | None) -> None:
        """Connects, checks the topic and begins the shard's transaction (fencing any earlier attempt)."""
        self.job_id, self.shard_index = job_id, shard
        if self.settings.serialize_format == "avro":
            self.serializer, self.to_records = self.avro.resolve()  # before connecting: a schema problem costs nothing
        self.out = shard_producer(
            self.settings, self.where, job_id, shard, job_headers(job_id), self.key_index, self.value_indexes, self.value_names,
            routed=self.routing is not None,
        )
        if self.routing is not None:
            self.out.count_per_topic()
        self.avro_records = None
        if self.serializer is not None and self.out.batch_producer is not None:
            from pipelines.native.avro_values import AvroRecords

            avro = self.serializer
            self.avro_records = AvroRecords.choose(avro.avro_schema, avro.prefix, self.key_index, self.schema, self.value_indexes)
        if self.settings.transactional:
            transactions.begin(self.out.producer, self.settings)

    def fused_path(self, job: Any) -> FusedPath | None:
        """The compiled CSV-to-Kafka path (pipelines.native.fused) for the open shard, or None."""
        from pipelines.native.fused import FusedImport

        return FusedImport.choose(job, self)

    def write(self, batch: Batch, errors: ErrorSink) -> None:
        """The batch's keys checked and its values encoded first (JSON, or Avro in the wire format), then produced."""
        assert self.out is not None
        if self.routing is not None:
            self._write_routed(batch, errors)
            return
        if self.out.batch_producer is not None and self.serializer is not None:
            self._write_avro_records(batch, errors)
            return
        if self.out.batch_producer is not None:
            for position in self.out.produce_rows(batch.rows):
                self._empty_key(batch, errors, batch.line_nos[position])
            self.out.served()
            return
        keys, values = self._python_values(batch, batch.rows, batch.line_nos, errors)
        self.out.produce_values(values, keys)

    def _python_values(
        self, batch: Batch, rows: list[list[Any]], line_nos: list[int], errors: ErrorSink
    ) -> tuple[list[str] | None, list[bytes | None]]:
        """The keys and values of rows (of `batch`) on the Python path: a row with an empty key is
        left out, and one whose Avro value does not fit has None; both go to the error output."""
        rows, line_nos, keys, empty = keyed_rows(rows, line_nos, self.key_index)
        for line in empty:
            self._empty_key(batch, errors, line)
        return keys, self._values(batch, rows, line_nos, errors)

    def _values(self, batch: Batch, rows: list[list[Any]], line_nos: list[int], errors: ErrorSink) -> list[bytes | None]:
        """The rows' values on the Python path: JSON, or Avro (None for a row that does not fit, sent to the error output)."""
        if self.serializer is None:
            return json_values(rows, self.value_names, self.value_indexes, self.whole_row)
        values, bad = avro_values(rows, self.to_records, self.serializer)
        for position, reason in bad:
            line = line_nos[position]
            errors.add(batch.source, line, reason, batch.raw_line(line))
        return values

    def _write_routed(self, batch: Batch, errors: ErrorSink) -> None:
        """Rows with a topic, a partition or a tombstone of their own (pipelines.kafka.routing), on the
        Python path: a tombstone has no value; a row whose topic does not exist or whose partition is
        not the topic's goes to the error output."""
        assert self.out is not None and self.routing is not None
        rows, line_nos, keys, empty = keyed_rows(batch.rows, batch.line_nos, self.key_index)
        for line in empty:
            self._empty_key(batch, errors, line)
        tombstones = self.routing.tombstones(rows)
        targets: dict[int, tuple[str, int | None]] = {}
        for r, row in enumerate(rows):
            target = self.routing.target(row, self.settings.topic, self.out.partitions_of)
            if isinstance(target, str):
                errors.add(batch.source, line_nos[r], target, batch.raw_line(line_nos[r]))
            else:
                targets[r] = target
        values = self._routed_values(batch, rows, line_nos, [r for r in targets if not tombstones[r]], targets, errors)
        records = [
            (*target, keys[r] if keys is not None else None, values.get(r))
            for r, target in targets.items()
            if tombstones[r] or values[r] is not None  # None: an Avro value that does not fit, in the error output
        ]
        self.out.produce_routed(records)

    def _routed_values(
        self, batch: Batch, rows: list[list[Any]], line_nos: list[int], live: list[int],
        targets: dict[int, tuple[str, int | None]], errors: ErrorSink,
    ) -> dict[int, bytes | None]:
        """The values of rows `live` (positions in `rows`): Avro ones with each topic's serializer
        when the subject depends on the topic (topic_column under Topic[Record]NameStrategy)."""
        if self.serializer is None or self.routing is None or self.routing.topic_index is None or not self.avro.per_topic:
            return dict(zip(live, self._values(batch, [rows[r] for r in live], [line_nos[r] for r in live], errors)))
        by_topic: dict[str, list[int]] = {}
        for r in live:
            by_topic.setdefault(targets[r][0], []).append(r)
        values: dict[int, bytes | None] = {}
        for topic, group in by_topic.items():
            serializer, to_records = self.avro.resolve(topic)
            encoded, bad = avro_values([rows[r] for r in group], to_records, serializer)
            for position, reason in bad:
                line = line_nos[group[position]]
                errors.add(batch.source, line, reason, batch.raw_line(line))
            values.update(zip(group, encoded))
        return values

    def _write_avro_records(self, batch: Batch, errors: ErrorSink) -> None:
        """Avro values through the compiled produce loop: the runs of rows the compiled encoder
        (pipelines.native.avro_values) writes, and each row it leaves (or every row, without it)
        encoded on the Python path, in their order."""
        from pipelines.native.encoded import EncodedRecords

        rows, start = batch.rows, 0
        while start < len(rows):
            stop, count, data = self.avro_records(rows, start) if self.avro_records is not None else (start, 0, b"")
            if count:
                self.write_encoded(EncodedRecords(data, count))
            end = len(rows) if self.avro_records is None else stop + 1
            if stop < len(rows):
                self._write_avro_python(batch, stop, end, errors)
            start = end

    def _write_avro_python(self, batch: Batch, start: int, end: int, errors: ErrorSink) -> None:
        """Rows start..end of the batch as Avro records made on the Python path, produced by the compiled loop."""
        from pipelines.native.avro_values import record_bytes
        from pipelines.native.encoded import EncodedRecords

        keys, values = self._python_values(batch, batch.rows[start:end], batch.line_nos[start:end], errors)
        assert keys is not None
        records = [record_bytes(key, value) for key, value in zip(keys, values) if value is not None]
        if records:
            self.write_encoded(EncodedRecords(b"".join(records), len(records)))

    def write_encoded(self, encoded: Any) -> None:
        """Produces records the fused path (pipelines.native.fused) already encoded: an object with
        `.data` (the records) and `.count`; only with the compiled batch loop."""
        assert self.out is not None
        self.out.produce_encoded(encoded)

    def _empty_key(self, batch: Batch, errors: ErrorSink, line: int) -> None:
        errors.add(batch.source, line, f"key column '{self.settings.key_column_name}' is empty", batch.raw_line(line))

    def flush(self) -> OutputResult:
        """Waits until the brokers acknowledged every row (or the delivery timeout failed it)."""
        assert self.out is not None
        return self.out.flush()

    def commit(self, record: str | None = None) -> None:
        """Commits the transaction; `record` (the shard report) is committed atomically with the rows."""
        if not self.settings.transactional:
            return
        assert self.out is not None
        transactions.commit(self.out.producer, self.settings, shard_group(self.job_id, self.shard_index), record)

    @staticmethod
    def shard_group(job_id: str, shard: int | None) -> str:
        return shard_group(job_id, shard)

    def committed_record(self, job_id: str, shard: int | None) -> str | None:
        """The record a committed transaction of this shard (None: of the finish step) stored, if any."""
        return transactions.committed_record(self.settings, job_id, shard)

    def abort(self) -> int:
        return transactions.abort(self.out, self.settings)

    def close(self) -> None:
        self.out = None

    def abort_job(self, job_id: str, shard_count: int) -> dict[str, Any]:
        """Fences every transactional id of the job (see pipelines.kafka.transactions.abort_job)."""
        return transactions.abort_job(self.settings, job_id, shard_count)

    def finish(self, totals: JobTotals) -> dict[str, Any]:
        """Sends one end marker to every partition, once: a second finish of the same job sends none."""
        return write_end_markers(self.settings, self.where, totals)


class AvroValueSchema:
    """The Avro schema of the output's values: checked against the value columns when the output
    binds (with avsc/avsc_file: against that schema), resolved with the schema registry once, when
    it first opens."""

    def __init__(self, settings: KafkaOutputSettings, where: str, schema: Schema, value_indexes: list[int]) -> None:
        from pipelines.engine.avro.schemas import avro_from_columns, load_avsc
        from pipelines.engine.avro.writing import record_converter

        self.settings, self.where, self.schema, self.value_indexes = settings, where, schema, value_indexes
        self.value_schema = Schema(tuple(schema.columns[i] for i in value_indexes))
        avro_from_columns(self.value_schema, where=f"{where}.serialize_format")  # the names must be Avro names
        self.avsc = load_avsc(settings.avsc, settings.avsc_file, where)
        self.named = self.avsc or avro_from_columns(self.value_schema)  # the record whose name RecordNameStrategy takes
        self.subject = self.subject_of(settings.topic)
        # Whether rows of other topics (topic_column) have subjects of their own (Topic[Record]NameStrategy).
        self.per_topic = settings.value_subject is None and settings.value_subject_name_strategy != "RecordNameStrategy"
        if self.avsc is not None:
            which = "avsc_file" if settings.avsc_file is not None else "avsc"
            record_converter(schema, self.avsc, value_indexes, where=f"{where}.{which}")
        self.resolved: dict[str, tuple[Any, Any]] = {}

    def subject_of(self, topic: str) -> str:
        """The subject of the values written to `topic`: value_subject (subject_name), else the strategy's."""
        from pipelines.kafka.embulk_options import value_subject

        s = self.settings
        return s.value_subject or value_subject(s.value_subject_name_strategy, topic, self.named)

    def resolve(self, topic: str | None = None) -> tuple[Any, Any]:
        """(serializer, record converter) of the value schema of the output's topic (or of `topic`: its
        subject may differ), see schema_registry.value_schema: the avsc given, the subject's latest,
        or one made from the value columns, every field nullable. Asked of the registry once a subject."""
        subject = self.subject if topic is None else self.subject_of(topic)
        if subject in self.resolved:
            return self.resolved[subject]
        from pipelines.kafka.avro_wire import AvroSerializer
        from pipelines.kafka.schema_registry import SchemaRegistry, value_schema
        from pipelines.engine.avro.schemas import avro_from_columns
        from pipelines.engine.avro.writing import record_converter

        s = self.settings
        try:
            registry = SchemaRegistry(s.schema_registry_url or "", s.schema_registry_user_info)
        except ValueError as exc:
            raise ConfigError(str(exc), where=f"{self.where}.schema_registry_url") from None
        schema_id, avro, origin = value_schema(
            registry, subject, self.avsc, s.auto_register, lambda: avro_from_columns(self.value_schema, where=self.where)
        )
        try:
            to_records = record_converter(self.schema, avro, self.value_indexes, where=f"{self.where}: {origin}")
        except ConfigError as exc:
            raise RunError(exc.message, where=exc.where) from None
        self.resolved[subject] = (AvroSerializer(avro, schema_id), to_records)
        return self.resolved[subject]
