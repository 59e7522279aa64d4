"""The `run-exports-index` command line.

Exit status: 0 success, 1 failed run (or problems found with --strict, or a
subdir not published by the mass-removal guard), 2 usage error; 143 when
stopped by SIGTERM (scratch copies are removed first). Errors are one line
naming what is wrong, never a traceback (pass --verbose to see one for an
internal error).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.arguments import build_parser, from_argv
from indexer.config import Config
from indexer.errors import RunError, UsageError
from indexer.pipeline import run
from indexer.redact import RedactingFilter, forget, redact, register_url
from indexer.report.markdown import to_markdown
from indexer.report.model import RunReport
from indexer.storage.open import open_store, s3_options

log = logging.getLogger("run-exports-index")


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


def write_outputs(report: RunReport, config: Config) -> str:
    """Write the JSON report and the Markdown summary where asked; return the Markdown."""
    markdown = to_markdown(report)
    if config.report:
        config.report.parent.mkdir(parents=True, exist_ok=True)
        config.report.write_bytes(report.to_json())
    if config.summary:
        config.summary.parent.mkdir(parents=True, exist_ok=True)
        config.summary.write_text(markdown, encoding="utf-8")
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
    """argv → Config → the pipeline → exit status (see the module doc)."""
    register_secrets(argv)
    try:
        config = from_argv(argv)
    except UsageError as exc:
        print(f"run-exports-index: error: {one_line(exc)}", file=sys.stderr)
        return 2
    if config is None:  # no command
        build_parser().print_help(sys.stderr)
        return 2
    if config.command == "subdirs":
        return print_subdirs(config)
    return run_config(config)


def channel_subdirs(config: Config) -> list[str]:
    """The channel's subdirs (only the listing of its top level is read), sorted.

    With `config.subdirs`, only those of them the channel has: a matrix then
    never gets a job for a subdir that is not there.
    """
    store = open_store(config.channel, s3_options(config))
    try:
        found = store.list_subdirs()
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    wanted = set(config.subdirs)
    return [name for name in found if not wanted or name in wanted]


def print_subdirs(config: Config) -> int:
    """`run-exports-index subdirs CHANNEL`: a JSON list on stdout; errors as for `index`."""
    try:
        names = channel_subdirs(config)
    except UsageError as exc:
        print(f"run-exports-index: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"run-exports-index: failed: {one_line(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(names))
    return 0


@dataclass(frozen=True)
class Executed:
    """A run as the CLI and the action see it: exit status, report (None: none made)."""

    status: int
    report: RunReport | None = None
    markdown: str = ""
    error: str | None = None  # the one-line reason a failed run gives (None: no failure)


def run_config(config: Config) -> int:
    """Run one Config with the CLI's logging, messages and exit status."""
    return execute(config).status


def execute(config: Config) -> Executed:
    """Run the pipeline for a Config: log, write the report and summary, decide the status."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if config.verbose else logging.INFO, handlers=[handler])
    logging.captureWarnings(True)  # library warnings through the same filter, one line each
    try:
        with _sigterm_exits():
            report = redact_report(run(config))
    except UsageError as exc:
        print(f"run-exports-index: error: {one_line(exc)}", file=sys.stderr)
        return failed(config, 2, one_line(exc))
    except RunError as exc:
        print(f"run-exports-index: failed: {one_line(exc)}", file=sys.stderr)
        return failed(config, 1, one_line(exc))
    except Exception as exc:
        if config.verbose:
            print(guard_lines(traceback.format_exc()), file=sys.stderr, end="")
        reason = f"internal error: {type(exc).__name__}: {one_line(exc)}"
        print(f"run-exports-index: {reason} (run with --verbose for details)", file=sys.stderr)
        return failed(config, 1, reason)
    markdown = write_outputs(report, config)
    if not config.quiet:
        print(markdown)
    for subdir, why in report.notices.items():
        print(f"run-exports-index: notice: {one_line(subdir)}: {one_line(why)}", file=sys.stderr)
    for subdir, why in report.refused.items():
        print(f"run-exports-index: {one_line(subdir)} {one_line(why)}", file=sys.stderr)
    if report.refused:
        return Executed(1, report, markdown)
    if config.strict and has_problems(report):
        print("run-exports-index: --strict: problems found (see the summary)", file=sys.stderr)
        count = sum(len(s.unreadable) + len(s.run_exports_unknown) for s in report.subdirs)
        why = f"--strict: {count} artifact(s) unreadable or with malformed run_exports"
        return Executed(1, report, markdown, why)
    return Executed(0, report, markdown)


def failed(config: Config, status: int, reason: str) -> Executed:
    """A run that stopped: its report says why (`error`, no subdirs), and is written
    where asked, so tools and the action read the same reason the log shows."""
    report = RunReport(channel=redact(config.channel), mode=config.mode.value, error=reason)
    try:
        markdown = write_outputs(report, config)
    except OSError as exc:  # the report's folder may be what failed
        log.warning("could not write the report: %s", exc)
        markdown = to_markdown(report)
    return Executed(status, report, markdown, reason)
