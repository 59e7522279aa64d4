"""Does a `.conda`'s zip central directory agree with its local headers?

Why: conda-package-streaming (and conda, and `zipfile`) find members through
the central directory at the end of the file; streaming extractors (rattler)
read local headers from offset 0. A zip where the two disagree (a member
the directory does not list, a local header naming another file or holding
other sizes, bytes before the first member) shows each reader a different
package: "zip smuggling". We index a `.conda` only when they agree: the
members, taken in offset order, cover the file from offset 0 to the central
directory contiguously, and each local header carries its central entry's
name, flags, method, CRC and sizes (zip64 extra field or data descriptor
included). `zipfile` checks none of this beyond the name of the member it
opens.

Reading the local headers costs one small range GET on S3 for the ones at
the front of the file; the spans wanted are announced through the file
object's `expect(start, end)` and merged when they lie close together.
"""

from __future__ import annotations

import struct
import zipfile
from typing import Any, BinaryIO

LOCAL = struct.Struct(zipfile.structFileHeader)  # "<4s2B4HL2L2H", 30 bytes
LOCAL_MAGIC = zipfile.stringFileHeader
DESCRIPTOR_MAGIC = b"PK\x07\x08"
DATA_DESCRIPTOR = 0x08  # general-purpose flag bit 3
UTF8_NAME = 0x800  # general-purpose flag bit 11
ZIP64_EXTRA = 0x0001
MAX32 = 0xFFFFFFFF
MERGE_GAP = 4096  # spans closer than this are fetched in one request
SLACK = 32  # room for a local extra field the central entry lacks (zip64: 20 bytes)


# A .conda holds three members (metadata.json, info-*, pkg-*); zipfile builds an
# object for every entry its directory lists before anything can be checked.
MAX_ENTRIES = 64
MAX_DIRECTORY_BYTES = 64 * 1024
END = struct.Struct(zipfile.structEndArchive)  # 22 bytes (+ comment)
END64_LOCATOR = struct.Struct(zipfile.structEndArchive64Locator)
END64 = struct.Struct(zipfile.structEndArchive64)


def oversized_directory(fileobj: BinaryIO) -> str | None:
    """Why the zip's central directory is too large to be a `.conda`'s (None: it is not).

    Reads only the end-of-directory records (the last 22 bytes of a zip
    without a comment, as .conda files are written); a zip whose records
    cannot be found is left to `zipfile`, which says why.
    """
    size = fileobj.seek(0, 2)
    at, end = _end_record(fileobj, size)
    if end is None:
        return None
    entries, directory = end[4], end[5]
    if MAX32 in (end[5], end[6]) or 0xFFFF in (end[3], end[4]):  # zip64 holds the numbers
        zip64 = _end64(fileobj, at)
        if zip64 is not None:
            entries, directory = zip64
    if entries > MAX_ENTRIES:
        return f"its zip directory lists {entries:,} entries (a .conda has 3)"
    if directory > MAX_DIRECTORY_BYTES:
        return f"its zip directory is {directory:,} bytes (over {MAX_DIRECTORY_BYTES // 1024} KiB)"
    return None


def _end_record(fileobj: BinaryIO, size: int) -> tuple[int, tuple[Any, ...] | None]:
    for span in (END.size, END.size + 0xFFFF):  # no comment first, then the longest one
        start = max(0, size - span)
        fileobj.seek(start)
        tail = fileobj.read(size - start)
        found = tail.rfind(zipfile.stringEndArchive)
        if found >= 0 and len(tail) - found >= END.size:
            return start + found, END.unpack(tail[found : found + END.size])
    return -1, None


def _end64(fileobj: BinaryIO, at: int) -> tuple[int, int] | None:
    if at < END64_LOCATOR.size:
        return None
    fileobj.seek(at - END64_LOCATOR.size)
    locator = END64_LOCATOR.unpack(fileobj.read(END64_LOCATOR.size))
    if locator[0] != zipfile.stringEndArchive64Locator:
        return None
    fileobj.seek(locator[2])
    data = fileobj.read(END64.size)
    if len(data) != END64.size or data[:4] != zipfile.stringEndArchive64:
        return None
    record = END64.unpack(data)
    return record[7], record[8]


