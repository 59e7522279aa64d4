"""Helpers for the shard tests: a loopback HTTP server and a CEP-16 reader.

The reader is written from the CEP-16 text alone (fetch the index, join
`shards_base_url` to the index URL, fetch `<sha256 hex>.msgpack.zst`), not
from the indexer's code, so it checks the published layout independently.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import msgpack
import zstandard


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on loopback; yield its base URL (with a trailing /)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def unpack(data: bytes) -> Any:
    """zstd-compressed msgpack, as CEP-16 defines both files."""
    packed = zstandard.ZstdDecompressor().stream_reader(data).read()
    return msgpack.unpackb(packed, raw=False)


def read_subdir(channel_url: str, subdir: str) -> dict[str, Any]:
    """Every record of a subdir through its shard index: filename → (record, package URL).

    Checks on the way what CEP-16 promises: each shard's bytes hash to the
    name the index gives it.
    """
    index_url = urljoin(channel_url, f"{subdir}/repodata_shards.msgpack.zst")
    index = unpack(fetch(index_url))
    assert index["version"] == 1
    info = index["info"]
    shards_url = urljoin(index_url, info["shards_base_url"])
    packages_url = urljoin(index_url, info["base_url"])
    found: dict[str, Any] = {}
    for name, sha256 in index["shards"].items():
        assert isinstance(sha256, bytes) and len(sha256) == 32
        data = fetch(urljoin(shards_url, f"{sha256.hex()}.msgpack.zst"))
        assert hashlib.sha256(data).digest() == sha256
        shard = unpack(data)
        for section in ("packages", "packages.conda"):
            for filename, record in shard.get(section, {}).items():
                assert record["name"] == name
                found[filename] = (record, urljoin(packages_url, filename))
    return found


def hexed(record: dict[str, Any]) -> dict[str, Any]:
    """A shard record with its raw md5/sha256 shown as hex (as shards.json does)."""
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in record.items()}
