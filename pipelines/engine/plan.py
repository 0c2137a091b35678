"""Plans: the work of a job split into shards, so one config runs as N processes or N Fargate tasks.

A plan lists every object with its ETag and size; large uncompressed CSV/JSONL objects
are split into byte ranges (each range read from the first line that starts in it to
the end of the last line that starts in it), compressed objects go whole, and small
objects are packed together. "Shard 7 of 64" means the same everywhere.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pipelines.engine.errors import ConfigError, RunError
from pipelines.engine.records import Source

DEFAULT_SHARD_BYTES = 128 << 20

# A shard's time limit. The engine stops a shard run past it (exit 75, retried), and the workflow's
# RunShard state times out a task this much later plus TASK_START_SECONDS (shards.json carries it):
# the shard's bytes at a rate far below what a task reads (a 1-vCPU task reads several MB/s of gzip
# here), within [SHARD_MIN_SECONDS, SHARD_MAX_SECONDS]. SHARD_MAX_SECONDS is also the Kafka output's
# transaction.timeout.ms: a shard's transaction spans its run, so a longer run could not commit.
SHARD_SLOWEST_BYTES_PER_SECOND = 256 << 10
SHARD_MIN_SECONDS = 120
SHARD_MAX_SECONDS = 900
TASK_START_SECONDS = 300  # pulling the image and starting a Fargate task, with room to spare
TIME_LIMIT_ENV = "PIPELINES_SHARD_TIME_LIMIT"  # seconds: one limit for every shard (tests, operators)
# Each item costs a request (a GET, a seek) whatever its size: a shard takes at most this many, and
# its time limit counts SHARD_SECONDS_PER_ITEM for each.
MAX_ITEMS_PER_SHARD = 2_000
SHARD_SECONDS_PER_ITEM = 0.05
# What a Kafka record is taken to weigh when a plan's size is compared with byte thresholds
# (the workflow's small-job limit): offsets are counted, record sizes are unknown at plan time.
RECORD_BYTES_ESTIMATE = 256
PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)  # slots: a plan of a million objects holds a million of them
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
        """How errors name it: the URI, with the byte range when it is a split piece (offsets for Kafka)."""
        if self.uri.startswith("kafka://"):
            return f"{self.uri}#offsets={self.start}-{self.end}"
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

    @property
    def estimated_bytes(self) -> int:
        """The bytes the shard reads: exact for objects, estimated for Kafka offset ranges."""
        return sum(item.length * (RECORD_BYTES_ESTIMATE if item.uri.startswith("kafka://") else 1) for item in self.items)


@dataclass(frozen=True)
class Plan:
    job_id: str
    config: str
    created: str
    shard_bytes: int  # the shard size the items were packed by: bytes (records for Kafka inputs)
    shards: tuple[ShardSpec, ...]
    version: int = PLAN_VERSION

    def to_json(self) -> str:
        """The plan as compact JSON, straight from the dataclasses (no dict copy of every item)."""
        import orjson

        return orjson.dumps(self).decode()

    @classmethod
    def from_json(cls, text: str, where: str) -> Plan:
        import orjson

        try:
            data = orjson.loads(text)
            if data.get("version") != PLAN_VERSION:
                raise ValueError(f"plan version {data.get('version')!r}, expected {PLAN_VERSION}")
            shards = tuple(
                ShardSpec(s["index"], tuple(PlanItem(**item) for item in s["items"])) for s in data["shards"]
            )
            return cls(data["job_id"], data["config"], data["created"], data["shard_bytes"], shards)
        except (ValueError, KeyError, TypeError) as exc:
            raise RunError(f"not a plan this version can read: {exc}", where=where) from None

    @property
    def estimated_bytes(self) -> int:
        """The bytes the plan reads: exact for objects, estimated for Kafka offset ranges."""
        return sum(shard.estimated_bytes for shard in self.shards)

    def shard(self, index: int) -> ShardSpec:
        if not 0 <= index < len(self.shards):
            raise ConfigError(f"shard {index} is not in the plan (it has shards 0 to {len(self.shards) - 1})")
        return self.shards[index]


def shard_time_limit(shard: ShardSpec) -> int:
    """How long the engine lets the shard run (see SHARD_SLOWEST_BYTES_PER_SECOND); $PIPELINES_SHARD_TIME_LIMIT overrides."""
    import os

    configured = os.environ.get(TIME_LIMIT_ENV, "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ConfigError(f"{TIME_LIMIT_ENV} must be a whole number of seconds >= 1, got {configured!r}")
        return int(configured)
    seconds = -(-shard.estimated_bytes // SHARD_SLOWEST_BYTES_PER_SECOND) + int(len(shard.items) * SHARD_SECONDS_PER_ITEM)
    return max(SHARD_MIN_SECONDS, min(SHARD_MAX_SECONDS, seconds))


def shard_task_timeout(shard: ShardSpec) -> int:
    """The RunShard state's timeout for the shard: its time limit, and the time a task takes to start."""
    return shard_time_limit(shard) + TASK_START_SECONDS


