"""`pipelines jobs watch` rides out a few answers that may pass (API Gateway's 429 and 5xx, a dropped
connection) once the job was seen, and fails at once on anything else or on the first request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from local_http import JsonHandler, serving
from click.testing import CliRunner

from pipelines.cli.api_client import ApiError
from pipelines.cli.watch import MAX_MISSES, follow

RUNNING = {"job_id": "j", "status": "RUNNING", "progress": None}
SUCCEEDED = {"job_id": "j", "status": "SUCCEEDED", "progress": None, "rows_written": 3}
BUSY = ApiError("GET /jobs/j: 503: Service Unavailable", transient=True)


class Recorder:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.ended: list[str] = []

    def show(self, answer: dict[str, Any]) -> None:
        self.shown.append(answer["status"])

    def end(self, answer: dict[str, Any]) -> None:
        self.ended.append(answer["status"])


def run_follow(answers: list[Any]) -> tuple[Any, Recorder, list[str], list[float]]:
    """follow() over `answers` (an ApiError is raised where it stands): (its result or error, the view, warnings, sleeps)."""
    queue, view, warnings, sleeps = list(answers), Recorder(), [], []

    def fetch() -> dict[str, Any]:
        answer = queue.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return answer

    try:
        result: Any = follow(fetch, view, 1.0, warnings.append, sleeps.append)
    except ApiError as exc:
        result = exc
    return result, view, warnings, sleeps


def test_transient_errors_after_the_job_was_seen_are_asked_again() -> None:
    result, view, warnings, sleeps = run_follow([RUNNING, BUSY, BUSY, SUCCEEDED])
    assert result == 0 and view.shown == ["RUNNING", "SUCCEEDED"] and view.ended == ["SUCCEEDED"]
    assert warnings == [f"warning: {BUSY}; asking again (1 of {MAX_MISSES - 1})", f"warning: {BUSY}; asking again (2 of {MAX_MISSES - 1})"]
    assert sleeps == [1.0, 2.0, 4.0]  # the interval, then longer waits while the API does not answer


def test_the_first_request_and_lasting_or_final_errors_are_not_retried() -> None:
    assert run_follow([BUSY])[0] is BUSY  # a wrong URL fails at once
    refused = ApiError("GET /jobs/j: 403: Forbidden")
    assert run_follow([RUNNING, refused])[0] is refused
    result, _, warnings, _ = run_follow([RUNNING, *[BUSY] * MAX_MISSES])
    assert result is BUSY and len(warnings) == MAX_MISSES - 1
    assert run_follow([RUNNING, {**SUCCEEDED, "status": "FAILED"}])[0] == 1


class FlakyApi(JsonHandler):
    """GET /jobs/j: RUNNING, then 503 (as API Gateway answers when the Lambda is throttled), then SUCCEEDED."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.calls += 1
        status, answer = {1: (200, RUNNING), 2: (503, {"message": "Service Unavailable"})}.get(server.calls, (200, SUCCEEDED))
        self.send_json(status, answer)


@pytest.fixture
def flaky_api() -> Iterator[str]:
    with serving(FlakyApi, calls=0) as server:
        yield server.url


def test_watch_warns_and_goes_on_after_a_503(flaky_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.cli.jobs import jobs

    monkeypatch.delenv("PIPELINES_API_SIGN", raising=False)
    result = CliRunner().invoke(jobs, ["watch", "j", "--interval", "0.1", "--api", flaky_api], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning: GET " in result.stderr and "503: Service Unavailable; asking again (1 of 4)" in result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["RUNNING", "SUCCEEDED"]
