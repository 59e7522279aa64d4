"""Where `--patches` instructions come from: a directory, a JSON file, or a package.

The edge of patching: local files and, for a bare package filename, the
channel's `noarch/` (`ChannelStore.stat` and `read`). Parsing and applying
the instructions is pure (`indexer.render.patches`). A patch-generator package
is untrusted input: bounded before anything is parsed.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

from conda_package_streaming import package_streaming

from indexer.config import Config
from indexer.errors import UsageError
from indexer.model import CONDA, LEGACY, Entry
from indexer.render.patches import (
    MAX_JSON_BYTES,
    PATCH_FILENAME,
    PatchInstructions,
    channel_instructions,
    parse_instructions,
    read_json,
    unknown_key_warnings,
)
from indexer.storage.base import ChannelStore

# A patch-generator package is untrusted input: bounded before anything is parsed.
MAX_PACKAGE_BYTES = 512 << 20


MAX_PACKAGE_MEMBERS = 20_000


MAX_PACKAGE_EXPANDED = 4 << 30  # sum of member sizes the stream may walk through


# conda-index looks for exactly `<subdir>/patch_instructions.json` (no `./`)
_MEMBER_RE = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9_]+)/patch_instructions\.json$")


def load_patches(path: str | os.PathLike[str], store: Any = None) -> dict[str, PatchInstructions]:
    """Instructions per subdir from `--patches PATH`; UsageError names what is wrong.

    PATH is a directory holding `<subdir>/patch_instructions.json`, one JSON
    file mapping subdir → instructions, or a patch-generator package
    (`.conda`/`.tar.bz2`). A bare package filename that is not a local file
    is read from the channel's `noarch/` (`store`).
    """
    text = os.fspath(path)
    root = Path(text)
    if root.is_dir():
        found = {}
        for file in sorted(root.glob(f"*/{PATCH_FILENAME}")):
            found[file.parent.name] = (read_json(file.read_bytes(), str(file)), str(file))
        if not found:
            raise UsageError(f"--patches: no */{PATCH_FILENAME} under {root}")
    elif text.endswith((CONDA, LEGACY)):
        found = _from_package(text, store)
    elif root.is_file():
        document = read_json(_read_file(root), str(root))
        if not isinstance(document, dict) or "patch_instructions_version" in document:
            raise UsageError(
                f"--patches: {root} must map subdir names to instructions "
                f'(e.g. {{"linux-64": {{"patch_instructions_version": 1, ...}}}})'
            )
        found = {subdir: (data, f"{root}: {subdir}") for subdir, data in document.items()}
    else:
        raise UsageError(f"--patches: {root} not found")
    # An empty document gives nothing: conda-index then applies the channel's own file
    # (`_write_or_load_instructions`), and so does the pipeline for such a subdir.
    return {
        subdir: parse_instructions(data, where)
        for subdir, (data, where) in found.items()
        if data != {}
    }


def _read_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UsageError(f"--patches: {path} is larger than {MAX_JSON_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--patches: cannot read {path}: {exc}") from None


def _from_package(text: str, store: Any) -> dict[str, tuple[Any, str]]:
    """`<subdir>/patch_instructions.json` of a patch-generator package's payload."""
    local = Path(text)
    if local.is_file():
        if local.stat().st_size > MAX_PACKAGE_BYTES:
            raise UsageError(f"--patches: {text} is larger than {MAX_PACKAGE_BYTES} bytes")
        data, where = local.read_bytes(), text
    elif "/" not in text and os.sep not in text and store is not None:
        where = f"noarch/{text} in {store.location}"
        entry = store.stat(f"noarch/{text}")
        if entry is None:
            raise UsageError(f"--patches: {text} is neither a file nor in the channel's noarch/")
        if entry.size > MAX_PACKAGE_BYTES:
            raise UsageError(f"--patches: {where} is larger than {MAX_PACKAGE_BYTES} bytes")
        data = store.read(f"noarch/{text}")
        if data is None:
            raise UsageError(f"--patches: {where} vanished while being read")
    else:
        raise UsageError(f"--patches: {text} not found")
    found: dict[str, tuple[Any, str]] = {}
    members = expanded = 0
    try:
        stream = package_streaming.stream_conda_component(
            text.rsplit("/", 1)[-1], io.BytesIO(data), component="pkg"
        )
        for tar, member in stream:
            members += 1
            expanded += max(member.size, 0)
            if members > MAX_PACKAGE_MEMBERS or expanded > MAX_PACKAGE_EXPANDED:
                raise UsageError(
                    f"--patches: {where} has more than {MAX_PACKAGE_MEMBERS} members or "
                    f"{MAX_PACKAGE_EXPANDED} bytes unpacked; not a patch package"
                )
            match = _MEMBER_RE.match(member.name)
            if not match or not member.isfile():
                continue
            if member.size > MAX_JSON_BYTES:
                raise UsageError(f"--patches: {where}: {member.name} is over {MAX_JSON_BYTES} B")
            reader = tar.extractfile(member)
            raw = reader.read() if reader is not None else b""
            found[match.group(1)] = (read_json(raw, f"{where}: {member.name}"), member.name)
    except UsageError:
        raise
    except Exception as exc:  # tarfile, zipfile, zstd, bz2: each raises its own types
        raise UsageError(f"--patches: cannot read {where}: {type(exc).__name__}: {exc}") from None
    if not found:
        raise UsageError(f"--patches: {where} holds no <subdir>/{PATCH_FILENAME}")
    return {subdir: (doc, f"{where}: {name}") for subdir, (doc, name) in found.items()}


def subdir_patches(
    store: ChannelStore, subdir: str, listing: list[Entry], config: Config
) -> tuple[PatchInstructions | None, list[str]]:
    """The instructions that apply to a subdir this run, and warnings about them.

    Given instructions for the subdir replace the channel's own file; where the
    given source has none for it (a patch package without that subdir, or an
    empty document), the channel's file applies, as conda-index falls back to it.
    """
    given = config.patches.get(subdir)
    if given is not None:
        return given, unknown_key_warnings(given, f"--patches ({subdir})")
    if not config.channel_patches or not any(e.name == PATCH_FILENAME for e in listing):
        return None, []
    path = f"{subdir}/{PATCH_FILENAME}"
    data = store.read(path)
    if data is None:  # deleted since the listing: the next run sees the new state
        return None, []
    return channel_instructions(data, path)
