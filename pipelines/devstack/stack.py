"""Start and stop the local development stack: a single-node Kafka broker, the AWS emulator and a schema registry.

Kafka runs from its jars on Maven Central (fetched once with Maven into the cache
directory) in KRaft combined mode, i.e. broker and controller in one JVM. The AWS emulator
is the workflow server (``python -m pipelines.devstack.workflow_server --port N``): a moto
server with Step Functions execution on and the bridges that run the real statemachine.json
(Lambda tasks -> ``pipelines.aws.handler`` in its process, ECS tasks -> ``python -m pipelines``
subprocesses that reach Kafka through ``KAFKA_BOOTSTRAP``). It is recorded as the service
``moto``. The resources the workflow needs (jobs table, state machine, S3-drop rule, API, ...) are
created in it by the Terraform module (terraform/examples/local, :mod:`pipelines.devstack.deploy`),
which ``pipelines dev up`` applies once both services answer. The schema registry (when
``StackConfig.registry_port`` is set, as ``pipelines dev up`` does) is Apicurio Registry 2.x
from Maven Central (its ``-all`` tar.gz, unpacked once into the cache directory), in-memory
storage, serving the Confluent-compatible API at ``/apis/ccompat/v7``: that URL is
``SCHEMA_REGISTRY_URL``. It starts in parallel with Kafka and moto and is recorded as the service
``schema-registry``. All listen on 127.0.0.1 only, each in its own process group,
and are recorded in ``<state_dir>/stack.json`` so that :func:`down` stops exactly what
:func:`up` started: a process is only signalled while its ``/proc/<pid>/cmdline`` still
matches the recorded one, so a reused pid is never killed.

Progress goes to the ``log`` callable (stderr by default), never to stdout: the CLI
prints :meth:`StackInfo.shell_lines` to stdout for ``eval``.

This module is the front (StackConfig, StackInfo, up, down, status, restart_kafka); the parts are
in modules of their own, and their public names are importable from here too:

- ``downloads``: the cache directory, Kafka's jars and the schema registry fetched with Maven;
- ``kafka_broker``: the broker's server.properties, its storage format, its start;
- ``aws_emulator``: the workflow server's start and environment (:func:`emulator_env`);
- ``registry_server``: the schema registry's start;
- ``processes``: starting, tracking, signalling and stopping the processes, the state file;
- ``readiness``: the probes, and the wait until every service answers;
- ``messages``: StackError and the progress log.
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import socket
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.devstack.aws_emulator import WORKFLOW_SERVER, check_same_image, emulator_env, start_moto
from pipelines.devstack.downloads import APICURIO_ARTIFACT, APICURIO_VERSION, KAFKA_VERSION, require_java
from pipelines.devstack.downloads import cache_dir, ensure_kafka_jars, ensure_schema_registry
from pipelines.devstack.kafka_broker import SCRAM_PASSWORD, SCRAM_USER, format_storage, start_again, start_kafka
from pipelines.devstack.kafka_broker import write_server_properties
from pipelines.devstack.messages import Log, StackError, print_to_stderr
from pipelines.devstack.processes import HOST, STOP_TIMEOUT_S, Service, is_alive, load_state, save_state
from pipelines.devstack.processes import signal_group, state_path, stop_services, wait_until_gone
from pipelines.devstack.readiness import STARTUP_TIMEOUT_S, make_probe, wait_until_ready
from pipelines.devstack.registry_server import REGISTRY_API_PATH, REGISTRY_SERVICE, start_registry

# The names other code imports from here (some live in the modules above).
__all__ = [
    "StackConfig", "StackInfo", "up", "down", "status", "restart_kafka", "StackError", "Log",
    "cache_dir", "ensure_kafka_jars", "ensure_schema_registry", "emulator_env", "SCRAM_USER", "SCRAM_PASSWORD",
    "KAFKA_VERSION", "APICURIO_VERSION", "APICURIO_ARTIFACT", "REGISTRY_API_PATH", "REGISTRY_SERVICE",
    "HOST", "STARTUP_TIMEOUT_S", "STOP_TIMEOUT_S", "WORKFLOW_SERVER",
]


# ------------------------------------------------------------------ public types


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its state and which ports it listens on (all on 127.0.0.1)."""

    state_dir: Path
    kafka_port: int = 9092
    controller_port: int = 9093
    moto_port: int = 5000
    kafka_heap: str = "512m"
    registry_port: int | None = None  # the schema registry's; None: no schema registry
    registry_heap: str = "256m"
    # A second Kafka listener with SASL/SCRAM-SHA-512 authentication (SASL_PLAINTEXT; user
    # SCRAM_USER, created when the storage is formatted); None: none.
    scram_port: int | None = None
    # The image the workflow server runs ECS tasks and Lambda invocations in (bin/image build); None:
    # this checkout's code, in subprocesses and in the server's process.
    image: str | None = None


