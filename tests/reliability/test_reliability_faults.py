"""Issue 8: a flaky store never changes what is published, and a dead one publishes nothing partial.

Faults are injected by `s3proxy.Chaos` between boto3 and SeaweedFS, over real
sockets: 500 InternalError, 503 SlowDown, connections reset before and after
the store acted, truncated bodies and latency, on a seeded 20% of requests.
`RUN_EXPORTS_INDEX_S3_BACKOFF` makes the retries' backoff milliseconds, so the
runs exercise every retry without sleeping for real seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability import (
    FAST_BACKOFF,
    channel_snapshot,
    check_consistent,
    small_channel,
    stable_outputs,
)
from s3proxy import Chaos, CountingProxy, Seen
from s3server import S3Endpoint, upload_tree

from dev.sample import build_artifact

RunCli = Callable[..., tuple[int, str, str]]
SEEDS = range(20)
RATE = 0.2


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST_BACKOFF.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_channel(tmp_path_factory.mktemp("faults") / "ch")


@pytest.fixture(scope="module")
def additions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One new artifact per subdir, for runs that change a published channel."""
    root = tmp_path_factory.mktemp("additions")
    build_artifact(root / "linux-64", "newlib", "1.0", "0", subdir="linux-64", run_exports=["x"])
    build_artifact(root / "noarch", "newpy", "1.0", "py_0", fmt=".tar.bz2", run_exports=["y"])
    return root


def index(
    run_cli: RunCli, url: str, endpoint: str, tmp: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    status, _, err = run_cli(
        "index", url, "--endpoint-url", endpoint, "--report", report, "-q", *extra
    )
    return status, json.loads(report.read_text()) if report.exists() else {}, err


@pytest.fixture(scope="module")
def bucket(s3: S3Endpoint) -> str:
    """One bucket for the module, a prefix per run (SeaweedFS's first write to a bucket is slow)."""
    return s3.new_bucket("faults")


@pytest.fixture(scope="module")
def reference(s3: S3Endpoint, bucket: str, channel: Path, additions: Path) -> Any:
    """The fault-free outputs of the channel, and of the channel plus `additions`."""
    from indexer.cli import main

    upload_tree(s3.client(), bucket, "reference", channel)
    url = f"s3://{bucket}/reference"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3.env().items():
            mp.setenv(name, value)
        assert main(["index", url, "--endpoint-url", s3.endpoint_url, "-q"]) == 0
        before = channel_snapshot(s3, bucket, "reference")
        upload_tree(s3.client(), bucket, "reference", additions)
        assert main(["index", url, "--endpoint-url", s3.endpoint_url, "-q"]) == 0
        after = channel_snapshot(s3, bucket, "reference")
    return before, after


@pytest.fixture
def proxy(s3_proxy: CountingProxy) -> Iterator[CountingProxy]:
    yield s3_proxy
    s3_proxy.chaos = None


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_twenty_percent_faults_give_the_fault_free_bytes(
    aws_env: S3Endpoint,
    proxy: CountingProxy,
    bucket: str,
    channel: Path,
    additions: Path,
    reference: Any,
    run_cli: RunCli,
    tmp_path: Path,
    seed: int,
) -> None:
    """Every fault is retried (and counted); the outputs are the fault-free run's bytes."""
    before, _ = reference
    prefix = f"chaos{seed}"
    upload_tree(aws_env.client(), bucket, prefix, channel)
    url = f"s3://{bucket}/{prefix}"
    # At most 3 failures in a row for one request: inside the 6 attempts a call gets.
    chaos = proxy.chaos = Chaos(rate=RATE, seed=seed, max_consecutive=3, latency_s=(0.005, 0.05))
    status, report, err = index(run_cli, url, proxy.url, tmp_path)
    assert status == 0, err
    proxy.chaos = None
    assert chaos.failures > 0, chaos.injected
    truncated = chaos.injected["truncate"]  # a cut past what the reader needs goes unnoticed
    assert chaos.failures - truncated <= report["retries"] <= chaos.failures, chaos.injected
    assert stable_outputs(channel_snapshot(aws_env, bucket, prefix)) == stable_outputs(before)

    status, warm, err = index(run_cli, url, aws_env.endpoint_url, tmp_path)
    assert status == 0, err
    assert warm["uploaded"] == [] and warm["retries"] == 0  # the cache survived the faults


def nth_put_after(n: int) -> Callable[[Seen], bool]:
    """Picks every PUT after the first `n` (the run publishes a little, then the store dies)."""
    count = 0

    def when(seen: Seen) -> bool:
        nonlocal count
        if seen.method != "PUT":
            return False
        count += 1
        return count > n

    return when


@pytest.mark.parametrize(
    ("kind", "when", "needles"),
    [
        ("slowdown", nth_put_after, ["PutObject", "kept failing (SlowDown, HTTP 503)"]),
        ("error500", nth_put_after, ["PutObject", "kept failing (InternalError, HTTP 500)"]),
        ("reset", nth_put_after, ["PutObject", "after 6 attempts"]),
        # a new .conda's range reads (with shards it is one streamed read, as a .tar.bz2's)
        ("truncate", ".conda --no-shards", ["GetObject", "after 6 attempts"]),
        ("truncate", ".conda", ["broke off 5 times", "unreliable"]),
        ("truncate", ".tar.bz2", ["broke off 5 times", "unreliable"]),
    ],
)
def test_faults_beyond_the_retry_budget_fail_in_one_line_and_publish_nothing_partial(
    aws_env: S3Endpoint,
    proxy: CountingProxy,
    bucket: str,
    channel: Path,
    additions: Path,
    reference: Any,
    run_cli: RunCli,
    tmp_path: Path,
    kind: str,
    when: Callable[[int], Callable[[Seen], bool]] | str,
    needles: list[str],
) -> None:
    before, after = reference
    when, *extra = when.split() if isinstance(when, str) else (when,)
    prefix = f"dead-{kind}{when if isinstance(when, str) else ''}{''.join(extra)}"
    upload_tree(aws_env.client(), bucket, prefix, channel)
    url = f"s3://{bucket}/{prefix}"
    assert index(run_cli, url, aws_env.endpoint_url, tmp_path)[0] == 0
    upload_tree(aws_env.client(), bucket, prefix, additions)

    if isinstance(when, str):  # every read of this kind of artifact
        picks = lambda s: s.is_artifact_get and s.key.endswith(when)  # noqa: E731
    else:
        picks = when(3)
    proxy.chaos = Chaos(rate=1.0, seed=0, kinds=(kind,), when=picks)
    status, report, err = index(run_cli, url, proxy.url, tmp_path, *extra)
    proxy.chaos = None
    assert status == 1, err
    assert "Traceback" not in err
    [line] = [ln for ln in err.splitlines() if ln.startswith("run-exports-index:")]
    assert line.startswith("run-exports-index: failed: ")
    # issue 16: the report of a failed run is the failure, never a partial index report
    assert report["ok"] is False and report["subdirs"] == {} and report["uploaded"] == []
    assert report["error"] == line.removeprefix("run-exports-index: failed: ")
    for needle in needles:
        assert needle in line, line
    problems = check_consistent(channel_snapshot(aws_env, bucket, prefix), [before, after])
    assert problems == []

    status, _, err = index(run_cli, url, aws_env.endpoint_url, tmp_path)  # the store is back
    assert status == 0, err
    assert stable_outputs(channel_snapshot(aws_env, bucket, prefix)) == stable_outputs(after)
