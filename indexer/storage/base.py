"""The channel-storage interface every backend implements.

The pipeline only ever talks to a `ChannelStore`, so the local directory (the
embedded default) and S3 are interchangeable. Paths are channel-relative and
always use `/` (`linux-64/run_exports.json`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from indexer.model import Entry

CACHE_PREFIX = ".run-exports-index"


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
