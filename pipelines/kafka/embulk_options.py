"""embulk-output-kafka's options that need more than a type check: which values keep exactly-once and
bounded memory (`acks`, `retries`, `record_batch_size`, `treat_producer_exception_as_error`), and
the subject a `value_subject_name_strategy` names.

Each check raises ValueError (the settings builder makes it a config error naming the file and
`out`), saying which option, why, and what to write instead. docs/embulk/output-kafka.md has the
table of every option.
"""

from __future__ import annotations

from typing import Any

# Acks values that keep the idempotent, transactional producer (librdkafka requires acks=all for it).
ACKS_KEPT = ("all", "-1")
# record_batch_size is librdkafka's batch.size (bytes, as the Java client's batch.size the plugin
# sets): at most what the producer's queue may hold (queue.buffering.max.kbytes, 64 MiB), so memory stays bounded.
MAX_RECORD_BATCH_BYTES = 64 * 1024 * 1024
STRATEGY_PACKAGE = "io.confluent.kafka.serializers.subject."
STRATEGIES = ("TopicNameStrategy", "RecordNameStrategy", "TopicRecordNameStrategy")


def check_acks(acks: str | None) -> None:
    if acks is None or acks.strip().lower() in ACKS_KEPT:
        return
    raise ValueError(
        f"acks: '{acks}' would let the brokers acknowledge a row before every in-sync replica has it, and the "
        "exactly-once producer (idempotent, one transaction per shard) needs acks=all; write acks: all (or -1), "
        "or leave it out (all is the default here, not Embulk's \"1\")"
    )


def check_retries(retries: int | None, other_configs: Any) -> None:
    if retries is None:
        return
    if retries < 1:
        raise ValueError(
            f"retries: {retries} would fail a shard on the first transient broker error, and librdkafka's idempotent "
            "producer needs retries >= 1; leave it out (librdkafka retries until message.timeout.ms) or give 1 or more "
            "(retries never double a row: the producer is idempotent)"
        )
    for key in ("retries", "message.send.max.retries"):
        if key in other_configs:
            raise ValueError(f"retries: also given as other_producer_configs '{key}'; keep one of them")


def check_record_batch_size(size: int | None, other_configs: Any) -> None:
    if size is None:
        return
    if not 1 <= size <= MAX_RECORD_BATCH_BYTES:
        raise ValueError(
            f"record_batch_size: {size} is not between 1 and {MAX_RECORD_BATCH_BYTES} bytes (librdkafka's batch.size, as "
            "Java's batch.size in Embulk; more than the producer's queue holds would unbound memory); leave it out "
            "for 1000000"
        )
    if "batch.size" in other_configs:
        raise ValueError("record_batch_size: also given as other_producer_configs 'batch.size'; keep one of them")


def check_treat_producer_exception_as_error(value: bool) -> None:
    if not value:
        raise ValueError(
            "treat_producer_exception_as_error: false would drop a row whose delivery failed and still commit the "
            "shard; here a failed delivery always fails the shard (its transaction aborts, nothing is half-written, "
            "a rerun resumes). Remove the option or set it to true"
        )


def strategy_name(strategy: str | None) -> str | None:
    """The short name of a value_subject_name_strategy (given short or as Confluent's class name)."""
    if strategy is None:
        return None
    short = strategy.removeprefix(STRATEGY_PACKAGE).removeprefix("strategy.")
    if short not in STRATEGIES:
        raise ValueError(
            f"value_subject_name_strategy: '{strategy}' is not one of {', '.join(STRATEGIES)} "
            f"(short or as {STRATEGY_PACKAGE}NAME)"
        )
    return short


def value_subject(strategy: str | None, topic: str, avro_schema: dict[str, Any] | None) -> str:
    """The schema registry subject of the values: Confluent's TopicNameStrategy (`<topic>-value`, the
    default), RecordNameStrategy (the record's full name) or TopicRecordNameStrategy (`<topic>-<full name>`)."""
    if strategy in (None, "TopicNameStrategy"):
        return f"{topic}-value"
    assert avro_schema is not None
    name = avro_schema.get("name", "")
    namespace = avro_schema.get("namespace")
    full = name if "." in name or not namespace else f"{namespace}.{name}"
    return full if strategy == "RecordNameStrategy" else f"{topic}-{full}"
