"""The stack's schema registry: Apicurio Registry 2.x (Quarkus) run from its unpacked folder (see
downloads.ensure_schema_registry), in-memory storage, serving the Confluent-compatible API at
``/apis/ccompat/v7``; recorded as the service ``schema-registry``."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.devstack.downloads import APICURIO_VERSION, registry_jar
from pipelines.devstack.processes import HOST, Service, start_process

REGISTRY_API_PATH = "/apis/ccompat/v7"  # Apicurio's Confluent-compatible API
REGISTRY_SERVICE = "schema-registry"


def start_registry(java: str, home: Path, port: int, heap: str, registry_dir: Path) -> Service:
    """Apicurio Registry (Quarkus) on 127.0.0.1:port, in-memory storage, run from its unpacked folder."""
    command = [
        java,
        f"-Xmx{heap}",
        "-XX:TieredStopAtLevel=1",  # C1 only: starts faster, and the registry is not a hot path here
        f"-Dquarkus.http.host={HOST}",
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.log.console.color=false",
        "-jar",
        str(home / registry_jar(APICURIO_VERSION)),
    ]
    return start_process(
        REGISTRY_SERVICE,
        command,
        port=port,
        address=f"http://{HOST}:{port}{REGISTRY_API_PATH}",
        log_path=registry_dir / "schema-registry.log",
        cwd=registry_dir,
        env=dict(os.environ),
    )
