"""Lints a maintainer wants before merging a metadata change (pure).

Each lint looks only at what the run touches (new, changed, staged or patched
artifacts) so an old channel with historic quirks stays quiet. Match specs and
versions are parsed with py-rattler, the parser conda's Rust tooling uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from indexer.model import CachedArtifact, Lint, filename_mismatch, suffix_of
from indexer.render.patches import PatchInstructions, unknown_targets

if TYPE_CHECKING:  # rattler is imported where a spec is parsed: ~40 ms a run that lints nothing
    from rattler import MatchSpec, Version

DROPPED = "dropped-run-exports"
INVALID_SPEC = "invalid-match-spec"
EXCLUDES_OWN = "pin-excludes-own-version"
UNKNOWN_PATCH_TARGET = "patch-unknown-artifact"
FILENAME_MISMATCH = "filename-mismatch"


def with_patched(
    touched: Iterable[str], instructions: PatchInstructions | None, present: Iterable[str]
) -> set[str]:
    """`touched` and every present artifact the patch instructions fix."""
    touched = set(touched)
    if instructions is not None:
        touched |= {name for name in present if instructions.fixes_for(name)}
    return touched


def finish(
    lints: list[Lint], instructions: PatchInstructions | None, present: Iterable[str]
) -> list[Lint]:
    """The lints of every package, plus patches naming absent artifacts, sorted."""
    if instructions is not None:
        lints = lints + [
            Lint(name, UNKNOWN_PATCH_TARGET, f"the patch names {name}, which is not in the channel")
            for name in unknown_targets(instructions, present)
        ]
    return sorted(lints, key=lambda lint: (lint.filename, lint.kind, lint.message))


def lint_package(rows: list[CachedArtifact], touched: set[str]) -> list[Lint]:
    """Lints of the touched artifacts among `rows`, every readable build of one package."""
    lints: list[Lint] = []
    for row in rows:
        if row.filename not in touched:
            continue
        mismatch = filename_mismatch(row.filename, row.record)
        if mismatch is not None:  # indexed anyway, as conda-index indexes it
            lints.append(Lint(row.filename, FILENAME_MISMATCH, mismatch))
        if row.run_exports is None:
            continue
        lints += _spec_lints(row)
        previous = previous_build(row, rows)
        if previous is not None:
            lints += _dropped_lints(row, previous)
    return lints


def _specs(run_exports: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for kind, specs in sorted(run_exports.items()):
        if isinstance(specs, list):
            for spec in specs:
                yield kind, spec


def _spec_lints(row: CachedArtifact) -> list[Lint]:
    from rattler import MatchSpec, Version, VersionSpec

    lints = []
    name, version = row.record["name"], row.record["version"]
    for kind, spec in _specs(row.run_exports or {}):
        try:
            parsed = MatchSpec(spec)
        except Exception as exc:  # rattler raises its own InvalidMatchSpecError
            lints.append(
                Lint(
                    row.filename,
                    INVALID_SPEC,
                    f"{kind}: {spec!r} is not a valid match spec ({exc})",
                )
            )
            continue
        if _spec_name(parsed) != name or not parsed.version:
            continue
        try:
            allowed = VersionSpec(parsed.version).matches(Version(version))
        except Exception:  # an unparsable own version: nothing to compare
            continue
        if not allowed:
            lints.append(
                Lint(
                    row.filename,
                    EXCLUDES_OWN,
                    f"{kind}: {spec!r} excludes {name} {version} itself",
                )
            )
    return lints


def _spec_name(spec: MatchSpec) -> str | None:
    """The exact package name a spec selects (None for globs and nameless specs)."""
    matcher = spec.name
    try:
        return matcher.as_package_name().normalized if matcher is not None else None
    except Exception:  # a glob or regex name has no single package name
        return None


def _exported_names(run_exports: dict[str, Any] | None) -> dict[str, set[str]]:
    """kind → package names exported (`libfoo >=1` and `libfoo>=1` are both libfoo)."""
    from rattler import MatchSpec

    names: dict[str, set[str]] = {}
    for kind, spec in _specs(run_exports or {}):
        try:
            name = _spec_name(MatchSpec(spec)) or spec
        except Exception:  # an invalid spec is its own lint; its leading name still counts
            name = re.split(r"[\s<>=!~,]", spec.strip(), maxsplit=1)[0] or spec
        names.setdefault(kind, set()).add(name)
    return names


def _dropped_lints(row: CachedArtifact, previous: CachedArtifact) -> list[Lint]:
    before, after = _exported_names(previous.run_exports), _exported_names(row.run_exports)
    dropped = [
        f"{kind}: {', '.join(sorted(names - after.get(kind, set())))}"
        for kind, names in sorted(before.items())
        if names - after.get(kind, set())
    ]
    if not dropped:
        return []
    return [
        Lint(
            row.filename,
            DROPPED,
            f"drops run_exports that the previous build {previous.filename} had "
            f"({'; '.join(dropped)})",
        )
    ]


def _order_key(row: CachedArtifact) -> tuple[Version, int] | None:
    from rattler import Version

    try:
        return Version(str(row.record["version"])), int(row.record.get("build_number", 0))
    except Exception:
        return None


def previous_build(row: CachedArtifact, rows: Iterable[CachedArtifact]) -> CachedArtifact | None:
    """The same package's nearest lower build (lower version, or same version and build number).

    Among equals, the one of the same format (`.conda`/`.tar.bz2`) wins, then the name.
    """
    mine = _order_key(row)
    if mine is None:
        return None
    suffix = suffix_of(row.filename)
    best: tuple[tuple[Version, int], bool, str] | None = None
    chosen = None
    for other in rows:
        if other.filename == row.filename or other.record["name"] != row.record["name"]:
            continue
        key = _order_key(other)
        if key is None or not key < mine:
            continue
        rank = (key, other.filename.endswith(suffix), other.filename)
        if best is None or rank > best:
            best, chosen = rank, other
    return chosen
