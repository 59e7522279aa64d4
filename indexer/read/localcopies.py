"""`--local-copies DIR`: read new artifacts from the job's own files, once proven the channel's.

The job that uploads packages still has them on disk. For each new or
changed artifact found at `DIR/<subdir>/<filename>`, its info and checksums
come from that file, and the channel is not read at all, but only once the
file is proven to be the object in the channel:

- the same size, and a HEAD of the object (pinned to the listing's ETag) that
  says it is not encrypted with SSE-KMS or SSE-C (their ETags are no MD5 of
  the bytes), then either
- its full-object `ChecksumSHA256` equals the file's sha256, or
- its ETag equals the file's MD5 (a single-part upload), or the multipart
  ETag computed from the file (`md5(concat(part md5s))-N`) for 8 MiB parts
  (boto3's and the AWS CLI's) or one of the few whole-MiB part sizes that
  give N parts (`fullread.part_size_guesses`).

The file is hashed in one pass (every part size at once) and its info read
from the same open file, which must not change meanwhile (size, mtime and
inode are compared after). Anything else, for whatever reason (one line,
reported), means the artifact is read from the channel as usual. The file's
name comes from the bucket listing, so the path is checked to stay inside
DIR, and only regular files are opened (never a FIFO, which would block).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from indexer.errors import Conflict, RunError
from indexer.model import CachedArtifact, Entry, ObjectFacts
from indexer.read.fullread import Digests, digest_file, part_size_guesses
from indexer.read.info import UnreadableArtifact, read_info
from indexer.storage.base import ChannelStore

KMS = ("aws:kms", "aws:kms:dsse")


@dataclass(frozen=True, slots=True)
class LocalRead:
    """What a local copy gave: the row (None: read the channel) and the one-line how or why."""

    row: CachedArtifact | None
    line: str | None  # None: no local copy to speak of (absent, or nothing to prove against)


NOTHING = LocalRead(None, None)


class LocalCopies:
    """The job's copies of artifacts under `root/<subdir>/<filename>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def read(self, store: ChannelStore, subdir: str, entry: Entry) -> LocalRead:
        """The artifact's row from its local copy, if one exists and is proven the object."""
        path = self._path(subdir, entry.name)
        if path is None:
            return NOTHING
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return NOTHING
        except OSError as exc:
            return LocalRead(None, f"cannot open the local copy: {exc.strerror or exc}")
        with os.fdopen(fd, "rb") as fileobj:
            return self._read_open(store, subdir, entry, fileobj)

    def _path(self, subdir: str, name: str) -> Path | None:
        path = self.root / subdir / name
        if "/" in name or name in (".", "..") or self.root not in path.resolve().parents:
            return None
        return path

    def _read_open(
        self, store: ChannelStore, subdir: str, entry: Entry, fileobj: BinaryIO
    ) -> LocalRead:
        before = os.fstat(fileobj.fileno())
        if not stat.S_ISREG(before.st_mode):
            return LocalRead(None, "the local copy is not a regular file")
        if before.st_size != entry.size:
            return LocalRead(
                None, f"size differs: {before.st_size:,} bytes here, {entry.size:,} in the channel"
            )
        facts_of = getattr(store, "object_facts", None)
        try:
            facts = None if facts_of is None else facts_of(subdir, entry.name, entry.token)
        except Conflict:
            raise  # replaced since the listing: the pass is redone
        except RunError as exc:  # e.g. SSE-C: a HEAD without the key is refused
            return LocalRead(None, f"its HEAD failed: {exc}")
        if facts is None:  # vanished (the channel read says so), or staged
            return NOTHING
        refused = unusable(facts)
        if refused is not None:
            return LocalRead(None, refused)
        if facts.size != entry.size or facts.etag != entry.token:  # the read that follows tells
            return LocalRead(None, "the object's HEAD does not match the listing")
        try:
            digests = digest_file(fileobj, entry.size, part_sizes(facts.etag, entry.size))
        except OSError as exc:
            return LocalRead(None, f"cannot read the local copy: {exc.strerror or exc}")
        if digests.size != entry.size:
            return LocalRead(None, "the local copy changed while it was read")
        how = proof(facts, digests)
        if how.startswith("not proven"):
            return LocalRead(None, how.removeprefix("not proven: "))
        try:
            fileobj.seek(0)
            info = read_info(entry.name, fileobj, entry.size)
        except UnreadableArtifact as exc:
            return LocalRead(None, f"the local copy is unreadable ({exc})")
        except OSError as exc:
            return LocalRead(None, f"cannot read the local copy: {exc.strerror or exc}")
        after = os.fstat(fileobj.fileno())
        if (after.st_size, after.st_mtime_ns, after.st_ino) != (
            before.st_size,
            before.st_mtime_ns,
            before.st_ino,
        ):
            return LocalRead(None, "the local copy changed while it was read")
        row = info.row(entry, digests.md5.hexdigest(), digests.sha256.hexdigest())
        return LocalRead(row, how)


def unusable(facts: ObjectFacts) -> str | None:
    """Why the object's facts cannot prove any local copy (None: they may). Pure."""
    if facts.customer_key:
        return "encrypted with SSE-C: its ETag is no MD5 of the bytes"
    if facts.encryption in KMS:
        return f"encrypted with SSE-KMS ({facts.encryption}): its ETag is no MD5 of the bytes"
    return None


def part_sizes(etag: str, size: int) -> tuple[int, ...]:
    """The part sizes to hash for, when `etag` is a multipart ETag (`<md5>-<parts>`)."""
    _, dash, count = etag.strip('"').partition("-")
    if not dash or not count.isdigit():
        return ()
    return part_size_guesses(size, int(count))


def proof(facts: ObjectFacts, digests: Digests) -> str:
    """How the digests prove the object's bytes (`not proven: why` when they do not). Pure."""
    checksum = _full_object_sha256(facts)
    if checksum is not None:
        if checksum == digests.sha256.digest():
            return "its ChecksumSHA256 is the local sha256"
        return "not proven: its ChecksumSHA256 differs from the local sha256"
    etag = facts.etag.strip('"').lower()
    md5, dash, count = etag.partition("-")
    if not dash:
        if len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
            return f"not proven: its ETag {etag[:40]!r} is no MD5"
        if md5 == digests.md5.hexdigest():
            return "its ETag is the local MD5 (single-part upload)"
        return "not proven: its ETag differs from the local MD5 (single-part upload)"
    tried = part_size_guesses(digests.size, int(count)) if count.isdigit() else ()
    for part in tried:
        if digests.multipart_etag(part) == etag:
            return f"its multipart ETag is the local one for {count} part(s) of {_mib(part)}"
    sizes = ", ".join(_mib(p) for p in tried) or "none fits"
    return f"not proven: its multipart ETag ({count} parts) matches no part size tried ({sizes})"


def _full_object_sha256(facts: ObjectFacts) -> bytes | None:
    """The object's sha256 when S3 holds one of the whole object (not a composite)."""
    value = facts.checksum_sha256
    if not value or "-" in value or (facts.checksum_type or "FULL_OBJECT") != "FULL_OBJECT":
        return None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == 32 else None


def _mib(size: int) -> str:
    return f"{size // (1 << 20)} MiB" if size % (1 << 20) == 0 else f"{size:,} bytes"
