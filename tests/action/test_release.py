"""Issue 16: one version, checked against the tag; LICENSE and CHANGELOG.

The version is written in pyproject.toml only. Installed, `indexer.__version__`
comes from the package metadata; in the action image the package runs from
/app without being installed, with pyproject.toml beside it, which is
reproduced here with `python -S` (no site-packages, so no metadata).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import indexer
from dev import release_check

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def image_version(app: Path) -> str:
    """`indexer.__version__` as the image computes it: /app on the path, nothing installed."""
    code = f"import sys; sys.path.insert(0, {str(app)!r}); import indexer; "
    code += "print(indexer.__version__)"
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=app
    )
    return result.stdout.strip()


def test_the_installed_version_is_the_one_in_pyproject() -> None:
    assert indexer.__version__ == PYPROJECT["version"]
    cli = subprocess.run(
        [sys.executable, "-m", "indexer", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert cli.stdout.split() == ["run-exports-index", PYPROJECT["version"]]


def test_the_image_reads_the_version_from_pyproject_beside_the_package(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "indexer").mkdir(parents=True)
    shutil.copyfile(ROOT / "indexer" / "__init__.py", app / "indexer" / "__init__.py")
    assert image_version(app) == indexer.UNKNOWN_VERSION  # neither metadata nor pyproject
    shutil.copyfile(ROOT / "pyproject.toml", app / "pyproject.toml")
    assert image_version(app) == PYPROJECT["version"]
    (app / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "9.9.9"\n')
    assert image_version(app) == indexer.UNKNOWN_VERSION  # another project's file
    (app / "pyproject.toml").write_text("[project\n")
    assert image_version(app) == indexer.UNKNOWN_VERSION


def test_the_dockerfile_puts_pyproject_where_the_package_looks() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY indexer /app/indexer" in dockerfile
    assert "COPY pyproject.toml /app/pyproject.toml" in dockerfile


CHANGELOG = "# Changelog\n\n## [Unreleased]\n\n## [1.2.3] - 2026-12-01\n\n### Fixed\n- x\n"


@pytest.mark.parametrize(
    ("tag", "version", "changelog", "expected"),
    [
        ("v1.2.3", "1.2.3", CHANGELOG, []),
        ("v1.2.4", "1.2.3", CHANGELOG, ["tag 'v1.2.4' is not v1.2.3"]),
        ("1.2.3", "1.2.3", CHANGELOG, ["tag '1.2.3' is not v1.2.3"]),
        ("v1.2.3", "1.2.3", "# Changelog\n\n## [Unreleased]\n", ["no '## [1.2.3]' section"]),
        ("v0+unknown", "0+unknown", CHANGELOG, ["not X.Y.Z", "no '## [0+unknown]'"]),
    ],
)
def test_release_check(tag: str, version: str, changelog: str, expected: list[str]) -> None:
    problems = release_check.problems(tag, version, changelog)
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


def test_release_check_prints_the_step_outputs_or_an_error() -> None:
    def run(tag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dev.release_check", tag],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )

    wrong = run("v999.0.0")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.startswith("::error::release refused: tag 'v999.0.0' is not v")
    version = PYPROJECT["version"]
    right = run(f"v{version}")
    if f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text():
        assert right.returncode == 0
        assert right.stdout.splitlines() == [f"version={version}", f"major={version.split('.')[0]}"]
    else:  # not released yet: only the changelog section is missing
        assert right.returncode == 1
        assert right.stderr.strip() == (
            f"::error::release refused: CHANGELOG.md has no '## [{version}]' section"
        )


def test_license_is_the_bsd_3_clause_pyproject_declares() -> None:
    assert PYPROJECT["license"] == {"text": "BSD-3-Clause"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert "Copyright (c) 2026, run-exports-index contributors" in text
    assert "Neither the name of the copyright holder nor the names of its" in text


def test_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text
    assert "\n## [Unreleased]\n" in text
    unreleased = text.split("\n## [Unreleased]\n", 1)[1].split("\n## [", 1)[0]
    for section in ("### Added", "### Changed", "### Fixed", "### Security"):
        assert section in unreleased
    for issue in ("issue 12", "issue 13", "issue 14", "issue 16"):
        assert issue in unreleased
