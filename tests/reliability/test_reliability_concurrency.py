"""Issue 8: runs at once on one channel, artifacts arriving meanwhile; the bucket cache's races.

Three indexer processes start together on one S3 channel while a fourth
client uploads artifacts, and a watcher reads every subdir's run_exports.json
as often as it can. Conditional writes mean a run that lost a race lists
again instead of overwriting, so no observed version may ever list fewer
artifacts than an earlier one. After the runs and one final quiet run, the
outputs name every artifact present and the cache opens cleanly.
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from reliability import (
    FAST_BACKOFF,
    channel_snapshot,
    check_consistent,
    cli_command,
    cli_env,
    small_channel,
)
from s3proxy import Chaos, CountingProxy, Fault
from s3server import S3Endpoint, upload_tree

from dev.sample import build_artifact
from indexer.cache.db import Cache
from indexer.cache.homes import cache_filename
from indexer.model import CachedArtifact, is_artifact
from indexer.storage.s3 import BucketCacheHome, S3Options, S3Store, cache_path

RunCli = Callable[..., tuple[int, str, str]]
SUBDIRS = ("linux-64", "noarch")
RUNS = 3


def arrivals(root: Path) -> list[Path]:
    """Six artifacts that arrive while the runs go, alternating subdirs and formats."""
    paths = []
    for i in range(6):
        subdir = SUBDIRS[i % 2]
        fmt = (".conda", ".tar.bz2")[i // 2 % 2]
        paths.append(
            build_artifact(
                root / subdir, f"late{i}", "1.0", "0", subdir=subdir, fmt=fmt, run_exports=[f"l{i}"]
            )
        )
    return paths


def names_in(document: bytes) -> set[str]:
    data = json.loads(document)
    return set(data.get("packages", {})) | set(data.get("packages.conda", {}))


class Watcher(threading.Thread):
    """Reads each subdir's run_exports.json in a loop; keeps every distinct version seen."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.seen: dict[str, list[set[str]]] = {s: [] for s in SUBDIRS}
        self.stop = threading.Event()

    def run(self) -> None:
        etags: dict[str, str] = {}
        while not self.stop.is_set():
            for subdir in SUBDIRS:
                key = f"{self.prefix}/{subdir}/run_exports.json"
                try:
                    answer = self.client.get_object(Bucket=self.bucket, Key=key)
                except self.client.exceptions.NoSuchKey:
                    continue
                if answer["ETag"] != etags.get(subdir):
                    etags[subdir] = answer["ETag"]
                    self.seen[subdir].append(names_in(answer["Body"].read()))
            time.sleep(0.005)


@pytest.mark.slow
def test_three_runs_at_once_while_artifacts_arrive(
    aws_env: S3Endpoint, run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = aws_env.new_bucket("concurrent")
    prefix = "ch"
    client = aws_env.client()
    upload_tree(client, bucket, prefix, small_channel(tmp_path / "ch"))
    late = arrivals(tmp_path / "late")
    watcher = Watcher(aws_env.client(), bucket, prefix)
    watcher.start()
    with CountingProxy(aws_env.endpoint_url) as proxy:
        # latency on a third of the requests spreads the runs' steps out, so they interleave
        proxy.chaos = Chaos(rate=0.3, seed=3, kinds=("latency",), latency_s=(0.01, 0.06))
        processes = [
            subprocess.Popen(
                cli_command(f"s3://{bucket}/{prefix}", proxy.url, tmp_path / f"r{i}.json"),
                env=cli_env(aws_env, tmp_path),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(RUNS)
        ]
        for path in late:
            time.sleep(0.25)
            client.upload_file(str(path), bucket, f"{prefix}/{path.parent.name}/{path.name}")
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in processes]
    for status, err in results:
        assert status == 0, err
        assert "Traceback" not in err and "unusable" not in err
    races = sum(err.count("another writer") + err.count("another run") for _, err in results)
    print(f"races lost and redone: {races}; versions seen: {watcher.seen}", file=sys.__stderr__)

    for name, value in FAST_BACKOFF.items():
        monkeypatch.setenv(name, value)
    report = tmp_path / "final.json"
    status, _, err = run_cli(
        "index", f"s3://{bucket}/{prefix}", "--endpoint-url", aws_env.endpoint_url, "-q",
        "--report", report,
    )  # fmt: skip
    watcher.stop.set()
    watcher.join()
    assert status == 0, err
    final = json.loads(report.read_text())
    assert all(s["cache_rebuilt"] is None for s in final["subdirs"].values())

    snapshot = channel_snapshot(aws_env, bucket, prefix)
    assert check_consistent(snapshot, [snapshot]) == []  # shards named exist, JSON parses
    for subdir in SUBDIRS:
        present = {p.split("/", 1)[1] for p in snapshot if p.startswith(f"{subdir}/")}
        present = {n for n in present if is_artifact(n)}
        assert names_in(snapshot[f"{subdir}/run_exports.json"]) == present
        versions = watcher.seen[subdir]
        assert versions, f"the watcher never saw {subdir}/run_exports.json"
        for earlier, later in itertools.pairwise(versions):
            assert earlier <= later, f"{subdir}: a run published {later} over {earlier}"
        with open_bucket_cache(snapshot, subdir, tmp_path) as cache:
            assert cache.rebuilt_reason is None
            assert present <= set(cache.states())


def open_bucket_cache(snapshot: dict[str, bytes], subdir: str, tmp: Path) -> Cache:
    packed = snapshot[cache_path(subdir)]
    path = tmp / "opened" / cache_filename(subdir)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(packed))
    return Cache(path)


