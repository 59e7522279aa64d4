"""One pass over the cached rows, package by package: everything rendered from them.

The run_exports document, the lints and the shards all need the rows as
clients see them (patched), and the lints and shards need them grouped by
package name. Loading every row at once made a cold run over 100,000
artifacts hold them all (~1 KB each as Python objects) next to everything
rendered from them. Here the rows come one package at a time, streamed from
SQLite, and only what is rendered stays: the document (which the diff needs),
the lints and each shard's compressed bytes.

With patch instructions the patched view is built in memory first, as
before: patches are per artifact, but one could rename a package, and a
subdir with patches is grouped after patching, never before.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import render, shards
from .cache import Cache, CachedArtifact, by_package
from .lints import Lint, finish, lint_package, with_patched
from .patches import PatchInstructions, apply_patches


@dataclass
class Rendered:
    """What one pass renders for a subdir."""

    document: dict[str, Any]  # run_exports.json as clients see it
    lints: list[Lint] = field(default_factory=list)
    shards: dict[str, bytes] = field(default_factory=dict)  # package name → shard bytes


def render_subdir(
    cache: Cache,
    subdir: str,
    touched: set[str],
    instructions: PatchInstructions | None,
    present: Collection[str],
    *,
    with_shards: bool,
) -> Rendered:
    """Render the document, lints and (optionally) shards from the cache.

    `present` is every cached filename (patches may name absent ones).
    """
    packages: dict[str, Any] = {}
    packages_conda: dict[str, Any] = {}
    lints: list[Lint] = []
    rendered_shards: dict[str, bytes] = {}
    touched = with_patched(touched, instructions, present)
    for rows in _packages(cache, instructions):
        sections = render.by_format(rows, render.run_exports_entry)
        packages.update(sections[0])
        packages_conda.update(sections[1])
        lints += lint_package(rows, touched)
        if with_shards:
            rendered_shards[rows[0].record["name"]] = shards.encode(shards.shard_document(rows))
    document = render.run_exports_sections(subdir, packages, packages_conda)
    lints = finish(lints, instructions, present)
    return Rendered(document, lints, dict(sorted(rendered_shards.items())))


def patched_view(cache: Cache, instructions: PatchInstructions | None) -> list[CachedArtifact]:
    """Every readable artifact as clients see it, in memory (repodata.json needs them all)."""
    return apply_patches(cache.artifacts(), instructions)


def _packages(
    cache: Cache, instructions: PatchInstructions | None
) -> Iterator[list[CachedArtifact]]:
    if instructions is None:
        yield from cache.packages()
        return
    yield from by_package(patched_view(cache, instructions)).values()
