"""Issue 12: hotfixes as conda-index 0.13 writes and applies them, seen the same through
shards and repodata.json (py-rattler's Gateway, sharded on and off).

conda-index is the oracle: it indexes a channel with a version-1 patch generator
(a `.py` file), in a subprocess with the benchmark's stand-ins for the two
`conda` modules it imports (benchmarks/shim). Then this tool runs with its
defaults and the published channel is served over HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Endpoint, download_prefix, upload_tree
from shardtools import hexed, serve, unpack

from dev.sample import build_artifact

SHIM = Path(__file__).resolve().parents[2] / "benchmarks" / "shim"
NAMES = ["hotfix", "condaonly", "removeme", "revokeme", "plain"]
INSTRUCTIONS = {
    "patch_instructions_version": 1,
    # a .tar.bz2 fix reaches its .conda twin too; both hold one depends list
    "packages": {"hotfix-1.0-0.tar.bz2": {"depends": ["python >=3.8", "added-dep"]}},
    # a .conda-only fix: a null deletes a key, a nested object is added
    "packages.conda": {
        "condaonly-1.0-0.conda": {"depends": ["other"], "license": None, "extra": {"a": 1}}
    },
    "remove": ["removeme-1.0-0.tar.bz2"],
    # revoking hotfix appends to the shared list twice (conda-index's quirk)
    "revoke": ["revokeme-1.0-0.tar.bz2", "hotfix-1.0-0.tar.bz2"],
}
GENERATOR = """
import json
def _patch_repodata(repodata, subdir):
    if subdir != "noarch":
        return {{"patch_instructions_version": 1, "packages": {{}}, "revoke": [], "remove": []}}
    return json.loads({text!r})
