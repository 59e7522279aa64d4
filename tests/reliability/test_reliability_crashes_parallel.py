"""Issue 15, acceptance 3: SIGKILL while shards are uploaded in parallel.

A channel of 60 package names is indexed (state A); a new version of every
name arrives (state B: 60 new shards and a new index). The run that
publishes B goes through a proxy delaying each request 20 ms, so many shard
PUTs are in flight at once, and is killed at a seeded point among them (the
PUT that triggers the kill reaching the store or not). Then: every published
file is A's or B's, the published index never names a missing shard, one
fault-free run gives B's outputs, and the run after it uploads nothing.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from reliability import (
    channel_snapshot,
    check_consistent,
    cli_command,
    cli_env,
    names_channel,
    report_of,
    run_subprocess,
    stable_outputs,
)
from s3proxy import CountingProxy, Fault, Seen, max_in_flight
from s3server import S3Endpoint, upload_tree

NAMES = 60
SEED = 15
KILLS = 3  # seeded points among the shard PUTs of B's run, each in a prefix of its own
DELAY_S = 0.02


def is_shard_put(seen: Seen) -> bool:
    return seen.method == "PUT" and "/shards/" in seen.key


def index_files(snapshot: dict[str, bytes]) -> dict:
    return {p: v for p, v in stable_outputs(snapshot).items() if "/shards/" not in p}


@pytest.fixture(scope="module")
def states(
    s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, bytes], dict[str, bytes], Path]:
    """The bucket, state A (everything), B's complete outputs, and B's new artifacts."""
    tmp = tmp_path_factory.mktemp("parallel-crash")
    a = names_channel(tmp / "a", NAMES, "1.0")
    b = names_channel(tmp / "b", NAMES, "2.0")
    bucket = s3.new_bucket("parallelcrash")
    upload_tree(s3.client(), bucket, "reference", a)
    env = cli_env(s3, tmp)
    url = f"s3://{bucket}/reference"
    assert run_subprocess(cli_command(url, s3.endpoint_url, tmp / "r.json"), env)[0] == 0
    state_a = channel_snapshot(s3, bucket, "reference")
    upload_tree(s3.client(), bucket, "reference", b)
    assert run_subprocess(cli_command(url, s3.endpoint_url, tmp / "r.json"), env)[0] == 0
    return bucket, state_a, channel_snapshot(s3, bucket, "reference"), b


@pytest.mark.slow
@pytest.mark.parametrize("slot", range(KILLS))
def test_a_kill_during_parallel_shard_uploads_leaves_a_consistent_channel(
    s3: S3Endpoint, states: tuple[str, dict, dict, Path], tmp_path: Path, slot: int
) -> None:
    bucket, state_a, state_b, added = states
    n = sorted(random.Random(SEED).sample(range(2, NAMES + 1), KILLS))[slot]
    prefix = f"kill-{slot}"
    client = s3.client()
    for path, data in state_a.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path}", Body=data)
    upload_tree(client, bucket, prefix, added)
    url = f"s3://{bucket}/{prefix}"
    env = cli_env(s3, tmp_path)

    with CountingProxy(s3.endpoint_url, delay_s=DELAY_S) as proxy:
        process = subprocess.Popen(
            cli_command(url, proxy.url, tmp_path / "killed.json"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        count = 0

        def nth(seen: Seen) -> bool:
            nonlocal count
            count += is_shard_put(seen)
            return is_shard_put(seen) and count == n

        def kill(_: Seen) -> None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            time.sleep(0.05)  # the requests already in flight reach the store or not

        proxy.faults.append(Fault(nth, "call", call=kill, forward=slot % 2 == 0))
        _, err = process.communicate(timeout=120)
        shard_puts = [s for s in proxy.seen if is_shard_put(s)]
    assert process.returncode == -signal.SIGKILL, f"not killed at shard PUT {n}: {err}"
    assert max_in_flight(shard_puts) > 1  # killed while several were on their way

    snapshot = channel_snapshot(s3, bucket, prefix)
    assert check_consistent(snapshot, [state_a, state_b]) == []
    # no index file went out yet: they wait for every shard (some of B's shards are there)
    assert index_files(snapshot) == index_files(state_a)
    assert any(p not in state_a for p in snapshot if "/shards/" in p)

    status, err = run_subprocess(cli_command(url, s3.endpoint_url, tmp_path / "r.json"), env)
    assert status == 0, err
    assert stable_outputs(channel_snapshot(s3, bucket, prefix)) == stable_outputs(state_b)
    status, err = run_subprocess(cli_command(url, s3.endpoint_url, tmp_path / "q.json"), env)
    assert status == 0, err
    assert report_of(tmp_path / "q.json")["uploaded"] == []
