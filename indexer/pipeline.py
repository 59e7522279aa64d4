"""One run over a channel: storage → diff → read → cache → render → publish → report.

This module is the order of the stages and nothing else: each stage lives in
its folder and returns a value (`Plan`, `ReadResult`, `ChecksumResult`,
`Rendered`, `Published`, `Pruned`), recorded per pass in a
`report.build.PassValues`; `report.build` makes the report from them.

Two safety nets run here. The mass-removal guard (`diff.mass_removal`)
refuses to publish a subdir when a run would drop more than
`Config.max_removal_share` of its artifacts (a wrong prefix, an emptied
subdir, a truncated listing), unless allowed. `--verify` (`Config.verify`)
trusts neither the settled summary nor the cached rows nor the record of what
we published: it re-reads every artifact's info, compares every output with
what the packages give, and repairs and reports whatever differs.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace

from indexer import diff
from indexer.cache.db import Cache
from indexer.cache.homes import CacheHome
from indexer.cache.verify import verify_rows
from indexer.config import Config
from indexer.errors import Conflict, UsageError
from indexer.model import Entry, Output, Published, ReadResult, is_artifact, is_subdir_name
from indexer.publish import freshness, prune
from indexer.publish.freshness import PUBLISHED_FROM, Settled
from indexer.publish.outputs import publish
from indexer.publish.repair import repair_immutable, repaired_outputs
from indexer.read import channel_repodata, checksums, published
from indexer.read.localcopies import LocalCopies
from indexer.read.patch_sources import load_patches, subdir_patches
from indexer.read.pool import read_and_cache
from indexer.render import run_exports as render
from indexer.render import shards
from indexer.render.package_pass import patched_view, render_subdir
from indexer.render.repodata import repodata_outputs
from indexer.report import build
from indexer.report.build import PassValues
from indexer.report.model import RunReport, SubdirReport
from indexer.storage.base import ChannelStore
from indexer.storage.open import open_channel, skipped_warnings

log = logging.getLogger(__name__)

OURS = ("run_exports.json", shards.SHARD_INDEX)  # a subdir that lost its artifacts has them
MAX_ATTEMPTS = 6  # passes over a subdir when another writer keeps getting there first
REDO_PAUSE_S = 0.2  # times the attempt, jittered: concurrent runs stop colliding in step


def run(config: Config) -> RunReport:
    """Open the channel the Config names, load `--patches`, index it, close it."""
    with open_channel(config) as (store, home):
        if config.patches_from:
            config = replace(config, patches=load_patches(config.patches_from, store))
        return index_channel(store, home, config)


def index_channel(store: ChannelStore, home: CacheHome, config: Config) -> RunReport:
    """Index every selected subdir of the channel and return the report."""
    started = time.monotonic()
    subdirs = select_subdirs(store, config.subdirs)
    store.prefetch_listings(subdirs)  # S3: list every subdir at once
    reports = [index_subdir(store, home, subdir, config) for subdir in subdirs]
    return build.run_report(
        store.location,
        config.mode.value,
        config.verify,
        reports,
        time.monotonic() - started,
        store.retries,  # transient storage failures retried
    )


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


def index_subdir(store: ChannelStore, home: CacheHome, subdir: str, config: Config) -> SubdirReport:
    """Bring one subdir's outputs in line with its artifacts."""
    listing: list[Entry] | None = store.list_subdir(subdir)
    if config.subdirs and not any(is_artifact(e.name) or e.name in OURS for e in listing or []):
        # asked for, but neither artifacts nor our outputs: a notice, not a failure
        return build.absent_report(subdir, f"no artifacts in {store.location}; nothing to index")
    # --verify trusts no summary (it writes a fresh one when it is done)
    may_settle = freshness.may_settle(config) and not config.verify
    summary = home.settled(subdir) if may_settle else None
    settled = Settled.from_bytes(summary)
    if settled is not None and freshness.settled_matches(settled, subdir, listing or [], config):
        # as our last run left it: the cache is not even fetched
        return build.settled_report(
            subdir,
            sum(1 for e in listing or [] if is_artifact(e.name)),
            settled.unreadable,
            settled.run_exports_unknown,
            freshness.stale_outputs(listing or [], config, subdir)
            + skipped_warnings(store, subdir),
        )
    path = home.checkout(subdir)
    passes: list[PassValues] = []
    baseline, asked, seen = None, config, listing or []
    with Cache(path, config.lock_timeout_s) as cache:
        fetched = getattr(home, "rebuilt_reason", None)  # a fetched cache set aside
        rebuilt = cache.rebuilt_reason or (fetched(subdir) if fetched else None)
        if config.preview and listing is not None and not cache.states():
            baseline, config = published.cacheless_preview(
                store, home, cache, subdir, listing, config
            )
        first = _FirstPass()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            values = PassValues()
            passes.append(values)
            try:
                new_summary = _one_pass(
                    store, cache, subdir, config, values, passes, first, listing
                )
                break
            except Conflict as exc:
                if values.read is None and isinstance(exc.partial, ReadResult):
                    values.read = exc.partial  # what was read before it still counts
                if attempt == MAX_ATTEMPTS:
                    raise
                listing = None  # list again
                log.warning("%s; listing %s again and redoing", exc, subdir)
                time.sleep(random.uniform(0.5, 1.5) * REDO_PAUSE_S * attempt)
    if not config.read_only:
        home.checkin(subdir, path)
        data = None if new_summary is None else new_summary.to_bytes()
        if data is not None and data != summary:
            home.settle(subdir, data)
    report = build.subdir_report(subdir, passes, rebuilt, skipped_warnings(store, subdir))
    if baseline is not None:
        report.baseline = baseline
        added = set(freshness.stale_outputs(seen, config, subdir)) - set(
            freshness.stale_outputs(seen, asked, subdir)
        )  # shards are off because of the baseline, not the options: no warning for that
        report.warnings = [w for w in report.warnings if w not in added]
    return report


