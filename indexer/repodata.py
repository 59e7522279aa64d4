"""Render `repodata.json` from the same records as the shards (`--repodata`): pure.

For channels that let this tool own their index. Laid out as conda-index 0.13
writes it without patches or base_url: `info.subdir`, `packages`,
`packages.conda`, `removed: []`, `repodata_version: 1`, compact with sorted
keys, checksums in hex. Like conda-index, repodata.json records carry no
`run_exports` (classic clients get those from run_exports.json); an artifact
is listed only when readable and its checksums are known.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .cache import CachedArtifact
from .render import by_format, dumps_compact

REPODATA_JSON = "repodata.json"
REPODATA_VERSION = 1


def repodata_record(artifact: CachedArtifact) -> dict[str, Any]:
    """An artifact's repodata.json record: index.json fields, size, hex checksums."""
    if artifact.record is None or artifact.md5 is None or artifact.sha256 is None:
        raise ValueError(f"{artifact.filename} has no record or checksums")
    record = {k: v for k, v in artifact.record.items() if k != "run_exports"}
    record["md5"] = artifact.md5
    record["sha256"] = artifact.sha256
    return record


def repodata_document(subdir: str, artifacts: Iterable[CachedArtifact]) -> dict[str, Any]:
    packages, packages_conda = by_format(
        artifacts, lambda a: repodata_record(a) if a.readable and a.record is not None else None
    )
    return {
        "info": {"subdir": subdir},
        "packages": packages,
        "packages.conda": packages_conda,
        "removed": [],
        "repodata_version": REPODATA_VERSION,
    }


def repodata_json(subdir: str, artifacts: Iterable[CachedArtifact]) -> bytes:
    """The bytes of `<subdir>/repodata.json` (no trailing newline, as conda-index)."""
    return dumps_compact(repodata_document(subdir, artifacts))
