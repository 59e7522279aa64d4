"""Issue 7: the benchmark harness runs end to end in its smallest mode (this tool only).

Not a benchmark: it keeps `benchmarks/` from rotting. It generates a tiny
channel, puts it into its own SeaweedFS, runs both modes of this tool through
the counting proxy, cold and warm with something new, and checks the figures
the real run reports: requests counted at the proxy, bytes per `.conda`
within the target, peak RSS measured, zero PUTs where nothing changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import run


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
    assert "bytes read per new .conda" in capsys.readouterr().out
