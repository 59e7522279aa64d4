"""What the channel publishes now, read back: the run_exports.json clients see.

The diff of a run is against what clients saw before it; the mass-removal
guard, when the cache knows nothing, counts what the published document lists;
a preview without a cache starts from the published files (`seed_baseline`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import orjson

from indexer import diff
from indexer.cache.db import Cache
from indexer.cache.homes import CacheHome
from indexer.config import Config
from indexer.model import SECTIONS, CachedArtifact, Entry, RecordChange, is_artifact
from indexer.publish.freshness import ours
from indexer.read import channel_repodata
from indexer.read.parse import check_value
from indexer.render import records, shards
from indexer.storage.base import ChannelStore
from indexer.storage.staged import STAGED_TOKEN_PREFIX as STAGED

log = logging.getLogger(__name__)


def published_document(
    store: ChannelStore,
    cache: Cache,
    path: str,
    listed: dict[str, Entry],
    data: bytes,
    document: dict,
) -> dict | None:
    """The run_exports document clients see now (None if there is none).

    When the published bytes are the ones we are about to write (`data`,
    rendered from `document`; the cache knows their hash), they are not
    fetched at all and `document` itself is returned.
    """
    if path not in listed:
        return None
    if ours(cache.published(), path, listed[path]) == hashlib.sha256(data).hexdigest():
        return document
    return _document(store.read(path), path)


def _document(raw: bytes | None, path: str) -> dict | None:
    """A published run_exports.json, parsed and checked as any JSON from the channel is
    (what someone else wrote there can be nested past what the report can carry)."""
    if not raw:
        return None
    try:
        document = orjson.loads(raw)
        check_value(document)
    except ValueError as exc:  # orjson.JSONDecodeError included
        log.warning("%s cannot be used (%s); treating every entry as new", path, exc)
        return None
    return document if isinstance(document, dict) else None


def removable(
    store: ChannelStore, subdir: str, listing: list[Entry], states: dict[str, tuple[int, str]]
) -> set[str]:
    """What this pass could remove: the cached artifacts, else the published entries.

    With no cache, the published run_exports.json is read even when the listing
    does not show it: a truncated listing loses its tail, outputs included.
    """
    before = set(states)
    if not before:
        path = f"{subdir}/run_exports.json"
        before = set(diff.run_exports_entries(_document(store.read(path), path)))
    return before


# -- the baseline of a preview without a cache ------------------------------------
BASELINE_SOURCES = ("run_exports_from_packages.json", "run_exports.json")  # the mirror first
NOT_RECORD = ("md5", "sha256", "run_exports")  # kept in their own columns, or ours
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def seed_baseline(
    store: ChannelStore, cache: Cache, subdir: str, listing: list[Entry], why: str
) -> str | None:
    """Seed an empty (scratch) cache from the published files; the report's one line.

    A preview whose cache it cannot read (kept private, refused to an unsigned
    reader, or absent) must not read the whole channel to show one pull
    request's change. Every listed artifact that the published
    `run_exports.json` describes (listed in it, not uploaded after it, and, where
    the published `repodata.json` lists it, of the size it gives) takes its
    run_exports from there, and its record from `repodata.json` where that has
    one (else name, version and build from the filename). Staged artifacts and
    everything else are left to be read. The files are untrusted: capped,
    parsed as conda parses them, and an entry that is not a valid value is
    simply read instead. None when nothing is published to start from.
    """
    listed = {e.name: e for e in listing}
    source = next((listed[n] for n in BASELINE_SOURCES if n in listed), None)
    if source is None:
        return None
    limit = channel_repodata.source_limit(listed)
    exports = diff.run_exports_entries(_load(store, subdir, source, limit))
    repodata_entry = channel_repodata.source_entry(listed)
    records: dict[str, Any] = {}
    if repodata_entry is not None:
        document = _load(store, subdir, repodata_entry, limit)
        for section in SECTIONS:
            records.update(_records(document, section))
    rows = []
    for entry in listing:
        value = exports.get(entry.name)
        if value is None or not is_artifact(entry.name) or entry.token.startswith(STAGED):
            continue
        if _after(entry, source) or (repodata_entry and _after(entry, repodata_entry)):
            continue  # uploaded (or replaced) since the published files were written
        record = records.get(entry.name)
        if record is not None and record.get("size") not in (None, entry.size):
            continue  # not the artifact the published files describe
        try:
            check_value(value)
        except ValueError:
            continue
        rows.append(_row(subdir, entry, value, record))
    cache.update(put=rows)
    files = source.name + (f" and {repodata_entry.name}" if repodata_entry else "")
    log.info("%s: %s; %d artifact(s) taken from the published %s", subdir, why, len(rows), files)
    return (
        f"baseline from the published {files} ({why}): {len(rows)} artifact(s) taken from "
        "them, only the others read"
    )


def _load(store: ChannelStore, subdir: str, entry: Entry, limit: int) -> Any:
    """A published JSON file (capped, zstd or not), or None when it cannot be used."""
    try:
        data = channel_repodata.read_source(store, subdir, entry, limit)
        return None if data is None else json.loads(data)
    except (ValueError, RecursionError) as exc:  # not JSON, too large, too deep
        log.warning("%s/%s cannot be used as a baseline: %s", subdir, entry.name, exc)
        return None


def _records(document: Any, section: str) -> dict[str, dict[str, Any]]:
    found = document.get(section) if isinstance(document, dict) else None
    if not isinstance(found, dict):
        return {}
    return {name: r for name, r in found.items() if isinstance(r, dict)}


def _after(entry: Entry, published: Entry) -> bool:
    """Was `entry` written after the published file (so that it cannot describe it)?"""
    return (
        entry.modified is not None
        and published.modified is not None
        and entry.modified > published.modified
    )


def _row(
    subdir: str, entry: Entry, run_exports: dict, record: dict[str, Any] | None
) -> CachedArtifact:
    """A cache row for an artifact the published files describe."""
    md5 = sha256 = None
    kept = None
    if record is not None:
        try:
            check_value(record)
            if isinstance(record.get("name"), str) and isinstance(record.get("version"), str):
                kept = {k: v for k, v in record.items() if k not in NOT_RECORD}
                md5 = record.get("md5") if _MD5.match(str(record.get("md5"))) else None
                sha256 = record.get("sha256") if _SHA256.match(str(record.get("sha256"))) else None
        except ValueError:
            kept = None
    if kept is None:  # name-version-build, as conda names artifacts
        stem = entry.name.removesuffix(".conda").removesuffix(".tar.bz2")
        name, version, build = [*stem.rsplit("-", 2), "", ""][:3]
        number = build.rsplit("_", 1)[-1]
        kept = {
            "name": name,
            "version": version,
            "build": build,
            "build_number": int(number) if number.isdigit() else 0,
            "subdir": subdir,
        }
    return CachedArtifact(
        entry.name, entry.size, entry.token, kept, run_exports, md5=md5, sha256=sha256
    )


def cacheless_preview(
    store: ChannelStore,
    home: CacheHome,
    cache: Cache,
    subdir: str,
    listing: list[Entry],
    config: Config,
) -> tuple[str | None, Config]:
    """A preview with no cache to start from: the published files are the baseline.

    Only staged and changed artifacts are then read (`seed_baseline`).
    Shards are not previewed: their records need every artifact's checksums
    and full record, which the published run_exports.json does not carry.
    """
    missing = getattr(home, "missing_reason", None)
    why = (missing(subdir) if missing else None) or "the cache holds no artifacts"
    line = seed_baseline(store, cache, subdir, listing, why)
    if line is None:
        return None, config
    if config.shards:
        line += "; shards not previewed (they need every artifact's record and checksums)"
    return line, replace(config, shards=False, repodata=False, prune_shards=None)


MAX_COMPARED_PACKAGES = 500  # published shards fetched for the record diff, at most
MAX_SHARD_BYTES = 256 << 20  # a published shard larger than this (decoded) is not compared
MAX_SHARD_ENTRIES = 1 << 20


def client_record_changes(
    store: ChannelStore,
    subdir: str,
    previous: Any,
    rendered: Mapping[str, bytes],
    present: Collection[str],
    new: Collection[str],
    jobs: int = 8,
) -> tuple[list[RecordChange], list[str]]:
    """The record fields clients will see change, and warnings about what was not compared.

    Before: the published shards (the index `previous` names them) of the
    packages whose shard this run changes; after: `rendered` (package name →
    shard bytes). Only those shards are fetched (untrusted: bounded), at most
    `MAX_COMPARED_PACKAGES`. Without a published shard index there is nothing
    clients see yet: no changes.
    """
    if not isinstance(previous, dict) or not isinstance(previous.get("shards"), dict):
        return [], []
    old = {
        name: sha
        for name, sha in previous["shards"].items()
        if isinstance(name, str) and isinstance(sha, bytes) and len(sha) == 32
    }
    names = records.changed_packages(old, {n: shards.digest(d) for n, d in rendered.items()})
    warnings: list[str] = []
    if len(names) > MAX_COMPARED_PACKAGES:
        warnings.append(
            f"the records of {len(names)} packages change; the record diff shows the first "
            f"{MAX_COMPARED_PACKAGES} (by name)"
        )
        names = names[:MAX_COMPARED_PACKAGES]

    def published_records(name: str) -> dict[str, dict[str, Any]] | None:
        if name not in old:
            return {}
        data = store.read(shards.shard_path(subdir, old[name]))
        try:
            return records.shard_records(shards.decode(data, MAX_SHARD_BYTES, MAX_SHARD_ENTRIES))
        except Exception:  # absent (None), not zstd, not msgpack, too large
            return None

    with ThreadPoolExecutor(max(1, min(jobs, len(names), 16))) as pool:
        befores = list(pool.map(published_records, names))
    changes: list[RecordChange] = []
    for name, before in zip(names, befores, strict=True):
        if before is None:
            warnings.append(
                f"the published shard of {name!r} is missing or unreadable: "
                "its record changes are not shown"
            )
            continue
        after = records.shard_records(shards.decode(rendered[name])) if name in rendered else {}
        changes += records.record_changes(before, after, present, new)
    return changes, warnings
