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

import functools
import hashlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .artifact import check_value, parse_run_exports
from .errors import RunError
from .record import Record

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
LOCK_TIMEOUT_S = float(os.environ.get("RUN_EXPORTS_INDEX_LOCK_TIMEOUT", "300"))
FIRST_TRY_S = 0.5  # how long to wait before saying that another process holds the cache
# Time allowed to inspect (and copy) a cache file we did not just create: with
# the exact schema checked first no statement can run long, so this is a
# backstop (a sqlite3 progress handler interrupts the statement).
INSPECT_TIME_LIMIT_S = float(os.environ.get("RUN_EXPORTS_INDEX_CACHE_TIME_LIMIT", "120"))
MAX_VALUE_BYTES = 64 << 20  # SQLITE_LIMIT_LENGTH while reading an untrusted file
_HEX = re.compile(r"[0-9a-f]+")
_MASTER = "SELECT type, name, tbl_name, sql FROM sqlite_master"

# MIGRATIONS[v] takes a database at version v to version v + 1.
MIGRATIONS: dict[int, list[str]] = {
    0: [
        """
    CREATE TABLE artifacts (
        filename TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        token TEXT NOT NULL,
        record BLOB,            -- index.json record (JSON), NULL when unreadable
        run_exports BLOB,       -- JSON, NULL when unknown or unreadable
        run_exports_error TEXT, -- why run_exports are unknown
        error TEXT,             -- why the artifact is unreadable
        md5 TEXT,               -- hex digests of the whole artifact, once known
        sha256 TEXT
    )""",
        """
    CREATE TABLE published (
        path TEXT PRIMARY KEY,  -- channel-relative path of an output we wrote
        token TEXT NOT NULL,    -- its token right after our write
        sha256 TEXT NOT NULL    -- of the bytes we wrote
    )""",
    ],
    1: [
        """
    CREATE TABLE shards_dropped (
        path TEXT PRIMARY KEY,  -- channel-relative path of a shard our index stopped naming
        since REAL NOT NULL     -- when (epoch seconds): pruning counts its grace from here
    )""",
    ],
    2: [
        """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,   -- e.g. "published_from": what the published outputs
        value TEXT NOT NULL     -- were rendered from (see pipeline._stamp)
    )""",
    ],
    3: [
        """
    CREATE TABLE repodata_records (
        filename TEXT PRIMARY KEY, -- an artifact the channel's repodata.json lists or removes
        size INTEGER,              -- its size there (NULL: in `removed`)
        digest TEXT NOT NULL,      -- sha256 of its record there (see repodata.record_digest)
        record BLOB                -- the record (JSON), kept only where ours differed
    )""",
    ],
}


@dataclass(frozen=True, slots=True)
class CachedArtifact:
    """One artifact as the cache knows it."""

    filename: str
    size: int
    token: str
    record: Mapping[str, Any] | None = None  # a `Record` when loaded from the cache
    run_exports: dict[str, Any] | None = None
    run_exports_error: str | None = None
    error: str | None = None
    md5: str | None = None
    sha256: str | None = None

    @property
    def readable(self) -> bool:
        return self.error is None


def by_package(artifacts: Iterable[CachedArtifact]) -> dict[str, list[CachedArtifact]]:
    """Package name → its readable artifacts with a record, by filename; names sorted.

    The in-memory form of `Cache.packages()`, for rows that are not (or no
    longer) what the cache holds, such as a patched view.
    """
    rows: dict[str, list[CachedArtifact]] = {}
    for artifact in sorted(artifacts, key=lambda a: a.filename):
        if artifact.readable and artifact.record:
            rows.setdefault(artifact.record["name"], []).append(artifact)
    return dict(sorted(rows.items()))


_COLUMNS = "filename, size, token, record, run_exports, run_exports_error, error, md5, sha256"


