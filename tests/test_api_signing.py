"""`pipelines jobs` signs its requests with SigV4 for an API with IAM authorization.

The signatures are checked by tests/sigv4_check.py, written from the specification without botocore
and itself checked against AWS's published test vectors; a tiny local HTTP server verifies each
request's Authorization header with the same secret, as API Gateway would, and answers 403 otherwise.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest
from local_http import JsonHandler, serving
import sigv4_check
from click.testing import CliRunner

from pipelines.aws.signing import RequestSigner, region_of, signer_for
from pipelines.engine.errors import ConfigError

ACCESS_KEY = "AKIDPIPELINESTEST"
SECRET = "pIpElInEs/TeSt+SeCrEt0123456789abcdefGHIJ"
TOKEN = "session-token-for-the-test"

# AWS's Signature Version 4 test suite (get-vanilla, get-vanilla-query-order-key-case).
VECTOR_KEY, VECTOR_SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VECTOR_DATE = "20150830T123600Z"
VECTORS = [
    ("/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
]


@pytest.mark.parametrize(("target", "expected"), VECTORS)
def test_the_independent_check_computes_the_published_signatures(target: str, expected: str) -> None:
    headers = {"host": "example.amazonaws.com", "x-amz-date": VECTOR_DATE}
    request = sigv4_check.canonical_request("GET", target, headers, ["host", "x-amz-date"], b"")
    assert sigv4_check.signature(VECTOR_SECRET, VECTOR_DATE, "us-east-1", "service", request) == expected


@pytest.mark.parametrize(("target", "expected"), VECTORS)
def test_the_signer_gives_the_published_signatures(target: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth
    from botocore.credentials import Credentials

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime.datetime(2015, 8, 30, 12, 36, 0))
    signer = RequestSigner(Credentials(VECTOR_KEY, VECTOR_SECRET), "us-east-1", service="service")
    headers = signer.signed_headers("GET", f"https://example.amazonaws.com{target}", None, {})
    assert headers["X-Amz-Date"] == VECTOR_DATE
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={VECTOR_KEY}/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={expected}"
    )
    assert VECTOR_SECRET not in repr(signer)


def test_debug_logging_shows_no_credential(caplog: pytest.LogCaptureFixture) -> None:
    from botocore.credentials import Credentials

    with caplog.at_level("DEBUG"):
        signer = RequestSigner(Credentials(ACCESS_KEY, SECRET, TOKEN), "eu-west-1")
        signer.signed_headers("GET", "https://api.example/jobs", None, {})
    assert TOKEN not in caplog.text and SECRET not in caplog.text


def test_the_check_refuses_a_tampered_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.credentials import Credentials

    signer = RequestSigner(Credentials(ACCESS_KEY, SECRET, TOKEN), "eu-west-1")
    body = b'{"pipeline": "p"}'
    headers = signer.signed_headers("POST", "https://api.example/imports?x=1", body, {"Content-Type": "application/json"})
    headers["Host"] = "api.example"
    secrets = {ACCESS_KEY: SECRET}
    assert sigv4_check.verify("POST", "/imports?x=1", headers, body, secrets, region="eu-west-1") is None
    assert sigv4_check.verify("POST", "/imports?x=2", headers, body, secrets) == "the signature does not match"
    assert sigv4_check.verify("POST", "/imports?x=1", headers, b"{}", secrets) == "the signature does not match"
    assert sigv4_check.verify("POST", "/imports?x=1", headers, body, {ACCESS_KEY: "other"}) == "the signature does not match"
    assert sigv4_check.verify("POST", "/imports?x=1", headers, body, secrets, region="us-east-1").startswith("wrong scope")


# ----------------------------------------------------------------------------- a local API that checks signatures


class CheckingApi(JsonHandler):
    """Answers like the jobs API, after checking the request's signature when the server requires one."""

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes) -> None:
        server: Any = self.server
        headers = dict(self.headers.items())
        server.seen.append((self.command, self.path, headers, body))
        problem = sigv4_check.verify(self.command, self.path, headers, body, server.secrets, region=server.region) if server.secrets else None
        if problem is not None:
            self.send_json(403, {"message": f"Forbidden: {problem}"})
        elif self.command == "POST":
            self.send_json(202, {"job_id": "job-1", "status": "QUEUED", **json.loads(body)})
        elif self.path.startswith("/jobs/"):
            self.send_json(200, {"job_id": self.path.rsplit("/", 1)[1], "status": "SUCCEEDED", "rows_written": 3})
        else:
            self.send_json(200, {"jobs": []})



