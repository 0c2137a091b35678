"""The compiled parts: the hot loops in C, in two optional extensions.

- pipelines/_fastrows.c: CSV text to typed rows, rows to CSV text, flat JSON values to typed rows;
- pipelines/kafka/_fastkafka.c: rows to produced JSON records, consumed batches to values;
- pipelines/_isoformat.h: the datetime text both write.

Without a C compiler the build goes on without them, and the same work is done by Python loops
with the same results (tests/test_native.py runs both and compares).
The rest of the metadata is in pyproject.toml.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wno-vla"]
SHARED = ["pipelines/_isoformat.h"]

setup(
    ext_modules=[
        Extension("pipelines._fastrows", ["pipelines/_fastrows.c"], depends=SHARED, extra_compile_args=FLAGS, optional=True),
        Extension(
            "pipelines.kafka._fastkafka",
            ["pipelines/kafka/_fastkafka.c"],
            depends=SHARED,
            extra_compile_args=FLAGS,
            libraries=["dl"],
            optional=True,
        ),
    ]
)