@dataclass(frozen=True)
class StackInfo:
    """How to reach a running stack."""

    kafka_bootstrap: str
    aws_endpoint_url: str
    kafka_pid: int
    moto_pid: int
    state_dir: Path
    # What the applied module names (deploy.workflow_env: PIPELINES_STATE_MACHINE_ARN, PIPELINES_JOBS_TABLE,
    # PIPELINES_EVENT_BUS, PIPELINES_API_URL); empty until the workflow's resources are created.
    workflow: dict[str, str] = field(default_factory=dict)
    # The Confluent-compatible API of the schema registry (http://127.0.0.1:PORT/apis/ccompat/v7), if it runs.
    schema_registry_url: str | None = None
    schema_registry_pid: int | None = None
    kafka_scram_bootstrap: str | None = None  # the SASL/SCRAM listener, when the stack was started with one

    def env(self) -> dict[str, str]:
        """Environment variables that point clients (and our pipelines) at this stack."""
        moto_port = urllib.parse.urlsplit(self.aws_endpoint_url).port
        return {
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "MOTO_PORT": str(moto_port),
            **({"SCHEMA_REGISTRY_URL": self.schema_registry_url} if self.schema_registry_url else {}),
            **self.workflow,
        }

    def shell_lines(self) -> str:
        """``export K=V`` lines for ``eval`` in a POSIX shell, one per :meth:`env` item."""
        return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in self.env().items())


# ---------------------------------------------------------------------- up/down


def up(config: StackConfig, log: Log = print_to_stderr) -> StackInfo:
    """Start Kafka and the AWS emulator (the workflow server; or return the already running stack)
    and wait until both answer. Creates no AWS resources: see pipelines.devstack.deploy."""
    state_dir = config.state_dir.resolve()
    running = _running_stack(state_dir, with_registry=config.registry_port is not None)
    if running is not None:
        check_same_image(state_dir, config.image)
        registry = f", schema registry at {running.schema_registry_url}" if running.schema_registry_url else ""
        log(f"stack already running: kafka at {running.kafka_bootstrap}, moto at {running.aws_endpoint_url}{registry}")
        return running
    down(state_dir, log)  # a half-dead stack from before: stop the survivor, if any
    _check_ports(config)
    libs = ensure_kafka_jars(log)
    registry_home = ensure_schema_registry(log) if config.registry_port is not None else None
    java = require_java()
    kafka_dir = state_dir / "kafka"
    ports = {"kafka_port": config.kafka_port, "controller_port": config.controller_port, "scram_port": config.scram_port}
    properties = write_server_properties(kafka_dir, **ports)
    format_storage(java, libs, properties, kafka_dir / "data", log, scram=config.scram_port is not None)
    services = _start_services(config, state_dir, java, libs, properties, registry_home, log)
    info = _stack_info(state_dir, services)
    if config.scram_port is not None:
        info = dataclasses.replace(info, kafka_scram_bootstrap=f"{HOST}:{config.scram_port}")
    return info


def _start_services(
    config: StackConfig, state_dir: Path, java: str, libs: Path, properties: Path, registry_home: Path | None, log: Log
) -> list[Service]:
    """Start Kafka, moto and (with ``registry_home``) the schema registry, record them and wait until
    they answer; when one does not, stop those started and remove the record."""
    services: list[Service] = []
    try:
        services.append(start_kafka(java, libs, properties, state_dir / "kafka", port=config.kafka_port, heap=config.kafka_heap))
        services.append(
            start_moto(config.moto_port, state_dir / "moto", kafka_bootstrap=services[0].address, state_dir=state_dir, image=config.image)
        )
        if registry_home is not None and config.registry_port is not None:
            services.append(start_registry(java, registry_home, config.registry_port, config.registry_heap, state_dir / "schema-registry"))
        save_state(state_dir, services)
        registry = f" and the schema registry (pid {services[2].pid})" if len(services) > 2 else ""
        log(f"started kafka (pid {services[0].pid}), the workflow server (moto, pid {services[1].pid}){registry}; waiting for them")
        wait_until_ready(services, log)
    except BaseException:
        stop_services(services, log)
        state_path(state_dir).unlink(missing_ok=True)
        raise
    return services


