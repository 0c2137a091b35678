"""embulk-input-s3's options checked when a config is loaded, and the S3 client they make (no stack:
a client is made, never called). The runs against the local stack are in tests/test_embulk_input.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.engine.config import build_job
from pipelines.engine.errors import ConfigError
from pipelines.engine.s3_access import DoublingBackoff, S3Access, embulk_retries


def s3_input(**options: Any) -> Any:
    raw = {"type": "s3", "bucket": "b", "path_prefix": "in/", "endpoint": "http://127.0.0.1:9", "region": "us-east-1", **options}
    data = {"in": {**raw, "parser": {"type": "csv", "columns": [{"name": "id"}]}}, "out": {"type": "null"}}
    return build_job(data, Path("embulk.yml")).input


@pytest.mark.parametrize(
    "options, message",
    [
        ({"auth_method": "basic"}, "auth_method basic needs access_key_id, secret_access_key"),
        ({"auth_method": "session", "access_key_id": "a", "secret_access_key": "b"}, "auth_method session needs session_token"),
        ({"auth_method": "env", "access_key_id": "a"}, "auth_method env takes no access_key_id"),
        ({"auth_method": "anonymous", "profile_name": "p"}, "auth_method anonymous takes no profile_name"),
        ({"auth_method": "basic", "access_key_id": "a", "secret_access_key": "b", "profile_file": "f"}, "takes no profile_file"),
        ({"access_key_id": "a"}, "set both access_key_id and secret_access_key"),
        ({"session_token": "t"}, "set both access_key_id and secret_access_key"),
        ({"profile_name": "p"}, "profile_name: set the auth_method that takes it"),
        ({"auth_method": "kerberos"}, "expected one of basic, env, instance, profile, properties, anonymous, session, default"),
        ({"total_file_count_limit": 0}, "total_file_count_limit must be at least 1"),
        ({"maximum_retries": -1}, "maximum_retries must be 0 or more"),
        ({"last_modified_time": "2026-12-06T00:00:00Z"}, "Embulk's option 'last_modified_time' is not supported"),
    ],
)
def test_options_checked_when_loaded(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        s3_input(**options)


def test_secrets_stay_out_of_the_settings_repr() -> None:
    plugin = s3_input(auth_method="session", access_key_id="AKIAKEY", secret_access_key="s3cr3t-value", session_token="t0ken-value",
                      http_proxy={"host": "proxy", "port": 3128, "user": "me", "password": "pr0xy-pass"})
    shown = repr(plugin.settings) + repr(plugin.settings.access)
    assert not any(secret in shown for secret in ("AKIAKEY", "s3cr3t-value", "t0ken-value", "pr0xy-pass"))


def test_path_wins_over_path_prefix_with_a_note() -> None:
    plugin = s3_input(path="in/a.csv")
    assert plugin.notes == ["embulk.yml: in.path_prefix: not used, since path is set (as in Embulk: path wins)"]


def test_retry_settings_take_embulks_defaults_for_those_left_out() -> None:
    assert embulk_retries(None, None, None) is None
    assert embulk_retries(2, None, None) == (2, 30_000, 480_000)
    assert embulk_retries(None, 100, 1000) == (7, 100, 1000)
    backoff = DoublingBackoff(0.1, 0.5)
    assert [backoff.delay_amount(SimpleNamespace(attempt_number=n)) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]


def test_client_made_with_the_retries_proxy_and_anonymous_signing() -> None:
    from botocore import UNSIGNED

    plugin = s3_input(auth_method="anonymous", maximum_retries=2, initial_retry_interval_millis=10,
                      http_proxy={"host": "proxy.internal", "port": 3128, "https": False})
    config = plugin.client.meta.config
    assert config.retries["total_max_attempts"] == 3
    assert config.proxies == {"http": "http://proxy.internal:3128", "https": "http://proxy.internal:3128"}
    assert config.signature_version is UNSIGNED


def test_session_keys_reach_the_client_and_the_default_keeps_botocores_retries() -> None:
    plugin = s3_input(auth_method="session", access_key_id="AKIAKEY", secret_access_key="secret", session_token="token")
    credentials = plugin.client._request_signer._credentials.get_frozen_credentials()
    assert (credentials.access_key, credentials.token) == ("AKIAKEY", "token")
    assert s3_input().client.meta.config.retries["total_max_attempts"] == 9  # no Embulk retry option: botocore's standard mode


def test_the_access_is_hashable_for_the_client_cache() -> None:
    assert hash(S3Access("basic", "a", "b", retries=(1, 2, 3))) == hash(S3Access("basic", "a", "b", retries=(1, 2, 3)))
