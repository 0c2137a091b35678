"""``bin/deploy-local``: the Terraform module applied to the running local stack.

    python -m pipelines.devstack.deploy [--destroy] [--env] [--work-dir DIR]

Applies terraform/examples/local (the module, plus the ECR repository, VPC, subnet and security
group it takes as inputs) to the stack's AWS emulator, with the endpoints the stack's environment
names (``eval "$(pipelines dev up)"`` exports AWS_ENDPOINT_URL and KAFKA_BOOTSTRAP), and prints
the outputs: as JSON, or with ``--env`` as ``export`` lines for ``eval``. ``--destroy`` destroys
what it created.

Terraform runs on a copy of terraform/, statemachine.json and workflow/ in the work dir
(default ``$PIPELINES_DEV_STATE/deploy-local``, i.e. ``.dev/deploy-local``), where its state is kept
too: nothing is written into the repository. No provider can be downloaded here: ``terraform init``
uses a local plugin folder (``$PIPELINES_TF_PLUGIN_DIR``, or one of the usual ones) when there is one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = Path("terraform") / "examples" / "local"
PLUGIN_DIRS = ("~/.terraform.d/plugins", "~/.local/share/terraform/plugins", "/usr/share/terraform/plugins", "/opt/tf-plugins")
TIMEOUT_S = 600  # one terraform command; an apply to the emulator takes about 80 s
LOCAL_ENDPOINT = re.compile(r"^http://(127\.0\.0\.1|localhost):[0-9]{1,5}$")


class DeployError(Exception):
    """What stops the deployment, said in one line."""


def plugin_dir() -> Path | None:
    """A local folder of provider plugins holding hashicorp/aws ($PIPELINES_TF_PLUGIN_DIR first)."""
    for candidate in (os.environ.get("PIPELINES_TF_PLUGIN_DIR"), *PLUGIN_DIRS):
        if candidate and any(Path(candidate).expanduser().glob("*/hashicorp/aws/*/*/terraform-provider-aws*")):
            return Path(candidate).expanduser()
    return None


def terraform_binary() -> str:
    found = shutil.which("terraform")
    if not found:
        raise DeployError("no terraform binary on PATH: install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install)")
    return found


def stack_variables(env: dict[str, str]) -> dict[str, str]:
    """The example's variables from the stack's environment, as TF_VAR_* (nothing on a command line)."""
    endpoint, bootstrap = env.get("AWS_ENDPOINT_URL", ""), env.get("KAFKA_BOOTSTRAP", "")
    if not endpoint or not bootstrap:
        raise DeployError('AWS_ENDPOINT_URL and KAFKA_BOOTSTRAP are not set: start the local stack with eval "$(pipelines dev up)" first')
    if not LOCAL_ENDPOINT.match(endpoint):
        raise DeployError(f"AWS_ENDPOINT_URL={endpoint} is not the local emulator (http://127.0.0.1:PORT): bin/deploy-local deploys locally only")
    return {
        "TF_VAR_aws_endpoint_url": endpoint,
        "TF_VAR_kafka_bootstrap_servers": json.dumps([b.strip() for b in bootstrap.split(",") if b.strip()]),
        "TF_VAR_region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    }


def terraform_env(base: dict[str, str], work_dir: Path) -> dict[str, str]:
    """The environment of the terraform commands: the stack's variables, the emulator's dummy
    credentials (when none are set), the data dir in the work dir, no prompts, no checkpoint calls."""
    env = {**base, **stack_variables(base), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
    env["TF_DATA_DIR"] = str(work_dir / ".terraform")
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    config = env.get("TF_CLI_CONFIG_FILE")
    if config and not Path(config).is_file():
        env["TF_CLI_CONFIG_FILE"] = os.devnull  # a missing file only earns a warning on every command
    return env


def copy_sources(work_dir: Path, root: Path = ROOT) -> Path:
    """terraform/, statemachine.json and workflow/ copied fresh into ``work_dir/src``; the example's folder in it."""
    src = work_dir / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*")
    shutil.copytree(root / "terraform", src / "terraform", ignore=ignore)
    shutil.copy(root / "statemachine.json", src / "statemachine.json")
    shutil.copytree(root / "workflow", src / "workflow")
    return src / EXAMPLE


def _stderr_with_fd() -> Any:
    """sys.stderr (flushed) when terraform's progress can go straight to it, else None."""
    try:
        sys.stderr.flush()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None
    return sys.stderr


