"""The shard stage of a run: checksums, shards, the shard index, repodata, pruning.

It sits between the pure renderers (shards.py, repodata.py) and the store:
it decides which shards need uploading (those not yet in `<subdir>/shards/`),
keeps the index's `created_at` when nothing else changed (so a run with
nothing new writes nothing), remembers when a shard stopped being named, and
prunes only with `--prune-shards`. The pipeline calls it in three places:
before rendering (checksums), when collecting outputs, and after publishing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import checksums, repodata, shards
from .cache import Cache, CachedArtifact
from .diff import Plan
from .errors import UsageError
from .publish import (
    IMMUTABLE_CACHE_CONTROL,
    INDEX_CACHE_CONTROL,
    MSGPACK_ZSTD_TYPE,
    Output,
)
from .render import zst_output
from .report import SubdirReport
from .storage import ChannelStore, Entry, is_artifact

log = logging.getLogger(__name__)

_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# What a client may keep using an old shard index for: the index's own max-age
# (as publish.py writes it) plus this allowance for a CDN or proxy in front of
# the channel that caches the index longer (docs/shards.md, "Pruning").
CDN_ALLOWANCE_S = 3600


def index_max_age(cache_control: str = INDEX_CACHE_CONTROL) -> int:
    """The `max-age` seconds of a Cache-Control value (0 without one)."""
    match = re.search(r"(?:^|[,\s])max-age=(\d+)", cache_control)
    return int(match.group(1)) if match else 0


MIN_PRUNE_AGE_S = index_max_age() + CDN_ALLOWANCE_S


def parse_age(text: str) -> float:
    """`7d`, `12h`, `30m`, `90s`, `2w` → seconds; UsageError otherwise."""
    match = _AGE_RE.match(text)
    if not match:
        raise UsageError(f"--prune-shards: expected an age such as 7d, 12h or 30m, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def check_prune_age(seconds: float) -> float:
    """`seconds` if pruning that young cannot break a client, else UsageError.

    A client may hold the previous shard index for its max-age, and a CDN
    longer; it must still find every shard that index names. So AGE must be
    at least the index's max-age plus `CDN_ALLOWANCE_S`.
    """
    if seconds < MIN_PRUNE_AGE_S:
        raise UsageError(
            f"--prune-shards: AGE must be at least {MIN_PRUNE_AGE_S}s "
            f"({human_age(MIN_PRUNE_AGE_S)}), got {human_age(seconds)}: clients may cache the "
            f"shard index for {index_max_age()}s (its max-age) plus {human_age(CDN_ALLOWANCE_S)} "
            "allowed for a CDN, and must still find the shards it names"
        )
    return seconds


def human_age(seconds: float) -> str:
    """`3660` → `1h1m`: the age in the units --prune-shards takes."""
    left, parts = round(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def prunable(
    entries: Iterable[Entry],
    referenced: set[str],
    dropped: dict[str, float],
    folder: str,
    now: float,
    age: float,
) -> list[str]:
    """Paths of shards no index names whose grace period is over (pure).

    A shard's age counts from the later of its upload and the moment our index
    stopped naming it: a shard written a year ago and dropped a minute ago is
    still what clients holding the previous index will ask for.
    """
    paths = []
    for entry in entries:
        if not shards.SHARD_NAME_RE.match(entry.name) or entry.name in referenced:
            continue
        if entry.modified is None:  # the backend cannot age it: keep it
            continue
        path = f"{folder}/{entry.name}"
        since = max(entry.modified, dropped.get(path, entry.modified))
        if now - since > age:
            paths.append(path)
    return sorted(paths)


class ShardStage:
    """One subdir's shard work within one pass."""

    def __init__(
        self,
        store: ChannelStore,
        cache: Cache,
        subdir: str,
        listing: list[Entry],
        *,
        jobs: int,
        dry_run: bool,
        write_repodata: bool,
        prune_age: float | None,
    ) -> None:
        self.store, self.cache, self.subdir = store, cache, subdir
        self.entries = {e.name: e for e in listing}
        self.listed = set(self.entries)
        self.jobs, self.dry_run = jobs, dry_run
        self.write_repodata, self.prune_age = write_repodata, prune_age
        self.folder = f"{subdir}/{shards.SHARDS_FOLDER}"
        self.index_path = f"{subdir}/{shards.SHARD_INDEX}"
        self.previous: Any = None
        self.index: dict[str, Any] | None = None
        self._shard_listing: list[Entry] | None = None

    # -- before rendering ------------------------------------------------------
    def fill_checksums(self, plan: Plan, report: SubdirReport) -> None:
        """Give every readable artifact md5/sha256 in the cache; count the cost."""
        stats = checksums.fill(
            self.store,
            self.cache,
            self.subdir,
            self.cache.missing_checksums(),
            listed=self.entries,
            distrust={e.name for e in plan.changed},
            jobs=self.jobs,
        )
        report.checksums_from_repodata += stats.from_repodata
        report.checksum_full_reads += stats.full_reads
        report.checksum_bytes_read += stats.full_read_bytes
        report.bytes_read += stats.full_read_bytes

    # -- outputs ------------------------------------------------------------------
    def outputs(
        self,
        rendered: Mapping[str, bytes],
        rows: Callable[[], tuple[Iterable[CachedArtifact], Iterable[str]]],
    ) -> list[Output]:
        """Missing shards (immutable, first), then the index, then repodata if asked.

        `rendered` maps package name → shard bytes (`renderpass`); `rows`
        gives every artifact as clients see it and what patches removed, called
        only for repodata.json.
        """
        hashes = {name: shards.digest(data) for name, data in rendered.items()}
        self.previous = self._read_previous()
        index = shards.index_document(self.subdir, hashes, "")
        index["info"]["created_at"] = shards.created_at(self.previous, index, shards.timestamp())
        self.index = index
        out: list[Output] = []
        if index != self.previous:  # new names or hashes: some shards may be missing
            self._record_dropped(index, time.time())
            existing = {e.name for e in self._shards_listing()}
            for name, data in rendered.items():
                path = shards.shard_path(self.subdir, hashes[name])
                if path.rsplit("/", 1)[1] not in existing:
                    out.append(
                        Output(
                            path,
                            data,
                            MSGPACK_ZSTD_TYPE,
                            IMMUTABLE_CACHE_CONTROL,
                            immutable=True,
                        )
                    )
        out.append(Output(self.index_path, shards.encode(index), MSGPACK_ZSTD_TYPE))
        if self.write_repodata:
            document = repodata.repodata_json(self.subdir, *rows())
            path = f"{self.subdir}/{repodata.REPODATA_JSON}"
            out += [Output(path, document), zst_output(f"{path}.zst", document)]
        return out

    def _read_previous(self) -> Any:
        if shards.SHARD_INDEX not in self.listed:
            return None
        artifacts = sum(1 for name in self.entries if is_artifact(name))
        max_bytes, max_entries = shards.index_limits(artifacts)
        if self.entries[shards.SHARD_INDEX].size > max_bytes:
            log.warning(
                "%s is larger than this subdir's could be; writing a new one", self.index_path
            )
            return None
        data = self.store.read(self.index_path)
        if data is None:
            return None
        try:
            return shards.decode(data, max_bytes, max_entries)
        except Exception as exc:  # zstd and msgpack raise many types; a bad index is replaced
            log.warning("%s is unreadable (%s); writing a new one", self.index_path, exc)
            return None

    def _shards_listing(self) -> list[Entry]:
        if self._shard_listing is None:
            self._shard_listing = self.store.list_subdir(self.folder)
        return self._shard_listing

    # -- after publishing ------------------------------------------------------------
    def _record_dropped(self, index: dict[str, Any], now: float) -> None:
        """Remember, before publishing, which shards the new index stops naming.

        Recorded first so that no failure between publishing and the end of the
        run can lose the moment; a retry records it again (the latest wins).
        """
        current = shards.referenced_names(index)
        no_longer = shards.referenced_names(self.previous) - current
        self.cache.update_shards_dropped(
            add=[f"{self.folder}/{n}" for n in sorted(no_longer)],
            since=now,
            remove=[f"{self.folder}/{n}" for n in sorted(current)],
        )

    # -- after publishing ------------------------------------------------------------
    def finish(self, report: SubdirReport, now: float | None = None) -> None:
        """Prune when asked: shards no index names, past their grace period."""
        if self.index is None or self.prune_age is None:
            return
        now = time.time() if now is None else now
        current = shards.referenced_names(self.index)
        self._shard_listing = None  # list again: this pass may have uploaded some
        listing = self._shards_listing()
        dropped = self.cache.shards_dropped()
        # A shard without a recorded drop (a lost cache, a crashed upload) may have
        # been named by any index up to the current one: its grace period starts
        # when the current index was written, counted from first sight.
        index_entry = self.entries.get(shards.SHARD_INDEX)
        index_written = (
            now
            if self.index != self.previous or index_entry is None
            else (index_entry.modified or now)
        )
        unseen = [
            f"{self.folder}/{e.name}"
            for e in listing
            if shards.SHARD_NAME_RE.match(e.name)
            and e.name not in current
            and f"{self.folder}/{e.name}" not in dropped
        ]
        dropped.update(dict.fromkeys(unseen, index_written))
        present = {f"{self.folder}/{e.name}" for e in listing}
        gone = [path for path in dropped if path not in present]  # deleted by someone else
        doomed = prunable(listing, current, dropped, self.folder, now, self.prune_age)
        for path in doomed:
            if not self.dry_run:
                self.store.delete(path)
        if not self.dry_run:
            self.cache.update_shards_dropped(add=unseen, since=index_written)
            self.cache.update_shards_dropped(remove=doomed + gone)
        report.shards_pruned += doomed
