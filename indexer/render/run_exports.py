"""Render a subdir's outputs from the cache: pure, byte-deterministic.

`run_exports.json` is CEP-12 exactly as conda-index 0.13 writes it: compact,
keys sorted, ASCII-escaped, no trailing newline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import zstandard

from indexer.model import SECTIONS, ZSTD_TYPE, CachedArtifact, Output, section_of

RUN_EXPORTS_VERSION = 1
# 16, not 19: on a 4.4 MB run_exports.json (60,000 artifacts) level 19 takes
# 1.7 s and ~80 MB of match tables for a file 2% smaller than level 16's
# (0.4 s, ~33 MB). The level is part of the output's identity (see `zst_output`),
# so changing it rewrites each `.zst` once.
ZSTD_LEVEL = 16
_NOT_PRINTABLE_ASCII = re.compile(rb"[^\x20-\x7e]")
# A float in exponent form (orjson writes 1e-7 where json writes 1e-07). In
# compact output every number follows `:`, `,` or `[`; looking only there keeps
# build strings such as "h1e4f0a2b_0" inside filenames from matching (they did,
# sending every real-sized document through the slow `json` path).
_EXPONENT = re.compile(rb"[:,\[]-?[0-9]+(?:\.[0-9]+)?e[-+]?[0-9]")


def dumps_compact(data: Any) -> bytes:
    """`json.dumps(data, sort_keys=True, separators=(",", ":"))`, fast.

    orjson agrees with the standard library byte for byte on printable ASCII
    strings and ordinary numbers; anything else (non-ASCII, control characters,
    DEL, exponents, integers past 64 bits) goes through `json`, rare as it is.
    """
    try:
        out = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits: only `json` writes them
        out = None
    if out is not None and not _NOT_PRINTABLE_ASCII.search(out) and not _EXPONENT.search(out):
        return out
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def compress(data: bytes) -> bytes:
    """zstd with a fixed level and the content size recorded: same input, same bytes."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(data)


def zst_output(path: str, data: bytes) -> Output:
    """`path` holding `compress(data)`, compressed only if it has to be written."""
    return Output.derived(path, data, f"zstd-{ZSTD_LEVEL}", compress, ZSTD_TYPE)


def by_format(
    artifacts: Iterable[CachedArtifact], entry: Callable[[CachedArtifact], Any | None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`packages`, `packages.conda`): filename → entry(artifact), None entries left out."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for artifact in artifacts:
        value = entry(artifact)
        if value is not None:
            sections[section_of(artifact.filename)][artifact.filename] = value
    return sections[SECTIONS[0]], sections[SECTIONS[1]]


def run_exports_entry(artifact: CachedArtifact) -> dict[str, Any] | None:
    """An artifact's entry in run_exports.json; None for unreadable or unknown ones."""
    if artifact.readable and artifact.run_exports is not None:
        return {"run_exports": artifact.run_exports}
    return None


def run_exports_sections(
    subdir: str, packages: dict[str, Any], packages_conda: dict[str, Any]
) -> dict[str, Any]:
    """The CEP-12 document around its two sections."""
    return {
        "info": {"subdir": subdir, "version": RUN_EXPORTS_VERSION},
        "packages": packages,
        "packages.conda": packages_conda,
    }


def run_exports_document(subdir: str, artifacts: Iterable[CachedArtifact]) -> dict[str, Any]:
    """CEP-12 run_exports data: every readable artifact with known run_exports."""
    return run_exports_sections(subdir, *by_format(artifacts, run_exports_entry))


def run_exports_json(subdir: str, artifacts: Iterable[CachedArtifact]) -> bytes:
    """The bytes of `<subdir>/run_exports.json`."""
    return dumps_compact(run_exports_document(subdir, artifacts))
