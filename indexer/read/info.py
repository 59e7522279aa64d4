"""Read the `info` part of one artifact: its index.json record and run_exports.

Every tar is read by `tarfile`, through conda-package-streaming's
`tar_generator`, so our view of a package is by construction the one conda
and conda-index have. A `.conda` is a zip whose `info-*.tar.zst` member is
found through the zip directory (as conda-package-streaming finds it), after
checking that the directory and the local headers describe the same members
(see `zipcheck`); a file object that fetches spans, such as
`storage.s3.ranged.ArtifactFile`, is told what is read next (`expect`), so it fetches
each span in one request. A `.tar.bz2` is one stream: when its leading run of
`info/` members holds `info/index.json`, reading stops at the first member
outside `info/`; otherwise it reads on, taking `info/` members wherever they
are (and says so: `ArtifactInfo.read_in_full`).

Work per artifact is bounded where `tarfile` reads (`_Budget`): decompressed
bytes, bytes between two members beyond the previous member's data (the
pax/GNU headers `tarfile` holds in memory), the number of members, wall time.
JSON is Python's `json` on the bytes, as conda reads it, and whatever it
accepts that we could not store and publish as read (non-finite numbers,
integers beyond 64 bits, lone surrogates, nesting deeper than `MAX_DEPTH`)
is refused with a reason. Anything wrong with the artifact becomes an
`UnreadableArtifact` carrying a reason a maintainer can act on; a malformed
`info/run_exports.json` only makes the run_exports unknown, the artifact
itself stays indexed.
"""

from __future__ import annotations

import bz2
import io
import os
import tarfile
import time
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from conda_package_streaming import package_streaming

from indexer.read.parse import (
    INDEX_JSON,
    RUN_EXPORTS_JSON,
    UnreadableArtifact,
    parse_index_json,
    parse_run_exports,
)

try:  # the zstd conda-package-streaming uses (same errors, same reasons)
    from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

from indexer.errors import RunError
from indexer.model import CachedArtifact, Entry
from indexer.read import zipcheck

# The JSON rules of the reading stage, also reachable from here (read.parse holds them).
from indexer.read.parse import MAX_DEPTH as MAX_DEPTH
from indexer.read.parse import load_json as load_json

WANTED = (INDEX_JSON, RUN_EXPORTS_JSON)
# Hostile artifacts must not exhaust memory: the JSON files we keep are tiny.
MAX_MEMBER_BYTES = 16 * 1024 * 1024
# Nor time: a tar this large (decompressed) is not worth reading for its info part.
MAX_INFO_BYTES = 512 * 1024 * 1024
# Bytes tarfile may read between the end of one member's data and the next member
# (its pax/GNU headers, which tarfile holds in memory): real ones are a few hundred.
HEADER_BUDGET = 1024 * 1024
# tarfile keeps global pax records ('g' headers) for the whole archive and copies
# them into every member: real archives have none or a few.
MAX_GLOBAL_PAX = 1000  # records
MAX_GLOBAL_PAX_BYTES = 64 * 1024
# A .conda's info member, compressed: real ones are kilobytes to a few MiB.
MAX_INFO_COMPRESSED = 64 * 1024 * 1024
# Members per tar (a .conda's info tar, or a .tar.bz2 read through).
MAX_MEMBERS = 100_000
# Wall time per artifact, checked at every read tarfile makes.
MAX_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """What the index needs from one artifact."""

    record: dict[str, Any]  # index.json (filtered) + size
    run_exports: dict[str, Any] | None  # None: unknown (malformed in the package)
    run_exports_error: str | None  # why run_exports are unknown
    read_in_full: bool = False  # a .tar.bz2 read past its payload: info/ was not first

    def row(
        self, entry: Entry, md5: str | None = None, sha256: str | None = None
    ) -> CachedArtifact:
        """The cache row of the listed artifact this was read from."""
        return CachedArtifact(
            entry.name,
            entry.size,
            entry.token,
            record=self.record,
            run_exports=self.run_exports,
            run_exports_error=self.run_exports_error,
            md5=md5,
            sha256=sha256,
        )


