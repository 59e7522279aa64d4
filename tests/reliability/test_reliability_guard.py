"""Issue 13, acceptance 4 and the scratch copies: a mass removal is refused, scratch is cleaned.

A wrong prefix, an emptied subdir or a truncated listing would publish
indexes that drop most of a subdir. A run that would remove more than
`--max-removal-share` (default 50%) of a subdir's artifacts publishes
nothing for it, says why in one line and exits 1, unless
`--allow-mass-removal`; the other subdirs still publish.

Scratch copies of the cache (`$TMPDIR/run-exports-index-cache-<pid>-<start>-*`)
go on exit and on SIGTERM; those of killed runs (SIGKILL) at the next start,
never those of a run still alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability import PREFIX, cli_command, cli_env, small_channel
from s3proxy import CountingProxy, Fault, Seen
from s3server import S3Endpoint, upload_tree

from dev.sample import build_artifact
from indexer.cache.homes import SCRATCH_PREFIX, _start_time

RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    """noarch: ten artifacts; linux-64: two. Indexed once."""
    root = tmp_path / "ch"
    for i in range(10):
        build_artifact(root / "noarch", f"pkg{i}", run_exports=[f"pkg{i} >=1.0"])
    for name in ("liba", "libb"):
        build_artifact(root / "linux-64", name, subdir="linux-64")
    return root


def index(run_cli: RunCli, channel: Path, tmp: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    status, _, err = run_cli("index", channel, "--report", report, "--summary", tmp / "s.md", *args)
    return status, json.loads(report.read_text()) if report.exists() else {}, err


def outputs_of(channel: Path, subdir: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (channel / subdir).iterdir() if p.is_file()}


def lose(channel: Path, keep: int) -> None:
    """Delete all but `keep` noarch artifacts (what a truncated listing looks like)."""
    for path in sorted((channel / "noarch").glob("*.conda"))[keep:]:
        path.unlink()


def test_a_first_run_is_never_a_mass_removal(
    channel: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    status, report, err = index(run_cli, channel, tmp_path)
    assert status == 0, err
    assert report["ok"] and report["refused"] == {}


def test_losing_90_percent_publishes_nothing_for_that_subdir_and_exits_1(
    channel: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    assert index(run_cli, channel, tmp_path)[0] == 0
    before = outputs_of(channel, "noarch")
    lose(channel, keep=1)
    late = build_artifact(channel / "linux-64", "libc", subdir="linux-64")
    for _ in range(2):  # the refusal leaves the cache as it was: refused again
        status, report, err = index(run_cli, channel, tmp_path)
        assert status == 1, err
        lines = [line for line in err.splitlines() if line.startswith("run-exports-index: ")]
        assert len(lines) == 1 and "noarch" in lines[0] and "--allow-mass-removal" in lines[0]
        assert "9 of its 10 artifacts (90%" in report["subdirs"]["noarch"]["refused"]
        assert report["ok"] is False and list(report["refused"]) == ["noarch"]
        now = outputs_of(channel, "noarch")
        for name in ("run_exports.json", "run_exports.json.zst", "repodata_shards.msgpack.zst"):
            assert now[name] == before[name], name
        assert not any(p.startswith("noarch/") for p in report["uploaded"])
        # the other subdir of the same run still publishes
        linux = json.loads((channel / "linux-64" / "run_exports.json").read_bytes())
        assert late.name in linux["packages.conda"]
    assert "> [!CAUTION]" in (tmp_path / "s.md").read_text()
    assert "not published: this run would remove 9" in (tmp_path / "s.md").read_text()

    status, report, err = index(run_cli, channel, tmp_path, "--allow-mass-removal")
    assert status == 0, err
    noarch = json.loads((channel / "noarch" / "run_exports.json").read_bytes())
    assert len(noarch["packages.conda"]) == 1
    assert report["subdirs"]["noarch"]["refused"] is None


def test_a_lost_cache_with_a_truncated_listing_is_refused_too(
    channel: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    """With no cache, the entries are those of the published run_exports.json."""
    assert index(run_cli, channel, tmp_path)[0] == 0
    before = (channel / "noarch" / "run_exports.json").read_bytes()
    for path in (channel / ".run-exports-index").iterdir():
        path.unlink()
    lose(channel, keep=1)
    status, report, err = index(run_cli, channel, tmp_path)
    assert status == 1, err
    assert "9 of its 10" in report["subdirs"]["noarch"]["refused"]
    assert (channel / "noarch" / "run_exports.json").read_bytes() == before


@pytest.mark.parametrize(
    ("keep", "args", "refused"),
    [
        (5, (), False),  # 50% is not more than 50%
        (4, (), True),
        (1, ("--max-removal-share", "95%"), False),
        (9, ("--max-removal-share", "0"), True),
    ],
)
def test_the_share_is_configurable(
    channel: Path, run_cli: RunCli, tmp_path: Path, keep: int, args: tuple[str, ...], refused: bool
) -> None:
    assert index(run_cli, channel, tmp_path)[0] == 0
    lose(channel, keep=keep)
    status, report, err = index(run_cli, channel, tmp_path, *args)
    assert status == (1 if refused else 0), err
    assert bool(report["subdirs"]["noarch"]["refused"]) is refused


def test_a_bad_share_is_a_usage_error(channel: Path, run_cli: RunCli) -> None:
    status, _, err = run_cli("index", channel, "--max-removal-share", "150%")
    assert status == 2 and "between 0 and 1" in err


# -- scratch copies ----------------------------------------------------------------
def scratch_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(f"{SCRATCH_PREFIX}*") if p.is_dir())


def test_stale_scratch_of_a_dead_run_is_cleaned_at_start_a_live_ones_kept(
    channel: Path, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = _start_time(live.pid)
        assert start is not None
        made = {
            "dead": tmp / f"{SCRATCH_PREFIX}{dead.pid}-12345-abc",
            "live": tmp / f"{SCRATCH_PREFIX}{live.pid}-{start}-def",
            "reused-pid": tmp / f"{SCRATCH_PREFIX}{live.pid}-{start + 1}-ghi",
            "not-ours": tmp / f"{SCRATCH_PREFIX}oldstyle",
        }
        for folder in made.values():
            folder.mkdir()
            (folder / "noarch.sqlite").write_bytes(b"x" * 1000)
        status, _, err = run_cli("index", channel)
        assert status == 0, err
        assert not made["dead"].exists()
        assert not made["reused-pid"].exists()  # that pid now belongs to another process
        assert made["live"].exists() and made["not-ours"].exists()
    finally:
        live.kill()
        live.wait()


def test_a_dry_run_leaves_no_scratch(
    channel: Path, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert run_cli("index", channel, "--dry-run")[0] == 0
    assert scratch_dirs(tmp) == []


def test_sigterm_removes_the_scratch_copy(aws_env: S3Endpoint, tmp_path: Path) -> None:
    bucket = aws_env.new_bucket("sigterm")
    upload_tree(aws_env.client(), bucket, PREFIX, small_channel(tmp_path / "ch"))
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    seen_scratch: list[Path] = []
    with CountingProxy(aws_env.endpoint_url) as proxy:
        command = cli_command(f"s3://{bucket}/{PREFIX}", proxy.url, tmp_path / "r.json")
        process: list[subprocess.Popen[str]] = []

        def terminate(_: Seen) -> None:
            seen_scratch.extend(scratch_dirs(tmp))
            os.kill(process[0].pid, signal.SIGTERM)

        proxy.faults.append(Fault(lambda s: s.is_artifact_get, "call", call=terminate))
        process.append(
            subprocess.Popen(
                command,
                env=cli_env(aws_env, tmp),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        _, err = process[0].communicate(timeout=60)
    assert seen_scratch, "the run had a scratch copy when it was stopped"
    assert process[0].returncode == 128 + signal.SIGTERM, err
    assert scratch_dirs(tmp) == []
