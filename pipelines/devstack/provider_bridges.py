"""Bridges for the AWS APIs that the Terraform module's apply (hashicorp/aws provider 5.x) calls and
moto (5.2.x) lacks, applied by the workflow server with its other bridges (workflow_server.BRIDGES).

    g. ``bridge_sfn_validate_definition``  Step Functions ValidateStateMachineDefinition
       ``bridge_sfn_list_versions``        Step Functions ListStateMachineVersions

Each is one patch of one moto class, as the workflow server's bridges are, with a docstring saying
what moto lacks and what the bridge answers instead. terraform/examples/local/README.md lists them.
"""

from __future__ import annotations

import json
from typing import Any


def bridge_sfn_validate_definition() -> None:
    """The provider calls ``ValidateStateMachineDefinition`` before it creates or updates an
    ``aws_sfn_state_machine``; moto has no such action (NotImplementedError, a 500 the provider
    retries until its timeout). This answers it with the verdict of moto's own ASL parser, the
    one that runs the executions: ``OK``, or ``FAIL`` with the parser's message as one ERROR
    diagnostic (AWS's validator checks more: unknown fields, unreachable states)."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def validate_state_machine_definition(self: Any) -> ActionResult:
        return ActionResult(validate_definition(self._get_param("definition") or ""))

    StepFunctionResponse.validate_state_machine_definition = validate_state_machine_definition


def validate_definition(definition: str) -> dict[str, Any]:
    """ValidateStateMachineDefinition's answer for ``definition``, from moto's ASL parser."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    try:
        json.loads(definition)
        AmazonStateLanguageParser.parse(definition)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the definition's, reported as a diagnostic
        diagnostic = {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": str(exc)[:1000] or type(exc).__name__}
        return {"result": "FAIL", "diagnostics": [diagnostic], "truncated": False}
    return {"result": "OK", "diagnostics": [], "truncated": False}


def bridge_sfn_list_versions() -> None:
    """The provider lists a state machine's versions after it creates or reads an
    ``aws_sfn_state_machine``; moto keeps the versions (``publish``) but has no such action (a 500
    the provider retries until its timeout). This answers it from moto's record, newest first, as
    Step Functions does (none: the module does not publish versions)."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def list_state_machine_versions(self: Any) -> ActionResult:
        machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
        versions = sorted(getattr(machine, "versions", {}).items(), reverse=True)
        listed = [{"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for _, v in versions]
        return ActionResult({"stateMachineVersions": listed})

    StepFunctionResponse.list_state_machine_versions = list_state_machine_versions


BRIDGES = (bridge_sfn_validate_definition, bridge_sfn_list_versions)
