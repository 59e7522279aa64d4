"""Issue 7: a subdir exactly as our last run left it is reported without its cache.

After publishing, a run leaves a settled summary beside the cache (see
indexer/settled.py): a fingerprint of the listing as it left it and the
problems a report repeats. A later run whose listing has that fingerprint
never fetches or opens the cache; anything else runs in full.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dev.sample import build_artifact
from indexer.cache.homes import LocalCacheHome
from indexer.config import Config as Options
from indexer.pipeline import index_channel
from indexer.storage.local import LocalStore


class CountingHome(LocalCacheHome):
    """A local cache home that counts checkouts (each one opens the cache)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.checkouts: list[str] = []

    def checkout(self, subdir: str) -> Path:
        self.checkouts.append(subdir)
        return super().checkout(subdir)


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "ch"
    build_artifact(
        root / "linux-64", "liba", "1.0", subdir="linux-64", run_exports={"weak": ["liba >=1.0"]}
    )
    build_artifact(root / "noarch", "pyc", "0.1", run_exports=["pyc"])
    build_artifact(root / "noarch", "odd", "0.1", extra_info={"info/run_exports.json": b"[1]"})
    (root / "noarch" / "broken-1.0-0.conda").write_bytes(b"not a zip at all")
    return root


def run(root: Path, **options) -> tuple[dict, CountingHome]:
    home = CountingHome(root / ".run-exports-index")
    report = index_channel(LocalStore(root), home, Options(**options))
    return report.to_dict(), home


def subdirs(report: dict) -> dict:
    """The per-subdir parts of a report that do not depend on timing."""
    return json.loads(json.dumps(report["subdirs"]))


@pytest.mark.parametrize("shards", [False, True])
def test_a_settled_subdir_is_reported_without_opening_its_cache(channel, shards) -> None:
    _, home = run(channel, shards=shards)
    assert home.checkouts == ["linux-64", "noarch"]
    assert sorted(p.name for p in (channel / ".run-exports-index").glob("*.settled.json")) == [
        "linux-64.settled.json",
        "noarch.settled.json",
    ]
    files = [p for p in channel.rglob("*") if p.is_file() and ".run-exports-index" not in p.parts]
    outputs = {p: p.read_bytes() for p in files}
    cache = channel / ".run-exports-index" / "noarch.sqlite"
    cache.write_bytes(b"garbage: a settled run never opens it")

    warm, home = run(channel, shards=shards)
    assert home.checkouts == []
    assert cache.read_bytes() == b"garbage: a settled run never opens it"
    noarch = warm["subdirs"]["noarch"]
    assert noarch["listed"] == 3 and noarch["unchanged"] == 3 and noarch["new"] == 0
    assert [p["filename"] for p in noarch["artifacts"]["unreadable"]] == ["broken-1.0-0.conda"]
    assert [p["filename"] for p in noarch["artifacts"]["run_exports_unknown"]] == [
        "odd-0.1-0.conda"
    ]
    assert warm["uploaded"] == []
    assert {p: p.read_bytes() for p in outputs} == outputs


def test_the_report_from_the_summary_equals_the_one_from_the_cache(channel) -> None:
    run(channel)
    for summary in (channel / ".run-exports-index").glob("*.settled.json"):
        summary.unlink()
    from_cache, home = run(channel)  # rendered nothing, but opened the caches
    assert home.checkouts == ["linux-64", "noarch"]
    from_summary, home = run(channel)  # the summaries are back: nothing opened
    assert home.checkouts == []
    assert subdirs(from_summary) == subdirs(from_cache)


def _add_artifact(root: Path) -> None:
    build_artifact(root / "noarch", "newer", "2.0", run_exports=["newer"])


def _remove_artifact(root: Path) -> None:
    (root / "noarch" / "pyc-0.1-0.conda").unlink()


def _rewrite_output(root: Path) -> None:
    path = root / "noarch" / "run_exports.json"
    path.write_bytes(b'{"tampered": true}')


def _garble_summary(root: Path) -> None:
    (root / ".run-exports-index" / "noarch.settled.json").write_bytes(b"{not json")


@pytest.mark.parametrize(
    "change",
    [_add_artifact, _remove_artifact, _rewrite_output, _garble_summary],
    ids=["new-artifact", "removed-artifact", "output-rewritten", "garbled-summary"],
)
def test_anything_else_runs_in_full_and_publishes_right(channel, tmp_path, change) -> None:
    run(channel)
    change(channel)
    _, home = run(channel)
    assert home.checkouts == ["noarch"]  # linux-64 is still settled
    reference = tmp_path / "reference"  # the same channel indexed from nothing
    reference.mkdir()
    for artifact in (channel / "noarch").glob("*.conda"):
        (reference / "noarch").mkdir(exist_ok=True)
        (reference / "noarch" / artifact.name).write_bytes(artifact.read_bytes())
    run(reference)
    expected = (reference / "noarch" / "run_exports.json").read_bytes()
    assert (channel / "noarch" / "run_exports.json").read_bytes() == expected
    _, home = run(channel)  # and now it is settled again
    assert home.checkouts == []


def test_other_options_are_not_settled(channel) -> None:
    run(channel, shards=False)
    _, home = run(channel, shards=True)  # a mode switch renders the shards
    assert home.checkouts == ["linux-64", "noarch"]
    assert (channel / "noarch" / "repodata_shards.msgpack.zst").exists()
    _, home = run(channel, shards=True, prune_shards=3600.0)  # pruning needs the cache
    assert home.checkouts == ["linux-64", "noarch"]


def test_read_only_runs_use_the_summary_but_never_write_one(channel) -> None:
    _, home = run(channel, dry_run=True)
    assert list((channel / ".run-exports-index").glob("*.settled.json")) == []
    run(channel)
    stamp = {p: p.read_bytes() for p in (channel / ".run-exports-index").glob("*.settled.json")}
    _, home = run(channel, dry_run=True)
    assert home.checkouts == []
    assert {p: p.read_bytes() for p in stamp} == stamp
