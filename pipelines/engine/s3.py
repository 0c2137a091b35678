"""S3's answers as the engine's errors: one rule, for reads (the S3 input) and writes (the S3 output,
plans, reports, manifests), of what may pass on retry.

botocore (standard retry mode) retries 5xx answers, throttles, timeouts and broken connections
itself; what is still failing when its tries are spent is a TransientRunError (exit 75: the workflow
retries the shard). An answer that will not change by asking again (a missing bucket or object,
access denied, an object whose ETag changed) is a RunError (exit 1).
"""

from __future__ import annotations

from typing import Any

from pipelines.engine.errors import RunError, TransientRunError

# Error codes S3 answers when it is busy or slow (besides any 5xx status).
TRANSIENT_S3_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "RequestLimitExceeded",
})


def transient_s3_error(exc: Any, uri: str) -> TransientRunError | None:
    """A TransientRunError for an S3 answer that may pass (a 5xx, a throttle) after botocore's retries; None otherwise."""
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    status, code = meta.get("HTTPStatusCode") or 0, error.get("Code", "")
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
        code = exc.response.get("Error", {}).get("Code", "")
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
