"""Reading artifacts from S3: the in-memory zip tail, pinned GETs, what they count and refuse.

Everything runs against the session's S3 server (SeaweedFS, credentials
enforced) through the counting, fault-injecting proxy, so the requests and
bytes asserted are the ones that went over the wire.
"""

from __future__ import annotations

import io
import json
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hostile import mutate, valid_artifact, write_tar
from s3proxy import CountingProxy, Fault, Seen
from s3server import S3Endpoint

from dev.seaweed import Credentials as Identity
from indexer.errors import Conflict, RunError
from indexer.read.info import UnreadableArtifact, read_info
from indexer.storage.s3 import S3Options, S3Store, pool_size
from indexer.storage.s3.ranged import TAIL_BYTES

INDEXER = Path(__file__).resolve().parent.parent / "indexer"


def conda(stem: str, info: list[tuple[str, bytes]], pkg: bytes = b"", info_first=False) -> bytes:
    """A .conda (stored zip) whose info member holds `info`; `pkg` random bytes as the payload."""
    tar = io.BytesIO()
    write_tar(tar, info)
    members = [
        ("metadata.json", b'{"conda_pkg_format_version": 2}'),
        (f"pkg-{stem}.tar.zst", pkg),
        (f"info-{stem}.tar.zst", zstandard.ZstdCompressor(level=3).compress(tar.getvalue())),
    ]
    if info_first:
        members.insert(0, members.pop())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return out.getvalue()


