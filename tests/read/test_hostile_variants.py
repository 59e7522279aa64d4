"""Issue 13: more shapes built to exhaust the run, each bounded and reported.

Global pax records that tarfile keeps for the whole archive, a `.conda`
whose zip directory lists a hundred thousand entries, a planted shard index
and a planted `repodata.json.zst` that decompress to 100 MiB, a symlink loop
named like an artifact: beside good artifacts, the run exits 0 and peaks
under 400 MB with `--jobs 8`. And a zstd stream of skippable frames, which a
decompressor walks inside one read that returns nothing, meets the deadline.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import orjson
import pytest
import zstandard
from dropped import index_json, tar_bytes, write_conda
from test_hostile_limits import index_bounded

from indexer.read import info as artifact
from indexer.read.info import UnreadableArtifact, read_info

MIB = 2**20


def global_pax(seq: int, size: int = 60 * 1024) -> bytes:
    """One 'g' header holding `size` bytes of records (tarfile keeps them all)."""
    records, total, i = [], 0, 0
    while total < size:
        body = f" g{seq}_{i}=\n"
        length = len(body) + len(str(len(body) + 2))
        records.append(f"{length}{body}")
        total += length
        i += 1
    payload = "".join(records).encode()
    info = tarfile.TarInfo(f"././@PaxHeader{seq}")
    info.type, info.size = tarfile.XGLTYPE, len(payload)
    return info.tobuf(tarfile.USTAR_FORMAT) + payload + bytes(-len(payload) % 512)


def pax_pile(path: Path, headers: int = 40) -> Path:
    """A .conda whose info tar has a global pax header before each of `headers` members."""
    parts = []
    for k in range(headers):
        parts.append(global_pax(k))
        parts.append(tarfile.TarInfo(f"info/f{k}").tobuf(tarfile.USTAR_FORMAT))
    parts.append(tar_bytes([("info/index.json", index_json(path.name.split("-")[0]))]))
    return _conda(path, zstandard.compress(b"".join(parts)))


def many_entries(path: Path, entries: int) -> Path:
    """A .conda whose zip directory lists `entries` tiny members besides the usual ones."""
    write_conda(path, [("info/index.json", index_json("many"))])
    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as zf:
        for k in range(entries):
            zf.writestr(f"x{k}", b"")
    return path


def _conda(path: Path, info_zst: bytes) -> Path:
    stem = path.name[: -len(".conda")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b"{}")
        zf.writestr(f"info-{stem}.tar.zst", info_zst)
    return path


def msgpack_bomb(entries: int) -> bytes:
    """A few KiB of zstd: one msgpack array header asking for `entries` nils, and them."""
    packed = b"\xdd" + entries.to_bytes(4, "big") + b"\xc0" * entries
    return zstandard.ZstdCompressor(level=3).compress(packed)


def json_bomb(size: int) -> bytes:
    document = b'{"packages": {}, "x": [' + b"null," * (size // 5) + b"null]}"
    return zstandard.ZstdCompressor(level=3).compress(document)


def test_more_hostile_shapes_stay_bounded(tmp_path: Path) -> None:
    noarch = tmp_path / "ch" / "noarch"
    good = {}
    for i in range(4):
        name = f"good{i}"
        exports = {"weak": [f"{name} >=1"]}
        members = [("info/index.json", index_json(name))]
        write_conda(
            noarch / f"{name}-1.0-0.conda",
            [*members, ("info/run_exports.json", orjson.dumps(exports))],
        )
        good[f"{name}-1.0-0.conda"] = exports
    for i in range(4):
        pax_pile(noarch / f"paxg{i}-1.0-0.conda")
    many_entries(noarch / "many-1.0-0.conda", 100_000)
    (noarch / "loop-1.0-0.conda").symlink_to("loop-1.0-0.conda")
    (noarch / "repodata_shards.msgpack.zst").write_bytes(msgpack_bomb(100 * MIB))
    (noarch / "repodata.json.zst").write_bytes(json_bomb(100 * MIB))
    subdir, err = index_bounded(tmp_path)
    reported = {p["filename"]: p["reason"] for p in subdir["artifacts"]["unreadable"]}
    for i in range(4):
        assert "global pax records" in reported[f"paxg{i}-1.0-0.conda"]
    assert "zip directory lists 100,00" in reported["many-1.0-0.conda"]
    assert any("loop-1.0-0.conda: skipped" in w for w in subdir["warnings"]), subdir["warnings"]
    assert "repodata.json.zst" in err and "larger than" in err  # ignored, said why
    assert "repodata_shards.msgpack.zst is unreadable (decompressed size over" in err  # replaced
    document = json.loads((noarch / "run_exports.json").read_text())
    indexed = {**document["packages"], **document["packages.conda"]}
    assert indexed == {name: {"run_exports": exports} for name, exports in good.items()}


def test_skippable_zstd_frames_meet_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames a decompressor skips inside one read: the compressed side keeps time."""
    monkeypatch.setattr(artifact, "MAX_SECONDS", 0.2)
    skippable = b"\x50\x2a\x4d\x18" + bytes(4)  # a skippable frame with no content
    info = skippable * 400_000 + zstandard.compress(
        tar_bytes([("info/index.json", index_json("frames"))])
    )
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b"{}")
        zf.writestr("info-frames-1.0-0.tar.zst", info)
    with pytest.raises(UnreadableArtifact, match="reading took more than"):
        read_info("frames-1.0-0.conda", data, len(data.getvalue()))


def test_an_info_member_too_large_compressed_is_refused(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(artifact, "MAX_INFO_COMPRESSED", 1024)
    path = _conda(tmp_path / "big-1.0-0.conda", os.urandom(4096))
    with pytest.raises(UnreadableArtifact, match="compressed"):
        read_info(path.name, path.open("rb"), path.stat().st_size)
