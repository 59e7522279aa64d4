"""One run over a channel: list → diff → read info → cache → render → publish.

This module wires the stages together; each stage lives in its own module and
the pure ones (diff, render, report) never touch storage.

Two safety nets live here. The mass-removal guard refuses to publish a subdir
when a run would drop more than `Options.max_removal_share` of its artifacts
(a wrong prefix, an emptied subdir, a truncated listing), unless allowed.
`--verify` (`Options.verify`) trusts neither the settled summary nor the
cached rows nor the record of what we published: it re-reads every artifact's
info, compares every output with what the packages give, and repairs and
reports whatever differs.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import __version__, diff, render
from .cache import Cache
from .cachehome import CacheHome
from .errors import Conflict, UsageError
from .patches import (
    PATCH_FILENAME,
    PatchInstructions,
    channel_instructions,
    unknown_key_warnings,
)
from .publish import Output, ours, publish
from .reading import read_and_cache
from .renderpass import patched_view, render_subdir
from .repodata import REPODATA_JSON, SOURCE_NAMES, ChannelRepodata, source_entry
from .report import LintFinding, Problem, RunReport, SubdirReport, TakenRecord
from .settled import Settled, fingerprint
from .shards import SHARD_INDEX
from .shardstage import ShardStage
from .storage import ChannelStore, Entry, is_artifact, is_subdir_name

log = logging.getLogger(__name__)

PUBLISHED_FROM = "published_from"  # cache meta key: the stamp of the last publish
MAX_ATTEMPTS = 6  # passes over a subdir when another writer keeps getting there first
REDO_PAUSE_S = 0.2  # times the attempt, jittered: concurrent runs stop colliding in step


@dataclass
class Options:
    """How to run; the CLI and the action entrypoint both build one."""

    subdirs: list[str] = field(default_factory=list)  # empty: every subdir found
    jobs: int = 8
    dry_run: bool = False
    strict: bool = False
    shards: bool = False  # CEP-16 shards + whole-artifact checksums (the CLI's default)
    repodata: bool = False  # also repodata.json (+ .zst) from the shard records
    prune_shards: float | None = None  # seconds: prune unreferenced shards older than this
    preview: bool = False  # what would the published outputs become? (writes nothing)
    # Given instructions per subdir (--patches): they replace the channel's own.
    patches: dict[str, PatchInstructions] = field(default_factory=dict)
    channel_patches: bool = True  # apply <subdir>/patch_instructions.json when none are given
    verify: bool = False  # re-read every artifact and compare every output (see module doc)
    max_removal_share: float = 0.5  # refuse a subdir that would lose more than this share
    allow_mass_removal: bool = False

    @property
    def read_only(self) -> bool:
        """Dry runs and previews write nothing: not the channel, not the cache."""
        return self.dry_run or self.preview

    @property
    def mode(self) -> str:
        return "preview" if self.preview else "dry-run" if self.dry_run else "publish"


def index_channel(store: ChannelStore, home: CacheHome, options: Options) -> RunReport:
    """Index every selected subdir of the channel and return the report."""
    started = time.monotonic()
    report = RunReport(channel=store.location, mode=options.mode, verified=options.verify)
    subdirs = select_subdirs(store, options.subdirs)
    store.prefetch_listings(subdirs)  # S3: list every subdir at once
    for subdir in subdirs:
        report.subdirs.append(index_subdir(store, home, subdir, options))
    report.duration_s = time.monotonic() - started
    report.retries = store.retries  # transient storage failures retried
    return report


def select_subdirs(store: ChannelStore, requested: list[str]) -> list[str]:
    """The subdirs to index: those asked for, or every one the channel has."""
    if requested:
        for name in requested:
            if not is_subdir_name(name):
                raise UsageError(
                    f"--subdir {name!r} is not a subdir name (noarch or <platform>-<arch>)"
                )
        return sorted(set(requested))
    found = store.list_subdirs()
    if not found:
        raise UsageError(
            f"no subdirs found in {store.location} (expected folders such as noarch, linux-64)"
        )
    return found


def index_subdir(
    store: ChannelStore, home: CacheHome, subdir: str, options: Options
) -> SubdirReport:
    """Bring one subdir's outputs in line with its artifacts."""
    listing: list[Entry] | None = store.list_subdir(subdir)
    # --verify trusts no summary (it writes a fresh one when it is done)
    summary = home.settled(subdir) if _may_be_settled(options) and not options.verify else None
    unchanged = _settled_report(Settled.from_bytes(summary), subdir, listing or [], options)
    if unchanged is not None:  # as our last run left it: the cache is not even fetched
        return unchanged
    path = home.checkout(subdir)
    with Cache(path) as cache:
        fetched = getattr(home, "rebuilt_reason", None)  # a fetched cache set aside
        rebuilt = cache.rebuilt_reason or (fetched(subdir) if fetched else None)
        report = SubdirReport(subdir=subdir, cache_rebuilt=rebuilt)
        baseline: dict[str, Any] = {}  # what clients saw before this run (first pass)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                settled = _one_pass(store, cache, subdir, options, report, baseline, listing)
                break
            except Conflict as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                listing = None  # list again
                log.warning("%s; listing %s again and redoing", exc, subdir)
                time.sleep(random.uniform(0.5, 1.5) * REDO_PAUSE_S * attempt)
    if not options.read_only:
        home.checkin(subdir, path)
        data = None if settled is None else settled.to_bytes()
        if data is not None and data != summary:
            home.settle(subdir, data)
    return report


