"""Issue 16, acceptance 4 (report half): the JSON report validates against its schema.

Real reports from several kinds of run (a publish, a preview with lints,
run_exports and record changes, a --strict failure, a notice, a refusal by
the mass-removal guard, a run that failed outright) are validated against
docs/report.schema.json, and every field a report has is described there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dev.sample import build_artifact, build_sample_channel
from indexer.report.model import SCHEMA_VERSION

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "report.schema.json").read_text()
)


def validate(report: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    described = set(SCHEMA["properties"])
    assert set(report) <= described, f"undocumented: {set(report) - described}"
    subdir_fields = set(SCHEMA["$defs"]["subdir"]["properties"])
    for name, subdir in report["subdirs"].items():
        assert set(subdir) <= subdir_fields, f"{name}: undocumented {set(subdir) - subdir_fields}"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_channel(tmp_path_factory.mktemp("sample") / "ch")


def _report(run_cli, path: Path, *args: object) -> tuple[int, dict[str, Any]]:
    status, _, _ = run_cli("index", *args, "--report", path, "-q")
    return status, json.loads(path.read_text())


def test_reports_of_every_kind_of_run_validate(sample: Path, tmp_path: Path, run_cli) -> None:
    import shutil

    channel = Path(shutil.copytree(sample, tmp_path / "ch"))
    kinds: dict[str, dict[str, Any]] = {}
    status, kinds["publish"] = _report(run_cli, tmp_path / "publish.json", channel)
    assert status == 0 and kinds["publish"]["uploaded"]

    staged = tmp_path / "staged"
    build_artifact(staged / "noarch", "libpin", "1.3", "0", run_exports={"weak": ["libpin >=2"]})
    patches = tmp_path / "patches.json"
    name = kinds["publish"]["subdirs"]["linux-64"]["artifacts"]["new"][0]
    patches.write_text(
        json.dumps({"linux-64": {"packages.conda": {name: {"license": "Patched-1.0"}}}})
        if name.endswith(".conda")
        else json.dumps({"linux-64": {"packages": {name: {"license": "Patched-1.0"}}}})
    )
    status, preview = _report(
        run_cli, tmp_path / "preview.json", channel, "--preview", "--staged", staged,
        "--patches", patches,
    )  # fmt: skip
    assert status == 0
    noarch, linux = preview["subdirs"]["noarch"], preview["subdirs"]["linux-64"]
    assert noarch["lints"] and noarch["run_exports_changes"] and linux["record_changes"]
    kinds["preview"] = preview

    status, kinds["strict"] = _report(run_cli, tmp_path / "strict.json", channel, "--strict")
    assert status == 1 and kinds["strict"]["totals"]["unreadable"] == 1
    status, kinds["notice"] = _report(
        run_cli, tmp_path / "notice.json", channel, "--subdir", "win-64"
    )
    assert status == 0 and kinds["notice"]["notices"]
    for artifact in [*channel.glob("linux-64/*.conda"), *channel.glob("linux-64/*.tar.bz2")]:
        artifact.unlink()
    status, kinds["refused"] = _report(run_cli, tmp_path / "refused.json", channel)
    assert status == 1 and kinds["refused"]["refused"]
    status, kinds["failed"] = _report(
        run_cli, tmp_path / "failed.json", channel, "--patches", tmp_path / "absent.json"
    )
    assert status == 2 and kinds["failed"]["error"] and kinds["failed"]["ok"] is False

    for kind, report in kinds.items():
        assert report["schema_version"] == SCHEMA_VERSION, kind
        validate(report)


def test_the_schema_rejects_what_is_not_a_report() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "channel": "c"}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 99}, SCHEMA)
