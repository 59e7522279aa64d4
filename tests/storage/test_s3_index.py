"""Issue 3: indexing s3:// channels against a real S3 server (SeaweedFS, credentials enforced).

Requests are counted by `s3proxy.CountingProxy`, a forwarding proxy between the
CLI and the server: what it records is what went over the wire.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import pytest
import zstandard
from conftest import EXPECTED
from s3proxy import CountingProxy, Seen
from s3server import S3Endpoint, download_prefix, upload_tree

from dev.sample import build_artifact, build_sample_channel
from indexer.storage.s3 import cache_path, settled_path

RunCli = Callable[..., tuple[int, str, str]]
CACHE_DIR = ".run-exports-index/"


def index(run_cli: RunCli, url: str, endpoint: str, tmp: Path, *args: str) -> tuple[int, dict, str]:
    """Run the CLI on an s3:// channel; return (status, JSON report, stderr)."""
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    status, _, err = run_cli("index", url, "--endpoint-url", endpoint, "--report", report, *args)
    data = json.loads(report.read_text()) if report.exists() else {}
    return status, data, err


def _stable(path: str, data: bytes) -> object:
    """The bytes, or for a shard index its content without `created_at` (a timestamp)."""
    if not path.endswith("repodata_shards.msgpack.zst"):
        return data
    index = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    del index["info"]["created_at"]
    return index


