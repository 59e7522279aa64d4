"""A counting HTTP proxy between a contender and S3: what went over the wire.

Every request is forwarded byte for byte (the Host header too, so SigV4
signatures still verify upstream), over one upstream connection per client
connection, and counted by type: LIST, GET (whole object), GET-range, HEAD,
PUT, POST (multipart, batch delete), DELETE. Bytes are response bodies sent
to the client (read) and request bodies received (written). Per-key read
bytes of artifacts are kept too, to check what one artifact cost.

It is a small asyncio HTTP/1.1 relay rather than http.server: the benchmark
machine has two cores, and a proxy that parses headers with the email package
would add milliseconds to every request of every contender. Only
`Expect: 100-continue` is answered here (it is never signed) and not passed on.

Network profiles (`NETWORKS`): on `loopback` the proxy only counts. On
`runner` it also plays the network a hosted CI runner has to S3 in its
region: every response waits `latency_s` (20 ms) before its first byte, and
all bodies share one throughput cap (200 MB/s each way, paced by one virtual
clock per direction for every connection together, as a NIC is shared),
so eight threads reading at once get 25 MB/s each, not 200.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

CHUNK = 1 << 20
HEAD_LIMIT = 1 << 20
SLEEP_MIN_S = 0.001  # below this, owed time is carried to the next chunk (timer granularity)


@dataclass(frozen=True)
class Network:
    """What the proxy adds on top of loopback: per-response latency, a shared rate cap."""

    name: str
    latency_s: float = 0.0  # before each response's head is sent
    rate_bytes_s: float = 0.0  # shared by all connections, each direction; 0 = no cap

    def describe(self) -> str:
        if not self.latency_s and not self.rate_bytes_s:
            return f"{self.name} (no added latency, no cap)"
        return (
            f"{self.name} (+{self.latency_s * 1000:.0f} ms per response, "
            f"{self.rate_bytes_s / 1e6:.0f} MB/s shared cap)"
        )


# 20 ms and 200 MB/s: a hosted runner and S3 in the same region (issue 14/15); the latency is
# a first-byte time of a small GET there, the cap what one VM's NIC sustains to S3 in practice.
NETWORKS = {
    "loopback": Network("loopback"),
    "runner": Network("runner", latency_s=0.020, rate_bytes_s=200e6),
}


class Pacer:
    """A shared rate cap: each chunk books the link after the previous one and waits its turn.

    One instance per direction serves every connection of the proxy (one event loop, no
    lock needed), so concurrent transfers divide the rate between them.
    """

    def __init__(self, rate_bytes_s: float) -> None:
        self.rate = rate_bytes_s
        self.free_at = 0.0

    async def pace(self, nbytes: int) -> None:
        if not self.rate:
            return
        now = asyncio.get_running_loop().time()
        self.free_at = max(now, self.free_at) + nbytes / self.rate
        if self.free_at - now > SLEEP_MIN_S:
            await asyncio.sleep(self.free_at - now)


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


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


class CountingProxy:
    """Start with `with CountingProxy(upstream) as proxy:`; point clients at `proxy.url`."""

    def __init__(self, upstream: str, network: Network = NETWORKS["loopback"]) -> None:
        parsed = urllib.parse.urlparse(upstream)
        self.network = network
        self._down = Pacer(network.rate_bytes_s)  # response bodies, to the client
        self._up = Pacer(network.rate_bytes_s)  # request bodies, to the server
        self._clients: set[asyncio.Task | None] = set()
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.tally = Tally()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = ""

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        async def cancel_clients() -> None:  # keep-alive connections still open
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_clients(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0, limit=HEAD_LIMIT)
        )
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()

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
            if status >= 400:
                t.errors[f"{kind} {status}"] += 1

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        task = asyncio.current_task()
        self._clients.add(task)  # asyncio keeps only weak references to these tasks
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if upstream is None:
                    upstream = await asyncio.open_connection(*self.upstream, limit=HEAD_LIMIT)
                if not await self._exchange(head, reader, writer, *upstream):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._clients.discard(task)
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def _exchange(
        self,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        """Relay one request and its response; False when the connection must close."""
        request_line, headers = _parse_head(head)
        method, target = request_line.split(" ")[:2]
        path, _, query = target.partition("?")
        parts = urllib.parse.unquote(path).lstrip("/").split("/", 1)
        key = parts[1] if len(parts) > 1 else ""
        kind = classify(method, key, query, "range" in headers)
        if headers.get("expect", "").lower() == "100-continue":
            head = b"\r\n".join(
                line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:")
            )
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        up_writer.write(head)
        written, read, status = [0], [0], 0
        try:
            await _relay_body(headers, reader, up_writer, written, self._up)
            response_head = await up_reader.readuntil(b"\r\n\r\n")
            status_line, response_headers = _parse_head(response_head)
            status = int(status_line.split(" ")[1])
            if self.network.latency_s:
                await asyncio.sleep(self.network.latency_s)
            writer.write(response_head)
            if method != "HEAD" and status not in (204, 304):
                await _relay_body(
                    response_headers, up_reader, writer, read, self._down, until_eof=True
                )
            await writer.drain()
        finally:  # a client that hangs up mid-body still counts what it was sent
            self.count(kind, key, status, read[0], written[0])
        return "close" not in response_headers.get("connection", "").lower()


async def _relay_body(
    headers: dict[str, str],
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    progress: list[int],
    pacer: Pacer,
    until_eof: bool = False,
) -> None:
    """Copy one message body (Content-Length, chunked, or to EOF), adding its bytes to progress."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await source.readuntil(b"\r\n")
            sink.write(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (line := await source.readuntil(b"\r\n")) != b"\r\n":
                    sink.write(line)
                sink.write(b"\r\n")
                return
            await _copy(source, sink, size, progress, pacer)
            sink.write(await source.readexactly(2))  # the CRLF after the data
        return
    if "content-length" in headers:
        await _copy(source, sink, int(headers["content-length"]), progress, pacer)
    elif until_eof:
        while chunk := await source.read(CHUNK):
            await pacer.pace(len(chunk))
            sink.write(chunk)
            await sink.drain()
            progress[0] += len(chunk)


async def _copy(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    length: int,
    progress: list[int],
    pacer: Pacer,
) -> None:
    left = length
    while left > 0:
        chunk = await source.read(min(CHUNK, left))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", left)
        await pacer.pace(len(chunk))
        sink.write(chunk)
        await sink.drain()
        progress[0] += len(chunk)
        left -= len(chunk)
