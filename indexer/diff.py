"""Compare a subdir listing with the cache: a pure function, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .storage import Entry


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run must do for one subdir."""

    new: list[Entry] = field(default_factory=list)
    changed: list[Entry] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def to_read(self) -> list[Entry]:
        """Artifacts whose info must be read, in name order."""
        return sorted(self.new + self.changed, key=lambda e: e.name)


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