def info_span(data: bytes, stem: str) -> tuple[int, int]:
    """Start and end of the info member (local header to the next member or directory)."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    member = zf.getinfo(f"info-{stem}.tar.zst")
    after = [i.header_offset for i in zf.infolist() if i.header_offset > member.header_offset]
    return member.header_offset, min([*after, zf.start_dir])


def index_json(name: str) -> bytes:
    return json.dumps({"name": name, "version": "1.0", "build": "0", "build_number": 0}).encode()


@pytest.fixture
def bucket(aws_env: S3Endpoint) -> str:
    return aws_env.new_bucket("reads")


def store_via(proxy: CountingProxy, bucket: str, **options: Any) -> S3Store:
    return S3Store(f"s3://{bucket}/ch", S3Options(endpoint_url=proxy.url, **options))


def put(aws_env: S3Endpoint, bucket: str, name: str, data: bytes) -> str:
    """Upload `ch/noarch/<name>`; return its ETag."""
    return aws_env.client().put_object(Bucket=bucket, Key=f"ch/noarch/{name}", Body=data)["ETag"]


def read(store: S3Store, name: str, token: str | None) -> tuple[Any, int, int]:
    """read_info over S3: (ArtifactInfo or the unreadable reason, bytes read, GETs)."""
    with store.open_artifact("noarch", name, token) as fileobj:
        try:
            outcome: Any = read_info(name, fileobj, 0)
        except UnreadableArtifact as exc:
            outcome = str(exc)
        return outcome, fileobj.bytes_read, fileobj.requests


def artifact_gets(proxy: CountingProxy, name: str) -> list[Seen]:
    return [s for s in proxy.seen if s.method == "GET" and s.key.endswith(name)]


def warm_up(aws_env: S3Endpoint, bucket: str, store: S3Store) -> None:
    """One read first, so the counts that follow are those of a client already connected."""
    data = conda("warm-1.0-0", [("info/index.json", index_json("warm"))])
    etag = put(aws_env, bucket, "warm-1.0-0.conda", data)
    read(store, "warm-1.0-0.conda", etag)


# -- .conda: the tail ---------------------------------------------------------------
def test_one_range_get_when_the_info_member_is_in_the_tail(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str
) -> None:
    store = store_via(s3_proxy, bucket)
    warm_up(aws_env, bucket, store)
    stem = "small-1.0-0"
    data = conda(stem, [("info/index.json", index_json("small"))], pkg=random.randbytes(50_000))
    etag = put(aws_env, bucket, f"{stem}.conda", data)
    s3_proxy.reset()
    info, nbytes, requests = read(store, f"{stem}.conda", etag)
    assert info.record["name"] == "small"
    # the tail, then the local headers at the front (zip smuggling check, issue 13):
    # metadata.json's and pkg-*'s, in one small GET; the info member's is in the tail
    get, head = artifact_gets(s3_proxy, f"{stem}.conda")
    assert requests == 2 and get.range == f"bytes=-{TAIL_BYTES}"
    assert get.headers["if-match"] == etag  # pinned to the listing from the first byte
    assert head.range == f"bytes=0-{head.nbytes - 1}" and head.nbytes < 256
    assert head.headers["if-match"] == etag
    assert get.nbytes == TAIL_BYTES and nbytes == get.nbytes + head.nbytes
    start, end = info_span(data, stem)
    assert nbytes <= (end - start) + 16 * 1024


def test_a_small_artifact_is_one_get_of_all_of_it(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str
) -> None:
    store = store_via(s3_proxy, bucket)
    warm_up(aws_env, bucket, store)
    data = conda("tiny-1.0-0", [("info/index.json", index_json("tiny"))])
    assert len(data) < TAIL_BYTES
    etag = put(aws_env, bucket, "tiny-1.0-0.conda", data)
    s3_proxy.reset()
    info, nbytes, requests = read(store, "tiny-1.0-0.conda", etag)
    assert info.record["name"] == "tiny"
    assert (requests, nbytes) == (1, len(data))


@pytest.mark.parametrize("layout", ["info-first", "info-larger-than-the-tail"])
def test_a_second_get_fetches_exactly_the_info_member(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str, layout: str
) -> None:
    store = store_via(s3_proxy, bucket)
    warm_up(aws_env, bucket, store)
    stem = "split-1.0-0"
    members = [("info/index.json", index_json("split")), ("info/run_exports.json", b'["x"]')]
    if layout == "info-first":
        data = conda(stem, members, pkg=random.randbytes(200_000), info_first=True)
    else:  # incompressible info: the member starts before the tail
        data = conda(stem, [*members, ("info/big", random.randbytes(30_000))])
    etag = put(aws_env, bucket, f"{stem}.conda", data)
    s3_proxy.reset()
    info, nbytes, requests = read(store, f"{stem}.conda", etag)
    assert info.run_exports == {"weak": ["x"]}
    tail, member = artifact_gets(s3_proxy, f"{stem}.conda")
    start, end = info_span(data, stem)
    assert requests == 2
    assert tail.range == f"bytes=-{TAIL_BYTES}"
    tail_start = len(data) - TAIL_BYTES
    # The member's GET also brings the local headers before it (from byte 0: zip
    # smuggling check, issue 13), and, info first, the pkg member's header after it.
    first, last = (int(n) for n in member.range.removeprefix("bytes=").split("-"))
    assert start < 256 and first == 0
    assert min(end, tail_start) - 1 <= last <= min(end, tail_start) - 1 + 256
    assert member.headers["if-match"] == etag
    assert nbytes == tail.nbytes + member.nbytes
    assert nbytes <= (end - start) + 16 * 1024


def test_replaced_before_or_during_the_read_is_a_conflict(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str
) -> None:
    store = store_via(s3_proxy, bucket)
    warm_up(aws_env, bucket, store)
    stem = "moving-1.0-0"
    old = conda(
        stem, [("info/index.json", index_json("moving"))], pkg=b"1" * 50_000, info_first=True
    )
    etag = put(aws_env, bucket, f"{stem}.conda", old)
    new = conda(
        stem, [("info/index.json", index_json("moving"))], pkg=b"2" * 50_000, info_first=True
    )

    def replace(_: Seen) -> None:  # between our tail GET and our member GET
        put(aws_env, bucket, f"{stem}.conda", new)

    second = Fault(
        lambda s: s.key.endswith(f"{stem}.conda") and s.range != f"bytes=-{TAIL_BYTES}",
        "call",
        call=replace,
    )
    s3_proxy.faults.append(second)
    with pytest.raises(Conflict):
        read(store, f"{stem}.conda", etag)
    assert second.fired == 1
    assert [s.status for s in artifact_gets(s3_proxy, f"{stem}.conda")][-1] == 412
    with pytest.raises(Conflict):  # the listing's token is stale from the first GET
        read(store, f"{stem}.conda", etag)


def test_a_vanished_artifact_is_not_found(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str
) -> None:
    store = store_via(s3_proxy, bucket)
    warm_up(aws_env, bucket, store)
    for name in ("gone-1.0-0.conda", "gone-1.0-0.tar.bz2"):
        with pytest.raises(FileNotFoundError):
            read(store, name, '"0123456789abcdef0123456789abcdef"')


# -- unreadable artifacts: the reasons a local run gives ----------------------------
def test_damaged_artifacts_read_as_they_do_locally(
    aws_env: S3Endpoint,
    s3_proxy: CountingProxy,
    bucket: str,
    tmp_path: Path,
    corrupt_artifacts: list[Path],
) -> None:
    """Seeded mutations (truncated, bit flips, bad magic, huge sizes), empty and non-zip
    files, the corpus's corrupt ones: over S3 each is read or refused exactly as from disk."""
    folder = tmp_path / "noarch"
    folder.mkdir()
    rng = random.Random(20261124)
    for i in range(80):
        path, _ = valid_artifact(folder, i, rng)
        path.write_bytes(mutate(path.read_bytes(), rng)[1])
    (folder / "empty-1.0-0.conda").write_bytes(b"")
    (folder / "notazip-1.0-0.conda").write_bytes(b"PK\x03\x04 but not really a zip" * 10)
    (folder / "eocd-only-1.0-0.conda").write_bytes(b"PK\x05\x06" + bytes(18))
    for path in corrupt_artifacts:
        (folder / path.name).write_bytes(path.read_bytes())
    store = store_via(s3_proxy, bucket)
    warm_up(aws_env, bucket, store)
    for path in sorted(folder.iterdir()):
        etag = put(aws_env, bucket, path.name, path.read_bytes())
        with path.open("rb") as local:
            try:
                expected: Any = read_info(path.name, local, 0)
            except UnreadableArtifact as exc:
                expected = str(exc)
        got, nbytes, _ = read(store, path.name, etag)
        if path.stat().st_size == 0:  # S3 answers 416 to a suffix range of nothing
            assert got == "not a valid .conda (zip): File is not a zip file (the object is empty)"
            assert expected.startswith("not a valid .conda (zip): File is not a zip file")
        else:
            assert got == expected, path.name
        assert nbytes <= max(path.stat().st_size, 0)


