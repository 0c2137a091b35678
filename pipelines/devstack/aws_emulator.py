"""The stack's AWS emulator: the workflow server (``python -m pipelines.devstack.workflow_server
--port N``, moto with Step Functions execution and the bridges that run the workflow), recorded
as the service ``moto``, with the environment the workflow running inside it needs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipelines.devstack.messages import StackError
from pipelines.devstack.processes import HOST, Service, load_state, start_process

WORKFLOW_SERVER = "pipelines.devstack.workflow_server"


def _package_root() -> Path:
    """The folder holding the ``pipelines`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent.parent


def emulator_env(port: int, kafka_bootstrap: str, state_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The AWS emulator's environment: the caller's (so e.g. ``PIPELINES_SHARD_BYTES`` passes
    through to the Plan step it runs) plus what the workflow running inside it needs, as Terraform
    gives the deployed tasks: among them the default work dir and error output in the local bucket
    (only the workflow's tasks get these; `pipelines dev up` does not export them to the shell)."""
    from pipelines.devstack.resources import EVENT_BUS, JOBS_TABLE, state_machine_arn

    base = dict(os.environ if base is None else base)
    root = _package_root()
    python_path = os.pathsep.join(filter(None, [str(root), base.get("PYTHONPATH")]))
    return {
        **base,
        "MOTO_PORT": str(port),
        "PYTHONPATH": python_path,  # the emulator and its shard subprocesses import this very package
        "KAFKA_BOOTSTRAP": kafka_bootstrap,  # shard subprocesses and the Lambda handler reach Kafka
        "PIPELINES_REPO": base.get("PIPELINES_REPO") or str(root),  # cwd of shard subprocesses
        **workflow_defaults(),
        "PIPELINES_JOBS_TABLE": JOBS_TABLE,
        "PIPELINES_EVENT_BUS": EVENT_BUS,
        "PIPELINES_STATE_MACHINE_ARN": state_machine_arn(),  # the trigger task starts executions
        "PIPELINES_WORKFLOW_LOGS": str(state_dir / "workflow-logs"),
    }


def workflow_defaults() -> dict[str, str]:
    """The workflow tasks' default exec.work_dir and exec.error_output: the local bucket's ``_jobs``
    and ``_errors/`` prefixes, as Terraform sets them to the module bucket's."""
    from pipelines.devstack.resources import WORK_BUCKET

    return {"PIPELINES_WORK_DIR": f"s3://{WORK_BUCKET}/_jobs", "PIPELINES_ERROR_OUTPUT": f"s3://{WORK_BUCKET}/_errors/"}


def start_moto(port: int, moto_dir: Path, *, kafka_bootstrap: str, state_dir: Path, image: str | None = None) -> Service:
    """The AWS emulator: the workflow server (moto with Step Functions execution and the bridges)."""
    command = [sys.executable, "-m", WORKFLOW_SERVER, "--port", str(port), *(["--image", image] if image else [])]
    return start_process(
        "moto",
        command,
        port=port,
        address=f"http://{HOST}:{port}",
        log_path=moto_dir / "moto.log",
        cwd=moto_dir,
        env=emulator_env(port, kafka_bootstrap, state_dir),
    )


def check_same_image(state_dir: Path, image: str | None) -> None:
    """The running stack's workflow server runs tasks where this call asks (the image or the checkout)."""
    moto = next((s for s in load_state(state_dir) if s.name == "moto"), None)
    args = list(moto.cmdline) if moto else []
    running = args[args.index("--image") + 1] if "--image" in args[:-1] else None
    if running != image:
        wanted, have = (f"the image {tag}" if tag else "this checkout" for tag in (image, running))
        raise StackError(f"the stack in {state_dir} runs its tasks in {have}, not {wanted}: `pipelines dev down` first")
