"""Issue 6: previews of metadata changes (staged artifacts, CEP-21 patches, lints)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import orjson
import pytest
from s3proxy import CountingProxy
from s3server import S3Endpoint, upload_tree
from shardtools import read_subdir, serve

from dev.sample import build_artifact
from indexer.action.comment import render as render_comment

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "preview-comment.md"
LIBFOO_12 = "libfoo-1.2-h0_0.conda"


@pytest.fixture
def channel(tmp_path: Path, run_cli) -> Path:
    """A published channel: libfoo 1.2 with a weak pin, a tool without exports, libbar."""
    root = tmp_path / "ch"
    build_artifact(
        root / "noarch", "libfoo", "1.2", "h0_0", run_exports={"weak": ["libfoo >=1.2,<2"]}
    )
    build_artifact(root / "noarch", "tool", "1.0", "0")
    build_artifact(
        root / "linux-64",
        "libbar",
        "2.0",
        "h1_0",
        subdir="linux-64",
        run_exports={"strong": ["libbar 2.*"]},
    )
    status, _, err = run_cli("index", root)
    assert status == 0, err
    return root


def staged_dir(tmp_path: Path, *builds: tuple[str, str, str, object]) -> Path:
    staged = tmp_path / "staged"
    for name, version, build, exports in builds:
        build_artifact(staged / "noarch", name, version, build, run_exports=exports)
    return staged


def patch_file(tmp_path: Path, instructions: dict) -> Path:
    path = tmp_path / "patches.json"
    path.write_text(json.dumps({"noarch": {"patch_instructions_version": 2, **instructions}}))
    return path


def snapshot_tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def preview(run_cli, channel: Path, tmp_path: Path, *extra: str | Path) -> dict:
    before = snapshot_tree(channel)
    report = tmp_path / "preview.json"
    status, _, err = run_cli("index", channel, "--preview", "--report", report, *extra)
    assert status == 0, err
    assert snapshot_tree(channel) == before, "a preview must write nothing (cache included)"
    data = orjson.loads(report.read_bytes())
    assert data["mode"] == "preview" and data["uploaded"]  # what publishing would write
    return data


def changes(report: dict) -> list[tuple[str, str, str, object, object]]:
    return [
        (sub, c["filename"], c["change"], c["old"], c["new"])
        for sub, data in report["subdirs"].items()
        for c in data["run_exports_changes"]
    ]


LIBFOO_13 = ("libfoo", "1.3", "h0_0", {"weak": ["libfoo >=1.3,<2"]})
PATCH_LIBFOO_12 = {"packages.conda": {LIBFOO_12: {"run_exports": {"weak": ["libfoo >=1.2,<1.3"]}}}}


def test_staged_alone(channel: Path, tmp_path: Path, run_cli) -> None:
    rebuilt_tool = ("tool", "1.0", "0", ["tool >=1.0"])  # same filename, now exports
    report = preview(
        run_cli, channel, tmp_path, "--staged", staged_dir(tmp_path, LIBFOO_13, rebuilt_tool)
    )
    assert changes(report) == [
        ("noarch", "libfoo-1.3-h0_0.conda", "added", None, {"weak": ["libfoo >=1.3,<2"]}),
        ("noarch", "tool-1.0-0.conda", "changed", {}, {"weak": ["tool >=1.0"]}),
    ]
    assert report["subdirs"]["noarch"]["lints"] == []


def test_patches_alone(channel: Path, tmp_path: Path, run_cli) -> None:
    report = preview(run_cli, channel, tmp_path, "--patches", patch_file(tmp_path, PATCH_LIBFOO_12))
    assert changes(report) == [
        (
            "noarch",
            LIBFOO_12,
            "changed",
            {"weak": ["libfoo >=1.2,<2"]},
            {"weak": ["libfoo >=1.2,<1.3"]},
        ),
    ]


def test_staged_and_patches_together(channel: Path, tmp_path: Path, run_cli) -> None:
    patches = patch_file(tmp_path, {**PATCH_LIBFOO_12, "remove": ["tool-1.0-0.conda"]})
    report = preview(
        run_cli,
        channel,
        tmp_path,
        "--staged",
        staged_dir(tmp_path, LIBFOO_13),
        "--patches",
        patches,
    )
    assert changes(report) == [
        (
            "noarch",
            LIBFOO_12,
            "changed",
            {"weak": ["libfoo >=1.2,<2"]},
            {"weak": ["libfoo >=1.2,<1.3"]},
        ),
        ("noarch", "libfoo-1.3-h0_0.conda", "added", None, {"weak": ["libfoo >=1.3,<2"]}),
        ("noarch", "tool-1.0-0.conda", "removed", {}, None),
    ]


# -- lints: each fires on its fixture, none on a clean change -------------------
@pytest.mark.parametrize(
    ("staged", "patch", "kind", "fragment"),
    [
        (("libfoo", "1.3", "h0_0", {}), None, "dropped-run-exports", f"previous build {LIBFOO_12}"),
        (
            ("libfoo", "1.3", "h0_0", {"weak": ["libfoo >=>1.3"]}),
            None,
            "invalid-match-spec",
            ">=>1.3",
        ),
        (
            ("libfoo", "1.3", "h0_0", {"weak": ["libfoo >=2"]}),
            None,
            "pin-excludes-own-version",
            "libfoo 1.3",
        ),
        (
            None,
            {"packages.conda": {"ghost-1.0-0.conda": {"depends": []}}},
            "patch-unknown-artifact",
            "ghost",
        ),
        (
            None,
            {"packages.conda": {LIBFOO_12: {"run_exports": {"weak": ["libfoo <1"]}}}},
            "pin-excludes-own-version",
            "'libfoo <1'",
        ),
    ],
)
def test_each_lint_fires(
    channel: Path, tmp_path: Path, run_cli, staged, patch, kind, fragment
) -> None:
    extra: list[str | Path] = []
    if staged:
        extra += ["--staged", staged_dir(tmp_path, staged)]
    if patch:
        extra += ["--patches", patch_file(tmp_path, patch)]
    report = preview(run_cli, channel, tmp_path, *extra)
    [lint] = report["subdirs"]["noarch"]["lints"]
    assert lint["kind"] == kind and fragment in lint["message"]


def test_clean_change_has_no_lints(channel: Path, tmp_path: Path, run_cli) -> None:
    report = preview(
        run_cli,
        channel,
        tmp_path,
        "--staged",
        staged_dir(tmp_path, LIBFOO_13),
        "--patches",
        patch_file(tmp_path, PATCH_LIBFOO_12),
    )
    assert all(data["lints"] == [] for data in report["subdirs"].values())


def test_staged_needs_preview(channel: Path, tmp_path: Path, run_cli) -> None:
    status, _, err = run_cli("index", channel, "--staged", staged_dir(tmp_path, LIBFOO_13))
    assert status == 2 and "--staged needs --preview" in err


# -- publishing with patches --------------------------------------------------------
def test_publish_with_patches_carries_patched_values(
    channel: Path, tmp_path: Path, run_cli
) -> None:
    patches = patch_file(tmp_path, PATCH_LIBFOO_12)
    status, _, err = run_cli("index", channel, "--patches", patches)
    assert status == 0, err
    noarch = channel / "noarch"
    patched = json.loads((noarch / "run_exports.json").read_text())
    unpatched = json.loads((noarch / "run_exports_from_packages.json").read_text())
    assert patched["packages.conda"][LIBFOO_12] == {"run_exports": {"weak": ["libfoo >=1.2,<1.3"]}}
    # the unpatched view is exactly what the packages say: an index without patches
    plain = tmp_path / "plain"
    build_artifact(
        plain / "noarch", "libfoo", "1.2", "h0_0", run_exports={"weak": ["libfoo >=1.2,<2"]}
    )
    build_artifact(plain / "noarch", "tool", "1.0", "0")
    assert run_cli("index", plain, "--no-shards")[0] == 0
    assert unpatched == json.loads((plain / "noarch" / "run_exports.json").read_text())
    # shards carry the patched values too
    with serve(channel) as url:
        records = read_subdir(url, "noarch")
    assert records[LIBFOO_12][0]["run_exports"] == {"weak": ["libfoo >=1.2,<1.3"]}
    # and a re-run with the same patches writes nothing
    report = tmp_path / "again.json"
    run_cli("index", channel, "--patches", patches, "--report", report)
    assert orjson.loads(report.read_bytes())["uploaded"] == []


# -- preview over S3 with a Read/List-only identity ------------------------------------
def test_preview_with_read_only_identity_attempts_no_write(
    channel: Path, tmp_path: Path, run_cli, s3: S3Endpoint, s3_proxy: CountingProxy, monkeypatch
) -> None:
    if s3.reader is None:
        pytest.skip("no Read/List-only identity for this S3 endpoint")
    bucket = s3.new_bucket("preview")
    upload_tree(s3.client(), bucket, "ch", channel)
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in s3.env(s3.reader).items():
        monkeypatch.setenv(name, value)
    url = f"s3://{bucket}/ch"
    report_path = tmp_path / "s3-preview.json"
    status, _, err = run_cli(
        "index",
        url,
        "--endpoint-url",
        s3_proxy.url,
        "--preview",
        "--report",
        report_path,
        "--staged",
        staged_dir(tmp_path, LIBFOO_13),
        "--patches",
        patch_file(tmp_path, PATCH_LIBFOO_12),
    )
    assert status == 0, err
    writes = [s for s in s3_proxy.seen if s.method in ("PUT", "POST", "DELETE")]
    assert writes == []
    report = orjson.loads(report_path.read_bytes())
    assert [c[1:3] for c in changes(report)] == [
        (LIBFOO_12, "changed"),
        ("libfoo-1.3-h0_0.conda", "added"),
    ]


# -- the comment a maintainer sees, kept as a snapshot ------------------------------------
def normalized(markdown: str, channel: Path) -> str:
    text = markdown.replace(str(channel), "channel")
    text = re.sub(r"\d+(\.\d+)? (B|KiB|MiB) read", "N read", text)
    text = re.sub(r"\| \d+(\.\d+)? (B|KiB|MiB) \|", "| N |", text)
    text = re.sub(r"\(\d+(\.\d+)? (B|KiB|MiB)\)", "(N)", text)
    text = re.sub(r"[0-9a-f]{64}", "<sha256>", text)
    return re.sub(r"· \d+\.\d s$", "· T s", text, flags=re.M)


def test_comment_snapshot(channel: Path, tmp_path: Path, run_cli) -> None:
    """A representative PR: a new build, a rebuild that drops exports, a patch, a typo'd patch."""
    staged = staged_dir(tmp_path, LIBFOO_13, ("tool", "1.1", "0", {"weak": ["tool >=>1.1"]}))
    build_artifact(staged / "linux-64", "libbar", "2.0", "h1_1", build_number=1, subdir="linux-64")
    patches = patch_file(tmp_path, {**PATCH_LIBFOO_12, "revoke": ["ghost-0.1-0.tar.bz2"]})
    summary = tmp_path / "summary.md"
    status, _, err = run_cli(
        "index",
        channel,
        "--preview",
        "--staged",
        staged,
        "--patches",
        patches,
        "--summary",
        summary,
    )
    assert status == 0, err
    body = render_comment(
        normalized(summary.read_text(), channel), "default", "https://github.com/o/r/actions/runs/1"
    )
    if os.environ.get("REGENERATE_SNAPSHOTS"):
        SNAPSHOT.write_text(body)
    assert body == SNAPSHOT.read_text(), "run with REGENERATE_SNAPSHOTS=1 and review the diff"
