"""A synthetic conda channel shaped like a real one, built by hand and fast.

Shape: package names with several versions and several builds each, both
formats (mostly `.conda`), about 40% with `info/run_exports.json`, sizes drawn
from a log-normal (heavy-tailed: a median of a few MB, a few of hundreds of MB).

Payload bytes are random and incompressible. To keep generation cheap they are
slices of one pool of random bytes taken at random offsets (so no two 1 MiB
chunks of an artifact line up the same way within any compressor's window):

- `.conda`: a stored zip of `metadata.json`, `pkg-*.tar.zst` (the payload, as
  is: nobody but an installer decompresses it) and `info-*.tar.zst` (a real
  zstd tar of the info files), info last, as conda-package-handling writes it.
- `.tar.bz2`: a multi-stream bzip2 file: first a real stream holding the tar
  of `info/` (the part an indexer must read), then pre-compressed streams of
  tar members with random data, then one with the end-of-archive blocks.
  Concatenated bzip2 streams are one valid `.tar.bz2` to bzip2 and Python.
"""

from __future__ import annotations

import bz2
import io
import json
import math
import random
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import zstandard

MIB = 1 << 20
POOL_BYTES = 64 * MIB
ZSTD_LEVEL = 12  # info members; 19 (what packaging tools use) costs 1 ms per tiny artifact
SUBDIRS = ("linux-64", "osx-arm64", "noarch")
SUBDIR_WEIGHTS = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class Spec:
    """One artifact to generate."""

    subdir: str
    name: str
    version: str
    build: str
    build_number: int
    fmt: str  # ".conda" or ".tar.bz2"
    size: int  # payload bytes (the artifact is a little larger)
    run_exports: dict | None
    seed: int

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}{self.fmt}"

    @property
    def key(self) -> str:
        return f"{self.subdir}/{self.filename}"


def sizes(rng: random.Random, count: int, median: int, sigma: float, cap: int) -> list[int]:
    """`count` log-normal sizes with this median, clipped to [4 KiB, cap]."""
    mu = math.log(median)
    return [max(4096, min(cap, int(rng.lognormvariate(mu, sigma)))) for _ in range(count)]


def specs(
    count: int,
    *,
    seed: int,
    median: int,
    sigma: float = 1.0,
    cap: int = 64 * MIB,
    huge: tuple[int, ...] = (),
    tar_bz2_share: float = 0.15,
    name_prefix: str = "pkg",
    subdirs: tuple[str, ...] = SUBDIRS,
    weights: tuple[float, ...] = SUBDIR_WEIGHTS,
) -> list[Spec]:
    """`count` artifacts: names with 2-8 versions of 1-4 builds each; `huge` sizes replace some."""
    rng = random.Random(seed)
    drawn = sizes(rng, count, median, sigma, cap)
    for i, size in enumerate(huge):  # spread the few very large ones out
        drawn[(i * 7919 + 13) % count] = size
    out: list[Spec] = []
    n = 0
    while len(out) < count:
        name = f"{name_prefix}-{seed}-{n:05d}"
        n += 1
        subdir = rng.choices(subdirs, weights)[0]
        exports = _run_exports(rng, name) if rng.random() < 0.4 else None
        for v in range(rng.randint(2, 8)):
            version = f"{rng.randint(0, 3)}.{v}.{rng.randint(0, 20)}"
            for b in range(rng.randint(1, 4)):
                if len(out) == count:
                    break
                fmt = ".tar.bz2" if rng.random() < tar_bz2_share else ".conda"
                build = f"h{rng.getrandbits(32):08x}_{b}"
                i = len(out)
                out.append(
                    Spec(
                        subdir, name, version, build, b, fmt, drawn[i], exports, rng.getrandbits(32)
                    )
                )
    return out


def _run_exports(rng: random.Random, name: str) -> dict:
    """Dict forms only: rattler-index 0.28 aborts the whole run on a CEP-34 list form."""
    pin = f"{name} >=1.0,<2.0a0"
    if rng.random() < 0.75:
        return {"weak": [pin]}
    return {"strong": [pin], "weak_constrains": [f"{name}-dev >=1"]}


