"""The `pipelines` command. Thin: each command parses options and calls the engine.

Exit codes: 0 success; 1 the run failed; 2 the config or the command line is wrong; 75 the run
failed for a reason that may pass (a broker not answering, or SIGTERM: see _stop_on_sigterm).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

EXIT_CODES = """\b
Exit codes:
  0  success
  1  the run failed (bad rows past max_errors, truncated input, missing object, ...)
  2  the config or the command line is wrong; nothing was read or written
  75 the run failed for a reason that may pass (broker or S3 not answering): retry it
"""
EPILOG = EXIT_CODES + """\b
Examples:
  eval "$(pipelines dev up)"
  pipelines dev sample-audience s3://audiences/imports/2026-11-22.csv.gz --rows 100000
  pipelines dev create-topic audience-members
  pipelines validate configs/send_audience_to_kafka.yml.liquid --var S3_BUCKET=audiences --var S3_KEY=imports/2026-11-22.csv.gz
  pipelines run configs/send_audience_to_kafka.yml.liquid --var S3_BUCKET=audiences --var S3_KEY=imports/2026-11-22.csv.gz
"""


from pipelines.cli.shared import config_argument, fail, var_option, with_params  # noqa: E402
from pipelines.cli.types import StorageUri  # noqa: E402


_stopped: list[Exception] = []  # the Terminated error of the SIGTERM `run` received, once one came
HARD_STOP_SECONDS = 60  # after a shard's time limit, how long its abort may take before the process exits anyway


def _stop_on_sigterm(message: str) -> Any:
    """While `run` runs, SIGTERM (what ECS sends on a task stop or a Spot reclaim, 30 s before its
    SIGKILL) raises errors.Terminated in the main thread, wherever it is: the shard's `except
    BaseException` aborts its Kafka transaction and multipart uploads, and `run` prints one error
    line and the failed summary and exits 75, so the workflow retries the shard. A second SIGTERM is
    ignored: it must not cut the abort short. Returns what restores the previous handler."""
    import signal

    from pipelines.engine.errors import Terminated

    return _stop_on(signal.SIGTERM, lambda: Terminated(message))


def _stop_on(signum: int, error: Any) -> Any:
    """The handler of _stop_on_sigterm for `signum`, raising `error()`; returns what restores the previous one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # only the main thread receives signals; a caller in another thread keeps its own

    def on_signal(received: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(received, signal.SIG_IGN)
        _stopped.append(error())
        raise _stopped[0]

    previous = signal.signal(signum, on_signal)

    def restore() -> None:
        if not _stopped:  # after a stop, SIGTERM stays ignored until the process exits
            signal.signal(signum, previous)

    return restore


def _time_limit(seconds: int) -> Any:
    """The shard's own time limit: past `seconds`, SIGALRM stops it as SIGTERM would, with
    errors.TimedOut (exit 75). Should the abort itself hang (a call that never returns to Python),
    the process exits 75 a minute later all the same. Returns what cancels both."""
    import os
    import signal
    import threading

    from pipelines.engine.errors import TimedOut

    restore = _stop_on(signal.SIGALRM, lambda: TimedOut(TimedOut.shard_message(seconds)))
    signal.alarm(seconds)

    def hard_stop() -> None:
        sys.stderr.write(f"error: {TimedOut.shard_message(seconds)}; its abort did not end within {HARD_STOP_SECONDS} s\n")
        sys.stderr.flush()
        os._exit(75)

    backstop = threading.Timer(seconds + HARD_STOP_SECONDS, hard_stop)
    backstop.daemon = True
    backstop.start()

    def cancel() -> None:
        signal.alarm(0)
        backstop.cancel()
        restore()

    return cancel


def _reported(exc: BaseException) -> Exception | None:
    """The error a failed run reports: the SIGTERM's once one came (whatever it broke on its way out),
    else `exc` if it is a PipelineError; None for anything else (a bug: let it show)."""
    from pipelines.engine.errors import PipelineError

    if _stopped:
        return _stopped[0]
    return exc if isinstance(exc, PipelineError) else None


def load(config: Path, variables: tuple[tuple[str, str], ...]) -> Any:
    from pipelines.engine.config import load_job
    from pipelines.engine.errors import PipelineError

    from pipelines.engine.notes import job_notes

    try:
        job = load_job(config, with_params(variables))
    except PipelineError as exc:
        fail(exc)
    for note in job_notes(job):
        click.echo(f"note: {note}", err=True)
    return job


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="audience-pipelines")
def cli() -> None:
    """Move audiences between S3 and Kafka with Embulk-style configs (in, parser, filters, out, exec).

    CONFIG is a *.yml.liquid file (rendered with Liquid: env.X is the environment,
    var.X a --var value, {% include 'kafka' %} loads _kafka.yml.liquid beside it)
    or a plain *.yml file.
    """


class ByteSize(click.ParamType):
    """A size in bytes: 134217728, 128MiB, 64MB, 1GiB."""

    name = "BYTES"
    UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        import re

        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in self.UNITS or int(match.group(1)) < 1:
            self.fail(f"expected a size like 134217728, 128MiB or 64MB, got {value!r}", param, ctx)
        return int(match.group(1)) * self.UNITS[unit]


def default_shard_bytes() -> int:
    from pipelines.engine.plan import DEFAULT_SHARD_BYTES

    return DEFAULT_SHARD_BYTES


shard_size_option = click.option(
    "--shard-size",
    "shard_bytes",
    type=ByteSize(),
    default="128MiB",
    show_default=True,
    help="Bytes of input a shard takes: larger uncompressed CSV/JSONL objects are split, smaller ones packed.",
)


@cli.command(epilog=EXIT_CODES, short_help="Run CONFIG; print a JSON summary last.")
@config_argument
@var_option
@click.option("--plan", "plan_uri", type=StorageUri(), help="The plan (local path or s3:// URI): resume it, or make it there if it does not exist.")
@click.option("--shard", type=click.IntRange(min=0), help="Run only this shard of --plan (as a Fargate task does).")
@click.option("--force", is_flag=True, help="Rerun shards that already have a report (their rows are sent again).")
@click.option("--job-id", help="Job id for a new plan (header pipelines.job_id, transactional ids, file names). Default: a new one.")
@click.option(
    "--attempt", type=click.IntRange(min=1), envvar="PIPELINES_ATTEMPT", show_envvar=True,
    help="Attempt number for the shard report (default: counted).",
)
@shard_size_option
def run(
    config: Path, variables: tuple[tuple[str, str], ...], plan_uri: str | None, shard: int | None,
    force: bool, job_id: str | None, attempt: int | None, shard_bytes: int,
) -> None:
    """Run CONFIG and print a JSON summary as the last line of stdout.

    \b
    pipelines run CONFIG                         plan, run every shard, send the end markers
    pipelines run CONFIG --plan URI              the same with the plan at URI (resumes it if it exists)
    pipelines run CONFIG --plan URI --shard I    only shard I (no end markers: see `finish`)

    Each shard is one Kafka transaction, committed with its report next to the plan; a rerun
    skips shards that have one (--force reruns them). exec.max_threads shards run at once, in
    separate processes. Rows that fail parsing or validation go to exec.error_output; past
    exec.max_errors (default 0) or exec.max_error_rate the shard fails and its transaction is
    aborted, so read_committed consumers see nothing of it. Progress goes to stderr.

    SIGTERM (an ECS task stop or Spot reclaim) aborts the running shard the same way and exits 75.
    """
    from pipelines.engine.errors import Terminated

    if shard is not None and plan_uri is None:
        raise click.UsageError("--shard needs --plan (make one with `pipelines plan CONFIG --out URI`)")
    restore = _stop_on_sigterm(Terminated.SHARD if shard is not None else Terminated.JOB)
    _record_workflow_progress()
    try:
        job = load(config, variables)
        if shard is not None:
            _run_one_shard(job, plan_uri, shard, force, attempt)
        else:
            _run_all_shards(job, config, with_params(variables), plan_uri, force, job_id, shard_bytes)
    except Exception as exc:
        reported = _reported(exc)
        if reported is None:
            raise
        fail(reported)
    finally:
        restore()


def _record_workflow_progress() -> None:
    """In the workflow (the state machine sets $PIPELINES_JOB_ID on each shard task), each committed
    shard adds its counts to its job's live progress (pipelines.aws.progress)."""
    import os

    if not os.environ.get("PIPELINES_JOB_ID"):
        return
    from pipelines.aws.progress import record_committed
    from pipelines.engine import run

    if record_committed not in run.shard_commit_hooks:
        run.shard_commit_hooks.append(record_committed)


def _progress(label: str) -> Any:
    from pipelines.engine.progress import Progress, log_event

    progress = Progress(label)
    if not progress.tty:
        log_event("start", job=label)
    return progress


def _run_one_shard(job: Any, plan_uri: str, shard: int, force: bool, attempt: int | None) -> None:
    from pipelines.engine.plan import shard_time_limit
    from pipelines.engine.run import read_plan

    plan = read_plan(plan_uri)
    cancel = _time_limit(shard_time_limit(plan.shard(shard)))
    try:
        _run_planned_shard(job, plan, plan_uri, shard, force, attempt)
    finally:
        cancel()


def _run_planned_shard(job: Any, plan: Any, plan_uri: str, shard: int, force: bool, attempt: int | None) -> None:
    import json

    from pipelines.engine.progress import RunStats
    from pipelines.engine.run import done_report, make_error_sink, run_shard
    from pipelines.observe.job_events import shard_ended

    report = None if force else done_report(job, plan, plan_uri, shard)
    if report is not None:
        click.echo(f"shard {shard} of job {plan.job_id} is done already (--force reruns it)", err=True)
        click.echo(json.dumps({"status": "skipped", **json.loads(report.to_json())}))
        return
    stats, errors = RunStats(), make_error_sink(job, plan.job_id, shard)
    try:
        report = run_shard(job, plan, plan_uri, shard, stats, errors, _progress(f"{plan.job_id} shard {shard}"), attempt)
    except Exception as exc:
        reported = _reported(exc)
        if reported is None:
            raise
        failed = {"job_id": plan.job_id, "shard": shard, "status": "failed", "rows_read": stats.rows_read,
                  "rows_written": stats.rows_written, "rows_skipped": errors.count, "error": str(reported)}
        shard_ended(job, plan.job_id, shard, "failed", {**failed, "bytes_read": stats.bytes_read, "seconds": stats.seconds})
        click.echo(json.dumps(failed))
        raise
    shard_ended(job, plan.job_id, shard, "succeeded", report)
    _warn_skipped(report.rows_skipped, report.error_output)
    click.echo(json.dumps({"status": "succeeded", **json.loads(report.to_json())}))


def _run_all_shards(
    job: Any, config: Path, variables: dict[str, str], plan_uri: str | None, force: bool, job_id: str | None, shard_bytes: int
) -> None:
    import time

    from pipelines.engine.read import new_job_id
    from pipelines.engine.run import AllShards, default_plan_uri
    from pipelines.observe.job_events import job_ended, job_started

    resume = plan_uri is not None or job_id is not None  # a new job id has no plan to resume
    job_id = job_id or new_job_id()  # for a new plan; an existing plan keeps its own
    plan_uri = plan_uri or default_plan_uri(job, job_id)
    runner = AllShards(
        job, config, variables, job_id, plan_uri, force=force, shard_bytes=shard_bytes, progress=_progress, resume=resume,
        started=lambda planned_id: job_started(job, planned_id),
    )
    started = time.monotonic()
    try:
        summary = runner.run()
    except KeyboardInterrupt:
        _job_failed(job, runner.summary.close(time.monotonic() - started, "interrupted"))
        click.echo("error: interrupted; the running shard's transaction was aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        reported = _reported(exc)
        if reported is None:
            raise
        _job_failed(job, runner.summary.close(time.monotonic() - started, str(reported)))
        raise
    job_ended(job, summary.job_id, "succeeded", summary)
    _warn_skipped(summary.rows_skipped, ", ".join(summary.error_outputs))
    click.echo(summary.to_json())


def _job_failed(job: Any, summary: Any) -> None:
    """A failed `run`: its metrics and lineage, then its summary as the last line of stdout."""
    from pipelines.observe.job_events import job_ended

    job_ended(job, summary.job_id, "failed", summary, summary.error)
    click.echo(summary.to_json())


def _warn_skipped(count: int, where: str | None) -> None:
    if count:
        click.echo(f"warning: {count} bad row(s) skipped, written to {where}", err=True)


@cli.command(epilog=EXIT_CODES, short_help="Split CONFIG's input into shards: write the plan.")
@config_argument
@var_option
@click.option("--out", "plan_uri", type=StorageUri(), required=True, help="Where to write the plan: a local path or s3://bucket/key.json.")
@click.option("--job-id", help="Job id (default: a new one).")
@shard_size_option
def plan(config: Path, variables: tuple[tuple[str, str], ...], plan_uri: str, job_id: str | None, shard_bytes: int) -> None:
    """Split CONFIG's input into shards and write the plan (JSON) to --out; print its job id and shard count."""
    import json

    from pipelines.engine.errors import PipelineError
    from pipelines.engine.read import new_job_id
    from pipelines.engine.run import write_plan

    job = load(config, variables)
    try:
        made = write_plan(job, job_id or new_job_id(), plan_uri, shard_bytes)
    except PipelineError as exc:
        fail(exc)
    total = sum(s.bytes for s in made.shards)
    click.echo(json.dumps({"job_id": made.job_id, "plan": plan_uri, "shards": len(made.shards), "bytes": total}))


@cli.command(epilog=EXIT_CODES, short_help="End a job: end markers, then the job summary.")
@config_argument
@var_option
@click.option("--plan", "plan_uri", type=StorageUri(), required=True, help="The job's plan (local path or s3:// URI).")
def finish(config: Path, variables: tuple[tuple[str, str], ...], plan_uri: str) -> None:
    """When every shard of --plan has a report: send one end marker to every partition (once) and
    write the job summary next to the plan; print it. With shards missing, name them and fail."""
    from pipelines.engine.errors import PipelineError
    from pipelines.engine.run import finish_job, read_plan

    job = load(config, variables)
    try:
        summary = finish_job(job, read_plan(plan_uri), plan_uri)
    except PipelineError as exc:
        fail(exc)
    click.echo(summary.to_json())


@cli.command(epilog=EXIT_CODES, short_help="After a failed job: let go of what it holds open.")
@config_argument
@var_option
@click.option("--plan", "plan_uri", type=StorageUri(), required=True, help="The failed job's plan (local path or s3:// URI).")
def abort(config: Path, variables: tuple[tuple[str, str], ...], plan_uri: str) -> None:
    """After a job failed for good: let go of what its shards may hold open. For a Kafka output, fence
    every transactional id of the job (each shard's and the finish step's): a transaction a killed
    shard left open is aborted at once, so read_committed readers of its partitions move on instead
    of waiting up to 15 minutes (transaction.timeout.ms). Committed shards stay as they are; a shard
    of the job still running fails its commit. The workflow's failure path does this (AbortJob)."""
    import json

    from pipelines.engine.errors import PipelineError
    from pipelines.engine.run import abort_job

    job = load(config, variables)
    try:
        done = abort_job(job, plan_uri)
    except PipelineError as exc:
        fail(exc)
    click.echo(json.dumps(done))


@cli.command(epilog=EXIT_CODES, short_help="Show CONFIG's first rows after its filters.")
@config_argument
@var_option
@click.option("--rows", default=None, type=click.IntRange(min=1), help="How many rows (default exec.preview_rows, 20).")
def preview(config: Path, variables: tuple[tuple[str, str], ...], rows: int | None) -> None:
    """Show the first rows of CONFIG after its filters, as a table. The output is not called."""
    from pipelines.engine.errors import PipelineError
    from pipelines.engine.read import format_table, preview_rows

    job = load(config, variables)
    try:
        found = preview_rows(job, rows or job.exec.preview_rows)
    except PipelineError as exc:
        fail(exc)
    click.echo(format_table(job.schema.names, [c.type for c in job.schema.columns], found))


@cli.command(epilog=EXIT_CODES, short_help="Print CONFIG as rendered (secrets masked).")
@config_argument
@var_option
def render(config: Path, variables: tuple[tuple[str, str], ...]) -> None:
    """Print CONFIG as rendered (secrets masked as ******)."""
    from pipelines.engine.config import parse_yaml, render as render_config, template_variables
    from pipelines.engine.errors import PipelineError
    from pipelines.engine.redact import redact, secret_values

    variables_given = with_params(variables)
    try:
        text = render_config(config, variables_given)
    except PipelineError as exc:
        fail(exc)
    env = template_variables(variables_given)["env"]
    try:
        data = parse_yaml(text, str(config))
    except PipelineError as exc:
        # Show what was rendered, so the YAML error can be found in it, then fail.
        click.echo(redact(text, secret_values({}, env)), nl=False)
        fail(exc)
    click.echo(redact(text, secret_values(data, env)), nl=False)


@cli.command(epilog=EXIT_CODES, short_help="Check CONFIG without reading or writing.")
@config_argument
@var_option
def validate(config: Path, variables: tuple[tuple[str, str], ...]) -> None:
    """Check CONFIG (template, YAML, every plugin's options, the columns they use) without reading or writing."""
    job = load(config, variables)
    columns = ", ".join(f"{c.name}:{c.type}" for c in job.schema.columns)
    click.echo(f"ok: {config} ({columns})")


def _add_dev_commands() -> None:
    from pipelines.devstack.cli import dev

    cli.add_command(dev)


_add_dev_commands()


def _add_workflow_commands() -> None:
    from pipelines.cli.jobs import api, jobs

    cli.add_command(jobs)
    cli.add_command(api)


_add_workflow_commands()


def _add_guess_command() -> None:
    from pipelines.cli.check import check
    from pipelines.cli.guess import guess

    cli.add_command(guess)
    cli.add_command(check)


_add_guess_command()


def main() -> None:
    from pipelines.engine.errors import Terminated

    try:
        cli(prog_name="pipelines")
    except Terminated as exc:  # a SIGTERM that came while `run` was already reporting another error
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
