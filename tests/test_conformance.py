"""One conformance suite for every registered plugin: each name `registry.names(kind)` lists, for every
kind, goes through the same edge cases, driven as a user drives it (a config file and `pipelines run`
in a subprocess), against the real broker and moto server of the `stack` fixture.

    empty            0 bytes, an empty object, an empty topic, a stream that decodes to nothing, no row
    header_only      a CSV holding only its header (skip_header_lines: 1; with LF, CRLF or no line end);
                     for formats without one, a file holding no row (blank lines, an Avro file of 0 records)
    bad_row          one bad row among good ones, with max_errors: 1: counted, written to the error output
                     with its source and line (record number, offset), the others pass through, exit 0
    bad_row_default  the same with no threshold set: the engine's default (max_errors 0) fails the run,
                     exit 1, one `error:` line naming the row, the row in the error output, nothing written
    truncated        a compressed stream cut short: exit 1, one line naming the file
    crlf, cr         CRLF line endings (and CR, LF inside values) read and written exactly; CR where a
                     formatter offers it
    non_ascii        "Zoë", "東京", an emoji, U+2028 in a string column survive exactly, in the rows and in
                     the error output's raw text
    round_trip       formatter X -> parser X, encoder X -> decoder X, out X -> in X: the same rows, types, bytes
    via_kafka        a filter in an import into Kafka (the path that may fuse parser, filters and output)

CASES says which cases each kind goes through, NOT_APPLICABLE which do not apply to a known plugin.
A plugin registered tomorrow is collected automatically; until this file knows how to exercise it (a
sample writer and reader for its format, a codec, a filter sample, an input or output driver), every
case of it FAILS saying what to add. KNOWN_BUGS lists the real bugs the cases found.

Speed: a test's CLI runs and checks are its scenario, run in a small pool of threads (each run is a
subprocess). The scenarios that need no broker start with the module, while the stack boots; those
that need it start together once it is up. Each test waits for its own scenario, whose failed
assertion fails it. Inputs are a handful of rows; a round trip two kinds share runs once.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard
from conftest import consume_all, create_topic, rows_and_markers, run_cli, summary_of

from pipelines.engine import registry

# ---------------------------------------------------------------- the cases, and the bugs they found

CASES: dict[str, tuple[str, ...]] = {
    "in": ("empty", "header_only", "bad_row", "bad_row_default", "crlf", "non_ascii", "round_trip"),
    "decoder": ("empty", "header_only", "bad_row", "truncated", "crlf", "non_ascii", "round_trip"),
    "parser": ("empty", "header_only", "bad_row", "bad_row_default", "crlf", "non_ascii", "round_trip"),
    "filter": ("empty", "bad_row", "bad_row_default", "non_ascii", "via_kafka"),
    "out": ("empty", "bad_row", "bad_row_default", "crlf", "non_ascii", "round_trip"),
    "formatter": ("empty", "crlf", "cr", "non_ascii", "round_trip"),
    "encoder": ("empty", "non_ascii", "round_trip"),
}


@dataclass(frozen=True)
class Bug:
    symptom: str  # the xfail reason
    match: str  # what the failed assertion says (a regex): any other failure of the test is a real failure


AVRO_JSON = Bug(
    "avro formatter -> avro parser: a json column comes back as a string of its JSON text ({'k': [1, 'x']} -> "
    "'{\"k\":[1,\"x\"]}', [true, 'ü'] -> '[true,\"ü\"]'): the formatter stores it as a string field, the parser "
    "does not parse it back",
    r"^rows differ in column\(s\) extra: row 0: got '\{\"k\":\[1,\"x\"\]\}' \(str\), expected \{'k': \[1, 'x'\]\} \(dict\)",
)
KNOWN_BUGS: dict[tuple[str, str, str], Bug] = {
    ("parser", "avro", "round_trip"): AVRO_JSON,
    ("formatter", "avro", "round_trip"): AVRO_JSON,
}


class KnownBug(AssertionError):
    """A failure that is exactly the symptom of an entry of KNOWN_BUGS (the only failure its xfail expects)."""


# ---------------------------------------------------------------- the rows

COLUMNS = [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]
NAMES = [c["name"] for c in COLUMNS]
CSV_HEADER = b"id,name\n"
ASCII_ROWS = [[1, "ann"], [2, "bob"], [3, "cy"]]
UNICODE_ROWS = [[1, "Zoë"], [2, "東京"], [3, "naïve café ✓ 😀"], [4, "line\u2028separator"]]
MIXED_ROWS = [[1, "ann"], [2, "東京"], [3, "cy"]]
BAD_ID = "x"  # the bad row: its id is not a long
BAD_AT = 1  # the bad row comes second
BAD_ROW = [BAD_ID, "bad"]
UNICODE_BAD_ROW = [BAD_ID, "東京 ✗"]
PARSE_REASON = f"column 'id' (long): cannot parse '{BAD_ID}'"  # the CSV parser's reason for the bad row

TYPED_COLUMNS = [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "at", "type": "timestamp"},
    {"name": "extra", "type": "json"},
]
# As the jsonl formatter writes them: the JSON shows the types (1.5 and 1, true, strings, null).
TYPED_ROWS = [
    {"id": 1, "name": "Zoë", "score": 1.5, "ok": True, "at": "2024-01-02T03:04:05+00:00", "extra": {"k": [1, "x"]}},
    {"id": 2, "name": "東京\r\nline two\rthree\nfour", "score": None, "ok": False,
     "at": "1999-12-31T23:59:59.123456+00:00", "extra": None},
    {"id": 9007199254740993, "name": 'plain, "quoted"', "score": -0.25, "ok": None, "at": None, "extra": [True, "ü"]},
]


def as_dicts(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(NAMES, row)) for row in rows]


def with_bad_row(rows: list[list[Any]], bad: list[Any] | None = None) -> list[list[Any]]:
    return [*rows[:BAD_AT], bad or BAD_ROW, *rows[BAD_AT:]]


def assert_rows(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str = "rows") -> None:
    """The same rows in the same order: columns, values and types (1 is not 1.0, True is not 1)."""
    assert len(got) == len(want), f"{what}: {len(got)} rows, expected {len(want)}: {got}"
    differ: dict[str, list[str]] = {}
    for i, (g, w) in enumerate(zip(got, want)):
        assert list(g) == list(w), f"{what}: row {i} has the columns {list(g)}, expected {list(w)}"
        for column, value in w.items():
            if g[column] != value or type(g[column]) is not type(value):
                differ.setdefault(column, []).append(
                    f"row {i}: got {g[column]!r} ({type(g[column]).__name__}), expected {value!r} ({type(value).__name__})"
                )
    assert not differ, f"{what} differ in column(s) {', '.join(differ)}: " + "; ".join(d for ds in differ.values() for d in ds)


def unordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in an order of their own (a topic's partitions interleave them)."""
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, ensure_ascii=False))


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    """JSON lines split on LF only (str.splitlines would also split inside values, at U+2028 and others)."""
    return [json.loads(line) for line in data.decode().split("\n") if line.strip()]


# ---------------------------------------------------------------- formats: sample writers and readers independent of the engine


