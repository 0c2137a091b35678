"""Reading local files end to end: decoders, CSV and JSONL parsing, charsets, bad rows and their
error output, max_errors / max_error_rate, the run summary, and the column filters.

Each test writes input files and a plain `*.yml` config into tmp_path and runs `pipelines run`
through click's CliRunner, with `out: {type: file}` so the rows written can be read back.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard
from click.testing import CliRunner

from pipelines.engine import textio
from pipelines.cli.main import cli
from pipelines.engine.config import load_job
from pipelines.engine.error_output import ErrorPolicy, ErrorSink
from pipelines.engine.errors import EXIT_CONFIG, EXIT_RUN_FAILED, DataError, RunError
from pipelines.engine.progress import RunStats
from pipelines.engine.read import preview_rows
from pipelines.engine.run import run_shard, write_plan

JOB_ID = "job-1"

ID_NAME = [{"name": "id", "type": "long"}, {"name": "name"}]


def run_job(job: Any, job_id: str, stats: RunStats, errors: ErrorSink) -> None:
    """Plans the job (one shard here) and runs its shard in this process, as `pipelines run` does."""
    plan_uri = str(Path(job.exec.work_dir) / job_id / "plan.json")
    run_shard(job, write_plan(job, job_id, plan_uri), plan_uri, 0, stats, errors)


def csv_parser(columns: list[dict[str, Any]] | None = None, **options: Any) -> dict[str, Any]:
    return {"type": "csv", "columns": columns or ID_NAME, **options}


def jsonl_parser(columns: list[dict[str, Any]] | None = None, **options: Any) -> dict[str, Any]:
    return {"type": "jsonl", "columns": columns or ID_NAME, **options}


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    folder: Path
    inputs: dict[str, Path] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        """The JSON summary: the last line of stdout."""
        return json.loads(self.stdout.splitlines()[-1])

    @property
    def output_path(self) -> Path:
        return self.folder / "out" / JOB_ID / "part-00000-00000.jsonl"

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output_path.read_text(encoding="utf-8").splitlines()]

    @property
    def error_path(self) -> Path:
        return self.folder / "errors" / f"{JOB_ID}.shard-00000.errors.jsonl"

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The records of the error output (where the summary says it is, else the default place)."""
        path = Path((self.summary.get("error_outputs") or [self.error_path])[0]) if self.stdout else self.error_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def source(self, name: str = "data.csv") -> str:
        return str(self.inputs[name])


def write_job(
    folder: Path,
    files: dict[str, bytes] | bytes,
    parser: dict[str, Any],
    *,
    filters: list[dict[str, Any]] | None = None,
    exec_: dict[str, Any] | None = None,
    decoders: list[dict[str, Any]] | None = None,
) -> tuple[Path, dict[str, Path]]:
    """Writes the input files under folder/in/ and a config reading them all; returns (config, inputs)."""
    if isinstance(files, bytes):
        files = {"data.csv": files}
    inputs = {}
    (folder / "in").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        inputs[name] = folder / "in" / name
        inputs[name].write_bytes(data)
    config: dict[str, Any] = {
        "in": {"type": "file", "path_prefix": f"{folder / 'in'}/", "parser": parser},
        "out": {"type": "file", "path_prefix": f"{folder / 'out'}/", "file_ext": "jsonl"},
        "exec": {"error_output": f"{folder / 'errors'}/", "work_dir": str(folder / "work"), **(exec_ or {})},
    }
    if decoders is not None:
        config["in"]["decoders"] = decoders
    if filters is not None:
        config["filters"] = filters
    path = folder / "job.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path, inputs


def run(folder: Path, files: dict[str, bytes] | bytes, parser: dict[str, Any], **kwargs: Any) -> Run:
    path, inputs = write_job(folder, files, parser, **kwargs)
    result = CliRunner().invoke(cli, ["run", str(path), "--job-id", JOB_ID])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    done = Run(result.exit_code, result.stdout, result.stderr, folder, inputs)
    if done.exit_code == 0:
        s = done.summary
        assert s["status"] == "succeeded"
        assert s["rows_read"] == s["rows_written"] + s["rows_skipped"], s
        assert s["rows_written"] == len(done.rows)
        assert s["rows_skipped"] == len(done.errors)
    return done


def ok(folder: Path, files: dict[str, bytes] | bytes, parser: dict[str, Any], **kwargs: Any) -> Run:
    done = run(folder, files, parser, **kwargs)
    assert done.exit_code == 0, (done.stdout, done.stderr)
    return done


def failed(folder: Path, files: dict[str, bytes] | bytes, parser: dict[str, Any], **kwargs: Any) -> Run:
    """A run that fails (exit 1): one `error:` line on stderr, a failed summary, and no output file."""
    done = run(folder, files, parser, **kwargs)
    assert done.exit_code == EXIT_RUN_FAILED, (done.stdout, done.stderr)
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.summary["status"] == "failed"
    assert done.summary["error"] in error_lines[0]
    assert not (folder / "out").exists() or list((folder / "out").iterdir()) == [], "a failed run leaves no file"
    return done


def error_message(done: Run) -> str:
    return next(line for line in done.stderr.splitlines() if line.startswith("error: "))


# ---------------------------------------------------------------- CSV options


@pytest.mark.parametrize(
    ("options", "data", "names"),
    [
        ({}, b'1,"a,b"\n2,"say ""hi"""\n', ["a,b", 'say "hi"']),
        ({"delimiter": ";"}, b'1;a,b\n2;"x;y"\n', ["a,b", "x;y"]),
        ({"delimiter": "\t"}, b"1\ta b,c\n2\t\"t\tab\"\n", ["a b,c", "t\tab"]),
        ({"quote": "'"}, b"1,'a,b'\n2,'it''s'\n3,\"q\"\n", ["a,b", "it's", '"q"']),
        ({"escape": "\\"}, b'1,"a\\"b"\n2,"c""d"\n', ['a"b', 'c"d']),
        ({"quote": "", "escape": "\\"}, b'1,"a"\n2,b\\,c\n', ['"a"', "b,c"]),
    ],
    ids=["default", "semicolon", "tab", "single-quote", "backslash-escape", "no-quote"],
)
def test_csv_delimiter_quote_escape(tmp_path: Path, options: dict[str, Any], data: bytes, names: list[str]) -> None:
    done = ok(tmp_path, data, csv_parser(**options))

    assert done.rows == [{"id": i + 1, "name": n} for i, n in enumerate(names)]


