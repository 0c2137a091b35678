"""A moto server that runs the real statemachine.json: Step Functions execution on, plus bridges.

    python -m pipelines.devstack.workflow_server --port 5001

moto (5.2.5) interprets ASL for real once ``stepfunctions.execute_state_machine`` is on, but a
few pieces this workflow needs do not run in it. Each bridge below is one small function that
patches one moto function, with a docstring saying what moto lacks and what the bridge does:

    a. ``bridge_service_parameters``  SFN service integrations: PascalCase parameters -> boto names
    b. ``bridge_lambda_invoke``       Lambda invoke -> ``pipelines.aws.handler.handler`` in this process
                                      (a function with environment variables: in processes of its own)
    c. ``bridge_ecs_run_task``        ECS RunTask -> a ``python -m pipelines ...`` subprocess per task
       ``bridge_ecs_sync_exit_code``  ``ecs:runTask.sync`` fails the state on a non-zero exit code
       ``bridge_sync_task_retry``     a retried ``.sync`` task runs again (moto times it out at once)
    d. ``bridge_map_failures``        a Distributed Map fails once an item failed beyond tolerance
       ``bridge_fail_state_error_names``  a Fail state may re-raise a ``States.*`` error
    e. ``bridge_events_to_sfn``       an EventBridge rule target that is a state machine starts it
    f. ``bridge_dynamodb_atomic_writes``  one DynamoDB write at a time, each atomic as DynamoDB's
    g.-j. ``module_bridges.BRIDGES``  what the Terraform module's apply and resources need that moto lacks

With ``--image TAG`` (``pipelines dev up --image TAG``), bridges b and c run the image instead of
the checkout, as AWS would: each ECS task is a container of the image with the task's command and
environment (``pipelines.devstack.image.run_command``: read-only root, ``/tmp`` writable, host
network), and each Lambda invocation is served by a warm container of the image through a local
Lambda Runtime API (``pipelines.devstack.lambda_runtime.LambdaPool``).

The server binds 127.0.0.1 only. Everything in this process (the handler run by bridge b, the
SFN engine's own clients) and every shard subprocess (bridge c) reaches AWS through this very
server: ``AWS_ENDPOINT_URL`` and ``MOTO_PORT`` are set to it. ``KAFKA_BOOTSTRAP`` and
``PIPELINES_JOBS_TABLE`` come from the environment the server is started with.

Environment: ``PIPELINES_REPO`` (cwd of shard subprocesses; default the folder holding the
``pipelines`` package), ``PIPELINES_WORKFLOW_LOGS`` (one log file per shard task; default a
temporary folder).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CONTAINER_REASON_MAX = 255  # ECS's limit for a container's reason
IMAGE_ENV = "PIPELINES_WORKFLOW_IMAGE"  # set by serve(): the image tasks and invocations run in, if any


def workflow_image() -> str | None:
    return os.environ.get(IMAGE_ENV) or None


# ----------------------------------------------------------------- a. parameters


def bridge_service_parameters() -> None:
    """moto's copy of the SFN engine (LocalStack's) has ``StateTaskService._normalise_parameters``
    and ``_normalise_response`` stubbed out, so a service integration's PascalCase parameters
    (``Cluster``, ``TaskDefinition``) reach boto3 unconverted and ``ecs:runTask.sync`` fails with
    ``KeyError: 'Cluster'`` (aws-sdk tasks likewise). This restores them as LocalStack has them:
    each key is renamed to the member of the operation's input shape it matches case-insensitively
    (botocore's service model), responses the other way (``tasks`` -> ``Tasks``)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    def _normalise_parameters(self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        operation = _operation_model(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
        if operation is not None and operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    def _normalise_response(self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        operation = _operation_model(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
        if operation is not None and operation.output_shape is not None:
            self._from_boto_response(response, operation.output_shape)

    StateTaskService._normalise_parameters = _normalise_parameters
    StateTaskService._normalise_response = _normalise_response


@functools.cache
def _operation_model(service: str, action: str) -> Any:
    """botocore's model of ``service``'s operation whose snake_case name is ``action`` (None if unknown)."""
    import botocore.session
    from botocore import xform_name
    from botocore.exceptions import UnknownServiceError

    try:
        model = botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        return None
    name = next((op for op in model.operation_names if xform_name(op) == action), None)
    return model.operation_model(name) if name else None


# ---------------------------------------------------------------------- b. lambda


def bridge_lambda_invoke() -> None:
    """With ``lambda.use_docker`` off, moto's ``LambdaSimpleBackend.invoke`` echoes the payload
    back and runs no code (there is no setting to run a Python callable). This makes invoking
    any function run ``pipelines.aws.handler.handler(payload)`` in this process and answer its JSON;
    an exception comes back as ``X-Amz-Function-Error: Unhandled`` with
    ``{"errorType": <exception class name>, "errorMessage": str(exc)}``, as AWS's Python runtime
    answers, so a Retry or Catch on ``TransientRunError`` matches. The function's code is ignored;
    its environment variables are not (``invoke_function``)."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any) -> bytes:
        answer, failed = invoke_function(body or b"{}", function=function_name, account=self.account_id, region=self.region_name)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return answer

    LambdaSimpleBackend.invoke = invoke


LAMBDAS: Any = None  # the LambdaPool of the image, when there is one
_LAMBDAS_LOCK = threading.Lock()


def invoke_function(event: bytes | str, function: str = "", account: str = "", region: str = "") -> tuple[bytes, bool]:
    """One invocation of ``function``: (its JSON answer, whether it failed). With ``--image``, by a
    warm container of the image; else a function with environment variables (as Terraform creates
    it) in a warm process of its own (``lambda_process``); else in this process
    (``pipelines.aws.handler.handler``). Containers and processes get the function's variables over
    the server's environment, as Lambda gives its code the function's environment."""
    global LAMBDAS
    image = workflow_image()
    name, variables = _function_config(function, account, region)
    payload = event.encode() if isinstance(event, str) else event
    if image:
        from pipelines.devstack.lambda_runtime import LambdaPool

        with _LAMBDAS_LOCK:
            if LAMBDAS is None:
                LAMBDAS = LambdaPool(image, Path(os.environ["PIPELINES_WORKFLOW_LOGS"]))
        return LAMBDAS.invoke_container(payload, name, variables).answer()
    if variables:
        return function_processes().invoke_function(name, variables, payload).answer()
    from pipelines.aws.handler import handler

    try:
        return json.dumps(handler(json.loads(event))).encode(), False
    except Exception as exc:  # noqa: BLE001 - every error goes back to the caller, as Lambda does
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode(), True


def _function_config(function: str, account: str, region: str) -> tuple[str, dict[str, str]]:
    """The function's name and environment variables in moto's record (none for an unknown one)."""
    if not function:
        return "", {}
    from pipelines.devstack.lambda_process import function_config

    return function_config(account, region, function)


_PROCESSES: Any = None  # lambda_process.FunctionProcesses: the functions with environment variables


def function_processes() -> Any:
    global _PROCESSES
    from pipelines.devstack.lambda_process import FunctionProcesses

    with _LAMBDAS_LOCK:
        if _PROCESSES is None:
            _PROCESSES = FunctionProcesses(Path(os.environ["PIPELINES_WORKFLOW_LOGS"]), repo_root())
        return _PROCESSES


# ------------------------------------------------------------------------- c. ecs


class ShardProcesses:
    """The ``pipelines`` subprocesses started for ECS tasks, by task ARN; stopped on shutdown."""

    def __init__(self) -> None:
        self.by_task: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.lock = threading.Lock()

    def start(self, task_arn: str, command: list[str], environment: dict[str, str]) -> subprocess.Popen[bytes]:
        logs = Path(os.environ["PIPELINES_WORKFLOW_LOGS"])  # set by configure()
        logs.mkdir(parents=True, exist_ok=True)
        task_id = task_arn.rsplit("/", 1)[-1]
        log_path = logs / f"task-{task_id}.log"
        argv, env = self.launch(f"task-{task_id}", command, environment)
        with open(log_path, "wb") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                argv, cwd=repo_root(), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        with self.lock:
            self.by_task[task_arn] = process
            self.logs[task_arn] = log_path
        return process

    @staticmethod
    def launch(name: str, command: list[str], environment: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """The task's process: ``python -m pipelines COMMAND`` of the checkout, or with an image, a
        container of it (named ``name``) given the engine's variables of this server and the task's."""
        image = workflow_image()
        if not image:
            return [sys.executable, "-m", "pipelines", *command], {**os.environ, **environment}
        from pipelines.devstack.image import container_env, passed_environment, run_command

        variables = {**passed_environment(os.environ), **environment}
        return run_command(image, command, variables, name=name), container_env({**os.environ, **variables})

    def last_line(self, task_arn: str) -> str:
        """The last non-empty line of the task's log (the CLI prints its error there)."""
        try:
            lines = [line for line in self.logs[task_arn].read_text(errors="replace").splitlines() if line.strip()]
        except (KeyError, OSError):
            return ""
        return lines[-1].strip() if lines else ""

    def stop_all(self) -> None:
        """SIGTERM to every running task (podman passes it on to a container's first process), then
        SIGKILL to what is left after 10 s."""
        with self.lock:
            running = {arn: p for arn, p in self.by_task.items() if p.poll() is None}
        for process in running.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for arn, process in running.items():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                if workflow_image():
                    from pipelines.devstack.image import stop

                    stop(f"task-{arn.rsplit('/', 1)[-1]}", "KILL")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


SHARDS = ShardProcesses()


def repo_root() -> Path:
    """$PIPELINES_REPO, or the folder holding the ``pipelines`` package (configs/ paths are relative to it)."""
    configured = os.environ.get("PIPELINES_REPO")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent.parent


def bridge_ecs_run_task() -> None:
    """moto's ECS runs no container: ``EC2ContainerServiceBackend.run_task`` only records the task,
    and ``describe_tasks`` shows it STOPPED with exit code 0 at once. For a task run with a
    container override holding a ``command``, this starts ``python -m pipelines <command...>``
    (environment: this server's, the task definition container's ``environment`` over it (as
    Terraform defines it), then the override's; cwd: the repository root;
    output: ``$PIPELINES_WORKFLOW_LOGS/task-<id>.log``). ``describe_tasks`` then reports the task
    RUNNING while the process runs, and STOPPED (``stopCode`` EssentialContainerExited) with the
    container's ``exitCode`` = the process's exit code once it has exited (128 + N when signal N killed
it, as ECS reports it); a failed container's
    ``reason`` holds the last line of its log (a local extra: Fargate leaves it empty for an
    application's own exit). Tasks without a command override are left to moto."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original_run_task = EC2ContainerServiceBackend.run_task
    original_describe_tasks = EC2ContainerServiceBackend.describe_tasks

    def run_task(self: Any, cluster_str: str, task_definition_str: str, count: int, overrides: dict | None, *args: Any, **kwargs: Any) -> list:
        tasks = original_run_task(self, cluster_str, task_definition_str, count, overrides, *args, **kwargs)
        override = next((o for o in (overrides or {}).get("containerOverrides", []) if o.get("command")), None)
        for task in tasks if override else []:
            defined = _container_environment(self.describe_task_definition(task.task_definition_arn), override.get("name"))
            environment = {**defined, **{e["name"]: e.get("value", "") for e in override.get("environment", [])}}
            SHARDS.start(task.task_arn, [str(arg) for arg in override["command"]], environment)
            task._transitions = []  # moto's state model would move it to STOPPED on the next look
            task.status = "RUNNING"
            task.containers[0].last_status = "RUNNING"
            task.containers[0].exitCode = None
        return tasks

    def describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> list:
        described = original_describe_tasks(self, cluster_str, tasks)
        for task in described:
            process = SHARDS.by_task.get(task.task_arn)
            if process is None or process.poll() is None or task.status == "STOPPED":
                continue
            container = task.containers[0]
            # A process killed by a signal: ECS reports the container's exit code as the shell does, 128 + signal.
            container.exitCode = process.returncode if process.returncode >= 0 else 128 - process.returncode
            container.last_status = "STOPPED"
            if process.returncode != 0:
                container.reason = SHARDS.last_line(task.task_arn)[:CONTAINER_REASON_MAX]
            task.desired_status = task.status = "STOPPED"
            task.stop_code = "EssentialContainerExited"
            task.stopped_reason = "Essential container in task exited"
        return described

    EC2ContainerServiceBackend.run_task = run_task
    EC2ContainerServiceBackend.describe_tasks = describe_tasks


def _container_environment(task_definition: Any, name: str | None) -> dict[str, str]:
    """The ``environment`` of the task definition's container ``name`` (or its first), as a dict."""
    containers = list(task_definition.container_definitions or [])
    container = next((c for c in containers if c.get("name") == name), containers[0] if containers else {})
    return {str(e["name"]): str(e.get("value", "")) for e in container.get("environment") or []}


def _task_failed(env: Any, error_type: Any, cause: str, **details: Any) -> Any:
    """The FailureEventException moto's engine raises for a failed task: `error_type` (a
    StatesErrorNameType) with `cause`, and extra TaskFailedEventDetails fields such as the resource."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error_type),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(error=error_type.to_name(), cause=cause, **details)
            ),
        )
    )


def bridge_ecs_sync_exit_code() -> None:
    """moto's ``StateTaskServiceEcs._build_sync_resolver`` (``ecs:runTask.sync``) succeeds as soon
    as the task is STOPPED, whatever its exit code. Step Functions fails the state with
    ``States.TaskFailed`` (cause: the task's description as JSON) when an essential container
    exited non-zero or never ran; this wraps the resolver to do the same."""
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )

    original = StateTaskServiceEcs._build_sync_resolver

    def _build_sync_resolver(self: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
        resolve = original(self, env, *args, **kwargs)

        def checked() -> Any:
            task = resolve()
            if task and any(c.get("ExitCode") != 0 for c in task.get("Containers", [])):
                raise _task_failed(
                    env,
                    StatesErrorNameType.StatesTaskFailed,
                    json.dumps(task, default=str),
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                )
            return task

        return checked

    StateTaskServiceEcs._build_sync_resolver = _build_sync_resolver


def bridge_sync_task_retry() -> None:
    """moto's ``StateTaskServiceCallback._eval_integration_pattern`` (``.sync`` tasks of services
    that also support ``.waitForTaskToken``, ECS among them) interrupts the state's callback
    endpoint when an attempt ends, and a retried attempt reuses that endpoint: it reads as timed
    out at once, so every retry of ``ecs:runTask.sync`` fails with ``States.Timeout`` without
    running. This gives each attempt a fresh endpoint under the same token."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    original = StateTaskServiceCallback._eval_integration_pattern

    def _eval_integration_pattern(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        token = env.states.context_object.context_object_data.get("Task", {}).get("Token")
        endpoint = env.callback_pool_manager.get(token) if token else None
        if endpoint is not None and endpoint._notify_event.is_set():
            env.callback_pool_manager._pool[token] = CallbackEndpoint(callback_id=token)
        original(self, env, *args, **kwargs)

    StateTaskServiceCallback._eval_integration_pattern = _eval_integration_pattern


# ------------------------------------------------------------------------- d. map


def bridge_map_failures() -> None:
    """moto's ``DistributedIterationComponent._map_run`` counts a failed item (one whose child
    execution failed after its retries) and carries on: the Map succeeds with a null in its
    results, whatever ``ToleratedFailureCount``/``Percentage`` say. Step Functions fails the Map
    with ``States.ExceedToleratedFailureThreshold`` once more items failed than tolerated (both
    default to 0). This checks the map run's item counters after the run and raises that error;
    its cause names the first failed item's error and cause (recorded by wrapping
    ``DistributedItemProcessorWorker._eval_job``)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (
        DistributedItemProcessorWorker,
    )
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError

    original_eval_job = DistributedItemProcessorWorker._eval_job
    original_map_run = DistributedIterationComponent._map_run

    def _eval_job(self: Any, env: Any, job: Any) -> None:
        original_eval_job(self, env, job)
        state = env.program_state()
        if isinstance(state, ProgramError):
            error = state.error or {}
            failures = self._map_run_record.__dict__.setdefault("bridge_failures", [])
            failures.append((job.job_index, error.get("error"), error.get("cause")))

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        original_map_run(self, env, eval_input)
        cause = _tolerance_exceeded(eval_input)
        if cause is not None:
            raise _task_failed(env, StatesErrorNameType.StatesExceedToleratedFailureThreshold, cause)

    DistributedItemProcessorWorker._eval_job = _eval_job
    DistributedIterationComponent._map_run = _map_run


def _tolerance_exceeded(eval_input: Any) -> str | None:
    """The cause of a Map run that failed more items than it tolerates, or None."""
    record = eval_input.map_run_record
    items = record.item_counter
    failed = items.failed.get() + items.timed_out.get() + items.aborted.get()
    total = items.total.get()
    if failed == 0:
        return None
    over_count = failed > eval_input.tolerated_failure_count
    over_percentage = 100.0 * failed / max(total, 1) > eval_input.tolerated_failure_percentage
    if not (over_count and over_percentage):
        return None
    cause = "The specified tolerated failure threshold was exceeded"
    first = sorted(record.__dict__.get("bridge_failures", []), key=lambda f: f[0])[:1]
    if first:
        index, error, item_cause = first[0]
        cause += f" ({failed} of {total} items failed; item {index}: {error}: {item_cause})"
    return cause


def bridge_fail_state_error_names() -> None:
    """moto's ``StateFail._eval_state`` wraps the error of a Fail state in a ``CustomErrorName``,
    which refuses names starting with ``States.``; so a Fail state re-raising a caught
    ``States.TaskFailed`` (``"ErrorPath": "$.error.Error"``, as ours does) ends the execution with
    ``States.Runtime`` instead. Step Functions fails the execution with that error as given; this
    lets the Fail state use any name it resolves at run time."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import (
        ErrorName,
    )
    from moto.stepfunctions.parser.asl.component.state.fail import state_fail

    class RuntimeErrorName(CustomErrorName):
        def __init__(self, error_name: str | None):
            ErrorName.__init__(self, error_name=error_name)

    state_fail.CustomErrorName = RuntimeErrorName


# ---------------------------------------------------------------------- e. events


def bridge_events_to_sfn() -> None:
    """moto's ``Rule.send_to_targets`` raises NotImplementedError for a Step Functions target (and
    the S3 notification path swallows it, so nothing starts). This delivers a matching event to
    each target whose ARN is a state machine by starting an execution with the input AWS would
    give: the target's ``Input`` (constant JSON), else its ``InputPath`` applied to the event,
    else its ``InputTransformer`` (``InputPathsMap`` + ``InputTemplate`` with ``<name>``
    placeholders), else the event itself. The execution's name is derived from the rule, target
    and event, so the very same event delivered twice starts one execution (moto, like AWS, treats
    a repeated name with the same input as the same execution). Other targets are left to moto."""
    from moto.events.models import Rule
    from moto.stepfunctions.responses import get_backend

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict, transform_input: bool = True) -> None:
        machines = [t for t in self.targets if re.match(r"^arn:[^:]+:states:[^:]*:[^:]*:stateMachine:", t["Arn"])]
        functions = [t for t in self.targets if re.match(r"^arn:[^:]+:lambda:[^:]*:[^:]*:function:", t["Arn"])]
        if (machines or functions) and self.event_pattern.matches_event(original_event):
            event = {k: v for k, v in original_event.items() if k != "ingestion-time"}
            if isinstance(event.get("time"), int | float):  # moto keeps epoch seconds; events carry ISO 8601
                event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["time"]))
            for target in machines:
                arn = target["Arn"]
                region, account = arn.split(":")[3], arn.split(":")[4]
                digest = hashlib.sha256(json.dumps([self.arn, target["Id"], event], sort_keys=True, default=str).encode()).hexdigest()
                get_backend(account, region).start_execution(arn, f"event-{digest[:40]}", _target_input(target, event))
            for target in functions:
                # moto 5.2.5 raises NotImplementedError for Lambda targets too: invoke the function
                # with what the target would receive, as the Lambda bridge does.
                arn = target["Arn"]
                answer, failed = invoke_function(_target_input(target, event), function=arn, account=arn.split(":")[4], region=arn.split(":")[3])
                if failed:  # an async Lambda invoke: AWS would retry, then drop or DLQ it
                    print(f"lambda target {target['Arn']} failed: {answer.decode(errors='replace')}", file=sys.stderr, flush=True)
        others = [t for t in self.targets if t not in machines and t not in functions]
        if others:
            saved = self.targets
            self.targets = others
            try:
                original(self, original_event, transform_input)
            finally:
                self.targets = saved

    Rule.send_to_targets = send_to_targets


