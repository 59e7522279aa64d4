"""Issues 12 and 13: reading one artifact's info part as conda and conda-index read it.

Every package conda-index 0.13 indexes is indexed (info/ after the payload,
a binsort-like order, the `info` directory entry first, a BOM), locally and
over S3, with the entry conda-index writes; JSON that could not be published
as read is reported; duplicates are malformed; a filename that is not
index.json's is linted and reported; each per-artifact limit is reported as
the reason; a zip whose local headers and central directory disagree is
reported, not indexed.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import dropped
import orjson
import pytest
import zstandard
from dropped import index_json, tar_bytes, write_conda, write_tar_bz2
from s3server import S3Endpoint, upload_tree

from indexer.read import info as artifact
from indexer.read.info import UnreadableArtifact, read_info

REPO = Path(__file__).resolve().parents[2]


def outcome(path: Path) -> Any:
    try:
        return read_info(path.name, io.BytesIO(path.read_bytes()), path.stat().st_size)
    except UnreadableArtifact as exc:
        return str(exc)


def published(channel: Path, subdir: str = "noarch") -> dict[str, Any]:
    document = json.loads((channel / subdir / "run_exports.json").read_text())
    return {**document["packages"], **document["packages.conda"]}


def index(run_cli, channel: Path | str, tmp: Path, *args: str) -> tuple[int, dict, str]:
    report = tmp / "report.json"
    report.unlink(missing_ok=True)
    status, _, err = run_cli("index", channel, "--report", report, *args)
    return status, orjson.loads(report.read_bytes()), err


# -- packages conda-index reads ------------------------------------------------------
def test_dropped_packages_are_indexed_with_conda_indexs_entry(run_cli, tmp_path: Path) -> None:
    channel = tmp_path / "ch"
    expected = dropped.build(channel / "noarch")
    status, report, err = index(run_cli, channel, tmp_path, "--cache-dir", tmp_path / "c")
    assert status == 0, err
    noarch = report["subdirs"]["noarch"]
    assert (
        noarch["artifacts"]["unreadable"] == [] and noarch["artifacts"]["run_exports_unknown"] == []
    )
    assert published(channel) == expected
    # only the package whose info/ follows its payload was read to its end
    size = (channel / "noarch" / "after-payload-1.0-0.tar.bz2").stat().st_size
    assert (noarch["read_in_full"], noarch["read_in_full_bytes"]) == (1, size)


def test_dropped_packages_over_s3(run_cli, aws_env: S3Endpoint, tmp_path: Path) -> None:
    channel = tmp_path / "ch"
    expected = dropped.build(channel / "noarch")
    bucket = aws_env.new_bucket("dropped")
    upload_tree(aws_env.client(), bucket, "ch", channel)
    status, report, err = index(
        run_cli, f"s3://{bucket}/ch", tmp_path, "--endpoint-url", aws_env.endpoint_url
    )
    assert status == 0, err
    assert report["subdirs"]["noarch"]["artifacts"]["unreadable"] == []
    assert report["totals"]["read_in_full"] == 1
    out = tmp_path / "run_exports.json"
    aws_env.client().download_file(bucket, "ch/noarch/run_exports.json", str(out))
    document = json.loads(out.read_text())
    assert {**document["packages"], **document["packages.conda"]} == expected


@pytest.mark.skipif(
    importlib.util.find_spec("conda_index") is None, reason="conda-index 0.13 not installed"
)
def test_conda_index_writes_the_same_entries(tmp_path: Path) -> None:
    """The oracle: conda-index 0.13 itself, run on the same packages (via the shim)."""
    channel = tmp_path / "ch"
    expected = dropped.build(channel / "noarch")
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'benchmarks' / 'shim')!r})\n"
        "from conda_index.cli import cli\n"
        "if __name__ == '__main__':\n"
        "    cli([sys.argv[1], '--run-exports', '--no-current-repodata'])\n"
    )
    script = tmp_path / "ci.py"
    script.write_text(code)
    subprocess.run(
        [sys.executable, str(script), str(channel)], check=True, capture_output=True, timeout=120
    )
    assert published(channel) == expected
    repodata = json.loads((channel / "noarch" / "repodata.json").read_text())
    records = {**repodata["packages"], **repodata["packages.conda"]}
    for filename in expected:
        info = outcome(channel / "noarch" / filename)
        ours = {k: v for k, v in info.record.items()}
        theirs = {k: v for k, v in records[filename].items() if k not in ("md5", "sha256")}
        assert ours == theirs, filename


def test_info_first_tar_bz2_reads_no_more_than_before(run_cli, tmp_path: Path) -> None:
    """Leading info run with index.json: stop at the first payload member (bzip2's block floor)."""
    noarch = tmp_path / "ch" / "noarch"
    big = os.urandom(5 * 2**20)
    for name, head in {
        "binsortbig": [("info/index.json", index_json("binsortbig"))],
        "dirfirst": [("info", None), ("info/index.json", index_json("dirfirst"))],
    }.items():
        write_tar_bz2(
            noarch / f"{name}-1.0-0.tar.bz2",
            [*head, ("lib/big", big), ("info/run_exports.json", b'["late"]')],
        )
    status, report, err = index(
        run_cli, tmp_path / "ch", tmp_path, "--cache-dir", tmp_path / "c", "--no-shards"
    )
    assert status == 0, err
    assert report["totals"]["read_in_full"] == 0
    assert report["totals"]["bytes_read"] < 2 * 1_000_000  # one 900 kB block each, at most
    # the remaining risk (docs/reliability.md): run_exports.json after the payload is not seen
    assert published(tmp_path / "ch") == {
        "binsortbig-1.0-0.tar.bz2": {"run_exports": {}},
        "dirfirst-1.0-0.tar.bz2": {"run_exports": {}},
    }


# -- JSON as conda reads it ---------------------------------------------------------------
def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


JSON_CASES = {
    "nan": (b'{"name": "nan", "version": "1", "build": "0", "x": NaN}', "NaN"),
    "inf": (b'{"name": "inf", "version": "1", "build": "0", "x": -Infinity}', "Infinity"),
    "huge": (b'{"name": "huge", "version": "1", "build": "0", "x": 1e400}', "infinity"),
    "int65": (b'{"name": "int65", "version": "1", "build": "0", "n": 36893488147419103232}', "64"),
    "negint": (
        b'{"name": "negint", "version": "1", "build": "0", "n": -9223372036854775809}',
        "64",
    ),
    "surrogate": (b'{"name": "surrogate", "version": "1", "build": "0", "x": "\\ud800"}', "surr"),
    "deep300": (
        b'{"name": "deep300", "version": "1", "build": "0", "x": ' + nested(300) + b"}",
        "32",
    ),
    "deep1100": (
        b'{"name": "deep1100", "version": "1", "build": "0", "x": ' + nested(1100) + b"}",
        "32",
    ),
}


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_json_that_cannot_be_published_as_read_is_reported(case: str, tmp_path: Path) -> None:
    data, reason = JSON_CASES[case]
    index_path = write_tar_bz2(tmp_path / f"{case}-1.tar.bz2", [("info/index.json", data)])
    got = outcome(index_path)
    assert isinstance(got, str) and got.startswith("info/index.json is malformed") and reason in got
    exports_path = write_conda(
        tmp_path / f"re{case}-1.0-0.conda",
        [("info/index.json", index_json(f"re{case}")), ("info/run_exports.json", data)],
    )
    info = outcome(exports_path)
    assert info.run_exports is None and reason in info.run_exports_error


def test_limits_at_the_edges() -> None:
    edge = b'{"a": [9223372036854775807, 18446744073709551615, -9223372036854775808]}'
    assert artifact.load_json(edge)["a"][1] == 2**64 - 1
    assert artifact.load_json(nested(artifact.MAX_DEPTH))
    with pytest.raises(ValueError, match="deeper"):
        artifact.load_json(nested(artifact.MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="64 bits"):
        artifact.load_json(b"18446744073709551616")
    assert artifact.load_json(dropped.BOM + b"{}") == {}
    assert artifact.parse_run_exports(b"[]") == {}
    assert artifact.parse_run_exports(b'["x"]') == {"weak": ["x"]}


def test_nan_and_65_bit_integers_are_reported_and_not_published(run_cli, tmp_path: Path) -> None:
    noarch = tmp_path / "ch" / "noarch"
    write_tar_bz2(noarch / "nan-1.0-0.tar.bz2", [("info/index.json", JSON_CASES["nan"][0])])
    write_tar_bz2(noarch / "int65-1.0-0.tar.bz2", [("info/index.json", JSON_CASES["int65"][0])])
    write_conda(
        noarch / "reint65-1.0-0.conda",
        [
            ("info/index.json", index_json("reint65")),
            ("info/run_exports.json", b'{"weak": [1e400]}'),
        ],
    )
    for depth in (300, 1100):  # issue 13: once a run-level "Recursion limit reached"
        write_conda(
            noarch / f"deepre{depth}-1.0-0.conda",
            [
                ("info/index.json", index_json(f"deepre{depth}")),
                ("info/run_exports.json", b'{"schema_version": ' + nested(depth) + b"}"),
            ],
        )
    write_conda(noarch / "good-1.0-0.conda", [("info/index.json", index_json("good"))])
    status, report, err = index(
        run_cli, tmp_path / "ch", tmp_path, "--cache-dir", tmp_path / "c", "--repodata"
    )
    assert status == 0, err
    problems = report["subdirs"]["noarch"]["artifacts"]
    assert {p["filename"] for p in problems["unreadable"]} == {
        "nan-1.0-0.tar.bz2",
        "int65-1.0-0.tar.bz2",
    }
    assert {p["filename"] for p in problems["run_exports_unknown"]} == {
        "reint65-1.0-0.conda",
        "deepre300-1.0-0.conda",
        "deepre1100-1.0-0.conda",
    }
    assert set(published(tmp_path / "ch")) == {"good-1.0-0.conda"}
    text = (noarch / "repodata.json").read_text()
    repodata = json.loads(text)
    assert set(repodata["packages"]) == set()
    assert set(repodata["packages.conda"]) == {
        "good-1.0-0.conda",
        "reint65-1.0-0.conda",  # indexed; its run_exports unknown
        "deepre300-1.0-0.conda",
        "deepre1100-1.0-0.conda",
    }
    assert "NaN" not in text and "e+" not in text


# -- duplicates, names --------------------------------------------------------------------
def test_duplicated_members_are_malformed(tmp_path: Path) -> None:
    twice = write_conda(
        tmp_path / "twice-1.0-0.conda",
        [("info/index.json", index_json("twice")), ("info/index.json", index_json("other"))],
    )
    assert outcome(twice) == "malformed: info/index.json appears 2 times"
    exports = write_conda(
        tmp_path / "exports-1.0-0.conda",
        [
            ("info/index.json", index_json("exports")),
            ("info/run_exports.json", b'["a"]'),
            ("info/run_exports.json", b'["b"]'),
        ],
    )
    info = outcome(exports)
    assert info.run_exports is None and "appears 2 times" in info.run_exports_error
    # .tar.bz2, leading info run: reading stops once both are found (as before, and
    # conda-index takes the first copy too); a duplicate before that point counts
    first = write_tar_bz2(
        tmp_path / "first-1.0-0.tar.bz2",
        [
            ("info/index.json", index_json("first")),
            ("info/index.json", index_json("first")),
            ("info/run_exports.json", b'["a"]'),
        ],
    )
    assert "appears 2 times" in outcome(first)
    # read through (info/ not first): duplicates anywhere count
    spread = write_tar_bz2(
        tmp_path / "spread-1.0-0.tar.bz2",
        [
            ("lib/x", b"x"),
            ("info/index.json", index_json("spread")),
            ("lib/y", b"y"),
            ("info/index.json", index_json("spread")),
        ],
    )
    assert "appears 2 times" in outcome(spread)


def test_filename_not_matching_index_json_is_linted_and_reported(run_cli, tmp_path: Path) -> None:
    noarch = tmp_path / "ch" / "noarch"
    write_conda(noarch / "alias-2.0-0.conda", [("info/index.json", index_json("real"))])
    summary = tmp_path / "summary.md"
    status, report, err = index(
        run_cli, tmp_path / "ch", tmp_path, "--cache-dir", tmp_path / "c", "--summary", summary
    )
    assert status == 0, err
    noarch_report = report["subdirs"]["noarch"]
    assert "alias-2.0-0.conda" in published(tmp_path / "ch")  # indexed, as conda-index does
    [problem] = noarch_report["artifacts"]["filename_mismatches"]
    assert problem["filename"] == "alias-2.0-0.conda" and "real-1.0-0" in problem["reason"]
    assert [lint["kind"] for lint in noarch_report["lints"]] == ["filename-mismatch"]
    assert "do not match index.json" in summary.read_text()


# -- limits --------------------------------------------------------------------------------
def pax_tar(members: list[tuple[str, bytes]], pax: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = dict(pax or {})
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def conda_with_tar(path: Path, tar: bytes) -> Path:
    stem = path.name[: -len(".conda")]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", b"{}")
        zf.writestr(f"info-{stem}.tar.zst", zstandard.compress(tar))
    return path


def test_each_limit_is_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header = conda_with_tar(
        tmp_path / "paxbig-1.0-0.conda",
        pax_tar([("info/index.json", index_json("paxbig"))], {"comment": "x" * (2 << 20)}),
    )
    assert "KiB of tar headers" in outcome(header)
    members = [(f"info/f{i}", b"") for i in range(50)] + [("info/index.json", index_json("m"))]
    many = conda_with_tar(tmp_path / "many-1.0-0.conda", pax_tar(members))
    monkeypatch.setattr(artifact, "MAX_MEMBERS", 40)
    assert outcome(many) == "more than 40 tar members"
    monkeypatch.setattr(artifact, "MAX_MEMBERS", 1000)
    monkeypatch.setattr(artifact, "MAX_SECONDS", -1.0)
    assert outcome(many) == "reading took more than -1 s"
    monkeypatch.setattr(artifact, "MAX_SECONDS", 60.0)
    monkeypatch.setattr(artifact, "MAX_INFO_BYTES", 8192)
    assert "info part larger than" in outcome(many)


def test_pax_path_hidden_in_padding_reads_as_tarfile_reads_it(tmp_path: Path) -> None:
    """A pax record renaming the next member: what tarfile applies, we apply."""
    tar = pax_tar(
        [("info/decoy.json", b'["evil"]'), ("info/index.json", index_json("p"))],
        None,
    )
    renamed = pax_tar(
        [("info/run_exports.json", b'["real"]'), ("info/index.json", index_json("p"))],
        None,
    )
    for data, want in ((tar, {}), (renamed, {"weak": ["real"]})):
        path = conda_with_tar(tmp_path / "p-1-0.conda", data)
        assert outcome(path).run_exports == want
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("info/decoy.json")  # ustar name; pax path wins in tarfile
        info.pax_headers = {"path": "info/run_exports.json"}
        data = b'["hidden"]'
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        index = index_json("p")
        info = tarfile.TarInfo("info/index.json")
        info.size = len(index)
        t.addfile(info, io.BytesIO(index))
    path = conda_with_tar(tmp_path / "p-1-0.conda", out.getvalue())
    assert outcome(path).run_exports == {"weak": ["hidden"]}


# -- zip smuggling -----------------------------------------------------------------------------
def smuggled(tmp_path: Path) -> dict[str, bytes]:
    """.conda files whose local headers and central directory disagree."""
    good = write_conda(
        tmp_path / "zs-1.0-0.conda",
        [("info/index.json", index_json("zs")), ("info/run_exports.json", b'["x"]')],
    ).read_bytes()
    zf = zipfile.ZipFile(io.BytesIO(good))
    pkg = next(i for i in zf.infolist() if i.filename.startswith("pkg-"))
    cases = {}
    # a local member the directory does not list, before the others (offsets shifted)
    hidden = io.BytesIO()
    with zipfile.ZipFile(hidden, "w") as extra:
        extra.writestr("info-zs-1.0-0.tar.zst", b"decoy")
    prefix = hidden.getvalue()[: zipfile.ZipFile(hidden).start_dir]
    cases["prepended"] = prefix + good
    # the pkg member's local header names another file (same length)
    name_at = pkg.header_offset + 30
    renamed = bytearray(good)
    renamed[name_at : name_at + 3] = b"PKG"
    cases["renamed"] = bytes(renamed)
    # the pkg member's local sizes differ from the directory's
    sizes = bytearray(good)
    sizes[pkg.header_offset + 18 : pkg.header_offset + 22] = (1).to_bytes(4, "little")
    cases["sizes"] = bytes(sizes)
    # a gap between two members (bytes no entry covers)
    gap = bytearray(good)
    gap[pkg.header_offset : pkg.header_offset + 4] = b"XXXX"
    cases["no-local-header"] = bytes(gap)
    return cases


@pytest.mark.parametrize("case", ["prepended", "renamed", "sizes", "no-local-header"])
def test_zip_smuggling_is_reported(tmp_path: Path, case: str) -> None:
    path = tmp_path / "zs-1.0-0.conda"
    data = smuggled(tmp_path)[case]
    path.write_bytes(data)
    got = outcome(path)
    assert isinstance(got, str), case
    assert got.startswith("zip central directory and local headers disagree"), got


def test_zip_with_data_descriptors_and_zip64_is_read(tmp_path: Path) -> None:
    """What zipfile writes to an unseekable stream (descriptors) and with zip64 is fine."""
    info = tar_bytes([("info/index.json", index_json("dd"))])

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buffer = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.buffer += bytes(b)
            return len(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zf:
        with zf.open("metadata.json", "w") as fh:
            fh.write(b"{}")
        with zf.open("info-dd-1.0-0.tar.zst", "w", force_zip64=True) as fh:
            fh.write(zstandard.compress(info))
    path = tmp_path / "dd-1.0-0.conda"
    path.write_bytes(bytes(sink.buffer))
    assert outcome(path).record["name"] == "dd"
