"""Plans and shards: `pipelines plan`, `pipelines run --plan [--shard]` and `pipelines finish`.

Large uncompressed CSV/JSONL files are split into byte ranges, and every shard reads the lines
that start in its range: over all shards each row must be read exactly once, the header only in
the first range. Compressed files go whole, small files are packed together, a shard checks its
objects against the plan before it writes anything, and finish/resume work from the shard reports.

Each test writes input files and a plain `*.yml` config (file input, file output, work_dir and
error_output) into tmp_path and drives the CLI through click's CliRunner.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard
from click.testing import CliRunner

from pipelines.engine import textio
from pipelines.cli.main import cli
from pipelines.engine.errors import EXIT_CONFIG, EXIT_RUN_FAILED
from pipelines.engine.plan import PlanItem, split_ranges
from pipelines.engine.textio import LineRange

JOB_ID = "plan-job"

ID_NAME = [{"name": "id", "type": "long"}, {"name": "name"}]


def csv_parser(**options: Any) -> dict[str, Any]:
    return {"type": "csv", "columns": ID_NAME, **options}


def jsonl_parser(**options: Any) -> dict[str, Any]:
    return {"type": "jsonl", "columns": ID_NAME, **options}


# ---------------------------------------------------------------- helpers


@dataclass
class Job:
    """A config in a folder: inputs under in/, outputs out/JOB_ID/part-NNNNN-00000.jsonl, plan under work/."""

    folder: Path
    config: Path
    inputs: dict[str, Path]

    @property
    def plan_path(self) -> Path:
        return self.folder / "work" / JOB_ID / "plan.json"

    @property
    def shards_folder(self) -> Path:
        return self.plan_path.parent / "shards"

    @property
    def summary_path(self) -> Path:
        return self.plan_path.parent / "summary.json"

    @property
    def out_folder(self) -> Path:
        return self.folder / "out" / JOB_ID

    def output_path(self, shard: int) -> Path:
        return self.out_folder / f"part-{shard:05d}-00000.jsonl"

    def rows_of(self, shard: int) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output_path(shard).read_text(encoding="utf-8").splitlines()]

    def report(self, shard: int) -> dict[str, Any]:
        return json.loads((self.shards_folder / f"{shard:05d}.json").read_text(encoding="utf-8"))

    def plan_json(self) -> dict[str, Any]:
        return json.loads(self.plan_path.read_text(encoding="utf-8"))

    def shard_count(self) -> int:
        return len(self.plan_json()["shards"])

    def out_files(self) -> list[str]:
        return sorted(p.name for p in self.out_folder.iterdir()) if self.out_folder.exists() else []


def write_job(
    folder: Path, files: dict[str, bytes] | bytes, parser: dict[str, Any], decoders: list[dict[str, Any]] | None = None
) -> Job:
    if isinstance(files, bytes):
        files = {"data.csv": files}
    (folder / "in").mkdir(parents=True, exist_ok=True)
    inputs = {}
    for name, data in files.items():
        inputs[name] = folder / "in" / name
        inputs[name].write_bytes(data)
    config: dict[str, Any] = {
        "in": {"type": "file", "path_prefix": f"{folder / 'in'}/", "parser": parser},
        "out": {"type": "file", "path_prefix": f"{folder / 'out'}/", "file_ext": "jsonl"},
        "exec": {"work_dir": str(folder / "work"), "error_output": f"{folder / 'errors'}/"},
    }
    if decoders is not None:
        config["in"]["decoders"] = decoders
    path = folder / "job.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Job(folder, path, inputs)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def last_json(self) -> dict[str, Any]:
        return json.loads(self.stdout.strip().splitlines()[-1])

    @property
    def error(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, self.stderr
        return lines[0]


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.stderr
    return Result(result.exit_code, result.stdout, result.stderr)


def make_plan(job: Job, shard_size: int | str) -> dict[str, Any]:
    done = invoke("plan", job.config, "--out", job.plan_path, "--shard-size", str(shard_size), "--job-id", JOB_ID)
    assert done.exit_code == 0, done.stderr
    printed = done.last_json
    plan = job.plan_json()
    assert printed == {
        "job_id": JOB_ID, "plan": str(job.plan_path), "shards": len(plan["shards"]),
        "bytes": sum(item_length(i) for s in plan["shards"] for i in s["items"]),
    }
    return plan


def run_shard(job: Job, index: int, *extra: str) -> Result:
    return invoke("run", job.config, "--plan", job.plan_path, "--shard", str(index), *extra)


def run_ok(job: Job, index: int) -> dict[str, Any]:
    done = run_shard(job, index)
    assert done.exit_code == 0, (index, done.stdout, done.stderr)
    assert done.last_json["status"] == "succeeded"
    return done.last_json


def item_length(item: dict[str, Any]) -> int:
    return (item["end"] if item["end"] is not None else item["size"]) - item["start"]


def all_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for shard in plan["shards"] for item in shard["items"]]


def file_etag(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


# ---------------------------------------------------------------- 1. byte-range splits


def csv_name(rng: random.Random, i: int) -> str:
    """Names of varied length, some with commas (quoted) or multi-byte characters (split mid-character)."""
    base = rng.choice(["a", "bob", "x" * rng.randint(5, 40), "ünïcödé-€", "日本語のなまえ", "with, comma", "q\"uote"])
    return f"{base}-{i}"


def quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"') else value


def csv_case(rows_count: int, seed: int, eol: str = "\n", header: bool = True, final_newline: bool = True, blank_lines: bool = False) -> tuple[bytes, list[dict[str, Any]]]:
    rng = random.Random(seed)
    rows = [{"id": i * 7 - 50, "name": csv_name(rng, i)} for i in range(rows_count)]
    lines = ["id,name"] if header else []
    for row in rows:
        if blank_lines and rng.random() < 0.3:
            lines += [""] * rng.randint(1, 3)
        lines.append(f"{row['id']},{quote(row['name'])}")
    if blank_lines:
        lines += ["", ""]
    text = eol.join(lines) + (eol if final_newline else "")
    return text.encode(), rows


def jsonl_case(rows_count: int, seed: int, eol: str = "\n", final_newline: bool = True, blank_lines: bool = False) -> tuple[bytes, list[dict[str, Any]]]:
    rng = random.Random(seed)
    rows = [{"id": i * 3, "name": csv_name(rng, i)} for i in range(rows_count)]
    lines = []
    for row in rows:
        if blank_lines and rng.random() < 0.3:
            lines += ["", "  "][: rng.randint(1, 2)]
        lines.append(json.dumps({"name": row["name"], "x": "}\n", "id": row["id"]}, ensure_ascii=rng.random() < 0.5))
    if blank_lines:
        lines += [""]
    text = eol.join(lines) + (eol if final_newline else "")
    return text.encode(), rows


HEADER = csv_parser(skip_header_lines=1)

SPLIT_CASES = {
    # name: (rows count -> (file bytes, expected rows), parser)
    "csv-header": (lambda n: csv_case(n, 1), HEADER),
    "csv-crlf": (lambda n: csv_case(n, 2, eol="\r\n"), HEADER),
    "csv-no-final-newline": (lambda n: csv_case(n, 3, final_newline=False), HEADER),
    "csv-no-header-crlf-no-final-newline": (lambda n: csv_case(n, 4, eol="\r\n", header=False, final_newline=False), csv_parser()),
    "csv-blank-lines": (lambda n: csv_case(n, 5, blank_lines=True), HEADER),
    "csv-blank-lines-crlf": (lambda n: csv_case(n, 6, eol="\r\n", final_newline=False, blank_lines=True), HEADER),
    "jsonl": (lambda n: jsonl_case(n, 7), jsonl_parser()),
    "jsonl-crlf-no-final-newline": (lambda n: jsonl_case(n, 8, eol="\r\n", final_newline=False), jsonl_parser()),
    "jsonl-blank-lines": (lambda n: jsonl_case(n, 9, blank_lines=True), jsonl_parser()),
}

# Rows a file has for a shard size: few for tiny shards (one shard a byte), enough for 1000 to split.
ROWS_FOR_SHARD_SIZE = {1: 5, 7: 14, 64: 60, 1000: 70, 1 << 20: 70}


def check_split_plan(plan: dict[str, Any], data: bytes, shard_size: int) -> None:
    """Items of a split file are contiguous [start, end) ranges covering [0, size), each starting at a line start;
    a range is at most shard_size unless the plan moved its end to a record start (CSV with quotes)."""
    size = len(data)
    items = all_items(plan)
    assert all(item["size"] == size for item in items)
    if size <= shard_size:
        assert [(i["start"], i["end"]) for i in items] == [(0, None)]
        return
    assert len(items) > 1
    assert items[0]["start"] == 0 and items[-1]["end"] is None
    for before, after in pairwise(items):
        assert before["end"] == after["start"]
    assert all(item_length(i) > 0 for i in items)
    assert sum(item_length(i) for i in items) == size


@pytest.mark.parametrize("case", list(SPLIT_CASES))
@pytest.mark.parametrize("shard_size", [1, 7, 64, 1000, 1 << 20])
def test_split_shards_read_every_row_exactly_once(tmp_path: Path, case: str, shard_size: int) -> None:
    build, parser = SPLIT_CASES[case]
    data, expected = build(ROWS_FOR_SHARD_SIZE[shard_size])
    if shard_size == 1000:
        assert len(data) > 1000
    job = write_job(tmp_path, data, parser)
    plan = make_plan(job, shard_size)
    check_split_plan(plan, data, shard_size)

    done = invoke("run", job.config, "--plan", job.plan_path)  # every shard, one after another, then finish

    assert done.exit_code == 0, done.stderr
    shards = len(plan["shards"])
    rows = [row for i in range(shards) for row in job.rows_of(i)]
    assert Counter(map(json.dumps, rows)) == Counter(map(json.dumps, expected))  # none lost, none doubled
    assert rows == expected  # and in order, the header never a row
    reports = [job.report(i) for i in range(shards)]
    assert [r["shard"] for r in reports] == list(range(shards))
    assert sum(r["rows_read"] for r in reports) == len(expected)
    assert sum(r["rows_written"] for r in reports) == len(expected)
    assert sum(r["rows_skipped"] for r in reports) == 0
    assert sum(r["bytes_read"] for r in reports) == len(data)
    for report, shard in zip(reports, plan["shards"]):
        assert report["rows_written"] == len(job.rows_of(shard["index"]))
        assert report["bytes_read"] <= len(data)
    summary = done.last_json
    assert summary["status"] == "succeeded"
    assert (summary["shards"], summary["shards_skipped"], summary["objects"]) == (shards, 0, 1)
    assert (summary["rows_read"], summary["rows_written"], summary["bytes_read"]) == (len(expected), len(expected), len(data))
    assert json.loads(job.summary_path.read_text(encoding="utf-8")) == summary


@pytest.mark.parametrize("shard_size", [4, 19])
def test_split_shards_run_one_at_a_time_in_any_order(tmp_path: Path, shard_size: int) -> None:
    build, parser = SPLIT_CASES["csv-blank-lines-crlf"]
    data, expected = build(10)
    job = write_job(tmp_path, data, parser)
    plan = make_plan(job, shard_size)
    shards = len(plan["shards"])
    assert shards > 5

    for index in reversed(range(shards)):
        printed = run_ok(job, index)
        assert printed == {"status": "succeeded", **job.report(index)}

    rows = [row for i in range(shards) for row in job.rows_of(i)]
    assert rows == expected
    reports = [job.report(i) for i in range(shards)]
    assert sum(r["rows_read"] for r in reports) == len(expected)
    assert sum(r["bytes_read"] for r in reports) == len(data)
    assert sorted(job.out_files()) == [f"part-{i:05d}-00000.jsonl" for i in range(shards)]  # no temporary file left


def test_header_is_skipped_only_in_the_first_range_even_when_it_is_longer_than_a_shard(tmp_path: Path) -> None:
    header = "identifier_of_the_user,name_of_the_user_in_the_export"
    data = f"{header}\n1,a\n2,b\n3,c\n".encode()
    job = write_job(tmp_path, data, csv_parser(skip_header_lines=1, quote=""))
    plan = make_plan(job, 4)
    assert len(plan["shards"]) > 10

    done = invoke("run", job.config, "--plan", job.plan_path)

    assert done.exit_code == 0, done.stderr
    rows = [row for i in range(len(plan["shards"])) for row in job.rows_of(i)]
    assert rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    assert done.last_json["rows_read"] == 3
    assert done.last_json["bytes_read"] == len(data)


@pytest.mark.parametrize("shard_size", [1, 3, 6, 10, 16, 25])
def test_several_header_lines_are_all_skipped_when_split(tmp_path: Path, shard_size: int) -> None:
    data = b"# exported 2026-11-22\nid,name\n1,a\n2,b\n3,c\n"
    job = write_job(tmp_path, data, csv_parser(skip_header_lines=2))
    plan = make_plan(job, shard_size)

    done = invoke("run", job.config, "--plan", job.plan_path)

    assert done.exit_code == 0, (done.stdout, done.stderr)
    rows = [row for i in range(len(plan["shards"])) for row in job.rows_of(i)]
    assert rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    assert done.last_json["rows_read"] == 3
    assert done.last_json["bytes_read"] == len(data)


def test_file_with_only_header_lines_split(tmp_path: Path) -> None:
    data = b"# comment line\nid,name\n"
    job = write_job(tmp_path, data, csv_parser(skip_header_lines=2))
    plan = make_plan(job, 3)

    done = invoke("run", job.config, "--plan", job.plan_path)

    assert done.exit_code == 0, done.stderr
    assert [row for i in range(len(plan["shards"])) for row in job.rows_of(i)] == []
    assert (done.last_json["rows_read"], done.last_json["bytes_read"]) == (0, len(data))


@pytest.mark.parametrize("skip", [2, 3])
def test_first_range_reaches_past_the_start_of_the_last_header_line(tmp_path: Path, skip: int) -> None:
    header = [b"# a long first comment line, longer than a shard", b"# second", b"id,name"][3 - skip:]
    data = b"\n".join(header) + b"\n" + csv_rows(0, 20)[0]
    last_header_start = len(b"\n".join(header[:-1])) + 1
    job = write_job(tmp_path, data, csv_parser(skip_header_lines=skip, quote=""))

    plan = make_plan(job, 10)

    items = all_items(plan)
    assert items[0]["start"] == 0 and items[0]["end"] == max(10, last_header_start + 1)
    assert [i["start"] for i in items[1:]] == list(range(items[0]["end"], len(data), 10))
    assert items[-1]["end"] is None
    one_header = make_plan(write_job(tmp_path / "one", data, csv_parser(skip_header_lines=1, quote="")), 10)
    assert [(i["start"], i["end"]) for i in all_items(one_header)][:2] == [(0, 10), (10, 20)]  # one header line: as usual


def test_split_and_packed_files_together(tmp_path: Path) -> None:
    big, big_rows = csv_case(60, 1)
    files = {"a_small.csv": b"id,name\n1,s1\n", "b_big.csv": big, "c_small.csv": b"id,name\n2,s2\n3,s3\n"}
    job = write_job(tmp_path, files, csv_parser(skip_header_lines=1))
    plan = make_plan(job, 300)

    done = invoke("run", job.config, "--plan", job.plan_path)

    assert done.exit_code == 0, done.stderr
    rows = [row for i in range(len(plan["shards"])) for row in job.rows_of(i)]
    expected = [{"id": 1, "name": "s1"}, *big_rows, {"id": 2, "name": "s2"}, {"id": 3, "name": "s3"}]
    assert rows == expected
    summary = done.last_json
    assert (summary["rows_read"], summary["bytes_read"], summary["objects"]) == (len(expected), sum(map(len, files.values())), 3)
    # the big file is split, the small ones go whole, packed greedily in listing order
    uris = [(Path(i["uri"]).name, i["start"], i["end"]) for i in all_items(plan)]
    assert uris[0] == ("a_small.csv", 0, None)
    assert uris[-1] == ("c_small.csv", 0, None)
    big_items = [u for u in uris if u[0] == "b_big.csv"]
    first_end = big_items[0][2]
    assert big_items[0][1] == 0 and first_end >= 300 and big[first_end - 1 : first_end] == b"\n"  # at a record start
    assert len(big_items) >= len(big) // 300
    check_greedy_packing(plan, 300)


def check_greedy_packing(plan: dict[str, Any], shard_size: int) -> None:
    """Shards take items in listing order while they fit: no shard could have taken the next one's first item."""
    shards = plan["shards"]
    used = [sum(item_length(i) for i in s["items"]) for s in shards]
    for shard, total in zip(shards, used):
        assert total <= shard_size or len(shard["items"]) == 1
    for total, following in zip(used, shards[1:]):
        assert total + item_length(following["items"][0]) > shard_size


