"""Shared helpers of the benchmark scripts: the stack's environment, the audience files, topics,
measuring a child process tree, and the results table. Nothing here installs anything."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PIPELINES = str(Path(sys.executable).with_name("pipelines"))  # the venv's CLI, next to its python
BUCKET = "bench"
MARKER_HEADER = "pipelines.marker"  # our end-marker records carry it (pipelines/kafka/markers.py)
JOB_ID_HEADER = "pipelines.job_id"  # every record of ours carries it

# The producer settings every import run uses: ours has them as defaults (pipelines/kafka/producer.py),
# kcat and the naive script get them passed explicitly.
PRODUCER_SETTINGS = {
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "lz4",
    "linger.ms": "25",
    "batch.size": "1000000",
    "partitioner": "murmur2_random",
}


# --- the stack -------------------------------------------------------------------------------------

def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: the audience (rows, seed), the topics' partitions, the cache."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="1000000 or 10000000, say (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--work-dir", type=Path, default=BENCH / ".work", help="cached audiences and logs")
    return parser


def stack_env() -> dict[str, str]:
    """KAFKA_BOOTSTRAP and AWS_ENDPOINT_URL as `eval "$(pipelines dev up)"` exports them; exits if unset
    or not on this machine (the benchmarks create and delete topics: local stack only)."""
    missing = [name for name in ("KAFKA_BOOTSTRAP", "AWS_ENDPOINT_URL") if not os.environ.get(name)]
    if missing:
        sys.exit(f"error: {' and '.join(missing)} not set: start the local stack first, e.g.\n"
                 f'  eval "$(.venv/bin/pipelines dev up)"')
    hosts = [b.rsplit(":", 1)[0] for b in os.environ["KAFKA_BOOTSTRAP"].split(",")]
    hosts.append(urlparse(os.environ["AWS_ENDPOINT_URL"]).hostname or "")
    if any(h not in ("127.0.0.1", "localhost") for h in hosts):
        sys.exit(f"error: KAFKA_BOOTSTRAP / AWS_ENDPOINT_URL must point at 127.0.0.1 (the local stack), got {hosts}")
    env = dict(os.environ)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


def bootstrap() -> str:
    return os.environ["KAFKA_BOOTSTRAP"]


def s3():
    import boto3  # honours AWS_ENDPOINT_URL

    return boto3.client("s3")


def kcat_path() -> str | None:
    path = shutil.which("kcat")
    if path is None:
        print("note: kcat is not installed, its rows show n/a. On Debian/Ubuntu: sudo apt-get install kcat", file=sys.stderr)
    return path


def machine(kcat: str | None, with_kcat: bool = True) -> str:
    kcat_version = "not installed (sudo apt-get install kcat)"
    if kcat:
        out = subprocess.run([kcat, "-V"], capture_output=True, text=True).stdout
        version = next((line.split() for line in out.splitlines() if line.startswith("Version")), ["", "?"])
        librdkafka = next((w for w in version if w[:1].isdigit() and w != version[1]), "?")
        kcat_version = f"{version[1]} (librdkafka {librdkafka})"
    return (f"machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()} {platform.release()}), "
            f"python {platform.python_version()}" + (f", kcat {kcat_version}" if with_kcat else ""))


# --- the audience ----------------------------------------------------------------------------------

@dataclass
class Audience:
    rows: int
    folder: Path
    whole: Path          # the gzip CSV (header + rows) written by pipelines.devstack.sample
    lines: Path          # the same rows, uncompressed, no header (for kcat -l)
    parts: list[Path]    # the same rows as gzip CSV parts, each with the header
    whole_key: str = ""  # their keys in s3://bench/
    parts_prefix: str = ""

    @property
    def records(self) -> Path:
        """The rows as our import writes them to Kafka: key, a tab, the JSON value (see records_file)."""
        return self.folder / "records.tsv"

    @property
    def csv_bytes(self) -> int:
        """Uncompressed CSV bytes of the rows (no header): the MB/s numerator of the import runs."""
        return self.lines.stat().st_size


def prepare_audience(work: Path, rows: int, seed: int, parts: int) -> Audience:
    """Generates the audience once (cached in `work`, keyed by rows and seed), derives the headerless
    lines and `parts` gzip parts from the same bytes, and uploads whole + parts to s3://bench/."""
    from isal import igzip

    from pipelines.devstack.sample import HEADER, write_audience_gzip

    folder = work / f"audience-r{rows}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    whole, lines = folder / "audience.csv.gz", folder / "lines.csv"
    part_dir = folder / f"parts-{parts}"
    part_paths = [part_dir / f"part-{i:04d}.csv.gz" for i in range(parts)]
    if not whole.exists():
        print(f"generating {rows:,} rows into {whole}", file=sys.stderr)
        write_audience_gzip(str(whole) + ".tmp", rows, seed)
        os.replace(str(whole) + ".tmp", whole)
    if not lines.exists() or not all(p.exists() for p in part_paths):
        print(f"writing {lines.name} and {parts} parts", file=sys.stderr)
        part_dir.mkdir(exist_ok=True)
        per_part = -(-rows // parts)
        with igzip.open(whole, "rb") as src, open(str(lines) + ".tmp", "wb") as flat:
            assert src.readline() == HEADER.encode()
            for path in part_paths:
                with igzip.open(path, "wb", compresslevel=1) as part:
                    part.write(HEADER.encode())
                    for _ in range(per_part):
                        line = src.readline()
                        if not line:
                            break
                        part.write(line)
                        flat.write(line)
        os.replace(str(lines) + ".tmp", lines)
    audience = Audience(rows, folder, whole, lines, part_paths,
                        whole_key=f"audience/r{rows}-s{seed}/audience.csv.gz",
                        parts_prefix=f"audience/r{rows}-s{seed}/parts-{parts}/")
    upload(whole, audience.whole_key)
    for path in part_paths:
        upload(path, audience.parts_prefix + path.name)
    return audience


def records_file(audience: Audience) -> Path:
    """Writes (once) each row as the main import produces it: the user id, a tab, then the JSON value
    of configs/send_audience_to_kafka.yml.liquid (typed columns, the timestamp with +00:00, segment_id 0),
    for `kcat -K'\t'`: kcat producing the same records as ours, not the shorter CSV lines."""
    import orjson

    path = audience.records
    if path.exists():
        return path
    print(f"writing {path.name}", file=sys.stderr)
    dumps = orjson.dumps
    with open(audience.lines, "rb") as lines, open(str(path) + ".tmp", "wb") as out:
        for line in lines:
            user_id, country, score, opted_in, updated_at = line.rstrip(b"\r\n").decode().split(",")
            value = {"user_id": user_id, "country": country, "score": float(score), "opted_in": opted_in == "true",
                     "updated_at": updated_at.replace("Z", "+00:00"), "segment_id": 0}
            out.write(user_id.encode() + b"\t" + dumps(value) + b"\n")
    os.replace(str(path) + ".tmp", path)
    return path


def upload(path: Path, key: str) -> None:
    client = s3()
    if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=BUCKET)
    try:
        if client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == path.stat().st_size:
            return
    except client.exceptions.ClientError:
        pass
    client.upload_file(str(path), BUCKET, key)


