"""The Step Functions workflow: statemachine.json at the repository root, and its placeholders.

statemachine.json holds `${name}` placeholders inside JSON strings, so the file itself stays valid
JSON; Terraform fills them with `templatefile()`. `render_definition` does the same substitution
for tests and the local stack, strictly: every placeholder needs a value and every value a
placeholder.
"""

from __future__ import annotations

import re
from pathlib import Path

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

# templatefile's interpolation: `${name}`; `$${` is its escape for a literal `${`.
_PLACEHOLDER = re.compile(r"(?<!\$)\$\{\s*([^}]*?)\s*\}")


def statemachine_path() -> Path:
    """statemachine.json at the repository root (two levels above this package)."""
    return Path(__file__).resolve().parent.parent.parent / "statemachine.json"


def placeholders_in(text: str) -> set[str]:
    """The names of the `${...}` placeholders in a template."""
    return set(_PLACEHOLDER.findall(text))


def render_definition(values: dict[str, str], template: str | None = None) -> str:
    """statemachine.json (or `template`) with each `${name}` replaced by values[name], as
    Terraform's templatefile does; raises ValueError naming a missing or unexpected value
    (TypeError for a value that is not a string)."""
    text = statemachine_path().read_text(encoding="utf-8") if template is None else template
    found = placeholders_in(text)
    missing = sorted(found - values.keys())
    extra = sorted(values.keys() - found)
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"no value for {', '.join(missing)}")
        if extra:
            problems.append(f"no placeholder for {', '.join(extra)}")
        raise ValueError(f"statemachine template: {'; '.join(problems)}")
    for name, value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"statemachine template: the value of {name} must be a string, got {type(value).__name__}")
    rendered = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    return rendered.replace("$${", "${")