def csv_text(rows: list[list[Any]], newline: str = "\n") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(NAMES)
    writer.writerows(rows)
    return out.getvalue().encode()


def read_csv(data: bytes) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows and rows[0][: len(NAMES)] == NAMES, f"no header line in {data[:80]!r}"
    return rows[1:]


def jsonl_text(rows: list[list[Any]], newline: str = "\n") -> bytes:
    return "".join(json.dumps(dict(zip(NAMES, row)), ensure_ascii=False) + newline for row in rows).encode()


AVRO_SAMPLE_SCHEMA = {
    "type": "record",
    "name": "Sample",
    "fields": [{"name": "id", "type": ["null", "long", "string"]}, {"name": "name", "type": ["null", "string"]}],
}


def avro_file(rows: list[list[Any]], newline: str = "\n") -> bytes:
    from fastavro import parse_schema, writer

    out = io.BytesIO()
    writer(out, parse_schema(AVRO_SAMPLE_SCHEMA), [dict(zip(NAMES, row)) for row in rows])
    return out.getvalue()


def read_avro(data: bytes) -> list[dict[str, Any]]:
    from fastavro import read, reader

    read.BLOCK_READERS["zstandard"] = zstandard_block  # the formatter's default codec, read with the zstandard package
    return list(reader(io.BytesIO(data)))


def zstandard_block(stream: Any) -> io.BytesIO:
    """An Avro block of the zstandard codec: its length (a zig-zag varint), then one zstd frame."""
    shift = value = 0
    while True:
        byte = stream.read(1)[0]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return io.BytesIO(zstd_decompress(stream.read((value >> 1) ^ -(value & 1))))


@dataclass(frozen=True)
class Format:
    """How the suite writes sample files of a format and reads what the formatter wrote, without the engine."""

    write: Callable[..., bytes]  # (rows, newline) -> the file
    no_rows: tuple[bytes, ...]  # "header only" files: not 0 bytes, and no row in them
    parser: dict[str, Any]  # parser options (besides type and columns) for write()'s files
    line: Callable[[int], int]  # the error output's `line` of row i (0-based)
    raw: Callable[[str], list[Any]]  # a bad row's raw text in the error output -> its values
    read_pairs: Callable[[bytes], list[tuple[str, str]]]  # (id, name) of each row of a formatter's file, as text
    text: bool  # has line endings: the crlf cases apply
    newlines: dict[str, dict[str, Any]] = field(default_factory=dict)  # case -> formatter options ending records so
    not_a_file: str | None = None  # what the parser says of 0 bytes, when they are not a file of the format (else: no row)
    formatter: str | None = None  # the formatter writing files of the format, when not of the same name (Embulk's json: jsonl)


FORMATS: dict[str, Format] = {
    "csv": Format(
        write=csv_text, no_rows=(CSV_HEADER, b"id,name\r\n", b"id,name"), parser={"skip_header_lines": 1},
        line=lambda i: i + 2, raw=lambda raw: next(csv.reader([raw])),
        read_pairs=lambda data: [(r[0], r[1]) for r in read_csv(data)], text=True,
        newlines={"crlf": {"newline": "CRLF"}, "cr": {"newline": "CR"}},
    ),
    "jsonl": Format(
        write=jsonl_text, no_rows=(b"\n", b"\r\n\r\n"), parser={}, line=lambda i: i + 1,
        raw=lambda raw: list(json.loads(raw).values()),
        read_pairs=lambda data: [(str(r["id"]), r["name"]) for r in read_jsonl(data)], text=True,
    ),
    "json": Format(  # Embulk's json parser, on JSON lines
        write=jsonl_text, no_rows=(b"\n", b"\r\n\r\n"), parser={}, line=lambda i: i + 1,
        raw=lambda raw: list(json.loads(raw).values()),
        read_pairs=lambda data: [(str(r["id"]), r["name"]) for r in read_jsonl(data)], text=True, formatter="jsonl",
    ),
    "avro": Format(
        write=avro_file, no_rows=(avro_file([]),), parser={}, line=lambda i: i + 1,
        raw=lambda raw: list(json.loads(raw).values()),
        read_pairs=lambda data: [(str(r["id"]), r["name"]) for r in read_avro(data)], text=False,
        not_a_file="not an Avro object container file",
    ),
}


# ---------------------------------------------------------------- codecs: compress and decompress without the engine


def zstd_compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def zstd_decompress(data: bytes) -> bytes:
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as stream:
        return stream.read()


@dataclass(frozen=True)
class Codec:
    encoders: list[dict[str, Any]]  # the out.encoders that write it ([] for none)
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]
    compress_split: Callable[[bytes, int], bytes]  # two members or frames, cut at that byte
    truncates: bool = True  # a stream that can be cut short: the truncated case applies
    encoded: bool = True  # an encoder writes it (bzip2 has a decoder only): the round trip applies


CODECS: dict[str, Codec] = {
    "gzip": Codec([{"type": "gzip"}], gzip.compress, gzip.decompress, lambda d, cut: gzip.compress(d[:cut]) + gzip.compress(d[cut:])),
    "zstd": Codec([{"type": "zstd"}], zstd_compress, zstd_decompress, lambda d, cut: zstd_compress(d[:cut]) + zstd_compress(d[cut:])),
    "none": Codec([], lambda d: d, lambda d: d, lambda d, cut: d, truncates=False),
    "bzip2": Codec([], bz2.compress, bz2.decompress, lambda d, cut: bz2.compress(d[:cut]) + bz2.compress(d[cut:]), encoded=False),
}


# ---------------------------------------------------------------- filters: a sample each, and what it does to a row


@dataclass(frozen=True)
class FilterSample:
    config: dict[str, Any]
    apply: Callable[[dict[str, Any]], dict[str, Any]]  # a row as the jsonl output shows it, after the filter
    bad_row: list[Any] | None = None  # a row the filter itself rejects (else the parser's bad row)
    bad_reason: str | None = None
    key: str = "name"  # a string column left after the filter (the Kafka key of via_kafka)


FILTERS: dict[str, FilterSample] = {
    "rename": FilterSample({"type": "rename", "columns": {"name": "名前"}}, lambda r: {"id": r["id"], "名前": r["name"]}, key="名前"),
    "remove_columns": FilterSample({"type": "remove_columns", "remove": ["id"]}, lambda r: {"name": r["name"]}),
    "keep_columns": FilterSample({"type": "keep_columns", "keep": ["name", "id"]}, lambda r: {"name": r["name"], "id": r["id"]}),
    "add_columns": FilterSample(
        {"type": "add_columns", "columns": [{"name": "city", "type": "string", "value": "東京"}, {"name": "n", "type": "long", "value": "7"}]},
        lambda r: {**r, "city": "東京", "n": 7},
    ),
    "validate": FilterSample(
        {"type": "validate", "columns": [{"name": "name", "required": True}]}, lambda r: r,
        bad_row=[5, ""], bad_reason="column 'name' is required but empty",
    ),
}


# ---------------------------------------------------------------- running the CLI


