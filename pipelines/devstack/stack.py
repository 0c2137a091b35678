"""Start and stop the local development stack: a single-node Kafka broker, the AWS emulator and a schema registry.

Kafka runs from its jars on Maven Central (fetched once with Maven into the cache
directory) in KRaft combined mode, i.e. broker and controller in one JVM. The AWS emulator
is the workflow server (``python -m pipelines.devstack.workflow_server --port N``): a moto
server with Step Functions execution on and the bridges that run the real statemachine.json
(Lambda tasks -> ``pipelines.aws.handler`` in its process, ECS tasks -> ``python -m pipelines``
subprocesses that reach Kafka through ``KAFKA_BOOTSTRAP``). It is recorded as the service
``moto``. The resources the workflow needs (jobs table, state machine, S3-drop rule, ...) are
created in it by :func:`pipelines.devstack.resources.create_local_workflow`, which
``pipelines dev up`` calls once both services answer. The schema registry (when
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

confluent_kafka is imported lazily because the CLI imports this module.
"""

from __future__ import annotations

import dataclasses

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KAFKA_VERSION = "3.9.1"
APICURIO_VERSION = "2.6.13.Final"  # 3.x needs Java 21; 2.6 runs on Java 17
APICURIO_ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
REGISTRY_API_PATH = "/apis/ccompat/v7"  # Apicurio's Confluent-compatible API
REGISTRY_SERVICE = "schema-registry"
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0

