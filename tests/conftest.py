"""Shared fixtures: the reference corpus, sample channels, running the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

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