@dataclass
class Run:
    """One `pipelines run` (a subprocess), and where its rows and bad rows went."""

    result: Any
    folder: Path
    job_id: str

    @property
    def summary(self) -> dict[str, Any]:
        return summary_of(self.result)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.result.stderr.splitlines() if line.startswith("error: ")]

    @property
    def error_file(self) -> Path:
        return self.folder / "errors" / f"{self.job_id}.shard-00000.errors.jsonl"

    @property
    def errors(self) -> list[dict[str, Any]]:
        return read_jsonl(self.error_file.read_bytes()) if self.error_file.exists() else []

    def out_files(self) -> list[Path]:
        folder = self.folder / "out"
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows of the default output (files of the jsonl formatter), where most cases look."""
        return [row for f in self.out_files() if f.name.startswith("part-") for row in read_jsonl(f.read_bytes())]

    def ok(self) -> Run:
        code, stderr = self.result.returncode, self.result.stderr
        assert code == 0, f"exit {code}\n{stderr}"
        assert "Traceback" not in stderr, stderr
        summary = self.summary
        assert summary["status"] == "succeeded", summary
        assert summary["rows_read"] == summary["rows_written"] + summary["rows_skipped"], summary
        return self

    def failed(self, code: int = 1) -> str:
        """A run failed as the engine fails runs: that exit code, one `error:` line (returned), no
        traceback, and the failed summary as the last line of stdout."""
        assert self.result.returncode == code, f"exit {self.result.returncode}, not {code}\n{self.result.stdout}\n{self.result.stderr}"
        assert "Traceback" not in self.result.stderr, self.result.stderr
        assert len(self.error_lines) == 1, self.result.stderr
        assert self.summary["status"] == "failed" and self.summary["error"] in self.error_lines[0], self.summary
        return self.error_lines[0]


def file_in(path: Path | str, parser: dict[str, Any], decoders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"type": "file", "path_prefix": str(path), "parser": parser}
    if decoders is not None:
        config["decoders"] = decoders
    return config


def parser_of(fmt: str, columns: list[dict[str, Any]] = COLUMNS) -> dict[str, Any]:
    return {"type": fmt, "columns": columns, **FORMATS[fmt].parser}


CSV_PARSER = {"type": "csv", "columns": COLUMNS, "skip_header_lines": 1}
TYPED_JSONL_PARSER = {"type": "jsonl", "columns": TYPED_COLUMNS}


class Ctx:
    """A scenario's own folder, S3 prefix, topics and job ids."""

    def __init__(self, lab: Lab, key: tuple[str, ...]) -> None:
        self.lab = lab
        self.slug = re.sub(r"[^a-z0-9]+", "-", "-".join(key).lower()).strip("-")
        self.dir = lab.root / self.slug
        self.dir.mkdir(parents=True)
        self.prefix = f"{self.slug}/"
        self.runs = 0
        self.topics: list[str] = []

    @property
    def bucket(self) -> str:
        return self.lab.bucket

    @property
    def bootstrap(self) -> str:
        return self.lab.stack.kafka_bootstrap

    @property
    def s3(self) -> Any:
        return self.lab.s3

    def topic(self, partitions: int = 3) -> str:
        name = f"cf-{self.slug}-{uuid.uuid4().hex[:6]}"
        create_topic(self.bootstrap, name, partitions)
        self.topics.append(name)
        return name

    def file(self, relative: str, data: bytes) -> Path:
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def once(self, key: tuple[str, ...], scenario: Callable[[Ctx], None]) -> None:
        """A scenario two tests share (a round trip, the same runs): run once, its outcome given to both."""
        self.lab.once(key, lambda: scenario(Ctx(self.lab, key)))

    def run(self, in_: dict[str, Any], out: dict[str, Any] | None = None, filters: list[dict[str, Any]] | None = None,
            **exec_: Any) -> Run:
        """Writes a config file and runs `pipelines run CONFIG --job-id ID`; the output defaults to jsonl
        files in the run's folder out/, the error output to its errors/."""
        self.runs += 1
        job_id = f"cf-{self.slug}-{self.runs}-{self.lab.session}"
        folder = self.dir / f"run{self.runs}"
        folder.mkdir(parents=True)
        config: dict[str, Any] = {
            "in": in_,
            "out": out or {"type": "file", "path_prefix": f"{folder / 'out'}/", "formatter": {"type": "jsonl"}},
            "exec": {"work_dir": str(folder / "work"), "error_output": f"{folder / 'errors'}/", **exec_},
        }
        if filters:
            config["filters"] = filters
        path = folder / "job.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return Run(run_cli("run", str(path), "--job-id", job_id, timeout=120), folder, job_id)


# ---------------------------------------------------------------- the bad-row rules (tests/test_bad_inputs.py, pipelines/engine/error_output.py)


def check_bad_row_skipped(run: Run, source: str, line: int, good: list[dict[str, Any]], delivered: list[dict[str, Any]] | None,
                          reason: str | None = None) -> dict[str, Any]:
    """max_errors: 1 and one bad row: exit 0; counted; in the error output with its source and line; the others
    through (`delivered` None: an output with nothing to read back, counted only)."""
    run.ok()
    summary = run.summary
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == (len(good) + 1, len(good), 1), summary
    assert summary["error_outputs"] == [str(run.error_file)], summary
    assert f"warning: 1 bad row(s) skipped, written to {run.error_file}" in run.result.stderr
    [error] = run.errors
    assert (error["source"], error["line"]) == (source, line), error
    assert error["reason"] and error["raw"], error
    if reason is not None:
        assert error["reason"] == reason, error
    if delivered is not None:
        assert_rows(delivered, good)
    return error


def check_bad_row_fails(run: Run, source: str, line: int, reason: str = "") -> dict[str, Any]:
    """No threshold set (max_errors 0): exit 1, the one error line names the row, which is in the error output."""
    message = run.failed(1)
    assert message.startswith(f"error: 1 bad row(s), more than max_errors 0; first: {source} line {line}: {reason}"), message
    assert message.endswith(f"; all written to {run.error_file}"), message
    [error] = run.errors
    assert (error["source"], error["line"]) == (source, line), error
    assert (run.summary["rows_skipped"], run.summary["rows_written"]) == (1, 0), run.summary
    return error


# ---------------------------------------------------------------- parsers: a file of the format in, jsonl files out


def parser_case(ctx: Ctx, fmt: str, case: str) -> None:
    spec = FORMATS[fmt]
    if case == "empty":  # a stream that decodes to 0 bytes reaches the parser
        path = ctx.file(f"in/data.{fmt}.gz", gzip.compress(b""))
        run = ctx.run(file_in(path, parser_of(fmt), [{"type": "gzip"}]))
        if spec.not_a_file is None:
            assert run.ok().rows == [] and run.summary["rows_read"] == 0
        else:  # not even a file of the format: an error naming the file, nothing written
            assert run.failed(1).startswith(f"error: {path}: {spec.not_a_file}")
            assert run.out_files() == []
    elif case == "round_trip":
        ctx.once(("format-round-trip", fmt), lambda c: format_round_trip(c, fmt))
    else:  # the file input's cases with this format (for csv, the very runs of the file input's cases)
        ctx.once(("read", "file", fmt, case), lambda c: read_case(c, "file", fmt, case))


