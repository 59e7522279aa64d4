"""Unit tests of the pure renderers: run_exports.json, shards and their index, repodata.json."""

from __future__ import annotations

import hashlib

import orjson

from indexer.model import CachedArtifact
from indexer.render import repodata, shards
from indexer.render import run_exports as render

MD5, SHA = "0" * 32, "1" * 64


def row(filename: str, run_exports: dict | None = None, **record) -> CachedArtifact:
    name, version, build = filename.rsplit(".", 2 if filename.endswith(".bz2") else 1)[0].rsplit(
        "-", 2
    )
    base = {"name": name, "version": version, "build": build, "build_number": 0, "depends": []}
    return CachedArtifact(filename, 100, "t", {**base, **record}, run_exports, md5=MD5, sha256=SHA)


ROWS = [
    row("b-1-0.conda", {"weak": ["b"]}),
    row("a-1-0.tar.bz2", {}),
    row("a-1-0.conda", None),  # unknown run_exports: left out of run_exports.json
    CachedArtifact("bad-1-0.conda", 5, "t", error="truncated"),  # unreadable: left out
]


def test_run_exports_json_is_compact_sorted_and_split_by_suffix() -> None:
    data = render.run_exports_json("noarch", ROWS)
    assert data == (
        b'{"info":{"subdir":"noarch","version":1},'
        b'"packages":{"a-1-0.tar.bz2":{"run_exports":{}}},'
        b'"packages.conda":{"b-1-0.conda":{"run_exports":{"weak":["b"]}}}}'
    )
    assert render.run_exports_json("noarch", list(reversed(ROWS))) == data  # any order


def test_zst_output_is_derived_and_named_by_its_source() -> None:
    data = render.run_exports_json("noarch", ROWS)
    output = render.zst_output("noarch/run_exports.json.zst", data)
    assert output.data == b"" and output.make is not None  # compressed only when written
    assert hashlib.sha256(data).hexdigest() in output.digest()
    assert render.compress(data) == output.body()


def test_shard_document_groups_by_format_with_binary_checksums() -> None:
    shard = shards.shard_document([r for r in ROWS if r.filename.startswith("a-")])
    assert set(shard["packages"]) == {"a-1-0.tar.bz2"}
    record = shard["packages.conda"]["a-1-0.conda"]
    assert record["sha256"] == bytes.fromhex(SHA) and "run_exports" not in record
    assert shard["packages"]["a-1-0.tar.bz2"]["run_exports"] == {}
    assert shards.decode(shards.encode(shard)) == shard


def test_shard_outputs_upload_only_missing_shards_then_the_index() -> None:
    rendered = {"a": shards.encode({"x": 1}), "b": shards.encode({"y": 2})}
    index = shards.shard_index("linux-64", rendered, None, "2024-01-01T00:00:00Z")
    assert index["info"]["created_at"] == "2024-01-01T00:00:00Z"
    a_name = shards.shard_path("linux-64", shards.digest(rendered["a"])).rsplit("/", 1)[1]
    outputs = shards.shard_outputs("linux-64", rendered, index, existing={a_name})
    assert [o.immutable for o in outputs] == [True, False]
    assert outputs[-1].path == "linux-64/repodata_shards.msgpack.zst"
    assert shards.shard_outputs("linux-64", rendered, index, existing=None)[0].immutable is False
    # an index identical but for its time keeps the previous created_at
    again = shards.shard_index("linux-64", rendered, index, "2030-01-01T00:00:00Z")
    assert again == index


def test_repodata_json_from_rows_with_removed() -> None:
    readable = [r for r in ROWS if r.readable]
    doc = orjson.loads(repodata.repodata_json("noarch", readable, ["z-1-0.conda"]))
    assert set(doc["packages"]) == {"a-1-0.tar.bz2"}
    assert set(doc["packages.conda"]) == {"a-1-0.conda", "b-1-0.conda"}
    assert doc["removed"] == ["z-1-0.conda"] and doc["repodata_version"] == 1
    assert doc["packages.conda"]["b-1-0.conda"]["md5"] == MD5
    paths = [o.path for o in repodata.repodata_outputs("noarch", readable, [])]
    assert paths == ["noarch/repodata.json", "noarch/repodata.json.zst"]