# --- topics ----------------------------------------------------------------------------------------

def admin():
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap(), "log_level": 3})


def new_topic(prefix: str, partitions: int) -> str:
    from confluent_kafka.admin import NewTopic

    name = f"bench-{prefix}-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:6]}"
    client = admin()  # kept referenced until the result is in
    client.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def delete_topics(topics: list[str]) -> None:
    if topics:
        client = admin()
        for future in client.delete_topics(topics).values():
            future.result(30)


def high_watermarks(topic: str) -> int:
    """The sum of the partitions' high watermarks (offsets taken, control records included)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": "bench-watermarks"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def count_committed(topic: str) -> tuple[int, int]:
    """(rows, end markers) a read_committed consumer sees in the topic, from the beginning to its end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": f"bench-count-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        rows = markers = 0
        left = set(partitions)
        while left:
            for msg in consumer.consume(100_000, timeout=1.0):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"counting {topic}: {msg.error()}")
                    left.discard(msg.partition())
                elif any(k == MARKER_HEADER for k, _ in msg.headers() or ()):
                    markers += 1
                else:
                    rows += 1
        return rows, markers
    finally:
        consumer.close()


# --- measuring -------------------------------------------------------------------------------------

@dataclass
class Measured:
    command: list[str]
    wall: float             # seconds
    cpu: float              # user + sys seconds of the child and all its (waited-for) descendants
    max_rss_mb: float       # the largest peak RSS of any one process of the tree (wait4's ru_maxrss)
    sum_rss_mb: float       # the peak of the tree's summed RSS, sampled every 50 ms
    processes: int          # the most processes seen at once in the tree
    returncode: int
    stdout: str = field(repr=False, default="")

    def check(self, what: str, log: Path | None = None) -> None:
        if self.returncode != 0:
            tail = "".join(log.read_text(errors="replace").splitlines(True)[-5:]) if log and log.exists() else self.stdout[-2000:]
            sys.exit(f"error: {what} exited {self.returncode}: {shlex.join(self.command)}\n{tail}")