def _dump(value: Any) -> bytes | None:
    if isinstance(value, Record):
        return value.raw  # as stored: already sorted, compact JSON
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _load(value: bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


class UntrustedCacheError(sqlite3.DatabaseError):
    """A cache file holds something this tool does not create (the message says what)."""


@functools.cache
def expected_schema(version: int) -> tuple[tuple[Any, ...], ...]:
    """`sqlite_master` rows (type, name, tbl_name, sql) of a cache at `version`, sorted.

    Built from MIGRATIONS in memory, so it is exactly what this tool creates.
    """
    db = sqlite3.connect(":memory:")
    try:
        for v in range(version):
            for statement in MIGRATIONS[v]:
                db.execute(statement)
        return tuple(sorted(db.execute(_MASTER).fetchall()))
    finally:
        db.close()


def _read_only(path: Path, timeout: float, immutable: bool) -> sqlite3.Connection:
    """A read-only connection to an untrusted file, with a time limit on its statements."""
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    db = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    deadline = time.monotonic() + INSPECT_TIME_LIMIT_S
    db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    return db


def _check_schema(db: sqlite3.Connection) -> int:
    """Compare `sqlite_master` with what we create; the file's schema version.

    This is the first statement on the connection: nothing of the file's
    schema (a trigger, a view) has had a chance to run.
    """
    found = tuple(sorted(db.execute(_MASTER).fetchall()))
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this tool's {SCHEMA_VERSION}"
        )
    expected = expected_schema(max(version, 0))
    if version < 0 or found != expected:
        extra = [f"{kind} {name[:60]!r}" for kind, name, _, _ in sorted(set(found) - set(expected))]
        missing = [f"{kind} {name!r}" for kind, name, _, _ in sorted(set(expected) - set(found))]
        what = "; ".join(
            part
            for part in (
                extra and f"unexpected {', '.join(extra[:3])}" + (" …" if len(extra) > 3 else ""),
                missing and f"missing or altered {', '.join(missing[:3])}",
            )
            if part
        )
        raise UntrustedCacheError(
            f"its schema is not the one this tool creates ({what or 'altered'})"
        )
    return version


def inspect(
    path: str | os.PathLike[str], timeout: float = 0.0, immutable: bool = False, rows: bool = False
) -> int:
    """Check, read-only, that a cache file holds exactly our schema; its schema version.

    With `rows`, every row must also be one this tool writes (types, JSON
    that parses as ours), so that no row can stop a run later. Raises
    `sqlite3.DatabaseError` (`UntrustedCacheError` for a foreign schema or
    row, `OperationalError` "locked" when another process holds it longer
    than `timeout`).
    """
    path = Path(path)
    try:
        db = _read_only(path, timeout, immutable)
    except sqlite3.OperationalError as exc:
        raise sqlite3.DatabaseError(f"cannot open it read-only ({exc})") from None
    try:
        try:
            version = _check_schema(db)
            if rows:
                _check_rows(db, version)
            return version
        except sqlite3.OperationalError as exc:
            if immutable or "readonly" not in str(exc).replace(" ", ""):
                raise
        # A hot journal (a run killed mid-transaction) can only be rolled back
        # by a writer. The rollback is the pager's: it runs nothing of the schema.
        db.close()
        writer = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            writer.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            writer.close()
        db = _read_only(path, timeout, immutable)
        version = _check_schema(db)
        if rows:
            _check_rows(db, version)
        return version
    finally:
        db.close()


# (table, columns, the schema version it appears at, row check)
def _is_str(*values: Any) -> bool:
    return all(isinstance(v, str) for v in values)


def _is_opt_str(*values: Any) -> bool:
    return all(v is None or isinstance(v, str) for v in values)


def _record_ok(value: Any) -> bool:
    """A stored index.json record (or NULL): a JSON object with a name, and the
    fields rendering and lints rely on of the types `artifact` gives them."""
    if value is None:
        return True
    if not isinstance(value, bytes):
        return False
    try:
        record = orjson.loads(value)
        check_value(record)  # what the reader refuses: deep nesting, integers past 64 bits
    except ValueError:  # orjson.JSONDecodeError included
        return False
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        return False
    return (
        all(
            field not in record or isinstance(record[field], kind)
            for field, kind in (("version", str), ("build", str), ("depends", list))
        )
        and type(record.get("build_number", 0)) is int
    )


def _run_exports_ok(value: Any) -> bool:
    """Stored run_exports: an object `artifact.parse_run_exports` accepts (or NULL)."""
    if value is None:
        return True
    if not isinstance(value, bytes):
        return False
    try:
        if not isinstance(orjson.loads(value), dict):
            return False
        parse_run_exports(value)
    except Exception:  # any refusal: not a row we write
        return False
    return True


def _published_row_ok(filename: Any, size: Any, digest: Any, record: Any) -> bool:
    """A row describing the channel's repodata.json: its record, when kept, a JSON object."""
    if not _is_str(filename, digest) or not (size is None or type(size) is int):
        return False
    if record is None:
        return True
    try:
        parsed = orjson.loads(record) if isinstance(record, bytes) else None
        check_value(parsed)
    except ValueError:  # orjson.JSONDecodeError included
        return False
    return isinstance(parsed, dict)


