"""Embulk's `stop_on_invalid_record` (csv, json and jsonl parsers), mapped onto the error threshold.

Bad records always go to exec.error_output with their object, line and reason; what the option
decides is when they fail the job:
- true: at the first one (exec.max_errors 0); a config that also allows errors in exec is refused.
- false (Embulk's default): never, unless exec.max_errors or exec.max_error_rate says otherwise.
- absent: exec's threshold alone (whose default, 0, fails the job at the first bad record).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipelines.engine.errors import ConfigError


def exec_for(stop_on_invalid_record: bool | None, exec_settings: Any, where: str) -> Any:
    """`exec_settings` with the error threshold that `stop_on_invalid_record` asks for."""
    if stop_on_invalid_record is None:
        return exec_settings
    allows = exec_settings.max_errors not in (None, 0) or exec_settings.max_error_rate is not None
    if stop_on_invalid_record:
        if allows:
            raise ConfigError(
                "stop_on_invalid_record: true stops at the first invalid record, but exec allows some "
                "(max_errors or max_error_rate): remove one of them",
                where=f"{where}.stop_on_invalid_record",
            )
        return dataclasses.replace(exec_settings, max_errors=0)
    if allows:
        return exec_settings
    return dataclasses.replace(exec_settings, max_error_rate=1.0)  # every bad record skipped (and written)
