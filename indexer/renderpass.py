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

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import render, shards
from .cache import Cache, CachedArtifact
from .lints import Lint, lint_package, patch_target_lints, sort_key
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
    *,
    with_shards: bool,
) -> Rendered:
    """Render the document, lints and (optionally) shards from the cache."""
    packages: dict[str, Any] = {}
    packages_conda: dict[str, Any] = {}
    lints: list[Lint] = []
    rendered_shards: dict[str, bytes] = {}
    if instructions is not None:
        touched = touched | {name for name in cache.states() if instructions.fixes_for(name)}
    for rows in _packages(cache, instructions):
        for row in rows:
            if row.run_exports is not None:
                section = packages_conda if row.filename.endswith(".conda") else packages
                section[row.filename] = {"run_exports": row.run_exports}
        lints += lint_package(rows, touched)
        if with_shards:
            rendered_shards[rows[0].record["name"]] = shards.encode(shards.shard_document(rows))
    if instructions is not None:
        lints += patch_target_lints(instructions, cache.states())
    document = render.run_exports_document(subdir, ())
    document["packages"], document["packages.conda"] = packages, packages_conda
    return Rendered(document, sorted(lints, key=sort_key), dict(sorted(rendered_shards.items())))


def patched_view(cache: Cache, instructions: PatchInstructions | None) -> list[CachedArtifact]:
    """Every readable artifact as clients see it, in memory (repodata.json needs them all)."""
    return apply_patches(cache.artifacts(), instructions)


def _packages(
    cache: Cache, instructions: PatchInstructions | None
) -> Iterator[list[CachedArtifact]]:
    if instructions is None:
        yield from cache.packages()
        return
    yield from shards.by_package(patched_view(cache, instructions)).values()
