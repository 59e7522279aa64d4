"""Issue 2: unreadable artifacts are reported with a reason and left out."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import orjson
import pytest

from dev.sample import build_artifact


def tar_bz2(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:bz2") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def channel(tmp_path: Path, corrupt_artifacts: list[Path]) -> Path:
    root = tmp_path / "ch"
    noarch = root / "noarch"
    good = build_artifact(noarch, "good", run_exports={"weak": ["good"]})
    for path in corrupt_artifacts:  # a zero-byte .conda and a 16-byte .tar.bz2
        shutil.copy(path, noarch / path.name)
    truncated = noarch / "truncated-1.0-0.conda"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (noarch / "notazip-1.0-0.conda").write_bytes(b"PK\x03\x04 but not really a zip" * 10)
    tar_bz2(noarch / "noindex-1.0-0.tar.bz2", {"info/about.json": b"{}", "lib/x": b"x"})
    tar_bz2(noarch / "badindex-1.0-0.tar.bz2", {"info/index.json": b'{"name": 3}'})
    return root


EXPECTED_REASONS = {
    "another_bad_package.conda": "not a valid .conda",
    "bad_package.tar.bz2": "",
    "truncated-1.0-0.conda": "",
    "notazip-1.0-0.conda": "not a valid .conda",
    "noindex-1.0-0.tar.bz2": "no info/index.json",
    "badindex-1.0-0.tar.bz2": "info/index.json has no valid 'name'",
}


def test_unreadable_reported_left_out_and_exit_0(channel: Path, run_cli, tmp_path) -> None:
    report_path = tmp_path / "report.json"
    status, out, err = run_cli("index", channel, "--report", report_path)
    assert status == 0, err
    assert "Traceback" not in out + err
    noarch = orjson.loads(report_path.read_bytes())["subdirs"]["noarch"]
    reasons = {p["filename"]: p["reason"] for p in noarch["artifacts"]["unreadable"]}
    assert set(reasons) == set(EXPECTED_REASONS)
    for name, expected in EXPECTED_REASONS.items():
        assert expected in reasons[name], (name, reasons[name])
        assert reasons[name].strip()
        assert name in out  # the summary names every unreadable artifact
    doc = json.loads((channel / "noarch" / "run_exports.json").read_text())
    assert doc["packages"] == {}
    assert doc["packages.conda"] == {"good-1.0-0.conda": {"run_exports": {"weak": ["good"]}}}


def test_unreadable_not_retried_until_it_changes(channel: Path, run_cli, tmp_path) -> None:
    report_path = tmp_path / "report.json"
    run_cli("index", channel)
    run_cli("index", channel, "--report", report_path)
    noarch = orjson.loads(report_path.read_bytes())["subdirs"]["noarch"]
    assert noarch["artifacts_read"] == 0
    assert noarch["unreadable"] == len(EXPECTED_REASONS)  # still reported

    # fix one: it is re-read and indexed
    (channel / "noarch" / "truncated-1.0-0.conda").unlink()
    build_artifact(channel / "noarch", "truncated", run_exports=["fixed"])
    run_cli("index", channel, "--report", report_path)
    noarch = orjson.loads(report_path.read_bytes())["subdirs"]["noarch"]
    assert noarch["artifacts"]["changed"] == ["truncated-1.0-0.conda"]
    assert noarch["unreadable"] == len(EXPECTED_REASONS) - 1


def test_strict_exits_1(channel: Path, run_cli) -> None:
    status, _, err = run_cli("index", channel, "--strict")
    assert status == 1
    assert "--strict" in err
