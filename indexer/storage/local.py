"""The local-directory backend: a channel on disk, the embedded default.

Writes are atomic (temporary file, fsync, rename) and conditional like S3's:
a new object is linked into place only if none exists, and a replacement
happens only while the object's token is still the one we saw, checked under a
lock on the channel so two runs on one machine cannot interleave.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from indexer.errors import Conflict, RunError, UsageError
from indexer.model import ARTIFACT_SUFFIXES, Entry, is_subdir_name
from indexer.storage.base import CACHE_PREFIX

log = logging.getLogger(__name__)


def utf8_name(name: str) -> bool:
    """Whether a name from the file system is valid UTF-8.

    Python hands undecodable bytes over as lone surrogates (PEP 383); such a
    name can be neither written to the report, the cache nor a channel index
    (conda's repodata is UTF-8 JSON), so the file is skipped and said so.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(name: str) -> str:
    """A file name for a message: undecodable bytes as `\\xNN`."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


class CountingFile:
    """A file object that counts the bytes read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = self._raw.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed


def _token(st: os.stat_result) -> str:
    return f"{st.st_size}-{st.st_mtime_ns}"


class LocalStore:
    """A channel in a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise UsageError(f"channel directory not found: {root}")
        self.location = shown_name(str(self.root))  # for reports: always valid UTF-8
        self._lock = threading.Lock()
        self._bytes_read = 0
        # subdir → one line per file left out of the listing (cli adds them to the report)
        self.skipped: dict[str, list[str]] = {}

    # -- listing -----------------------------------------------------------
    def list_subdirs(self) -> list[str]:
        with os.scandir(self.root) as it:
            return sorted(e.name for e in it if e.is_dir() and is_subdir_name(e.name))

    def list_subdir(self, subdir: str) -> list[Entry]:
        folder = self.root / subdir
        entries, skipped = [], []
        try:
            with os.scandir(folder) as it:
                for e in it:
                    try:
                        if not e.is_file(follow_symlinks=True):
                            continue
                        st = e.stat()
                    except OSError as exc:  # a symlink loop, a file gone or unreadable
                        if e.name.endswith(ARTIFACT_SUFFIXES):
                            why = exc.strerror or type(exc).__name__
                            skipped.append(f"{subdir}/{shown_name(e.name)}: skipped ({why})")
                        continue
                    if not utf8_name(e.name):
                        skipped.append(
                            f"{subdir}/{shown_name(e.name)}: skipped, its file name is not "
                            "valid UTF-8 (rename it)"
                        )
                        continue
                    entries.append(Entry(e.name, st.st_size, _token(st), st.st_mtime))
        except FileNotFoundError:
            return []
        skipped.sort()
        with self._lock:
            told = set(self.skipped.get(subdir, ()))
            self.skipped[subdir] = skipped
        for line in skipped:
            if line not in told:  # listed again (staged overlays list often): said once
                log.warning("%s", line)
        return sorted(entries, key=lambda e: e.name)

    # -- artifacts -----------------------------------------------------------
    @contextmanager
    def open_artifact(
        self, subdir: str, name: str, token: str | None = None
    ) -> Iterator[CountingFile]:
        try:
            raw = open(self.root / subdir / name, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise RunError(f"cannot open {subdir}/{name}: {exc.strerror or exc}") from None
        if token is not None and _token(os.fstat(raw.fileno())) != token:
            raw.close()
            raise Conflict(f"{subdir}/{name}")
        with raw:
            counting = CountingFile(raw)
            try:
                yield counting
            finally:
                with self._lock:
                    self._bytes_read += counting.bytes_read

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    @property
    def retries(self) -> int:
        return 0  # the file system does not fail transiently

    def prefetch_listings(self, subdirs: list[str]) -> None:
        return None  # scandir is fast enough one subdir at a time

    # -- channel objects -----------------------------------------------------
    def _path(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if self.root not in target.parents:
            raise UsageError(f"refusing to touch {path!r}: outside the channel")
        return target

    def read(self, path: str) -> bytes | None:
        try:
            return self._path(path).read_bytes()
        except FileNotFoundError:
            return None

    def stat(self, path: str) -> Entry | None:
        target = self._path(path)
        try:
            st = target.stat()
        except FileNotFoundError:
            return None
        return Entry(target.name, st.st_size, _token(st), st.st_mtime)

    def write(
        self,
        path: str,
        data: bytes,
        *,
        expect: str | None,
        content_type: str = "application/octet-stream",
        cache_control: str = "",
    ) -> str:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            with self._channel_lock():
                if expect is None:
                    try:
                        os.link(temp, target)  # fails if the target exists
                    except FileExistsError:
                        raise Conflict(path) from None
                else:
                    current = self.stat(path)
                    if current is None or current.token != expect:
                        raise Conflict(path)
                    os.replace(temp, target)
                return _token(target.stat())
        finally:
            temp.unlink(missing_ok=True)

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    @contextmanager
    def _channel_lock(self) -> Iterator[None]:
        lock_dir = self.root / CACHE_PREFIX
        lock_dir.mkdir(exist_ok=True)
        with open(lock_dir / "write.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def local_cache_dir(self) -> Path:
        """Where the cache lives by default: beside the channel, so runs start warm."""
        return self.root / CACHE_PREFIX
