"""Issue 8: SIGKILL the indexer anywhere; the channel stays consistent, the next run converges.

The scenario: a channel indexed once (state A), then two artifacts added and
one removed (state B), then a run that is killed. The indexer is a
subprocess; it is killed by the proxy when the Nth request of a kind
arrives (a listing, an artifact read, an output upload or the bucket cache's
GET/PUT; an upload either reaches the store or not), or by
`tests/crashwrap.py` at its Nth local cache write (before it, as its COMMIT
starts, after it). The points are drawn with a fixed seed from a census of
one fault-free run, so they spread over the whole run.

After each kill: every published file is A's or B's complete version, every
JSON parses, every shard the index names exists. Then one fault-free run
gives B's outputs and the run after it uploads nothing.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from reliability import (
    channel_snapshot,
    check_consistent,
    cli_command,
    cli_env,
    small_channel,
    stable_outputs,
)
from s3proxy import CountingProxy, Fault, Seen
from s3server import S3Endpoint, upload_tree

from dev.sample import build_artifact
from indexer.cache.homes import cache_filename
from indexer.storage.base import CACHE_PREFIX

RunCli = Callable[..., tuple[int, str, str]]
WRAPPER = Path(__file__).with_name("crashwrap.py")
REMOVED = "linux-64/tool-0.9-0.conda"
SUBDIRS = ("linux-64", "noarch")
SEED = 8
PARALLEL = 4

# (kind, how many points, variants cycled over them)
PLAN: list[tuple[str, int, tuple[str, ...]]] = [
    ("list", 4, ("drop",)),
    ("read", 5, ("drop",)),
    ("upload", 8, ("forward", "drop")),
    ("cache-object", 4, ("forward", "drop")),
    ("cache-write", 12, ("before", "commit", "after")),
]
CASES = [
    f"{kind}-{slot}-{variants[slot % len(variants)]}"
    for kind, count, variants in PLAN
    for slot in range(count)
]


def kind_of(seen: Seen) -> str | None:
    """Which kind of kill point a request is."""
    if seen.key.split("/", 1)[-1].startswith(CACHE_PREFIX + "/"):
        return "cache-object"
    if seen.is_list:
        return "list"
    if seen.is_artifact_get:
        return "read"
    if seen.method == "PUT":
        return "upload"
    return None


@dataclass
class Crash:
    case: str
    prefix: str
    cache_dir: Path | None
    status: int
    stderr: str
    n: int
    snapshot: dict[str, bytes]  # the channel right after the kill


@pytest.fixture(scope="module")
def bucket(s3: S3Endpoint) -> str:
    return s3.new_bucket("crashes")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """State A's channel, and the artifacts B adds."""
    root = tmp_path_factory.mktemp("crash-channel")
    channel = small_channel(root / "a")
    added = root / "b"
    build_artifact(added / "linux-64", "newlib", "1.0", "0", subdir="linux-64", run_exports=["x"])
    build_artifact(added / "noarch", "newpy", "1.0", "py_0", fmt=".tar.bz2", run_exports=["y"])
    noise = random.Random(SEED).randbytes(64 * 1024)  # too big for one tail read: two ranges
    build_artifact(added / "linux-64", "big", "2.0", "0", subdir="linux-64", payload=noise)
    # A new artifact is one GET now (info and checksums from one read): two more give
    # the five read kill points the plan takes.
    build_artifact(added / "noarch", "newpy2", "1.0", "py_0", fmt=".tar.bz2", run_exports=["z"])
    build_artifact(added / "linux-64", "newlib2", "1.0", "0", subdir="linux-64")
    return channel, added


def go_to_b(s3: S3Endpoint, bucket: str, prefix: str, added: Path) -> None:
    upload_tree(s3.client(), bucket, prefix, added)
    s3.client().delete_object(Bucket=bucket, Key=f"{prefix}/{REMOVED}")


def restore(s3: S3Endpoint, bucket: str, prefix: str, snapshot: dict[str, bytes]) -> None:
    client = s3.client()
    for path, data in snapshot.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path}", Body=data)


@pytest.fixture(scope="module")
def reference(
    s3: S3Endpoint,
    bucket: str,
    scenario: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """State A (everything, cache included), B's outputs, and a census of B's run."""
    channel, added = scenario
    tmp = tmp_path_factory.mktemp("reference")
    url = f"s3://{bucket}/reference"
    upload_tree(s3.client(), bucket, "reference", channel)
    env = cli_env(s3, tmp)
    status, err = run(cli_command(url, s3.endpoint_url, tmp / "r.json"), env)
    assert status == 0, err
    state_a = channel_snapshot(s3, bucket, "reference")
    go_to_b(s3, bucket, "reference", added)
    census = tmp / "census"
    with CountingProxy(s3.endpoint_url) as proxy:
        command = wrapped(cli_command(url, proxy.url, tmp / "r.json"))
        status, err = run(command, env | {"CRASH_CENSUS": str(census)})
        assert status == 0, err
        kinds = [kind_of(seen) for seen in proxy.seen]
    counts = {kind: kinds.count(kind) for kind, _, _ in PLAN}
    counts["cache-write"] = int(census.read_text())
    print("kill points of a B run:", counts)
    rng = random.Random(SEED)
    points = {}
    for kind, count, _ in PLAN:
        assert counts[kind] >= count, f"a B run makes only {counts[kind]} {kind} points"
        for slot, n in enumerate(sorted(rng.sample(range(1, counts[kind] + 1), count))):
            points[(kind, slot)] = n
    return {"a": state_a, "b": channel_snapshot(s3, bucket, "reference"), "points": points}


def wrapped(command: list[str]) -> list[str]:
    """The CLI command run through tests/crashwrap.py."""
    assert command[1:3] == ["-m", "indexer"]
    return [sys.executable, str(WRAPPER), *command[3:]]


def run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr


def _dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] in "ZX"
    except (FileNotFoundError, IndexError):
        return True