# ---------------------------------------------------------------- 2. quoted newlines


def multiline_csv() -> tuple[bytes, int, int, list[dict[str, Any]]]:
    """A CSV whose 21st row has a quoted value with line breaks; (bytes, record start, record end, rows)."""
    head = "id,name\n" + "".join(f"{i},name-{i}\n" for i in range(1, 21))
    record = '21,"first line of a long value\nsecond line, with a comma\nthird"\n'
    tail = "".join(f"{i},name-{i}\n" for i in range(22, 41))
    rows = [{"id": i, "name": f"name-{i}"} for i in range(1, 41)]
    rows[20] = {"id": 21, "name": "first line of a long value\nsecond line, with a comma\nthird"}
    start = len(head.encode())
    return (head + record + tail).encode(), start, start + len(record.encode()), rows


@pytest.mark.parametrize("inside", [5, 30, 60])
def test_boundary_inside_a_quoted_multiline_value_moves_to_the_record_end(tmp_path: Path, inside: int) -> None:
    data, start, end, rows = multiline_csv()
    shard_size = start + inside  # the first boundary falls `inside` bytes into the record
    assert start < shard_size < end < len(data)
    job = write_job(tmp_path, data, csv_parser(skip_header_lines=1))
    plan = make_plan(job, shard_size)

    items = all_items(plan)
    assert (items[0]["start"], items[0]["end"]) == (0, end)  # moved past the line breaks inside quotes
    assert all(i["start"] != start + inside for i in items)
    done = invoke("run", job.config, "--plan", job.plan_path)
    assert done.exit_code == 0, done.stderr
    assert [r for i in range(len(plan["shards"])) for r in job.rows_of(i)] == rows
    assert (done.last_json["rows_read"], done.last_json["bytes_read"]) == (40, len(data))


