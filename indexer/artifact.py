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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson
from conda_package_streaming import package_streaming

try:  # the zstd conda-package-streaming uses (same errors, same reasons as before)
    from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

from . import infotar
from .errors import RunError

INDEX_JSON = "info/index.json"
RUN_EXPORTS_JSON = "info/run_exports.json"
WANTED = frozenset({INDEX_JSON, RUN_EXPORTS_JSON})
# Hostile artifacts must not exhaust memory: the JSON files we keep are tiny.
MAX_MEMBER_BYTES = 16 * 1024 * 1024
# Nor time: an info part this large (decompressed) is not a real package's.
MAX_INFO_BYTES = 512 * 1024 * 1024
# A .conda info tar up to this size (compressed and not) is decompressed whole.
SMALL_INFO_BYTES = 4 * 1024 * 1024
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
    """The wanted info members' bytes, reading as little as possible.

    A `.conda`'s info tar, when small (nearly always), is decompressed whole
    and read by `infotar`; when that parser meets anything it does not read
    exactly as tarfile does, tarfile reads it from the start, streaming.
    """
    try:
        if filename.endswith(".tar.bz2"):
            bz2_file = bz2.open(fileobj, mode="rb")  # noqa: SIM115 (fileobj is the caller's)
            stream = package_streaming.tar_generator(bz2_file)
        elif filename.endswith(".conda"):
            zf, member = _conda_info(filename, fileobj)
            data = _small_info(zf, member)
            if data is not None:
                try:
                    return _collect(
                        (m.name, m.size, m.isfile, lambda m=m: data[m.offset : m.offset + m.size])
                        for m in infotar.members(data)
                    )
                except infotar.NotPlain:
                    pass
            stream = package_streaming.tar_generator(zstd.open(zf.open(member)))
        else:
            raise ValueError("unsupported file extension")
        try:
            return _collect(
                (m.name, m.size, m.isfile(), lambda tar=tar, m=m: _extract(tar, m))
                for tar, m in stream
            )
        finally:
            stream.close()
    except (UnreadableArtifact, RunError, FileNotFoundError):
        raise  # storage failures and vanished objects are the run's business, not the artifact's
    except Exception as exc:  # zip, zstd, bz2 and tar errors come in many types
        raise UnreadableArtifact(_describe(exc)) from None


def _collect(members: Iterable[tuple[str, int, bool, Callable[[], bytes]]]) -> dict[str, bytes]:
    """From (name, size, is a regular file, read its data): the wanted members' bytes."""
    found: dict[str, bytes] = {}
    info_bytes = 0
    for name, size, isfile, read in members:
        if not name.startswith("info/"):
            break  # .tar.bz2: the package files start; info is behind us
        info_bytes += size
        if info_bytes > MAX_INFO_BYTES:
            raise UnreadableArtifact(f"info part larger than {MAX_INFO_BYTES // 2**20} MiB")
        if name in WANTED and name not in found:
            if not isfile:
                raise UnreadableArtifact(f"{name} is not a regular file")
            if size > MAX_MEMBER_BYTES:
                raise UnreadableArtifact(f"{name} is {size} bytes, over the limit")
            found[name] = read()
            if len(found) == len(WANTED):
                break
    return found


def _conda_info(filename: str, fileobj: BinaryIO) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    """The zip and its `info-*` member (as conda-package-streaming finds it).

    A `fileobj` with an `expect(start, end)` method learns where the member
    lies before it is read (one range GET on S3).
    """
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
    return zf, found[0]


def _small_info(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes | None:
    """The whole decompressed info tar when it is small and sound, else None (stream it)."""
    if member.compress_size > SMALL_INFO_BYTES:
        return None
    try:
        with zf.open(member) as raw:
            compressed = raw.read()
        decompressor = zstd.ZstdDecompressor()
        data = decompressor.decompress(compressed, max_length=SMALL_INFO_BYTES + 1)
    except Exception:
        return None  # the streaming path gives the verdict
    if len(data) > SMALL_INFO_BYTES or not decompressor.eof or decompressor.unused_data:
        return None
    return data


def _member_span(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> tuple[int, int]:
    """Where `member` lies: from its local header to the next member or the directory."""
    after = [i.header_offset for i in zf.infolist() if i.header_offset > member.header_offset]
    return member.header_offset, min([*after, zf.start_dir])


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
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
