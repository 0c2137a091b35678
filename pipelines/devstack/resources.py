"""The names of the workflow's resources in the local stack, and what the tests read of an execution.

The resources themselves are created by the Terraform module: ``pipelines dev up`` applies
terraform/examples/local to the stack's emulator (``pipelines.devstack.deploy``, as
``bin/deploy-local`` does). Nothing of the workflow is made by hand any more: the state machine
from ``templatefile``, the Lambda function, the ECS cluster and task definition, the roles, the
jobs table, the bucket, the S3-drop rule, the schedule and the HTTP API are all the module's. What
moto cannot run of them is bridged by the workflow server (terraform/examples/local/README.md has
the list).

The names below are that example's defaults (``name = "audience-pipelines"``, ``bucket_name =
"audiences"``; tests/test_deploy_local.py checks they agree), because the emulator is started
with them in its environment (``aws_emulator.emulator_env``): a Lambda invocation without the
function's environment (the workflow tests' own functions) and ``pipelines run`` in a shell use
the same jobs table, state machine and work dir as the module's function and tasks.
"""

from __future__ import annotations

from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
NAME = "audience-pipelines"  # terraform/examples/local var.name
JOBS_TABLE = f"{NAME}-jobs"
STATE_MACHINE_NAME = NAME
FUNCTION_NAME = NAME
EVENT_BUS = "default"  # S3 events arrive there; status events are published there too
WORK_BUCKET = "audiences"  # terraform/examples/local var.bucket_name: drops/, imports/, exports/, _jobs/, _errors/
EXPORT_PIPELINE = "export_audience_to_s3"  # the module's default scheduled export
EXPORT_SCHEDULE_NAME = f"{NAME}-nightly-export"
EXPORT_SCHEDULE = "cron(0 3 * * ? *)"


def state_machine_arn(region: str = REGION, account: str = ACCOUNT, name: str = STATE_MACHINE_NAME) -> str:
    return f"arn:aws:states:{region}:{account}:stateMachine:{name}"


def largest_payload(events: list[dict[str, Any]]) -> tuple[int, str]:
    """The largest input/output/parameters string (in bytes) of an execution's history events, and
    where it was (`<event type>.<field>`): what Step Functions' 256 KB payload limit applies to."""
    best = (0, "")
    for event in events:
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                for field in ("input", "output", "parameters"):
                    text = details.get(field)
                    if isinstance(text, str) and len(text.encode()) > best[0]:
                        best = (len(text.encode()), f"{event['type']}.{field}")
    return best
