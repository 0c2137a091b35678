"""Exports end to end against the real broker, the real schema registry and the moto server:
S3 CSV -> Kafka (JSON, and Avro) -> S3 export equals the input as a multiset of rows; the manifest
matches the objects; a killed export leaves neither a manifest nor a visible partial object; an export
of no rows (an empty topic, only end markers, nothing after `start_after_job`) succeeds with a manifest
that lists no files."""

from __future__ import annotations

import csv
import gzip
import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime

import pytest
from conftest import CONFIGS, REPO, consume_all, run_cli, summary_of

from pipelines.devstack.sample import write_audience_csv

IMPORT = str(CONFIGS / "send_audience_to_kafka.yml.liquid")
IMPORT_AVRO = str(CONFIGS / "send_audience_to_kafka_avro.yml.liquid")
EXPORT = str(CONFIGS / "export_audience_to_s3.yml.liquid")
EXPORT_AVRO = str(CONFIGS / "export_audience_to_s3_avro.yml.liquid")
SEGMENT = 42


def audience(s3, bucket: str, rows: int, seed: int) -> Counter:
    """A gzip CSV audience put in S3 at drops/audience.csv.gz; returns its rows as the export should hold them."""
    raw = io.BytesIO()
    write_audience_csv(raw, rows, seed=seed)
    s3.put_object(Bucket=bucket, Key="drops/audience.csv.gz", Body=gzip.compress(raw.getvalue()))
    return Counter(normalise(row) | {"segment_id": SEGMENT} for row in csv.DictReader(io.StringIO(raw.getvalue().decode())))


class Row(dict):
    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __or__(self, other: dict) -> Row:  # type: ignore[override]
        return Row({**self, **other})


def normalise(row: dict) -> Row:
    """A row's values compared by meaning: numbers as numbers, booleans, instants as UTC datetimes."""
    updated = row["updated_at"]
    if isinstance(updated, str):
        updated = datetime.fromisoformat(updated.replace("Z", "+00:00"))
    opted = row["opted_in"]
    return Row(
        user_id=row["user_id"],
        country=row["country"],
        score=round(float(row["score"]), 6),
        opted_in=opted if isinstance(opted, bool) else opted == "true",
        updated_at=updated.timestamp(),
    )


def import_job(bucket: str, topic: str, job_id: str, config: str = IMPORT, **extra: str) -> dict:
    result = run_cli(
        "run", config, "--var", f"S3_BUCKET={bucket}", "--var", "S3_KEY=drops/audience.csv.gz",
        "--var", f"KAFKA_TOPIC={topic}", "--var", f"SEGMENT_ID={SEGMENT}", "--job-id", job_id,
        *(arg for key, value in extra.items() for arg in ("--var", f"{key}={value}")),
    )
    assert result.returncode == 0, result.stderr
    return summary_of(result)


def export_vars(bucket: str, topic: str, **extra: str) -> list[str]:
    values = {"EXPORT_BUCKET": bucket, "KAFKA_TOPIC": topic, "EXPORT_PREFIX": "exports/", **extra}
    return [arg for key, value in values.items() for arg in ("--var", f"{key}={value}")]


def objects(s3, bucket: str, prefix: str) -> dict[str, int]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def uploads(s3, bucket: str, prefix: str) -> list[dict]:
    return s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])


def checked_manifest(s3, bucket: str, job_id: str):
    """The export's manifest, verified (sizes, sha256, rows read back), and matching the objects: every
    manifest file is an object of that size, and every other object is a shard's file of no row."""
    from pipelines.engine.manifest import verify

    checked = verify(f"s3://{bucket}/exports/{job_id}/_manifest.json", count_rows=True, client=s3)
    assert checked.ok, checked.problems
    listed = {f.uri.removeprefix(f"s3://{bucket}/"): f.bytes for f in checked.manifest.files}
    stored = objects(s3, bucket, f"exports/{job_id}/")
    assert stored.pop(f"exports/{job_id}/_manifest.json") > 0
    assert all(f.rows > 0 for f in checked.manifest.files), "the manifest lists files with rows"
    for key in set(stored) - set(listed):
        assert rows_in(s3, bucket, key, checked.manifest) == 0, f"{key} holds rows but is not in the manifest"
        del stored[key]
    assert stored == listed, "every manifest file is an object of that size"
    assert uploads(s3, bucket, f"exports/{job_id}/") == [], "no incomplete multipart upload is left"
    assert checked.rows_counted == checked.manifest.total_rows
    return checked.manifest


