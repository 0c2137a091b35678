"""A faulty link to the schema registry: a real HTTP hop in front of the stack's real registry (Apicurio's
Confluent-compatible API) that forwards requests unchanged until told otherwise, and counts them.

    with fault_registry(stack.schema_registry_url) as proxy:          # proxy.url: the registry URL to give a run
        ... run with SCHEMA_REGISTRY_URL=proxy.url ...
        proxy.fail_after(1, status=503)   # the first request is forwarded, every later one answered 503
        proxy.fail_after(1, refuse=True)  # the first request is forwarded, then the port stops listening
    assert proxy.requests == ["POST /apis/ccompat/v7/subjects/t-value/versions"]

A failure is what a registry down or overloaded gives: a status with a Confluent error body
(`{"error_code", "message"}`), or no listener at all (connections refused). The proxy stands in for
nothing: answers it forwards are the registry's own. As tests/fault_s3.py does for S3.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from slow_s3 import HOP_HEADERS, request_body


class RegistryProxy:
    """The proxy's state: what it saw (`requests`, "METHOD path") and what it does to the next ones."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.lock = threading.Lock()
        self.forward_first: int | None = None  # None: forward every request
        self.status = 503
        self.refuse = False
        self.server: ThreadingHTTPServer | None = None
        self.url = ""

    def fail_after(self, forwarded: int, status: int = 503, refuse: bool = False) -> None:
        """Forward the first `forwarded` requests (counted from the proxy's start), then fail every
        later one: answered `status`, or, with `refuse`, refused (the proxy stops listening)."""
        with self.lock:
            self.forward_first, self.status, self.refuse = forwarded, status, refuse
            if refuse and len(self.requests) >= forwarded:
                self._stop_listening()

    def decide(self, line: str) -> int | None:
        """Counts a request; the status to fail it with, or None to forward it."""
        with self.lock:
            self.requests.append(line)
            if self.forward_first is None or len(self.requests) <= self.forward_first:
                return None
            self.failed.append(line)
            return self.status

    def after_forward(self) -> None:
        with self.lock:
            if self.refuse and self.forward_first is not None and len(self.requests) >= self.forward_first:
                self._stop_listening()

    def _stop_listening(self) -> None:
        """Closes the listening socket: every later connection is refused (ECONNREFUSED), as for a stopped registry."""
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()  # serve_forever runs in its own thread; this handler's thread waits for it to end
            server.socket.close()


def handler_for(proxy: RegistryProxy) -> type[BaseHTTPRequestHandler]:
    target = proxy.target

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            body = request_body(self)
            status = proxy.decide(f"{self.command} {self.path.split('?')[0]}")
            if status is not None:
                self._answer(status, {"error_code": status * 100 if status < 500 else status, "message": f"injected: HTTP {status}"})
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
            finally:
                upstream.close()
                self.close_connection = True
                proxy.after_forward()

        def _answer(self, status: int, answer: dict) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Forward


@contextmanager
def fault_registry(target: str) -> Iterator[RegistryProxy]:
    """A RegistryProxy on a free port of 127.0.0.1 in front of `target` (the registry's URL, path included);
    its `url` is `target` with the proxy's address."""
    proxy = RegistryProxy(target)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(proxy))
    server.daemon_threads = True
    proxy.server = server
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}{proxy.target.path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
