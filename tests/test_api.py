"""The HTTP API (pipelines.aws.api) and the operators' CLI (pipelines jobs ...), against the moto server.

Each test gets a real jobs table in the moto server of the `stack` fixture. The execution starter
is a fake recording its calls (`FakeStart`): starting the real state machine is the workflow
tests' business; one test below checks `step_functions_starter` against moto's Step Functions.
The local server runs in a thread (`make_server` on a free port, what `pipelines api serve` runs)
and is driven with the `pipelines jobs` commands through click's CliRunner.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from pipelines.aws.api import handle_request, lambda_api, make_server, step_functions_starter
from pipelines.engine.errors import ConfigError
from pipelines.aws.jobs import FAILED, QUEUED, RUNNING, JobStore, create_table
from pipelines.engine.redact import MASK

PIPELINE = "send_audience_to_kafka"
PARAMS = {"S3_BUCKET": "audiences", "S3_KEY": "drops/a.csv.gz"}
SECRET = "hunter2-very-secret"


class FakeStart:
    """start_execution that records (job_id, input); raises `error` instead when set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def __call__(self, job_id: str, execution_input: dict[str, Any]) -> str:
        self.calls.append((job_id, execution_input))
        if self.error is not None:
            raise self.error
        return f"arn:aws:states:us-east-1:123456789012:execution:pipelines:{job_id}"


@pytest.fixture
def store(stack: object, monkeypatch: pytest.MonkeyPatch) -> JobStore:
    for name in ("S3_BUCKET", "S3_KEY", "PIPELINES_PARAMS"):  # the params alone must make the config valid
        monkeypatch.delenv(name, raising=False)
    name = f"jobs-{uuid.uuid4().hex[:10]}"
    job_store = JobStore(name)
    create_table(job_store.dynamodb, name)
    return job_store


def post(store: JobStore, start: FakeStart, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return handle_request("POST", "/imports", data, store=store, start_execution=start)


def get(store: JobStore, path: str) -> tuple[int, dict[str, Any]]:
    return handle_request("GET", path, None, store=store, start_execution=FakeStart())


def test_post_creates_the_job_and_starts_its_execution(store: JobStore) -> None:
    start = FakeStart()
    status, answer = post(store, start, {"pipeline": PIPELINE, "params": PARAMS})
    assert status == 202, answer
    job_id = answer["job_id"]
    assert answer["status"] == QUEUED and answer["execution_arn"].endswith(f":{job_id}")
    assert start.calls == [(job_id, {"job_id": job_id, "pipeline": PIPELINE, "params": PARAMS})]
    job = store.get(job_id)
    assert job is not None and job.status == QUEUED and job.pipeline == PIPELINE and job.params == PARAMS


def test_post_with_a_job_id_and_non_string_params(store: JobStore) -> None:
    start = FakeStart()
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    status, answer = post(store, start, {"pipeline": PIPELINE, "params": {**PARAMS, "SEGMENT_ID": 42, "DRY": True}, "job_id": job_id})
    assert (status, answer["job_id"]) == (202, job_id)
    assert start.calls[0][1]["params"] == {**PARAMS, "SEGMENT_ID": "42", "DRY": "true"}


def test_duplicate_job_id_is_409_and_not_started_again(store: JobStore) -> None:
    start = FakeStart()
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    assert post(store, start, {"pipeline": PIPELINE, "params": PARAMS, "job_id": job_id})[0] == 202
    store.transition(job_id, RUNNING)
    status, answer = post(store, start, {"pipeline": PIPELINE, "params": PARAMS, "job_id": job_id})
    assert status == 409
    assert answer["job_id"] == job_id and answer["status"] == RUNNING and "exists already" in answer["error"]
    assert len(start.calls) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pipeline": "no_such_pipeline", "params": PARAMS}, "no pipeline 'no_such_pipeline' (known: "),
        ({"pipeline": "../etc/passwd", "params": PARAMS}, "pipeline must be a config name"),
        ({"params": PARAMS}, "pipeline must be a config name"),
        ({"pipeline": PIPELINE, "params": {"S3_KEY": "a.csv"}}, "S3_BUCKET"),  # an undefined template variable
        ({"pipeline": PIPELINE, "params": ["S3_BUCKET"]}, "params must be an object of strings"),
        ({"pipeline": PIPELINE, "params": {"S3_BUCKET": {"x": 1}}}, "params must be an object of strings"),
        ({"pipeline": PIPELINE, "params": PARAMS, "job_id": "a b"}, "job_id must be 1 to 80 letters"),
        ({"pipeline": PIPELINE, "params": PARAMS, "job_id": "x" * 81}, "job_id must be 1 to 80 letters"),
        ({"pipeline": PIPELINE, "parms": PARAMS}, "unknown field(s) parms"),
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b"", "the request needs a JSON body"),
    ],
)
def test_bad_requests_are_400_with_the_message(store: JobStore, body: Any, message: str) -> None:
    start = FakeStart()
    status, answer = post(store, start, body)
    assert status == 400, answer
    assert message in answer["error"]
    assert start.calls == []
    assert store.list() == []


