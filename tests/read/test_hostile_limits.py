"""Issue 13, acceptance 1: artifacts built to stop, exhaust or fool the reader.

Deep nesting in index.json and run_exports.json (300 and 1,100 levels), a
million-member info tar inside a .conda, a zstd bomb and a bz2 bomb, pax
records hidden in a header's padding, a zip-smuggled .conda, beside good
artifacts: each hostile one is reported (or indexed as tarfile reads it),
every good one is indexed, the run exits 0, and `python -m indexer index
--jobs 8` peaks under 400 MB of RSS (measured in the child: VmHWM at exit).
"""

from __future__ import annotations

import bz2
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import orjson
import zstandard
from dropped import index_json, tar_bytes, write_conda, write_tar_bz2

MAX_RSS_MB = 400
MIB = 2**20


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def million_members(path: Path) -> Path:
    """A .conda whose info tar has 1,000,000 empty members, then index.json (a few MB)."""
    stem = path.name[: -len(".conda")]
    header = tarfile.TarInfo("info/test/f").tobuf(tarfile.USTAR_FORMAT)  # one empty member
    tail = tar_bytes([("info/index.json", index_json("million"))])
    compressor = zstandard.ZstdCompressor(level=1)
    chunks = compressor.compressobj()
    parts = [chunks.compress(header * 10_000) for _ in range(100)]
    parts += [chunks.compress(tail), chunks.flush()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b"{}")
        zf.writestr(f"info-{stem}.tar.zst", b"".join(parts))
    return path


def zstd_bomb(path: Path) -> Path:
    """600 MiB of zeros in one info member before index.json, a few hundred kB compressed."""
    stem = path.name[: -len(".conda")]
    head = tarfile.TarInfo("info/bomb")
    head.size = 600 * MIB
    chunks = zstandard.ZstdCompressor(level=1).compressobj()
    parts = [chunks.compress(head.tobuf(tarfile.USTAR_FORMAT))]
    parts += [chunks.compress(bytes(MIB)) for _ in range(600)]
    parts += [
        chunks.compress(tar_bytes([("info/index.json", index_json("zbomb"))])),
        chunks.flush(),
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"info-{stem}.tar.zst", b"".join(parts))
    return path


def bz2_bomb(path: Path) -> Path:
    """A .tar.bz2 of 600 MiB of zeros before its info part: concatenated bzip2 streams."""
    head = tarfile.TarInfo("lib/bomb")
    head.size = 600 * MIB
    block = bz2.compress(bytes(50 * MIB), 9)  # ~100 bytes
    data = bz2.compress(head.tobuf(tarfile.USTAR_FORMAT)) + block * 12
    data += bz2.compress(tar_bytes([("info/index.json", index_json("bbomb"))]))
    path.write_bytes(data)
    return path