def test_csv_skip_header_lines_counts_the_header_in_line_numbers(tmp_path: Path) -> None:
    data = b"# exported 2026-11-22\nid,name\n1,a\nx,b\n3,c\n"

    done = ok(tmp_path, data, csv_parser(skip_header_lines=2), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "a"}, {"id": 3, "name": "c"}]
    assert done.errors == [
        {"source": done.source(), "line": 4, "reason": "column 'id' (long): cannot parse 'x'", "raw": "x,b"}
    ]
    assert done.summary["rows_read"] == 3  # header lines are not rows


def test_csv_file_with_only_a_header(tmp_path: Path) -> None:
    done = ok(tmp_path, b"id,name\n", csv_parser(skip_header_lines=1))

    assert done.rows == []
    assert done.summary["rows_read"] == 0


ALL_TYPES = [
    {"name": "s", "type": "string"},
    {"name": "l", "type": "long"},
    {"name": "d", "type": "double"},
    {"name": "b", "type": "boolean"},
    {"name": "t", "type": "timestamp"},
    {"name": "tf", "type": "timestamp", "format": "%d/%m/%Y %H:%M"},
    {"name": "j", "type": "json"},
]


def test_csv_every_column_type(tmp_path: Path) -> None:
    data = (
        b's,l,d,b,t,tf,j\n'
        b'hello,42,1.5,true,2024-01-02T03:04:05,02/01/2024 10:30,"{""k"": [1, 2]}"\n'
        b'0042,-7,1e3,No,2024-01-02 03:04:05+02:00,31/12/1999 23:59,"[true, null]"\n'
        b' x ,0,-0.25,Y,2024-01-02,01/01/2000 00:00,"""text"""\n'
    )

    done = ok(tmp_path, data, csv_parser(ALL_TYPES, skip_header_lines=1))

    assert done.rows == [
        {"s": "hello", "l": 42, "d": 1.5, "b": True, "t": "2024-01-02T03:04:05+00:00", "tf": "2024-01-02T10:30:00+00:00", "j": {"k": [1, 2]}},
        {"s": "0042", "l": -7, "d": 1000.0, "b": False, "t": "2024-01-02T03:04:05+02:00", "tf": "1999-12-31T23:59:00+00:00", "j": [True, None]},
        {"s": " x ", "l": 0, "d": -0.25, "b": True, "t": "2024-01-02T00:00:00+00:00", "tf": "2000-01-01T00:00:00+00:00", "j": "text"},
    ]


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "y", "on", "t"])
def test_csv_boolean_true_words(tmp_path: Path, word: str) -> None:
    done = ok(tmp_path, f"{word}\n".encode(), csv_parser([{"name": "b", "type": "boolean"}]))
    assert done.rows == [{"b": True}]


@pytest.mark.parametrize("word", ["false", "False", "0", "no", "n", "off", "f"])
def test_csv_boolean_false_words(tmp_path: Path, word: str) -> None:
    done = ok(tmp_path, f"{word}\n".encode(), csv_parser([{"name": "b", "type": "boolean"}]))
    assert done.rows == [{"b": False}]


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ({"name": "v", "type": "long"}, "1.5"),
        ({"name": "v", "type": "long"}, "12abc"),
        ({"name": "v", "type": "double"}, "1,5"),
        ({"name": "v", "type": "boolean"}, "maybe"),
        ({"name": "v", "type": "timestamp"}, "yesterday"),
        ({"name": "v", "type": "timestamp", "format": "%Y-%m-%d"}, "2024/01/02"),
        ({"name": "v", "type": "json"}, "{not json"),
    ],
)
def test_csv_value_that_does_not_parse_is_a_bad_row(tmp_path: Path, column: dict[str, Any], text: str) -> None:
    data = f'v\nok-row-placeholder\n"{text}"\n'.encode()
    good = {"long": "5", "double": "2.5", "boolean": "true", "json": "1"}.get(column["type"], "2024-01-02")

    done = ok(tmp_path, data.replace(b"ok-row-placeholder", good.encode()), csv_parser([column], skip_header_lines=1), exec_={"max_errors": 1})

    assert len(done.rows) == 1
    assert done.errors == [
        {
            "source": done.source(),
            "line": 3,
            "reason": f"column 'v' ({column['type']}): cannot parse {text!r}",
            "raw": f'"{text}"',
        }
    ]


@pytest.mark.parametrize("text", ["9223372036854775808", "-9223372036854775809", "99999999999999999999"])
def test_csv_long_outside_64_bits_is_a_bad_row(tmp_path: Path, text: str) -> None:
    data = f"9223372036854775807,max\n-9223372036854775808,min\n{text},big\n".encode()

    done = ok(tmp_path, data, csv_parser(), exec_={"max_errors": 1})

    assert done.rows == [{"id": 2**63 - 1, "name": "max"}, {"id": -(2**63), "name": "min"}]
    assert [(e["line"], e["reason"]) for e in done.errors] == [(3, f"column 'id' (long): cannot parse {text!r}")]


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity", "1e400"])
def test_csv_double_that_json_cannot_hold_is_a_bad_row_not_a_null(tmp_path: Path, text: str) -> None:
    columns = [{"name": "id", "type": "long"}, {"name": "d", "type": "double"}]

    done = ok(tmp_path, f"1,-1.5e300\n2,{text}\n".encode(), csv_parser(columns), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "d": -1.5e300}]
    assert [(e["line"], e["reason"]) for e in done.errors] == [(2, f"column 'd' (double): cannot parse {text!r}")]