def test_undefined_variable_message_names_it(store: JobStore) -> None:
    status, answer = post(store, FakeStart(), {"pipeline": PIPELINE, "params": {"S3_KEY": "a.csv"}})
    assert status == 400
    assert "undefined" in answer["error"].lower() and "S3_BUCKET" in answer["error"] and "send_audience_to_kafka.yml.liquid" in answer["error"]


def test_get_job_and_missing_job(store: JobStore) -> None:
    job_id = post(store, FakeStart(), {"pipeline": PIPELINE, "params": PARAMS})[1]["job_id"]
    store.transition(job_id, RUNNING)
    store.transition(job_id, "SUCCEEDED", counts={"rows_read": 10, "rows_written": 9, "rows_skipped": 1, "end_markers": 6})
    status, answer = get(store, f"/jobs/{job_id}")
    assert status == 200
    assert answer["status"] == "SUCCEEDED" and answer["rows_written"] == 9 and answer["rows_skipped"] == 1 and answer["error"] is None
    assert answer["params"] == PARAMS and answer["pipeline"] == PIPELINE
    status, answer = get(store, "/jobs/nope-123")
    assert status == 404 and "nope-123" in answer["error"]


def test_list_jobs(store: JobStore) -> None:
    ids = [post(store, FakeStart(), {"pipeline": PIPELINE, "params": PARAMS})[1]["job_id"] for _ in range(3)]
    store.transition(ids[0], FAILED, error="boom")
    status, answer = get(store, "/jobs")
    assert status == 200 and sorted(j["job_id"] for j in answer["jobs"]) == sorted(ids)
    status, answer = get(store, "/jobs?status=failed&limit=10")
    assert status == 200 and [j["job_id"] for j in answer["jobs"]] == [ids[0]]
    assert answer["jobs"][0]["error"] == {"Error": "JobFailed", "Cause": "boom"}
    assert len(get(store, "/jobs?limit=2")[1]["jobs"]) == 2
    for query, message in [("status=DONE", "status must be one of"), ("limit=0", "limit must be"), ("limit=x", "limit must be"), ("sort=1", "unknown query")]:
        status, answer = get(store, f"/jobs?{query}")
        assert status == 400 and message in answer["error"], query


def test_routes_and_methods(store: JobStore) -> None:
    assert handle_request("GET", "/imports", None, store=store, start_execution=FakeStart())[0] == 405
    status, answer = handle_request("DELETE", "/jobs/x", None, store=store, start_execution=FakeStart())
    assert status == 405 and answer["allow"] == ["GET"]
    assert handle_request("POST", "/jobs", b"{}", store=store, start_execution=FakeStart())[0] == 405
    assert handle_request("GET", "/", None, store=store, start_execution=FakeStart())[0] == 404
    assert handle_request("GET", "/jobs/a/b", None, store=store, start_execution=FakeStart())[0] == 404


def test_secret_params_are_masked(store: JobStore) -> None:
    params = {**PARAMS, "KAFKA_PASSWORD": SECRET, "api_token": "tok-123456"}
    start = FakeStart()
    status, answer = post(store, start, {"pipeline": PIPELINE, "params": params})
    assert status == 202
    assert start.calls[0][1]["params"] == params  # the execution gets them in clear
    status, answer = get(store, f"/jobs/{answer['job_id']}")
    assert answer["params"] == {**PARAMS, "KAFKA_PASSWORD": MASK, "api_token": MASK}
    listed = json.dumps(get(store, "/jobs")[1])
    assert SECRET not in listed and "tok-123456" not in listed and MASK in listed


