"""Files the container leaves in the workspace belong to the workspace's owner.

GitHub runs Docker actions as root, and the workspace is the host's checkout,
owned by the runner's user: a report, summary, cache or local channel output
written as root cannot be cleaned, edited or committed by later steps (or
the next job on a self-hosted runner). So, when running as root, what this
step wrote under GITHUB_WORKSPACE is handed to the owner of GITHUB_WORKSPACE.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


# File timestamps come from the kernel's coarse clock, a tick behind time.time().
CLOCK_SLACK_S = 0.1


def give_back(workspace: str, roots: Iterable[Path], since: float) -> int:
    """chown what this step wrote under `roots` (and their folders up to the
    workspace) to the workspace's owner; only as root, only inside the workspace.

    "Written by this step": owned by us and created or changed (ctime) since
    `since`, so a root-owned file some earlier step left is not touched.
    Returns how many entries changed owner. Never fails the step: a failure
    is a warning."""
    if not workspace or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return 0
    base = Path(workspace).resolve()
    try:
        owner = base.stat()
    except OSError:
        return 0
    if owner.st_uid == os.geteuid():
        return 0
    changed = 0
    seen: set[Path] = set()
    for root in roots:
        root = Path(os.path.realpath(Path(base, root)))  # a symlink out is not ours
        if not root.is_relative_to(base) or root == base:
            continue
        for path in [*_folders_between(base, root), *_walk(root)]:
            if path in seen:
                continue
            seen.add(path)
            changed += _chown_ours(path, owner.st_uid, owner.st_gid, since - CLOCK_SLACK_S)
    return changed


def _folders_between(base: Path, path: Path) -> list[Path]:
    """The folders from just under `base` down to `path`'s parent."""
    return [p for p in reversed(path.parents) if p.is_relative_to(base) and p != base]


def _walk(root: Path) -> Iterable[Path]:
    """`root` and, for a folder, everything under it (symlinks not followed)."""
    if not os.path.lexists(root):
        return
    yield root
    if root.is_dir() and not root.is_symlink():
        for folder, dirs, names in os.walk(root):
            for name in [*dirs, *names]:
                yield Path(folder, name)


def _chown_ours(path: Path, uid: int, gid: int, since: float) -> int:
    try:
        st = path.lstat()
        if st.st_uid != os.geteuid() or st.st_ctime < since:
            return 0
        os.lchown(path, uid, gid)
        return 1
    except OSError as exc:
        log.warning("could not hand %s to the workspace owner: %s", path, exc)
        return 0
