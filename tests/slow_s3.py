"""A slow link to the moto server, for tests that must signal a job while its shards are mid-run.

The compiled import path reads a 150,000-row object in well under a second, less than a loaded CI
machine can take between "rows are in the topic" and the signal arriving; the shard would finish
first. This proxy forwards every request to moto unchanged and streams the bodies of GETs under a
prefix at a fixed rate, so a shard reading its input through it runs for seconds. It is a real HTTP
hop in front of the real moto server (botocore talks to it as to S3), not a stand-in for S3.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from typing import Any
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

CHUNK_BYTES = 16 * 1024
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "proxy-connection"}


def request_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(parts)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def relay(handler: BaseHTTPRequestHandler, target: Any, body: bytes, headers: dict[str, str]) -> bytes | None:
    """Sends the handler's request to `target` (split URL), answers with the response's status and
    headers, and returns its body for the caller to send (None for a HEAD, which has none)."""
    upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
    try:
        upstream.request(handler.command, handler.path, body=body if body or handler.command in ("PUT", "POST") else None, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
    finally:
        upstream.close()
    handler.send_response(response.status, response.reason)
    for key, value in response.getheaders():
        if key.lower() not in HOP_HEADERS and (key.lower() != "content-length" or handler.command == "HEAD"):
            handler.send_header(key, value)  # a HEAD's Content-Length is the object's size
    if handler.command != "HEAD":
        handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    return None if handler.command == "HEAD" else payload


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server of `handler` on a free port of 127.0.0.1, for the block: its URL."""
    from local_http import serving as serving_server

    with serving_server(handler) as server:
        yield server.url


def handler_for(target: str, slow_prefix: str, bytes_per_second: int) -> type[BaseHTTPRequestHandler]:
    parts = urlsplit(target)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

        def _forward(self) -> None:
            body = request_body(self)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            try:
                payload = relay(self, parts, body, headers)
                if payload is None:
                    return
                slow = self.command == "GET" and urlsplit(self.path).path.startswith(slow_prefix)
                for start in range(0, len(payload), CHUNK_BYTES):
                    self.wfile.write(payload[start : start + CHUNK_BYTES])
                    self.wfile.flush()
                    if slow:
                        time.sleep(CHUNK_BYTES / bytes_per_second)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the reader went away (a stopped shard): nothing to forward to

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    return Forward


@contextmanager
def slow_s3(target: str, slow_prefix: str, bytes_per_second: int) -> Iterator[str]:
    """An endpoint URL on 127.0.0.1 that forwards to `target` (moto's URL), streaming GET bodies whose
    path starts with `slow_prefix` (e.g. "/bucket/in/") at `bytes_per_second`."""
    with serving(handler_for(target, slow_prefix, bytes_per_second)) as url:
        yield url
