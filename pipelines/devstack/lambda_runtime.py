"""Lambda, locally, for the image: the Lambda Runtime API served to containers of the image.

A container-image Lambda function is the image's entrypoint started with ``AWS_LAMBDA_RUNTIME_API``
set; awslambdaric in it asks that API for the next invocation, runs ``pipelines.aws.handler.handler``
and posts the result back. This module is the other side, following the documented Runtime API
(version 2018-06-01) on 127.0.0.1:

    GET  /2018-06-01/runtime/invocation/next              the next event (held until there is one),
                                                          with Lambda-Runtime-Aws-Request-Id, -Deadline-Ms,
                                                          -Invoked-Function-Arn and -Trace-Id
    POST /2018-06-01/runtime/invocation/{id}/response     the function's result
    POST /2018-06-01/runtime/invocation/{id}/error        its error: {errorType, errorMessage, stackTrace}
    POST /2018-06-01/runtime/init/error                   the runtime could not start

- :class:`RuntimeApi` is one execution environment's API, and :meth:`RuntimeApi.invoke` one
  synchronous invocation (RequestResponse): the result, or the error as Lambda reports it
  (the function's own ``errorType``; ``Runtime.ExitError`` if the container ended mid-invocation;
  ``Sandbox.Timedout`` past the function's timeout).
- :class:`ExecutionEnvironment` is an execution environment: a RuntimeApi and the process serving it;
  :class:`LambdaContainer` is one in a container of the image (``pipelines.devstack.image.run_command``:
  read-only root, ``/tmp`` writable, host network), ``lambda_process.LambdaProcess`` one in a process
  of this checkout.
- :class:`WarmPool` keeps environments warm and starts another when all are busy, as Lambda scales
  out; :class:`LambdaPool` is the image's, which the workflow server (``--image``) invokes the function through.
- :func:`invoke_once` is ``bin/image invoke EVENT``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

API_PREFIX = "/2018-06-01/runtime"
FUNCTION_NAME = "audience-pipelines"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
DEFAULT_TIMEOUT_S = 900.0  # Lambda's maximum, as terraform/lambda.tf sets it
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # a synchronous invocation's payload limit


@dataclass
class Invocation:
    request_id: str
    event: bytes
    deadline: float  # epoch seconds
    done: threading.Event
    result: bytes = b""
    error: dict[str, Any] | None = None

    def answer(self) -> tuple[bytes, bool]:
        """(the JSON answer, whether the function failed), as the Lambda bridge returns it."""
        return (json.dumps(self.error).encode(), True) if self.error else (self.result, False)


class RuntimeApi:
    """The Runtime API of one execution environment, on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Invocation] = queue.Queue()
        self.by_id: dict[str, Invocation] = {}
        self.init_error: dict[str, Any] | None = None
        self.first_answer_at: float | None = None  # time.monotonic() of the first result or error
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name=f"runtime-api-{self.address}", daemon=True).start()

    def invoke(self, event: bytes, timeout: float, alive: Any = lambda: True) -> Invocation:
        """Hands ``event`` to the runtime and waits for its answer; ``alive()`` false means the
        container has ended, which fails the invocation as Lambda does."""
        invocation = Invocation(str(uuid.uuid4()), event, time.time() + timeout, threading.Event())
        self.by_id[invocation.request_id] = invocation
        self.pending.put(invocation)
        while not invocation.done.wait(0.05):
            if self.init_error is not None:
                invocation.error = self.init_error
            elif not alive():
                invocation.error = _lambda_error("Runtime.ExitError", f"RequestId: {invocation.request_id} Error: Runtime exited before answering")
            elif time.time() > invocation.deadline:
                invocation.error = _lambda_error("Sandbox.Timedout", f"RequestId: {invocation.request_id} Error: Task timed out after {timeout:.2f} seconds")
            else:
                continue
            invocation.done.set()
        return invocation

    def answer(self, request_id: str, kind: str, body: bytes) -> int:
        """Records a posted response or error; the HTTP status to reply with."""
        invocation = self.by_id.get(request_id)
        if invocation is None or invocation.done.is_set():
            return 400
        if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
            invocation.error = _lambda_error("Function.ResponseSizeTooLarge", f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")
        elif kind == "response":
            invocation.result = body
        else:
            invocation.error = _json_or(body, _lambda_error("Unhandled", body.decode(errors="replace")))
        if self.first_answer_at is None:
            self.first_answer_at = time.monotonic()
        invocation.done.set()
        return 413 if invocation.error and invocation.error["errorType"] == "Function.ResponseSizeTooLarge" else 202

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _lambda_error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message}