def test_csv_null_string(tmp_path: Path) -> None:
    data = b"1,NULL,x\nNULL,b,NULL\n3,null,\n"
    columns = [{"name": "id", "type": "long"}, {"name": "name"}, {"name": "other"}]

    done = ok(tmp_path, data, csv_parser(columns, null_string="NULL"))

    assert done.rows == [
        {"id": 1, "name": None, "other": "x"},
        {"id": None, "name": "b", "other": None},
        {"id": 3, "name": "null", "other": ""},  # only the exact null_string is null
    ]


def test_csv_without_null_string_keeps_the_text(tmp_path: Path) -> None:
    done = ok(tmp_path, b"1,NULL\n", csv_parser())

    assert done.rows == [{"id": 1, "name": "NULL"}]


def test_csv_empty_field_is_null_for_non_string_columns(tmp_path: Path) -> None:
    columns = [{"name": "s"}, *[c for c in ALL_TYPES if c["name"] != "s"]]

    done = ok(tmp_path, b',,,,,,\n"",,"","",,,""\n', csv_parser(columns))

    empty = {"s": "", "l": None, "d": None, "b": None, "t": None, "tf": None, "j": None}
    assert done.rows == [empty, empty]


def test_csv_allow_extra_columns(tmp_path: Path) -> None:
    done = ok(tmp_path, b"1,a,extra,more\n2,b\n", csv_parser(allow_extra_columns=True))

    assert done.rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_csv_extra_columns_are_bad_rows_when_not_allowed(tmp_path: Path) -> None:
    done = ok(tmp_path, b"1,a\n2,b,extra\n3,c\n", csv_parser(), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "a"}, {"id": 3, "name": "c"}]
    assert done.errors == [{"source": done.source(), "line": 2, "reason": "expected 2 columns, got 3", "raw": "2,b,extra"}]


def test_csv_allow_optional_columns(tmp_path: Path) -> None:
    columns = [{"name": "id", "type": "long"}, {"name": "name"}, {"name": "score", "type": "double"}]

    done = ok(tmp_path, b"1\n2,b\n3,c,1.5\n", csv_parser(columns, allow_optional_columns=True))

    assert done.rows == [
        {"id": 1, "name": None, "score": None},
        {"id": 2, "name": "b", "score": None},
        {"id": 3, "name": "c", "score": 1.5},
    ]


def test_csv_missing_columns_are_bad_rows_when_not_optional(tmp_path: Path) -> None:
    columns = [{"name": "id", "type": "long"}, {"name": "name"}, {"name": "score", "type": "double"}]

    done = ok(tmp_path, b"1,a,0.5\n2,b\n", csv_parser(columns), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "a", "score": 0.5}]
    assert done.errors == [{"source": done.source(), "line": 2, "reason": "expected 3 columns, got 2", "raw": "2,b"}]


def test_csv_wrong_column_count_fails_by_default(tmp_path: Path) -> None:
    done = failed(tmp_path, b"1,a\n2,b,c\n", csv_parser())

    message = error_message(done)
    assert f"first: {done.source()} line 2: expected 2 columns, got 3" in message


def test_csv_quoted_newlines_and_crlf(tmp_path: Path) -> None:
    data = b'id,name\r\n1,"two\r\nlines"\r\n2,"three\n\nlines"\r\n3,plain\r\nbad,row\r\n'

    done = ok(tmp_path, data, csv_parser(skip_header_lines=1), exec_={"max_errors": 1})

    assert done.rows == [
        {"id": 1, "name": "two\r\nlines"},
        {"id": 2, "name": "three\n\nlines"},
        {"id": 3, "name": "plain"},  # no \r left over from the CRLF
    ]
    # physical lines: 1 header, 2-3 row 1, 4-6 row 2, 7 row 3, 8 the bad row
    assert done.errors == [{"source": done.source(), "line": 8, "reason": "column 'id' (long): cannot parse 'bad'", "raw": "bad,row"}]


def test_csv_bad_multi_line_row_is_reported_at_its_first_line_with_all_its_text(tmp_path: Path) -> None:
    data = b'1,a\nx,"b\nc"\n3,d\n'

    done = ok(tmp_path, data, csv_parser(), exec_={"max_errors": 1})

    assert [r["id"] for r in done.rows] == [1, 3]
    assert done.errors == [{"source": done.source(), "line": 2, "reason": "column 'id' (long): cannot parse 'x'", "raw": 'x,"b\nc"'}]


def test_csv_blank_lines_are_skipped_not_rows(tmp_path: Path) -> None:
    data = b"id,name\n\n1,a\n\n\n2,b\r\n\r\nx,c\n\n"

    done = ok(tmp_path, data, csv_parser(skip_header_lines=1), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert done.summary["rows_read"] == 3
    assert [e["line"] for e in done.errors] == [8]


def test_csv_last_line_without_newline(tmp_path: Path) -> None:
    done = ok(tmp_path, b"1,a\n2,b", csv_parser())

    assert done.rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_csv_unterminated_quote_is_a_bad_row(tmp_path: Path) -> None:
    done = ok(tmp_path, b'1,a\n2,"never closed\n3,c\n', csv_parser(), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "a"}]
    [error] = done.errors
    assert error["line"] == 2
    assert error["reason"].startswith("malformed CSV:")
    assert error["raw"] == '2,"never closed\n3,c'


def test_csv_utf8_byte_order_mark_is_not_part_of_the_first_field(tmp_path: Path) -> None:
    done = ok(tmp_path, b"\xef\xbb\xbfu1,a\nu2,b\n", csv_parser([{"name": "user_id"}, {"name": "name"}]))

    assert done.rows == [{"user_id": "u1", "name": "a"}, {"user_id": "u2", "name": "b"}]


# ---------------------------------------------------------------- JSONL


