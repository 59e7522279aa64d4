"""Shared fixtures: the reference corpus, sample channels, running the CLI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from actionrun import TOKEN
from fakegithub import FakeGitHub
from s3proxy import CountingProxy
from s3server import S3Endpoint, s3_endpoint

from indexer.cli import main as cli_main

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"
REAL = CORPUS / "real"
EXPECTED = CORPUS / "expected"
CORPUS_SUBDIRS = ("linux-64", "noarch", "osx-64")


@pytest.fixture
def corpus_channel(tmp_path: Path) -> Path:
    """A writable copy of ../shared/corpus/real (without the corrupt folder)."""
    if not REAL.is_dir():
        pytest.skip(f"reference corpus not found at {REAL} (a user's clone has no ../shared)")
    channel = tmp_path / "corpus"
    for subdir in CORPUS_SUBDIRS:
        shutil.copytree(REAL / subdir, channel / subdir)
    return channel


@pytest.fixture
def corrupt_artifacts() -> list[Path]:
    """The two unreadable artifacts of the corpus."""
    folder = REAL / "corrupt" / "noarch"
    if not folder.is_dir():
        pytest.skip(f"reference corpus not found at {folder}")
    return sorted(folder.iterdir())


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `run-exports-index ARGS...` in-process; return (status, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        status = cli_main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """The session's S3 endpoint: SeaweedFS on loopback, or RUN_EXPORTS_INDEX_TEST_S3.

    See tests/s3server.py for the variables that select an external endpoint.
    """
    with s3_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3: S3Endpoint) -> S3Endpoint:
    """boto3's default chain sees only the session endpoint's admin identity."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture
def s3_proxy(s3: S3Endpoint) -> Iterator[CountingProxy]:
    """A counting, fault-injecting proxy in front of the session's S3 endpoint."""
    with CountingProxy(s3.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """A fake GitHub REST API over real HTTP on loopback, expecting the runner's token."""
    fake = FakeGitHub(token=TOKEN)
    fake.start()
    yield fake
    fake.stop()
    assert fake.problems == [], "requests GitHub would have refused"
