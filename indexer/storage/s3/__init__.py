"""S3 channels: what the CLI and the action need to index `s3://bucket/prefix`.

The backend is split by job: `client` (boto3, retries, error messages),
`store` (the `ChannelStore`), `ranged` (range reads of artifacts) and
`cachehome` (the cache kept in the bucket). This module is their front door.
"""

from __future__ import annotations

from pathlib import Path

from indexer.cache.homes import CacheHome, LocalCacheHome
from indexer.storage.s3.cachehome import BucketCacheHome, cache_path, settled_path
from indexer.storage.s3.client import ADDRESSING_STYLES, S3Options, has_credentials, pool_size
from indexer.storage.s3.store import S3Store, parse_s3_url

__all__ = [
    "ADDRESSING_STYLES",
    "BucketCacheHome",
    "S3Options",
    "S3Store",
    "cache_path",
    "has_credentials",
    "is_s3_url",
    "open_s3_cache_home",
    "open_s3_store",
    "parse_s3_url",
    "pool_size",
    "settled_path",
]


def is_s3_url(channel: str) -> bool:
    return channel.startswith("s3://")


def open_s3_store(channel: str, options: S3Options | None = None) -> S3Store:
    """The store for an `s3://bucket/prefix` CHANNEL (no request is made yet)."""
    return S3Store(channel, options)


def open_s3_cache_home(
    store: S3Store, cache_dir: Path | None, read_only: bool = False
) -> CacheHome:
    """The cache in the bucket, or in `cache_dir` when one is given (actions/cache).

    `read_only`: a cache the bucket refuses to give is taken as absent.
    """
    if cache_dir is not None:
        return LocalCacheHome(cache_dir)
    return BucketCacheHome(store, tolerate_refusal=read_only)
