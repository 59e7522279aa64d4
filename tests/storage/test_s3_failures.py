"""Issue 3: what goes wrong with S3 — conflicts, bad settings, flaky stores.

Faults are real: a second client writing between our read and our write,
credentials the server rejects, a port nobody listens on, and a proxy that
answers 503 SlowDown, resets connections or stalls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from s3proxy import CountingProxy, Fault, Seen
from s3server import S3Endpoint, upload_tree

from dev.sample import build_artifact, build_sample_channel
from dev.seaweed import Credentials, free_ports
from indexer.errors import Conflict, RunError
from indexer.storage.s3 import S3Options, S3Store

RunCli = Callable[..., tuple[int, str, str]]


def one_line_failure(status: int, err: str, *needles: str) -> str:
    """The CLI failed with exit 1 and one line (no traceback) containing `needles`."""
    assert status == 1, err
    assert "Traceback" not in err
    [line] = [ln for ln in err.strip().splitlines() if ln.startswith("run-exports-index:")]
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture
def sample_bucket(aws_env: S3Endpoint, tmp_path: Path) -> str:
    bucket = aws_env.new_bucket("fail")
    upload_tree(aws_env.client(), bucket, "ch", build_sample_channel(tmp_path / "channel"))
    return bucket


def test_conflicting_write_between_read_and_write_is_redone(
    aws_env: S3Endpoint,
    s3_proxy: CountingProxy,
    sample_bucket: str,
    run_cli: RunCli,
    tmp_path: Path,
) -> None:
    """Acceptance 4: the other writer's object is seen, not silently overwritten."""
    url = f"s3://{sample_bucket}/ch"
    assert run_cli("index", url, "--endpoint-url", aws_env.endpoint_url, "--no-shards")[0] == 0
    client = aws_env.client()
    new = build_artifact(tmp_path / "new", "newpkg", "1.0", "0", run_exports={"weak": ["newpkg"]})
    client.upload_file(str(new), sample_bucket, f"ch/noarch/{new.name}")
    key = "ch/noarch/run_exports.json"
    other = b'{"written":"by another client"}'

    def other_writer(_: Seen) -> None:  # just before our PUT reaches the server
        client.put_object(Bucket=sample_bucket, Key=key, Body=other)

    s3_proxy.faults.append(
        Fault(lambda s: s.method == "PUT" and s.key == key, "call", call=other_writer)
    )
    status, _, err = run_cli("index", url, "--endpoint-url", s3_proxy.url, "--no-shards")
    assert status == 0, err
    ours = [s for s in s3_proxy.seen if s.method == "PUT" and s.key == key]
    assert [s.status for s in ours] == [412, 200]  # refused, then redone after re-listing
    assert "if-match" in ours[0].headers and "if-match" in ours[1].headers
    assert ours[0].headers["if-match"] != ours[1].headers["if-match"]
    document = json.loads(client.get_object(Bucket=sample_bucket, Key=key)["Body"].read())
    assert document["packages.conda"][new.name] == {"run_exports": {"weak": ["newpkg"]}}


def test_conditional_writes_refuse_stale_and_existing(aws_env: S3Endpoint) -> None:
    bucket = aws_env.new_bucket("cond")
    store = S3Store(f"s3://{bucket}/p", S3Options(endpoint_url=aws_env.endpoint_url))
    first = store.write(
        "a.json", b"1", expect=None, content_type="application/json", cache_control=""
    )
    with pytest.raises(Conflict):
        store.write("a.json", b"2", expect=None, content_type="application/json", cache_control="")
    second = store.write(
        "a.json", b"3", expect=first, content_type="application/json", cache_control=""
    )
    with pytest.raises(Conflict):
        store.write("a.json", b"4", expect=first, content_type="application/json", cache_control="")
    assert store.read("a.json") == b"3"
    assert store.stat("a.json").token == second
    store.delete("a.json")
    store.delete("a.json")  # already gone: fine
    assert store.read("a.json") is None and store.stat("a.json") is None


