"""Helpers for the reliability tests (issue 8): channels, snapshots, consistency.

A *snapshot* is every object under a channel prefix, as bytes. The checks
here judge a published state the way a client would meet it: every JSON
parses, every `.zst` decompresses to a valid document, each output is one a
complete run wrote (old or new, never a splice), and every shard the shard
index names exists and hashes to its name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import zstandard
from s3server import S3Endpoint, download_prefix

from dev.sample import build_artifact
from indexer.model import is_artifact
from indexer.render.shards import SHARD_INDEX, SHARD_NAME_RE, decode, referenced_names
from indexer.storage.base import CACHE_PREFIX

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "ch"
FAST_BACKOFF = {"RUN_EXPORTS_INDEX_S3_BACKOFF": "0.002"}  # retries without real sleeps


def small_channel(root: Path) -> Path:
    """Two subdirs, both formats, run_exports of both shapes: five artifacts."""
    linux, noarch = root / "linux-64", root / "noarch"
    pin = {"weak": ["libfoo >=1.2,<2.0a0"]}
    build_artifact(linux, "libfoo", "1.2.0", "h1_0", subdir="linux-64", run_exports=pin)
    build_artifact(
        linux, "libfoo", "1.2.0", "h1_0", subdir="linux-64", fmt=".tar.bz2", run_exports=pin
    )
    build_artifact(linux, "tool", "0.9", "0", subdir="linux-64", depends=["libfoo >=1.2"])
    build_artifact(noarch, "pyhelper", "2.0", "py_0", run_exports=["pyhelper >=2.0"])
    build_artifact(noarch, "docs", "1.0", "0", fmt=".tar.bz2")
    return root


def is_output(path: str) -> bool:
    """A file the indexer publishes (not an artifact, not its own cache)."""
    name = path.rsplit("/", 1)[-1]
    return not path.startswith(CACHE_PREFIX + "/") and not is_artifact(name)


def outputs(snapshot: Mapping[str, bytes]) -> dict[str, bytes]:
    return {path: data for path, data in snapshot.items() if is_output(path)}


def channel_snapshot(s3: S3Endpoint, bucket: str, prefix: str = PREFIX) -> dict[str, bytes]:
    return download_prefix(s3.client(), bucket, f"{prefix}/")


def stable(path: str, data: bytes) -> Any:
    """What must match between runs: the bytes, except the shard index's `created_at`.

    `created_at` is the time the index was written, so two runs that both
    write it legitimately differ there and nowhere else.
    """
    if not path.endswith(SHARD_INDEX):
        return data
    index = decode(data)
    del index["info"]["created_at"]
    return index


def stable_outputs(snapshot: Mapping[str, bytes]) -> dict[str, Any]:
    return {path: stable(path, data) for path, data in outputs(snapshot).items()}


def check_consistent(
    snapshot: Mapping[str, bytes], complete: Iterable[Mapping[str, bytes]]
) -> list[str]:
    """Problems a client would meet in `snapshot`; [] when it is consistent.

    `complete` are the outputs of fault-free runs (say, before and after the
    change): every index file must equal one of them, every `.json` parse,
    every `.zst` decompress, every shard hash to its name and every shard the
    index names exist.
    """
    complete = [outputs(c) for c in complete]
    problems: list[str] = []
    for path, data in outputs(snapshot).items():
        name = path.rsplit("/", 1)[-1]
        if SHARD_NAME_RE.match(name):
            if hashlib.sha256(data).hexdigest() != name.split(".")[0]:
                problems.append(f"{path}: bytes do not hash to the shard's name")
            continue
        try:
            if path.endswith(".json"):
                json.loads(data)
            elif path.endswith(".zst") and not path.endswith(SHARD_INDEX):
                json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(data))
            value = stable(path, data)
        except Exception as exc:  # any parse failure is what a client would hit
            problems.append(f"{path}: unreadable ({type(exc).__name__}: {exc})")
            continue
        if not any(path in c and stable(path, c[path]) == value for c in complete):
            problems.append(f"{path}: matches no complete run's output")
        if path.endswith(SHARD_INDEX):
            folder = path.rsplit("/", 1)[0]
            for shard in sorted(referenced_names(decode(data))):
                if f"{folder}/shards/{shard}" not in snapshot:
                    problems.append(f"{path} names a missing shard {shard}")
    for path in set().union(*(set(c) for c in complete)):
        if path not in snapshot and all(path in c for c in complete):
            problems.append(f"{path}: was published before and is gone")
    return problems


def cli_env(s3: S3Endpoint, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of an indexer subprocess: only the endpoint's admin identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env())
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=f"{ROOT}{os.pathsep}{Path(__file__).parent}",
        TMPDIR=str(tmp),  # a killed run's scratch copies stay inside the test's folder
        **FAST_BACKOFF,
    )
    env.update(extra)
    return env


def cli_command(url: str, endpoint: str, report: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "indexer",
        "index",
        url,
        "--endpoint-url",
        endpoint,
        "--report",
        str(report),
        "--quiet",
        *args,
    ]


def run_subprocess(
    command: list[str], env: dict[str, str], timeout: float = 120
) -> tuple[int, str]:
    """Run and wait; return (exit status, stderr)."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stderr


def report_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def names_channel(root: Path, count: int, version: str = "1.0") -> Path:
    """`count` package names in noarch, one artifact each: one shard per name."""
    for i in range(count):
        build_artifact(root / "noarch", f"pkg{i:03d}", version, "0", run_exports=[f"pkg{i:03d}"])
    return root
