"""The `run-exports-index` command line.

Exit status: 0 success, 1 failed run (or problems found with --strict, or a
subdir not published by the mass-removal guard), 2 usage error; 143 when
stopped by SIGTERM (scratch copies are removed first). Errors are one line
naming what is wrong, never a traceback (pass --verbose to see one for an
internal error).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import __version__
from .cachehome import CacheHome, LocalCacheHome, ScratchCacheHome, clean_stale_scratch
from .errors import RunError, UsageError
from .local import LocalStore
from .patches import load_patches
from .pipeline import Options, index_channel
from .redact import RedactingFilter, forget, redact, register_url
from .report import RunReport, to_markdown
from .s3 import (
    ADDRESSING_STYLES,
    S3Options,
    is_s3_url,
    open_s3_cache_home,
    open_s3_store,
    pool_size,
)
from .shardstage import MIN_PRUNE_AGE_S, check_prune_age, human_age, parse_age
from .staged import StagedOverlay
from .storage import ChannelStore

log = logging.getLogger("run-exports-index")

DESCRIPTION = """\
Keep a conda channel's run_exports indexed. For each subdir it writes CEP-12
run_exports.json (+ .zst), reading only the info part of new or changed
artifacts and remembering the rest in a SQLite cache."""


def one_line(text: object) -> str:
    """Control characters shown escaped and credentials redacted, so a name from an
    artifact or a pull request cannot start a line of its own (GitHub reads
    `::command::` lines from the log) and no password reaches the log."""
    text = redact(text)
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def guard_lines(text: str) -> str:
    """Multi-line text (a --verbose traceback) with no line that the runner could
    take for a workflow command: a line starting with `::` (after blanks) is indented
    behind a `| ` marker. Credentials are redacted."""
    return "\n".join(
        f"| {line}" if line.lstrip().startswith("::") else line for line in redact(text).split("\n")
    )


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.exc_info:  # tracebacks (--verbose) stay readable
            return guard_lines(text)
        return one_line(text)


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
        help="artifacts read at once (default 8)",
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


def open_store(channel: str, s3_options: S3Options | None = None) -> ChannelStore:
    """The backend for a CHANNEL argument."""
    if is_s3_url(channel):
        return open_s3_store(channel, s3_options)
    if (
        s3_options is not None
        and replace(s3_options, max_connections=S3Options.max_connections) != S3Options()
    ):
        raise UsageError("--endpoint-url, --region, --addressing-style and --profile need s3://")
    return LocalStore(channel)


def s3_options(args: argparse.Namespace) -> S3Options:
    return S3Options(
        endpoint_url=args.endpoint_url,
        region=args.region,
        addressing_style=args.addressing_style,
        profile=args.profile,
        max_connections=pool_size(args.jobs),
    )


def default_cache_home(store: ChannelStore, cache_dir: Path | None) -> CacheHome:
    if is_s3_url(store.location):
        return open_s3_cache_home(store, cache_dir)  # type: ignore[arg-type]
    if cache_dir is not None:
        return LocalCacheHome(cache_dir)
    return LocalCacheHome(store.local_cache_dir())  # type: ignore[attr-defined]


def run_index(args: argparse.Namespace) -> RunReport:
    if args.staged is not None and not (args.preview or args.dry_run):
        raise UsageError(
            "--staged needs --preview or --dry-run (staged artifacts are not uploaded)"
        )
    clean_stale_scratch()  # copies left by runs that were killed
    store = open_store(args.channel, s3_options(args))
    home = default_cache_home(store, args.cache_dir)
    try:
        if args.staged is not None:
            store = StagedOverlay(store, args.staged)
        return _run(store, home, args)
    finally:
        if hasattr(home, "close"):  # the bucket cache's local copies
            home.close()


def _run(store: ChannelStore, home: CacheHome, args: argparse.Namespace) -> RunReport:
    if args.no_shards and (args.repodata or args.prune_shards is not None):
        raise UsageError("--repodata and --prune-shards need shards; drop --no-shards")
    options = Options(
        subdirs=args.subdir,
        jobs=args.jobs,
        dry_run=args.dry_run,
        strict=args.strict,
        shards=not args.no_shards,
        repodata=args.repodata,
        prune_shards=args.prune_shards,
        preview=args.preview,
        patches=load_patches(args.patches, store) if args.patches else {},
        channel_patches=not args.no_channel_patches,
        verify=args.verify,
        max_removal_share=args.max_removal_share,
        allow_mass_removal=args.allow_mass_removal,
    )
    if options.read_only:
        scratch = ScratchCacheHome(home)
        try:
            return with_skipped(index_channel(store, scratch, options), store)
        finally:
            scratch.close()
    return with_skipped(index_channel(store, home, options), store)


def with_skipped(report: RunReport, store: ChannelStore) -> RunReport:
    """The files a local listing left out (names that are not UTF-8) added to
    their subdir's warnings, so the summary says which file and why."""
    lines: dict[str, set[str]] = {}
    for part in (store, getattr(store, "base", None), getattr(store, "staged", None)):
        for subdir, skipped in getattr(part, "skipped", {}).items():
            lines.setdefault(subdir, set()).update(skipped)
    for s in report.subdirs:
        s.warnings += sorted(lines.get(s.subdir, ()))
    return report


