"""The HTTP API: submit an import, read a job, list jobs. One function, three front ends.

    POST /imports         {"pipeline": NAME, "params": {...}, "job_id"?: ID}
                          -> 202 {"job_id", "status": "QUEUED", "execution_arn"}
                             400 unknown pipeline, bad params or job id, a config error (an undefined
                                 template variable, ...), bad JSON
                             409 the job id exists already ({"error", "job_id", "status"})
                             502 the execution could not be started (the job is marked FAILED with the cause)
    GET  /jobs/{id}       -> 200 JobRecord.to_api() and "params" | 404 ("progress": the shards' counts as
                             they commit, rows/s, seconds left; pipelines/aws/progress.py)
    GET  /jobs?status=S&limit=N   -> 200 {"jobs": [...]}, newest first (limit 1..1000, default 50)

Answers are JSON objects; errors are ``{"error": message}``. Params whose names look secret
(pipelines.engine.redact.is_secret_name) are shown as ******, and their values are masked wherever else
they would appear (an error's cause, say).

- :func:`handle_request` is the logic, with the job store and the execution starter passed in.
- :func:`lambda_api` adapts an API Gateway HTTP API (payload format 2.0) event.
- :func:`serve` runs a small threaded HTTP server around it (``pipelines api serve``).

The execution is named after the job id, so a duplicate start is refused by Step Functions as
well as by the conditional create in DynamoDB.
"""

from __future__ import annotations

import base64
import functools
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pipelines.aws.executions import JOB_ID, StartExecution, execution_input, state_machine_arn, step_functions_starter
from pipelines.aws.pipeline_configs import config_path, params_of
from pipelines.engine.errors import ConfigError, PipelineError

MAX_BODY = 1 << 20
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
ROUTES = {"/imports": ("POST",), "/jobs": ("GET",), "/jobs/{id}": ("GET",)}


