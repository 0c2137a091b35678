"""The stack's Kafka broker, run from its jars in KRaft combined mode (broker and controller in one
JVM): its ``server.properties`` (a PLAINTEXT listener, the controller's, and optionally a
SASL/SCRAM-SHA-512 one), the storage formatted once with a fresh cluster id (and SCRAM_USER's
credentials when there is a SCRAM listener), and the broker process itself."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from pipelines.devstack.messages import Log, StackError, tail
from pipelines.devstack.processes import HOST, Service, start_process

SCRAM_USER = "pipelines"
SCRAM_PASSWORD = "local-scram-password"  # the local stack's own broker only

_LOG4J = Path(__file__).resolve().parent / "log4j.properties"
_STORAGE_TOOL = "kafka.tools.StorageTool"
_KAFKA_MAIN = "kafka.Kafka"
_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def server_properties(data_dir: Path, *, kafka_port: int, controller_port: int, scram_port: int | None) -> dict[str, str]:
    kafka, controller = kafka_port, controller_port
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
    if scram_port is not None:
        properties["listeners"] += f",SASL_PLAINTEXT://{HOST}:{scram_port}"
        properties["advertised.listeners"] += f",SASL_PLAINTEXT://{HOST}:{scram_port}"
        properties["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        properties["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
        properties["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    return properties


def write_server_properties(kafka_dir: Path, *, kafka_port: int, controller_port: int, scram_port: int | None) -> Path:
    """Write (on every start, ports may change) ``<state>/kafka/server.properties``."""
    kafka_dir.mkdir(parents=True, exist_ok=True)
    path = kafka_dir / "server.properties"
    ports = {"kafka_port": kafka_port, "controller_port": controller_port, "scram_port": scram_port}
    lines = (f"{key}={value}" for key, value in server_properties(kafka_dir / "data", **ports).items())
    path.write_text("# written by pipelines.devstack; rewritten on every start\n" + "\n".join(lines) + "\n")
    return path


def _classpath(libs: Path) -> str:
    return f"{libs}{os.sep}*"


def format_storage(java: str, libs: Path, properties: Path, data_dir: Path, log: Log, scram: bool = False) -> None:
    """Format the KRaft storage with a fresh cluster id, unless that was done before (with `scram`,
    the SCRAM credentials of SCRAM_USER are written into the metadata then)."""
    if (data_dir / "meta.properties").is_file():
        return
    log(f"formatting Kafka storage in {data_dir}")
    output = _run_storage_tool(java, libs, ["random-uuid"])
    cluster_id = output.strip().splitlines()[-1].strip() if output.strip() else ""
    if not _CLUSTER_ID.match(cluster_id):
        raise StackError(f"kafka-storage random-uuid printed no cluster id:\n{tail(output)}")
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
            f"kafka-storage {args[0]} failed (exit code {result.returncode}):\n{tail(result.stdout + result.stderr)}"
        )
    return result.stdout


def start_kafka(java: str, libs: Path, properties: Path, kafka_dir: Path, *, port: int, heap: str) -> Service:
    """The broker on 127.0.0.1:port with ``heap`` as its Java heap, its output in ``kafka_dir/kafka.log``."""
    command = [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-cp",
        _classpath(libs),
        f"-Dlog4j.configuration={_LOG4J.as_uri()}",
        _KAFKA_MAIN,
        str(properties),
    ]
    return start_process(
        "kafka",
        command,
        port=port,
        address=f"{HOST}:{port}",
        log_path=kafka_dir / "kafka.log",
        cwd=kafka_dir,
        env=dict(os.environ),
    )


def start_again(kafka: Service) -> Service:
    """Start a stopped broker again with its recorded command line (same data), its output in
    ``kafka.restarted.log`` next to the first log."""
    return start_process(
        "kafka",
        list(kafka.cmdline),
        port=kafka.port,
        address=kafka.address,
        log_path=kafka.log.with_suffix(".restarted.log"),
        cwd=kafka.log.parent,
        env=dict(os.environ),
    )
