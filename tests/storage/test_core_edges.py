"""Issue 13: a local file name that is not UTF-8, and a --prune-shards age clients would outrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from actionrun import run_action, runner_env

from dev.sample import build_artifact
from indexer.config import CDN_ALLOWANCE_S, MIN_PRUNE_AGE_S, index_max_age
from indexer.model import INDEX_CACHE_CONTROL

BAD = b"bad-\xff\xfe-1.0-0.conda"
SHOWN = "noarch/bad-\\xff\\xfe-1.0-0.conda"


def channel_with_bad_names(root: Path) -> Path:
    good = build_artifact(root / "noarch", "good", run_exports={"weak": ["good"]})
    folder = os.fsencode(root / "noarch")
    shutil.copy(good, folder + b"/" + BAD)
    (Path(os.fsdecode(folder + b"/::error::x\xff.conda"))).write_bytes(b"junk")
    return root


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "indexer", "index", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_name_that_is_not_utf8_is_reported_and_skipped(tmp_path: Path) -> None:
    channel = channel_with_bad_names(tmp_path / "ch")
    report_file, summary = tmp_path / "r.json", tmp_path / "s.md"
    for _ in range(2):  # cold and warm: the same line each time, never a failed run
        done = cli(channel, "--report", report_file, "--summary", summary, "-v")
        assert done.returncode == 0, done.stderr
        said = [line for line in done.stderr.splitlines() if "not valid UTF-8" in line]
        assert said == [
            "WARNING: noarch/::error::x\\xff.conda: skipped, its file name is not valid UTF-8 "
            "(rename it)",
            f"WARNING: {SHOWN}: skipped, its file name is not valid UTF-8 (rename it)",
        ]
        report = json.loads(report_file.read_text())
        noarch = report["subdirs"]["noarch"]
        assert noarch["listed"] == 1 and noarch["unreadable"] == 0
        assert any(SHOWN in warning for warning in noarch["warnings"])
        assert SHOWN in summary.read_text()
        lines = (done.stdout + done.stderr).splitlines()
        assert not [line for line in lines if line.lstrip().startswith("::")]
    published = json.loads((channel / "noarch" / "run_exports.json").read_text())
    assert list(published["packages.conda"]) == ["good-1.0-0.conda"]


def test_a_staged_name_that_is_not_utf8_is_skipped_in_a_preview(tmp_path: Path) -> None:
    channel = tmp_path / "ch"
    build_artifact(channel / "noarch", "base")
    staged = channel_with_bad_names(tmp_path / "staged")
    done = cli(channel, "--preview", "--staged", staged, "--report", tmp_path / "r.json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(SHOWN) == 1  # said once, though the overlay lists it often
    warnings = json.loads((tmp_path / "r.json").read_text())["subdirs"]["noarch"]["warnings"]
    assert any(SHOWN in w for w in warnings)


def test_the_minimum_prune_age_follows_the_index_cache_control() -> None:
    assert index_max_age(INDEX_CACHE_CONTROL) == 60
    assert index_max_age("public, max-age=600, immutable") == 600
    assert index_max_age("no-store") == 0
    assert MIN_PRUNE_AGE_S == index_max_age() + CDN_ALLOWANCE_S == 3660


@pytest.mark.parametrize("age", ["0s", "59m", "1h", "3659s"])
def test_a_prune_age_clients_could_outrun_is_a_usage_error(tmp_path: Path, age: str) -> None:
    build_artifact(tmp_path / "ch" / "noarch", "a")
    done = cli(tmp_path / "ch", "--prune-shards", age)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "at least 3660s (1h1m)" in done.stderr
    assert not (tmp_path / "ch" / "noarch" / "run_exports.json").exists()


def test_the_minimum_prune_age_is_accepted(tmp_path: Path) -> None:
    build_artifact(tmp_path / "ch" / "noarch", "a")
    done = cli(tmp_path / "ch", "--prune-shards", "61m", "-q")
    assert done.returncode == 0, done.stderr


def test_the_action_refuses_a_short_prune_age(tmp_path: Path) -> None:
    build_artifact(tmp_path / "ch" / "noarch", "a")
    inputs = {"channel": str(tmp_path / "ch"), "prune-shards": "30m"}
    result = run_action(runner_env(tmp_path / "run", inputs))
    assert result.status == 2
    assert "--prune-shards: AGE must be at least 3660s" in result.stderr


def test_a_channel_directory_whose_name_is_not_utf8_is_indexed(tmp_path: Path) -> None:
    channel = Path(os.fsdecode(os.fsencode(tmp_path) + b"/ch\xff"))
    build_artifact(channel / "noarch", "a", run_exports={"weak": ["a"]})
    done = cli(channel, "--report", tmp_path / "r.json", "-q")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["channel"].endswith("/ch\\xff")
    assert (channel / "noarch" / "run_exports.json").is_file()


def test_an_input_with_a_newline_cannot_start_a_workflow_command(tmp_path: Path) -> None:
    channel = tmp_path / "ch\n::error::pwned"
    build_artifact(channel / "noarch", "a")
    result = run_action(runner_env(tmp_path / "run", {"channel": str(channel)}))
    assert result.status == 0, result.stderr
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    assert not [line for line in lines if line.lstrip().startswith("::error")]
    assert any(line.startswith("run-exports-index index ") for line in lines)
