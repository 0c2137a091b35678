"""pipelines.native._fastkafka reads confluent_kafka's private object layout, so it loads only with the
confluent-kafka release pinned in container/constraints.txt (setup.py builds that version into it).

One virtual environment of its own, made once per session under pytest's tmp dir (pip needs PyPI):
another confluent-kafka release, and this package built by pip from a copy of the sources, its C
extensions compiled there. In it the import fails naming both versions, every caller gets its Python
loop, one warning is logged however often they ask, and an import into the test broker writes every
row. The same build, with the pinned release ahead on PYTHONPATH, loads and produces through the
compiled loop; PIPELINES_NATIVE=0 still turns it off.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines.kafka.murmur2 import partition_for

from conftest import REPO, config_with, consume_all, job_vars, put_audiences, summary_of

FAST = "pipelines.native._fastkafka"
PINS = (REPO / "container" / "constraints.txt").read_text()
PIN = re.search(r"^confluent-kafka==(\S+)$", PINS, re.MULTILINE).group(1)
# Not the pin; a release with cp311 manylinux wheels, from before 2.12 (its version() is a (str, int)
# tuple, a str since) and within pyproject.toml's range.
OTHER = "2.11.1" if PIN != "2.11.1" else "2.10.1"
REFUSED = "the compiled Kafka loops are off and the Python loops run instead"

# Run in the environment under test: what the callers get, and every warning logged meanwhile.
PROBE = r"""
import json, logging, sys

bootstrap, topic = sys.argv[1:3]
warnings = []

class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger().addHandler(Keep(logging.WARNING))

import confluent_kafka
from confluent_kafka import Producer

seen = {"installed": confluent_kafka.__version__}
try:
    import pipelines.native._fastkafka as fast
    seen["verified"] = fast.CONFLUENT_KAFKA_VERIFIED
except ImportError as exc:
    seen["import_error"] = str(exc)

from pipelines.native.compiled import compiled
from pipelines.native import kafka as native

producer = Producer({"bootstrap.servers": bootstrap, "client.id": "probe", "delivery.report.only.error": True})
failures = []
for _ in range(3):  # as every batch of a run asks again
    batch = native.batch_producer(producer, "probe", topic=topic, key_index=0, value_indexes=[0, 1], names=["user_id", "n"],
                                  headers=[("pipelines.job_id", b"probe")], on_delivery=lambda err, msg: failures.append(str(err)))
seen["batch_producer"] = type(batch).__name__
seen["compiled"] = sorted(n for n in ("produce_json", "consume", "split_messages", "with_errors", "murmur2") if compiled(native.FAST, n))
seen["compiled_consume"] = native.compiled_consume() is not None
seen["python_loops"] = native.split_messages() is native._split_messages and native.with_errors() is native._with_errors
seen["fastrows"] = compiled("pipelines.native._fastrows", "split_rows") is not None
seen["reason"] = native.unavailable_reason()
if batch is not None:
    seen["produced"] = batch.produce([[f"u{i}", i] for i in range(20)], [0] * 6)[0]
    seen["unflushed"] = producer.flush(30)
seen["failures"], seen["warnings"] = failures, warnings
print(json.dumps(seen))
"""


def environment(**more: str) -> dict[str, str]:
    """This process's environment without what would reach into this checkout or turn the loops off."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIPELINES_NATIVE", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **more}


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed (this test needs PyPI):\n{result.stdout[-2000:]}{result.stderr[-4000:]}")


