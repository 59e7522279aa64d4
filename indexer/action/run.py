"""One action step: settings → Config → the pipeline → outputs, annotations, summary, comment.

The inputs become the same frozen `Config` the command line builds
(`settings.to_config`), run in-process through `indexer.cli.execute`, so the
action and the command line can never disagree about what a setting does.
This module only turns the run's report into what GitHub shows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from indexer import cli
from indexer.action import comment, forkcomment, workflow
from indexer.action.failure import Files, fail, plan
from indexer.action.ownership import give_back
from indexer.action.settings import Settings, SettingsError, from_env, to_argv, to_config
from indexer.errors import UsageError
from indexer.redact import redact, register_url
from indexer.report.markdown import plain
from indexer.storage.s3 import has_credentials

REPORT_DIR = ".run-exports-index-report"


def report_files(settings: Settings) -> Files:
    """Files in the workspace when there is one, else under RUNNER_TEMP or a temp dir.

    A Docker action sees the workspace at /github/workspace, mounted from the
    host's working directory, while RUNNER_TEMP names a host path that older
    runners do not mount at all. So the outputs name workspace-relative paths,
    which later steps resolve from their default working directory.
    """
    ctx = settings.context
    step = re.sub(r"[^A-Za-z0-9._-]+", "_", ctx.step or "run") or "run"
    if ctx.workspace and Path(ctx.workspace).is_dir():
        folder = Path(ctx.workspace, REPORT_DIR, step)
    elif ctx.runner_temp and Path(ctx.runner_temp).is_dir():
        folder = Path(ctx.runner_temp, "run-exports-index", step)
    else:
        folder = Path(tempfile.mkdtemp(prefix="run-exports-index-"))
    folder.mkdir(parents=True, exist_ok=True)
    report, summary = folder / "report.json", folder / "summary.md"

    def shown(path: Path) -> str:
        if ctx.workspace and path.is_relative_to(ctx.workspace):
            return str(path.relative_to(ctx.workspace))
        return str(path)

    return Files(report, summary, shown(report), shown(summary))


def outputs(report: Mapping[str, Any], files: Files) -> dict[str, str]:
    """The step outputs declared in action.yml, from the JSON report."""
    totals = report.get("totals", {})
    uploaded = list(report.get("uploaded", []))
    return {
        "changed": "true" if uploaded else "false",
        "artifacts-new": str(totals.get("new", 0)),
        "artifacts-removed": str(totals.get("removed", 0)),
        "artifacts-unreadable": str(totals.get("unreadable", 0)),
        "uploaded": json.dumps(uploaded),
        "report": files.shown_report,
        "summary": files.shown_summary,
        "artifacts-changed": str(totals.get("changed", 0)),
        "lints": str(sum(len(s.get("lints", [])) for s in report.get("subdirs", {}).values())),
        "subdirs": json.dumps(sorted(report.get("subdirs", {}))),
    }


def annotate(report: Mapping[str, Any], channel: str, strict: bool = False) -> None:
    """One warning annotation per problem (GitHub shows the first 10 of a step).

    Lints come first (what a reviewer must act on), then artifacts whose
    run_exports are malformed, then unreadable artifacts. With `strict`
    (fail-on-error) the artifacts that fail the step are errors instead.
    """
    found: list[tuple[str, str, str]] = []  # (subdir/filename, title, message)
    offending: list[tuple[str, str, str]] = []
    for kind, title, text in (
        ("lints", "lint", lambda p: f"{p['kind']}: {p['message']}"),
        ("run_exports_unknown", "malformed run_exports", lambda p: p["reason"]),
        ("unreadable", "unreadable artifact, left out of the index", lambda p: p["reason"]),
    ):
        for subdir, data in sorted(report.get("subdirs", {}).items()):
            entries = data.get(kind) if kind == "lints" else data.get("artifacts", {}).get(kind)
            for entry in entries or []:
                into = offending if strict and kind != "lints" else found
                into.append((f"{subdir}/{entry['filename']}", title, text(entry)))
    for level, items in ((workflow.error, offending), (workflow.warning, found)):
        for where, title, message in items[: workflow.ANNOTATIONS_SHOWN]:
            level(
                f"{title}: {message}",
                file=f"{channel.rstrip('/')}/{where}",
                title=f"run-exports-index: {where}",
            )
        if len(items) > workflow.ANNOTATIONS_SHOWN:
            level(
                f"{len(items) - workflow.ANNOTATIONS_SHOWN} more problems; see the job summary",
                title="run-exports-index",
            )


def resolve_unsigned(settings: Settings) -> Settings:
    """`unsigned: auto` decided: unsigned reads for an S3 preview without credentials.

    A fork's pull request gets no secrets and no OIDC token; its preview of a
    public channel then reads the bucket anonymously instead of failing. Any
    other run keeps signing (and fails as before when it has no credentials).
    """
    if settings.unsigned != "auto":
        return settings
    anonymous = (
        settings.mode == "preview"
        and settings.channel.startswith("s3://")
        and not has_credentials()
    )
    if anonymous:
        workflow.command(
            "notice",
            "no AWS credentials (a fork's pull request?): reading the channel unsigned, "
            "as an anonymous reader of a public bucket",
            title="run-exports-index: unsigned reads",
        )
    return replace(settings, unsigned="true" if anonymous else "false")


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the step; the files it leaves in the workspace go to the workspace's owner."""
    env = os.environ if env is None else env
    started = time.time()
    try:
        return _main(env)
    finally:
        workspace = env.get("GITHUB_WORKSPACE", "")
        give_back(workspace, _written(env, workspace), started)