def _may_be_settled(options: Options) -> bool:
    """Can a run with these options end as the last one left the subdir?

    Patches and the channel's repodata.json are inputs the stamp names (see
    `_inputs`), so a hotfix re-renders and an unchanged channel settles.
    """
    return options.prune_shards is None


def _inputs(subdir: str, listing: list[Entry], options: Options) -> list[str]:
    """What besides the artifacts shapes the outputs: patches and the published repodata.

    The given instructions by content hash; the channel's patch file and
    repodata files by token (a hotfix usually changes no artifact, only them).
    With `--repodata`, repodata.json is our output, not an input.
    """
    tokens = {e.name: e.token for e in listing}
    inputs = []
    given = options.patches.get(subdir)
    if given is not None:
        inputs.append(f"patches\t{given.digest}")
    elif options.channel_patches and PATCH_FILENAME in tokens:
        inputs.append(f"{PATCH_FILENAME}\t{tokens[PATCH_FILENAME]}")
    if options.shards and not options.repodata:
        inputs += [f"{name}\t{tokens[name]}" for name in SOURCE_NAMES if name in tokens]
    return inputs


def _subdir_patches(
    store: ChannelStore, subdir: str, listing: list[Entry], options: Options
) -> tuple[PatchInstructions | None, list[str]]:
    """The instructions that apply to a subdir this run, and warnings about them.

    Given instructions for the subdir replace the channel's own file; where the
    given source has none for it (a patch package without that subdir, or an
    empty document), the channel's file applies, as conda-index falls back to it.
    """
    given = options.patches.get(subdir)
    if given is not None:
        return given, unknown_key_warnings(given, f"--patches ({subdir})")
    if not options.channel_patches or not any(e.name == PATCH_FILENAME for e in listing):
        return None, []
    path = f"{subdir}/{PATCH_FILENAME}"
    data = store.read(path)
    if data is None:  # deleted since the listing: the next run sees the new state
        return None, []
    return channel_instructions(data, path)


