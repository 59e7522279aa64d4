"""Issues 5 and 6 together: on a pull request the action previews by default.

The entrypoint runs as the container would, on a `pull_request` event with no
`mode` input: it indexes staged artifacts and patches as a preview, writes
nothing to the channel, annotates the lints, and posts the run_exports diff as
the sticky comment on the fake GitHub.
"""

from __future__ import annotations

import json
from pathlib import Path

from actionrun import run_action, runner_env
from fakegithub import FakeGitHub

from dev.sample import build_artifact
from indexer.cli import main as cli_main

PR = 23


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_pull_request_defaults_to_a_preview_comment(github: FakeGitHub, tmp_path: Path) -> None:
    channel = tmp_path / "ch"
    build_artifact(
        channel / "noarch", "libfoo", "1.2", "h0_0", run_exports={"weak": ["libfoo >=1.2,<2"]}
    )
    assert cli_main(["index", str(channel), "-q"]) == 0
    before = tree(channel)

    staged = tmp_path / "staged"
    build_artifact(staged / "noarch", "libfoo", "1.3", "h0_0", run_exports={"weak": ["libfoo >=2"]})
    patches = tmp_path / "patches.json"
    patches.write_text(
        json.dumps(
            {
                "noarch": {
                    "patch_instructions_version": 2,
                    "packages.conda": {
                        "libfoo-1.2-h0_0.conda": {"run_exports": {"weak": ["libfoo >=1.2,<1.3"]}}
                    },
                }
            }
        )
    )
    env = runner_env(
        tmp_path / "run",
        {"channel": str(channel), "staged": str(staged), "patches": str(patches)},
        event_name="pull_request",
        event={"number": PR, "pull_request": {"number": PR}},
        api_url=github.url,
    )
    result = run_action(env)
    assert result.status == 0, result.stderr
    assert tree(channel) == before  # a preview writes nothing

    (body,) = github.bodies(PR)
    assert "Mode **preview**" in body
    assert (
        "`libfoo-1.2-h0_0.conda` changed: weak: `libfoo >=1.2,<2` → weak: `libfoo >=1.2,<1.3`"
        in body
    )
    assert "`libfoo-1.3-h0_0.conda` added with weak: `libfoo >=2`" in body
    assert "pin-excludes-own-version" in body
    assert result.outputs["changed"] == "true"
    assert "::warning" in result.stdout and "libfoo-1.3-h0_0.conda" in result.stdout
