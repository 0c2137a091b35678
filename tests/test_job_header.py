"""The pipelines.job_id header on every imported record, and the benchmark-only switch that leaves it
out (bench/import_bench.py measures the header's cost with it): real broker, compiled loops on and off."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import consume_all, create_topic, rows_and_markers, run_cli, summary_of

from pipelines.kafka.markers import JOB_ID_HEADER, NO_HEADER_FOR_BENCHMARKS


def import_csv(tmp_path: Path, stack: Any, env: dict[str, str]) -> tuple[list[Any], str]:
    topic = f"header-{uuid.uuid4().hex[:8]}"
    create_topic(stack.kafka_bootstrap, topic, 3)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("".join(f"u{i},{i}\n" for i in range(500)))
    config = {
        "in": {"type": "file", "path_prefix": f"{tmp_path / 'in'}/", "parser": {"type": "csv", "columns": [{"name": "user_id"}, {"name": "n", "type": "long"}]}},
        "out": {"type": "kafka", "brokers": [stack.kafka_bootstrap], "topic": topic, "key_column_name": "user_id"},
        "exec": {"work_dir": str(tmp_path / "work")},
    }
    (tmp_path / "job.yml").write_text(yaml.safe_dump(config))
    result = run_cli("run", str(tmp_path / "job.yml"), "--job-id", "header-job", env=env)
    assert result.returncode == 0, result.stderr
    assert summary_of(result)["rows_written"] == 500
    records, markers = rows_and_markers(consume_all(stack.kafka_bootstrap, topic))
    assert len(records) == 500 and len(markers) == 3
    return records, result.stderr


@pytest.mark.parametrize("native", ["1", "0"])
def test_every_record_carries_the_job_id_header(stack: Any, tmp_path: Path, native: str) -> None:
    records, log = import_csv(tmp_path, stack, {"PIPELINES_NATIVE": native})
    assert all(m.headers() == [(JOB_ID_HEADER, b"header-job")] for m in records)
    assert NO_HEADER_FOR_BENCHMARKS not in log


@pytest.mark.parametrize("native", ["1", "0"])
def test_the_benchmark_switch_leaves_the_header_out_and_says_so(stack: Any, tmp_path: Path, native: str) -> None:
    records, log = import_csv(tmp_path, stack, {"PIPELINES_NATIVE": native, NO_HEADER_FOR_BENCHMARKS: "1"})
    assert all(not m.headers() for m in records)
    assert f"{NO_HEADER_FOR_BENCHMARKS}=1: the records carry no {JOB_ID_HEADER} header" in log
