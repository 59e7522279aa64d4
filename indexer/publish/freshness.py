"""A subdir's settled state: what a run with nothing new needs, without the cache.

After a run publishes a subdir it records a small summary beside the cache:
a fingerprint of the channel as that run left it (the tool version, the
options that shape the outputs, every artifact's name, size and token, and
the token of every output it wrote) and the problems a report repeats on
every run (unreadable artifacts, unknown run_exports). The next run computes
the same fingerprint from its listing alone. When they agree, nothing was
added, replaced or removed and every output is still the object we wrote, so
the outputs are already what this run would render: it reports from the
summary and never fetches or opens the cache (for 100,000 artifacts a 45 MB
SQLite file, more work than the listing itself).

The summary is self-validating: whoever wrote it, and whenever, it is used
only when the fingerprint of what is listed now matches. A missing, stale or
unreadable one just means the ordinary run. It is untrusted input: read with a
size cap (`MAX_SETTLED_BYTES`) and parsed strictly (exactly our keys and
types), anything else ignored. A forged summary that matches (someone who can
write the bucket can compute one) keeps outputs as they are: `--verify`
ignores it (see docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

FORMAT = 1
MAX_SETTLED_BYTES = 32 << 20  # ~300,000 problems with their reasons
_KEYS = {"format", "fingerprint", "unreadable", "run_exports_unknown"}
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def fingerprint(stamp: str, outputs: Mapping[str, str]) -> str:
    """One hash over the rendering stamp and each output's (path, token)."""
    digest = hashlib.sha256(f"settled-{FORMAT}|{stamp}".encode())
    for path in sorted(outputs):
        digest.update(f"\n{path}\t{outputs[path]}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Settled:
    """The summary one subdir's last publishing run left."""

    fingerprint: str
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (filename, why)
    run_exports_unknown: list[tuple[str, str]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "fingerprint": self.fingerprint,
                "unreadable": self.unreadable,
                "run_exports_unknown": self.run_exports_unknown,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Settled | None:
        """The summary in `data`; None if absent, unreadable or of another format."""
        if not data or len(data) > MAX_SETTLED_BYTES:
            return None
        try:
            raw = orjson.loads(data)
            if (
                not isinstance(raw, dict)
                or set(raw) != _KEYS
                or raw["format"] != FORMAT
                or not isinstance(raw["fingerprint"], str)
                or not _FINGERPRINT.fullmatch(raw["fingerprint"])
            ):
                return None
            return cls(
                raw["fingerprint"],
                _pairs(raw["unreadable"]),
                _pairs(raw["run_exports_unknown"]),
            )
        except (orjson.JSONDecodeError, TypeError, ValueError, RecursionError):
            return None


def _pairs(items: object) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise ValueError("not a list")
    pairs = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError("not a (filename, reason) pair")
        name, why = item
        if not isinstance(name, str) or not isinstance(why, str):
            raise ValueError("not a (filename, reason) pair")
        pairs.append((name, why))
    return pairs