def _hex(value: Any, length: int) -> bool:
    """None, or `length` lowercase hex digits (shards turn checksums into bytes)."""
    return value is None or (
        isinstance(value, str) and len(value) == length and _HEX.fullmatch(value) is not None
    )


def _artifact_row_ok(r: tuple[Any, ...]) -> bool:
    filename, size, token, record, run_exports, unknown, error, md5, sha256 = r
    return (
        _is_str(filename, token)
        and type(size) is int
        and size >= 0
        and _is_opt_str(unknown, error)
        and _hex(md5, 32)
        and _hex(sha256, 64)
        and _record_ok(record)
        and _run_exports_ok(run_exports)
    )


_TABLES: list[tuple[str, str, int, Any]] = [
    ("artifacts", _COLUMNS, 0, _artifact_row_ok),
    ("published", "path, token, sha256", 0, lambda r: _is_str(*r)),
    (
        "shards_dropped",
        "path, since",
        1,
        lambda r: _is_str(r[0]) and type(r[1]) in (int, float),
    ),
    ("meta", "key, value", 2, lambda r: _is_str(*r)),
    ("repodata_records", "filename, size, digest, record", 3, lambda r: _published_row_ok(*r)),
]


def _checked(table: str, rows: Iterable[tuple[Any, ...]], row_ok: Any) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        if not row_ok(row):
            raise UntrustedCacheError(f"a row of its {table} table is not one this tool writes")
        yield row


def _check_rows(db: sqlite3.Connection, version: int) -> None:
    for table, columns, since, row_ok in _TABLES:
        if since < version:
            for _ in _checked(table, db.execute(f"SELECT {columns} FROM {table}"), row_ok):
                pass


# Files `import_untrusted` made in this process, by (path, size, mtime): their
# rows were checked while copied, so opening them does not check them again.
_IMPORTED: set[tuple[str, int, int]] = set()


def _identity(path: Path) -> tuple[str, int, int]:
    info = path.stat()
    return (str(path.resolve()), info.st_size, info.st_mtime_ns)


def import_untrusted(path: str | os.PathLike[str]) -> int:
    """Replace the cache file at `path` (fetched, not ours) by a fresh one holding its rows.

    The file is opened read-only and immutable, its schema compared exactly,
    then every row checked for the types this tool writes and copied into a
    database created here with our own schema. Returns the number of rows
    copied; raises `sqlite3.DatabaseError` (the file left as it is) when
    anything is not as expected, so the caller sets it aside.
    """
    path = Path(path)
    fresh = path.with_name(f"{path.name}.fresh")
    fresh.unlink(missing_ok=True)
    source = _read_only(path, 0.0, immutable=True)
    copied = 0
    try:
        version = _check_schema(source)
        out = sqlite3.connect(fresh, isolation_level=None)
        try:
            out.execute("BEGIN")
            for v in range(SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    out.execute(statement)
            out.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for table, columns, since, row_ok in _TABLES:
                if since >= version:
                    continue
                marks = ",".join("?" * len(columns.split(",")))
                rows = source.execute(f"SELECT {columns} FROM {table}")
                out.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                    _checked(table, rows, row_ok),
                )
                copied += out.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            out.execute("COMMIT")
        finally:
            out.close()
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    os.replace(fresh, path)
    for suffix in ("-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _IMPORTED.add(_identity(path))
    return copied


class Cache:
    """An open per-subdir cache file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
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
                    LOCK_TIMEOUT_S,
                )
                self._db = self._open(LOCK_TIMEOUT_S)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise RunError(
                    f"cache {self.path} stayed locked by another process for "
                    f"{LOCK_TIMEOUT_S:.0f} s; is another run still going?"
                ) from None
            self._db = self._rebuild(str(exc))
        except sqlite3.DatabaseError as exc:
            self._db = self._rebuild(str(exc))
        self._db.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT_S * 1000)}")

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
            inspect(self.path, timeout, rows=_identity(self.path) not in _IMPORTED)
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
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM artifacts ORDER BY filename")
        wanted = None if names is None else set(names)
        return [_row(r) for r in rows if wanted is None or r[0] in wanted]

    def packages(self) -> Iterator[list[CachedArtifact]]:
        """Readable artifacts one package at a time: by record name, then filename.

        Streamed from SQLite, so rendering 100,000 artifacts never holds more
        than one package's rows. SQLite orders TEXT by its UTF-8 bytes, which is
        the order of Python's `sorted` on the same strings.
        """
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, json_extract(record, '$.name') AS package FROM artifacts "
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
            f"SELECT {_COLUMNS} FROM artifacts WHERE error IS NULL "
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
                f"INSERT OR REPLACE INTO artifacts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
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
