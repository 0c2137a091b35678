"""Import benchmark: one gzip CSV audience from local S3 into Kafka, ours against kcat and a naive script.

    eval "$(.venv/bin/pipelines dev up)"
    .venv/bin/python bench/import_bench.py --rows 1000000

Each run writes into a fresh topic (same partitions, lz4, acks=all, idempotence), then the topic is
checked and the table printed. See bench/README.md for what the columns mean.
"""

from __future__ import annotations

import os
import sys

from common import (arguments, BENCH, JOB_ID_HEADER, PRODUCER_SETTINGS, Row, bootstrap, count_committed, delete_topics,
                    high_watermarks, kcat_path, machine, measure, new_topic, ours_import, prepare_audience, print_commands,
                    records_file, stack_env, table)


KCAT_RECORDS_ROW = "kcat, our records (JSON value, job-id header)"
NO_HEADER_ROW = "ours, 1 process, no job-id header"
NO_HEADER_FOR_BENCHMARKS = "PIPELINES_BENCH_WITHOUT_JOB_HEADER"  # see pipelines/kafka/markers.py


def main() -> None:
    cpus = os.cpu_count() or 1
    parser = arguments(__doc__)
    parser.add_argument("--processes", type=int, default=cpus, help="shard processes of the 'all processes' run (default: CPUs)")
    parser.add_argument("--parts", type=int, default=2 * cpus, help="gzip parts (= shards) of that run (default: 2 x CPUs)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive Python run (slow)")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the benchmark topics at the end")
    args = parser.parse_args()

    env = stack_env()
    kcat = kcat_path()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    audience = prepare_audience(args.work_dir, args.rows, args.seed, args.parts)
    nbytes = audience.csv_bytes
    rows: list[Row] = []
    topics: list[str] = []

    def topic(name: str) -> str:
        topics.append(new_topic(f"import-{name}", args.partitions))
        print(f"running {name} into {topics[-1]}", file=sys.stderr)
        return topics[-1]

    try:
        # a. ours, one process: the whole gzip is one shard, run in the `pipelines run` process itself
        t = topic("ours-1")
        m = ours_import(audience, t, 1, args.work_dir, env, split=False)
        rows.append(Row("ours, 1 process", verify_ours(t, args.rows, args.partitions), m, nbytes))

        # a'. the same without the job-id header on each record: what the header costs, measured
        t = topic("ours-1-no-header")
        m = ours_import(audience, t, 1, args.work_dir, {**env, NO_HEADER_FOR_BENCHMARKS: "1"}, split=False)
        rows.append(Row(NO_HEADER_ROW, verify_ours(t, args.rows, args.partitions), m, nbytes))

        # b. ours, all local processes: one shard per gzip part, `processes` shard processes at once
        t = topic("ours-n")
        m = ours_import(audience, t, args.processes, args.work_dir, env, split=True)
        rows.append(Row(f"ours, {args.processes} processes ({args.parts} shards)", verify_ours(t, args.rows, args.partitions), m, nbytes))

        # c. kcat: key = user_id (up to the first comma), value = the rest of the line
        if kcat:
            t = topic("kcat")
            command = [kcat, "-P", "-b", bootstrap(), "-t", t, "-l", "-K,", "-z", "lz4",
                       *[arg for k, v in PRODUCER_SETTINGS.items() if k != "compression.type" for arg in ("-X", f"{k}={v}")],
                       str(audience.lines)]
            m = measure(command, env, stderr=args.work_dir / f"{t}.log")
            m.check("kcat", args.work_dir / f"{t}.log")
            rows.append(Row("kcat", verify_plain(t, args.rows), m, nbytes))

            # c'. kcat producing the records ours produces: the JSON value and the job-id header
            t = topic("kcat-records")
            command = [kcat, "-P", "-b", bootstrap(), "-t", t, "-l", "-K\t", "-H", f"{JOB_ID_HEADER}={t}", "-z", "lz4",
                       *[arg for k, v in PRODUCER_SETTINGS.items() if k != "compression.type" for arg in ("-X", f"{k}={v}")],
                       str(records_file(audience))]
            m = measure(command, env, stderr=args.work_dir / f"{t}.log")
            m.check("kcat", args.work_dir / f"{t}.log")
            rows.append(Row(KCAT_RECORDS_ROW, verify_plain(t, args.rows), m, nbytes))
        else:
            rows += [Row("kcat"), Row(KCAT_RECORDS_ROW)]

        # d. naive Python: csv.DictReader + json.dumps + produce() per row
        if not args.skip_naive:
            t = topic("naive")
            command = [sys.executable, str(BENCH / "naive_import.py"), "--bootstrap", bootstrap(), "--topic", t, str(audience.whole)]
            m = measure(command, env, stdout=args.work_dir / f"{t}.out", stderr=args.work_dir / f"{t}.log")
            m.check("naive_import.py", args.work_dir / f"{t}.log")
            rows.append(Row("naive Python (confluent_kafka)", verify_plain(t, args.rows), m, nbytes))
    finally:
        if not args.keep_topics:
            delete_topics(topics)

    print(f"\nimport of {args.rows:,} rows ({nbytes / 1e6:,.1f} MB of CSV, {audience.whole.stat().st_size / 1e6:,.1f} MB gzip) "
          f"into {args.partitions} partitions, lz4, acks=all, idempotent")
    print(machine(kcat))
    print()
    print(table(rows))
    by_label = {row.run: row.rows_per_second for row in rows}
    same = by_label.get(KCAT_RECORDS_ROW)
    if same:
        print(f"\nx kcat, our records: ours, 1 process {rows[0].rows_per_second / same:.2f} "
              f"(without the header {by_label[NO_HEADER_ROW] / same:.2f}); "
              f"ours, {args.processes} processes {rows[2].rows_per_second / same:.2f}; kcat's CSV lines {rows[3].rows_per_second / same:.2f}")
    print("\nMB/s: uncompressed CSV bytes (no header) / wall seconds. CPU s: user+sys of the process tree. "
          "peak RSS: the largest process; with several processes also the sampled peak of their sum.")
    print_commands(rows)


def verify_ours(topic: str, expected: int, partitions: int) -> int:
    """Ours is transactional: commit markers take offsets, so count what a read_committed consumer sees."""
    got, markers = count_committed(topic)
    if got != expected or markers != partitions:
        sys.exit(f"error: {topic} holds {got:,} committed rows and {markers} end markers, expected {expected:,} and {partitions}")
    return got


def verify_plain(topic: str, expected: int) -> int:
    """kcat and the naive script are idempotent but not transactional: one offset per record."""
    got = high_watermarks(topic)
    if got != expected:
        sys.exit(f"error: {topic} holds {got:,} records, expected {expected:,}")
    return got


if __name__ == "__main__":
    main()
