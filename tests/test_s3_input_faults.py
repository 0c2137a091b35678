"""An import from S3 whose GETs meet faults, through a fault-injecting proxy in front of the moto
server (tests/fault_s3.py), `pipelines run` pointed at it with AWS_ENDPOINT_URL, into the real broker.

A GET answered 503 SlowDown or 500 is retried by botocore; a body that is reset or stalls past the
read timeout mid-way resumes with a ranged GET from the byte reached, If-Match the listed ETag (a
changed object fails instead of being stitched). Either way every user id is read once, in
read_committed. A fault on every try fails the run with exit 75 (may pass on retry), one `error:`
line naming the object and what S3 did, and nothing committed.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time

import pytest
from conftest import config_with, consume_all, job_vars, put_audiences, run_cli, summary_of
from fault_s3 import Fault, fault_s3
from test_exactly_once import assert_exactly_once, streams_style_read

from pipelines.engine.errors import EXIT_RETRYABLE, EXIT_RUN_FAILED

ROWS = 40_000  # a gzip object of about 430 KB
MIDWAY_ROWS = 200_000  # about 2.2 MB
AFTER_BYTES = 800_000  # what a reset or stalled body sends first (the gzip reader reads 512 KiB at a time)
EVERY_TRY_AFTER_BYTES = 100_000  # less than one read: every try breaks before handing anything on
RANGE_AFTER_BYTES = 1_200_000  # the same inside a range of a split CSV (read 1 MiB at a time; ranges of 2 MiB)
READ_TIMEOUT = 2  # seconds, for the stalls: in.read_timeout_seconds


def fault(bucket: str, kind: str, **more) -> Fault:
    """A fault on the GETs of the objects under in/ of `bucket`."""
    path = f"/{bucket}/in/"
    if kind == "slowdown":
        return Fault("GET", path_contains=path, status=503, code="SlowDown", message="Please reduce your request rate.", **more)
    if kind == "internal":
        return Fault("GET", path_contains=path, **more)  # 500 InternalError
    more.setdefault("after_bytes", AFTER_BYTES)
    return Fault("GET", path_contains=path, action=kind, stall_seconds=60, **more)


def read_timeout(config: str, seconds: float = READ_TIMEOUT) -> str:
    """The config with `in.read_timeout_seconds`."""
    with open(config) as f:
        text = f.read()
    with open(config, "w") as f:
        f.write(text.replace("  type: s3\n", f"  type: s3\n  read_timeout_seconds: {seconds}\n", 1))
    return config


def import_through(url: str, config: str, bucket: str, topic: str, job_id: str, **env: str):
    return run_cli("run", config, *job_vars(bucket, topic), "--job-id", job_id, env={"AWS_ENDPOINT_URL": url, **env})


def range_start(header: str | None) -> int:
    """The first byte of a `Range: bytes=N-` header (0 for none: the whole object)."""
    if header is None:
        return 0
    match = re.fullmatch(r"bytes=(\d+)-", header)
    assert match, f"an open-ended range from a byte, not {header!r}"
    return int(match.group(1))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("kind", ["slowdown", "internal"])
def test_5xx_answers_a_few_times_then_fine_import_every_row_once(stack, s3, bucket, topic, tmp_path, kind):
    ids = put_audiences(s3, bucket, count=2, rows=ROWS)
    failing = fault(bucket, kind, times=3)
    job_id = f"{kind}-{topic}"

    with fault_s3(stack.aws_endpoint_url, failing) as url:
        result = import_through(url, config_with(tmp_path), bucket, topic, job_id)

    assert result.returncode == 0, result.stderr
    assert summary_of(result)["rows_written"] == len(ids)
    assert failing.failed == 3 and failing.matched == 3 + 2, failing.requests  # botocore's retries, then each object once
    assert_exactly_once(streams_style_read(stack.kafka_bootstrap, topic, job_id), ids)


@pytest.mark.parametrize("kind", ["reset", "stall"])
def test_a_body_broken_mid_way_resumes_at_the_byte_reached(stack, s3, bucket, topic, tmp_path, kind):
    ids = put_audiences(s3, bucket, count=1, rows=MIDWAY_ROWS)
    head = s3.head_object(Bucket=bucket, Key="in/part-0.csv.gz")
    breaking = fault(bucket, kind, times=2)  # the first GET, and the first resumed one
    job_id = f"{kind}-{topic}"

    started = time.monotonic()
    with fault_s3(stack.aws_endpoint_url, breaking) as url:
        result = import_through(url, read_timeout(config_with(tmp_path)), bucket, topic, job_id)

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 45, "a stall is cut by the read timeout, not waited out"
    summary = summary_of(result)
    assert summary["rows_written"] == len(ids)
    assert summary["bytes_read"] == head["ContentLength"], "no byte read twice or skipped"
    assert breaking.requests == [f"GET /{bucket}/in/part-0.csv.gz"] * 3, breaking.requests
    first, second, third = (range_start(r) for r in breaking.ranges())
    assert first == 0 < second <= AFTER_BYTES and second < third <= second + AFTER_BYTES, breaking.ranges()
    assert [h.get("if-match") for h in breaking.headers] == [head["ETag"]] * 3, "every try pinned to the listed ETag"
    assert f'"event":"s3_read_resumed","uri":"s3://{bucket}/in/part-0.csv.gz","at_byte":{second}' in result.stderr
    assert_exactly_once(streams_style_read(stack.kafka_bootstrap, topic, job_id), ids)


def test_an_object_changed_while_resuming_is_not_stitched(stack, s3, bucket, topic, tmp_path):
    put_audiences(s3, bucket, count=1, rows=MIDWAY_ROWS)
    changed = gzip.compress(b"user_id,country,score,opted_in,updated_at\nz1,FR,1.0,true,2026-11-01T12:00:00Z\n")
    breaking = fault(bucket, "reset", times=1, then=lambda: s3.put_object(Bucket=bucket, Key="in/part-0.csv.gz", Body=changed))

    with fault_s3(stack.aws_endpoint_url, breaking) as url:
        result = import_through(url, config_with(tmp_path), bucket, topic, f"changed-{topic}")

    assert result.returncode == EXIT_RUN_FAILED, result.stderr
    assert error_lines(result.stderr) == [
        f"error: s3://{bucket}/in/part-0.csv.gz: the object changed since it was listed (its ETag differs)"
    ], result.stderr
    assert range_start(breaking.ranges()[1]) > 0 and breaking.headers[1]["if-match"] == breaking.headers[0]["if-match"]
    assert consume_all(stack.kafka_bootstrap, topic) == [], "nothing committed"


EVERY_TRY = {
    # kind: (environment, what the error line says after the object's URI, requests the proxy saw)
    "slowdown": (
        {"AWS_MAX_ATTEMPTS": "3"},  # SlowDown is a throttle: botocore's backoff from 1 s, up to 20 s, so 3 tries, not 9
        r"S3 answered 503 SlowDown: Please reduce your request rate \(GetObject, 3 tries\); it may pass on retry",
        3,
    ),
    "internal": (
        {},
        r"S3 answered 500 InternalError: We encountered an internal error\. Please try again \(GetObject, 9 tries\); "
        r"it may pass on retry",
        9,
    ),
    "reset": (
        {},
        r"reading the object failed at byte \d+ of \d+: the connection was reset \(5 tries in a row, each resumed at the "
        r"byte reached after a backoff\); it may pass on retry",
        5,
    ),
    "stall": (
        {},
        rf"reading the object failed at byte \d+ of \d+: S3 sent nothing for {READ_TIMEOUT} s \(the read timeout\) \(5 tries "
        r"in a row, each resumed at the byte reached after a backoff\); it may pass on retry",
        5,
    ),
}


@pytest.mark.parametrize("kind", list(EVERY_TRY))
def test_a_fault_on_every_try_exits_75_naming_the_object_and_commits_nothing(stack, s3, bucket, topic, tmp_path, kind):
    put_audiences(s3, bucket, count=1, rows=ROWS)
    env, said, tries = EVERY_TRY[kind]
    failing = fault(bucket, kind, times=None, **({} if kind in ("slowdown", "internal") else {"after_bytes": EVERY_TRY_AFTER_BYTES}))

    with fault_s3(stack.aws_endpoint_url, failing) as url:
        result = import_through(url, read_timeout(config_with(tmp_path)), bucket, topic, f"failing-{topic}", **env)

    assert result.returncode == EXIT_RETRYABLE, result.stderr
    assert "Traceback" not in result.stderr
    (error,) = error_lines(result.stderr)
    assert re.fullmatch(rf"error: s3://{bucket}/in/part-0\.csv\.gz: {said}", error), error
    assert summary_of(result)["status"] == "failed"
    assert failing.matched == failing.failed == tries, failing.requests
    if kind in ("reset", "stall"):  # each try broke before a whole read: each resumed from the start, pinned to the ETag
        assert failing.ranges() == [None] * 5 and len({h["if-match"] for h in failing.headers}) == 1, failing.headers
    assert consume_all(stack.kafka_bootstrap, topic) == [], "nothing committed (no row, no end marker)"


# --- an uncompressed CSV that the plan splits into byte ranges


def put_plain_csv(s3, bucket: str, rows: int) -> tuple[list[str], int]:
    """One uncompressed CSV object in/plain.csv; its user ids and size."""
    from pipelines.devstack.sample import write_audience_csv

    raw = io.BytesIO()
    write_audience_csv(raw, rows, seed=5)
    s3.put_object(Bucket=bucket, Key="in/plain.csv", Body=raw.getvalue())
    return [line.split(",", 1)[0] for line in raw.getvalue().decode().splitlines()[1:]], len(raw.getvalue())


def plain_config(tmp_path) -> str:
    """The main config, decoders left to detection (so the plan may split an uncompressed object)."""
    config = read_timeout(config_with(tmp_path))
    with open(config) as f:
        text = f.read()
    assert "  decoders: [{type: gzip}]\n" in text
    with open(config, "w") as f:
        f.write(text.replace("  decoders: [{type: gzip}]\n", ""))
    return config


@pytest.mark.parametrize("kind", ["reset", "stall", "slowdown"])
def test_a_split_csv_range_resumes_inside_its_range(stack, s3, bucket, topic, tmp_path, kind):
    ids, size = put_plain_csv(s3, bucket, 125_000)  # about 5.9 MB: ranges of 2 MiB, 2 MiB and 1.7 MB
    config = plain_config(tmp_path)
    job_id = f"ranges-{kind}-{topic}"
    plan = f"s3://{bucket}/_jobs/{job_id}/plan.json"
    made = run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", job_id, "--shard-size", "2MiB")
    assert made.returncode == 0, made.stderr
    shards = json.loads(s3.get_object(Bucket=bucket, Key=f"_jobs/{job_id}/plan.json")["Body"].read())["shards"]
    assert [len(shard["items"]) for shard in shards] == [1, 1, 1], shards
    items = [shard["items"][0] for shard in shards]
    assert all(item["uri"] == f"s3://{bucket}/in/plain.csv" for item in items), items

    bytes_read = 0
    for index, item in enumerate(items):  # one item a shard; each shard's body breaks once, inside its range
        breaking = fault(bucket, kind, times=1, **({} if kind == "slowdown" else {"after_bytes": RANGE_AFTER_BYTES}))
        with fault_s3(stack.aws_endpoint_url, breaking) as url:
            result = run_cli("run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", str(index),
                             env={"AWS_ENDPOINT_URL": url})
        assert result.returncode == 0, result.stderr
        bytes_read += summary_of(result)["bytes_read"]
        starts = [range_start(r) for r in breaking.ranges()]
        assert starts[0] == max(item["start"] - 1, 0), (starts, item)
        if kind == "slowdown":
            assert starts == [starts[0]] * 2, "botocore sent the same GET again"
        else:
            assert len(starts) == 2 and starts[0] < starts[1] <= starts[0] + RANGE_AFTER_BYTES, (starts, item)

    finished = run_cli("finish", config, *job_vars(bucket, topic), "--plan", plan)
    assert finished.returncode == 0, finished.stderr
    assert summary_of(finished)["rows_written"] == len(ids)
    assert bytes_read == size, "the ranges' lines, each read once, make the object"
    assert_exactly_once(streams_style_read(stack.kafka_bootstrap, topic, job_id), ids)


# --- the rule itself: what may pass on retry, for reads and writes alike


def client_error(status: int, code: str, message: str, operation: str, retries: int = 8):
    from botocore.exceptions import ClientError

    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries}}
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("exc", "exit_code", "message"),
    [
        (client_error(503, "SlowDown", "Please reduce your request rate.", "GetObject"), EXIT_RETRYABLE,
         "S3 answered 503 SlowDown: Please reduce your request rate (GetObject, 9 tries); it may pass on retry"),
        (client_error(500, "InternalError", "", "UploadPart", 2), EXIT_RETRYABLE,
         "S3 answered 500 InternalError (UploadPart, 3 tries); it may pass on retry"),
        (client_error(503, "503", "Service Unavailable", "HeadObject"), EXIT_RETRYABLE,  # a HEAD's error has no body
         "S3 answered 503: Service Unavailable (HeadObject, 9 tries); it may pass on retry"),
        (client_error(400, "RequestTimeout", "Your socket connection to the server was not read from", "PutObject", 0), EXIT_RETRYABLE,
         "S3 answered 400 RequestTimeout: Your socket connection to the server was not read from (PutObject, 1 try); "
         "it may pass on retry"),
        (client_error(404, "NoSuchKey", "The specified key does not exist.", "GetObject", 0), EXIT_RUN_FAILED, "the object does not exist"),
        (client_error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", "GetObject", 0),
         EXIT_RUN_FAILED, "the object changed since it was listed (its ETag differs)"),
        (client_error(403, "AccessDenied", "Access Denied", "GetObject", 0), EXIT_RUN_FAILED, "access denied (AccessDenied)"),
    ],
    ids=["slowdown", "500", "head-503", "request-timeout", "no-such-key", "etag-changed", "access-denied"],
)
def test_one_rule_for_s3_answers(exc, exit_code, message):
    from pipelines.engine.s3 import s3_error as input_rule
    from pipelines.engine.s3 import s3_error

    assert input_rule is s3_error, "the S3 input and output share the rule"
    error = s3_error(exc, "s3://b/k")
    assert (error.exit_code, error.message, error.where) == (exit_code, message, "s3://b/k")


def test_a_connection_that_fails_past_botocores_retries_may_pass():
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    from pipelines.engine.s3 import s3_error

    for exc in (EndpointConnectionError(endpoint_url="http://s3"), ReadTimeoutError(endpoint_url="http://s3")):
        assert s3_error(exc, "s3://b/k").exit_code == EXIT_RETRYABLE


def test_missing_aws_settings_fail_for_good():
    """No credentials or region is a configuration to mend: exit 1, not 75 (a retry would fail alike)."""
    from botocore.exceptions import NoCredentialsError, NoRegionError

    from pipelines.engine.s3 import s3_error

    for exc in (NoCredentialsError(), NoRegionError()):
        error = s3_error(exc, "s3://b/k")
        assert error.exit_code == 1 and "will not pass on a retry" in error.message, error.message