class _FirstPass:
    """What the first pass saw, kept for a redo: what clients saw before this run."""

    def __init__(self) -> None:
        self.document_known = False
        self.document: dict | None = None
        self.published: dict[str, tuple[str, str]] | None = None  # --verify


def _one_pass(
    store: ChannelStore,
    cache: Cache,
    subdir: str,
    config: Config,
    values: PassValues,
    passes: list[PassValues],
    first: _FirstPass,
    listing: list[Entry] | None = None,
) -> Settled | None:
    """List (unless given), diff, read, cache, render and publish once.

    Each stage's value goes into `values` as it returns, so a pass that meets
    another writer still reports what it did. Returns the settled summary of
    what was published (None for read-only runs and when there is none).
    """
    if listing is None:
        listing = store.list_subdir(subdir)
    artifacts = [e for e in listing if is_artifact(e.name)]
    # -- diff
    states = cache.states()
    plan = diff.plan(artifacts, states)
    values.refused = diff.mass_removal(
        set() if config.allow_mass_removal else published.removable(store, subdir, listing, states),
        artifacts,
        config.max_removal_share,
        config.allow_mass_removal,
    )
    if values.refused is not None:  # nothing read, cached or published for this subdir
        log.error("%s: %s", subdir, values.refused)
        values.listed, values.removed = len(artifacts), plan.removed
        return None
    # -- read (into the cache)
    to_read = plan.to_read
    if config.verify:  # every artifact, whatever the cache says
        if first.published is None:
            first.published = cache.published()
        rows_before = cache.row_digests()
        to_read = sorted(artifacts, key=lambda e: e.name)
        cache.forget_published()  # every output is fetched and compared
    sums, full = None, set()
    if config.shards and plan.to_read:  # what repodata.json cannot vouch for: read once, in full
        sums = checksums.channel_checksums(store, subdir, {e.name: e for e in listing})
        full = sums.full_reads(plan.to_read, {e.name for e in plan.changed})
    local = LocalCopies(config.local_copies) if config.local_copies is not None else None
    values.read = read_and_cache(store, cache, subdir, to_read, config.jobs, full, local)
    if config.verify:
        values.repaired_rows = verify_rows(cache, rows_before, set(plan.unchanged), subdir)
    cache.update(remove=plan.removed + values.read.vanished)
    listed = {f"{subdir}/{e.name}": e for e in listing}
    inputs = freshness.inputs(subdir, listing, config)
    instructions, values.patch_warnings = subdir_patches(store, subdir, listing, config)
    earlier_new = any(v.new or v.changed for v in passes)
    if (
        not config.verify
        and not (plan.new or plan.changed or plan.removed or values.read.vanished or earlier_new)
        and config.prune_shards is None
        and freshness.as_published(
            cache.meta(PUBLISHED_FROM),
            cache.published(),
            listed,
            freshness.stamp(subdir, states, config, inputs),
            freshness.output_paths(subdir, config),
        )
    ):
        values.listed, values.everything_published = len(artifacts), True
        values.problems = build.problems(cache.problems())
        values.warnings = freshness.stale_outputs(listing, config, subdir) + values.patch_warnings
        stamp = freshness.stamp(subdir, states, config, inputs)
        return None if config.read_only else _settle(cache, subdir, stamp, config, values)
    if config.shards:
        changed_names = [e.name for e in plan.changed]
        values.checksums = checksums.fill_missing(
            store, cache, subdir, listing, changed_names, config.jobs, sums
        )
    cached = cache.states()
    values.listed = len(artifacts)
    values.new = [e.name for e in plan.new if e.name in cached]
    values.changed = [e.name for e in plan.changed if e.name in cached]
    values.removed = plan.removed
    values.problems = build.problems(cache.problems())
    # -- render
    touched = {name for v in passes for name in (*v.new, *v.changed)}  # over every pass
    repodata = channel_repodata.for_subdir(store, cache, subdir, listing, config)
    explicit = subdir in config.patches  # given instructions also patch run_exports.json
    rendered = render_subdir(
        cache,
        subdir,
        touched,
        instructions,
        cached.keys(),
        with_shards=config.shards,
        patch_run_exports=explicit,
        published=repodata,
    )
    values.warnings = freshness.stale_outputs(listing, config, subdir) + values.patch_warnings
    if repodata is not None:
        values.warnings += repodata.warnings
    values.taken, values.lints = list(rendered.taken), list(rendered.lints)
    document = rendered.document  # what clients see
    data = render.dumps_compact(document)
    outputs = _run_exports_outputs(subdir, "run_exports.json", data)
    if explicit:  # the unpatched view, as conda-index's *_from_packages
        unpatched = render.run_exports_json(subdir, cache.artifacts())
        outputs += _run_exports_outputs(subdir, "run_exports_from_packages.json", unpatched)
    if not first.document_known:  # a redo compares with what clients saw at the start
        path = f"{subdir}/run_exports.json"
        first.document = published.published_document(store, cache, path, listed, data, document)
        first.document_known = True
    if first.document is document:  # what clients see is what we render: no change
        values.changes = []
    else:
        values.changes = diff.diff_run_exports(first.document, document)
    index = previous = None
    shard_listed: dict[str, Entry] = {}
    verify_shards: list[Output] = []
    if config.shards:
        previous = prune.read_previous_index(store, subdir, listing)
        index = shards.shard_index(subdir, rendered.shards, previous, shards.timestamp())
        existing = None
        if index != previous:  # new names or hashes: some shards may be missing
            prune.record_dropped(cache, subdir, previous, index, time.time())
            existing = prune.shard_names(store, subdir)
        if config.verify:  # every published shard compared with its bytes, missing ones written
            shard_listed = prune.shard_entries(store, subdir)
            existing = {path.rsplit("/", 1)[1] for path in shard_listed}
            every = shards.shard_outputs(subdir, rendered.shards, index, set())
            verify_shards = [o for o in every if o.path in shard_listed]
        outputs += shards.shard_outputs(subdir, rendered.shards, index, existing)
        new = {name for v in passes for name in v.new}  # what clients see change, by field
        values.record_changes, unseen = published.client_record_changes(
            store, subdir, previous, rendered.shards, cached.keys(), new, config.jobs
        )
        values.warnings += unseen
        if config.repodata:
            outputs += repodata_outputs(subdir, *patched_view(cache, instructions))
    stamp = freshness.stamp(subdir, cached, config, inputs)
    # Publishing (zstd) wants the memory more: the shards' bytes live on in
    # `outputs`, the document in `first` only while it is what clients see.
    del rendered, document, cached
    # -- publish
    checked = (verify_shards, {**listed, **shard_listed})
    _publish(store, cache, outputs, listed, config, values, passes, first, checked)
    if config.prune_shards is not None and index is not None:
        values.pruned = prune.prune(
            store,
            cache,
            subdir,
            index,
            previous,
            listing_entry(listing, shards.SHARD_INDEX),
            age=config.prune_shards,
            dry_run=config.read_only,
            jobs=config.write_jobs,
        )
    if not config.read_only:
        if cache.meta(PUBLISHED_FROM) != stamp:  # an unchanged cache file is not uploaded
            cache.set_meta(PUBLISHED_FROM, stamp)
        return _settle(cache, subdir, stamp, config, values)
    return None