def down(state_dir: Path, log: Log = print_to_stderr) -> list[str]:
    """Stop the processes recorded in ``stack.json``; return descriptions of those stopped."""
    state_dir = state_dir.resolve()
    services = load_state(state_dir)
    if not services:
        state_path(state_dir).unlink(missing_ok=True)
        return []
    for service in services:
        if not is_alive(service):
            log(f"{service.name} (pid {service.pid}) was not running")
    stopped = stop_services(services, log)
    state_path(state_dir).unlink(missing_ok=True)
    return stopped


def status(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Report each service's pid, whether it runs and whether it answers. Never raises."""
    recorded = {service.name: service for service in load_state(state_dir.resolve())}
    address_keys = {"kafka": "bootstrap", "moto": "endpoint"}
    if REGISTRY_SERVICE in recorded:  # reported only when the stack was started with one
        address_keys[REGISTRY_SERVICE] = "url"
    report: dict[str, dict[str, Any]] = {}
    for name, address_key in address_keys.items():
        service = recorded.get(name)
        running = service is not None and is_alive(service)
        report[name] = {
            "pid": service.pid if service else None,
            "running": running,
            address_key: service.address if service else None,
            "answers": running and service is not None and make_probe(service)(2.0),
            "log": str(service.log) if service else None,
        }
    return report


def restart_kafka(state_dir: Path, log: Log = print_to_stderr, *, kill: bool = False, pause: float = 0.0) -> None:
    """Stop the stack's broker (SIGTERM, or SIGKILL with ``kill``), wait ``pause`` seconds, start it
    again with the same command line and data, and wait until it answers. For failure tests."""
    state_dir = state_dir.resolve()
    services = load_state(state_dir)
    kafka = next((s for s in services if s.name == "kafka"), None)
    if kafka is None or not is_alive(kafka):
        raise StackError(f"no running Kafka recorded in {state_path(state_dir)}")
    if kill:
        signal_group(kafka.pid, signal.SIGKILL)
        wait_until_gone([kafka], time.monotonic() + 10.0)
    else:
        stop_services([kafka], log)
    time.sleep(pause)
    restarted = start_again(kafka)
    services = [restarted if s.name == "kafka" else s for s in services]
    save_state(state_dir, services)
    wait_until_ready([restarted], log)


# ----------------------------------------------------------------- the running stack


def _running_stack(state_dir: Path, with_registry: bool = False) -> StackInfo | None:
    services = load_state(state_dir)
    names = {service.name for service in services}
    wanted = {"kafka", "moto", REGISTRY_SERVICE} if with_registry else {"kafka", "moto"}
    if names != wanted or not all(is_alive(service) for service in services):
        return None
    return _stack_info(state_dir, services)


def _stack_info(state_dir: Path, services: Iterable[Service]) -> StackInfo:
    by_name = {service.name: service for service in services}
    return StackInfo(
        kafka_bootstrap=by_name["kafka"].address,
        aws_endpoint_url=by_name["moto"].address,
        kafka_pid=by_name["kafka"].pid,
        moto_pid=by_name["moto"].pid,
        state_dir=state_dir,
        schema_registry_url=by_name[REGISTRY_SERVICE].address if REGISTRY_SERVICE in by_name else None,
        schema_registry_pid=by_name[REGISTRY_SERVICE].pid if REGISTRY_SERVICE in by_name else None,
    )


# ---------------------------------------------------------------------- ports


def _check_ports(config: StackConfig) -> None:
    wanted = [
        (config.kafka_port, "kafka", "--kafka-port"),
        (config.controller_port, "kafka controller", "--controller-port"),
        (config.moto_port, "moto", "--moto-port"),
    ]
    if config.scram_port is not None:
        wanted.append((config.scram_port, "kafka SASL/SCRAM listener", "scram_port"))
    if config.registry_port is not None:
        wanted.append((config.registry_port, "schema registry", "--registry-port"))
    ports = [port for port, _, _ in wanted]
    if len(set(ports)) != len(ports):
        names = "kafka, controller, moto and schema registry" if config.registry_port is not None else "kafka, controller and moto"
        raise StackError(f"{names} ports must all differ (got {ports})")
    for port, what, option in wanted:
        if not _port_is_free(port):
            raise StackError(
                f"port {port} on {HOST} is already in use ({what}); "
                f"stop what uses it or choose another port with {option}"
            )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR ignores TIME_WAIT leftovers of a previous run, not live listeners.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True
