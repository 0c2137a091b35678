"""The Lambda handler's plan / run_shard / finish tasks, called as the state machine calls them,
against the real broker and moto S3."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from conftest import consume_all, rows_and_markers

from pipelines.devstack.sample import write_audience_csv
from pipelines.engine.errors import ConfigError
from pipelines.aws.handler import handler


def event(task: str, bucket: str, topic: str, **more: object) -> dict:
    params = {"S3_BUCKET": bucket, "S3_KEY": "in/", "KAFKA_TOPIC": topic}
    return {"task": task, "job_id": "lambda-job", "pipeline": "send_audience_to_kafka", "params": params, **more}


def test_plan_run_shard_finish(stack, s3, bucket, topic):
    for n in range(3):
        raw = io.BytesIO()
        write_audience_csv(raw, 1000, seed=n)
        s3.put_object(Bucket=bucket, Key=f"in/{n}.csv.gz", Body=gzip.compress(raw.getvalue().replace(b"\nu", f"\nu{n}-".encode())))

    planned = handler(event("plan", bucket, topic))
    assert planned == {
        "plan_uri": f"s3://{bucket}/_jobs/lambda-job/plan.json",
        "shards_bucket": bucket,
        "shards_key": "_jobs/lambda-job/shards.json",
        "shard_count": 1,  # three small objects packed in one shard
        "bytes": planned["bytes"],
    }
    assert json.loads(s3.get_object(Bucket=bucket, Key=planned["shards_key"])["Body"].read()) == [{"shard": 0, "timeout_seconds": 420}]  # 120 s, its least time limit, and 300 s to start
    assert handler(event("plan", bucket, topic)) == planned  # a retried Plan step finds the same plan

    ran = handler(event("run_shard", bucket, topic, plan_uri=planned["plan_uri"], shard=0))
    assert ran == {"shard": 0, "rows_written": 3000, "rows_skipped": 0, "skipped": False}
    assert handler(event("run_shard", bucket, topic, plan_uri=planned["plan_uri"], shard=0))["skipped"] is True

    finished = handler(event("finish", bucket, topic, plan_uri=planned["plan_uri"]))
    assert finished == {
        "rows_read": 3000, "rows_written": 3000, "rows_skipped": 0, "bytes_read": planned["bytes"], "end_markers": 6, "manifest": None,
    }  # bytes_read: for the job's metrics line (MarkSucceeded passes these counts on)
    rows, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len(rows) == 3000 and sum(m["partition_rows"] for m in markers.values()) == 3000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "nope"}, "unknown task 'nope'"),
        ({"pipeline": "../etc/passwd"}, "pipeline must be a config name"),
        ({"pipeline": "no_such_pipeline"}, "no pipeline 'no_such_pipeline' (known: "),
        ({"params": {"S3_KEY": ["a"]}}, "params must be an object of strings"),
        ({"job_id": ""}, "the 'plan' task needs job_id"),
    ],
)
def test_bad_events_are_config_errors(change, message):
    bad = {**event("plan", "b", "t"), **change}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        handler(bad)
