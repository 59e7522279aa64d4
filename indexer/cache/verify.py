"""`--verify` on the cache: rows re-read from the packages compared with what was cached."""

from __future__ import annotations

import logging

from indexer.cache.db import Cache
from indexer.model import Problem

log = logging.getLogger(__name__)

_ROW_FIELDS = ("index.json record", "run_exports", "run_exports problem", "error")


def verify_rows(
    cache: Cache,
    before: dict[str, tuple[tuple[str, ...], str | None, str | None]],
    unchanged: set[str],
    subdir: str,
) -> list[Problem]:
    """Compare the rows just read with what the cache held; keep known checksums.

    An artifact whose size and token did not change reads the same as when
    it was cached: a differing row was altered in the cache (or read by a
    tool with a bug since fixed) and is repaired now; it is returned. Its
    md5/sha256 are kept, as whole-artifact checksums need a full read.
    """
    after = cache.row_digests()
    keep = []
    repaired = []
    for name in sorted(unchanged & before.keys() & after.keys()):
        (old, md5, sha256), (new, _, _) = before[name], after[name]
        if old != new:
            fields = ", ".join(f for f, a, b in zip(_ROW_FIELDS, old, new, strict=True) if a != b)
            repaired.append(
                Problem(f"{subdir}/{name}", f"cached row differed from the package ({fields})")
            )
            log.warning("%s/%s: cached row differed from the package (%s)", subdir, name, fields)
        if md5 is not None and sha256 is not None and new[3] == "":
            keep.append((name, md5, sha256))
    cache.set_checksums(keep)
    return repaired
