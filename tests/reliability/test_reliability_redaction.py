"""Issue 13, acceptance 5: no credential from an endpoint URL shows anywhere.

An endpoint URL with a password in it (`http://user:secretpass@host`) or a
presigned-style query (`?X-Amz-Signature=...`) is given to the CLI and to the
action's entrypoint (run as the container runs it), against SeaweedFS on
loopback: a run that succeeds, one whose endpoint cannot be reached, one whose
bucket does not exist. stdout, stderr, the JSON report, the Markdown summary,
the job summary and `$GITHUB_OUTPUT` are searched for the secrets. The only
place the password may appear is the action's own `::add-mask::` line, which
the runner consumes to hide it (as for the GitHub token).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from actionrun import run_action, runner_env
from reliability import cli_command, cli_env, small_channel
from s3server import S3Endpoint, upload_tree

from indexer.redact import forget, redact, register_url, secrets_of

PASSWORD = "secretpass-0b7e"
SIGNATURE = "sigSECRET9f3a"
SECRETS = (PASSWORD, SIGNATURE, "secretcred77", "sessionSECRET42")


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def with_userinfo(endpoint: str) -> str:
    return endpoint.replace("://", f"://minio-user:{PASSWORD}@", 1)


@pytest.fixture(scope="module")
def channel(s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory) -> str:
    bucket = s3.new_bucket("redact")
    root = small_channel(tmp_path_factory.mktemp("redact") / "ch")
    (root / "noarch" / "broken-1.0-0.conda").write_bytes(b"not a zip")  # a warning line
    upload_tree(s3.client(), bucket, "ch", root)
    return f"s3://{bucket}/ch"


def run_cli(url: str, endpoint: str, tmp: Path, **env: str) -> tuple[int, str]:
    """A verbose CLI run with the summary on stdout; returns (status, all it showed)."""
    report, summary = tmp / "report.json", tmp / "summary.md"
    command = cli_command(url, endpoint, report, "--summary", str(summary), "-v")
    command.remove("--quiet")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    files = [p.read_text() for p in (report, summary) if p.exists()]
    return done.returncode, "\n".join([done.stdout, done.stderr, *files])


def test_a_password_in_the_endpoint_url_shows_nowhere(
    s3: S3Endpoint, channel: str, tmp_path: Path
) -> None:
    env = cli_env(s3, tmp_path)
    status, shown = run_cli(channel, with_userinfo(s3.endpoint_url), tmp_path, **env)
    assert status == 0, shown
    assert "DEBUG:" in shown and "broken-1.0-0.conda" in shown  # verbose, with a warning
    assert "***@127.0.0.1" in shown  # the endpoint is still named, without its userinfo
    assert leaked(shown) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unreachable", "cannot reach the endpoint http://***@127.0.0.1:9"),
        ("no bucket", "does not exist at http://***@127.0.0.1"),
        ("signed query", "X-Amz-Signature=***"),
        ("variable", "cannot reach the endpoint http://***@127.0.0.1:9"),
    ],
)
def test_failing_runs_name_the_endpoint_without_its_credentials(
    s3: S3Endpoint, channel: str, tmp_path: Path, case: str, expected: str
) -> None:
    env = cli_env(s3, tmp_path)
    url, endpoint = channel, with_userinfo(s3.endpoint_url)
    if case == "unreachable":
        endpoint = with_userinfo("http://127.0.0.1:9")
    elif case == "no bucket":
        url = "s3://rei-no-such-bucket-4d1c/ch"
    elif case == "signed query":
        endpoint = (
            f"{s3.endpoint_url}/?X-Amz-Signature={SIGNATURE}&X-Amz-Credential=secretcred77"
            "&X-Amz-Security-Token=sessionSECRET42&X-Amz-Date=20250101T000000Z"
        )
    else:  # boto3 reads AWS_ENDPOINT_URL itself; its messages repeat it
        env["AWS_ENDPOINT_URL"] = with_userinfo("http://127.0.0.1:9")
        command = cli_command(url, "", tmp_path / "r.json", "-v")
        command[command.index("--endpoint-url") : command.index("--endpoint-url") + 2] = []
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert leaked(done.stdout + done.stderr) == []
        return
    status, shown = run_cli(url, endpoint, tmp_path, **env)
    assert status == 1 and expected in shown, shown
    # issue 16: a failed run writes its report and summary too (the reason, redacted)
    written = [tmp_path / "report.json", tmp_path / "summary.md"]
    assert expected in json.loads(written[0].read_text())["error"]
    in_files = sum(p.read_text().count("\n") + 1 for p in written)
    assert shown.count("\n") - in_files < 40  # one error line, not a traceback
    assert leaked(shown) == []


@pytest.mark.parametrize("reachable", [True, False])
def test_the_action_echoes_and_reports_without_credentials(
    s3: S3Endpoint, channel: str, tmp_path: Path, reachable: bool
) -> None:
    endpoint = with_userinfo(s3.endpoint_url if reachable else "http://127.0.0.1:9")
    inputs = {"channel": channel, "endpoint-url": endpoint, "region": s3.region}
    env = runner_env(tmp_path, inputs) | s3.env()
    env |= {"RUNNER_DEBUG": "1", "AWS_EC2_METADATA_DISABLED": "true", "TMPDIR": str(tmp_path)}
    result = run_action(env)
    assert result.status == (0 if reachable else 1), result.stdout + result.stderr
    assert f"::add-mask::{PASSWORD}" in result.stdout  # the runner hides it in any later line
    lines = result.everything.splitlines()  # add-mask lines are the runner's, never shown
    shown = "\n".join(line for line in lines if not line.startswith("::add-mask::"))
    echoed = next(line for line in shown.splitlines() if line.startswith("run-exports-index index"))
    assert "--endpoint-url http://***@127.0.0.1" in echoed and "--verbose" in echoed
    if reachable:
        assert "broken-1.0-0.conda" in result.summary and result.outputs["report"]
    else:
        assert "cannot reach the endpoint http://***@" in result.stderr
    assert leaked(shown) == []


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("GET http://u:p%40ss@h:9/b?x=1", "GET http://***@h:9/b?x=1"),
        ("at https://u:p@ss@host/k", "at https://***@host/k"),  # an unescaped @ in the password
        (
            "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA1&Signature=abc%2B&Expires=9",
            "https://b.s3.amazonaws.com/k?AWSAccessKeyId=***&Signature=***&Expires=9",
        ),
        (
            '"https://h/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1&X-Amz-Signature=ff"',
            '"https://h/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Signature=***"',
        ),
        ("?access_token=t1&api_key=k2&sig=s3&list-type=2", "?access_token=***&api_key=***&sig=***"),
        ("mail me at a@b.example or see s3://bucket/key", "mail me at a@b.example or see s3://"),
    ],
)
def test_redact_patterns(text: str, kept: str) -> None:
    forget()
    assert redact(text).startswith(kept)
    assert "p%40ss" not in redact(text) and "AKIA1" not in redact(text)


def test_registered_secrets_are_hidden_even_out_of_their_url() -> None:
    forget()
    try:
        assert register_url("http://me:pa/ss%2Fword@host:9") == secrets_of(
            "http://me:pa/ss%2Fword@host:9"
        )
        # a "/" in the password cuts the URL short for a parser; the text is still hidden
        assert "pa/ss" not in redact("host 'me:pa' failed; path /ss%2Fword@host:9 and pa/ss/word")
    finally:
        forget()
