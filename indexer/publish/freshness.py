"""Is a subdir already published as this run would publish it? One mechanism, pure.

Everything here turns on one question asked of one key. The key is the
*stamp*: a hash of what a subdir's outputs are rendered from (this tool's
version, the output options, the inputs besides the artifacts such as
patches and the channel's repodata.json, and every artifact's name, size and
token). The answer is yes when our last publish was rendered from the same
stamp and every output is still the object we wrote (`ours`: its listed token
is the one we recorded). Two places remember that answer:

- the cache, which records the stamp of the last publish (`PUBLISHED_FROM`)
  and the token and digest of every output it wrote (`Cache.published`);
  `as_published` asks it, and `ours` also spares a write whose bytes are
  already there;
- the settled summary beside the cache, which holds the same answer in one
  hash, `fingerprint(stamp, output tokens)`, so a run can ask it from the
  listing alone without fetching or opening the cache.

After a run publishes a subdir it records that summary with the problems a
report repeats on every run (unreadable artifacts, unknown run_exports). When
the fingerprint of the listing agrees, nothing was added, replaced or removed
and every output is still the object we wrote, so the outputs are already
what this run would render: it reports from the summary and never fetches or
opens the cache (for 100,000 artifacts a 45 MB SQLite file, more work than
the listing itself).

The summary is self-validating: whoever wrote it, and whenever, it is used
only when the fingerprint of what is listed now matches. A missing, stale or
unreadable one just means the ordinary run. It is untrusted input: read with a
size cap (`MAX_SETTLED_BYTES`) and parsed strictly (exactly our keys and
types), anything else ignored. A forged summary that matches (someone who can
write the bucket can compute one) keeps outputs as they are: `--verify`
ignores it (see docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from indexer import __version__
from indexer.model import Entry, is_artifact
from indexer.render.patches import PATCH_FILENAME
from indexer.render.repodata import REPODATA_JSON, SOURCE_NAMES
from indexer.render.shards import SHARD_INDEX

if TYPE_CHECKING:
    from indexer.config import Config

FORMAT = 1
MAX_SETTLED_BYTES = 32 << 20  # ~300,000 problems with their reasons
_KEYS = {"format", "fingerprint", "unreadable", "run_exports_unknown"}
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
PUBLISHED_FROM = "published_from"  # cache meta key: the stamp of the last publish


def fingerprint(stamp: str, outputs: Mapping[str, str]) -> str:
    """One hash over the rendering stamp and each output's (path, token)."""
    digest = hashlib.sha256(f"settled-{FORMAT}|{stamp}".encode())
    for path in sorted(outputs):
        digest.update(f"\n{path}\t{outputs[path]}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Settled:
    """The summary one subdir's last publishing run left."""

    fingerprint: str
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (filename, why)
    run_exports_unknown: list[tuple[str, str]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "fingerprint": self.fingerprint,
                "unreadable": self.unreadable,
                "run_exports_unknown": self.run_exports_unknown,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Settled | None:
        """The summary in `data`; None if absent, unreadable or of another format."""
        if not data or len(data) > MAX_SETTLED_BYTES:
            return None
        try:
            raw = orjson.loads(data)
            if (
                not isinstance(raw, dict)
                or set(raw) != _KEYS
                or raw["format"] != FORMAT
                or not isinstance(raw["fingerprint"], str)
                or not _FINGERPRINT.fullmatch(raw["fingerprint"])
            ):
                return None
            return cls(
                raw["fingerprint"],
                _pairs(raw["unreadable"]),
                _pairs(raw["run_exports_unknown"]),
            )
        except (orjson.JSONDecodeError, TypeError, ValueError, RecursionError):
            return None


def _pairs(items: object) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise ValueError("not a list")
    pairs = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError("not a (filename, reason) pair")
        name, why = item
        if not isinstance(name, str) or not isinstance(why, str):
            raise ValueError("not a (filename, reason) pair")
        pairs.append((name, why))
    return pairs


def may_settle(options: Config) -> bool:
    """Can a run with these options end as the last one left the subdir?

    Patches and the channel's repodata.json are inputs the stamp names (see
    `inputs`), so a hotfix re-renders and an unchanged channel settles.
    Pruning must look at the shards folder, so it never settles.
    """
    return options.prune_shards is None


def inputs(subdir: str, listing: Iterable[Entry], options: Config) -> list[str]:
    """What besides the artifacts shapes the outputs: patches and the published repodata.

    The given instructions by content hash; the channel's patch file and
    repodata files by token (a hotfix usually changes no artifact, only them).
    With `--repodata`, repodata.json is our output, not an input.
    """
    tokens = {e.name: e.token for e in listing}
    found = []
    given = options.patches.get(subdir)
    if given is not None:
        found.append(f"patches\t{given.digest}")
    elif options.channel_patches and PATCH_FILENAME in tokens:
        found.append(f"{PATCH_FILENAME}\t{tokens[PATCH_FILENAME]}")
    if options.shards and not options.repodata:
        found += [f"{name}\t{tokens[name]}" for name in SOURCE_NAMES if name in tokens]
    return found


def stamp(
    subdir: str, states: Mapping[str, tuple[int, str]], options: Config, inputs: list[str]
) -> str:
    """What a subdir's outputs are rendered from, in one hash.

    Rendering is a pure function of the cached rows and the inputs (patches,
    the channel's repodata.json: `inputs`), and a row of an artifact of
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


def output_paths(subdir: str, options: Config) -> list[str]:
    """The outputs whose tokens the freshness question covers (shards are content-addressed)."""
    paths = [f"{subdir}/run_exports.json", f"{subdir}/run_exports.json.zst"]
    if options.shards:
        paths.append(f"{subdir}/{SHARD_INDEX}")
        if options.repodata:
            paths += [f"{subdir}/{REPODATA_JSON}", f"{subdir}/{REPODATA_JSON}.zst"]
    return paths


def ours(published: Mapping[str, tuple[str, str]], path: str, entry: Entry | None) -> str | None:
    """The digest we recorded for `path` while the listed object is still the one we wrote.

    `published` is `Cache.published()`; None when nothing is listed there, we
    never wrote it, or someone has replaced it since.
    """
    recorded = published.get(path)
    if entry is None or recorded is None or recorded[0] != entry.token:
        return None
    return recorded[1]


def as_published(
    published_from: str | None,
    published: Mapping[str, tuple[str, str]],
    listed: Mapping[str, Entry],
    stamp: str,
    paths: Iterable[str],
) -> bool:
    """Are the published outputs the ones this cache renders, untouched since we wrote them?

    True when our last publish was rendered from the same stamp and every
    output is still the object we wrote (its token unchanged): rendering again
    would give the same bytes, so a run with nothing new skips it (at 100,000
    artifacts, loading every row and rendering costs more than the listing).
    """
    if published_from != stamp:
        return False
    return all(ours(published, path, listed.get(path)) is not None for path in paths)


def settled_matches(
    settled: Settled | None, subdir: str, listing: list[Entry], options: Config
) -> bool:
    """Is the subdir exactly as the run that wrote `settled` left it? (from the listing alone)"""
    if settled is None:
        return False
    states = {e.name: (e.size, e.token) for e in listing if is_artifact(e.name)}
    paths = set(output_paths(subdir, options))
    outputs = {f"{subdir}/{e.name}": e.token for e in listing if f"{subdir}/{e.name}" in paths}
    if len(outputs) != len(paths):
        return False
    key = stamp(subdir, states, options, inputs(subdir, listing, options))
    return fingerprint(key, outputs) == settled.fingerprint


def settled_summary(
    stamp: str,
    published: Mapping[str, tuple[str, str]],
    paths: list[str],
    unreadable: Iterable[tuple[str, str]],
    run_exports_unknown: Iterable[tuple[str, str]],
) -> Settled | None:
    """The summary of what a pass published (None when an output has no recorded token)."""
    if any(path not in published for path in paths):
        return None
    outputs = {path: published[path][0] for path in paths}
    return Settled(fingerprint(stamp, outputs), list(unreadable), list(run_exports_unknown))


def stale_outputs(listing: list[Entry], options: Config, subdir: str) -> list[str]:
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