def read_info(filename: str, fileobj: BinaryIO, size: int) -> ArtifactInfo:
    """Parse one artifact's info part from `fileobj` (seekable for `.conda`)."""
    found, read_in_full = _read_members(filename, fileobj)
    try:
        record = parse_index_json(_single(found[INDEX_JSON], INDEX_JSON))
    except UnreadableArtifact as exc:
        exc.read_in_full = read_in_full
        raise
    record["size"] = size
    if not found[RUN_EXPORTS_JSON]:
        return ArtifactInfo(record, {}, None, read_in_full)
    try:
        run_exports = parse_run_exports(_single(found[RUN_EXPORTS_JSON], RUN_EXPORTS_JSON))
    except UnreadableArtifact as exc:  # duplicated, or not a regular file
        return ArtifactInfo(record, None, str(exc), read_in_full)
    except ValueError as exc:
        return ArtifactInfo(record, None, f"malformed {RUN_EXPORTS_JSON}: {exc}", read_in_full)
    return ArtifactInfo(record, run_exports, None, read_in_full)


def _single(copies: list[bytes | None], name: str) -> bytes:
    """The one copy of `name` (None: a member of that name that is not a regular file)."""
    if not copies:
        raise UnreadableArtifact(f"no {name} in the info part")
    if len(copies) > 1:
        raise UnreadableArtifact(f"malformed: {name} appears {len(copies)} times")
    if copies[0] is None:
        raise UnreadableArtifact(f"{name} is not a regular file")
    return copies[0]


class _OverBudget(UnreadableArtifact):
    """A limit of `_Budget` was passed (raised from inside tarfile's reads)."""


class _Budget(io.RawIOBase):
    """The decompressed stream tarfile reads from, with every per-artifact limit.

    tarfile consumes pax and GNU headers inside `next()`, accumulating their
    data in memory, so the limits are enforced here, at each read: total
    bytes, bytes past `limit` (set after each member to where its data ends
    plus `HEADER_BUDGET`), and the deadline.
    """

    def __init__(self, raw: BinaryIO, deadline: float) -> None:
        super().__init__()
        self.raw = raw
        self.deadline = deadline
        self.pos = 0
        self.limit = HEADER_BUDGET  # the first member's headers

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self.deadline:
            raise _OverBudget(f"reading took more than {MAX_SECONDS:.0f} s")
        room = min(self.limit, MAX_INFO_BYTES) - self.pos + 1  # one more byte: detect passing
        data = self.raw.read(room if size is None or size < 0 else min(size, room))
        self.pos += len(data)
        if self.pos > MAX_INFO_BYTES:
            raise _OverBudget(f"info part larger than {MAX_INFO_BYTES // 2**20} MiB decompressed")
        if self.pos > self.limit:
            raise _OverBudget(
                f"more than {HEADER_BUDGET // 1024} KiB of tar headers before one member"
            )
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Compressed(io.RawIOBase):
    """The compressed stream a decompressor reads from: the deadline, checked at each read.

    A decompressor can spend a long time inside one `read()` of its own that
    returns nothing (millions of empty bz2 streams or skippable zstd frames),
    so `_Budget`, which sees only what comes out, cannot keep time alone.
    """

    def __init__(self, raw: BinaryIO, deadline: float, limit: int | None = None) -> None:
        super().__init__()
        self.raw, self.deadline, self.limit, self.pos = raw, deadline, limit, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self.deadline:
            raise _OverBudget(f"reading took more than {MAX_SECONDS:.0f} s")
        data = self.raw.read(size)
        self.pos += len(data)
        if self.limit is not None and self.pos > self.limit:
            raise _OverBudget(f"info member larger than {self.limit // 2**20} MiB compressed")
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_members(filename: str, fileobj: BinaryIO) -> tuple[dict[str, list[bytes | None]], bool]:
    """Every copy of the wanted members (see `scan`), and whether the tar was read in full."""
    deadline = time.monotonic() + MAX_SECONDS
    try:
        if filename.endswith(".tar.bz2"):
            timed = _Compressed(fileobj, deadline)
            raw: BinaryIO = bz2.open(timed, mode="rb")  # noqa: SIM115 (fileobj is the caller's)
            stop_after_info = True
        elif filename.endswith(".conda"):
            zf, member = _conda_info(filename, fileobj)
            if member.compress_size > MAX_INFO_COMPRESSED:
                raise UnreadableArtifact(
                    f"info member larger than {MAX_INFO_COMPRESSED // 2**20} MiB compressed"
                )
            raw = zstd.open(_Compressed(zf.open(member), deadline, MAX_INFO_COMPRESSED))
            stop_after_info = False
        else:
            raise ValueError("unsupported file extension")
        budget = _Budget(raw, deadline)
        return scan(budget, stop_after_info)
    except (UnreadableArtifact, RunError, FileNotFoundError):
        raise  # storage failures and vanished objects are the run's business, not the artifact's
    except RecursionError:
        raise UnreadableArtifact("archive nested too deeply to read") from None
    except Exception as exc:  # zip, zstd, bz2 and tar errors come in many types
        raise UnreadableArtifact(_describe(exc)) from None


