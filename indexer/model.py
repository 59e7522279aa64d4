"""An artifact's index.json record as the cache stores it: JSON bytes, parsed on use.

A cold run over 100,000 artifacts renders from every cached row at once. As
Python dicts the records take ~1.2 KB each; as the JSON the cache already
holds, ~0.4 KB. `Record` is a read-only mapping over those bytes that parses
them when asked, remembering only the three fields looked up over and over
(name, version, build_number: grouping and ordering builds). Anything that
wants a dict to change takes `dict(record)` or `record.parse()`.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any

import orjson

_HEAD = ("name", "version", "build_number")
_MISSING = object()


class Record(Mapping[str, Any]):
    """A read-only index.json record over its JSON bytes."""

    __slots__ = ("_head", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._head: tuple[Any, ...] | None = None

    def parse(self) -> dict[str, Any]:
        """A fresh dict of the whole record."""
        return orjson.loads(self.raw)

    def __getitem__(self, key: str) -> Any:
        if key in _HEAD:
            if self._head is None:
                parsed = self.parse()
                self._head = tuple(parsed.get(k, _MISSING) for k in _HEAD)
            value = self._head[_HEAD.index(key)]
            if value is _MISSING:
                raise KeyError(key)
            return value
        return self.parse()[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self.parse())

    def __len__(self) -> int:
        return len(self.parse())

    def __bool__(self) -> bool:
        return self.raw != b"{}"

    def __contains__(self, key: object) -> bool:
        return key in self.parse()

    def keys(self) -> KeysView[str]:
        return self.parse().keys()

    def items(self) -> ItemsView[str, Any]:
        return self.parse().items()

    def values(self) -> ValuesView[Any]:
        return self.parse().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self.raw == other.raw or self.parse() == other.parse()
        if isinstance(other, Mapping):
            return self.parse() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a mapping: unhashable, like dict

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return self.parse()

    def __repr__(self) -> str:
        return f"Record({self.raw!r})"


def as_dict(record: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh dict of any record: one parse for a `Record` (`dict(record)` would
    parse it once per key)."""
    return record.parse() if isinstance(record, Record) else dict(record)
