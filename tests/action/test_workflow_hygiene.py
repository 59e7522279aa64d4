"""Issue 16, acceptance 4: the workflows are zizmor-clean offline and hold the rules it checks.

zizmor (the test extra, run with `--offline`) audits .github/workflows, the
examples in .github/examples and every complete workflow shown in the docs.
The rules the issue names are also asserted directly, so that a zizmor
release that reads them differently cannot let one slip: `persist-credentials:
false` on every checkout, no `${{ }}` inside a `run:` script (also in the docs'
snippets), no floating image tags, per-job permissions in this repository's
workflows, and the release workflow's checks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ZIZMOR = Path(sys.executable).with_name("zizmor")
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
EXAMPLES = sorted((ROOT / ".github" / "examples").glob("*.y*ml"))
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_BLOCK = re.compile(r"^(?P<fence>`{3,})ya?ml\n(?P<body>.*?)^(?P=fence)$", re.M | re.S)


def doc_snippets() -> list[tuple[str, object, str]]:
    """(where, parsed YAML, text) of every yaml code block in the docs that parses."""
    found = []
    for path in DOCS:
        for match in CODE_BLOCK.finditer(path.read_text(encoding="utf-8")):
            try:
                parsed = yaml.safe_load(match["body"])
            except yaml.YAMLError:
                continue
            line = path.read_text(encoding="utf-8")[: match.start()].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", parsed, match["body"]))
    return found


def steps_in(document: object) -> list[dict]:
    """Every step (a mapping with `uses` or `run`) anywhere in a workflow or a snippet of one."""
    found = []
    if isinstance(document, dict):
        if "uses" in document or "run" in document:
            found.append(document)
        for value in document.values():
            found.extend(steps_in(value))
    elif isinstance(document, list):
        for item in document:
            found.extend(steps_in(item))
    return found


def everything() -> list[tuple[str, object]]:
    files = [(str(p.relative_to(ROOT)), yaml.safe_load(p.read_text())) for p in WORKFLOWS]
    files += [(str(p.relative_to(ROOT)), yaml.safe_load(p.read_text())) for p in EXAMPLES]
    return files + [(where, parsed) for where, parsed, _ in doc_snippets()]


def zizmor() -> str:
    found = str(ZIZMOR) if ZIZMOR.exists() else shutil.which("zizmor")
    if found is None:
        pytest.fail("zizmor not found: install the test extra")
    return found


def test_zizmor_finds_nothing_offline(tmp_path: Path) -> None:
    documents = [*WORKFLOWS, *EXAMPLES]
    for index, (_, parsed, text) in enumerate(doc_snippets()):
        # a complete workflow (YAML reads the `on` key as True); a fragment of jobs is not one
        if isinstance(parsed, dict) and "jobs" in parsed and True in parsed:
            copy = tmp_path / f"doc-{index}.yml"
            copy.write_text(text)
            documents.append(copy)
    assert len(documents) > len(WORKFLOWS) + len(EXAMPLES), "the docs show a whole workflow"
    result = subprocess.run(
        [
            zizmor(),
            "--offline",
            "--strict-collection",
            "--no-progress",
            "--config",
            str(ROOT / ".github" / "zizmor.yml"),
            *map(str, documents),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


def test_the_makefile_lint_runs_zizmor_on_workflows_and_examples() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "zizmor --offline" in lint
    assert ".github/workflows" in lint and ".github/examples/*.yml" in lint
    assert "zizmor" in (ROOT / "pyproject.toml").read_text()


def test_every_checkout_drops_its_credentials() -> None:
    checkouts = [
        (where, step)
        for where, document in everything()
        for step in steps_in(document)
        if str(step.get("uses", "")).startswith("actions/checkout@")
    ]
    assert checkouts
    for where, step in checkouts:
        assert (step.get("with") or {}).get("persist-credentials") is False, where


def test_no_expression_inside_a_run_script() -> None:
    runs = [
        (where, step["run"])
        for where, document in everything()
        for step in steps_in(document)
        if "run" in step
    ]
    assert len(runs) > 5
    for where, script in runs:
        assert "${{" not in str(script), f"{where}: pass it through env:, {script!r}"


def test_no_floating_image_tags() -> None:
    images = []
    for path in [*WORKFLOWS, *EXAMPLES]:
        assert ":latest" not in path.read_text(), path.name
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            containers = [job.get("container"), *(job.get("services") or {}).values()]
            images += [c if isinstance(c, str) else c["image"] for c in containers if c]
    assert images, "the self-test's S3 service"
    for image in images:  # a version tag at least (zizmor's pedantic persona wants a digest)
        assert re.search(r":[0-9][\w.-]*$|@sha256:[0-9a-f]{64}$", image), image


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_each_job_asks_for_its_own_permissions(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow.get("permissions") == {}, f"{path.name}: top level grants nothing"
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{path.name}: job {name}"
        assert set(job["permissions"].values()) <= {"read", "write"}
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        assert writes <= {"contents", "packages", "pull-requests"}, (path.name, name, writes)


def test_only_the_release_writes_contents_and_packages() -> None:
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        for name, job in workflow["jobs"].items():
            grants = job.get("permissions", {})
            if grants.get("contents") == "write" or grants.get("packages") == "write":
                assert (path.name, name) in {("release.yml", "release"), ("release.yml", "image")}


def test_the_release_checks_builds_multi_arch_and_pins_by_digest() -> None:
    release = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    jobs = release["jobs"]
    assert release[True] == {"push": {"tags": ["v*.*.*"]}}  # YAML 1.1 reads `on` as True
    check = "\n".join(str(s.get("run", "")) for s in jobs["check"]["steps"])
    assert 'python -m dev.release_check "$GITHUB_REF_NAME"' in check
    assert "dev.pin_actions --check .github/workflows .github/examples" in check
    image_steps = jobs["image"]["steps"]
    uses = [str(s.get("uses", "")).split("@")[0] for s in image_steps]
    for action in ("docker/setup-qemu-action", "docker/setup-buildx-action"):
        assert action in uses
    build = next(s for s in image_steps if str(s.get("uses", "")).startswith("docker/build-push"))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64" and build["with"]["push"]
    assert jobs["image"]["needs"] == "check" and set(jobs["release"]["needs"]) == {"check", "image"}
    pin = "\n".join(str(s.get("run", "")) for s in jobs["release"]["steps"])
    assert 'python3 -m dev.pin_image --image "$IMAGE@$DIGEST"' in pin
    assert 'git tag --force "$GITHUB_REF_NAME" HEAD' in pin
