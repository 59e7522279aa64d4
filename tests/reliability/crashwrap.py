"""Run the indexer's CLI and SIGKILL it at a chosen local cache write (test-only).

The crash tests kill the indexer at S3 requests from the proxy; cache writes
never cross the wire, so this wrapper counts them instead. It wraps the
public write methods of `indexer.cache.db.Cache` (nothing in boto3, nothing in
the product's files) and, at the Nth call, kills its own process:

    CRASH_CACHE_WRITE=N:before   before the write starts
    CRASH_CACHE_WRITE=N:commit   inside the transaction, as COMMIT is about to run
    CRASH_CACHE_WRITE=N:after    after the write committed
    CRASH_CENSUS=FILE            write how many cache writes the run made, at exit

Usage: python tests/crashwrap.py index CHANNEL [OPTIONS]
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any

from indexer.cache import db as cache
from indexer.cli import main

WRITES = ("update", "set_published", "update_shards_dropped")
_count = 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(method: Any, target: int, when: str) -> Any:
    @functools.wraps(method)
    def wrapper(self: cache.Cache, *args: Any, **kwargs: Any) -> Any:
        global _count
        _count += 1
        if _count != target:
            return method(self, *args, **kwargs)
        if when == "before":
            _die()
        if when == "commit":  # sqlite calls this as each statement starts
            self._db.set_trace_callback(lambda sql: _die() if sql == "COMMIT" else None)
        result = method(self, *args, **kwargs)
        _die()  # "after" (or a write that never reached COMMIT)
        return result

    return wrapper


def install() -> None:
    target, when = 0, "before"
    if spec := os.environ.get("CRASH_CACHE_WRITE"):
        nth, when = spec.split(":")
        target = int(nth)
    for name in WRITES:
        setattr(cache.Cache, name, _wrap(getattr(cache.Cache, name), target, when))
    if census := os.environ.get("CRASH_CENSUS"):
        atexit.register(lambda: Path(census).write_text(str(_count)))


if __name__ == "__main__":
    install()
    sys.exit(main(sys.argv[1:]))
