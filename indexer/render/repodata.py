"""Render `repodata.json` from the same records as the shards (`--repodata`): pure.

For channels that let this tool own their index. Laid out as conda-index 0.13
writes it without patches or base_url: `info.subdir`, `packages`,
`packages.conda`, `removed: []`, `repodata_version: 1`, compact with sorted
keys, checksums in hex. Like conda-index, repodata.json records carry no
`run_exports` (classic clients get those from run_exports.json); an artifact
is listed only when readable and its checksums are known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from indexer.model import CachedArtifact, Output
from indexer.render.run_exports import by_format, dumps_compact, zst_output

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


def repodata_document(
    subdir: str, artifacts: Iterable[CachedArtifact], removed: Iterable[str] = ()
) -> dict[str, Any]:
    """The document; `removed` lists what patch instructions removed (sorted)."""
    packages, packages_conda = by_format(
        artifacts, lambda a: repodata_record(a) if a.readable and a.record is not None else None
    )
    return {
        "info": {"subdir": subdir},
        "packages": packages,
        "packages.conda": packages_conda,
        "removed": sorted(removed),
        "repodata_version": REPODATA_VERSION,
    }


def repodata_json(
    subdir: str, artifacts: Iterable[CachedArtifact], removed: Iterable[str] = ()
) -> bytes:
    """The bytes of `<subdir>/repodata.json` (no trailing newline, as conda-index)."""
    return dumps_compact(repodata_document(subdir, artifacts, removed))


# -- the channel's repodata.json, written by another indexer -------------------------
# What clients that read repodata.json solve with. Shards must agree with it, so
# where our record (packages + the patches we can see) differs from the one it
# publishes for the same artifact, the published one is taken (plus run_exports)
# and reported. Read once per version of the file: the cache keeps a digest of
# every record it lists (and the record itself where ours differed), keyed by
# the file's token, so a warm run never re-reads a 100 MB repodata.json.
SOURCE_NAMES = ("repodata.json.zst", "repodata.json")  # what a client asks for first
REMOVED = "removed"  # the digest of an entry in its `removed` list


def record_digest(record: Mapping[str, Any]) -> str:
    """sha256 of a record's canonical JSON, without `run_exports` (ours add them)."""
    body = {k: v for k, v in record.items() if k != "run_exports"}
    return hashlib.sha256(dumps_compact(body)).hexdigest()


def differing_fields(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """Field names whose values differ (or exist on one side only), run_exports aside."""
    keys = (set(ours) | set(theirs)) - {"run_exports"}
    return sorted(k for k in keys if k not in ours or k not in theirs or ours[k] != theirs[k])


def repodata_outputs(
    subdir: str, artifacts: Iterable[CachedArtifact], removed: Iterable[str]
) -> list[Output]:
    """`repodata.json` and its `.zst` (with `--repodata`), from the patched view."""
    document = repodata_json(subdir, artifacts, removed)
    path = f"{subdir}/{REPODATA_JSON}"
    return [Output(path, document), zst_output(f"{path}.zst", document)]
