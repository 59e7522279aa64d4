"""Workflow commands, $GITHUB_OUTPUT, the step summary cap and Markdown truncation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from actionrun import parse_outputs

from indexer.action import workflow
from indexer.action.truncate import truncate_markdown


def test_commands_escape_what_would_break_or_inject(capsys: pytest.CaptureFixture[str]) -> None:
    workflow.warning("bad\n::error::injected 100%", file="noarch/a:b,c.conda", title="t")
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert line == (
        "::warning file=noarch/a%3Ab%2Cc.conda,title=t::bad%0A::error::injected 100%25\n"
    )


def test_add_mask_masks_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    workflow.add_mask("one\ntwo")
    assert capsys.readouterr().out == "::add-mask::one\n::add-mask::two\n"


def test_group_closes_even_on_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), workflow.group("title"):
        print("inside")
        raise RuntimeError
    assert capsys.readouterr().out == "::group::title\ninside\n::endgroup::\n"


def test_outputs_use_random_delimiters_safe_for_any_value(tmp_path: Path) -> None:
    path = tmp_path / "out"
    tricky = "line1\nghadelimiter_x\nname<<EOF\nEOF"
    workflow.write_outputs(str(path), {"a": "1", "b": tricky, "c": '["x"]'})
    text = path.read_text()
    delimiters = re.findall(r"<<(ghadelimiter_[0-9a-f]{32})\n", text)
    assert len(set(delimiters)) == 3
    assert parse_outputs(text) == {"a": "1", "b": tricky, "c": '["x"]'}


def test_summary_is_capped_at_one_mebibyte_and_stays_valid(tmp_path: Path) -> None:
    path = tmp_path / "summary"
    path.write_text("x" * 1000)  # an earlier part of this step's summary counts too
    lines = ["<details>", "<summary>big</summary>", ""] + ["- `é" + "a" * 97 + "`"] * 20_000
    written = workflow.write_summary(str(path), "\n".join(lines), "https://gh/o/r/actions/runs/1")
    assert path.stat().st_size <= workflow.SUMMARY_LIMIT
    assert written.endswith("\n") and "</details>" in written
    assert "https://gh/o/r/actions/runs/1" in written


def balanced(text: str) -> bool:
    depth = 0
    for line in text.split("\n"):
        depth += line.count("<details") - line.count("</details>")
        if depth < 0:
            return False
    return depth == 0 and text.count("```") % 2 == 0


def test_truncation_closes_details_and_fences() -> None:
    text = "\n".join(
        ["# t", "<details>", "<summary>s</summary>", "", "```"]
        + ["line " * 20] * 100
        + ["```", "</details>"]
    )
    cut = truncate_markdown(text, 1000, link="https://run")
    assert len(cut) <= 1000
    assert balanced(cut)
    assert cut.rstrip().endswith("Full report: [run summary](https://run).")
    assert truncate_markdown("short", 1000) == "short"


def test_truncation_skips_a_single_overlong_line() -> None:
    text = "# title\n<details>\n" + "x" * 5000 + "\n</details>\n"
    cut = truncate_markdown(text, 500)
    assert len(cut) <= 500 and balanced(cut) and cut.startswith("# title")
