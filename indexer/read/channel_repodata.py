"""The channel's repodata.json, written by another indexer: read once per version.

What clients that read repodata.json solve with. Shards must agree with it, so
where our record (packages + the patches we can see) differs from the one it
publishes for the same artifact, the published one is taken (plus run_exports)
and reported. Read once per version of the file: the cache keeps a digest of
every record it lists (and the record itself where ours differed), keyed by
the file's token, so a warm run never re-reads a 100 MB repodata.json.
A source of rendering, read here; rendering only calls `resolve`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import orjson
import zstandard

from indexer.cache.db import Cache
from indexer.config import Config
from indexer.model import SECTIONS, CachedArtifact, Entry, Taken, is_artifact
from indexer.publish.freshness import ours
from indexer.read.parse import check_value
from indexer.render.repodata import (
    REMOVED,
    SOURCE_NAMES,
    differing_fields,
    record_digest,
    repodata_record,
)
from indexer.render.run_exports import dumps_compact
from indexer.storage.base import ChannelStore


def source_limit(listed: Iterable[str]) -> int:
    """The most a subdir's repodata.json may hold, decompressed: 1 MiB and 16 KiB per
    artifact listed beside it (real records are about 1 KiB). It comes from the
    bucket: a few KiB of zstd must not become gigabytes in memory."""
    return (1 << 20) + (16 << 10) * sum(1 for name in listed if is_artifact(name))


def read_source(store: ChannelStore, subdir: str, entry: Entry, limit: int) -> bytes | None:
    """The bytes of the listed `repodata.json(.zst)` `entry`, decompressed, at most `limit`.

    None when it vanished since the listing; ValueError (one line) when it is
    larger than `limit` or not valid zstd.
    """
    if entry.size > limit:
        raise ValueError(f"larger than {limit:,} bytes, more than this subdir's could hold")
    data = store.read(f"{subdir}/{entry.name}")
    if data is None or not entry.name.endswith(".zst"):
        return data
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        data = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not valid zstd ({exc})") from None
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes decompressed")
    return data


INVALID = "invalid"  # the digest of a record we could not publish as written (ours kept)
UNLISTED = "unlisted"  # a reason: an artifact older than the file, which does not list it


_MD5 = re.compile(r"^[0-9a-f]{32}$")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


_SOURCE_KEY = "repodata_records_from"


def _ours_digest(artifact: CachedArtifact) -> str | None:
    try:
        return record_digest(repodata_record(artifact))
    except ValueError:  # checksums unknown: cannot agree
        return None


def source_entry(listing: Mapping[str, Entry]) -> Entry | None:
    """The repodata file a client would read in this subdir listing, if any."""
    for name in SOURCE_NAMES:
        if name in listing:
            return listing[name]
    return None


class ChannelRepodata:
    """One subdir's published repodata.json (not ours), compared record by record."""

    def __init__(
        self, store: ChannelStore, cache: Cache, subdir: str, entry: Entry, listed: dict[str, Entry]
    ) -> None:
        self.store, self.cache, self.subdir, self.entry = store, cache, subdir, entry
        self.listed = listed  # artifact name → listing entry (ages)
        self.source = f"{entry.name}\t{entry.token}"
        self.warnings: list[str] = []

    def resolve(
        self, rows: Iterable[CachedArtifact], patched: Iterable[CachedArtifact]
    ) -> tuple[list[CachedArtifact], list[Taken]]:
        """What clients get per artifact: ours where it agrees or is not published, else theirs.

        `rows` are the readable artifacts from the packages, `patched` what our
        patches make of them (those missing were removed by them).
        """
        rows = list(rows)
        ours = {r.filename: r for r in patched}
        digests = {name: _ours_digest(r) for name, r in ours.items()}
        table = self._table(digests, refresh=False)
        for attempt in (0, 1):
            final: list[CachedArtifact] = []
            taken: list[Taken] = []
            missing = False
            for row in rows:
                outcome = self._one(row, ours.get(row.filename), digests, table)
                if outcome is None:
                    missing = True
                    break
                kept, why = outcome
                if kept is not None:
                    final.append(kept)
                if why is not None:
                    taken.append(why)
            if not missing:
                return final, taken
            if attempt == 0:  # a record we did not keep: read the file again
                table = self._table(digests, refresh=True)
        raise AssertionError("unreachable: a refreshed table keeps every differing record")

    def _one(
        self,
        row: CachedArtifact,
        mine: CachedArtifact | None,
        digests: dict[str, str | None],
        table: dict[str, tuple[int | None, str, bytes | None]],
    ) -> tuple[CachedArtifact | None, Taken | None] | None:
        """(row to publish or None, what was taken or None); None: the record is not kept."""
        entry = table.get(row.filename)
        if entry is None:
            # Not listed, though the file lists others and was written after this
            # artifact: clients reading repodata.json do not see it (a `null` fix,
            # say, deletes a record without listing it in `removed`).
            if table and self._older_than_source(row):
                return None, (None if mine is None else Taken(row.filename, [UNLISTED]))
            return mine, None
        if not self._trusted(entry[0], row):
            return mine, None
        _, digest, blob = entry
        if digest == INVALID:
            return mine, None
        if digest == REMOVED:
            return None, (None if mine is None else Taken(row.filename, [REMOVED]))
        if mine is not None and digests.get(row.filename) == digest:
            return mine, None
        if blob is None:
            return None
        theirs = orjson.loads(blob)
        if not isinstance(theirs.get("name"), str) or not theirs["name"]:
            self.warnings.append(f"{self.entry.name}: {row.filename} has no name; ours kept")
            return mine, None
        base = mine if mine is not None else row
        fields = ["listed"] if mine is None else differing_fields(repodata_record(mine), theirs)
        record = {k: v for k, v in theirs.items() if k not in ("md5", "sha256", "run_exports")}
        md5, sha256 = theirs.get("md5"), theirs.get("sha256")
        kept = replace(
            base,
            record=record,
            md5=md5 if isinstance(md5, str) and _MD5.match(md5) else base.md5,
            sha256=sha256 if isinstance(sha256, str) and _SHA256.match(sha256) else base.sha256,
        )
        return kept, Taken(row.filename, fields)

    def _predates_source(self, row: CachedArtifact) -> bool | None:
        """Was the artifact there before the published file was written? None: the
        backend gives no ages to tell."""
        artifact = self.listed.get(row.filename)
        written = self.entry.modified
        if written is None or artifact is None or artifact.modified is None:
            return None
        return artifact.modified <= written

    def _older_than_source(self, row: CachedArtifact) -> bool:
        """The artifact is known to predate the published file."""
        return self._predates_source(row) is True

    def _trusted(self, size: int | None, row: CachedArtifact) -> bool:
        """The published entry describes these bytes: same size, written after the artifact
        (where the backend cannot tell ages, size is all there is)."""
        if size is not None and size != row.size:
            return False
        return self._predates_source(row) is not False

    def _table(
        self, digests: dict[str, str | None], *, refresh: bool
    ) -> dict[str, tuple[int | None, str, bytes | None]]:
        if not refresh and self.cache.meta(_SOURCE_KEY) == self.source:
            return self.cache.repodata_records()
        rows = self._summarise(self._read(), digests)
        self.cache.set_repodata_records(self.source, rows)
        return {name: (size, digest, blob) for name, size, digest, blob in rows}

    def _read(self) -> Any:
        path = f"{self.subdir}/{self.entry.name}"
        try:
            data = read_source(self.store, self.subdir, self.entry, source_limit(self.listed))
            if data is None:
                return None
            # `json`, as conda reads it: orjson would turn integers past 64 bits into
            # floats without a word (each record is checked in `_summarise`).
            return json.loads(data, parse_constant=_reject_constant)
        except RecursionError:
            self.warnings.append(f"{path} is nested too deeply; shards from the packages alone")
            return None
        except (zstandard.ZstdError, ValueError) as exc:
            self.warnings.append(f"{path} is unreadable ({exc}); shards from the packages alone")
            return None

    def _summarise(
        self, document: Any, digests: dict[str, str | None]
    ) -> list[tuple[str, int | None, str, bytes | None]]:
        """One row per listed or removed filename; records kept where ours differ.

        A record holding what we cannot publish as written (see
        `read.parse.check_value`: integers past 64 bits, NaN, deep nesting) is
        marked INVALID: ours is kept for it, with a warning.
        """
        if not isinstance(document, dict):
            return []
        rows: dict[str, tuple[str, int | None, str, bytes | None]] = {}
        for section in SECTIONS:
            records = document.get(section)
            for name, record in (records if isinstance(records, dict) else {}).items():
                if not isinstance(record, dict):
                    continue
                try:
                    check_value(record)
                except ValueError as exc:
                    self.warnings.append(
                        f"{self.entry.name}: the record of {name} cannot be published as "
                        f"written ({exc}); ours kept"
                    )
                    rows[name] = (name, None, INVALID, None)
                    continue
                digest = record_digest(record)
                size = record.get("size")
                size = size if isinstance(size, int) and not isinstance(size, bool) else -1
                blob = None if digests.get(name) == digest else dumps_compact(record)
                rows[name] = (name, size, digest, blob)
        removed = document.get("removed")
        for name in removed if isinstance(removed, list) else []:
            if isinstance(name, str) and name not in rows:
                rows[name] = (name, None, REMOVED, None)
        return [rows[name] for name in sorted(rows)]


def for_subdir(
    store: ChannelStore, cache: Cache, subdir: str, listing: list[Entry], config: Config
) -> ChannelRepodata | None:
    """The channel's repodata.json the shards must agree with: another indexer's, if any.

    Not with `--repodata` (this tool then writes it from the same records),
    nor when the file is the one we wrote, nor when patch instructions are
    given for the subdir (`--patches`): they say what the records become, as
    conda-index's generator output replaces what its repodata.json held.
    """
    if not config.shards or config.repodata or subdir in config.patches:
        return None
    entries = {e.name: e for e in listing}
    entry = source_entry(entries)
    if entry is None:
        return None
    if ours(cache.published(), f"{subdir}/{entry.name}", entry) is not None:
        return None
    return ChannelRepodata(store, cache, subdir, entry, entries)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
