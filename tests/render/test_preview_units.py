"""Issue 6: patch application and lints, as pure functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.errors import UsageError
from indexer.model import CachedArtifact, by_package
from indexer.read.patch_sources import load_patches
from indexer.render.lints import (
    DROPPED,
    EXCLUDES_OWN,
    INVALID_SPEC,
    UNKNOWN_PATCH_TARGET,
    finish,
    lint_package,
    with_patched,
)
from indexer.render.patches import apply_patches, parse_instructions


def lint_subdir(artifacts, touched, instructions=None):
    """The lints of one subdir's rows, as the package pass gives them (a test helper)."""
    groups = by_package(artifacts)
    names = {a.filename for rows in groups.values() for a in rows}
    touched = with_patched(touched, instructions, names)
    lints = [lint for rows in groups.values() for lint in lint_package(rows, touched)]
    return finish(lints, instructions, names)


def row(filename: str, run_exports, **record) -> CachedArtifact:
    name, version, build = filename.rsplit(".", 2 if filename.endswith(".tar.bz2") else 1)[
        0
    ].rsplit("-", 2)
    base = {"name": name, "version": version, "build": build, "build_number": 0, "depends": []}
    return CachedArtifact(filename, 1, "t", {**base, **record}, run_exports)


CHANNEL = [
    row("libfoo-1.2-h0_0.tar.bz2", {"weak": ["libfoo >=1.2,<2"], "strong": ["libfoo-rt"]}),
    row("libfoo-1.2-h0_0.conda", {"weak": ["libfoo >=1.2,<2"], "strong": ["libfoo-rt"]}),
    row("libbar-3.0-h1_0.conda", {}),
    row("old-0.1-0.tar.bz2", {}),
]


def instructions(**data) -> object:
    return parse_instructions({"patch_instructions_version": 2, **data}, "test")


def by_name(rows):
    return {r.filename: r for r in rows}


def test_packages_fix_applies_to_tar_bz2_and_conda_twin_merging_keys() -> None:
    patched = by_name(
        apply_patches(
            CHANNEL,
            instructions(
                packages={
                    "libfoo-1.2-h0_0.tar.bz2": {"run_exports": {"weak": ["libfoo >=1.2,<1.3"]}}
                }
            ),
        )
    )
    for fn in ("libfoo-1.2-h0_0.tar.bz2", "libfoo-1.2-h0_0.conda"):
        # weak replaced, strong kept (conda-index's merge)
        assert patched[fn].run_exports == {"weak": ["libfoo >=1.2,<1.3"], "strong": ["libfoo-rt"]}
        assert "run_exports" not in patched[fn].record
    assert patched["libbar-3.0-h1_0.conda"] is CHANNEL[2]  # untouched rows are not copied


def test_conda_only_fix_remove_and_revoke() -> None:
    patched = by_name(
        apply_patches(
            CHANNEL,
            instructions(
                **{
                    "packages.conda": {
                        "libbar-3.0-h1_0.conda": {"run_exports": {"weak": ["libbar 3.*"]}}
                    }
                },
                remove=["old-0.1-0.tar.bz2"],
                revoke=["libfoo-1.2-h0_0.tar.bz2"],
            ),
        )
    )
    assert patched["libbar-3.0-h1_0.conda"].run_exports == {"weak": ["libbar 3.*"]}
    assert "old-0.1-0.tar.bz2" not in patched
    for fn in ("libfoo-1.2-h0_0.tar.bz2", "libfoo-1.2-h0_0.conda"):
        assert patched[fn].record["revoked"] is True
        assert patched[fn].record["depends"] == ["package_has_been_revoked"]
        assert patched[fn].run_exports == CHANNEL[0].run_exports


def test_patch_makes_unknown_run_exports_known() -> None:
    broken = CachedArtifact(
        "x-1-0.conda",
        1,
        "t",
        {"name": "x", "version": "1", "build": "0"},
        None,
        run_exports_error="malformed",
    )
    [patched] = apply_patches(
        [broken],
        instructions(**{"packages.conda": {"x-1-0.conda": {"run_exports": {"weak": ["x"]}}}}),
    )
    assert (patched.run_exports, patched.run_exports_error) == ({"weak": ["x"]}, None)


