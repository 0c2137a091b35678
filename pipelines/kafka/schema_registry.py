"""A small client of the Confluent Schema Registry REST API (also served by Apicurio at /apis/ccompat/v7).

    registry = SchemaRegistry("http://127.0.0.1:8081", user_info="key:secret")
    schema_id = registry.register("audience-value", avro_schema)   # POST /subjects/{s}/versions
    schema_id, avro_schema = registry.latest("audience-value")      # GET  /subjects/{s}/versions/latest
    avro_schema = registry.schema(schema_id)                         # GET  /schemas/ids/{id}, cached

Errors are RunErrors naming the registry by its URL without credentials (`user_info`, or
user:password in the URL, is a secret: it is sent as HTTP basic auth and never shown):
TransientRunError (exit 75) when the registry cannot be reached (refused, reset, no answer within
`timeout`, a cut-off answer) or answers 5xx/408/429: a retry may pass; SchemaNotFound for an unknown
subject, version or id; RunError (exit 1) for any other 4xx (409: the schema is not compatible with
the subject's versions; 401/403: the credentials). Each call is one request: no retry here, the
caller's run fails and the workflow retries it.

`value_schema(registry, subject, ...)` picks the schema a producer writes its values with: the one it
was given, or the subject's latest, or one made from its columns.

Registration and lookup send `normalize=true`, so the same schema written with other spacing or
key order finds the version already registered instead of adding one.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from pipelines.engine.errors import RunError, TransientRunError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# Confluent error codes: 40401 subject not found, 40402 version not found, 40403 schema not found.
NOT_FOUND_CODES = (40401, 40402, 40403)


class SchemaNotFound(RunError):
    """The registry has no such subject, version or schema id."""


class SchemaRegistry:
    def __init__(self, url: str, user_info: str | None = None, timeout: float = 10) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the schema registry URL must look like http(s)://host:port[/path]")
        if parts.username is not None and user_info is None:
            user_info = urllib.parse.unquote(parts.username) + ":" + urllib.parse.unquote(parts.password or "")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        self.url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))  # no credentials
        self.timeout = timeout
        self._auth = "Basic " + base64.b64encode(user_info.encode()).decode() if user_info else None
        self._by_id: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SchemaRegistry({self.url!r})"

    @property
    def where(self) -> str:
        return f"schema registry {self.url}"

    # ------------------------------------------------------------------ API

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Registers `schema` under `subject` (or finds it registered already); its id."""
        answer = self._call("POST", f"/subjects/{_quote(subject)}/versions?normalize=true", {"schema": _schema_text(schema)})
        return self._remember(int(answer["id"]), schema)

    def check(self, subject: str, schema: dict[str, Any]) -> int | None:
        """The id of `schema` if it is registered under `subject`, else None (POST /subjects/{subject})."""
        try:
            answer = self._call("POST", f"/subjects/{_quote(subject)}?normalize=true", {"schema": _schema_text(schema)})
        except SchemaNotFound:
            return None
        return self._remember(int(answer["id"]), schema)

    def latest(self, subject: str) -> tuple[int, dict[str, Any]]:
        """(id, schema) of the latest version registered under `subject`; SchemaNotFound if there is none."""
        answer = self._call("GET", f"/subjects/{_quote(subject)}/versions/latest")
        schema = self._parse(answer, f"subject '{subject}'")
        return self._remember(int(answer["id"]), schema), schema

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The schema with id `schema_id` (asked once, then cached: ids never change)."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        answer = self._call("GET", f"/schemas/ids/{int(schema_id)}")
        schema = self._parse(answer, f"schema id {schema_id}")
        self._remember(schema_id, schema)
        return self._by_id[schema_id]

    def subjects(self) -> list[str]:
        return list(self._call("GET", "/subjects"))

    def compatible(self, subject: str, schema: dict[str, Any]) -> bool:
        """Whether `schema` may be registered under `subject` by its compatibility rule, tested against
        its latest version (POST /compatibility/subjects/{subject}/versions/latest); SchemaNotFound
        when the subject has no version."""
        answer = self._call("POST", f"/compatibility/subjects/{_quote(subject)}/versions/latest", {"schema": _schema_text(schema)})
        return bool(answer.get("is_compatible")) if isinstance(answer, dict) else False

    # ------------------------------------------------------------------ HTTP

    def _remember(self, schema_id: int, schema: dict[str, Any]) -> int:
        with self._lock:
            self._by_id.setdefault(schema_id, schema)
        return schema_id

    def _parse(self, answer: Any, what: str) -> dict[str, Any]:
        schema_type = answer.get("schemaType", "AVRO") if isinstance(answer, dict) else None
        if schema_type != "AVRO":
            raise RunError(f"{what} is a {schema_type} schema, not Avro", where=self.where)
        try:
            schema = json.loads(answer["schema"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{what}: the registry's answer holds no readable schema ({exc})", where=self.where) from None
        if isinstance(schema, str):  # a primitive schema, "string"
            schema = {"type": schema}
        return schema

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", f"{CONTENT_TYPE}, application/json")
        if data is not None:
            request.add_header("Content-Type", CONTENT_TYPE)
        if self._auth:
            request.add_header("Authorization", self._auth)
        what = f"{method} {path.split('?')[0]}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._http_error(what, exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # refused, reset, timed out, or an answer cut off (IncompleteRead) or garbled (BadStatusLine)
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise TransientRunError(f"cannot reach the schema registry ({what}): {reason}; it may pass on retry", where=self.where) from None
        except ValueError as exc:
            raise RunError(f"{what}: the registry's answer is not JSON ({exc})", where=self.where) from None

    def _http_error(self, what: str, exc: urllib.error.HTTPError) -> RunError:
        try:
            detail = json.loads(exc.read() or b"{}")
        except (ValueError, OSError, http.client.HTTPException):
            detail = {}
        if not isinstance(detail, dict):
            detail = {}
        code, message = detail.get("error_code"), str(detail.get("message") or exc.reason or "").strip()
        text = f"{what}: HTTP {exc.code}" + (f" (error {code})" if code else "") + (f": {message}" if message else "")
        if exc.code == 404 and (code in NOT_FOUND_CODES or code is None):
            return SchemaNotFound(text, where=self.where)
        if exc.code in (401, 403):
            return RunError(f"{text}; check the registry credentials (schema_registry_user_info)", where=self.where)
        if exc.code == 409:
            return RunError(f"{text}; the schema is not compatible with the schemas registered under the subject (its compatibility rule)", where=self.where)
        if exc.code >= 500 or exc.code in (408, 429):
            return TransientRunError(f"{text}; it may pass on retry", where=self.where)
        return RunError(text, where=self.where)


def value_schema(
    registry: SchemaRegistry, subject: str, avsc: dict[str, Any] | None, auto_register: bool, from_columns: Callable[[], dict[str, Any]]
) -> tuple[int, dict[str, Any], str]:
    """(schema id, schema, where it came from) of the values a producer writes under `subject`:

    - `avsc` given: registered under the subject (auto_register: true), or its id looked up there
      (auto_register: false: it must be registered already);
    - none: the subject's latest version; if the subject has none and auto_register is true, the
      one `from_columns()` makes is registered and used.
    """
    if avsc is not None:
        schema_id = registry.register(subject, avsc) if auto_register else registry.check(subject, avsc)
        if schema_id is None:
            raise RunError(
                f"the value schema is not registered under subject '{subject}' and auto_register is false: "
                "register it first, or set auto_register: true",
                where=registry.where,
            )
        return schema_id, avsc, f"subject '{subject}' (schema id {schema_id})"
    try:
        schema_id, avro = registry.latest(subject)
        return schema_id, avro, f"the latest schema of subject '{subject}' (id {schema_id})"
    except SchemaNotFound:
        if not auto_register:
            raise RunError(
                f"no schema is registered under subject '{subject}': give avsc or avsc_file, register one, "
                "or set auto_register: true to register one made from the columns",
                where=registry.where,
            ) from None
    avro = from_columns()
    schema_id = registry.register(subject, avro)
    return schema_id, avro, f"subject '{subject}' (schema id {schema_id}, made from the columns)"


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _schema_text(schema: dict[str, Any]) -> str:
    if not isinstance(schema, dict):
        raise TypeError(f"expected an Avro schema as a dict, got {type(schema).__name__}")
    return json.dumps(schema, separators=(",", ":"))
