"""Secrets stay out of every process's command line: `ps` and /proc/*/cmdline are readable by any
user of the machine (and by whatever reads a task's process list), unlike a process's environment."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, command_lines_until

SECRET = "s3cr3t-value-9d8c7b"


def test_params_reach_the_shard_processes_outside_their_command_lines(tmp_path: Path) -> None:
    """`run` without --shard, params in $PIPELINES_PARAMS, two shard processes at a time: the value
    reaches every shard (it is in the rows they write), and no command line of the run holds it."""
    (tmp_path / "in").mkdir()
    for n in range(4):  # gzip: never split, so one shard an object with --shard-size 1
        (tmp_path / "in" / f"{n}.csv.gz").write_bytes(gzip.compress(("user_id\n" + "".join(f"u{n}-{i}\n" for i in range(2000))).encode()))
    config = tmp_path / "job.yml.liquid"
    config.write_text(
        f"in:\n  type: file\n  path_prefix: {tmp_path}/in/\n  parser:\n    type: csv\n    skip_header_lines: 1\n"
        "    columns: [{name: user_id, type: string}]\n"
        "filters:\n  - {type: add_columns, columns: [{name: token, type: string, value: '{{ env.API_TOKEN }}'}]}\n"
        f"out:\n  type: file\n  path_prefix: {tmp_path}/out/\n  formatter: {{type: jsonl}}\n"
        f"exec:\n  max_threads: 2\n  work_dir: {tmp_path}/work\n  error_output: {tmp_path}/errors/\n"
    )
    env = {**os.environ, "PIPELINES_PARAMS": json.dumps({"API_TOKEN": SECRET})}
    command = [sys.executable, "-m", "pipelines", "run", str(config), "--shard-size", "1", "--job-id", "secret-job"]
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=err)
        seen = command_lines_until(process)
    stdout, stderr = (tmp_path / "stdout").read_bytes(), (tmp_path / "stderr").read_bytes()
    assert process.returncode == 0, stderr.decode()

    shard_processes = {line for line in seen if b"--shard\0" in line and str(tmp_path).encode() in line}  # this run's only
    assert len(shard_processes) == 4, "each of the four shards ran in a process of its own"
    assert not [line for line in seen if SECRET.encode() in line], "a secret in a command line"
    rows = [json.loads(line) for path in (tmp_path / "out").rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(rows) == 8000 and {row["token"] for row in rows} == {SECRET}, "every shard had the param"
    assert SECRET.encode() not in stdout + stderr, "nor in the run's output"