def pax_in_padding(path: Path) -> Path:
    """A path record hidden after a pax header's declared size: tarfile applies it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("info/index.json", index_json("paxpad")), ("info/decoy", b'["real"]')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if name == "info/decoy":
                info.pax_headers = {"comment": "x"}
            tar.addfile(info, io.BytesIO(data))
    data = bytearray(out.getvalue())
    record = b"13 comment=x\n"
    at = data.index(record)
    hidden = b"30 path=info/run_exports.json\n"
    data[at + len(record) : at + len(record) + len(hidden)] = hidden
    stem = path.name[: -len(".conda")]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"info-{stem}.tar.zst", zstandard.compress(bytes(data)))
    return path


def smuggled(path: Path) -> Path:
    """A local member the central directory does not list, in front of a valid .conda."""
    write_conda(path, [("info/index.json", index_json("smuggled"))])
    hidden = io.BytesIO()
    with zipfile.ZipFile(hidden, "w") as zf:
        zf.writestr(f"info-{path.name[:-6]}.tar.zst", b"decoy")
    prefix = hidden.getvalue()[: zipfile.ZipFile(hidden).start_dir]
    path.write_bytes(prefix + path.read_bytes())
    return path


def run_measured(*args: str) -> tuple[int, str, int]:
    """`python -m indexer ARGS` in a child; (status, stderr, peak RSS in MB of that process)."""
    code = (
        "import atexit, re, runpy, sys\n"
        "def peak():\n"
        "    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "    print('MAXRSS', hwm, file=sys.stderr)\n"
        "atexit.register(peak)\n"
        "sys.argv = ['indexer', *sys.argv[1:]]\n"
        "runpy.run_module('indexer', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    rss_kb = int(done.stderr.rsplit("MAXRSS", 1)[1].split()[0])
    return done.returncode, done.stderr, rss_kb // 1024


def index_bounded(root: Path, *extra: str) -> tuple[dict, str]:
    """Index the channel `root/ch` with `--jobs 8` in a child: exit 0, no traceback,
    peak RSS under MAX_RSS_MB; (the noarch report, stderr)."""
    report_path = root / "report.json"
    status, err, rss_mb = run_measured(
        "index",
        str(root / "ch"),
        "--cache-dir",
        str(root / "cache"),
        "--report",
        str(report_path),
        "--jobs",
        "8",
        *extra,
        "-q",
    )
    assert status == 0, err[-3000:]
    assert "Traceback" not in err
    assert rss_mb < MAX_RSS_MB, f"peak RSS {rss_mb} MB"
    print(f"peak RSS {rss_mb} MB")
    return orjson.loads(report_path.read_bytes())["subdirs"]["noarch"], err


def test_hostile_run_is_bounded(tmp_path: Path) -> None:
    noarch = tmp_path / "ch" / "noarch"
    good = {}
    for i in range(6):
        name = f"good{i}"
        exports = {"weak": [f"{name} >=1"]}
        members = [("info/index.json", index_json(name))]
        members.append(("info/run_exports.json", json.dumps(exports).encode()))
        if i % 2:
            write_tar_bz2(noarch / f"{name}-1.0-0.tar.bz2", [*members, ("lib/x", b"x")])
            good[f"{name}-1.0-0.tar.bz2"] = exports
        else:
            write_conda(noarch / f"{name}-1.0-0.conda", members)
            good[f"{name}-1.0-0.conda"] = exports
    unreadable: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for depth in (300, 1100):
        deep = b'{"name": "d", "version": "1", "build": "0", "x": ' + nested(depth) + b"}"
        write_conda(noarch / f"deepindex{depth}-1.0-0.conda", [("info/index.json", deep)])
        unreadable[f"deepindex{depth}-1.0-0.conda"] = "nested deeper than 32 levels"
        write_conda(
            noarch / f"deepre{depth}-1.0-0.conda",
            [
                ("info/index.json", index_json(f"deepre{depth}")),
                ("info/run_exports.json", b'{"schema_version": ' + nested(depth) + b"}"),
            ],
        )
        unknown[f"deepre{depth}-1.0-0.conda"] = "nested deeper than 32 levels"
    million_members(noarch / "million-1.0-0.conda")
    unreadable["million-1.0-0.conda"] = "tar members"
    zstd_bomb(noarch / "zbomb-1.0-0.conda")
    unreadable["zbomb-1.0-0.conda"] = "info part larger than"
    bz2_bomb(noarch / "bbomb-1.0-0.tar.bz2")
    unreadable["bbomb-1.0-0.tar.bz2"] = "info part larger than"
    smuggled(noarch / "smuggled-1.0-0.conda")
    unreadable["smuggled-1.0-0.conda"] = "local headers disagree"
    pax_in_padding(noarch / "paxpad-1.0-0.conda")

    artifacts = index_bounded(tmp_path, "--no-shards")[0]["artifacts"]
    reported = {p["filename"]: p["reason"] for p in artifacts["unreadable"]}
    unknown_got = {p["filename"]: p["reason"] for p in artifacts["run_exports_unknown"]}
    for filename, reason in unreadable.items():
        assert reason in reported.get(filename, ""), (filename, reported.get(filename))
    for filename, reason in unknown.items():
        assert reason in unknown_got.get(filename, ""), (filename, unknown_got.get(filename))
    document = json.loads((noarch / "run_exports.json").read_text())
    indexed = {**document["packages"], **document["packages.conda"]}
    for filename, exports in good.items():
        assert indexed[filename] == {"run_exports": exports}
    # what tarfile (conda, conda-index) sees: the record hidden in the padding renames the member
    assert indexed["paxpad-1.0-0.conda"] == {"run_exports": {"weak": ["real"]}}
    assert set(indexed) == {*good, "paxpad-1.0-0.conda"}  # unknown run_exports: left out
