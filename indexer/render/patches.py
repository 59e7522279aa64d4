"""Patch instructions (hotfixes): load them as channels write them, apply them as conda-index.

Channels keep hotfixes as `patch_instructions.json` per subdir, written by
conda-index (or conda-forge's repodata-patches) with
`patch_instructions_version` 1, or without the field, which conda-index reads
as 1. This tool also takes version 2 (1 plus validated CEP-21 `run_exports`
fixes). Where they come from (see `load_patches` and `channel_instructions`):

- `--patches PATH`: a directory of `<subdir>/patch_instructions.json`, one
  JSON file mapping subdir → instructions, or a patch-generator package (a
  `.conda`/`.tar.bz2` whose payload holds `<subdir>/patch_instructions.json`),
  by path or, as a bare filename that is no local file, in the channel's
  `noarch/`;
- otherwise, by default, the channel's own `<subdir>/patch_instructions.json`,
  which conda-index leaves in place and applies again on every run.

Given instructions replace the channel's for the run; the two never stack.

Applying follows conda-index 0.13 (`_apply_instructions` with its
`merge_or_update_dict`), quirks included, because the acceptance is agreement
with the repodata.json it writes: see `apply_instructions`. Applying is pure.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from indexer.errors import UsageError
from indexer.model import CONDA, LEGACY, SECTIONS, CachedArtifact, as_dict
from indexer.read.parse import check_value, parse_run_exports

PATCH_FILENAME = "patch_instructions.json"
SUPPORTED_VERSIONS = (1, 2)  # a file without the field is version 1, as conda-index reads it
CHANNEL_MAX_VERSION = 1  # conda-index refuses a channel file above 1
KNOWN_KEYS = frozenset({"patch_instructions_version", *SECTIONS, "remove", "revoke"})
REVOKED_DEPENDENCY = "package_has_been_revoked"
MAX_JSON_BYTES = 256 << 20  # one patch_instructions.json


@dataclass(frozen=True)
class PatchInstructions:
    """One subdir's instructions, validated."""

    # filename → fix; a `None` fix (JSON null) deletes the record, as conda-index's does
    packages: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    packages_conda: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    revoke: tuple[str, ...] = ()
    version: int = 1
    unknown_keys: tuple[str, ...] = ()  # top-level keys conda-index ignores (reported)
    skipped: tuple[str, ...] = ()  # entries of a channel file left out, one line each
    digest: str = ""  # sha256 of the instructions' canonical JSON: what the stamp folds in

    def fixes_for(self, filename: str) -> list[dict[str, Any]]:
        """The fixes that apply to `filename`, in the order they apply."""
        if not filename.endswith(CONDA):
            return [self.packages[filename]] if filename in self.packages else []
        fixes = list(self._twins.get(filename, ()))
        if filename in self.packages_conda:
            fixes.append(self.packages_conda[filename])
        return fixes

    @cached_property
    def _twins(self) -> dict[str, list[dict[str, Any]]]:
        """`.conda` filename → the `packages` fixes conda-index applies to it."""
        twins: dict[str, list[dict[str, Any]]] = {}
        for name, fix in self.packages.items():
            twins.setdefault(_twin(name), []).append(fix)
        return twins

    def targets(self) -> set[str]:
        """Every filename the instructions name."""
        return {*self.packages, *self.packages_conda, *self.remove, *self.revoke}

    def touches(self) -> set[str]:
        """Every filename a fix, revoke or remove can reach (names and `.conda` twins)."""
        named = self.targets()
        return named | {_twin(name) for name in named if name.endswith(LEGACY)}


def _twin(name: str) -> str:
    """The `.conda` name conda-index gives a `packages` fix (`str.replace`, as it does)."""
    return name.replace(LEGACY, CONDA)


def _matches(name: str, filenames: set[str]) -> bool:
    """A name an instruction gives matches the artifact or its `.conda` twin."""
    if name in filenames:
        return True
    return name.endswith(LEGACY) and _twin(name) in filenames


def unknown_targets(instructions: PatchInstructions, filenames: Iterable[str]) -> list[str]:
    """Filenames the instructions name that are not in the subdir (a lint)."""
    present = set(filenames)
    return sorted(name for name in instructions.targets() if not _matches(name, present))


# -- applying (pure) -------------------------------------------------------------
@dataclass(frozen=True)
class Patched:
    """Records after the instructions: by format, and the sorted `removed` list."""

    packages: dict[str, dict[str, Any]]
    packages_conda: dict[str, dict[str, Any]]
    removed: list[str]


