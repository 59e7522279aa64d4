"""Issue 15, acceptance 2: `--local-copies`, proven against SeaweedFS through the counting proxy.

A local copy is used only once proven the object in the channel (size, and
the ETag as a single-part MD5 or an 8 MiB multipart ETag; SeaweedFS writes
AWS-style multipart ETags); every other case reads S3 as usual and the
report says why, one line per artifact.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from s3proxy import CountingProxy, Seen
from s3server import S3Endpoint, download_prefix
from test_one_read_s3 import shard_records

from dev.sample import build_artifact
from indexer.config import Config
from indexer.errors import UsageError
from indexer.model import ObjectFacts
from indexer.read.fullread import MIB, Digests, part_size_guesses
from indexer.read.localcopies import proof, unusable

PREFIX = "ch"
KMS_ETAG = '"kms-0123456789abcdef0123456789abcdef"'


def upload_in_parts(client, bucket: str, key: str, data: bytes, part: int) -> str:
    """A multipart upload in parts of `part` bytes (the last one shorter); its ETag."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part), start=1):
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
            Body=data[start : start + part],
        )  # fmt: skip
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    done = client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return done["ETag"]


def kms_rewrite(name: str):
    """Answers about `name` as SSE-KMS gives them: an ETag that is no MD5, the SSE header."""

    def rewrite(seen: Seen, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if not seen.key.endswith(name) or seen.method not in ("HEAD", "GET"):
            return headers
        kept = [(k, v) for k, v in headers if k.lower() != "etag"]
        return [*kept, ("ETag", KMS_ETAG), ("x-amz-server-side-encryption", "aws:kms")]

    return rewrite


def test_local_copies_proven_or_read_from_s3(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, run_cli, tmp_path: Path
) -> None:
    client = aws_env.client()
    bucket = aws_env.new_bucket("local")
    built, local = tmp_path / "built", tmp_path / "local" / "noarch"
    local.mkdir(parents=True)

    def artifact(name: str, payload: int = 0, fmt: str = ".conda") -> Path:
        return build_artifact(
            built,
            name,
            run_exports=[name],
            fmt=fmt,
            payload=os.urandom(payload) if payload else b"",
        )

    first = artifact("first")
    client.upload_file(str(first), bucket, f"{PREFIX}/noarch/{first.name}")
    report_path = tmp_path / "r.json"
    args = ["index", f"s3://{bucket}/{PREFIX}", "-q", "--report", report_path]
    assert run_cli(*args, "--endpoint-url", aws_env.endpoint_url)[0] == 0

    single, single_bz2 = artifact("single", 1 << 20), artifact("singlebz", 1 << 19, ".tar.bz2")
    multi = artifact("multi", 17 * MIB)  # 3 parts of 8 MiB
    changed, resized, kms = (artifact(n, 1 << 20) for n in ("changed", "resized", "kms"))
    odd = artifact("odd", 11 * MIB)  # 3 parts of 5 MiB + 1234 bytes: no whole-MiB size fits
    eight = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)
    for path in (single, single_bz2, multi, changed, resized, kms):
        client.upload_file(str(path), bucket, f"{PREFIX}/noarch/{path.name}", Config=eight)
        shutil.copy(path, local / path.name)
    etag = upload_in_parts(
        client, bucket, f"{PREFIX}/noarch/{odd.name}", odd.read_bytes(), 5 * MIB + 1234
    )
    assert etag.strip('"').endswith("-3")
    shutil.copy(odd, local / odd.name)
    head = client.head_object(Bucket=bucket, Key=f"{PREFIX}/noarch/{multi.name}")
    assert head["ETag"].strip('"').endswith("-3")  # SeaweedFS: AWS-style multipart ETag
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed, same size
    (local / changed.name).write_bytes(bytes(data))
    with open(local / resized.name, "ab") as fh:
        fh.write(b"\0")
    s3_proxy.rewrite = kms_rewrite(kms.name)
    s3_proxy.reset()

    status, _, err = run_cli(*args, "--endpoint-url", s3_proxy.url, "--local-copies", local.parent)
    assert status == 0, err
    sub = json.loads(report_path.read_bytes())["subdirs"]["noarch"]
    proven = {p["filename"]: p["reason"] for p in sub["local_copies"]["proven"]}
    not_used = {p["filename"]: p["reason"] for p in sub["local_copies"]["not_used"]}

    def s3_bytes(path: Path) -> int:
        return sum(
            s.nbytes for s in s3_proxy.seen if s.is_artifact_get and s.key.endswith(path.name)
        )

    for path in (single, single_bz2, multi):
        assert s3_bytes(path) == 0, path.name
    assert proven == {
        single.name: "its ETag is the local MD5 (single-part upload)",
        single_bz2.name: "its ETag is the local MD5 (single-part upload)",
        multi.name: "its multipart ETag is the local one for 3 part(s) of 8 MiB",
    }
    assert not_used == {
        changed.name: "its ETag differs from the local MD5 (single-part upload)",
        resized.name: f"size differs: {resized.stat().st_size + 1:,} bytes here, "
        f"{resized.stat().st_size:,} in the channel",
        odd.name: "its multipart ETag (3 parts) matches no part size tried (5 MiB)",
        kms.name: "encrypted with SSE-KMS (aws:kms): its ETag is no MD5 of the bytes",
    }
    for path in (changed, resized, odd, kms):  # read from S3: once, in full
        assert s3_bytes(path) == path.stat().st_size, path.name

    records = shard_records(download_prefix(client, bucket, PREFIX))
    for path in (single, single_bz2, multi, changed, resized, odd, kms):
        record = records[path.name]
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), path.name
        assert record["md5"] == hashlib.md5(path.read_bytes()).hexdigest(), path.name
        assert record["run_exports"] == {"weak": [path.name.split("-")[0]]}


