"""What the channel publishes now, read back: the run_exports.json clients see.

The diff of a run is against what clients saw before it; the mass-removal
guard, when the cache knows nothing, counts what the published document lists.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from indexer import diff
from indexer.cache.db import Cache
from indexer.model import Entry, RecordChange
from indexer.publish.freshness import ours
from indexer.render import records, shards
from indexer.storage.base import ChannelStore

log = logging.getLogger(__name__)


def published_document(
    store: ChannelStore,
    cache: Cache,
    path: str,
    listed: dict[str, Entry],
    data: bytes,
    document: dict,
) -> dict | None:
    """The run_exports document clients see now (None if there is none).

    When the published bytes are the ones we are about to write (`data`,
    rendered from `document`; the cache knows their hash), they are not
    fetched at all and `document` itself is returned.
    """
    if path not in listed:
        return None
    if ours(cache.published(), path, listed[path]) == hashlib.sha256(data).hexdigest():
        return document
    raw = store.read(path)
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        log.warning("%s is not valid JSON; treating every entry as new", path)
        return None


def removable(
    store: ChannelStore, subdir: str, listing: list[Entry], states: dict[str, tuple[int, str]]
) -> set[str]:
    """What this pass could remove: the cached artifacts, else the published entries."""
    before = set(states)
    if not before and any(e.name == "run_exports.json" for e in listing):
        raw = store.read(f"{subdir}/run_exports.json")
        try:
            before = set(diff.run_exports_entries(orjson.loads(raw))) if raw else set()
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            before = set()
    return before


MAX_COMPARED_PACKAGES = 500  # published shards fetched for the record diff, at most
MAX_SHARD_BYTES = 256 << 20  # a published shard larger than this (decoded) is not compared
MAX_SHARD_ENTRIES = 1 << 20


def client_record_changes(
    store: ChannelStore,
    subdir: str,
    previous: Any,
    rendered: Mapping[str, bytes],
    present: Collection[str],
    new: Collection[str],
    jobs: int = 8,
) -> tuple[list[RecordChange], list[str]]:
    """The record fields clients will see change, and warnings about what was not compared.

    Before: the published shards (the index `previous` names them) of the
    packages whose shard this run changes; after: `rendered` (package name →
    shard bytes). Only those shards are fetched (untrusted: bounded), at most
    `MAX_COMPARED_PACKAGES`. Without a published shard index there is nothing
    clients see yet: no changes.
    """
    if not isinstance(previous, dict) or not isinstance(previous.get("shards"), dict):
        return [], []
    old = {
        name: sha
        for name, sha in previous["shards"].items()
        if isinstance(name, str) and isinstance(sha, bytes) and len(sha) == 32
    }
    names = records.changed_packages(old, {n: shards.digest(d) for n, d in rendered.items()})
    warnings: list[str] = []
    if len(names) > MAX_COMPARED_PACKAGES:
        warnings.append(
            f"the records of {len(names)} packages change; the record diff shows the first "
            f"{MAX_COMPARED_PACKAGES} (by name)"
        )
        names = names[:MAX_COMPARED_PACKAGES]

    def published_records(name: str) -> dict[str, dict[str, Any]] | None:
        if name not in old:
            return {}
        data = store.read(shards.shard_path(subdir, old[name]))
        try:
            return records.shard_records(shards.decode(data, MAX_SHARD_BYTES, MAX_SHARD_ENTRIES))
        except Exception:  # absent (None), not zstd, not msgpack, too large
            return None

    with ThreadPoolExecutor(max(1, min(jobs, len(names), 16))) as pool:
        befores = list(pool.map(published_records, names))
    changes: list[RecordChange] = []
    for name, before in zip(names, befores, strict=True):
        if before is None:
            warnings.append(
                f"the published shard of {name!r} is missing or unreadable: "
                "its record changes are not shown"
            )
            continue
        after = records.shard_records(shards.decode(rendered[name])) if name in rendered else {}
        changes += records.record_changes(before, after, present, new)
    return changes, warnings
