"""The read-info stage: new and changed artifacts, read in a bounded pool.

Results go into the cache in batches as they arrive, so a run that stops
half-way keeps what it read; the order artifacts finish in never matters,
because rendering works from the cache, sorted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from indexer.cache.db import Cache
from indexer.errors import Conflict
from indexer.model import CachedArtifact, Entry, Problem, ReadResult, filename_mismatch
from indexer.read.info import UnreadableArtifact, read_info
from indexer.read.progress import Progress
from indexer.storage.base import ChannelStore

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

COMMIT_EVERY = 256  # artifacts per cache transaction while reading


def read_and_cache(
    store: ChannelStore,
    cache: Cache,
    subdir: str,
    todo: list[Entry],
    jobs: int,
) -> ReadResult:
    """Read the info of every artifact in `todo`, caching results in batches.

    Returns what it read and found, with the names of artifacts that
    disappeared between listing and reading (`vanished`).
    """
    progress = Progress(f"{subdir}: reading", len(todo))
    batch: list[CachedArtifact] = []
    result = ReadResult()
    vanished = result.vanished
    try:
        for entry, outcome in _bounded_map(lambda e: _read_one(store, subdir, e), todo, jobs):
            progress.advance()
            if outcome is None:
                log.warning("%s/%s disappeared while the run read it", subdir, entry.name)
                vanished.append(entry.name)
                continue
            row, nbytes, read_in_full = outcome
            result.artifacts_read += 1
            result.bytes_read += nbytes
            if read_in_full:  # a .tar.bz2 whose info/ was not first: read past its payload
                result.read_in_full += 1
                result.read_in_full_bytes += nbytes
            if row.error:
                log.warning("%s/%s is unreadable: %s", subdir, entry.name, row.error)
            elif row.record is not None:
                mismatch = filename_mismatch(entry.name, row.record)
                if mismatch is not None:
                    log.warning("%s/%s: %s", subdir, entry.name, mismatch)
                    result.filename_mismatches.append(Problem(entry.name, mismatch))
            batch.append(row)
            if len(batch) >= COMMIT_EVERY:
                cache.update(put=batch)
                batch = []
    except Conflict as exc:  # replaced since the listing: the pass is redone
        exc.partial = result
        raise
    cache.update(put=batch)
    progress.finish()
    return result


def _read_one(
    store: ChannelStore, subdir: str, entry: Entry
) -> tuple[CachedArtifact, int, bool] | None:
    """(the cache row, bytes read, read in full), or None when the artifact vanished."""
    try:
        with store.open_artifact(subdir, entry.name, entry.token) as fileobj:
            try:
                info = read_info(entry.name, fileobj, entry.size)
            except UnreadableArtifact as exc:
                row = CachedArtifact(entry.name, entry.size, entry.token, error=str(exc))
                read_in_full = exc.read_in_full
            else:
                read_in_full = info.read_in_full
                row = CachedArtifact(
                    entry.name,
                    entry.size,
                    entry.token,
                    record=info.record,
                    run_exports=info.run_exports,
                    run_exports_error=info.run_exports_error,
                )
            return row, fileobj.bytes_read, read_in_full
    except FileNotFoundError:
        return None


def _bounded_map(fn: Callable[[T], R], items: list[T], jobs: int) -> Iterator[tuple[T, R]]:
    """Like `executor.map`, but with at most `jobs * 2` items in flight (memory stays flat)."""
    if jobs <= 1:
        for item in items:
            yield item, fn(item)
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="reader") as pool:
        pending: dict[Future[R], T] = {}
        queue = iter(items)
        for item in queue:
            pending[pool.submit(fn, item)] = item
            if len(pending) >= jobs * 2:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                yield item, future.result()
                for more in queue:
                    pending[pool.submit(fn, more)] = more
                    break
