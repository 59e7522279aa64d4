"""CEP-21 run_exports patches: load `patch_instructions.json` (v2) and apply it.

Patch semantics follow conda-index's `_apply_instructions`, so instruction
files maintainers already keep work unchanged:

- `packages` fixes apply to that `.tar.bz2` and to the `.conda` of the same
  name; `packages.conda` fixes apply to `.conda` artifacts only;
- a fix is merged into the record: nested objects merge key by key, lists and
  scalars replace (so `{"run_exports": {"weak": [...]}}` replaces the weak pins
  and keeps the strong ones);
- `revoke` marks the record revoked and adds `package_has_been_revoked` to its
  depends; `remove` takes the artifact out of every patched output.

Applying is pure: it returns patched copies and never touches storage.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .artifact import parse_run_exports
from .cache import CachedArtifact
from .errors import UsageError

PATCH_FILENAME = "patch_instructions.json"
SUPPORTED_VERSION = 2


@dataclass(frozen=True)
class PatchInstructions:
    """One subdir's instructions."""

    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    packages_conda: dict[str, dict[str, Any]] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    revoke: tuple[str, ...] = ()

    def fixes_for(self, filename: str) -> list[dict[str, Any]]:
        """The fixes that apply to `filename`, in the order they apply."""
        if filename.endswith(".tar.bz2"):
            return [self.packages[filename]] if filename in self.packages else []
        fixes = []
        legacy = filename[: -len(".conda")] + ".tar.bz2"
        if legacy in self.packages:
            fixes.append(self.packages[legacy])
        if filename in self.packages_conda:
            fixes.append(self.packages_conda[filename])
        return fixes

    def targets(self) -> set[str]:
        """Every filename the instructions name."""
        return {*self.packages, *self.packages_conda, *self.remove, *self.revoke}


def _matches(name: str, filenames: set[str]) -> bool:
    """A name an instruction gives matches the artifact or its `.conda` twin."""
    if name in filenames:
        return True
    return name.endswith(".tar.bz2") and name[: -len(".tar.bz2")] + ".conda" in filenames


def unknown_targets(instructions: PatchInstructions, filenames: Iterable[str]) -> list[str]:
    """Filenames the instructions name that are not in the subdir (a lint)."""
    present = set(filenames)
    return sorted(name for name in instructions.targets() if not _matches(name, present))


def apply_patches(
    artifacts: Iterable[CachedArtifact], instructions: PatchInstructions | None
) -> list[CachedArtifact]:
    """Patched copies of the readable artifacts; removed ones are left out."""
    rows = [a for a in artifacts if a.readable]
    if instructions is None:
        return rows
    removed = set(instructions.remove) | {
        n[: -len(".tar.bz2")] + ".conda" for n in instructions.remove if n.endswith(".tar.bz2")
    }
    revoked = set(instructions.revoke) | {
        n[: -len(".tar.bz2")] + ".conda" for n in instructions.revoke if n.endswith(".tar.bz2")
    }
    patched = []
    for row in rows:
        if row.filename in removed:
            continue
        fixes = instructions.fixes_for(row.filename)
        if not fixes and row.filename not in revoked:
            patched.append(row)
            continue
        record = copy.deepcopy(row.record or {})
        if row.run_exports is not None:
            record["run_exports"] = copy.deepcopy(row.run_exports)
        for fix in fixes:
            _merge(record, fix)
        if row.filename in revoked:
            record["revoked"] = True
            record["depends"] = [*record.get("depends", []), "package_has_been_revoked"]
        run_exports = record.pop("run_exports", None)
        error = row.run_exports_error if run_exports is None else None
        patched.append(
            replace(row, record=record, run_exports=run_exports, run_exports_error=error)
        )
    return patched


def _merge(base: dict[str, Any], fix: Mapping[str, Any]) -> None:
    for key, value in fix.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


# -- loading (the edge: files) --------------------------------------------------
def load_patches(path: str | os.PathLike[str]) -> dict[str, PatchInstructions]:
    """Instructions per subdir from `--patches PATH`.

    PATH is either a directory holding `<subdir>/patch_instructions.json` (the
    layout conda-index and repodata-patch packages use) or one JSON file that
    maps subdir → instructions. Errors name the file and what is wrong.
    """
    root = Path(path)
    if root.is_dir():
        found = {p.parent.name: _read_json(p) for p in sorted(root.glob(f"*/{PATCH_FILENAME}"))}
        if not found:
            raise UsageError(f"--patches: no */{PATCH_FILENAME} under {root}")
    elif root.is_file():
        document = _read_json(root)
        if not isinstance(document, dict) or "patch_instructions_version" in document:
            raise UsageError(
                f"--patches: {root} must map subdir names to instructions "
                f'(e.g. {{"linux-64": {{"patch_instructions_version": 2, ...}}}})'
            )
        found = document
    else:
        raise UsageError(f"--patches: {root} not found")
    return {subdir: parse_instructions(data, f"{root}: {subdir}") for subdir, data in found.items()}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--patches: cannot read {path}: {exc}") from None


def parse_instructions(data: Any, where: str) -> PatchInstructions:
    """Validate one subdir's instructions; UsageError names the bad entry."""
    if not isinstance(data, dict):
        raise UsageError(f"--patches: {where}: expected an object")
    version = data.get("patch_instructions_version")
    if version != SUPPORTED_VERSION:
        raise UsageError(
            f"--patches: {where}: patch_instructions_version must be {SUPPORTED_VERSION}, "
            f"found {version!r}"
        )
    sections = {}
    for key, suffix in (("packages", ".tar.bz2"), ("packages.conda", ".conda")):
        section = data.get(key, {})
        if not isinstance(section, dict):
            raise UsageError(f"--patches: {where}: {key!r} must be an object")
        for filename, fix in section.items():
            if not filename.endswith(suffix) or not isinstance(fix, dict):
                raise UsageError(
                    f"--patches: {where}: {key}[{filename!r}] must be a {suffix} "
                    "filename mapped to an object"
                )
            if "run_exports" in fix:
                _check_run_exports(fix["run_exports"], f"{where}: {key}[{filename!r}]")
        sections[key] = section
    lists = {}
    for key in ("remove", "revoke"):
        names = data.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UsageError(f"--patches: {where}: {key!r} must be a list of filenames")
        lists[key] = tuple(names)
    return PatchInstructions(
        packages=sections["packages"],
        packages_conda=sections["packages.conda"],
        remove=lists["remove"],
        revoke=lists["revoke"],
    )


def _check_run_exports(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise UsageError(f"--patches: {where}: run_exports must be an object")
    try:
        parse_run_exports(json.dumps(value).encode())
    except ValueError as exc:
        raise UsageError(f"--patches: {where}: run_exports {exc}") from None
