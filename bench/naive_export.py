"""The naive way to export a Kafka topic of JSON values to CSV with Python: what export_bench.py compares to.

    .venv/bin/python bench/naive_export.py --bootstrap 127.0.0.1:9092 --topic T out.csv

A read_committed consumer from the beginning to the end of every partition, poll() per record,
json.loads, csv.DictWriter (plain CSV, header first); our end-marker records are skipped by their
header. Prints {"rows": N, "value_bytes": B}.
"""

import argparse
import csv
import json

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

parser = argparse.ArgumentParser()
parser.add_argument("--bootstrap", required=True)
parser.add_argument("--topic", required=True)
parser.add_argument("path")
args = parser.parse_args()

consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "bench-naive-export", "enable.auto.commit": False,
                     "isolation.level": "read_committed", "enable.partition.eof": True})
partitions = consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions
consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
left, rows, value_bytes, writer = set(partitions), 0, 0, None
with open(args.path, "w", newline="") as out:
    while left:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                raise SystemExit(f"error: {msg.error()}")
            left.discard(msg.partition())
            continue
        if any(k == "pipelines.marker" for k, _ in msg.headers() or ()):
            continue
        row = json.loads(msg.value())
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)
        rows += 1
        value_bytes += len(msg.value())
consumer.close()
print(json.dumps({"rows": rows, "value_bytes": value_bytes}))
