"""The members of a small, plain info tar held in memory, without `tarfile`.

Why: once the range GET costs ~0.2 ms of CPU, `tarfile`'s stream reader
(a `_Stream`, a `TarInfo` with a dozen parsed fields per member, a buffered
reader per extracted file) is a good part of what is left of reading a
`.conda`, whose info tar is a handful of plain ustar headers.

This parser accepts only what it reads exactly as `tarfile` does: headers
(ustar, GNU or V7: tarfile reads these the same way, whatever the magic)
with a valid checksum and plain octal numeric fields, for regular files and
directories, with all their data there; and pax extended headers that only
carry times (conda-package-handling 2 writes an `mtime` one before every
member). Anything else (pax paths or sizes, GNU long names, links, base-256
numbers, a bad checksum, data cut short) raises `NotPlain`, and the caller
reads the same bytes with `tarfile` from the start, so every verdict on a
damaged or unusual archive stays `tarfile`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
# pax records tarfile applies to no field we use (it keeps them as floats, or 0)
_TIME_RECORD = re.compile(rb"(\d+) (?:mtime|atime|ctime)=\d+(?:\.\d+)?\n")
_OCTAL = re.compile(rb"[0-7]*")
_WHITESPACE = b" \t\n\r\x0b\x0c"
# numeric fields tarfile parses (and rejects when malformed): mode, uid, gid, size,
# mtime, chksum, devmajor, devminor
_NUMERIC = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345))


class NotPlain(Exception):
    """Something this parser does not read exactly as tarfile does; use tarfile."""


class Member(NamedTuple):
    name: str
    size: int
    isfile: bool
    offset: int  # of its data in the tar (regular files: all `size` bytes are there)


def _octal(field: bytes) -> int:
    """tarfile's `nti` for a plain octal field (NUL-terminated, blank-padded)."""
    text = field.split(b"\0", 1)[0].strip(_WHITESPACE)
    if not _OCTAL.fullmatch(text):
        raise NotPlain("not a plain octal field")
    return int(text or b"0", 8)


def _text(field: bytes) -> str:
    """tarfile's `nts` with the encoding conda-package-streaming gives it."""
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def members(data: bytes) -> Iterator[Member]:
    """The members of the tar in `data`, in order, up to its end-of-archive block.

    Raises `NotPlain` at the first header (or data) that needs tarfile.
    """
    pos = 0
    pax = False  # the previous header was a pax extended header
    while True:
        header = data[pos : pos + BLOCK]
        if len(header) < BLOCK or header == ZERO_BLOCK:
            if pax or len(header) < BLOCK:
                raise NotPlain("no header where one is due")  # tarfile decides what that means
            return
        for start, end in _NUMERIC:
            _octal(header[start:end])
        checksum = _octal(header[148:156])
        if checksum != 256 + sum(header[:148]) + sum(header[156:]):
            raise NotPlain("checksum")  # tarfile also accepts a signed sum, or refuses
        kind = header[156:157]
        size = _octal(header[124:136])
        pos += BLOCK
        if kind == b"x" and not pax:
            _time_records(data[pos : pos + size], size)
            pos += -(-size // BLOCK) * BLOCK
            pax = True
            continue
        pax = False
        name = _text(header[0:100])
        prefix = _text(header[345:500])
        if kind == b"\0" and name.endswith("/"):
            kind = b"5"  # a V7-style directory, as tarfile reads it
        if kind == b"5":
            name = name.rstrip("/")
        elif kind not in (b"0", b"\0"):
            raise NotPlain(f"member type {kind!r}")
        if prefix:
            name = f"{prefix}/{name}"
        if kind == b"5":
            yield Member(name, size, False, pos)  # tarfile skips no data for a directory
            continue
        if pos + size > len(data):
            raise NotPlain("member data cut short")
        yield Member(name, size, True, pos)
        pos += -(-size // BLOCK) * BLOCK


def _time_records(records: bytes, size: int) -> None:
    """Accept a pax header block only if it is nothing but well-formed time records."""
    if len(records) != size:
        raise NotPlain("pax header cut short")
    pos = 0
    while pos < size:
        match = _TIME_RECORD.match(records, pos)
        if match is None or int(match.group(1)) != match.end() - pos:
            raise NotPlain("a pax record other than a time")
        pos = match.end()
