"""Issue 13, acceptance 6: Markdown rendered from hostile names pings, references and links nothing.

The job summary and the pull-request comment are rendered with GitHub's own
cmark-gfm (autolink extension on, as on github.com), then the text outside
code elements is scanned for what GitHub would turn live after rendering:
`@mentions`, `#1` and `owner/repo#1` references, `GH-1`, commit SHAs, URLs,
`www.` and bare domains, e-mail addresses. The only link allowed is the one we
put there (the workflow run). Bidi and zero-width controls must not reach the
page at all, not even inside code. And the workflow commands that carry
untrusted text stay one command each, with no line of ours starting with `::`.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from contextlib import redirect_stdout
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from dev.sample import build_artifact
from indexer.action import run as action_run
from indexer.action.comment import render as render_comment
from indexer.model import Lint as LintFinding
from indexer.model import Problem, RecordChange, RunExportsChange
from indexer.report.markdown import code, plain, to_markdown
from indexer.report.model import RunReport, SubdirReport

RUN_URL = "https://github.com/o/r/actions/runs/1"
HOSTILE = [
    "@octocat",
    "cc @org/team please",
    "fixes #123",
    "octo/repo#42",
    "GH-99",
    "see deadbeefcafe1234 and 0123456789abcdef0123456789abcdef01234567",
    "https://evil.example/x?y=1",
    "www.evil.com",
    "evil.com",
    "mailto:me@mail.example",
    "user@mail.example",
    "x\u202eexe.conda",
    "zero\u200bwidth\u2066iso\u2069\ufeff",
    "`tick`s and ``double``",
    "<img src=x onerror=alert(1)>",
    "[link](http://e.example) ![i](http://e.example/i.png)",
    "&#64;entity &commat;named",
    "\\@escaped",
    "::error::pwned",
    "%0A::warning::x",
    "line\nbreak\r::notice::y",
    "$x$ and $$y$$",
    "ftp://files.example/a",
    "<https://angle.example>",
    # cmark-gfm opens no code span with a fence of 80 backticks or more
    "`" * 80 + " @octocat fixes #1 https://evil.example " + "`" * 80,
    "`" * 1000 + " @octocat",
    "`" * 79 + " @octocat " + "`" * 79,
]
LIVE = {
    "mention": re.compile(r"@[A-Za-z0-9]"),
    "issue reference": re.compile(r"#\d"),
    "repo reference": re.compile(r"[\w.-]+/[\w.-]+#\d"),
    "GH reference": re.compile(r"(?i)\bGH-\d"),
    "commit SHA": re.compile(r"(?i)\b[0-9a-f]{7,40}\b"),
    "URL": re.compile(r"(?i)\b(https?|ftp)://|\bwww\.|\bmailto:"),
    "domain": re.compile(r"(?i)\b[a-z0-9-]+\.(com|org|net|io|example|dev)\b"),
}
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\u061c]")
TAGS = {
    "h2", "p", "strong", "em", "code", "ul", "li", "details", "summary", "table", "thead",
    "tbody", "tr", "th", "td", "blockquote", "hr", "sub", "a", "br",
}  # fmt: skip


class Page(HTMLParser):
    """Text outside <code> and <a>, the links, and the tags of a rendered page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outside: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.depth = {"code": 0, "a": 0}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag in self.depth:
            self.depth[tag] += 1
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.depth:
            self.depth[tag] -= 1

    def handle_data(self, data: str) -> None:
        if not any(self.depth.values()):
            self.outside.append(data)


def live_parts(markdown: str) -> list[str]:
    """Everything GitHub would make live in `markdown`, rendered as GitHub renders it."""
    html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    page = Page()
    page.feed(html)
    text = " ".join(page.outside)
    found = [f"{kind}: {m.group(0)!r}" for kind, rx in LIVE.items() for m in rx.finditer(text)]
    found += [f"link: {href}" for href in page.links if href != RUN_URL]
    found += [f"tag: <{tag}>" for tag in sorted(page.tags - TAGS)]
    found += [f"invisible: {c!r}" for c in INVISIBLE.findall(html)]
    return found


