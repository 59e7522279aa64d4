"""md5/sha256 of whole artifacts, which shard records need and range reads cannot give.

Cheapest first: the channel's existing `repodata.json` (or `.json.zst`) when it
lists the artifact with the same filename and size and was written after the
artifact (an older entry of the same size may describe bytes since replaced,
even ones a previous, interrupted run saw change); otherwise one sequential
read of the artifact in fixed-size chunks (memory stays flat whatever its
size; on S3 that is one streaming GET). The result goes into the cache's
md5/sha256 columns, which live as long as the artifact's size and token do,
so an artifact is never read in full twice.

New and changed artifacts are planned before the read stage
(`ChannelChecksums.full_reads`): those repodata.json cannot vouch for are read
in full there, once, info and checksums together (`fullread`), so `fill`
is left with what that read could not cover (a cache from before checksums,
a `.conda` too large to spool).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import orjson

from indexer.cache.db import Cache
from indexer.errors import Conflict
from indexer.model import SECTIONS, CachedArtifact, ChecksumResult, Entry
from indexer.read.channel_repodata import read_source, source_limit
from indexer.storage.base import ChannelStore

log = logging.getLogger(__name__)

CHUNK = 1 << 20
COMMIT_EVERY = 64  # hashed artifacts per cache transaction
REPODATA_NAMES = ("repodata.json.zst", "repodata.json")  # smaller transfer first
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_repodata(data: bytes) -> dict[str, tuple[int, str, str]]:
    """filename → (size, md5, sha256) from repodata.json bytes; {} when unusable."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        log.warning("ignoring unreadable repodata: %s", exc)
        return {}
    known: dict[str, tuple[int, str, str]] = {}
    if not isinstance(doc, dict):
        return known
    for section in SECTIONS:
        records = doc.get(section)
        if not isinstance(records, dict):
            continue
        for filename, rec in records.items():
            if not isinstance(rec, dict):
                continue
            size, md5, sha256 = rec.get("size"), rec.get("md5"), rec.get("sha256")
            if (
                isinstance(size, int)
                and isinstance(md5, str)
                and _MD5.match(md5)
                and isinstance(sha256, str)
                and _SHA256.match(sha256)
            ):
                known[filename] = (size, md5, sha256)
    return known


def from_channel_repodata(
    store: ChannelStore, subdir: str, listed: dict[str, Entry]
) -> tuple[dict[str, tuple[int, str, str]], float | None]:
    """Checksums the subdir's own repodata publishes (one GET, or none), and its age."""
    for name in REPODATA_NAMES:
        if name not in listed:
            continue
        try:
            data = read_source(store, subdir, listed[name], source_limit(listed))
        except ValueError as exc:
            log.warning("ignoring %s/%s: %s", subdir, name, exc)
            continue
        if data is None:
            continue
        known = parse_repodata(data)
        if known:
            return known, listed[name].modified
    return {}, None


@dataclass(frozen=True, slots=True)
class ChannelChecksums:
    """What the subdir's repodata.json says of artifacts' checksums, and when it was written."""

    known: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    written: float | None = None

    def vouches(self, name: str, size: int, artifact: Entry | None) -> tuple[str, str] | None:
        """(md5, sha256) of `name` when repodata.json describes these bytes, else None."""
        entry = self.known.get(name)
        if entry is None or not _trusted(entry, size, artifact, self.written):
            return None
        return entry[1], entry[2]

    def full_reads(self, to_read: Iterable[Entry], distrust: Collection[str]) -> set[str]:
        """The artifacts among `to_read` whose checksums need a full read of them.

        `distrust` names the artifacts replaced in place this run (see `fill`).
        """
        return {
            e.name for e in to_read if e.name in distrust or self.vouches(e.name, e.size, e) is None
        }


def channel_checksums(
    store: ChannelStore, subdir: str, listed: dict[str, Entry]
) -> ChannelChecksums:
    """The subdir's repodata.json checksums (one GET, or none)."""
    return ChannelChecksums(*from_channel_repodata(store, subdir, listed))


