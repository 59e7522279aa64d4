"""What clients will see change in the records they solve with: pure.

A pull request that changes patch instructions (a new patch-generator
package, a changed `patch_instructions.json`, `--patches`) may change no
run_exports at all, yet change every client's solve: a `depends` fix, a
`license`, a `remove`. This compares the records clients see now (the
published shards) with what this run would publish, field by field, as
conda-forge's repodata-patches feedstock shows its diffs in review.

Artifacts that enter or leave the channel itself are the run_exports diff's
business (added/removed) and are not repeated here; an artifact that stays in
the channel but leaves (or re-enters) what clients see shows as `removed`.
`run_exports` is left to the run_exports diff too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from indexer.model import SECTIONS, RecordChange

SKIPPED_FIELDS = frozenset({"run_exports"})  # shown by the run_exports diff


def shard_records(shard: Any) -> dict[str, dict[str, Any]]:
    """filename → record, from a decoded shard (untrusted: anything else is skipped)."""
    records: dict[str, dict[str, Any]] = {}
    if not isinstance(shard, dict):
        return records
    for section in SECTIONS:
        entries = shard.get(section)
        if isinstance(entries, dict):
            for filename, record in entries.items():
                if isinstance(filename, str) and isinstance(record, dict):
                    records[filename] = record
    return records


def record_changes(
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    present: Collection[str],
    new: Collection[str],
) -> list[RecordChange]:
    """Every field that changes for clients, by filename then field.

    `before`/`after`: filename → record as clients see it (now / after this
    run), for the packages compared. `present`: the channel's artifacts after
    this run; `new`: those that were not in it before (added, not changed).
    """
    changes: list[RecordChange] = []
    for filename in sorted(set(before) | set(after)):
        old, fresh = before.get(filename), after.get(filename)
        package = _package(filename, fresh or old or {})
        if old is not None and fresh is not None:
            for field in _differing(old, fresh):
                changes.append(
                    RecordChange(
                        package, filename, field, plain(old.get(field)), plain(fresh.get(field))
                    )
                )
        elif old is not None and filename in present:  # still there, but not for clients
            changes.append(RecordChange(package, filename, "removed", False, True))
        elif fresh is not None and filename in present and filename not in new:
            changes.append(RecordChange(package, filename, "removed", True, False))
    return changes


def changed_packages(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Package names whose shard differs (by hash) between two shard indexes' maps."""
    return sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))


def plain(value: Any) -> Any:
    """A record value as JSON carries it: bytes (shard checksums) as hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _differing(old: Mapping[str, Any], fresh: Mapping[str, Any]) -> Iterable[str]:
    keys = {k for k in (*old, *fresh) if isinstance(k, str)} - SKIPPED_FIELDS
    return sorted(k for k in keys if k not in old or k not in fresh or old[k] != fresh[k])


def _package(filename: str, record: Mapping[str, Any]) -> str:
    name = record.get("name")
    if isinstance(name, str) and name:
        return name
    return filename.rsplit("-", 2)[0]
