"""Issue 16, acceptance 5: previews of metadata changes show what clients will see change.

A pull request that changes patch instructions (here a version-1 file with a
`depends` fix and a `remove`) changes no run_exports, yet changes what every
client solves with. The preview compares the published shards with what the
run would publish, field by field, and shows it in the sticky comment and the
JSON report, writing nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import cmarkgfm
from actionrun import run_action, runner_env
from cmarkgfm.cmark import Options
from fakegithub import FakeGitHub

from dev.sample import build_artifact
from indexer.action import comment
from indexer.cli import main as cli_main
from indexer.model import RecordChange
from indexer.render.records import record_changes
from indexer.report.markdown import to_markdown
from indexer.report.model import RunReport, SubdirReport

PR = 31


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_patch_preview_shows_record_changes_in_comment_and_report(
    github: FakeGitHub, tmp_path: Path
) -> None:
    channel = tmp_path / "ch"
    build_artifact(channel / "noarch", "libfoo", "1.2", "0", depends=["libbar"])
    build_artifact(channel / "noarch", "libold", "1.0", "0", run_exports={"weak": ["libold"]})
    build_artifact(channel / "noarch", "libkeep", "1.0", "0", depends=["python"])
    assert cli_main(["index", str(channel), "-q"]) == 0  # shards published: what clients see
    before = tree(channel)

    patches = tmp_path / "repo" / "patches"
    (patches / "noarch").mkdir(parents=True)
    (patches / "noarch" / "patch_instructions.json").write_text(
        json.dumps(
            {
                "patch_instructions_version": 1,
                "packages": {},
                "packages.conda": {"libfoo-1.2-0.conda": {"depends": ["libbar >=2"]}},
                "remove": ["libold-1.0-0.conda"],
                "revoke": [],
            }
        )
    )
    env = runner_env(
        tmp_path / "run",
        {"channel": str(channel), "patches": str(patches)},
        event_name="pull_request",
        event={"number": PR, "pull_request": {"number": PR}},
        api_url=github.url,
    )
    result = run_action(env)
    assert result.status == 0, result.stdout + result.stderr
    assert tree(channel) == before  # a preview writes nothing

    (body,) = github.bodies(PR)
    assert "Mode **preview**" in body
    assert "Record changes clients will see (2 field(s) in 2 artifact(s))" in body
    assert "`depends`: adds `libbar >=2`; drops `libbar`" in body
    assert "`libold-1.0-0.conda`\n    - removed: clients no longer see it" in body
    assert "libkeep" not in body.split("Record changes")[1]  # unchanged: not listed

    report = json.loads((Path(env["GITHUB_WORKSPACE"]) / result.outputs["report"]).read_text())
    changes = report["subdirs"]["noarch"]["record_changes"]
    assert {
        (c["filename"], c["field"], json.dumps(c["before"]), json.dumps(c["after"]))
        for c in changes
    } == {
        ("libfoo-1.2-0.conda", "depends", '["libbar"]', '["libbar >=2"]'),
        ("libold-1.0-0.conda", "removed", "false", "true"),
    }
    assert report["totals"]["record_changes"] == 2
    # --patches also patches run_exports.json: the removal shows there too
    assert any(
        c["filename"] == "libold-1.0-0.conda" and c["change"] == "removed"
        for c in report["subdirs"]["noarch"]["run_exports_changes"]
    )


def test_record_changes_are_a_pure_function_of_before_and_after() -> None:
    before = {
        "a-1-0.conda": {"name": "a", "depends": ["x"], "license": "MIT", "md5": b"\x01"},
        "b-1-0.conda": {"name": "b", "depends": []},
        "gone-1-0.conda": {"name": "gone"},
    }
    after = {
        "a-1-0.conda": {"name": "a", "depends": ["x"], "license": "BSD", "md5": b"\x02"},
        "b-1-0.conda": {"name": "b", "depends": [], "revoked": True, "run_exports": {}},
        "c-1-0.conda": {"name": "c"},  # new in the channel: the run_exports diff's
        "back-1-0.conda": {"name": "back"},  # in the channel before, hidden by a patch
    }
    present = {"a-1-0.conda", "b-1-0.conda", "c-1-0.conda", "back-1-0.conda"}
    got = record_changes(before, after, present, new={"c-1-0.conda"})
    assert got == [
        RecordChange("a", "a-1-0.conda", "license", "MIT", "BSD"),
        RecordChange("a", "a-1-0.conda", "md5", "01", "02"),
        RecordChange("b", "b-1-0.conda", "revoked", None, True),
        RecordChange("back", "back-1-0.conda", "removed", True, False),
    ]  # gone-1-0.conda left the channel itself: not a record change


def test_many_record_changes_are_cut_safely_for_the_comment() -> None:
    hostile = "x` </details> @someone #1 ```"
    changes = [
        RecordChange(f"pkg{i}", f"pkg{i}-1-0.conda", "depends", [hostile * 20], [f"dep{i}"])
        for i in range(3000)
    ]
    report = RunReport("ch", "preview", [SubdirReport("noarch", record_changes=changes)])
    markdown = to_markdown(report)
    assert "- … and" in markdown  # at most MAX_LISTED lines, then the JSON report
    body = comment.render(markdown, "default", "https://github.example/run")
    assert len(body) <= comment.COMMENT_LIMIT
    html = cmarkgfm.github_flavored_markdown_to_html(body, options=Options.CMARK_OPT_UNSAFE)
    assert html.count("<details") == html.count("</details>") == 1  # the cut closed it
    assert "@someone" not in html.replace("<code>", "\0").split("\0")[0]
