"""The compiled parts: two hot loops in C, each optional.

- pipelines/_fastrows.c: the CSV parser's per-row loop (typed rows from csv.reader);
- pipelines/kafka/_fastkafka.c: the Kafka output's batch produce loop.

Without a C compiler the build goes on without them, and the same work is done by Python loops
with the same results (tests/test_native.py runs both and compares).
The rest of the metadata is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("pipelines._fastrows", ["pipelines/_fastrows.c"], extra_compile_args=["-O2", "-Wall", "-Wno-vla"], optional=True),
        Extension(
            "pipelines.kafka._fastkafka",
            ["pipelines/kafka/_fastkafka.c"],
            extra_compile_args=["-O2", "-Wall", "-Wno-vla"],
            libraries=["dl"],
            optional=True,
        )
    ]
)