def _settled_report(
    settled: Settled | None, subdir: str, listing: list[Entry], options: Options
) -> SubdirReport | None:
    """The report of a subdir that is exactly as our last run left it; None if it is not."""
    if settled is None:
        return None
    artifacts = [e for e in listing if is_artifact(e.name)]
    states = {e.name: (e.size, e.token) for e in artifacts}
    paths = set(_output_paths(subdir, options))
    outputs = {f"{subdir}/{e.name}": e.token for e in listing if f"{subdir}/{e.name}" in paths}
    if len(outputs) != len(paths):
        return None
    stamp = _stamp(subdir, states, options, _inputs(subdir, listing, options))
    if fingerprint(stamp, outputs) != settled.fingerprint:
        return None
    return SubdirReport(
        subdir=subdir,
        listed=len(artifacts),
        unchanged=len(artifacts),
        unreadable=[Problem(name, why) for name, why in settled.unreadable],
        run_exports_unknown=[Problem(name, why) for name, why in settled.run_exports_unknown],
        warnings=_stale_outputs(listing, options, subdir),
    )


def _settle(
    cache: Cache, subdir: str, stamp: str | None, options: Options, report: SubdirReport
) -> Settled | None:
    """The settled summary of what this pass published (None: nothing to settle).

    Its problems are the report's: this pass took them from the cache.
    """
    if stamp is None or not _may_be_settled(options) or report.patch_warnings:
        return None  # a warning is repeated by every run: that needs the ordinary run
    published = cache.published()
    paths = _output_paths(subdir, options)
    if any(path not in published for path in paths):
        return None
    outputs = {path: published[path][0] for path in paths}
    return Settled(
        fingerprint(stamp, outputs),
        unreadable=[(p.filename, p.reason) for p in report.unreadable],
        run_exports_unknown=[(p.filename, p.reason) for p in report.run_exports_unknown],
    )


