"""Compare a listing with the cache, and two run_exports documents: pure, no I/O.

Also the mass-removal decision: a plan that drops too much of a subdir is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from indexer.model import SECTIONS, Entry, Plan, RunExportsChange, package_name


def plan(listing: Iterable[Entry], cached: Mapping[str, tuple[int, str]]) -> Plan:
    """Sort the listed artifacts into new, changed, removed and unchanged.

    `cached` maps filename → (size, token). An artifact is changed when either
    differs; every name in the cache but not in the listing is removed.
    """
    result = Plan()
    seen: set[str] = set()
    for entry in sorted(listing, key=lambda e: e.name):
        seen.add(entry.name)
        state = cached.get(entry.name)
        if state is None:
            result.new.append(entry)
        elif state != (entry.size, entry.token):
            result.changed.append(entry)
        else:
            result.unchanged.append(entry.name)
    result.removed.extend(sorted(set(cached) - seen))
    return result


def run_exports_entries(document: Mapping[str, Any] | None) -> dict[str, Any]:
    """filename → run_exports of a CEP-12 document (both sections).

    The document may be another indexer's (or anyone's: it is fetched from the
    channel): conda-index writes a package's list-form run_exports as it
    found it, which means `{"weak": list}` (CEP-34); any other value that is
    not an object is unknown (None).
    """
    if not isinstance(document, Mapping):
        return {}
    entries: dict[str, Any] = {}
    for section in SECTIONS:
        found = document.get(section)
        if not isinstance(found, Mapping):
            continue
        for filename, entry in found.items():
            if isinstance(entry, Mapping):
                entries[filename] = _as_object(entry.get("run_exports"))
    return entries


def _as_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list):
        return {"weak": value} if value else {}
    return value if isinstance(value, dict) else None


def diff_run_exports(
    old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> list[RunExportsChange]:
    """How each artifact's entry moves between two run_exports.json documents.

    Sorted by package name, then filename: the order people read a diff in.
    """
    before, after = run_exports_entries(old), run_exports_entries(new)
    changes = []
    for filename in sorted(before.keys() | after.keys(), key=lambda f: (package_name(f), f)):
        was, now = before.get(filename), after.get(filename)
        if filename in before and filename in after and was == now:
            continue
        kind = (
            "added" if filename not in before else "removed" if filename not in after else "changed"
        )
        changes.append(RunExportsChange(package_name(filename), filename, kind, was, now))
    return changes


def mass_removal(
    before: set[str], artifacts: Iterable[Entry], max_share: float, allow: bool
) -> str | None:
    """Why a pass must not publish the subdir (one line), or None: the mass-removal guard.

    `before` is what a run can remove: the artifacts the cache knows, or when
    it knows none (a first run, a lost or rebuilt cache) those the published
    run_exports.json lists. Nothing known or published: never a mass removal.
    """
    if allow or not before:
        return None
    gone = len(before - {e.name for e in artifacts})
    share = gone / len(before)
    if share <= max_share:
        return None
    return (
        f"not published: this run would remove {gone} of its {len(before)} artifacts "
        f"({share:.0%}, more than the {max_share:.0%} allowed); "
        "check the channel and its listing, or pass --allow-mass-removal if this is intended"
    )
