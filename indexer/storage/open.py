"""From a `Config` to the channel's store and the home of its cache files.

Policy that used to sit in the CLI: `s3://` or a directory, the staged
overlay of a preview, the cache beside the channel (in the bucket for S3)
unless `--cache-dir` says otherwise, and scratch copies for a read-only run
so that it never writes the cache it read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.cache.homes import CacheHome, LocalCacheHome, ScratchCacheHome, clean_stale_scratch
from indexer.config import Config
from indexer.errors import UsageError
from indexer.storage.base import ChannelStore
from indexer.storage.local import LocalStore
from indexer.storage.staged import StagedOverlay

if TYPE_CHECKING:  # storage.s3 (botocore, ~0.2 s of imports) only for s3:// channels
    from indexer.storage.s3 import S3Options


def is_s3_url(channel: str) -> bool:
    """Whether a CHANNEL argument names a bucket (as `storage.s3.is_s3_url`, without
    importing it)."""
    return channel.startswith("s3://")


def s3_options(config: Config) -> S3Options:
    """The S3 connection settings of a run."""
    from indexer.storage.s3 import S3Options, pool_size

    return S3Options(
        endpoint_url=config.endpoint_url,
        region=config.region,
        addressing_style=config.addressing_style,
        profile=config.profile,
        max_connections=pool_size(config.jobs),
        unsigned=config.unsigned,
    )


def open_store(channel: str, s3_options: S3Options | None = None) -> ChannelStore:
    """The backend for a CHANNEL argument."""
    if is_s3_url(channel):
        from indexer.storage.s3 import open_s3_store

        return open_s3_store(channel, s3_options)
    if (
        s3_options is not None
        and replace(s3_options, max_connections=type(s3_options).max_connections)
        != type(s3_options)()
    ):
        raise UsageError("--endpoint-url, --region, --addressing-style and --profile need s3://")
    return LocalStore(channel)


def default_cache_home(
    store: ChannelStore, cache_dir: Path | None, read_only: bool = False
) -> CacheHome:
    """Where the cache files live: `cache_dir`, else beside the channel (or in the bucket).

    A read-only run takes a cache in the bucket it may not read as no cache
    (a public channel keeps its cache private; a preview then starts from the
    published files, see `read.published.seed_baseline`).
    """
    if is_s3_url(store.location):
        from indexer.storage.s3 import open_s3_cache_home

        return open_s3_cache_home(store, cache_dir, read_only)  # type: ignore[arg-type]
    if cache_dir is not None:
        return LocalCacheHome(cache_dir)
    return LocalCacheHome(store.local_cache_dir())  # type: ignore[attr-defined]


@contextmanager
def open_channel(config: Config) -> Iterator[tuple[ChannelStore, CacheHome]]:
    """The store (with the staged overlay) and the cache home for a run; closed after it.

    A read-only run (dry run, preview) works on scratch copies of the cache,
    removed when it ends; copies that killed runs left are removed first.
    """
    clean_stale_scratch()
    if config.local_copies is not None and not config.local_copies.is_dir():
        raise UsageError(f"--local-copies: directory not found: {config.local_copies}")
    store = open_store(config.channel, s3_options(config) if is_s3_url(config.channel) else None)
    home = default_cache_home(store, config.cache_dir, config.read_only)
    scratch = None
    try:
        if config.staged is not None:
            store = StagedOverlay(store, config.staged)
        if config.read_only:
            scratch = ScratchCacheHome(home)
        yield store, scratch or home
    finally:
        if scratch is not None:
            scratch.close()
        if hasattr(home, "close"):  # the bucket cache's local copies
            home.close()


def skipped_warnings(store: ChannelStore, subdir: str) -> list[str]:
    """Files a local listing left out (names that are not UTF-8), one warning each."""
    lines: set[str] = set()
    for part in (store, getattr(store, "base", None), getattr(store, "staged", None)):
        lines.update(getattr(part, "skipped", {}).get(subdir, ()))
    return sorted(lines)