def renamed_conda(data: bytes, old: str, new: str) -> bytes:
    """A copy of a .conda under another file name (its zip members carry the name)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename.replace(old, new), src.read(info))
    return out.getvalue()


def puts(seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if s.method in ("PUT", "POST", "DELETE")]


def test_corpus_over_s3_gives_the_bytes_of_the_local_run(
    aws_env: S3Endpoint, corpus_channel: Path, run_cli: RunCli, tmp_path: Path
) -> None:
    """Acceptance 1: same outputs, byte for byte, as the local-directory run."""
    client = aws_env.client()
    bucket = aws_env.new_bucket("corpus")
    upload_tree(client, bucket, "mirror/conda", corpus_channel)
    status, _, err = run_cli("index", corpus_channel)
    assert status == 0, err
    status, report, err = index(
        run_cli, f"s3://{bucket}/mirror/conda", aws_env.endpoint_url, tmp_path
    )
    assert status == 0, err
    assert report["channel"] == f"s3://{bucket}/mirror/conda"

    remote = download_prefix(client, bucket, "mirror/conda/")
    local = {
        p.relative_to(corpus_channel).as_posix(): p.read_bytes()
        for p in corpus_channel.rglob("*")
        if p.is_file() and CACHE_DIR not in p.relative_to(corpus_channel).as_posix() + "/"
    }
    assert {k: _stable(k, v) for k, v in remote.items() if not k.startswith(CACHE_DIR)} == {
        k: _stable(k, v) for k, v in local.items()
    }
    for subdir in ("linux-64", "noarch", "osx-64"):
        expected = (EXPECTED / subdir / "run_exports.json").read_bytes()
        assert remote[f"{subdir}/run_exports.json"] == expected
        assert cache_path(subdir) in remote  # the cache went back into the bucket

    head = client.head_object(Bucket=bucket, Key="mirror/conda/noarch/run_exports.json")
    assert head["ContentType"] == "application/json"
    assert head["CacheControl"] == "public, max-age=60"
    head = client.head_object(Bucket=bucket, Key="mirror/conda/noarch/run_exports.json.zst")
    assert head["ContentType"] == "application/zstd"


def test_requests_per_artifact_and_a_warm_run_that_only_lists(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, run_cli: RunCli, tmp_path: Path
) -> None:
    """Acceptance 2: ≤ 2 range GETs per new .conda, a 20 MB one read in KiB, warm = listing."""
    channel = tmp_path / "channel"
    big = build_artifact(
        channel / "linux-64",
        "bigpkg",
        "1.0",
        "0",
        subdir="linux-64",
        run_exports={"weak": ["bigpkg >=1.0"]},
        payload=os.urandom(20 * 2**20),
    )
    for i in range(3):
        build_artifact(channel / "linux-64", f"small{i}", "1.0", "0", subdir="linux-64")
    build_artifact(channel / "noarch", "tarball", "1.0", "0", fmt=".tar.bz2", run_exports=["x"])
    bucket = aws_env.new_bucket("requests")
    upload_tree(aws_env.client(), bucket, "ch", channel)
    url = f"s3://{bucket}/ch"

    # --no-shards: shards need whole-artifact checksums, which no range read can give
    status, report, err = index(run_cli, url, s3_proxy.url, tmp_path, "--no-shards")
    assert status == 0, err
    cold = list(s3_proxy.seen)
    conda_gets: dict[str, list[Seen]] = {}
    for seen in cold:
        if seen.is_artifact_get:
            conda_gets.setdefault(seen.key, []).append(seen)
    condas = [k for k in conda_gets if k.endswith(".conda")]
    assert len(condas) == 4
    for key in condas:
        assert 1 <= len(conda_gets[key]) <= 2, (key, conda_gets[key])
        assert all(s.range for s in conda_gets[key]), "a .conda is only ever read by range"
    big_bytes = sum(s.nbytes for s in conda_gets[f"ch/linux-64/{big.name}"])
    assert big_bytes < 64 * 1024 < big.stat().st_size // 300
    [tar_get] = conda_gets["ch/noarch/tarball-1.0-0.tar.bz2"]
    assert tar_get.range is None  # one streamed GET
    linux = report["subdirs"]["linux-64"]
    assert linux["artifacts_read"] == 4
    assert linux["bytes_read"] < 128 * 1024  # counted client-side, from what S3 sent

    s3_proxy.reset()
    status, report, err = index(run_cli, url, s3_proxy.url, tmp_path, "--no-shards")
    assert status == 0, err
    warm = list(s3_proxy.seen)
    assert puts(warm) == []
    assert [s for s in warm if s.is_artifact_get] == []
    others = [s for s in warm if not s.is_list]
    # settled as the cold run left them: one small GET per subdir, the cache is not fetched
    assert sorted(s.key for s in others) == [
        f"ch/{settled_path(d)}" for d in ("linux-64", "noarch")
    ]
    assert all(s.method == "GET" for s in others)
    assert report["uploaded"] == []
    assert report["totals"]["artifacts_read"] == 0


def test_more_than_a_thousand_artifacts_in_one_subdir(
    aws_env: S3Endpoint, run_cli: RunCli, tmp_path: Path
) -> None:
    """Acceptance 3: listings are paginated (S3 pages hold at most 1,000 keys)."""
    one = build_artifact(tmp_path / "build", "many", "1.0", "0", run_exports={"weak": ["many"]})
    bucket = aws_env.new_bucket("pagination")
    client = aws_env.client()
    names = [f"many-1.0-{i:04d}.conda" for i in range(1005)]

    def upload(name: str) -> None:
        data = renamed_conda(one.read_bytes(), "many-1.0-0", name.removesuffix(".conda"))
        client.put_object(Bucket=bucket, Key=f"noarch/{name}", Body=data)

    with ThreadPoolExecutor(24) as pool:
        list(pool.map(upload, names))
    status, report, err = index(
        run_cli, f"s3://{bucket}", aws_env.endpoint_url, tmp_path, "--no-shards", "--jobs", "16"
    )
    assert status == 0, err
    assert report["subdirs"]["noarch"]["listed"] == 1005
    document = json.loads(
        client.get_object(Bucket=bucket, Key="noarch/run_exports.json")["Body"].read()
    )
    assert sorted(document["packages.conda"]) == names


def test_cache_round_trips_through_the_bucket(
    aws_env: S3Endpoint,
    s3_proxy: CountingProxy,
    run_cli: RunCli,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Acceptance 7: a second run on a fresh machine (no local state) reads no artifact."""
    channel = build_sample_channel(tmp_path / "channel")
    bucket = aws_env.new_bucket("cache")
    client = aws_env.client()
    upload_tree(client, bucket, "c", channel)
    url = f"s3://{bucket}/c"
    caplog.set_level(logging.INFO)
    status, report, err = index(run_cli, url, s3_proxy.url, tmp_path)  # shards on (default)
    assert status == 0, err
    assert "no cache at" in caplog.text and "building it from the channel" in caplog.text
    assert report["totals"]["artifacts_read"] == 7
    cache_keys = [k for k in download_prefix(client, bucket, "c/") if k.startswith(CACHE_DIR)]
    assert sorted(cache_keys) == sorted(
        [cache_path(d) for d in ("linux-64", "noarch")]
        + [settled_path(d) for d in ("linux-64", "noarch")]
    )

    s3_proxy.reset()
    status, report, err = index(run_cli, url, s3_proxy.url, tmp_path)
    assert status == 0, err
    assert report["totals"]["artifacts_read"] == 0
    assert [s for s in s3_proxy.seen if s.is_artifact_get] == []
    assert puts(s3_proxy.seen) == []  # neither outputs nor the unchanged cache