def read_case(ctx: Ctx, source: str, fmt: str, case: str) -> None:
    """A byte input (`source`) and a parser (`fmt`): files of the format put where the input reads them."""
    driver, spec = INPUTS[source], FORMATS[fmt]
    config = driver.config(ctx, parser_of(fmt))
    reason = f"column 'id' (long): cannot {'parse' if fmt == 'csv' else 'convert'} '{BAD_ID}'"
    if case == "header_only":  # one file of each kind of no row
        for i, data in enumerate(spec.no_rows):
            driver.put(ctx, f"data{i}.{fmt}", data)
        run = ctx.run(config).ok()
        assert run.rows == [] and (run.summary["rows_read"], run.summary["objects"]) == (0, len(spec.no_rows))
    elif case == "bad_row":
        uri = driver.put(ctx, f"data.{fmt}", spec.write(with_bad_row(ASCII_ROWS)))
        run = ctx.run(config, max_errors=1)
        error = check_bad_row_skipped(run, uri, spec.line(BAD_AT), as_dicts(ASCII_ROWS), run.rows)
        assert error["reason"].startswith(reason) and spec.raw(error["raw"]) == BAD_ROW, error
    elif case == "bad_row_default":
        uri = driver.put(ctx, f"data.{fmt}", spec.write(with_bad_row(ASCII_ROWS)))
        run = ctx.run(config)
        check_bad_row_fails(run, uri, spec.line(BAD_AT), reason)
        assert run.out_files() == [], "a failed run leaves no file"
    elif case == "crlf":  # the rows, and the bad row's line number and raw text, under CRLF
        uri = driver.put(ctx, f"data.{fmt}", spec.write(with_bad_row(ASCII_ROWS), "\r\n"))
        run = ctx.run(config, max_errors=1)
        error = check_bad_row_skipped(run, uri, spec.line(BAD_AT), as_dicts(ASCII_ROWS), run.rows)
        assert spec.raw(error["raw"]) == BAD_ROW and "\r" not in error["raw"], error
    elif case == "non_ascii":  # in the rows, and in the raw text of a bad row
        uri = driver.put(ctx, f"data.{fmt}", spec.write(with_bad_row(UNICODE_ROWS, UNICODE_BAD_ROW)))
        run = ctx.run(config, max_errors=1)
        error = check_bad_row_skipped(run, uri, spec.line(BAD_AT), as_dicts(UNICODE_ROWS), run.rows)
        assert spec.raw(error["raw"]) == UNICODE_BAD_ROW, error
        assert not spec.text or UNICODE_BAD_ROW[1] in error["raw"], error
    else:
        raise AssertionError(f"no case {case} for a parser through an input")


def format_round_trip(ctx: Ctx, fmt: str) -> None:
    """Typed rows (jsonl) -> formatter X -> a file (read by an independent reader too) -> parser X -> the same rows and types."""
    source = ctx.file("in/typed.jsonl", jsonl_bytes(TYPED_ROWS))
    out = {"type": "file", "path_prefix": f"{ctx.dir / 'formatted'}/", "formatter": {"type": FORMATS[fmt].formatter or fmt}}
    first = ctx.run(file_in(source, TYPED_JSONL_PARSER), out).ok()
    [written] = sorted((ctx.dir / "formatted" / first.job_id).glob("part-*"))
    assert FORMATS[fmt].read_pairs(written.read_bytes()) == [(str(r["id"]), r["name"]) for r in TYPED_ROWS]
    back = ctx.run(file_in(written, {"type": fmt, "columns": TYPED_COLUMNS, **FORMATS[fmt].parser})).ok()
    assert_rows(back.rows, TYPED_ROWS)


# ---------------------------------------------------------------- formatters: a jsonl file in, files of the format out


def formatter_case(ctx: Ctx, fmt: str, case: str) -> None:
    spec = FORMATS[fmt]
    if case == "round_trip":
        return ctx.once(("format-round-trip", fmt), lambda c: format_round_trip(c, fmt))
    line_ends = {"crlf": [[1, "a\r\nb"], [2, "c\rd\ne"], [3, "end"]], "cr": ASCII_ROWS}
    rows = {"empty": [], "non_ascii": UNICODE_ROWS, **line_ends}[case]
    source = ctx.file("in/rows.jsonl", jsonl_text(rows) or b"\n")
    options = spec.newlines.get(case, {})
    out = {"type": "file", "path_prefix": f"{ctx.dir / 'formatted'}/", "formatter": {"type": fmt, **options}}
    run = ctx.run(file_in(source, {"type": "jsonl", "columns": COLUMNS}), out).ok()
    folder = ctx.dir / "formatted" / run.job_id
    files = sorted(folder.glob("part-*"))
    assert [f.name for f in files] == [f"part-00000-00000.{fmt}"], files
    data = files[0].read_bytes()
    if case == "cr":  # each record ends with a lone CR
        assert data == b"".join(line + b"\r" for line in csv_text(rows).splitlines()), data
    else:
        assert spec.read_pairs(data) == [(str(i), name) for i, name in rows]
    if case == "crlf" and options:
        assert data.startswith(b"id,name\r\n") and data.endswith(b"\r\n"), data
    if case == "empty":  # the shard's one file is valid and holds no row; the manifest lists none
        manifest = json.loads((folder / "_manifest.json").read_text())
        assert (manifest["total_rows"], manifest["files"], run.summary["files"]) == (0, [], 0), manifest
    if case in spec.newlines or case == "crlf":  # and the format's parser reads exactly those rows back
        reader = {**parser_of(fmt), **(options if case == "cr" else {})}  # lines ended by CR: the parser is told so too
        assert_rows(ctx.run(file_in(files[0], reader)).ok().rows, as_dicts(rows))
    if case == "cr":  # read without newline: CR, the file fails naming the option, never with its rows skipped silently
        assert "set the parser's newline: CR" in ctx.run(file_in(files[0], parser_of(fmt))).failed(1)


# ---------------------------------------------------------------- decoders and encoders: files in, jsonl or csv files out


