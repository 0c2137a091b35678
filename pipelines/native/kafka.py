"""The compiled Kafka loops (`_fastkafka.c`), when they were built and can be used.

For the Kafka input: `compiled_consume()` (a batch off a consumer's queue, or None), and
`split_messages()` and `with_errors()` (compiled, or their Python loops) for Message lists.

`batch_producer(producer, client_id, ...)` gives a `BatchProducer` over a confluent_kafka Producer
made with `delivery.report.only.error` (see _fastkafka.c; with on_delivery None, for a transactional
producer, failed deliveries fail the commit instead), or None: the extension was not built
(no C compiler at install time), it refused to load because the installed confluent-kafka is not
the version whose private layout it reads (setup.py; one warning per process), librdkafka was not
found in the process (the reason of each in `unavailable_reason()`), PIPELINES_NATIVE=0, or the
producer's handle did not check out (a warning). The output then produces row by row in Python,
with the same result. The version check is made when the extension is imported, so nothing of
confluent_kafka's objects is read while another version is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pipelines.native.compiled import compiled, enabled, refusal

FAST = "pipelines.native._fastkafka"
_bound: bool | None = None
_reason: str | None = None


def _bind() -> bool:
    global _bound, _reason
    if _bound is not None:
        return _bound
    _bound = False
    bind = compiled(FAST, "bind")
    if bind is None:
        _reason = refusal(FAST) or "the extension is not built"
        return False
    import confluent_kafka  # noqa: F401  (loads librdkafka)

    path = _loaded_librdkafka()
    if path is None:
        _reason = "librdkafka is not among the process's loaded libraries"
        return False
    try:
        bind(path)
    except OSError as exc:
        _reason = str(exc)
        return False
    _bound = True
    return True


def _loaded_librdkafka() -> str | None:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if "/librdkafka" in path and os.path.exists(path):
                    return path
    except OSError:
        return None
    return None


def unavailable_reason() -> str | None:
    """Why batch_producer() gives None, or None if it does not."""
    if not enabled():
        return "PIPELINES_NATIVE=0"
    return None if _bind() else _reason


class BatchProducer:
    """Produces whole batches of rows as JSON values through one C call (see _fastkafka.c)."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        key_index: int,
        value_indexes: list[int],
        names: list[str],
        headers: list[tuple[str, bytes]],
        on_delivery: Any,
    ):
        import orjson

        from pipelines.native import _fastkafka

        (header_name, header_value), = headers or [("", b"")]  # none: no header (see job_headers)
        self._produce = _fastkafka.produce_json
        self._args = (
            producer,
            topic.encode(),
            key_index,
            tuple(value_indexes),
            tuple((b"," if j else b"") + orjson.dumps(name) + b":" for j, name in enumerate(names)),
            header_name.encode(),
            header_value,
        )
        self._fallback = orjson.dumps
        self._on_delivery = on_delivery
        self._poll = producer.poll
        self._produce_records = _fastkafka.produce_records

    def produce(self, rows: list[list[Any]], counts: list[int]) -> tuple[int, list[int]]:
        """Produces `rows`, adding to `counts` per partition: (rows produced, positions of rows with an empty key)."""
        producer, topic, key_index, indexes, names, header_name, header_value = self._args
        start, produced, empty = 0, 0, []
        while True:
            start, done, empty_here = self._produce(
                producer, topic, rows, start, key_index, indexes, names, header_name, header_value, counts, self._fallback, self._on_delivery
            )
            produced += done
            empty += empty_here
            if start >= len(rows):
                return produced, empty
            self._poll(0.05)  # librdkafka's queue is full: let deliveries drain it

    def produce_encoded(self, data: bytes, counts: list[int]) -> int:
        """Produces records encoded by pipelines.native.fused, adding to `counts` per partition: how many."""
        producer, topic, _, _, _, header_name, header_value = self._args
        offset, produced = 0, 0
        while True:
            offset, done = self._produce_records(producer, topic, data, offset, header_name, header_value, counts, self._on_delivery)
            produced += done
            if offset >= len(data):
                return produced
            self._poll(0.05)  # librdkafka's queue is full: let deliveries drain it


def batch_producer(producer: Any, client_id: str, **kwargs: Any) -> BatchProducer | None:
    """A BatchProducer over `producer` (a confluent_kafka.Producer made with `client_id` and
    delivery.report.only.error), or None."""
    if unavailable_reason() is not None:
        return None
    from confluent_kafka import Producer

    from pipelines.native import _fastkafka

    if type(producer) is not Producer:
        return None
    name = _fastkafka.handle_name(producer)
    if not name.startswith(client_id + "#"):
        # Reached only with the verified confluent-kafka (the import checks it), so a second check
        # that the handle is the one this producer made: said, since every run is slower.
        import logging

        logging.getLogger(__name__).warning("the compiled produce loop is off: the producer's handle is named %r, not %r#...", name, client_id)
        return None
    return BatchProducer(producer, **kwargs)


def compiled_consume() -> Callable[..., Any] | None:
    """consume(consumer, n, timeout_ms, end, marker_name, marker_value, job_name, job_value) on a
    confluent_kafka.Consumer made without Python callbacks (see _fastkafka.c), or None."""
    if unavailable_reason() is not None:
        return None
    from confluent_kafka import Consumer

    consume = compiled(FAST, "consume")

    def checked(consumer: Any, *args: Any) -> Any:
        if type(consumer) is not Consumer:
            raise TypeError(f"not a confluent_kafka.Consumer: {type(consumer).__name__}")
        return consume(consumer, *args)

    return checked


def with_errors() -> Callable[[list[Any]], list[int]]:
    """with_errors(messages) -> the positions of the messages whose error() is not None: see _fastkafka.c."""
    return compiled(FAST, "with_errors") or _with_errors


def _with_errors(messages: list[Any]) -> list[int]:
    return [i for i, message in enumerate(messages) if message.error() is not None]


def split_messages() -> Callable[[list[Any], tuple[str, bytes], tuple[str, bytes] | None], tuple[list[bytes], list[int], list[Any], list[int]]]:
    """split_messages(messages, marker, job) -> (values, offsets, keys, tombstones): see _fastkafka.c."""
    return compiled(FAST, "split_messages") or _split_messages


def _split_messages(
    messages: list[Any], marker: tuple[str, bytes], job: tuple[str, bytes] | None
) -> tuple[list[bytes], list[int], list[Any], list[int]]:
    values: list[bytes] = []
    offsets: list[int] = []
    keys: list[Any] = []
    tombstones: list[int] = []
    for message in messages:
        key = message.key()
        # Headers cost a list of tuples per record: read only where they decide something. An end
        # marker has no key (an empty one on a compacted topic), so a keyed record is never one.
        if job is not None or not key:
            headers = message.headers()
            if (headers is not None and marker in headers) or (job is not None and (headers is None or job not in headers)):
                continue  # an end marker, or another job's record: not a row of this export
        value = message.value()
        if value is None:
            tombstones.append(message.offset())
            continue
        values.append(value)
        offsets.append(message.offset())
        keys.append(key)
    return values, offsets, keys, tombstones
