"""Every shell command in README.md's code blocks and in the examples of every `--help` works as written.

The commands are extracted, not copied here: README.md's ```sh blocks (continuation lines joined,
comments dropped) and, in every command's help, the lines that start with `pipelines ` or
`eval "$(pipelines`. Each one is:

- run with no servers (the hello world), in a folder holding copies of configs/ and examples/, so
  its pipelines-work/ and pipelines-errors/ do not land in the checkout;
- run against the `stack` fixture (tests/conftest.py), in the order written, where it needs the local
  stack, with three substitutions said where they happen: `eval "$(pipelines dev up)"` is the
  fixture itself (same stack, free ports); `pipelines api serve --port 8080 &` is started on a free
  port with PIPELINES_API_URL pointing at it; JOB_ID is the id `jobs submit` printed;
  `pipelines dev status` is given the fixture's --state-dir;
- or skipped, listed in SKIPPED with the reason, exact text and all; a listed command that no longer
  appears fails the test too, so the list stays true.

A help synopsis with placeholders (`pipelines run CONFIG --plan URI --shard I`) is not a command:
skipped as such, by rule. A command that is none of these fails `test_every_command_is_classified`:
decide how it runs here, or list it in SKIPPED with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, free_port

README = REPO / "README.md"

# Commands not run here, each with why. Keys are the commands as extracted (README: comments dropped,
# continuations joined; help: the example line).
SKIPPED: dict[str, str] = {
    # the README's first lines
    "bin/demo": "starts `pipelines dev up` on the default ports (9092, 5000, 8080), which tests never take; "
    "its steps are README section 4's, which run here against the `stack` fixture",
    "bin/test": "the whole test suite, this test included (CI runs it through .ci/run)",
    # 2. hello world
    "python3 -m venv .venv && .venv/bin/pip install -e . && . .venv/bin/activate": "installs the package into a new "
    "virtual environment (network, minutes); the tests run with the package installed already",
    # 4. the local stack
    "pipelines dev down": "would stop the stack the `stack` fixture shares with the other tests; the fixture stops it "
    "at the end of the session (`down` itself is covered by tests/test_devstack.py)",
    # 5. Deploy to AWS: an AWS account, Docker and your Kafka, none of which is here
    "export AWS_REGION=eu-west-1 TAG=1.0.0": "Deploy to AWS, step 1: sets up the AWS calls below",
    "REPOSITORY_URI=$(aws ecr create-repository --repository-name audience-pipelines --query repository.repositoryUri "
    "--output text)": "Deploy to AWS, step 1: creates an ECR repository (an AWS account)",
    'aws ecr get-login-password | docker login --username AWS --password-stdin "${REPOSITORY_URI%%/*}"': "Deploy to AWS, "
    "step 2: logs Docker in to ECR (an AWS account, Docker)",
    'docker buildx build --platform linux/amd64 --provenance=false -f container/Dockerfile -t "$REPOSITORY_URI:$TAG" '
    "--push .": "Deploy to AWS, step 2: Docker with buildx and a registry; the same Dockerfile is built here with "
    "buildah by tests/test_image.py",
    "cd terraform/examples/complete": "Deploy to AWS, step 4: the folder of the terraform commands below",
    "cp terraform.tfvars.example terraform.tfvars": "Deploy to AWS, step 4: variables of your account (VPC, MSK)",
    "terraform init": "Deploy to AWS, step 4: downloads the AWS provider (no network to the Terraform registry here); "
    "tests/test_terraform.py validates the example offline where a provider copy is found",
    "terraform apply": "Deploy to AWS, step 4: an AWS account",
    "export PIPELINES_API_URL=$(terraform output -raw api_endpoint) BUCKET=$(terraform output -raw bucket_name)": "Deploy "
    "to AWS, step 4: outputs of a real apply",
    "cd ../../..": "Deploy to AWS, step 4: back to the repository root",
    'pipelines check configs/send_audience_to_kafka.yml.liquid --var S3_BUCKET="$BUCKET" '
    "--var S3_KEY=imports/first/audience.csv.gz": "Deploy to AWS, step 5: checks the deployed bucket and brokers "
    "(an AWS account); the check command's own tests run it against the local stack",
    'aws s3 cp audience.csv.gz "s3://$BUCKET/imports/first/audience.csv.gz"': "Deploy to AWS, step 6: the deployed bucket",
    'pipelines jobs submit send_audience_to_kafka --param S3_BUCKET="$BUCKET" --param S3_KEY=imports/first/audience.csv.gz': (
    "Deploy to AWS, step 6: a signed call to the deployed API; the same submit runs unsigned against the local API "
    "in section 4"
    ),
}
# In "Deploy to AWS", these commands are also in section 4 (where they run): skipped there by section.
DEPLOY_SECTION = "## 5. Deploy to AWS"
DEPLOY_REASON = "Deploy to AWS: the deployed API (an AWS account); the same command runs against the local API in section 4"

# The hello world: no servers.
HERE = re.compile(r"^pipelines (validate|preview|run|render) configs/hello_world\.yml$")
# Synopses in help texts: a word that is a placeholder (CONFIG, URI, I, JOB_ID), not a command.
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")
STACK_UP = 'eval "$(pipelines dev up)"'
API_SERVE = re.compile(r"^pipelines api serve --port \d+ &$")


@dataclass(frozen=True)
class Command:
    text: str
    where: str  # "README.md:LINE (section)" or "pipelines X --help"
    section: str = ""

    def words(self) -> list[str]:
        return shlex.split(self.text)


def readme_commands() -> list[Command]:
    """The commands of README.md's ```sh blocks, in order."""
    commands: list[Command] = []
    section, in_block, pending, start = "", False, "", 0
    for number, raw in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not in_block and raw.startswith("## "):
            section = raw
        if line.startswith("```"):
            in_block = not in_block and line in ("```sh", "```bash", "```shell")
            continue
        if not in_block:
            continue
        pending, start = (pending + " " + line if pending else line), (start or number)
        if line.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        text = strip_comment(pending)
        if text:
            commands.append(Command(text, f"README.md:{start} ({section.lstrip('# ')})", section))
        pending, start = "", 0
    return commands


def strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # outside quotes, after a space)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.strip()


def help_commands() -> list[Command]:
    """The `pipelines ...` lines of every command's --help, in order."""
    import click

    from pipelines.cli.main import cli

    def walk(command: click.Command, path: list[str]):
        yield path, command
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                yield from walk(command.get_command(click.Context(command), name), [*path, name])

    found = []
    for path, command in walk(cli, ["pipelines"]):
        name = " ".join(path)
        text = command.get_help(click.Context(command, info_name=name))
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("pipelines ") or stripped.startswith('eval "$(pipelines'):
                # a synopsis's description follows after two spaces or more; a comment is dropped
                found.append(Command(strip_comment(re.split(r"\s{2,}(?!#)", stripped)[0]), f"{name} --help"))
    return found


def is_synopsis(command: Command) -> bool:
    try:
        words = command.words()
    except ValueError:
        return False
    return command.where.endswith("--help") and any(PLACEHOLDER.match(w) for w in words[1:])


def how(command: Command) -> tuple[str, str]:
    """("here" | "stack" | "skip", reason) for a command."""
    text = command.text
    if text in SKIPPED:
        return "skip", SKIPPED[text]
    if command.section == DEPLOY_SECTION:
        return "skip", DEPLOY_REASON
    if is_synopsis(command):
        return "skip", "a synopsis with placeholders (CONFIG, URI, ...), not a command"
    if HERE.match(text):
        return "here", "needs no servers"
    if text == STACK_UP:
        return "stack", "the `stack` fixture is this stack, on free ports"
    if API_SERVE.match(text):
        return "stack", "started on a free port"
    if re.match(r"^pipelines (dev (create-topic|sample-audience|status)|validate|run|jobs (submit|status|watch|list)) ", text + " "):
        return "stack", "needs the local stack"
    return "unclassified", ""


ALL = readme_commands() + help_commands()


def test_commands_are_found() -> None:
    readme = [c for c in ALL if c.where.startswith("README")]
    helps = [c for c in ALL if not c.where.startswith("README")]
    assert len(readme) >= 20 and len(helps) >= 5, (len(readme), len(helps))
    assert readme[0].text == "bin/demo" and readme[1].text == "bin/test", "the README's first lines are the fresh-machine commands"


def test_every_command_is_classified() -> None:
    unknown = [f"{c.where}: {c.text}" for c in ALL if how(c)[0] == "unclassified"]
    assert not unknown, "run these here or list them in SKIPPED with the reason:\n" + "\n".join(unknown)


def test_skipped_commands_are_still_there() -> None:
    texts = {c.text for c in ALL}
    gone = [text for text in SKIPPED if text not in texts]
    assert not gone, f"SKIPPED lists commands that README.md and the help no longer have: {gone}"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    """The README's `bin/test` stays true: .ci/run ends in it, and it sets up then runs pytest."""
    assert re.search(r"^exec bin/test\b", (REPO / ".ci" / "run").read_text(), re.M)
    bin_test = (REPO / "bin" / "test").read_text()
    assert "bin/setup" in bin_test and "-m pytest" in bin_test
    bin_demo = (REPO / "bin" / "demo").read_text()
    assert "dev up" in bin_demo and "jobs submit" in bin_demo and "sample-audience" in bin_demo


def test_the_readme_hello_world_config_is_the_file() -> None:
    """The config the README shows whole is configs/hello_world.yml."""
    import yaml

    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    shown = [yaml.safe_load(b) for b in blocks if "examples/audience.csv" in b]
    assert shown == [yaml.safe_load((REPO / "configs" / "hello_world.yml").read_text())]


