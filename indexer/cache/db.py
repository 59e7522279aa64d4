"""The SQLite cache of processed artifacts: one file per subdir.

It is what makes runs incremental: an artifact whose size and change token
match its row is never opened again. The schema is versioned
(`PRAGMA user_version`) and migrated forward; a file that is corrupt,
unreadable or from a newer version of this tool is set aside and rebuilt from
the channel, with a warning, never a crash. Every update is one transaction.

A cache file is untrusted input: whoever can write the bucket (or the channel
directory the cache sits in) can plant a trigger that rewrites the rows we
insert, or a view over an endless query. So before any other statement its
`sqlite_master` is compared with the exact schema this tool creates (a trigger
would fire even with `trusted_schema=OFF`), read-only and under a time limit
(`inspect`). A cache fetched from elsewhere is not opened at all: its rows are
copied, checked, into a fresh database we create (`import_untrusted`), so what
is written back holds nothing we did not make. Anything unexpected is set
aside (`*.bad`) and the cache rebuilt from the channel, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from indexer.cache.trust import COLUMNS, IMPORTED, MIGRATIONS, SCHEMA_VERSION, identity, inspect
from indexer.errors import RunError
from indexer.model import CachedArtifact, Record

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 300.0  # the default; a run passes Config.lock_timeout_s (environment)
FIRST_TRY_S = 0.5  # how long to wait before saying that another process holds the cache


def _dump(value: Any) -> bytes | None:
    if isinstance(value, Record):
        return value.raw  # as stored: already sorted, compact JSON
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _load(value: bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


class Cache:
    """An open per-subdir cache file."""

    def __init__(self, path: str | os.PathLike[str], lock_timeout: float | None = None) -> None:
        self.path = Path(path)
        wait = LOCK_TIMEOUT_S if lock_timeout is None else lock_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rebuilt_reason: str | None = None
        try:
            try:
                self._db = self._open(FIRST_TRY_S)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                log.warning(
                    "cache %s is locked by another process; waiting up to %.0f s for it",
                    self.path,
                    wait,
                )
                self._db = self._open(wait)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise RunError(
                    f"cache {self.path} stayed locked by another process for "
                    f"{wait:.0f} s; is another run still going?"
                ) from None
            self._db = self._rebuild(str(exc))
        except sqlite3.DatabaseError as exc:
            self._db = self._rebuild(str(exc))
        self._db.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")

    # -- opening -----------------------------------------------------------
    def _connect(self, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        db.execute("PRAGMA trusted_schema=OFF")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _open(self, timeout: float = LOCK_TIMEOUT_S) -> sqlite3.Connection:
        if self.path.exists():
            if self.path.stat().st_size == 0:
                raise sqlite3.DatabaseError("the file is empty")
            # before a writer may run anything of the file; rows too, unless just copied
            inspect(self.path, timeout, rows=identity(self.path) not in IMPORTED)
        db = self._connect(timeout)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {version} is newer than this tool's {SCHEMA_VERSION}"
                )
            if version < SCHEMA_VERSION:
                self._migrate(db, version)
            db.execute("SELECT count(*) FROM artifacts").fetchone()
            db.execute("PRAGMA quick_check").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _rebuild(self, reason: str) -> sqlite3.Connection:
        self.rebuilt_reason = reason
        log.warning(
            "cache %s is unusable (%s); set aside as %s.bad, rebuilding it from the channel",
            self.path,
            reason,
            self.path.name,
        )
        for suffix in ("", "-journal", "-wal", "-shm"):
            candidate = Path(f"{self.path}{suffix}")
            if candidate.exists():
                os.replace(candidate, f"{self.path}.bad{suffix}")
        return self._open()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -----------------------------------------------------------
    def states(self) -> dict[str, tuple[int, str]]:
        """filename → (size, token) of every cached artifact."""
        rows = self._db.execute("SELECT filename, size, token FROM artifacts")
        return {name: (size, token) for name, size, token in rows}

    def artifacts(self, names: Iterable[str] | None = None) -> list[CachedArtifact]:
        """Cached artifacts (all, or those named), sorted by filename."""
        rows = self._db.execute(f"SELECT {COLUMNS} FROM artifacts ORDER BY filename")
        wanted = None if names is None else set(names)
        return [_row(r) for r in rows if wanted is None or r[0] in wanted]

    def packages(self) -> Iterator[list[CachedArtifact]]:
        """Readable artifacts one package at a time: by record name, then filename.

        Streamed from SQLite, so rendering 100,000 artifacts never holds more
        than one package's rows. SQLite orders TEXT by its UTF-8 bytes, which is
        the order of Python's `sorted` on the same strings.
        """
        rows = self._db.execute(
            f"SELECT {COLUMNS}, json_extract(record, '$.name') AS package FROM artifacts "
            "WHERE error IS NULL AND record IS NOT NULL ORDER BY package, filename"
        )
        group: list[CachedArtifact] = []
        current = None
        for r in rows:
            if r[-1] != current and group:
                yield group
                group = []
            current = r[-1]
            group.append(_row(r))
        if group:
            yield group

    def missing_checksums(self) -> list[CachedArtifact]:
        """Readable artifacts whose md5 or sha256 is not known yet, by filename."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM artifacts WHERE error IS NULL "
            "AND (md5 IS NULL OR sha256 IS NULL) ORDER BY filename"
        )
        return [_row(r) for r in rows]

    def row_digests(self) -> dict[str, tuple[tuple[str, ...], str | None, str | None]]:
        """filename → (a digest of each of record, run_exports, run_exports_error, error;
        md5; sha256): what `--verify` compares freshly read rows with, without
        holding every row."""
        rows = self._db.execute(
            "SELECT filename, record, run_exports, run_exports_error, error, md5, sha256 "
            "FROM artifacts"
        )
        return {r[0]: (tuple(_digest(v) for v in r[1:5]), r[5], r[6]) for r in rows}

    def published(self) -> dict[str, tuple[str, str]]:
        """path → (token, sha256) of outputs this tool last wrote."""
        rows = self._db.execute("SELECT path, token, sha256 FROM published")
        return {path: (token, digest) for path, token, digest in rows}

    def problems(self) -> list[tuple[str, str | None, str | None]]:
        """(filename, error, run_exports_error) of artifacts with either, by filename."""
        rows = self._db.execute(
            "SELECT filename, error, run_exports_error FROM artifacts "
            "WHERE error IS NOT NULL OR run_exports_error IS NOT NULL ORDER BY filename"
        )
        return list(rows)

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with None, forget) one value."""
        with self._transaction() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
            if value is not None:
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def repodata_records(self) -> dict[str, tuple[int | None, str, bytes | None]]:
        """filename → (size, digest, record JSON or None) from the channel's repodata.json.

        Which repodata.json they describe is the meta key `repodata_records_from`.
        """
        rows = self._db.execute("SELECT filename, size, digest, record FROM repodata_records")
        return {name: (size, digest, record) for name, size, digest, record in rows}

    def set_repodata_records(
        self, source: str, rows: Iterable[tuple[str, int | None, str, bytes | None]]
    ) -> None:
        """Replace the repodata.json summary and the meta key naming its source, atomically."""
        with self._transaction() as db:
            db.execute("DELETE FROM repodata_records")
            db.executemany(
                "INSERT OR REPLACE INTO repodata_records (filename, size, digest, record) "
                "VALUES (?,?,?,?)",
                rows,
            )
            db.execute("DELETE FROM meta WHERE key = 'repodata_records_from'")
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('repodata_records_from', ?)", (source,)
            )

    def shards_dropped(self) -> dict[str, float]:
        """path → when our shard index stopped naming that shard."""
        rows = self._db.execute("SELECT path, since FROM shards_dropped")
        return {path: since for path, since in rows}

    # -- updates (one transaction each) --------------------------------------
    def update(self, put: Iterable[CachedArtifact] = (), remove: Iterable[str] = ()) -> None:
        """Store rows and drop filenames, atomically."""
        put_rows = [
            (
                a.filename,
                a.size,
                a.token,
                _dump(a.record),
                _dump(a.run_exports),
                a.run_exports_error,
                a.error,
                a.md5,
                a.sha256,
            )
            for a in put
        ]
        with self._transaction() as db:
            db.executemany("DELETE FROM artifacts WHERE filename = ?", ((n,) for n in remove))
            db.executemany(
                f"INSERT OR REPLACE INTO artifacts ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                put_rows,
            )

    def set_checksums(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Set (md5, sha256) of artifacts: rows of (filename, md5, sha256)."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE artifacts SET md5 = ?, sha256 = ? WHERE filename = ?",
                ((md5, sha256, name) for name, md5, sha256 in rows),
            )

    def forget_published(self) -> None:
        """Forget which outputs we wrote: each is then fetched and compared before any write."""
        with self._transaction() as db:
            db.execute("DELETE FROM published")

    def set_published(self, path: str, token: str, sha256: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO published (path, token, sha256) VALUES (?,?,?)",
                (path, token, sha256),
            )

    def update_shards_dropped(
        self, add: Iterable[str] = (), since: float = 0.0, remove: Iterable[str] = ()
    ) -> None:
        """Remember shards as dropped at `since` (the latest drop wins); forget others."""
        with self._transaction() as db:
            db.executemany("DELETE FROM shards_dropped WHERE path = ?", ((p,) for p in remove))
            db.executemany(
                "INSERT OR REPLACE INTO shards_dropped (path, since) VALUES (?, ?)",
                ((p, since) for p in add),
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _digest(value: Any) -> str:
    if value is None:
        return ""
    data = value.encode() if isinstance(value, str) else bytes(value)
    return hashlib.sha256(data).hexdigest()


def _row(r: tuple[Any, ...]) -> CachedArtifact:
    return CachedArtifact(
        filename=r[0],
        size=r[1],
        token=r[2],
        record=None if r[3] is None else Record(r[3]),
        run_exports=_load(r[4]),
        run_exports_error=r[5],
        error=r[6],
        md5=r[7],
        sha256=r[8],
    )