@pytest.fixture
def api_server() -> Iterator[Any]:
    with serving(CheckingApi, seen=[], secrets={}, region=None) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """The test's static credentials in the environment, and nothing else of the machine's AWS settings."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "PIPELINES_API_SIGN", "PIPELINES_API_URL",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    return monkeypatch


def jobs_cli(*args: str) -> Any:
    from pipelines.cli.jobs import jobs

    return CliRunner().invoke(jobs, list(args), catch_exceptions=False)


def every_jobs_command(url: str, *more: str) -> list[Any]:
    return [
        jobs_cli("submit", "send_audience_to_kafka", "--param", "S3_KEY=drops/a b.csv", "--api", url, *more),
        jobs_cli("status", "job-1", "--api", url, *more),
        jobs_cli("list", "--status", "failed", "--limit", "5", "--api", url, *more),
        jobs_cli("watch", "job-1", "--interval", "0.1", "--api", url, *more),
    ]


def test_every_jobs_command_sends_a_signature_the_api_accepts(api_server: Any, aws_env: pytest.MonkeyPatch) -> None:
    api_server.secrets, api_server.region = {ACCESS_KEY: SECRET}, "eu-west-1"
    results = every_jobs_command(api_server.url, "--sign", "--region", "eu-west-1")
    assert [r.exit_code for r in results] == [0, 0, 0, 0], [r.output for r in results]
    assert json.loads(results[0].stdout)["params"] == {"S3_KEY": "drops/a b.csv"}
    assert [(method, path) for method, path, _, _ in api_server.seen] == [
        ("POST", "/imports"), ("GET", "/jobs/job-1"), ("GET", "/jobs?limit=5&status=FAILED"), ("GET", "/jobs/job-1"),
    ]
    for _, _, headers, _ in api_server.seen:
        assert headers["X-Amz-Security-Token"] == TOKEN
    assert not any(SECRET in r.output for r in results)


def test_the_environment_asks_for_signatures(api_server: Any, aws_env: pytest.MonkeyPatch) -> None:
    api_server.secrets, api_server.region = {ACCESS_KEY: SECRET}, "ap-south-1"
    aws_env.setenv("PIPELINES_API_SIGN", "1")
    aws_env.setenv("AWS_REGION", "ap-south-1")
    aws_env.setenv("PIPELINES_API_URL", api_server.url)
    result = jobs_cli("status", "job-1")
    assert result.exit_code == 0, result.output
    assert "Authorization" in api_server.seen[-1][2]


def test_a_refused_signature_exits_1_with_a_hint_and_no_secret(api_server: Any, aws_env: pytest.MonkeyPatch) -> None:
    api_server.secrets = {ACCESS_KEY: "another-secret"}
    result = jobs_cli("status", "job-1", "--api", api_server.url, "--sign", "--region", "eu-west-1")
    assert result.exit_code == 1
    assert "403: Forbidden: the signature does not match" in result.stderr
    assert "signed for region eu-west-1" in result.stderr and "execute-api:Invoke" in result.stderr
    assert SECRET not in result.output and TOKEN not in result.output


def test_a_local_api_gets_no_signature(api_server: Any, aws_env: pytest.MonkeyPatch) -> None:
    results = every_jobs_command(api_server.url)
    assert [r.exit_code for r in results] == [0, 0, 0, 0], [r.output for r in results]
    assert len(api_server.seen) == 4
    for _, _, headers, _ in api_server.seen:
        assert not {"authorization", "x-amz-date", "x-amz-security-token"} & {name.lower() for name in headers}


def test_an_unsigned_request_refused_says_how_to_sign(api_server: Any, aws_env: pytest.MonkeyPatch) -> None:
    api_server.secrets = {ACCESS_KEY: SECRET}
    result = jobs_cli("list", "--api", api_server.url)
    assert result.exit_code == 1 and "403" in result.stderr and "needs --sign" in result.stderr


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com", "eu-west-1"),
        ("https://a1b2c3d4e5.execute-api.us-gov-west-1.amazonaws.com/prod/", "us-gov-west-1"),
        ("https://a1b2c3d4e5.execute-api.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("https://a1b2c3d4e5-vpce-0123456789abcdef0.execute-api.us-east-1.vpce.amazonaws.com", "us-east-1"),
        ("http://127.0.0.1:8080", None),
        ("https://api.example.com", None),
        ("https://execute-api.eu-west-1.amazonaws.com.example.com", None),
    ],
)
def test_the_region_comes_from_an_api_gateway_url(url: str, region: str | None) -> None:
    assert region_of(url) == region


def test_when_requests_are_signed(aws_env: pytest.MonkeyPatch) -> None:
    aws_url, local = "https://abc123.execute-api.eu-central-1.amazonaws.com", "http://127.0.0.1:8080"
    assert signer_for(aws_url, None, None).region == "eu-central-1"
    assert signer_for(aws_url, None, "eu-west-3").region == "eu-west-3"
    assert signer_for(aws_url, False, None) is None
    assert signer_for(local, None, None) is None
    with pytest.raises(ConfigError, match="no region"):
        signer_for(local, True, None)
    aws_env.setenv("AWS_REGION", "sa-east-1")
    assert signer_for(local, True, None).region == "sa-east-1"


def test_no_credentials_is_a_clear_error(aws_env: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        aws_env.delenv(name)
    result = jobs_cli("list", "--api", "https://abc123.execute-api.eu-west-1.amazonaws.com")
    assert result.exit_code == 2
    assert "no AWS credentials found" in result.stderr and "--no-sign" in result.stderr