def cli(words: list[str]) -> list[str]:
    assert words[0] == "pipelines", words
    return [sys.executable, "-m", "pipelines", *words[1:]]


def test_the_serverless_commands_run(tmp_path: Path) -> None:
    for folder in ("configs", "examples"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    here = [c for c in ALL if how(c)[0] == "here"]
    assert {c.words()[1] for c in here} >= {"validate", "preview", "run"}
    for command in here:
        result = subprocess.run(cli(command.words()), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{command.where}: {command.text}\n{result.stderr}"
        if command.words()[1] == "run":
            summary = json.loads(result.stdout.strip().splitlines()[-1])
            assert (summary["status"], summary["rows_read"], summary["rows_written"], summary["rows_skipped"]) == ("succeeded", 7, 5, 2)
            (errors,) = summary["error_outputs"]
            lines = [json.loads(line) for line in (tmp_path / errors).read_text().splitlines()]
            assert [e["line"] for e in lines] == [5, 7]


def test_the_skips_have_reasons() -> None:
    for command in ALL:
        mode, reason = how(command)
        if mode == "skip":
            assert reason, command


def print_plan() -> str:
    return "\n".join(f"{how(c)[0]:6} {c.where}: {c.text}" + (f"\n       ({how(c)[1]})" if how(c)[0] == "skip" else "") for c in ALL)


@pytest.mark.integration
def test_the_stack_commands_run(stack, deployed, tmp_path: Path) -> None:
    """README section 4 and the help examples that need the local stack, in the order written, against the fixture."""
    from workflow_setup import warm_up_group_coordinator

    from pipelines.devstack.deploy import workflow_env as applied_workflow

    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    # the workflow's resources, the Terraform module's as `pipelines dev up` applies it; its bucket and
    # S3-drop rule are not s3://audiences/, so the help's sample under s3://audiences/drops/ is not imported
    # a second time by the rule
    workflow_env = applied_workflow(deployed.outputs, api_url)
    warm_up_group_coordinator(stack.kafka_bootstrap)
    env = {
        **os.environ,
        **workflow_env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    state_dir = getattr(stack, "state_dir", None)
    servers: list[subprocess.Popen] = []
    ran: list[str] = []
    try:
        for source in ("README", "--help"):
            job_id = None
            for command in [c for c in ALL if how(c)[0] == "stack" and (c.where.startswith("README") == (source == "README"))]:
                words = command.words()
                if command.text == STACK_UP:
                    continue  # the fixture
                if API_SERVE.match(command.text):
                    log = open(tmp_path / "api.log", "wb")
                    servers.append(
                        subprocess.Popen(cli(["pipelines", "api", "serve", "--port", str(api_port)]), cwd=REPO, env=env, stdout=log, stderr=log)
                    )
                    wait_for_api(env)
                    ran.append(command.text)
                    continue
                if words[:3] == ["pipelines", "dev", "status"]:
                    if state_dir is None:
                        continue  # PIPELINES_TEST_REUSE_STACK: the developer's own stack
                    words = [*words, "--state-dir", str(state_dir)]
                if "JOB_ID" in words:
                    assert job_id, f"{command.where}: JOB_ID before a `jobs submit`"
                    words = [job_id if w == "JOB_ID" else w for w in words]
                result = subprocess.run(cli(words), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
                assert result.returncode == 0, f"{command.where}: {command.text}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
                if words[1:3] == ["jobs", "submit"]:
                    job_id = json.loads(result.stdout)["job_id"]
                if words[1:3] == ["jobs", "watch"] or words[1] == "run":
                    last = json.loads(result.stdout.strip().splitlines()[-1])
                    assert last.get("status", "").lower() == "succeeded", last
                ran.append(command.text)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    assert any(t.startswith("pipelines jobs watch") for t in ran) and any(t.startswith("pipelines run configs/send_audience") for t in ran), ran


def wait_for_api(env: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        result = subprocess.run(cli(["pipelines", "jobs", "list", "--limit", "1"]), cwd=REPO, env=env, capture_output=True, timeout=30)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.2)


# Written on other branches of the same issue (the Embulk mappings, the operator commands, the local Terraform
# example): linked before they land.
LINKED_AHEAD: set[str] = set()  # pages linked before they land (none now)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    found, fence = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_docs_links_resolve() -> None:
    """Relative links (and their #anchors) in the README, docs/ and the Terraform READMEs point at something."""
    pages = [README, *sorted((REPO / "docs").rglob("*.md")), REPO / "terraform" / "README.md", REPO / "terraform" / "examples" / "complete" / "README.md"]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (page.parent / file_part).resolve() if file_part else page
            relative = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(resolved)
            if relative in LINKED_AHEAD:
                continue
            if not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


if __name__ == "__main__":  # the plan, for a reader: python tests/test_readme_commands.py
    print(print_plan())