def _json_or(body: bytes, default: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return default
    return value if isinstance(value, dict) and "errorType" in value else default


def _handler_class(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path != f"{API_PREFIX}/invocation/next":
                self._reply(404, b'{"errorType": "NotFound"}')
                return
            invocation = api.pending.get()  # held, as Lambda holds it, until an event comes
            self._reply(200, invocation.event, {
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(int(invocation.deadline * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
            })

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = self.path.removeprefix(API_PREFIX).strip("/").split("/")
            if parts == ["init", "error"]:
                api.init_error = _json_or(body, _lambda_error("Runtime.InitError", body.decode(errors="replace")))
                self._reply(202, b'{"status": "OK"}')
            elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                status = api.answer(parts[1], parts[2], body)
                self._reply(status, b'{"status": "OK"}' if status == 202 else b'{"errorType": "InvalidRequestID"}')
            else:
                self._reply(404, b'{"errorType": "NotFound"}')

    return Handler


# --------------------------------------------------------------------------- containers


def lambda_environment(env: Mapping[str, str], runtime_api: str, function_name: str = FUNCTION_NAME) -> dict[str, str]:
    """What a container of the function gets: the engine's variables of ``env`` and Lambda's own."""
    from pipelines.devstack.image import passed_environment

    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    return {
        **passed_environment(env),
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


class ExecutionEnvironment:
    """One execution environment: a RuntimeApi and the process serving it (a subclass starts it)."""

    api: RuntimeApi
    process: subprocess.Popen[bytes]

    def _start(self, command: list[str], env: Mapping[str, str], output: IO[bytes] | int | None, cwd: Path | None = None) -> None:
        """Starts the serving process in its own session, its output (stderr too) to `output`."""
        self.process = subprocess.Popen(
            command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: bytes, timeout: float = DEFAULT_TIMEOUT_S) -> Invocation:
        invocation = self.api.invoke(event, timeout, self.alive)
        if invocation.error and invocation.error.get("errorType") == "Sandbox.Timedout":
            self.stop()  # Lambda ends an environment whose invocation timed out
        return invocation

    def interrupt(self) -> None:
        """Asks the process to end (stop() kills it if it has not within 10 s)."""
        self.process.terminate()

    def stop(self) -> None:
        if self.alive():
            self.interrupt()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.api.close()


class LambdaContainer(ExecutionEnvironment):
    """A container of the image serving a RuntimeApi."""

    def __init__(self, tag: str, env: Mapping[str, str], output: IO[bytes] | int | None, function_name: str = FUNCTION_NAME) -> None:
        from pipelines.devstack.image import container_env, run_command

        self.api = RuntimeApi()
        self.name = f"lambda-{uuid.uuid4().hex[:12]}"
        variables = lambda_environment(env, self.api.address, function_name)
        self.started_at = time.monotonic()
        self._start(run_command(tag, [], variables, name=self.name, tmp_size="512m"), container_env({**os.environ, **variables}), output)

    def cold_start_seconds(self) -> float | None:
        """From the container's start to its first answer."""
        return None if self.api.first_answer_at is None else self.api.first_answer_at - self.started_at

    def interrupt(self) -> None:
        from pipelines.devstack.image import stop

        stop(self.name, "KILL")


class WarmPool:
    """Warm execution environments by key (one function's environment), reused; another started when
    all of a key's are busy, as Lambda scales out. Each one's output goes to its own log in `logs`."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.idle: dict[str, list[ExecutionEnvironment]] = {}
        self.all: list[ExecutionEnvironment] = []
        self.lock = threading.Lock()

    @staticmethod
    def function_key(function_name: str, variables: Mapping[str, str]) -> str:
        """The key of one function's environment: its name and variables."""
        return json.dumps([function_name, dict(sorted(variables.items()))])

    def invoke(self, key: str, start: Callable[[IO[bytes]], ExecutionEnvironment], event: bytes, log_name: str = "lambda") -> Invocation:
        """`event` to an idle environment of `key`, or to a new one from `start(its log)`."""
        environment = self._acquire(key, start, log_name)
        try:
            return environment.invoke(event)
        finally:
            with self.lock:
                if environment.alive():
                    self.idle.setdefault(key, []).append(environment)

    def _acquire(self, key: str, start: Callable[[IO[bytes]], ExecutionEnvironment], log_name: str) -> ExecutionEnvironment:
        with self.lock:
            idle = self.idle.setdefault(key, [])
            while idle:
                environment = idle.pop()
                if environment.alive():
                    return environment
            self.logs.mkdir(parents=True, exist_ok=True)
            with open(self.logs / f"{log_name}-{len(self.all) + 1}.log", "ab") as log:  # the process holds its own copy
                environment = start(log)
            self.all.append(environment)
            return environment

    def stop_all(self) -> None:
        with self.lock:
            environments, self.idle = list(self.all), {}
        for environment in environments:
            environment.stop()


class LambdaPool(WarmPool):
    """Warm containers of the image."""

    def __init__(self, tag: str, logs: Path) -> None:
        super().__init__(logs)
        self.tag = tag

    def invoke_container(self, event: bytes, function_name: str = "", variables: Mapping[str, str] | None = None) -> Invocation:
        """`event` to a warm container of the function: the server's environment with the function's
        ``variables`` over it (as Lambda gives its code the function's environment)."""
        variables = dict(variables or {})
        name = function_name or FUNCTION_NAME
        return self.invoke(self.function_key(function_name, variables), lambda log: LambdaContainer(self.tag, {**os.environ, **variables}, log, name), event)


def invoke_once(tag: str, event: Any) -> int:
    """``bin/image invoke``: one container, one invocation; the result (or error) on stdout, the
    container's output and the cold start on stderr; exit 1 for a function error."""
    container = LambdaContainer(tag, os.environ, sys.stderr.fileno())
    try:
        invocation = container.invoke(json.dumps(event).encode())
        cold = container.cold_start_seconds()
    finally:
        container.stop()
    if cold is not None:
        print(f"cold start: {cold:.2f} s from the container's start to its first answer", file=sys.stderr)
    if invocation.error:
        print(json.dumps(invocation.error))
        return 1
    print(invocation.result.decode())
    return 0
