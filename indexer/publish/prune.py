"""Pruning shards no index names, past a grace period (`--prune-shards AGE`).

Shards are content-addressed and immutable: a new index names new ones and
stops naming others, which clients holding the previous index still fetch.
So the moment a shard stops being named is recorded before publishing
(`record_dropped`), and only a shard unnamed for longer than AGE (at least the
index's max-age plus a CDN allowance, `config.MIN_PRUNE_AGE_S`) is deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from indexer.cache.db import Cache
from indexer.model import Entry, Pruned, is_artifact
from indexer.publish.parallel import run_each
from indexer.render import shards
from indexer.storage.base import ChannelStore

log = logging.getLogger(__name__)


def prunable(
    entries: Iterable[Entry],
    referenced: set[str],
    dropped: dict[str, float],
    folder: str,
    now: float,
    age: float,
) -> list[str]:
    """Paths of shards no index names whose grace period is over (pure).

    A shard's age counts from the later of its upload and the moment our index
    stopped naming it: a shard written a year ago and dropped a minute ago is
    still what clients holding the previous index will ask for.
    """
    paths = []
    for entry in entries:
        if not shards.SHARD_NAME_RE.match(entry.name) or entry.name in referenced:
            continue
        if entry.modified is None:  # the backend cannot age it: keep it
            continue
        path = f"{folder}/{entry.name}"
        since = max(entry.modified, dropped.get(path, entry.modified))
        if now - since > age:
            paths.append(path)
    return sorted(paths)


def read_previous_index(store: ChannelStore, subdir: str, listing: Iterable[Entry]) -> Any:
    """The published shard index, decoded (None: absent, too large or unreadable: replaced)."""
    entries = {e.name: e for e in listing}
    if shards.SHARD_INDEX not in entries:
        return None
    path = f"{subdir}/{shards.SHARD_INDEX}"
    artifacts = sum(1 for name in entries if is_artifact(name))
    max_bytes, max_entries = shards.index_limits(artifacts)
    if entries[shards.SHARD_INDEX].size > max_bytes:
        log.warning("%s is larger than this subdir's could be; writing a new one", path)
        return None
    data = store.read(path)
    if data is None:
        return None
    try:
        return shards.decode(data, max_bytes, max_entries)
    except Exception as exc:  # zstd and msgpack raise many types; a bad index is replaced
        log.warning("%s is unreadable (%s); writing a new one", path, exc)
        return None


def shard_names(store: ChannelStore, subdir: str) -> set[str]:
    """Names of the objects in `<subdir>/shards/` (which shards are already published)."""
    return {e.name for e in store.list_subdir(f"{subdir}/{shards.SHARDS_FOLDER}")}


def shard_entries(store: ChannelStore, subdir: str) -> dict[str, Entry]:
    """Path → listing entry of every object in `<subdir>/shards/` (for `--verify`)."""
    folder = f"{subdir}/{shards.SHARDS_FOLDER}"
    return {f"{folder}/{e.name}": e for e in store.list_subdir(folder)}


def record_dropped(
    cache: Cache, subdir: str, previous: Any, index: dict[str, Any], now: float
) -> None:
    """Remember, before publishing, which shards the new index stops naming.

    Recorded first so that no failure between publishing and the end of the
    run can lose the moment; a retry records it again (the latest wins).
    """
    folder = f"{subdir}/{shards.SHARDS_FOLDER}"
    current = shards.referenced_names(index)
    no_longer = shards.referenced_names(previous) - current
    cache.update_shards_dropped(
        add=[f"{folder}/{n}" for n in sorted(no_longer)],
        since=now,
        remove=[f"{folder}/{n}" for n in sorted(current)],
    )


def prune(
    store: ChannelStore,
    cache: Cache,
    subdir: str,
    index: dict[str, Any],
    previous: Any,
    index_entry: Entry | None,
    *,
    age: float,
    dry_run: bool,
    now: float | None = None,
    jobs: int = 1,
) -> Pruned:
    """Delete shards no index names, past their grace period (`--prune-shards AGE`).

    The deletes go `jobs` at a time (each is a round trip, none depends on
    another); the cache forgets only the ones that were done.
    """
    now = time.time() if now is None else now
    folder = f"{subdir}/{shards.SHARDS_FOLDER}"
    current = shards.referenced_names(index)
    listing = store.list_subdir(folder)  # listed again: this pass may have uploaded some
    dropped = cache.shards_dropped()
    # A shard without a recorded drop (a lost cache, a crashed upload) may have
    # been named by any index up to the current one: its grace period starts
    # when the current index was written, counted from first sight.
    index_written = (
        now if index != previous or index_entry is None else (index_entry.modified or now)
    )
    unseen = [
        f"{folder}/{e.name}"
        for e in listing
        if shards.SHARD_NAME_RE.match(e.name)
        and e.name not in current
        and f"{folder}/{e.name}" not in dropped
    ]
    dropped.update(dict.fromkeys(unseen, index_written))
    present = {f"{folder}/{e.name}" for e in listing}
    gone = [path for path in dropped if path not in present]  # deleted by someone else
    doomed = prunable(listing, current, dropped, folder, now, age)
    if dry_run:
        return Pruned(doomed)
    outcome = run_each(store.delete, doomed, jobs)
    deleted = [path for i, path in enumerate(doomed) if i in outcome.results]
    cache.update_shards_dropped(add=unseen, since=index_written)
    cache.update_shards_dropped(remove=deleted + gone)
    if outcome.error is not None:
        raise outcome.error
    return Pruned(doomed)
