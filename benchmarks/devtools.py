"""Where the sample-channel and SeaweedFS helpers live, whatever the package layout.

They are moving from `indexer/` to a top-level `dev/` package (issue 14); the
benchmarks import them only through `dev_module`, so either layout works.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def dev_module(name: str) -> ModuleType:
    """`dev.<name>` if that package has it, else `indexer.<name>`."""
    for package in ("dev", "indexer"):
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name not in (package, f"{package}.{name}"):
                raise  # the module exists but something it imports is missing
    raise ModuleNotFoundError(f"neither dev.{name} nor indexer.{name}", name=name)