def _tree_rss(root: int) -> tuple[int, int]:
    """(summed RSS bytes, process count) of root's descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, count, todo = 0, 0, list(children.get(root, []))
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
            count += 1
        except (OSError, IndexError, ValueError):
            pass
        todo += children.get(pid, [])
    return total, count


# Runs the measured command and reports its os.wait4 usage. Not measured from this process directly:
# Linux counts the RSS a child had before exec (a copy of its parent, here ~100 MB of boto3 and
# confluent_kafka) in its ru_maxrss; this small launcher makes that floor a few MB.
LAUNCHER = """
import json, os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}, f)
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def measure(command: list[str], env: dict[str, str] | None = None, stdout: Path | None = None, stderr: Path | None = None) -> Measured:
    """Runs command to its end; wall seconds, CPU seconds and RSS of its process tree.

    CPU and the per-process peak come from os.wait4 on the command (in LAUNCHER): Linux adds the usage
    of every descendant the tree has waited for (pipelines' shard processes are). The summed RSS is sampled."""
    out = open(stdout, "w+b") if stdout else subprocess.DEVNULL
    err = open(stderr, "wb") if stderr else subprocess.DEVNULL
    usage_file = Path(tempfile.mkstemp(prefix="bench-usage-")[1])
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(usage_file), *command],
                               env=env, stdout=out, stderr=err, cwd=REPO)
    peak = {"rss": 0, "procs": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, procs = _tree_rss(process.pid)
            peak["rss"], peak["procs"] = max(peak["rss"], rss), max(peak["procs"], procs)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    process.wait()
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    usage = json.loads(usage_file.read_text() or "{}") if usage_file.exists() else {}
    usage_file.unlink(missing_ok=True)
    text = ""
    if stdout:
        out.seek(0)
        text = out.read().decode(errors="replace")
        out.close()
    if stderr:
        err.close()
    return Measured(command, wall, usage.get("cpu", float("nan")), usage.get("maxrss_kb", 0) / 1024,
                    peak["rss"] / 2**20, peak["procs"], process.returncode, text)


def summary_of(measured: Measured) -> dict:
    """The JSON summary `pipelines run` prints as its last stdout line."""
    lines = measured.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


# --- large outputs, and the audience without the stack (bench/embulk_bench.py) ---------------------

def audience_gzip(work: Path, rows: int, seed: int) -> Path:
    """The gzip CSV of pipelines.devstack.sample alone, generated once where prepare_audience keeps it
    (the same bytes), without the parts and the upload: for benchmarks that need no stack."""
    from pipelines.devstack.sample import write_audience_gzip

    whole = work / f"audience-r{rows}-s{seed}" / "audience.csv.gz"
    if not whole.exists():
        whole.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {rows:,} rows into {whole}", file=sys.stderr)
        tmp = f"{whole}.tmp-{os.getpid()}"
        write_audience_gzip(tmp, rows, seed)
        os.replace(tmp, whole)
    return whole


def stdout_to(path: Path, command: list[str]) -> list[str]:
    """`command` with its standard output sent to `path` by a shell that then execs it: the process
    measured is the command itself, and a large output is never read back into this process
    (`measure(stdout=...)` reads it all)."""
    return ["sh", "-c", 'out=$1; shift; exec "$@" > "$out"', "sh", str(path), *command]


def count_lines(path: Path, unless: re.Pattern[bytes] | None = None) -> int:
    """Lines of a (large) file, read in chunks; with `unless`, only the lines it does not match."""
    count = 0
    with open(path, "rb") as f:
        if unless is None:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
        else:
            count = sum(1 for line in f if not unless.match(line))
    return count


def last_line(path: Path, tail: int = 1 << 16) -> str:
    """The last non-empty line of a (large) file, from its last `tail` bytes."""
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - tail))
        lines = f.read().strip().splitlines()
    return lines[-1].decode(errors="replace") if lines else ""


# --- the table -------------------------------------------------------------------------------------

@dataclass
class Row:
    run: str
    rows: int | None = None           # None: not run (n/a)
    measured: Measured | None = None
    nbytes: int = 0                   # the MB/s numerator

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.measured.wall if self.measured and self.rows is not None else None


