"""Refuse a release whose tag is not `v` + the package's version, or that the changelog lacks.

The release workflow runs this first, on the tagged commit, so an image and a
moved major tag never go out under a number the package does not report
(`run-exports-index --version`, the freshness stamp of published outputs).
On success it prints `version=X.Y.Z` and `major=X` for `$GITHUB_OUTPUT`.

    python -m dev.release_check v1.2.3 >> "$GITHUB_OUTPUT"
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import indexer

ROOT = Path(__file__).resolve().parents[1]
VERSION = re.compile(r"(?P<major>0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")


def problems(tag: str, version: str, changelog: str) -> list[str]:
    """Why `tag` cannot release `version` (empty when it can)."""
    found = []
    if not VERSION.fullmatch(version):
        found.append(f"package version {version!r} is not X.Y.Z")
    if tag != f"v{version}":
        found.append(f"tag {tag!r} is not v{version} (the version in pyproject.toml)")
    heading = re.compile(rf"^## \[{re.escape(version)}\]", re.MULTILINE)
    if not heading.search(changelog):
        found.append(f"CHANGELOG.md has no '## [{version}]' section")
    return found


def main(argv: list[str] | None = None) -> int:
    """Exit 1 with one `::error` line per problem; else print the step outputs."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dev.release_check TAG", file=sys.stderr)
        return 2
    tag, version = args[0], indexer.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    found = problems(tag, version, changelog)
    for problem in found:
        print(f"::error::release refused: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"version={version}")
    print(f"major={VERSION.fullmatch(version)['major']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