def decoder_case(ctx: Ctx, name: str, case: str) -> None:
    codec = CODECS[name]
    decoders = [{"type": name}]
    if case == "empty":
        path = ctx.file("in/data.bin", codec.compress(b""))
        run = ctx.run(file_in(path, CSV_PARSER, decoders))
        if path.stat().st_size == 0:  # nothing around nothing: the input's rule for a 0-byte file
            assert run.failed(1) == f"error: {path}: the file is empty (0 bytes)"
        else:
            assert run.ok().rows == [] and run.summary["rows_read"] == 0
    elif case == "header_only":
        path = ctx.file("in/data.bin", codec.compress(CSV_HEADER))
        run = ctx.run(file_in(path, CSV_PARSER, decoders)).ok()
        assert run.rows == [] and run.summary["rows_read"] == 0
    elif case == "bad_row":  # line numbers count the decoded lines
        path = ctx.file("in/data.bin", codec.compress(csv_text(with_bad_row(ASCII_ROWS))))
        run = ctx.run(file_in(path, CSV_PARSER, decoders), max_errors=1)
        check_bad_row_skipped(run, str(path), BAD_AT + 2, as_dicts(ASCII_ROWS), run.rows, PARSE_REASON)
    elif case == "truncated":
        data = codec.compress(csv_text(ASCII_ROWS * 50))
        path = ctx.file("in/cut.bin", data[: len(data) - 6])
        message = ctx.run(file_in(path, CSV_PARSER, decoders)).failed(1)
        assert message.startswith(f"error: {path}: {name} stream is truncated"), message
    elif case == "crlf":
        path = ctx.file("in/data.bin", codec.compress(csv_text(ASCII_ROWS, "\r\n")))
        assert_rows(ctx.run(file_in(path, CSV_PARSER, decoders)).ok().rows, as_dicts(ASCII_ROWS))
    elif case == "non_ascii":  # two members or frames, cut inside a character's bytes
        data = csv_text(UNICODE_ROWS)
        path = ctx.file("in/data.bin", codec.compress_split(data, data.index("東".encode()) + 1))
        assert_rows(ctx.run(file_in(path, CSV_PARSER, decoders)).ok().rows, as_dicts(UNICODE_ROWS))
    elif case == "round_trip":
        ctx.once(("codec-round-trip", name), lambda c: codec_round_trip(c, name))
    else:
        raise AssertionError(f"no decoder case {case}")


def codec_round_trip(ctx: Ctx, name: str) -> None:
    """CSV bytes (CRLF, non-ASCII) -> encoder X (file output) -> the same bytes by a decompressor
    independent of the engine -> decoder X (file input) -> formatted the same way: the same bytes."""
    codec = CODECS[name]
    plain = csv_text(UNICODE_ROWS + ASCII_ROWS, "\r\n")
    source = ctx.file("in/plain.csv", plain)
    formatter = {"type": "csv", "newline": "CRLF"}
    out = {"type": "file", "path_prefix": f"{ctx.dir / 'encoded'}/", "formatter": formatter, "encoders": codec.encoders}
    encoding = ctx.run(file_in(source, CSV_PARSER), out).ok()
    [encoded] = sorted((ctx.dir / "encoded" / encoding.job_id).glob("part-*"))
    assert codec.decompress(encoded.read_bytes()) == plain
    decoding = ctx.run(file_in(encoded, CSV_PARSER, [{"type": name}]),
                       {"type": "file", "path_prefix": f"{ctx.dir / 'decoded'}/", "formatter": formatter}).ok()
    assert decoding.summary["bytes_read"] == encoded.stat().st_size
    [decoded] = sorted((ctx.dir / "decoded" / decoding.job_id).glob("part-*"))
    assert decoded.read_bytes() == plain


def encoder_case(ctx: Ctx, name: str, case: str) -> None:
    codec = CODECS[name]
    if case == "round_trip":
        return ctx.once(("codec-round-trip", name), lambda c: codec_round_trip(c, name))
    rows = {"empty": [], "non_ascii": UNICODE_ROWS}[case]
    source = ctx.file("in/data.csv", csv_text(rows))
    out = {"type": "file", "path_prefix": f"{ctx.dir / 'encoded'}/", "formatter": {"type": "csv"}, "encoders": codec.encoders}
    run = ctx.run(file_in(source, CSV_PARSER), out).ok()
    [encoded] = sorted((ctx.dir / "encoded" / run.job_id).glob("part-*"))
    assert codec.decompress(encoded.read_bytes()) == csv_text(rows), "a valid stream of the CSV, its header included"
    assert run.summary["rows_written"] == len(rows)


# ---------------------------------------------------------------- filters: a CSV file in, jsonl files (or a topic) out


def filter_case(ctx: Ctx, name: str, case: str) -> None:
    sample = FILTERS[name]
    filters = [sample.config]
    reason = sample.bad_reason or PARSE_REASON
    if case == "empty":
        run = ctx.run(file_in(ctx.file("in/data.csv", CSV_HEADER), CSV_PARSER), filters=filters).ok()
        assert run.rows == [] and run.summary["rows_read"] == 0
    elif case == "bad_row":
        path = ctx.file("in/data.csv", csv_text(with_bad_row(ASCII_ROWS, sample.bad_row)))
        run = ctx.run(file_in(path, CSV_PARSER), filters=filters, max_errors=1)
        check_bad_row_skipped(run, str(path), BAD_AT + 2, [sample.apply(r) for r in as_dicts(ASCII_ROWS)], run.rows, reason)
    elif case == "bad_row_default":
        path = ctx.file("in/data.csv", csv_text(with_bad_row(ASCII_ROWS, sample.bad_row)))
        run = ctx.run(file_in(path, CSV_PARSER), filters=filters)
        check_bad_row_fails(run, str(path), BAD_AT + 2, reason)
        assert run.out_files() == []
    elif case == "non_ascii":
        run = ctx.run(file_in(ctx.file("in/data.csv", csv_text(UNICODE_ROWS)), CSV_PARSER), filters=filters).ok()
        assert_rows(run.rows, [sample.apply(r) for r in as_dicts(UNICODE_ROWS)])
    elif case == "via_kafka":  # plain and non-ASCII rows and a bad row, CSV into a topic through the filter
        path = ctx.file("in/data.csv", csv_text(with_bad_row(MIXED_ROWS, sample.bad_row)))
        kafka = OUTPUTS["kafka"]
        run = ctx.run(file_in(path, CSV_PARSER), kafka.config(ctx, key=sample.key), filters=filters, max_errors=1)
        good = [sample.apply(r) for r in as_dicts(MIXED_ROWS)]
        check_bad_row_skipped(run, str(path), BAD_AT + 2, unordered(good), kafka.rows(ctx, run, key=sample.key), reason)
    else:
        raise AssertionError(f"no filter case {case}")


# ---------------------------------------------------------------- inputs: where the bytes or records come from


class FileInputDriver:
    """`in: {type: file}` reading the scenario's folder in/."""

    needs_stack = False
    reads_bytes = True

    def put(self, ctx: Ctx, name: str, data: bytes) -> str:
        return str(ctx.file(f"in/{name}", data))

    def config(self, ctx: Ctx, parser: dict[str, Any]) -> dict[str, Any]:
        return file_in(f"{ctx.dir / 'in'}/", parser)

    def empty_message(self, uri: str) -> str:
        return f"error: {uri}: the file is empty (0 bytes)"


class S3InputDriver:
    """`in: {type: s3}` reading the scenario's prefix in the module's bucket."""

    needs_stack = True
    reads_bytes = True

    def put(self, ctx: Ctx, name: str, data: bytes) -> str:
        ctx.s3.put_object(Bucket=ctx.bucket, Key=f"{ctx.prefix}in/{name}", Body=data)
        return f"s3://{ctx.bucket}/{ctx.prefix}in/{name}"

    def config(self, ctx: Ctx, parser: dict[str, Any]) -> dict[str, Any]:
        return {"type": "s3", "bucket": ctx.bucket, "path_prefix": f"{ctx.prefix}in/", "parser": parser}

    def empty_message(self, uri: str) -> str:
        return f"error: {uri}: the object is empty (0 bytes)"


