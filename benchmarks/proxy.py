"""A counting HTTP proxy between a contender and S3: what went over the wire.

Every request is forwarded byte for byte (the Host header too, so SigV4
signatures still verify upstream) over one persistent upstream connection per
client connection, and counted by type: LIST, GET (whole object), GET-range,
HEAD, PUT, POST (multipart, batch delete), DELETE. Bytes are response bodies
sent to the client (read) and request bodies received (written). Per-key read
bytes of artifacts are kept too, to check what one artifact cost.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 1 << 20
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}
)


@dataclass
class Tally:
    """What the proxy saw since the last reset."""

    requests: Counter = field(default_factory=Counter)  # type → count
    bytes_read: int = 0  # response bodies to the client
    bytes_written: int = 0  # request bodies from the client
    list_bytes: int = 0
    per_key: Counter = field(default_factory=Counter)  # artifact key → bytes read
    errors: Counter = field(default_factory=Counter)  # status >= 400, by type

    def as_dict(self) -> dict:
        return {
            "requests": dict(self.requests),
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "list_bytes": self.list_bytes,
            "errors": dict(self.errors),
        }


def classify(method: str, key: str, query: str, has_range: bool) -> str:
    """The request type counted for one request."""
    if method == "GET":
        if not key or "list-type" in query or "delimiter=" in query or "prefix=" in query:
            return "LIST"
        return "GET-range" if has_range else "GET"
    return method


class CountingProxy:
    """Start with `with CountingProxy(upstream) as proxy:`; point clients at `proxy.url`."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.tally = Tally()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
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

    def take(self) -> Tally:
        """The tally so far; counting starts afresh."""
        with self._lock:
            tally, self.tally = self.tally, Tally()
        return tally

    def count(self, kind: str, key: str, status: int, read: int, written: int) -> None:
        with self._lock:
            t = self.tally
            t.requests[kind] += 1
            t.bytes_read += read
            t.bytes_written += written
            if kind == "LIST":
                t.list_bytes += read
            if kind.startswith("GET") and key.endswith((".conda", ".tar.bz2")):
                t.per_key[key] += read
            if status >= 400 or status < 0:
                t.errors[f"{kind} {status}"] += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    _up: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self._forward()

    do_PUT = do_HEAD = do_DELETE = do_POST = do_GET

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _upstream(self) -> http.client.HTTPConnection:
        if self._up is None:
            proxy: CountingProxy = self.server.proxy  # type: ignore[attr-defined]
            self._up = http.client.HTTPConnection(*proxy.upstream, timeout=300)
        return self._up

    def _forward(self) -> None:
        proxy: CountingProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._body()
        path, _, query = self.path.partition("?")
        parts = urllib.parse.unquote(path).lstrip("/").split("/", 1)
        key = parts[1] if len(parts) > 1 else ""
        kind = classify(self.command, key, query, self.headers.get("Range") is not None)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        try:
            up = self._upstream()
            up.request(self.command, self.path, body=body, headers=headers)
            response = up.getresponse()
        except (OSError, http.client.HTTPException):
            self._up = None  # a stale keep-alive connection: one fresh try
            up = self._upstream()
            up.request(self.command, self.path, body=body, headers=headers)
            response = up.getresponse()
        sent = 0
        try:
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_HEADERS:
                    self.send_header(name, value)
            if self.command == "HEAD":
                self.end_headers()
                response.read()
                return
            if response.getheader("Content-Length") is None:
                data = response.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                sent = len(data)
                return
            self.end_headers()
            while chunk := response.read(CHUNK):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    self._up.close()
                    self._up = None  # the rest of the body is not drained
                    return
                sent += len(chunk)
        finally:
            proxy.count(kind, key, response.status, sent, len(body))
