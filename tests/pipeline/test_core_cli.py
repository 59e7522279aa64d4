"""Issue 2, acceptance 6 and the CLI contract: exit codes, one-line errors, report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from dev.sample import build_artifact


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "/nonexistent/channel"], "channel directory not found: /nonexistent/channel"),
        (["index", "{ch}", "--bogus"], "unrecognized arguments: --bogus"),
        (["index", "{ch}", "--jobs", "0"], "must be at least 1"),
        (["index", "{empty}"], "no subdirs found in"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["index", "{ch}", "--subdir", "../etc"], "--subdir '../etc' is not a subdir name"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, run_cli, args, message) -> None:
    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "a")
    (tmp_path / "empty" / "not-a-subdir").mkdir(parents=True)
    argv = [a.format(ch=ch, empty=tmp_path / "empty") for a in args]
    status, out, err = run_cli(*argv)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err


def test_console_script_and_module_entry_points(tmp_path: Path) -> None:
    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "a", run_exports=["a"])
    for cmd in (
        [sys.executable, "-m", "indexer", "index", str(ch), "--quiet"],
        [str(Path(sys.executable).with_name("run-exports-index")), "index", str(ch), "--quiet"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "indexer", "index", "--help"], capture_output=True, text=True
    ).stdout
    for flag in (
        "--subdir",
        "--cache-dir",
        "--jobs",
        "--report",
        "--summary",
        "--dry-run",
        "--strict",
    ):
        assert flag in help_text


def test_report_and_summary_files(tmp_path: Path, run_cli) -> None:
    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "a", run_exports=["a"])
    (ch / "noarch" / "broken-1-0.conda").write_bytes(b"nope")
    report, summary = tmp_path / "r" / "report.json", tmp_path / "s" / "summary.md"
    status, out, _ = run_cli("index", ch, "--report", report, "--summary", summary, "--no-shards")
    assert status == 0
    data = orjson.loads(report.read_bytes())
    noarch = data["subdirs"]["noarch"]
    for key in ("listed", "new", "changed", "removed", "unchanged", "unreadable", "bytes_read"):
        assert key in noarch
    assert (noarch["listed"], noarch["new"], noarch["unreadable"]) == (2, 2, 1)
    assert noarch["artifacts"]["unreadable"][0]["filename"] == "broken-1-0.conda"
    assert noarch["run_exports_changes"] == [
        {
            "package": "a",
            "filename": "a-1.0-0.conda",
            "change": "added",
            "old": None,
            "new": {"weak": ["a"]},
        }
    ]
    assert data["uploaded"] == ["noarch/run_exports.json", "noarch/run_exports.json.zst"]
    assert isinstance(data["duration_s"], float)
    markdown = summary.read_text()
    assert markdown in out  # also printed at the end
    assert "broken-1-0.conda" in markdown and "`a`" in markdown


def test_dry_run_writes_nothing(tmp_path: Path, run_cli) -> None:
    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "a", run_exports=["a"])
    before = sorted(p.relative_to(ch) for p in ch.rglob("*"))
    report = tmp_path / "report.json"
    assert run_cli("index", ch, "--dry-run", "--report", report, "--no-shards")[0] == 0
    assert sorted(p.relative_to(ch) for p in ch.rglob("*")) == before
    data = orjson.loads(report.read_bytes())
    assert data["mode"] == "dry-run"
    assert data["uploaded"] == ["noarch/run_exports.json", "noarch/run_exports.json.zst"]


def test_progress_lines_when_not_a_tty(tmp_path: Path, run_cli) -> None:
    ch = tmp_path / "ch"
    build_artifact(ch / "noarch", "a")
    _, _, err = run_cli("index", ch)
    assert "noarch: reading: 1/1" in err


def test_untrusted_names_cannot_break_the_markdown() -> None:
    from indexer.model import Problem
    from indexer.report.markdown import to_markdown
    from indexer.report.model import RunReport, SubdirReport

    hostile = "x`</details>\n@team [click](https://evil.example)-1.0-0.conda"
    report = RunReport(
        channel="ch",
        mode="preview",
        subdirs=[
            SubdirReport("noarch", unreadable=[Problem(hostile, "bad\n::stop-commands::x `y`")])
        ],
    )
    markdown = to_markdown(report)
    assert "</details>\n@team" not in markdown
    assert "\n::stop-commands::" not in markdown
    lines = markdown.splitlines()
    assert sum(x.startswith("<details") for x in lines) == lines.count("</details>") == 1
    line = next(line for line in markdown.splitlines() if "click" in line)
    # backticks in the reason: inside a code span whose fence is longer (was `\`y\``
    # escapes; a code span also keeps mentions and links inert)
    assert line.startswith("- ``") and "`` `y` ``" in line


def test_a_newline_in_an_artifact_name_cannot_start_a_workflow_command(tmp_path: Path) -> None:
    channel = tmp_path / "ch"
    (channel / "noarch").mkdir(parents=True)
    (channel / "noarch" / "evil\n::error::pwned-1.0-0.conda").write_bytes(b"junk")
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "index", str(channel), "--no-shards"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pwned" in done.stderr and "pwned" in done.stdout
    for line in (done.stdout + done.stderr).splitlines():
        assert not line.startswith("::"), line
