"""Issue 13, acceptance 2: a differential fuzz of `read_info` against tarfile itself.

Seeded info tars in every tarfile format (ustar, GNU, pax with float mtimes,
as conda-package-handling 2 writes them), with directories, long and
non-ASCII names, links, duplicates, the `info` directory entry, payload
members in any order, then seeded damage to their headers and data
(including pax records hidden in a header's padding), wrapped as `.conda`
and `.tar.bz2`. The reference reader here streams the archive with
conda-package-streaming + tarfile and applies the selection rules (see
`reference`); `read_info` must give the same verdict and result for every
case.
"""

from __future__ import annotations

import bz2
import io
import json
import random
import re
import tarfile
import zipfile
from typing import Any

import zstandard
from conda_package_streaming import package_streaming

from indexer.read import info as artifact
from indexer.read.info import UnreadableArtifact, read_info

SEED = 20261201
CASES = 2000
FORMATS = (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)
WANTED = ("info/index.json", "info/run_exports.json")


def index_json(rng: random.Random) -> bytes:
    return rng.choice(
        [
            json.dumps({"name": "p", "version": "1", "build": "0"}).encode(),
            b"\xef\xbb\xbf" + json.dumps({"name": "p", "version": "1", "build": "0"}).encode(),
            b'{"name": "p", "version": "1", "build": "0", "n": 36893488147419103232}',
            b'{"name": "p", "version": "1", "build": "0", "n": NaN}',
        ]
    )


def tar_members(rng: random.Random) -> list[tuple[str, bytes | None, str]]:
    members: list[tuple[str, bytes | None, str]] = [("info/index.json", index_json(rng), "f")]
    if rng.random() < 0.6:
        members.append(
            ("info/run_exports.json", rng.choice([b'["x"]', b'{"weak": ["x"]}', b"[]"]), "f")
        )
    members += [
        ("info/about.json", b"{}" * rng.randint(0, 400), "f"),
        ("info/recipe", None, "d"),
        ("info/recipe/meta.yaml", b"a: 1\n", "f"),
    ]
    if rng.random() < 0.2:
        members.insert(0, ("info", None, "d"))
    if rng.random() < 0.3:  # ustar: a prefix; GNU: a long-name header; pax: a path record
        members.append(("info/" + "long/" * rng.randint(20, 40) + "name.txt", b"deep", "f"))
    if rng.random() < 0.2:
        members.append(("info/files-é-ü.txt", b"x", "f"))
    if rng.random() < 0.1:
        members.append(("info/run_exports.json", b"info/index.json", "l"))  # a symlink
    if rng.random() < 0.1:
        members.append((rng.choice(WANTED), b'["dup"]', "f"))
    if rng.random() < 0.5:
        members += [("lib/libp.so", rng.randbytes(600), "f"), ("bin/p", b"#!", "f")]
    if rng.random() < 0.7:
        rng.shuffle(members)
    return members


def build_tar(rng: random.Random) -> bytes:
    out = io.BytesIO()
    fmt = rng.choice(FORMATS)
    with tarfile.open(fileobj=out, mode="w|", format=fmt, encoding="utf-8") as tar:
        for name, data, kind in tar_members(rng):
            info = tarfile.TarInfo(name)
            info.mtime = rng.choice([1700000000, 1700000000.25])  # a float: a pax mtime record
            if kind == "d":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, (data or b"").decode()
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return out.getvalue()