def rows_in(s3, bucket: str, key: str, manifest) -> int:
    """Rows of an object, read back as the manifest says its files are written."""
    from pipelines.engine.manifest import count_file_rows

    return count_file_rows(manifest, io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), key)


def read_csv_export(s3, manifest) -> Counter:
    rows: Counter = Counter()
    for entry in manifest.files:
        bucket, _, key = entry.uri.removeprefix("s3://").partition("/")
        text = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).decode()
        for row in csv.DictReader(io.StringIO(text)):
            rows[normalise(row) | {"segment_id": int(row["segment_id"])}] += 1
    return rows


def read_avro_export(s3, manifest) -> Counter:
    from fastavro import reader

    from pipelines.engine.avro.codecs import ensure_zstandard_codec

    ensure_zstandard_codec()
    rows: Counter = Counter()
    for entry in manifest.files:
        bucket, _, key = entry.uri.removeprefix("s3://").partition("/")
        for record in reader(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())):
            rows[normalise(record) | {"segment_id": record["segment_id"]}] += 1
    return rows


def test_csv_to_kafka_json_to_s3_csv_is_the_same_multiset_of_rows(stack, s3, bucket, topic):
    expected = audience(s3, bucket, 30_000, seed=5)
    imported = import_job(bucket, topic, f"import-{topic}")
    assert imported["rows_written"] == 30_000

    job_id = f"export-{topic}"
    result = run_cli(
        "run", EXPORT, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="3000", RECORDS_PER_SHARD="8000", MAX_THREADS="2"),
        "--job-id", job_id,
    )
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (30_000, 30_000, 0)
    assert summary["shards"] >= 6 and summary["manifest"] == f"s3://{bucket}/exports/{job_id}/_manifest.json"

    manifest = checked_manifest(s3, bucket, job_id)
    assert manifest.total_rows == 30_000 and manifest.shard_count == summary["shards"]
    assert summary["files"] == len(manifest.files) > summary["shards"], "files rotate every 3000 rows"
    assert all(f.rows <= 3000 for f in manifest.files)
    assert read_csv_export(s3, manifest) == expected

    # finish again: the manifest is not rewritten, nothing else changes
    before = s3.head_object(Bucket=bucket, Key=f"exports/{job_id}/_manifest.json")["ETag"]
    again = run_cli("finish", EXPORT, *export_vars(bucket, topic), "--plan", f"s3://{bucket}/_jobs/{job_id}/plan.json")
    assert again.returncode == 0, again.stderr
    assert s3.head_object(Bucket=bucket, Key=f"exports/{job_id}/_manifest.json")["ETag"] == before


def test_csv_to_kafka_avro_to_s3_avro_is_the_same_multiset_of_rows(stack, s3, bucket, topic):
    expected = audience(s3, bucket, 20_000, seed=6)
    import_job(bucket, topic, f"import-{topic}", IMPORT_AVRO)
    values = [m.value() for m in consume_all(stack.kafka_bootstrap, topic) if not (m.headers() and ("pipelines.marker", b"end") in m.headers())]
    assert len(values) == 20_000 and all(v[0] == 0 for v in values), "Confluent wire format: magic byte 0, then the schema id"

    job_id = f"export-{topic}"
    result = run_cli("run", EXPORT_AVRO, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="7000", RECORDS_PER_SHARD="5000"), "--job-id", job_id)
    assert result.returncode == 0, result.stderr
    manifest = checked_manifest(s3, bucket, job_id)
    assert manifest.total_rows == 20_000 and all(f.uri.endswith(".avro") for f in manifest.files)
    assert read_avro_export(s3, manifest) == expected

    # CSV out of the Avro topic: the same export config, told the values are Avro.
    csv_job = f"export-csv-{topic}"
    result = run_cli("run", EXPORT, *export_vars(bucket, topic, KAFKA_SERIALIZE_FORMAT="avro"), "--job-id", csv_job)
    assert result.returncode == 0, result.stderr
    assert read_csv_export(s3, checked_manifest(s3, bucket, csv_job)) == expected