def _one_pass(
    store: ChannelStore,
    cache: Cache,
    subdir: str,
    options: Options,
    report: SubdirReport,
    baseline: dict[str, Any],
    listing: list[Entry] | None = None,
) -> Settled | None:
    """List (unless given), read, cache, render and publish once.

    `report` accumulates over passes. Returns the settled summary of what was
    published (None for read-only runs and when there is none to keep).
    """
    if listing is None:
        listing = store.list_subdir(subdir)
    artifacts = [e for e in listing if is_artifact(e.name)]
    if not artifacts and options.subdirs and not any(e.name == "run_exports.json" for e in listing):
        raise UsageError(f"subdir {subdir!r} has no artifacts in {store.location}")
    states = cache.states()
    plan = diff.plan(artifacts, states)
    refusal = _mass_removal(store, subdir, listing, artifacts, states, options)
    if refusal is not None:  # nothing read, cached or published for this subdir
        log.error("%s: %s", subdir, refusal)
        report.refused = refusal
        report.listed = len(artifacts)
        report.removed = plan.removed
        return None

    to_read = plan.to_read
    if options.verify:  # every artifact, whatever the cache says
        baseline.setdefault("published", cache.published())
        rows_before = cache.row_digests()
        to_read = sorted(artifacts, key=lambda e: e.name)
        cache.forget_published()  # every output is fetched and compared
    vanished = read_and_cache(store, cache, subdir, to_read, options.jobs, report)
    if options.verify:
        _verify_rows(cache, rows_before, set(plan.unchanged), subdir, report)
    cache.update(remove=plan.removed + vanished)
    listed = {f"{subdir}/{e.name}": e for e in listing}
    inputs = _inputs(subdir, listing, options)
    instructions, report.patch_warnings = _subdir_patches(store, subdir, listing, options)
    if (
        not options.verify
        and not (
            plan.new or plan.changed or plan.removed or vanished or report.new or report.changed
        )
        and options.prune_shards is None
        and _as_published(cache, listed, _stamp(subdir, states, options, inputs), subdir, options)
    ):
        _report_unchanged(cache, subdir, listing, artifacts, options, report)
        report.warnings += report.patch_warnings
        stamp = _stamp(subdir, states, options, inputs)
        return None if options.read_only else _settle(cache, subdir, stamp, options, report)
    shard_stage = None
    if options.shards:
        shard_stage = ShardStage(
            store,
            cache,
            subdir,
            listing,
            jobs=options.jobs,
            dry_run=options.read_only,
            write_repodata=options.repodata,
            prune_age=options.prune_shards,
        )
        shard_stage.fill_checksums(plan, report)

    cached = cache.states()
    report.listed = len(artifacts)
    report.new += [e.name for e in plan.new if e.name in cached]
    report.changed += [e.name for e in plan.changed if e.name in cached]
    report.removed += plan.removed
    report.unchanged = len(artifacts) - len(set(report.new) | set(report.changed))
    _report_problems(cache, report)

    report.warnings = _stale_outputs(listing, options, subdir)
    report.warnings += report.patch_warnings
    touched = set(report.new) | set(report.changed)  # over every pass
    published = _channel_repodata(store, cache, subdir, listing, options)
    explicit = subdir in options.patches  # given instructions also patch run_exports.json
    rendered = render_subdir(
        cache,
        subdir,
        touched,
        instructions,
        cached.keys(),
        with_shards=options.shards,
        patch_run_exports=explicit,
        published=published,
    )
    if published is not None:
        report.warnings += published.warnings
    report.records_from_repodata = [TakenRecord(t.filename, t.fields) for t in rendered.taken]
    document = rendered.document  # what clients see
    data = render.dumps_compact(document)
    outputs = _run_exports_outputs(subdir, "run_exports.json", data)
    if explicit:  # the unpatched view, as conda-index's *_from_packages
        unpatched = render.run_exports_json(subdir, cache.artifacts())
        outputs += _run_exports_outputs(subdir, "run_exports_from_packages.json", unpatched)
    if "document" not in baseline:  # a redo compares with what clients saw at the start
        path = f"{subdir}/run_exports.json"
        baseline["document"] = _published_document(store, cache, path, listed, data, document)
    if baseline["document"] is document:  # what clients see is what we render: no change
        report.run_exports_changes = []
    else:
        report.run_exports_changes = diff.diff_run_exports(baseline["document"], document)
    report.lints = [LintFinding(x.filename, x.kind, x.message) for x in rendered.lints]
    if shard_stage is not None:
        outputs += shard_stage.outputs(rendered.shards, lambda: patched_view(cache, instructions))
    stamp = _stamp(subdir, cached, options, inputs)
    # Publishing (zstd) wants the memory more: the shards' bytes live on in
    # `outputs`, the document in `baseline` only while it is what clients see.
    del rendered, document, cached
    if options.verify:
        _repair_immutable(store, outputs, listed, options.read_only, report)
        written_before = len(report.uploaded)
    publish(store, cache, outputs, listed, dry_run=options.read_only, written=report.uploaded)
    if options.verify:
        _report_repaired_outputs(
            outputs, listed, baseline["published"], report.uploaded[written_before:], report
        )
    if shard_stage is not None:
        shard_stage.finish(report)
    if not options.read_only:
        if cache.meta(PUBLISHED_FROM) != stamp:  # an unchanged cache file is not uploaded
            cache.set_meta(PUBLISHED_FROM, stamp)
        return _settle(cache, subdir, stamp, options, report)
    return None


def _stamp(
    subdir: str, states: dict[str, tuple[int, str]], options: Options, inputs: list[str]
) -> str:
    """What a subdir's outputs are rendered from, in one hash.

    Rendering is a pure function of the cached rows and the inputs (patches,
    the channel's repodata.json: `_inputs`), and a row of an artifact of
    given size and token always reads the same: so the version of this
    tool, the options that shape the outputs, the inputs and every
    (filename, size, token) determine the outputs' bytes.
    """
    digest = hashlib.sha256(
        f"{__version__}|{subdir}|shards={options.shards}|repodata={options.repodata}".encode()
    )
    for line in inputs:
        digest.update(f"\ninput\t{line}".encode())
    for name in sorted(states):
        size, token = states[name]
        digest.update(f"\n{name}\t{size}\t{token}".encode())
    return digest.hexdigest()


