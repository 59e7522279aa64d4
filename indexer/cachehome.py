"""Where a subdir's cache file comes from and goes back to.

A cache is always opened as a local SQLite file. `LocalCacheHome` keeps it in
a directory (beside a local channel by default, or `--cache-dir`).
`ScratchCacheHome` works on a throw-away copy, so a dry run leaves the real
cache untouched. Other homes (the cache kept in the bucket) fetch the file
before the run and put it back after.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol


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
        try:
            return (self.directory / settled_filename(subdir)).read_bytes()
        except OSError:
            return None

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
        self.scratch = Path(tempfile.mkdtemp(prefix="run-exports-index-"))

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

    def settle(self, subdir: str, data: bytes) -> None:
        return None

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
