"""Acceptance 2: the entrypoint as a process, with the environment the runner sets.

Runs `python -m indexer.action` (the container's ENTRYPOINT) against a local
channel and checks the outputs file, the step summary, the annotations, log
groups, masking, and that the token never shows anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from actionrun import TOKEN, run_action, runner_env

from dev.sample import build_sample_channel


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_channel(tmp_path_factory.mktemp("sample") / "ch")


@pytest.fixture
def channel(sample: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(sample, tmp_path / "ch"))


def test_publish_writes_outputs_summary_and_annotations(channel: Path, tmp_path: Path) -> None:
    env = runner_env(tmp_path / "run1", {"channel": str(channel), "mode": "publish"})
    result = run_action(env)
    assert result.status == 0, result.stderr
    out = result.outputs
    assert out["changed"] == "true"
    assert out["artifacts-new"] == "7"
    assert out["artifacts-removed"] == "0"
    assert out["artifacts-unreadable"] == "1"
    uploaded = json.loads(out["uploaded"])
    assert "noarch/run_exports.json" in uploaded and "linux-64/run_exports.json.zst" in uploaded
    # report/summary: workspace-relative paths that later steps can open
    workspace = Path(env["GITHUB_WORKSPACE"])
    report = json.loads((workspace / out["report"]).read_text())
    assert report["totals"]["new"] == 7 and report["mode"] == "publish"
    assert (workspace / out["summary"]).read_text().startswith("## run-exports-index")
    assert (channel / "noarch" / "run_exports.json").is_file()

    assert "| `noarch` | 3 | 3 |" in result.summary
    assert "broken-1.0-0.conda" in result.summary
    assert "::add-mask::" + TOKEN in result.stdout
    assert "::group::run-exports-index: publish" in result.stdout
    assert "::endgroup::" in result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("::warning ")]
    assert len(warnings) == 1
    assert f"file={channel}/noarch/broken-1.0-0.conda" in warnings[0]
    assert "not a valid .conda" in warnings[0]
    assert "No pull-request comment" in result.stdout  # push + comment: auto

    again = run_action(runner_env(tmp_path / "run2", {"channel": str(channel)}))
    assert again.status == 0, again.stderr
    assert again.outputs["changed"] == "false"
    assert again.outputs["artifacts-new"] == "0"
    assert json.loads(again.outputs["uploaded"]) == []


def test_dry_run_reports_what_would_change_and_writes_nothing(
    channel: Path, tmp_path: Path
) -> None:
    inputs = {"channel": str(channel), "mode": "dry-run", "subdirs": "linux-64", "jobs": "2"}
    result = run_action(runner_env(tmp_path, inputs))
    assert result.status == 0, result.stderr
    assert result.outputs["changed"] == "true"
    uploaded = json.loads(result.outputs["uploaded"])
    assert {"linux-64/run_exports.json", "linux-64/run_exports.json.zst"} <= set(uploaded)
    assert all(path.startswith("linux-64/") for path in uploaded)
    assert not (channel / "linux-64" / "run_exports.json").exists()
    assert "Mode **dry-run**" in result.summary


def test_fail_on_error_fails_the_step_but_still_reports(channel: Path, tmp_path: Path) -> None:
    inputs = {"channel": str(channel), "mode": "publish", "fail-on-error": "true"}
    result = run_action(runner_env(tmp_path, inputs))
    assert result.status == 1
    assert result.outputs["artifacts-unreadable"] == "1"
    assert "broken-1.0-0.conda" in result.summary


def test_invalid_input_is_an_error_annotation_naming_it(channel: Path, tmp_path: Path) -> None:
    result = run_action(runner_env(tmp_path, {"channel": str(channel), "jobs": "lots"}))
    assert result.status == 2
    assert "::error title=run-exports-index%3A invalid input::input 'jobs'" in result.stdout
    assert result.outputs == {}


def test_a_failed_run_is_an_error_and_the_step_fails(tmp_path: Path) -> None:
    result = run_action(runner_env(tmp_path, {"channel": str(tmp_path / "missing")}))
    assert result.status != 0
    assert "::error" in result.stdout


def test_the_token_never_appears_in_any_output(channel: Path, tmp_path: Path) -> None:
    env = runner_env(tmp_path, {"channel": str(channel), "mode": "dry-run"})
    result = run_action(env)
    assert result.status == 0, result.stderr
    everything = result.everything
    assert everything.count(TOKEN) == result.stdout.count(TOKEN) == 1  # the ::add-mask:: only
    assert f"::add-mask::{TOKEN}" in result.stdout


def test_a_failed_run_never_shows_the_previous_runs_report(channel: Path, tmp_path: Path) -> None:
    """Self-hosted runners keep the workspace: the old report must not pass for the new one."""
    env = runner_env(tmp_path, {"channel": str(channel)})
    assert run_action(env).status == 0
    env["INPUT_CHANNEL"] = str(tmp_path / "missing")
    Path(env["GITHUB_OUTPUT"]).unlink()  # each step gets fresh file-command files
    Path(env["GITHUB_STEP_SUMMARY"]).unlink()
    failed = run_action(env)
    assert failed.status != 0
    # issue 16: the failure is the report now (its error), never the old run's counts
    errors = [line for line in failed.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "channel directory not found" in errors[0]
    assert "changed" not in failed.outputs
    assert "Run failed" in failed.summary and "| `noarch` |" not in failed.summary
    workspace = Path(env["GITHUB_WORKSPACE"])
    report = json.loads((workspace / failed.outputs["report"]).read_text())
    assert report["ok"] is False and report["subdirs"] == {} and report["error"]


def test_a_mass_removal_fails_the_step_unless_allowed(channel: Path, tmp_path: Path) -> None:
    """Issue 13: the guard's refusal is an error annotation, a caution and exit 1."""
    assert run_action(runner_env(tmp_path / "first", {"channel": str(channel)})).status == 0
    for artifact in [*channel.glob("linux-64/*.conda"), *channel.glob("linux-64/*.tar.bz2")]:
        artifact.unlink()
    before = (channel / "linux-64" / "run_exports.json").read_bytes()
    result = run_action(runner_env(tmp_path / "refused", {"channel": str(channel)}))
    assert result.status == 1, result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and "subdir not published::linux-64: not published" in errors[0]
    assert "> [!CAUTION]" in result.summary and "--allow-mass-removal" in result.summary
    assert (channel / "linux-64" / "run_exports.json").read_bytes() == before

    inputs = {"channel": str(channel), "allow-mass-removal": "true", "verify": "true"}
    result = run_action(runner_env(tmp_path / "allowed", inputs))
    assert result.status == 0, result.stderr
    assert json.loads((channel / "linux-64" / "run_exports.json").read_bytes())["packages"] == {}
    assert "--verify: every artifact re-read; 0 cache row(s) or output(s) differed" in (
        result.summary
    )


