"""Build small, valid conda artifacts and a sample channel.

Used by `make demo`, the tests and the benchmarks. Needs the `sample` extra
(conda-package-handling), which the indexer itself never imports.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson


def build_artifact(
    out_dir: str | os.PathLike[str],
    name: str,
    version: str = "1.0",
    build: str = "0",
    *,
    build_number: int = 0,
    subdir: str = "noarch",
    fmt: str = ".conda",
    run_exports: Any = None,
    depends: Sequence[str] = (),
    payload: bytes = b"",
    extra_info: Mapping[str, bytes] | None = None,
    index_extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<name>-<version>-<build><fmt>` into `out_dir` and return its path.

    `run_exports` may be a dict or list (written as JSON), raw `bytes` (written
    as is, to build malformed packages) or None (no info/run_exports.json).
    """
    from conda_package_handling import api  # the sample extra

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": build_number,
        "depends": list(depends),
        "subdir": subdir,
        "timestamp": 1700000000000,
        "license": "BSD-3-Clause",
        **(index_extra or {}),
    }
    files: dict[str, bytes] = {
        "info/index.json": orjson.dumps(index, option=orjson.OPT_SORT_KEYS),
        f"share/{name}/payload.bin": payload or f"{name} {version}\n".encode(),
        **(extra_info or {}),
    }
    if run_exports is not None:
        files["info/run_exports.json"] = (
            run_exports if isinstance(run_exports, bytes) else orjson.dumps(run_exports)
        )
    files["info/files"] = "\n".join(p for p in files if not p.startswith("info/")).encode()
    filename = f"{name}-{version}-{build}{fmt}"
    with tempfile.TemporaryDirectory(prefix="sample-artifact-") as prefix:
        for rel, data in files.items():
            path = Path(prefix, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        kwargs = {"compression_level": 1} if fmt == ".conda" else {}
        api.create(prefix, sorted(files), filename, out_folder=str(out), **kwargs)
    return out / filename


def build_sample_channel(root: str | os.PathLike[str]) -> Path:
    """A small channel: two subdirs, both formats, some run_exports, one corrupt artifact."""
    root = Path(root)
    linux, noarch = root / "linux-64", root / "noarch"
    pin = {"weak": ["libfoo >=1.2,<2.0a0"]}
    for fmt in (".conda", ".tar.bz2"):
        build_artifact(
            linux, "libfoo", "1.2.0", "h1_0", subdir="linux-64", fmt=fmt, run_exports=pin
        )
    build_artifact(
        linux,
        "libbar",
        "3.1",
        "h2_0",
        subdir="linux-64",
        run_exports={"strong": ["libbar >=3.1"], "weak_constrains": ["libbar-tools 3.1.*"]},
        depends=["libfoo >=1.2,<2.0a0"],
    )
    build_artifact(linux, "tool", "0.9", "0", subdir="linux-64", fmt=".tar.bz2")
    build_artifact(noarch, "pyhelper", "2.0", "py_0", run_exports=["pyhelper >=2.0"])
    build_artifact(noarch, "docs", "1.0", "0")
    (noarch / "broken-1.0-0.conda").write_bytes(b"this is not a zip file")
    return root
