"""Issue 4, acceptance 2, 3 and 5: checksums, incremental uploads, pruning; the CLI flags."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from shardtools import unpack

from dev.sample import build_artifact
from indexer.cache.homes import LocalCacheHome
from indexer.config import Config as Options
from indexer.config import parse_age
from indexer.model import Entry
from indexer.pipeline import index_channel
from indexer.publish.prune import prunable
from indexer.read import checksums
from indexer.render.run_exports import compress
from indexer.storage.local import LocalStore

DAY = 86400.0


class RecordingStore(LocalStore):
    """A real local store that records every write and the largest single read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[str] = []
        self.largest_read = 0

    def write(self, path: str, data: bytes, **kwargs) -> str:
        self.writes.append(path)
        return super().write(path, data, **kwargs)

    @contextmanager
    def open_artifact(self, subdir: str, name: str, token: str | None = None):
        with super().open_artifact(subdir, name, token) as f:
            store = self
            original = f.read

            def read(size: int = -1) -> bytes:
                data = original(size)
                store.largest_read = max(store.largest_read, len(data))
                return data

            f.read = read  # type: ignore[method-assign]
            yield f


def run(root: Path, **options):
    store = RecordingStore(root)
    options.setdefault("shards", True)
    report = index_channel(store, LocalCacheHome(root / ".run-exports-index"), Options(**options))
    return store, report


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "ch"
    build_artifact(root / "noarch", "liba", run_exports={"weak": ["liba >=1.0"]})
    build_artifact(root / "noarch", "libb", "2.0", fmt=".tar.bz2", payload=os.urandom(3 << 20))
    build_artifact(root / "noarch", "libb", "2.1")
    return root


def artifacts(root: Path, subdir: str = "noarch") -> list[Path]:
    return sorted(p for p in (root / subdir).iterdir() if p.name.endswith((".conda", ".tar.bz2")))