def test_jsonl_picks_and_types_the_columns(tmp_path: Path) -> None:
    data = (
        b'{"id": 1, "name": "a", "unused": {"deep": 1}, "t": "2024-01-02T03:04:05Z", "ok": true, "d": 2, "j": {"x": [1]}}\n'
        b"\n"
        b'{"id": 2.0, "name": 5, "ok": "yes", "d": "2.5", "j": [1, "two"]}\r\n'
        b'{"name": false}\n'
    )
    columns = [
        {"name": "id", "type": "long"},
        {"name": "name"},
        {"name": "t", "type": "timestamp"},
        {"name": "ok", "type": "boolean"},
        {"name": "d", "type": "double"},
        {"name": "j", "type": "json"},
    ]

    done = ok(tmp_path, data, jsonl_parser(columns))

    assert done.rows == [
        {"id": 1, "name": "a", "t": "2024-01-02T03:04:05+00:00", "ok": True, "d": 2.0, "j": {"x": [1]}},
        {"id": 2, "name": "5", "t": None, "ok": True, "d": 2.5, "j": [1, "two"]},
        {"id": None, "name": "false", "t": None, "ok": None, "d": None, "j": None},
    ]
    assert done.summary["rows_read"] == 3  # the blank line is not a row


def test_jsonl_invalid_json_and_non_object_lines_are_bad_rows(tmp_path: Path) -> None:
    data = b'{"id": 1}\n{"id": 2,\n[1, 2]\n"text"\n42\nnull\n{"id": 7}\n'

    done = ok(tmp_path, data, jsonl_parser(), exec_={"max_errors": 10})

    assert done.rows == [{"id": 1, "name": None}, {"id": 7, "name": None}]
    errors = done.errors
    assert [(e["line"], e["raw"]) for e in errors] == [(2, '{"id": 2,'), (3, "[1, 2]"), (4, '"text"'), (5, "42"), (6, "null")]
    assert errors[0]["reason"].startswith("invalid JSON: ")
    assert [e["reason"] for e in errors[1:]] == [
        "expected a JSON object, got list",
        "expected a JSON object, got str",
        "expected a JSON object, got int",
        "expected a JSON object, got NoneType",
    ]
    assert {e["source"] for e in errors} == {done.source()}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ({"name": "v", "type": "long"}, "1.5"),
        ({"name": "v", "type": "long"}, "18446744073709551615"),
        ({"name": "v", "type": "long"}, "1e19"),
        ({"name": "v", "type": "double"}, '"NaN"'),
        ({"name": "v", "type": "long"}, "true"),
        ({"name": "v", "type": "long"}, '"seven"'),
        ({"name": "v", "type": "double"}, "false"),
        ({"name": "v", "type": "string"}, '{"a": 1}'),
        ({"name": "v", "type": "string"}, "[1]"),
        ({"name": "v", "type": "boolean"}, '"maybe"'),
        ({"name": "v", "type": "timestamp"}, "1700000000"),
    ],
)
def test_jsonl_value_of_the_wrong_type_is_a_bad_row(tmp_path: Path, column: dict[str, Any], value: str) -> None:
    line = f'{{"v": {value}}}'

    done = ok(tmp_path, f'{{"v": null}}\n{line}\n'.encode(), jsonl_parser([column]), exec_={"max_errors": 1})

    assert done.rows == [{"v": None}]
    [error] = done.errors
    assert (error["line"], error["raw"]) == (2, line)
    assert error["reason"].startswith(f"column 'v' ({column['type']}): cannot convert ")


# ---------------------------------------------------------------- decoders

BODY = b"".join(b"%d,name-%d\n" % (i, i) for i in range(3000))
BODY_ROWS = [{"id": i, "name": f"name-{i}"} for i in range(3000)]


def gzip_members(data: bytes, parts: int = 1) -> bytes:
    cut = len(data) // parts
    return b"".join(gzip.compress(data[i * cut : (i + 1) * cut if i < parts - 1 else None]) for i in range(parts))


def zstd_frames(data: bytes, parts: int = 1) -> bytes:
    cut = len(data) // parts
    compressor = zstandard.ZstdCompressor()
    return b"".join(compressor.compress(data[i * cut : (i + 1) * cut if i < parts - 1 else None]) for i in range(parts))


@pytest.mark.parametrize(
    ("compressed", "decoders"),
    [
        (gzip_members(BODY), [{"type": "gzip"}]),
        (gzip_members(BODY), None),
        (gzip_members(BODY, 3), [{"type": "gzip"}]),
        (gzip_members(BODY, 3), None),
        (zstd_frames(BODY), [{"type": "zstd"}]),
        (zstd_frames(BODY), None),
        (zstd_frames(BODY, 3), [{"type": "zstd"}]),
        (zstd_frames(BODY, 3), None),
        (BODY, None),
        (BODY, [{"type": "none"}]),
        (BODY, []),
    ],
    ids=[
        "gzip", "gzip-detected", "gzip-multi-member", "gzip-multi-member-detected",
        "zstd", "zstd-detected", "zstd-multi-frame", "zstd-multi-frame-detected",
        "plain-detected", "plain-none", "plain-no-decoders",
    ],
)
def test_decoders(tmp_path: Path, compressed: bytes, decoders: list[dict[str, str]] | None) -> None:
    done = ok(tmp_path, {"data.bin": compressed}, csv_parser(), decoders=decoders)

    assert done.rows == BODY_ROWS
    assert done.summary["bytes_read"] == len(compressed)


def test_zstd_frame_without_content_size(tmp_path: Path) -> None:
    # a streamed frame (no content size in its header), as `zstd` writes from a pipe
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    chunker = compressor.chunker(chunk_size=4096)
    data = b"".join([*chunker.compress(BODY), *chunker.finish()])

    done = ok(tmp_path, {"data.zst": data}, csv_parser())

    assert done.rows == BODY_ROWS


def test_each_file_is_detected_on_its_own(tmp_path: Path) -> None:
    files = {"a.csv": b"1,a\n", "b.csv.gz": gzip.compress(b"2,b\n"), "c.csv.zst": zstd_frames(b"3,c\n")}

    done = ok(tmp_path, files, csv_parser())

    assert done.rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    assert done.summary["objects"] == 3
    assert done.summary["bytes_read"] == sum(len(d) for d in files.values())


