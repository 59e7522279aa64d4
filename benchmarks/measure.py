"""Run one command and measure it: `python -m benchmarks.measure OUT.json -- CMD...`.

This wrapper is a fresh, small process, so its children inherit no large
high-water mark (`ru_maxrss` carries the parent's across vfork+exec). It
reports, as JSON in OUT.json:

- `wall_s`: from just before the spawn to the command's exit;
- `maxrss_mb`: `getrusage(RUSAGE_CHILDREN).ru_maxrss`, the peak RSS of the
  largest single process of the tree (exact, kernel-kept);
- `tree_rss_mb`: the peak of the summed RSS of the whole process tree, sampled
  from /proc every 20 ms (what matters when a contender forks workers);
- `peak_rss_mb`: the larger of the two; `returncode`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
INTERVAL_S = 0.02


def _children() -> dict[int, list[int]]:
    """parent pid → child pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(root: int) -> int:
    """Summed resident bytes of `root` and all its descendants."""
    tree = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def measure(command: list[str], env: dict[str, str] | None = None) -> dict:
    """Run `command` to completion; wall time and peak memory as a dict."""
    peak = 0
    started = time.monotonic()
    process = subprocess.Popen(command, env=env)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            done.wait(INTERVAL_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    returncode = process.wait()
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "wall_s": wall,
        "maxrss_mb": maxrss / 1e6,
        "tree_rss_mb": peak / 1e6,
        "peak_rss_mb": max(maxrss, peak) / 1e6,
        "returncode": returncode,
    }


def main(argv: list[str]) -> int:
    out, sep, *command = argv
    if sep != "--" or not command:
        print("usage: python -m benchmarks.measure OUT.json -- CMD...", file=sys.stderr)
        return 2
    result = measure(command)
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