def table(rows: list[Row], reference: str = "kcat") -> str:
    """A plain-text table that is also markdown: run, rows/s, MB/s, CPU s, peak RSS MB, x kcat."""
    ref = next((r.rows_per_second for r in rows if r.run.startswith(reference) and r.rows_per_second), None)
    header = ["run", "rows/s", "MB/s", "CPU s", "peak RSS MB", f"x {reference}"]
    cells = []
    for r in rows:
        m, rps = r.measured, r.rows_per_second
        if m is None or rps is None:
            cells.append([r.run] + ["n/a"] * 5)
            continue
        rss = f"{m.max_rss_mb:,.0f}" + (f" (sum {m.sum_rss_mb:,.0f}, {m.processes} procs)" if m.processes > 1 else "")
        cells.append([r.run, f"{rps:,.0f}", f"{r.nbytes / 1e6 / m.wall:,.1f}", f"{m.cpu:,.2f}" if m.cpu < 10 else f"{m.cpu:,.1f}", rss,
                      f"{rps / ref:.2f}" if ref else "n/a"])
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(header), rule, *map(fmt, cells)])


def print_commands(rows: list[Row]) -> None:
    print("\ncommands:")
    for r in rows:
        if r.measured:
            print(f"  {r.run}: {shlex.join(r.measured.command)}")


# --- our import ------------------------------------------------------------------------------------

def ours_import(audience: Audience, topic: str, processes: int, work: Path, env: dict[str, str], split: bool) -> Measured:
    """`pipelines run configs/send_audience_to_kafka.yml.liquid` into topic: the whole gzip as one shard,
    or (split) one shard per gzip part, `processes` shard processes at once (MAX_THREADS)."""
    command = [PIPELINES, "run", "configs/send_audience_to_kafka.yml.liquid", "--var", f"S3_BUCKET={BUCKET}",
               "--var", f"S3_KEY={audience.parts_prefix if split else audience.whole_key}",
               "--var", f"KAFKA_TOPIC={topic}", "--var", f"MAX_THREADS={processes}"]
    if split:  # compressed objects are never split; a shard size of the smallest part packs one part a shard
        command += ["--shard-size", str(min(p.stat().st_size for p in audience.parts))]
    log = work / f"{topic}.log"
    measured = measure(command, env, stdout=work / f"{topic}.out", stderr=log)
    measured.check("pipelines run", log)
    summary = summary_of(measured)
    if summary.get("status") != "succeeded" or summary.get("rows_written") != audience.rows:
        sys.exit(f"error: {topic}: expected {audience.rows:,} rows written, summary says {summary} (log: {log})")
    return measured


# --- the schema registry, S3 objects and tables of several references (bench/formats.py) -----------

def registry_url() -> str:
    """SCHEMA_REGISTRY_URL as `pipelines dev up` exports it; exits if unset or not on this machine."""
    url = os.environ.get("SCHEMA_REGISTRY_URL", "")
    if not url:
        sys.exit('error: SCHEMA_REGISTRY_URL not set: start the local stack first, e.g.\n  eval "$(.venv/bin/pipelines dev up)"')
    if urlparse(url).hostname not in ("127.0.0.1", "localhost"):
        sys.exit(f"error: SCHEMA_REGISTRY_URL must point at 127.0.0.1 (the local stack), got {url}")
    return url.rstrip("/")


def delete_subjects(subjects: list[str]) -> None:
    """Deletes the registry subjects (soft, then permanently), as far as the registry lets: best effort."""
    import urllib.error
    import urllib.parse
    import urllib.request

    for subject in subjects:
        url = f"{registry_url()}/subjects/{urllib.parse.quote(subject, safe='')}"
        for suffix in ("", "?permanent=true"):
            try:
                urllib.request.urlopen(urllib.request.Request(url + suffix, method="DELETE"), timeout=10).close()
            except (urllib.error.URLError, OSError) as exc:
                print(f"note: deleting registry subject {subject}{suffix}: {exc}", file=sys.stderr)
                break


def read_json_object(key: str) -> dict:
    """The JSON object s3://bench/<key>."""
    return json.loads(s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())


def measured_cells(row: Row) -> list[str]:
    """rows/s, MB/s, CPU s and peak RSS MB of a measured row, formatted as table() does."""
    m, rps = row.measured, row.rows_per_second
    if m is None or rps is None:
        return ["n/a"] * 4
    rss = f"{m.max_rss_mb:,.0f}" + (f" (sum {m.sum_rss_mb:,.0f}, {m.processes} procs)" if m.processes > 1 else "")
    return [f"{rps:,.0f}", f"{row.nbytes / 1e6 / m.wall:,.1f}", f"{m.cpu:,.2f}" if m.cpu < 10 else f"{m.cpu:,.1f}", rss]


def markdown_table(header: list[str], lines: list[list[str]]) -> str:
    """A plain-text table that is also markdown, laid out as table()'s: the first column left, the others right."""
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(header), rule, *map(fmt, lines)])
