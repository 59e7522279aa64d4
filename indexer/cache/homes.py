"""Where a subdir's cache file comes from and goes back to.

A cache is always opened as a local SQLite file. `LocalCacheHome` keeps it in
a directory (beside a local channel by default, or `--cache-dir`).
`ScratchCacheHome` works on a throw-away copy, so a dry run leaves the real
cache untouched. Other homes (the cache kept in the bucket) fetch the file
before the run and put it back after.

Scratch folders (`$TMPDIR/run-exports-index-cache-<pid>-<start>-*`) carry
the owner's process id and start time in their name: a run removes its own
on exit and on SIGTERM (the CLI turns SIGTERM into an orderly exit), and the
next run removes those a killed run (SIGKILL) left, never one whose owner
still runs (`clean_stale_scratch`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Protocol

from indexer.publish.freshness import MAX_SETTLED_BYTES

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "run-exports-index-cache-"
_SCRATCH_RE = re.compile(rf"{re.escape(SCRATCH_PREFIX)}(\d+)-(\d+)-[A-Za-z0-9_]+")


class CacheHome(Protocol):
    def checkout(self, subdir: str) -> Path:
        """A local path for the subdir's cache file (it may not exist yet)."""
        ...

    def checkin(self, subdir: str, path: Path) -> None:
        """Persist the cache file after a successful run."""
        ...

    def settled(self, subdir: str) -> bytes | None:
        """The subdir's settled summary (see `settled`), or None."""
        ...

    def settle(self, subdir: str, data: bytes) -> None:
        """Keep a new settled summary; losing it only costs the next run time."""
        ...


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot, /proc), or None if unknown."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after it
        return int(stat_line.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _alive(pid: int, start: int) -> bool:
    """Is the run that made a scratch folder still running? (When unsure: yes.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user
    now = _start_time(pid)
    return now is None or start == 0 or now == start  # a new process under a reused pid: dead


def make_scratch() -> Path:
    """A new scratch folder named after this process (see the module docstring)."""
    clean_stale_scratch()
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{pid}-{_start_time(pid) or 0}-"))


def clean_stale_scratch(directory: Path | None = None) -> list[Path]:
    """Remove scratch folders whose run is gone (killed); the paths removed.

    Only our own user's plain folders that match the naming are considered;
    one whose owner process is alive (same pid and start time) is kept.
    """
    folder = Path(directory or tempfile.gettempdir())
    removed = []
    try:
        candidates = sorted(folder.glob(f"{SCRATCH_PREFIX}*"))
    except OSError:
        return removed
    for entry in candidates:
        match = _SCRATCH_RE.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        pid, start = int(match[1]), int(match[2])
        if pid == os.getpid() or _alive(pid, start):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        log.info("removed %s, left by a run that was killed", entry)
        removed.append(entry)
    return removed


def read_capped(path: Path, limit: int) -> bytes | None:
    """A local file's bytes, or None if absent, unreadable or over `limit` bytes."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        log.warning("ignoring %s: over %d bytes", path, limit)
        return None
    return data


def cache_filename(subdir: str) -> str:
    return f"{subdir}.sqlite"


def settled_filename(subdir: str) -> str:
    return f"{subdir}.settled.json"


class LocalCacheHome:
    """Cache files kept in one local directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def checkout(self, subdir: str) -> Path:
        return self.directory / cache_filename(subdir)

    def checkin(self, subdir: str, path: Path) -> None:
        return None

    def settled(self, subdir: str) -> bytes | None:
        return read_capped(self.directory / settled_filename(subdir), MAX_SETTLED_BYTES)

    def rebuilt_reason(self, subdir: str) -> str | None:
        return None  # a local file is inspected where it lies (see `cache.Cache`)

    def missing_reason(self, subdir: str) -> str | None:
        """Why `subdir` has no cache to start from (None: there is one)."""
        path = self.checkout(subdir)
        return None if path.exists() else f"no cache in {self.directory}"

    def settle(self, subdir: str, data: bytes) -> None:
        target = self.directory / settled_filename(subdir)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            os.replace(partial, target)
        except OSError:
            partial.unlink(missing_ok=True)


class ScratchCacheHome:
    """A copy of another home's cache that is thrown away (dry runs, previews)."""

    def __init__(self, source: CacheHome) -> None:
        self.source = source
        self.scratch = make_scratch()

    def checkout(self, subdir: str) -> Path:
        original = self.source.checkout(subdir)
        copy = self.scratch / cache_filename(subdir)
        if original.exists():
            shutil.copyfile(original, copy)
        return copy

    def checkin(self, subdir: str, path: Path) -> None:
        return None

    def settled(self, subdir: str) -> bytes | None:
        return self.source.settled(subdir)

    def rebuilt_reason(self, subdir: str) -> str | None:
        reason = getattr(self.source, "rebuilt_reason", None)
        return reason(subdir) if reason is not None else None

    def missing_reason(self, subdir: str) -> str | None:
        reason = getattr(self.source, "missing_reason", None)
        return reason(subdir) if reason is not None else None

    def settle(self, subdir: str, data: bytes) -> None:
        return None

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