# -- credentials, failures, counts ---------------------------------------------------
def test_gets_are_refused_with_a_wrong_secret(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_via(s3_proxy, bucket)
    warm_up(aws_env, bucket, store)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = store_via(s3_proxy, bucket)
    with pytest.raises(RunError, match=r"GetObject .* refused \(SignatureDoesNotMatch\)") as info:
        read(wrong, "warm-1.0-0.conda", None)
    assert "not-the-secret" not in str(info.value)
    assert read(store, "warm-1.0-0.conda", None)[0].record["name"] == "warm"


def test_the_read_only_identity_reads(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if aws_env.reader is None:
        pytest.skip("no read-only identity for this endpoint")
    reader: Identity = aws_env.reader
    data = conda("ro-1.0-0", [("info/index.json", index_json("ro"))])
    etag = put(aws_env, bucket, "ro-1.0-0.conda", data)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", reader.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", reader.secret_key)
    store = store_via(s3_proxy, bucket)
    for _ in range(2):
        assert read(store, "ro-1.0-0.conda", etag)[0].record["name"] == "ro"
    gets = artifact_gets(s3_proxy, "ro-1.0-0.conda")
    assert f"Credential={reader.access_key}/" in gets[-1].headers["authorization"]


def test_a_stale_etag_is_one_412_and_a_conflict_not_a_retry(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str
) -> None:
    store = store_via(s3_proxy, bucket, backoff_s=0.001)
    stale = '"0123456789abcdef0123456789abcdef"'
    for name in ("stale-1.0-0.conda", "stale-1.0-0.tar.bz2"):
        put(aws_env, bucket, name, b"x" * 100)
        s3_proxy.reset()
        with pytest.raises(Conflict):
            read(store, name, stale)
        (get,) = artifact_gets(s3_proxy, name)
        assert (get.status, get.headers["if-match"]) == (412, stale)
    assert store.retries == 0


def test_a_vanished_artifact_is_one_404_and_no_retry(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str
) -> None:
    store = store_via(s3_proxy, bucket, backoff_s=0.001)
    for name in ("vanished-1.0-0.conda", "vanished-1.0-0.tar.bz2"):
        s3_proxy.reset()
        with pytest.raises(FileNotFoundError):
            read(store, name, '"0123456789abcdef0123456789abcdef"')
        assert [s.status for s in artifact_gets(s3_proxy, name)] == [404]
    assert store.retries == 0


def test_a_tar_bz2_is_one_streamed_get_pinned_and_counted(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str, tmp_path: Path
) -> None:
    from dev.sample import build_artifact

    store = store_via(s3_proxy, bucket)
    art = build_artifact(tmp_path, "bz", fmt=".tar.bz2", payload=random.randbytes(100_000))
    etag = put(aws_env, bucket, art.name, art.read_bytes())
    s3_proxy.reset()
    info, nbytes, requests = read(store, art.name, etag)
    assert info.record["name"] == "bz"
    (get,) = artifact_gets(s3_proxy, art.name)
    assert requests == 1 and get.range is None and get.headers["if-match"] == etag
    assert nbytes <= get.nbytes  # closed at the first member outside info/


def test_no_botocore_internals_in_the_package() -> None:
    """S3 goes through boto3's public API only: no private attributes, no `_endpoint`."""
    private = re.compile(
        r"botocore.*\._[a-z]|[.'\"]_endpoint\b"
        r"|_proxy_config|_get_connection_manager|_setup_ssl_cert|_get_request_target"
    )
    found = [
        f"{path.relative_to(INDEXER.parent)}:{number}: {line.strip()}"
        for path in sorted(INDEXER.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert found == []
    assert not (INDEXER / "sigv4.py").exists() and not (INDEXER / "s3gets.py").exists()


@pytest.mark.parametrize("action", ["reset", "slowdown", "error500", "truncate", "lost", "stall"])
def test_faults_on_range_gets_are_retried_and_counted(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str, action: str
) -> None:
    store = store_via(s3_proxy, bucket, backoff_s=0.001, read_timeout_s=0.5)
    warm_up(aws_env, bucket, store)
    stem = "flaky-1.0-0"
    data = conda(
        stem,
        [("info/index.json", index_json("flaky"))],
        pkg=random.randbytes(100_000),
        info_first=True,
    )
    etag = put(aws_env, bucket, f"{stem}.conda", data)
    fault = Fault(lambda s: s.key.endswith(stem + ".conda"), action, times=2, seconds=1.0)
    s3_proxy.faults.append(fault)
    s3_proxy.reset()
    info, nbytes, requests = read(store, f"{stem}.conda", etag)
    assert info.record["name"] == "flaky"
    assert fault.fired == 2 and store.retries == 2 and requests == 4
    good = [s for s in artifact_gets(s3_proxy, stem + ".conda") if s.status == 206]
    assert nbytes == sum(s.nbytes for s in good[-2:])  # only the answers read whole count


def test_a_tar_bz2_stream_cut_short_resumes(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, bucket: str, tmp_path: Path
) -> None:
    from dev.sample import build_artifact

    store = store_via(s3_proxy, bucket, backoff_s=0.001)
    warm_up(aws_env, bucket, store)
    art = build_artifact(tmp_path, "stream", fmt=".tar.bz2", payload=random.randbytes(300_000))
    etag = put(aws_env, bucket, art.name, art.read_bytes())
    s3_proxy.faults.append(Fault(lambda s: s.key.endswith(art.name), "truncate"))
    with store.open_artifact("noarch", art.name, etag) as fileobj:
        whole = b"".join(iter(lambda: fileobj.read(64 * 1024), b""))  # as bz2 reads it
    assert whole == art.read_bytes()
    assert fileobj.bytes_read == len(whole) and fileobj.requests == 2 and store.retries == 1
    first, resumed = artifact_gets(s3_proxy, art.name)
    assert first.range is None and resumed.range == f"bytes={first.nbytes}-"
    assert resumed.headers["if-match"] == etag


def test_the_client_is_tuned_through_its_public_config(
    bucket: str, s3_proxy: CountingProxy
) -> None:
    """Pool sized to --jobs, keep-alive, botocore's retries off (ours count), no extra checksums."""
    assert (pool_size(8), pool_size(64)) == (32, 80)
    store = store_via(s3_proxy, bucket, max_connections=pool_size(64))
    config = store.api.client.meta.config
    assert config.max_pool_connections == 80 and config.tcp_keepalive is True
    assert config.retries["total_max_attempts"] == 1
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
