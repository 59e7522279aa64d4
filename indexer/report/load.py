"""A JSON report read back into a `RunReport`, as untrusted input (pure).

The fork workflow's commenting job (`mode: comment`) renders the report a
pull request's preview run uploaded as an artifact. That run executed the
fork's workflow file, so the JSON may say anything: it is never pasted into
the comment. Each value is checked for its type and bounded in length and
count here, and the comment is then rendered by `report.markdown` exactly as
a report of our own would be (every name and reason in code spans or escaped
text). What does not fit the shape is a one-line `ValueError` (the top level)
or left out (an entry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from indexer.model import Lint, Problem, RunExportsChange, Taken, is_subdir_name
from indexer.report.model import RunReport, SubdirReport

T = TypeVar("T")

MODES = ("publish", "dry-run", "preview")
MAX_SUBDIRS = 200
MAX_ITEMS = 20_000  # entries of one list (the comment is cut at 65,536 characters anyway)
MAX_TEXT = 2_000  # characters of one name, reason or message
MAX_COUNT = 10**12


def report_from_dict(data: Any) -> RunReport:
    """The `RunReport` of a `--report` JSON document; ValueError (one line) if it is not one."""
    if not isinstance(data, dict):
        raise ValueError("the report is not a JSON object")
    channel, mode = data.get("channel"), data.get("mode")
    if not isinstance(channel, str) or not channel or len(channel) > MAX_TEXT:
        raise ValueError("the report has no valid 'channel'")
    if mode not in MODES:
        raise ValueError(f"the report's 'mode' is not one of {', '.join(MODES)}")
    subdirs = data.get("subdirs")
    if not isinstance(subdirs, dict) or len(subdirs) > MAX_SUBDIRS:
        raise ValueError(f"the report's 'subdirs' is not an object of at most {MAX_SUBDIRS}")
    report = RunReport(channel=channel, mode=mode)
    for name, value in sorted(subdirs.items()):
        if not isinstance(name, str) or not is_subdir_name(name) or not isinstance(value, dict):
            raise ValueError(f"the report's subdir {str(name)[:80]!r} is not valid")
        report.subdirs.append(_subdir(name, value))
    report.duration_s = float(_count(data.get("duration_s")))
    report.retries = _count(data.get("retries"))
    report.verified = data.get("verified") is True
    report.error = _text(data.get("error"))
    return report


def _subdir(name: str, data: dict[str, Any]) -> SubdirReport:
    artifacts = data.get("artifacts") if isinstance(data.get("artifacts"), dict) else {}
    s = SubdirReport(subdir=name)
    s.listed = _count(data.get("listed"))
    s.unchanged = _count(data.get("unchanged"))
    s.artifacts_read = _count(data.get("artifacts_read"))
    s.bytes_read = _count(data.get("bytes_read"))
    s.new = _texts(artifacts.get("new"))
    s.changed = _texts(artifacts.get("changed"))
    s.removed = _texts(artifacts.get("removed"))
    s.unreadable = _list(artifacts.get("unreadable"), _problem)
    s.run_exports_unknown = _list(artifacts.get("run_exports_unknown"), _problem)
    s.filename_mismatches = _list(artifacts.get("filename_mismatches"), _problem)
    s.run_exports_changes = _list(data.get("run_exports_changes"), _change)
    s.lints = _list(data.get("lints"), _lint)
    s.warnings = _texts(data.get("warnings"))
    s.uploaded = _texts(data.get("uploaded"))
    s.records_from_repodata = _list(data.get("records_from_repodata"), _taken)
    s.shards_pruned = _texts(data.get("shards_pruned"))
    s.repaired = _list(data.get("repaired"), _problem)
    s.refused = _text(data.get("refused"))
    s.baseline = _text(data.get("baseline"))
    for key in ("checksum_full_reads", "checksum_bytes_read", "checksums_from_repodata"):
        setattr(s, key, _count(data.get(key)))
    s.read_in_full = _count(data.get("read_in_full"))
    s.read_in_full_bytes = _count(data.get("read_in_full_bytes"))
    return s


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0
    return int(min(max(value, 0), MAX_COUNT))


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) and value else None


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v[:MAX_TEXT] for v in value[:MAX_ITEMS] if isinstance(v, str)]


def _list(value: Any, make: Callable[[dict[str, Any]], T | None]) -> list[T]:
    if not isinstance(value, list):
        return []
    made = (make(v) for v in value[:MAX_ITEMS] if isinstance(v, dict))
    return [item for item in made if item is not None]


def _problem(d: dict[str, Any]) -> Problem | None:
    filename, reason = _text(d.get("filename")), _text(d.get("reason"))
    return Problem(filename, reason or "") if filename else None


def _lint(d: dict[str, Any]) -> Lint | None:
    filename, kind, message = (_text(d.get(k)) for k in ("filename", "kind", "message"))
    return Lint(filename, kind or "", message or "") if filename else None


def _taken(d: dict[str, Any]) -> Taken | None:
    filename = _text(d.get("filename"))
    return Taken(filename, _texts(d.get("fields"))) if filename else None


def _change(d: dict[str, Any]) -> RunExportsChange | None:
    package, filename, change = (_text(d.get(k)) for k in ("package", "filename", "change"))
    if not (package and filename) or change not in ("added", "removed", "changed"):
        return None
    old, new = _exports(d.get("old")), _exports(d.get("new"))
    return RunExportsChange(package, filename, change, old, new)


def _exports(value: Any) -> dict[str, Any] | None:
    """run_exports: an object of kind → list of specs (strings), bounded."""
    if not isinstance(value, dict):
        return None
    return {
        kind[:MAX_TEXT]: _texts(specs)
        for kind, specs in list(value.items())[:16]
        if isinstance(kind, str) and isinstance(specs, list)
    }