def damage(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(
        ["none", "none", "flip-header", "flip", "truncate", "zero-block", "splice", "size", "pad"]
    )
    headers = [i for i in range(0, len(b) - 511, 512) if b[i + 257 : i + 262] == b"ustar"]
    if kind == "flip-header" and headers:
        at = rng.choice(headers) + rng.randrange(512)
        b[at] ^= 1 << rng.randrange(8)
    elif kind == "flip":
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del b[rng.randrange(len(b)) :]
    elif kind == "zero-block":
        at = rng.randrange(0, len(b), 512)
        b[at : at + 512] = bytes(len(b[at : at + 512]))
    elif kind == "splice":
        at = rng.randrange(len(b))
        b[at:at] = rng.randbytes(rng.randint(1, 600))
    elif kind == "size" and headers:
        at = rng.choice(headers) + 124
        b[at : at + 12] = rng.choice([b"77777777777\0", b"00000000001\0", b"\x80" + bytes(11)])
    elif kind == "pad":  # a record hidden after a pax header's declared size
        match = re.search(rb"\d+ mtime=[0-9.]+\n", bytes(b))
        if match:
            hidden = rng.choice(
                [b"30 path=info/run_exports.json\n", b"24 path=info/index.json\n", b"12 size=99\n"]
            )
            b[match.end() : match.end() + len(hidden)] = hidden
    return bytes(b)


def wrap(tar: bytes, rng: random.Random) -> tuple[str, bytes]:
    if rng.random() < 0.5:
        return "p-1-0.tar.bz2", bz2.compress(tar, 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b'{"conda_pkg_format_version": 2}')
        zf.writestr("pkg-p-1-0.tar.zst", zstandard.compress(b""))
        zf.writestr("info-p-1-0.tar.zst", zstandard.compress(tar))
    return "p-1-0.conda", out.getvalue()


def reference(filename: str, data: bytes) -> Any:
    """conda-package-streaming + tarfile over the archive, with our selection rules.

    Every member is taken in stream order; `info/index.json` and
    `info/run_exports.json` are collected wherever they are (non-regular
    copies as None). A `.tar.bz2` whose leading run of info members (`info`
    or `info/...`) holds index.json stops at the first member outside it, or
    once both are found there. One copy of each, or it is malformed.
    """
    found: dict[str, list[bytes | None]] = {name: [] for name in WANTED}
    tarbz2 = filename.endswith(".tar.bz2")
    leading = True
    try:
        for tar, member in package_streaming.stream_conda_info(filename, io.BytesIO(data)):
            inside = member.name == "info" or member.name.startswith("info/")
            if not inside:
                if tarbz2 and leading and found["info/index.json"]:
                    break
                leading = False
                continue
            if member.name in found:
                copy = tar.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
                found[member.name].append(copy)
                if tarbz2 and leading and all(found.values()):
                    break
    except Exception as exc:
        return artifact._describe(exc)
    try:
        copies = found["info/index.json"]
        if not copies:
            return "no info/index.json in the info part"
        if len(copies) > 1:
            return f"malformed: info/index.json appears {len(copies)} times"
        if copies[0] is None:
            return "info/index.json is not a regular file"
        record = artifact.parse_index_json(copies[0])
    except UnreadableArtifact as exc:
        return str(exc)
    record["size"] = len(data)
    exports = found["info/run_exports.json"]
    if not exports:
        return record, {}, None
    if len(exports) > 1:
        return record, None, f"malformed: info/run_exports.json appears {len(exports)} times"
    if exports[0] is None:
        return record, None, "info/run_exports.json is not a regular file"
    try:
        return record, artifact.parse_run_exports(exports[0]), None
    except ValueError as exc:
        return record, None, f"malformed info/run_exports.json: {exc}"


def ours(filename: str, data: bytes) -> Any:
    try:
        info = read_info(filename, io.BytesIO(data), len(data))
    except UnreadableArtifact as exc:
        return str(exc)
    return info.record, info.run_exports, info.run_exports_error


def test_read_info_agrees_with_tarfile() -> None:
    rng = random.Random(SEED)
    verdicts = {"indexed": 0, "unreadable": 0, "unknown": 0}
    for case in range(CASES):
        filename, data = wrap(damage(build_tar(rng), rng), rng)
        expected = reference(filename, data)
        got = ours(filename, data)
        assert got == expected, (case, filename)
        if isinstance(got, str):
            verdicts["unreadable"] += 1
        else:
            verdicts["unknown" if got[1] is None else "indexed"] += 1
    assert min(verdicts.values()) > CASES // 50, verdicts  # every verdict was exercised
