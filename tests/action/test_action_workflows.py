"""Acceptance 4: every workflow file parses, and each use of this action passes real inputs.

Covers .github/workflows (CI, self-test, release) and .github/examples (the
workflows maintainers copy), where the action appears as `uses: ./` or
`uses: org/run-exports-index@<ref>`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
FILES = sorted(
    [
        *(ROOT / ".github" / "workflows").glob("*.y*ml"),
        *(ROOT / ".github" / "examples").glob("*.y*ml"),
    ]
)


def this_action(uses: str) -> bool:
    return uses == "./" or uses.split("@")[0].endswith("/run-exports-index")


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_the_expected_workflows_exist() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in FILES}
    assert {"workflows/ci.yml", "workflows/self-test.yml", "workflows/release.yml"} <= names
    assert len([n for n in names if n.startswith("examples/")]) >= 4


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_workflow_parses_and_passes_only_declared_inputs(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert isinstance(workflow, dict) and workflow.get("jobs"), f"{path} has no jobs"
    assert True in workflow or "on" in workflow  # YAML 1.1 reads a bare `on:` as True
    for job in workflow["jobs"].values():
        assert "runs-on" in job and job.get("steps"), job
    for step in steps(workflow):
        if not this_action(step.get("uses", "")):
            continue
        given = set(step.get("with", {}))
        unknown = given - set(ACTION["inputs"])
        assert not unknown, f"{path.name}: step {step.get('name')!r} passes unknown {unknown}"
        # mode: comment (the fork workflow's workflow_run job) posts a report: no channel
        assert "channel" in given or step["with"].get("mode") == "comment"
        for name, value in step.get("with", {}).items():
            assert isinstance(value, str), f"{path.name}: input {name} should be a string"


def test_self_test_runs_the_local_action_against_an_s3_service() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/self-test.yml").read_text())
    job = workflow["jobs"]["self-test"]
    assert job["services"], "self-test needs an S3-compatible service container"
    local = [s for s in job["steps"] if s.get("uses") == "./"]
    assert local and all(s["with"]["channel"].startswith("s3://") for s in local)
    assert all(s["with"].get("endpoint-url") for s in local)


def test_outputs_read_by_workflows_exist() -> None:
    for path in FILES:
        for name in re.findall(r"steps\.[\w-]+\.outputs\.([\w-]+)", path.read_text()):
            if path.name != "release.yml":
                assert name in ACTION["outputs"], f"{path.name} reads unknown output {name}"


def test_the_matrix_example_plans_its_subdirs_from_the_channel() -> None:
    """Issue 16: a first job lists the subdirs (mode: plan); the matrix uses that list."""
    workflow = yaml.safe_load((ROOT / ".github/examples/matrix.yml").read_text())
    plan, index = workflow["jobs"]["plan"], workflow["jobs"]["index"]
    (planner,) = [s for s in plan["steps"] if this_action(s.get("uses", ""))]
    assert planner["with"]["mode"] == "plan"
    assert plan["outputs"]["subdirs"] == f"${{{{ steps.{planner['id']}.outputs.subdirs }}}}"
    assert index["needs"] == "plan" and "'[]'" in index["if"]
    assert index["strategy"]["fail-fast"] is False
    assert index["strategy"]["matrix"]["subdir"] == "${{ fromJSON(needs.plan.outputs.subdirs) }}"
    (indexer,) = [s for s in index["steps"] if this_action(s.get("uses", ""))]
    assert indexer["with"]["subdirs"] == "${{ matrix.subdir }}"
