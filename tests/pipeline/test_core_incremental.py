"""Issue 2, acceptance 3: add, replace, remove; a warm run opens nothing."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from dev.sample import build_artifact
from indexer.cache.homes import LocalCacheHome
from indexer.config import Config as Options
from indexer.pipeline import index_channel
from indexer.storage.local import LocalStore


class CountingStore(LocalStore):
    """A real local store that also counts the artifacts it opens."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened: list[str] = []

    @contextmanager
    def open_artifact(self, subdir: str, name: str, token: str | None = None):
        self.opened.append(f"{subdir}/{name}")
        with super().open_artifact(subdir, name, token) as f:
            yield f


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "ch"
    build_artifact(
        root / "linux-64", "liba", "1.0", subdir="linux-64", run_exports={"weak": ["liba >=1.0"]}
    )
    build_artifact(root / "linux-64", "libb", "2.0", subdir="linux-64", fmt=".tar.bz2")
    build_artifact(root / "noarch", "pyc", "0.1", run_exports=["pyc"])
    return root


def run(root: Path, **options):
    store = CountingStore(root)
    report = index_channel(store, LocalCacheHome(root / ".run-exports-index"), Options(**options))
    return store, report


def doc(root: Path, subdir: str) -> dict:
    data = json.loads((root / subdir / "run_exports.json").read_text())
    return {**data["packages"], **data["packages.conda"]}


def test_warm_run_with_nothing_new_opens_no_artifact_and_writes_nothing(channel: Path) -> None:
    store, report = run(channel)
    assert sorted(store.opened) == [
        "linux-64/liba-1.0-0.conda",
        "linux-64/libb-2.0-0.tar.bz2",
        "noarch/pyc-0.1-0.conda",
    ]
    assert len(report.uploaded) == 4
    mtimes = {p: p.stat().st_mtime_ns for p in channel.glob("*/run_exports.json*")}

    store, report = run(channel)
    assert store.opened == []
    assert report.uploaded == []
    assert report.total("bytes_read") == 0
    assert [s.unchanged for s in report.subdirs] == [2, 1]
    assert {p: p.stat().st_mtime_ns for p in channel.glob("*/run_exports.json*")} == mtimes


def test_add_replace_remove(channel: Path) -> None:
    run(channel)
    linux = channel / "linux-64"
    build_artifact(linux, "libc", "1.0", subdir="linux-64", run_exports={"strong": ["libc"]})
    # replace liba with a build of the same name that exports something else
    (linux / "liba-1.0-0.conda").unlink()
    build_artifact(
        linux, "liba", "1.0", subdir="linux-64", run_exports={"weak": ["liba >=1.0,<1.1"]}
    )
    (linux / "libb-2.0-0.tar.bz2").unlink()

    store, report = run(channel)
    assert sorted(store.opened) == ["linux-64/liba-1.0-0.conda", "linux-64/libc-1.0-0.conda"]
    sub = {s.subdir: s for s in report.subdirs}["linux-64"]
    assert (sub.new, sub.changed, sub.removed) == (
        ["libc-1.0-0.conda"],
        ["liba-1.0-0.conda"],
        ["libb-2.0-0.tar.bz2"],
    )
    assert [(c.filename, c.change) for c in sub.run_exports_changes] == [
        ("liba-1.0-0.conda", "changed"),
        ("libb-2.0-0.tar.bz2", "removed"),
        ("libc-1.0-0.conda", "added"),
    ]
    assert doc(channel, "linux-64") == {
        "liba-1.0-0.conda": {"run_exports": {"weak": ["liba >=1.0,<1.1"]}},
        "libc-1.0-0.conda": {"run_exports": {"strong": ["libc"]}},
    }
    # only linux-64 changed: noarch was neither opened nor rewritten
    assert sorted(report.uploaded) == ["linux-64/run_exports.json", "linux-64/run_exports.json.zst"]


