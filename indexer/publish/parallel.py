"""Writes and deletes a few at a time: each waits a round trip, none depends on another.

Publishing 200 new shards one after another costs 200 round trips (4 s at
20 ms each, what a hosted runner pays to S3 in its region); a bounded pool of
`Config.write_jobs` threads pays about 200 / jobs of them. The store clients
are thread-safe (boto3's client is; the local store writes through unique
temporary files and an `flock`).

Only the network part runs in the pool: callers keep everything else (the
SQLite cache, the report) on their own thread, in item order, so the outcome
does not depend on which thread finished first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[R]):
    """What a batch did: results of the items that finished, by position, and the first error."""

    results: dict[int, R] = field(default_factory=dict)
    error: BaseException | None = None  # of the lowest position that failed


def run_each(work: Callable[[T], R], items: Sequence[T], jobs: int) -> Outcome[R]:
    """`work(item)` for every item, at most `jobs` at once.

    After the first failure no further item starts; those already running
    finish (an upload in flight cannot be recalled anyway), so `results` says
    exactly what reached the store. An exception in the caller's thread (a
    signal) cancels what has not started and waits for what has.
    """
    outcome: Outcome[R] = Outcome()
    if jobs <= 1 or len(items) <= 1:
        for position, item in enumerate(items):
            try:
                outcome.results[position] = work(item)
            except Exception as exc:
                outcome.error = exc
                break
        return outcome
    pool = ThreadPoolExecutor(min(jobs, len(items)), thread_name_prefix="writer")
    futures: list[Future[R]] = []
    try:
        futures = [pool.submit(work, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for position, future in enumerate(futures):
        if future.cancelled():
            continue
        error = future.exception()
        if error is None:
            outcome.results[position] = future.result()
        elif outcome.error is None:
            outcome.error = error
    return outcome
