"""The naive way to import a gzip CSV audience into Kafka with Python: what import_bench.py compares to.

    .venv/bin/python bench/naive_import.py --bootstrap 127.0.0.1:9092 --topic T audience.csv.gz

One dict per row (csv.DictReader), json.dumps, produce() keyed by user_id, flush at the end; the
producer settings of the other runs (acks=all, idempotence, lz4, 25 ms linger, 1 MB batches, murmur2).
Prints {"rows": N, "failed": F} and exits 1 if any delivery failed.
"""

import argparse
import csv
import gzip
import json
import sys

from confluent_kafka import Producer

from common import PRODUCER_SETTINGS

parser = argparse.ArgumentParser()
parser.add_argument("--bootstrap", required=True)
parser.add_argument("--topic", required=True)
parser.add_argument("path")
args = parser.parse_args()

failed = 0


def delivered(err, msg):
    global failed
    if err is not None:
        failed += 1


producer = Producer({"bootstrap.servers": args.bootstrap, **PRODUCER_SETTINGS})
rows = 0
with gzip.open(args.path, "rt", newline="") as f:
    for row in csv.DictReader(f):
        value = json.dumps(row)
        while True:
            try:
                producer.produce(args.topic, value, key=row["user_id"], on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: serve delivery reports, then retry
                producer.poll(0.1)
        producer.poll(0)
        rows += 1
left = producer.flush(120)
print(json.dumps({"rows": rows, "failed": failed + left}))
sys.exit(1 if failed or left else 0)
