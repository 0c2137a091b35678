"""Checks of a Kafka input's or output's cluster: the brokers answer and accept the configured
authentication, and the topic exists (with its partition count). One metadata request of an admin
client, made as the run's clients are (pipelines.kafka.connection.client_config), answers both.
For a transactional output, a transaction that writes nothing is begun and aborted, by a producer
configured as a shard's (its own transactional id, pipelines-check-<random>).

The whole cluster's metadata is asked for, never the topic's alone: a request naming a topic may
create it on a broker with auto.create.topics.enable, and a check must change nothing.
"""

from __future__ import annotations

from typing import Any

from pipelines.check.result import CheckResult, failed, passed, skipped
from pipelines.engine.errors import PipelineError


class KafkaChecks:
    """`kafka brokers` then `kafka topic`, for the settings of a Kafka input or output (`side`: in or out)."""

    def __init__(self, settings: Any, side: str) -> None:
        self.settings = settings
        self.side = side
        self.metadata: Any = None

    def brokers(self) -> CheckResult:
        from pipelines.kafka.connection import brokers_label

        name = f"kafka brokers ({self.side})"
        try:
            self.metadata = cluster_metadata(self.settings)
        except PipelineError as exc:
            return failed(name, str(exc), broker_fix(exc, self.settings))
        count = len(self.metadata.brokers)
        return passed(name, f"{brokers_label(self.settings)} answered ({count} broker{'s' if count != 1 else ''}, auth: {self.settings.auth})")

    def topic(self) -> CheckResult:
        topic = self.settings.topic
        name = f"kafka topic ({self.side})"
        if self.metadata is None:
            return skipped(name, f"'{topic}': the brokers did not answer")
        found = self.metadata.topics.get(topic)
        if found is None or found.error is not None:
            return failed(
                name,
                f"topic '{topic}' does not exist (or the credentials may not describe it)",
                f"create it (locally: `pipelines dev create-topic {topic}`; on a cluster, with its admin tools), "
                "or correct the topic the config names",
            )
        leaderless = sorted(p for p, partition in found.partitions.items() if partition.leader < 0)
        if leaderless:
            return failed(name, f"topic '{topic}': partitions {leaderless} have no leader", "check the brokers' health")
        return passed(name, f"topic '{topic}' exists with {len(found.partitions)} partitions")

    def transactions(self) -> CheckResult:
        name = f"kafka transactions ({self.side})"
        if self.metadata is None:
            return skipped(name, "the brokers did not answer")
        try:
            transactional_id = probe_transaction(self.settings)
        except PipelineError as exc:
            return failed(
                name,
                str(exc),
                "check the brokers' transaction state log (transaction.state.log.replication.factor and min.isr "
                "within the brokers there are) and that the credentials may use transactional ids",
            )
        return passed(name, f"a transaction began and aborted (transactional id {transactional_id}, nothing written)")


def cluster_metadata(settings: Any) -> Any:
    """The cluster's metadata (every topic the credentials may describe), or the run's error when the
    brokers do not answer in connect_timeout_seconds (a failed authentication named as such)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from pipelines.kafka.connection import (
        brokers_label,
        client_config,
        is_auth_error,
        librdkafka_logger,
        unreachable,
    )

    auth_errors: list[str] = []

    def on_error(err: Any) -> None:
        if is_auth_error(err):
            auth_errors.append(err.str())

    config = {**client_config(settings), "error_cb": on_error, "logger": librdkafka_logger()}
    admin = AdminClient(config)
    try:
        return admin.list_topics(timeout=settings.connect_timeout_seconds)
    except KafkaException:
        admin.poll(0)  # error events (a failed authentication) reach error_cb only when polled
        raise unreachable(settings, brokers_label(settings), auth_errors[-1] if auth_errors else None) from None


def probe_transaction(settings: Any) -> str:
    """Begins and aborts a transaction that writes nothing, with a shard's producer settings; its id."""
    import uuid

    from confluent_kafka import KafkaException, Producer

    from pipelines.engine.errors import ConfigError
    from pipelines.kafka.connection import librdkafka_logger
    from pipelines.kafka.producer import producer_config
    from pipelines.kafka.transactions import run_step

    config = producer_config(settings, f"check-{uuid.uuid4().hex[:12]}", None)
    config["transactional.id"] = transactional_id = config["client.id"]
    config["logger"] = librdkafka_logger()
    try:
        producer = Producer(config)
    except KafkaException as exc:
        raise ConfigError(f"invalid producer setting: {exc.args[0].str()}") from None
    run_step(settings, lambda timeout: (producer.init_transactions(timeout), producer.begin_transaction()))
    run_step(settings, lambda timeout: producer.abort_transaction(timeout))
    return transactional_id


def broker_fix(exc: PipelineError, settings: Any) -> str:
    from pipelines.kafka.connection import AUTH_FAILED

    if AUTH_FAILED in exc.message:
        return "check the credentials (KAFKA_AUTH; the SASL secret, or the role's kafka-cluster:Connect for msk_iam)"
    if "SASL secret" in exc.message or "Secrets Manager" in exc.message:
        return "check KAFKA_SASL_SECRET_ARN and that the role may call secretsmanager:GetSecretValue on it"
    return (
        f"check the brokers' addresses ({', '.join(settings.brokers)}: KAFKA_BOOTSTRAP), that they are running and "
        "reachable from here (security groups), and that auth/tls match their listener"
    )
