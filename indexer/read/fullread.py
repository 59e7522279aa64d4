"""Read an artifact once, in full: its info part and the md5/sha256 of every byte.

Shards need whole-artifact checksums. When the channel's repodata.json cannot
give them, the artifact has to be read in full anyway, so its info part is
taken from that same read instead of from range reads before it:

- a `.tar.bz2` streams through the hashers (`_Tee`) while `read_info` reads
  it with tarfile; once `read_info` stops (at the first member outside
  `info/`), the rest of the stream is drained into the hashers;
- a `.conda` is spooled while it is hashed (`SpooledTemporaryFile`: in memory
  up to `SPOOL_MEMORY`, on disk past it), then `read_info` reads its info
  member from the spool through the usual path (zip checks, limits).

So a new artifact costs its size in bytes, in one GET on S3. The limits of
reading differ by what they guard: parsing (`read_info`: decompressed bytes,
tar headers, members, `MAX_SECONDS` of wall time) keeps every limit it has
and its clock starts when parsing does, so hashing a large artifact (the
spool, the drain) never eats the parse deadline; hashing reads at most the
size the listing gave (one byte more is a `Conflict`: the object is not the
one listed), in fixed-size chunks, and is bounded in time by the storage's
own timeouts, as a plain full read always was. A `.conda` over `SPOOL_LIMIT`
is not spooled (the disk it would take, times `--jobs`): the pool reads its
info by range and the checksum step hashes it afterwards.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from typing import Any, BinaryIO

from indexer.errors import Conflict
from indexer.model import CONDA
from indexer.read.info import ArtifactInfo, read_info

CHUNK = 1 << 20
SPOOL_MEMORY = 4 * 1024 * 1024  # a spool stays in memory up to this, then goes to disk
SPOOL_LIMIT = 512 * 1024 * 1024  # larger .conda: range reads for info, then a hashing read
MIB = 1024 * 1024


class Digests:
    """md5 and sha256 of every byte fed, and per part size the md5s of its parts.

    The part md5s give S3's multipart ETag for that part size
    (`md5(concat(part md5s))-N`), to compare with an object's ETag.
    """

    def __init__(self, part_sizes: tuple[int, ...] = ()) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._parts = {p: ([], hashlib.md5(), 0) for p in part_sizes if p > 0}

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)
        for size, (done, current, filled) in list(self._parts.items()):
            view = memoryview(data)
            while view:
                take = min(len(view), size - filled)
                current.update(view[:take])
                filled += take
                view = view[take:]
                if filled == size:
                    done.append(current.digest())
                    current, filled = hashlib.md5(), 0
            self._parts[size] = (done, current, filled)

    def multipart_etag(self, part_size: int) -> str:
        """The ETag of a multipart upload of these bytes in parts of `part_size`."""
        done, current, filled = self._parts[part_size]
        digests = done + ([current.digest()] if filled else [])
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def part_size_guesses(size: int, parts: int, limit: int = 8) -> tuple[int, ...]:
    """Part sizes to try for a multipart ETag of `parts` parts: 8 MiB, then whole MiBs.

    8 MiB is what boto3 and the AWS CLI use. Other whole-MiB sizes p qualify
    when ceil(size / p) == parts and p is at least S3's 5 MiB minimum part (a
    one-part upload is the same whatever p covers the whole size); at most
    `limit` sizes in all, smallest first after 8 MiB.
    """
    if parts < 1 or size < 1:
        return ()
    if parts == 1:
        return (max(size, 8 * MIB),)
    found = [8 * MIB] if _ceil(size, 8 * MIB) == parts else []
    low = max(5, _ceil(size, parts * MIB))  # parts * p >= size
    high = (size - 1) // ((parts - 1) * MIB)  # (parts - 1) * p < size
    for mib in range(low, high + 1):
        if len(found) >= limit:
            break
        if mib != 8 and _ceil(size, mib * MIB) == parts:
            found.append(mib * MIB)
    return tuple(found)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


class _Tee(io.RawIOBase):
    """Every byte read through it goes into the digests; more than `size` is a Conflict."""

    def __init__(self, raw: BinaryIO, digests: Digests, size: int, where: str) -> None:
        super().__init__()
        self.raw, self.digests, self.limit, self.where = raw, digests, size, where

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size is not None and size >= 0 else CHUNK)
        self.digests.update(data)
        if self.digests.size > self.limit:
            raise Conflict(self.where)  # not the object the listing described
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def read_in_full(
    filename: str, fileobj: BinaryIO, size: int, where: str
) -> tuple[ArtifactInfo, Digests]:
    """The info part and the digests of a whole artifact, from one sequential read.

    Raises `UnreadableArtifact` as `read_info` does (the rest of an unreadable
    artifact is not read: it needs no checksums), and `Conflict` when the
    stream does not hold exactly `size` bytes.
    """
    digests = Digests()
    if filename.endswith(CONDA):
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            while chunk := fileobj.read(CHUNK):
                digests.update(chunk)
                if digests.size > size:
                    raise Conflict(where)
                spool.write(chunk)
            if digests.size != size:
                raise Conflict(where)
            spool.seek(0)
            return read_info(filename, spool, size), digests  # type: ignore[arg-type]
    tee = _Tee(fileobj, digests, size, where)
    info = read_info(filename, tee, size)  # type: ignore[arg-type]
    tee.drain()
    if digests.size != size:
        raise Conflict(where)
    return info, digests


def digest_file(fileobj: BinaryIO, size: int, part_sizes: tuple[int, ...] = ()) -> Digests:
    """The digests of a local file's first `size` bytes and one more (a longer file shows)."""
    digests = Digests(part_sizes)
    while digests.size <= size and (chunk := fileobj.read(min(CHUNK, size + 1 - digests.size))):
        digests.update(chunk)
    return digests