class Payload:
    """Random, incompressible bytes from a shared pool (cheap to draw)."""

    def __init__(self, seed: int = 1) -> None:
        self.pool = random.Random(seed).randbytes(POOL_BYTES)
        self.bz2_chunks = {  # pre-compressed tar members of random data, by payload size
            size: [
                _bz2_member(f"lib/blob{k}.bin", self.pool[k * size : (k + 1) * size])
                for k in range(8)
            ]
            for size in (64 * 1024, MIB)
        }

    def chunks(self, rng: random.Random, total: int) -> Iterator[bytes]:
        left = total
        while left > 0:
            n = min(MIB, left)
            start = rng.randrange(0, POOL_BYTES - n)
            yield self.pool[start : start + n]
            left -= n


def _bz2_member(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    out.write(info.tobuf(format=tarfile.PAX_FORMAT))
    out.write(data)
    out.write(b"\0" * (-len(data) % 512))
    return bz2.compress(out.getvalue(), 9)  # 900 kB blocks, as conda-build writes


def info_members(spec: Spec, rng: random.Random) -> list[tuple[str, bytes]]:
    """The info/ files: index.json, run_exports.json (40%), about.json, paths.json, files."""
    index = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build,
        "build_number": spec.build_number,
        "depends": ["libc >=2.17", f"python >=3.{rng.randint(8, 12)}"],
        "license": "BSD-3-Clause",
        "subdir": spec.subdir,
        "timestamp": 1_700_000_000_000 + spec.seed,
    }
    if spec.subdir == "noarch":
        index["noarch"] = "generic"
    else:
        index["arch"], index["platform"] = "x86_64", spec.subdir.split("-")[0]
    n_paths = max(1, min(400, spec.size // (256 * 1024)))
    paths = [
        {
            "_path": f"lib/{spec.name}/f{i}.so",
            "path_type": "hardlink",
            "sha256": rng.randbytes(32).hex(),
            "size_in_bytes": rng.randint(1, 1 << 20),
        }
        for i in range(n_paths)
    ]
    members = [("info/index.json", json.dumps(index).encode())]
    if spec.run_exports is not None:
        members.append(("info/run_exports.json", json.dumps(spec.run_exports).encode()))
    members += [
        (
            "info/about.json",
            json.dumps({"summary": f"{spec.name}, synthetic", "license": "BSD"}).encode(),
        ),
        ("info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode()),
        ("info/files", "\n".join(p["_path"] for p in paths).encode()),
    ]
    return members


_local = threading.local()


def _zstd() -> zstandard.ZstdCompressor:
    """One compressor per thread (creating one per artifact costs more than compressing)."""
    if not hasattr(_local, "zstd"):
        _local.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return _local.zstd


def _tar(members: list[tuple[str, bytes]], end: bool = True) -> bytes:
    out = io.BytesIO()
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out.write(info.tobuf(format=tarfile.PAX_FORMAT))
        out.write(data)
        out.write(b"\0" * (-len(data) % 512))
    if end:
        out.write(b"\0" * 1024)
    return out.getvalue()


def write_artifact(spec: Spec, payload: Payload, out: io.BufferedIOBase) -> int:
    """Write the artifact to `out` (seekable for `.conda`); return its info bytes.

    The info bytes are what an indexer cannot avoid reading: the compressed
    `info-*.tar.zst` member of a `.conda`, the first bzip2 stream of a `.tar.bz2`.
    """
    rng = random.Random(spec.seed)
    members = info_members(spec, rng)
    if spec.fmt == ".conda":
        stem = spec.filename[: -len(".conda")]
        info = _zstd().compress(_tar(members))
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
            with zf.open(
                f"pkg-{stem}.tar.zst", "w", force_zip64=spec.size >= zipfile.ZIP64_LIMIT
            ) as member:
                for chunk in payload.chunks(rng, spec.size):
                    member.write(chunk)
            zf.writestr(f"info-{stem}.tar.zst", info)
        return len(info)
    head = bz2.compress(_tar(members, end=False), 9)
    out.write(head)
    left = spec.size
    while left > 0:
        unit = MIB if left >= MIB else 64 * 1024
        out.write(rng.choice(payload.bz2_chunks[unit]))
        left -= unit
    out.write(bz2.compress(b"\0" * 1024, 1))
    return len(head)
