"""Render CEP-16 shards carrying CEP-21 run_exports: pure, byte-deterministic.

A shard holds every record of one package name, `{"packages": {fn: record},
"packages.conda": {fn: record}}`, records as conda-index 0.13 writes them
(index.json fields, `size`, `md5`/`sha256` as raw bytes, `run_exports`).
Its name is the sha256 of its compressed bytes, so the same records must
always give the same bytes: keys are sorted at every level, msgpack has one
encoding per value, and zstd runs at a fixed level without timestamps.

Layout (see docs/shards.md): the index is `<subdir>/repodata_shards.msgpack.zst`,
the shards `<subdir>/shards/<sha256 hex>.msgpack.zst`, found through
`shards_base_url: "./shards/"` relative to the index, as in CEP-16's example
and as rattler-index lays them out.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgpack
import zstandard

from indexer.model import (
    IMMUTABLE_CACHE_CONTROL,
    MSGPACK_ZSTD_TYPE,
    SECTIONS,
    CachedArtifact,
    Output,
    as_dict,
    section_of,
)

SHARD_INDEX = "repodata_shards.msgpack.zst"
SHARDS_FOLDER = "shards"
SHARDS_BASE_URL = f"./{SHARDS_FOLDER}/"
# Packages sit beside the index (CEP-15: empty base_url = relative to it); pixi
# wants the key present, as conda-index writes it.
BASE_URL = ""
SHARD_INDEX_VERSION = 1
# Shards are many small objects: higher levels gain little and cost time.
# Fixed forever: changing it renames every shard.
ZSTD_LEVEL = 3
SHARD_NAME_RE = re.compile(r"^[0-9a-f]{64}\.msgpack\.zst$")
MAX_DECODED_BYTES = 1 << 30  # a shard index or shard larger than this is not ours


def shard_record(artifact: CachedArtifact) -> dict[str, Any]:
    """One artifact's record in a shard; requires its record and checksums."""
    if artifact.record is None or artifact.md5 is None or artifact.sha256 is None:
        raise ValueError(f"{artifact.filename} has no record or checksums")
    record: dict[str, Any] = as_dict(artifact.record)
    record["md5"] = bytes.fromhex(artifact.md5)
    record["sha256"] = bytes.fromhex(artifact.sha256)
    if artifact.run_exports is not None:  # unknown run_exports stay absent (CEP-21)
        record["run_exports"] = artifact.run_exports
    else:
        record.pop("run_exports", None)
    return _sorted(record)


def shard_document(artifacts: Iterable[CachedArtifact]) -> dict[str, dict[str, Any]]:
    """One package's shard: its records by format, then filename."""
    shard: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for artifact in artifacts:
        shard[section_of(artifact.filename)][artifact.filename] = shard_record(artifact)
    return shard


def encode(document: Any) -> bytes:
    """msgpack (bin type for bytes), then zstd with the content size recorded."""
    packed = msgpack.packb(_sorted(document), use_bin_type=True)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(packed)


def decode(
    data: bytes,
    max_bytes: int = MAX_DECODED_BYTES,
    max_entries: int = 2**31 - 1,
) -> Any:
    """Inverse of `encode`; also reads frames without a content size (rattler's).

    What is read from the channel is untrusted: `max_bytes` caps the
    decompressed size and `max_entries` every map and array msgpack builds
    (a few bytes of msgpack can ask for millions of entries).
    """
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    packed = reader.read(max_bytes + 1)
    if len(packed) > max_bytes:
        raise ValueError("decompressed size over the limit")
    return msgpack.unpackb(
        packed,
        raw=False,
        strict_map_key=False,
        max_map_len=max_entries,
        max_array_len=max_entries,
    )


def index_limits(artifacts: int) -> tuple[int, int]:
    """(bytes, entries) a subdir's shard index may hold: one entry per package name,
    so never more names than artifacts (plus room for those since removed)."""
    names = 1024 + 2 * artifacts
    return 4096 + 128 * names, names


def digest(shard: bytes) -> bytes:
    """The raw sha256 that names a shard."""
    return hashlib.sha256(shard).digest()


def shard_path(subdir: str, sha256: bytes) -> str:
    """Channel-relative path of the shard with this digest."""
    return f"{subdir}/{SHARDS_FOLDER}/{sha256.hex()}.msgpack.zst"


def index_document(subdir: str, hashes: Mapping[str, bytes], created_at: str) -> dict[str, Any]:
    """The shard index (CEP-16): version, info, package name → raw sha256."""
    return {
        "version": SHARD_INDEX_VERSION,
        "info": {
            "base_url": BASE_URL,
            "shards_base_url": SHARDS_BASE_URL,
            "created_at": created_at,
            "subdir": subdir,
        },
        "shards": dict(sorted(hashes.items())),
    }


def timestamp(now: datetime | None = None) -> str:
    """`created_at` as conda-index writes it (UTC, whole seconds)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_at(previous: Any, new: dict[str, Any], now: str) -> str:
    """Keep the previous index's `created_at` when nothing else in it changed.

    `created_at` is the only non-deterministic field; reusing it makes an
    unchanged index byte-identical, so a run with nothing new writes nothing.
    """
    if not isinstance(previous, dict) or not isinstance(previous.get("info"), dict):
        return now
    old_info = dict(previous["info"])
    old_stamp = old_info.pop("created_at", None)
    new_info = {k: v for k, v in new["info"].items() if k != "created_at"}
    same = (
        previous.get("version") == new["version"]
        and old_info == new_info
        and previous.get("shards") == new["shards"]
        and set(previous) == set(new)
    )
    return old_stamp if same and isinstance(old_stamp, str) else now


def referenced_names(index: Any) -> set[str]:
    """Object names (`<hex>.msgpack.zst`) of every shard an index names."""
    if not isinstance(index, dict) or not isinstance(index.get("shards"), dict):
        return set()
    return {
        f"{h.hex()}.msgpack.zst"
        for h in index["shards"].values()
        if isinstance(h, bytes) and len(h) == 32
    }


def _sorted(value: Any) -> Any:
    """Dicts with keys in sorted order, recursively (msgpack keeps insertion order)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def shard_index(
    subdir: str, rendered: Mapping[str, bytes], previous: Any, now: str
) -> dict[str, Any]:
    """The shard index of `rendered` (package name → shard bytes), `created_at` kept if it can."""
    hashes = {name: digest(data) for name, data in rendered.items()}
    index = index_document(subdir, hashes, "")
    index["info"]["created_at"] = created_at(previous, index, now)
    return index


def shard_outputs(
    subdir: str, rendered: Mapping[str, bytes], index: dict[str, Any], existing: set[str] | None
) -> list[Output]:
    """The shards not yet published (immutable, first), then the index.

    `existing` names the objects in `<subdir>/shards/`; None when the index is
    the one published (then every shard it names is there).
    """
    out: list[Output] = []
    for data in rendered.values():
        path = shard_path(subdir, digest(data))
        if existing is not None and path.rsplit("/", 1)[1] not in existing:
            out.append(
                Output(path, data, MSGPACK_ZSTD_TYPE, IMMUTABLE_CACHE_CONTROL, immutable=True)
            )
    out.append(Output(f"{subdir}/{SHARD_INDEX}", encode(index), MSGPACK_ZSTD_TYPE))
    return out
