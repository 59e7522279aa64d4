"""Issues 7, 14, 15: the benchmark harness runs end to end in its smallest mode (this tool only).

Not a benchmark: it keeps `benchmarks/` from rotting. It generates a tiny
channel, puts it into its own SeaweedFS, runs both modes of this tool through
the counting proxy, cold and warm with something new, and checks the figures
the real run reports: requests counted at the proxy, bytes per `.conda`
within the target, peak RSS measured, zero PUTs where nothing changes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks import run
from benchmarks.proxy import NETWORKS, CountingProxy


def test_bench_smoke(tmp_path: Path, capsys) -> None:
    status = run.main(
        ["--smoke", "--contenders", "ours-range,ours-shards", "--work", str(tmp_path)]
    )
    assert status == 0
    results = json.loads((tmp_path / "results.json").read_text())
    runs = {(r["scenario"], r["contender"]): r for r in results["runs"]}
    cold = runs[("cold 12", "ours --no-shards")]
    assert cold["returncode"] == 0 and cold["peak_rss_mb"] > 10
    assert cold["tally"]["requests"]["LIST"] >= 1
    assert cold["tally"]["requests"].get("GET-range", 0) >= 1  # .conda read by range
    assert cold["tally"]["requests"].get("PUT", 0) >= 2  # run_exports.json (+ .zst) per subdir
    shards = runs[("cold 12", "ours (shards)")]
    assert shards["tally"]["bytes_read"] > cold["tally"]["bytes_read"]  # whole-artifact hashes
    assert results["conda_excess"]["max"] <= 16 * 1024
    assert any(s.startswith("warm +") for s, _ in runs)
    assert results["floors"]["cold 12"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "| cold 12 | ours --no-shards |" in table and "**floor**" in table
    assert "runner / loopback" in table  # both network profiles by default
    assert {r["network"] for r in results["runs"]} == {"loopback", "runner"}
    assert "bytes read per new .conda" in capsys.readouterr().out


def _serve_bytes() -> tuple[ThreadingHTTPServer, str]:
    """A real HTTP server on loopback answering every GET with /<n> bytes."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b"x" * int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _get(url: str) -> int:
    with urllib.request.urlopen(url) as response:
        return len(response.read())


def test_runner_network_adds_latency_and_a_shared_cap() -> None:
    """The `runner` profile: 20 ms before each response; concurrent bodies share 200 MB/s."""
    server, upstream = _serve_bytes()
    try:
        with CountingProxy(upstream, NETWORKS["runner"]) as proxy:
            started = time.monotonic()
            for _ in range(5):
                assert _get(f"{proxy.url}/bucket/small/10") == 10
            assert time.monotonic() - started >= 5 * 0.020
            size = 10_000_000
            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                got = list(pool.map(_get, [f"{proxy.url}/bucket/big/{size}"] * 4))
            elapsed = time.monotonic() - started
            assert got == [size] * 4
            assert elapsed >= 4 * size / 200e6 * 0.95  # the cap is shared, not per connection
            tally = proxy.take()
            assert tally.requests["GET"] == 9 and tally.bytes_read == 4 * size + 50
    finally:
        server.shutdown()


def test_bench_compare_ref(tmp_path: Path) -> None:
    """`--compare-ref`: the revision checked out beside the tree, both run, the ratio printed."""
    work = tmp_path / "work"
    try:
        status = run.main(
            [
                "--smoke",
                "--scenarios",
                "cold-small",
                "--contenders",
                "ours-range",
                "--network",
                "loopback",
                "--compare-ref",
                "HEAD",
                "--rounds",
                "1",
                "--work",
                str(work),
            ]
        )
        assert status == 0
        results = json.loads((work / "results.json").read_text())
        contenders = {r["contender"] for r in results["runs"] if r["scenario"] == "cold 12"}
        ref = next(c for c in contenders if c.startswith("ours --no-shards @ "))
        assert {"ours --no-shards", ref} <= contenders
        assert "Revisions side by side" in (work / "results.md").read_text()
    finally:
        for checkout in work.glob("ref-*"):
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], check=False)
