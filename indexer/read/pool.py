"""The read-info stage: new and changed artifacts, read in a bounded pool.

Results go into the cache in batches as they arrive, so a run that stops
half-way keeps what it read; the order artifacts finish in never matters,
because rendering works from the cache, sorted.

Each artifact is read one of three ways: from a proven local copy
(`--local-copies`, see `localcopies`: nothing read from the channel); in
full, once, when shards need its checksums and the channel's repodata.json
cannot give them (`full`, see `fullread`: info and md5/sha256 from one
read); or its info part alone (range reads on S3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

from indexer.cache.db import Cache
from indexer.errors import Conflict
from indexer.model import CONDA, CachedArtifact, Entry, Problem, ReadResult, filename_mismatch
from indexer.read.fullread import SPOOL_LIMIT, read_in_full
from indexer.read.info import UnreadableArtifact, read_info
from indexer.read.localcopies import LocalCopies
from indexer.read.progress import Progress
from indexer.storage.base import ChannelStore

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

COMMIT_EVERY = 256  # artifacts per cache transaction while reading


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One artifact read: its cache row and how it was read."""

    row: CachedArtifact
    nbytes: int  # from the channel
    read_in_full: bool  # a .tar.bz2 whose info/ was not first
    hashed: bool = False  # md5/sha256 from this read of the channel
    local: str | None = None  # --local-copies: how it was proven, or why it was not
    proven: bool = False


def one_read_suffices(entry: Entry) -> bool:
    """Whether reading `entry` in full also gives its info (see `fullread.SPOOL_LIMIT`)."""
    return not entry.name.endswith(CONDA) or entry.size <= SPOOL_LIMIT


def read_and_cache(
    store: ChannelStore,
    cache: Cache,
    subdir: str,
    todo: list[Entry],
    jobs: int,
    full: Collection[str] = frozenset(),
    local: LocalCopies | None = None,
) -> ReadResult:
    """Read the info of every artifact in `todo`, caching results in batches.

    `full` names the artifacts to read in full for their checksums as well
    (those `one_read_suffices` for); `local` is where the job's own copies
    are. Returns what it read and found, with the names of artifacts that
    disappeared between listing and reading (`vanished`).
    """
    progress = Progress(f"{subdir}: reading", len(todo))
    batch: list[CachedArtifact] = []
    result = ReadResult()
    vanished = result.vanished

    def one(entry: Entry) -> _Outcome | None:
        return _read_one(store, subdir, entry, entry.name in full, local)

    try:
        for entry, outcome in _bounded_map(one, todo, jobs):
            progress.advance()
            if outcome is None:
                log.warning("%s/%s disappeared while the run read it", subdir, entry.name)
                vanished.append(entry.name)
                continue
            row = outcome.row
            result.artifacts_read += 1
            result.bytes_read += outcome.nbytes
            if outcome.read_in_full:  # a .tar.bz2 whose info/ was not first: read past its payload
                result.read_in_full += 1
                result.read_in_full_bytes += outcome.nbytes
            if outcome.hashed:
                result.hashed += 1
                result.hashed_bytes += outcome.nbytes
            if outcome.local is not None:
                (result.local_proven if outcome.proven else result.local_not_used).append(
                    Problem(entry.name, outcome.local)
                )
                if not outcome.proven:
                    log.info("%s/%s: local copy not used: %s", subdir, entry.name, outcome.local)
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
    store: ChannelStore, subdir: str, entry: Entry, full: bool, local: LocalCopies | None
) -> _Outcome | None:
    """One artifact: from its proven local copy, else from the channel (None: it vanished)."""
    why = None
    if local is not None:
        found = local.read(store, subdir, entry)
        if found.row is not None:
            return _Outcome(found.row, 0, False, local=found.line, proven=True)
        why = found.line
    try:
        with store.open_artifact(subdir, entry.name, entry.token) as fileobj:
            md5 = sha256 = None
            try:
                if full and one_read_suffices(entry):
                    info, digests = read_in_full(
                        entry.name, fileobj, entry.size, f"{subdir}/{entry.name}"
                    )
                    md5, sha256 = digests.md5.hexdigest(), digests.sha256.hexdigest()
                else:
                    info = read_info(entry.name, fileobj, entry.size)
            except UnreadableArtifact as exc:
                row = CachedArtifact(entry.name, entry.size, entry.token, error=str(exc))
                return _Outcome(row, fileobj.bytes_read, exc.read_in_full, local=why)
            row = info.row(entry, md5, sha256)
            return _Outcome(
                row, fileobj.bytes_read, info.read_in_full, hashed=md5 is not None, local=why
            )
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