def test_load_directory_and_json_map(tmp_path: Path) -> None:
    (tmp_path / "d" / "noarch").mkdir(parents=True)
    (tmp_path / "d" / "noarch" / "patch_instructions.json").write_text(
        json.dumps({"patch_instructions_version": 2, "remove": ["a-1-0.conda"]})
    )
    assert load_patches(tmp_path / "d")["noarch"].remove == ("a-1-0.conda",)
    (tmp_path / "p.json").write_text(json.dumps({"linux-64": {"patch_instructions_version": 2}}))
    assert set(load_patches(tmp_path / "p.json")) == {"linux-64"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # version 1 (conda-index's) is taken now; above 2 is refused
        ({"patch_instructions_version": 3}, "patch_instructions_version 3 is not supported"),
        # any filename is a key, as in conda-index (a .conda one reaches that .conda record);
        # a fix must still be an object
        (
            {"patch_instructions_version": 2, "packages": {"a-1-0.tar.bz2": []}},
            "must be a filename mapped to an object",
        ),
        (
            {
                "patch_instructions_version": 2,
                "packages.conda": {"a-1-0.conda": {"run_exports": {"weak": "a"}}},
            },
            "run_exports 'weak' must be a list",
        ),
        ({"patch_instructions_version": 2, "remove": "a-1-0.conda"}, "'remove' must be a list"),
    ],
)
def test_bad_instructions_name_the_entry(data, message) -> None:
    with pytest.raises(UsageError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_instructions(data, "linux-64")


def test_unreadable_patch_file(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("{nope")
    with pytest.raises(UsageError, match="cannot read"):
        load_patches(tmp_path / "p.json")
    with pytest.raises(UsageError, match="not found"):
        load_patches(tmp_path / "missing.json")


# -- lints ----------------------------------------------------------------------
CLEAN = [
    row("libfoo-1.2-h0_0.conda", {"weak": ["libfoo >=1.2,<2"]}),
    row("libfoo-1.3-h0_0.conda", {"weak": ["libfoo >=1.3,<2"]}),
    row("libfoo-1.3-h0_1.conda", {"weak": ["libfoo >=1.3,<2"]}, build_number=1),
    row("tool-1.0-0.conda", {}),
]


def test_clean_channel_is_quiet() -> None:
    assert lint_subdir(CLEAN, [r.filename for r in CLEAN], instructions()) == []


def test_dropped_run_exports_compared_with_nearest_lower_build() -> None:
    rows = [*CLEAN, row("libfoo-1.3-h0_2.conda", {}, build_number=2)]
    [lint] = lint_subdir(rows, ["libfoo-1.3-h0_2.conda"])
    assert lint.kind == DROPPED
    assert "libfoo-1.3-h0_1.conda" in lint.message and "weak: libfoo" in lint.message


def test_invalid_match_spec() -> None:
    rows = [*CLEAN, row("libfoo-1.4-h0_0.conda", {"weak": ["libfoo >=1.4,<2", "libfoo-rt >=>1"]})]
    [lint] = lint_subdir(rows, ["libfoo-1.4-h0_0.conda"])
    assert lint.kind == INVALID_SPEC and "'libfoo-rt >=>1'" in lint.message


def test_pin_excluding_own_version() -> None:
    rows = [*CLEAN, row("libfoo-1.4-h0_0.conda", {"weak": ["libfoo >=2"]})]
    [lint] = lint_subdir(rows, ["libfoo-1.4-h0_0.conda"])
    assert lint.kind == EXCLUDES_OWN
    assert lint.message == "weak: 'libfoo >=2' excludes libfoo 1.4 itself"


def test_patch_naming_missing_artifact() -> None:
    patch = instructions(
        packages={"gone-1-0.tar.bz2": {"depends": []}}, remove=["libfoo-1.2-h0_0.tar.bz2"]
    )
    [lint] = lint_subdir(CLEAN, [], patch)  # the .tar.bz2 name matches the .conda twin
    assert (lint.filename, lint.kind) == ("gone-1-0.tar.bz2", UNKNOWN_PATCH_TARGET)


def test_respelled_spec_is_not_a_dropped_export() -> None:
    rows = [*CLEAN, row("libfoo-1.4-h0_0.conda", {"weak": ["libfoo>=1.4,<2"]})]
    assert lint_subdir(rows, ["libfoo-1.4-h0_0.conda"]) == []


# -- conda-index 0.13's semantics (issue 12) -------------------------------------------
def test_null_deletes_a_key_and_sets_a_missing_one_to_null() -> None:
    from indexer.render.patches import PatchInstructions, apply_instructions

    fix = {"license": None, "missing": None, "about": {"b": 2}, "depends": ["x"]}
    out = apply_instructions(
        {"a-1-0.tar.bz2": {"license": "MIT", "about": {"a": 1}, "depends": []}},
        {},
        PatchInstructions(packages={"a-1-0.tar.bz2": fix}),
    )
    assert out.packages["a-1-0.tar.bz2"] == {
        "missing": None,
        "about": {"a": 1, "b": 2},
        "depends": ["x"],
    }


def test_revoking_a_fixed_pair_appends_to_their_shared_depends_twice() -> None:
    from indexer.render.patches import PatchInstructions, apply_instructions

    record = {"name": "a", "depends": ["python"]}
    out = apply_instructions(
        {"a-1-0.tar.bz2": record},
        {"a-1-0.conda": record},
        PatchInstructions(
            packages={"a-1-0.tar.bz2": {"depends": ["py"]}},
            revoke=("a-1-0.tar.bz2",),
            remove=("gone-1-0.tar.bz2",),
        ),
    )
    twice = ["py", "package_has_been_revoked", "package_has_been_revoked"]
    assert out.packages["a-1-0.tar.bz2"]["depends"] == twice
    assert out.packages_conda["a-1-0.conda"]["depends"] == twice
    assert record == {"name": "a", "depends": ["python"]}  # inputs untouched
    assert out.removed == []  # nothing of that name to remove


def test_patch_package_that_is_not_a_package(tmp_path: Path) -> None:
    (tmp_path / "p.conda").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match=r"cannot read .*p\.conda"):
        load_patches(tmp_path / "p.conda")
    with pytest.raises(UsageError, match="not found"):
        load_patches("absent-1-0.conda")
