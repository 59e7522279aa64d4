"""Issue 2, acceptance 1 and 4: byte conformance with conda-index, determinism."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import zstandard
from conftest import CORPUS_SUBDIRS, EXPECTED


def outputs(channel: Path) -> dict[str, bytes]:
    """Every run_exports output of a channel, by relative path."""
    return {
        str(p.relative_to(channel)): p.read_bytes()
        for p in sorted(channel.glob("*/run_exports.json*"))
    }


@pytest.mark.parametrize("subdir", CORPUS_SUBDIRS)
def test_corpus_bytes_match_conda_index(corpus_channel: Path, run_cli, tmp_path, subdir) -> None:
    status, _, err = run_cli("index", corpus_channel, "--cache-dir", tmp_path / "cache")
    assert status == 0, err
    written = (corpus_channel / subdir / "run_exports.json").read_bytes()
    assert written == (EXPECTED / subdir / "run_exports.json").read_bytes()
    zst = (corpus_channel / subdir / "run_exports.json.zst").read_bytes()
    assert zstandard.ZstdDecompressor().decompress(zst) == written


def test_cold_warm_and_jobs_give_identical_bytes(corpus_channel: Path, run_cli, tmp_path) -> None:
    copies = {}
    for label, args in {
        "jobs1": ["--jobs", "1"],
        "jobs8": ["--jobs", "8"],
    }.items():
        channel = tmp_path / label
        shutil.copytree(corpus_channel, channel)
        status, _, err = run_cli("index", channel, "--cache-dir", tmp_path / f"c-{label}", *args)
        assert status == 0, err
        copies[label] = outputs(channel)
    assert copies["jobs1"] == copies["jobs8"]
    assert len(copies["jobs1"]) == 2 * len(CORPUS_SUBDIRS)

    # warm: outputs deleted, cache kept → rendered from the cache alone, same bytes
    warm = tmp_path / "jobs8"
    for path in warm.glob("*/run_exports.json*"):
        path.unlink()
    status, _, err = run_cli("index", warm, "--cache-dir", tmp_path / "c-jobs8", "--jobs", "3")
    assert status == 0, err
    assert outputs(warm) == copies["jobs1"]


def test_non_ascii_run_exports_escaped_like_json_dumps(tmp_path, run_cli) -> None:
    """conda-index writes with json.dumps (ASCII escapes); so must we."""
    import json

    from dev.sample import build_artifact

    channel = tmp_path / "ch"
    exports = {"weak": ["caf\u00e9 >=1", "tab\there", "del\x7f"]}
    build_artifact(channel / "noarch", "unicode", run_exports=exports)
    assert run_cli("index", channel)[0] == 0
    expected = json.dumps(
        {
            "info": {"subdir": "noarch", "version": 1},
            "packages": {},
            "packages.conda": {"unicode-1.0-0.conda": {"run_exports": exports}},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert (channel / "noarch" / "run_exports.json").read_bytes() == expected


@pytest.mark.parametrize(
    "value",
    [1.5e-7, 1e20, -1e-300, [0, 3e100], 2**70, 1.0, -0.0, "1e5", ":1e5", "caf\u00e9", {"n": [1]}],
)
def test_dumps_compact_is_json_dumps(value) -> None:
    import json

    from indexer.render.run_exports import dumps_compact

    data = {"z": value, "a": [value]}
    assert dumps_compact(data) == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def test_build_strings_that_look_like_exponents_stay_on_the_fast_path(monkeypatch) -> None:
    """Filenames such as `x-1.0-h1e4f0a2b_0.conda` hold digit-e-digit: not a float."""
    import json

    from indexer.render import run_exports as render

    data = {"packages.conda": {"x-1.0-h1e4f0a2b_0.conda": {"run_exports": {"weak": ["x 2e5"]}}}}
    expected = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def slow_path(*args, **kwargs):
        raise AssertionError("went through json.dumps")

    monkeypatch.setattr(render.json, "dumps", slow_path)
    assert render.dumps_compact(data) == expected
