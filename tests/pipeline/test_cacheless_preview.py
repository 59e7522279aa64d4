"""Issue 16: a preview that cannot read the cache starts from the published files.

The channel was indexed with its cache kept elsewhere (a private place); the
preview's own cache directory is empty. It must read only the staged and
changed artifacts, take the rest from the published run_exports.json (and
repodata.json), say where its baseline came from, and still diff correctly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dev.sample import build_artifact
from indexer.cli import main as cli_main


def _channel(tmp_path: Path, repodata: bool) -> Path:
    channel = tmp_path / "ch"
    for version in ("1.0", "1.1", "1.2"):
        build_artifact(
            channel / "noarch",
            "libfoo",
            version,
            "h0_0",
            run_exports={"weak": [f"libfoo >={version},<2"]},
        )
    build_artifact(channel / "noarch", "bar", "2.0", "h1_3", run_exports={"strong": ["bar"]})
    args = ["index", str(channel), "--cache-dir", str(tmp_path / "private"), "-q"]
    assert cli_main(args + (["--repodata"] if repodata else [])) == 0
    return channel


def _preview(tmp_path: Path, channel: Path, staged: Path) -> dict:
    report = tmp_path / "report.json"
    empty = tmp_path / "empty-cache"
    args = ["index", str(channel), "--preview", "--staged", str(staged), "--cache-dir", str(empty)]
    assert cli_main([*args, "--report", str(report), "-q"]) == 0
    assert not empty.exists() or not any(empty.iterdir())  # nothing written there either
    return json.loads(report.read_text())["subdirs"]["noarch"]


def test_preview_without_cache_reads_only_staged_and_changed(tmp_path: Path) -> None:
    channel = _channel(tmp_path, repodata=True)
    staged = tmp_path / "staged"
    build_artifact(staged / "noarch", "libfoo", "1.3", "h0_0", run_exports={"weak": ["libfoo"]})
    # an artifact uploaded after the index was written: not described by it
    late = build_artifact(channel / "noarch", "baz", "1.0", "h0_0", run_exports={})
    future = os.stat(channel / "noarch" / "run_exports.json").st_mtime + 60
    os.utime(late, (future, future))

    data = _preview(tmp_path, channel, staged)
    assert data["artifacts_read"] == 2  # the staged build and the late upload, nothing else
    assert sorted(data["artifacts"]["new"]) == ["baz-1.0-h0_0.conda", "libfoo-1.3-h0_0.conda"]
    assert data["unchanged"] == 4
    assert "baseline from the published run_exports.json and repodata.json" in data["baseline"]
    assert "shards not previewed" in data["baseline"]
    added = sorted(c["filename"] for c in data["run_exports_changes"])
    assert added == ["baz-1.0-h0_0.conda", "libfoo-1.3-h0_0.conda"]
    # lints still see the previous build (from the baseline): 1.3 drops the <2 pin's shape
    assert not data["warnings"]


def test_preview_without_cache_or_repodata_uses_run_exports_json(tmp_path: Path) -> None:
    channel = _channel(tmp_path, repodata=False)
    staged = tmp_path / "staged"
    build_artifact(staged / "noarch", "bar", "2.0", "h1_3", run_exports={"strong": ["bar >=2"]})
    data = _preview(tmp_path, channel, staged)
    assert data["artifacts_read"] == 1  # the staged rebuild replaces a published one
    assert data["baseline"].startswith("baseline from the published run_exports.json (no cache")
    changes = data["run_exports_changes"]
    assert [c["filename"] for c in changes] == ["bar-2.0-h1_3.conda"]