def _publish(
    store: ChannelStore,
    cache: Cache,
    outputs: list[Output],
    listed: dict[str, Entry],
    config: Config,
    values: PassValues,
    passes: list[PassValues],
    first: _FirstPass,
    checked: tuple[list[Output], dict[str, Entry]] = ([], {}),
) -> None:
    """Publish the outputs (with --verify: repair first, then say what was a repair).

    `checked`: published shards `--verify` compares (and their listing), beside
    the outputs.
    """
    fixed = Published()
    if config.verify:
        extra, shard_listed = checked
        fixed = repair_immutable(store, outputs + extra, shard_listed, config.read_only)
    values.published = fixed
    try:
        written = publish(
            store, cache, outputs, listed, dry_run=config.read_only, jobs=config.write_jobs
        )
    except Conflict as exc:  # what went out before it still counts
        values.published = Published(fixed.written + exc.written, list(fixed.repaired))
        raise
    repaired = list(fixed.repaired)
    if config.verify:
        rows_repaired = any(
            v.repaired_rows or (v.published and v.published.repaired) for v in passes
        )
        repaired += repaired_outputs(outputs, listed, first.published or {}, written, rows_repaired)
    values.published = Published(fixed.written + written, repaired)


def listing_entry(listing: list[Entry], name: str) -> Entry | None:
    return next((e for e in listing if e.name == name), None)


def _settle(
    cache: Cache, subdir: str, stamp: str | None, config: Config, values: PassValues
) -> Settled | None:
    """The settled summary of what this pass published (None: nothing to settle).

    Its problems are the report's: this pass took them from the cache.
    """
    if stamp is None or not freshness.may_settle(config) or values.patch_warnings:
        return None  # a warning is repeated by every run: that needs the ordinary run
    unreadable, unknown = values.problems or ([], [])
    return freshness.settled_summary(
        stamp,
        cache.published(),
        freshness.output_paths(subdir, config),
        [(p.filename, p.reason) for p in unreadable],
        [(p.filename, p.reason) for p in unknown],
    )


def _run_exports_outputs(subdir: str, filename: str, data: bytes) -> list[Output]:
    path = f"{subdir}/{filename}"
    return [Output(path, data), render.zst_output(f"{path}.zst", data)]
