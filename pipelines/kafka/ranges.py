"""The plan items of the Kafka input: offset ranges [start, end) of a topic's partitions, each
item's uri naming its partition (`kafka://topic/N`)."""

from __future__ import annotations

from pipelines.engine.plan import PlanItem


def partition_uri(topic: str, partition: int | None = None) -> str:
    """`kafka://topic/N`, or `kafka://topic` for the whole topic: where a range's errors are reported."""
    return f"kafka://{topic}" + (f"/{partition}" if partition is not None else "")


def partition_of(item: PlanItem) -> int:
    """The partition of a plan item `kafka://topic/N`."""
    return int(item.uri.rsplit("/", 1)[1])


def partition_ranges(topic: str, starts: list[int], ends: list[int], per_shard: int) -> list[PlanItem]:
    """Offset ranges [start, end) of at most `per_shard` offsets, partition by partition; empty ones left out."""
    items = []
    for partition, (start, end) in enumerate(zip(starts, ends)):
        for lo in range(start, end, per_shard):
            items.append(PlanItem(partition_uri(topic, partition), end, None, lo, min(lo + per_shard, end)))
    return items
