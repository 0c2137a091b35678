"""`out: {type: "null"}` through the CLI: rows are read, parsed and counted, nothing is written
(stdout holds only the summary), bad rows still reach the error output. No broker or S3 needed."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from conftest import run_cli, summary_of

from pipelines.devstack.sample import write_audience_csv

COLUMNS = """\
      - {name: user_id, type: string}
      - {name: country, type: string}
      - {name: score, type: double}
      - {name: opted_in, type: boolean}
      - {name: updated_at, type: timestamp}
"""


def write_config(
    tmp_path: Path, out: str = '{type: "null"}', max_errors: int = 0
) -> Path:
    """A file input reading in/ of tmp_path (gzip CSV, the sample's columns) into `out`."""
    config = tmp_path / "job.yml"
    config.write_text(
        f"in:\n  type: file\n  path_prefix: {tmp_path / 'in'}/\n  decoders: [{{type: gzip}}]\n"
        f"  parser:\n    type: csv\n    skip_header_lines: 1\n    columns:\n{COLUMNS}"
        f"out: {out}\n"
        f"exec:\n  max_errors: {max_errors}\n  work_dir: {tmp_path / 'work'}\n"
        f"  error_output: {tmp_path / 'errors'}/\n"
    )
    return config


def write_audience(
    tmp_path: Path, rows: int, bad: dict[int, str] | None = None
) -> Path:
    """The sample audience as gzip CSV in tmp_path/in/; bad[i] replaces row i (on line i + 2)."""
    raw = io.BytesIO()
    write_audience_csv(raw, rows)
    lines = raw.getvalue().decode().splitlines(keepends=True)
    for i, text in (bad or {}).items():
        lines[i + 1] = text + "\n"
    path = tmp_path / "in" / "audience.csv.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress("".join(lines).encode(), 1))
    return path


def counts(summary: dict) -> tuple[int, int, int]:
    return summary["rows_read"], summary["rows_written"], summary["rows_skipped"]


def test_run_reads_and_counts_every_row_and_prints_only_the_summary(
    tmp_path: Path,
) -> None:
    write_audience(tmp_path, 2500)
    result = run_cli("run", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1, result.stdout  # the summary line, no rows
    summary = summary_of(result)
    assert summary["status"] == "succeeded"
    assert counts(summary) == (2500, 2500, 0)
    assert summary["error_outputs"] == []


def test_bad_rows_still_go_to_the_error_output(tmp_path: Path) -> None:
    bad = {3: "u3,JP,not-a-number,true,2026-11-01T12:00:00Z", 7: "u7,JP"}
    source = write_audience(tmp_path, 100, bad)
    result = run_cli("run", str(write_config(tmp_path, max_errors=2)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1, result.stdout
    summary = summary_of(result)
    assert counts(summary) == (100, 98, 2)
    [error_file] = summary["error_outputs"]
    errors = [json.loads(line) for line in Path(error_file).read_text().splitlines()]
    assert [(e["source"], e["line"], e["raw"]) for e in errors] == [
        (str(source), 5, bad[3]),
        (str(source), 9, bad[7]),
    ]
    assert "score" in errors[0]["reason"]


def test_a_bad_row_fails_the_run_by_default(tmp_path: Path) -> None:
    write_audience(tmp_path, 10, bad={2: "u2,JP,1.5,maybe,2026-11-01T12:00:00Z"})
    result = run_cli("run", str(write_config(tmp_path)))
    assert result.returncode == 1, result.stderr
    summary = summary_of(result)
    assert summary["status"] == "failed" and summary["rows_skipped"] == 1
    assert len(Path(summary["error_outputs"][0]).read_text().splitlines()) == 1


def test_validate_accepts_the_quoted_name(tmp_path: Path) -> None:
    result = run_cli("validate", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {tmp_path / 'job.yml'} (user_id:string,"), (
        result.stdout
    )


def test_an_unquoted_null_is_yaml_null_not_the_plugin(tmp_path: Path) -> None:
    result = run_cli("validate", str(write_config(tmp_path, out="{type: null}")))
    assert result.returncode == 2
    assert "out.type: expected a plugin type name" in result.stderr, result.stderr
    assert result.stderr.rstrip().endswith("got None"), result.stderr


JSONL_PARSER = "    type: jsonl\n    columns:\n" + COLUMNS


def write_filtered_config(tmp_path: Path, jsonl: bool) -> Path:
    """write_config's job with a required user_id and an added column (the filters the fused path reproduces)."""
    config = write_config(tmp_path, max_errors=1000)
    text = config.read_text()
    if jsonl:
        text = text.replace("  decoders: [{type: gzip}]\n", "").replace(
            "    type: csv\n    skip_header_lines: 1\n    columns:\n" + COLUMNS, JSONL_PARSER)
    filters = ("filters:\n  - {type: validate, columns: [{name: user_id, required: true}]}\n"
               "  - {type: add_columns, columns: [{name: segment, value: s1}]}\n")
    config.write_text(text.replace("out: ", filters + "out: "))
    return config


def write_odd_jsonl(tmp_path: Path, rows: int) -> None:
    """rows JSON lines, every 7th out of the ordinary (an escape, a missing key, a bad value, not an object)."""
    odd = ['{"user_id": "u\\u0031", "score": 1.5}', '{"score": 2}', '{"user_id": "", "score": 2}',
           '{"user_id": "x", "score": "high"}', "[1]", "", '{"user_id": "y", "opted_in": "maybe"}']
    lines = [odd[(i // 7) % len(odd)] if i % 7 == 3 else
             f'{{"user_id": "u{i}", "country": "JP", "score": {i % 97 / 10}, "opted_in": true, "updated_at": "2026-11-01T12:00:00Z"}}'
             for i in range(rows)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "audience.jsonl").write_text("\n".join(lines) + "\n")


def test_the_fused_count_is_what_the_rows_path_counts(tmp_path: Path) -> None:
    """CSV and JSON lines with odd rows: the compiled count (FusedCount) and the Python rows give the
    same counts and the same error output."""
    bad = {i: text for i, text in enumerate(["u3,JP,x,true,2026-11-01T12:00:00Z", "u7,JP", ",JP,1.5,true,2026-11-01T12:00:00Z",
                                              'u9,"J""P",1,true,2026-11-01T12:00:00Z', "u11,JP,1.5,maybe,2026-11-01T12:00:00Z"] * 40, 5)}
    for fmt in ("csv", "jsonl"):
        case = tmp_path / fmt
        case.mkdir()
        write_odd_jsonl(case, 3000) if fmt == "jsonl" else write_audience(case, 3000, {i * 11: t for i, t in bad.items()})
        config = write_filtered_config(case, fmt == "jsonl")
        results = []
        for native in ("1", "0"):
            result = run_cli("run", str(config), env={"PIPELINES_NATIVE": native})
            assert result.returncode == 0, result.stderr
            summary = summary_of(result)
            errors = sorted(Path(summary["error_outputs"][0]).read_text().splitlines())
            results.append((counts(summary), [(e["line"], e["reason"]) for e in map(json.loads, errors)]))
            (case / "errors").rename(case / f"errors-{native}")
            (case / "work").rename(case / f"work-{native}")
        assert results[0] == results[1]
        assert results[0][0][2] > 100


def test_the_null_output_counts_csv_and_jsonl_in_c(tmp_path: Path, monkeypatch) -> None:
    """FusedCount is the null output's path for csv and jsonl parsers, not without the extension."""
    import pytest

    pytest.importorskip("pipelines.native._fastrows", reason="the C extensions are not built")
    from pipelines.engine.config import load_job
    from pipelines.native.fused import FusedCount

    for jsonl in (False, True):
        case = tmp_path / str(jsonl)
        case.mkdir()
        job = load_job(write_filtered_config(case, jsonl), {})
        job.output.open("j", 0)
        monkeypatch.setenv("PIPELINES_NATIVE", "1")
        assert isinstance(job.output.fused_path(job), FusedCount)
