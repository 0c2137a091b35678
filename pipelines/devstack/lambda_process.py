"""A Lambda function's execution environments as processes of this checkout, with the function's own
environment: how the workflow server runs a function that has environment variables, e.g. the one
the Terraform module creates (terraform/examples/local, bin/deploy-local).

A function created by hand without environment variables (``pipelines dev up``, the workflow tests)
is still served in the workflow server's own process, whose environment is made for it. A function
with variables gets what Lambda gives its code: those variables. So each distinct environment gets
warm processes of its own, each ``python -m awslambdaric pipelines.aws.handler.handler`` (what the
image's entrypoint runs on Lambda) fed through a local Lambda Runtime API
(``lambda_runtime.RuntimeApi``), started when all are busy and reused, as Lambda scales out.

The process's environment: the workflow server's (the emulator's endpoint and credentials, PATH,
PYTHONPATH), then the function's variables over it, then Lambda's own (AWS_LAMBDA_*).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from pipelines.devstack.lambda_runtime import ExecutionEnvironment, Invocation, RuntimeApi, WarmPool

HANDLER = "pipelines.aws.handler.handler"


def process_environment(base: Mapping[str, str], function_name: str, variables: Mapping[str, str], runtime_api: str) -> dict[str, str]:
    """``base`` with the function's ``variables`` over it and Lambda's own variables."""
    return {
        **base,
        **variables,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
    }


class LambdaProcess(ExecutionEnvironment):
    """An awslambdaric process of this checkout serving a RuntimeApi, with the function's variables."""

    def __init__(self, function_name: str, variables: Mapping[str, str], output: IO[bytes], cwd: Path) -> None:
        self.api = RuntimeApi()
        env = process_environment(os.environ, function_name, variables, self.api.address)
        self._start([sys.executable, "-m", "awslambdaric", HANDLER], env, output, cwd)


class FunctionProcesses(WarmPool):
    """The warm LambdaProcesses, by (function name, environment)."""

    def __init__(self, logs: Path, cwd: Path) -> None:
        super().__init__(logs)
        self.cwd = cwd

    def invoke_function(self, function_name: str, variables: Mapping[str, str], event: bytes) -> Invocation:
        start = lambda log: LambdaProcess(function_name, variables, log, self.cwd)  # noqa: E731
        return self.invoke(self.function_key(function_name, variables), start, event, f"lambda-{function_name}")


def function_config(account: str, region: str, function: str) -> tuple[str, dict[str, str]]:
    """The name and environment variables of the function named or ARN'd ``function`` in moto's
    Lambda backend; (the given name, {}) when moto does not know it (then the caller serves it as before)."""
    from moto.awslambda.utils import get_backend  # the simple backend, as the workflow server runs without Docker

    try:
        found: Any = get_backend(account, region).get_function(function)
    except Exception:  # noqa: BLE001 - an unknown function: moto's simple backend echoes any invoke
        return function.rsplit(":", 1)[-1], {}
    return str(found.function_name), {str(k): str(v) for k, v in (found.environment_vars or {}).items()}
