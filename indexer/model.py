"""The values every stage shares, and the channel's filename rules (pure, no I/O).

Stages exchange these types, so the pure core (diff, render, report building,
freshness decisions) needs no edge module for them: a listing `Entry`, the
cached row of an artifact (`CachedArtifact`, its record a lazily parsed
`Record`), an `Output` to publish, the diff `Plan`, a `Problem`, a `Lint`, a
`RunExportsChange` and a record `Taken` from the channel's repodata.json.

An artifact's index.json record as the cache stores it is JSON bytes, parsed on
use. A cold run over 100,000 artifacts renders from every cached row at once.
As Python dicts the records take ~1.2 KB each; as the JSON the cache already
holds, ~0.4 KB. `Record` is a read-only mapping over those bytes that parses
them when asked, remembering only the three fields looked up over and over
(name, version, build_number: grouping and ordering builds). Anything that
wants a dict to change takes `dict(record)` or `record.parse()`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any

import orjson

_HEAD = ("name", "version", "build_number")
_MISSING = object()


class Record(Mapping[str, Any]):
    """A read-only index.json record over its JSON bytes."""

    __slots__ = ("_head", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._head: tuple[Any, ...] | None = None

    def parse(self) -> dict[str, Any]:
        """A fresh dict of the whole record."""
        return orjson.loads(self.raw)

    def __getitem__(self, key: str) -> Any:
        if key in _HEAD:
            if self._head is None:
                parsed = self.parse()
                self._head = tuple(parsed.get(k, _MISSING) for k in _HEAD)
            value = self._head[_HEAD.index(key)]
            if value is _MISSING:
                raise KeyError(key)
            return value
        return self.parse()[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self.parse())

    def __len__(self) -> int:
        return len(self.parse())

    def __bool__(self) -> bool:
        return self.raw != b"{}"

    def __contains__(self, key: object) -> bool:
        return key in self.parse()

    def keys(self) -> KeysView[str]:
        return self.parse().keys()

    def items(self) -> ItemsView[str, Any]:
        return self.parse().items()

    def values(self) -> ValuesView[Any]:
        return self.parse().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self.raw == other.raw or self.parse() == other.parse()
        if isinstance(other, Mapping):
            return self.parse() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a mapping: unhashable, like dict

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return self.parse()

    def __repr__(self) -> str:
        return f"Record({self.raw!r})"


def as_dict(record: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh dict of any record: one parse for a `Record` (`dict(record)` would
    parse it once per key)."""
    return record.parse() if isinstance(record, Record) else dict(record)


# -- filenames -------------------------------------------------------------------
CONDA, LEGACY = ".conda", ".tar.bz2"
ARTIFACT_SUFFIXES = (CONDA, LEGACY)
# The two sections of run_exports.json, repodata.json, shards and patch
# instructions: `.tar.bz2` artifacts under `packages`, `.conda` ones under
# `packages.conda`.
SECTIONS = ("packages", "packages.conda")
SUBDIR_RE = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9_]+)$")


def is_artifact(name: str) -> bool:
    """True for names a conda channel serves as packages."""
    return name.endswith(ARTIFACT_SUFFIXES) and not name.startswith(".")


def is_subdir_name(name: str) -> bool:
    """True for folder names that look like conda subdirs (noarch, <platform>-<arch>)."""
    return bool(SUBDIR_RE.match(name))


def section_of(filename: str) -> str:
    """The section an artifact is listed under: `packages.conda` or `packages`."""
    return SECTIONS[1] if filename.endswith(CONDA) else SECTIONS[0]


def suffix_of(filename: str) -> str:
    """`.conda` or `.tar.bz2` (what `section_of` splits by)."""
    return CONDA if filename.endswith(CONDA) else LEGACY


def stem_of(filename: str) -> str:
    """`<name>-<version>-<build>` without the artifact suffix."""
    return filename.removesuffix(CONDA).removesuffix(LEGACY)


def package_name(filename: str) -> str:
    """The package name in `<name>-<version>-<build>.<ext>`."""
    return stem_of(filename).rsplit("-", 2)[0]


def filename_mismatch(filename: str, record: dict[str, Any]) -> str | None:
    """Why `filename` is not index.json's `name-version-build` (None when it is)."""
    stem = stem_of(filename.rsplit("/", 1)[-1])
    expected = f"{record.get('name')}-{record.get('version')}-{record.get('build')}"
    if stem == expected:
        return None
    return f"the filename does not match index.json ({expected})"


@dataclass(frozen=True, slots=True)
class Entry:
    """One object in a subdir listing: its name, size and change token.

    The token changes whenever the object's bytes may have changed: size and
    mtime_ns on disk, the ETag on S3. `modified` (seconds since the epoch, the
    mtime on disk, LastModified on S3) is what pruning ages objects by; None
    where a backend cannot tell, and such objects are never pruned.
    """

    name: str
    size: int
    token: str
    modified: float | None = None


@dataclass(frozen=True, slots=True)
class ObjectFacts:
    """What a store says of one object besides its bytes: what proves a local copy is it.

    From one HEAD (`--local-copies`): the ETag (quotes kept, as listings give
    it), a full-object or composite `ChecksumSHA256` (base64) when the object
    has one, and its server-side encryption, which decides whether the ETag
    is an MD5 of the bytes at all (not under SSE-KMS or SSE-C).
    """

    size: int
    etag: str
    checksum_sha256: str | None = None
    checksum_type: str | None = None  # FULL_OBJECT | COMPOSITE (None: not said)
    encryption: str | None = None  # x-amz-server-side-encryption: AES256, aws:kms, ...
    customer_key: bool = False  # SSE-C (x-amz-server-side-encryption-customer-algorithm)


