"""Issue 8: with S3 credentials and a GitHub token set, nothing a verbose run shows contains them.

Every output is searched: the CLI's stdout, stderr, JSON report and Markdown
summary; for the action, its stdout and stderr, step outputs, job summary,
report files and every comment body (and request path) the fake GitHub
received. The runs are verbose (`-v`; for the action, `RUNNER_DEBUG=1`, what
"Re-run with debug logging" sets) and go through a proxy that throttles and
resets, so retry messages and debug lines are among what is searched.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from actionrun import TOKEN, run_action, runner_env
from fakegithub import FakeGitHub
from reliability import cli_command, cli_env, small_channel
from s3proxy import CountingProxy, Fault
from s3server import S3Endpoint, upload_tree

PR = 23


def secrets_of(s3: S3Endpoint) -> dict[str, str]:
    return {
        "AWS_SECRET_ACCESS_KEY": s3.admin.secret_key,
        "AWS_ACCESS_KEY_ID": s3.admin.access_key,
        "GitHub token": TOKEN,
    }


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in text]


@pytest.fixture
def channel_url(s3: S3Endpoint, tmp_path: Path) -> str:
    bucket = s3.new_bucket("secrets")
    channel = small_channel(tmp_path / "ch")
    (channel / "noarch" / "broken-1.0-0.conda").write_bytes(b"not a zip")  # a warning to log
    upload_tree(s3.client(), bucket, "ch", channel)
    return f"s3://{bucket}/ch"


@pytest.fixture
def flaky(s3_proxy: CountingProxy) -> CountingProxy:
    s3_proxy.faults += [
        Fault(lambda s: s.is_list, "slowdown", times=2),
        Fault(lambda s: s.is_artifact_get, "reset"),
        Fault(lambda s: s.method == "PUT", "error500"),
    ]
    return s3_proxy


def test_a_verbose_cli_run_shows_no_secret(
    s3: S3Endpoint, flaky: CountingProxy, channel_url: str, tmp_path: Path
) -> None:
    secrets = secrets_of(s3)
    env = cli_env(s3, tmp_path, GITHUB_TOKEN=TOKEN, GH_TOKEN=TOKEN)
    report, summary = tmp_path / "report.json", tmp_path / "summary.md"
    command = cli_command(channel_url, flaky.url, report, "--summary", str(summary), "-v")
    command.remove("--quiet")  # the summary on stdout too
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "DEBUG:" in done.stderr and "retrying" in done.stderr  # verbose, and it retried
    assert json.loads(report.read_text())["retries"] == 4
    for name, text in {
        "stdout": done.stdout,
        "stderr": done.stderr,
        "report": report.read_text(),
        "summary": summary.read_text(),
    }.items():
        assert leaks(text, secrets) == [], name


def test_a_failing_verbose_cli_run_shows_no_secret(
    s3: S3Endpoint, s3_proxy: CountingProxy, channel_url: str, tmp_path: Path
) -> None:
    s3_proxy.faults.append(Fault(lambda s: s.method == "PUT", "slowdown", times=99))
    env = cli_env(s3, tmp_path, GITHUB_TOKEN=TOKEN)
    command = cli_command(channel_url, s3_proxy.url, tmp_path / "r.json", "-v")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "kept failing" in done.stderr
    assert leaks(done.stdout + done.stderr, secrets_of(s3)) == []


def test_a_debug_action_run_with_a_comment_shows_no_secret(
    s3: S3Endpoint,
    flaky: CountingProxy,
    github: FakeGitHub,
    channel_url: str,
    tmp_path: Path,
) -> None:
    inputs = {
        "channel": channel_url,
        "endpoint-url": flaky.url,
        "region": s3.region,
        "mode": "publish",
    }
    event = {"action": "synchronize", "number": PR, "pull_request": {"number": PR}}
    env = runner_env(tmp_path, inputs, event_name="pull_request", event=event, api_url=github.url)
    env |= s3.env() | {"RUNNER_DEBUG": "1", "AWS_EC2_METADATA_DISABLED": "true"}
    result = run_action(env)
    assert result.status == 0, result.stdout + result.stderr
    assert "--verbose" in result.stdout and "DEBUG:" in result.stderr
    (comment,) = github.bodies(PR)
    shown = result.everything.replace(f"::add-mask::{TOKEN}", "")  # the runner's own masking
    received = "\n".join([comment, *(r.path for r in github.requests)])
    assert leaks(shown, secrets_of(s3)) == []
    assert leaks(received, secrets_of(s3)) == []