@pytest.mark.parametrize("shard_size", [1, 7, 20, 64, 1000])
def test_quoted_line_breaks_are_split_correctly_at_any_shard_size(tmp_path: Path, shard_size: int) -> None:
    data, _, _, rows = multiline_csv()
    crlf = data.replace(b"\n", b"\r\n")  # CRLF outside and inside the quoted value alike
    expected = [{**r, "name": r["name"].replace("\n", "\r\n")} for r in rows]
    for name, body, want in (("lf", data, rows), ("crlf", crlf, expected)):
        job = write_job(tmp_path / name, body, csv_parser(skip_header_lines=1))
        plan = make_plan(job, shard_size)
        done = invoke("run", job.config, "--plan", job.plan_path)
        assert done.exit_code == 0, done.stderr
        assert [r for i in range(len(plan["shards"])) for r in job.rows_of(i)] == want, name


def test_range_never_starts_inside_a_quoted_value(tmp_path: Path) -> None:
    data = b'id,name\n1,a\n21,"x long enough\n99,fake"\n3,c\n'
    job = write_job(tmp_path, data, csv_parser(skip_header_lines=1))
    plan = make_plan(job, 20)

    assert [(i["start"], i["end"]) for i in all_items(plan)] == [(0, 39), (39, None)]  # not at 20: inside quotes
    done = invoke("run", job.config, "--plan", job.plan_path)
    assert done.exit_code == 0, done.stderr
    assert job.rows_of(0) + job.rows_of(1) == [{"id": 1, "name": "a"}, {"id": 21, "name": "x long enough\n99,fake"}, {"id": 3, "name": "c"}]


