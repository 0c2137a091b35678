"""Plans: the work of a job split into shards, so one config runs as N processes or N Fargate tasks.

A plan lists every object with its ETag and size; large uncompressed CSV/JSONL objects
are split into byte ranges (each range read from the first line that starts in it to
the end of the last line that starts in it), compressed objects go whole, and small
objects are packed together. "Shard 7 of 64" means the same everywhere.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.errors import ConfigError, RunError
from pipelines.records import Source

DEFAULT_SHARD_BYTES = 128 << 20
PLAN_VERSION = 1


@dataclass(frozen=True)
class PlanItem:
    """An object, or the byte range [start, end) of one."""

    uri: str
    size: int
    etag: str | None
    start: int = 0
    end: int | None = None  # None: to the end of the object

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None

    @property
    def source(self) -> Source:
        return Source(self.uri, self.size, self.etag)

    @property
    def label(self) -> str:
        """How errors name it: the URI, with the byte range when it is a split piece."""
        return self.uri if self.whole else f"{self.uri}#bytes={self.start}-{self.end if self.end is not None else self.size}"

    @property
    def length(self) -> int:
        return (self.end if self.end is not None else self.size) - self.start


@dataclass(frozen=True)
class ShardSpec:
    index: int
    items: tuple[PlanItem, ...]

    @property
    def bytes(self) -> int:
        return sum(item.length for item in self.items)


@dataclass(frozen=True)
class Plan:
    job_id: str
    config: str
    created: str
    shard_bytes: int
    shards: tuple[ShardSpec, ...]
    version: int = PLAN_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str) -> Plan:
        try:
            data = json.loads(text)
            if data.get("version") != PLAN_VERSION:
                raise ValueError(f"plan version {data.get('version')!r}, expected {PLAN_VERSION}")
            shards = tuple(
                ShardSpec(s["index"], tuple(PlanItem(**item) for item in s["items"])) for s in data["shards"]
            )
            return cls(data["job_id"], data["config"], data["created"], data["shard_bytes"], shards)
        except (ValueError, KeyError, TypeError) as exc:
            raise RunError(f"not a plan this version can read: {exc}", where=where) from None

    def shard(self, index: int) -> ShardSpec:
        if not 0 <= index < len(self.shards):
            raise ConfigError(f"shard {index} is not in the plan (it has shards 0 to {len(self.shards) - 1})")
        return self.shards[index]


def split_ranges(size: int, shard_bytes: int) -> list[tuple[int, int | None]]:
    """[start, end) ranges of at most shard_bytes covering [0, size); the last ends at None."""
    starts = list(range(0, size, shard_bytes))
    return [(s, s + shard_bytes if s + shard_bytes < size else None) for s in starts]


def pack(items: list[PlanItem], shard_bytes: int) -> tuple[ShardSpec, ...]:
    """Greedy packing in listing order: a shard takes items while they fit in shard_bytes."""
    shards: list[list[PlanItem]] = []
    used = 0
    for item in items:
        if not shards or used + item.length > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(item)
        used += item.length
    return tuple(ShardSpec(i, tuple(group)) for i, group in enumerate(shards))


def make_plan(job: Any, job_id: str, shard_bytes: int = DEFAULT_SHARD_BYTES) -> Plan:
    """Lists the job's sources (failing on missing or empty ones) and splits them into shards."""
    if shard_bytes < 1:
        raise ConfigError(f"shard size must be at least 1 byte, got {shard_bytes}")
    items: list[PlanItem] = []
    for source in job.input.list_sources():
        if source.size > shard_bytes and job.parser.splittable and not is_compressed(job, source):
            items += [PlanItem(source.uri, source.size, source.etag, s, e) for s, e in split_ranges(source.size, shard_bytes)]
        else:
            items.append(PlanItem(source.uri, source.size, source.etag))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Plan(job_id, str(job.path), created, shard_bytes, pack(items, shard_bytes))


def is_compressed(job: Any, source: Source) -> bool:
    """Configured decoders decide; without them, the object's first bytes do."""
    from pipelines.plugins.decoders import GZIP_MAGIC, ZSTD_MAGIC, NoDecoder

    if job.decoders is not None:
        return any(not isinstance(d, NoDecoder) for d in job.decoders)
    stream = job.input.open(source)
    try:
        head = stream.read(4)
    finally:
        stream.close()
    return head.startswith(GZIP_MAGIC) or head.startswith(ZSTD_MAGIC)