def repodata_for(paths: list[Path]) -> dict:
    doc: dict = {"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {}}
    for p in paths:
        data = p.read_bytes()
        section = "packages.conda" if p.name.endswith(".conda") else "packages"
        doc[section][p.name] = {
            "size": len(data),
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return doc


def index_shards(root: Path, subdir: str = "noarch") -> dict[str, bytes]:
    return unpack((root / subdir / "repodata_shards.msgpack.zst").read_bytes())["shards"]


def shard_record(root: Path, name: str, filename: str, subdir: str = "noarch") -> dict:
    sha = index_shards(root, subdir)[name]
    shard = unpack((root / subdir / "shards" / f"{sha.hex()}.msgpack.zst").read_bytes())
    return {**shard["packages"], **shard["packages.conda"]}[filename]


# -- acceptance 2: checksums ------------------------------------------------------
@pytest.mark.parametrize("name", ["repodata.json", "repodata.json.zst"])
def test_checksums_from_existing_repodata_mean_no_full_read(channel: Path, name: str) -> None:
    data = orjson.dumps(repodata_for(artifacts(channel)))
    (channel / "noarch" / name).write_bytes(compress(data) if name.endswith(".zst") else data)
    total = sum(p.stat().st_size for p in artifacts(channel))
    _, report = run(channel)
    sub = report.subdirs[0]
    assert (sub.checksum_full_reads, sub.checksum_bytes_read) == (0, 0)
    assert sub.checksums_from_repodata == 3
    # info parts only (a .tar.bz2 costs one bzip2 block of up to 900 kB)
    assert report.total("bytes_read") < total / 3
    big = channel / "noarch" / "libb-2.0-0.tar.bz2"
    record = shard_record(channel, "libb", big.name)
    assert record["sha256"] == hashlib.sha256(big.read_bytes()).digest()


def test_repodata_entry_with_other_size_is_not_trusted(channel: Path) -> None:
    doc = repodata_for(artifacts(channel))
    doc["packages.conda"]["liba-1.0-0.conda"]["size"] += 1
    (channel / "noarch" / "repodata.json").write_bytes(orjson.dumps(doc))
    _, report = run(channel)
    sub = report.subdirs[0]
    assert (sub.checksums_from_repodata, sub.checksum_full_reads) == (2, 1)
    assert sub.checksum_bytes_read == (channel / "noarch" / "liba-1.0-0.conda").stat().st_size


def test_without_repodata_one_streaming_read_then_none(channel: Path) -> None:
    total = sum(p.stat().st_size for p in artifacts(channel))
    store, report = run(channel, jobs=2)
    sub = report.subdirs[0]
    assert (sub.checksum_full_reads, sub.checksum_bytes_read) == (3, total)
    assert store.largest_read <= checksums.CHUNK < total  # bounded memory: chunks
    for path in artifacts(channel):
        data = path.read_bytes()
        name = path.name.split("-")[0]
        record = shard_record(channel, name, path.name)
        assert record["md5"] == hashlib.md5(data).digest()
        assert record["sha256"] == hashlib.sha256(data).digest()

    _, report = run(channel)
    assert report.total("checksum_full_reads") == report.total("bytes_read") == 0


def test_replaced_artifact_is_hashed_again(channel: Path) -> None:
    run(channel)
    target = channel / "noarch" / "liba-1.0-0.conda"
    target.unlink()
    build_artifact(channel / "noarch", "liba", run_exports={"weak": ["liba >=1.0,<2"]})
    _, report = run(channel)
    assert report.total("checksum_full_reads") == 1
    record = shard_record(channel, "liba", target.name)
    assert record["sha256"] == hashlib.sha256(target.read_bytes()).digest()


# -- acceptance 3: incremental uploads --------------------------------------------
def shards_first(writes: list[str]) -> bool:
    """Every shard written before any other output (issue 15: uploads in parallel)."""
    kinds = ["/shards/" in path for path in writes]
    return kinds == sorted(kinds, reverse=True)


def test_rerun_uploads_nothing_and_one_new_artifact_one_shard(channel: Path) -> None:
    store, report = run(channel)
    assert sorted(p for p in store.writes if "/shards/" in p) == sorted(
        f"noarch/shards/{h.hex()}.msgpack.zst" for h in index_shards(channel).values()
    )
    assert "noarch/repodata_shards.msgpack.zst" in store.writes
    assert shards_first(store.writes)  # the index (and every other output) after its shards
    index_bytes = (channel / "noarch" / "repodata_shards.msgpack.zst").read_bytes()

    store, report = run(channel)
    assert store.writes == [] and report.uploaded == []
    assert (channel / "noarch" / "repodata_shards.msgpack.zst").read_bytes() == index_bytes

    time.sleep(1.1)  # created_at has whole seconds: a changed index gets a new one
    build_artifact(channel / "noarch", "libb", "3.0")  # new build of an existing name
    store, report = run(channel)
    new_shard = f"noarch/shards/{index_shards(channel)['libb'].hex()}.msgpack.zst"
    # the shard first, then (written concurrently, so in any order) what names it
    assert store.writes[0] == new_shard
    assert sorted(store.writes[1:]) == [
        "noarch/repodata_shards.msgpack.zst",
        "noarch/run_exports.json",
        "noarch/run_exports.json.zst",
    ]
    new_index = unpack((channel / "noarch" / "repodata_shards.msgpack.zst").read_bytes())
    assert new_index["info"]["created_at"] != unpack(index_bytes)["info"]["created_at"]


def test_lost_cache_rerun_uploads_nothing(channel: Path) -> None:
    run(channel)
    before = {p: p.stat().st_mtime_ns for p in channel.rglob("noarch/**/*")}
    for path in (channel / ".run-exports-index").glob("*.sqlite"):
        path.unlink()
    store, _ = run(channel)  # cold cache: everything re-read and re-hashed, same bytes
    assert store.writes == []
    assert {p: p.stat().st_mtime_ns for p in channel.rglob("noarch/**/*")} == before


def test_existing_shard_is_not_rewritten(channel: Path) -> None:
    """Same name = same bytes: a shard already there (lost index) is kept as is."""
    run(channel)
    (channel / "noarch" / "repodata_shards.msgpack.zst").unlink()
    store, _ = run(channel)
    assert store.writes == ["noarch/repodata_shards.msgpack.zst"]


def test_dry_run_writes_no_shard(channel: Path) -> None:
    _, report = run(channel, dry_run=True)
    assert not (channel / "noarch" / "shards").exists()
    assert not (channel / "noarch" / "repodata_shards.msgpack.zst").exists()
    assert "noarch/repodata_shards.msgpack.zst" in report.uploaded
    assert sum("/shards/" in p for p in report.uploaded) == 2


# -- acceptance 5: pruning --------------------------------------------------------
def _age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def test_prune_removes_only_unreferenced_shards_past_grace(channel: Path) -> None:
    run(channel)
    shards_dir = channel / "noarch" / "shards"
    old_libb = shards_dir / f"{index_shards(channel)['libb'].hex()}.msgpack.zst"
    orphan_old = shards_dir / ("a" * 64 + ".msgpack.zst")
    orphan_new = shards_dir / ("b" * 64 + ".msgpack.zst")
    not_a_shard = shards_dir / "README"
    for path in (orphan_old, orphan_new, not_a_shard):
        path.write_bytes(b"x")
    for path in [*shards_dir.iterdir()]:
        _age(path, 30)  # everything old on disk ...
    _age(orphan_new, 1)  # ... but this orphan, inside the grace period

    build_artifact(channel / "noarch", "libb", "3.0")  # libb's shard changes now
    _, report = run(channel)  # without the flag nothing is pruned
    assert report.total("shards_pruned") == 0 and orphan_old.exists()

    _, report = run(channel, prune_shards=parse_age("7d"))
    assert report.subdirs[0].shards_pruned == []
    # the shard the index dropped just now is 30 days old on disk but kept:
    # its grace period counts from when the index stopped naming it; an orphan
    # nobody recorded may have been named by any index up to the current one,
    # so its grace period counts from when the current index was written
    assert old_libb.exists() and orphan_old.exists() and orphan_new.exists()
    assert not_a_shard.exists()
    for sha in index_shards(channel).values():
        assert (shards_dir / f"{sha.hex()}.msgpack.zst").exists()

    # once dropped longer ago than the grace period, it goes too
    db = sqlite3.connect(channel / ".run-exports-index" / "noarch.sqlite")
    with db:
        db.execute("UPDATE shards_dropped SET since = since - ?", (8 * DAY,))
    db.close()
    expected = sorted(f"noarch/shards/{p.name}" for p in (old_libb, orphan_old))
    _, report = run(channel, prune_shards=parse_age("7d"), dry_run=True)
    assert report.subdirs[0].shards_pruned == expected
    assert old_libb.exists()  # dry run: counted, not deleted
    _, report = run(channel, prune_shards=parse_age("7d"))
    assert report.subdirs[0].shards_pruned == expected
    assert not old_libb.exists() and not orphan_old.exists()
    assert orphan_new.exists()  # recorded at first sight too, still in its grace period


def test_prunable_is_pure_and_keeps_unaged_objects() -> None:
    now = 100 * DAY
    name = "c" * 64 + ".msgpack.zst"
    entries = [Entry(name, 1, "t", None), Entry("d" * 64 + ".msgpack.zst", 1, "t", 0.0)]
    assert prunable(entries, set(), {}, "noarch/shards", now, 7 * DAY) == [
        f"noarch/shards/{'d' * 64}.msgpack.zst"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 7 * DAY), ("12h", 12 * 3600.0), ("30m", 1800.0), ("1w", 7 * DAY)]
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


# -- CLI ------------------------------------------------------------------------
def test_no_shards_stays_range_read_only(channel: Path, run_cli, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    status, _, err = run_cli("index", channel, "--no-shards", "-q", "--report", report)
    assert status == 0, err
    data = json.loads(report.read_bytes())
    assert data["totals"]["checksum_full_reads"] == 0
    assert data["totals"]["bytes_read"] < (3 << 20) / 3  # info parts only
    assert data["uploaded"] == ["noarch/run_exports.json", "noarch/run_exports.json.zst"]
    assert not (channel / "noarch" / "shards").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--prune-shards", "7"],
        ["--prune-shards", "soon"],
        ["--prune-shards", "-1d"],
        ["--no-shards", "--repodata"],
        ["--no-shards", "--prune-shards", "7d"],
    ],
)
def test_bad_shard_flags_are_usage_errors(channel: Path, run_cli, args) -> None:
    status, _, err = run_cli("index", channel, *args)
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (channel / "noarch" / "run_exports.json").exists()


