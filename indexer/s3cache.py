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
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

import zstandard

from .cachehome import cache_filename, settled_filename
from .errors import Conflict, RunError
from .s3store import S3Store
from .storage import CACHE_PREFIX

log = logging.getLogger(__name__)

# 3, not 10: on a 28 MB cache (60,000 artifacts) level 10 saves 3% for four
# times the time and 31 MB of compressor memory against 10 MB.
ZSTD_LEVEL = 3
CHUNK = 1 << 20  # the cache file is streamed, never held whole
CACHE_TYPE = "application/zstd"
CACHE_CONTROL = "no-store"
SETTLED_TYPE = "application/json"


def cache_path(subdir: str) -> str:
    """Channel-relative path of a subdir's cache object."""
    return f"{CACHE_PREFIX}/{cache_filename(subdir)}.zst"


def settled_path(subdir: str) -> str:
    """Channel-relative path of a subdir's settled summary (see `settled`)."""
    return f"{CACHE_PREFIX}/{settled_filename(subdir)}"


class BucketCacheHome:
    """Cache files fetched from, and put back into, the channel's bucket."""

    def __init__(self, store: S3Store) -> None:
        self.store = store
        self.scratch = Path(tempfile.mkdtemp(prefix="run-exports-index-cache-"))
        # subdir → (ETag of the cache object, sha256 of the file as fetched)
        self._fetched: dict[str, tuple[str | None, str | None]] = {}
        self._settled_tokens: dict[str, str | None] = {}  # subdir → ETag of its summary

    def checkout(self, subdir: str) -> Path:
        path = self.scratch / cache_filename(subdir)
        if subdir in self._fetched:
            return path
        where = self.store.url(cache_path(subdir))
        found = self.store.read_with_token(cache_path(subdir))
        if found is None:
            log.info("no cache at %s yet: building it from the channel", where)
            self._fetched[subdir] = (None, None)
            return path
        compressed, etag = found
        try:
            digest = _decompress_to(compressed, path)
        except zstandard.ZstdError as exc:
            path.unlink(missing_ok=True)
            log.warning("cache %s is unusable (%s); rebuilding it from the channel", where, exc)
            self._fetched[subdir] = (etag, None)
            return path
        self._fetched[subdir] = (etag, digest)
        return path

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
        found = self.store.read_with_token(settled_path(subdir))
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


def _decompress_to(compressed: bytes, path: Path) -> str:
    """Write the decompressed cache to `path`, chunk by chunk; its sha256."""
    digest = hashlib.sha256()
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(compressed))
    with path.open("wb") as out:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


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