def _channel_repodata(
    store: ChannelStore, cache: Cache, subdir: str, listing: list[Entry], options: Options
) -> ChannelRepodata | None:
    """The channel's repodata.json the shards must agree with: another indexer's, if any.

    Not with `--repodata` (this tool then writes it from the same records),
    nor when the file is the one we wrote.
    """
    if not options.shards or options.repodata:
        return None
    entries = {e.name: e for e in listing}
    entry = source_entry(entries)
    if entry is None or ours(cache.published(), f"{subdir}/{entry.name}", entry) is not None:
        return None
    return ChannelRepodata(store, cache, subdir, entry, entries)


def _output_paths(subdir: str, options: Options) -> list[str]:
    paths = [f"{subdir}/run_exports.json", f"{subdir}/run_exports.json.zst"]
    if options.shards:
        paths.append(f"{subdir}/{SHARD_INDEX}")
        if options.repodata:
            paths += [f"{subdir}/{REPODATA_JSON}", f"{subdir}/{REPODATA_JSON}.zst"]
    return paths


def _as_published(
    cache: Cache, listed: dict[str, Entry], stamp: str, subdir: str, options: Options
) -> bool:
    """Are the published outputs the ones this cache renders, untouched since we wrote them?

    True when our last publish was rendered from the same stamp and every
    output is still the object we wrote (its token unchanged): rendering again
    would give the same bytes, so a run with nothing new skips it (at 100,000
    artifacts, loading every row and rendering costs more than the listing).
    """
    if cache.meta(PUBLISHED_FROM) != stamp:
        return False
    published = cache.published()
    return all(
        ours(published, path, listed.get(path)) is not None
        for path in _output_paths(subdir, options)
    )


def _report_unchanged(
    cache: Cache,
    subdir: str,
    listing: list[Entry],
    artifacts: list[Entry],
    options: Options,
    report: SubdirReport,
) -> None:
    """The report of a pass that found everything as published (what rendering would say)."""
    report.listed = len(artifacts)
    report.unchanged = len(artifacts)
    _report_problems(cache, report)
    report.warnings = _stale_outputs(listing, options, subdir)


def _report_problems(cache: Cache, report: SubdirReport) -> None:
    """Unreadable artifacts and unknown run_exports, from the cache, by filename."""
    problems = cache.problems()
    report.unreadable = [Problem(name, error) for name, error, _ in problems if error]
    report.run_exports_unknown = [
        Problem(name, unknown) for name, error, unknown in problems if not error and unknown
    ]


def _stale_outputs(listing: list[Entry], options: Options, subdir: str) -> list[str]:
    """Outputs an earlier run wrote that this run's options no longer keep current."""
    names = {e.name for e in listing}
    warnings = []
    for name, kept, why in (
        (SHARD_INDEX, options.shards, "shards are off (--no-shards)"),
        ("run_exports_from_packages.json", subdir in options.patches, "no --patches apply"),
    ):
        if name in names and not kept:
            warnings.append(
                f"{name} is not updated because {why}; clients still read it: "
                "delete it, or index with the earlier options again"
            )
    return warnings


def _run_exports_outputs(subdir: str, filename: str, data: bytes) -> list[Output]:
    path = f"{subdir}/{filename}"
    return [Output(path, data), render.zst_output(f"{path}.zst", data)]


