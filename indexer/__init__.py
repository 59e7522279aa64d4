"""run-exports-index: keep a conda channel's run_exports indexed.

The version is written once, in pyproject.toml. An installed package reads it
from its metadata (which pip wrote from pyproject.toml); the action's image runs
the package from /app without installing it, with pyproject.toml copied beside
it, so there the same file is read directly. No generated file to keep in step.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

DISTRIBUTION = "run-exports-index"
UNKNOWN_VERSION = "0+unknown"


def _version_from_pyproject(path: Path) -> str | None:
    """The version in `path` when it is this project's pyproject.toml, else None."""
    import tomllib

    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    version = project.get("version")
    if project.get("name") != DISTRIBUTION or not isinstance(version, str):
        return None  # some other project's file: not ours to trust
    return version


def _version() -> str:
    """Package metadata when installed; else the source tree's pyproject.toml (the image)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    found = _version_from_pyproject(Path(__file__).resolve().parent.parent / "pyproject.toml")
    return found or UNKNOWN_VERSION


__version__ = _version()