def _trusted(
    entry: tuple[int, str, str] | None,
    size: int,
    artifact: Entry | None,
    written: float | None,
) -> bool:
    """A repodata entry describes this artifact's bytes (see the module docstring)."""
    if entry is None or entry[0] != size:
        return False
    if written is None or artifact is None or artifact.modified is None:
        return True  # the backend cannot tell ages: size is all there is
    return artifact.modified <= written


def hash_artifact(store: ChannelStore, subdir: str, row: CachedArtifact) -> tuple[str, str, int]:
    """(md5, sha256, bytes read) of a whole artifact, read once, sequentially.

    Raises `Conflict` when the artifact vanished or its size no longer matches
    the listing: the pass is redone from a fresh listing.
    """
    md5, sha256, total = hashlib.md5(), hashlib.sha256(), 0
    try:
        with store.open_artifact(subdir, row.filename, row.token) as fileobj:
            while chunk := fileobj.read(CHUNK):
                md5.update(chunk)
                sha256.update(chunk)
                total += len(chunk)
    except FileNotFoundError:
        raise Conflict(f"{subdir}/{row.filename}") from None
    if total != row.size:
        raise Conflict(f"{subdir}/{row.filename}")
    return md5.hexdigest(), sha256.hexdigest(), total


def fill_missing(
    store: ChannelStore,
    cache: Cache,
    subdir: str,
    listing: list[Entry],
    changed: Iterable[str],
    jobs: int,
    sums: ChannelChecksums | None = None,
) -> ChecksumResult:
    """Give every readable cached artifact md5/sha256 (shards need them); return the cost.

    `changed` names the artifacts replaced in place this run (see `fill`);
    `sums`, the channel's repodata.json checksums when already fetched.
    """
    return fill(
        store,
        cache,
        subdir,
        cache.missing_checksums(),
        listed={e.name: e for e in listing},
        distrust=set(changed),
        jobs=jobs,
        sums=sums,
    )


def fill(
    store: ChannelStore,
    cache: Cache,
    subdir: str,
    rows: Iterable[CachedArtifact],
    *,
    listed: dict[str, Entry],
    distrust: set[str],
    jobs: int,
    sums: ChannelChecksums | None = None,
) -> ChecksumResult:
    """Give every readable artifact checksums in the cache; return what it cost.

    `listed` is the subdir listing by name. `distrust` names artifacts replaced
    in place this run: a repodata.json entry of the same size may describe the
    old bytes, so they are hashed (for backends that cannot tell ages).
    """
    stats = ChecksumResult()
    todo = list(rows)  # readable rows without checksums (`Cache.missing_checksums`)
    if not todo:
        return stats
    if sums is None:
        sums = channel_checksums(store, subdir, listed)
    found: list[CachedArtifact] = []
    to_hash: list[CachedArtifact] = []
    for row in todo:
        vouched = sums.vouches(row.filename, row.size, listed.get(row.filename))
        if vouched is not None and row.filename not in distrust:
            found.append(replace(row, md5=vouched[0], sha256=vouched[1]))
        else:
            to_hash.append(row)
    stats.from_repodata = len(found)
    cache.update(put=found)
    if to_hash:
        log.info("%s: reading %d artifact(s) in full for checksums", subdir, len(to_hash))
    conflict: Conflict | None = None
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="hasher") as pool:
        for start in range(0, len(to_hash), COMMIT_EVERY):  # a crash keeps finished work
            batch = to_hash[start : start + COMMIT_EVERY]
            done: list[CachedArtifact] = []
            for row, outcome in zip(batch, pool.map(_try_hash(store, subdir), batch), strict=True):
                if isinstance(outcome, Conflict):
                    conflict = conflict or outcome
                    continue
                md5, sha256, nbytes = outcome
                stats.full_reads += 1
                stats.full_read_bytes += nbytes
                done.append(replace(row, md5=md5, sha256=sha256))
            cache.update(put=done)
    if conflict is not None:
        raise conflict
    return stats


def _try_hash(
    store: ChannelStore, subdir: str
) -> Callable[[CachedArtifact], tuple[str, str, int] | Conflict]:
    def run(row: CachedArtifact) -> tuple[str, str, int] | Conflict:
        try:
            return hash_artifact(store, subdir, row)
        except Conflict as exc:
            return exc

    return run
