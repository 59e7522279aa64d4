"""A counting, fault-injecting HTTP proxy in front of the real S3 server.

The tests point `--endpoint-url` at it to see exactly what went over the wire
(method, key, Range, status, bytes) and to make the store misbehave the way
real ones do: 503 SlowDown, connections reset mid-request, answers too slow.
Everything else is forwarded byte for byte (the Host header too, so SigV4
signatures still verify upstream).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Seen:
    method: str
    key: str  # path without the bucket, URL-decoded
    query: str
    range: str | None
    headers: dict[str, str]
    status: int = 0
    nbytes: int = 0  # response body bytes sent to the client

    @property
    def is_list(self) -> bool:
        return self.method == "GET" and "list-type=2" in self.query

    @property
    def is_artifact_get(self) -> bool:
        return self.method == "GET" and self.key.endswith((".conda", ".tar.bz2"))


@dataclass
class Fault:
    """Misbehave `times` times for requests matching `when`."""

    when: Callable[[Seen], bool]
    action: str  # "slowdown" | "reset" | "stall" | "call"
    times: int = 1
    seconds: float = 0.0  # for "stall": wait this long, then forward
    call: Callable[[Seen], None] | None = None  # for "call": run, then forward
    fired: int = field(default=0)


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.server.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()

    def record(self, seen: Seen) -> Fault | None:
        with self._lock:
            self.seen.append(seen)
            for fault in self.faults:
                if fault.fired < fault.times and fault.when(seen):
                    fault.fired += 1
                    return fault
        return None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return None  # a client dropping a connection early is what some tests do


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self._forward()

    do_PUT = do_HEAD = do_DELETE = do_POST = do_GET

    def _forward(self) -> None:
        proxy: CountingProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        parts = urllib.parse.unquote(path).lstrip("/").split("/", 1)
        seen = Seen(
            self.command,
            parts[1] if len(parts) > 1 else "",
            query,
            self.headers.get("Range"),
            {k.lower(): v for k, v in self.headers.items()},
        )
        fault = proxy.record(seen)
        if fault is not None and fault.action == "reset":
            self.close_connection = True
            seen.status = -1
            return
        if fault is not None and fault.action == "slowdown":
            seen.status = 503
            self.send_response_only(503, "Slow Down")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOWDOWN)))
            self.end_headers()
            self.wfile.write(SLOWDOWN)
            return
        if fault is not None and fault.action == "stall":
            time.sleep(fault.seconds)
        if fault is not None and fault.call is not None:
            fault.call(seen)
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            headers = dict(self.headers.items())
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            seen.status = response.status
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(name, value)
            if response.getheader("Content-Length") is None and self.command != "HEAD":
                data = response.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                seen.nbytes = len(data)
                return
            self.end_headers()
            if self.command == "HEAD":
                return
            while chunk := response.read(64 * 1024):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                seen.nbytes += len(chunk)
        finally:
            upstream.close()