class KafkaInputDriver:
    """`in: {type: kafka}`: a bounded snapshot of a topic of JSON values (records, not bytes: no parser)."""

    needs_stack = True
    reads_bytes = False

    def config(self, ctx: Ctx, topic: str, columns: list[dict[str, Any]] = COLUMNS) -> dict[str, Any]:
        return {"type": "kafka", "brokers": [ctx.bootstrap], "topic": topic, "columns": columns}


INPUTS: dict[str, Any] = {"file": FileInputDriver(), "s3": S3InputDriver(), "kafka": KafkaInputDriver()}


def produce(ctx: Ctx, topic: str, values: list[bytes]) -> None:
    """Records written into partition 0 by a plain producer, as another application writes them."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": ctx.bootstrap, "enable.idempotence": True, "linger.ms": 1})
    for i, value in enumerate(values):
        producer.produce(topic, value, f"k{i}".encode(), partition=0)
    assert producer.flush(30) == 0


def input_case(ctx: Ctx, name: str, case: str) -> None:
    driver = INPUTS[name]
    if case == "round_trip":
        ctx.once(("io-round-trip", name), lambda c: io_round_trip(c, name))
    elif not driver.reads_bytes:
        record_input_case(ctx, name, case)
    elif case == "empty":  # 0 bytes: the input's rule
        uri = driver.put(ctx, "empty.csv", b"")
        assert ctx.run(driver.config(ctx, CSV_PARSER)).failed(1) == driver.empty_message(uri)
    else:  # CSV files through this input
        ctx.once(("read", name, "csv", case), lambda c: read_case(c, name, "csv", case))


def record_input_case(ctx: Ctx, name: str, case: str) -> None:
    driver = INPUTS[name]
    if case == "empty":  # an empty topic: an empty snapshot, a success
        run = ctx.run(driver.config(ctx, ctx.topic())).ok()
        assert run.rows == [] and (run.summary["rows_read"], run.summary["shards"]) == (0, 0)
    elif case == "header_only":  # a topic holding only the end markers of an import of a header-only CSV
        topic = ctx.topic()
        imported = ctx.run(file_in(ctx.file("in/header.csv", CSV_HEADER), CSV_PARSER), OUTPUTS["kafka"].config(ctx, topic)).ok()
        assert imported.summary["end_markers"] == 3
        run = ctx.run(driver.config(ctx, topic)).ok()
        assert run.rows == [] and run.summary["rows_read"] == 0
    elif case in ("bad_row", "bad_row_default", "non_ascii"):
        topic = ctx.topic(1)
        rows = with_bad_row(UNICODE_ROWS, UNICODE_BAD_ROW) if case == "non_ascii" else with_bad_row(ASCII_ROWS)
        values = [json.dumps(dict(zip(NAMES, row)), ensure_ascii=False).encode() for row in rows]
        if case != "non_ascii":
            values[BAD_AT] = b"{not json"
        produce(ctx, topic, values)
        source = f"kafka://{topic}/0#offsets=0-{len(values)}"  # and a record's line is its offset
        if case == "bad_row_default":
            run = ctx.run(driver.config(ctx, topic))
            check_bad_row_fails(run, source, BAD_AT)
            assert run.out_files() == []
            return
        run = ctx.run(driver.config(ctx, topic), max_errors=1)
        good = as_dicts(UNICODE_ROWS if case == "non_ascii" else ASCII_ROWS)
        error = check_bad_row_skipped(run, source, BAD_AT, good, run.rows)
        assert error["raw"] == values[BAD_AT].decode(), error
    else:
        raise AssertionError(f"no input case {case} for {name}")


# ---------------------------------------------------------------- outputs: where the rows go, and how to read them back


class FileOutputDriver:
    needs_stack = False
    round_trip_format: tuple[str, list[dict[str, Any]]] = ("csv", [])

    def config(self, ctx: Ctx, formatter: str = "jsonl", encoders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"type": "file", "path_prefix": f"{ctx.dir / 'written'}/", "formatter": {"type": formatter}, "encoders": encoders or []}

    def files(self, ctx: Ctx, run: Run) -> dict[str, bytes]:
        folder = ctx.dir / "written" / run.job_id
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}

    def rows(self, ctx: Ctx, run: Run) -> list[dict[str, Any]]:
        return [r for name, data in self.files(ctx, run).items() if name.startswith("part-") for r in read_jsonl(data)]

    def nothing_written(self, ctx: Ctx, run: Run) -> None:
        folder = ctx.dir / "written"
        assert not folder.exists() or [p for p in folder.rglob("*") if p.is_file()] == [], "a failed run leaves no file"

    def reader(self, ctx: Ctx, run: Run) -> dict[str, Any]:
        return file_in(ctx.dir / "written" / run.job_id / "part-", {"type": "csv", "columns": TYPED_COLUMNS, "skip_header_lines": 1})


class S3OutputDriver:
    needs_stack = True
    round_trip_format: tuple[str, list[dict[str, Any]]] = ("jsonl", [{"type": "gzip"}])

    def config(self, ctx: Ctx, formatter: str = "jsonl", encoders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"type": "s3", "bucket": ctx.bucket, "path_prefix": f"{ctx.prefix}written/", "formatter": {"type": formatter},
                "encoders": encoders or []}

    def files(self, ctx: Ctx, run: Run) -> dict[str, bytes]:
        prefix = f"{ctx.prefix}written/{run.job_id}/"
        listed = ctx.s3.list_objects_v2(Bucket=ctx.bucket, Prefix=prefix).get("Contents", [])
        return {o["Key"].removeprefix(prefix): ctx.s3.get_object(Bucket=ctx.bucket, Key=o["Key"])["Body"].read() for o in listed}

    def rows(self, ctx: Ctx, run: Run) -> list[dict[str, Any]]:
        return [r for name, data in self.files(ctx, run).items() if name.startswith("part-") for r in read_jsonl(data)]

    def nothing_written(self, ctx: Ctx, run: Run) -> None:
        prefix = f"{ctx.prefix}written/"
        assert ctx.s3.list_objects_v2(Bucket=ctx.bucket, Prefix=prefix).get("Contents", []) == [], "a failed run leaves no object"
        assert ctx.s3.list_multipart_uploads(Bucket=ctx.bucket, Prefix=prefix).get("Uploads", []) == [], "nor an upload"

    def reader(self, ctx: Ctx, run: Run) -> dict[str, Any]:  # gzip JSON lines: the decoder found from the bytes
        return {"type": "s3", "bucket": ctx.bucket, "path_prefix": f"{ctx.prefix}written/{run.job_id}/part-", "parser": TYPED_JSONL_PARSER}


class StdoutOutputDriver:
    needs_stack = False
    round_trip_format: tuple[str, list[dict[str, Any]]] = ("jsonl", [])

    def config(self, ctx: Ctx, formatter: str = "jsonl", encoders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"type": "stdout"}

    def printed(self, run: Run) -> bytes:
        """Every line before the summary, the last line."""
        return run.result.stdout.encode().rpartition(b"\n{")[0] + b"\n"

    def rows(self, ctx: Ctx, run: Run) -> list[dict[str, Any]]:
        return read_jsonl(self.printed(run))

    def nothing_written(self, ctx: Ctx, run: Run) -> None:
        # Printed rows cannot be taken back: the failed summary counts exactly the rows printed.
        assert len(self.rows(ctx, run)) == run.summary["rows_written"]

    def reader(self, ctx: Ctx, run: Run) -> dict[str, Any]:  # what it printed, saved and read as JSON lines
        return file_in(ctx.file("printed/rows.jsonl", self.printed(run)), TYPED_JSONL_PARSER)


class NullOutputDriver:
    """`out: {type: "null"}`: writes nothing, so nothing can be read back (no non_ascii or round_trip
    case): its cases check the summary's counts, the error output, and a stdout holding only the summary."""

    needs_stack = False
    reads_back = False
    round_trip_format: tuple[str, list[dict[str, Any]]] = ("jsonl", [])

    def config(self, ctx: Ctx, formatter: str = "jsonl", encoders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"type": "null"}

    def rows(self, ctx: Ctx, run: Run) -> None:
        assert run.result.stdout.count("\n") == 1, run.result.stdout  # the summary, no row

    def nothing_written(self, ctx: Ctx, run: Run) -> None:
        self.rows(ctx, run)


