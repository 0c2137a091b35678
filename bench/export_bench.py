"""Export benchmark: one Kafka topic of JSON values (filled once by our import) out of Kafka, ours
(gzip CSV files in local S3) against kcat and a naive script (local files).

    eval "$(.venv/bin/pipelines dev up)"
    .venv/bin/python bench/export_bench.py --rows 1000000

See bench/README.md for what the columns mean.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from common import (arguments, BENCH, BUCKET, PIPELINES, Row, bootstrap, delete_topics, kcat_path, machine, measure,
                    new_topic, ours_import, prepare_audience, print_commands, s3, stack_env, summary_of, table)


def main() -> None:
    cpus = os.cpu_count() or 1
    parser = arguments(__doc__)
    parser.add_argument("--processes", type=int, default=cpus, help="shard processes of the 'all processes' run (default: CPUs)")
    parser.add_argument("--source-topic", help="an existing topic filled by our import with --rows rows (default: fill a new one)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive Python run (slow)")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the topic this run filled")
    args = parser.parse_args()

    env = stack_env()
    kcat = kcat_path()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    topic, filled = args.source_topic, False
    if topic is None:
        audience = prepare_audience(args.work_dir, args.rows, args.seed, 2 * cpus)
        topic, filled = new_topic("export-source", args.partitions), True
        print(f"filling {topic} with {args.rows:,} rows (our import)", file=sys.stderr)
        ours_import(audience, topic, cpus, args.work_dir, env, split=True)
    rows: list[Row] = []
    try:
        # a. ours: one shard in the `pipelines run` process, then `processes` shard processes with
        #    two shards each (records_per_shard = rows / (processes * 2))
        for processes in (1, args.processes):
            name = f"ours, {processes} process{'es' if processes > 1 else ''}"
            variables = {"KAFKA_TOPIC": topic, "EXPORT_BUCKET": BUCKET, "MAX_THREADS": processes}
            if processes > 1:
                variables["RECORDS_PER_SHARD"] = max(1, args.rows // (processes * 2))
            command = [PIPELINES, "run", "configs/export_audience_to_s3.yml.liquid",
                       *[arg for k, v in variables.items() for arg in ("--var", f"{k}={v}")]]
            log = args.work_dir / f"export-ours-{processes}.log"
            m = measure(command, env, stdout=args.work_dir / f"export-ours-{processes}.out", stderr=log)
            m.check("pipelines run", log)
            summary = summary_of(m)
            expect(name, summary.get("rows_written"), args.rows)
            delete_prefix(f"exports/{topic}/")  # the exported files: checked by the summary, not kept
            if processes > 1:
                name += f" ({summary.get('shards')} shards)"
            rows.append(Row(name, summary["rows_written"], m, summary["bytes_read"]))
        value_bytes = rows[0].nbytes  # the values' bytes of the snapshot (end markers excluded): every run's MB/s numerator

        # b. kcat: every record as key<TAB>value, end markers too (kcat cannot filter on a header)
        if kcat:
            out = args.work_dir / "export-kcat.tsv"
            command = [kcat, "-C", "-b", bootstrap(), "-t", topic, "-e", "-q", "-X", "isolation.level=read_committed",
                       "-f", r"%k\t%s\n", "-o", "beginning"]
            m = measure(command, env, stdout=out, stderr=args.work_dir / "export-kcat.log")
            m.check("kcat", args.work_dir / "export-kcat.log")
            lines, markers = count_lines(out)
            out.unlink()
            expect("kcat", lines - markers, args.rows)
            if markers != args.partitions:
                sys.exit(f"error: kcat read {markers} end markers, expected {args.partitions}")
            rows.append(Row("kcat (prints the end markers too)", lines - markers, m, value_bytes))
        else:
            rows.append(Row("kcat"))

        # c. naive Python: poll() + json.loads + csv.DictWriter per record
        if not args.skip_naive:
            command = [sys.executable, str(BENCH / "naive_export.py"), "--bootstrap", bootstrap(), "--topic", topic,
                       str(args.work_dir / "export-naive.csv")]
            m = measure(command, env, stdout=args.work_dir / "export-naive.out", stderr=args.work_dir / "export-naive.log")
            m.check("naive_export.py", args.work_dir / "export-naive.log")
            result = json.loads(m.stdout.strip().splitlines()[-1])
            (args.work_dir / "export-naive.csv").unlink()
            expect("naive", result["rows"], args.rows)
            rows.append(Row("naive Python (confluent_kafka)", result["rows"], m, value_bytes))
    finally:
        if filled and not args.keep_topics:
            delete_topics([topic])

    print(f"\nexport of {args.rows:,} rows ({value_bytes / 1e6:,.1f} MB of JSON values) from {args.partitions} partitions, read_committed")
    print(machine(kcat))
    print()
    print(table(rows))
    print("\nMB/s: bytes of the record values read (end markers excluded; ours' bytes_read) / wall seconds. "
          "Outputs: ours gzip CSV files in local S3 (moto), kcat a local key<TAB>value file, naive a local plain CSV file.")
    print_commands(rows)


def expect(run: str, got: int | None, rows: int) -> None:
    if got != rows:
        sys.exit(f"error: {run} exported {got} rows, expected {rows:,}")


def delete_prefix(prefix: str) -> None:
    client = s3()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def count_lines(path: Path) -> tuple[int, int]:
    """(lines, lines holding one of our end markers) of kcat's output."""
    lines = markers = 0
    with open(path, "rb") as f:
        for line in f:
            lines += 1
            markers += b'"partition_rows"' in line
    return lines, markers


if __name__ == "__main__":
    main()
