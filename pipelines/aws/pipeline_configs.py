"""What a request to run a pipeline names, checked the same way by the Lambda's tasks, the HTTP API
and the triggers: the pipeline (a config under the configs folder, by its name) and its params
(the config's template variables)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError

PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
CONFIGS_ENV = "PIPELINES_CONFIGS"


def configs_dir() -> Path:
    """$PIPELINES_CONFIGS (the image sets /app/configs), or the configs/ folder beside the package (a checkout)."""
    return Path(os.environ.get(CONFIGS_ENV) or Path(__file__).resolve().parents[2] / "configs")


def config_path(pipeline: object) -> Path:
    """The config of a pipeline named in a request; only names of configs that exist are accepted."""
    if not isinstance(pipeline, str) or not PIPELINE_NAME.match(pipeline):
        raise ConfigError(f"pipeline must be a config name like send_audience_to_kafka, got {pipeline!r}")
    path = configs_dir() / f"{pipeline}.yml.liquid"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yml.liquid") for p in configs_dir().glob("[!_]*.yml.liquid"))
        raise ConfigError(f"no pipeline '{pipeline}' (known: {', '.join(known)})")
    return path


def params_of(event: dict[str, Any]) -> dict[str, str]:
    """The "params" of an event or request (none: {}), as the config's template variables."""
    from pipelines.engine.config import params_from

    return params_from(event.get("params") or {}, "params must be an object of strings")
