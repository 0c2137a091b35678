"""How an S3 client authenticates and retries, from embulk-input-s3's options.

`auth_method` (basic, env, instance, profile, session, anonymous, default; `properties` is refused:
there are no Java system properties here) picks the credentials; `maximum_retries`,
`initial_retry_interval_millis` and `maximum_retry_interval_millis` replace botocore's standard
retry backoff by Embulk's (the interval doubles from the initial one up to the maximum). Secrets
(keys, session token, proxy password) are never logged and never part of an error message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pipelines.engine.errors import RunError

# Embulk's defaults, for the retry options a config leaves out once it sets one of them.
EMBULK_MAXIMUM_RETRIES = 7
EMBULK_INITIAL_RETRY_MILLIS = 30_000
EMBULK_MAXIMUM_RETRY_MILLIS = 480_000


@dataclass(frozen=True)
class S3Access:
    """What an S3 client is made with besides endpoint and region (hashable: part of the client cache key)."""

    auth_method: str | None = None  # None: the keys if given, else boto's default chain (before these options)
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile_file: str | None = None
    profile_name: str | None = None
    retries: tuple[int, int, int] | None = None  # (maximum_retries, initial ms, maximum ms), or botocore's
    proxy_url: str | None = None

    def __repr__(self) -> str:  # the keys stay out of tracebacks and logs
        return f"S3Access(auth_method={self.auth_method!r}, retries={self.retries!r})"


def embulk_retries(maximum: int | None, initial_ms: int | None, maximum_ms: int | None) -> tuple[int, int, int] | None:
    """Embulk's retry settings with its defaults for those left out; None when none is set (botocore's then)."""
    if maximum is None and initial_ms is None and maximum_ms is None:
        return None
    return (
        EMBULK_MAXIMUM_RETRIES if maximum is None else maximum,
        EMBULK_INITIAL_RETRY_MILLIS if initial_ms is None else initial_ms,
        EMBULK_MAXIMUM_RETRY_MILLIS if maximum_ms is None else maximum_ms,
    )


def client_arguments(access: S3Access) -> tuple[Any, dict[str, Any]]:
    """(the boto3 session, the keyword arguments of its client) for `access`'s auth_method."""
    import boto3

    method = access.auth_method
    keys = {"aws_access_key_id": access.access_key_id, "aws_secret_access_key": access.secret_access_key}
    if method == "env":
        return boto3.session.Session(), _environment_keys()
    if method == "instance":
        return boto3.session.Session(botocore_session=_instance_session()), {}
    if method == "profile":
        return _profile_session(access), {}
    if method == "session":
        return boto3.session.Session(), {**keys, "aws_session_token": access.session_token}
    if method in ("anonymous", "default"):
        return boto3.session.Session(), {}
    return boto3.session.Session(), keys  # basic, or no auth_method (keys or the default chain)


def _environment_keys() -> dict[str, Any]:
    """Embulk's `env`: AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY) and AWS_SECRET_ACCESS_KEY (or AWS_SECRET_KEY)."""
    key_id = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or os.environ.get("AWS_SECRET_KEY")
    if not key_id or not secret:
        missing = "AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY)" if not key_id else "AWS_SECRET_ACCESS_KEY (or AWS_SECRET_KEY)"
        raise RunError(f"auth_method env: {missing} is not set in the environment", where="in.auth_method")
    return {"aws_access_key_id": key_id, "aws_secret_access_key": secret, "aws_session_token": os.environ.get("AWS_SESSION_TOKEN")}


def _instance_session() -> Any:
    """Embulk's `instance`: the role of where it runs: the ECS/Fargate task's, else the EC2 instance profile's."""
    import botocore.session
    from botocore.credentials import (
        ContainerProvider,
        CredentialResolver,
        InstanceMetadataFetcher,
        InstanceMetadataProvider,
    )

    session = botocore.session.Session()
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=2)
    session.register_component("credential_provider", CredentialResolver([ContainerProvider(), InstanceMetadataProvider(fetcher)]))
    return session


def _profile_session(access: S3Access) -> Any:
    """Embulk's `profile`: profile_name (default "default") of profile_file (default
    $AWS_CREDENTIAL_PROFILES_FILE, then botocore's: $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials)."""
    import boto3
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    session = botocore.session.Session()
    path = access.profile_file or os.environ.get("AWS_CREDENTIAL_PROFILES_FILE")
    if path:
        session.set_config_variable("credentials_file", os.path.expanduser(path))
    name = access.profile_name or "default"
    try:
        return boto3.session.Session(botocore_session=session, profile_name=name)
    except ProfileNotFound:
        where = path or "the shared credentials file"
        raise RunError(f"auth_method profile: no profile '{name}' in {where}", where="in.profile_name") from None


def client_config(access: S3Access | None, attempts: int, read_timeout: float) -> Any:
    """botocore's Config: standard retries (`attempts` tries, or Embulk's maximum_retries + 1), timeouts,
    the proxy, and no signing for `anonymous`."""
    from botocore import UNSIGNED
    from botocore.config import Config

    options: dict[str, Any] = {"read_timeout": read_timeout, "connect_timeout": 10}
    if access is not None and access.retries is not None:
        attempts = access.retries[0] + 1
    options["retries"] = {"total_max_attempts": attempts, "mode": "standard"}
    if access is not None and access.proxy_url:
        options["proxies"] = {"http": access.proxy_url, "https": access.proxy_url}
    if access is not None and access.auth_method == "anonymous":
        options["signature_version"] = UNSIGNED
    return Config(**options)


class DoublingBackoff:
    """Embulk's retry waits: the initial interval, doubling after each try, never above the maximum."""

    def __init__(self, initial_seconds: float, maximum_seconds: float) -> None:
        self.initial, self.maximum = initial_seconds, maximum_seconds

    def delay_amount(self, context: Any) -> float:
        return min(self.initial * 2 ** (context.attempt_number - 1), self.maximum)


def use_embulk_backoff(client: Any, access: S3Access | None) -> None:
    """Replaces the client's standard retry handler by one with Embulk's waits (same retry conditions,
    same retry quota), when the config set Embulk's retry options."""
    if access is None or access.retries is None:
        return
    from botocore.retries import quota, standard

    tries, initial_ms, maximum_ms = access.retries
    name = client.meta.service_model.service_id.hyphenize()
    adapter = standard.RetryEventAdapter()
    detector = standard.ThrottlingErrorDetector(adapter)
    retry_quota = standard.RetryQuotaChecker(quota.RetryQuota(), detector)
    policy = standard.RetryPolicy(standard.StandardRetryConditions(max_attempts=tries + 1), DoublingBackoff(initial_ms / 1000, maximum_ms / 1000))
    handler = standard.RetryHandler(policy, adapter, retry_quota, service_name=name)
    client.meta.events.unregister(f"needs-retry.{name}", unique_id=f"retry-config-{name}")
    client.meta.events.register(f"needs-retry.{name}", handler.needs_retry, unique_id=f"retry-config-{name}")
    client.meta.events.register(f"after-call.{name}", retry_quota.release_retry_quota)
