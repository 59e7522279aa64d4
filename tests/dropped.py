"""Packages an earlier version dropped while conda-index 0.13 indexes them (issue 12).

Built by hand with tarfile, deterministically: `info/` after the payload, a
binsort-like order (direct children of `info/` first, `info/recipe/…` among
the payload), the `info` directory entry first, a UTF-8 BOM before
index.json, an empty list-form run_exports. `EXPECTED` is the
run_exports.json entry conda-index 0.13 writes for each (checked against
conda-index itself by tests/test_core_reading.py when it is installed).
"""

from __future__ import annotations

import bz2
import io
import json
import tarfile
import zipfile
from pathlib import Path

import zstandard

BOM = b"\xef\xbb\xbf"
MTIME = 1700000000


def index_json(name: str, **extra: object) -> bytes:
    record = {"name": name, "version": "1.0", "build": "0", "build_number": 0, **extra}
    return json.dumps(record, sort_keys=True).encode()


def tar_bytes(members: list[tuple[str, bytes | None]]) -> bytes:
    """A tar of `members` in this order; None data is a directory entry."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def write_tar_bz2(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(tar_bytes(members), 9))
    return path


def write_conda(path: Path, info: list[tuple[str, bytes | None]]) -> Path:
    stem = path.name[: -len(".conda")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b'{"conda_pkg_format_version": 2}')
        zf.writestr(f"pkg-{stem}.tar.zst", zstandard.compress(tar_bytes([("lib/x", b"x")])))
        zf.writestr(f"info-{stem}.tar.zst", zstandard.compress(tar_bytes(info)))
    return path


PAYLOAD = [("lib/libp.so", b"\x7fELF" + bytes(3000)), ("bin/p", b"#!/bin/sh\n")]


def build(folder: Path) -> dict[str, dict]:
    """Write every case into `folder`; return filename → expected run_exports.json entry."""
    folder.mkdir(parents=True, exist_ok=True)
    exports = b'{"weak": ["dep >=1"]}'
    cases = {
        "after-payload-1.0-0.tar.bz2": [
            *PAYLOAD,
            ("info/index.json", index_json("after-payload")),
            ("info/run_exports.json", exports),
            ("info/about.json", b"{}"),
        ],
        "binsort-1.0-0.tar.bz2": [
            ("info/about.json", b"{}"),
            ("info/index.json", index_json("binsort")),
            ("info/run_exports.json", exports),
            PAYLOAD[0],
            ("info/recipe/meta.yaml", b"package: {name: binsort}\n"),
            PAYLOAD[1],
            ("info/licenses/LICENSE", b"BSD"),
        ],
        "infodir-1.0-0.tar.bz2": [
            ("info", None),
            ("info/index.json", index_json("infodir")),
            ("info/run_exports.json", exports),
            *PAYLOAD,
        ],
        "bom-1.0-0.tar.bz2": [
            ("info/index.json", BOM + index_json("bom")),
            ("info/run_exports.json", exports),
            *PAYLOAD,
        ],
        "emptylist-1.0-0.tar.bz2": [
            ("info/index.json", index_json("emptylist")),
            ("info/run_exports.json", b"[]"),
            *PAYLOAD,
        ],
    }
    expected = {}
    for filename, members in cases.items():
        write_tar_bz2(folder / filename, members)
        expected[filename] = {"run_exports": {} if "emptylist" in filename else json.loads(exports)}
    write_conda(
        folder / "bomc-1.0-0.conda",
        [
            ("info", None),
            ("info/index.json", BOM + index_json("bomc")),
            ("info/run_exports.json", exports),
        ],
    )
    expected["bomc-1.0-0.conda"] = {"run_exports": json.loads(exports)}
    return expected
