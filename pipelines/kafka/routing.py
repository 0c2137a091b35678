"""Rows whose record is decided per row, embulk-output-kafka's way: `topic_column` (the topic; null:
the output's `topic`), `partition_column_name` (the partition; null: murmur2 of the key, as the Java
client's partitioner), `column_for_deletion` (true: a tombstone, the key with a null value).

Such rows take the Python produce path (the compiled loops write one topic, murmur2-partitioned,
with values): see pipelines.kafka.producer.batches_natively. The counts a shard reports are then per
topic, per partition: rows (tombstones included) and tombstones (`TopicCounts`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.engine.errors import ConfigError
from pipelines.engine.records import Schema

# The column types each option takes (as embulk-output-kafka reads them).
ROUTING_TYPES = {"topic_column": "string", "partition_column_name": "long", "column_for_deletion": "boolean"}


@dataclass(frozen=True)
class RowRouting:
    """The schema indexes of the routing columns (None: not used)."""

    topic_index: int | None
    partition_index: int | None
    deletion_index: int | None

    @classmethod
    def of(cls, settings: Any, schema: Schema, where: str) -> RowRouting | None:
        """The routing of the output's settings against `schema`, or None when no routing option is set."""
        from pipelines.plugins.column_filters import require_columns

        indexes: dict[str, int | None] = {}
        for option, kind in ROUTING_TYPES.items():
            name = getattr(settings, option)
            if name is None:
                indexes[option] = None
                continue
            require_columns(schema, [name], f"{where}.{option}")
            index = schema.index(name)
            if schema.columns[index].type != kind:
                raise ConfigError(f"column '{name}' is {schema.columns[index].type}; {option} takes a {kind} column", where=f"{where}.{option}")
            indexes[option] = index
        if all(index is None for index in indexes.values()):
            return None
        return cls(indexes["topic_column"], indexes["partition_column_name"], indexes["column_for_deletion"])

    def tombstones(self, rows: list[list[Any]]) -> list[bool]:
        """Per row: whether it is a tombstone (its deletion column is true; null is false, as in Embulk)."""
        d = self.deletion_index
        return [False] * len(rows) if d is None else [row[d] is True for row in rows]

    def target(self, row: list[Any], default_topic: str, partitions_of: Callable[[str], int | None]) -> tuple[str, int | None] | str:
        """(topic, partition or None for the partitioner) of a row, or why it cannot be written."""
        topic = default_topic
        if self.topic_index is not None and row[self.topic_index] not in (None, ""):
            topic = row[self.topic_index]
        count = partitions_of(topic)
        if count is None:
            return f"topic '{topic}' does not exist (create it first)"
        partition = row[self.partition_index] if self.partition_index is not None else None
        if partition is not None and not 0 <= partition < count:
            return f"partition {partition} is not one of topic '{topic}''s {count} partitions (0 to {count - 1})"
        return topic, partition


class TopicCounts:
    """Rows (tombstones included) and tombstones acknowledged per topic and partition."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}
        self.tombstones: dict[str, list[int]] = {}

    def add_topic(self, topic: str, partitions: int) -> None:
        if topic not in self.rows:
            self.rows[topic] = [0] * partitions
            self.tombstones[topic] = [0] * partitions

    def count(self, topic: str, partition: int, tombstone: bool) -> None:
        self.rows[topic][partition] += 1
        if tombstone:
            self.tombstones[topic][partition] += 1

    def total(self) -> int:
        return sum(sum(rows) for rows in self.rows.values())

    def report(self) -> dict[str, dict[str, list[int]]]:
        """{topic: {"rows": [per partition], "tombstones": [per partition]}}, for the shard report."""
        return {topic: {"rows": list(rows), "tombstones": list(self.tombstones[topic])} for topic, rows in self.rows.items()}

