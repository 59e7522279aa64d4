"""The command line: argparse with one-line errors, turned into the one `Config`.

Kept apart from `config` so that the settings object stays small; the action
builds the same `Config` from its inputs without going through here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from indexer import __version__
from indexer.config import (
    ADDRESSING_STYLES,
    MIN_PRUNE_AGE_S,
    Config,
    check_prune_age,
    human_age,
    parse_age,
)
from indexer.errors import UsageError

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
    s3.add_argument(
        "--unsigned",
        action="store_true",
        help="read a public bucket without signing (no credentials); only with --preview or "
        "--dry-run: writes are never attempted unsigned (docs/s3.md, anonymous reads)",
    )
    s3.add_argument(
        "--local-copies",
        type=Path,
        metavar="DIR",
        help="the job's copies of uploaded artifacts (DIR/<subdir>/<artifact>): a new one is "
        "read from here, not from S3, once its size and ETag or ChecksumSHA256 prove it is "
        "the object in the channel",
    )
    index.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    index.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    _add_subdirs_command(commands)
    return parser


def _add_subdirs_command(commands: argparse._SubParsersAction) -> None:
    """`subdirs CHANNEL`: the channel's subdirs as a JSON list, for a `strategy.matrix`."""
    about = "print the channel's subdirs (noarch, <platform>-<arch>) as a JSON list"
    plan = commands.add_parser("subdirs", help=about, description=about + ".")
    plan.add_argument("channel", metavar="CHANNEL", help="channel directory or s3://bucket/prefix")
    plan.add_argument("--subdir", action="append", default=[], metavar="NAME", help="keep only")
    for flag in ("--endpoint-url", "--region", "--profile"):
        plan.add_argument(flag, metavar="VALUE", help="as for index")
    plan.add_argument("--addressing-style", choices=ADDRESSING_STYLES, help="as for index")


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
    if args.command == "subdirs":
        s3 = {k: getattr(args, k) for k in ("endpoint_url", "region", "addressing_style")}
        return Config(args.channel, args.subdir, command="subdirs", profile=args.profile, **s3)
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
        local_copies=args.local_copies,
        cache_dir=args.cache_dir,
        report=args.report,
        summary=args.summary,
        quiet=args.quiet,
        verbose=args.verbose,
        endpoint_url=args.endpoint_url,
        region=args.region,
        addressing_style=args.addressing_style,
        profile=args.profile,
        unsigned=args.unsigned,
    )