"""

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("conda_index") is None,
    reason="conda-index 0.13 (the oracle, in the test extras) is not installed",
)


def build_channel(root: Path) -> Path:
    for name in ("hotfix", "removeme", "revokeme"):
        for fmt in (".tar.bz2", ".conda"):
            build_artifact(root / "noarch", name, fmt=fmt, depends=["python"], run_exports=[name])
    build_artifact(root / "noarch", "condaonly", depends=["python"], run_exports={"weak": ["c"]})
    build_artifact(root / "noarch", "plain", fmt=".tar.bz2")
    return root


def conda_index(root: Path, tmp: Path, instructions: dict[str, Any]) -> None:
    """Index `root` with conda-index 0.13 and a v1 patch generator (.py)."""
    generator = tmp / f"gen-{hashlib.sha256(json.dumps(instructions).encode()).hexdigest()}.py"
    generator.write_text(GENERATOR.format(text=json.dumps(instructions)))
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(SHIM)!r})\n"
        "from conda_index.index import ChannelIndex\n"
        f"ChannelIndex({str(root)!r}, None, threads=1, write_current_repodata=False)"
        f".index(patch_generator={str(generator)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "noarch" / "patch_instructions.json").is_file()


def rattler(url: str, sharded: bool) -> dict[str, dict]:
    from rattler import Channel, Gateway, SourceConfig

    async def query() -> dict[str, dict]:
        with tempfile.TemporaryDirectory() as cache:
            gateway = Gateway(cache_dir=cache, default_config=SourceConfig(sharded_enabled=sharded))
            found = await gateway.query([Channel(url)], ["noarch"], NAMES, recursive=False)
            return {r.file_name: json.loads(r.to_json()) for sub in found for r in sub}

    return asyncio.run(query())


def both_ways(root: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    with serve(root) as url:
        return rattler(url, sharded=True), rattler(url, sharded=False)


def assert_agree(sharded: dict[str, dict], classic: dict[str, dict], root: Path) -> None:
    """The same records both ways, and the same records as repodata.json raw.

    py-rattler reading repodata.json leaves out a .tar.bz2 whose .conda is
    listed (it does so on conda-index's own channel too); through shards it
    keeps both. Those twins are checked against repodata.json itself.
    """
    extra = set(sharded) - set(classic)
    assert set(classic) <= set(sharded)
    assert all(fn.endswith(".tar.bz2") and fn[:-8] + ".conda" in classic for fn in extra), extra
    for fn, record in classic.items():
        assert "run_exports" in sharded[fn], fn  # read from our shards, not repodata.json
        mine = {k: v for k, v in sharded[fn].items() if k != "run_exports"}
        assert mine == {k: v for k, v in record.items() if k != "run_exports"}, fn
    published = json.loads((root / "noarch" / "repodata.json").read_bytes())
    ours = shard_records(root)
    expected = {**published["packages"], **published["packages.conda"]}
    assert set(ours) == set(expected)
    assert not set(ours) & set(published["removed"])
    for fn, record in ours.items():
        assert {k: v for k, v in hexed(record).items() if k != "run_exports"} == expected[fn], fn


def index(run_cli, channel: str, tmp: Path, *args: str) -> dict:
    report = tmp / "report.json"
    status, _, err = run_cli(
        "index", channel, "--cache-dir", tmp / "cache", "-q", "--report", report, *args
    )
    assert status == 0, err
    return json.loads(report.read_bytes())


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    root = build_channel(tmp_path / "ch")
    conda_index(root, tmp_path, INSTRUCTIONS)
    return root


def test_hotfixes_agree_through_shards_and_repodata(indexed: Path, tmp_path, run_cli) -> None:
    """Acceptance 1 (HTTP): every hotfix kind holds both ways; nothing taken over ours."""
    report = index(run_cli, str(indexed), tmp_path)
    assert report["subdirs"]["noarch"]["records_from_repodata"] == []  # we reproduce them all
    assert report["subdirs"]["noarch"]["warnings"] == []
    sharded, classic = both_ways(indexed)
    assert_agree(sharded, classic, indexed)
    assert "removeme-1.0-0.tar.bz2" not in sharded and "removeme-1.0-0.conda" not in sharded
    twice = ["python >=3.8", "added-dep", "package_has_been_revoked", "package_has_been_revoked"]
    assert sharded["hotfix-1.0-0.tar.bz2"]["depends"] == twice
    assert sharded["hotfix-1.0-0.conda"]["depends"] == twice
    assert sharded["revokeme-1.0-0.conda"]["depends"] == ["python", "package_has_been_revoked"]
    assert sharded["condaonly-1.0-0.conda"]["depends"] == ["other"]
    assert "license" not in sharded["condaonly-1.0-0.conda"]
    published = json.loads((indexed / "noarch" / "repodata.json").read_bytes())
    assert published["removed"] == ["removeme-1.0-0.conda", "removeme-1.0-0.tar.bz2"]
    # run_exports.json stays the mirror of the packages (CEP-12)
    mirror = json.loads((indexed / "noarch" / "run_exports.json").read_bytes())
    assert "removeme-1.0-0.conda" in mirror["packages.conda"]
    # nothing new: nothing uploaded
    assert index(run_cli, str(indexed), tmp_path)["uploaded"] == []


def test_records_we_cannot_reproduce_are_taken_and_reported(indexed: Path, tmp_path, run_cli):
    """Patched by something we cannot see (here: the instructions are gone)."""
    (indexed / "noarch" / "patch_instructions.json").unlink()
    report = index(run_cli, str(indexed), tmp_path)
    listed = report["subdirs"]["noarch"]["records_from_repodata"]
    taken = {t["filename"]: t["fields"] for t in listed}
    assert taken["hotfix-1.0-0.conda"] == ["depends", "revoked"]
    assert taken["condaonly-1.0-0.conda"] == ["depends", "extra", "license"]
    assert taken["removeme-1.0-0.tar.bz2"] == ["removed"]
    assert "plain-1.0-0.tar.bz2" not in taken
    assert report["totals"]["records_from_repodata"] == len(taken)
    summary = tmp_path / "summary.md"
    run_cli("index", indexed, "--cache-dir", tmp_path / "c2", "-q", "--summary", summary)
    assert "`noarch/hotfix-1.0-0.conda`: `depends`, `revoked`" in summary.read_text()
    assert_agree(*both_ways(indexed), indexed)


def test_hotfixes_agree_over_s3(indexed: Path, aws_env: S3Endpoint, run_cli, tmp_path) -> None:
    """Acceptance 1 over S3: the bucket's channel, downloaded and served as published."""
    s3 = aws_env
    bucket = s3.new_bucket("hotfix")
    shutil.rmtree(indexed / "noarch" / ".cache", ignore_errors=True)
    upload_tree(s3.client(), bucket, "ch", indexed)
    url = f"s3://{bucket}/ch"
    report = index(run_cli, url, tmp_path, "--endpoint-url", s3.endpoint_url)
    assert report["subdirs"]["noarch"]["records_from_repodata"] == []
    served = tmp_path / "served"
    for key, data in download_prefix(s3.client(), bucket, "ch").items():
        if not key.startswith("."):
            (served / key).parent.mkdir(parents=True, exist_ok=True)
            (served / key).write_bytes(data)
    sharded, classic = both_ways(served)
    assert_agree(sharded, classic, served)
    assert "removeme-1.0-0.conda" not in sharded
    again = index(run_cli, url, tmp_path, "--endpoint-url", s3.endpoint_url)
    assert again["uploaded"] == []


def shard_records(root: Path, subdir: str = "noarch") -> dict[str, dict]:
    index_doc = unpack((root / subdir / "repodata_shards.msgpack.zst").read_bytes())
    found = {}
    for sha in index_doc["shards"].values():
        shard = unpack((root / subdir / "shards" / f"{sha.hex()}.msgpack.zst").read_bytes())
        for section in ("packages", "packages.conda"):
            found.update(shard.get(section, {}))
    return found


def test_hotfix_alone_rerenders(tmp_path: Path, run_cli) -> None:
    """Acceptance 2: only the channel's patch_instructions.json changes (no artifact, no
    repodata.json): the shards follow, and the run after that uploads nothing."""
    root = build_channel(tmp_path / "ch")
    patch = root / "noarch" / "patch_instructions.json"
    patch.write_text(json.dumps({"packages": {"plain-1.0-0.tar.bz2": {"depends": ["a"]}}}))
    index(run_cli, str(root), tmp_path)
    assert shard_records(root)["plain-1.0-0.tar.bz2"]["depends"] == ["a"]
    before = json.loads((root / "noarch" / "run_exports.json").read_bytes())
    patch.write_text(json.dumps({"packages": {"plain-1.0-0.tar.bz2": {"depends": ["b"]}}}))
    report = index(run_cli, str(root), tmp_path)
    assert shard_records(root)["plain-1.0-0.tar.bz2"]["depends"] == ["b"]
    assert "noarch/repodata_shards.msgpack.zst" in report["uploaded"]
    assert json.loads((root / "noarch" / "run_exports.json").read_bytes()) == before
    assert index(run_cli, str(root), tmp_path)["uploaded"] == []
    # the same after conda-index wrote repodata.json with a changed generator
    changed = {**INSTRUCTIONS, "packages": {"plain-1.0-0.tar.bz2": {"depends": ["c"]}}}
    conda_index(root, tmp_path, changed)
    report = index(run_cli, str(root), tmp_path)
    assert report["subdirs"]["noarch"]["records_from_repodata"] == []
    assert shard_records(root)["plain-1.0-0.tar.bz2"]["depends"] == ["c"]
    assert index(run_cli, str(root), tmp_path)["uploaded"] == []


def patch_package(out: Path, instructions: dict[str, Any], fmt: str = ".conda") -> Path:
    """A patch-generator package: `<subdir>/patch_instructions.json` in its payload."""
    files = {"noarch/patch_instructions.json": json.dumps(instructions).encode()}
    return build_artifact(out, "my-repodata-patches", "2024.1.1", fmt=fmt, extra_info=files)


@pytest.mark.parametrize("fmt", [".conda", ".tar.bz2"])
def test_every_source_gives_the_same_shards(tmp_path: Path, run_cli, fmt: str) -> None:
    """Acceptance 3: directory, subdir map, package by path and by noarch/ filename."""
    base = build_channel(tmp_path / "base")
    package = patch_package(base / "noarch", INSTRUCTIONS, fmt)
    folder = tmp_path / "dir"
    (folder / "noarch").mkdir(parents=True)
    (folder / "noarch" / "patch_instructions.json").write_text(json.dumps(INSTRUCTIONS))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"noarch": INSTRUCTIONS}))
    results = {}
    for label, source in {
        "dir": folder,
        "map": mapping,
        "path": package,
        "noarch": package.name,
    }.items():
        root = tmp_path / "channels" / label
        shutil.copytree(base, root)
        index(run_cli, str(root), tmp_path / "work" / label, "--patches", str(source))
        results[label] = unpack((root / "noarch" / "repodata_shards.msgpack.zst").read_bytes())
        results[label]["info"].pop("created_at")
    assert all(r == results["dir"] for r in results.values()), results
    records = shard_records(tmp_path / "channels" / "noarch")
    assert records["hotfix-1.0-0.conda"]["revoked"] is True
    assert "removeme-1.0-0.conda" not in records


