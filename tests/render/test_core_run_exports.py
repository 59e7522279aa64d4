"""Issue 2, acceptance 2: CEP-34 list form, dict form, malformed run_exports."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from dev.sample import build_artifact
from indexer.read.parse import parse_run_exports


def index(run_cli, channel: Path, tmp_path: Path, *extra: str) -> dict:
    report = tmp_path / "report.json"
    status, _, err = run_cli("index", channel, "--report", report, *extra)
    assert status == 0, err
    return orjson.loads(report.read_bytes())


def entries(channel: Path, subdir: str = "noarch") -> dict:
    doc = json.loads((channel / subdir / "run_exports.json").read_text())
    return {**doc["packages"], **doc["packages.conda"]}


def test_list_form_means_weak(tmp_path, run_cli) -> None:
    channel = tmp_path / "ch"
    for fmt in (".conda", ".tar.bz2"):
        build_artifact(channel / "noarch", "listy", fmt=fmt, run_exports=["listy >=1.0"])
    index(run_cli, channel, tmp_path)
    assert entries(channel) == {
        "listy-1.0-0.conda": {"run_exports": {"weak": ["listy >=1.0"]}},
        "listy-1.0-0.tar.bz2": {"run_exports": {"weak": ["listy >=1.0"]}},
    }


def test_dict_form_kept_as_written(tmp_path, run_cli) -> None:
    channel = tmp_path / "ch"
    exports = {
        "strong": ["libz >=1.3,<2"],
        "weak": ["libz"],
        "noarch": ["python"],
        "weak_constrains": ["libz-tools 1.3.*"],
        "strong_constrains": ["libz-dev 1.3.*"],
    }
    build_artifact(channel / "noarch", "dicty", run_exports=exports)
    build_artifact(channel / "noarch", "none-at-all")
    index(run_cli, channel, tmp_path)
    assert entries(channel) == {
        "dicty-1.0-0.conda": {"run_exports": exports},
        "none-at-all-1.0-0.conda": {"run_exports": {}},
    }


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b'"libz"', "expected a list or an object"),
        (b'{"weak": "libz"}', "'weak' must be a list"),
        (b'{"strong": [1, 2]}', "'strong' must hold match-spec strings, found int"),
        (b'["ok", null]', "'weak' must hold match-spec strings, found NoneType"),
        (b"\xff\xfe bad bytes", "not valid JSON"),
    ],
)
def test_malformed_run_exports_reported_and_left_out(tmp_path, run_cli, raw, why) -> None:
    channel = tmp_path / "ch"
    build_artifact(channel / "noarch", "bad", run_exports=raw)
    build_artifact(channel / "noarch", "good", run_exports={"weak": ["good"]})
    report = index(run_cli, channel, tmp_path)
    noarch = report["subdirs"]["noarch"]
    [problem] = noarch["artifacts"]["run_exports_unknown"]
    assert problem["filename"] == "bad-1.0-0.conda"
    assert why in problem["reason"]
    assert noarch["unreadable"] == 0  # the artifact itself is fine
    assert entries(channel) == {"good-1.0-0.conda": {"run_exports": {"weak": ["good"]}}}
    # --strict turns the problem into exit 1
    assert run_cli("index", channel, "--strict")[0] == 1


def test_schema_version_is_not_an_error() -> None:
    assert parse_run_exports(b'{"schema_version": 1, "weak": ["a"]}') == {
        "schema_version": 1,
        "weak": ["a"],
    }
