"""Read the `info` part of one artifact: its index.json record and run_exports.

Only `info/` is ever read. A `.conda` is a zip whose `info-*.tar.zst` member
is found through the zip directory (a file object that fetches spans, such
as `s3reader.ArtifactFile`, is told where the member lies, so it fetches it
in one request); a `.tar.bz2` is one stream that we stop at the first member
outside `info/`. conda-package-streaming parses the tar streams. Anything wrong with
the artifact becomes an `UnreadableArtifact` carrying a reason a maintainer
can act on; a malformed `info/run_exports.json` only makes the run_exports
unknown, the artifact itself stays indexed.
"""

from __future__ import annotations

import bz2
import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson
from conda_package_streaming import package_streaming

try:  # the zstd conda-package-streaming uses (same errors, same reasons as before)
    from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

from .errors import RunError

INDEX_JSON = "info/index.json"
RUN_EXPORTS_JSON = "info/run_exports.json"
WANTED = frozenset({INDEX_JSON, RUN_EXPORTS_JSON})
# Hostile artifacts must not exhaust memory: the JSON files we keep are tiny.
MAX_MEMBER_BYTES = 16 * 1024 * 1024
# Nor time: an info part this large (decompressed) is not a real package's.
MAX_INFO_BYTES = 512 * 1024 * 1024
# index.json fields that do not belong in repodata (as conda-index drops them).
DROPPED_FIELDS = frozenset(
    {
        "arch",
        "has_prefix",
        "mtime",
        "platform",
        "ucs",
        "requires_features",
        "binstar",
        "target-triplet",
        "machine",
        "operatingsystem",
    }
)


class UnreadableArtifact(Exception):
    """The artifact cannot be indexed; the message says why."""


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """What the index needs from one artifact."""

    record: dict[str, Any]  # index.json (filtered) + size
    run_exports: dict[str, Any] | None  # None: unknown (malformed in the package)
    run_exports_error: str | None  # why run_exports are unknown


def read_info(filename: str, fileobj: BinaryIO, size: int) -> ArtifactInfo:
    """Parse one artifact's info part from `fileobj` (seekable for `.conda`)."""
    members = _read_members(filename, fileobj)
    if INDEX_JSON not in members:
        raise UnreadableArtifact(f"no {INDEX_JSON} in the info part")
    record = parse_index_json(members[INDEX_JSON])
    record["size"] = size
    if RUN_EXPORTS_JSON not in members:
        return ArtifactInfo(record, {}, None)
    try:
        run_exports = parse_run_exports(members[RUN_EXPORTS_JSON])
    except ValueError as exc:
        return ArtifactInfo(record, None, f"malformed {RUN_EXPORTS_JSON}: {exc}")
    return ArtifactInfo(record, run_exports, None)


def _read_members(filename: str, fileobj: BinaryIO) -> dict[str, bytes]:
    """The wanted info members' bytes, reading as little as possible."""
    found: dict[str, bytes] = {}
    info_bytes = 0
    try:
        stream = _info_members(filename, fileobj)
        try:
            for tar, member in stream:
                if not member.name.startswith("info/"):
                    break  # .tar.bz2: the package files start; info is behind us
                info_bytes += member.size
                if info_bytes > MAX_INFO_BYTES:
                    raise UnreadableArtifact(f"info part larger than {MAX_INFO_BYTES // 2**20} MiB")
                if member.name in WANTED and member.name not in found:
                    found[member.name] = _member_bytes(tar, member)
                    if len(found) == len(WANTED):
                        break
        finally:
            stream.close()
    except (UnreadableArtifact, RunError, FileNotFoundError):
        raise  # storage failures and vanished objects are the run's business, not the artifact's
    except Exception as exc:  # zip, zstd, bz2 and tar errors come in many types
        raise UnreadableArtifact(_describe(exc)) from None
    return found


def _info_members(filename: str, fileobj: BinaryIO) -> Iterator[tuple[Any, tarfile.TarInfo]]:
    """(tar, member) of the info part, as conda-package-streaming's `stream_conda_info`.

    The difference: a `fileobj` with an `expect(start, end)` method learns
    where the info member lies before it is read (one range GET on S3).
    """
    if filename.endswith(".tar.bz2"):
        return package_streaming.tar_generator(bz2.open(fileobj, mode="rb"))
    if not filename.endswith(".conda"):
        raise ValueError("unsupported file extension")
    # Open a lazy file object (S3) here: zipfile would turn its OSErrors, such as
    # the FileNotFoundError of an object deleted since the listing, into BadZipFile.
    fileobj.seek(0, os.SEEK_END)
    zf = zipfile.ZipFile(fileobj)
    stem = os.path.basename(filename)[: -len(".conda")]
    found = [i for i in zf.infolist() if i.filename.startswith(f"info-{stem}")]
    if not found:
        raise LookupError(f"didn't find info-{stem} component in {filename}")
    if len(found) > 1:
        raise LookupError(f"{len(found)} info-{stem} components in {filename}, expected one")
    expect = getattr(fileobj, "expect", None)
    if expect is not None:
        expect(*_member_span(zf, found[0]))
    return package_streaming.tar_generator(zstd.open(zf.open(found[0])))


def _member_span(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> tuple[int, int]:
    """Where `member` lies: from its local header to the next member or the directory."""
    after = [i.header_offset for i in zf.infolist() if i.header_offset > member.header_offset]
    return member.header_offset, min([*after, zf.start_dir])


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if not member.isfile():
        raise UnreadableArtifact(f"{member.name} is not a regular file")
    if member.size > MAX_MEMBER_BYTES:
        raise UnreadableArtifact(f"{member.name} is {member.size} bytes, over the limit")
    reader = tar.extractfile(member)
    if reader is None:
        raise UnreadableArtifact(f"{member.name} cannot be read")
    return reader.read(member.size)  # not more: a larger size allocates that much up front


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "no detail"
    kind = type(exc).__name__
    if kind == "BadZipFile":
        return f"not a valid .conda (zip): {text}"
    if isinstance(exc, tarfile.TarError | EOFError):
        return f"truncated or damaged archive: {text}"
    return f"{kind}: {text}"


def parse_index_json(data: bytes) -> dict[str, Any]:
    """index.json as a repodata record: conda-index's filtered fields."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnreadableArtifact(f"{INDEX_JSON} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UnreadableArtifact(f"{INDEX_JSON} is not a JSON object")
    for field in ("name", "version", "build"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise UnreadableArtifact(f"{INDEX_JSON} has no valid {field!r}")
    return {k: v for k, v in raw.items() if k not in DROPPED_FIELDS}


def parse_run_exports(data: bytes) -> dict[str, Any]:
    """run_exports as CEP-12 writes them; ValueError says what is malformed.

    A list means `{"weak": list}` (CEP-34). A dict is kept as written; each
    known key must hold a list of strings (`schema_version` is left alone).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if isinstance(value, list):
        _check_specs("weak", value)
        return {"weak": value}
    if not isinstance(value, dict):
        raise ValueError(f"expected a list or an object, found {type(value).__name__}")
    for key, specs in value.items():
        if key == "schema_version":
            continue
        _check_specs(key, specs)
    return value


def _check_specs(key: str, specs: Any) -> None:
    if not isinstance(specs, list):
        raise ValueError(f"{key!r} must be a list of match specs, found {type(specs).__name__}")
    for spec in specs:
        if not isinstance(spec, str):
            raise ValueError(f"{key!r} must hold match-spec strings, found {type(spec).__name__}")
