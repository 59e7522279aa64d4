"""The report, built from what the stages returned: one pure function per report level.

The pipeline records each stage's value in a `PassValues` (one per pass over
a subdir: a pass that met another writer is redone, and what it read, wrote
or repaired still counts) and hands them here. Nothing else writes a
`SubdirReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from indexer.model import (
    ChecksumResult,
    Lint,
    Problem,
    Pruned,
    Published,
    ReadResult,
    RecordChange,
    RunExportsChange,
    Taken,
)
from indexer.report.model import RunReport, SubdirReport


@dataclass
class PassValues:
    """What the stages of one pass over a subdir returned (None: that stage did not run)."""

    listed: int | None = None  # artifacts in the listing
    new: list[str] = field(default_factory=list)  # read this pass and now cached
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: str | None = None  # the mass-removal guard's one line (diff)
    read: ReadResult | None = None
    repaired_rows: list[Problem] = field(default_factory=list)  # --verify, cache rows
    checksums: ChecksumResult | None = None
    # from the cache once the pass has read: (unreadable, run_exports unknown)
    problems: tuple[list[Problem], list[Problem]] | None = None
    everything_published: bool = False  # nothing to render: outputs as published
    warnings: list[str] | None = None  # about the channel (stale outputs, patches, repodata)
    patch_warnings: list[str] | None = None
    changes: list[RunExportsChange] | None = None  # rendered vs what clients saw first
    record_changes: list[RecordChange] | None = None  # record fields clients see change
    lints: list[Lint] | None = None
    taken: list[Taken] | None = None
    published: Published | None = None
    pruned: Pruned | None = None


def _last(passes: list[PassValues], name: str) -> object:
    """The value the latest pass that ran a stage gave (None if none did)."""
    for values in reversed(passes):
        value = getattr(values, name)
        if value is not None:
            return value
    return None


def subdir_report(
    subdir: str,
    passes: list[PassValues],
    cache_rebuilt: str | None = None,
    skipped: list[str] | None = None,
) -> SubdirReport:
    """One subdir's report from the values of its passes (the last one is the one that ended).

    What a pass read, uploaded, hashed or repaired adds up over passes; the
    state of the subdir (counts, problems, warnings, diff, lints) is the last
    pass's. `skipped` are the listing's warnings about names it left out.
    """
    report = SubdirReport(subdir=subdir, cache_rebuilt=cache_rebuilt)
    new: list[str] = []
    changed: list[str] = []
    for values in passes:
        new += values.new
        changed += values.changed
        report.removed += values.removed
        if values.read is not None:
            report.artifacts_read += values.read.artifacts_read
            report.bytes_read += values.read.bytes_read
            report.read_in_full += values.read.read_in_full
            report.read_in_full_bytes += values.read.read_in_full_bytes
            report.filename_mismatches += values.read.filename_mismatches
            # read in full once for info and checksums: in bytes_read already
            report.checksum_full_reads += values.read.hashed
            report.checksum_bytes_read += values.read.hashed_bytes
            report.local_copies_proven += values.read.local_proven
            report.local_copies_not_used += values.read.local_not_used
        report.repaired += values.repaired_rows
        if values.checksums is not None:
            report.checksums_from_repodata += values.checksums.from_repodata
            report.checksum_full_reads += values.checksums.full_reads
            report.checksum_bytes_read += values.checksums.full_read_bytes
            report.bytes_read += values.checksums.full_read_bytes
        if values.published is not None:
            report.uploaded += values.published.written
            report.repaired += values.published.repaired
        if values.pruned is not None:
            report.shards_pruned += values.pruned.paths
    report.new, report.changed = new, changed
    last = passes[-1] if passes else PassValues()
    if last.refused is not None:  # nothing was read, cached or published: the listing's view
        report.refused = last.refused
        report.removed = last.removed
    listed = [v for v in passes if v.listed is not None]
    if listed:
        report.listed = listed[-1].listed or 0
    counted = [v for v in passes if v.listed is not None and v.refused is None]
    if counted:
        report.unchanged = (counted[-1].listed or 0) - len(set(new) | set(changed))
    problems = _last(passes, "problems")
    if problems is not None:
        report.unreadable, report.run_exports_unknown = problems  # type: ignore[misc]
    report.warnings = list(_last(passes, "warnings") or [])  # type: ignore[call-overload]
    report.patch_warnings = list(_last(passes, "patch_warnings") or [])  # type: ignore[call-overload]
    report.run_exports_changes = list(_last(passes, "changes") or [])  # type: ignore[call-overload]
    report.record_changes = list(_last(passes, "record_changes") or [])  # type: ignore[call-overload]
    report.lints = list(_last(passes, "lints") or [])  # type: ignore[call-overload]
    report.records_from_repodata = list(_last(passes, "taken") or [])  # type: ignore[call-overload]
    report.warnings += skipped or []
    return report


def absent_report(subdir: str, notice: str) -> SubdirReport:
    """A requested subdir the channel does not have: nothing listed, nothing done."""
    return SubdirReport(subdir=subdir, notice=notice)


def settled_report(
    subdir: str,
    artifacts: int,
    unreadable: list[tuple[str, str]],
    run_exports_unknown: list[tuple[str, str]],
    warnings: list[str],
) -> SubdirReport:
    """The report of a subdir exactly as our last run left it (from its settled summary)."""
    return SubdirReport(
        subdir=subdir,
        listed=artifacts,
        unchanged=artifacts,
        unreadable=[Problem(name, why) for name, why in unreadable],
        run_exports_unknown=[Problem(name, why) for name, why in run_exports_unknown],
        warnings=warnings,
    )


def run_report(
    channel: str,
    mode: str,
    verified: bool,
    subdirs: list[SubdirReport],
    duration_s: float,
    retries: int,
) -> RunReport:
    """The whole run's report from its subdirs' reports."""
    return RunReport(
        channel=channel,
        mode=mode,
        subdirs=subdirs,
        duration_s=duration_s,
        retries=retries,
        verified=verified,
    )


def problems(rows: list[tuple[str, str | None, str | None]]) -> tuple[list[Problem], list[Problem]]:
    """Unreadable artifacts and unknown run_exports, from the cache's rows (`Cache.problems`)."""
    unreadable = [Problem(name, error) for name, error, _ in rows if error]
    unknown = [Problem(name, u) for name, error, u in rows if not error and u]
    return unreadable, unknown