def test_start_failure_is_502_and_the_job_failed(store: JobStore) -> None:
    from botocore.exceptions import ClientError

    error = ClientError({"Error": {"Code": "StateMachineDoesNotExist", "Message": f"no such machine ({SECRET})"}}, "StartExecution")
    start = FakeStart(error)
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    status, answer = post(store, start, {"pipeline": PIPELINE, "params": {**PARAMS, "KAFKA_PASSWORD": SECRET}, "job_id": job_id})
    assert status == 502, answer
    assert answer["job_id"] == job_id and answer["status"] == FAILED
    assert "StateMachineDoesNotExist" in answer["error"] and SECRET not in answer["error"]
    job = store.get(job_id)
    assert job is not None and job.status == FAILED
    assert job.error is not None and job.error["Error"] == "StartExecutionFailed" and "StateMachineDoesNotExist" in job.error["Cause"]
    shown = get(store, f"/jobs/{job_id}")[1]
    assert shown["status"] == FAILED and SECRET not in json.dumps(shown)


def test_store_failure_is_503(stack: object) -> None:
    status, answer = get(JobStore(f"missing-{uuid.uuid4().hex[:8]}"), "/jobs/x")
    assert status == 503 and "does not exist" in answer["error"]


# ----------------------------------------------------------------------------- Lambda (HTTP API v2)


def http_api_event(method: str, raw_path: str, body: Any = None, query: str = "", stage: str = "$default", b64: bool = False) -> dict[str, Any]:
    """A sample API Gateway HTTP API event, payload format 2.0 (as API Gateway sends it)."""
    text = None if body is None else json.dumps(body)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "abc123.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": "curl/8"},
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": stage,
            "time": "22/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795000000000,
        },
        "body": base64.b64encode(text.encode()).decode() if (b64 and text is not None) else text,
        "isBase64Encoded": b64,
    }


def test_lambda_api_with_http_api_v2_events(store: JobStore) -> None:
    start = FakeStart()
    response = lambda_api(http_api_event("POST", "/imports", {"pipeline": PIPELINE, "params": PARAMS}, b64=True), store=store, start_execution=start)
    assert response["statusCode"] == 202 and response["headers"] == {"content-type": "application/json"}
    job_id = json.loads(response["body"])["job_id"]
    assert start.calls[0][0] == job_id

    response = lambda_api(http_api_event("GET", f"/prod/jobs/{job_id}", stage="prod"), store=store, start_execution=start)
    assert response["statusCode"] == 200 and json.loads(response["body"])["status"] == QUEUED
    response = lambda_api(http_api_event("GET", "/jobs", query="status=QUEUED&limit=5"), store=store, start_execution=start)
    assert [j["job_id"] for j in json.loads(response["body"])["jobs"]] == [job_id]
    response = lambda_api(http_api_event("POST", "/imports", {"pipeline": "nope", "params": {}}), store=store, start_execution=start)
    assert response["statusCode"] == 400 and "no pipeline 'nope'" in json.loads(response["body"])["error"]


