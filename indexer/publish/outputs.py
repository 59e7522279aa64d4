"""Publish outputs: write only what changed, conditionally, and remember it.

The cache records the token and sha256 of every output this tool wrote, so a
run with nothing new compares hashes against the listing and sends nothing at
all. An output whose token we do not recognise (written by someone else, or a
lost cache) is fetched once and compared before any write.
"""

from __future__ import annotations

from indexer.cache.db import Cache
from indexer.errors import Conflict
from indexer.model import Entry, Output
from indexer.publish.freshness import ours
from indexer.storage.base import ChannelStore


def publish(
    store: ChannelStore,
    cache: Cache,
    outputs: list[Output],
    listed: dict[str, Entry],
    *,
    dry_run: bool,
) -> list[str]:
    """Write each output whose bytes differ from what is published; return their paths.

    `listed` maps channel-relative path → the listing entry seen at the start of
    the run; writes are conditional on it (`errors.Conflict` otherwise, carrying
    in `written` the paths that went out before it, which the report counts).
    With `dry_run` nothing is written and the paths that would be are returned.
    """
    published = cache.published()
    written: list[str] = []
    try:
        for output in outputs:
            if _publish_one(store, cache, output, listed, published, dry_run):
                written.append(output.path)
    except Conflict as exc:
        exc.written = written
        raise
    return written


def _publish_one(
    store: ChannelStore,
    cache: Cache,
    output: Output,
    listed: dict[str, Entry],
    published: dict[str, tuple[str, str]],
    dry_run: bool,
) -> bool:
    """Publish one output; True when it is written (or would be)."""
    if output.immutable:
        return output.path not in listed and _write_new(store, output, dry_run)
    digest = output.digest()
    current = listed.get(output.path)
    body: bytes | None = None
    if current is not None:
        recorded = ours(published, output.path, current)
        if recorded is not None:
            if recorded == digest:  # the bytes we wrote last time are still there
                return False
        elif store.read(output.path) == (body := output.body()):  # not ours: compare once
            if not dry_run:
                cache.set_published(output.path, current.token, digest)
            return False
    if not dry_run:
        token = store.write(
            output.path,
            output.body() if body is None else body,
            expect=current.token if current else None,
            content_type=output.content_type,
            cache_control=output.cache_control,
        )
        cache.set_published(output.path, token, digest)
    return True


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
