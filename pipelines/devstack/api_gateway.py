"""The HTTP API that Terraform created in the emulator, served on 127.0.0.1: moto stores an API
Gateway HTTP API (its routes, integrations and stage) but serves none of it, so this bridge does
what API Gateway does with each request:

1. finds the route of the API (``apigatewayv2 get_routes``) whose key matches the request
   (``POST /imports``, ``GET /jobs/{id}``: a ``{name}`` matches one path segment; else
   ``$default``), or answers 404 ``{"message": "Not Found"}`` as API Gateway does;
2. follows the route's target to its integration (``AWS_PROXY``, payload format 2.0) and invokes
   the integration's Lambda function with the payload 2.0 event (``lambda:Invoke`` on the emulator,
   where the workflow server runs the function's code with its environment);
3. answers the function's ``statusCode`` and ``body``; a failed function is a 502.

Not bridged: the routes' ``AWS_IAM`` authorization (requests are not checked for a SigV4 signature;
moto enforces no IAM either), throttling and access logs.

    python -m pipelines.devstack.api_gateway --api-id ID [--port 8080]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
from typing import Any

INVOKE_ARN = re.compile(r"^arn:[^:]+:apigateway:[^:]*:lambda:path/[^/]+/functions/(?P<function>.+)/invocations$")


def match_route(route_keys: list[str], method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The route key matching ``method path`` and its path parameters; ``$default`` if nothing else does."""
    for key in route_keys:
        route_method, _, pattern = key.partition(" ")
        if route_method not in (method, "ANY") or not pattern:
            continue
        names = re.findall(r"\{([^}/]+)\}", pattern)
        regex = "^" + re.sub(r"\\\{[^}/]+\\\}", "([^/]+)", re.escape(pattern)) + "$"
        found = re.match(regex, path)
        if found:
            return key, dict(zip(names, found.groups()))
    return ("$default", {}) if "$default" in route_keys else None


def function_of(integration: dict[str, Any]) -> str:
    """The Lambda function (ARN) an AWS_PROXY integration invokes."""
    uri = str(integration.get("IntegrationUri") or "")
    found = INVOKE_ARN.match(uri)
    return found.group("function") if found else uri


def proxy_event(route_key: str, parameters: dict[str, str], method: str, path: str, body: bytes | None) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway hands the function."""
    raw_path, _, query = path.partition("?")
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json"},
        "pathParameters": parameters or None,
        "requestContext": {"http": {"method": method, "path": raw_path}, "routeKey": route_key, "stage": "$default"},
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def api_gateway_responder(api_id: str, apigateway: Any = None, lambda_client: Any = None) -> Any:
    """A ``respond(method, path, body) -> (status, answer)`` for ``pipelines.aws.api.make_server``
    that serves the API ``api_id`` as stored in the emulator (AWS_ENDPOINT_URL)."""
    import boto3

    apigateway = apigateway or boto3.client("apigatewayv2")
    lambda_client = lambda_client or boto3.client("lambda")
    apigateway.get_api(ApiId=api_id)  # an unknown API fails here, not at the first request

    def respond(method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        routes = {r["RouteKey"]: r for r in apigateway.get_routes(ApiId=api_id).get("Items", [])}
        matched = match_route(list(routes), method, path.partition("?")[0])
        if matched is None:
            return 404, {"message": "Not Found"}
        route_key, parameters = matched
        integration = apigateway.get_integration(ApiId=api_id, IntegrationId=routes[route_key]["Target"].removeprefix("integrations/"))
        function = function_of(integration)
        event = proxy_event(route_key, parameters, method, path, body)
        answer = lambda_client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError") or not isinstance(payload, dict) or "statusCode" not in payload:
            return 502, {"message": "Internal Server Error", "error": f"the integration's function failed: {json.dumps(payload)[:1000]}"}
        return int(payload["statusCode"]), json.loads(payload.get("body") or "{}")

    return respond


def main(argv: list[str] | None = None) -> None:
    from pipelines.aws.api import serve

    parser = argparse.ArgumentParser(prog="python -m pipelines.devstack.api_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--api-id", required=True, help="the HTTP API's id (bin/deploy-local prints it as api_id)")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    args = parser.parse_args(argv)
    serve(args.port, respond=api_gateway_responder(args.api_id))


if __name__ == "__main__":
    main()
