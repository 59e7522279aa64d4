"""Publish outputs: write only what changed, conditionally, and remember it.

The cache records the token and sha256 of every output this tool wrote, so a
run with nothing new compares hashes against the listing and sends nothing at
all. An output whose token we do not recognise (written by someone else, or a
lost cache) is fetched once and compared before any write.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.cache.db import Cache
from indexer.errors import Conflict
from indexer.model import Entry, Output
from indexer.publish.freshness import ours
from indexer.publish.parallel import run_each
from indexer.storage.base import ChannelStore


@dataclass(frozen=True)
class _Done:
    """What publishing one output did (recorded in the cache by the caller's thread)."""

    written: bool  # written (or would be, in a dry run)
    record: tuple[str, str] | None = None  # (token, digest) for `cache.set_published`


def publish(
    store: ChannelStore,
    cache: Cache,
    outputs: list[Output],
    listed: dict[str, Entry],
    *,
    dry_run: bool,
    jobs: int = 1,
) -> list[str]:
    """Write each output whose bytes differ from what is published; return their paths.

    Two batches, each `jobs` at a time: the immutable ones (shards) first, then,
    only once every one of those exists, the rest (the shard index,
    `run_exports.json`, `repodata.json` and their `.zst`), which name them or
    name artifacts already there. So a reader never finds an index naming a
    missing object, whichever write a failure or a kill stops at.

    `listed` maps channel-relative path → the listing entry seen at the start of
    the run; writes are conditional on it (`errors.Conflict` otherwise, carrying
    in `written` the paths that went out before it, which the report counts).
    With `dry_run` nothing is written and the paths that would be are returned.
    The result is in `outputs` order, whatever order the threads finished in.
    """
    published = cache.published()
    written: list[str] = []

    def one(output: Output) -> _Done:
        return _publish_one(store, output, listed, published, dry_run)

    for batch in (
        [o for o in outputs if o.immutable],
        [o for o in outputs if not o.immutable],
    ):
        outcome = run_each(one, batch, jobs)
        for position, output in enumerate(batch):
            done = outcome.results.get(position)
            if done is None:
                continue
            if done.record is not None:
                cache.set_published(output.path, *done.record)
            if done.written:
                written.append(output.path)
        if outcome.error is not None:
            if isinstance(outcome.error, Conflict):
                outcome.error.written = _in_order(written, outputs)
            raise outcome.error
    return _in_order(written, outputs)


def _in_order(paths: list[str], outputs: list[Output]) -> list[str]:
    """`paths` in the order of `outputs` (the report's order, batches aside)."""
    position = {o.path: i for i, o in enumerate(outputs)}
    return sorted(paths, key=position.__getitem__)


def _publish_one(
    store: ChannelStore,
    output: Output,
    listed: dict[str, Entry],
    published: dict[str, tuple[str, str]],
    dry_run: bool,
) -> _Done:
    """Publish one output (in a writer thread: no cache access here)."""
    if output.immutable:
        return _Done(output.path not in listed and _write_new(store, output, dry_run))
    digest = output.digest()
    current = listed.get(output.path)
    body: bytes | None = None
    if current is not None:
        recorded = ours(published, output.path, current)
        if recorded is not None:
            if recorded == digest:  # the bytes we wrote last time are still there
                return _Done(False)
        elif store.read(output.path) == (body := output.body()):  # not ours: compare once
            return _Done(False, None if dry_run else (current.token, digest))
    if dry_run:
        return _Done(True)
    token = store.write(
        output.path,
        output.body() if body is None else body,
        expect=current.token if current else None,
        content_type=output.content_type,
        cache_control=output.cache_control,
    )
    return _Done(True, (token, digest))


def _write_new(store: ChannelStore, output: Output, dry_run: bool) -> bool:
    """Create an immutable object; False when one of that name already exists."""
    if dry_run:
        return True
    try:
        store.write(
            output.path,
            output.body(),
            expect=None,
            content_type=output.content_type,
            cache_control=output.cache_control,
        )
    except Conflict:
        return False
    return True