def in_info(name: str) -> bool:
    """A member of the info part: under `info/`, or the `info` directory entry itself."""
    return name == "info" or name.startswith("info/")


def scan(budget: _Budget, stop_after_info: bool) -> tuple[dict[str, list[bytes | None]], bool]:
    """Every copy of `WANTED` in the tar `budget` reads (None: not a regular file).

    `stop_after_info` (a `.tar.bz2`): in the leading run of info members,
    stop once both wanted members are found, or at the first member outside
    info once index.json is; without index.json there, read on through the
    archive (the second value says so), taking info members wherever they are.
    """
    found: dict[str, list[bytes | None]] = {name: [] for name in WANTED}
    leading = True
    stream = package_streaming.tar_generator(budget)
    try:
        for count, (tar, member) in enumerate(stream, start=1):
            tar.members.clear()  # stream mode keeps every TarInfo otherwise
            _check_global_pax(tar)
            if count > MAX_MEMBERS:
                raise _OverBudget(f"more than {MAX_MEMBERS:,} tar members")
            budget.limit = tar.offset + HEADER_BUDGET  # its data, then the next headers
            name = member.name
            if not in_info(name):
                if stop_after_info and leading and found[INDEX_JSON]:
                    break
                leading = False
                continue
            if name in found:
                found[name].append(_extract(tar, member))
                if stop_after_info and leading and all(found.values()):
                    break
    finally:
        stream.close()
    return found, stop_after_info and not leading


def _check_global_pax(tar: tarfile.TarFile) -> None:
    """Global pax records stay for the whole archive (and are copied into every
    member): each member's header budget alone would let them pile up."""
    records = tar.pax_headers
    if len(records) > MAX_GLOBAL_PAX or (
        records and sum(len(k) + len(v) for k, v in records.items()) > MAX_GLOBAL_PAX_BYTES
    ):
        raise _OverBudget(
            f"global pax records over {MAX_GLOBAL_PAX} or {MAX_GLOBAL_PAX_BYTES // 1024} KiB"
        )


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | None:
    """A wanted member's bytes; None when it is not a regular file."""
    if not member.isfile():
        return None
    if member.size > MAX_MEMBER_BYTES:
        raise UnreadableArtifact(f"{member.name} is {member.size} bytes, over the limit")
    reader = tar.extractfile(member)
    if reader is None:
        return None
    data = reader.read(member.size)  # not more: a larger size allocates that much up front
    if len(data) != member.size:
        raise UnreadableArtifact(f"truncated or damaged archive: {member.name} cut short")
    return data


def _conda_info(filename: str, fileobj: BinaryIO) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    """The zip and its `info-*` member (as conda-package-streaming finds it), checked.

    A `fileobj` with an `expect(start, end)` method learns each span before
    it is read (one range GET on S3 for the local headers, one for the member).
    """
    # Open a lazy file object (S3) here: zipfile would turn its OSErrors, such as
    # the FileNotFoundError of an object deleted since the listing, into BadZipFile.
    fileobj.seek(0, os.SEEK_END)
    too_large = zipcheck.oversized_directory(fileobj)  # before zipfile builds every entry
    if too_large is not None:
        raise UnreadableArtifact(f"not a .conda: {too_large}")
    zf = zipfile.ZipFile(fileobj)
    stem = os.path.basename(filename)[: -len(".conda")]
    found = [i for i in zf.infolist() if i.filename.startswith(f"info-{stem}")]
    if not found:
        raise LookupError(f"didn't find info-{stem} component in {filename}")
    if len(found) > 1:
        raise LookupError(f"{len(found)} info-{stem} components in {filename}, expected one")
    problem = zipcheck.disagreement(zf, fileobj, found[0])
    if problem is not None:
        raise UnreadableArtifact(f"zip central directory and local headers disagree: {problem}")
    expect = getattr(fileobj, "expect", None)
    if expect is not None:
        expect(*zipcheck.member_span(zf, found[0]))
    return zf, found[0]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "no detail"
    kind = type(exc).__name__
    if kind == "BadZipFile":
        return f"not a valid .conda (zip): {text}"
    if isinstance(exc, tarfile.TarError | EOFError):
        return f"truncated or damaged archive: {text}"
    return f"{kind}: {text}"