def crash_once(
    s3: S3Endpoint, bucket: str, reference: dict[str, Any], case: str, tmp: Path, added: Path
) -> Crash:
    """Set up state A → B under a prefix of its own and run the indexer until it is killed."""
    kind, slot_text, variant = case.rsplit("-", 2)
    n = reference["points"][(kind, int(slot_text))]
    prefix = f"crash-{case}"
    restore(s3, bucket, prefix, reference["a"])
    go_to_b(s3, bucket, prefix, added)
    env = cli_env(s3, tmp)
    cache_dir = None
    args: list[str] = []
    if kind == "cache-write":  # a local cache the kill can damage
        cache_dir = tmp / "cache"
        cache_dir.mkdir()
        for subdir in SUBDIRS:
            packed = reference["a"][f"{CACHE_PREFIX}/{cache_filename(subdir)}.zst"]
            data = zstandard.ZstdDecompressor().decompressobj().decompress(packed)
            (cache_dir / cache_filename(subdir)).write_bytes(data)
        args = ["--cache-dir", str(cache_dir)]
        env["CRASH_CACHE_WRITE"] = f"{n}:{variant}"
    with CountingProxy(s3.endpoint_url) as proxy:
        command = wrapped(cli_command(f"s3://{bucket}/{prefix}", proxy.url, tmp / "r.json", *args))
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if kind != "cache-write":
            seen_of_kind = 0

            def nth(seen: Seen) -> bool:
                nonlocal seen_of_kind
                if kind_of(seen) != kind:
                    return False
                seen_of_kind += 1
                return seen_of_kind == n

            def kill(_: Seen) -> None:
                process.send_signal(signal.SIGKILL)
                deadline = time.monotonic() + 10
                while not _dead(process.pid) and time.monotonic() < deadline:
                    time.sleep(0.005)

            proxy.faults.append(Fault(nth, "call", call=kill, forward=variant == "forward"))
        _, err = process.communicate(timeout=120)
    snapshot = channel_snapshot(s3, bucket, prefix)
    return Crash(case, prefix, cache_dir, process.returncode, err, n, snapshot)


@pytest.fixture(scope="module")
def crashes(
    s3: S3Endpoint,
    bucket: str,
    reference: dict[str, Any],
    scenario: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Crash]:
    """Every crash of the plan, run a few at a time."""
    _, added = scenario

    def one(case: str) -> Crash:
        tmp = tmp_path_factory.mktemp(f"crash-{case}")
        return crash_once(s3, bucket, reference, case, tmp, added)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return {crash.case: crash for crash in pool.map(one, CASES)}


@pytest.fixture
def env_for_cli(aws_env: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RUN_EXPORTS_INDEX_S3_BACKOFF", "0.002")
    yield


def index(run_cli: RunCli, url: str, endpoint: str, tmp: Path, *args: str) -> dict[str, Any]:
    report = tmp / "converge.json"
    report.unlink(missing_ok=True)
    status, _, err = run_cli(
        "index", url, "--endpoint-url", endpoint, "--report", report, "-q", *args
    )
    assert status == 0, err
    return json.loads(report.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_killed_run_leaves_a_consistent_channel_and_the_next_run_converges(
    s3: S3Endpoint,
    bucket: str,
    reference: dict[str, Any],
    crashes: dict[str, Crash],
    env_for_cli: None,
    run_cli: RunCli,
    tmp_path: Path,
    case: str,
) -> None:
    crash = crashes[case]
    assert crash.status == -signal.SIGKILL, f"not killed at point {crash.n}: {crash.stderr}"
    assert check_consistent(crash.snapshot, [reference["a"], reference["b"]]) == []

    url = f"s3://{bucket}/{crash.prefix}"
    args = ["--cache-dir", str(crash.cache_dir)] if crash.cache_dir else []
    report = index(run_cli, url, s3.endpoint_url, tmp_path, *args)
    assert all(s["cache_rebuilt"] is None for s in report["subdirs"].values()), report
    assert stable_outputs(channel_snapshot(s3, bucket, crash.prefix)) == stable_outputs(
        reference["b"]
    )
    quiet = index(run_cli, url, s3.endpoint_url, tmp_path, *args)
    assert quiet["uploaded"] == []


@pytest.mark.slow
def test_the_kills_caught_runs_half_way(
    reference: dict[str, Any], crashes: dict[str, Crash]
) -> None:
    """Some kills left A's outputs, some B's, some a mix: the checks above met every kind."""
    states = set()
    for crash in crashes.values():
        published = stable_outputs(crash.snapshot)
        states.add(
            "a"
            if published == stable_outputs(reference["a"])
            else "b"
            if published == stable_outputs(reference["b"])
            else "mixed"
        )
    assert states == {"a", "b", "mixed"}


def test_the_consistency_check_sees_damage(reference: dict[str, Any]) -> None:
    """The checker is not vacuous: a cut file, a lost shard, a foreign index all show."""
    a, b = reference["a"], reference["b"]
    assert check_consistent(b, [a, b]) == []
    cut = dict(b) | {"noarch/run_exports.json": b["noarch/run_exports.json"][:-5]}
    assert "unreadable" in check_consistent(cut, [a, b])[0]
    shard = next(p for p in b if "/shards/" in p and p not in a)
    assert (
        "names a missing shard"
        in check_consistent({p: d for p, d in b.items() if p != shard}, [a, b])[0]
    )
    swapped = dict(b) | {"noarch/run_exports.json": b["linux-64/run_exports.json"]}
    assert check_consistent(swapped, [a, b]) == [
        "noarch/run_exports.json: matches no complete run's output"
    ]
