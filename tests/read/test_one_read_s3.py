"""Issue 15, acceptance 1: one read per new artifact, counted at the S3 proxy.

In the default mode (shards on) with no repodata.json to vouch for their
checksums, a new `.conda` and a new `.tar.bz2` are each read once, in one
GET: info and md5/sha256 from the same bytes, at most size + 64 KiB each.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from s3proxy import CountingProxy
from s3server import S3Endpoint, download_prefix
from shardtools import hexed, unpack

from dev.sample import build_artifact
from indexer.read import fullread

PREFIX = "ch"


def shard_records(objects: dict[str, bytes], subdir: str = "noarch") -> dict[str, dict]:
    """filename → shard record (hex digests), through the published shard index."""
    found: dict[str, dict] = {}
    for sha in unpack(objects[f"{subdir}/repodata_shards.msgpack.zst"])["shards"].values():
        shard = unpack(objects[f"{subdir}/shards/{sha.hex()}.msgpack.zst"])
        for section in ("packages", "packages.conda"):
            found.update({fn: hexed(r) for fn, r in shard.get(section, {}).items()})
    return found


def index(run_cli, endpoint: str, bucket: str, tmp: Path, *args: str) -> dict:
    report = tmp / "report.json"
    status, _, err = run_cli(
        "index", f"s3://{bucket}/{PREFIX}", "--endpoint-url", endpoint, "-q",
        "--report", report, *args,
    )  # fmt: skip
    assert status == 0, err
    return json.loads(report.read_bytes())


def test_new_artifacts_cost_one_read_each(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, run_cli, tmp_path: Path
) -> None:
    client = aws_env.client()
    bucket = aws_env.new_bucket("oneread")
    old = build_artifact(tmp_path / "old", "old", run_exports=["old"])
    client.upload_file(str(old), bucket, f"{PREFIX}/noarch/{old.name}")
    index(run_cli, aws_env.endpoint_url, bucket, tmp_path)

    new = [
        build_artifact(tmp_path / "new", "newc", run_exports=["newc"], payload=os.urandom(3 << 19)),
        build_artifact(
            tmp_path / "new", "newb", fmt=".tar.bz2", run_exports={"strong": ["newb"]},
            payload=os.urandom(3 << 19),
        ),
    ]  # fmt: skip
    for path in new:
        client.upload_file(str(path), bucket, f"{PREFIX}/noarch/{path.name}")
    s3_proxy.reset()
    report = index(run_cli, s3_proxy.url, bucket, tmp_path)

    sub = report["subdirs"]["noarch"]
    assert sorted(sub["artifacts"]["new"]) == sorted(p.name for p in new)
    assert sub["checksum_full_reads"] == 2 and sub["checksums_from_repodata"] == 0
    assert sub["checksum_bytes_read"] == sub["bytes_read"] == sum(p.stat().st_size for p in new)
    for path in new:
        gets = [s for s in s3_proxy.seen if s.is_artifact_get and s.key.endswith(path.name)]
        sent = sum(s.nbytes for s in gets)
        assert len(gets) == 1 and gets[0].range is None, [(s.range, s.nbytes) for s in gets]
        assert sent <= path.stat().st_size + 64 * 1024, (path.name, sent)

    records = shard_records(download_prefix(client, bucket, PREFIX))
    for path in new:
        data = path.read_bytes()
        record = records[path.name]
        assert record["md5"] == hashlib.md5(data).hexdigest()
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["size"] == len(data)
    assert records[new[0].name]["run_exports"] == {"weak": ["newc"]}
    assert records[new[1].name]["run_exports"] == {"strong": ["newb"]}


def test_hashing_is_not_parsing_a_tar_bz2_info_first_drains_the_rest() -> None:
    """The tee sees every byte: read_info stops at the payload, the drain hashes the rest."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:bz2") as tar:
        for name, data in (
            ("info/index.json", b'{"name": "x", "version": "1", "build": "0"}'),
            ("payload.bin", os.urandom(2 << 20)),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    data = tar_bytes.getvalue()
    info, digests = fullread.read_in_full("x-1-0.tar.bz2", io.BytesIO(data), len(data), "x")
    assert info.record["name"] == "x"
    assert digests.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert digests.md5.hexdigest() == hashlib.md5(data).hexdigest()
