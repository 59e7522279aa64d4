"""The run report: one JSON document (pure; its Markdown is `report.markdown`).

The JSON is what tools read (`--report`); the Markdown is what people read
(`--summary`, the job summary, the pull-request comment).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from indexer.model import Lint, Problem, RecordChange, RunExportsChange, Taken

# The version of the JSON report's shape (docs/report.schema.json): raised when a
# field is removed or changes meaning; new fields keep it.
SCHEMA_VERSION = 1


@dataclass(slots=True)
class SubdirReport:
    subdir: str
    listed: int = 0
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    unreadable: list[Problem] = field(default_factory=list)
    run_exports_unknown: list[Problem] = field(default_factory=list)
    run_exports_changes: list[RunExportsChange] = field(default_factory=list)
    lints: list[Lint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the channel, for its maintainer
    artifacts_read: int = 0
    bytes_read: int = 0
    uploaded: list[str] = field(default_factory=list)
    cache_rebuilt: str | None = None
    # shards: where checksums came from, and what reading artifacts in full cost
    checksums_from_repodata: int = 0
    checksum_full_reads: int = 0
    checksum_bytes_read: int = 0  # also counted in bytes_read
    # .tar.bz2 read past their payload because info/ was not first (also in bytes_read)
    read_in_full: int = 0
    read_in_full_bytes: int = 0
    # indexed, but the filename is not index.json's name-version-build
    filename_mismatches: list[Problem] = field(default_factory=list)
    shards_pruned: list[str] = field(default_factory=list)
    # records taken from the channel's repodata.json (patched by something we cannot see)
    records_from_repodata: list[Taken] = field(default_factory=list)
    patch_warnings: list[str] = field(default_factory=list)  # also in `warnings`
    # the mass-removal guard: why this subdir was not published (None: it was not refused)
    refused: str | None = None
    # --verify: cache rows and published outputs found differing and repaired
    repaired: list[Problem] = field(default_factory=list)
    # a preview without a cache: where what it compares with came from (None: the cache)
    baseline: str | None = None
    # --local-copies: new artifacts read from the job's files (how each was proven the
    # channel's object), and those read from the channel instead (why)
    local_copies_proven: list[Problem] = field(default_factory=list)
    local_copies_not_used: list[Problem] = field(default_factory=list)
    notice: str | None = None  # a requested subdir with nothing in it (not indexed)
    # record fields clients see change (published shards → this run's), beside run_exports
    record_changes: list[RecordChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "new": len(self.new),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
            "unreadable": len(self.unreadable),
            "artifacts": {
                "new": self.new,
                "changed": self.changed,
                "removed": self.removed,
                "unreadable": [asdict(p) for p in self.unreadable],
                "run_exports_unknown": [asdict(p) for p in self.run_exports_unknown],
                "filename_mismatches": [asdict(p) for p in self.filename_mismatches],
            },
            "run_exports_changes": [asdict(c) for c in self.run_exports_changes],
            "lints": [asdict(lint) for lint in self.lints],
            "warnings": self.warnings,
            "artifacts_read": self.artifacts_read,
            "bytes_read": self.bytes_read,
            "uploaded": self.uploaded,
            "cache_rebuilt": self.cache_rebuilt,
            "checksums_from_repodata": self.checksums_from_repodata,
            "checksum_full_reads": self.checksum_full_reads,
            "checksum_bytes_read": self.checksum_bytes_read,
            "shards_pruned": self.shards_pruned,
            "records_from_repodata": [asdict(t) for t in self.records_from_repodata],
            "read_in_full": self.read_in_full,
            "read_in_full_bytes": self.read_in_full_bytes,
            "refused": self.refused,
            "repaired": [asdict(p) for p in self.repaired],
            "baseline": self.baseline,
            "local_copies": {
                "proven": [asdict(p) for p in self.local_copies_proven],
                "not_used": [asdict(p) for p in self.local_copies_not_used],
            },
            "notice": self.notice,
            "record_changes": [asdict(c) for c in self.record_changes],
        }


@dataclass(slots=True)
class RunReport:
    channel: str
    mode: str  # "publish" | "dry-run" | "preview"
    subdirs: list[SubdirReport] = field(default_factory=list)
    duration_s: float = 0.0
    retries: int = 0
    error: str | None = None
    verified: bool = False  # a --verify run

    @property
    def refused(self) -> dict[str, str]:
        """subdir → why it was not published (the mass-removal guard)."""
        return {s.subdir: s.refused for s in self.subdirs if s.refused}

    @property
    def notices(self) -> dict[str, str]:
        """subdir → why it was not indexed (asked for, but the channel has nothing there)."""
        return {s.subdir: s.notice for s in self.subdirs if s.notice}

    @property
    def uploaded(self) -> list[str]:
        return [path for s in self.subdirs for path in s.uploaded]

    def total(self, name: str) -> int:
        return sum(_count(getattr(s, name)) for s in self.subdirs)

    def to_dict(self) -> dict[str, Any]:
        totals = {
            k: self.total(k)
            for k in ("listed", "new", "changed", "removed", "unchanged", "unreadable")
        }
        totals["bytes_read"] = self.total("bytes_read")
        totals["artifacts_read"] = self.total("artifacts_read")
        for key in (
            "checksum_full_reads",
            "checksum_bytes_read",
            "shards_pruned",
            "records_from_repodata",
            "read_in_full",
            "read_in_full_bytes",
            "repaired",
            "local_copies_proven",
            "local_copies_not_used",
            "record_changes",
        ):
            totals[key] = self.total(key)
        return {
            "schema_version": SCHEMA_VERSION,
            "channel": self.channel,
            "mode": self.mode,
            "ok": self.error is None and not self.refused,
            "error": self.error,
            "refused": self.refused,
            "notices": self.notices,
            "verified": self.verified,
            "totals": totals,
            "subdirs": {s.subdir: s.to_dict() for s in self.subdirs},
            "uploaded": self.uploaded,
            "retries": self.retries,
            "duration_s": round(self.duration_s, 3),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list) else int(value)