@pytest.mark.parametrize(
    ("name", "data", "decoders", "kind"),
    [
        ("data.gz", gzip_members(BODY)[:-20], None, "gzip stream is truncated"),
        ("data.gz", gzip_members(BODY)[:-20], [{"type": "gzip"}], "gzip stream is truncated"),
        ("data.gz", gzip_members(BODY, 2)[: len(gzip_members(BODY, 2)) * 3 // 4], None, "gzip stream is truncated"),
        ("data.zst", zstd_frames(BODY)[:-20], None, "zstd stream is truncated"),
        ("data.zst", zstd_frames(BODY)[:-20], [{"type": "zstd"}], "zstd stream is truncated"),
        ("data.zst", zstd_frames(BODY, 2)[: len(zstd_frames(BODY, 2)) * 3 // 4], None, "zstd stream is truncated"),
        ("data.gz", gzip.compress(BODY)[:10] + b"\x00" * 200, None, "gzip stream is corrupt"),
        ("data.zst", zstd_frames(BODY) + b"trailing garbage", None, "zstd stream is corrupt"),
    ],
    ids=["gzip", "gzip-configured", "gzip-second-member", "zstd", "zstd-configured", "zstd-second-frame", "gzip-corrupt", "zstd-garbage"],
)
def test_truncated_or_corrupt_compression_fails_naming_the_file(tmp_path: Path, name: str, data: bytes, decoders: Any, kind: str) -> None:
    done = failed(tmp_path, {name: data}, csv_parser(), decoders=decoders)

    assert error_message(done).startswith(f"error: {done.source(name)}: {kind}")
    assert not done.error_path.exists()  # a broken file is not a bad row


@pytest.mark.parametrize("compress", [gzip_members, zstd_frames], ids=["gzip", "zstd"])
def test_truncated_compression_is_a_data_error(tmp_path: Path, compress: Any) -> None:
    path, inputs = write_job(tmp_path, {"cut.bin": compress(BODY)[:-10]}, csv_parser())
    errors = ErrorSink(ErrorPolicy(max_errors=0), str(tmp_path / "bad.jsonl"))

    with pytest.raises(DataError) as info:
        run_job(load_job(path), "direct", RunStats(), errors)

    assert info.value.where == str(inputs["cut.bin"])
    assert "truncated" in info.value.message
    assert info.value.exit_code == EXIT_RUN_FAILED


def test_truncated_file_fails_even_after_good_files(tmp_path: Path) -> None:
    files = {"a.csv.gz": gzip.compress(b"1,a\n"), "b.csv.gz": gzip.compress(BODY)[:-8]}

    done = failed(tmp_path, files, csv_parser())

    assert f"error: {done.source('b.csv.gz')}: gzip stream is truncated" in done.stderr


def test_gzip_decoder_on_a_plain_file_fails_naming_the_file(tmp_path: Path) -> None:
    done = failed(tmp_path, {"plain.csv": BODY}, csv_parser(), decoders=[{"type": "gzip"}])

    assert error_message(done).startswith(f"error: {done.source('plain.csv')}: gzip stream is")


def test_empty_file_fails_naming_the_file(tmp_path: Path) -> None:
    done = failed(tmp_path, {"a.csv": b"1,a\n", "empty.csv": b""}, csv_parser())

    assert error_message(done) == f"error: {done.source('empty.csv')}: the file is empty (0 bytes)"


# ---------------------------------------------------------------- input and output files


def test_path_match_pattern_selects_files(tmp_path: Path) -> None:
    path, _ = write_job(tmp_path, {"a.csv": b"1,a\n", "b.txt": b"2,b\n", "c.csv": b"3,c\n"}, csv_parser())
    config = yaml.safe_load(path.read_text())
    config["in"]["path_match_pattern"] = r"\.csv$"
    path.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(cli, ["run", str(path), "--job-id", JOB_ID])

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["objects"] == 2
    rows = [json.loads(line) for line in (tmp_path / "out" / JOB_ID / "part-00000-00000.jsonl").read_text().splitlines()]
    assert rows == [{"id": 1, "name": "a"}, {"id": 3, "name": "c"}]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("no-such-folder/data_", "folder '{folder}/no-such-folder' does not exist"), ("in/nothing_", "no file matches")],
)
def test_missing_input_fails_before_writing(tmp_path: Path, prefix: str, expected: str) -> None:
    path, _ = write_job(tmp_path, {"a.csv": b"1,a\n"}, csv_parser())
    config = yaml.safe_load(path.read_text())
    config["in"]["path_prefix"] = str(tmp_path / prefix)
    path.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(cli, ["run", str(path), "--job-id", JOB_ID])

    assert result.exit_code == EXIT_RUN_FAILED
    assert f"error: path_prefix {tmp_path / prefix}: {expected.format(folder=tmp_path)}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_output_file_that_cannot_be_created_is_a_run_error(tmp_path: Path) -> None:
    path, _ = write_job(tmp_path, {"a.csv": b"1,a\n"}, csv_parser())
    (tmp_path / "blocker").write_text("a file, not a folder")
    config = yaml.safe_load(path.read_text())
    config["out"]["path_prefix"] = f"{tmp_path / 'blocker' / 'rows'}/"
    path.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(cli, ["run", str(path), "--job-id", JOB_ID])

    assert result.exit_code == EXIT_RUN_FAILED, result.exception
    created = tmp_path / "blocker" / "rows" / JOB_ID / "part-00000-00000.jsonl"
    assert result.stderr.splitlines()[-1].startswith(f"error: {created}: cannot create the output file: ")
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "failed"


def test_error_output_that_cannot_be_written_is_a_run_error(tmp_path: Path) -> None:
    path, _ = write_job(tmp_path, {"a.csv": b"1,a\nbroken\n"}, csv_parser())
    (tmp_path / "blocker").write_text("a file, not a folder")
    config = yaml.safe_load(path.read_text())
    config["exec"].update({"error_output": str(tmp_path / "blocker" / "errors") + "/", "max_errors": 5})
    path.write_text(yaml.safe_dump(config))

    result = CliRunner().invoke(cli, ["run", str(path), "--job-id", JOB_ID])

    assert result.exit_code == EXIT_RUN_FAILED, result.exception
    expected = f"error: {tmp_path / 'blocker' / 'errors' / JOB_ID}.shard-00000.errors.jsonl: cannot write the error output: "
    assert result.stderr.splitlines()[-1].startswith(expected)


# ---------------------------------------------------------------- charsets


def test_invalid_utf8_is_a_bad_row_naming_file_and_line(tmp_path: Path) -> None:
    data = b"id,name\n1,ok\n2,caf\xe9\n3,fine\n"

    done = ok(tmp_path, data, csv_parser(skip_header_lines=1), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "ok"}, {"id": 3, "name": "fine"}]
    assert done.errors == [
        {
            "source": done.source(),
            "line": 3,
            "reason": "bytes are not valid utf-8 (invalid continuation byte at byte 6 of the line)",
            "raw": "2,caf\\xe9",
        }
    ]
    assert done.summary["rows_read"] == 3


def test_invalid_utf8_in_jsonl(tmp_path: Path) -> None:
    data = b'{"id": 1}\n{"id": 2, "name": "\xff\xfe"}\n{"id": 3}\n'

    done = ok(tmp_path, data, jsonl_parser(), exec_={"max_errors": 1})

    assert [r["id"] for r in done.rows] == [1, 3]
    [error] = done.errors
    assert (error["line"], error["raw"]) == (2, '{"id": 2, "name": "\\xff\\xfe"}')
    assert error["reason"].startswith("bytes are not valid utf-8")


def test_invalid_utf8_in_the_header_is_still_counted(tmp_path: Path) -> None:
    done = ok(tmp_path, b"id,n\xe4me\n1,a\n", csv_parser(skip_header_lines=1), exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "a"}]
    assert [(e["line"], e["raw"]) for e in done.errors] == [(1, "id,n\\xe4me")]


