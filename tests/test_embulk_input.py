"""Embulk-shaped configs (tests/embulk/input_*.yml.liquid, parser_*.yml.liquid: embulk-input-s3, Embulk's
csv and json parsers, gzip and bzip2 decoders) run with `pipelines run` against the local stack (the
real broker and the moto server), as an Embulk user would run them; each test checks the records.

The parser configs run twice, with the compiled loops and without them (PIPELINES_NATIVE=0), and must
give the same rows."""

from __future__ import annotations

import bz2
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    REPO,
    consume_all,
    create_topic,
    rows_and_markers,
    run_cli,
    summary_of,
)
from fault_s3 import Fault, fault_s3

from pipelines.devstack.sample import write_audience_csv
from pipelines.engine.errors import EXIT_CONFIG, EXIT_RETRYABLE, EXIT_RUN_FAILED

EMBULK = REPO / "tests" / "embulk"


def run_config(name: str | Path, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), **variables: str) -> Any:
    """`pipelines run` of an Embulk-shaped config, with --var KEY=VALUE for each of `variables`."""
    path = name if isinstance(name, Path) else EMBULK / name
    args = [arg for key, value in variables.items() for arg in ("--var", f"{key}={value}")]
    return run_cli("run", str(path), *args, env=env, unset=unset)


def printed_rows(result: Any) -> list[dict[str, Any]]:
    """The rows the stdout output printed (JSON lines), before the summary line."""
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.strip().splitlines()[:-1]]


def with_lines(name: str, tmp_path: Path, after: str, *lines: str) -> Path:
    """A copy of the config `name` with `lines` inserted after the line `after`."""
    text = (EMBULK / name).read_text().replace(after + "\n", after + "\n" + "".join(line + "\n" for line in lines), 1)
    path = tmp_path / name
    path.write_text(text)
    return path


# --- embulk-input-s3 with Embulk's csv options, into Kafka

AUDIENCE_1 = (
    "user_id,country,score,joined_at,updated_at\n"
    "# exported by the CRM on 2026-12-06\n"
    " u1 , FR ,1.5,2026-12-06 09:00:00,2026-12-06 10:00:00.123456789 +0000\n"
    'u2,"  DE  ",2,2026-12-06 09:30:00,2026-12-06 10:30:00.5 +0100\n'
    "u3,XX,not-a-number,2026-12-06 09:00:00,2026-12-06 10:00:00.0 +0000\n"
)
AUDIENCE_2 = "user_id,country,score,joined_at,updated_at\nu4,ES,4,2026-12-07 00:00:00,2026-12-07 00:00:00.0 +0000\n"


def put_audience_drops(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="drops/audience-1.csv.gz", Body=gzip.compress(AUDIENCE_1.encode()))
    s3.put_object(Bucket=bucket, Key="drops/audience-2.csv.gz", Body=gzip.compress(AUDIENCE_2.encode()))
    s3.put_object(Bucket=bucket, Key="drops/audience-3.csv.gz", Body=gzip.compress(AUDIENCE_2.replace("u4", "u5").encode()))
    s3.put_object(Bucket=bucket, Key="drops/audience-notes.txt", Body=b"not an audience\n")


def test_s3_to_kafka_with_embulk_input_and_csv_options(stack: Any, s3: Any, bucket: str, topic: str) -> None:
    put_audience_drops(s3, bucket)
    result = run_config("input_s3_csv_to_kafka.yml.liquid", env={"S3_BUCKET": bucket, "KAFKA_TOPIC": topic})
    assert result.returncode == 0, result.stderr
    assert "note: exec.min_output_tasks is accepted and has no effect" in result.stderr
    summary = summary_of(result)
    # total_file_count_limit 2 of the objects path_match_pattern keeps; u3's score is an invalid record
    assert (summary["objects"], summary["rows_written"], summary["rows_skipped"]) == (2, 3, 1)
    assert summary["config_diff"] == {"in": {"last_path": "drops/audience-2.csv.gz"}}
    rows, _ = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    values = {msg.key().decode(): json.loads(msg.value()) for msg in rows}
    assert set(values) == {"u1", "u2", "u4"}
    assert values["u1"] == {
        "user_id": "u1", "country": "FR", "score": 1.5,
        "joined_at": "2026-12-06T09:00:00+09:00", "updated_at": "2026-12-06T10:00:00.123456+00:00",
    }
    assert values["u2"]["country"] == "  DE  "  # quoted: not trimmed
    assert values["u2"]["updated_at"] == "2026-12-06T10:30:00.500000+01:00"