def test_same_size_replacement_detected_by_token(channel: Path) -> None:
    run(channel)
    target = channel / "noarch" / "pyc-0.1-0.conda"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    store, report = run(channel)
    assert store.opened == ["noarch/pyc-0.1-0.conda"]
    assert report.uploaded == []  # re-read, same content: nothing to write


def test_tar_bz2_read_stops_at_first_package_file(tmp_path: Path) -> None:
    root = tmp_path / "ch"
    path = build_artifact(
        root / "noarch", "big", fmt=".tar.bz2", payload=os.urandom(5 * 2**20), run_exports=["big"]
    )
    _, report = run(root)
    assert report.subdirs[0].artifacts_read == 1
    # bzip2 decompresses in blocks of up to 900 kB: one block is the floor
    assert report.total("bytes_read") < 1_000_000 < path.stat().st_size / 5
    assert doc(root, "noarch") == {"big-1.0-0.tar.bz2": {"run_exports": {"weak": ["big"]}}}


def test_conda_reads_only_the_info_member(tmp_path: Path) -> None:
    root = tmp_path / "ch"
    path = build_artifact(
        root / "noarch", "big", payload=os.urandom(4 * 2**20), run_exports=["big"]
    )
    _, report = run(root)
    assert report.total("bytes_read") < 64 * 1024 < path.stat().st_size


class RacingStore(LocalStore):
    """A real local store; another writer touches the .zst just before our first write of it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.raced = False

    def write(self, path: str, data: bytes, **kwargs):
        if path.endswith("run_exports.json.zst") and not self.raced:
            self.raced = True
            (self.root / path).write_bytes(b"someone else's bytes")
        return super().write(path, data, **kwargs)


def test_a_redo_after_a_conflict_keeps_the_whole_report(channel: Path) -> None:
    run(channel)
    build_artifact(channel / "noarch", "pyc", "0.2", run_exports=["pyc >=9"])  # lint: excludes 0.2
    store = RacingStore(channel)
    report = index_channel(store, LocalCacheHome(channel / ".run-exports-index"), Options())
    assert store.raced
    noarch = {s.subdir: s for s in report.subdirs}["noarch"]
    # written in the first pass (before the conflict) and in the redo: both reported
    assert noarch.uploaded == ["noarch/run_exports.json", "noarch/run_exports.json.zst"]
    assert [(c.filename, c.change) for c in noarch.run_exports_changes] == [
        ("pyc-0.2-0.conda", "added")
    ]
    assert [lint.kind for lint in noarch.lints] == ["pin-excludes-own-version"]
    assert (noarch.new, noarch.unchanged) == (["pyc-0.2-0.conda"], 1)
    assert doc(channel, "noarch")["pyc-0.2-0.conda"] == {"run_exports": {"weak": ["pyc >=9"]}}


class ReplacingStore(LocalStore):
    """A real local store; the artifact is replaced after the listing, just before its read."""

    def __init__(self, root: Path, name: str) -> None:
        super().__init__(root)
        self.name, self.replaced = name, False

    @contextmanager
    def open_artifact(self, subdir: str, name: str, token: str | None = None):
        if name == self.name and not self.replaced:
            self.replaced = True
            (self.root / subdir / name).unlink()
            build_artifact(self.root / subdir, "pyc", "0.1", run_exports=["pyc >=0.1,<0.2"])
        with super().open_artifact(subdir, name, token) as f:
            yield f


def test_replaced_between_listing_and_reading_is_read_again(tmp_path: Path) -> None:
    root = tmp_path / "ch"
    build_artifact(root / "noarch", "pyc", "0.1", run_exports=["pyc"])
    store = ReplacingStore(root, "pyc-0.1-0.conda")
    index_channel(store, LocalCacheHome(root / ".run-exports-index"), Options())
    assert store.replaced
    assert doc(root, "noarch") == {"pyc-0.1-0.conda": {"run_exports": {"weak": ["pyc >=0.1,<0.2"]}}}
    _, report = run(root)  # the cache holds the new version under its own token
    assert report.total("artifacts_read") == 0 and report.uploaded == []
