"""Whether the stack's services answer: a probe per service (Kafka: a metadata request through an
AdminClient; moto: its API page; the schema registry: its subjects), and the wait after a start
until every one answers, failing early when one exits.

confluent_kafka is imported lazily (only when a Kafka probe is made) because the CLI imports the
stack's modules."""

from __future__ import annotations

import http.client
import time
import urllib.request
from collections.abc import Callable

from pipelines.devstack.messages import Log, StackError, tail_file
from pipelines.devstack.processes import Service, exit_code
from pipelines.devstack.registry_server import REGISTRY_SERVICE

STARTUP_TIMEOUT_S = 90.0

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Probe = Callable[[float], bool]


def make_probe(service: Service) -> Probe:
    """A function telling (within a timeout in seconds) whether ``service`` answers."""
    if service.name == "kafka":
        return _kafka_probe(service.address)
    if service.name == REGISTRY_SERVICE:
        return lambda timeout: _answers_ok(f"{service.address}/subjects", timeout)
    return lambda timeout: _answers_ok(f"{service.address}/moto-api/", timeout)


def _kafka_probe(bootstrap: str) -> Probe:
    try:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient
    except ImportError:
        return lambda timeout: False

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "log_level": 0,  # no "connection refused" noise on stderr while the broker starts
            "reconnect.backoff.max.ms": 500,  # notice the broker soon after it starts listening
        }
    )

    def answers(timeout: float) -> bool:
        try:
            return bool(admin.list_topics(timeout=timeout).brokers)
        except KafkaException:
            return False

    return answers


def _answers_ok(url: str, timeout: float) -> bool:
    """Whether a GET of `url` answers 200 (moto's API page, the registry's subjects)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            status: int = response.status
            return status == 200
    except (OSError, http.client.HTTPException):
        return False


def wait_until_ready(services: list[Service], log: Log, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Wait until every service answers; raise StackError if one exits or times out."""
    started = time.monotonic()
    pending = {service.name: (service, make_probe(service)) for service in services}
    while pending:
        for name, (service, probe) in list(pending.items()):
            code = exit_code(service)
            if code is not None:
                raise _not_up(service, f"it exited early with code {code}")
            if probe(1.0):
                log(f"{name} is up at {service.address} after {time.monotonic() - started:.1f} s")
                del pending[name]
        if pending and time.monotonic() - started > timeout:
            service = next(iter(pending.values()))[0]
            raise _not_up(service, f"it did not answer within {timeout:.0f} s")
        if pending:
            time.sleep(0.25)


def _not_up(service: Service, reason: str) -> StackError:
    return StackError(
        f"{service.name} did not come up: {reason}; last lines of {service.log}:\n{tail_file(service.log)}"
    )
