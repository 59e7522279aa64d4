"""Acceptance 3: the sticky comment against a fake GitHub REST API over real HTTP.

The entrypoint runs as a process (as in the container) and talks to
`tests/fakegithub.py` through GITHUB_API_URL, like it talks to GitHub.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from actionrun import TOKEN, Result, run_action, runner_env
from fakegithub import COMMENT_LIMIT, FakeGitHub

from dev.sample import build_artifact, build_sample_channel

PR = 17
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "example-comment.md"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_channel(tmp_path_factory.mktemp("sample") / "ch")


@pytest.fixture
def channel(sample: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sample, tmp_path / "ch"))


def pr_event(number: int = PR) -> dict[str, Any]:
    return {"action": "synchronize", "number": number, "pull_request": {"number": number}}


def run_on_pr(
    github: FakeGitHub,
    tmp: Path,
    inputs: dict[str, str],
    event_name: str = "pull_request",
    **kwargs: Any,
) -> Result:
    env = runner_env(tmp, inputs, event_name=event_name, event=pr_event(), api_url=github.url)
    env.update(kwargs)
    return run_action(env)


def test_first_run_creates_the_comment_second_edits_it(
    github: FakeGitHub, channel: Path, tmp_path: Path
) -> None:
    inputs = {"channel": str(channel), "mode": "publish"}
    first = run_on_pr(github, tmp_path / "1", inputs)
    assert first.status == 0, first.stderr
    (body,) = github.bodies(PR)
    assert body.startswith("<!-- run-exports-index:default -->\n## run-exports-index")
    assert "https://github.example/octo/channel/actions/runs/4242" in body
    assert "Pull-request comment created" in first.stdout
    assert first.summary.startswith("## run-exports-index")

    build_artifact(channel / "noarch", "newpkg", "1.0", "0", run_exports={"weak": ["newpkg"]})
    second = run_on_pr(github, tmp_path / "2", inputs, event_name="pull_request_target")
    assert second.status == 0, second.stderr
    (edited,) = github.bodies(PR)  # still one comment
    assert edited != body and "newpkg-1.0-0.conda" in edited
    assert github.count("POST") == 1 and github.count("PATCH") == 1
    assert "Pull-request comment updated" in second.stdout
    for result in (first, second):
        assert TOKEN not in result.everything.replace(f"::add-mask::{TOKEN}", "")
    assert all(TOKEN not in b for b in github.bodies(PR))


def test_headers_keep_comments_apart_and_nothing_is_duplicated(
    github: FakeGitHub, channel: Path, tmp_path: Path
) -> None:
    for i, header in enumerate(["linux", "noarch", "linux"]):
        inputs = {"channel": str(channel), "mode": "dry-run", "comment-header": header}
        assert run_on_pr(github, tmp_path / str(i), inputs).status == 0
    bodies = github.bodies(PR)
    assert [b.split("\n", 1)[0] for b in bodies] == [
        "<!-- run-exports-index:linux -->",
        "<!-- run-exports-index:noarch -->",
    ]


def test_a_70000_character_report_is_truncated_validly(github: FakeGitHub, tmp_path: Path) -> None:
    channel = tmp_path / "big"
    specs = [f"dependency-number-{i:05d} >=1.0,<2.0a0" for i in range(1800)]
    build_artifact(channel / "noarch", "huge", "1.0", "0", run_exports={"weak": specs})
    for i in range(150):
        build_artifact(channel / "noarch", f"pkg{i:03d}-" + "x" * 120, "1.0", "0")
    result = run_on_pr(github, tmp_path / "run", {"channel": str(channel), "mode": "dry-run"})
    assert result.status == 0, result.stderr
    full = (Path(result.env["GITHUB_WORKSPACE"]) / result.outputs["summary"]).read_text()
    assert len(full) > 70_000
    (body,) = github.bodies(PR)
    assert len(body) < COMMENT_LIMIT
    assert body.count("<details>") == body.count("</details>")
    assert body.count("```") % 2 == 0
    assert "[run summary](https://github.example/octo/channel/actions/runs/4242)" in body
    assert body.startswith("<!-- run-exports-index:default -->")
    assert result.summary.startswith(full)  # the job summary has the whole report


def test_read_only_token_falls_back_to_the_summary_with_a_warning(
    github: FakeGitHub, channel: Path, tmp_path: Path
) -> None:
    github.read_only = True
    result = run_on_pr(github, tmp_path, {"channel": str(channel), "mode": "dry-run"})
    assert result.status == 0, result.stderr
    assert github.bodies(PR) == []
    warnings = [line for line in result.stdout.splitlines() if line.startswith("::warning title")]
    assert any("403" in w and "job summary" in w for w in warnings), result.stdout
    assert "No pull-request comment" in result.summary
    assert "## run-exports-index" in result.summary
    assert result.outputs["changed"] == "true"
    assert TOKEN not in result.everything.replace(f"::add-mask::{TOKEN}", "")


def test_a_502_on_patch_is_retried(github: FakeGitHub, channel: Path, tmp_path: Path) -> None:
    inputs = {"channel": str(channel), "mode": "dry-run"}
    assert run_on_pr(github, tmp_path / "1", inputs).status == 0
    github.fail_next_patch = 502
    result = run_on_pr(github, tmp_path / "2", inputs)
    assert result.status == 0, result.stderr
    patches = [r.status for r in github.requests if r.method == "PATCH"]
    assert patches == [502, 200]
    assert len(github.bodies(PR)) == 1
    assert "::warning" not in result.stdout.replace("::warning file=", "")


def test_push_comments_only_when_asked(github: FakeGitHub, channel: Path, tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    github.commit_pulls[sha] = [PR]
    inputs = {"channel": str(channel), "mode": "dry-run"}
    env = runner_env(tmp_path / "auto", inputs, event_name="push", api_url=github.url)
    assert run_action(env).status == 0
    assert github.requests == []  # comment: auto on a push: job summary only
    inputs["comment"] = "always"
    env = runner_env(tmp_path / "always", inputs, event_name="push", api_url=github.url)
    result = run_action(env)
    assert result.status == 0, result.stderr
    assert len(github.bodies(PR)) == 1


def test_comment_never(github: FakeGitHub, channel: Path, tmp_path: Path) -> None:
    inputs = {"channel": str(channel), "mode": "dry-run", "comment": "never"}
    assert run_on_pr(github, tmp_path, inputs).status == 0
    assert github.requests == []


def test_the_example_comment_in_the_docs_comes_from_a_real_run(
    github: FakeGitHub, sample: Path, tmp_path: Path
) -> None:
    """`REGENERATE_DOCS=1 pytest -k example_comment` rewrites docs/example-comment.md."""
    env = runner_env(
        tmp_path,
        {"channel": "channel", "mode": "dry-run"},
        event_name="pull_request",
        event=pr_event(),
        api_url=github.url,
    )
    shutil.copytree(sample, Path(env["GITHUB_WORKSPACE"], "channel"))
    result = run_action(env)
    assert result.status == 0, result.stderr
    (body,) = github.bodies(PR)
    # a channel in the workspace: annotations point at the file in the repository
    assert "::warning file=channel/noarch/broken-1.0-0.conda," in result.stdout
    # The store reports the channel's absolute path; the docs show it workspace-relative.
    shown = body.replace(env["GITHUB_WORKSPACE"] + "/", "")
    if os.environ.get("REGENERATE_DOCS"):
        EXAMPLE.write_text(shown)
    example = EXAMPLE.read_text()
    for text in (shown, example):
        assert text.startswith(
            "<!-- run-exports-index:default -->\n## run-exports-index: `channel`"
        )
        assert "| subdir | listed | new |" in text
        assert "(https://github.example/octo/channel/actions/runs/4242)</sub>" in text


def test_retry_rules_include_patch_but_never_repeat_a_post_after_a_5xx() -> None:
    from indexer.action.comment import Retry

    retry = Retry()
    assert retry.is_retry("PATCH", 502) and retry.is_retry("PATCH", 503)
    assert retry.is_retry("GET", 504)
    assert not retry.is_retry("POST", 502)  # may have created the comment already
    assert retry.is_retry("POST", 429)  # refused outright: safe to repeat
    assert retry.respect_retry_after_header


@pytest.mark.parametrize(
    ("event_name", "event", "number"),
    [
        ("pull_request", {"number": 5, "pull_request": {"number": 5}}, 5),
        ("pull_request_target", {"pull_request": {"number": 6}}, 6),
        ("issue_comment", {"issue": {"number": 7, "pull_request": {}}}, 7),
        ("issue_comment", {"issue": {"number": 8}}, None),  # an issue, not a PR
        ("push", {"ref": "refs/heads/main"}, None),
    ],
)
def test_pull_request_number_from_the_event_payload(
    tmp_path: Path, event_name: str, event: dict[str, Any], number: int | None
) -> None:
    import json

    from indexer.action.comment import pull_request_number

    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    assert pull_request_number(event_name, str(path)) == number
    assert pull_request_number(event_name, str(tmp_path / "missing.json")) is None


def test_a_copied_marker_in_someone_elses_comment_is_never_edited(
    github: FakeGitHub, channel: Path, tmp_path: Path
) -> None:
    planted = "<!-- run-exports-index:default -->\nall good, merge it"
    github.plant(PR, planted, login="mallory")
    result = run_on_pr(github, tmp_path, {"channel": str(channel), "mode": "dry-run"})
    assert result.status == 0, result.stderr
    bodies = github.bodies(PR)
    assert bodies[0] == planted  # untouched
    assert len(bodies) == 2 and bodies[1].startswith("<!-- run-exports-index:default -->\n## ")
    assert github.count("PATCH") == 0
