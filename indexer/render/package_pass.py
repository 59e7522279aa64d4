"""One pass over the cached rows, package by package: everything rendered from them.

The run_exports document, the lints and the shards all need the rows as
clients see them (patched), and the lints and shards need them grouped by
package name. Loading every row at once made a cold run over 100,000
artifacts hold them all (~1 KB each as Python objects) next to everything
rendered from them. Here the rows come one package at a time, streamed from
SQLite, and only what is rendered stays: the document (which the diff needs),
the lints and each shard's compressed bytes.

With patch instructions, or a channel repodata.json (another indexer's) that
the shards must agree with, the view is built in memory first: patches are
per artifact, but one could rename a package, so such a subdir is grouped
after patching, never before.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from indexer.model import CachedArtifact, Lint, Taken, by_package
from indexer.render import run_exports as render
from indexer.render import shards
from indexer.render.lints import finish, lint_package, with_patched
from indexer.render.patches import PatchInstructions, patch_rows


class Rows(Protocol):
    """Where the rows come from (the cache, `Cache`): rendering only reads them."""

    def artifacts(self) -> list[CachedArtifact]: ...

    def packages(self) -> Iterator[list[CachedArtifact]]: ...


class Resolver(Protocol):
    """The channel's repodata.json the shards agree with (`read.channel_repodata`)."""

    def resolve(
        self, rows: Iterable[CachedArtifact], patched: Iterable[CachedArtifact]
    ) -> tuple[list[CachedArtifact], list[Taken]]: ...


@dataclass
class Rendered:
    """What one pass renders for a subdir."""

    document: dict[str, Any]  # run_exports.json as published
    lints: list[Lint] = field(default_factory=list)
    shards: dict[str, bytes] = field(default_factory=dict)  # package name → shard bytes
    removed: list[str] = field(default_factory=list)  # what the patches removed
    taken: list[Taken] = field(default_factory=list)  # records taken from repodata.json


def render_subdir(
    cache: Rows,
    subdir: str,
    touched: set[str],
    instructions: PatchInstructions | None,
    present: Collection[str],
    *,
    with_shards: bool,
    patch_run_exports: bool = True,
    published: Resolver | None = None,
) -> Rendered:
    """Render the document, lints and (optionally) shards from the cache.

    `present` is every cached filename (patches may name absent ones).
    `run_exports.json` mirrors the packages unless `patch_run_exports`; the
    shards carry what clients solve with: the patched records, and where
    `published` (the channel's repodata.json) says otherwise, its records.
    """
    touched = with_patched(touched, instructions, present)
    if instructions is None and published is None:  # streamed, one package at a time
        return _streamed(cache, subdir, touched, present, with_shards)
    rows = [a for a in cache.artifacts() if a.readable and a.record is not None]
    patched, removed = patch_rows(rows, instructions)
    final, taken = (patched, []) if published is None else published.resolve(rows, patched)
    lints: list[Lint] = []
    rendered_shards: dict[str, bytes] = {}
    for group in by_package(final).values():
        lints += lint_package(group, touched)
        if with_shards:
            rendered_shards[group[0].record["name"]] = shards.encode(shards.shard_document(group))
    mirrored = patched if patch_run_exports and instructions is not None else rows
    document = render.run_exports_document(subdir, mirrored)
    lints = finish(lints, instructions, present)
    return Rendered(document, lints, dict(sorted(rendered_shards.items())), removed, taken)


def _streamed(
    cache: Rows, subdir: str, touched: set[str], present: Collection[str], with_shards: bool
) -> Rendered:
    packages: dict[str, Any] = {}
    packages_conda: dict[str, Any] = {}
    lints: list[Lint] = []
    rendered_shards: dict[str, bytes] = {}
    for rows in cache.packages():
        sections = render.by_format(rows, render.run_exports_entry)
        packages.update(sections[0])
        packages_conda.update(sections[1])
        lints += lint_package(rows, touched)
        if with_shards:
            rendered_shards[rows[0].record["name"]] = shards.encode(shards.shard_document(rows))
    document = render.run_exports_sections(subdir, packages, packages_conda)
    return Rendered(document, finish(lints, None, present), dict(sorted(rendered_shards.items())))


def patched_view(
    cache: Rows, instructions: PatchInstructions | None
) -> tuple[list[CachedArtifact], list[str]]:
    """Every readable artifact as the patches leave it, and what they removed (repodata.json)."""
    return patch_rows(cache.artifacts(), instructions)
