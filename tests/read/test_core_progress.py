"""Issue 2: a progress bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import io

import indexer.read.progress
from indexer.read.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal() -> None:
    stream = FakeTerminal()
    progress = Progress("noarch: reading", 4, stream)
    for _ in range(4):
        progress.advance()
    progress.finish()
    text = stream.getvalue()
    assert "\r" in text and "[" + "#" * 30 + "] 4/4" in text
    assert text.endswith("\n")


def test_plain_lines_in_ci_logs(monkeypatch) -> None:
    monkeypatch.setattr(indexer.read.progress, "LINE_EVERY_S", 0.0)
    stream = io.StringIO()
    progress = Progress("linux-64: reading", 2, stream)
    progress.advance()
    progress.advance()
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("linux-64: reading: 1/2") and lines[-1].startswith(
        "linux-64: reading: 2/2"
    )