def test_fail_on_error_lists_the_offending_artifacts_as_errors(
    channel: Path, tmp_path: Path
) -> None:
    inputs = {"channel": str(channel), "mode": "dry-run", "fail-on-error": "true"}
    result = run_action(runner_env(tmp_path, inputs))
    assert result.status == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 2, errors
    assert "--strict: 1 artifact(s) unreadable" in errors[0]
    assert f"file={channel}/noarch/broken-1.0-0.conda" in errors[1]
    assert not [line for line in result.stdout.splitlines() if line.startswith("::warning")]


def test_files_written_to_the_workspace_belong_to_its_owner(sample: Path, tmp_path: Path) -> None:
    """Run as root (as the container is): report, summary, a local channel's outputs and
    its cache are handed to the owner of GITHUB_WORKSPACE."""
    import os
    import shutil

    if os.geteuid() != 0:
        pytest.skip("needs root, as the container runs (GitHub runs Docker actions as root)")
    env = runner_env(tmp_path, {"channel": "ch", "mode": "publish"})
    workspace = Path(env["GITHUB_WORKSPACE"])
    shutil.copytree(sample, workspace / "ch")
    mine = workspace / "ch" / "noarch" / "mine.txt"
    mine.write_text("root's own file, not the step's")
    owner = (4321, 4322)
    for path in (workspace, *workspace.rglob("*")):
        if path != mine:
            os.lchown(path, *owner)
    result = run_action(env)
    assert result.status == 0, result.stderr
    written = [
        workspace / result.outputs["report"],
        workspace / result.outputs["summary"],
        workspace / ".run-exports-index-report",
        workspace / "ch" / "noarch" / "run_exports.json",
        workspace / "ch" / "noarch" / "shards",
        *(workspace / "ch" / "noarch" / "shards").iterdir(),
        *(workspace / "ch" / ".run-exports-index").rglob("*"),
    ]
    assert len(written) > 6
    for path in written:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == owner, path
    wrong = [p for p in workspace.rglob("*") if p.lstat().st_uid != owner[0] and p != mine]
    assert wrong == []
    assert mine.stat().st_uid == 0  # only what the step wrote changes owner