def apply_instructions(
    packages: Mapping[str, Mapping[str, Any]],
    packages_conda: Mapping[str, Mapping[str, Any]],
    instructions: PatchInstructions,
) -> Patched:
    """The records (`packages`: .tar.bz2, `packages.conda`) as conda-index 0.13 patches them.

    In order: each `packages` fix to its `.tar.bz2` record, the same fix to the
    `.conda` record of the name `str.replace(".tar.bz2", ".conda")` gives,
    then `packages.conda` fixes; then `revoke`, then `remove`. A fix changes
    a record key by key: an object goes down a level (keys missing there are
    added), a list or scalar replaces the value, `null` deletes an existing
    key (and sets a missing one to null), and a fix equal to the record (at
    any level) changes nothing. Values from a fix are not copied per record,
    as in conda-index: a `.tar.bz2` record and its `.conda` twin fixed with
    `depends` hold one list, so revoking both appends to it twice. Revoking
    sets `revoked` and appends `package_has_been_revoked` to `depends`;
    removing drops the record and lists its filename in `removed`. Inputs
    are never modified.
    """
    legacy = {name: copy.deepcopy(dict(rec)) for name, rec in packages.items()}
    conda = {name: copy.deepcopy(dict(rec)) for name, rec in packages_conda.items()}
    fixes = copy.deepcopy(instructions.packages)  # one copy, shared by both formats
    _fix_section(legacy, fixes)
    _fix_section(conda, {_twin(name): fix for name, fix in fixes.items()})
    _fix_section(conda, copy.deepcopy(instructions.packages_conda))
    sections = (legacy, conda)
    for name in instructions.revoke:
        for section, target in zip(sections, _both_names(name), strict=True):
            record = section.get(target)
            if record is not None:
                record["revoked"] = True
                if not isinstance(record.get("depends"), list):
                    record["depends"] = []  # conda-index would stop here
                record["depends"].append(REVOKED_DEPENDENCY)
    removed = []
    for name in instructions.remove:
        for section, target in zip(sections, _both_names(name), strict=True):
            if section.pop(target, None):  # an empty record is not listed, as conda-index
                removed.append(target)
    return Patched(legacy, conda, sorted(removed))


def _both_names(name: str) -> tuple[str, str]:
    """The names a revoke or remove looks up in `packages` and `packages.conda`."""
    return name, _twin(name) if name.endswith(LEGACY) else name


def _fix_section(records: dict[str, dict[str, Any]], fixes: Mapping[str, Any]) -> None:
    for name in fixes.keys() & records.keys():
        if fixes[name] is None:  # conda-index deletes the record (not listed in `removed`)
            del records[name]
        else:
            records[name] = _fix(records[name], fixes[name])


def _fix(base: Any, fix: Mapping[str, Any]) -> Any:
    """`base` changed by `fix` in place (see `apply_instructions`); returns it."""
    if not isinstance(base, dict):  # conda-index fails on this; the fix wins
        return fix
    if base == fix:
        return base
    for key, value in fix.items():
        if isinstance(value, dict):
            base[key] = _fix(base.get(key, value), value)
        elif isinstance(value, list):
            base[key] = value
        elif value is None and key in base:
            del base[key]
        else:
            base[key] = value
    return base


def patch_rows(
    artifacts: Iterable[CachedArtifact], instructions: PatchInstructions | None
) -> tuple[list[CachedArtifact], list[str]]:
    """Readable artifacts as the instructions leave them, and what they removed.

    Rows no instruction reaches are returned as they are (not copied). A
    record is patched with its `run_exports` in it, so a fix can set them
    (CEP-21); they are taken out again afterwards.
    """
    rows = [a for a in artifacts if a.readable and a.record is not None]
    if instructions is None:
        return rows, []
    reach = instructions.touches()
    targets = {row.filename: row for row in rows if row.filename in reach}
    sections: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    for name, row in targets.items():
        record = as_dict(row.record)
        if row.run_exports is not None:
            record["run_exports"] = row.run_exports
        sections[name.endswith(CONDA)][name] = record
    patched = apply_instructions(*sections, instructions)
    records = {**patched.packages, **patched.packages_conda}
    out = []
    for row in rows:
        if row.filename not in targets:
            out.append(row)
        elif row.filename in records:
            record = records[row.filename]
            run_exports = record.pop("run_exports", None)
            if not isinstance(run_exports, dict):
                run_exports = None
            error = row.run_exports_error if run_exports is None else None
            out.append(
                replace(row, record=record, run_exports=run_exports, run_exports_error=error)
            )
    return out, patched.removed


def apply_patches(
    artifacts: Iterable[CachedArtifact], instructions: PatchInstructions | None
) -> list[CachedArtifact]:
    """Patched copies of the readable artifacts; removed ones are left out."""
    return patch_rows(artifacts, instructions)[0]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes) -> Any:
    """Strict JSON: `json` on the bytes (a UTF-8 BOM is accepted), no NaN/Infinity."""
    return json.loads(data, parse_constant=_reject_constant)


