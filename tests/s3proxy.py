"""A counting, fault-injecting HTTP proxy in front of the real S3 server.

The tests point `--endpoint-url` at it to see exactly what went over the wire
(method, key, Range, status, bytes) and to make the store misbehave the way
real ones do: 503 SlowDown, connections reset mid-request, answers too slow.
Everything else is forwarded byte for byte (the Host header too, so SigV4
signatures still verify upstream).

`delay_s` delays every request before it is forwarded (a network's round
trip: 20 ms is what a hosted runner pays to S3 in its region); each `Seen`
carries when it arrived and when its answer was sent, so a test can see how
many requests were in flight at once.

`rewrite` changes the headers of forwarded answers (e.g. an ETag and the
server-side-encryption header as SSE-KMS gives them).

Two ways to misbehave: `Fault`s fire for requests a predicate picks (the Nth
PUT, every listing, ...), and `Chaos` fails a seeded fraction of all requests
with a mix of 500 InternalError, 503 SlowDown, resets before and after the
store acted, truncated bodies and latency. Chaos decisions depend only on the
seed and the request itself (method, key, query, range, how many times that
same request was seen), never on thread timing, so a seed replays the same
faults run after run.
"""

from __future__ import annotations

import collections
import http.client
import random
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
INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
# What `Chaos` can do to a request; "latency" delays it, every other kind fails it.
#   error500: 500 InternalError, not forwarded     slowdown: 503 SlowDown, not forwarded
#   reset:    connection closed, not forwarded     lost: forwarded (the store acts), answer dropped
#   truncate: forwarded, headers with the full Content-Length, part of the body, then closed
CHAOS_KINDS = ("error500", "slowdown", "reset", "lost", "truncate", "latency")


@dataclass
class Seen:
    method: str
    key: str  # path without the bucket, URL-decoded
    query: str
    range: str | None
    headers: dict[str, str]
    status: int = 0
    nbytes: int = 0  # response body bytes sent to the client
    started: float = 0.0  # time.monotonic() when the request had arrived
    ended: float = 0.0  # ... and when its answer had been sent (or dropped)

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
    action: str  # "slowdown" | "reset" | "stall" | "call" | "error500" | "truncate" | "lost"
    times: int = 1
    seconds: float = 0.0  # for "stall": wait this long, then forward
    call: Callable[[Seen], None] | None = None  # for "call": run, then forward
    fired: int = field(default=0)
    forward: bool = True  # for "call": False drops the request unforwarded after the call


@dataclass
class Chaos:
    """Fail a seeded fraction `rate` of the requests `when` picks, with a mix of `kinds`.

    `max_consecutive` bounds how many times in a row the same request fails,
    so a test that wants the run to survive can stay inside the client's retry
    budget without depending on luck. `injected` counts what was done, by kind.
    """

    rate: float
    seed: int
    kinds: tuple[str, ...] = CHAOS_KINDS
    when: Callable[[Seen], bool] = field(default=lambda seen: True)
    max_consecutive: int | None = None
    latency_s: tuple[float, float] = (0.01, 0.15)
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    _occurrences: collections.Counter[str] = field(default_factory=collections.Counter)
    _streak: collections.Counter[str] = field(default_factory=collections.Counter)

    def decide(self, seen: Seen) -> tuple[str, random.Random] | None:
        """The fault for this request (and its own generator), or None. Call under a lock."""
        if not self.when(seen):
            return None
        signature = f"{seen.method} {seen.key}?{seen.query} {seen.range}"
        nth = self._occurrences[signature]
        self._occurrences[signature] += 1
        rng = random.Random(f"{self.seed}|{signature}|{nth}")
        if rng.random() >= self.rate:
            self._streak[signature] = 0
            return None
        kind = rng.choice(self.kinds)
        if kind != "latency":
            if self.max_consecutive is not None and self._streak[signature] >= self.max_consecutive:
                self._streak[signature] = 0
                return None
            self._streak[signature] += 1
        self.injected[kind] += 1
        return kind, rng

    @property
    def failures(self) -> int:
        """Injected faults that fail a request (everything but latency)."""
        return sum(n for kind, n in self.injected.items() if kind != "latency")


# Rewrites the store's response headers for a request (e.g. an ETag as SSE-KMS gives it).
Rewrite = Callable[[Seen, list[tuple[str, str]]], list[tuple[str, str]]]


def max_in_flight(seen: list[Seen]) -> int:
    """The most of these requests the proxy was handling at one moment."""
    events = sorted([(s.started, 1) for s in seen] + [(s.ended, -1) for s in seen])
    most = current = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start
        current += step
        most = max(most, current)
    return most


class CountingProxy:
    def __init__(self, upstream: str, delay_s: float = 0.0) -> None:
        parsed = urllib.parse.urlparse(upstream)
        self.delay_s = delay_s
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.chaos: Chaos | None = None
        self.rewrite: Rewrite | None = None  # applied to every forwarded answer's headers
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

    def roll(self, seen: Seen) -> tuple[str, random.Random] | None:
        """Chaos's decision for a request no `Fault` claimed."""
        with self._lock:
            return self.chaos.decide(seen) if self.chaos is not None else None


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
        started = time.monotonic()
        self.seen: Seen | None = None
        try:
            self._relay()
        finally:
            if self.seen is not None:
                self.seen.started, self.seen.ended = started, time.monotonic()

    def _relay(self) -> None:
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
        self.seen = seen
        fault = proxy.record(seen)
        if proxy.delay_s:
            time.sleep(proxy.delay_s)
        action = fault.action if fault is not None else None
        rng: random.Random | None = None
        if fault is None and (rolled := proxy.roll(seen)) is not None:
            action, rng = rolled
        if action == "reset":
            self.close_connection = True
            seen.status = -1
            return
        if action in ("slowdown", "error500"):
            self._error(seen, action)
            return
        if fault is not None and action == "stall":
            time.sleep(fault.seconds)
        if action == "latency" and rng is not None and proxy.chaos is not None:
            time.sleep(rng.uniform(*proxy.chaos.latency_s))
        if fault is not None and fault.call is not None:
            fault.call(seen)
            if not fault.forward:
                self.close_connection = True
                seen.status = -1
                return
        if action in ("lost", "truncate"):
            self._forward_badly(proxy, seen, body, action, rng or random.Random(0))
            return
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            headers = dict(self.headers.items())
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            seen.status = response.status
            self.send_response_only(response.status, response.reason)
            answer = response.getheaders()
            if proxy.rewrite is not None:
                answer = proxy.rewrite(seen, list(answer))
            for name, value in answer:
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

    def _error(self, seen: Seen, action: str) -> None:
        """Answer 503 SlowDown or 500 InternalError without asking the store."""
        status, reason, body = (
            (503, "Slow Down", SLOWDOWN)
            if action == "slowdown"
            else (500, "Internal Server Error", INTERNAL_ERROR)
        )
        seen.status = status
        self.send_response_only(status, reason)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward_badly(
        self, proxy: CountingProxy, seen: Seen, body: bytes, action: str, rng: random.Random
    ) -> None:
        """Let the store act, then lose its answer or send only part of its body."""
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.close_connection = True
        if action == "lost" or not data or self.command == "HEAD":
            seen.status = -1  # the store acted; the client never hears of it
            return
        seen.status = response.status
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        cut = rng.randrange(0, len(data))
        self.wfile.write(data[:cut])
        seen.nbytes = cut
