"""Import throughput against the number of local shard processes: our import of the same audience,
split into gzip parts (one shard each), with MAX_THREADS = 1 .. N; writes bench/processes.png.

    eval "$(.venv/bin/pipelines dev up)"
    .venv/bin/pip install -e '.[bench]'      # matplotlib
    .venv/bin/python bench/processes_plot.py --rows 1000000

With 1, `pipelines run` runs the shards one after another in its own process; with more, each
shard is a `pipelines run --shard` process, that many at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common import arguments, BENCH, Row, delete_topics, machine, new_topic, ours_import, prepare_audience, stack_env, table


def main() -> None:
    cpus = os.cpu_count() or 1
    parser = arguments(__doc__)
    parser.add_argument("--max-processes", type=int, default=cpus, help="N (default: CPUs)")
    parser.add_argument("--parts", type=int, help="gzip parts = shards (default: 2 x N, so every process has work)")
    parser.add_argument("--out", type=Path, default=BENCH / "processes.png")
    args = parser.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        sys.exit("error: matplotlib is missing: .venv/bin/pip install -e '.[bench]' (or pip install matplotlib)")

    env = stack_env()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    parts = args.parts or 2 * args.max_processes
    audience = prepare_audience(args.work_dir, args.rows, args.seed, parts)
    counts = list(range(1, args.max_processes + 1))
    rows: list[Row] = []
    for n in counts:
        topic = new_topic(f"procs-{n}", args.partitions)
        print(f"running {n} process(es) into {topic}", file=sys.stderr)
        try:
            m = ours_import(audience, topic, n, args.work_dir, env, split=True)
        finally:
            delete_topics([topic])
        rows.append(Row(f"{n} process{'es' if n > 1 else ''}", args.rows, m, audience.csv_bytes))

    print(f"\nour import of {args.rows:,} rows in {parts} shards (gzip parts) into {args.partitions} partitions, by processes")
    print(machine(None, with_kcat=False))
    print()
    print(table(rows, reference="1 process"))
    rates = [r.rows_per_second for r in rows]
    plt.figure(figsize=(6, 4))
    plt.plot(counts, rates, marker="o")
    plt.xticks(counts)
    plt.ylim(bottom=0)
    plt.gca().yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    plt.xlabel("local shard processes (MAX_THREADS)")
    plt.ylabel("rows/s")
    plt.title(f"pipelines run: {args.rows:,} rows, {parts} shards, {os.cpu_count()} CPUs")
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(args.out, dpi=100)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
