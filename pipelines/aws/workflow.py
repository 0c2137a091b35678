"""The Step Functions workflow: statemachine.json at the repository root, and its placeholders.

statemachine.json holds `${name}` placeholders inside JSON strings, so the file itself stays valid
JSON; Terraform fills them with `templatefile()`. `render_definition` does the same substitution
for tests and the local stack, strictly: every placeholder needs a value and every value a
placeholder.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.aws.templatefile import fill, placeholders_in  # noqa: F401 - placeholders_in is read here (tests)

# Every placeholder statemachine.json may hold (Terraform passes exactly these to templatefile).
PLACEHOLDERS = (
    "function_arn",
    "cluster_arn",
    "task_definition_arn",
    "container_name",
    "subnet_ids",  # comma-separated
    "security_group_ids",  # comma-separated
    "max_concurrency",  # a positive integer, as a string
    "small_job_bytes",  # an integer, as a string
)


def statemachine_path() -> Path:
    """statemachine.json at the repository root (two levels above this package)."""
    return Path(__file__).resolve().parent.parent.parent / "statemachine.json"


def render_definition(values: dict[str, str], template: str | None = None) -> str:
    """statemachine.json (or `template`) with each `${name}` replaced by values[name], as
    Terraform's templatefile does; raises ValueError naming a missing or unexpected value
    (TypeError for a value that is not a string)."""
    text = statemachine_path().read_text(encoding="utf-8") if template is None else template
    return fill(text, values, "statemachine template")
