"""The main job against the real broker and the moto server: a 100k-row gzip CSV in S3 into a topic,
consumed back and compared row by row (key, value, header, partition = murmur2(key) mod partitions)."""

from __future__ import annotations

import csv
import gzip
import io
import json

from conftest import CONFIGS, consume_all, rows_and_markers, run_cli, summary_of

from pipelines.devstack.sample import write_audience_csv
from pipelines.kafka.murmur2 import partition_for

ROWS = 100_000
MAIN_CONFIG = str(CONFIGS / "send_audience_to_kafka.yml.liquid")


def expected_values(text: str, segment_id: int) -> dict[str, dict]:
    """The values the import should write, derived from the CSV independently of the engine."""
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        out[row["user_id"]] = {
            "user_id": row["user_id"],
            "country": row["country"],
            "score": float(row["score"]),
            "opted_in": row["opted_in"] == "true",
            "updated_at": row["updated_at"].replace("Z", "+00:00"),
            "segment_id": segment_id,
        }
    return out


def test_gzip_csv_in_s3_lands_in_kafka_row_by_row(stack, s3, bucket, topic):
    raw = io.BytesIO()
    write_audience_csv(raw, ROWS, seed=11)
    text = raw.getvalue().decode()
    s3.put_object(Bucket=bucket, Key="drops/audience.csv.gz", Body=gzip.compress(raw.getvalue()))

    result = run_cli(
        "run", MAIN_CONFIG,
        "--var", f"S3_BUCKET={bucket}", "--var", "S3_KEY=drops/audience.csv.gz",
        "--var", f"KAFKA_TOPIC={topic}", "--var", "SEGMENT_ID=42", "--job-id", "job-100k",
    )
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert summary["status"] == "succeeded"
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (ROWS, ROWS, 0)
    assert summary["bytes_read"] == s3.head_object(Bucket=bucket, Key="drops/audience.csv.gz")["ContentLength"]
    assert summary["rows_per_second"] > 0 and summary["seconds"] > 0

    expected = expected_values(text, 42)
    records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len(records) == ROWS
    seen = set()
    for msg in records:
        key = msg.key().decode()
        assert key not in seen, f"duplicate key {key}"
        seen.add(key)
        assert json.loads(msg.value()) == expected[key]
        assert msg.partition() == partition_for(msg.key(), 6), key
        assert dict(msg.headers()) == {"pipelines.job_id": b"job-100k"}
    assert seen == set(expected)
    # one end marker a partition, counting exactly the job's rows there
    per_partition = [sum(1 for m in records if m.partition() == p) for p in range(6)]
    assert markers == {
        p: {"job_id": "job-100k", "partition": p, "partition_rows": per_partition[p], "total_rows": ROWS, "shard_count": 1}
        for p in range(6)
    }
