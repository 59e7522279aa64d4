"""Issue 12: hotfix shapes found on real channels, each checked against conda-index 0.13.

A `null` fix (conda-index deletes the record without listing it in `removed`),
a fix holding an integer past 64 bits, a patch package that covers only some
subdirs (conda-index falls back to the channel's own file for the others), and
a first run over a channel whose run_exports.json conda-index wrote with a
package's list-form run_exports as it found it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from shardtools import hexed, unpack

from dev.sample import build_artifact
from indexer.read.parse import parse_run_exports

SHIM = Path(__file__).resolve().parents[2] / "benchmarks" / "shim"
GENERATOR = """
import json
def _patch_repodata(repodata, subdir):
    return json.loads({text!r}).get(subdir, {{}})
"""

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("conda_index") is None,
    reason="conda-index 0.13 (the oracle, in the test extras) is not installed",
)


def conda_index(root: Path, generator: str | None = None, *, run_exports: bool = False) -> None:
    """Index `root` with conda-index 0.13 (a `.py` generator or a patch package)."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(SHIM)!r})\n"
        "from conda_index.index import ChannelIndex\n"
        f"ChannelIndex({str(root)!r}, None, threads=1, write_current_repodata=False,"
        f" write_run_exports={run_exports!r}).index(patch_generator={generator!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def generator(tmp: Path, per_subdir: dict[str, Any]) -> str:
    path = tmp / "gen.py"
    path.write_text(GENERATOR.format(text=json.dumps(per_subdir)))
    return str(path)


def index(run_cli, root: Path, cache: Path, *args: str) -> dict:
    report = cache.parent / f"{cache.name}-report.json"
    status, _, err = run_cli("index", root, "--cache-dir", cache, "-q", "--report", report, *args)
    assert status == 0, err
    return json.loads(report.read_bytes())


def shard_records(root: Path, subdir: str = "noarch") -> dict[str, dict]:
    index_doc = unpack((root / subdir / "repodata_shards.msgpack.zst").read_bytes())
    found: dict[str, dict] = {}
    for digest in index_doc["shards"].values():
        shard = unpack((root / subdir / "shards" / f"{digest.hex()}.msgpack.zst").read_bytes())
        for section in ("packages", "packages.conda"):
            found.update({fn: hexed(r) for fn, r in shard.get(section, {}).items()})
    return found


def repodata(root: Path, subdir: str = "noarch") -> tuple[dict[str, dict], list[str]]:
    document = json.loads((root / subdir / "repodata.json").read_bytes())
    return {**document["packages"], **document["packages.conda"]}, document.get("removed", [])


def without_run_exports(records: dict[str, dict]) -> dict[str, dict]:
    return {fn: {k: v for k, v in r.items() if k != "run_exports"} for fn, r in records.items()}


def test_a_null_fix_deletes_the_record_as_conda_index_does(tmp_path: Path, run_cli) -> None:
    channel = tmp_path / "ch"
    for fmt in (".tar.bz2", ".conda"):
        build_artifact(channel / "noarch", "gone", fmt=fmt, depends=["python"])
        build_artifact(channel / "noarch", "kept", fmt=fmt, depends=["python"])
    fixes = {
        "patch_instructions_version": 1,
        "packages": {"gone-1.0-0.tar.bz2": None, "kept-1.0-0.tar.bz2": {"depends": ["fixed"]}},
    }
    conda_index(channel, generator(tmp_path, {"noarch": fixes}))
    expected, removed = repodata(channel)
    assert "gone-1.0-0.conda" not in expected and removed == []
    # Default run, repodata.json present: the shards list what it lists.
    report = index(run_cli, channel, tmp_path / "c1")
    assert report["subdirs"]["noarch"]["warnings"] == []
    assert without_run_exports(shard_records(channel)) == expected
    # Packages + the channel's instructions alone (--repodata owns the file).
    own = tmp_path / "own"
    shutil.copytree(channel, own)
    index(run_cli, own, tmp_path / "c2", "--repodata")
    assert repodata(own) == (expected, removed)


def test_a_fix_past_64_bits_skips_that_entry_not_the_file(tmp_path: Path, run_cli) -> None:
    channel = tmp_path / "ch"
    for name in ("p", "q"):
        build_artifact(channel / "noarch", name, fmt=".conda", depends=["python"])
    fixes = {
        "patch_instructions_version": 1,
        "packages.conda": {
            "p-1.0-0.conda": {"build_serial": 2**64 + 1},
            "q-1.0-0.conda": {"depends": ["fixed"]},
        },
    }
    conda_index(channel, generator(tmp_path, {"noarch": fixes}))
    expected, _ = repodata(channel)
    assert expected["p-1.0-0.conda"]["build_serial"] == 2**64 + 1  # conda-index writes it
    report = index(run_cli, channel, tmp_path / "c1")
    warnings = report["subdirs"]["noarch"]["warnings"]
    assert any("p-1.0-0.conda" in w and "64 bits" in w for w in warnings), warnings
    records = without_run_exports(shard_records(channel))
    assert records["q-1.0-0.conda"] == expected["q-1.0-0.conda"]  # the rest of the file applied
    assert "build_serial" not in records["p-1.0-0.conda"]  # never published as a float
    for record in records.values():
        assert not any(isinstance(v, float) for v in record.values()), record


