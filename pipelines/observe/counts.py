"""The counts a shard or a job reports, read from any of the engine's reports (ShardReport,
JobSummary, RunStats) or from a plain mapping (the workflow's task payloads, the jobs table)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = ("rows_read", "rows_written", "rows_skipped", "bytes_read", "seconds")


@dataclass(frozen=True)
class Counts:
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    rate: float | None = None  # the source's own rows/s (a JobSummary's), so both show the same figure

    @classmethod
    def of(cls, source: Any) -> Counts:
        """The counts in `source`: attributes of a report, or keys of a mapping; missing ones are 0."""
        get = source.get if isinstance(source, Mapping) else lambda name: getattr(source, name, None)
        values = {name: get(name) for name in FIELDS}
        rate = get("rows_per_second")
        return cls(**{name: value or 0 for name, value in values.items()}, rate=rate)

    @property
    def rows_per_second(self) -> float:
        if self.rate is not None:
            return self.rate
        return round(self.rows_written / self.seconds, 1) if self.seconds > 0 else 0.0  # as the summary counts it