def _written(env: Mapping[str, str], workspace: str) -> list[Path]:
    """What this step may have written in the workspace: the report folder, a local
    channel's outputs (its subdir folders' new files) and a cache folder."""
    roots = [Path(workspace, REPORT_DIR)] if workspace else []
    channel = env.get("INPUT_CHANNEL", "").strip()
    if workspace and channel and "://" not in channel:
        folder = Path(workspace, channel)
        roots += [folder / ".run-exports-index", *_subdir_folders(folder)]
    cache = env.get("INPUT_CACHE", "").strip()
    if workspace and cache and "://" not in cache:
        roots.append(Path(workspace, cache))
    return roots


def _subdir_folders(channel: Path) -> list[Path]:
    from indexer.model import is_subdir_name

    try:
        return [p for p in channel.iterdir() if p.is_dir() and is_subdir_name(p.name)]
    except OSError:
        return []


def _main(env: Mapping[str, str]) -> int:
    """Run the step; the exit status is the CLI's (comment failures never fail it)."""
    try:
        settings = from_env(env)
    except SettingsError as exc:
        workflow.error(str(exc), title="run-exports-index: invalid input")
        return 2
    if settings.github_token:
        workflow.add_mask(settings.github_token)
    for secret in register_url(settings.endpoint_url):  # the runner hides them too
        workflow.add_mask(secret)
    if settings.mode == "comment":  # the fork workflow's workflow_run job: no channel at all
        return forkcomment.main(settings)
    settings = resolve_unsigned(settings)
    ctx = settings.context
    files = report_files(settings)
    refusal: UsageError | None = None
    try:
        config = to_config(settings, files.report, files.summary)
    except SettingsError as exc:
        workflow.error(str(exc), title="run-exports-index: invalid input")
        return 2
    except UsageError as exc:  # settings that do not go together
        config, refusal = None, exc
    if settings.mode == "plan":
        return plan(settings, config, refusal, files)
    argv = to_argv(settings, files.report, files.summary)
    for stale in (files.report, files.summary):  # a persistent workspace keeps old runs' files
        stale.unlink(missing_ok=True)
    with workflow.group(f"run-exports-index: {settings.mode} {settings.channel}"):
        # one line, credentials redacted: inputs may hold newlines or an endpoint's password
        print(f"run-exports-index {cli.one_line(shlex.join(argv))}", flush=True)
        if config is None:
            print(f"run-exports-index: error: {cli.one_line(refusal)}", file=sys.stderr)
            executed = cli.Executed(2, error=cli.one_line(refusal))
        else:
            executed = cli.execute(config)
    status = executed.status
    if executed.report is None or (executed.error and not executed.report.subdirs):
        reason = executed.error or f"stopped (exit status {status}) without a report; see the log"
        return fail(settings, files, status or 1, reason, executed.markdown)
    report = executed.report.to_dict()  # the JSON report's shape, as later steps read it
    markdown = executed.markdown
    if executed.error:  # --strict: the reason, then the offending artifacts
        workflow.error(executed.error, title="run-exports-index: failed")
    for subdir, why in sorted(report.get("notices", {}).items()):
        workflow.notice(f"{subdir}: {why}", title="run-exports-index: nothing to index")
    annotate(report, settings.channel, strict=bool(executed.error))
    for subdir, why in sorted(report.get("refused", {}).items()):  # the mass-removal guard
        workflow.error(f"{subdir}: {why}", title="run-exports-index: subdir not published")
    workflow.write_outputs(ctx.output_path, outputs(report, files))
    forkcomment.write_pull_request_file(settings, files.report.parent)  # for workflow_run
    with workflow.group("Report"), workflow.stop_commands():
        print(markdown, flush=True)

    outcome = comment.post(settings, markdown)
    if outcome.action == "failed":
        workflow.warning(
            f"Could not comment on the pull request: {outcome.detail}. "
            "The report is in the job summary.",
            title="run-exports-index: no comment",
        )
        markdown += (
            f"\n> [!WARNING]\n> No pull-request comment: {plain(outcome.detail)}. "
            "This summary is the report.\n"
        )
    elif outcome.action in ("created", "updated"):
        print(f"Pull-request comment {outcome.action}: {redact(outcome.url or outcome.detail)}")
    else:
        print(f"No pull-request comment: {redact(outcome.detail)}")
    workflow.write_summary(ctx.summary_path, markdown, ctx.run_url)
    return status