def test_a_killed_export_leaves_neither_manifest_nor_partial_objects(stack, s3, bucket, topic):
    expected = audience(s3, bucket, 150_000, seed=7)
    import_job(bucket, topic, f"import-{topic}")
    job_id = f"killed-{topic}"
    prefix = f"exports/{job_id}/"
    command = [sys.executable, "-m", "pipelines", "run", EXPORT, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="10000"), "--job-id", job_id]
    process = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(uploads(s3, bucket, prefix)) < 3:  # files rotated: their parts are uploaded, not completed
            assert process.poll() is None, f"the export ended before it was killed: {process.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no multipart uploads after 120 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert objects(s3, bucket, prefix) == {}, "nothing is visible: no partial object, no manifest"
    assert len(uploads(s3, bucket, prefix)) >= 3  # incomplete, invisible, aborted by the next attempt

    result = run_cli("run", EXPORT, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="10000"), "--job-id", job_id)
    assert result.returncode == 0, result.stderr
    manifest = checked_manifest(s3, bucket, job_id)
    assert manifest.total_rows == 150_000
    assert read_csv_export(s3, manifest) == expected


# ---------------------------------------------------------------- empty snapshots: 0 rows, a manifest with no files


def empty_export(s3, bucket: str, topic: str, job_id: str, **extra: str) -> tuple[dict, object]:
    """Runs the export; it must succeed with 0 rows and a manifest (written last) that lists no files."""
    result = run_cli("run", EXPORT, *export_vars(bucket, topic, **extra), "--job-id", job_id)
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert summary["status"] == "succeeded"
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (0, 0, 0)
    assert summary["manifest"] == f"s3://{bucket}/exports/{job_id}/_manifest.json" and summary["files"] == 0
    manifest = checked_manifest(s3, bucket, job_id)  # and any shard's file beside it holds no row
    assert (manifest.total_rows, manifest.files) == (0, [])
    assert manifest.format == "csv" and [c["name"] for c in manifest.columns][:1] == ["user_id"], "still says how to read files"
    return summary, manifest


def test_an_export_of_an_empty_topic_succeeds_with_a_manifest_listing_no_files(stack, s3, bucket, topic):
    job_id = f"empty-{topic}"
    summary, manifest = empty_export(s3, bucket, topic, job_id)
    assert (summary["shards"], manifest.shard_count) == (0, 0)
    assert list(objects(s3, bucket, f"exports/{job_id}/")) == [f"exports/{job_id}/_manifest.json"], "no shard, no file"

    before = s3.head_object(Bucket=bucket, Key=f"exports/{job_id}/_manifest.json")["ETag"]
    again = run_cli("run", EXPORT, *export_vars(bucket, topic), "--job-id", job_id)  # a rerun: the same manifest, untouched
    assert again.returncode == 0, again.stderr
    assert summary_of(again)["manifest"] == summary["manifest"] and summary_of(again)["files"] == 0
    assert s3.head_object(Bucket=bucket, Key=f"exports/{job_id}/_manifest.json")["ETag"] == before


def test_an_export_of_a_topic_holding_only_end_markers_lists_no_files(stack, s3, bucket, topic):
    audience(s3, bucket, 0, seed=8)  # a CSV with its header and no row: the import writes only its end markers
    imported = import_job(bucket, topic, f"import-{topic}")
    assert imported["rows_written"] == 0 and imported["end_markers"] == 6

    job_id = f"markers-{topic}"
    summary, manifest = empty_export(s3, bucket, topic, job_id)
    assert summary["shards"] == manifest.shard_count >= 1, "the markers take offsets: shards that read no row"
    part = f"exports/{job_id}/part-00000-00000.csv.gz"
    assert part in objects(s3, bucket, f"exports/{job_id}/"), "a shard's file of 0 rows stays, unlisted"
    assert gzip.decompress(s3.get_object(Bucket=bucket, Key=part)["Body"].read()).decode().startswith("user_id,")


@pytest.mark.parametrize("transactional", ["true", "false"])
def test_a_daily_export_with_nothing_new_after_start_after_job_succeeds_empty(stack, s3, bucket, topic, transactional):
    """Transactional, the import's markers are followed by their commit marker: a shard reads that offset
    and no row. Not transactional, the snapshot starts at its end: no shard at all."""
    expected = audience(s3, bucket, 2_000, seed=9)
    import_job(bucket, topic, f"import-{topic}", KAFKA_TRANSACTIONAL=transactional)
    first = run_cli("run", EXPORT, *export_vars(bucket, topic), "--job-id", f"day1-{topic}")
    assert first.returncode == 0, first.stderr
    assert read_csv_export(s3, checked_manifest(s3, bucket, f"day1-{topic}")) == expected

    # the next day: nothing new after the import's end markers
    summary, _ = empty_export(s3, bucket, topic, f"day2-{topic}", START_AFTER_JOB=f"import-{topic}")
    assert summary["shards"] == (1 if transactional == "true" else 0)
