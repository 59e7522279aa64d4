"""What the channel publishes now, read back: the run_exports.json clients see.

The diff of a run is against what clients saw before it; the mass-removal
guard, when the cache knows nothing, counts what the published document lists.
"""

from __future__ import annotations

import hashlib
import logging

import orjson

from indexer import diff
from indexer.cache.db import Cache
from indexer.model import Entry
from indexer.publish.freshness import ours
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