def test_csv_with_an_escape_character_is_not_split(tmp_path: Path) -> None:
    data, _, _, _ = multiline_csv()
    job = write_job(tmp_path, data, csv_parser(skip_header_lines=1, escape="\\"))
    plan = make_plan(job, 16)

    assert [[(i["start"], i["end"]) for i in s["items"]] for s in plan["shards"]] == [[(0, None)]]


# ---------------------------------------------------------------- 3. plan contents


def csv_rows(start: int, count: int) -> tuple[bytes, list[dict[str, Any]]]:
    rows = [{"id": i, "name": f"user-{i:05d}"} for i in range(start, start + count)]
    return "".join(f"{r['id']},{r['name']}\n" for r in rows).encode(), rows


@pytest.mark.parametrize("decoders", [None, "configured"], ids=["detected", "configured"])
def test_compressed_files_are_never_split(tmp_path: Path, decoders: str | None) -> None:
    plain_g, rows_g = csv_rows(0, 300)
    plain_z, rows_z = csv_rows(1000, 300)
    plain_p, rows_p = csv_rows(5000, 30)
    if decoders is None:
        files = {"a.csv.gz": gzip.compress(plain_g), "b.csv.zst": zstandard.ZstdCompressor().compress(plain_z), "c.csv": plain_p}
        decoder_list = None
    else:  # configured decoders apply to every file: only gzip files here
        files = {"a.csv.gz": gzip.compress(plain_g), "b.csv.gz": gzip.compress(plain_z)}
        decoder_list = [{"type": "gzip"}]
    shard_size = 200
    assert all(len(d) > shard_size for d in files.values())
    job = write_job(tmp_path, files, csv_parser(), decoders=decoder_list)

    plan = make_plan(job, shard_size)

    items = {Path(i["uri"]).name: [] for i in all_items(plan)}
    for item in all_items(plan):
        items[Path(item["uri"]).name].append((item["start"], item["end"]))
    compressed = [name for name in files if not name.endswith(".csv")]
    for name in compressed:
        assert items[name] == [(0, None)], name  # one whole item, though larger than a shard
        shard = next(s for s in plan["shards"] if any(Path(i["uri"]).name == name for i in s["items"]))
        assert len(shard["items"]) == 1  # alone in its shard
    if "c.csv" in files:
        assert len(items["c.csv"]) == -(-len(plain_p) // shard_size) > 1  # the plain one is split

    done = invoke("run", job.config, "--plan", job.plan_path)
    assert done.exit_code == 0, done.stderr
    rows = [row for i in range(len(plan["shards"])) for row in job.rows_of(i)]
    expected = rows_g + rows_z + (rows_p if "c.csv" in files else [])
    assert rows == expected
    assert done.last_json["bytes_read"] == sum(map(len, files.values()))  # compressed bytes


def test_decoder_none_configured_lets_plain_files_split(tmp_path: Path) -> None:
    data, rows = csv_rows(0, 50)
    job = write_job(tmp_path, data, csv_parser(), decoders=[{"type": "none"}])
    plan = make_plan(job, 100)

    assert len(all_items(plan)) == -(-len(data) // 100)
    done = invoke("run", job.config, "--plan", job.plan_path)
    assert done.exit_code == 0, done.stderr
    assert [r for i in range(len(plan["shards"])) for r in job.rows_of(i)] == rows


def test_small_files_are_packed_several_per_shard(tmp_path: Path) -> None:
    files, expected = {}, []
    for n in range(10):
        data, rows = csv_rows(n * 10, 3)  # 3 rows of 16 bytes: 48 bytes a file
        files[f"part-{n:02d}.csv"] = data
        expected += rows
    job = write_job(tmp_path, files, csv_parser())

    plan = make_plan(job, 100)

    assert [[Path(i["uri"]).name for i in s["items"]] for s in plan["shards"]] == [
        [f"part-{n:02d}.csv" for n in range(k, min(k + 2, 10))] for k in range(0, 10, 2)
    ]
    assert all(i["start"] == 0 and i["end"] is None for i in all_items(plan))
    assert [s["index"] for s in plan["shards"]] == list(range(5))
    done = invoke("run", job.config, "--plan", job.plan_path)
    assert done.exit_code == 0, done.stderr
    assert [r for i in range(5) for r in job.rows_of(i)] == expected
    assert [job.report(i)["objects"] for i in range(5)] == [2] * 5
    assert done.last_json["objects"] == 10

    one = make_plan(write_job(tmp_path / "all", files, csv_parser()), "1KiB")  # everything fits in one shard
    assert [len(s["items"]) for s in one["shards"]] == [10]


def test_every_item_records_size_and_etag(tmp_path: Path) -> None:
    big, _ = csv_rows(0, 40)
    files = {"a.csv": b"1,a\n", "b.csv": big, "c.csv.gz": gzip.compress(big), "d.csv": b"2,b\n3,c\n"}
    job = write_job(tmp_path, files, csv_parser())
    os.utime(job.inputs["a.csv"], ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))

    plan = make_plan(job, 128)

    assert plan["version"] == 1 and plan["job_id"] == JOB_ID and plan["shard_bytes"] == 128
    assert plan["config"] == str(job.config)
    items = all_items(plan)
    assert {Path(i["uri"]).name for i in items} == set(files)
    for item in items:
        path = Path(item["uri"])
        assert item["size"] == path.stat().st_size == len(files[path.name])
        assert item["etag"] == file_etag(path)
    assert next(i for i in items if i["uri"].endswith("a.csv"))["etag"] == f"1700000000123456789-{len(files['a.csv'])}"
    assert len([i for i in items if i["uri"].endswith("b.csv")]) == -(-len(big) // 128)


@pytest.mark.parametrize(("text", "expected"), [("1000", 1000), ("64KiB", 65536), ("1MB", 1_000_000), ("2mib", 2 << 20), (" 7 ", 7)])
def test_shard_size_accepts_units(tmp_path: Path, text: str, expected: int) -> None:
    job = write_job(tmp_path, b"1,a\n", csv_parser())

    plan = make_plan(job, text)

    assert plan["shard_bytes"] == expected


@pytest.mark.parametrize("text", ["0", "abc", "-5", "1.5MB", "10XB", "", "0KiB"])
def test_shard_size_rejects_nonsense(tmp_path: Path, text: str) -> None:
    job = write_job(tmp_path, b"1,a\n", csv_parser())

    done = invoke("plan", job.config, "--out", job.plan_path, "--shard-size", text)

    assert done.exit_code == EXIT_CONFIG, done.stdout
    assert "--shard-size" in done.stderr
    assert not job.plan_path.exists()
    run = invoke("run", job.config, "--plan", job.plan_path, "--shard-size", text)
    assert run.exit_code == EXIT_CONFIG
    assert not job.plan_path.exists()


# ---------------------------------------------------------------- 4. objects changed since the plan


def two_file_job(tmp_path: Path) -> Job:
    job = write_job(tmp_path, {"a.csv": b"1,a\n2,b\n", "b.csv": b"3,c\n4,d\n"}, csv_parser())
    make_plan(job, 8)  # one file a shard
    assert job.shard_count() == 2
    return job


def assert_nothing_written(job: Job, shard: int) -> None:
    assert job.out_files() == []
    assert not (job.shards_folder / f"{shard:05d}.json").exists()
    assert not (job.folder / "errors").exists()


@pytest.mark.parametrize("same_size", [True, False])
def test_changed_object_fails_its_shard_before_writing(tmp_path: Path, same_size: bool) -> None:
    job = two_file_job(tmp_path)
    path = job.inputs["a.csv"]
    before = path.stat()
    path.write_bytes(b"9,z\n8,y\n" if same_size else b"9,z\n8,y\n7,x\n")
    # the same size written within the clock's resolution keeps its mtime: move it on explicitly
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))

    done = run_shard(job, 0)

    assert done.exit_code == EXIT_RUN_FAILED, (done.stdout, done.stderr)
    assert f"error: {path}: the object changed since the plan was made" in done.error
    assert "make a new plan" in done.error
    assert done.last_json["status"] == "failed"
    assert done.last_json["rows_read"] == 0
    assert_nothing_written(job, 0)
    assert run_ok(job, 1)["rows_written"] == 2  # the other shard's object is unchanged


