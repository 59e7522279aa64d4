"""`VersionOrder`: a small ordering of conda version strings.

conda-index only uses it to pick the newest version for channeldata.json,
which the benchmark does not write; this ordering (epoch, then dot/underscore
separated parts, numbers before strings) is written here for the shim and is
good enough for that purpose.
"""

from __future__ import annotations

import re
from functools import total_ordering

_PART = re.compile(r"\d+|[^\d]+")


def _key(version: str) -> tuple:
    epoch, _, rest = version.lower().rpartition("!")
    parts: list[tuple[int, int | str]] = []
    for piece in re.split(r"[._-]", rest.split("+", 1)[0]):
        for token in _PART.findall(piece):
            parts.append((1, int(token)) if token.isdigit() else (0, token))
    return (int(epoch or 0), tuple(parts))


@total_ordering
class VersionOrder:
    """Comparable wrapper of a version string."""

    def __init__(self, version: str) -> None:
        self.version = str(version)
        self._key = _key(self.version)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionOrder) and self._key == other._key

    def __lt__(self, other: VersionOrder) -> bool:
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.version
