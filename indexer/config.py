"""The run's settings: ONE frozen `Config`, built from argv or from the action's inputs.

Every setting a run reads is here, validated once: the command line
(`arguments.from_argv`, argparse with one-line errors), the action's inputs (the action
builds the same `Config`), the S3 connection settings, and the environment
variables the tool reads (`RUN_EXPORTS_INDEX_LOCK_TIMEOUT`). What to do with
them (which store, which cache home, scratch copies for read-only runs) is
decided by the pipeline and the storage from the `Config`, not by the CLI.
Pure: no I/O besides reading the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.errors import UsageError
from indexer.model import INDEX_CACHE_CONTROL

if TYPE_CHECKING:
    from indexer.render.patches import PatchInstructions

LOCK_TIMEOUT_ENV = "RUN_EXPORTS_INDEX_LOCK_TIMEOUT"
ADDRESSING_STYLES = ("path", "virtual")  # S3 bucket URLs (botocore's addressing_style)
MAX_WRITE_JOBS = 32  # writes at once (Config.write_jobs); storage.s3.client.pool_size covers it


class Mode(StrEnum):
    """What a run may write: everything, nothing (dry run), nothing and no cache (preview)."""

    PUBLISH = "publish"
    DRY_RUN = "dry-run"
    PREVIEW = "preview"


def lock_timeout_from_env() -> float | None:
    """How long to wait for a cache another process holds (`RUN_EXPORTS_INDEX_LOCK_TIMEOUT`).

    None when the variable is unset: the cache's default (300 s) applies.
    """
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    try:
        return float(text) if text else None
    except ValueError:
        raise UsageError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds, got {text!r}") from None


@dataclass(frozen=True)
class Config:
    """How to run. Every field has the library default, so a test can name only what it sets."""

    channel: str = ""  # a directory or s3://bucket/prefix
    subdirs: list[str] = field(default_factory=list)  # empty: every subdir found
    jobs: int = 8
    dry_run: bool = False
    strict: bool = False
    shards: bool = False  # CEP-16 shards + whole-artifact checksums (the CLI's default)
    repodata: bool = False  # also repodata.json (+ .zst) from the shard records
    prune_shards: float | None = None  # seconds: prune unreferenced shards older than this
    preview: bool = False  # what would the published outputs become? (writes nothing)
    # Given instructions per subdir (--patches): they replace the channel's own.
    patches: Mapping[str, PatchInstructions] = field(default_factory=dict)
    patches_from: str | None = None  # --patches PATH, loaded once the channel is open
    channel_patches: bool = True  # apply <subdir>/patch_instructions.json when none are given
    verify: bool = False  # re-read every artifact and compare every output (pipeline doc)
    max_removal_share: float = 0.5  # refuse a subdir that would lose more than this share
    allow_mass_removal: bool = False
    staged: Path | None = None  # artifacts built in the job, seen as if uploaded
    local_copies: Path | None = None  # the job's copies of uploaded artifacts (s3:// only)
    cache_dir: Path | None = None  # None: beside the channel (in the bucket for s3://)
    report: Path | None = None  # where to write the JSON report
    summary: Path | None = None  # where to write the Markdown summary
    quiet: bool = False
    verbose: bool = False
    # S3 (None: boto3's usual sources: AWS_* variables, the profile, the default chain)
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None
    profile: str | None = None
    unsigned: bool = False  # read a public bucket anonymously (read-only runs only)
    lock_timeout_s: float | None = field(default_factory=lock_timeout_from_env)
    command: str = "index"  # or "subdirs": list the channel's subdirs (a matrix plan)

    def __post_init__(self) -> None:
        """The rules between settings, checked once (argparse checks each value)."""
        if self.staged is not None and not self.read_only:
            raise UsageError(
                "--staged needs --preview or --dry-run (staged artifacts are not uploaded)"
            )
        if self.s3_settings_given and self.channel and not self.channel.startswith("s3://"):
            raise UsageError(
                "--endpoint-url, --region, --addressing-style and --profile need s3://"
            )
        if self.local_copies is not None and self.channel and not self.channel.startswith("s3://"):
            raise UsageError(
                "--local-copies needs an s3:// channel (a local channel is read from disk already)"
            )
        if not self.shards and (self.repodata or self.prune_shards is not None):
            raise UsageError("--repodata and --prune-shards need shards; drop --no-shards")
        if self.addressing_style not in (None, *ADDRESSING_STYLES):
            raise UsageError(
                f"--addressing-style must be path or virtual, not {self.addressing_style!r}"
            )
        if self.unsigned and self.channel and not self.channel.startswith("s3://"):
            raise UsageError("--unsigned needs s3:// (it reads a public bucket anonymously)")
        if self.unsigned and not self.read_only:
            raise UsageError(
                "--unsigned (input 'unsigned') reads anonymously and cannot publish: writes are "
                "never attempted unsigned; add --preview or --dry-run, or give credentials"
            )

    @property
    def read_only(self) -> bool:
        """Dry runs and previews write nothing: not the channel, not the cache."""
        return self.dry_run or self.preview

    @property
    def write_jobs(self) -> int:
        """Uploads (and pruning deletes) at once: each mostly waits a round trip, so
        twice `--jobs`, at most `MAX_WRITE_JOBS` (the S3 client's pool has room for them)."""
        return min(MAX_WRITE_JOBS, 2 * self.jobs)

    @property
    def mode(self) -> Mode:
        return Mode.PREVIEW if self.preview else Mode.DRY_RUN if self.dry_run else Mode.PUBLISH

    @property
    def s3_settings_given(self) -> bool:
        return any((self.endpoint_url, self.region, self.addressing_style, self.profile))


# -- --prune-shards AGE ------------------------------------------------------------
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# What a client may keep using an old shard index for: the index's own max-age
# (as publish.py writes it) plus this allowance for a CDN or proxy in front of
# the channel that caches the index longer (docs/shards.md, "Pruning").
CDN_ALLOWANCE_S = 3600


def index_max_age(cache_control: str = INDEX_CACHE_CONTROL) -> int:
    """The `max-age` seconds of a Cache-Control value (0 without one)."""
    match = re.search(r"(?:^|[,\s])max-age=(\d+)", cache_control)
    return int(match.group(1)) if match else 0


MIN_PRUNE_AGE_S = index_max_age() + CDN_ALLOWANCE_S


def parse_age(text: str) -> float:
    """`7d`, `12h`, `30m`, `90s`, `2w` → seconds; UsageError otherwise."""
    match = _AGE_RE.match(text)
    if not match:
        raise UsageError(f"--prune-shards: expected an age such as 7d, 12h or 30m, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def check_prune_age(seconds: float) -> float:
    """`seconds` if pruning that young cannot break a client, else UsageError.

    A client may hold the previous shard index for its max-age, and a CDN
    longer; it must still find every shard that index names. So AGE must be
    at least the index's max-age plus `CDN_ALLOWANCE_S`.
    """
    if seconds < MIN_PRUNE_AGE_S:
        raise UsageError(
            f"--prune-shards: AGE must be at least {MIN_PRUNE_AGE_S}s "
            f"({human_age(MIN_PRUNE_AGE_S)}), got {human_age(seconds)}: clients may cache the "
            f"shard index for {index_max_age()}s (its max-age) plus {human_age(CDN_ALLOWANCE_S)} "
            "allowed for a CDN, and must still find the shards it names"
        )
    return seconds


def human_age(seconds: float) -> str:
    """`3660` → `1h1m`: the age in the units --prune-shards takes."""
    left, parts = round(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"