def test_deleted_object_fails_its_shard_before_writing(tmp_path: Path) -> None:
    job = two_file_job(tmp_path)
    path = job.inputs["b.csv"]
    path.unlink()

    done = run_shard(job, 1)

    assert done.exit_code == EXIT_RUN_FAILED, (done.stdout, done.stderr)
    assert f"error: {path}: the object is gone since the plan was made" in done.error
    assert done.last_json["status"] == "failed"
    assert_nothing_written(job, 1)


def test_changed_split_object_fails_every_shard_of_it(tmp_path: Path) -> None:
    data, _ = csv_rows(0, 20)
    job = write_job(tmp_path, {"a.csv": data}, csv_parser())
    make_plan(job, 100)
    path = job.inputs["a.csv"]
    with path.open("ab") as f:
        f.write(b"99,appended\n")

    for index in range(job.shard_count()):
        done = run_shard(job, index)
        assert done.exit_code == EXIT_RUN_FAILED
        assert f"{path}: the object changed since the plan was made" in done.error
        assert f"-{len(data)} and {len(data)} bytes, now " in done.error
        assert f"-{len(data) + 12} and {len(data) + 12} bytes); make a new plan" in done.error
    assert_nothing_written(job, 0)

    whole = invoke("run", job.config, "--plan", job.plan_path)
    assert whole.exit_code == EXIT_RUN_FAILED
    assert "changed since the plan" in whole.error
    assert job.out_files() == []


