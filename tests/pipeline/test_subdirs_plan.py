"""Issue 16, acceptance 2 (command line): planning a matrix and the subdirs it names.

`run-exports-index subdirs CHANNEL` prints the channel's subdirs as JSON; a
requested subdir the channel does not have is a notice (exit 0), an invalid
name a usage error (exit 2); a subdir that lost every artifact still gets its
empty outputs, within the mass-removal guard.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from dev.sample import build_artifact


def _channel(tmp_path: Path) -> Path:
    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "a", run_exports=["a"])
    build_artifact(ch / "linux-64", "b", run_exports=["b"], subdir="linux-64")
    (ch / "not-a-subdir").mkdir()
    return ch


def test_subdirs_prints_the_channels_subdirs_as_json(tmp_path: Path, run_cli) -> None:
    ch = _channel(tmp_path)
    status, out, err = run_cli("subdirs", ch)
    assert status == 0, err
    assert json.loads(out) == ["linux-64", "noarch"]
    status, out, _ = run_cli("subdirs", ch, "--subdir", "noarch", "--subdir", "win-64")
    assert status == 0 and json.loads(out) == ["noarch"]  # only those the channel has
    status, _, err = run_cli("subdirs", tmp_path / "missing")
    assert status == 2 and "not found" in err


def test_a_requested_subdir_that_is_absent_is_a_notice(tmp_path: Path, run_cli) -> None:
    ch = _channel(tmp_path)
    report = tmp_path / "r.json"
    status, _, err = run_cli(
        "index", ch, "--subdir", "win-64", "--subdir", "noarch", "--report", report, "-q"
    )
    assert status == 0, err
    assert "notice: win-64: no artifacts in" in err
    data = orjson.loads(report.read_bytes())
    assert data["notices"] == {"win-64": data["subdirs"]["win-64"]["notice"]}
    assert data["subdirs"]["noarch"]["new"] == 1
    assert not (ch / "win-64").exists()  # nothing written for it
    status, _, err = run_cli("index", ch, "--subdir", "win 64")
    assert status == 2 and "is not a subdir name" in err


def test_a_subdir_that_lost_every_artifact_publishes_empty_outputs(tmp_path: Path, run_cli) -> None:
    ch = _channel(tmp_path)
    assert run_cli("index", ch, "-q")[0] == 0
    for artifact in (ch / "linux-64").glob("b-*"):
        artifact.unlink()
    before = (ch / "linux-64" / "run_exports.json").read_bytes()
    status, _, err = run_cli("index", ch, "--subdir", "linux-64", "-q")
    assert status == 1 and "not published" in err  # the guard: 100% gone
    assert (ch / "linux-64" / "run_exports.json").read_bytes() == before
    for allow in (["--allow-mass-removal"], ["--max-removal-share", "1"]):
        (ch / "linux-64" / "run_exports.json").write_bytes(before)
        status, _, err = run_cli("index", ch, "--subdir", "linux-64", "-q", *allow)
        assert status == 0, err
        emptied = json.loads((ch / "linux-64" / "run_exports.json").read_bytes())
        assert emptied["packages"] == {} and emptied["packages.conda"] == {}
        assert (ch / "linux-64" / "repodata_shards.msgpack.zst").exists()