def hostile_report() -> RunReport:
    """Every untrusted field of the report filled with every hostile string."""
    subdir = SubdirReport("noarch", listed=len(HOSTILE))
    for n, text in enumerate(HOSTILE):
        filename = f"{text}-1.0-{n}.conda"
        exports = {"weak": [text, f"{text} >=1"], text: [text]}
        subdir.run_exports_changes.append(
            RunExportsChange(text, filename, ("added", "changed")[n % 2], exports, exports)
        )
        subdir.lints.append(LintFinding(filename, text, f"the patch names {text}, which"))
        subdir.unreadable.append(Problem(filename, f"not a valid .conda: {text}"))
        subdir.run_exports_unknown.append(Problem(filename, text))
        subdir.warnings.append(f"{text} is not updated because {text}")
        subdir.uploaded.append(f"noarch/{text}")
        subdir.shards_pruned.append(f"noarch/shards/{text}")
        subdir.record_changes.append(RecordChange(text, filename, text, [text], {text: [text]}))
        subdir.record_changes.append(RecordChange(text, filename, "depends", [text], [f"{text}!"]))
    return RunReport(channel="s3://b/@octocat #1 www.evil.com", mode="preview", subdirs=[subdir])


def test_the_renderer_and_scanner_see_what_github_would_link() -> None:
    """The check itself: raw hostile text, unprotected, is found live."""
    found = live_parts("\n\n".join(HOSTILE))
    for kind in ("mention", "issue reference", "repo reference", "GH reference", "commit SHA"):
        assert any(f.startswith(kind) for f in found), kind
    assert any(f.startswith("link: https://evil.example") for f in found)
    assert any(f.startswith("link: http://www.evil.com") for f in found)
    assert any(f.startswith("tag: <img>") for f in found)
    assert any(f.startswith("invisible") for f in found)


def test_a_summary_and_comment_from_hostile_names_are_inert() -> None:
    markdown = to_markdown(hostile_report())
    assert live_parts(markdown) == []
    comment = render_comment(markdown, "default", RUN_URL)
    assert live_parts(comment) == []
    assert RUN_URL in comment  # our own link is still there


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_and_code_are_inert_one_by_one(text: str) -> None:
    assert live_parts(f"- {plain(text)}") == []
    assert live_parts(f"- {code(text)}") == []
    assert "\n" not in plain(text) + code(text)


def test_plain_prose_stays_readable() -> None:
    assert plain("drops run_exports that the previous build had (strong: libbar)") == (
        "drops run_exports that the previous build had (strong: libbar)"
    )
    assert plain("ping @octocat now") == "ping `@octocat` now"
    assert plain("(see #12).") == "(see `#12`)."
    assert code("a\u202eb") == "`a\\u202eb`"  # shown, not applied


def test_a_hostile_local_channel_renders_inert(tmp_path: Path) -> None:
    """End to end: names and run_exports from artifacts, through the CLI's summary."""
    channel = tmp_path / "ch"
    for n, text in enumerate(HOSTILE[:11]):
        name = re.sub(r"[^A-Za-z0-9@#.:_-]", "_", text)  # what a file name can hold
        build_artifact(channel / "noarch", name, build=str(n), run_exports={"weak": [text]})
    summary = tmp_path / "summary.md"
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "index", str(channel), "--summary", str(summary)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    markdown = summary.read_text()
    assert "octocat" in markdown and "deadbeefcafe1234" in markdown
    assert live_parts(markdown) == []
    assert not [x for x in (done.stdout + done.stderr).splitlines() if x.lstrip().startswith("::")]


def test_annotations_from_hostile_reports_stay_one_command_each() -> None:
    report = {
        "subdirs": {
            "noarch": {
                "lints": [
                    {"filename": f"{t},a:b", "kind": "k", "message": t} for t in HOSTILE[14:]
                ],
                "artifacts": {"unreadable": [{"filename": "f", "reason": "100%\r\nx"}]},
            }
        }
    }
    out = io.StringIO()
    with redirect_stdout(out):
        action_run.annotate(report, "/ch")
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # ten warnings and "N more"; no line of untrusted text
    for line in lines:
        assert line.startswith("::warning ")
        head, _, message = line[2:].partition("::")
        props = head.removeprefix("warning ").split(",")  # `:` and `,` escaped in values
        assert all(re.fullmatch(r"(file|title)=[^:,]*", p) for p in props), line
        assert "\r" not in message  # CR and LF travel as %0D and %0A
