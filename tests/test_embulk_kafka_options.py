"""embulk-output-kafka's options checked by `pipelines validate` (no broker needed): the ones we
accept, and the values refused with the option, the reason and what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.engine.config import load_job
from pipelines.engine.errors import EXIT_CONFIG

IN = """\
in:
  type: file
  path_prefix: /tmp/never-read/in_
  parser:
    type: csv
    columns:
      - {name: user_id, type: string}
      - {name: segment, type: string}
      - {name: hint, type: long}
      - {name: deleted, type: boolean}
"""
OUT = "out:\n  type: kafka\n  brokers: ['localhost:9092']\n  topic: audience\n  key_column_name: user_id\n"


def write_config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "embulk.yml"
    path.write_text(IN + OUT + extra)
    return path


def validate(path: Path):
    return CliRunner().invoke(cli, ["validate", str(path)])


def refused(tmp_path: Path, extra: str) -> str:
    path = write_config(tmp_path, extra)
    result = validate(path)
    assert result.exit_code == EXIT_CONFIG, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: {path}: out"), result.stderr
    assert result.stderr.count("\n") == 1, "one line, no traceback"
    return result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        "  acks: all\n",
        "  acks: '-1'\n",
        "  acks: -1\n",
        "  retries: 3\n",
        "  record_batch_size: 16384\n",
        "  treat_producer_exception_as_error: true\n",
        "  column_for_deletion: deleted\n  topic_column: segment\n  partition_column_name: hint\n  ignore_columns: [deleted, hint]\n",
        (
            "  serialize_format: avro_with_schema_registry\n  schema_registry_url: http://r:8081\n"
            "  value_subject_name_strategy: io.confluent.kafka.serializers.subject.TopicRecordNameStrategy\n"
        ),
        "  serialize_format: avro_with_schema_registry\n  schema_registry_url: http://r:8081\n  subject_name: members-value\n",
        "  topic_column: segment\n  serialize_format: avro_with_schema_registry\n  schema_registry_url: http://r:8081\n",
    ],
)
def test_embulk_options_that_keep_exactly_once_validate(tmp_path: Path, extra: str) -> None:
    result = validate(write_config(tmp_path, extra))

    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  acks: '1'\n", "acks: '1' would let the brokers acknowledge a row before every in-sync replica has it"),
        ("  acks: 0\n", "write acks: all (or -1), or leave it out"),
        ("  retries: 0\n", "retries: 0 would fail a shard on the first transient broker error"),
        ("  retries: 3\n  other_producer_configs: {retries: '5'}\n", "retries: also given as other_producer_configs 'retries'"),
        ("  record_batch_size: 0\n", "record_batch_size: 0 is not between 1 and 67108864 bytes"),
        ("  record_batch_size: 100000000\n", "more than the producer's queue holds would unbound memory"),
        ("  treat_producer_exception_as_error: false\n", "treat_producer_exception_as_error: false would drop a row whose delivery failed"),
        ("  value_subject_name_strategy: MyStrategy\n  serialize_format: avro\n  schema_registry_url: http://r\n",
         "value_subject_name_strategy: 'MyStrategy' is not one of TopicNameStrategy, RecordNameStrategy, TopicRecordNameStrategy"),
        ("  value_subject_name_strategy: RecordNameStrategy\n", "value_subject_name_strategy: only for serialize_format: avro"),
        ("  subject_name: a\n  value_subject: b\n  serialize_format: avro\n  schema_registry_url: http://r\n",
         "give subject_name (Embulk's name) or value_subject, not both"),
    ],
)
def test_embulk_option_values_that_would_break_exactly_once_are_refused_with_why_and_what_instead(
    tmp_path: Path, extra: str, expected: str
) -> None:
    assert expected in refused(tmp_path, extra)


def test_column_for_deletion_needs_a_key(tmp_path: Path) -> None:
    path = tmp_path / "nokey.yml"
    path.write_text(IN + "out:\n  type: kafka\n  brokers: ['b:9092']\n  topic: t\n  column_for_deletion: deleted\n")

    result = validate(path)

    assert result.exit_code == EXIT_CONFIG
    assert "column_for_deletion needs key_column_name: a tombstone is a key with a null value" in result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  column_for_deletion: segment\n", "out.column_for_deletion: column 'segment' is string; column_for_deletion takes a boolean column"),
        ("  partition_column_name: segment\n", "out.partition_column_name: column 'segment' is string; partition_column_name takes a long column"),
        ("  topic_column: hint\n", "out.topic_column: column 'hint' is long; topic_column takes a string column"),
        ("  topic_column: segmnt\n", "out.topic_column: no column 'segmnt' (did you mean 'segment'?)"),
    ],
)
def test_routing_columns_must_be_columns_of_the_right_type(tmp_path: Path, extra: str, expected: str) -> None:
    assert expected in refused(tmp_path, extra)


def test_avro_with_schema_registry_is_avro_and_the_subject_follows_the_strategy(tmp_path: Path) -> None:
    avsc = "  avsc: {type: record, name: Member, namespace: crm, fields: [{name: user_id, type: string}]}\n"
    base = "  serialize_format: avro_with_schema_registry\n  schema_registry_url: http://r:8081\n  ignore_columns: [segment, hint, deleted]\n" + avsc
    subjects = {}
    for strategy in ("TopicNameStrategy", "RecordNameStrategy", "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"):
        job = load_job(write_config(tmp_path, base + f"  value_subject_name_strategy: {strategy}\n"))
        assert job.output.settings.serialize_format == "avro"
        subjects[strategy.rsplit(".", 1)[-1]] = job.output.avro.subject
    assert subjects == {"TopicNameStrategy": "audience-value", "RecordNameStrategy": "crm.Member", "TopicRecordNameStrategy": "audience-crm.Member"}


def test_retries_and_record_batch_size_become_librdkafka_settings_and_acks_stays_all(tmp_path: Path) -> None:
    from pipelines.kafka.producer import producer_config

    job = load_job(write_config(tmp_path, "  acks: -1\n  retries: 7\n  record_batch_size: 16384\n"))
    config = producer_config(job.output.settings, "job", 0)

    assert (config["acks"], config["retries"], config["batch.size"], config["enable.idempotence"]) == ("all", 7, 16384, True)


class _Message:
    def __init__(self, key: bytes | None, value: bytes | None, offset: int, headers: list | None) -> None:
        self._key, self._value, self._offset, self._headers = key, value, offset, headers

    def key(self):
        return self._key

    def value(self):
        return self._value

    def offset(self):
        return self._offset

    def headers(self):
        return self._headers


@pytest.mark.parametrize("compiled", [True, False])
def test_end_markers_with_an_empty_key_are_left_out_of_exports(compiled: bool) -> None:
    """On a compacted topic end markers carry an empty key (its brokers refuse none): the export's
    split, compiled and in Python, still finds them by their header."""
    from pipelines.kafka.markers import MARKER, job_header
    from pipelines.native import kafka as native

    split = native.split_messages() if compiled else native._split_messages
    if compiled and split is native._split_messages:
        pytest.skip("the extension is not built")
    messages = [
        _Message(b"u1", b"{}", 0, [job_header("j")]),
        _Message(b"u2", None, 1, [job_header("j")]),
        _Message(b"", b'{"job_id": "j"}', 2, [MARKER, job_header("j")]),
        _Message(None, b'{"job_id": "j"}', 3, [MARKER, job_header("j")]),
    ]

    values, offsets, keys, tombstones = split(messages, MARKER, None)

    assert (values, offsets, keys, tombstones) == ([b"{}"], [0], [b"u1"], [1])
