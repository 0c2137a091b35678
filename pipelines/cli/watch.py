"""How `pipelines jobs watch` shows a job's answers (GET /jobs/{id}) as they come.

- :class:`ProgressLine`: on a terminal, one line redrawn in place (status, a bar of the shards
  done, rows, rows/s, time left), then the end.
- :class:`JsonLines`: for a program, one JSON object a line, printed when something changed.

Both read the answer's ``progress`` (pipelines.aws.progress.JobProgress.to_api), None until the
job is planned. :func:`follow` asks for the job until it ends, riding out a few answers that may
pass (a throttle, a 5xx, a dropped connection) once the job was seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import IO, Any

BAR_WIDTH = 24
ENDED = {"SUCCEEDED": 0, "FAILED": 1}  # a job's end status -> watch's exit code
MAX_MISSES = 5  # answers missed in a row (throttled, 5xx, none) before watch gives up
MAX_WAIT_SECONDS = 30.0
CHANGES = ("status", "shards_done", "shards_total", "rows_read", "rows_written", "rows_skipped", "bytes_read")


def follow(
    fetch: Callable[[], dict[str, Any]], view: Any, interval: float, warn: Callable[[str], None], sleep: Callable[[float], None] = time.sleep
) -> int:
    """Shows the job's answers (`fetch()`) on `view` until it ends; the exit code of its end status.

    Once the job was seen, an ApiError that may pass (transient) is asked again after a longer wait
    each time, MAX_MISSES in a row at most; any other, or the first request's, is raised."""
    from pipelines.cli.api_client import ApiError

    seen, misses = False, 0
    while True:
        try:
            answer = fetch()
        except ApiError as exc:
            misses += 1
            if not (seen and exc.transient) or misses >= MAX_MISSES:
                raise
            warn(f"warning: {exc}; asking again ({misses} of {MAX_MISSES - 1})")
            sleep(min(interval * 2**misses, MAX_WAIT_SECONDS))
            continue
        seen, misses = True, 0
        view.show(answer)
        if answer.get("status") in ENDED:
            view.end(answer)
            return ENDED[answer["status"]]
        sleep(interval)


def snapshot(answer: dict[str, Any]) -> dict[str, Any]:
    """One flat record of a job's answer: its status and progress; at the end, the final counts and
    the error if it failed."""
    progress = answer.get("progress") or {}
    record = {"job_id": answer.get("job_id"), "status": answer.get("status")}
    for key in (*CHANGES[1:], "rows_per_second", "eta_seconds", "elapsed_seconds"):
        record[key] = progress.get(key)
    if answer.get("status") == "SUCCEEDED":
        record.update({key: answer.get(key) for key in ("rows_read", "rows_written", "rows_skipped")})
    if answer.get("error"):
        record["error"] = answer["error"]
    return record


class JsonLines:
    """One JSON line on ``stream`` whenever the status or a count changed, and always the last one."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.last: tuple[Any, ...] | None = None

    def show(self, answer: dict[str, Any]) -> None:
        record = snapshot(answer)
        key = tuple(record.get(k) for k in CHANGES)
        if key != self.last:
            self.last = key
            self._write(record)

    def end(self, answer: dict[str, Any]) -> None:
        """Nothing more: show() printed the end status already."""

    def _write(self, record: dict[str, Any]) -> None:
        stamped = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        self.stream.write(json.dumps(stamped) + "\n")
        self.stream.flush()


class ProgressLine:
    """The job's line on a terminal, redrawn at each answer; a last line says how it ended."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.width = 0

    def show(self, answer: dict[str, Any]) -> None:
        line = progress_line(snapshot(answer))
        padding = " " * max(self.width - len(line), 0)
        self.width = len(line)
        self.stream.write(f"\r{line}{padding}")
        self.stream.flush()

    def end(self, answer: dict[str, Any]) -> None:
        record = snapshot(answer)
        self.stream.write("\n" + end_line(record) + "\n")
        self.stream.flush()


def progress_line(record: dict[str, Any]) -> str:
    """``job-1 RUNNING [##########--------------] 2/5 shards  40,000 rows  8,000 rows/s  ETA 0:07``."""
    head = f"{record['job_id']} {record['status']}"
    done, total = record.get("shards_done"), record.get("shards_total")
    if total is None and done is None:
        return f"{head}  (not planned yet)"
    done = done or 0
    filled = round(BAR_WIDTH * done / total) if total else 0
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    parts = [f"{head} [{bar}] {done}/{total if total is not None else '?'} shards", f"{record.get('rows_written') or 0:,} rows"]
    if record.get("rows_per_second") is not None:
        parts.append(f"{record['rows_per_second']:,.0f} rows/s")
    if record.get("eta_seconds") is not None and record["status"] == "RUNNING":
        parts.append(f"ETA {duration(record['eta_seconds'])}")
    return "  ".join(parts)


def end_line(record: dict[str, Any]) -> str:
    """How the job ended, in one line."""
    took = f" in {duration(record['elapsed_seconds'])}" if record.get("elapsed_seconds") is not None else ""
    if record["status"] == "SUCCEEDED":
        skipped = record.get("rows_skipped") or 0
        return f"{record['job_id']} SUCCEEDED: {record.get('rows_written') or 0:,} rows written, {skipped:,} skipped{took}"
    error = record.get("error") or {}
    return f"{record['job_id']} FAILED{took}: {error.get('Error', 'JobFailed')}: {error.get('Cause', '')}".rstrip(": ")


def duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
