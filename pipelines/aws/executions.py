"""Starting the state machine: one Step Functions execution per job, named after the job id, so
Step Functions refuses a second start of the same job. Used by the HTTP API and the triggers."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from pipelines.engine.errors import ConfigError

# (job id, execution input) -> the execution's ARN
StartExecution = Callable[[str, dict[str, Any]], str]

STATE_MACHINE_ENV = "PIPELINES_STATE_MACHINE_ARN"
# A job id: a valid Step Functions execution name (1..80 of these), also safe in Kafka
# transactional ids, file names and S3 keys.
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def execution_input(job_id: str, pipeline: str, params: dict[str, Any]) -> dict[str, Any]:
    """What the state machine is started with (its states read these three)."""
    return {"job_id": job_id, "pipeline": pipeline, "params": params}


def state_machine_arn() -> str:
    """The state machine to start: $PIPELINES_STATE_MACHINE_ARN, or a ConfigError saying it is not set."""
    arn = os.environ.get(STATE_MACHINE_ENV, "").strip()
    if not arn:
        raise ConfigError(f"{STATE_MACHINE_ENV} is not set: it names the state machine that runs the imports")
    return arn


def step_functions_starter(arn: str | None = None, client: Any = None) -> StartExecution:
    """start_execution for the API and the triggers: StartExecution of the state machine (default:
    from $PIPELINES_STATE_MACHINE_ARN), the execution named after the job id; returns its ARN."""
    arn = arn or state_machine_arn()
    if client is None:
        from pipelines.aws.jobs import _client

        client = _client("stepfunctions")

    def start_execution(job_id: str, execution_input: dict[str, Any]) -> str:
        response = client.start_execution(
            stateMachineArn=arn, name=job_id, input=json.dumps(execution_input, sort_keys=True, separators=(",", ":"))
        )
        return str(response["executionArn"])

    return start_execution
