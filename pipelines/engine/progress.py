"""Progress of a run: a live line on a terminal, JSON log lines otherwise (both on stderr)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class RunStats:
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    bytes_read: int = 0
    objects: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def rows_per_second(self, rows: int) -> float:
        seconds = self.seconds
        return rows / seconds if seconds > 0 else 0.0


def log_event(event: str, stream: IO[str] | None = None, **fields: Any) -> None:
    """One JSON log line on stderr."""
    import orjson

    record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, **fields}
    out = stream or sys.stderr
    out.write(orjson.dumps(record).decode() + "\n")
    out.flush()


class Progress:
    def __init__(self, job_id: str, stream: IO[str] | None = None, tty: bool | None = None, log_every: float = 10.0) -> None:
        self.job_id = job_id
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = 0.25 if self.tty else log_every
        self.last = time.monotonic()
        self.shown = False

    def update(self, stats: RunStats) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        rate = stats.rows_per_second(stats.rows_read)
        if self.tty:
            line = (
                f"\r{stats.rows_read:>14,} rows read  {rate:>12,.0f} rows/s  "
                f"{stats.bytes_read / 1e6:>10,.1f} MB  {stats.rows_skipped:,} skipped  {stats.seconds:6.1f} s"
            )
            self.stream.write(line)
            self.stream.flush()
            self.shown = True
        else:
            log_event(
                "progress",
                self.stream,
                job_id=self.job_id,
                rows_read=stats.rows_read,
                bytes_read=stats.bytes_read,
                rows_skipped=stats.rows_skipped,
                rows_per_second=round(rate),
            )

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