# ---------------------------------------------------------------- 5. CLI: --shard, finish, resume


def three_shard_job(tmp_path: Path) -> tuple[Job, list[dict[str, Any]]]:
    data, rows = csv_rows(0, 30)  # 30 lines of 13-14 bytes
    job = write_job(tmp_path, b"id,name\n" + data, csv_parser(skip_header_lines=1))
    make_plan(job, -(-(len(data) + 8) // 3))
    assert job.shard_count() == 3
    return job, rows


def test_shard_without_plan_is_a_usage_error(tmp_path: Path) -> None:
    job = write_job(tmp_path, b"1,a\n", csv_parser())

    done = invoke("run", job.config, "--shard", "0")

    assert done.exit_code == EXIT_CONFIG
    assert "--shard needs --plan" in done.stderr
    assert job.out_files() == [] and not (tmp_path / "work").exists()


@pytest.mark.parametrize("index", ["3", "100"])
def test_shard_out_of_range(tmp_path: Path, index: str) -> None:
    job, _ = three_shard_job(tmp_path)

    done = run_shard(job, int(index))

    assert done.exit_code == EXIT_CONFIG
    assert done.error == f"error: shard {index} is not in the plan (it has shards 0 to 2)"
    assert job.out_files() == [] and not job.shards_folder.exists()


def test_negative_shard_is_a_usage_error(tmp_path: Path) -> None:
    job, _ = three_shard_job(tmp_path)

    done = invoke("run", job.config, "--plan", job.plan_path, "--shard", "-1")

    assert done.exit_code == EXIT_CONFIG
    assert "--shard" in done.stderr


def test_shard_of_a_missing_plan(tmp_path: Path) -> None:
    job = write_job(tmp_path, b"1,a\n", csv_parser())

    done = run_shard(job, 0)

    assert done.exit_code == EXIT_CONFIG
    assert "no plan there" in done.error and str(job.plan_path) in done.error
    assert not job.plan_path.exists()


def test_finish_names_missing_shards_then_sums_the_reports(tmp_path: Path) -> None:
    job, rows = three_shard_job(tmp_path)
    run_ok(job, 0)
    run_ok(job, 2)

    missing = invoke("finish", job.config, "--plan", job.plan_path)

    assert missing.exit_code == EXIT_RUN_FAILED
    assert "1 of 3 shard(s) have no report yet: 1;" in missing.error
    assert f"--plan {job.plan_path} --shard N" in missing.error
    assert not job.summary_path.exists()

    run_ok(job, 1)
    done = invoke("finish", job.config, "--plan", job.plan_path)

    assert done.exit_code == 0, done.stderr
    summary = json.loads(job.summary_path.read_text(encoding="utf-8"))
    assert summary == done.last_json
    reports = [job.report(i) for i in range(3)]
    assert summary["status"] == "succeeded" and summary["job_id"] == JOB_ID
    assert (summary["shards"], summary["shards_skipped"], summary["objects"]) == (3, 0, 1)
    assert summary["plan"] == str(job.plan_path)
    for key in ("rows_read", "rows_written", "rows_skipped", "bytes_read"):
        assert summary[key] == sum(r[key] for r in reports), key
    assert summary["rows_read"] == summary["rows_written"] == len(rows)
    assert summary["bytes_read"] == job.inputs["data.csv"].stat().st_size
    assert [r for i in range(3) for r in job.rows_of(i)] == rows


def test_finish_with_no_shard_run_names_them_all(tmp_path: Path) -> None:
    job, _ = three_shard_job(tmp_path)

    done = invoke("finish", job.config, "--plan", job.plan_path)

    assert done.exit_code == EXIT_RUN_FAILED
    assert "3 of 3 shard(s) have no report yet: 0, 1, 2;" in done.error


def test_rerun_skips_done_shards_and_force_reruns_them(tmp_path: Path) -> None:
    job, rows = three_shard_job(tmp_path)
    first = invoke("run", job.config, "--plan", job.plan_path)
    assert first.exit_code == 0, first.stderr
    assert first.last_json["shards_skipped"] == 0
    for i in range(3):
        os.utime(job.output_path(i), ns=(1, 1))  # so that a rewrite shows

    again = invoke("run", job.config, "--plan", job.plan_path)

    assert again.exit_code == 0, again.stderr
    summary = again.last_json
    assert (summary["shards"], summary["shards_skipped"]) == (3, 3)
    assert (summary["rows_read"], summary["rows_written"]) == (len(rows), len(rows))
    assert all(job.output_path(i).stat().st_mtime_ns == 1 for i in range(3))  # nothing rewritten
    assert json.loads(job.summary_path.read_text(encoding="utf-8"))["shards_skipped"] == 3

    one = run_shard(job, 1)  # a done shard alone: skipped too
    assert one.exit_code == 0
    assert one.last_json == {"status": "skipped", **job.report(1)}
    assert job.output_path(1).stat().st_mtime_ns == 1

    forced = invoke("run", job.config, "--plan", job.plan_path, "--force")

    assert forced.exit_code == 0, forced.stderr
    summary = forced.last_json
    assert (summary["shards"], summary["shards_skipped"]) == (3, 0)
    assert (summary["rows_read"], summary["rows_written"]) == (len(rows), len(rows))
    assert all(job.output_path(i).stat().st_mtime_ns != 1 for i in range(3))
    assert [r for i in range(3) for r in job.rows_of(i)] == rows

    forced_one = run_shard(job, 2, "--force")
    assert forced_one.exit_code == 0
    assert forced_one.last_json["status"] == "succeeded"
    assert forced_one.last_json["attempt"] == 3  # run, --force run, --force shard


def test_rerun_runs_only_the_shards_without_a_report(tmp_path: Path) -> None:
    job, rows = three_shard_job(tmp_path)
    run_ok(job, 1)

    done = invoke("run", job.config, "--plan", job.plan_path)

    assert done.exit_code == 0, done.stderr
    assert (done.last_json["shards_skipped"], done.last_json["rows_read"]) == (1, len(rows))
    assert [r for i in range(3) for r in job.rows_of(i)] == rows


def test_run_of_an_existing_plan_reports_the_plans_job_id(tmp_path: Path) -> None:
    job, _ = three_shard_job(tmp_path)

    done = invoke("run", job.config, "--plan", job.plan_path)

    assert done.exit_code == 0, done.stderr
    assert [job.report(i)["job_id"] for i in range(3)] == [JOB_ID] * 3
    assert done.last_json["job_id"] == JOB_ID
    assert json.loads(job.summary_path.read_text(encoding="utf-8"))["job_id"] == JOB_ID


def test_run_with_a_new_plan_path_makes_the_plan_there(tmp_path: Path) -> None:
    data, rows = csv_rows(0, 30)
    job = write_job(tmp_path, data, csv_parser(quote=""))

    done = invoke("run", job.config, "--plan", job.plan_path, "--shard-size", "100", "--job-id", JOB_ID)

    assert done.exit_code == 0, done.stderr
    plan = job.plan_json()
    assert plan["job_id"] == JOB_ID and plan["shard_bytes"] == 100
    assert done.last_json["shards"] == len(plan["shards"]) == -(-len(data) // 100)
    assert [r for i in range(len(plan["shards"])) for r in job.rows_of(i)] == rows


# ---------------------------------------------------------------- 6. LineRange


class Trickle(io.RawIOBase):
    """A stream that returns at most `step` bytes a read, like a network body."""

    def __init__(self, data: bytes, offset: int, step: int) -> None:
        self.buffer = io.BytesIO(data)
        self.buffer.seek(offset)
        self.step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.buffer.read(self.step if size is None or size < 0 else min(size, self.step))


def read_range(data: bytes, start: int, end: int | None, read_size: int, step: int) -> bytes:
    stream = LineRange(Trickle(data, max(start - 1, 0), step), start, end)
    parts = []
    while True:
        part = stream.read(read_size)
        if not part:
            break
        parts.append(part)
    assert stream.read(read_size) == b""  # stays at its end
    return b"".join(parts)


def line_starts(data: bytes) -> list[int]:
    return [0] + [i + 1 for i, byte in enumerate(data) if byte == 0x0A and i + 1 < len(data)]


def random_lines(rng: random.Random) -> bytes:
    eol = rng.choice([b"\n", b"\r\n", None])
    lines = []
    for _ in range(rng.randint(1, 15)):
        length = rng.choice([0, 0, 1, 2, 3, 5, 8, 13, 40])
        line = bytes(rng.choice(b"ab,\r\xc3\xa9") for _ in range(length))
        lines.append(line + (eol or rng.choice([b"\n", b"\r\n"])))
    data = b"".join(lines)
    if rng.random() < 0.4:
        data += b"tail-without-newline"[: rng.randint(1, 20)]
    return data


def test_line_ranges_concatenate_to_the_original_bytes() -> None:
    rng = random.Random(20261122)
    for trial in range(1500):
        data = random_lines(rng)
        starts = line_starts(data)
        shard = rng.choice([1, 2, 3, 4, 5, 7, 11, 16, 64, len(data), len(data) + 1])
        read_size = rng.choice([1, 2, 3, 7, 64, -1])
        step = rng.choice([1, 2, 5, 1 << 20])
        ranges = split_ranges(len(data), shard)
        parts = [read_range(data, s, e, read_size, step) for s, e in ranges]
        context = (trial, data, shard, read_size, step)
        assert b"".join(parts) == data, context
        offset = 0
        for (s, e), part in zip(ranges, parts):
            stop = e if e is not None else len(data)
            if part:  # exactly the lines that start in [s, e)
                assert offset in starts and s <= offset < stop, context
                assert [p for p in starts if s <= p < stop] == [p for p in starts if offset <= p < offset + len(part)], context
            else:
                assert not [p for p in starts if s <= p < stop], context
            offset += len(part)


def test_line_range_over_random_cut_points() -> None:
    """Ranges need not be equal: any sorted cut points give the whole file back."""
    rng = random.Random(7)
    for _ in range(500):
        data = random_lines(rng)
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6)))) if len(data) > 1 else []
        bounds = [0, *cuts]
        ranges = [(s, e) for s, e in zip(bounds, [*cuts, None])]
        assert b"".join(read_range(data, s, e, rng.choice([1, 4, -1]), rng.choice([1, 3, 1 << 20])) for s, e in ranges) == data