def test_repodata_flag_writes_repodata_json(channel: Path, run_cli, tmp_path: Path) -> None:
    status, _, err = run_cli("index", channel, "--repodata", "-q", "--cache-dir", tmp_path / "c")
    assert status == 0, err
    raw = (channel / "noarch" / "repodata.json").read_bytes()
    doc = json.loads(raw)
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert unpack_zst(channel / "noarch" / "repodata.json.zst") == raw
    assert sorted(doc) == ["info", "packages", "packages.conda", "removed", "repodata_version"]
    assert (doc["info"], doc["removed"], doc["repodata_version"]) == ({"subdir": "noarch"}, [], 1)
    assert sorted(doc["packages"]) == ["libb-2.0-0.tar.bz2"]
    assert sorted(doc["packages.conda"]) == ["liba-1.0-0.conda", "libb-2.1-0.conda"]
    record = doc["packages.conda"]["liba-1.0-0.conda"]
    data = (channel / "noarch" / "liba-1.0-0.conda").read_bytes()
    assert (record["sha256"], record["md5"], record["size"]) == (
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data).hexdigest(),
        len(data),
    )
    assert "run_exports" not in record  # as conda-index: those live in run_exports.json
    # the next run reads nothing and writes nothing
    report = tmp_path / "r.json"
    run_cli("index", channel, "--repodata", "-q", "--cache-dir", tmp_path / "c", "--report", report)
    assert json.loads(report.read_bytes())["uploaded"] == []


