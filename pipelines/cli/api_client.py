"""How `pipelines jobs` talks to the HTTP API: one JSON request at a time over urllib, signed with
SigV4 (pipelines.aws.signing) when the API is an AWS one or when asked, and the options that say
where the API is and whether to sign (`api_options`).

A non-2xx answer prints ``error: <message>`` on stderr and exits 1 (2 when the API answered 400, or
when a signature was wanted and no region or credentials were found). Imports are lazy:
`pipelines --help` stays fast, and botocore is loaded only to sign.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

API_ENV = "PIPELINES_API_URL"
SIGN_ENV = "PIPELINES_API_SIGN"
DEFAULT_API = "http://127.0.0.1:8080"
_NOT_YET = object()


@dataclass
class ApiEndpoint:
    """Where the API is, and whether its requests are signed (None: when the URL is an AWS one)."""

    url: str
    sign: bool | None = None
    region: str | None = None
    _signer: Any = field(default=_NOT_YET, repr=False)

    def signer(self) -> Any:
        """The RequestSigner, or None for unsigned requests; made once (a failure exits 2)."""
        if self._signer is _NOT_YET:
            from pipelines.aws.signing import signer_for
            from pipelines.engine.errors import ConfigError

            try:
                self._signer = signer_for(self.url, self.sign, self.region)
            except ConfigError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(exc.exit_code)
        return self._signer


class ApiError(Exception):
    """A request that got no usable answer: its message, the exit code it ends a command with, and
    whether asking again may pass (a 429 or 5xx answer, no answer at all)."""

    def __init__(self, message: str, exit_code: int = 1, transient: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.transient = transient


TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def call_api(api: ApiEndpoint, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    """The JSON answer of a 2xx; otherwise prints the error on stderr and exits 1 (2 for a 400)."""
    try:
        return request_json(api, method, path, body, timeout)
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


def request_json(api: ApiEndpoint, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    """The JSON answer of a 2xx; ApiError otherwise."""
    import json
    import urllib.error
    import urllib.request

    url = api.url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if data is not None else {})}
    signer = api.signer()
    if signer is not None:
        headers = signer.signed_headers(method, url, data, headers)
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        message = f"{method} {url}: {exc.code}: {_message(exc)}{_hint(exc.code, signer)}"
        raise ApiError(message, 2 if exc.code == 400 else 1, exc.code in TRANSIENT_STATUSES) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        message = f"cannot reach the API at {api.url} ({reason}); is `pipelines api serve` running, or {API_ENV} set?"
        raise ApiError(message, transient=True) from None
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError(f"{method} {url}: the answer is not JSON: {text[:200]!r}") from None


def _message(exc: Any) -> str:
    """The API's error message: our API's {"error"}, API Gateway's {"message"}, else the raw text."""
    import json

    raw = exc.read().decode("utf-8", "replace")
    try:
        answer = json.loads(raw)
        return str(answer.get("error") or answer.get("message") or raw)
    except (ValueError, AttributeError):
        return raw.strip() or str(exc.reason)


def _hint(status: int, signer: Any) -> str:
    """What to do about a 403 from an API with IAM authorization."""
    if status != 403:
        return ""
    if signer is None:
        return f" (the request was not signed: an API with IAM authorization needs --sign, or {SIGN_ENV}=1, and --region)"
    return (
        f" (signed for region {signer.region}: check the region, and that the credentials may call "
        "execute-api:Invoke on this route)"
    )


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--api, --sign/--no-sign and --region, given to `command` as one ApiEndpoint argument `api`."""

    @functools.wraps(command)
    def with_api(*args: Any, api_url: str, sign: bool | None, region: str | None, **kwargs: Any) -> Any:
        return command(*args, api=ApiEndpoint(api_url, sign, region), **kwargs)

    options = [
        click.option(
            "--api", "api_url", envvar=API_ENV, show_envvar=True, default=DEFAULT_API, show_default=True, metavar="URL",
            help="The API's base URL (API Gateway's invoke URL on AWS).",
        ),
        click.option(
            "--sign/--no-sign", default=None, envvar=SIGN_ENV, show_envvar=True,
            help="Sign the requests with SigV4 (IAM authorization), or never. Unset: signed when the URL is "
            "https://ID.execute-api.REGION.amazonaws.com.",
        ),
        click.option(
            "--region", metavar="REGION",
            help="The region of the signature. Unset: the URL's, else the AWS settings' (AWS_REGION, AWS_DEFAULT_REGION, the profile).",
        ),
    ]
    for option in reversed(options):
        with_api = option(with_api)
    return with_api
