"""The cache file as untrusted input: its exact schema, checked rows, a clean copy.

Whoever can write the bucket (or the channel directory the cache sits in) can
plant a trigger that rewrites the rows we insert, or a view over an endless
query. So before any other statement a cache file's `sqlite_master` is
compared with the exact schema this tool creates (a trigger would fire even
with `trusted_schema=OFF`), read-only and under a time limit (`inspect`). A
cache fetched from elsewhere is not opened at all: its rows are copied,
checked, into a fresh database we create (`import_untrusted`), so what is
written back holds nothing we did not make. The schema and its migrations
live here, as the one definition both the cache and the checks use.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from indexer.read.parse import check_value, parse_run_exports

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4


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
    encoding = db.execute("PRAGMA encoding").fetchone()[0]
    if encoding != "UTF-8":  # SQLite's JSON functions would read our UTF-8 blobs as text of it
        raise UntrustedCacheError(f"its text encoding is {encoding}, not the UTF-8 we create")
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
IMPORTED: set[tuple[str, int, int]] = set()


def identity(path: Path) -> tuple[str, int, int]:
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
    IMPORTED.add(identity(path))
    return copied


COLUMNS = "filename, size, token, record, run_exports, run_exports_error, error, md5, sha256"


_TABLES: list[tuple[str, str, int, Any]] = [
    ("artifacts", COLUMNS, 0, _artifact_row_ok),
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