def test_invalid_utf8_fails_the_run_by_default(tmp_path: Path) -> None:
    done = failed(tmp_path, b"1,a\n2,caf\xe9\n", csv_parser())

    message = error_message(done)
    assert f"first: {done.source()} line 2: bytes are not valid utf-8" in message
    assert done.errors[0]["raw"] == "2,caf\\xe9"


def test_first_bad_row_is_named_even_when_a_later_line_has_bad_bytes(tmp_path: Path) -> None:
    done = failed(tmp_path, b"1,a\nx,b\n3,caf\xe9\n", csv_parser())

    assert f"first: {done.source()} line 2: column 'id' (long): cannot parse 'x'" in error_message(done)


def test_bad_rows_are_written_in_line_order(tmp_path: Path) -> None:
    data = b"1,a\nx,b\n3,caf\xe9\n4,c,extra\n5,\xff\n6,ok\n"

    done = ok(tmp_path, data, csv_parser(), exec_={"max_errors": 10})

    assert [e["line"] for e in done.errors] == [2, 3, 4, 5]
    assert [r["id"] for r in done.rows] == [1, 6]


def test_charset_latin1(tmp_path: Path) -> None:
    data = "id,name\n1,café\n2,Ørsted\n".encode("latin-1")

    done = ok(tmp_path, data, csv_parser(skip_header_lines=1, charset="latin-1"))

    assert done.rows == [{"id": 1, "name": "café"}, {"id": 2, "name": "Ørsted"}]


def test_charset_latin1_jsonl(tmp_path: Path) -> None:
    done = ok(tmp_path, '{"id": 1, "name": "naïve"}\n'.encode("latin-1"), jsonl_parser(charset="ISO-8859-1"))

    assert done.rows == [{"id": 1, "name": "naïve"}]


@pytest.mark.parametrize("chunk_bytes", [1, 5, 64])
def test_line_numbers_and_raw_text_across_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int) -> None:
    monkeypatch.setattr(textio, "CHUNK_BYTES", chunk_bytes)  # many chunk boundaries in a small file
    data = b'id,name\n1,"multi\nline"\n2,caf\xe9\n\nbad,row\n4,"ab""c"\n5,end'

    done = ok(tmp_path, gzip.compress(data), csv_parser(skip_header_lines=1), exec_={"max_errors": 5})

    assert done.rows == [{"id": 1, "name": "multi\nline"}, {"id": 4, "name": 'ab"c'}, {"id": 5, "name": "end"}]
    assert [(e["line"], e["raw"]) for e in done.errors] == [(4, "2,caf\\xe9"), (6, "bad,row")]


# ---------------------------------------------------------------- bad rows, thresholds, summary

THREE_BAD = b"id,name\n1,a\nx,b\n3,c\n4,d,e\n5,e\n6\n7,g\n"  # bad on lines 3, 5 and 7 of 8


def test_error_output_records(tmp_path: Path) -> None:
    done = ok(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1), exec_={"max_errors": 3})

    src = done.source()
    assert done.errors == [
        {"source": src, "line": 3, "reason": "column 'id' (long): cannot parse 'x'", "raw": "x,b"},
        {"source": src, "line": 5, "reason": "expected 2 columns, got 3", "raw": "4,d,e"},
        {"source": src, "line": 7, "reason": "expected 2 columns, got 1", "raw": "6"},
    ]
    assert done.summary["error_outputs"] == [str(done.error_path)]
    assert (done.summary["rows_read"], done.summary["rows_written"], done.summary["rows_skipped"]) == (7, 4, 3)
    assert f"warning: 3 bad row(s) skipped, written to {done.error_path}" in done.stderr