@dataclass(frozen=True, slots=True)
class CachedArtifact:
    """One artifact as the cache knows it."""

    filename: str
    size: int
    token: str
    record: Mapping[str, Any] | None = None  # a `Record` when loaded from the cache
    run_exports: dict[str, Any] | None = None
    run_exports_error: str | None = None
    error: str | None = None
    md5: str | None = None
    sha256: str | None = None

    @property
    def readable(self) -> bool:
        return self.error is None


def by_package(artifacts: Iterable[CachedArtifact]) -> dict[str, list[CachedArtifact]]:
    """Package name → its readable artifacts with a record, by filename; names sorted.

    The in-memory form of `Cache.packages()`, for rows that are not (or no
    longer) what the cache holds, such as a patched view.
    """
    rows: dict[str, list[CachedArtifact]] = {}
    for artifact in sorted(artifacts, key=lambda a: a.filename):
        if artifact.readable and artifact.record:
            rows.setdefault(artifact.record["name"], []).append(artifact)
    return dict(sorted(rows.items()))


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run must do for one subdir."""

    new: list[Entry] = field(default_factory=list)
    changed: list[Entry] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def to_read(self) -> list[Entry]:
        """Artifacts whose info must be read, in name order."""
        return sorted(self.new + self.changed, key=lambda e: e.name)


# -- publishing -----------------------------------------------------------------
JSON_TYPE = "application/json"


ZSTD_TYPE = "application/zstd"


MSGPACK_ZSTD_TYPE = "application/vnd.msgpack+zstd"


INDEX_CACHE_CONTROL = "public, max-age=60"


IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Output:
    """One file to publish in the channel."""

    path: str  # channel-relative
    data: bytes
    content_type: str = JSON_TYPE
    cache_control: str = INDEX_CACHE_CONTROL
    # Content-addressed (CEP-16 shards): same name, same bytes. Written only if
    # absent; an existing object of that name is already right.
    immutable: bool = False
    # A derived output (the .zst of a JSON file) made only when needed: `make`
    # produces the bytes, `identity` names them without making them, so a run
    # with nothing new does not recompress (zstd of a 100,000-artifact
    # run_exports.json takes seconds) what is already published.
    make: Callable[[], bytes] | None = None
    identity: str = ""

    @classmethod
    def derived(
        cls, path: str, source: bytes, how: str, make: Callable[[bytes], bytes], content_type: str
    ) -> Output:
        """An output that is `make(source)`; `how` names the (deterministic) transformation."""
        identity = f"{how}:{hashlib.sha256(source).hexdigest()}"
        return cls(path, b"", content_type, make=lambda: make(source), identity=identity)

    def digest(self) -> str:
        """What the cache remembers of it: the sha256 of its bytes, or its identity."""
        return self.identity or hashlib.sha256(self.data).hexdigest()

    def body(self) -> bytes:
        return self.make() if self.make is not None else self.data


@dataclass(slots=True)
class RunExportsChange:
    """One artifact's entry in run_exports.json appearing, going or changing."""

    package: str
    filename: str
    change: str  # "added" | "removed" | "changed"
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass(slots=True)
class RecordChange:
    """One field of an artifact's record, as clients solve with it, changing.

    `removed` is a field here too: false → true when the record leaves what
    clients see while the artifact stays in the channel (a patch's `remove`).
    """

    package: str
    filename: str
    field: str
    before: Any
    after: Any


@dataclass(slots=True)
class Problem:
    filename: str
    reason: str


@dataclass(slots=True)
class Lint:
    """A lint on an artifact (indexer.render.lints): shown in summaries and as annotations."""

    filename: str
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Taken:
    """A shard record taken from the channel's repodata.json: ours differed there."""

    filename: str
    fields: list[str]  # what differed; ["removed"]/["listed"]: present on one side only


# -- what the stages return (report.build makes the report from these) ------------
@dataclass(slots=True)
class ReadResult:
    """The read stage: what reading the info of new and changed artifacts cost and found."""

    artifacts_read: int = 0
    bytes_read: int = 0
    read_in_full: int = 0  # .tar.bz2 whose info/ was not first: read past their payload
    read_in_full_bytes: int = 0
    filename_mismatches: list[Problem] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # gone between listing and reading
    # shards without usable repodata checksums: info and md5/sha256 from one full read
    hashed: int = 0
    hashed_bytes: int = 0  # also in bytes_read
    # --local-copies: read from the job's files once proven the channel's (how), or not (why)
    local_proven: list[Problem] = field(default_factory=list)
    local_not_used: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class ChecksumResult:
    """The checksum step of reading (shards): where md5/sha256 came from, what it cost."""

    from_repodata: int = 0
    full_reads: int = 0
    full_read_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Published:
    """The publish stage: paths written (or that would be), and outputs --verify repaired."""

    written: list[str] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Pruned:
    """The pruning step of publishing: shards deleted (or that would be)."""

    paths: list[str] = field(default_factory=list)
