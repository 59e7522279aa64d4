"""The sticky pull-request comment: one per pull request and header, edited in place.

A hidden marker `<!-- run-exports-index:<header> -->` at the start of the body
finds our comment again on the next run, so a pull request that is pushed to
ten times has one comment that always shows the latest report. `comment-header`
keeps several of them apart (e.g. one per channel or per matrix job).

Commenting is a courtesy on top of the job summary: when it fails (a fork's
read-only token, GitHub down) the step warns and stays green, because the
index itself has already been written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from github import Auth, Github, GithubException, GithubRetry

from indexer.action.settings import PULL_REQUEST_EVENTS, Settings
from indexer.action.truncate import truncate_markdown
from indexer.redact import redact

log = logging.getLogger(__name__)

COMMENT_LIMIT = 65_536  # characters GitHub accepts in a comment body
MARKER = "<!-- run-exports-index:{header} -->"


class Retry(GithubRetry):
    """GitHub's retry rules plus PATCH, without repeating a POST after a 5xx.

    PyGithub's default retries GET and POST only, so a 502 while editing the
    comment would fail the edit. A POST that got a 5xx may still have created
    the comment, and repeating it would duplicate it; a rate-limited POST (403
    or 429) was refused outright, so repeating that one is safe.
    """

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("total", 5)
        kwargs.setdefault("backoff_factor", 1.0)
        kwargs.setdefault("status_forcelist", [429, 500, 502, 503, 504])
        kwargs.setdefault("allowed_methods", {"GET", "POST", "PATCH"})
        kwargs.setdefault("respect_retry_after_header", True)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST" and status_code >= 500:
            return False
        return super().is_retry(method, status_code, has_retry_after)


@dataclass(frozen=True)
class Outcome:
    """What happened to the comment: created, updated, skipped or failed (with why)."""

    action: str
    detail: str = ""
    url: str = ""


def marker(header: str) -> str:
    return MARKER.format(header=header)


def render(markdown: str, header: str, run_url: str) -> str:
    """The comment body: marker, report and a link to the run, under the size limit."""
    footer = f"\n---\n<sub>[Workflow run]({run_url})</sub>\n" if run_url else ""
    body = truncate_markdown(
        markdown,
        COMMENT_LIMIT - 1 - len(marker(header)) - 1 - len(footer),
        note="The report was too long for a comment and was cut here.",
        link=run_url,
    )
    return f"{marker(header)}\n{body}{footer}"


def pull_request_number(event_name: str, event_path: str) -> int | None:
    """The pull request of a `pull_request`/`pull_request_target` event, from its payload."""
    if not event_path or not Path(event_path).is_file():
        return None
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pull = event.get("pull_request") or {}
    if isinstance(pull.get("number"), int):
        return pull["number"]
    if event_name in PULL_REQUEST_EVENTS and isinstance(event.get("number"), int):
        return event["number"]
    issue = event.get("issue") or {}  # issue_comment on a pull request
    if "pull_request" in issue and isinstance(issue.get("number"), int):
        return issue["number"]
    return None


def connect(token: str, api_url: str) -> Github:
    """A client for the REST API at `api_url` (GitHub.com or GHES) with our retry rules."""
    return Github(auth=Auth.Token(token), base_url=api_url.rstrip("/"), retry=Retry(), lazy=True)


def upsert(gh: Github, repository: str, number: int, body: str) -> Outcome:
    """Edit the comment that starts with the body's marker, or create it."""
    head = body.split("\n", 1)[0]
    issue = gh.get_repo(repository, lazy=True).get_issue(number)
    me = _Me(gh)
    for existing in issue.get_comments():
        if (existing.body or "").startswith(head) and me.wrote(existing):
            existing.edit(body)
            return Outcome("updated", f"comment {existing.id} on #{number}", existing.html_url)
    created = issue.create_comment(body)
    return Outcome("created", f"comment {created.id} on #{number}", created.html_url)


class _Me:
    """Whether a comment is ours: anyone can paste our marker into a comment.

    A bot's comment is ours (Actions tokens comment as github-actions[bot]);
    a person's only when the token is that person's (a PAT), asked once.
    """

    def __init__(self, gh: Github) -> None:
        self.gh = gh
        self._login: str | bool | None = False  # False: not asked yet

    def wrote(self, comment: Any) -> bool:
        user = comment.user
        if user is None:
            return False
        if user.type == "Bot":
            return True
        if self._login is False:
            try:
                self._login = self.gh.get_user().login
            except GithubException:  # an Actions token may not read /user
                self._login = None
        return self._login is not None and user.login == self._login


def targets(gh: Github, settings: Settings) -> list[int]:
    """The pull requests to comment on: the event's, or (comment: always on a push)
    the ones the pushed commit belongs to."""
    ctx = settings.context
    number = pull_request_number(ctx.event_name, ctx.event_path)
    if number is not None:
        return [number]
    if settings.comment == "always" and ctx.sha:
        commit = gh.get_repo(ctx.repository, lazy=True).get_commit(ctx.sha)
        return [pull.number for pull in commit.get_pulls()]
    return []


def post(settings: Settings, markdown: str) -> Outcome:
    """Create or update the sticky comment(s) for this run; never raises for GitHub errors."""
    ctx = settings.context
    if not settings.wants_comment:
        return Outcome("skipped", f"comment: {settings.comment} on a {ctx.event_name} event")
    if not settings.github_token:
        return Outcome("failed", "no github-token")
    if not ctx.repository:
        return Outcome("failed", "GITHUB_REPOSITORY is not set")
    body = render(markdown, settings.comment_header, ctx.run_url)
    gh = connect(settings.github_token, ctx.api_url)
    try:
        numbers = targets(gh, settings)
        if not numbers:
            return Outcome("skipped", f"no pull request found for this {ctx.event_name} event")
        outcomes = [upsert(gh, ctx.repository, number, body) for number in numbers]
    except GithubException as exc:
        return Outcome("failed", redact(_explain(exc)))
    except Exception as exc:  # network errors after retries: report, stay green
        return Outcome("failed", redact(f"{type(exc).__name__}: {exc}"))
    finally:
        gh.close()
    return Outcome(
        outcomes[0].action,
        "; ".join(o.detail for o in outcomes),
        outcomes[0].url,
    )


def _explain(exc: GithubException) -> str:
    message = exc.data.get("message", "") if isinstance(exc.data, dict) else str(exc.data)
    if exc.status in (401, 403, 404):
        return (
            f"GitHub answered {exc.status} ({message}): the token cannot write comments. "
            "Pull requests from forks get a read-only token; otherwise grant the job "
            "permissions: pull-requests: write"
        )
    return f"GitHub answered {exc.status}: {message}"