def test_error_output_to_a_file_path(tmp_path: Path) -> None:
    target = tmp_path / "bad-rows.jsonl"

    done = ok(tmp_path, b"1,a\nx,b\n", csv_parser(), exec_={"max_errors": 1, "error_output": str(target)})

    written = tmp_path / "bad-rows.shard-00000.jsonl"  # one file a shard
    assert done.summary["error_outputs"] == [str(written)]
    assert [json.loads(line)["line"] for line in written.read_text().splitlines()] == [2]


def test_no_error_file_when_there_is_no_bad_row(tmp_path: Path) -> None:
    done = ok(tmp_path, b"1,a\n", csv_parser())

    assert done.summary["error_outputs"] == []
    assert not (tmp_path / "errors").exists()


def test_max_errors_default_fails_at_the_first_bad_row(tmp_path: Path) -> None:
    done = failed(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1))

    message = error_message(done)
    assert message.startswith("error: 1 bad row(s), more than max_errors 0;")
    assert f"first: {done.source()} line 3: column 'id' (long): cannot parse 'x'" in message
    assert f"all written to {done.error_path}" in message
    assert [e["line"] for e in done.errors] == [3]  # what it stopped at is kept, not lost


def test_max_errors_lets_that_many_through(tmp_path: Path) -> None:
    done = ok(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1), exec_={"max_errors": 3})

    assert [r["id"] for r in done.rows] == [1, 3, 5, 7]


def test_one_more_than_max_errors_fails(tmp_path: Path) -> None:
    done = failed(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1), exec_={"max_errors": 2})

    message = error_message(done)
    assert message.startswith("error: 3 bad row(s), more than max_errors 2;")
    assert f"first: {done.source()} line 3:" in message
    assert [e["line"] for e in done.errors] == [3, 5, 7]


def test_max_error_rate_under_the_rate_succeeds(tmp_path: Path) -> None:
    done = ok(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1), exec_={"max_error_rate": 0.5})

    assert len(done.errors) == 3 and len(done.rows) == 4  # 3/7 < 50%


def test_max_error_rate_over_the_rate_fails(tmp_path: Path) -> None:
    done = failed(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1), exec_={"max_error_rate": 0.4})

    message = error_message(done)
    assert "3 bad row(s) of 7" in message and "max_error_rate 40.0000%" in message
    assert f"first: {done.source()} line 3:" in message
    assert len(done.errors) == 3


def test_max_errors_and_max_error_rate_together(tmp_path: Path) -> None:
    done = failed(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1), exec_={"max_errors": 1, "max_error_rate": 0.9})

    assert "more than max_errors 1" in error_message(done)


def test_failed_run_reports_a_summary_on_stdout(tmp_path: Path) -> None:
    done = failed(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1))

    summary = done.summary
    assert summary["job_id"] == JOB_ID
    assert summary["rows_skipped"] == 1
    assert summary["error_outputs"] == [str(done.error_path)]


@pytest.mark.parametrize("batch_rows", [1, 2, 10_000])
def test_summary_adds_up_whatever_the_batch_size(tmp_path: Path, batch_rows: int) -> None:
    data = b"id,name\n" + b"".join(b"%d,n\n" % i if i % 3 else b"bad,n\n" for i in range(1, 20)) + b"\n\n"
    filters = [{"type": "validate", "columns": [{"name": "id", "regex": "^1"}]}]

    done = ok(tmp_path, data, csv_parser(skip_header_lines=1), filters=filters, exec_={"max_errors": 100, "batch_rows": batch_rows})

    summary = done.summary
    kept = [i for i in range(1, 20) if i % 3 and str(i).startswith("1")]
    assert summary["rows_read"] == 19
    assert summary["rows_written"] == len(kept)
    assert summary["rows_read"] == summary["rows_written"] + summary["rows_skipped"]
    assert [r["id"] for r in done.rows] == kept
    # row i is on line i + 1; every row not kept is in the error output, once
    assert sorted(e["line"] for e in done.errors) == [i + 1 for i in range(1, 20) if i not in kept]


def test_summary_is_the_last_line_of_stdout_as_json(tmp_path: Path) -> None:
    done = ok(tmp_path, b"1,a\n2,b\n", csv_parser())

    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["job_id"] == JOB_ID
    assert (summary["rows_read"], summary["rows_written"], summary["rows_skipped"], summary["objects"]) == (2, 2, 0, 1)
    assert summary["bytes_read"] == 8


# ---------------------------------------------------------------- filters

USERS = b"id,name,country\n10,ann,FR\n11,,DE\n12,cy,US\n5,dee,FR\n13,eve,\n"
USER_COLUMNS = [{"name": "id", "type": "long"}, {"name": "name"}, {"name": "country"}]


def test_rename_remove_keep_columns(tmp_path: Path) -> None:
    filters = [
        {"type": "rename", "columns": {"name": "user", "country": "cc"}},
        {"type": "remove_columns", "remove": ["cc"]},
        {"type": "keep_columns", "keep": ["user", "id"]},
    ]

    done = ok(tmp_path, USERS, csv_parser(USER_COLUMNS, skip_header_lines=1), filters=filters)

    assert [list(r.items()) for r in done.rows][:2] == [[("user", "ann"), ("id", 10)], [("user", ""), ("id", 11)]]
    assert len(done.rows) == 5


def test_keep_a_single_column(tmp_path: Path) -> None:
    done = ok(tmp_path, USERS, csv_parser(USER_COLUMNS, skip_header_lines=1), filters=[{"type": "keep_columns", "keep": ["country"]}])

    assert done.rows == [{"country": c} for c in ["FR", "DE", "US", "FR", ""]]


def test_add_columns_value_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_TEST_SOURCE", "drop-42")
    filters = [
        {
            "type": "add_columns",
            "columns": [
                {"name": "segment_id", "type": "long", "value": "42"},
                {"name": "source", "env": "PIPELINES_TEST_SOURCE"},
                {"name": "weight", "type": "double", "value": "0.5"},
                {"name": "since", "type": "timestamp", "value": "2024-01-02T00:00:00Z"},
                {"name": "empty", "type": "long", "value": ""},
            ],
        },
        {"type": "remove_columns", "remove": ["name", "country"]},
    ]

    done = ok(tmp_path, USERS, csv_parser(USER_COLUMNS, skip_header_lines=1), filters=filters)

    assert done.rows[0] == {"id": 10, "segment_id": 42, "source": "drop-42", "weight": 0.5, "since": "2024-01-02T00:00:00+00:00", "empty": None}
    assert {r["source"] for r in done.rows} == {"drop-42"} and len(done.rows) == 5


