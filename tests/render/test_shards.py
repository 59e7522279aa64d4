"""Issue 4, acceptance 1 and 4: shard records match conda-index; readers resolve them.

The CEP-16 reader in shardtools.py and py-rattler both read the published
channel over a real HTTP server on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import CORPUS_SUBDIRS, EXPECTED
from shardtools import hexed, read_subdir, serve, unpack

from dev.sample import build_artifact


def index_corpus(channel: Path, run_cli, cache: Path, *extra: str) -> None:
    status, _, err = run_cli("index", channel, "--cache-dir", cache, "-q", *extra)
    assert status == 0, err


def shard_files(channel: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(channel)): p.read_bytes()
        for p in sorted(channel.glob("*/shards/*.msgpack.zst"))
    }


@pytest.mark.parametrize("subdir", CORPUS_SUBDIRS)
def test_corpus_shards_match_conda_index(corpus_channel: Path, run_cli, tmp_path, subdir) -> None:
    index_corpus(corpus_channel, run_cli, tmp_path / "cache")
    index = unpack((corpus_channel / subdir / "repodata_shards.msgpack.zst").read_bytes())
    assert index["version"] == 1
    assert index["info"]["subdir"] == subdir
    assert (index["info"]["base_url"], index["info"]["shards_base_url"]) == ("", "./shards/")
    assert isinstance(index["info"]["created_at"], str)
    expected = json.loads((EXPECTED / subdir / "shards.json").read_bytes())["shards"]
    assert sorted(index["shards"]) == sorted(expected)
    for name, sha256 in index["shards"].items():
        data = (corpus_channel / subdir / "shards" / f"{sha256.hex()}.msgpack.zst").read_bytes()
        assert hashlib.sha256(data).digest() == sha256
        shard = unpack(data)
        assert set(shard) == {"packages", "packages.conda"}
        for section in ("packages", "packages.conda"):
            for record in shard[section].values():  # raw bytes, not hex, in msgpack
                assert len(record["md5"]) == 16 and len(record["sha256"]) == 32
            got = {fn: hexed(rec) for fn, rec in shard[section].items()}
            assert got == expected[name][section], (name, section)


def test_shard_bytes_same_for_any_jobs_and_cold_or_warm(corpus_channel: Path, run_cli, tmp_path):
    results = {}
    for jobs in ("1", "8"):
        channel = tmp_path / f"jobs{jobs}"
        shutil.copytree(corpus_channel, channel)
        index_corpus(channel, run_cli, tmp_path / f"cache{jobs}", "--jobs", jobs)
        results[jobs] = shard_files(channel)
    assert results["1"] == results["8"] and len(results["1"]) == 9 + 5 + 1
    # warm: shards and index deleted, cache kept (checksums come from the cache)
    warm = tmp_path / "jobs8"
    for path in [*warm.glob("*/shards/*"), *warm.glob("*/repodata_shards.msgpack.zst")]:
        path.unlink()
    index_corpus(warm, run_cli, tmp_path / "cache8", "--jobs", "3")
    assert shard_files(warm) == results["1"]


def test_run_exports_present_empty_or_absent(tmp_path: Path, run_cli) -> None:
    """`{}` when a package has none; absent when malformed (unknown); unreadable left out."""
    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "has", run_exports={"weak": ["has >=1.0"]})
    build_artifact(ch / "noarch", "none")
    build_artifact(ch / "noarch", "bad", run_exports=b"{not json")
    (ch / "noarch" / "broken-1.0-0.conda").write_bytes(b"not a zip")
    index_corpus(ch, run_cli, tmp_path / "cache")
    with serve(ch) as url:
        records = {fn: rec for fn, (rec, _) in read_subdir(url, "noarch").items()}
    assert sorted(records) == ["bad-1.0-0.conda", "has-1.0-0.conda", "none-1.0-0.conda"]
    assert records["has-1.0-0.conda"]["run_exports"] == {"weak": ["has >=1.0"]}
    assert records["none-1.0-0.conda"]["run_exports"] == {}
    assert "run_exports" not in records["bad-1.0-0.conda"]


def test_cep16_reader_resolves_every_package(corpus_channel: Path, run_cli, tmp_path) -> None:
    index_corpus(corpus_channel, run_cli, tmp_path / "cache")
    with serve(corpus_channel) as url:
        for subdir in CORPUS_SUBDIRS:
            found = read_subdir(url, subdir)
            folder = corpus_channel / subdir
            artifacts = sorted(p.name for p in folder.iterdir() if p.suffix in (".conda", ".bz2"))
            assert sorted(found) == artifacts
            for filename, (record, package_url) in found.items():
                assert package_url == f"{url}{subdir}/{filename}"
                data = (corpus_channel / subdir / filename).read_bytes()
                assert record["sha256"] == hashlib.sha256(data).digest()
                assert record["md5"] == hashlib.md5(data).digest()
                assert record["size"] == len(data)


def _rattler_query(channel_url: str, names: list[str]) -> dict[str, dict]:
    import tempfile

    from rattler import Channel, Gateway, SourceConfig

    async def query() -> dict[str, dict]:
        with tempfile.TemporaryDirectory() as cache:
            gateway = Gateway(cache_dir=cache, default_config=SourceConfig(sharded_enabled=True))
            subdirs = await gateway.query(
                [Channel(channel_url)], ["linux-64", "noarch"], names, recursive=False
            )
            return {r.file_name: json.loads(r.to_json()) for sub in subdirs for r in sub}

    return asyncio.run(query())


def test_py_rattler_reads_shards_and_sees_run_exports(tmp_path: Path, run_cli) -> None:
    ch = tmp_path / "ch"
    build_artifact(ch / "linux-64", "libfoo", subdir="linux-64", run_exports={"weak": ["libfoo"]})
    build_artifact(ch / "linux-64", "libbar", subdir="linux-64", fmt=".tar.bz2")
    build_artifact(ch / "noarch", "pyx", run_exports=["pyx >=1.0"])
    index_corpus(ch, run_cli, tmp_path / "cache")
    assert not list(ch.glob("*/repodata.json*"))  # only shards: rattler must use them
    with serve(ch) as url:
        records = _rattler_query(url, ["libfoo", "libbar", "pyx"])
    assert {fn: r.get("run_exports") for fn, r in records.items()} == {
        "libfoo-1.0-0.conda": {"weak": ["libfoo"]},
        "libbar-1.0-0.tar.bz2": {},
        "pyx-1.0-0.conda": {"weak": ["pyx >=1.0"]},
    }
    assert records["libfoo-1.0-0.conda"]["url"] == f"{url}linux-64/libfoo-1.0-0.conda"


def test_py_rattler_file_urls_need_repodata_json(tmp_path: Path, run_cli) -> None:
    """Pinned limitation: for file:// channels py-rattler reads only repodata.json."""
    from rattler.exceptions import GatewayError

    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "pyx", run_exports=["pyx >=1.0"])
    index_corpus(ch, run_cli, tmp_path / "cache")
    with pytest.raises(GatewayError, match=r"repodata\.json"):
        _rattler_query(ch.as_uri(), ["pyx"])
    index_corpus(ch, run_cli, tmp_path / "cache", "--repodata")
    records = _rattler_query(ch.as_uri(), ["pyx"])
    assert list(records) == ["pyx-1.0-0.conda"]  # read, from repodata.json (no run_exports)