def split_ranges(size: int, shard_bytes: int, first_end: int = 0) -> list[tuple[int, int | None]]:
    """[start, end) ranges of at most shard_bytes covering [0, size); the last ends at None.

    The first range ends no sooner than `first_end` (then it may be longer than shard_bytes):
    it must hold every header line, since only the range at 0 skips them.
    """
    starts = [0, *range(max(shard_bytes, first_end), size, shard_bytes)]
    return list(zip(starts, [*starts[1:], None]))


def pack(items: list[PlanItem], shard_bytes: int) -> tuple[ShardSpec, ...]:
    """Greedy packing in listing order: a shard takes items while they fit in shard_bytes, and at
    most MAX_ITEMS_PER_SHARD of them (a million tiny objects are not one shard of a million GETs)."""
    shards: list[list[PlanItem]] = []
    used = 0
    for item in items:
        if not shards or used + item.length > shard_bytes or len(shards[-1]) >= MAX_ITEMS_PER_SHARD:
            shards.append([])
            used = 0
        shards[-1].append(item)
        used += item.length
    return tuple(ShardSpec(i, tuple(group)) for i, group in enumerate(shards))


def make_plan(job: Any, job_id: str, shard_bytes: int = DEFAULT_SHARD_BYTES) -> Plan:
    """Lists the job's sources (failing on missing or empty ones) and splits them into shards."""
    from pipelines.engine.decoding import is_compressed

    if shard_bytes < 1:
        raise ConfigError(f"shard size must be at least 1 byte, got {shard_bytes}")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if job.parser is None:  # a record input (Kafka) fixes its own items (offset ranges) and shard size
        items, shard_size = job.input.plan_items()
        return Plan(job_id, str(job.path), created, shard_size, pack(items, shard_size))
    items = []
    mode = job.parser.split_mode
    for source in job.input.list_sources():
        if source.size > shard_bytes and mode is not None and not is_compressed(job, source):
            ranges = split_ranges(source.size, shard_bytes, header_end(job, source))
            if mode != "lines":  # CSV with quotes: a line break may sit inside a quoted value
                ranges = align_to_records(job, source, ranges, mode.encode())
            items += [PlanItem(source.uri, source.size, source.etag, s, e) for s, e in ranges]
        else:
            items.append(PlanItem(source.uri, source.size, source.etag))
    return Plan(job_id, str(job.path), created, shard_bytes, pack(items, shard_bytes))


def align_to_records(job: Any, source: Source, ranges: list[tuple[int, int | None]], quote: bytes) -> list[tuple[int, int | None]]:
    """Moves each range start forward to the first record start at or after it: just after a line break
    outside quotes (an even count of quote characters before it, RFC 4180 style). One pass over the object."""
    targets = [start for start, _ in ranges[1:]]
    starts = [0]
    stream = job.input.open(source)
    try:
        offset, odd = 0, 0  # offset of block[0] in the object; parity of quotes before block[at]
        while targets:
            block = stream.read(1 << 20)
            if not block:
                break
            at = 0
            while targets and at < len(block):
                want = max(targets[0] - 1 - offset, at)  # the line break ending the record must be at target - 1 or later
                if want >= len(block):
                    break
                odd ^= block.count(quote, at, want) & 1
                at = want
                cut = block.find(b"\n", at)
                if cut < 0:
                    break
                odd ^= block.count(quote, at, cut) & 1
                at = cut + 1
                if not odd:
                    boundary = offset + at
                    if boundary < source.size:
                        starts.append(boundary)
                    targets = [t for t in targets if t > boundary]
            odd ^= block.count(quote, at) & 1
            offset += len(block)
    finally:
        stream.close()
    return list(zip(starts, [*starts[1:], None]))


def header_end(job: Any, source: Source) -> int:
    """1 + the offset where the last header line (the parser's header_lines) starts, or 0 without header lines.

    A split range reads the lines that start in it and only the range at 0 skips header lines,
    so that range must reach past the start of the last one (with skip_header_lines: 1 it always does).
    """
    lines = job.parser.header_lines()
    if lines < 2:
        return 0
    stream = job.input.open(source)
    try:
        offset, newlines = 0, 0
        while True:
            block = stream.read(1 << 16)
            if not block:
                return source.size  # header lines only: the object goes whole
            start = 0
            while (cut := block.find(b"\n", start)) >= 0:
                newlines += 1
                if newlines == lines - 1:
                    return offset + cut + 2
                start = cut + 1
            offset += len(block)
    finally:
        stream.close()