def test_add_columns_env_not_set_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINES_TEST_UNSET_SOURCE", raising=False)
    filters = [{"type": "add_columns", "columns": [{"name": "source", "env": "PIPELINES_TEST_UNSET_SOURCE"}]}]

    done = run(tmp_path, USERS, csv_parser(USER_COLUMNS, skip_header_lines=1), filters=filters)

    assert done.exit_code == EXIT_CONFIG
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {tmp_path / 'job.yml'}: filters[0].columns[0].env: environment variable")


def test_validate_required_regex_allowed_values(tmp_path: Path) -> None:
    filters = [
        {
            "type": "validate",
            "columns": [
                {"name": "name", "required": True},
                {"name": "country", "allowed_values": ["FR", "DE"]},
                {"name": "id", "regex": "^[0-9]{2}$"},
            ],
        }
    ]

    done = ok(tmp_path, USERS, csv_parser(USER_COLUMNS, skip_header_lines=1), filters=filters, exec_={"max_errors": 3})

    assert done.rows == [{"id": 10, "name": "ann", "country": "FR"}, {"id": 13, "name": "eve", "country": ""}]
    src = done.source()
    assert done.errors == [
        {"source": src, "line": 3, "reason": "column 'name' is required but empty", "raw": "11,,DE"},
        {"source": src, "line": 4, "reason": "column 'country' value 'US' is not one of ['DE', 'FR']", "raw": "12,cy,US"},
        {"source": src, "line": 5, "reason": "column 'id' value '5' does not match /^[0-9]{2}$/", "raw": "5,dee,FR"},
    ]


def test_validate_uses_names_after_rename_and_keeps_line_numbers_across_filters(tmp_path: Path) -> None:
    data = b"id,name,country\n1,ann,FR\nx,bad,FR\n2,,DE\n\n3,cy,FR\n"
    filters = [
        {"type": "rename", "columns": {"name": "user"}},
        {"type": "keep_columns", "keep": ["user", "id"]},
        {"type": "validate", "columns": [{"name": "user", "required": True}]},
    ]

    done = ok(tmp_path, data, csv_parser(USER_COLUMNS, skip_header_lines=1), filters=filters, exec_={"max_errors": 2})

    assert done.rows == [{"user": "ann", "id": 1}, {"user": "cy", "id": 3}]
    assert [(e["line"], e["raw"]) for e in done.errors] == [(3, "x,bad,FR"), (4, "2,,DE")]
    assert done.errors[1]["reason"] == "column 'user' is required but empty"


def test_validate_failure_fails_the_run_by_default(tmp_path: Path) -> None:
    filters = [{"type": "validate", "columns": [{"name": "name", "required": True}]}]

    done = failed(tmp_path, USERS, csv_parser(USER_COLUMNS, skip_header_lines=1), filters=filters)

    assert f"first: {done.source()} line 3: column 'name' is required but empty" in error_message(done)


def test_validate_on_jsonl_reports_the_raw_line(tmp_path: Path) -> None:
    data = b'{"id": 1, "name": "a"}\n\n{"id": 2}\n'
    filters = [{"type": "validate", "columns": [{"name": "name", "required": True}]}]

    done = ok(tmp_path, data, jsonl_parser(), filters=filters, exec_={"max_errors": 1})

    assert done.rows == [{"id": 1, "name": "a"}]
    assert done.errors == [{"source": done.source(), "line": 3, "reason": "column 'name' is required but empty", "raw": '{"id": 2}'}]


# ---------------------------------------------------------------- the runner functions directly


def test_preview_rows_returns_filtered_rows_and_never_fails_on_bad_ones(tmp_path: Path) -> None:
    filters = [{"type": "keep_columns", "keep": ["name"]}]
    path, _ = write_job(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1), filters=filters)
    job = load_job(path)

    assert preview_rows(job, 3) == [["a"], ["c"], ["e"]]
    assert preview_rows(job, 100) == [["a"], ["c"], ["e"], ["g"]]
    assert not (tmp_path / "errors").exists() and not (tmp_path / "out").exists()


def test_run_job_directly(tmp_path: Path) -> None:
    path, inputs = write_job(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1))
    job = load_job(path)
    stats = RunStats()
    errors = ErrorSink(ErrorPolicy(str(tmp_path / "bad.jsonl"), max_errors=3), str(tmp_path / "bad.jsonl"))

    run_job(job, "direct", stats, errors)

    assert (stats.rows_read, stats.rows_written, stats.rows_skipped, stats.objects) == (7, 4, 3, 1)
    written = [json.loads(line) for line in (tmp_path / "out" / "direct" / "part-00000-00000.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == [1, 3, 5, 7]
    assert [json.loads(line)["line"] for line in (tmp_path / "bad.jsonl").read_text().splitlines()] == [3, 5, 7]
    assert str(inputs["data.csv"]) in (tmp_path / "bad.jsonl").read_text()


def test_run_job_directly_over_the_limit_raises_and_writes_nothing(tmp_path: Path) -> None:
    path, _ = write_job(tmp_path, THREE_BAD, csv_parser(skip_header_lines=1))
    job = load_job(path)
    errors = ErrorSink(ErrorPolicy(str(tmp_path / "bad.jsonl"), max_errors=1), str(tmp_path / "bad.jsonl"))

    with pytest.raises(RunError, match="2 bad row\\(s\\), more than max_errors 1"):
        run_job(job, "direct", RunStats(), errors)

    assert list((tmp_path / "out").iterdir()) == []  # the temporary file (and the job's folder) was removed
