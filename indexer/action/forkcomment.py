"""`mode: comment`: the sticky comment of a fork's preview, posted from its report artifact.

A pull request from a fork runs with a read-only token (it cannot comment)
and without the repository's secrets, and running the fork's code under
`pull_request_target` would hand it both. So the preview job only writes the
job summary and uploads its report (and `pull-request.json`, which names the
pull request) as an artifact; a second workflow, `on: workflow_run`, runs in
the base repository with a token that may comment, checks out nothing, has
no channel credentials, and calls this mode with the downloaded report.

Everything in the artifact was written by a job that ran the fork's workflow
file, so all of it is untrusted: the report is read with a size cap, checked
field by field (`report.load`) and rendered by our Markdown renderer as any
report is, never pasted. The pull request number is taken only when it is an
integer and GitHub says that pull request's head is the commit the
`workflow_run` ran on (from the event payload, which GitHub writes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from github import GithubException

from indexer.action import comment, workflow
from indexer.action.settings import PULL_REQUEST_EVENTS, Settings
from indexer.redact import redact
from indexer.report.load import report_from_dict
from indexer.report.markdown import plain, to_markdown

PULL_REQUEST_FILE = "pull-request.json"  # beside report.json in the preview's report folder
MAX_REPORT_BYTES = 16 << 20
MAX_SMALL_BYTES = 64 << 10  # the event payload's parts we read, pull-request.json
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
MAX_PR_NUMBER = 2**31 - 1


class Refused(ValueError):
    """The artifact or the event cannot be used; the message says why (one line)."""


def write_pull_request_file(settings: Settings, folder: Path) -> None:
    """In a pull request's preview: name the pull request for the workflow_run job.

    The head SHA is written too, so the commenting job can tell a stale
    artifact; it is checked there against GitHub, never trusted.
    """
    ctx = settings.context
    target = folder / PULL_REQUEST_FILE
    target.unlink(missing_ok=True)  # a persistent workspace keeps old runs' files
    number = comment.pull_request_number(ctx.event_name, ctx.event_path)
    if not ctx.is_pull_request or number is None:
        return
    try:
        event = _json_file(Path(ctx.event_path), MAX_REPORT_BYTES)
    except Refused:
        event = None
    pull = event.get("pull_request") if isinstance(event, dict) else None
    head = pull.get("head") if isinstance(pull, dict) else None
    data = {"number": number, "head_sha": head.get("sha") if isinstance(head, dict) else None}
    target.write_text(json.dumps(data) + "\n", encoding="utf-8")


def main(settings: Settings) -> int:
    """Post or edit the sticky comment from a preview's report; 0 also when it is skipped."""
    ctx = settings.context
    try:
        run = _workflow_run(ctx.event_name, ctx.event_path)
        if run is None:
            print("No pull-request comment: the preview run was not a pull request's")
            return 0
        head_sha, candidates = run
        path = _report_path(settings)
        report = report_from_dict(_json_file(path, MAX_REPORT_BYTES, "the report"))
        candidates += _artifact_numbers(path.parent / PULL_REQUEST_FILE)
    except (Refused, ValueError) as exc:
        workflow.error(str(exc), title="run-exports-index: comment not posted")
        return 1
    markdown = to_markdown(report)
    if not settings.github_token:
        workflow.error("no github-token", title="run-exports-index: comment not posted")
        return 1
    gh = comment.connect(settings.github_token, ctx.api_url)
    try:
        number = _verified(gh, ctx.repository, head_sha, candidates)
        if number is None:
            why = f"no open pull request of {ctx.repository} has head {head_sha}"
            workflow.error(why, title="run-exports-index: comment not posted")
            return 1
        body = comment.render(markdown, settings.comment_header, ctx.run_url)
        outcome = comment.upsert(gh, ctx.repository, number, body)
    except GithubException as exc:
        reason = redact(comment._explain(exc))
        workflow.error(reason, title="run-exports-index: comment not posted")
        return 1
    finally:
        gh.close()
    print(f"Pull-request comment {outcome.action}: {redact(outcome.url or outcome.detail)}")
    workflow.write_summary(
        ctx.summary_path,
        f"run-exports-index: preview of {plain(report.channel)} {outcome.action} as the "
        f"comment on #{number}.\n",
    )
    return 0


def _workflow_run(event_name: str, event_path: str) -> tuple[str, list[int]] | None:
    """(head SHA, pull request numbers) of the `workflow_run` event; None: not a PR's run."""
    if event_name != "workflow_run":
        raise Refused(f"mode: comment runs on workflow_run events, not {event_name or 'none'}")
    event = _json_file(Path(event_path), MAX_REPORT_BYTES, "the event payload")
    run = event.get("workflow_run") if isinstance(event, dict) else None
    if not isinstance(run, dict):
        raise Refused("the event payload has no workflow_run")
    if run.get("event") not in PULL_REQUEST_EVENTS:
        return None
    head_sha = run.get("head_sha")
    if not isinstance(head_sha, str) or not SHA_RE.match(head_sha):
        raise Refused("the workflow_run has no valid head_sha")
    numbers = [  # GitHub fills this for pull requests within the repository (not for forks)
        p["number"]
        for p in run.get("pull_requests") or []
        if isinstance(p, dict) and _valid_number(p.get("number"))
    ]
    return head_sha, numbers


def _report_path(settings: Settings) -> Path:
    if not settings.report:
        raise Refused("input 'report' is required with mode: comment (the report JSON)")
    workspace = settings.context.workspace
    path = Path(workspace, settings.report) if workspace else Path(settings.report)
    if not path.is_file():
        raise Refused(f"input 'report': no file {settings.report!r}")
    return path


def _artifact_numbers(path: Path) -> list[int]:
    """The pull request the artifact names (a fork's: GitHub's payload lists none)."""
    if not path.is_file():
        return []
    data = _json_file(path, MAX_SMALL_BYTES, PULL_REQUEST_FILE)
    number = data.get("number") if isinstance(data, dict) else None
    return [number] if _valid_number(number) else []


def _valid_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_PR_NUMBER


def _verified(gh: Any, repository: str, head_sha: str, candidates: list[int]) -> int | None:
    """The first candidate that is an open pull request of this repository at `head_sha`."""
    repo = gh.get_repo(repository, lazy=True)
    for number in dict.fromkeys(candidates):
        try:
            pull = repo.get_pull(number)
        except GithubException as exc:
            if exc.status == 404:
                continue
            raise
        if pull.state == "open" and pull.head.sha == head_sha:
            return number
    return None


def _json_file(path: Path, limit: int, what: str = "") -> Any:
    """A JSON file of at most `limit` bytes, parsed as strictly as conda parses JSON."""
    what = what or str(path)
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise Refused(f"{what} cannot be read: {exc.strerror}") from None
    if len(data) > limit:
        raise Refused(f"{what} is over {limit:,} bytes")
    try:
        return json.loads(data, parse_constant=_reject)
    except (ValueError, RecursionError) as exc:
        raise Refused(f"{what} is not valid JSON ({str(exc)[:100]})") from None


def _reject(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
