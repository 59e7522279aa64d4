"""Issue 2, acceptance 5: a corrupt or future cache is rebuilt, with a warning."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import orjson
import pytest

from dev.sample import build_artifact
from indexer.cache.db import Cache
from indexer.cache.trust import SCHEMA_VERSION, expected_schema
from indexer.model import CachedArtifact
from indexer.render import run_exports as render


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    root = tmp_path / "ch"
    build_artifact(root / "noarch", "a", run_exports=["a"])
    build_artifact(root / "noarch", "b", fmt=".tar.bz2")
    return root


def cache_file(channel: Path) -> Path:
    return channel / ".run-exports-index" / "noarch.sqlite"


def test_cache_is_one_file_per_subdir(channel: Path, run_cli) -> None:
    build_artifact(channel / "linux-64", "c", subdir="linux-64")
    assert run_cli("index", channel)[0] == 0
    assert sorted(p.name for p in (channel / ".run-exports-index").glob("*.sqlite")) == [
        "linux-64.sqlite",
        "noarch.sqlite",
    ]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"garbage" * 100), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:1000]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(
            lambda p: p.write_bytes(
                p.read_bytes()[:4096] + b"\xde\xad" * 2048 + p.read_bytes()[8192:]
            ),
            id="garbled-page",
        ),
        pytest.param(
            lambda p: sqlite3.connect(p).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}"),
            id="future-version",
        ),
    ],
)
def test_damaged_cache_rebuilt_with_warning(channel: Path, run_cli, caplog, damage) -> None:
    assert run_cli("index", channel)[0] == 0
    expected = (channel / "noarch" / "run_exports.json").read_bytes()
    (channel / "noarch" / "run_exports.json").unlink()
    damage(cache_file(channel))

    with caplog.at_level(logging.WARNING):
        status, _, err = run_cli("index", channel)
    assert status == 0, err
    assert "Traceback" not in err
    assert (channel / "noarch" / "run_exports.json").read_bytes() == expected
    assert "rebuilding" in caplog.text
    assert "noarch.sqlite" in caplog.text


def test_future_version_warns(channel: Path, run_cli, caplog) -> None:
    run_cli("index", channel)
    build_artifact(channel / "noarch", "c")  # work to do: the cache is opened
    sqlite3.connect(cache_file(channel)).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with caplog.at_level(logging.WARNING):
        assert run_cli("index", channel)[0] == 0
    assert "newer than this tool" in caplog.text
    assert "rebuilding" in caplog.text


def test_cache_round_trip_and_migration_from_empty(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    row = CachedArtifact("a-1-0.conda", 10, "t", {"name": "a"}, {"weak": ["a"]}, md5="0" * 32)
    with Cache(path) as cache:
        cache.update(put=[row])
    with Cache(path) as cache:
        assert cache.artifacts() == [row]
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        cache.update(remove=["a-1-0.conda"])
        assert cache.states() == {}


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def hold_lock(path: Path, seconds: float):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_locked_cache_waits_with_a_message(channel: Path, run_cli, caplog) -> None:
    assert run_cli("index", channel)[0] == 0
    build_artifact(channel / "noarch", "c")  # work to do: the cache is opened
    holder = hold_lock(cache_file(channel), 2.0)
    with caplog.at_level(logging.WARNING):
        status, _, err = run_cli("index", channel)
    holder.wait()
    assert status == 0, err
    assert "is locked by another process; waiting" in caplog.text


def test_cache_locked_too_long_fails_cleanly(channel: Path, run_cli, monkeypatch) -> None:
    import indexer.cache.db

    assert run_cli("index", channel)[0] == 0
    build_artifact(channel / "noarch", "c")  # work to do: the cache is opened
    monkeypatch.setattr(indexer.cache.db, "LOCK_TIMEOUT_S", 1.0)
    holder = hold_lock(cache_file(channel), 4.0)
    status, _, err = run_cli("index", channel)
    holder.wait()
    assert status == 1
    assert "stayed locked by another process" in err and "Traceback" not in err


PLANTED = [
    pytest.param(
        "CREATE TRIGGER planted AFTER INSERT ON artifacts BEGIN UPDATE artifacts "
        'SET run_exports = \'{"weak": ["evil-backdoor >=666"]}\'; END',
        id="trigger",
    ),
    pytest.param(
        "CREATE VIEW endless AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT i FROM n",
        id="view",
    ),
    pytest.param("CREATE INDEX planted ON artifacts (token)", id="extra-index"),
]


@pytest.mark.parametrize("statement", PLANTED)
def test_planted_objects_in_a_local_cache_are_set_aside(
    channel: Path, run_cli, caplog, statement: str
) -> None:
    """The cache beside a local channel is inspected read-only before it is used."""
    assert run_cli("index", channel)[0] == 0
    db = sqlite3.connect(cache_file(channel))
    db.execute(statement)
    db.commit()
    db.close()
    build_artifact(channel / "noarch", "c", run_exports=["c >=1"])  # work to do: rows inserted
    with caplog.at_level(logging.WARNING):
        status, _, err = run_cli("index", channel)
    assert status == 0, err
    assert "not the one this tool creates" in caplog.text
    assert cache_file(channel).with_name("noarch.sqlite.bad").exists()
    assert b"evil-backdoor" not in (channel / "noarch" / "run_exports.json").read_bytes()
    found = sqlite3.connect(cache_file(channel)).execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
    )
    assert tuple(sorted(found)) == expected_schema(SCHEMA_VERSION)


def test_a_cache_killed_mid_transaction_is_rolled_back_not_rebuilt(tmp_path: Path) -> None:
    """A hot journal needs a writer to roll back; the read-only inspection must not reject it."""
    import shutil

    path = tmp_path / "x.sqlite"
    with Cache(path) as cache:
        cache.update(put=[CachedArtifact("a-1-0.conda", 1, "t", {"name": "a"})])
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA cache_size=1")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO artifacts (filename, size, token) VALUES (?, 1, 't')",
        [(f"b{i}-1-0.conda" + "x" * 500,) for i in range(2000)],
    )
    copy = tmp_path / "crashed.sqlite"
    shutil.copyfile(path, copy)
    shutil.copyfile(f"{path}-journal", f"{copy}-journal")  # as a SIGKILL leaves it
    db.execute("ROLLBACK")
    with Cache(copy) as cache:
        assert cache.rebuilt_reason is None
        assert list(cache.states()) == ["a-1-0.conda"]


DEEP_RECORD = (
    "CAST('{\"name\": \"a\", \"x\": ' || replace(hex(zeroblob(300)), '00', '[')"
    " || replace(hex(zeroblob(300)), '00', ']') || '}' AS BLOB)"
)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE artifacts SET record = X'7b7b'", id="record-not-json"),
        pytest.param("UPDATE artifacts SET run_exports = CAST('[1]' AS BLOB)", id="run-exports"),
        pytest.param("UPDATE artifacts SET size = 'big'", id="size-text"),
        pytest.param("UPDATE artifacts SET record = CAST('{\"name\": 1}' AS BLOB)", id="name"),
        # orjson reads 1,024 levels; the shard sorter and msgpack stop far earlier
        pytest.param(f"UPDATE artifacts SET record = {DEEP_RECORD}", id="record-600-deep"),
    ],
)
def test_rows_no_run_could_use_are_set_aside_not_a_crash(
    channel: Path, run_cli, caplog, statement: str
) -> None:
    assert run_cli("index", channel)[0] == 0
    expected = (channel / "noarch" / "run_exports.json").read_bytes()
    db = sqlite3.connect(cache_file(channel))
    db.execute(statement)
    db.commit()
    db.close()
    build_artifact(channel / "noarch", "c", run_exports=["c >=1"])  # the cache is opened
    with caplog.at_level(logging.WARNING):
        status, _, err = run_cli("index", channel)
    assert status == 0, err
    assert "a row of its artifacts table is not one this tool writes" in caplog.text
    document = orjson.loads((channel / "noarch" / "run_exports.json").read_bytes())
    del document["packages.conda"]["c-1.0-0.conda"]
    assert render.dumps_compact(document) == expected
