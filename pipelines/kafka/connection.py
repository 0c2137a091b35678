"""How every Kafka client of a pipeline connects: brokers and authentication, shared by the Kafka
input and output (their settings derive from `KafkaConnectionSettings`).

    auth: none       # PLAINTEXT, or whatever other_*_configs set
    auth: scram      # SASL/SCRAM-SHA-512 over TLS, credentials from a Secrets Manager secret
    auth: msk_iam    # SASL/OAUTHBEARER over TLS with an MSK IAM token signed by the run's AWS role

With `scram`, `sasl_secret_arn` names a secret holding {"username": ..., "password": ...} (the
format Amazon MSK uses), read once per process at run time, so the ECS task and the Lambda get no
password in their environment; `sasl_username`/`sasl_password` are for brokers outside AWS.

Also what every client shares once connected: librdkafka's logger, the label errors about the
brokers carry, and the topic's partition count from the brokers' metadata.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pipelines.engine.settings import option

SCRAM_MECHANISM = "SCRAM-SHA-512"  # what Amazon MSK supports
AUTH_KEYS = ("security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password", "oauth_cb")


@dataclass(frozen=True, kw_only=True)
class KafkaConnectionSettings:
    auth: Literal["none", "scram", "msk_iam"] = "none"
    tls: bool = True  # SASL over TLS (SASL_SSL); false: SASL_PLAINTEXT, for a broker without TLS
    sasl_secret_arn: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = option(None, secret=True)
    region: str | None = None  # msk_iam: the cluster's region (default: the run's AWS region)

    def check_connection(self, other_configs: Any) -> None:
        """Raises ValueError (the config error) for options that do not go together."""
        if self.auth == "scram":
            if self.sasl_secret_arn is None and (self.sasl_username is None or self.sasl_password is None):
                raise ValueError("auth scram needs sasl_secret_arn (a Secrets Manager secret), or sasl_username and sasl_password")
            if self.sasl_secret_arn is not None and (self.sasl_username is not None or self.sasl_password is not None):
                raise ValueError("give sasl_secret_arn or sasl_username/sasl_password, not both")
        elif self.sasl_secret_arn is not None or self.sasl_username is not None or self.sasl_password is not None:
            raise ValueError(f"sasl_secret_arn, sasl_username and sasl_password go with auth: scram, not auth: {self.auth}")
        if self.auth == "msk_iam" and not self.tls:
            raise ValueError("auth msk_iam needs TLS (MSK's IAM listener); remove tls: false")
        if self.auth != "none":
            for key in AUTH_KEYS:
                if key in other_configs:
                    raise ValueError(f"'{key}' is set by auth: {self.auth}; remove it from the other_*_configs")


def client_config(settings: Any) -> dict[str, Any]:
    """The brokers and the authentication settings of a librdkafka client (producer, consumer, admin)."""
    config: dict[str, Any] = {"bootstrap.servers": ",".join(settings.brokers)}
    if settings.auth == "scram":
        username, password = (
            scram_secret(settings.sasl_secret_arn) if settings.sasl_secret_arn is not None else (settings.sasl_username, settings.sasl_password)
        )
        config.update(
            {
                "security.protocol": "SASL_SSL" if settings.tls else "SASL_PLAINTEXT",
                "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.username": username,
                "sasl.password": password,
            }
        )
    elif settings.auth == "msk_iam":
        config.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", "oauth_cb": msk_iam_token(settings.region)})
    return config


@functools.cache
def scram_secret(arn: str) -> tuple[str, str]:
    """(username, password) from a Secrets Manager secret {"username", "password"}; errors name the ARN only."""
    import json

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from pipelines.engine.errors import ConfigError, RunError, TransientRunError, aws_error_code

    try:
        text = boto3.session.Session().client("secretsmanager").get_secret_value(SecretId=arn).get("SecretString")
    except ClientError as exc:
        raise RunError(f"cannot read the Kafka SASL secret ({aws_error_code(exc)})", where=arn) from None
    except BotoCoreError as exc:
        raise TransientRunError(f"cannot reach Secrets Manager: {type(exc).__name__}", where=arn) from None
    try:
        data = json.loads(text or "")
        username, password = data["username"], data["password"]
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ConfigError('the Kafka SASL secret must be JSON {"username": "...", "password": "..."}', where=arn) from None
    return username, password


def msk_iam_token(region: str | None) -> Any:
    """An oauth_cb for librdkafka: a fresh MSK IAM token (signed with the run's AWS credentials) when asked."""

    def token(_config: str) -> tuple[str, float]:
        import boto3
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region or boto3.session.Session().region_name)
        return value, expiry_ms / 1000

    return token


AUTH_FAILED = "authentication failed"


def is_auth_error(err: Any) -> bool:
    """A librdkafka error event that is a failed SASL handshake (wrong credentials, wrong mechanism)."""
    from confluent_kafka import KafkaError

    return err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)


def unreachable(settings: Any, where: str, auth_error: str | None) -> Exception:
    """What to say when the brokers did not answer in time: a failed authentication (not retryable)
    if one was seen, else that they are unreachable (retryable)."""
    from pipelines.engine.errors import RunError, TransientRunError

    if auth_error is not None:
        return RunError(f"{AUTH_FAILED} (auth: {settings.auth}): {auth_error}", where=where)
    return TransientRunError(
        f"cannot reach the brokers within {settings.connect_timeout_seconds:g} s (is Kafka running, and is the address right?)",
        where=where,
    )


def librdkafka_logger() -> logging.Logger:
    """librdkafka's own log (retries while a coordinator loads, reconnects): silent unless
    PIPELINES_KAFKA_DEBUG=1, since failures reach the run through error and delivery callbacks."""
    import os

    logger = logging.getLogger("pipelines.librdkafka")
    if not logger.handlers:
        logger.propagate = False
        if os.environ.get("PIPELINES_KAFKA_DEBUG") == "1":
            logger.setLevel(logging.DEBUG)
            logger.addHandler(logging.StreamHandler())
        else:
            logger.addHandler(logging.NullHandler())
    return logger


def brokers_label(settings: Any) -> str:
    """Where errors about the brokers are reported: "Kafka host:port,..."."""
    return "Kafka " + ",".join(settings.brokers)


def partition_count(client: Any, settings: Any, auth_error: Callable[[], str | None], hint: str = "") -> int:
    """How many partitions the settings' topic has, from `client`'s (a producer's or an admin's)
    metadata. `auth_error` gives the failed authentication its error callback saw, if any, for the
    message when the brokers do not answer; `hint` ends the message when the topic does not exist."""
    from pipelines.engine.errors import RunError

    count = topic_partition_count(client, settings, settings.topic, auth_error)
    if count is None:
        raise RunError(f"topic '{settings.topic}' does not exist{hint}", where=brokers_label(settings))
    return count


def topic_partition_count(client: Any, settings: Any, topic: str, auth_error: Callable[[], str | None]) -> int | None:
    """How many partitions `topic` has (see partition_count), or None if it does not exist."""
    from confluent_kafka import KafkaException

    try:
        metadata = client.list_topics(topic, timeout=settings.connect_timeout_seconds)
    except KafkaException:
        client.poll(0)  # error events (a failed authentication) reach error_cb only when polled
        raise unreachable(settings, brokers_label(settings), auth_error()) from None
    found = metadata.topics.get(topic)
    return None if found is None or found.error is not None else len(found.partitions)
