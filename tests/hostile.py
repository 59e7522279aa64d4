"""Build hostile artifacts: seeded mutations of valid ones, and crafted attacks.

Every function is deterministic for a given seed, so a failing case can be
rebuilt exactly.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
import zipfile
from pathlib import Path

import zstandard


class Zeros(io.RawIOBase):
    """`size` zero bytes, produced lazily (a bomb costs no memory to build)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b"\0" * n
        self.left -= n
        return n


def write_tar(fileobj, members: list[tuple[str, bytes | int]]) -> None:
    """Stream a tar into `fileobj`; an int member is that many zero bytes."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, int):
                info.size = data
                tar.addfile(info, Zeros(data))
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def write_conda(path: Path, info_members: list[tuple[str, bytes | int]]) -> Path:
    """A `.conda` whose info part holds exactly `info_members` (streamed zstd)."""
    stem = path.name[: -len(".conda")]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        empty = io.BytesIO()
        write_tar(empty, [])
        zf.writestr(
            f"pkg-{stem}.tar.zst", zstandard.ZstdCompressor(level=1).compress(empty.getvalue())
        )
        with (
            zf.open(f"info-{stem}.tar.zst", "w", force_zip64=True) as member,
            zstandard.ZstdCompressor(level=1).stream_writer(member, closefd=False) as z,
        ):
            write_tar(z, info_members)
    return path


def index_json(name: str, version: str = "1.0", build: str = "0") -> bytes:
    return json.dumps(
        {"name": name, "version": version, "build": build, "build_number": 0}
    ).encode()


def crafted(folder: Path) -> dict[str, str]:
    """Hand-made attacks → what the reason must mention ("" when any reason will do)."""
    cases = {}

    def add(filename: str, members, expect: str) -> None:
        write_conda(folder / filename, members)
        cases[filename] = expect

    add(
        "bomb-1.0-0.conda",
        [("info/bomb", 600 * 2**20), ("info/index.json", index_json("bomb"))],
        "info part larger than",
    )
    add("bigindex-1.0-0.conda", [("info/index.json", 20 * 2**20)], "over the limit")
    add(
        "manymembers-1.0-0.conda",
        [*((f"info/test/f{i}", b"x") for i in range(10_000)), ("info/run_exports.json", b"[1]")],
        "no info/index.json",
    )
    add(
        "traversal-1.0-0.conda",
        [("info/../../../etc/index.json", index_json("x"))],
        "no info/index.json",
    )
    add("notutf8-1.0-0.conda", [("info/index.json", b'{"name": "\xff\xfe"}')], "not valid JSON")
    add("indexlist-1.0-0.conda", [("info/index.json", b"[1, 2]")], "not a JSON object")
    add("noversion-1.0-0.conda", [("info/index.json", b'{"name": "n", "build": "0"}')], "'version'")
    return cases


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded damage to an artifact's bytes: (what was done, new bytes)."""
    kind = rng.choice(["truncate", "bitflip", "magic", "zeroes", "splice", "declared-size"])
    b = bytearray(data)
    if kind == "truncate":
        return kind, bytes(b[: rng.randrange(0, len(b))])
    if kind == "bitflip":
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return kind, bytes(b)
    if kind == "magic":
        b[:4] = rng.randbytes(4)
        return kind, bytes(b)
    if kind == "zeroes":
        start = rng.randrange(len(b))
        end = min(len(b), start + rng.randint(1, 4096))
        b[start:end] = bytes(end - start)
        return kind, bytes(b)
    if kind == "splice":
        start = rng.randrange(len(b))
        return kind, bytes(b[:start] + rng.randbytes(rng.randint(1, 512)) + b[start:])
    # declared-size: write a huge number where sizes live (zip headers / tar size fields)
    for _ in range(4):
        i = rng.randrange(max(1, len(b) - 8))
        b[i : i + 8] = rng.choice([b"\xff" * 8, b"77777777", (2**40).to_bytes(8, "little")])
    return kind, bytes(b)


def write_tar_bz2(path: Path, members: list[tuple[str, bytes]]) -> Path:
    import bz2

    with bz2.open(path, "wb", compresslevel=1) as fh:
        write_tar(fh, members)
    return path


RUN_EXPORTS_FORMS = [None, b'{"weak": ["x >=1"]}', b'["x"]', b'{"strong": ["x"], "weak": []}']


def valid_artifact(folder: Path, i: int, rng: random.Random) -> tuple[Path, bytes | None]:
    """A small valid artifact with a unique name (built by hand: fast)."""
    fmt = rng.choice([".conda", ".tar.bz2"])
    name = f"mut{i:03d}"
    exports = rng.choice(RUN_EXPORTS_FORMS)
    members = [("info/index.json", index_json(name))]
    if exports is not None:
        members.append(("info/run_exports.json", exports))
    members.append(("info/about.json", b'{"summary": "fuzz"}'))
    path = folder / f"{name}-1.0-0{fmt}"
    if fmt == ".conda":
        write_conda(path, members)
    else:
        write_tar_bz2(path, [*members, ("lib/payload", rng.randbytes(2048))])
    return path, exports
