"""Staged artifacts: a pull request's builds seen as if already uploaded.

`StagedOverlay` lays a local directory of freshly built artifacts
(`<staged>/<subdir>/<artifact>`, the layout conda-build and rattler-build
write) over a channel store. Listings show the union (a staged artifact
replaces a published one of the same name); reads of staged artifacts come
from disk; writes are refused, because a preview never writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from indexer.errors import RunError, UsageError
from indexer.model import Entry, ObjectFacts, is_artifact
from indexer.storage.base import ChannelStore
from indexer.storage.local import LocalStore

STAGED_TOKEN_PREFIX = "staged:"


class StagedOverlay:
    """A read-only view of `base` with the artifacts of `staged_dir` added."""

    def __init__(self, base: ChannelStore, staged_dir: str | Path) -> None:
        if not Path(staged_dir).is_dir():
            raise UsageError(f"--staged: directory not found: {staged_dir}")
        self.base = base
        self.staged = LocalStore(staged_dir)
        self.location = base.location
        if not self.staged.list_subdirs():
            raise UsageError(f"--staged: no subdir folders (noarch, linux-64, ...) in {staged_dir}")

    def staged_names(self, subdir: str) -> set[str]:
        return {e.name for e in self.staged.list_subdir(subdir) if is_artifact(e.name)}

    def list_subdirs(self) -> list[str]:
        return sorted(set(self.base.list_subdirs()) | set(self.staged.list_subdirs()))

    def list_subdir(self, subdir: str) -> list[Entry]:
        merged = {e.name: e for e in self.base.list_subdir(subdir)}
        for entry in self.staged.list_subdir(subdir):
            if is_artifact(entry.name):
                merged[entry.name] = Entry(
                    entry.name, entry.size, STAGED_TOKEN_PREFIX + entry.token
                )
        return sorted(merged.values(), key=lambda e: e.name)

    @contextmanager
    def open_artifact(self, subdir: str, name: str, token: str | None = None) -> Iterator[BinaryIO]:
        if name in self.staged_names(subdir):
            source = self.staged
            token = token.removeprefix(STAGED_TOKEN_PREFIX) if token else None
        else:
            source = self.base
        with source.open_artifact(subdir, name, token) as fileobj:
            yield fileobj

    def object_facts(self, subdir: str, name: str, token: str) -> ObjectFacts | None:
        """A staged artifact is local already: nothing to prove a local copy against."""
        if name in self.staged_names(subdir):
            return None
        facts = getattr(self.base, "object_facts", None)
        return None if facts is None else facts(subdir, name, token)

    @property
    def bytes_read(self) -> int:
        return self.base.bytes_read + self.staged.bytes_read

    def read(self, path: str) -> bytes | None:
        return self.base.read(path)

    def stat(self, path: str) -> Entry | None:
        return self.base.stat(path)

    def write(self, path: str, data: bytes, **kwargs: object) -> str:
        raise RunError(f"preview must not write {path}")

    def delete(self, path: str) -> None:
        raise RunError(f"preview must not delete {path}")

    def __getattr__(self, name: str) -> object:
        # backend extras (prefix listings for shards, cache location, ...)
        return getattr(self.base, name)