def _row(name: str) -> CachedArtifact:
    return CachedArtifact(name, 1, f'"{name}"', record={"name": name})


@pytest.mark.parametrize("existing", [False, True], ids=["first-cache", "replacing-a-cache"])
def test_two_runs_writing_the_bucket_cache_back_at_once(
    aws_env: S3Endpoint, caplog: pytest.LogCaptureFixture, existing: bool
) -> None:
    """The second write loses the race: a warning, the winner's cache intact, no failure."""
    bucket = aws_env.new_bucket("cache-race")
    options = S3Options(endpoint_url=aws_env.endpoint_url)
    if existing:
        seed = BucketCacheHome(S3Store(f"s3://{bucket}/ch", options))
        with Cache(path := seed.checkout("noarch")) as cache:
            cache.update(put=[_row("old")])
        seed.checkin("noarch", path)
    homes = [BucketCacheHome(S3Store(f"s3://{bucket}/ch", options)) for _ in range(2)]
    paths = [home.checkout("noarch") for home in homes]  # both fetch the same version
    for i, path in enumerate(paths):
        with Cache(path) as cache:
            cache.update(put=[_row(f"run{i}")])
    caplog.set_level(logging.WARNING)
    homes[0].checkin("noarch", paths[0])
    homes[1].checkin("noarch", paths[1])  # loses: a warning, not an exception
    assert "another run updated" in caplog.text

    winner = BucketCacheHome(S3Store(f"s3://{bucket}/ch", options))
    with Cache(winner.checkout("noarch")) as cache:
        assert cache.rebuilt_reason is None
        assert set(cache.states()) == {"run0"} | ({"old"} if existing else set())


def test_a_cache_write_that_keeps_failing_is_a_warning_not_a_failed_run(
    aws_env: S3Endpoint,
    s3_proxy: CountingProxy,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The index is published before the cache goes back; losing the cache costs time only."""
    for name, value in FAST_BACKOFF.items():
        monkeypatch.setenv(name, value)
    bucket = aws_env.new_bucket("cache-down")
    upload_tree(aws_env.client(), bucket, "ch", small_channel(tmp_path / "ch"))
    url = f"s3://{bucket}/ch"
    s3_proxy.faults.append(
        Fault(lambda s: s.method == "PUT" and ".run-exports-index/" in s.key, "slowdown", 99)
    )
    status, _, err = run_cli("index", url, "--endpoint-url", s3_proxy.url, "-q")
    assert status == 0, err
    assert "could not write the cache back" in caplog.text and "Traceback" not in err
    published = channel_snapshot(aws_env, bucket, "ch")
    assert "noarch/run_exports.json" in published
    assert not any(p.startswith(".run-exports-index/") for p in published)

    report = tmp_path / "again.json"
    status, _, err = run_cli(
        "index", url, "--endpoint-url", aws_env.endpoint_url, "-q", "--report", report
    )
    assert status == 0, err
    again = json.loads(report.read_text())
    assert again["uploaded"] == []  # re-read what the lost cache knew; the index was complete
    assert again["totals"]["artifacts_read"] == 5