class HttpError(Exception):
    def __init__(self, http_status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.answer = http_status, {"error": message, **extra}


def handle_request(
    method: str, path: str, body: bytes | None, *, store: Any, start_execution: StartExecution
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for one request. ``path`` may carry a query string."""
    try:
        return _route(method.upper(), path, body, store, start_execution)
    except HttpError as exc:
        return exc.status, exc.answer
    except PipelineError as exc:  # the job store failing (DynamoDB unreachable, table missing, ...)
        return 503, {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one request must not take the server down
        traceback.print_exc(file=sys.stderr)
        return 500, {"error": f"internal error: {type(exc).__name__}"}


def _route(method: str, path: str, body: bytes | None, store: Any, start_execution: StartExecution) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(path)
    route = parts.path.rstrip("/") or "/"
    query = parse_qs(parts.query, keep_blank_values=True)
    if route == "/imports":
        _allow(method, "/imports")
        return _submit(_json_body(body), store, start_execution)
    if route == "/jobs":
        _allow(method, "/jobs")
        return _list(query, store)
    if route.startswith("/jobs/") and route.count("/") == 2:
        _allow(method, "/jobs/{id}")
        return _get(unquote(route.removeprefix("/jobs/")), store)
    raise HttpError(404, f"no route {route}: the API has POST /imports, GET /jobs/{{id}} and GET /jobs")


def _allow(method: str, route: str) -> None:
    allowed = ROUTES[route]
    if method not in allowed:
        raise HttpError(405, f"{method} is not allowed on {route} (only {', '.join(allowed)})", allow=list(allowed))


def _json_body(body: bytes | None) -> dict[str, Any]:
    if not body:
        raise HttpError(400, 'the request needs a JSON body like {"pipeline": "send_audience_to_kafka", "params": {...}}')
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, f"the body must be a JSON object, not {type(data).__name__}")
    return data


def _submit(request: dict[str, Any], store: Any, start_execution: StartExecution) -> tuple[int, dict[str, Any]]:
    from pipelines.aws.jobs import FAILED, QUEUED, JobExists
    from pipelines.engine.config import load_job
    from pipelines.engine.read import new_job_id

    unknown = sorted(set(request) - {"pipeline", "params", "job_id"})
    if unknown:
        raise HttpError(400, f"unknown field(s) {', '.join(unknown)}: a request has pipeline, params and job_id (optional)")
    try:
        path = config_path(request.get("pipeline"))
        params = params_of(request)
    except ConfigError as exc:
        raise HttpError(400, str(exc)) from None
    pipeline = request["pipeline"]
    job_id = request.get("job_id")
    if job_id is None:
        job_id = new_job_id()
    elif not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise HttpError(400, f"job_id must be 1 to 80 letters, digits, '-' or '_', got {job_id!r}")
    try:
        load_job(path, params)  # the params make a valid config (template, YAML, options); nothing is read
    except ConfigError as exc:
        raise HttpError(400, _mask_text(str(exc), params)) from None
    try:
        store.create(job_id, pipeline, params)
    except JobExists as exc:
        raise HttpError(409, _mask_text(str(exc), exc.job.params), job_id=job_id, status=exc.job.status) from None
    try:
        execution_arn = start_execution(job_id, execution_input(job_id, pipeline, params))
    except Exception as exc:  # noqa: BLE001 - every failure to start is the job's failure
        cause = _describe(exc)
        try:
            store.transition(job_id, FAILED, error={"Error": "StartExecutionFailed", "Cause": cause})
        except Exception as again:  # noqa: BLE001
            cause = f"{cause}; and the job could not be marked FAILED: {again}"
        message = f"job {job_id} was created but its execution could not be started: {cause}"
        raise HttpError(502, _mask_text(message, params), job_id=job_id, status=FAILED) from None
    return 202, {"job_id": job_id, "status": QUEUED, "execution_arn": execution_arn}


def _get(job_id: str, store: Any) -> tuple[int, dict[str, Any]]:
    job = store.get(job_id) if job_id else None
    if job is None:
        raise HttpError(404, f"no job {job_id!r}")
    return 200, job_answer(job)


def _list(query: dict[str, list[str]], store: Any) -> tuple[int, dict[str, Any]]:
    from pipelines.aws.jobs import STATUSES

    unknown = sorted(set(query) - {"status", "limit"})
    if unknown:
        raise HttpError(400, f"unknown query parameter(s) {', '.join(unknown)}: GET /jobs takes status and limit")
    status = (query.get("status") or [None])[-1] or None
    if status is not None:
        status = status.upper()
        if status not in STATUSES:
            raise HttpError(400, f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    limit_text = (query.get("limit") or [""])[-1]
    try:
        limit = int(limit_text) if limit_text else DEFAULT_LIMIT
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise HttpError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit_text!r}")
    return 200, {"jobs": [job_answer(job) for job in store.list(limit=limit, status=status)]}


def job_answer(job: Any) -> dict[str, Any]:
    """JobRecord.to_api() with the job's params, secrets masked (also inside the error's cause)."""
    answer = {**job.to_api(), "params": mask_params(job.params)}
    return _mask_values(answer, job.params)


def mask_params(params: dict[str, Any]) -> dict[str, Any]:
    from pipelines.engine.redact import MASK, is_secret_name

    return {key: (MASK if is_secret_name(key) else value) for key, value in params.items()}


def _secret_values(params: dict[str, Any]) -> list[str]:
    from pipelines.engine.redact import MIN_SECRET_LENGTH, is_secret_name

    found = {str(v) for k, v in params.items() if is_secret_name(k) and len(str(v)) >= MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)


def _mask_text(text: str, params: dict[str, Any]) -> str:
    from pipelines.engine.redact import MASK

    for value in _secret_values(params):
        text = text.replace(value, MASK)
    return text


def _mask_values(node: Any, params: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _mask_values(value, params) for key, value in node.items()}
    if isinstance(node, list):
        return [_mask_values(item, params) for item in node]
    if isinstance(node, str):
        return _mask_text(node, params)
    return node


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------ the store and the starter


_LAMBDA_STATE: dict[str, Any] = {}  # the store and starter, kept across warm invocations


def _from_env() -> tuple[Any, StartExecution]:
    from pipelines.aws.jobs import JobStore

    arn = state_machine_arn()
    store = JobStore.from_env()
    key = f"{arn}|{store.table}|{store.event_bus}"
    if _LAMBDA_STATE.get("key") != key:
        _LAMBDA_STATE.update(key=key, store=store, start=step_functions_starter(arn))
    return _LAMBDA_STATE["store"], _LAMBDA_STATE["start"]


# --------------------------------------------------------------------------- API Gateway


def lambda_api(event: dict[str, Any], *, store: Any = None, start_execution: StartExecution | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API event (payload format 2.0) -> its response. The store and the
    starter come from the environment (PIPELINES_JOBS_TABLE, PIPELINES_STATE_MACHINE_ARN; a
    ConfigError names a missing one) unless given."""
    if store is None or start_execution is None:
        env_store, env_start = _from_env()
        store, start_execution = store or env_store, start_execution or env_start
    context = event.get("requestContext") or {}
    method = str((context.get("http") or {}).get("method") or event.get("httpMethod") or "GET")
    path = str(event.get("rawPath") or (context.get("http") or {}).get("path") or "/")
    stage = context.get("stage")
    if stage and stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
        path = path[len(stage) + 1 :] or "/"  # a named stage prefixes rawPath
    if event.get("rawQueryString"):
        path = f"{path}?{event['rawQueryString']}"
    body = event.get("body")
    data: bytes | None = None
    if body is not None:
        try:
            data = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode("utf-8")
        except ValueError:
            status, answer = 400, {"error": "the body is not valid base64"}
            return _lambda_response(status, answer)
    return _lambda_response(*handle_request(method, path, data, store=store, start_execution=start_execution))


def _lambda_response(status: int, answer: dict[str, Any]) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if status == 405 and answer.get("allow"):
        headers["allow"] = ", ".join(answer["allow"])
    return {"statusCode": status, "headers": headers, "body": json.dumps(answer), "isBase64Encoded": False}


# --------------------------------------------------------------------------- local server


Respond = Callable[[str, str, bytes | None], tuple[int, dict[str, Any]]]


def lambda_forwarder(function_name: str, client: Any = None) -> Respond:
    """Each request as API Gateway's HTTP API passes it on: an event (payload format 2.0) to the
    function (lambda:Invoke, AWS_ENDPOINT_URL honoured), its answer back; a failed function is a 502."""
    if client is None:
        import boto3

        client = boto3.client("lambda")

    def respond(method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        raw_path, _, query = path.partition("?")
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": method, "path": raw_path}, "stage": "$default"},
            "body": base64.b64encode(body).decode() if body else None,
            "isBase64Encoded": bool(body),
        }
        answer = client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError") or not isinstance(payload, dict) or "statusCode" not in payload:
            return 502, {"error": f"the API's function {function_name} failed: {json.dumps(payload)[:1000]}"}
        return int(payload["statusCode"]), json.loads(payload.get("body") or "{}")

    return respond


def make_server(
    port: int, host: str = "127.0.0.1", *, store: Any = None, start_execution: StartExecution | None = None, respond: Respond | None = None
) -> Any:
    """A ThreadingHTTPServer (not yet serving) around ``respond`` (default: handle_request, with the
    store and starter from the environment unless given). Port 0 picks a free one
    (server.server_address tells which)."""
    from http.server import ThreadingHTTPServer

    if respond is None:
        if store is None or start_execution is None:
            env_store, env_start = _from_env()
            store, start_execution = store or env_store, start_execution or env_start
        respond = functools.partial(_respond_here, store=store, start_execution=start_execution)
    server = ThreadingHTTPServer((host, port), _request_handler(respond))
    server.daemon_threads = True
    return server


def _request_handler(respond: Respond) -> type:
    """The server's request handler class: each request's body read (at most MAX_BODY bytes), the
    answer of ``respond`` sent as JSON, one JSON line of access log on stderr."""
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        server_version = "audience-pipelines-api"
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length_text = self.headers.get("Content-Length") or "0"
            try:
                length = int(length_text)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._answer(413 if length > MAX_BODY else 400, {"error": f"bad Content-Length {length_text!r} (at most {MAX_BODY} bytes)"}, close=True)
                return
            body = self.rfile.read(length) if length else None
            status, answer = respond(self.command, self.path, body)
            self._answer(status, answer)

        def _answer(self, status: int, answer: dict[str, Any], close: bool = False) -> None:
            data = json.dumps(answer).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 405 and answer.get("allow"):
                self.send_header("Allow", ", ".join(answer["allow"]))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(json.dumps({"client": self.address_string(), "request": format % args}) + "\n")

    return Handler


def _respond_here(method: str, path: str, body: bytes | None, *, store: Any, start_execution: StartExecution) -> tuple[int, dict[str, Any]]:
    return handle_request(method, path, body, store=store, start_execution=start_execution)


def serve(port: int, host: str = "127.0.0.1", *, function_name: str | None = None, respond: Respond | None = None) -> None:
    """Serves the API on host:port until interrupted (``pipelines api serve --port N``); with
    ``function_name``, by that Lambda function, as API Gateway does; with ``respond``, by it."""
    server = make_server(port, host, respond=respond or (lambda_forwarder(function_name) if function_name else None))
    bound_host, bound_port = server.server_address[:2]
    sys.stderr.write(f"pipelines API on http://{bound_host}:{bound_port} (POST /imports, GET /jobs/{{id}}, GET /jobs); Ctrl-C stops it\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