def test_embulk_retry_settings_set_the_tries_of_a_request(stack: Any, s3: Any, bucket: str, topic: str) -> None:
    put_audience_drops(s3, bucket)
    listing = Fault("GET", "list-type=2", path_contains=f"/{bucket}", times=None, status=503, code="SlowDown", message="Slow down")
    with fault_s3(stack.aws_endpoint_url, listing) as url:
        result = run_config("input_s3_csv_to_kafka.yml.liquid", env={"S3_BUCKET": bucket, "KAFKA_TOPIC": topic, "AWS_ENDPOINT_URL": url})
    assert result.returncode == EXIT_RETRYABLE, result.stderr
    assert listing.matched == 4  # maximum_retries: 3, after the first try
    assert "S3 answered 503 SlowDown: Slow down (ListObjectsV2, 4 tries)" in result.stderr


FUSED_OR_ROWS = """\
in:
  type: s3
  bucket: "{{ env.S3_BUCKET }}"
  path_prefix: drops/
  parser:
    type: csv
    skip_header_lines: 1
    columns:
      - {name: user_id, type: string}
      - {name: country, type: string}
      - {name: score, type: double}
      - {name: opted_in, type: boolean}
      - {name: updated_at, type: timestamp}
out:
  type: kafka
  brokers: ["{{ env.KAFKA_BOOTSTRAP }}"]
  topic: "{{ env.KAFKA_TOPIC }}"
  key_column_name: user_id
  serialize_format: json
exec:
  work_dir: "s3://{{ env.S3_BUCKET }}/_jobs"
  error_output: "s3://{{ env.S3_BUCKET }}/_errors/"
"""


def test_kafka_records_are_the_same_through_the_fused_path_and_the_tokenizer(stack: Any, s3: Any, bucket: str, tmp_path: Path) -> None:
    """The plain config takes the fused CSV-to-Kafka path; with comment_line_marker (no comment in the data)
    the tokenizer loop reads it into rows: the same records."""
    raw = io.BytesIO()
    write_audience_csv(raw, 3000, seed=7)
    text = raw.getvalue().decode().replace(",FR,", ',"F,R",', 5)  # a few quoted values
    s3.put_object(Bucket=bucket, Key="drops/a.csv.gz", Body=gzip.compress(text.encode()))
    records = []
    for name, extra in (("fused", ""), ("rows", "    comment_line_marker: \"#\"\n    newline: LF\n")):
        topic = f"embulk-{name}-{bucket}"
        create_topic(stack.kafka_bootstrap, topic, 3)
        path = tmp_path / f"{name}.yml.liquid"
        path.write_text(FUSED_OR_ROWS.replace("    skip_header_lines: 1\n", "    skip_header_lines: 1\n" + extra))
        result = run_config(path, env={"S3_BUCKET": bucket, "KAFKA_TOPIC": topic})
        assert result.returncode == 0, result.stderr
        rows, _ = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
        records.append(sorted((msg.partition(), msg.key(), msg.value()) for msg in rows))
    assert len(records[0]) == 3000 and records[0] == records[1]


# --- incremental: last_path returned as data, and given back


def put_csv(s3: Any, bucket: str, key: str, *rows: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=("user_id,score\n" + "".join(f"{r}\n" for r in rows)).encode())


def test_incremental_second_run_imports_only_the_new_object(stack: Any, s3: Any, bucket: str) -> None:
    put_csv(s3, bucket, "daily/2026-12-05.csv", "u1,1", "u2,2")
    first = run_config("input_s3_incremental.yml.liquid", env={"S3_BUCKET": bucket})
    assert printed_rows(first) == [{"user_id": "u1", "score": 1}, {"user_id": "u2", "score": 2}]
    last_path = summary_of(first)["config_diff"]["in"]["last_path"]
    assert last_path == "daily/2026-12-05.csv"

    put_csv(s3, bucket, "daily/2026-12-06.csv", "u3,3")
    second = run_config("input_s3_incremental.yml.liquid", env={"S3_BUCKET": bucket}, LAST_PATH=last_path)
    assert printed_rows(second) == [{"user_id": "u3", "score": 3}]
    assert summary_of(second)["config_diff"] == {"in": {"last_path": "daily/2026-12-06.csv"}}

    third = run_config("input_s3_incremental.yml.liquid", env={"S3_BUCKET": bucket}, LAST_PATH="daily/2026-12-06.csv")
    assert printed_rows(third) == []  # nothing new: a run with nothing to do, not a failure
    summary = summary_of(third)
    assert (summary["status"], summary["rows_read"], summary["config_diff"]) == ("succeeded", 0, {"in": {"last_path": "daily/2026-12-06.csv"}})