def write_outputs(report: RunReport, args: argparse.Namespace) -> str:
    markdown = to_markdown(report)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_bytes(report.to_json())
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(markdown, encoding="utf-8")
    return markdown


def has_problems(report: RunReport) -> bool:
    return any(s.unreadable or s.run_exports_unknown for s in report.subdirs)


def redact_report(report: RunReport) -> RunReport:
    """The report with credentials redacted from every message in it (in place).

    Messages (the channel, the run error, reasons, warnings, lints) may repeat
    an endpoint URL from an exception; filenames are the channel's own and are
    kept as they are.
    """
    report.channel = redact(report.channel)
    if report.error is not None:
        report.error = redact(report.error)
    for s in report.subdirs:
        for problem in (*s.unreadable, *s.run_exports_unknown):
            problem.reason = redact(problem.reason)
        for lint in s.lints:
            lint.message = redact(lint.message)
        s.warnings = [redact(w) for w in s.warnings]
    return report


ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def register_secrets(argv: Sequence[str] | None) -> None:
    """Register the credentials of every URL we may be given (arguments, boto3's
    endpoint variables) before anything could print them."""
    forget()
    texts = [*(sys.argv[1:] if argv is None else argv)]
    texts += [os.environ.get(name, "") for name in ENDPOINT_VARIABLES]
    for text in texts:
        if "://" in text:
            register_url(text)


class _sigterm_exits:  # a context manager, named for the `with` line
    """SIGTERM raises SystemExit(143) in the main thread for the run's duration.

    So `finally` blocks run: scratch copies of the cache are removed, the
    cache's open transaction is rolled back. (SIGKILL cannot be caught: the
    next run removes what such a run left, see `cachehome.clean_stale_scratch`.)
    """

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._exit)

    @staticmethod
    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def main(argv: Sequence[str] | None = None) -> int:
    register_secrets(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"run-exports-index: error: {one_line(exc)}", file=sys.stderr)
        return 2
    if args.command is None:
        build_parser().print_help(sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    logging.captureWarnings(True)  # library warnings through the same filter, one line each
    try:
        with _sigterm_exits():
            report = redact_report(run_index(args))
    except UsageError as exc:
        print(f"run-exports-index: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"run-exports-index: failed: {one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.verbose:
            print(guard_lines(traceback.format_exc()), file=sys.stderr, end="")
        print(
            f"run-exports-index: internal error: {type(exc).__name__}: {one_line(exc)} "
            "(run with --verbose for details)",
            file=sys.stderr,
        )
        return 1
    markdown = write_outputs(report, args)
    if not args.quiet:
        print(markdown)
    for subdir, why in report.refused.items():
        print(f"run-exports-index: {one_line(subdir)} {one_line(why)}", file=sys.stderr)
    if report.refused:
        return 1
    if args.strict and has_problems(report):
        print("run-exports-index: --strict: problems found (see the summary)", file=sys.stderr)
        return 1
    return 0
