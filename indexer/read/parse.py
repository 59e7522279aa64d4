"""The JSON of an artifact's info/, read as conda reads it, bounded: pure, no I/O.

`info/index.json` and `info/run_exports.json` come from untrusted artifacts;
the cache, patch instructions and the reading stage all parse them the same
way, so the rules live here once.
"""

from __future__ import annotations

import json
import math
from typing import Any

INDEX_JSON = "info/index.json"


RUN_EXPORTS_JSON = "info/run_exports.json"


class UnreadableArtifact(Exception):
    """The artifact cannot be indexed; the message says why."""

    read_in_full = False  # set when a .tar.bz2 was read on because info/ was not first


# What 64 bits hold (signed minimum .. unsigned maximum), as orjson and msgpack write.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
# JSON nesting (a list or object is a level): real files have 3 or 4.
MAX_DEPTH = 32


# index.json fields that do not belong in repodata (as conda-index drops them).
DROPPED_FIELDS = frozenset(
    {
        "arch",
        "has_prefix",
        "mtime",
        "platform",
        "ucs",
        "requires_features",
        "binstar",
        "target-triplet",
        "machine",
        "operatingsystem",
    }
)


# -- JSON, as conda reads it -----------------------------------------------------
class _Refused(ValueError):
    """Valid for `json`, but not something we can publish as read."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a finite number")


def load_json(data: bytes) -> Any:
    """`json.loads(data)` as conda does it, refusing what we could not publish as read.

    Raises ValueError with a one-line reason: invalid JSON (a UTF-8 BOM is
    fine, as `json` detects it), `NaN`/`Infinity`, a number that overflows to
    infinity, an integer outside 64 bits, a string with a lone surrogate, or
    nesting deeper than `MAX_DEPTH` (the cache, msgpack and the shard sorter
    recurse; `json` itself gives up near 1,000 levels).
    """
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels") from None
    except _Refused:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over 4300 digits
        raise ValueError(f"not valid JSON ({_one_line(exc)})") from None
    check_value(value)
    return value


def check_value(value: Any) -> None:
    """ValueError (one line) for what `load_json` refuses in an already parsed value."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                raise _Refused(f"integer {_short(item)} does not fit in 64 bits")
        elif isinstance(item, float) and not math.isfinite(item):
            raise _Refused("a number too large for a double (it reads as infinity)")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused("a string holds a lone surrogate (not valid Unicode)") from None


def _short(number: int) -> str:
    digits = str(number)
    return digits if len(digits) <= 30 else f"{digits[:12]}…({len(digits)} digits)"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def parse_index_json(data: bytes) -> dict[str, Any]:
    """index.json as a repodata record: conda-index's filtered fields."""
    try:
        raw = load_json(data)
    except _Refused as exc:
        raise UnreadableArtifact(f"{INDEX_JSON} is malformed: {exc}") from None
    except ValueError as exc:
        raise UnreadableArtifact(f"{INDEX_JSON} is {exc}") from None
    if not isinstance(raw, dict):
        raise UnreadableArtifact(f"{INDEX_JSON} is not a JSON object")
    for field in ("name", "version", "build"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise UnreadableArtifact(f"{INDEX_JSON} has no valid {field!r}")
    return {k: v for k, v in raw.items() if k not in DROPPED_FIELDS}


def parse_run_exports(data: bytes) -> dict[str, Any]:
    """run_exports as CEP-12 writes them; ValueError says what is malformed.

    A non-empty list means `{"weak": list}` (CEP-34); an empty one `{}`, as
    conda-index writes it. A dict is kept as written; each known key must
    hold a list of strings (`schema_version` is left alone). Any other false
    value (`null`, `false`, `0`, `""`) means none, as conda-index reads it
    (`run_exports or {}`).
    """
    value = load_json(data)
    if not value and not isinstance(value, dict | list):
        return {}
    if isinstance(value, list):
        _check_specs("weak", value)
        return {"weak": value} if value else {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a list or an object, found {type(value).__name__}")
    for key, specs in value.items():
        if key == "schema_version":
            continue
        _check_specs(key, specs)
    return value


def _check_specs(key: str, specs: Any) -> None:
    if not isinstance(specs, list):
        raise ValueError(f"{key!r} must be a list of match specs, found {type(specs).__name__}")
    for spec in specs:
        if not isinstance(spec, str):
            raise ValueError(f"{key!r} must hold match-spec strings, found {type(spec).__name__}")