def test_glacier_objects_fail_the_listing_unless_skipped(stack: Any, s3: Any, bucket: str, tmp_path: Path) -> None:
    put_csv(s3, bucket, "daily/2026-12-05.csv", "u1,1")
    s3.put_object(Bucket=bucket, Key="daily/2026-12-06.csv", Body=b"user_id,score\nu2,2\n", StorageClass="GLACIER")
    failed = run_config("input_s3_incremental.yml.liquid", env={"S3_BUCKET": bucket})
    assert failed.returncode == EXIT_RUN_FAILED
    assert f"s3://{bucket}/daily/2026-12-06.csv: the object is stored in GLACIER" in failed.stderr
    assert "skip_glacier_objects: true" in failed.stderr
    skipping = with_lines("input_s3_incremental.yml.liquid", tmp_path, "  incremental: true", "  skip_glacier_objects: true")
    assert printed_rows(run_config(skipping, env={"S3_BUCKET": bucket})) == [{"user_id": "u1", "score": 1}]


# --- auth_method

SESSION = {"SESSION_KEY_ID": "ASIAEMBULKSESSION01", "SESSION_SECRET": "session-secret-value-42", "SESSION_TOKEN": "session-token-value-42"}


@pytest.mark.parametrize("method", ["session", "profile", "anonymous", "default", "env"])
def test_auth_methods(stack: Any, s3: Any, bucket: str, tmp_path: Path, method: str) -> None:
    s3.put_object(Bucket=bucket, Key="auth/a.csv", Body=b"u1,1\n", ACL="public-read")  # anonymous reads public objects only
    env = {"S3_BUCKET": bucket, "S3_KEY": "auth/a.csv", "AUTH_METHOD": method, **SESSION}
    if method == "profile":  # (that the profile is read: test_auth_method_errors_name_what_is_missing)
        (tmp_path / "credentials").write_text("[embulk]\naws_access_key_id = AKIAPROFILE0001\naws_secret_access_key = profile-secret\n")
        env |= {"PROFILE_FILE": str(tmp_path / "credentials"), "PROFILE_NAME": "embulk"}
    result = run_config("input_s3_auth.yml.liquid", env=env)
    assert printed_rows(result) == [{"user_id": "u1", "score": 1}]
    assert not any(secret in result.stdout + result.stderr for secret in SESSION.values())


def test_auth_method_errors_name_what_is_missing(stack: Any, s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="auth/a.csv", Body=b"u1,1\n")
    env = {"S3_BUCKET": bucket, "S3_KEY": "auth/a.csv"}
    no_env = run_config("input_s3_auth.yml.liquid", env={**env, "AUTH_METHOD": "env"}, unset=("AWS_ACCESS_KEY_ID",))
    assert no_env.returncode == EXIT_RUN_FAILED
    assert "auth_method env: AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY) is not set in the environment" in no_env.stderr
    (tmp_path / "credentials").write_text("[other]\naws_access_key_id = A\naws_secret_access_key = B\n")
    profile = {**env, "AUTH_METHOD": "profile", "PROFILE_FILE": str(tmp_path / "credentials"), "PROFILE_NAME": "embulk"}
    missing = run_config("input_s3_auth.yml.liquid", env=profile)
    assert missing.returncode == EXIT_RUN_FAILED and "auth_method profile: no profile 'embulk' in" in missing.stderr
    basic = run_cli("validate", str(EMBULK / "input_s3_auth.yml.liquid"), env={**env, "AUTH_METHOD": "basic"})
    assert basic.returncode == EXIT_CONFIG and "auth_method basic needs access_key_id, secret_access_key" in basic.stderr


def test_render_masks_the_session_keys(stack: Any) -> None:
    env = {"S3_BUCKET": "b", "S3_KEY": "k", "AUTH_METHOD": "session", **SESSION}
    result = run_cli("render", str(EMBULK / "input_s3_auth.yml.liquid"), env=env)
    assert result.returncode == 0, result.stderr
    assert "session_token: \"******\"" in result.stdout
    assert not any(secret in result.stdout for secret in SESSION.values())


# --- options refused with their reason and the alternative


