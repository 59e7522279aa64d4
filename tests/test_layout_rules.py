"""Issue 14, acceptance 2 and 3: the package's shape, checked from its source.

- no module over 400 lines;
- no import cycle among module-level imports of `indexer.*`;
- network libraries (boto3, botocore, urllib3, PyGithub) imported only under
  `indexer/storage/` and `indexer/action/`;
- the pure core (diff, render, report, the freshness decisions, model,
  config) imports no edge: no storage, cache, publishing, reading or wiring.
"""

from __future__ import annotations

import pytest
from layout import MODULES, imports, within

MAX_LINES = 400
NETWORK = ("boto3", "botocore", "urllib3", "github")
NETWORK_HOMES = ("indexer.storage", "indexer.action")
CORE = (
    "indexer.diff",
    "indexer.model",
    "indexer.config",
    "indexer.render",
    "indexer.report",
    "indexer.publish.freshness",
)
EDGES = (
    "indexer.storage",
    "indexer.cache",
    "indexer.publish.outputs",
    "indexer.publish.prune",
    "indexer.publish.repair",
    "indexer.read.pool",
    "indexer.read.info",
    "indexer.read.checksums",
    "indexer.read.channel_repodata",
    "indexer.read.patch_sources",
    "indexer.read.published",
    "indexer.pipeline",
    "indexer.cli",
    "indexer.action",
)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_400_lines(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"


def test_no_import_cycles() -> None:
    graph = {
        name: {m for m in imports(path, module_level=True) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = [*stack[stack.index(name) :], name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_network_libraries_only_in_storage_and_action() -> None:
    offenders = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if not within(name, NETWORK_HOMES)
        for imported in sorted(imports(path, module_level=False))
        if imported.split(".")[0] in NETWORK
    ]
    assert offenders == []


def test_the_pure_core_imports_no_edge() -> None:
    offenders = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if within(name, CORE)
        for imported in sorted(imports(path, module_level=False))
        if within(imported, EDGES)
    ]
    assert offenders == []


def test_the_package_imports_no_dev_or_test_tooling() -> None:
    offenders = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        for imported in sorted(imports(path, module_level=False))
        if imported.split(".")[0] in ("dev", "tests", "benchmarks", "conftest")
    ]
    assert offenders == []


def test_the_rules_see_the_package() -> None:
    """The checks above parse real modules (a wrong root would pass them vacuously)."""
    assert {"indexer.pipeline", "indexer.model", "indexer.render.shards"} <= MODULES.keys()
    assert "indexer.model" in imports(MODULES["indexer.diff"], module_level=True)