def test_line_range_read_all_with_a_small_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """LineRange's read(-1) (a chunk) with a chunk size smaller than the lines."""
    monkeypatch.setattr(textio, "CHUNK_BYTES", 3)
    data = b"first line\r\nsecond\n\nthird-without-newline"
    for shard in range(1, len(data) + 1):
        parts = [read_range(data, s, e, -1, 1 << 20) for s, e in split_ranges(len(data), shard)]
        assert b"".join(parts) == data, shard


def test_line_range_read_of_zero_bytes_is_not_its_end() -> None:
    data = b"a\nbb\nccc\n"
    stream = LineRange(io.BytesIO(data[1:]), 2, 6)  # raw at byte 1

    assert stream.read(0) == b""
    assert stream.read(1) + stream.read() == b"bb\nccc\n"  # lines at 2 and 5, in [2, 6)
    assert stream.read() == b""


def test_plan_item_label_and_length() -> None:
    whole = PlanItem("in/a.csv", 100, "1-100")
    piece = PlanItem("in/a.csv", 100, "1-100", 40, 80)
    last = PlanItem("in/a.csv", 100, "1-100", 80, None)

    assert (whole.whole, whole.label, whole.length) == (True, "in/a.csv", 100)
    assert (piece.whole, piece.label, piece.length) == (False, "in/a.csv#bytes=40-80", 40)
    assert (last.whole, last.label, last.length) == (False, "in/a.csv#bytes=80-100", 20)
    assert split_ranges(10, 4) == [(0, 4), (4, 8), (8, None)]
    assert split_ranges(8, 4) == [(0, 4), (4, None)]
    assert split_ranges(3, 4) == [(0, None)]
    # the first range reaches first_end (past the start of the last header line), then steps as usual
    assert split_ranges(10, 4, 6) == [(0, 6), (6, None)]
    assert split_ranges(20, 4, 6) == [(0, 6), (6, 10), (10, 14), (14, 18), (18, None)]
    assert split_ranges(20, 4, 3) == split_ranges(20, 4)
    assert split_ranges(5, 4, 5) == [(0, None)]