class KafkaOutputDriver:
    """`out: {type: kafka}` into the scenario's topic (3 partitions), keyed by a string column."""

    needs_stack = True
    round_trip_format: tuple[str, list[dict[str, Any]]] = ("json", [])

    def config(self, ctx: Ctx, topic: str | None = None, key: str = "name", **_: Any) -> dict[str, Any]:
        return {"type": "kafka", "brokers": [ctx.bootstrap], "topic": topic or self.topic(ctx), "key_column_name": key}

    def topic(self, ctx: Ctx) -> str:
        return ctx.topics[0] if ctx.topics else ctx.topic()

    def records(self, ctx: Ctx) -> tuple[list[Any], dict[int, dict[str, Any]]]:
        return rows_and_markers(consume_all(ctx.bootstrap, self.topic(ctx)))

    def rows(self, ctx: Ctx, run: Run, key: str = "name") -> list[dict[str, Any]]:
        """What read_committed consumers see: the rows (in an order of their own), each keyed by its
        key column's UTF-8 bytes, and one end marker a partition counting them."""
        records, markers = self.records(ctx)
        assert sorted(markers) == [0, 1, 2] and {m["job_id"] for m in markers.values()} == {run.job_id}, markers
        assert sum(m["partition_rows"] for m in markers.values()) == len(records) == run.summary["rows_written"], markers
        for msg in records:
            assert msg.key() == json.loads(msg.value())[key].encode(), (msg.key(), msg.value())
        return unordered([json.loads(msg.value()) for msg in records])

    def nothing_written(self, ctx: Ctx, run: Run) -> None:
        assert consume_all(ctx.bootstrap, self.topic(ctx)) == [], "read_committed consumers see nothing of a failed run"

    def reader(self, ctx: Ctx, run: Run) -> dict[str, Any]:
        return INPUTS["kafka"].config(ctx, self.topic(ctx), TYPED_COLUMNS)


OUTPUTS: dict[str, Any] = {"file": FileOutputDriver(), "s3": S3OutputDriver(), "stdout": StdoutOutputDriver(), "kafka": KafkaOutputDriver(),
                         "null": NullOutputDriver()}


def output_case(ctx: Ctx, name: str, case: str) -> None:
    driver = OUTPUTS[name]
    ordered = unordered if name == "kafka" else (lambda rows: rows)
    if case == "empty":
        run = ctx.run(file_in(ctx.file("in/header.csv", CSV_HEADER), CSV_PARSER), driver.config(ctx)).ok()
        assert run.summary["rows_written"] == 0 and driver.rows(ctx, run) in ([], None)
        if name == "kafka":  # only the end markers, counting no row
            assert {m["total_rows"] for m in driver.records(ctx)[1].values()} == {0}
        if hasattr(driver, "files"):  # a complete, empty export: a manifest listing no file
            manifest = json.loads(driver.files(ctx, run)["_manifest.json"])
            assert (manifest["total_rows"], manifest["files"], run.summary["files"]) == (0, [], 0), manifest
        if name == "stdout":
            assert run.result.stdout.count("\n") == 1, run.result.stdout
    elif case in ("bad_row", "crlf"):
        source = ctx.file("in/data.csv", csv_text(with_bad_row(ASCII_ROWS), "\r\n" if case == "crlf" else "\n"))
        run = ctx.run(file_in(source, CSV_PARSER), driver.config(ctx), max_errors=1)
        error = check_bad_row_skipped(run, str(source), BAD_AT + 2, ordered(as_dicts(ASCII_ROWS)), driver.rows(ctx, run), PARSE_REASON)
        assert error["raw"] == ",".join(BAD_ROW), error
    elif case == "bad_row_default":
        source = ctx.file("in/data.csv", csv_text(with_bad_row(ASCII_ROWS)))
        run = ctx.run(file_in(source, CSV_PARSER), driver.config(ctx))
        check_bad_row_fails(run, str(source), BAD_AT + 2, PARSE_REASON)
        driver.nothing_written(ctx, run)
    elif case == "non_ascii":
        run = ctx.run(file_in(ctx.file("in/data.csv", csv_text(UNICODE_ROWS)), CSV_PARSER), driver.config(ctx)).ok()
        assert_rows(driver.rows(ctx, run), ordered(as_dicts(UNICODE_ROWS)))
    elif case == "round_trip":
        ctx.once(("io-round-trip", name), lambda c: io_round_trip(c, name))
    else:
        raise AssertionError(f"no output case {case}")


def io_round_trip(ctx: Ctx, name: str) -> None:
    """Typed rows -> out X -> in X (for stdout: what it printed, read as JSON lines) -> the same rows and types."""
    driver = OUTPUTS[name]
    formatter, encoders = driver.round_trip_format
    source = ctx.file("in/typed.jsonl", jsonl_bytes(TYPED_ROWS))
    written = ctx.run(file_in(source, TYPED_JSONL_PARSER), driver.config(ctx, formatter=formatter, encoders=encoders)).ok()
    assert written.summary["rows_written"] == len(TYPED_ROWS)
    back = ctx.run(driver.reader(ctx, written)).ok()
    if name == "kafka":
        assert_rows(unordered(back.rows), unordered(TYPED_ROWS))
    else:
        assert_rows(back.rows, TYPED_ROWS)


# ---------------------------------------------------------------- what exercises each kind, and what it needs to know of a name

EXERCISE: dict[str, Callable[[Ctx, str, str], None]] = {
    "in": input_case,
    "decoder": decoder_case,
    "parser": parser_case,
    "filter": filter_case,
    "out": output_case,
    "formatter": formatter_case,
    "encoder": encoder_case,
}