@pytest.mark.parametrize(
    "line, message",
    [
        ("  min_task_size: 1048576", "in.min_task_size: Embulk's option 'min_task_size' is spelled --shard-size here"),
        ("  use_modified_time: true", "in.use_modified_time: Embulk's option 'use_modified_time' is not supported: a plan records"),
        ("  auth_method: properties", "auth_method 'properties' reads Java system properties"),
    ],
)
def test_refused_input_options_name_the_reason_and_the_alternative(tmp_path: Path, line: str, message: str) -> None:
    text = (EMBULK / "input_s3_incremental.yml.liquid").read_text().replace("  auth_method: env\n", line + "\n")
    path = tmp_path / "job.yml.liquid"
    path.write_text(text)
    result = run_cli("validate", str(path), env={"S3_BUCKET": "b", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.returncode == EXIT_CONFIG
    assert message in result.stderr


# --- Embulk's parsers and decoders

CSV_CR = (
    "id;note;seen_at;opened_at;active\r"
    '1;"say "hi" now";06/12/2026 09:00;07:30:00;true\r'
    "2;NULL;06/12/2026 10:00;08:00:00;false\r"
    '3;"' + "x" * 70 + '";06/12/2026 10:00;08:00:00;true\r'
    "4;plain;not a date;08:00:00;true\r"
)
JSON_LINES = b'{"id": 1, "name": "O\\\'Neil"}\n{"id": 2, "tags": ["vip"], "nested": {"a": null}}\n'
JSONL = (
    b'{"user_id": "u1", "score": 1.5, "opted_in": true, "updated_at": "2026-07-01T12:00:00"}\n'
    b'{"user_id": "u2", "score": "high", "opted_in": false, "updated_at": "2026-07-01T12:00:00"}\n'
    b'{"user_id": "u3", "score": 3, "opted_in": "yes", "updated_at": "2026-01-01T12:00:00"}\n'
)


@pytest.mark.parametrize("native", ["1", "0"])
def test_csv_parser_behind_bzip2(stack: Any, s3: Any, bucket: str, native: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.csv.bz2", Body=bz2.compress(CSV_CR.encode()))
    result = run_config("parser_csv_bzip2.yml.liquid", env={"S3_BUCKET": bucket, "S3_KEY": "in/", "PIPELINES_NATIVE": native})
    assert printed_rows(result) == [
        {"id": 1, "note": 'say "hi" now', "seen_at": "2026-12-06T09:00:00+00:00", "opened_at": "2026-12-06T07:30:00+09:00", "active": True},
        {"id": 2, "note": None, "seen_at": "2026-12-06T10:00:00+00:00", "opened_at": "2026-12-06T08:00:00+09:00", "active": False},
    ]
    assert summary_of(result)["rows_skipped"] == 2  # a quoted value past max_quoted_size_limit, a bad date


def test_truncated_bzip2_object_is_named(stack: Any, s3: Any, bucket: str) -> None:
    data = bz2.compress(CSV_CR.encode() * 200)
    s3.put_object(Bucket=bucket, Key="in/cut.csv.bz2", Body=data[: len(data) - 40])
    result = run_config("parser_csv_bzip2.yml.liquid", env={"S3_BUCKET": bucket, "S3_KEY": "in/"})
    assert result.returncode == EXIT_RUN_FAILED
    assert f"s3://{bucket}/in/cut.csv.bz2: bzip2 stream is truncated" in result.stderr


@pytest.mark.parametrize("native", ["1", "0"])
def test_json_parser_record_column(stack: Any, s3: Any, bucket: str, native: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.json.gz", Body=gzip.compress(JSON_LINES))
    result = run_config("parser_json_gzip.yml.liquid", env={"S3_BUCKET": bucket, "S3_KEY": "in/", "PIPELINES_NATIVE": native})
    assert printed_rows(result) == [{"record": {"id": 1, "name": "O'Neil"}}, {"record": {"id": 2, "tags": ["vip"], "nested": {"a": None}}}]


def test_json_parser_stop_on_invalid_record_fails_at_the_first(stack: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.json.gz", Body=gzip.compress(JSON_LINES + b"[1, 2]\n"))
    result = run_config("parser_json_gzip.yml.liquid", env={"S3_BUCKET": bucket, "S3_KEY": "in/"})
    assert result.returncode == EXIT_RUN_FAILED
    assert "line 3: expected a JSON object, got list" in result.stderr


@pytest.mark.parametrize("native", ["1", "0"])
def test_jsonl_parser_options(stack: Any, s3: Any, bucket: str, native: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.jsonl", Body=JSONL)
    result = run_config("parser_jsonl.yml.liquid", env={"S3_BUCKET": bucket, "S3_KEY": "in/", "PIPELINES_NATIVE": native})
    assert printed_rows(result) == [
        {"user_id": "u1", "score": 1.5, "opted_in": True, "updated_at": "2026-07-01T12:00:00+02:00"},
        {"user_id": "u3", "score": 3.0, "opted_in": True, "updated_at": "2026-01-01T12:00:00+01:00"},
    ]
    assert summary_of(result)["rows_skipped"] == 1  # u2's score: skipped (stop_on_invalid_record: false), and written
