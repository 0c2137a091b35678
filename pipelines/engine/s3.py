"""The engine's S3 client (made once per settings and process), and S3's answers as the engine's
errors: one rule, for reads (the S3 input) and writes (the S3 output,
plans, reports, manifests), of what may pass on retry.

botocore (standard retry mode) retries 5xx answers, throttles, timeouts and broken connections
itself; what is still failing when its tries are spent is a TransientRunError (exit 75: the workflow
retries the shard). An answer that will not change by asking again (a missing bucket or object,
access denied, an object whose ETag changed) is a RunError (exit 1).
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

from pipelines.engine.errors import ConfigError, RunError, TransientRunError, aws_error_code

READ_TIMEOUT_SECONDS = 120.0  # S3 sending nothing this long breaks a read
DEFAULT_MAX_ATTEMPTS = 9  # botocore's tries of one request: the first and 8 retries

# Error codes S3 answers when it is busy or slow (besides any 5xx status).
TRANSIENT_S3_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "RequestLimitExceeded",
})


def transient_s3_error(exc: Any, uri: str) -> TransientRunError | None:
    """A TransientRunError for an S3 answer that may pass (a 5xx, a throttle) after botocore's retries; None otherwise."""
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    status, code = meta.get("HTTPStatusCode") or 0, aws_error_code(exc)
    if status < 500 and code not in TRANSIENT_S3_CODES:
        return None
    tries = 1 + int(meta.get("RetryAttempts") or 0)
    message = error.get("Message", "").rstrip(".")
    answer = f"{status} {code}" if code and code != str(status) else str(status)  # a HEAD's error has no body: its code is the status
    return TransientRunError(
        f"S3 answered {answer}{': ' + message if message else ''} ({exc.operation_name}, {tries} {'try' if tries == 1 else 'tries'}); "
        "it may pass on retry",
        where=uri,
    )


def s3_error(exc: Exception, uri: str) -> RunError:
    """A RunError for a boto/botocore exception, in words; a TransientRunError when it may pass on retry."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        transient = transient_s3_error(exc, uri)
        if transient is not None:
            return transient
        code = aws_error_code(exc)
        if code == "NoSuchBucket":
            return RunError("the bucket does not exist", where=uri)
        if code in ("NoSuchKey", "404", "NotFound"):
            return RunError("the object does not exist", where=uri)
        if code in ("PreconditionFailed", "412"):
            return RunError("the object changed since it was listed (its ETag differs)", where=uri)
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return RunError(f"access denied ({code})", where=uri)
        return RunError(f"S3 error {code}: {exc.response.get('Error', {}).get('Message', '')}", where=uri)
    if isinstance(exc, BotoCoreError):
        from botocore.exceptions import NoCredentialsError, NoRegionError, ParamValidationError, PartialCredentialsError

        if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError | ParamValidationError):
            return RunError(f"the AWS settings will not pass on a retry: {exc}", where=uri)  # a configuration to mend
        return TransientRunError(f"cannot reach S3: {exc}", where=uri)
    return RunError(str(exc), where=uri)


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
# What a client is made from besides the arguments: a change (tests, a Lambda reused with new
# settings) makes a new one.
_CLIENT_ENV = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_MAX_ATTEMPTS",
    "AWS_ACCESS_KEY", "AWS_CREDENTIAL_PROFILES_FILE", "AWS_SHARED_CREDENTIALS_FILE",
)


def s3_client(
    endpoint: str | None = None, region: str | None = None, access_key_id: str | None = None, secret_access_key: str | None = None,
    read_timeout: float | None = None, access: Any = None,
) -> Any:
    """An S3 client, made once per settings and process: making one loads botocore's service
    models (a quarter of a second), and a run reads and writes through several. `access` (a
    pipelines.engine.s3_access.S3Access: auth_method, retries, proxy) replaces the two keys."""
    read_timeout = read_timeout or READ_TIMEOUT_SECONDS
    key = (endpoint, region, access_key_id, secret_access_key, read_timeout, access, *(os.environ.get(name) for name in _CLIENT_ENV))
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            if access is None:
                client = _new_s3_client(endpoint, region, access_key_id, secret_access_key, read_timeout)
            else:
                client = _new_s3_client_with(endpoint, region, read_timeout, access)
            _CLIENTS[key] = client
        return client


def _new_s3_client_with(endpoint: str | None, region: str | None, read_timeout: float, access: Any) -> Any:
    from pipelines.engine.s3_access import client_arguments, client_config, use_embulk_backoff

    session, arguments = client_arguments(access)
    config = client_config(access, max_attempts(), read_timeout)
    client = session.client("s3", endpoint_url=endpoint, region_name=region, config=config, **arguments)
    use_embulk_backoff(client, access)
    return client


def max_attempts() -> int:
    """botocore's tries of one request: $AWS_MAX_ATTEMPTS (the AWS SDKs' setting), or DEFAULT_MAX_ATTEMPTS."""
    value = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not value:
        return DEFAULT_MAX_ATTEMPTS
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"expected a whole number of tries, at least 1; got {value!r}", where="$AWS_MAX_ATTEMPTS")
    return int(value)


def _new_s3_client(
    endpoint: str | None, region: str | None, access_key_id: str | None, secret_access_key: str | None, read_timeout: float
) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": max_attempts(), "mode": "standard"},
        read_timeout=read_timeout,
        connect_timeout=10,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


class S3Client:
    """The S3 client of a plugin whose settings name `endpoint`, `region`, `access_key_id` and
    `secret_access_key` (the S3 input and output), made on first use."""

    settings: Any

    @functools.cached_property
    def client(self) -> Any:
        s = self.settings
        return s3_client(s.endpoint, s.region, s.access_key_id, s.secret_access_key, getattr(s, "read_timeout_seconds", None))