def read_json(data: bytes, where: str) -> Any:
    try:
        return parse_json(data)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"--patches: cannot read {where}: {exc}") from None


def parse_instructions(
    data: Any, where: str, *, max_version: int = 2, lenient: bool = False
) -> PatchInstructions:
    """Validate one subdir's instructions; UsageError names the file and the entry.

    `lenient` (the channel's own file, which this tool does not own): an entry
    we cannot apply as written (a fix that is neither an object nor null, a
    value msgpack cannot carry, malformed run_exports) is left out and named
    in `skipped`, and the rest applies; the file as a whole must still parse.
    """
    if not isinstance(data, dict):
        raise UsageError(f"--patches: {where}: expected an object")
    version = data.get("patch_instructions_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise UsageError(f"--patches: {where}: patch_instructions_version must be 1 or 2")
    if version > max_version:
        supported = "1" if max_version == 1 else "1 or 2"
        raise UsageError(
            f"--patches: {where}: patch_instructions_version {version} is not supported "
            f"(must be {supported})"
        )
    skipped: list[str] = []
    sections = {}
    for key in SECTIONS:
        section = data.get(key, {})
        if not isinstance(section, dict):
            raise UsageError(f"--patches: {where}: {key!r} must be an object")
        sections[key] = {}
        for filename, fix in section.items():
            try:
                _check_fix(fix, f"{where}: {key}[{filename!r}]")
            except UsageError as exc:
                if not lenient:
                    raise
                skipped.append(f"{str(exc).removeprefix('--patches: ')}; that entry not applied")
                continue
            sections[key][filename] = fix
    lists = {}
    for key in ("remove", "revoke"):
        names = data.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UsageError(f"--patches: {where}: {key!r} must be a list of filenames")
        lists[key] = tuple(names)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return PatchInstructions(
        packages=sections["packages"],
        packages_conda=sections["packages.conda"],
        remove=lists["remove"],
        revoke=lists["revoke"],
        version=max(version, 1),
        unknown_keys=tuple(sorted(k for k in data if k not in KNOWN_KEYS)),
        skipped=tuple(skipped),
        digest=hashlib.sha256(canonical).hexdigest(),
    )


def _check_fix(fix: Any, where: str) -> None:
    """A fix we can apply as conda-index would: an object (or null) of values msgpack carries."""
    if fix is None:
        return
    if not isinstance(fix, dict):
        raise UsageError(f"--patches: {where} must be a filename mapped to an object")
    _check_values(fix, where)
    if "run_exports" in fix and fix["run_exports"] is not None:
        _check_run_exports(fix["run_exports"], where)


def _check_values(value: Any, where: str) -> None:
    """What `artifact.load_json` refuses in a package, refused here too: integers past
    64 bits, non-finite floats, lone surrogates, deep nesting (shards are msgpack)."""
    try:
        check_value(value)
    except ValueError as exc:
        raise UsageError(f"--patches: {where}: {exc}") from None


def _check_run_exports(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise UsageError(f"--patches: {where}: run_exports must be an object")
    try:
        parse_run_exports(json.dumps(value).encode())
    except ValueError as exc:
        raise UsageError(f"--patches: {where}: run_exports {exc}") from None


def channel_instructions(data: bytes, where: str) -> tuple[PatchInstructions | None, list[str]]:
    """The channel's own `<subdir>/patch_instructions.json`: instructions and warnings.

    A file that cannot be used (not JSON, version above 1, which conda-index
    refuses there, a malformed entry) is a warning and no instructions, never
    a failed run; unknown top-level keys are a warning and the rest applies.
    """
    if len(data) > MAX_JSON_BYTES:
        return None, [f"{where} is larger than {MAX_JSON_BYTES} bytes; not applied"]
    try:
        parsed = parse_instructions(
            parse_json(data), where, max_version=CHANNEL_MAX_VERSION, lenient=True
        )
    except (ValueError, RecursionError) as exc:
        return None, [f"{where} is not valid JSON ({exc}); not applied"]
    except UsageError as exc:
        return None, [f"{str(exc).removeprefix('--patches: ')}; not applied"]
    return parsed, unknown_key_warnings(parsed, where)


def unknown_key_warnings(instructions: PatchInstructions, where: str) -> list[str]:
    """Lines naming top-level keys conda-index ignores and entries left out (the rest applies)."""
    warnings = list(instructions.skipped)
    if instructions.unknown_keys:
        keys = ", ".join(repr(k) for k in instructions.unknown_keys)
        warnings.append(f"{where} has unknown top-level key(s) {keys}; ignored, the rest applies")
    return warnings
