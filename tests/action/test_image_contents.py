"""Issue 14, acceptance 4: the action image holds the package and nothing for development.

Docker cannot run here, so the image is read from its recipe: every `COPY`
from the build context names only `indexer/`, the dependency lock or
`pyproject.toml` (the one place the version is written; issue 16), the
`.dockerignore` lets nothing else in (and names dev/, tests/, benchmarks/),
and nothing under `indexer/` imports the tooling left out.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from layout import MODULES, imports

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
IGNORE = [
    line.strip()
    for line in (ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
TOOLING = ("dev", "tests", "benchmarks")


def context_copies() -> list[list[str]]:
    """The sources of each COPY from the build context (not `--from=` another stage)."""
    copies = []
    for line in re.findall(r"^COPY\s+(.+)$", DOCKERFILE, flags=re.MULTILINE):
        words = line.split()
        if any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words if not w.startswith("--")]
        copies.append(args[:-1])
    return copies


def sent(path: str) -> bool:
    """Does `.dockerignore` let `path` into the build context? (last matching rule wins)"""
    included = True
    for rule in IGNORE:
        negate = rule.startswith("!")
        pattern = rule.removeprefix("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            included = negate
    return included


def test_the_image_copies_only_the_package_the_lock_and_the_version() -> None:
    sources = [s.rstrip("/") for copy in context_copies() for s in copy]
    assert sources, "no COPY from the build context found"
    assert set(sources) <= {"indexer", "requirements.lock", "pyproject.toml"}, sources
    assert "indexer" in sources
    # indexer/__init__.py reads the version from /app/pyproject.toml (not installed there)
    assert re.search(r"^COPY pyproject\.toml /app/pyproject\.toml$", DOCKERFILE, re.MULTILINE)
    assert sent("pyproject.toml")


def test_dockerignore_keeps_development_tooling_out() -> None:
    for folder in TOOLING:
        assert (ROOT / folder).is_dir(), f"{folder}/ should exist beside the package"
        assert f"{folder}/" in IGNORE, f".dockerignore should name {folder}/"
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            assert not sent(relative), f"{relative} would reach the build context"
    assert sent("indexer/pipeline.py") and sent("requirements.lock")


def test_demo_tooling_lives_outside_the_package() -> None:
    assert (ROOT / "dev" / "demo.py").is_file() and (ROOT / "dev" / "seaweed.py").is_file()
    shipped = {p.name for p in (ROOT / "indexer").rglob("*.py")}
    assert not shipped & {"demo.py", "demo_s3.py", "sample.py", "seaweed.py"}


def test_nothing_in_the_package_imports_the_tooling() -> None:
    offenders = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        for imported in imports(path, module_level=False)
        if imported.split(".")[0] in TOOLING
    ]
    assert offenders == []