def unpack_zst(path: Path) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()


def test_turning_shards_off_warns_about_the_stale_index(tmp_path: Path, run_cli) -> None:
    import orjson

    from dev.sample import build_artifact

    channel = tmp_path / "ch"
    build_artifact(channel / "noarch", "a", run_exports=["a"])
    assert run_cli("index", channel)[0] == 0  # shards on
    build_artifact(channel / "noarch", "b")
    report = tmp_path / "r.json"
    status, out, _ = run_cli("index", channel, "--no-shards", "--report", report)
    assert status == 0
    [warning] = orjson.loads(report.read_bytes())["subdirs"]["noarch"]["warnings"]
    assert "repodata_shards.msgpack.zst is not updated" in warning
    assert "[!WARNING]" in out


def test_same_size_replacement_after_an_interrupted_run_is_hashed(channel: Path) -> None:
    """repodata.json older than the artifact is not trusted, even once the change is cached.

    The change is cached without checksums by a run without shards (a run
    with shards reads a changed artifact once, info and checksums together,
    so a crash between the two can no longer leave that state).
    """
    run(channel, repodata=True)  # repodata.json now lists liba's checksums
    target = channel / "noarch" / "liba-1.0-0.conda"
    time.sleep(0.01)
    data = bytearray(target.read_bytes())
    at = data.index(b'"conda_pkg_format_version": 2')  # metadata.json: not part of info/
    data[at + len('"conda_pkg_format_version": ')] = ord("3")
    target.write_bytes(bytes(data))  # same size, other bytes, newer than repodata.json

    _, report = run(channel, shards=False)  # the change cached, its checksums not
    assert report.subdirs[0].changed == [target.name]

    _, report = run(channel, repodata=True)  # liba is no longer "changed" in this run's plan
    assert report.total("checksum_full_reads") == 1
    record = shard_record(channel, "liba", target.name)
    assert record["sha256"] == hashlib.sha256(target.read_bytes()).digest()