def member_span(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> tuple[int, int]:
    """Where `member` lies: from its local header to the next member or the directory."""
    after = [i.header_offset for i in zf.infolist() if i.header_offset > member.header_offset]
    return member.header_offset, min([*after, zf.start_dir])


def disagreement(zf: zipfile.ZipFile, fileobj: BinaryIO, info: zipfile.ZipInfo) -> str | None:
    """Why the local headers and the central directory disagree (None: they agree).

    `info` is the member read next: its span is fetched with the local
    headers near it, and last, so that a span-fetching file still holds it.
    """
    members = sorted(zf.infolist(), key=lambda i: i.header_offset)
    if not members:
        return "the zip lists no members"
    reader = _SpanReader(fileobj, _groups(zf, members, info))
    ends: dict[int, int] = {}
    for group in reader.order(info.header_offset):
        for member in members:
            if group[0] <= member.header_offset < group[1]:
                try:
                    ends[id(member)] = _local_end(reader, member)
                except _Disagree as exc:
                    return f"{member.orig_filename!r}: {exc}"
    position = 0
    for member in members:
        if member.header_offset != position:
            return (
                f"{member.orig_filename!r} starts at byte {member.header_offset}, "
                f"the previous member ends at {position}"
            )
        position = ends[id(member)]
    if position != zf.start_dir:
        return f"{position} bytes of members, but the central directory starts at {zf.start_dir}"
    return None


class _Disagree(Exception):
    pass


def _groups(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], info: zipfile.ZipInfo
) -> list[tuple[int, int]]:
    """The spans to fetch: each local header (and data descriptor), the info member whole."""
    spans = []
    for member in members:
        start = member.header_offset
        header = LOCAL.size + len(_raw_name(member)) + len(member.extra) + SLACK
        spans.append((start, start + header))
        if member.flag_bits & DATA_DESCRIPTOR:
            data_end = start + LOCAL.size + len(_raw_name(member)) + member.compress_size
            spans.append((data_end, data_end + len(member.extra) + 24 + SLACK))
    spans.append(member_span(zf, info))
    spans.sort()
    groups = [spans[0]]
    for start, end in spans[1:]:
        if start - groups[-1][1] <= MERGE_GAP:
            groups[-1] = (groups[-1][0], max(groups[-1][1], end))
        else:
            groups.append((start, end))
    return groups


class _SpanReader:
    """Reads at offsets, announcing each group of spans before its first read."""

    def __init__(self, fileobj: BinaryIO, groups: list[tuple[int, int]]) -> None:
        self.fileobj = fileobj
        self.groups = groups
        self.expect = getattr(fileobj, "expect", None)
        self.current = (0, 0)

    def order(self, info_offset: int) -> list[tuple[int, int]]:
        """The groups, the one holding the info member last."""
        last = [g for g in self.groups if g[0] <= info_offset < g[1]]
        return [g for g in self.groups if g not in last] + last

    def read(self, start: int, size: int) -> bytes:
        if self.expect is not None:
            span = next((g for g in self.groups if g[0] <= start < g[1]), (start, start + size))
            if start + size > span[1]:
                span = (start, start + size)
            if span != self.current:
                self.expect(*span)
                self.current = span
        self.fileobj.seek(start)
        data = self.fileobj.read(size)
        if len(data) != size:
            raise _Disagree(f"the file ends inside the local header at byte {start}")
        return data


def _raw_name(member: zipfile.ZipInfo) -> bytes:
    if member.flag_bits & UTF8_NAME:
        return member.orig_filename.encode("utf-8")
    return member.orig_filename.encode("cp437")


def _local_end(reader: _SpanReader, member: zipfile.ZipInfo) -> int:
    """Check `member`'s local header (and descriptor); return where the member ends."""
    start = member.header_offset
    fields = LOCAL.unpack(reader.read(start, LOCAL.size))
    magic, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = fields
    if magic != LOCAL_MAGIC:
        raise _Disagree(f"no local header at byte {start}")
    name = reader.read(start + LOCAL.size, name_len)
    extra = reader.read(start + LOCAL.size + name_len, extra_len)
    if name != _raw_name(member):
        raise _Disagree(f"the local header names {name!r}")
    if flags != member.flag_bits:
        raise _Disagree(f"local flags {flags:#x}, central {member.flag_bits:#x}")
    if method != member.compress_type:
        raise _Disagree(f"local method {method}, central {member.compress_type}")
    usize, csize = _zip64_sizes(extra, usize, csize)
    central = (crc, csize, usize) == (member.CRC, member.compress_size, member.file_size)
    data_end = start + LOCAL.size + name_len + extra_len + member.compress_size
    if not flags & DATA_DESCRIPTOR:
        if not central:
            raise _Disagree("the local CRC or sizes differ from the central directory's")
        return data_end
    if not central and (crc, csize, usize) != (0, 0, 0):
        raise _Disagree("the local CRC or sizes differ from the central directory's")
    return data_end + _descriptor_length(reader, data_end, member)


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    """The sizes a local zip64 extra field gives for fields that read 0xFFFFFFFF."""
    pos = 0
    while pos + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if kind == ZIP64_EXTRA:
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if usize == MAX32 and values:
                usize = values.pop(0)
            if csize == MAX32 and values:
                csize = values.pop(0)
        pos += 4 + length
    return usize, csize


def _descriptor_length(reader: _SpanReader, at: int, member: zipfile.ZipInfo) -> int:
    """The length of the data descriptor at `at`, which must carry the central values."""
    for magic in (True, False):
        for width in ("I", "Q"):
            layout = struct.Struct(f"<{'4s' if magic else ''}I{width}{width}")
            try:
                values: Any = layout.unpack(reader.read(at, layout.size))
            except _Disagree:
                continue
            if magic:
                if values[0] != DESCRIPTOR_MAGIC:
                    continue
                values = values[1:]
            if tuple(values) == (member.CRC, member.compress_size, member.file_size):
                return layout.size
    raise _Disagree("no data descriptor with the central CRC and sizes")