def test_a_patch_package_without_a_subdir_falls_back_to_the_channel_file(tmp_path, run_cli):
    channel = tmp_path / "ch"
    for subdir in ("noarch", "linux-64"):
        for fmt in (".tar.bz2", ".conda"):
            for name in ("p", "q"):
                build_artifact(channel / subdir, name, fmt=fmt, subdir=subdir, depends=["python"])
    linux = {
        "patch_instructions_version": 1,
        "packages": {"p-1.0-0.tar.bz2": {"depends": ["linux-fix"]}},
        "remove": ["q-1.0-0.tar.bz2"],
    }
    noarch = {
        "patch_instructions_version": 1,
        "packages": {"p-1.0-0.tar.bz2": {"depends": ["noarch-fix"]}},
    }
    # A past run left linux-64/patch_instructions.json in the channel ...
    conda_index(channel, generator(tmp_path, {"linux-64": linux, "noarch": noarch}))
    # ... and the channel is now indexed with a patch package covering noarch only.
    package = build_artifact(
        tmp_path / "pkg",
        "my-patches",
        "2",
        fmt=".conda",
        extra_info={"noarch/patch_instructions.json": json.dumps(noarch).encode()},
    )
    oracle = tmp_path / "oracle"
    shutil.copytree(channel, oracle)
    conda_index(oracle, str(package))
    ours = tmp_path / "ours"
    shutil.copytree(channel, ours)
    index(run_cli, ours, tmp_path / "c1", "--patches", str(package), "--repodata")
    for subdir in ("linux-64", "noarch"):
        assert repodata(ours, subdir) == repodata(oracle, subdir), subdir
    assert repodata(ours, "linux-64")[1] == ["q-1.0-0.conda", "q-1.0-0.tar.bz2"]


def test_a_first_run_over_list_form_run_exports_conda_index_wrote(tmp_path, run_cli) -> None:
    """conda-index writes a package's list-form run_exports as it found it (CEP-34:
    `{"weak": list}`); diffing against it must not stop the run."""
    channel = tmp_path / "ch"
    build_artifact(channel / "noarch", "p", fmt=".tar.bz2", run_exports=["libp >=1"])
    build_artifact(channel / "noarch", "r", fmt=".tar.bz2", run_exports=["libr >=2"])
    conda_index(channel, run_exports=True)
    published = json.loads((channel / "noarch" / "run_exports.json").read_bytes())
    assert published["packages"]["p-1.0-0.tar.bz2"]["run_exports"] == ["libp >=1"]
    document = dict(published)
    document["packages"] = dict(published["packages"])
    document["packages"]["r-1.0-0.tar.bz2"] = {"run_exports": "not an object"}
    (channel / "noarch" / "run_exports.json").write_text(json.dumps(document))
    summary = tmp_path / "summary.md"
    report = index(run_cli, channel, tmp_path / "c1", "--summary", str(summary))
    changes = report["subdirs"]["noarch"]["run_exports_changes"]
    assert [c["filename"] for c in changes] == ["r-1.0-0.tar.bz2"]  # p: the same meaning
    assert "unknown run_exports" in summary.read_text()


@pytest.mark.parametrize("raw", [b"null", b"false", b"0", b'""', b"[]", b"{}"])
def test_a_false_run_exports_means_none_as_conda_index_reads_it(raw: bytes) -> None:
    assert parse_run_exports(raw) == {}


def test_given_patches_say_what_the_shards_hold_over_the_channels_repodata(tmp_path, run_cli):
    """`--patches` (a PR previewing new hotfixes, or a run applying them) is what the
    records become; the published repodata.json only holds the old ones."""
    channel = tmp_path / "ch"
    for fmt in (".tar.bz2", ".conda"):
        build_artifact(channel / "noarch", "p", fmt=fmt, depends=["python"])
    old = {"patch_instructions_version": 1, "packages": {"p-1.0-0.tar.bz2": {"depends": ["old"]}}}
    new = {"patch_instructions_version": 1, "packages": {"p-1.0-0.tar.bz2": {"depends": ["new"]}}}
    conda_index(channel, generator(tmp_path, {"noarch": old}))
    given = tmp_path / "given" / "noarch"
    given.mkdir(parents=True)
    (given / "patch_instructions.json").write_text(json.dumps(new))
    report = index(run_cli, channel, tmp_path / "c1", "--patches", str(given.parent))
    assert report["subdirs"]["noarch"]["records_from_repodata"] == []
    records = shard_records(channel)
    assert records["p-1.0-0.conda"]["depends"] == ["new"]
    assert records["p-1.0-0.tar.bz2"]["depends"] == ["new"]