def _published_document(
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
    raw = store.read(path)
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        log.warning("%s is not valid JSON; treating every entry as new", path)
        return None


# -- the mass-removal guard ------------------------------------------------------
def _mass_removal(
    store: ChannelStore,
    subdir: str,
    listing: list[Entry],
    artifacts: list[Entry],
    states: dict[str, tuple[int, str]],
    options: Options,
) -> str | None:
    """Why this pass must not publish the subdir (one line), or None.

    The entries a run can remove are the artifacts the cache knows; when it
    knows none (a first run, a lost or rebuilt cache) those of the published
    run_exports.json. Nothing known or published: never a mass removal.
    """
    if options.allow_mass_removal:
        return None
    before = set(states)
    if not before and any(e.name == "run_exports.json" for e in listing):
        before = set(_published_entries(store, f"{subdir}/run_exports.json"))
    if not before:
        return None
    gone = len(before - {e.name for e in artifacts})
    share = gone / len(before)
    if share <= options.max_removal_share:
        return None
    return (
        f"not published: this run would remove {gone} of its {len(before)} artifacts "
        f"({share:.0%}, more than the {options.max_removal_share:.0%} allowed); "
        "check the channel and its listing, or pass --allow-mass-removal if this is intended"
    )


def _published_entries(store: ChannelStore, path: str) -> list[str]:
    """Filenames the published run_exports.json lists ([] when it cannot be read)."""
    raw = store.read(path)
    try:
        return list(diff.run_exports_entries(orjson.loads(raw))) if raw else []
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return []


# -- --verify ------------------------------------------------------------------------
_ROW_FIELDS = ("index.json record", "run_exports", "run_exports problem", "error")


def _verify_rows(
    cache: Cache,
    before: dict[str, tuple[tuple[str, ...], str | None, str | None]],
    unchanged: set[str],
    subdir: str,
    report: SubdirReport,
) -> None:
    """Compare the rows just read with what the cache held; keep known checksums.

    An artifact whose size and token did not change reads the same as when
    it was cached: a differing row was altered in the cache (or read by a
    tool with a bug since fixed) and is repaired now. Its md5/sha256 are kept,
    as whole-artifact checksums need a full read.
    """
    after = cache.row_digests()
    keep = []
    for name in sorted(unchanged & before.keys() & after.keys()):
        (old, md5, sha256), (new, _, _) = before[name], after[name]
        if old != new:
            fields = ", ".join(f for f, a, b in zip(_ROW_FIELDS, old, new, strict=True) if a != b)
            report.repaired.append(
                Problem(f"{subdir}/{name}", f"cached row differed from the package ({fields})")
            )
            log.warning("%s/%s: cached row differed from the package (%s)", subdir, name, fields)
        if md5 is not None and sha256 is not None and new[3] == "":
            keep.append((name, md5, sha256))
    cache.set_checksums(keep)


def _repair_immutable(
    store: ChannelStore,
    outputs: list[Output],
    listed: dict[str, Entry],
    dry_run: bool,
    report: SubdirReport,
) -> None:
    """Content-addressed outputs (shards) that exist are compared too, and rewritten."""
    for output in outputs:
        current = listed.get(output.path)
        if not output.immutable or current is None:
            continue
        body = output.body()
        if store.read(output.path) == body:
            continue
        if not dry_run:
            store.write(
                output.path,
                body,
                expect=current.token,
                content_type=output.content_type,
                cache_control=output.cache_control,
            )
        report.uploaded.append(output.path)
        report.repaired.append(Problem(output.path, "published bytes differed; rewritten"))
        log.warning("%s: published bytes differed from what the packages give", output.path)


def _report_repaired_outputs(
    outputs: list[Output],
    listed: dict[str, Entry],
    published_before: dict[str, tuple[str, str]],
    written: list[str],
    report: SubdirReport,
) -> None:
    """Outputs `--verify` rewrote that no change of the channel explains.

    A rewrite of an output we had written with other bytes (new, changed or
    removed artifacts) is an ordinary update, unless cached rows were repaired;
    one of an object someone else wrote, or of bytes we had recorded as the
    same, is a repair.
    """
    digests = {o.path: o.digest() for o in outputs if not o.immutable}
    rows_repaired = bool(report.repaired)
    for path in written:
        if path not in digests or path not in listed:
            continue
        recorded = ours(published_before, path, listed[path])
        if recorded is None or recorded == digests[path] or rows_repaired:
            report.repaired.append(Problem(path, "published bytes differed; rewritten"))
            log.warning("%s: published bytes differed from what the packages give", path)