KNOWN: dict[str, tuple[dict[str, Any], str]] = {
    "in": (INPUTS, "an input driver in INPUTS (how to put data where it reads, and its config)"),
    "decoder": (CODECS, "a Codec in CODECS (how to compress and decompress it without the engine, and the encoders that write it)"),
    "parser": (FORMATS, "a Format in FORMATS (a sample writer for the format, independent of the engine, and its parser options)"),
    "filter": (FILTERS, "a FilterSample in FILTERS (a config of the filter and what it does to a row)"),
    "out": (OUTPUTS, "an output driver in OUTPUTS (its config, and how to read back what it wrote)"),
    "formatter": (FORMATS, "a Format in FORMATS (a reader of the format independent of the engine)"),
    "encoder": (CODECS, "a Codec in CODECS (a decompressor independent of the engine)"),
}

# (kind, case) -> the names it does not apply to, from what the tables above say of them.
NOT_APPLICABLE: dict[tuple[str, str], Callable[[str], bool]] = {
    ("parser", "crlf"): lambda name: name in FORMATS and not FORMATS[name].text,  # a binary format has no lines
    ("formatter", "crlf"): lambda name: name in FORMATS and not FORMATS[name].text,
    ("formatter", "cr"): lambda name: name in FORMATS and "cr" not in FORMATS[name].newlines,  # no CR option to write
    ("in", "crlf"): lambda name: name in INPUTS and not INPUTS[name].reads_bytes,  # records, not lines
    ("decoder", "truncated"): lambda name: name in CODECS and not CODECS[name].truncates,  # no stream to cut
    ("decoder", "round_trip"): lambda name: name in CODECS and not CODECS[name].encoded,  # nothing writes it
    ("filter", "bad_row_default"): lambda name: name in FILTERS and FILTERS[name].bad_row is None,  # rejects no row itself
    ("out", "non_ascii"): lambda name: name in OUTPUTS and not getattr(OUTPUTS[name], "reads_back", True),  # nothing to read
    ("out", "round_trip"): lambda name: name in OUTPUTS and not getattr(OUTPUTS[name], "reads_back", True),
}


def missing(what: str) -> str:
    return f"tests/test_conformance.py cannot exercise this plugin: {what}"


def cannot_exercise(kind: str, name: str, case: str) -> str | None:
    """Why the suite cannot run this case (the test then fails saying it), or None."""
    if kind not in CASES:
        return missing(f"plugin kind '{kind}' has no cases: add them to CASES and EXERCISE")
    table, what = KNOWN[kind]
    if name not in table:
        return missing(f"the {kind} plugin '{name}' is registered, but nothing here exercises it: add {what}")
    if case == "round_trip" and not (kind in ("decoder", "encoder") and name in CODECS and not CODECS[name].encoders):
        partner = {"parser": "formatter", "formatter": "parser", "in": "out", "out": "in", "decoder": "encoder", "encoder": "decoder"}[kind]
        partner_name = FORMATS[name].formatter or name if kind == "parser" and name in FORMATS else name
        if partner_name not in registry.names(partner) and (kind, name) != ("out", "stdout"):  # stdout's printed rows are read as a file
            return missing(f"the {kind} plugin '{name}' has no {partner} plugin of the same name to round-trip with")
    return None


def needs_stack(kind: str, name: str, case: str) -> bool:
    drivers = {"in": INPUTS, "out": OUTPUTS}.get(kind, {})
    return (name in drivers and drivers[name].needs_stack) or (kind, case) == ("filter", "via_kafka")


def params() -> list[Any]:
    """Every (kind, name, case), from the registry at collection time; those needing the stack first,
    so that it boots while the other scenarios run."""
    found = []
    for kind in registry.KINDS:
        for name in registry.names(kind):
            for case in CASES.get(kind, ("all",)):
                rule = NOT_APPLICABLE.get((kind, case))
                if rule is not None and rule(name):
                    continue
                bug = KNOWN_BUGS.get((kind, name, case))
                marks = [pytest.mark.xfail(strict=True, raises=KnownBug, reason=bug.symptom)] if bug else []
                param = pytest.param(kind, name, case, marks=marks, id=f"{kind}-{name}-{case}")
                found.append((not needs_stack(kind, name, case), param))
    return [param for _, param in sorted(found, key=lambda pair: pair[0])]


# ---------------------------------------------------------------- the pool the scenarios run in


class Lab:
    WORKERS = 4  # subprocesses at once: a run into Kafka waits on the broker (transactions) more than it computes

    def __init__(self, root: Path) -> None:
        self.root = root
        self.session = uuid.uuid4().hex[:6]
        self.pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="conformance")
        self.futures: dict[tuple[str, ...], Future] = {}
        self.lock = threading.Lock()
        self.stack: Any = None
        self.s3: Any = None
        self.bucket = ""

    def submit(self, kind: str, name: str, case: str) -> Future:
        key = (kind, name, case)
        with self.lock:
            if key not in self.futures:
                self.futures[key] = self.pool.submit(lambda: EXERCISE[kind](Ctx(self, key), name, case))
            return self.futures[key]

    def once(self, key: tuple[str, ...], scenario: Callable[[], None]) -> None:
        """Runs `scenario` in the first thread that asks; the others wait for its outcome."""
        with self.lock:
            future, mine = self.futures.get(key), False
            if future is None:
                future, mine = Future(), True
                self.futures[key] = future
        if mine:
            try:
                scenario()
            except BaseException as exc:  # noqa: BLE001 - not swallowed: every test sharing it gets it
                future.set_exception(exc)
            else:
                future.set_result(None)
        future.result()

    def start_stack_scenarios(self, stack: Any, s3: Any, bucket: str, keys: list[tuple[str, str, str]]) -> None:
        if self.stack is None:
            self.stack, self.s3, self.bucket = stack, s3, bucket
            for key in keys:
                if cannot_exercise(*key) is None and needs_stack(*key):
                    self.submit(*key)


def collected(request: pytest.FixtureRequest) -> list[tuple[str, str, str]]:
    """The cases of this module's tests that will run (after -k and the like)."""
    items = [item for item in request.session.items if item.module is request.module and hasattr(item, "callspec")]
    return [(i.callspec.params["kind"], i.callspec.params["name"], i.callspec.params["case"]) for i in items]


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The pool, with the scenarios that need no stack started at once."""
    lab = Lab(tmp_path_factory.mktemp("conformance"))
    try:
        for key in collected(request):
            if cannot_exercise(*key) is None and not needs_stack(*key):
                lab.submit(*key)
        yield lab
    finally:
        lab.pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize(("kind", "name", "case"), params())
def test_plugin_conformance(kind: str, name: str, case: str, lab: Lab, request: pytest.FixtureRequest) -> None:
    why = cannot_exercise(kind, name, case)
    if why is not None:
        pytest.fail(why, pytrace=False)
    if needs_stack(kind, name, case):  # the first such test boots the stack (conftest's fixtures), then starts them all
        stack = request.getfixturevalue("stack")
        lab.start_stack_scenarios(stack, request.getfixturevalue("s3"), request.getfixturevalue("bucket"), collected(request))
    try:
        lab.submit(kind, name, case).result(timeout=240)
    except AssertionError as exc:
        bug = KNOWN_BUGS.get((kind, name, case))
        if bug is not None and re.search(bug.match, str(exc)):
            raise KnownBug(f"{bug.symptom}\n{exc}") from exc
        raise