def copy_sources(to: Path) -> Path:
    """What container/Dockerfile copies to build the package: its metadata, the constraints, the sources."""
    for name in ("pyproject.toml", "setup.py", "README.md", "container/constraints.txt"):
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, to / name)
    shutil.copytree(REPO / "pipelines", to / "pipelines", ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    return to


@pytest.fixture(scope="session")
def other_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with confluent-kafka OTHER, the other runtime dependencies at the image's
    pins, and this package as pip builds it (non-editable, the C extensions compiled)."""
    root = tmp_path_factory.mktemp("other-confluent-kafka")
    source = copy_sources(root / "src")
    constraints = root / "constraints.txt"
    constraints.write_text("".join(line + "\n" for line in PINS.splitlines() if not line.startswith("confluent-kafka==")))
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], root)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", f"confluent-kafka=={OTHER}", "--constraint", str(constraints), str(source)], root)
    built = sorted(p.name.split(".")[0] for p in (venv / "lib").glob("python3*/site-packages/pipelines/**/_fast*.so"))
    assert built == ["_fastkafka", "_fastrows"], f"the C extensions were not built in {venv}: {built}"
    return venv


@pytest.fixture(scope="session")
def pinned_path(other_env: Path) -> Path:
    """confluent-kafka at the pin, installed into a folder to put ahead of other_env's on PYTHONPATH."""
    target = other_env.parent / "pinned"
    run([str(other_env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), f"confluent-kafka=={PIN}"], other_env.parent)
    return target


def probe(venv: Path, bootstrap: str, topic: str, **env: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PROBE, bootstrap, topic],
        cwd=venv.parent,  # not this checkout: the package installed in `venv` is the one imported
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_this_environment_loads_the_extension_only_with_the_pin() -> None:
    import confluent_kafka

    installed = confluent_kafka.__version__
    try:
        from pipelines.native import _fastkafka
    except ModuleNotFoundError as exc:
        if exc.name != FAST:
            raise
        pytest.skip("the C extensions are not built (no C compiler at install)")
    except ImportError as exc:
        assert installed != PIN, exc
        assert f"confluent-kafka {installed} is installed" in str(exc) and f"confluent-kafka {PIN} (the pin" in str(exc)
    else:
        assert installed == PIN == _fastkafka.CONFLUENT_KAFKA_VERIFIED


def test_another_release_refuses_the_extension_and_warns_once(other_env: Path, stack: Any, topic: str) -> None:
    seen = probe(other_env, stack.kafka_bootstrap, topic)
    message = seen.get("import_error", "")
    assert seen["installed"] == OTHER and "verified" not in seen, seen
    assert message.startswith(f"confluent-kafka {OTHER} is installed, but {FAST} ") and f"confluent-kafka {PIN} (the pin" in message
    assert REFUSED in message
    assert seen["batch_producer"] == "NoneType" and seen["compiled"] == [] and not seen["compiled_consume"], seen
    assert seen["python_loops"] and seen["reason"] == message
    assert seen["fastrows"], "the other extension does not depend on confluent-kafka and still loads"
    assert seen["warnings"] == [message], "one warning per process, however often the callers ask"


def test_another_release_imports_every_row_with_the_python_loops(other_env: Path, stack: Any, s3: Any, bucket: str, topic: str, tmp_path: Path) -> None:
    ids = put_audiences(s3, bucket, 1, 2000)
    result = subprocess.run(
        [str(other_env / "bin" / "pipelines"), "run", config_with(tmp_path), *job_vars(bucket, topic)],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert summary_of(result)["rows_written"] == 2000
    assert result.stderr.count(REFUSED) == 1, result.stderr
    keys = sorted(r.key().decode() for r in consume_all(stack.kafka_bootstrap, topic) if r.key() is not None)
    assert keys == sorted(ids)


def test_the_same_build_loads_and_produces_with_the_pinned_release(other_env: Path, pinned_path: Path, stack: Any, topic: str) -> None:
    seen = probe(other_env, stack.kafka_bootstrap, topic, PYTHONPATH=str(pinned_path))
    assert seen["installed"] == seen["verified"] == PIN and "import_error" not in seen, seen
    assert seen["batch_producer"] == "BatchProducer" and seen["compiled_consume"] and seen["reason"] is None, seen
    assert seen["compiled"] == ["consume", "murmur2", "produce_json", "split_messages", "with_errors"]
    assert (seen["produced"], seen["unflushed"], seen["failures"], seen["warnings"]) == (20, 0, [], [])
    records = consume_all(stack.kafka_bootstrap, topic, "read_uncommitted")
    assert sorted((r.key(), r.value(), r.partition()) for r in records) == sorted(
        (f"u{i}".encode(), orjson.dumps({"user_id": f"u{i}", "n": i}), partition_for(f"u{i}".encode(), 6)) for i in range(20)
    )


def test_pipelines_native_0_turns_the_pinned_release_off_too(other_env: Path, pinned_path: Path, stack: Any, topic: str) -> None:
    seen = probe(other_env, stack.kafka_bootstrap, topic, PYTHONPATH=str(pinned_path), PIPELINES_NATIVE="0")
    assert seen["verified"] == PIN and seen["reason"] == "PIPELINES_NATIVE=0", seen
    assert seen["batch_producer"] == "NoneType" and seen["compiled"] == [] and not seen["fastrows"] and seen["python_loops"]
    assert seen["warnings"] == []
