"""Read an artifact's info part from S3 without downloading the artifact.

conda-package-streaming does the work: for `.conda` its lazy zip reader asks
for the tail of the file (the zip directory) and then the `info-*.tar.zst`
member, usually two range GETs in all; for `.tar.bz2` one streamed GET that
`artifact.read_info` stops at the first member outside `info/`.

What this module adds is the edge around it: each request goes through the
retry policy (range answers are small and read whole inside it; the one
stream resumes where it broke), the ETag of the first answer pins the object
(`If-Match`) so a replacement during the read is a `Conflict`, not a splice
of two versions, and every byte fetched is counted.

The file object opens lazily, on the first read, so that whatever the
artifact's bytes make fail happens inside `read_info`, which turns it into an
"unreadable" reason; storage failures stay `RunError`s.
"""

from __future__ import annotations

import io
import zipfile
from contextlib import closing
from typing import Any

import botocore.exceptions as bex
from conda_package_streaming.s3 import ResponseFacade, SessionFacade
from conda_package_streaming.url import conda_reader_for_url

from .errors import Conflict, RunError
from .s3client import BROKEN_TRANSFER, ObjectMissing, PreconditionFailed, S3Api, error_code

MAX_RESUMES = 5  # a .tar.bz2 stream broken more often than this fails the run


class _Session(SessionFacade):
    """conda-package-streaming's S3 session, with retries, ETag pinning and counting."""

    def __init__(self, api: S3Api, key: str, etag: str | None = None) -> None:
        super().__init__(api.client, api.bucket, key)
        self.api = api
        self.etag = etag  # the listing's ETag, so even the first GET is If-Match
        self.bytes_fetched = 0
        self.requests = 0
        self.stream: _ResumableBody | None = None

    def get(self, url: str, *, headers: dict | None = None, stream: bool = True) -> ResponseFacade:
        byte_range = (headers or {}).get("Range")
        if byte_range is None:
            self.stream = _ResumableBody(self)
            return self.stream.first_response()
        return self._get_range(byte_range)

    def request(self, **params: Any) -> dict[str, Any]:
        """GetObject for this key, pinned to the ETag seen first (body not read)."""
        if self.etag is not None:
            params["IfMatch"] = self.etag
        self.requests += 1
        response = self.client.get_object(Bucket=self.bucket, Key=self.key, **params)
        self.etag = self.etag or response.get("ETag")
        return response

    def _get_range(self, byte_range: str) -> ResponseFacade:
        def fetch() -> dict[str, Any]:
            try:
                response = self.request(Range=byte_range)
            except bex.ClientError as exc:
                if error_code(exc)[0] == "InvalidRange":  # a suffix range of an empty object
                    empty = zipfile.BadZipFile("File is not a zip file (the object is empty)")
                    raise empty from None
                raise
            with closing(response["Body"]) as body:  # not `with Body`: see S3Store.read_with_token
                data = body.read()
            self.bytes_fetched += len(data)
            return {**response, "Body": io.BytesIO(data)}

        return ResponseFacade(self.call(fetch))

    def call(self, fn: Any) -> Any:
        try:
            return self.api.retrying(fn, "GetObject", f"s3://{self.bucket}/{self.key}")
        except ObjectMissing:
            raise FileNotFoundError(self.key) from None
        except PreconditionFailed:
            raise Conflict(self.key) from None


class _ResumableBody(io.RawIOBase):
    """The one streamed GET of a `.tar.bz2`; resumes by range after a broken connection."""

    def __init__(self, session: _Session) -> None:
        super().__init__()
        self.session = session
        self.position = 0
        self.resumes = 0
        self.body: Any = None

    def first_response(self) -> ResponseFacade:
        response = self.session.call(self.session.request)
        self.body = response["Body"]
        return ResponseFacade({**response, "Body": self})

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        while True:
            try:
                data = self.body.read(len(view))
                break
            except BROKEN_TRANSFER as exc:  # reset, timed out or cut short: resume
                self._resume(exc)
        view[: len(data)] = data
        self.position += len(data)
        self.session.bytes_fetched += len(data)
        return len(data)

    def _resume(self, exc: BaseException) -> None:
        self.resumes += 1
        if self.resumes > MAX_RESUMES:
            raise RunError(
                f"reading s3://{self.session.bucket}/{self.session.key} broke off "
                f"{MAX_RESUMES} times ({type(exc).__name__}); the connection to the store "
                "is unreliable"
            ) from None
        self.session.api.count_retry()
        self._close_body()
        response = self.session.call(lambda: self.session.request(Range=f"bytes={self.position}-"))
        self.body = response["Body"]

    def _close_body(self) -> None:
        if self.body is not None:
            self.body.close()  # unread data: the connection is dropped, not drained

    def close(self) -> None:
        self._close_body()
        super().close()


class ArtifactFile:
    """A read-only file object over one artifact in S3, opened on first use.

    How it opens depends on how it is first used: a reader that seeks first
    (the zip reader of a `.conda`) gets conda-package-streaming's range
    reader; one that reads first (a `.tar.bz2`, or hashing a whole artifact
    for shard checksums) gets one streamed GET, never one request per chunk.
    `bytes_read` counts the bytes actually fetched from the store.
    """

    def __init__(self, api: S3Api, key: str, name: str, etag: str | None = None) -> None:
        self._session = _Session(api, key, etag)
        self._name = name
        self._file: Any = None

    def _open(self, *, seeking: bool) -> Any:
        if self._file is None:
            if seeking or not self._name.endswith(".conda"):
                _, self._file = conda_reader_for_url(self._name, self._session)  # type: ignore[arg-type]
            else:
                self._file = self._session.get(self._name).raw
        return self._file

    @property
    def bytes_read(self) -> int:
        return self._session.bytes_fetched

    @property
    def requests(self) -> int:
        return self._session.requests

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
        if self._session.stream is not None:
            self._session.stream.close()

    @property
    def closed(self) -> bool:
        return self._file is not None and self._file.closed