def test_lambda_api_from_the_environment(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_JOBS_TABLE", store.table)
    monkeypatch.delenv("PIPELINES_STATE_MACHINE_ARN", raising=False)
    with pytest.raises(ConfigError, match="PIPELINES_STATE_MACHINE_ARN is not set"):
        lambda_api(http_api_event("GET", "/jobs"))
    monkeypatch.setenv("PIPELINES_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:nope")
    response = lambda_api(http_api_event("GET", "/jobs/missing"))
    assert response["statusCode"] == 404


def test_step_functions_starter_names_the_execution_after_the_job(stack: object) -> None:
    """The real starter against moto's Step Functions: execution name = job id; a second start
    of the same name with other input is refused (ExecutionAlreadyExists)."""
    from botocore.exceptions import ClientError

    from pipelines.aws.jobs import _client

    sfn = _client("stepfunctions")
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = sfn.create_state_machine(
        name=f"api-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    start = step_functions_starter(arn, sfn)
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    execution_arn = start(job_id, {"job_id": job_id, "pipeline": PIPELINE, "params": PARAMS})
    described = sfn.describe_execution(executionArn=execution_arn)
    assert described["name"] == job_id
    assert json.loads(described["input"]) == {"job_id": job_id, "pipeline": PIPELINE, "params": PARAMS}
    with pytest.raises(ClientError) as refused:
        start(job_id, {"job_id": job_id, "pipeline": PIPELINE, "params": {}})
    assert refused.value.response["Error"]["Code"] == "ExecutionAlreadyExists"


# ----------------------------------------------------------------------------- local server + CLI


@pytest.fixture
def server(store: JobStore) -> Iterator[tuple[str, FakeStart]]:
    start = FakeStart()
    http_server = make_server(0, store=store, start_execution=start)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    host, port = http_server.server_address[:2]
    try:
        yield f"http://{host}:{port}", start
    finally:
        http_server.shutdown()
        http_server.server_close()
        thread.join(5)


def jobs_cli(*args: str) -> Any:
    from pipelines.cli.jobs import jobs

    return CliRunner().invoke(jobs, list(args), catch_exceptions=False)


def test_jobs_commands_over_the_local_server(server: tuple[str, FakeStart], store: JobStore) -> None:
    url, start = server
    result = jobs_cli("submit", PIPELINE, "--param", "S3_BUCKET=audiences", "--param", "S3_KEY=drops/a=b.csv.gz", "--api", url)
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.stdout)["job_id"]
    assert start.calls == [(job_id, {"job_id": job_id, "pipeline": PIPELINE, "params": {"S3_BUCKET": "audiences", "S3_KEY": "drops/a=b.csv.gz"}})]

    result = jobs_cli("status", job_id, "--api", url)
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == QUEUED

    given = f"job-{uuid.uuid4().hex[:8]}"
    assert jobs_cli("submit", PIPELINE, "--param", "S3_BUCKET=b", "--param", "S3_KEY=k", "--job-id", given, "--api", url).exit_code == 0
    store.transition(given, FAILED, error="boom")
    result = jobs_cli("list", "--status", "failed", "--api", url)
    assert result.exit_code == 0 and [j["job_id"] for j in json.loads(result.stdout)["jobs"]] == [given]
    result = jobs_cli("list", "--limit", "1", "--api", url)
    assert len(json.loads(result.stdout)["jobs"]) == 1

    # errors: message on stderr; exit 2 for a 400, 1 otherwise
    result = jobs_cli("submit", PIPELINE, "--param", "S3_KEY=k", "--api", url)
    assert result.exit_code == 2 and "S3_BUCKET" in result.stderr and result.stdout == ""
    result = jobs_cli("submit", PIPELINE, "--param", "S3_BUCKET=b", "--param", "S3_KEY=k", "--job-id", given, "--api", url)
    assert result.exit_code == 1 and "409" in result.stderr and "exists already" in result.stderr
    result = jobs_cli("status", "no-such-job", "--api", url)
    assert result.exit_code == 1 and "404" in result.stderr


def test_jobs_api_url_from_the_environment_and_unreachable(server: tuple[str, FakeStart], monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import free_port

    url, _ = server
    monkeypatch.setenv("PIPELINES_API_URL", url)
    result = jobs_cli("list")
    assert result.exit_code == 0 and "jobs" in json.loads(result.stdout)
    monkeypatch.setenv("PIPELINES_API_URL", f"http://127.0.0.1:{free_port()}")
    result = jobs_cli("list")
    assert result.exit_code == 1 and "cannot reach the API" in result.stderr


def test_server_answers_bad_json_and_unknown_routes(server: tuple[str, FakeStart]) -> None:
    import urllib.error
    import urllib.request

    url, start = server
    request = urllib.request.Request(f"{url}/imports", data=b"{oops", method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(request, timeout=10)
    assert failed.value.code == 400 and "not JSON" in json.loads(failed.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(f"{url}/nowhere", timeout=10)
    assert failed.value.code == 404 and failed.value.headers["Content-Type"] == "application/json"
    assert start.calls == []


def test_api_serve_without_settings_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.cli.jobs import api

    monkeypatch.delenv("PIPELINES_STATE_MACHINE_ARN", raising=False)
    result = CliRunner().invoke(api, ["serve", "--port", "0"])
    assert result.exit_code == 2 and "PIPELINES_STATE_MACHINE_ARN is not set" in result.stderr


# ----------------------------------------------------------------------------- progress


def test_get_job_shows_its_progress(store: JobStore) -> None:
    from pipelines.aws.progress import record_plan, record_shard
    from pipelines.engine.run import ShardReport

    job_id = post(store, FakeStart(), {"pipeline": PIPELINE, "params": PARAMS})[1]["job_id"]
    assert get(store, f"/jobs/{job_id}")[1]["progress"] is None  # not planned yet
    store.transition(job_id, RUNNING)
    record_plan(job_id, 4, 4096, table=store.table, client=store.dynamodb)
    record_shard(ShardReport(job_id, 1, 1, 1001, 1000, 1, 2048, 0.1, 1), table=store.table, client=store.dynamodb)

    status, answer = get(store, f"/jobs/{job_id}")
    assert status == 200 and answer["status"] == RUNNING and answer["rows_written"] is None  # final counts come at the end
    progress = answer["progress"]
    assert {k: progress[k] for k in ("shards_done", "shards_total", "rows_read", "rows_written", "rows_skipped", "bytes_read", "bytes_total")} == {
        "shards_done": 1, "shards_total": 4, "rows_read": 1001, "rows_written": 1000, "rows_skipped": 1, "bytes_read": 2048, "bytes_total": 4096,
    }
    assert progress["elapsed_seconds"] >= 0
    assert progress["rows_per_second"] is None or progress["rows_per_second"] > 0  # None only within the plan's instant
    assert progress["eta_seconds"] is not None and progress["eta_seconds"] >= 0  # 3 shards left at the pace of the first


def test_jobs_watch_prints_json_lines_until_the_end(server: tuple[str, FakeStart], store: JobStore) -> None:
    """Not on a terminal (CliRunner's stdout is not a TTY): one JSON line per change on stdout; exit by the end status."""
    from pipelines.aws.progress import record_plan, record_shard
    from pipelines.engine.run import ShardReport

    url, _ = server
    ended = {}
    for end in ("SUCCEEDED", "FAILED"):
        job_id = post(store, FakeStart(), {"pipeline": PIPELINE, "params": PARAMS})[1]["job_id"]
        store.transition(job_id, RUNNING)

        def advance(job_id: str = job_id, end: str = end) -> None:
            time.sleep(0.3)
            record_plan(job_id, 2, 10, table=store.table, client=store.dynamodb)
            for shard in range(2):
                time.sleep(0.3)
                record_shard(ShardReport(job_id, shard, 1, 5, 5, 0, 5, 0.1, 1), table=store.table, client=store.dynamodb)
            time.sleep(0.3)
            counts = {"rows_read": 10, "rows_written": 10, "rows_skipped": 0}
            store.transition(job_id, end, **({"counts": counts} if end == "SUCCEEDED" else {"error": {"Error": "RunError", "Cause": "boom"}}))

        thread = threading.Thread(target=advance)
        thread.start()
        result = jobs_cli("watch", job_id, "--interval", "0.1", "--api", url)
        thread.join()
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        ended[end] = (result.exit_code, lines)

    code, lines = ended["SUCCEEDED"]
    assert code == 0, lines
    assert [(line["status"], line["shards_done"], line["rows_written"]) for line in lines] == [
        ("RUNNING", None, None), ("RUNNING", 0, 0), ("RUNNING", 1, 5), ("RUNNING", 2, 10), ("SUCCEEDED", 2, 10)
    ]
    assert all(line["shards_total"] == 2 for line in lines[1:]) and lines[2]["eta_seconds"] is not None
    code, lines = ended["FAILED"]
    assert code == 1 and lines[-1]["status"] == "FAILED" and lines[-1]["error"] == {"Error": "RunError", "Cause": "boom"}


def test_jobs_watch_on_a_terminal_redraws_one_line() -> None:
    import io

    from pipelines.cli.watch import ProgressLine

    stream = io.StringIO()
    view = ProgressLine(stream)
    answers = [
        {"job_id": "j", "status": "QUEUED", "progress": None},
        {"job_id": "j", "status": "RUNNING", "progress": {"shards_done": 2, "shards_total": 5, "rows_written": 40_000, "rows_per_second": 8000.0, "eta_seconds": 7.4, "elapsed_seconds": 5.0}},
        {"job_id": "j", "status": "SUCCEEDED", "rows_written": 100_000, "rows_skipped": 3,
         "progress": {"shards_done": 5, "shards_total": 5, "rows_written": 100_000, "rows_per_second": 8000.0, "eta_seconds": None, "elapsed_seconds": 12.5}},
    ]
    for answer in answers:
        view.show(answer)
    view.end(answers[-1])
    drawn = stream.getvalue().split("\r")[1:]
    assert drawn[0].rstrip() == "j QUEUED  (not planned yet)"
    assert drawn[1].rstrip() == "j RUNNING [##########--------------] 2/5 shards  40,000 rows  8,000 rows/s  ETA 0:07"
    assert [line.rstrip() for line in drawn[2].splitlines()] == [
        "j SUCCEEDED [########################] 5/5 shards  100,000 rows  8,000 rows/s",
        "j SUCCEEDED: 100,000 rows written, 3 skipped in 0:12",
    ]
