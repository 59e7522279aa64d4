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
from indexer.storage.base import ChannelStore


def ours(published: dict[str, tuple[str, str]], path: str, entry: Entry | None) -> str | None:
    """The digest we recorded for `path` while the listed object is still the one we wrote.

    `published` is `Cache.published()`; None when nothing is listed there, we
    never wrote it, or someone has replaced it since.
    """
    recorded = published.get(path)
    if entry is None or recorded is None or recorded[0] != entry.token:
        return None
    return recorded[1]


def publish(
    store: ChannelStore,
    cache: Cache,
    outputs: list[Output],
    listed: dict[str, Entry],
    *,
    dry_run: bool,
    written: list[str] | None = None,
) -> list[str]:
    """Write each output whose bytes differ from what is published; return their paths.

    `listed` maps channel-relative path → the listing entry seen at the start of
    the run; writes are conditional on it (`errors.Conflict` otherwise). With
    `dry_run` nothing is written and the paths that would be are returned.
    Paths are appended to `written` as they are written, so a caller still
    knows what went out when a later write raises.
    """
    published = cache.published()
    written = [] if written is None else written
    for output in outputs:
        if output.immutable:
            if output.path not in listed and _write_new(store, output, dry_run):
                written.append(output.path)
            continue
        digest = output.digest()
        current = listed.get(output.path)
        body: bytes | None = None
        if current is not None:
            recorded = ours(published, output.path, current)
            if recorded is not None:
                if recorded == digest:  # the bytes we wrote last time are still there
                    continue
            elif store.read(output.path) == (body := output.body()):  # not ours: compare once
                if not dry_run:
                    cache.set_published(output.path, current.token, digest)
                continue
        if not dry_run:
            token = store.write(
                output.path,
                output.body() if body is None else body,
                expect=current.token if current else None,
                content_type=output.content_type,
                cache_control=output.cache_control,
            )
            cache.set_published(output.path, token, digest)
        written.append(output.path)
    return written


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
