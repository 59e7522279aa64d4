"""The S3 backend: a channel under `s3://bucket/prefix`.

Listings are one paginated, delimited ListObjectsV2 per subdir (several
subdirs at once when the pipeline prefetches), and the ETag is the change
token. Writes are conditional: `If-None-Match: *` for a new key, `If-Match`
with the ETag seen at the start for a replacement, so a concurrent writer is
detected (`errors.Conflict`) instead of overwritten.

Artifacts are never downloaded whole: see `ranged` for how their info part
is read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from typing import Any

from indexer.errors import Conflict, UsageError
from indexer.model import Entry, ObjectFacts, is_subdir_name
from indexer.storage.s3.client import ObjectMissing, PreconditionFailed, S3Api, S3Options
from indexer.storage.s3.ranged import ArtifactFile

LIST_THREADS = 8


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix/"); the prefix may be empty."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {url!r}; expected s3://bucket/prefix")
    if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in ".-_" for c in bucket):
        raise UsageError(f"{bucket!r} is not a valid bucket name (in {url!r})")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise UsageError(f"the prefix of {url!r} has empty, '.' or '..' parts")
    return bucket, f"{prefix}/" if prefix else ""


class S3Store:
    """A channel in an S3 bucket (AWS S3 or an S3-compatible store)."""

    def __init__(self, url: str, options: S3Options | None = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.api = S3Api(self.bucket, options or S3Options())
        self._lock = threading.Lock()
        self._bytes_read = 0
        self._prefetched: dict[str, Future[list[Entry]]] = {}

    @property
    def retries(self) -> int:
        """Transient failures retried so far (reported as `retries`)."""
        return self.api.retries

    def key(self, path: str) -> str:
        return self.prefix + path

    def url(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"

    # -- listing -------------------------------------------------------------
    def _list(self, prefix: str) -> tuple[list[Entry], list[str]]:
        """Objects (names relative to `prefix`) and common prefixes under `prefix`, every page.

        Each page becomes `Entry`s at once: botocore's dicts for 100,000 objects
        would hold a few hundred MB until the listing ends.
        """
        objects: list[Entry] = []
        folders: list[str] = []
        params: dict[str, Any] = {"Prefix": prefix, "Delimiter": "/"}
        while True:
            page = self.api.call("ListObjectsV2", f"s3://{self.bucket}/{prefix}", **params)
            objects += [_entry(o["Key"][len(prefix) :], o) for o in page.get("Contents", [])]
            folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return objects, folders
            params["ContinuationToken"] = token

    def list_subdirs(self) -> list[str]:
        _, folders = self._list(self.prefix)
        names = (f[len(self.prefix) :].rstrip("/") for f in folders)
        return sorted(n for n in names if is_subdir_name(n))

    def prefetch_listings(self, subdirs: list[str]) -> None:
        """Start listing these subdirs concurrently; `list_subdir` uses each result once."""
        todo = [s for s in subdirs if s not in self._prefetched]
        if len(todo) < 2:
            return
        pool = ThreadPoolExecutor(min(LIST_THREADS, len(todo)), thread_name_prefix="lister")
        for subdir in todo:
            self._prefetched[subdir] = pool.submit(self._list_subdir_now, subdir)
        pool.shutdown(wait=False)

    def list_subdir(self, subdir: str) -> list[Entry]:
        future = self._prefetched.pop(subdir, None)
        if future is not None:
            return future.result()
        return self._list_subdir_now(subdir)

    def _list_subdir_now(self, subdir: str) -> list[Entry]:
        folder = self.key(subdir.strip("/") + "/")
        entries, _ = self._list(folder)
        return sorted((e for e in entries if e.name and "/" not in e.name), key=lambda e: e.name)

    # -- artifacts -----------------------------------------------------------
    @contextmanager
    def open_artifact(
        self, subdir: str, name: str, token: str | None = None
    ) -> Iterator[ArtifactFile]:
        path = f"{subdir}/{name}"
        reader = ArtifactFile(self.api, self.key(path), name, etag=token)
        try:
            yield reader
        finally:
            reader.close()
            with self._lock:
                self._bytes_read += reader.bytes_read

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    # -- channel objects -------------------------------------------------------
    def read(self, path: str) -> bytes | None:
        found = self.read_with_token(path)
        return None if found is None else found[0]

    def read_with_token(self, path: str) -> tuple[bytes, str] | None:
        """An object's bytes and ETag (one GET, so they belong together), or None."""
        key = self.key(path)

        def get() -> tuple[bytes, str]:
            response = self.api.client.get_object(Bucket=self.bucket, Key=key)
            # closing(), not `with Body`: StreamingBody.__enter__ hands out the raw
            # urllib3 stream, whose errors (a body cut short) bypass botocore's
            # and so the retry policy's classification.
            with closing(response["Body"]) as body:
                return body.read(), response["ETag"]

        try:
            return self.api.retrying(get, "GetObject", self.url(path))
        except ObjectMissing:
            return None

    def stat(self, path: str) -> Entry | None:
        try:
            head = self.api.call("HeadObject", self.url(path), Key=self.key(path))
        except ObjectMissing:
            return None
        name = path.rsplit("/", 1)[-1]
        return _entry(name, {"Size": head["ContentLength"], **head})

    def object_facts(self, subdir: str, name: str, token: str) -> ObjectFacts | None:
        """One HEAD of an artifact, pinned to the listing's ETag (`--local-copies`).

        None when it vanished; `Conflict` when it was replaced since the
        listing. `ChecksumMode` asks for the object's stored checksum (S3
        returns it only when asked).
        """
        path = f"{subdir}/{name}"
        try:
            head = self.api.call(
                "HeadObject",
                self.url(path),
                Key=self.key(path),
                IfMatch=token,
                ChecksumMode="ENABLED",
            )
        except ObjectMissing:
            return None
        except PreconditionFailed:
            raise Conflict(path) from None
        return ObjectFacts(
            size=int(head.get("ContentLength", -1)),
            etag=str(head.get("ETag", "")),
            checksum_sha256=head.get("ChecksumSHA256"),
            checksum_type=head.get("ChecksumType"),
            encryption=head.get("ServerSideEncryption"),
            customer_key=bool(head.get("SSECustomerAlgorithm")),
        )

    def write(
        self,
        path: str,
        data: bytes,
        *,
        expect: str | None,
        content_type: str = "application/octet-stream",
        cache_control: str = "",
    ) -> str:
        params: dict[str, Any] = {"Key": self.key(path), "Body": data, "ContentType": content_type}
        if cache_control:
            params["CacheControl"] = cache_control
        if expect is None:
            params["IfNoneMatch"] = "*"
        else:
            params["IfMatch"] = expect
        try:
            response = self.api.call("PutObject", self.url(path), **params)
        except PreconditionFailed:
            raise Conflict(path) from None
        return response["ETag"]

    def delete(self, path: str) -> None:
        with suppress(ObjectMissing):
            self.api.call("DeleteObject", self.url(path), Key=self.key(path))


def _entry(name: str, obj: dict[str, Any]) -> Entry:
    modified = obj.get("LastModified")
    return Entry(name, int(obj["Size"]), obj["ETag"], modified.timestamp() if modified else None)
