"""Running a plan: one shard per process, one transaction per shard, reports, resume, and finish.

    plan -> run shard 0..N-1 (anywhere, any order, retried as often as needed) -> finish

A shard commits its rows and its report together (for Kafka, the report rides in the
transaction as offset metadata), so a shard is done exactly when its report exists, and
a rerun skips it. `finish` sums the reports and completes the job at the output (end
markers) once every shard has one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.engine import storage
from pipelines.engine.config import Job
from pipelines.engine.error_output import ErrorSink, error_file_uri
from pipelines.engine.errors import EXIT_RETRYABLE, ConfigError, RunError, Terminated, TransientRunError
from pipelines.engine.records import Batch
from pipelines.engine.spi import JobTotals
from pipelines.engine.plan import DEFAULT_SHARD_BYTES, Plan, make_plan
from pipelines.engine.progress import Progress, RunStats, log_event
from pipelines.engine.read import read_items


@dataclass(frozen=True)
class ShardReport:
    job_id: str
    shard: int
    attempt: int
    rows_read: int
    rows_written: int
    rows_skipped: int
    bytes_read: int
    seconds: float
    objects: int
    partition_rows: list[int] | None = None
    error_output: str | None = None
    files: list[dict[str, Any]] | None = None  # what file and object outputs wrote: uri, rows, bytes, sha256
    topics: dict[str, dict[str, list[int]]] | None = None  # per topic, per partition: rows and tombstones (OutputResult.topics)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str) -> ShardReport:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as exc:
            raise RunError(f"not a shard report: {exc}", where=where) from None


@dataclass
class JobSummary:
    """The job's result: the sum of its shards' reports (the last line `run` and `finish` print)."""

    job_id: str
    status: str = "succeeded"
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    rows_per_second: float = 0.0
    shards: int = 0
    shards_skipped: int = 0
    objects: int = 0
    plan: str | None = None
    error_outputs: list[str] = field(default_factory=list)
    end_markers: int | None = None
    tombstones: int | None = None  # rows written as tombstones (a Kafka output with column_for_deletion)
    manifest: str | None = None
    files: int | None = None
    config_diff: dict[str, Any] | None = None  # Embulk's config diff for the next run (the S3 input's last_path)
    error: str | None = None

    def add(self, report: ShardReport, skipped: bool = False) -> None:
        self.rows_read += report.rows_read
        self.rows_written += report.rows_written
        self.rows_skipped += report.rows_skipped
        self.bytes_read += report.bytes_read
        self.shards_skipped += skipped
        if report.error_output:
            self.error_outputs.append(report.error_output)

    def add_partial(self, stats: RunStats, errors: ErrorSink | None) -> None:
        """Counts of a shard that failed: what it read, and what stays written."""
        self.rows_read += stats.rows_read
        self.rows_written += stats.rows_written
        self.rows_skipped += errors.count if errors else 0
        self.bytes_read += stats.bytes_read
        if errors is not None and errors.location:
            self.error_outputs.append(errors.location)

    def close(self, seconds: float, error: str | None = None) -> JobSummary:
        self.seconds = round(seconds, 3)
        self.rows_per_second = round(self.rows_written / seconds, 1) if seconds > 0 else 0.0
        if error is not None:
            self.status, self.error = "failed", error
        return self

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("error", "manifest", "files", "config_diff", "tombstones"):  # only where they apply
            if data[key] is None:
                del data[key]
        return json.dumps(data, separators=(",", ":"))


def job_folder(plan_uri: str) -> str:
    return storage.parent(plan_uri)


def report_uri(plan_uri: str, shard: int) -> str:
    return storage.join(job_folder(plan_uri), "shards", f"{shard:05d}.json")


def summary_uri(plan_uri: str) -> str:
    return storage.join(job_folder(plan_uri), "summary.json")


def default_plan_uri(job: Job, job_id: str) -> str:
    return storage.join(job.exec.work_dir, job_id, "plan.json")


def read_plan(plan_uri: str) -> Plan:
    text = storage.read_text(plan_uri)
    if text is None:
        raise ConfigError("no plan there (make one with `pipelines plan CONFIG --out URI`)", where=plan_uri)
    return Plan.from_json(text, plan_uri)


def abort_job(job: Job, plan_uri: str) -> dict[str, Any]:
    """After a failed job (`pipelines abort`, the workflow's AbortJob): the output lets go of what the
    job's shards may hold open; the Kafka output fences their transactions."""
    plan = read_plan(plan_uri)
    return {"job_id": plan.job_id, "shards": len(plan.shards), **job.output.abort_job(plan.job_id, len(plan.shards))}


def write_plan(job: Job, job_id: str, plan_uri: str, shard_bytes: int = DEFAULT_SHARD_BYTES) -> Plan:
    plan = make_plan(job, job_id, shard_bytes)
    storage.write_text(plan_uri, plan.to_json())
    return plan


def done_report(job: Job, plan: Plan, plan_uri: str, index: int) -> ShardReport | None:
    """The shard's report if it committed: from its file, or else from what the output kept with the commit
    (a shard killed between its commit and writing the file), which then writes the file."""
    where = report_uri(plan_uri, index)
    text = storage.read_text(where)
    if text is not None:
        return ShardReport.from_json(text, where)
    record = job.output.committed_record(plan.job_id, index)
    if record is None:
        return None
    report = ShardReport.from_json(record, f"the committed record of shard {index}")
    storage.write_text(where, report.to_json())
    record_progress(report)  # it may have been killed before it did
    return report


# Called with each shard's report once the shard committed (or its report was recovered from the
# output's committed record): what the entry point adds. The CLI adds the workflow's live progress
# (pipelines.aws.progress.record_committed) when the state machine runs the shard; the engine itself
# knows nothing of where it runs.
shard_commit_hooks: list[Callable[[ShardReport], None]] = []


def record_progress(report: ShardReport) -> None:
    """Hands a committed shard's report to every hook in shard_commit_hooks."""
    for hook in shard_commit_hooks:
        hook(report)


def next_attempt(plan_uri: str, index: int) -> int:
    """1 + the attempts this shard started before (each leaves a marker beside the reports)."""
    prefix = f"{index:05d}.attempt-"
    folder = storage.join(job_folder(plan_uri), "shards")
    attempt = 1 + len(storage.list_names(folder, starting=prefix))
    storage.write_text(storage.join(folder, f"{prefix}{attempt}"), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return attempt


def check_unchanged(job: Job, plan: Plan, index: int) -> None:
    """Every item of the shard is still what the plan saw (objects: same ETag and size)."""
    job.input.check_items(plan.shard(index).items)


def make_error_sink(job: Job, job_id: str, shard: int) -> ErrorSink:
    from pipelines.engine.s3 import s3_client

    policy = job.exec.error_policy
    return ErrorSink(policy, error_file_uri(policy.location, job_id, shard), s3_client)


GC_THRESHOLD = (10_000, 10, 10)
STOP_SECONDS = 25.0  # after a SIGTERM, how long the shard processes get to abort (ECS kills at 30 s)


def relax_garbage_collector() -> None:
    """Fewer cyclic-GC passes while rows flow: a batch allocates tens of thousands of dicts, lists and
    tuples (none in cycles), and with Python's default threshold (700) the collector ran so often that a
    1M-record export ran 30% slower. What exists now (config, modules) is frozen out of later passes."""
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def write_items(job: Job, items: tuple[Any, ...], errors: ErrorSink, stats: RunStats, progress: Progress | None) -> None:
    """Reads the items and writes them to the open output: rows through `write`, and records made by
    the output's fused path (chosen here, once for the shard) through that path."""
    output = job.output
    fused = output.fused_path(job) if job.parser is not None else None
    for piece in read_items(job, items, errors, stats, fused):
        if type(piece) is not Batch:
            fused.write(piece)  # type: ignore[union-attr]
        elif piece.rows:
            output.write(piece, errors)
        stats.rows_skipped = errors.count
        if progress:
            progress.update(stats)


def run_shard(
    job: Job, plan: Plan, plan_uri: str, index: int, stats: RunStats, errors: ErrorSink,
    progress: Progress | None = None, attempt: int | None = None,
) -> ShardReport:
    """Runs one shard in one transaction: commit with its report, or abort on any failure."""
    relax_garbage_collector()
    shard = plan.shard(index)
    attempt = attempt or next_attempt(plan_uri, index)
    check_unchanged(job, plan, index)
    output = job.output
    output.open(plan.job_id, index)
    try:
        write_items(job, shard.items, errors, stats, progress)
        errors.check_rate(stats.rows_read)
        errors.close()
        result = output.flush()
        if stats.rows_read != result.rows_written + errors.count:
            raise RunError(
                f"row accounting does not add up: {stats.rows_read} read, {result.rows_written} written, {errors.count} skipped"
            )
        report = ShardReport(
            plan.job_id, index, attempt, stats.rows_read, result.rows_written, errors.count, stats.bytes_read,
            round(stats.seconds, 3), stats.objects, result.partition_rows, errors.location, result.files, result.topics,
        )
        output.commit(report.to_json())
    except BaseException:
        stats.rows_written = output.abort()
        raise
    finally:
        output.close()
        errors.close()
        if progress:
            progress.finish()
    stats.rows_written = result.rows_written
    record_progress(report)  # before the report file: a shard that has one was counted (or tried to be)
    storage.write_text(report_uri(plan_uri, index), report.to_json())
    return report


def finish_job(job: Job, plan: Plan, plan_uri: str, summary: JobSummary | None = None, started: float | None = None) -> JobSummary:
    """Once every shard has a report: end markers (Kafka) and the job summary next to the plan."""
    reports, missing = [], []
    for index in range(len(plan.shards)):
        report = done_report(job, plan, plan_uri, index)
        (reports.append(report) if report else missing.append(index))
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise RunError(
            f"{len(missing)} of {len(plan.shards)} shard(s) have no report yet: {shown}; run them with "
            f"`pipelines run CONFIG --plan {plan_uri} --shard N`",
            where=f"job {plan.job_id}",
        )
    if summary is None:
        summary = JobSummary(plan.job_id)
        for report in reports:
            summary.add(report)
    summary.shards, summary.plan = len(plan.shards), plan_uri
    summary.objects = len({item.uri for shard in plan.shards for item in shard.items})
    files = [f for r in reports for f in r.files or []] if any(r.files is not None for r in reports) else None
    totals = JobTotals(plan.job_id, len(plan.shards), summary.rows_written, _sum_partitions(reports), files, _sum_topics(reports))
    finished = job.output.finish(totals)
    items = [item for shard in plan.shards for item in shard.items]
    job.input.after_finish(items)
    summary.config_diff = job.input.config_diff(items)
    if finished is not None:
        summary.end_markers = finished.get("markers")
        summary.manifest = finished.get("manifest")
        summary.files = finished.get("files")
        summary.tombstones = finished.get("tombstones")
    seconds = time.monotonic() - started if started is not None else sum(r.seconds for r in reports)
    summary.close(seconds)
    storage.write_text(summary_uri(plan_uri), summary.to_json())
    return summary


def _sum_partitions(reports: list[ShardReport]) -> list[int] | None:
    counts = [r.partition_rows for r in reports if r.partition_rows is not None]
    if not counts:
        return None
    if len({len(c) for c in counts}) > 1:
        raise RunError("the shards saw different partition counts: were partitions added during the job?")
    return [sum(column) for column in zip(*counts)]


def _sum_topics(reports: list[ShardReport]) -> dict[str, dict[str, list[int]]] | None:
    """The shards' per-topic counts ({topic: {"rows": [...], "tombstones": [...]}}) summed; None when
    no shard reported any. A topic's partition count must agree across the shards."""
    if not any(r.topics for r in reports):
        return None
    totals: dict[str, dict[str, list[int]]] = {}
    for report in reports:
        for topic, counts in (report.topics or {}).items():
            if topic not in totals:
                totals[topic] = {key: list(values) for key, values in counts.items()}
            elif len(totals[topic]["rows"]) != len(counts["rows"]):
                raise RunError(f"the shards saw different partition counts of topic '{topic}': were partitions added during the job?")
            else:
                totals[topic] = {key: [a + b for a, b in zip(totals[topic][key], counts[key])] for key in totals[topic]}
    return totals


@dataclass
class AllShards:
    """`pipelines run CONFIG` without --shard: plan (or resume a plan), run what is not done, finish."""

    job: Job
    config_path: Path
    variables: Mapping[str, str]
    job_id: str
    plan_uri: str
    force: bool = False
    shard_bytes: int = DEFAULT_SHARD_BYTES
    resume: bool = True  # False for a new job id: there is no plan to look for
    progress: Callable[[str], Progress] | None = None
    started: Callable[[str], None] | None = None  # called with the job id once the plan is made or found
    summary: JobSummary = field(init=False)

    def run(self) -> JobSummary:
        started = time.monotonic()
        self.summary = JobSummary(self.job_id)
        text = storage.read_text(self.plan_uri) if self.resume else None
        if text is None:
            plan = write_plan(self.job, self.job_id, self.plan_uri, self.shard_bytes)
            pending = list(range(len(plan.shards)))
        else:
            plan = Plan.from_json(text, self.plan_uri)
            self.job_id = self.summary.job_id = plan.job_id  # an existing plan keeps its own job id
            pending = []
            for index in range(len(plan.shards)):
                report = None if self.force else done_report(self.job, plan, self.plan_uri, index)
                if report is not None:
                    self.summary.add(report, skipped=True)
                else:
                    pending.append(index)
        if self.started:
            self.started(plan.job_id)
        threads = self.job.exec.max_threads
        if threads > 1 and len(pending) > 1:
            self._run_in_processes(pending, threads)
            summary = None  # reports come from the shard processes
        else:
            for index in pending:
                self._run_here(plan, index)
            summary = self.summary
        return finish_job(self.job, plan, self.plan_uri, summary, started)

    def _run_here(self, plan: Plan, index: int) -> None:
        stats, errors = RunStats(), make_error_sink(self.job, plan.job_id, index)
        progress = self.progress(f"{plan.job_id} shard {index}") if self.progress else None
        try:
            report = run_shard(self.job, plan, self.plan_uri, index, stats, errors, progress)
        except BaseException:
            self.summary.add_partial(stats, errors)
            raise
        self.summary.add(report)

    def _command(self, index: int) -> list[str]:
        """A shard process's arguments: no variable in them, so no value (a password, say) shows in
        `ps` or /proc/*/cmdline; the variables go in its environment (see _environment)."""
        command = [sys.executable, "-m", "pipelines", "run", str(self.config_path), "--plan", self.plan_uri, "--shard", str(index)]
        return command + (["--force"] if self.force else [])

    def _environment(self) -> dict[str, str]:
        """The shard processes' environment: this one's, with every variable of the run (--var values
        over $PIPELINES_PARAMS) as $PIPELINES_PARAMS, as the workflow gives a Fargate task its params."""
        import json

        from pipelines.engine.config import PARAMS_ENV

        return {**os.environ, PARAMS_ENV: json.dumps(dict(self.variables))}

    def _run_in_processes(self, pending: list[int], threads: int) -> None:
        """Each shard in its own `pipelines run --shard` process, `threads` at a time."""
        waiting, running, failed = list(pending), {}, {}
        with tempfile.TemporaryDirectory(prefix="pipelines-shards-") as logs:
            try:
                self._run_processes(waiting, running, failed, logs, threads, self._environment())
            except Terminated:
                self._stop_processes(running)
                raise
        if failed:
            details = "; ".join(f"shard {i}: {message}" for i, (_, message) in sorted(failed.items()))
            message = f"{len(failed)} shard(s) failed ({details}); rerun the job to resume"
            # Exit 75 only if every failed shard may pass on a retry (each exited 75), else 1.
            transient = all(code == EXIT_RETRYABLE for code, _ in failed.values())
            raise (TransientRunError if transient else RunError)(message, where=f"job {self.job_id}")

    def _stop_processes(self, running: dict[int, Any]) -> None:
        """SIGTERM to the running shard processes (each aborts its shard and exits 75); any still running
        after STOP_SECONDS is killed (its transaction is fenced by the next attempt)."""
        import signal

        for process, _ in running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for index, (process, log) in running.items():
            try:
                code = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            log.close()
            log_event("shard_finished", job_id=self.job_id, shard=index, exit_code=code)

    def _run_processes(
        self, waiting: list[int], running: dict[int, Any], failed: dict[int, tuple[int, str]], logs: str, threads: int, env: dict[str, str]
    ) -> None:
        """Starts shards while fewer than `threads` run; collects each one's exit code and last error line."""
        while waiting or running:
            while waiting and len(running) < threads:
                index = waiting.pop(0)
                log = open(os.path.join(logs, f"{index}.log"), "w+b")
                process = subprocess.Popen(self._command(index), stdout=subprocess.DEVNULL, stderr=log, env=env)
                running[index] = (process, log)
                log_event("shard_started", job_id=self.job_id, shard=index, pid=process.pid)
            for index, (process, log) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                del running[index]
                log.seek(0)
                lines = log.read().decode(errors="replace").splitlines()
                log.close()
                errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
                if code != 0:
                    failed[index] = (code, errors[-1] if errors else f"exit code {code}: " + (lines[-1] if lines else ""))
                log_event("shard_finished", job_id=self.job_id, shard=index, exit_code=code)
            time.sleep(0.05)