def test_local_copies_need_s3_and_a_directory(tmp_path: Path, run_cli) -> None:
    with pytest.raises(UsageError, match="needs an s3:// channel"):
        Config(channel=str(tmp_path), local_copies=tmp_path)
    status, _, err = run_cli(
        "index", "s3://bucket/ch", "--local-copies", tmp_path / "missing", "--endpoint-url",
        "http://127.0.0.1:9",
    )  # fmt: skip
    assert status == 2 and "--local-copies: directory not found" in err


def facts(etag: str, **more: object) -> ObjectFacts:
    return ObjectFacts(size=10, etag=f'"{etag}"', **more)  # type: ignore[arg-type]


def test_proof_rules() -> None:
    """The comparisons themselves (pure): checksum first, then the ETag forms."""
    data = b"0123456789"
    digests = Digests(part_size_guesses(len(data), 1))
    digests.update(data)
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    md5 = hashlib.md5(data).hexdigest()
    assert proof(facts("x", checksum_sha256=sha), digests).startswith("its ChecksumSHA256")
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    assert proof(facts(md5, checksum_sha256=other), digests).startswith("not proven")
    composite = facts(md5, checksum_sha256=f"{sha}-2", checksum_type="COMPOSITE")
    assert proof(composite, digests) == "its ETag is the local MD5 (single-part upload)"
    one_part = f"{hashlib.md5(hashlib.md5(data).digest()).hexdigest()}-1"
    assert proof(facts(one_part), digests).startswith("its multipart ETag is the local one")
    assert proof(facts("not-an-md5"), digests).startswith("not proven")
    assert unusable(facts(md5, encryption="aws:kms")) is not None
    assert unusable(facts(md5, customer_key=True)) is not None
    assert unusable(facts(md5, encryption="AES256")) is None  # SSE-S3 ETags are MD5s


def test_part_size_guesses() -> None:
    assert part_size_guesses(17 * MIB, 3) == (8 * MIB, 6 * MIB, 7 * MIB)
    assert part_size_guesses(11 * MIB, 3) == (5 * MIB,)
    assert part_size_guesses(100 * MIB, 2, limit=8) == tuple(m * MIB for m in range(50, 58))
    assert part_size_guesses(3 * MIB, 2) == ()  # parts under S3's 5 MiB minimum
