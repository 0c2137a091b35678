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

The machinery is in pipelines/kafka/: snapshot (the plan), consumer (the consume loop), rows and
decode (records to rows), markers (end markers).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.engine.columns import ColumnSettings, schema_of
from pipelines.engine.error_output import ErrorSink
from pipelines.engine.errors import ConfigError
from pipelines.engine.plan import PlanItem
from pipelines.engine.records import Batch, Schema
from pipelines.engine.settings import option
from pipelines.kafka.connection import KafkaConnectionSettings
from pipelines.kafka.consumer import CONSUMER_DEFAULTS, FORCED, STALL_SECONDS, detach_error_events, passing_errors
from pipelines.kafka.decode import compiled_json_rows
from pipelines.kafka.markers import JOB_ID_HEADER, MARKER, job_header
from pipelines.kafka.ranges import partition_of, partition_ranges
from pipelines.kafka.snapshot import timestamp_ms
from pipelines.engine.spi import InputPlugin

# The plugin, and names kept importable from here since their code moved to pipelines/kafka/.
__all__ = [
    "CONSUMER_DEFAULTS",
    "FORCED",
    "JOB_ID_HEADER",
    "MARKER",
    "STALL_SECONDS",
    "KafkaInput",
    "KafkaInputSettings",
    "compiled_json_rows",
    "detach_error_events",
    "partition_of",
    "partition_ranges",
    "passing_errors",
    "timestamp_ms",
]


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


class KafkaInput(InputPlugin):
    """Plans a bounded snapshot of the topic and reads its offset ranges as rows."""

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

    @functools.cached_property
    def columns(self) -> tuple[ColumnSettings, ...]:
        """The declared columns, or the fields of the subject's latest schema (asked once)."""
        if self.settings.columns:
            return self.settings.columns
        from pipelines.engine.avro.schemas import columns_from_avro

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

    def plan_items(self) -> tuple[list[PlanItem], int]:
        from pipelines.kafka.snapshot import plan_snapshot

        return plan_snapshot(self.settings, self.where, self.start_ms), self.settings.records_per_shard

    def check_items(self, items: tuple[PlanItem, ...]) -> None:
        """Every range's records are all still there (see pipelines.kafka.snapshot.check_items)."""
        from pipelines.kafka.snapshot import check_items

        check_items(self.settings, items)

    def read(self, item: PlanItem, errors: ErrorSink, batch_rows: int) -> Iterator[tuple[Batch, int, int]]:
        from pipelines.kafka.rows import range_records, read_rows

        decode = self._avro_rows() if self.settings.serialize_format == "avro" else self._json_rows()
        key_index = self.schema().index(self.settings.key_column_name) if self.settings.key_column_name else None
        job = job_header(self.settings.only_job_id) if self.settings.only_job_id is not None else None
        records = range_records(self.settings, self.where, item, batch_rows, job)
        yield from read_rows(records, item.label, errors, decode, key_index)

    def _json_rows(self) -> Any:
        from pipelines.kafka.decode import json_rows

        return json_rows(self.columns)

    def _avro_rows(self) -> Any:
        """Avro values decoded with their writer schemas, one decoder for the input's life."""
        from pipelines.kafka.decode import avro_rows

        if self._decoder is None:
            self._decoder = avro_rows(self.registry, self.columns, self.where)
        return self._decoder

    def after_finish(self, items: list[PlanItem]) -> None:
        """With commit_offsets: the group's offsets move to the snapshot's end (never back)."""
        if not self.settings.commit_offsets or not items:
            return
        from pipelines.kafka.snapshot import commit_snapshot_end

        commit_snapshot_end(self.settings, self.where, items)
