"""`pipelines jobs submit|status|list|watch` (operators, over the HTTP API) and `pipelines api serve`.

The jobs commands print the API's JSON answer on stdout; how they reach the API (its URL, SigV4
signatures for an API with IAM authorization, the errors) is pipelines.cli.api_client. `watch`
follows a job to its end and exits 0 if it SUCCEEDED, 1 if it FAILED. Imports are lazy:
`pipelines --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from pipelines.cli.api_client import ApiEndpoint, api_options, call_api
from pipelines.cli.types import KeyValue as ParamType  # KEY=VALUE, for --param


def _print(answer: Any) -> None:
    import json

    click.echo(json.dumps(answer, indent=2))


@click.group(short_help="Submit imports and follow jobs over the HTTP API.")
def jobs() -> None:
    """Submit imports and see jobs, over the HTTP API (`pipelines api serve` locally, API Gateway on AWS).

    Requests to an API Gateway URL (https://ID.execute-api.REGION.amazonaws.com) are signed with
    SigV4 (the API uses IAM authorization), with the credentials and region of the usual AWS chain
    (environment, profile, SSO, role); --sign signs requests to any URL (a custom domain: give
    --region too), --no-sign never.

    \b
    Exit codes: 0 ok (for watch: the job SUCCEEDED); 1 the API answered an error or could not be
    reached (for watch: or the job FAILED); 2 the request was wrong (the API answered 400: unknown
    pipeline, undefined variable, bad job id, ...) or could not be signed (no region or credentials).
    """


@jobs.command(short_help="Start an import of PIPELINE; print its job.")
@click.argument("pipeline")
@click.option("--param", "params", type=ParamType(), multiple=True, help="A job param (env.KEY in the config). Repeatable.")
@click.option("--job-id", help="The job id (default: a new one). Submitting an id again is refused (409).")
@api_options
def submit(pipeline: str, params: tuple[tuple[str, str], ...], job_id: str | None, api: ApiEndpoint) -> None:
    """Start an import of PIPELINE (a config in configs/, without .yml.liquid); print its job id."""
    body: dict[str, Any] = {"pipeline": pipeline, "params": dict(params)}
    if job_id:
        body["job_id"] = job_id
    _print(call_api(api, "POST", "/imports", body))


@jobs.command(short_help="Print a job: status, counts, progress, error.")
@click.argument("job_id")
@api_options
def status(job_id: str, api: ApiEndpoint) -> None:
    """Print the status of JOB_ID: status, counts, error (Error and Cause) when it failed."""
    from urllib.parse import quote

    _print(call_api(api, "GET", f"/jobs/{quote(job_id, safe='')}"))


@jobs.command(name="list", short_help="List the newest jobs, newest first.")
@click.option("--status", "status_filter", type=click.Choice(["QUEUED", "RUNNING", "SUCCEEDED", "FAILED"], case_sensitive=False), help="Only jobs in this status.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="How many jobs, newest first.")
@api_options
def list_jobs(status_filter: str | None, limit: int, api: ApiEndpoint) -> None:
    """List the newest jobs (newest first), optionally only those in --status."""
    from urllib.parse import urlencode

    query = {"limit": limit, **({"status": status_filter.upper()} if status_filter else {})}
    _print(call_api(api, "GET", f"/jobs?{urlencode(query)}"))


@jobs.command(short_help="Follow a job until it ends (progress bar).")
@click.argument("job_id")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Seconds between two looks at the job.")
@api_options
def watch(job_id: str, interval: float, api: ApiEndpoint) -> None:
    """Follow JOB_ID until it ends: its shards and rows as they commit, rows/s and the time left.

    On a terminal, a progress bar on stderr; otherwise (stdout is a pipe or a file) one JSON line on
    stdout per change, the last one with the end status. Exit 0 if the job SUCCEEDED, 1 if it FAILED.
    Once the job was seen, a few answers in a row that may pass (429, 5xx, no answer) are asked
    again, with a warning on stderr.
    """
    from urllib.parse import quote

    from pipelines.cli.api_client import ApiError, request_json
    from pipelines.cli.watch import JsonLines, ProgressLine, follow

    view = ProgressLine(sys.stderr) if sys.stdout.isatty() else JsonLines(sys.stdout)
    path = f"/jobs/{quote(job_id, safe='')}"
    try:
        code = follow(lambda: request_json(api, "GET", path), view, interval, lambda line: click.echo(line, err=True))
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code)


@click.group(short_help="The HTTP API (POST /imports, GET /jobs/{id}).")
def api() -> None:
    """The HTTP API (POST /imports, GET /jobs/{id}, GET /jobs).

    \b
    Exit codes: 0 stopped (Ctrl-C or SIGTERM); 1 it cannot serve (the port is taken); 2 the command
    line or the environment is wrong (no state machine or jobs table named).
    """


@api.command(short_help="Serve the HTTP API (default 127.0.0.1:8080).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--function",
    "function_name",
    metavar="NAME",
    help="Pass each request on to this Lambda function (lambda:Invoke at AWS_ENDPOINT_URL), as API Gateway does, "
    "instead of handling it here; with `pipelines dev up --image`, the image serves it.",
)
def serve(port: int, host: str, function_name: str | None) -> None:
    """Serve the API locally, around the same handler as the Lambda.

    \b
    Reads PIPELINES_JOBS_TABLE (the DynamoDB jobs table), PIPELINES_STATE_MACHINE_ARN,
    PIPELINES_EVENT_BUS (default: default) and the AWS settings (AWS_ENDPOINT_URL for moto).
    """
    from pipelines.aws.api import serve as serve_api
    from pipelines.engine.errors import PipelineError

    try:
        serve_api(port, host, function_name=function_name)
    except PipelineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc}", err=True)
        sys.exit(1)