def _target_input(target: dict, event: dict) -> str:
    """What an EventBridge target receives: Input, InputPath, InputTransformer or the event."""
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        return json.dumps(_json_path(target["InputPath"], event))
    transformer = target.get("InputTransformer")
    if not transformer:
        return json.dumps(event)
    values = {name: _json_path(path, event) for name, path in transformer.get("InputPathsMap", {}).items()}
    values["aws.events.event.json"] = event

    def fill(match: re.Match[str]) -> str:
        quoted, name = match.group(1), match.group(2)
        if name not in values:
            return match.group(0)
        value = values[name]
        if quoted:  # "<name>": the value's text goes inside the quotes, JSON-escaped
            return json.dumps("" if value is None else value if isinstance(value, str) else json.dumps(value))
        return value if isinstance(value, str) else json.dumps(value)  # as AWS: a string unquoted stays bare

    return re.sub(r'("?)<([A-Za-z0-9_.-]+)>\1', fill, transformer["InputTemplate"])


def _json_path(path: str, data: Any) -> Any:
    """A simple JSONPath ($, $.a.b, $.a[0]) as EventBridge's InputPathsMap uses; None if absent."""
    value = data
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


# ---------------------------------------------------------------------- f. dynamodb

DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")


def bridge_dynamodb_atomic_writes() -> None:
    """moto's DynamoDB checks a ConditionExpression and applies the update without a lock, and the
    server is threaded: two shards committing at once (MaxConcurrency 2), each adding its counts to
    its job's item with a conditional ``ADD``, could both read the old numbers and one addition be
    lost. Real DynamoDB applies each write atomically. This runs moto's write requests one at a
    time (reads are left concurrent), which restores that guarantee per request and nothing more."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()

    def one_at_a_time(method: Any) -> Any:
        @functools.wraps(method)
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return write

    for name in DYNAMODB_WRITES:
        setattr(DynamoHandler, name, one_at_a_time(getattr(DynamoHandler, name)))


# ------------------------------------------------------------------------ server

BRIDGES = (
    bridge_service_parameters,
    bridge_lambda_invoke,
    bridge_ecs_run_task,
    bridge_ecs_sync_exit_code,
    bridge_sync_task_retry,
    bridge_map_failures,
    bridge_fail_state_error_names,
    bridge_events_to_sfn,
    bridge_dynamodb_atomic_writes,
)


def all_bridges() -> tuple[Any, ...]:
    """The bridges above, then those for the Terraform module (``module_bridges``)."""
    from pipelines.devstack.module_bridges import BRIDGES as MODULE_BRIDGES

    return BRIDGES + MODULE_BRIDGES


def configure(port: int) -> None:
    """This process's environment and moto's config: execution on, Lambda without Docker, and every
    client (SFN engine, handler, shard subprocesses) pointed at this server."""
    from moto.core.config import default_user_config

    endpoint = f"http://{HOST}:{port}"
    os.environ["MOTO_PORT"] = str(port)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("PIPELINES_WORKFLOW_LOGS"):
        os.environ["PIPELINES_WORKFLOW_LOGS"] = tempfile.mkdtemp(prefix="workflow-logs-")
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}


def serve(port: int, image: str | None = None) -> None:
    """Applies the bridges and serves until SIGTERM or SIGINT; then stops the shard subprocesses
    (and with ``image``, the Lambda containers)."""
    from moto.server import ThreadedMotoServer

    configure(port)
    if image:
        os.environ[IMAGE_ENV] = image
    for bridge in all_bridges():
        bridge()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    runs_in = f"the image {image}" if image else "this checkout"
    print(f"workflow server on http://{HOST}:{port}, tasks and invocations in {runs_in} (logs in {os.environ['PIPELINES_WORKFLOW_LOGS']})", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        SHARDS.stop_all()
        if _PROCESSES is not None:
            _PROCESSES.stop_all()
        if LAMBDAS is not None:
            LAMBDAS.stop_all()
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.devstack.workflow_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--image", help="run ECS tasks and Lambda invocations in this image (bin/image build), not the checkout")
    args = parser.parse_args(argv)
    serve(args.port, args.image)


if __name__ == "__main__":
    main()
