"""Issue 4 over S3 (SeaweedFS on loopback, credentials enforced): conformance,
immutable shards, a re-run that uploads nothing, one new artifact = one new shard."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import CORPUS_SUBDIRS, EXPECTED
from s3server import S3Endpoint, download_prefix, upload_tree
from shardtools import hexed, unpack

from dev.sample import build_artifact
from indexer.config import MIN_PRUNE_AGE_S
from indexer.config import Config as Options
from indexer.model import IMMUTABLE_CACHE_CONTROL
from indexer.pipeline import index_channel
from indexer.storage.open import default_cache_home, open_store
from indexer.storage.s3 import S3Options

PREFIX = "channel"


def index(run_cli, s3: S3Endpoint, bucket: str, tmp: Path, *args: str) -> dict:
    report = tmp / "report.json"
    status, _, err = run_cli(
        "index", f"s3://{bucket}/{PREFIX}", "--endpoint-url", s3.endpoint_url, "-q",
        "--report", report, *args,
    )  # fmt: skip
    assert status == 0, err
    return json.loads(report.read_bytes())


def records(objects: dict[str, bytes], subdir: str) -> dict[str, dict]:
    """package name → {section: {fn: record (hex)}} through the published index."""
    found = {}
    for name, sha in unpack(objects[f"{subdir}/repodata_shards.msgpack.zst"])["shards"].items():
        data = objects[f"{subdir}/shards/{sha.hex()}.msgpack.zst"]
        assert hashlib.sha256(data).digest() == sha
        shard = unpack(data)
        found[name] = {s: {fn: hexed(r) for fn, r in shard[s].items()} for s in shard}
    return found


def test_corpus_shards_over_s3(corpus_channel: Path, aws_env: S3Endpoint, run_cli, tmp_path):
    s3 = aws_env
    bucket = s3.new_bucket("shards")
    upload_tree(s3.client(), bucket, PREFIX, corpus_channel)
    report = index(run_cli, s3, bucket, tmp_path)
    assert report["totals"]["checksum_full_reads"] == 23
    objects = download_prefix(s3.client(), bucket, PREFIX)
    for subdir in CORPUS_SUBDIRS:
        expected = json.loads((EXPECTED / subdir / "shards.json").read_bytes())["shards"]
        assert records(objects, subdir) == expected, subdir
    key = next(k for k in objects if "/shards/" in k)
    head = s3.client().head_object(Bucket=bucket, Key=f"{PREFIX}/{key}")
    assert head.get("CacheControl") == IMMUTABLE_CACHE_CONTROL

    # nothing new: no upload, no full read
    report = index(run_cli, s3, bucket, tmp_path)
    assert report["uploaded"] == [] and report["totals"]["bytes_read"] == 0

    # one new artifact of a new name: its shard and the index, nothing else of the shards
    new = build_artifact(tmp_path / "new", "brandnew", subdir="noarch", run_exports=["brandnew"])
    s3.client().upload_file(str(new), bucket, f"{PREFIX}/noarch/{new.name}")
    report = index(run_cli, s3, bucket, tmp_path)
    shard_uploads = [p for p in report["uploaded"] if "shards" in p]
    assert len(shard_uploads) == 2, report["uploaded"]
    assert shard_uploads[-1] == "noarch/repodata_shards.msgpack.zst"
    assert report["totals"]["checksum_full_reads"] == 1
    assert report["totals"]["checksum_bytes_read"] == new.stat().st_size
    objects = download_prefix(s3.client(), bucket, PREFIX)
    record = records(objects, "noarch")["brandnew"]["packages.conda"][new.name]
    assert record["run_exports"] == {"weak": ["brandnew"]}
    assert record["sha256"] == hashlib.sha256(new.read_bytes()).hexdigest()


def prune(s3: S3Endpoint, bucket: str, age: float) -> dict:
    """An in-process run with `prune_shards=age`: the CLI refuses ages shorter than
    MIN_PRUNE_AGE_S, and a test cannot wait an hour for an object to age."""
    store = open_store(f"s3://{bucket}/{PREFIX}", S3Options(endpoint_url=s3.endpoint_url))
    home = default_cache_home(store, None)
    try:
        return index_channel(store, home, Options(shards=True, prune_shards=age)).to_dict()
    finally:
        home.close()  # type: ignore[attr-defined]


def test_prune_over_s3(aws_env: S3Endpoint, run_cli, tmp_path: Path) -> None:
    """Objects on S3 cannot be backdated: only the age comparison is shown here."""
    s3 = aws_env
    bucket = s3.new_bucket("prune")
    build_artifact(tmp_path / "ch" / "noarch", "a", run_exports=["a"])
    upload_tree(s3.client(), bucket, PREFIX, tmp_path / "ch")
    index(run_cli, s3, bucket, tmp_path)
    orphan = f"{PREFIX}/noarch/shards/{'e' * 64}.msgpack.zst"
    s3.client().put_object(Bucket=bucket, Key=orphan, Body=b"x")
    report = index(run_cli, s3, bucket, tmp_path, "--prune-shards", "2h")
    assert report["totals"]["shards_pruned"] == 0  # uploaded just now: inside the grace
    assert prune(s3, bucket, MIN_PRUNE_AGE_S)["totals"]["shards_pruned"] == 0
    report = prune(s3, bucket, 0.0)
    assert report["subdirs"]["noarch"]["shards_pruned"] == [f"noarch/shards/{'e' * 64}.msgpack.zst"]
    keys = download_prefix(s3.client(), bucket, PREFIX)
    assert f"noarch/shards/{'e' * 64}.msgpack.zst" not in keys
    assert sum("/shards/" in k for k in keys) == 1  # the referenced one stays


@pytest.fixture(autouse=True)
def _quiet_boto(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="botocore")
