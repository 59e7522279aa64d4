"""The steps that end without an index report: a failed run, and `mode: plan`.

A failed run must say why where people look: one `::error` annotation with
the one-line reason (the S3 error code and operation, the option at fault,
named as the workflow's input), a job summary saying what failed, and the
outputs that still mean something (the report and summary paths). The
reason is the CLI's own line (`cli.one_line`: credentials redacted).

`mode: plan` lists the channel's subdirs (`run-exports-index subdirs`) as the
JSON output `subdirs`, for the `strategy.matrix` of the jobs that index.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from indexer import cli
from indexer.action import workflow
from indexer.action.settings import FLAG_INPUTS, Settings
from indexer.config import Config
from indexer.errors import RunError, UsageError
from indexer.report.markdown import MARKDOWN_TITLE, code, plain


@dataclass(frozen=True)
class Files:
    """Where the CLI writes, and how later steps of the job find it."""

    report: Path
    summary: Path
    shown_report: str  # the path given in the outputs
    shown_summary: str


def inputs_named(reason: str) -> list[str]:
    """The action inputs behind the CLI options a reason names (`--endpoint-url` →
    `endpoint-url`), so the log line points at the workflow's `with:`."""
    flags = re.findall(r"--[a-z][a-z-]*", reason)
    return sorted({FLAG_INPUTS[f] for f in flags if f in FLAG_INPUTS})


def fail(settings: Settings, files: Files, status: int, reason: str, markdown: str = "") -> int:
    """Report a failed run: one error annotation, a summary, the outputs it can set."""
    named = inputs_named(reason)
    hint = f" (action input: {', '.join(named)})" if named else ""
    workflow.error(f"{reason}{hint}", title="run-exports-index: failed")
    if not markdown:
        markdown = (
            f"## {MARKDOWN_TITLE}: {code(settings.channel)}\n\n"
            f"> [!CAUTION]\n> Run failed: {plain(reason)}\n"
        )
    if named:
        markdown += f"\nInputs to check: {', '.join(code(n) for n in named)}.\n"
    _write(files, markdown)
    outputs = {"summary": files.shown_summary}
    if files.report.exists():
        outputs["report"] = files.shown_report
    workflow.write_outputs(settings.context.output_path, outputs)
    workflow.write_summary(settings.context.summary_path, markdown, settings.context.run_url)
    return status


def plan(settings: Settings, config: Config | None, refusal: Exception | None, files: Files) -> int:
    """`mode: plan`: the channel's subdirs as the JSON output `subdirs`."""
    for stale in (files.report, files.summary):
        stale.unlink(missing_ok=True)
    if config is None:
        return fail(settings, files, 2, cli.one_line(refusal))
    config = replace(config, command="subdirs")
    argv = ["subdirs", settings.channel, *[f"--subdir={s}" for s in settings.subdirs]]
    for flag, value in (
        ("--endpoint-url", settings.endpoint_url),
        ("--region", settings.region),
        ("--addressing-style", settings.addressing_style),
    ):
        argv += [flag, value] if value else []
    with workflow.group(f"run-exports-index: plan {settings.channel}"):
        print(f"run-exports-index {cli.one_line(shlex.join(argv))}", flush=True)
        try:
            names = cli.channel_subdirs(config)
        except UsageError as exc:
            return fail(settings, files, 2, cli.one_line(exc))
        except RunError as exc:
            return fail(settings, files, 1, cli.one_line(exc))
        except Exception as exc:  # one line, as the CLI words internal errors
            return fail(settings, files, 1, f"internal error: {type(exc).__name__}: {exc}")
        print(json.dumps(names), flush=True)
    listed = ", ".join(code(n) for n in names) if names else "none"
    markdown = (
        f"## {MARKDOWN_TITLE}: {code(settings.channel)}\n\n"
        f"Mode **plan** · {len(names)} subdir(s): {listed}\n"
    )
    if not names:
        markdown += (
            "\nNo subdirs: guard the matrix job with "
            "`if: needs.plan.outputs.subdirs != '[]'` (an empty matrix fails).\n"
        )
    _write(files, markdown)
    workflow.write_outputs(
        settings.context.output_path,
        {"subdirs": json.dumps(names), "summary": files.shown_summary},
    )
    workflow.write_summary(settings.context.summary_path, markdown, settings.context.run_url)
    return 0


def _write(files: Files, markdown: str) -> None:
    with contextlib.suppress(OSError):  # a courtesy; the job summary still gets it
        files.summary.write_text(markdown, encoding="utf-8")
