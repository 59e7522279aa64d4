"""The channel-storage interface every backend implements.

The pipeline only ever talks to a `ChannelStore`, so the local directory (the
embedded default) and S3 are interchangeable. Paths are channel-relative and
always use `/` (`linux-64/run_exports.json`).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

ARTIFACT_SUFFIXES = (".conda", ".tar.bz2")
CACHE_PREFIX = ".run-exports-index"
# noarch, or <platform>-<arch> (linux-64, osx-arm64, emscripten-wasm32, zos-z, ...)
SUBDIR_RE = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9_]+)$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One object in a subdir listing: its name, size and change token.

    The token changes whenever the object's bytes may have changed: size and
    mtime_ns on disk, the ETag on S3. `modified` (seconds since the epoch, the
    mtime on disk, LastModified on S3) is what pruning ages objects by; None
    where a backend cannot tell, and such objects are never pruned.
    """

    name: str
    size: int
    token: str
    modified: float | None = None


def is_artifact(name: str) -> bool:
    """True for names a conda channel serves as packages."""
    return name.endswith(ARTIFACT_SUFFIXES) and not name.startswith(".")


def is_subdir_name(name: str) -> bool:
    """True for folder names that look like conda subdirs."""
    return bool(SUBDIR_RE.match(name))


class ChannelStore(Protocol):
    """What the pipeline needs from where a channel lives."""

    #: Where the channel is, for messages (never carries credentials).
    location: str

    def list_subdirs(self) -> list[str]:
        """Names of the channel's subdirs, sorted."""
        ...

    def list_subdir(self, subdir: str) -> list[Entry]:
        """Every object directly in `subdir` (artifacts and outputs), sorted by name.

        `subdir` may also be a nested folder such as `linux-64/shards` (CEP-16
        shards); an absent folder lists as empty.
        """
        ...

    def open_artifact(
        self, subdir: str, name: str, token: str | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """A readable file object for an artifact, suited to conda-package-streaming.

        For `.conda` it must be seekable (ranged reads); for `.tar.bz2` a stream.
        With `token` (from the listing) the bytes read are those of that version,
        or `errors.Conflict` is raised: a replacement between listing and reading
        must never be cached under the old token.
        """
        ...

    def read(self, path: str) -> bytes | None:
        """The bytes of a channel object, or None when it does not exist."""
        ...

    def write(
        self,
        path: str,
        data: bytes,
        *,
        expect: str | None,
        content_type: str,
        cache_control: str,
    ) -> str:
        """Write `data` if the object's token is still `expect` (None: must not exist).

        Returns the new token. Raises `errors.Conflict` when another writer got
        there first.
        """
        ...

    def delete(self, path: str) -> None:
        """Remove an object (no error when it is already gone)."""
        ...

    def stat(self, path: str) -> Entry | None:
        """Size and token of one object, or None."""
        ...

    @property
    def bytes_read(self) -> int:
        """Bytes read from artifacts so far (what range reads saved shows here)."""
        ...

    @property
    def retries(self) -> int:
        """Transient failures retried so far (reported as `retries`)."""
        ...

    def prefetch_listings(self, subdirs: list[str]) -> None:
        """Start listing these subdirs at once (a no-op where listing is local)."""
        ...
