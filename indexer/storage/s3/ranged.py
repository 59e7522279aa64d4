"""Read an artifact's info part from S3 without downloading the artifact.

A `.conda` is a zip whose directory sits at its end: one suffix range GET
(`bytes=-10240`) brings the directory and, for most packages, the
`info-*.tar.zst` member with it. `_ZipTail` serves those bytes to `zipfile`
from memory; a part it lacks (an info member that starts before the tail)
comes with one more range GET for that member's span, which `artifact`
announces through `expect` once it has read the directory. No temporary
file, and usually one request. A `.tar.bz2` (or a whole artifact read for
checksums) is one streamed GET that resumes by range if it breaks.

Every request goes through the retry policy (range answers are small and are
read whole inside it), is pinned to the listing's ETag (`If-Match`; without
one, to the ETag of the first answer) so that a replacement during the read
is a `Conflict`, never a splice of two versions, and every byte fetched is
counted. The requests are boto3's own `get_object(Range=, IfMatch=)`:
conda-package-streaming's S3 helper cannot send `If-Match`, and a read that is
not pinned to the listed ETag could splice two versions of one artifact.

The file object opens lazily, on first use, so that whatever the artifact's
bytes make fail happens inside `read_info`, which turns it into an
"unreadable" reason; storage failures stay `RunError`s.
"""

from __future__ import annotations

import errno
import io
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import botocore.exceptions as bex