def test_version_2_works_and_3_is_a_usage_error(tmp_path: Path, run_cli) -> None:
    root = build_channel(tmp_path / "ch")
    v2 = {**INSTRUCTIONS, "patch_instructions_version": 2}
    v2["packages.conda"] = {"condaonly-1.0-0.conda": {"run_exports": {"weak": ["patched"]}}}
    (tmp_path / "v2.json").write_text(json.dumps({"noarch": v2}))
    index(run_cli, str(root), tmp_path, "--patches", str(tmp_path / "v2.json"))
    assert shard_records(root)["condaonly-1.0-0.conda"]["run_exports"] == {"weak": ["patched"]}
    patched = json.loads((root / "noarch" / "run_exports.json").read_bytes())
    assert patched["packages.conda"]["condaonly-1.0-0.conda"]["run_exports"] == {
        "weak": ["patched"]
    }  # given explicitly, patches reach run_exports.json too (as before)
    v3 = tmp_path / "v3" / "noarch" / "patch_instructions.json"
    v3.parent.mkdir(parents=True)
    v3.write_text(json.dumps({**INSTRUCTIONS, "patch_instructions_version": 3}))
    status, _, err = run_cli("index", root, "--patches", tmp_path / "v3")
    assert status == 2
    assert str(v3) in err and "patch_instructions_version 3" in err


def test_channel_file_problems_are_warnings(tmp_path: Path, run_cli) -> None:
    """A channel file conda-index would refuse: reported, the run goes on."""
    root = build_channel(tmp_path / "ch")
    patch = root / "noarch" / "patch_instructions.json"
    patch.write_text(json.dumps({**INSTRUCTIONS, "patch_instructions_version": 2}))
    report = index(run_cli, str(root), tmp_path)
    [warning] = report["subdirs"]["noarch"]["warnings"]
    assert "patch_instructions_version 2" in warning and "not applied" in warning
    assert "removeme-1.0-0.conda" in shard_records(root)
    patch.write_text(json.dumps({**INSTRUCTIONS, "comment": "x"}))
    report = index(run_cli, str(root), tmp_path)
    [warning] = report["subdirs"]["noarch"]["warnings"]
    assert "'comment'" in warning
    assert "removeme-1.0-0.conda" not in shard_records(root)
    patch.write_text("{not json")
    report = index(run_cli, str(root), tmp_path)
    assert "not valid JSON" in report["subdirs"]["noarch"]["warnings"][0]
    index(run_cli, str(root), tmp_path / "off", "--no-channel-patches")
    assert "removeme-1.0-0.conda" in shard_records(root)