Log = Callable[[str], None]

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "kafka-pom.xml"
_LOG4J = _HERE / "log4j.properties"
_STATE_FILE = "stack.json"
_JARS_MARKER = ".complete"
_STORAGE_TOOL = "kafka.tools.StorageTool"
_KAFKA_MAIN = "kafka.Kafka"
_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Processes started by this interpreter, so they can be reaped (no zombies, no
# "subprocess still running" warnings) when we stop them from the same process.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StackError(Exception):
    """A problem with the local stack, carrying a clear message for the user."""


# --------------------------------------------------------------------------- jars


def cache_dir() -> Path:
    """Where downloaded tools are kept: ``$PIPELINES_CACHE`` or ``~/.cache/audience-pipelines``."""
    configured = os.environ.get("PIPELINES_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "audience-pipelines"


def ensure_kafka_jars(log: Log = _print_to_stderr, version: str = KAFKA_VERSION) -> Path:
    """Return the directory holding the Kafka broker jars, downloading them with Maven once.

    The jars are resolved into a staging directory next to the final one, which is then
    renamed into place, so ``<cache>/kafka-<version>/libs`` is either complete (it holds
    the marker file) or absent.
    """
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    if (libs / _JARS_MARKER).is_file():
        return libs
    _require_java()
    mvn = _require_tool("mvn", "Maven (mvn) is required to download the Kafka jars but was not found on PATH")
    home.mkdir(parents=True, exist_ok=True)
    log(f"downloading Kafka {version} jars with Maven into {libs} (only needed once)")
    with tempfile.TemporaryDirectory(prefix="download-", dir=home) as tmp:
        staging = Path(tmp) / "libs"
        _run_maven(mvn, Path(tmp), staging, version)
        (staging / _JARS_MARKER).write_text(f"kafka {version}\n")
        _move_into_place(staging, libs)
    return libs


def ensure_schema_registry(log: Log = _print_to_stderr, version: str = APICURIO_VERSION) -> Path:
    """Return the folder holding Apicurio Registry's runner jar, downloading it with Maven once.

    Maven fetches the ``-all`` tar.gz (about 140 MB) into its local repository; it is unpacked
    into a staging folder renamed into ``<cache>/apicurio-registry-<version>``, which is thus
    either complete (it holds the marker file) or absent.
    """
    home = cache_dir() / f"apicurio-registry-{version}"
    if (home / _JARS_MARKER).is_file():
        return home
    _require_java()
    mvn = _require_tool("mvn", "Maven (mvn) is required to download the schema registry but was not found on PATH")
    cache_dir().mkdir(parents=True, exist_ok=True)
    log(f"downloading Apicurio Registry {version} with Maven into {home} (only needed once)")
    with tempfile.TemporaryDirectory(prefix="download-apicurio-", dir=cache_dir()) as tmp:
        download = Path(tmp) / "download"
        artifact = APICURIO_ARTIFACT.format(version=version)
        command = [mvn, "-q", "-B", "-Dstyle.color=never", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={download}"]
        result = subprocess.run(command, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        archives = list(download.glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise StackError(
                f"Maven could not download {artifact} (exit code {result.returncode}); "
                f"last lines of its output:\n{_tail(result.stdout)}"
            )
        staging = Path(tmp) / "registry"
        _unpack(archives[0], staging)
        if not (staging / _registry_jar(version)).is_file():
            raise StackError(f"{archives[0].name} holds no {_registry_jar(version)}")
        (staging / _JARS_MARKER).write_text(f"apicurio-registry {version}\n")
        _move_into_place(staging, home)
    return home


def _registry_jar(version: str) -> str:
    return f"apicurio-registry-app-{version}-runner.jar"


def _unpack(archive: Path, into: Path) -> None:
    import tarfile

    into.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(into, filter="data")  # "data": no absolute paths, links out or device files


def _require_tool(name: str, message: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(message)
    return path


def _require_java() -> str:
    return _require_tool(
        "java",
        "Java 17 is required to run the local Kafka broker but `java` was not found on PATH",
    )


def _run_maven(mvn: str, workdir: Path, staging: Path, version: str) -> None:
    pom = workdir / "pom.xml"
    shutil.copyfile(_POM, pom)
    command = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
        f"-Dkafka.version={version}",
    ]
    result = subprocess.run(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if result.returncode != 0:
        raise StackError(
            f"Maven could not download the Kafka {version} jars (exit code {result.returncode}); "
            f"last lines of its output:\n{_tail(result.stdout)}"
        )
    if not any(staging.glob("kafka_2.13-*.jar")):
        raise StackError(f"Maven finished but no Kafka jars were found in {staging}")


def _move_into_place(staging: Path, libs: Path) -> None:
    if libs.exists() and not (libs / _JARS_MARKER).is_file():
        shutil.rmtree(libs)  # incomplete leftover from an older layout or manual meddling
    try:
        staging.rename(libs)
    except OSError:
        if not (libs / _JARS_MARKER).is_file():  # another process did not win the race
            raise


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


SCRAM_USER = "pipelines"
SCRAM_PASSWORD = "local-scram-password"  # the local stack's own broker only


@dataclass(frozen=True)
class StackInfo:
    """How to reach a running stack."""

    kafka_bootstrap: str
    aws_endpoint_url: str
    kafka_pid: int
    moto_pid: int
    state_dir: Path
    # What create_local_workflow returned (PIPELINES_STATE_MACHINE_ARN, PIPELINES_JOBS_TABLE,
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


@dataclass(frozen=True)
class _Service:
    """One process of the stack, as recorded in stack.json."""

    name: str
    pid: int
    cmdline: tuple[str, ...]
    port: int
    address: str
    log: Path

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid}, {self.address})"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cmdline": list(self.cmdline), "log": str(self.log)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Service:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            cmdline=tuple(str(arg) for arg in data["cmdline"]),
            port=int(data["port"]),
            address=str(data["address"]),
            log=Path(data["log"]),
        )


# ---------------------------------------------------------------------- up/down


def up(config: StackConfig, log: Log = _print_to_stderr) -> StackInfo:
    """Start Kafka and the AWS emulator (the workflow server; or return the already running stack)
    and wait until both answer. Creates no AWS resources: see resources.create_local_workflow."""
    state_dir = config.state_dir.resolve()
    running = _running_stack(state_dir, with_registry=config.registry_port is not None)
    if running is not None:
        _check_same_image(state_dir, config.image)
        registry = f", schema registry at {running.schema_registry_url}" if running.schema_registry_url else ""
        log(f"stack already running: kafka at {running.kafka_bootstrap}, moto at {running.aws_endpoint_url}{registry}")
        return running
    down(state_dir, log)  # a half-dead stack from before: stop the survivor, if any
    _check_ports(config)
    libs = ensure_kafka_jars(log)
    registry_home = ensure_schema_registry(log) if config.registry_port is not None else None
    java = _require_java()
    kafka_dir = state_dir / "kafka"
    properties = _write_server_properties(config, kafka_dir)
    _format_storage(java, libs, properties, kafka_dir / "data", log, scram=config.scram_port is not None)

    services: list[_Service] = []
    try:
        services.append(_start_kafka(java, libs, properties, config, kafka_dir))
        services.append(
            _start_moto(config.moto_port, state_dir / "moto", kafka_bootstrap=services[0].address, state_dir=state_dir, image=config.image)
        )
        if registry_home is not None and config.registry_port is not None:
            services.append(_start_registry(java, registry_home, config.registry_port, config.registry_heap, state_dir / "schema-registry"))
        _save_state(state_dir, services)
        registry = f" and the schema registry (pid {services[2].pid})" if len(services) > 2 else ""
        log(f"started kafka (pid {services[0].pid}), the workflow server (moto, pid {services[1].pid}){registry}; waiting for them")
        _wait_until_ready(services, log)
    except BaseException:
        _stop_services(services, log)
        _state_path(state_dir).unlink(missing_ok=True)
        raise
    info = _stack_info(state_dir, services)
    if config.scram_port is not None:
        info = dataclasses.replace(info, kafka_scram_bootstrap=f"{HOST}:{config.scram_port}")
    return info


def down(state_dir: Path, log: Log = _print_to_stderr) -> list[str]:
    """Stop the processes recorded in ``stack.json``; return descriptions of those stopped."""
    state_dir = state_dir.resolve()
    services = _load_state(state_dir)
    if not services:
        _state_path(state_dir).unlink(missing_ok=True)
        return []
    for service in services:
        if not _is_alive(service):
            log(f"{service.name} (pid {service.pid}) was not running")
    stopped = _stop_services(services, log)
    _state_path(state_dir).unlink(missing_ok=True)
    return stopped


def status(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Report each service's pid, whether it runs and whether it answers. Never raises."""
    recorded = {service.name: service for service in _load_state(state_dir.resolve())}
    address_keys = {"kafka": "bootstrap", "moto": "endpoint"}
    if REGISTRY_SERVICE in recorded:  # reported only when the stack was started with one
        address_keys[REGISTRY_SERVICE] = "url"
    report: dict[str, dict[str, Any]] = {}
    for name, address_key in address_keys.items():
        service = recorded.get(name)
        running = service is not None and _is_alive(service)
        report[name] = {
            "pid": service.pid if service else None,
            "running": running,
            address_key: service.address if service else None,
            "answers": running and service is not None and _make_probe(service)(2.0),
            "log": str(service.log) if service else None,
        }
    return report


def restart_kafka(state_dir: Path, log: Log = _print_to_stderr, *, kill: bool = False, pause: float = 0.0) -> None:
    """Stop the stack's broker (SIGTERM, or SIGKILL with ``kill``), wait ``pause`` seconds, start it
    again with the same command line and data, and wait until it answers. For failure tests."""
    state_dir = state_dir.resolve()
    services = _load_state(state_dir)
    kafka = next((s for s in services if s.name == "kafka"), None)
    if kafka is None or not _is_alive(kafka):
        raise StackError(f"no running Kafka recorded in {_state_path(state_dir)}")
    if kill:
        _signal_group(kafka.pid, signal.SIGKILL)
        _wait_until_gone([kafka], time.monotonic() + 10.0)
    else:
        _stop_services([kafka], log)
    time.sleep(pause)
    restarted = _start_process(
        "kafka",
        list(kafka.cmdline),
        port=kafka.port,
        address=kafka.address,
        log_path=kafka.log.with_suffix(".restarted.log"),
        cwd=kafka.log.parent,
        env=dict(os.environ),
    )
    services = [restarted if s.name == "kafka" else s for s in services]
    _save_state(state_dir, services)
    _wait_until_ready([restarted], log)


# ----------------------------------------------------------------- state file


def _state_path(state_dir: Path) -> Path:
    return state_dir / _STATE_FILE


def _save_state(state_dir: Path, services: Iterable[_Service]) -> None:
    state = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "services": [service.to_json() for service in services],
    }
    path = _state_path(state_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def _load_state(state_dir: Path) -> list[_Service]:
    """The recorded services; empty when there is no (readable) state file."""
    try:
        data = json.loads(_state_path(state_dir).read_text())
        return [_Service.from_json(item) for item in data["services"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _running_stack(state_dir: Path, with_registry: bool = False) -> StackInfo | None:
    services = _load_state(state_dir)
    names = {service.name for service in services}
    wanted = {"kafka", "moto", REGISTRY_SERVICE} if with_registry else {"kafka", "moto"}
    if names != wanted or not all(_is_alive(service) for service in services):
        return None
    return _stack_info(state_dir, services)


def _check_same_image(state_dir: Path, image: str | None) -> None:
    """The running stack's workflow server runs tasks where this call asks (the image or the checkout)."""
    moto = next((s for s in _load_state(state_dir) if s.name == "moto"), None)
    args = list(moto.cmdline) if moto else []
    running = args[args.index("--image") + 1] if "--image" in args[:-1] else None
    if running != image:
        wanted, have = (f"the image {tag}" if tag else "this checkout" for tag in (image, running))
        raise StackError(f"the stack in {state_dir} runs its tasks in {have}, not {wanted}: `pipelines dev down` first")


def _stack_info(state_dir: Path, services: Iterable[_Service]) -> StackInfo:
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


# ---------------------------------------------------------------------- kafka


def _server_properties(config: StackConfig, data_dir: Path) -> dict[str, str]:
    kafka, controller = config.kafka_port, config.controller_port
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller}",
        "listeners": f"PLAINTEXT://{HOST}:{kafka},CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{kafka}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "log.dirs": str(data_dir),
    }
    if config.scram_port is not None:
        properties["listeners"] += f",SASL_PLAINTEXT://{HOST}:{config.scram_port}"
        properties["advertised.listeners"] += f",SASL_PLAINTEXT://{HOST}:{config.scram_port}"
        properties["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        properties["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
        properties["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    return properties


def _write_server_properties(config: StackConfig, kafka_dir: Path) -> Path:
    """Write (on every start, ports may change) ``<state>/kafka/server.properties``."""
    kafka_dir.mkdir(parents=True, exist_ok=True)
    path = kafka_dir / "server.properties"
    lines = (f"{key}={value}" for key, value in _server_properties(config, kafka_dir / "data").items())
    path.write_text("# written by pipelines.devstack; rewritten on every start\n" + "\n".join(lines) + "\n")
    return path


def _classpath(libs: Path) -> str:
    return f"{libs}{os.sep}*"


def _format_storage(java: str, libs: Path, properties: Path, data_dir: Path, log: Log, scram: bool = False) -> None:
    """Format the KRaft storage with a fresh cluster id, unless that was done before (with `scram`,
    the SCRAM credentials of SCRAM_USER are written into the metadata then)."""
    if (data_dir / "meta.properties").is_file():
        return
    log(f"formatting Kafka storage in {data_dir}")
    output = _run_storage_tool(java, libs, ["random-uuid"])
    cluster_id = output.strip().splitlines()[-1].strip() if output.strip() else ""
    if not _CLUSTER_ID.match(cluster_id):
        raise StackError(f"kafka-storage random-uuid printed no cluster id:\n{_tail(output)}")
    extra = ["--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"] if scram else []
    _run_storage_tool(java, libs, ["format", "-t", cluster_id, "-c", str(properties), *extra])


def _run_storage_tool(java: str, libs: Path, args: list[str]) -> str:
    """Run Kafka's StorageTool and return its stdout.

    No log4j configuration is passed: ours logs to stdout, which would mix with the
    tool's output (log4j then only warns about missing appenders, on stderr).
    """
    command = [java, "-cp", _classpath(libs), _STORAGE_TOOL, *args]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"kafka-storage {args[0]} failed (exit code {result.returncode}):\n{_tail(result.stdout + result.stderr)}"
        )
    return result.stdout


def _start_kafka(java: str, libs: Path, properties: Path, config: StackConfig, kafka_dir: Path) -> _Service:
    command = [
        java,
        f"-Xmx{config.kafka_heap}",
        f"-Xms{config.kafka_heap}",
        "-cp",
        _classpath(libs),
        f"-Dlog4j.configuration={_LOG4J.as_uri()}",
        _KAFKA_MAIN,
        str(properties),
    ]
    return _start_process(
        "kafka",
        command,
        port=config.kafka_port,
        address=f"{HOST}:{config.kafka_port}",
        log_path=kafka_dir / "kafka.log",
        cwd=kafka_dir,
        env=dict(os.environ),
    )


# ----------------------------------------------------------------------- moto

WORKFLOW_SERVER = "pipelines.devstack.workflow_server"


def _package_root() -> Path:
    """The folder holding the ``pipelines`` package (the repository root in a checkout)."""
    return _HERE.parent.parent


def emulator_env(port: int, kafka_bootstrap: str, state_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The AWS emulator's environment: the caller's (so e.g. ``PIPELINES_SHARD_BYTES`` passes
    through to the Plan step it runs) plus what the workflow running inside it needs."""
    from pipelines.devstack.resources import EVENT_BUS, JOBS_TABLE, state_machine_arn

    base = dict(os.environ if base is None else base)
    root = _package_root()
    python_path = os.pathsep.join(filter(None, [str(root), base.get("PYTHONPATH")]))
    return {
        **base,
        "MOTO_PORT": str(port),
        "PYTHONPATH": python_path,  # the emulator and its shard subprocesses import this very package
        "KAFKA_BOOTSTRAP": kafka_bootstrap,  # shard subprocesses and the Lambda handler reach Kafka
        "PIPELINES_REPO": base.get("PIPELINES_REPO") or str(root),  # cwd of shard subprocesses
        "PIPELINES_JOBS_TABLE": JOBS_TABLE,
        "PIPELINES_EVENT_BUS": EVENT_BUS,
        "PIPELINES_STATE_MACHINE_ARN": state_machine_arn(),  # the trigger task starts executions
        "PIPELINES_WORKFLOW_LOGS": str(state_dir / "workflow-logs"),
    }


def _start_moto(port: int, moto_dir: Path, *, kafka_bootstrap: str, state_dir: Path, image: str | None = None) -> _Service:
    """The AWS emulator: the workflow server (moto with Step Functions execution and the bridges)."""
    command = [sys.executable, "-m", WORKFLOW_SERVER, "--port", str(port), *(["--image", image] if image else [])]
    return _start_process(
        "moto",
        command,
        port=port,
        address=f"http://{HOST}:{port}",
        log_path=moto_dir / "moto.log",
        cwd=moto_dir,
        env=emulator_env(port, kafka_bootstrap, state_dir),
    )


# ------------------------------------------------------------ schema registry


def _start_registry(java: str, home: Path, port: int, heap: str, registry_dir: Path) -> _Service:
    """Apicurio Registry (Quarkus) on 127.0.0.1:port, in-memory storage, run from its unpacked folder."""
    command = [
        java,
        f"-Xmx{heap}",
        "-XX:TieredStopAtLevel=1",  # C1 only: starts faster, and the registry is not a hot path here
        f"-Dquarkus.http.host={HOST}",
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.log.console.color=false",
        "-jar",
        str(home / _registry_jar(APICURIO_VERSION)),
    ]
    return _start_process(
        REGISTRY_SERVICE,
        command,
        port=port,
        address=f"http://{HOST}:{port}{REGISTRY_API_PATH}",
        log_path=registry_dir / "schema-registry.log",
        cwd=registry_dir,
        env=dict(os.environ),
    )


# ------------------------------------------------------------------ processes


def _start_process(
    name: str,
    command: list[str],
    *,
    port: int,
    address: str,
    log_path: Path,
    cwd: Path,
    env: dict[str, str],
) -> _Service:
    """Start ``command`` in its own session with output going to ``log_path``."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[process.pid] = process
    return _Service(name, process.pid, tuple(command), port, address, log_path)


def _read_cmdline(pid: int) -> tuple[str, ...] | None:
    """The argv of ``pid``, or None if there is no such (non-zombie) process."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return tuple(os.fsdecode(arg) for arg in raw.split(b"\0")[:-1]) or None
    return _read_cmdline_with_ps(pid)


def _read_cmdline_with_ps(pid: int) -> tuple[str, ...] | None:
    """Fallback without /proc (macOS); whitespace inside arguments cannot be told apart."""
    result = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    line = result.stdout.strip()
    return tuple(line.split()) if result.returncode == 0 and line else None


def _is_alive(service: _Service) -> bool:
    """True while ``service.pid`` runs the very command we started (guards against pid reuse)."""
    child = _children.get(service.pid)
    if child is not None and child.poll() is not None:  # reap our own exited child
        del _children[service.pid]
        return False
    cmdline = _read_cmdline(service.pid)
    if cmdline is None:
        return False
    if Path("/proc/self").exists():
        return cmdline == service.cmdline
    return cmdline == tuple(" ".join(service.cmdline).split())


def _exit_code(service: _Service) -> int | None:
    """The exit code if ``service`` has exited (-1 when it is not our child), else None."""
    child = _children.get(service.pid)
    if child is not None:
        return child.poll()
    return None if _is_alive(service) else -1


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:  # started with start_new_session: leads its own group
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_until_gone(services: Iterable[_Service], deadline: float) -> list[_Service]:
    """Wait until ``deadline`` for the services to exit; return those still alive."""
    remaining = list(services)
    while remaining:
        remaining = [service for service in remaining if _is_alive(service)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return remaining


def _stop_services(services: Iterable[_Service], log: Log, timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """SIGTERM the process groups of the live services, SIGKILL them after ``timeout``."""
    alive = [service for service in services if _is_alive(service)]
    for service in alive:
        _signal_group(service.pid, signal.SIGTERM)
    stubborn = _wait_until_gone(alive, time.monotonic() + timeout)
    for service in stubborn:
        log(f"{service.name} (pid {service.pid}) did not stop within {timeout:.0f} s; killing it")
        if _is_alive(service):
            _signal_group(service.pid, signal.SIGKILL)
    _wait_until_gone(stubborn, time.monotonic() + 5.0)
    return [service.describe() for service in alive]


# ---------------------------------------------------------------------- probes

Probe = Callable[[float], bool]


def _make_probe(service: _Service) -> Probe:
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


def _wait_until_ready(services: list[_Service], log: Log, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Wait until every service answers; raise StackError if one exits or times out."""
    started = time.monotonic()
    pending = {service.name: (service, _make_probe(service)) for service in services}
    while pending:
        for name, (service, probe) in list(pending.items()):
            code = _exit_code(service)
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


def _not_up(service: _Service, reason: str) -> StackError:
    return StackError(
        f"{service.name} did not come up: {reason}; last lines of {service.log}:\n{_tail_file(service.log)}"
    )


# ---------------------------------------------------------------------- helpers


def _tail(text: str, lines: int = 10) -> str:
    plain = _ANSI_ESCAPE.sub("", text)  # Maven 3.8 colours its output even in batch mode
    kept = [line.rstrip() for line in plain.splitlines() if line.strip()][-lines:]
    return "\n".join(f"  {line}" for line in kept) or "  (no output)"


def _tail_file(path: Path, lines: int = 10) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "  (log not readable)"
    return _tail(text, lines)
