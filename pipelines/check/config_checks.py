"""The first two checks: the template renders with the run's variables, and the config validates."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.check.result import CheckResult, failed, passed
from pipelines.engine.errors import PipelineError

RENDER, VALIDATE = "template", "config"


def render_check(config: Path, variables: Mapping[str, str]) -> tuple[CheckResult, str | None]:
    """(the result, the rendered text or None)."""
    from pipelines.engine.config import render

    try:
        text = render(config, variables)
    except PipelineError as exc:
        return failed(RENDER, str(exc), _render_fix(exc.message)), None
    templated = "rendered with the run's variables" if config.suffix == ".liquid" else "read (plain YAML, not templated)"
    return passed(RENDER, f"{config} {templated}"), text


def _render_fix(message: str) -> str:
    import re

    undefined = re.search(r"\b(?:env|var)\.(\w+)", message) if "undefined" in message else None
    if undefined:
        return f"pass `--var {undefined[1]}=...` or set {undefined[1]} in the environment (the workflow passes the job's params)"
    if "not found" in message:
        return "give the path of a *.yml.liquid or *.yml config"
    return "mend the template where the message points"


def validate_check(config: Path, text: str) -> tuple[CheckResult, Any]:
    """(the result, the Job or None)."""
    from pipelines.engine.config import build_job, parse_yaml

    try:
        job = build_job(parse_yaml(text, str(config)), config)
    except PipelineError as exc:
        return failed(VALIDATE, str(exc), "mend the option it names (`pipelines render CONFIG` shows the rendered YAML)"), None
    return passed(VALIDATE, f"valid: {describe(job)}"), job


def describe(job: Any) -> str:
    """``in s3, out kafka; 6 columns: user_id, country, ...``."""
    from pipelines.engine import registry

    kinds = f"in {registry.name_of('in', type(job.input))}, out {registry.name_of('out', type(job.output))}"
    names = job.schema.names
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return f"{kinds}; {len(names)} columns: {shown}"
