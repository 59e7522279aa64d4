"""The cache kept in the bucket, beside the channel it describes.

A fresh CI runner has no local state, so by default each subdir's SQLite cache
lives at `<prefix>/.run-exports-index/<subdir>.sqlite.zst`: fetched at the
start of the run, written back at the end only if its bytes changed, and
conditionally (`If-Match` the ETag fetched, `If-None-Match: *` when new), so
two runs never silently replace each other's cache. Losing that race is
harmless: the other run's cache is kept and the next run reads what it lacks.
So is a write-back the store keeps refusing (throttled past the retry budget,
the cache prefix not writable): the channel's outputs were published before
it, so it is a warning, never a failed run; the next run re-reads what the
cache it finds lacks.

Whatever sits in the cache folder is untrusted: anyone who can write the
bucket can plant it. The object is read with a size cap and decompressed with
another (a 192 KB zstd object can expand to gigabytes), and the SQLite file is
never opened as is: its rows are copied, checked, into a fresh database
(`cache.import_untrusted`). Anything unexpected is set aside and the cache
rebuilt from the channel, with a warning in the log and the report. The
settled summary is read with a size cap too and parsed strictly (`settled`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import zstandard

from indexer.cache.homes import cache_filename, make_scratch, settled_filename
from indexer.cache.trust import import_untrusted
from indexer.errors import Conflict, RunError
from indexer.publish.freshness import MAX_SETTLED_BYTES
from indexer.storage.base import CACHE_PREFIX
from indexer.storage.s3.client import ObjectMissing
from indexer.storage.s3.store import S3Store

log = logging.getLogger(__name__)

# 3, not 10: on a 28 MB cache (60,000 artifacts) level 10 saves 3% for four
# times the time and 31 MB of compressor memory against 10 MB.
ZSTD_LEVEL = 3
CHUNK = 1 << 20  # the cache file is streamed, never held whole
CACHE_TYPE = "application/zstd"
CACHE_CONTROL = "no-store"
SETTLED_TYPE = "application/json"
# Caps on what is fetched: the compressed object, and the SQLite file it
# expands to (the smaller of an absolute cap and a ratio to the object's size,
# never below a floor). A real cache compresses 3-10x; 100,000 artifacts make
# a 16-45 MB file.
MAX_CACHE_OBJECT_BYTES = 512 << 20
MAX_CACHE_FILE_BYTES = int(os.environ.get("RUN_EXPORTS_INDEX_MAX_CACHE_BYTES", str(2 << 30)))
MAX_CACHE_RATIO = 200
MIN_CACHE_CAP_BYTES = 64 << 20
MAX_WINDOW = 1 << 27  # decompressor memory: level 3 writes 2 MiB windows; zstd's own default cap


class TooLarge(Exception):
    """An object or its decompressed form is over its cap."""


def decompressed_cap(compressed_size: int) -> int:
    """How far a cache object of this size may expand on disk."""
    by_ratio = max(MIN_CACHE_CAP_BYTES, MAX_CACHE_RATIO * compressed_size)
    return min(MAX_CACHE_FILE_BYTES, by_ratio)


def cache_path(subdir: str) -> str:
    """Channel-relative path of a subdir's cache object."""
    return f"{CACHE_PREFIX}/{cache_filename(subdir)}.zst"


def settled_path(subdir: str) -> str:
    """Channel-relative path of a subdir's settled summary (see `settled`)."""
    return f"{CACHE_PREFIX}/{settled_filename(subdir)}"


