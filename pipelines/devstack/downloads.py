"""The tools the local stack runs, fetched once with Maven into the cache directory: Kafka's broker
jars (``<cache>/kafka-<version>/libs``, resolved from kafka-pom.xml) and Apicurio Registry (its
``-all`` tar.gz, unpacked into ``<cache>/apicurio-registry-<version>``). Each lands in a staging
folder renamed into place, so the cached folder is either complete (it holds a marker file) or
absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipelines.devstack.messages import Log, StackError, print_to_stderr, tail

KAFKA_VERSION = "3.9.1"
APICURIO_VERSION = "2.6.13.Final"  # 3.x needs Java 21; 2.6 runs on Java 17
APICURIO_ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"

_POM = Path(__file__).resolve().parent / "kafka-pom.xml"
_JARS_MARKER = ".complete"


def cache_dir() -> Path:
    """Where downloaded tools are kept: ``$PIPELINES_CACHE`` or ``~/.cache/audience-pipelines``."""
    configured = os.environ.get("PIPELINES_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "audience-pipelines"


def ensure_kafka_jars(log: Log = print_to_stderr, version: str = KAFKA_VERSION) -> Path:
    """Return the directory holding the Kafka broker jars, downloading them with Maven once.

    The jars are resolved into a staging directory next to the final one, which is then
    renamed into place, so ``<cache>/kafka-<version>/libs`` is either complete (it holds
    the marker file) or absent.
    """
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    if (libs / _JARS_MARKER).is_file():
        return libs
    require_java()
    mvn = require_tool("mvn", "Maven (mvn) is required to download the Kafka jars but was not found on PATH")
    home.mkdir(parents=True, exist_ok=True)
    log(f"downloading Kafka {version} jars with Maven into {libs} (only needed once)")
    with tempfile.TemporaryDirectory(prefix="download-", dir=home) as tmp:
        staging = Path(tmp) / "libs"
        _run_maven(mvn, Path(tmp), staging, version)
        (staging / _JARS_MARKER).write_text(f"kafka {version}\n")
        _move_into_place(staging, libs)
    return libs


def ensure_schema_registry(log: Log = print_to_stderr, version: str = APICURIO_VERSION) -> Path:
    """Return the folder holding Apicurio Registry's runner jar, downloading it with Maven once.

    Maven fetches the ``-all`` tar.gz (about 140 MB) into its local repository; it is unpacked
    into a staging folder renamed into ``<cache>/apicurio-registry-<version>``, which is thus
    either complete (it holds the marker file) or absent.
    """
    home = cache_dir() / f"apicurio-registry-{version}"
    if (home / _JARS_MARKER).is_file():
        return home
    require_java()
    mvn = require_tool("mvn", "Maven (mvn) is required to download the schema registry but was not found on PATH")
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
                f"last lines of its output:\n{tail(result.stdout)}"
            )
        staging = Path(tmp) / "registry"
        _unpack(archives[0], staging)
        if not (staging / registry_jar(version)).is_file():
            raise StackError(f"{archives[0].name} holds no {registry_jar(version)}")
        (staging / _JARS_MARKER).write_text(f"apicurio-registry {version}\n")
        _move_into_place(staging, home)
    return home


def registry_jar(version: str) -> str:
    """The name of Apicurio Registry's runner jar in its unpacked folder."""
    return f"apicurio-registry-app-{version}-runner.jar"


def _unpack(archive: Path, into: Path) -> None:
    import tarfile

    into.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(into, filter="data")  # "data": no absolute paths, links out or device files


def require_tool(name: str, message: str) -> str:
    """The path of the program ``name`` on PATH; StackError(message) when there is none."""
    path = shutil.which(name)
    if path is None:
        raise StackError(message)
    return path


def require_java() -> str:
    """The path of ``java`` (Kafka and the schema registry run on it)."""
    return require_tool(
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
            f"last lines of its output:\n{tail(result.stdout)}"
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
