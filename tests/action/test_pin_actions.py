"""Issue 16: third-party actions pinned by commit SHA, and a check that nothing is left.

`dev/pin_actions.py` is run as a maintainer would, against a tiny stand-in for
the GitHub API on 127.0.0.1 (real HTTP, `GET /repos/{owner}/{repo}/commits/{ref}`),
and against a real git repository for `--git`. The repository's own workflows
are checked with `--check`, which needs no network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dev import pin_actions

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ghp_pin-test-token"
CHECKOUT = "a" * 40
SETUP_PYTHON = "b" * 40
CACHE = "c" * 40
BUILD_PUSH = "d" * 40
REUSABLE = "e" * 40

FIXTURE = """\
name: fixture
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          persist-credentials: false
      - uses: "actions/setup-python@v5"  # the interpreter
      - name: a sub-path action
        uses: actions/cache/restore@v4.2.0
      - uses: docker/build-push-action@{build_push} # v6
      - uses: ./
      - uses: docker://alpine@sha256:{digest}
      - uses: org/run-exports-index@v1
  reuse:
    uses: octo/workflows/.github/workflows/build.yml@main
""".replace("{build_push}", BUILD_PUSH).replace("{digest}", "0" * 64)

PINNED = f"""\
name: fixture
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@{CHECKOUT} # v4
        with:
          persist-credentials: false
      - uses: "actions/setup-python@{SETUP_PYTHON}" # v5 the interpreter
      - name: a sub-path action
        uses: actions/cache/restore@{CACHE} # v4.2.0
      - uses: docker/build-push-action@{BUILD_PUSH} # v6
      - uses: ./
      - uses: docker://alpine@sha256:{"0" * 64}
      - uses: org/run-exports-index@v1
  reuse:
    uses: octo/workflows/.github/workflows/build.yml@{REUSABLE} # main
