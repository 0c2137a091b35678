"""Bridges for what the Terraform module needs from the emulator and moto (5.2.x) lacks: APIs the
apply (hashicorp/aws provider 5.x) calls, and behaviour its resources rely on. The workflow server
applies them with its other bridges (workflow_server.all_bridges).

    g. ``bridge_sfn_validate_definition``  Step Functions ValidateStateMachineDefinition
       ``bridge_sfn_list_versions``        Step Functions ListStateMachineVersions
    h. ``bridge_policy_conditions``        a Deny whose condition key the request lacks does not apply
    i. ``bridge_ecs_task_memory``          a Fargate container without memory of its own gets the task's
    j. ``bridge_s3_delete_marker_dispose`` destroying a bucket whose versioning was suspended, with delete markers in it

Each is one patch of one moto class, as the workflow server's bridges are, with a docstring saying
what moto lacks and what the bridge does instead. terraform/examples/local/README.md lists them.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
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


def bridge_policy_conditions() -> None:
    """moto evaluates a policy statement's ``Condition`` only on the keys a request supplies, and
    counts a key it has no value for as matching: for S3 requests it supplies none, so the module's
    TLS-only bucket policy (Deny ``s3:*`` when ``aws:SecureTransport`` is false) denied every
    object request. IAM does not apply a condition on a key absent from the request (unless the
    operator ends in ``IfExists``). This makes a Deny statement with such a condition not apply
    (NEUTRAL). So the Deny takes effect nowhere locally, as it takes effect on no HTTPS request on
    AWS: the emulator is plain HTTP on loopback, standing for AWS's HTTPS endpoints. Allow
    statements and statements without a Condition are unchanged."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self: Any, action: str, resource: str = "*", principal: str | None = None, incoming_condition_values: Any = None) -> Any:
        result = original(self, action, resource, principal, incoming_condition_values)
        if result == PermissionResult.DENIED and condition_key_missing(self._statement, incoming_condition_values):
            return PermissionResult.NEUTRAL
        return result

    IAMPolicyStatement.is_action_permitted = is_action_permitted


def condition_key_missing(statement: dict[str, Any], values: dict[str, Any] | None) -> bool:
    """Whether the statement's Condition names a key the request has no value for (``...IfExists`` aside)."""
    for operator, pairs in (statement.get("Condition") or {}).items():
        if not operator.endswith("IfExists") and any(key not in (values or {}) for key in pairs):
            return True
    return False


def bridge_ecs_task_memory() -> None:
    """moto's ECS ``run_task`` adds up the containers' ``memory`` (or ``memoryReservation``) and
    fails (TypeError, a 500) for a container without either. On Fargate the container-level memory
    is optional: the task's ``memory`` bounds it. The module's task definition sets only the
    task's. This makes such a container count the task's memory, and changes nothing else."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def _calculate_task_resource_requirements(task_definition: Any) -> dict[str, Any]:
        if all(_container_memory(c) is not None for c in task_definition.container_definitions):
            return original(task_definition)
        task_memory = int(task_definition.memory or 0)
        containers = [c if _container_memory(c) is not None else {**c, "memory": task_memory} for c in task_definition.container_definitions]
        return original(SimpleNamespace(container_definitions=containers))  # it reads nothing else

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(_calculate_task_resource_requirements)


def _container_memory(container: dict[str, Any]) -> Any:
    for key in ("Memory", "MemoryReservation", "memory", "memoryReservation"):
        if container.get(key) is not None:
            return container[key]
    return None


def bridge_s3_delete_marker_dispose() -> None:
    """``terraform destroy`` removes the bucket's ``aws_s3_bucket_versioning`` first, which suspends
    versioning, then deletes every object version (``force_destroy``) before the bucket. On a bucket
    whose versioning is not enabled, moto's ``delete_object`` drops the key with all its versions and
    calls ``dispose()`` on each; its ``FakeDeleteMarker`` has none (AttributeError, a 500 the provider
    retries until its timeout), so a bucket holding a delete marker (an object a job deleted: a
    shard's report, a finished job's files) could not be destroyed. A delete marker holds no data:
    this gives it a ``dispose()`` that does nothing."""
    from moto.s3.models import FakeDeleteMarker

    if not hasattr(FakeDeleteMarker, "dispose"):
        FakeDeleteMarker.dispose = lambda self, garbage=False: None


BRIDGES = (
    bridge_sfn_validate_definition, bridge_sfn_list_versions, bridge_policy_conditions, bridge_ecs_task_memory, bridge_s3_delete_marker_dispose,
)
