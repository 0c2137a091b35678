"""A faulty link to the moto server: chosen S3 requests are answered with an error, or their body
breaks, and the rest is forwarded unchanged.

A real HTTP hop in front of the real moto server (botocore talks to it as to S3, through
AWS_ENDPOINT_URL or an `endpoint` setting), as tests/slow_s3.py is. A `Fault` picks requests by
method, query and path (UploadPart: `Fault("PUT", "partNumber=")`; GetObject of the objects under
in/: `Fault("GET", path_contains="/bucket/in/")`) and meets the first `times` of them (every one with
`times=None`) with its `action`; every other request, and a matching one past `times`, goes to moto
unchanged. Actions:

  "error"  an S3 error document with `status` and `code` (500 InternalError; 503 SlowDown with
           `status=503, code="SlowDown"`), after reading the whole request body, as S3 does;
  "reset"  moto's answer (status, headers, a ranged GET's 206), `after_bytes` of its body (once the
           client has them all), then a TCP reset (SO_LINGER 0, then close): the client sees
           "connection reset" mid-body;
  "stall"  moto's answer, `after_bytes` of its body, then nothing for `stall_seconds` (or until the
           client hangs up), then the connection closed: a body slower than the client's read timeout.

`then`, if given, is called once the fault has met a request (after the bytes a reset or stall sends,
before it breaks the connection): a test changes the object there, say. The proxy counts what it saw,
so a test can tell how often a client tried, and from which byte:

    part = Fault("PUT", "partNumber=", times=1)
    with fault_s3(moto_url, part) as url:
        ... run with AWS_ENDPOINT_URL=url ...
    assert part.failed == 1 and part.matched >= 2

    body = Fault("GET", path_contains="/bucket/in/", action="reset", after_bytes=300_000)
    ... body.headers[1]["range"] == "bytes=262144-"   (each matching request's headers, lower-case names)
"""

from __future__ import annotations

import array
import fcntl
import select
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from slow_s3 import HOP_HEADERS, relay, request_body, serving

ERROR_DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-s3</RequestId></Error>"
)
ACTIONS = ("error", "reset", "stall")


@dataclass
class Fault:
    """Which requests fail, how, and how often; `matched`, `failed`, `requests` and `headers` count what came."""

    method: str  # PUT, GET, POST, DELETE, HEAD
    query_contains: str = ""  # e.g. "partNumber=" (UploadPart), "uploads" (CreateMultipartUpload)
    path_contains: str = ""  # in the decoded path: "/bucket/exports/job/"
    times: int | None = 1  # the first N matching requests fail; None: every one
    status: int = 500
    code: str = "InternalError"
    message: str = "We encountered an internal error. Please try again."
    action: str = "error"  # "error", "reset" or "stall" (see the module's docstring)
    after_bytes: int = 0  # reset and stall: body bytes sent first
    stall_seconds: float = 30.0
    then: Callable[[], Any] | None = None  # called after each fault met, before the connection breaks
    matched: int = 0
    failed: int = 0
    requests: list[str] = field(default_factory=list)  # "METHOD path?query" of each matching request
    headers: list[dict[str, str]] = field(default_factory=list)  # each matching request's headers, lower-case names
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        assert self.action in ACTIONS, f"action must be one of {ACTIONS}"

    def decide(self, method: str, target: str, headers: Any = None) -> bool:
        """Counts a request; True when it is to fail."""
        parts = urlsplit(target)
        if method != self.method or self.query_contains not in parts.query or self.path_contains not in unquote(parts.path):
            return False
        with self.lock:
            self.matched += 1
            self.requests.append(f"{method} {target}")
            self.headers.append({k.lower(): v for k, v in (headers or {}).items()})
            if self.times is not None and self.failed >= self.times:
                return False
            self.failed += 1
            return True

    def ranges(self) -> list[str | None]:
        """The Range header of each matching request (None: the whole object)."""
        return [h.get("range") for h in self.headers]


def drain(connection: socket.socket, seconds: float = 10.0) -> None:
    """Waits until the peer has every byte sent (none left in the send queue), `seconds` at most: a
    reset drops what is still queued, and the bytes sent before a reset are to reach the reader."""
    deadline, queued = time.monotonic() + seconds, array.array("i", [0])
    while time.monotonic() < deadline:
        fcntl.ioctl(connection.fileno(), termios.TIOCOUTQ, queued)  # SIOCOUTQ: bytes not yet acknowledged
        if not queued[0]:
            return
        time.sleep(0.01)


def reset(connection: socket.socket) -> None:
    """Closes with a TCP RST instead of a FIN: the peer's next read fails with 'connection reset'."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def stall(connection: socket.socket, seconds: float) -> None:
    """Sends nothing for `seconds`, or until the peer hangs up (it timed out and closed)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([connection], [], [], min(left, 0.2))
        if readable:
            try:
                if not connection.recv(1, socket.MSG_PEEK):
                    return
            except OSError:
                return


def handler_for(target: str, faults: tuple[Fault, ...]) -> type[BaseHTTPRequestHandler]:
    parts = urlsplit(target)

    class Faulty(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _fail(self, fault: Fault) -> None:
            payload = ERROR_DOCUMENT.format(code=fault.code, message=fault.message).encode()
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            if fault.then is not None:
                fault.then()

        def _break_body(self, fault: Fault, payload: bytes) -> None:
            """Sends `after_bytes` of the body, then resets the connection or stalls it."""
            self.wfile.write(payload[: fault.after_bytes])
            self.wfile.flush()
            if fault.then is not None:
                fault.then()
            self.close_connection = True
            if fault.action == "reset":
                drain(self.connection)  # the bytes sent reach the reader before the reset does
                self.rfile.close()  # (a file made from the socket would hold its close back)
                reset(self.connection)
            else:
                stall(self.connection, fault.stall_seconds)

        def _forward(self) -> None:
            body = request_body(self)  # read whole, failing or not: the connection stays usable
            fault = next((f for f in faults if f.decide(self.command, self.path, self.headers)), None)
            if fault is not None and fault.action == "error":
                self._fail(fault)
                return
            drop = HOP_HEADERS | {"expect"}  # the body is read already: no 100-continue upstream
            headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
            try:
                payload = relay(self, parts, body, headers)
                if payload is None:
                    return
                if fault is not None:
                    self._break_body(fault, payload)
                else:
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    return Faulty


@contextmanager
def fault_s3(target: str, *faults: Fault) -> Iterator[str]:
    """An endpoint URL on 127.0.0.1 forwarding to `target` (moto's URL), with `faults` injected."""
    with serving(handler_for(target, faults)) as url:
        yield url
