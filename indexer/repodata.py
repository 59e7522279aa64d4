"""Render `repodata.json` from the same records as the shards (`--repodata`): pure.

For channels that let this tool own their index. Laid out as conda-index 0.13
writes it without patches or base_url: `info.subdir`, `packages`,
`packages.conda`, `removed: []`, `repodata_version: 1`, compact with sorted
keys, checksums in hex. Like conda-index, repodata.json records carry no
`run_exports` (classic clients get those from run_exports.json); an artifact
is listed only when readable and its checksums are known.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
import zstandard

from .artifact import check_value
from .cache import Cache, CachedArtifact
from .render import by_format, dumps_compact
from .storage import ChannelStore, Entry, is_artifact

REPODATA_JSON = "repodata.json"
REPODATA_VERSION = 1


def repodata_record(artifact: CachedArtifact) -> dict[str, Any]:
    """An artifact's repodata.json record: index.json fields, size, hex checksums."""
    if artifact.record is None or artifact.md5 is None or artifact.sha256 is None:
        raise ValueError(f"{artifact.filename} has no record or checksums")
    record = {k: v for k, v in artifact.record.items() if k != "run_exports"}
    record["md5"] = artifact.md5
    record["sha256"] = artifact.sha256
    return record


def repodata_document(
    subdir: str, artifacts: Iterable[CachedArtifact], removed: Iterable[str] = ()
) -> dict[str, Any]:
    """The document; `removed` lists what patch instructions removed (sorted)."""
    packages, packages_conda = by_format(
        artifacts, lambda a: repodata_record(a) if a.readable and a.record is not None else None
    )
    return {
        "info": {"subdir": subdir},
        "packages": packages,
        "packages.conda": packages_conda,
        "removed": sorted(removed),
        "repodata_version": REPODATA_VERSION,
    }


def repodata_json(
    subdir: str, artifacts: Iterable[CachedArtifact], removed: Iterable[str] = ()
) -> bytes:
    """The bytes of `<subdir>/repodata.json` (no trailing newline, as conda-index)."""
    return dumps_compact(repodata_document(subdir, artifacts, removed))


# -- the channel's repodata.json, written by another indexer -------------------------
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


# What clients that read repodata.json solve with. Shards must agree with it, so
# where our record (packages + the patches we can see) differs from the one it
# publishes for the same artifact, the published one is taken (plus run_exports)
# and reported. Read once per version of the file: the cache keeps a digest of
# every record it lists (and the record itself where ours differed), keyed by
# the file's token, so a warm run never re-reads a 100 MB repodata.json.
SOURCE_NAMES = ("repodata.json.zst", "repodata.json")  # what a client asks for first
REMOVED = "removed"  # the digest of an entry in its `removed` list
INVALID = "invalid"  # the digest of a record we could not publish as written (ours kept)
UNLISTED = "unlisted"  # a reason: an artifact older than the file, which does not list it
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SOURCE_KEY = "repodata_records_from"


@dataclass(frozen=True, slots=True)
class Taken:
    """An artifact whose published record was taken over ours, and why."""

    filename: str
    fields: list[str]  # the fields that differ; ["removed"] / ["listed"] for presence


def record_digest(record: Mapping[str, Any]) -> str:
    """sha256 of a record's canonical JSON, without `run_exports` (ours add them)."""
    body = {k: v for k, v in record.items() if k != "run_exports"}
    return hashlib.sha256(dumps_compact(body)).hexdigest()


def _ours_digest(artifact: CachedArtifact) -> str | None:
    try:
        return record_digest(repodata_record(artifact))
    except ValueError:  # checksums unknown: cannot agree
        return None


def differing_fields(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """Field names whose values differ (or exist on one side only), run_exports aside."""
    keys = (set(ours) | set(theirs)) - {"run_exports"}
    return sorted(k for k in keys if k not in ours or k not in theirs or ours[k] != theirs[k])


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

    def _older_than_source(self, row: CachedArtifact) -> bool:
        """The artifact is known to predate the published file (ages the backend gives)."""
        artifact = self.listed.get(row.filename)
        written = self.entry.modified
        if written is None or artifact is None or artifact.modified is None:
            return False
        return artifact.modified <= written

    def _trusted(self, size: int | None, row: CachedArtifact) -> bool:
        """The published entry describes these bytes: same size, written after the artifact."""
        if size is not None and size != row.size:
            return False
        artifact = self.listed.get(row.filename)
        written = self.entry.modified
        if written is None or artifact is None or artifact.modified is None:
            return True  # the backend cannot tell ages: size is all there is
        return artifact.modified <= written

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
        `artifact.check_value`: integers past 64 bits, NaN, deep nesting) is
        marked INVALID: ours is kept for it, with a warning.
        """
        if not isinstance(document, dict):
            return []
        rows: dict[str, tuple[str, int | None, str, bytes | None]] = {}
        for section in ("packages", "packages.conda"):
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
