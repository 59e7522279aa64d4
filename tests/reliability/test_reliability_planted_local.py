"""Issue 13: planted state found by an attack round, on a local channel.

A shard rewritten under its own name (content-addressed: clients that do not
check the hash serve it), a published run_exports.json nested past what a
report can carry, a cache in another text encoding, and a cold run whose
listing lost both the artifacts and run_exports.json.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import msgpack
import pytest
import zstandard

from dev.sample import build_artifact
from indexer.cache.trust import MIGRATIONS, SCHEMA_VERSION
from indexer.read import published
from indexer.redact import forget, redact, register_url
from indexer.storage.local import LocalStore

MARKER = "evil-backdoor >=666"


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "ch"
    for name in ("a", "b", "c"):
        build_artifact(root / "noarch", name, depends=["python"], run_exports=[f"{name} >=1"])
    return root


def index(run_cli, channel: Path, *args: str) -> dict:
    report = channel.parent / "report.json"
    status, _, err = run_cli("index", channel, "-q", "--report", report, *args)
    assert status == 0, err
    return json.loads(report.read_bytes())


def test_verify_rewrites_a_shard_tampered_under_its_own_name(channel: Path, run_cli) -> None:
    index(run_cli, channel)
    shard = sorted((channel / "noarch" / "shards").iterdir())[0]
    original = shard.read_bytes()
    document = msgpack.unpackb(zstandard.decompress(original), raw=False)
    for section in ("packages", "packages.conda"):
        for record in document.get(section, {}).values():
            record["depends"] = [*record["depends"], MARKER]
    shard.write_bytes(zstandard.compress(msgpack.packb(document, use_bin_type=True)))
    report = index(run_cli, channel, "--verify")
    repaired = [p["filename"] for p in report["subdirs"]["noarch"]["repaired"]]
    assert f"noarch/shards/{shard.name}" in repaired
    assert shard.read_bytes() == original
    assert index(run_cli, channel)["uploaded"] == []


def test_verify_writes_a_shard_deleted_behind_an_unchanged_index(channel: Path, run_cli) -> None:
    index(run_cli, channel)
    shard = sorted((channel / "noarch" / "shards").iterdir())[0]
    original = shard.read_bytes()
    shard.unlink()
    index(run_cli, channel, "--verify")
    assert shard.read_bytes() == original


def test_a_published_run_exports_nested_too_deep_is_not_a_failed_run(channel, run_cli):
    deep = "[" * 300 + "]" * 300
    planted = (
        '{"info": {"subdir": "noarch", "version": 1}, "packages": {}, "packages.conda": '
        '{"a-1.0-0.conda": {"run_exports": {"weak": ' + deep + "}}}}"
    )
    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    (channel / "noarch" / "run_exports.json").write_text(planted)
    summary = channel.parent / "summary.md"
    report = index(run_cli, channel, "--summary", str(summary))
    assert len(report["subdirs"]["noarch"]["run_exports_changes"]) == 3  # all new to clients
    preview = index(run_cli, channel, "--preview", "--cache-dir", str(channel.parent / "c"))
    assert preview["subdirs"]["noarch"]["listed"] == 3


def test_a_cache_in_another_text_encoding_is_set_aside(channel: Path, run_cli) -> None:
    index(run_cli, channel)
    expected = (channel / "noarch" / "run_exports.json").read_bytes()
    cache = channel / ".run-exports-index" / "noarch.sqlite"
    old = sqlite3.connect(cache)
    rows = old.execute("SELECT * FROM artifacts").fetchall()
    old.close()
    cache.unlink()
    db = sqlite3.connect(cache)
    db.execute("PRAGMA encoding = 'UTF-16le'")
    for version in range(SCHEMA_VERSION):
        for statement in MIGRATIONS[version]:
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    marks = ",".join("?" * len(rows[0]))
    db.executemany(f"INSERT INTO artifacts VALUES ({marks})", rows)
    db.commit()
    db.close()
    build_artifact(channel / "noarch", "d")  # the cache is opened
    report = index(run_cli, channel)
    assert "UTF-16" in report["subdirs"]["noarch"]["cache_rebuilt"]
    document = json.loads((channel / "noarch" / "run_exports.json").read_bytes())
    del document["packages.conda"]["d-1.0-0.conda"]
    assert json.dumps(document, sort_keys=True, separators=(",", ":")).encode() == expected


def test_a_cold_run_counts_what_run_exports_json_lists_even_when_not_listed(channel, run_cli):
    """A truncated listing loses its tail, run_exports.json included: read it anyway."""
    index(run_cli, channel)
    store = LocalStore(channel)
    listing = [e for e in store.list_subdir("noarch") if e.name.endswith(".conda")][:1]
    before = published.removable(store, "noarch", listing, {})
    assert before == {"a-1.0-0.conda", "b-1.0-0.conda", "c-1.0-0.conda"}


@pytest.mark.parametrize(
    "url",
    [
        "http://user1:S3cr?tPassw0rd@127.0.0.1:9",
        "http://user1:S3cr#tPassw0rd@127.0.0.1:9",
        "http://user:Sx@y:z/Passw0rd@127.0.0.1:9/x",
    ],
)
def test_passwords_with_url_delimiters_are_redacted(url: str) -> None:
    forget()
    register_url(url)
    password = url.split("//", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
    for text in (f"failed at {url}", f"EndpointResolutionError: {url}/b?x=1", password):
        shown = redact(text)
        assert password not in shown
        assert not any(
            part in shown for part in password.replace("?", "/").split("/") if len(part) > 3
        )
    forget()