def _terraform(args: list[str], folder: Path, env: dict[str, str], capture: bool = False) -> str:
    """Runs terraform (its progress on stderr); raises DeployError with its last lines when it fails."""
    progress = None if capture else _stderr_with_fd()
    limit = float(env.get("PIPELINES_TF_TIMEOUT") or TIMEOUT_S)
    try:
        proc = subprocess.run(
            [terraform_binary(), f"-chdir={folder}", *args, "-no-color"],
            env=env, stdin=subprocess.DEVNULL, stdout=progress or subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False,
            timeout=limit,
        )
    except subprocess.TimeoutExpired as exc:
        raise DeployError(
            f"terraform {args[0]} did not finish in {limit:.0f} s (PIPELINES_TF_TIMEOUT): the provider may be retrying a call the "
            "emulator keeps failing; its log (moto.log in the stack's state dir) shows which"
        ) from exc
    if not capture and progress is None:
        sys.stderr.write(proc.stdout)  # a stderr without a file descriptor (pytest's capture) gets it at the end
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()[-15:]
        raise DeployError(f"terraform {args[0]} failed (exit {proc.returncode}):\n" + "\n".join(detail))
    return proc.stdout


def deploy(work_dir: Path, env: dict[str, str] | None = None, *, destroy: bool = False) -> dict[str, Any]:
    """Applies (or destroys) terraform/examples/local on the stack; returns the outputs (name -> value)."""
    work_dir = work_dir.resolve()
    tf_env = terraform_env(dict(os.environ if env is None else env), work_dir)
    folder = copy_sources(work_dir)
    plugins = plugin_dir()
    init = ["init", "-input=false", *([f"-plugin-dir={plugins}"] if plugins else [])]
    try:
        _terraform(init, folder, tf_env)
    except DeployError as exc:
        if plugins is None:
            raise DeployError(f"{exc}\nno local copy of the hashicorp/aws provider was found either: set PIPELINES_TF_PLUGIN_DIR to a plugin folder") from exc
        raise
    state = f"-state={work_dir / 'terraform.tfstate'}"
    _terraform(["destroy" if destroy else "apply", "-auto-approve", "-input=false", state], folder, tf_env)
    if destroy:
        return {}
    outputs = json.loads(_terraform(["output", "-json", state], folder, tf_env, capture=True))
    return {name: value["value"] for name, value in outputs.items()}


def forget_state(work_dir: Path) -> None:
    """Removes the Terraform state of an apply to an emulator that has stopped (its resources were in
    its memory): the next apply then creates them again instead of refreshing what is gone."""
    for name in ("terraform.tfstate", "terraform.tfstate.backup"):
        (work_dir / name).unlink(missing_ok=True)


def workflow_env(outputs: dict[str, Any], api_url: str) -> dict[str, str]:
    """What ``pipelines dev up`` exports for the workflow, naming what Terraform created."""
    return {
        "PIPELINES_STATE_MACHINE_ARN": str(outputs["state_machine_arn"]),
        "PIPELINES_JOBS_TABLE": str(outputs["jobs_table_name"]),
        "PIPELINES_EVENT_BUS": str(outputs["event_bus_name"]),
        "PIPELINES_API_URL": api_url,
    }


def shell_lines(outputs: dict[str, Any]) -> str:
    """``export`` lines for the workflow that Terraform created."""
    import shlex

    values = {
        "PIPELINES_STATE_MACHINE_ARN": outputs["state_machine_arn"],
        "PIPELINES_JOBS_TABLE": outputs["jobs_table_name"],
        "PIPELINES_EVENT_BUS": outputs["event_bus_name"],
        "PIPELINES_FUNCTION": outputs["function_name"],
        "PIPELINES_API_ID": outputs["api_id"],
        "PIPELINES_BUCKET": outputs["bucket_name"],
    }
    return "\n".join(f"export {name}={shlex.quote(str(value))}" for name, value in values.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/deploy-local", description=__doc__.splitlines()[0])
    parser.add_argument("--destroy", action="store_true", help="destroy what the last apply created")
    parser.add_argument("--env", action="store_true", help="print the outputs as export lines for eval, not JSON")
    default_dir = Path(os.environ.get("PIPELINES_DEV_STATE") or ".dev") / "deploy-local"
    parser.add_argument("--work-dir", type=Path, default=default_dir, help=f"the copy of the module and its state (default {default_dir})")
    args = parser.parse_args(argv)
    try:
        outputs = deploy(args.work_dir, destroy=args.destroy)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.destroy:
        print("destroyed what terraform/examples/local created", file=sys.stderr)
    elif args.env:
        print(shell_lines(outputs))
    else:
        print(json.dumps(outputs, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
