"""`--verify` on the published outputs: what differs from what the packages give is rewritten."""

from __future__ import annotations

import logging

from indexer.model import Entry, Output, Problem, Published
from indexer.publish.freshness import ours
from indexer.storage.base import ChannelStore

log = logging.getLogger(__name__)


def repair_immutable(
    store: ChannelStore, outputs: list[Output], listed: dict[str, Entry], dry_run: bool
) -> Published:
    """Content-addressed outputs (shards) that exist are compared too, and rewritten."""
    written, repaired = [], []
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
        written.append(output.path)
        repaired.append(Problem(output.path, "published bytes differed; rewritten"))
        log.warning("%s: published bytes differed from what the packages give", output.path)
    return Published(written, repaired)


def repaired_outputs(
    outputs: list[Output],
    listed: dict[str, Entry],
    published_before: dict[str, tuple[str, str]],
    written: list[str],
    rows_repaired: bool,
) -> list[Problem]:
    """Outputs `--verify` rewrote that no change of the channel explains.

    A rewrite of an output we had written with other bytes (new, changed or
    removed artifacts) is an ordinary update, unless cached rows were repaired
    (`rows_repaired`); one of an object someone else wrote, or of bytes we had
    recorded as the same, is a repair.
    """
    digests = {o.path: o.digest() for o in outputs if not o.immutable}
    repaired = []
    for path in written:
        if path not in digests or path not in listed:
            continue
        recorded = ours(published_before, path, listed[path])
        if recorded is None or recorded == digests[path] or rows_repaired:
            repaired.append(Problem(path, "published bytes differed; rewritten"))
            log.warning("%s: published bytes differed from what the packages give", path)
    return repaired