def test_unusable_cache_in_the_bucket_is_rebuilt_with_a_notice(
    aws_env: S3Endpoint,
    s3_proxy: CountingProxy,
    run_cli: RunCli,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = build_sample_channel(tmp_path / "channel")
    bucket = aws_env.new_bucket("stale")
    client = aws_env.client()
    upload_tree(client, bucket, "", channel)
    url = f"s3://{bucket}"
    assert index(run_cli, url, aws_env.endpoint_url, tmp_path, "--no-shards")[0] == 0
    client.put_object(Bucket=bucket, Key=cache_path("noarch"), Body=b"not zstd at all")
    client.delete_object(Bucket=bucket, Key=settled_path("noarch"))  # noarch needs its cache
    status, report, err = index(run_cli, url, s3_proxy.url, tmp_path, "--no-shards")
    assert status == 0, err
    assert f"cache s3://{bucket}/{cache_path('noarch')} is unusable" in caplog.text
    assert report["subdirs"]["noarch"]["artifacts_read"] == 3
    assert report["subdirs"]["linux-64"]["artifacts_read"] == 0
    # outputs were already right: only the rebuilt cache (and its summary) is written back
    assert [s.key for s in puts(s3_proxy.seen)] == [cache_path("noarch"), settled_path("noarch")]


def test_cache_dir_keeps_the_cache_local(
    aws_env: S3Endpoint, run_cli: RunCli, tmp_path: Path
) -> None:
    channel = build_sample_channel(tmp_path / "channel")
    bucket = aws_env.new_bucket("cachedir")
    client = aws_env.client()
    upload_tree(client, bucket, "p", channel)
    cache_dir = tmp_path / "actions-cache"
    args = ("--no-shards", "--cache-dir", str(cache_dir))
    status, _, err = index(run_cli, f"s3://{bucket}/p", aws_env.endpoint_url, tmp_path, *args)
    assert status == 0, err
    assert sorted(p.name for p in cache_dir.iterdir()) == [
        "linux-64.settled.json",
        "linux-64.sqlite",
        "noarch.settled.json",
        "noarch.sqlite",
    ]
    assert not any(k.startswith(CACHE_DIR) for k in download_prefix(client, bucket, "p/"))
    status, report, _ = index(run_cli, f"s3://{bucket}/p", aws_env.endpoint_url, tmp_path, *args)
    assert status == 0 and report["totals"]["artifacts_read"] == 0


def test_dry_run_with_read_only_credentials_writes_nothing(
    aws_env: S3Endpoint,
    s3_proxy: CountingProxy,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Acceptance 6: --dry-run needs only Read and List, and reports what it would upload."""
    if aws_env.reader is None:
        pytest.skip("no read-only identity (set RUN_EXPORTS_INDEX_TEST_S3_READONLY)")
    channel = build_sample_channel(tmp_path / "channel")
    bucket = aws_env.new_bucket("dryrun")
    client = aws_env.client()
    upload_tree(client, bucket, "ch", channel)
    before = download_prefix(client, bucket, "ch/")
    for name, value in aws_env.env(aws_env.reader).items():
        monkeypatch.setenv(name, value)

    status, report, err = index(run_cli, f"s3://{bucket}/ch", s3_proxy.url, tmp_path, "--dry-run")
    assert status == 0, err
    assert report["mode"] == "dry-run"
    assert "noarch/run_exports.json" in report["uploaded"]
    assert puts(s3_proxy.seen) == []
    assert download_prefix(client, bucket, "ch/") == before

    # the same identity cannot publish: one line, exit 1, no secret shown
    status, _, err = run_cli("index", f"s3://{bucket}/ch", "--endpoint-url", aws_env.endpoint_url)
    assert status == 1
    lines = err.strip().splitlines()
    assert "AccessDenied" in lines[-1] and "PutObject" in lines[-1]
    assert "Traceback" not in err and aws_env.reader.secret_key not in err


def test_subdirs_are_listed_concurrently(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, run_cli: RunCli, tmp_path: Path
) -> None:
    """Every subdir's listing is under way before the first subdir is read."""
    channel = tmp_path / "channel"
    subdirs = ["linux-64", "linux-aarch64", "noarch", "osx-64", "osx-arm64", "win-64"]
    one = build_artifact(tmp_path / "build", "pkg", "1.0", "0")
    for subdir in subdirs:
        (channel / subdir).mkdir(parents=True)
        shutil.copy(one, channel / subdir / one.name)
    bucket = aws_env.new_bucket("concurrent")
    upload_tree(aws_env.client(), bucket, "", channel)
    status, _, err = index(run_cli, f"s3://{bucket}", s3_proxy.url, tmp_path, "--no-shards")
    assert status == 0, err
    first_read = next(i for i, s in enumerate(s3_proxy.seen) if s.is_artifact_get)
    listed_before = {s.query for s in s3_proxy.seen[:first_read] if s.is_list}
    assert all(any(f"prefix={d}%2F" in q for q in listed_before) for d in subdirs)