"""


class FakeCommitsAPI:
    """`GET /repos/{owner}/{repo}/commits/{ref}` answering from `commits`; records every call."""

    def __init__(self, commits: dict[tuple[str, str], Any]) -> None:
        self.commits = commits
        self.requests: list[tuple[str, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append((self.path, self.headers.get("Authorization")))
                parts = self.path.split("/")
                key = ("/".join(parts[2:4]), parts[5]) if len(parts) == 6 else None
                ok = parts[:2] == ["", "repos"] and len(parts) == 6 and parts[4] == "commits"
                if not ok or key not in fake.commits:
                    self.send_response(404, "Not Found")
                    body = b'{"message": "No commit found for SHA"}'
                else:
                    self.send_response(200)
                    answer = fake.commits[key]
                    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeCommitsAPI]:
    fake = FakeCommitsAPI(
        {
            ("actions/checkout", "v4"): {"sha": CHECKOUT, "commit": {}},
            ("actions/setup-python", "v5"): {"sha": SETUP_PYTHON},
            ("actions/cache", "v4.2.0"): {"sha": CACHE},
            ("octo/workflows", "main"): {"sha": REUSABLE},
        }
    )
    yield fake
    fake.stop()


def run(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if token:
        env["GITHUB_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "dev.pin_actions", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_pins_through_the_api_and_then_the_check_passes(
    api: FakeCommitsAPI, tmp_path: Path
) -> None:
    workflow = tmp_path / "workflows" / "build.yml"
    workflow.parent.mkdir()
    workflow.write_text(FIXTURE)
    allow = ("--allow", "org/run-exports-index")

    before = run("--check", str(tmp_path / "workflows"), *allow)
    assert before.returncode == 1
    flagged = before.stdout.splitlines()
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in flagged] == ["7", "10", "12", "18"]
    assert "actions/checkout@v4: on 'v4', not a commit SHA" in flagged[0]

    result = run(str(tmp_path / "workflows"), "--api-url", api.url, *allow)
    assert result.returncode == 0, result.stderr
    assert workflow.read_text() == PINNED
    assert sorted(path for path, _ in api.requests) == [
        "/repos/actions/cache/commits/v4.2.0",
        "/repos/actions/checkout/commits/v4",
        "/repos/actions/setup-python/commits/v5",
        "/repos/octo/workflows/commits/main",
    ]
    assert {auth for _, auth in api.requests} == {f"Bearer {TOKEN}"}

    assert run("--check", str(workflow), *allow).returncode == 0
    asked = len(api.requests)
    assert run(str(workflow), "--api-url", api.url, *allow).returncode == 0  # idempotent
    assert workflow.read_text() == PINNED and len(api.requests) == asked


def test_without_allow_the_placeholder_is_flagged(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(PINNED)
    result = run("--check", str(workflow))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{workflow}:16: org/run-exports-index@v1: on 'v1', not a commit SHA"
    ]


def test_a_sha_without_a_version_comment_and_a_tagged_image_are_flagged(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(
        f"jobs:\n  a:\n    steps:\n      - uses: actions/checkout@{CHECKOUT}\n"
        "      - uses: docker://alpine:3.20\n"
    )
    result = run("--check", str(workflow))
    assert result.returncode == 1
    assert [line.rsplit(": ", 1)[1] for line in result.stdout.splitlines()] == [
        "pinned, but no comment naming the version (# vX)",
        "docker image not pinned by digest",
    ]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (None, "GitHub API answered 404"),
        ({"sha": "v4"}, "not a commit SHA"),
        ({"sha": "A" * 40}, "not a commit SHA"),
        (b"<html>", "not a commit object"),
        (b"x" * (pin_actions.MAX_RESPONSE_BYTES + 10), "over"),
    ],
)
def test_an_unresolvable_tag_writes_nothing(
    api: FakeCommitsAPI, tmp_path: Path, answer: Any, reason: str
) -> None:
    if answer is not None:
        api.commits[("actions/checkout", "v4")] = answer
    else:
        del api.commits[("actions/checkout", "v4")]
    second = tmp_path / "z.yml"  # resolved fine, but not written either
    second.write_text("jobs:\n  a:\n    steps:\n      - uses: actions/setup-python@v5\n")
    workflow = tmp_path / "a.yml"
    workflow.write_text(FIXTURE)
    result = run(str(tmp_path), "--api-url", api.url, "--allow", "org/run-exports-index")
    assert result.returncode == 1
    assert reason in result.stderr and "actions/checkout@v4" in result.stderr
    assert "nothing written" in result.stderr and len(result.stderr.splitlines()) == 1
    assert workflow.read_text() == FIXTURE
    assert "@v5" in second.read_text()


def test_an_unreachable_api_is_one_line(tmp_path: Path) -> None:
    workflow = tmp_path / "a.yml"
    workflow.write_text(FIXTURE)
    result = run(str(workflow), "--api-url", "http://127.0.0.1:9", token=None)
    assert result.returncode == 1 and "GitHub API not reached" in result.stderr
    assert workflow.read_text() == FIXTURE


def git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env
    )
    return result.stdout.strip()


def test_pins_with_git_ls_remote_peeling_annotated_tags(tmp_path: Path) -> None:
    repo = tmp_path / "remotes" / "actions+checkout"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "one")
    git(repo, "tag", "-a", "v4", "-m", "annotated: ls-remote lists the tag object too")
    commit = git(repo, "rev-parse", "HEAD")
    assert git(repo, "rev-parse", "v4") != commit  # the tag object, which must not be pinned
    workflow = tmp_path / "w.yml"
    workflow.write_text("jobs:\n  a:\n    steps:\n      - uses: actions/checkout@v4\n")
    template = str(tmp_path / "remotes" / "{owner}+{repo}")
    result = run(str(workflow), "--git", template)
    assert result.returncode == 0, result.stderr
    assert workflow.read_text().splitlines()[-1] == f"      - uses: actions/checkout@{commit} # v4"

    workflow.write_text("jobs:\n  a:\n    steps:\n      - uses: actions/checkout@v9\n")
    result = run(str(workflow), "--git", template)
    assert result.returncode == 1 and "actions/checkout@v9: no such tag or branch" in result.stderr


def test_the_repository_workflows_are_pinned() -> None:
    """Pinned here from the actions' own tags; the release workflow runs the same check."""
    problems = pin_actions.check(
        [ROOT / ".github" / "workflows", ROOT / ".github" / "examples"],
        frozenset({"org/run-exports-index"}),
    )
    assert problems == []
