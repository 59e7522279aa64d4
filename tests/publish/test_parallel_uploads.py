"""Issue 15, acceptance 3: shards go out in parallel, the index only after them.

A proxy delays every request by 20 ms (a hosted runner's round trip to S3 in
its region). A cold run publishing 200 shards one after another would spend
at least 200 x 20 ms = 4 s on them; with the bounded pool it must spend less
than a quarter of that, with several PUTs in flight at once (counted at the
proxy), and every index file must start only after the last shard is stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability import cli_command, cli_env, names_channel, run_subprocess
from s3proxy import CountingProxy, Seen, max_in_flight
from s3server import S3Endpoint, upload_tree

from indexer.config import Config
from indexer.storage.base import CACHE_PREFIX

SHARDS = 200
DELAY_S = 0.02
TRIES = 3  # the span is wall time on 2 shared cores: a sequential upload takes >= 4 s on any


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return names_channel(tmp_path_factory.mktemp("names"), SHARDS)


def cold_run(s3: S3Endpoint, channel: Path, tmp: Path) -> list[Seen]:
    """Index the channel cold through the delaying proxy; the PUTs it saw."""
    bucket = s3.new_bucket("parallel")
    upload_tree(s3.client(), bucket, "ch", channel)
    report = tmp / "report.json"
    with CountingProxy(s3.endpoint_url, delay_s=DELAY_S) as proxy:
        # a process of its own: the proxy's threads do not share its interpreter
        command = cli_command(f"s3://{bucket}/ch", proxy.url, report)
        status, err = run_subprocess(command, cli_env(s3, tmp))
    assert status == 0, err
    assert len(json.loads(report.read_bytes())["uploaded"]) == SHARDS + 3
    return [s for s in proxy.seen if s.method == "PUT"]


def test_200_shards_are_uploaded_in_parallel_and_before_the_index(
    channel: Path, s3: S3Endpoint, tmp_path: Path
) -> None:
    spans = []
    for _ in range(TRIES):
        puts = cold_run(s3, channel, tmp_path)
        shards = [s for s in puts if "/shards/" in s.key]
        assert len(shards) == SHARDS and all(s.status == 200 for s in shards)
        span = max(s.ended for s in shards) - min(s.started for s in shards)
        in_flight = max_in_flight(shards)
        print(f"{SHARDS} shard PUTs: {span:.2f} s, at most {in_flight} in flight")
        assert 4 <= in_flight <= Config().write_jobs, in_flight

        last_shard = max(s.ended for s in shards)
        index_files = [s for s in puts if not ({"shards", CACHE_PREFIX} & set(s.key.split("/")))]
        assert {s.key.rsplit("/", 1)[1] for s in index_files} == {
            "run_exports.json",
            "run_exports.json.zst",
            "repodata_shards.msgpack.zst",
        }
        assert all(s.started >= last_shard for s in index_files)
        spans.append(span)
        if span < SHARDS * DELAY_S / 4:
            break
    assert min(spans) < SHARDS * DELAY_S / 4, f"{SHARDS} shard PUTs took {spans} s"