from indexer.errors import Conflict, RunError
from indexer.storage.s3.client import (
    BROKEN_TRANSFER,
    ObjectMissing,
    PreconditionFailed,
    S3Api,
    error_code,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RESUMES = 5  # a .tar.bz2 stream broken more often than this fails the run
TAIL_BYTES = 10 * 1024  # the first GET of a .conda: its directory, often its info member
MIN_FETCH = 64 * 1024  # a read outside what we hold fetches at least this much
MAX_FETCH = 8 * 1024 * 1024  # and at most this much (memory per reader stays bounded)
EMPTY = "File is not a zip file (the object is empty)"


@dataclass(frozen=True)
class Answer:
    """What a successful GetObject answered: status (200/206), the headers we use, the body."""

    status: int
    etag: str | None
    content_length: int | None
    content_range: str | None
    body: Any  # botocore's StreamingBody: read(n), read(), close()


def get_object(
    client: Any, bucket: str, key: str, *, byte_range: str | None, if_match: str | None
) -> Answer:
    """One GetObject (the body not read yet); errors raise as boto3 raises them."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if byte_range is not None:
        params["Range"] = byte_range
    if if_match is not None:
        params["IfMatch"] = if_match
    response = client.get_object(**params)
    return Answer(
        status=int(response["ResponseMetadata"]["HTTPStatusCode"]),
        etag=response.get("ETag"),
        content_length=response.get("ContentLength"),
        content_range=response.get("ContentRange"),
        body=response["Body"],
    )


class _Pinned:
    """The requests for one object: retried, pinned to one ETag, counted."""

    def __init__(self, api: S3Api, key: str, etag: str | None) -> None:
        self.api = api
        self.key = key
        self.etag = etag  # the listing's ETag, so even the first GET is If-Match
        self.where = f"s3://{api.bucket}/{key}"
        self.bytes_fetched = 0
        self.requests = 0

    def send(self, byte_range: str | None) -> Answer:
        """One GET (body not read), pinned to the ETag seen first."""
        self.requests += 1
        log.debug("GET %s%s", self.where, f" ({byte_range})" if byte_range else "")
        answer = get_object(
            self.api.client, self.api.bucket, self.key, byte_range=byte_range, if_match=self.etag
        )
        self.etag = self.etag or answer.etag
        return answer

    def call(self, fn: Callable[[], T]) -> T:
        """`fn` under the retry policy; a vanished object or a replaced one raise as such."""
        try:
            return self.api.retrying(fn, "GetObject", self.where)
        except ObjectMissing:
            raise FileNotFoundError(self.key) from None
        except PreconditionFailed:
            raise Conflict(self.key) from None

    def fetch(self, byte_range: str) -> tuple[Answer, bytes]:
        """One range GET, its body read whole inside the retry policy."""

        def once() -> tuple[Answer, bytes]:
            try:
                answer = self.send(byte_range)
            except bex.ClientError as exc:
                if error_code(exc)[0] == "InvalidRange":  # a suffix range of an empty object
                    raise zipfile.BadZipFile(EMPTY) from None
                raise
            try:
                if answer.status != 206 and _length(answer) > TAIL_BYTES:
                    raise RunError(
                        f"{self.where}: the store answered a range request with the whole "
                        f"object (HTTP {answer.status}); range reads are needed"
                    )
                data = answer.body.read()
            finally:
                answer.body.close()
            self.bytes_fetched += len(data)
            return answer, data

        return self.call(once)


def _length(answer: Answer) -> int:
    return answer.content_length if answer.content_length is not None else 1 << 62


def _content_range(answer: Answer, data: bytes, where: str) -> tuple[int, int]:
    """(first byte, total size) of a range answer; a 200 is the whole object."""
    if answer.status != 206:
        return 0, len(data)
    value = answer.content_range or ""
    unit, _, rest = value.partition(" ")
    span, _, total = rest.partition("/")
    first, _, last = span.partition("-")
    if unit != "bytes" or not (first.isdigit() and last.isdigit() and total.isdigit()):
        raise RunError(f"{where}: unexpected Content-Range {value!r} in a range answer")
    if int(last) - int(first) + 1 != len(data):
        raise RunError(f"{where}: Content-Range {value!r} does not match the {len(data)} bytes")
    return int(first), int(total)


class _ZipTail(io.RawIOBase):
    """A seekable view of a `.conda` in S3: its tail in memory, other spans fetched by range.

    Reads are always complete (as `zipfile` expects of a file): bytes this
    object lacks are fetched with a pinned range GET, the span `expect`ed
    when the read falls in it (the info member: one request), otherwise
    64 KiB or what was asked for, and never more than 8 MiB at once. Besides
    the tail it keeps only the last span fetched.
    """

    def __init__(self, pinned: _Pinned) -> None:
        super().__init__()
        self.pinned = pinned
        answer, tail = pinned.fetch(f"bytes=-{TAIL_BYTES}")
        first, self.size = _content_range(answer, tail, pinned.where)
        if first + len(tail) != self.size:
            raise RunError(f"{pinned.where}: the tail read did not end at the object's end")
        self.tail_start, self.tail = first, tail
        self.window_start, self.window = 0, b""
        self.hint = (0, 0)
        self.pos = 0

    def expect(self, start: int, end: int) -> None:
        """The caller will read [start, end) next: fetch it in one request if it must."""
        self.hint = (max(0, start), min(self.size, end))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:  # as a file does (zipfile relies on OSError here)
            raise OSError(errno.EINVAL, "Invalid argument")
        self.pos = base + offset
        return self.pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        parts: list[bytes] = []
        while self.pos < end:
            chunk = self._held(self.pos, end) or self._fetch(self.pos, end)
            parts.append(chunk)
            self.pos += len(chunk)
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _held(self, start: int, end: int) -> bytes:
        """The bytes from `start` (up to `end`) that we already hold, or b""."""
        for first, data in ((self.tail_start, self.tail), (self.window_start, self.window)):
            if first <= start < first + len(data):
                return data[start - first : end - first]
        return b""

    def _fetch(self, start: int, end: int) -> bytes:
        # Only bytes before the tail are ever missing (the tail runs to the end).
        hint_start, hint_end = self.hint
        stop = max(end, hint_end if hint_start <= start < hint_end else start + MIN_FETCH)
        stop = min(stop, start + MAX_FETCH, self.tail_start)
        answer, data = self.pinned.fetch(f"bytes={start}-{stop - 1}")
        first, total = _content_range(answer, data, self.pinned.where)
        if (first, total) != (start, self.size) or not data:
            raise RunError(f"{self.pinned.where}: a range answer did not hold the bytes asked for")
        self.window_start, self.window = start, data
        return data[: end - start]


class _ResumableBody(io.RawIOBase):
    """One streamed GET of a whole artifact; resumes by range after a broken connection."""

    def __init__(self, pinned: _Pinned) -> None:
        super().__init__()
        self.pinned = pinned
        self.position = 0
        self.resumes = 0
        self.body: Any = pinned.call(lambda: pinned.send(None)).body

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while True:
            try:
                data = self.body.read(size) if size >= 0 else self.body.read()
                break
            except BROKEN_TRANSFER as exc:  # reset, timed out or cut short: resume
                self._resume(exc)
        self.position += len(data)
        self.pinned.bytes_fetched += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _resume(self, exc: BaseException) -> None:
        pinned = self.pinned
        self.resumes += 1
        if self.resumes > MAX_RESUMES:
            raise RunError(
                f"reading {pinned.where} broke off {MAX_RESUMES} times ({type(exc).__name__}); "
                "the connection to the store is unreliable"
            ) from None
        pinned.api.count_retry()
        self.body.close()  # unread data: the connection is dropped, not drained
        answer = pinned.call(lambda: pinned.send(f"bytes={self.position}-"))
        if answer.status != 206:
            answer.body.close()
            raise RunError(f"{pinned.where}: the store ignored the range of a resumed read")
        self.body = answer.body

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


class ArtifactFile:
    """A read-only file object over one artifact in S3, opened on first use.

    How it opens depends on how it is first used: a reader that seeks first
    (the zip reader of a `.conda`) gets `_ZipTail`; one that reads first (a
    `.tar.bz2`, or hashing a whole artifact for shard checksums) gets one
    streamed GET, never one request per chunk. `bytes_read` counts the bytes
    actually fetched from the store, `requests` the GETs made.
    """

    def __init__(self, api: S3Api, key: str, name: str, etag: str | None = None) -> None:
        self._pinned = _Pinned(api, key, etag)
        self._name = name
        self._file: _ZipTail | _ResumableBody | None = None

    def _open(self, *, seeking: bool) -> _ZipTail | _ResumableBody:
        if self._file is None:
            if seeking and self._name.endswith(".conda"):
                self._file = _ZipTail(self._pinned)
            else:
                self._file = _ResumableBody(self._pinned)
        return self._file

    @property
    def bytes_read(self) -> int:
        return self._pinned.bytes_fetched

    @property
    def requests(self) -> int:
        return self._pinned.requests

    def expect(self, start: int, end: int) -> None:
        """Announce the span read next (the info member of a `.conda`)."""
        if isinstance(self._file, _ZipTail):
            self._file.expect(start, end)

    def read(self, size: int = -1) -> bytes:
        return self._open(seeking=False).read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._open(seeking=True).seek(offset, whence)

    def tell(self) -> int:
        return self._open(seeking=True).tell()

    def seekable(self) -> bool:
        return self._name.endswith(".conda")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file is not None and self._file.closed
