"""Issue 7: a run with nothing new renders nothing, yet never leaves outputs stale.

The cache remembers what the published outputs were rendered from (the
`published_from` stamp); a pass that finds the same stamp and every output
still the object this tool wrote skips rendering. These tests pin the cases
where skipping would be wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dev.sample import build_artifact
from indexer import pipeline
from indexer.cache.db import Cache
from indexer.cache.homes import LocalCacheHome
from indexer.config import Config as Options
from indexer.pipeline import index_channel
from indexer.storage.local import LocalStore


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "ch"
    build_artifact(
        root / "linux-64", "liba", "1.0", subdir="linux-64", run_exports={"weak": ["liba >=1.0"]}
    )
    build_artifact(root / "noarch", "pyc", "0.1", run_exports=["pyc"])
    return root


def run(root: Path, **options):
    home = LocalCacheHome(root / ".run-exports-index")
    return index_channel(LocalStore(root), home, Options(**options))


def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every subdir rendered from now on."""
    seen: list[str] = []
    original = pipeline.render_subdir

    def spy(cache, subdir, *args, **kwargs):
        seen.append(subdir)
        return original(cache, subdir, *args, **kwargs)

    monkeypatch.setattr(pipeline, "render_subdir", spy)
    return seen


def names(root: Path, subdir: str) -> set[str]:
    data = json.loads((root / subdir / "run_exports.json").read_text())
    return set(data["packages"]) | set(data["packages.conda"])


@pytest.mark.parametrize("shards", [False, True])
def test_nothing_new_renders_nothing_and_reports_the_same(channel, monkeypatch, shards) -> None:
    first = run(channel, shards=shards)
    before = {p: p.stat().st_mtime_ns for p in channel.rglob("*") if p.is_file()}
    seen = renders(monkeypatch)
    second = run(channel, shards=shards)
    assert seen == []
    after = {p: p.stat().st_mtime_ns for p in channel.rglob("*") if p.is_file()}
    assert after == before  # not a byte written, the cache included
    for a, b in zip(first.subdirs, second.subdirs, strict=True):
        assert (b.listed, b.unchanged, b.new, b.uploaded) == (a.listed, a.listed, [], [])
        assert b.unreadable == a.unreadable and b.run_exports_unknown == a.run_exports_unknown


def test_cache_updated_but_not_published_is_published_next_time(channel, monkeypatch) -> None:
    run(channel)
    build_artifact(channel / "linux-64", "libnew", "1.0", subdir="linux-64")

    def crash(*args, **kwargs):
        raise RuntimeError("killed before publishing")

    monkeypatch.setattr(pipeline, "publish", crash)
    with pytest.raises(RuntimeError):
        run(channel)
    monkeypatch.undo()
    with Cache(channel / ".run-exports-index" / "linux-64.sqlite") as cache:
        assert any(a.filename.startswith("libnew") for a in cache.artifacts())  # read, cached
    report = run(channel)  # nothing new to read, but the outputs lag the cache
    assert not report.subdirs[0].new
    assert any(n.startswith("libnew") for n in names(channel, "linux-64"))


def test_output_replaced_by_someone_else_is_rendered_again(channel, monkeypatch) -> None:
    run(channel)
    target = channel / "linux-64" / "run_exports.json"
    good = target.read_bytes()
    target.write_bytes(b"{}")
    seen = renders(monkeypatch)
    run(channel)
    assert "linux-64" in seen and target.read_bytes() == good


def test_switching_modes_renders_again(channel, monkeypatch) -> None:
    run(channel, shards=False)
    seen = renders(monkeypatch)
    run(channel, shards=True)  # the shard index does not exist yet
    assert (channel / "linux-64" / "repodata_shards.msgpack.zst").is_file()
    run(channel, shards=False)  # run_exports.json is as published, but the stamp names shards
    assert seen.count("linux-64") == 2
    run(channel, shards=False)
    assert seen.count("linux-64") == 2


def test_patches_render_when_they_change(channel, monkeypatch, tmp_path) -> None:
    """Issue 12 changed this: the instructions' content hash is in the stamp, so the same
    patches no longer re-render every run (they used to), and changed ones do."""
    from indexer.render.patches import parse_instructions

    patch = {"patch_instructions_version": 2, "packages": {}, "packages.conda": {}}
    options = {"patches": {"noarch": parse_instructions(patch, "test")}}
    run(channel, **options)
    seen = renders(monkeypatch)
    run(channel, **options)
    assert seen == []
    fix = {"pyc-0.1-0.conda": {"depends": ["python"]}}
    changed = {"patches": {"noarch": parse_instructions({**patch, "packages.conda": fix}, "t")}}
    run(channel, **changed)
    assert "noarch" in seen