class BucketCacheHome:
    """Cache files fetched from, and put back into, the channel's bucket."""

    def __init__(self, store: S3Store, tolerate_refusal: bool = False) -> None:
        self.store = store
        # read-only runs: a cache (or summary) the bucket refuses to give is absent
        self.tolerate_refusal = tolerate_refusal
        self._missing: dict[str, str] = {}  # subdir → why there is no cache to start from
        self.scratch = make_scratch()
        # subdir → (ETag of the cache object, sha256 of the file as fetched)
        self._fetched: dict[str, tuple[str | None, str | None]] = {}
        self._settled_tokens: dict[str, str | None] = {}  # subdir → ETag of its summary
        self._rebuilt: dict[str, str] = {}  # subdir → why its fetched cache was set aside

    def checkout(self, subdir: str) -> Path:
        path = self.scratch / cache_filename(subdir)
        if subdir in self._fetched:
            return path
        where = self.store.url(cache_path(subdir))
        try:
            found = self._read_capped(cache_path(subdir), MAX_CACHE_OBJECT_BYTES)
        except TooLarge as exc:
            return self._set_aside(subdir, path, where, str(exc), etag=exc.args[1])
        except RunError as exc:
            if not self.tolerate_refusal:
                raise
            log.info("the cache at %s cannot be read (%s); starting without it", where, exc)
            self._missing[subdir] = f"the cache at {where} cannot be read"
            self._fetched[subdir] = (None, None)
            return path
        if found is None:
            log.info("no cache at %s yet: building it from the channel", where)
            self._missing[subdir] = f"no cache at {where}"
            self._fetched[subdir] = (None, None)
            return path
        compressed, etag = found
        try:
            _decompress_to(compressed, path, decompressed_cap(len(compressed)))
            import_untrusted(path)  # a fresh database holding its checked rows
        except (zstandard.ZstdError, TooLarge, sqlite3.DatabaseError) as exc:
            return self._set_aside(subdir, path, where, str(exc), etag=etag)
        self._fetched[subdir] = (etag, _file_digest(path))
        return path

    def rebuilt_reason(self, subdir: str) -> str | None:
        """Why the cache fetched for `subdir` was set aside (None: it was not)."""
        return self._rebuilt.get(subdir)

    def missing_reason(self, subdir: str) -> str | None:
        """Why `subdir` has no cache to start from: absent, refused, set aside (or None)."""
        return self._missing.get(subdir) or self._rebuilt.get(subdir)

    def _set_aside(self, subdir: str, path: Path, where: str, why: str, etag: str) -> Path:
        """Leave a fetched cache unused; the run rebuilds it from the channel."""
        for candidate in (path, path.with_name(f"{path.name}.fresh")):
            candidate.unlink(missing_ok=True)  # in the scratch folder: nothing to keep
        reason = f"the cache object {where} was set aside: {why}"
        log.warning("cache %s is unusable (%s); rebuilding it from the channel", where, why)
        self._rebuilt[subdir] = reason
        self._fetched[subdir] = (etag, None)  # the rebuilt cache replaces it
        return path

    def _read_capped(self, path: str, limit: int) -> tuple[bytes, str] | None:
        """An object's bytes and ETag, or None; `TooLarge(why, etag)` past `limit` bytes."""
        store = self.store
        key = store.key(path)

        def get() -> tuple[bytes, str]:
            response = store.api.client.get_object(Bucket=store.bucket, Key=key)
            with closing(response["Body"]) as body:
                if int(response.get("ContentLength") or 0) > limit:
                    raise TooLarge(f"the object is over {limit} bytes", response["ETag"])
                data = body.read(limit + 1)
            if len(data) > limit:
                raise TooLarge(f"the object is over {limit} bytes", response["ETag"])
            return data, response["ETag"]

        try:
            return store.api.retrying(get, "GetObject", store.url(path))
        except ObjectMissing:
            return None

    def checkin(self, subdir: str, path: Path) -> None:
        etag, digest = self._fetched.get(subdir, (None, None))
        new_digest = _file_digest(path)
        if new_digest == digest:
            return  # nothing changed: no PUT
        compressed = _compress_file(path)
        try:
            token = self.store.write(
                cache_path(subdir),
                compressed,
                expect=etag,
                content_type=CACHE_TYPE,
                cache_control=CACHE_CONTROL,
            )
        except Conflict:
            log.warning(
                "another run updated %s meanwhile; keeping its cache "
                "(the next run reads whatever it lacks)",
                self.store.url(cache_path(subdir)),
            )
            return
        except RunError as exc:  # the outputs are published; only the next run's speed suffers
            log.warning(
                "could not write the cache back to %s (%s); the index is published, "
                "the next run re-reads what its cache lacks",
                self.store.url(cache_path(subdir)),
                exc,
            )
            return
        self._fetched[subdir] = (token, new_digest)

    def settled(self, subdir: str) -> bytes | None:
        try:
            found = self._read_capped(settled_path(subdir), MAX_SETTLED_BYTES)
        except RunError:
            if not self.tolerate_refusal:
                raise
            return None  # a private summary: the ordinary run
        except TooLarge as exc:  # not ours: ignored, and replaced after this run
            log.warning("ignoring the settled summary of %s: %s", subdir, exc.args[0])
            self._settled_tokens[subdir] = exc.args[1]
            return None
        self._settled_tokens[subdir] = None if found is None else found[1]
        return None if found is None else found[0]

    def settle(self, subdir: str, data: bytes) -> None:
        if subdir not in self._settled_tokens:
            self.settled(subdir)
        try:
            token = self.store.write(
                settled_path(subdir),
                data,
                expect=self._settled_tokens[subdir],
                content_type=SETTLED_TYPE,
                cache_control=CACHE_CONTROL,
            )
        except (Conflict, RunError) as exc:  # another run settled it, or the store refused
            log.info("left the settled summary of %s as it is (%s)", subdir, exc)
            return
        self._settled_tokens[subdir] = token

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _decompress_to(compressed: bytes, path: Path, limit: int) -> None:
    """Write the decompressed cache to `path`, chunk by chunk, stopping past `limit` bytes."""
    reader = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).stream_reader(
        io.BytesIO(compressed)
    )
    written = 0
    with path.open("wb") as out:
        while chunk := reader.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise TooLarge(f"it decompresses to more than {limit} bytes")
            out.write(chunk)


def _file_digest(path: Path) -> str | None:
    if not path.exists():
        return None
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _compress_file(path: Path) -> bytes:
    out = io.BytesIO()
    with path.open("rb") as f:
        zstandard.ZstdCompressor(level=ZSTD_LEVEL).copy_stream(f, out, read_size=CHUNK)
    return out.getvalue()
