"""Scale, through the local workflow (not a test: minutes, tens of GB of Kafka log).

    eval "$(.venv/bin/pipelines dev up)"
    .venv/bin/python bench/scale.py import --objects 10 --rows 10000000    # 100M rows: POST /imports -> SUCCEEDED
    .venv/bin/python bench/scale.py plan --objects 10000 20000              # the Plan step over many small objects

`import` puts OBJECTS gzip CSV objects of ROWS rows each under s3://bench/scale-.../ (one audience
generated once and cached in bench/.work, uploaded under OBJECTS keys), submits the main import of
that prefix through the HTTP API to the real statemachine.json in the local emulator (shards by
size, the Map's concurrency as `pipelines dev up` deploys it: 2), follows the job, samples the peak
RSS of every shard process, then checks the topic: the rows a read_committed reader sees, the end
markers' counts, and the largest payload in the execution's history.

`plan` puts N tiny objects under s3://bench/many-N/ (once) and runs the Lambda's plan task
(`pipelines.aws.handler.plan_task`) over them in a fresh process: its wall time and peak RSS, the plan's
and the shard list's sizes in S3, and the task's result (what enters the state). The figures grow
linearly; the last column extrapolates to 1M objects.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BUCKET, count_committed, new_topic, prepare_audience, s3, stack_env  # noqa: E402

PIPELINE = "send_audience_to_kafka"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- import --------------------------------------------------------------------------------------

def put_scale_objects(work: Path, objects: int, rows: int) -> tuple[str, int]:
    """The audience (cached) uploaded as `objects` keys under one prefix; returns the prefix and its bytes."""
    audience = prepare_audience(work, rows, 7, 1)
    prefix = f"scale-{objects}x{rows}/"
    client = s3()
    size = audience.whole.stat().st_size
    for n in range(objects):
        key = f"{prefix}part-{n:03d}.csv.gz"
        try:
            if client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == size:
                continue
        except client.exceptions.ClientError:
            pass
        client.upload_file(str(audience.whole), BUCKET, key)
    return prefix, size * objects


class ShardPeaks(threading.Thread):
    """Samples VmHWM (peak RSS) and CPU seconds of every `pipelines run ... --shard N` process until
    stopped (the last sample of a process is at most 0.2 s before it exits)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not self.done.wait(0.2):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    if b"--shard\0" not in (proc / "cmdline").read_bytes():
                        continue
                    status = (proc / "status").read_text()
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                pid = int(proc.name)
                hwm = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0)
                self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def api_server():
    from pipelines.aws.api import make_server

    server = make_server(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with OPENER.open(request, timeout=60) as answer:
        return json.loads(answer.read())


def follow(api: str, job_id: str) -> dict:
    while True:
        job = call(f"{api}/jobs/{job_id}")
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job
        time.sleep(2)


def largest_payload(execution_arn: str) -> tuple[int, str]:
    import boto3

    from pipelines.devstack.resources import largest_payload as largest_in

    return largest_in(boto3.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"])


def markers_of(topic: str) -> list[dict]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"], "group.id": "scale-markers", "isolation.level": "read_committed"})
    try:
        found = []
        for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            consumer.assign([TopicPartition(topic, partition, max(low, high - 20))])  # the marker is among the last records
            for msg in consumer.consume(50, timeout=5):
                if not msg.error() and ("pipelines.marker", b"end") in (msg.headers() or []):
                    found.append(json.loads(msg.value()))
        return found
    finally:
        consumer.close()


def run_import(args: argparse.Namespace) -> None:
    stack_env()
    prefix, size = put_scale_objects(args.work_dir, args.objects, args.rows)
    topic = new_topic("scale", 6)
    server, api = api_server()
    peaks = ShardPeaks()
    peaks.start()
    started = time.monotonic()
    answer = call(f"{api}/imports", "POST", {"pipeline": PIPELINE, "params": {"S3_BUCKET": BUCKET, "S3_KEY": prefix, "KAFKA_TOPIC": topic}})
    print(f"submitted {answer['job_id']}: {args.objects} objects x {args.rows:,} rows into {topic}", file=sys.stderr)
    job = follow(api, answer["job_id"])
    wall = time.monotonic() - started
    peaks.done.set()
    server.shutdown()
    total = args.objects * args.rows
    payload, where = largest_payload(answer["execution_arn"])
    rows, markers = count_committed(topic)
    ends = markers_of(topic)
    print(f"\n| job | {job['status']} ({job.get('error') or 'no error'}) |\n|---|---|")
    print(f"| input | {args.objects} gzip objects, {total:,} rows, {size / 1e6:,.0f} MB |")
    print(f"| wall (POST /imports -> {job['status']}) | {wall:,.0f} s |")
    print(f"| rows/s | {total / wall:,.0f} |")
    print(f"| rows written (job) / read_committed (topic) | {job['rows_written']:,} / {rows:,} (expected {total:,}) |")
    print(f"| end markers | {markers} (partition rows sum {sum(m['partition_rows'] for m in ends):,}) |")
    print(f"| shard processes / peak RSS each (max) | {len(peaks.peaks)} / {max(peaks.peaks.values(), default=0) / 2**20:,.0f} MB |")
    cpu = sum(peaks.cpu.values())
    print(f"| shards' CPU seconds (sum) / per million rows | {cpu:,.0f} / {cpu / total * 1e6:.2f} |")
    print(f"| largest state payload | {payload:,} bytes ({where}) |")


# --- plan ----------------------------------------------------------------------------------------

PLAN_SCRIPT = """
import json, resource, sys, time
from pipelines.aws.handler import plan_task
started = time.monotonic()
result = plan_task(json.loads(sys.argv[1]))
print(json.dumps({"result": result, "seconds": time.monotonic() - started,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def put_many(objects: int) -> str:
    """`objects` tiny gzip CSVs under many-N/ (uploaded once, 16 at a time)."""
    import gzip
    from concurrent.futures import ThreadPoolExecutor

    prefix = f"many-{objects}/"
    client = s3()
    have = sum(page.get("KeyCount", 0) for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix))
    if have < objects:
        body = gzip.compress(b"user_id,country,score,opted_in,updated_at\nu1,JP,1.5,true,2024-01-01T00:00:00Z\n")
        keys = [f"{prefix}{n:07d}.csv.gz" for n in range(objects)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: client.put_object(Bucket=BUCKET, Key=key, Body=body), keys))
    return prefix


def run_plan(args: argparse.Namespace) -> None:
    env = stack_env()
    rows = []
    for objects in args.objects:
        prefix = put_many(objects)
        job_id = f"plan-{objects}-{int(time.time())}"
        event = {"task": "plan", "job_id": job_id, "pipeline": PIPELINE, "params": {"S3_BUCKET": BUCKET, "S3_KEY": prefix, "KAFKA_TOPIC": "unused"}}
        out = subprocess.run([sys.executable, "-c", PLAN_SCRIPT, json.dumps(event)], env=env, capture_output=True, text=True, check=True)
        measured = json.loads(out.stdout.splitlines()[-1])
        result = measured["result"]
        plan_bytes = s3().head_object(Bucket=BUCKET, Key=result["plan_uri"].split("/", 3)[3])["ContentLength"]
        shards_bytes = s3().head_object(Bucket=BUCKET, Key=result["shards_key"])["ContentLength"]
        rows.append((objects, measured["seconds"], measured["peak_rss"], plan_bytes, shards_bytes, len(json.dumps(result)), result["shard_count"]))
    print("\n| objects | plan s | peak RSS MB | plan.json MB | shards.json KB | task result bytes | shards |")
    print("|---|---|---|---|---|---|---|")
    for objects, seconds, rss, plan_bytes, shards_bytes, result_bytes, shards in rows:
        print(f"| {objects:,} | {seconds:.1f} | {rss / 2**20:.0f} | {plan_bytes / 1e6:.1f} | {shards_bytes / 1e3:.0f} | {result_bytes} | {shards:,} |")
    if len(rows) >= 2:
        (n0, s0, r0, p0, *_), (n1, s1, r1, p1, *_) = rows[0], rows[-1]
        per = lambda a, b: (b - a) / (n1 - n0)  # noqa: E731 - growth per object between the two sizes
        at = 1_000_000
        print(f"| 1,000,000 (extrapolated) | {s1 + per(s0, s1) * (at - n1):.0f} | {(r1 + per(r0, r1) * (at - n1)) / 2**20:.0f} | "
              f"{(p1 + per(p0, p1) * (at - n1)) / 1e6:.0f} | | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    imported = sub.add_parser("import", help="OBJECTS x ROWS through POST /imports and the state machine")
    imported.add_argument("--objects", type=int, default=10)
    imported.add_argument("--rows", type=int, default=10_000_000)
    imported.add_argument("--work-dir", type=Path, default=Path(__file__).resolve().parent / ".work")
    planned = sub.add_parser("plan", help="the plan task over many small objects")
    planned.add_argument("--objects", type=int, nargs="+", default=[10_000, 20_000])
    args = parser.parse_args()
    (run_import if args.command == "import" else run_plan)(args)


if __name__ == "__main__":
    main()