def test_record_boundaries_of_random_quoted_csv() -> None:
    """align_to_records on random CSV (quoted line breaks, doubled quotes, CRLF): parsing the ranges one
    by one gives exactly the rows of the whole file."""
    import csv
    import io
    import random
    from types import SimpleNamespace

    from pipelines.engine.plan import align_to_records, split_ranges
    from pipelines.engine.records import Source

    def rows_of(data: bytes) -> list[list[str]]:
        return list(csv.reader(io.StringIO(data.decode(), newline=""), strict=True))

    rng = random.Random(5)
    pieces = ["a", "b c", "x,y", 'say ""hi""', "line\nbreak", "two\r\nlines", "", "\n"]
    for _ in range(200):
        eol = rng.choice(["\n", "\r\n"])
        lines = []
        for _ in range(rng.randint(1, 25)):
            fields = [f'"{rng.choice(pieces)}"' if rng.random() < 0.5 else rng.choice(["1", "abc", ""]) for _ in range(3)]
            lines.append(",".join(fields) + eol)
        data = "".join(lines).encode()
        source = Source("mem", len(data), "etag")
        job = SimpleNamespace(input=SimpleNamespace(open=lambda s, offset=0, d=data: io.BytesIO(d[offset:])))
        for shard in (1, 3, 8, 30):
            ranges = align_to_records(job, source, split_ranges(len(data), shard), b'"')
            assert ranges[0][0] == 0 and ranges[-1][1] is None
            parts = [data[start:end] for start, end in ranges]
            assert b"".join(parts) == data
            assert [row for part in parts for row in rows_of(part)] == rows_of(data), (data, ranges)
