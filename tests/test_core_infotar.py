"""infotar reads an info tar exactly as tarfile does, or declines and tarfile reads it.

Seeded info tars in every tarfile format (ustar, GNU, pax with float mtimes
as conda-package-handling 2 writes them), with directories, long and
non-ASCII names, links and non-info members, then seeded damage to their
headers and data. Whatever infotar accepts must be member for member what
tarfile reads; and `read_info` gives the same verdict with and without it.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hostile import crafted

from indexer import artifact, infotar
from indexer.artifact import UnreadableArtifact, read_info

SEED = 20261124
CASES = 1000
FORMATS = (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)


def info_tar(rng: random.Random) -> bytes:
    members: list[tuple[str, bytes | None, str]] = [
        ("info/index.json", json.dumps({"name": "p", "version": "1", "build": "0"}).encode(), "f")
    ]
    if rng.random() < 0.5:
        members.append(("info/run_exports.json", rng.choice([b'["x"]', b'{"weak": ["x"]}']), "f"))
    members += [
        ("info/about.json", b"{}" * rng.randint(0, 400), "f"),
        ("info/recipe", None, "d"),
        ("info/recipe/meta.yaml", b"a: 1\n", "f"),
        ("info/empty", b"", "f"),
    ]
    if rng.random() < 0.3:  # ustar: a prefix; GNU: a long-name header; pax: a path record
        members.append(("info/" + "long/" * rng.randint(20, 40) + "name.txt", b"deep", "f"))
    if rng.random() < 0.3:
        members.append(("info/files-é-ü.txt", b"x", "f"))
    if rng.random() < 0.2:
        members.append(("info/run_exports.json", b"info/index.json", "l"))  # a symlink
    if rng.random() < 0.2:
        members.insert(1, ("lib/libp.so", rng.randbytes(3000), "f"))
    rng.shuffle(members[1:])
    out = io.BytesIO()
    fmt = rng.choice(FORMATS)
    with tarfile.open(fileobj=out, mode="w|", format=fmt, encoding="utf-8") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.mtime = rng.choice([1700000000, 1700000000.25])  # a float: a pax mtime record
            if kind == "d":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, data.decode()  # type: ignore[union-attr]
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return out.getvalue()


def damage(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(["none", "flip-header", "flip", "truncate", "zero-block", "splice", "size"])
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
    return bytes(b)


def by_tarfile(data: bytes) -> list[tuple[str, int, bool, bytes]] | str:
    """Every member as conda-package-streaming's tar stream yields it, or the error."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8") as tar:
            return [
                (m.name, m.size, m.isfile(), tar.extractfile(m).read(m.size) if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar
            ]
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def conda_bytes(stem: str, tar: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b'{"conda_pkg_format_version": 2}')
        zf.writestr(f"pkg-{stem}.tar.zst", zstandard.ZstdCompressor().compress(b""))
        zf.writestr(f"info-{stem}.tar.zst", zstandard.ZstdCompressor(level=3).compress(tar))
    return out.getvalue()


def outcome(name: str, data: bytes) -> Any:
    try:
        return read_info(name, io.BytesIO(data), len(data))
    except UnreadableArtifact as exc:
        return str(exc)


def test_accepted_tars_read_exactly_as_tarfile_reads_them() -> None:
    rng = random.Random(SEED)
    accepted = declined = 0
    for _ in range(CASES):
        data = damage(info_tar(rng), rng)
        try:
            ours = [
                (m.name, m.size, m.isfile, data[m.offset : m.offset + m.size] if m.isfile else b"")
                for m in infotar.members(data)
            ]
        except infotar.NotPlain:
            declined += 1
            continue
        accepted += 1
        assert ours == by_tarfile(data)
    assert accepted > CASES // 5 and declined > CASES // 10  # both paths were exercised


def test_read_info_gives_the_verdict_of_the_tarfile_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = random.Random(SEED + 1)
    cases = []
    for i in range(CASES):
        stem = f"p{i}-1-0"
        cases.append((f"{stem}.conda", conda_bytes(stem, damage(info_tar(rng), rng))))
    for name in crafted(tmp_path):  # bomb, oversized index.json, 10,000 members, ...
        cases.append((name, (tmp_path / name).read_bytes()))
    fast = [outcome(name, data) for name, data in cases]
    monkeypatch.setattr(artifact, "_small_info", lambda zf, member: None)  # tarfile only
    slow = [outcome(name, data) for name, data in cases]
    assert fast == slow
    assert sum(isinstance(o, str) for o in fast) > 10  # damage that matters was among them


def test_real_packages_take_the_fast_path(tmp_path: Path) -> None:
    """What conda-package-handling 2 and older conda-build write is read without tarfile."""
    from indexer.sample import build_artifact

    path = build_artifact(tmp_path, "fast", run_exports=["x"])
    with zipfile.ZipFile(path) as zf:
        [member] = [i for i in zf.infolist() if i.filename.startswith("info-")]
        data = artifact._small_info(zf, member)
    assert data is not None
    names = [m.name for m in infotar.members(data)]
    assert "info/index.json" in names and "info/run_exports.json" in names
