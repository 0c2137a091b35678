"""The compiled parts: the hot loops in C, in four optional extensions.

- pipelines/native/_fastrows.c: CSV text to typed rows (or straight to Kafka records with JSON or Avro values), rows to
  CSV text and to JSON lines, flat JSON values to typed rows;
- pipelines/native/_fastkafka.c: rows to produced JSON records, consumed batches to values;
- pipelines/native/_avrowrite.c: rows to Kafka records with Avro values (the Confluent wire format);
- pipelines/native/_avroread.c: Avro records (Confluent wire-format values, container blocks) to typed rows;
- pipelines/native/_isoformat.h: the datetime text they write; _common.h: the byte buffer, number text and Avro
  numbers they share; _jsonwrite.h: a value's JSON text, as orjson writes it.

Without a C compiler the build goes on without them, and the same work is done by Python loops
with the same results (tests/test_native.py, test_avro_values.py and test_avro_native.py run both and compare).

_fastkafka reads confluent_kafka's private object layout, so it is built for one confluent-kafka
version: the pin in container/constraints.txt (the image's, which the tests check it against),
passed as CONFLUENT_KAFKA_VERIFIED. With another version installed its import fails and the Python
loops run (pipelines/native/compiled.py warns once). Without that file (a build from elsewhere than the
repository) it is not built at all.
The rest of the metadata is in pyproject.toml.
"""

import re
import sys
from pathlib import Path

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wno-vla"]
SHARED = ["pipelines/native/_isoformat.h", "pipelines/native/_common.h", "pipelines/native/_jsonwrite.h"]
CONSTRAINTS = "container/constraints.txt"


def pinned_confluent_kafka() -> str | None:
    """The confluent-kafka version container/constraints.txt pins, or None."""
    path = Path(__file__).resolve().parent / CONSTRAINTS
    if not path.is_file():
        return None
    found = re.search(r"^confluent-kafka==([0-9][0-9A-Za-z.+-]*)\s*$", path.read_text(), re.MULTILINE)
    return found.group(1) if found else None


def fastkafka() -> list[Extension]:
    version = pinned_confluent_kafka()
    if version is None:
        print(f"note: no confluent-kafka pin in {CONSTRAINTS}: pipelines.native._fastkafka is not built", file=sys.stderr)
        return []
    return [
        Extension(
            "pipelines.native._fastkafka",
            ["pipelines/native/_fastkafka.c"],
            depends=SHARED + [CONSTRAINTS],
            define_macros=[("CONFLUENT_KAFKA_VERIFIED", f'"{version}"')],
            extra_compile_args=FLAGS,
            libraries=["dl"],
            optional=True,
        )
    ]


setup(
    ext_modules=[
        Extension("pipelines.native._fastrows", ["pipelines/native/_fastrows.c"], depends=SHARED, extra_compile_args=FLAGS, optional=True),
        Extension("pipelines.native._avrowrite", ["pipelines/native/_avrowrite.c"], depends=SHARED, extra_compile_args=FLAGS, optional=True),
        Extension("pipelines.native._avroread", ["pipelines/native/_avroread.c"], depends=SHARED, extra_compile_args=FLAGS, optional=True),
        *fastkafka(),
    ]
)
