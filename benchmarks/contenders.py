"""The contenders and how one measured run of each is made.

Each run is a fresh process started by `benchmarks.measure` (wall time, peak
RSS of its process tree), talking to S3 through the counting proxy (requests,
bytes). Output of the contender goes to a log file under the work folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .proxy import CountingProxy, Tally

ROOT = Path(__file__).resolve().parent.parent
MEASURE = Path(__file__).resolve().parent / "measure.py"
BENCH_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"

OURS_RANGE = "ours --no-shards"
OURS_SHARDS = "ours (shards)"
RATTLER = "rattler-index"
CONDA_INDEX = "conda-index"
LISTING = "bare listing"
LISTING_PLAIN = "bare listing, boto3 defaults"
ALL = (OURS_RANGE, OURS_SHARDS, RATTLER, CONDA_INDEX)
SHORT = {
    "ours-range": OURS_RANGE,
    "ours-shards": OURS_SHARDS,
    "rattler": RATTLER,
    "conda-index": CONDA_INDEX,
}


@dataclass
class Run:
    """One measured run of one contender in one scenario."""

    scenario: str
    contender: str
    wall_s: float
    peak_rss_mb: float
    maxrss_mb: float
    tree_rss_mb: float
    returncode: int
    tally: dict = field(default_factory=dict)
    per_key: dict = field(default_factory=dict)  # artifact key → bytes read (not saved)
    note: str = ""
    load: float = 0.0  # 1-minute load average just before the run
    network: str = "loopback"  # the proxy's network profile ("direct": no proxy)
    samples: list[float] = field(default_factory=list)  # wall s of repeated runs, in order

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out.pop("per_key")
        return out


@dataclass
class Target:
    """Where a contender runs: the channel URL, the endpoint and credentials."""

    url: str  # s3://bucket/prefix
    endpoint: str  # the proxy's URL (or the server's, for unmeasured set-up runs)
    env: dict[str, str]
    subdirs: list[str]
    work: Path  # per-scenario folder for logs and conda-index's local copy


@dataclass(frozen=True)
class Revision:
    """Another revision of this tool, checked out beside the tree (`--compare-ref`).

    Its runs are `python -m indexer` started in `checkout` (the current directory comes
    first on `sys.path` for `-m`, and PYTHONPATH points there too), with `python`: the
    current venv when the dependencies are the same, else a venv of its own.
    """

    label: str  # e.g. "pre-layout (0fbaafe)"
    checkout: Path
    python: str


def command(
    contender: str, target: Target, scenario: str, revision: Revision | None = None
) -> list[str]:
    """The command line of one contender run."""
    py = revision.python if revision else sys.executable
    if contender.startswith((OURS_RANGE, OURS_SHARDS)):
        cmd = [py, "-m", "indexer", "index", target.url, "--endpoint-url", target.endpoint]
        cmd += ["--region", "us-east-1", "--addressing-style", "path", "-q"]
        return cmd + (["--no-shards"] if contender.startswith(OURS_RANGE) else [])
    if contender == RATTLER:
        return [py, "-m", "benchmarks.rattler_run", target.url, target.endpoint]
    if contender == CONDA_INDEX:
        folder = target.work / "conda-index"
        return [
            str(BENCH_PYTHON),
            "-m",
            "benchmarks.condaindex_run",
            target.url,
            target.endpoint,
            str(folder),
        ]
    if contender in (LISTING, LISTING_PLAIN):
        plain = ["--plain"] if contender == LISTING_PLAIN else []
        return [
            py,
            "-m",
            "benchmarks.listing",
            *plain,
            target.url,
            target.endpoint,
            *target.subdirs,
        ]
    raise ValueError(contender)


def run(
    contender: str,
    target: Target,
    scenario: str,
    proxy: CountingProxy | None,
    revision: Revision | None = None,
) -> Run:
    """One measured run; raises if the contender failed."""
    target.work.mkdir(parents=True, exist_ok=True)
    slug = (
        f"{scenario}-{contender}".replace(" ", "_")
        .replace("/", "_")
        .replace("(", "")
        .replace(")", "")
        .replace("@", "at")
    )
    if proxy is not None:
        slug += f"-{proxy.network.name}"
    out = target.work / f"{slug}.measure.json"
    log = target.work / f"{slug}.log"
    env = {**os.environ, **target.env}
    cwd = ROOT
    if revision is not None:
        cwd = revision.checkout
        env["PYTHONPATH"] = str(revision.checkout)
    if proxy is not None:
        proxy.take()
    with open(log, "wb") as fh:
        subprocess.run(
            [
                sys.executable,
                str(MEASURE),  # a script path: the same wrapper whatever the cwd
                str(out),
                "--",
                *command(contender, target, scenario, revision),
            ],
            cwd=cwd,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=True,
        )
    measured = json.loads(out.read_text())
    tally = proxy.take() if proxy is not None else Tally()
    result = Run(
        scenario,
        contender,
        measured["wall_s"],
        measured["peak_rss_mb"],
        measured["maxrss_mb"],
        measured["tree_rss_mb"],
        measured["returncode"],
        tally.as_dict() if proxy is not None else {},
        dict(tally.per_key),
        network=proxy.network.name if proxy is not None else "direct",
    )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"{contender} failed in {scenario} (status {result.returncode}):\n{tail}"
        )
    return result