def test_wrong_credentials_fail_with_one_line(
    aws_env: S3Endpoint, sample_bucket: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acceptance 5: exit 1, one line naming the bucket, the operation, what to check."""
    url = f"s3://{sample_bucket}/ch"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    status, _, err = run_cli("index", url, "--endpoint-url", aws_env.endpoint_url)
    one_line_failure(status, err, "SignatureDoesNotMatch", sample_bucket, "AWS_SECRET_ACCESS_KEY")
    assert "not-the-secret" not in err

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody-knows-me")
    status, _, err = run_cli("index", url, "--endpoint-url", aws_env.endpoint_url)
    line = one_line_failure(status, err, "InvalidAccessKeyId", "ListObjectsV2", sample_bucket)
    assert "nobody-knows-me" not in line


def test_missing_bucket_fails_with_one_line(aws_env: S3Endpoint, run_cli: RunCli) -> None:
    status, _, err = run_cli(
        "index", "s3://no-such-bucket-here/ch", "--endpoint-url", aws_env.endpoint_url
    )
    one_line_failure(status, err, "no-such-bucket-here", "does not exist", "--endpoint-url")


def test_unreachable_endpoint_fails_fast(aws_env: S3Endpoint, run_cli: RunCli) -> None:
    [port] = free_ports(1)
    started = time.monotonic()
    status, _, err = run_cli(
        "index", "s3://bucket/ch", "--endpoint-url", f"http://127.0.0.1:{port}"
    )
    one_line_failure(status, err, "cannot reach", f"127.0.0.1:{port}", "--endpoint-url")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["s3://"], "no bucket"),
        (["s3://x/ch"], "not a valid bucket name"),
        (["s3://bucket/a//b"], "empty"),
        (["s3://bucket/ch", "--addressing-style", "sideways"], "--addressing-style"),
        (["s3://bucket/ch", "--profile", "no-such-profile"], "no-such-profile"),
    ],
)
def test_bad_s3_settings_are_usage_errors(
    aws_env: S3Endpoint, run_cli: RunCli, args: list[str], needle: str
) -> None:
    status, _, err = run_cli("index", *args)
    assert status == 2, err
    assert needle in err and "Traceback" not in err


def test_s3_flags_need_an_s3_channel(tmp_path: Path, run_cli: RunCli) -> None:
    status, _, err = run_cli("index", tmp_path, "--endpoint-url", "http://127.0.0.1:1")
    assert status == 2 and "need s3://" in err


def test_throttling_and_resets_are_retried_and_counted(
    aws_env: S3Endpoint,
    s3_proxy: CountingProxy,
    sample_bucket: str,
    run_cli: RunCli,
    tmp_path: Path,
) -> None:
    """503 SlowDown on a listing, a reset .conda range read, a reset .tar.bz2 stream."""
    s3_proxy.faults += [
        Fault(lambda s: s.is_list, "slowdown", times=2),
        Fault(lambda s: s.is_artifact_get and s.key.endswith(".conda"), "reset"),
        Fault(lambda s: s.method == "PUT", "slowdown"),
    ]
    report = tmp_path / "report.json"
    status, _, err = run_cli(
        "index", f"s3://{sample_bucket}/ch", "--endpoint-url", s3_proxy.url, "--report", report
    )
    assert status == 0, err
    data = json.loads(report.read_text())
    assert data["retries"] == 4
    assert data["totals"]["artifacts_read"] == 7


def test_retries_are_bounded_and_explained(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, sample_bucket: str
) -> None:
    s3_proxy.faults.append(Fault(lambda s: True, "slowdown", times=1000))
    options = S3Options(endpoint_url=s3_proxy.url, max_attempts=3, backoff_s=0.01)
    store = S3Store(f"s3://{sample_bucket}/ch", options)
    with pytest.raises(RunError, match=r"ListObjectsV2 .* kept failing \(SlowDown, HTTP 503\)"):
        store.list_subdirs()
    assert store.retries == 2 and len(s3_proxy.seen) == 3


def test_a_stalled_answer_times_out_and_is_retried(
    aws_env: S3Endpoint, s3_proxy: CountingProxy, sample_bucket: str
) -> None:
    s3_proxy.faults.append(Fault(lambda s: s.is_list, "stall", seconds=1.5))
    options = S3Options(endpoint_url=s3_proxy.url, read_timeout_s=0.5, backoff_s=0.01)
    store = S3Store(f"s3://{sample_bucket}/ch", options)
    assert store.list_subdirs() == ["linux-64", "noarch"]
    assert store.retries == 1


def test_a_broken_tar_bz2_stream_resumes_where_it_stopped(
    aws_env: S3Endpoint, tmp_path: Path
) -> None:
    """A .tar.bz2 read that breaks mid-stream continues by range, pinned to the ETag."""
    bucket = aws_env.new_bucket("resume")
    payload = bytes(range(256)) * 4096  # 1 MiB of package files after info/
    art = build_artifact(tmp_path, "big", "1.0", "0", fmt=".tar.bz2", payload=payload)
    aws_env.client().upload_file(str(art), bucket, f"noarch/{art.name}")
    store = S3Store(f"s3://{bucket}", S3Options(endpoint_url=aws_env.endpoint_url))
    with store.open_artifact("noarch", art.name) as fileobj:
        head = fileobj.read(100)
        stream = fileobj._file  # the streamed GET (s3reader._ResumableBody)
        stream.body.close()  # the connection drops under the reader
        stream.body = _Breaking(stream.body)
        rest = fileobj.read()
    assert head + rest == art.read_bytes()
    assert store.retries == 1 and fileobj.requests == 2


class _Breaking:
    """A body whose next read fails like a reset connection."""

    def __init__(self, body: object) -> None:
        self.body = body

    def read(self, n: int = -1) -> bytes:
        raise ConnectionResetError("connection reset by peer")

    def close(self) -> None:
        return None


def test_read_only_identity_cannot_publish(
    aws_env: S3Endpoint, sample_bucket: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader: Credentials | None = aws_env.reader
    if reader is None:
        pytest.skip("no read-only identity (set RUN_EXPORTS_INDEX_TEST_S3_READONLY)")
    for name, value in aws_env.env(reader).items():
        monkeypatch.setenv(name, value)
    status, _, err = run_cli(
        "index", f"s3://{sample_bucket}/ch", "--endpoint-url", aws_env.endpoint_url
    )
    one_line_failure(status, err, "AccessDenied", "PutObject", "--dry-run")
