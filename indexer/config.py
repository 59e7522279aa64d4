"""The run's settings: ONE frozen `Config`, built from argv or from the action's inputs.

Every setting a run reads is here, validated once: the command line
(`from_argv`, argparse with one-line errors), the action's inputs (the action
builds the same `Config`), the S3 connection settings, and the environment
variables the tool reads (`RUN_EXPORTS_INDEX_LOCK_TIMEOUT`). What to do with
them (which store, which cache home, scratch copies for read-only runs) is
decided by the pipeline and the storage from the `Config`, not by the CLI.
Pure: no I/O besides reading the environment.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from indexer import __version__
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
    lock_timeout_s: float | None = field(default_factory=lock_timeout_from_env)

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
        if not self.shards and (self.repodata or self.prune_shards is not None):
            raise UsageError("--repodata and --prune-shards need shards; drop --no-shards")
        if self.addressing_style not in (None, *ADDRESSING_STYLES):
            raise UsageError(
                f"--addressing-style must be path or virtual, not {self.addressing_style!r}"
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


# -- the command line ---------------------------------------------------------------
DESCRIPTION = """\
Keep a conda channel's run_exports indexed. For each subdir it writes CEP-12
run_exports.json (+ .zst), reading only the info part of new or changed
artifacts and remembering the rest in a SQLite cache."""


class _Parser(argparse.ArgumentParser):
    """argparse that fails with one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="run-exports-index", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    index = commands.add_parser(
        "index",
        help="index a channel (a directory or s3://bucket/prefix)",
        description=DESCRIPTION,
    )
    index.add_argument("channel", metavar="CHANNEL", help="channel directory or s3://bucket/prefix")
    index.add_argument(
        "--subdir",
        action="append",
        default=[],
        metavar="NAME",
        help="index only this subdir (repeatable; default: every subdir found)",
    )
    index.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="keep the cache files here (default: CHANNEL/.run-exports-index, "
        "in the bucket for s3://)",
    )
    index.add_argument(
        "--jobs",
        type=_positive_int,
        default=8,
        metavar="N",
        help="artifacts read at once (default 8); outputs are uploaded twice as many at once "
        "(at most 32)",
    )
    index.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    index.add_argument(
        "--summary", type=Path, metavar="FILE", help="write the Markdown summary here"
    )
    index.add_argument(
        "--dry-run",
        action="store_true",
        help="do everything but write; report what would be uploaded",
    )
    preview = index.add_argument_group(
        "previews", "what a pull request would change, before it is merged"
    )
    preview.add_argument(
        "--preview",
        action="store_true",
        help="compute what the published outputs would become and report the run_exports "
        "diff and lints; write nothing (read-only credentials suffice)",
    )
    preview.add_argument(
        "--staged",
        type=Path,
        metavar="DIR",
        help="artifacts built in this job (DIR/<subdir>/<artifact>), indexed as if uploaded "
        "(needs --preview or --dry-run)",
    )
    preview.add_argument(
        "--patches",
        metavar="PATH",
        help="patch instructions (patch_instructions_version 1 or 2) instead of the channel's "
        "own: a directory of <subdir>/patch_instructions.json, one JSON file mapping subdir to "
        "instructions, or a patch-generator package (.conda/.tar.bz2; a bare filename that is "
        "no local file is read from the channel's noarch/). They also patch run_exports.json",
    )
    preview.add_argument(
        "--no-channel-patches",
        action="store_true",
        help="do not apply the channel's own <subdir>/patch_instructions.json (applied by "
        "default to the shards and repodata.json, as conda-index does)",
    )
    index.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any artifact is unreadable or has malformed run_exports",
    )
    index.add_argument(
        "--verify",
        action="store_true",
        help="trust neither the cache nor the settled summary: re-read every artifact's info "
        "(range reads), compare every published output, repair and report what differs "
        "(for a nightly run)",
    )
    index.add_argument(
        "--max-removal-share",
        type=_share,
        default=0.5,
        metavar="SHARE",
        help="refuse to publish a subdir when a run would remove more than this share of its "
        "artifacts (0-1 or a percentage; default 0.5): a wrong prefix or a truncated listing "
        "must not empty the index",
    )
    index.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="publish even when more than --max-removal-share of a subdir's artifacts are gone",
    )
    index.add_argument(
        "--no-shards",
        action="store_true",
        help="skip CEP-16 shards and the whole-artifact checksums they need (range reads only)",
    )
    index.add_argument(
        "--repodata",
        action="store_true",
        help="also write repodata.json (+ .zst) from the shard records",
    )
    index.add_argument(
        "--prune-shards",
        type=_age,
        metavar="AGE",
        help="delete shards no index names that are older than AGE (e.g. 7d, 12h); at least "
        f"{human_age(MIN_PRUNE_AGE_S)}, the shard index's max-age plus an hour for a CDN "
        "(docs/shards.md)",
    )
    s3 = index.add_argument_group(
        "S3 channels", "the usual AWS_* variables and boto3's credential chain apply"
    )
    s3.add_argument(
        "--endpoint-url", metavar="URL", help="S3-compatible endpoint (AWS_ENDPOINT_URL)"
    )
    s3.add_argument("--region", metavar="NAME", help="region (AWS_REGION, AWS_DEFAULT_REGION)")
    s3.add_argument(
        "--addressing-style", choices=ADDRESSING_STYLES, help="path or virtual-hosted bucket URLs"
    )
    s3.add_argument("--profile", metavar="NAME", help="AWS profile (AWS_PROFILE)")
    index.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    index.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a share such as 0.5 or 50%, got {text!r}"
        ) from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (0% and 100%), got {text!r}")
    return value


def _age(text: str) -> float:
    try:
        return check_prune_age(parse_age(text))
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--prune-shards: ")) from None


def from_argv(argv: Sequence[str] | None) -> Config | None:
    """The Config of a command line; None when no command was given (print the help)."""
    args = build_parser().parse_args(argv)
    if args.command is None:
        return None
    return from_args(args)


def from_args(args: argparse.Namespace) -> Config:
    return Config(
        channel=args.channel,
        subdirs=args.subdir,
        jobs=args.jobs,
        dry_run=args.dry_run,
        strict=args.strict,
        shards=not args.no_shards,
        repodata=args.repodata,
        prune_shards=args.prune_shards,
        preview=args.preview,
        patches_from=args.patches,
        channel_patches=not args.no_channel_patches,
        verify=args.verify,
        max_removal_share=args.max_removal_share,
        allow_mass_removal=args.allow_mass_removal,
        staged=args.staged,
        cache_dir=args.cache_dir,
        report=args.report,
        summary=args.summary,
        quiet=args.quiet,
        verbose=args.verbose,
        endpoint_url=args.endpoint_url,
        region=args.region,
        addressing_style=args.addressing_style,
        profile=args.profile,
    )
