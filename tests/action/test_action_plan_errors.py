"""Issue 16, acceptance 2 and 3, as the container runs: `repodata`, `mode: plan`, an
absent subdir, and wrong credentials against S3 (SeaweedFS on loopback).

Wrong credentials must fail the step with exactly one `::error` carrying the
S3 error code and operation, a job summary saying what failed, the outputs
that can be set, and no secret anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from actionrun import run_action, runner_env
from s3server import S3Endpoint, upload_tree

from dev.sample import build_sample_channel
from dev.seaweed import Credentials

AWS = {"AWS_EC2_METADATA_DISABLED": "true"}
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/report.schema.json").read_text())


@pytest.fixture(scope="module")
def channel_url(s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory) -> str:
    bucket = s3.new_bucket("act16")
    root = build_sample_channel(tmp_path_factory.mktemp("sample") / "ch")
    upload_tree(s3.client(), bucket, "ch", root)
    return f"s3://{bucket}/ch"


def _inputs(s3: S3Endpoint, channel: str, **more: str) -> dict[str, str]:
    return {"channel": channel, "endpoint-url": s3.endpoint_url, "region": s3.region, **more}


def _errors(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("::error")]


def test_plan_then_index_with_repodata_and_an_absent_subdir(
    s3: S3Endpoint, channel_url: str, tmp_path: Path
) -> None:
    env = s3.env() | AWS
    plan = run_action(runner_env(tmp_path / "plan", _inputs(s3, channel_url, mode="plan")) | env)
    assert plan.status == 0, plan.stdout + plan.stderr
    subdirs = json.loads(plan.outputs["subdirs"])
    assert subdirs == ["linux-64", "noarch"]
    assert "Mode **plan** · 2 subdir(s)" in plan.summary
    assert not _errors(plan.stdout)

    inputs = _inputs(s3, channel_url, mode="publish", repodata="true", subdirs="noarch win-64")
    result = run_action(runner_env(tmp_path / "push", inputs) | env)
    assert result.status == 0, result.stdout + result.stderr
    uploaded = json.loads(result.outputs["uploaded"])
    assert {"noarch/repodata.json", "noarch/repodata.json.zst"} <= set(uploaded)
    bucket = channel_url.split("/")[2]
    repodata = json.loads(
        s3.client().get_object(Bucket=bucket, Key="ch/noarch/repodata.json")["Body"].read()
    )
    assert repodata["info"] == {"subdir": "noarch"} and repodata["packages.conda"]
    notices = [line for line in result.stdout.splitlines() if line.startswith("::notice")]
    assert len(notices) == 1 and "win-64: no artifacts in" in notices[0]
    assert not _errors(result.stdout)
    assert json.loads(result.outputs["subdirs"]) == ["noarch", "win-64"]
    assert result.outputs["lints"].isdigit() and result.outputs["artifacts-changed"] == "0"


@pytest.mark.parametrize(
    ("who", "mode", "codes"),
    [
        ("wrong-secret", "preview", ("SignatureDoesNotMatch", "InvalidAccessKeyId")),
        ("unknown-key", "publish", ("InvalidAccessKeyId", "SignatureDoesNotMatch")),
        ("reader", "publish", ("AccessDenied",)),
    ],
)
def test_wrong_credentials_are_one_error_with_the_s3_code(
    s3: S3Endpoint, channel_url: str, tmp_path: Path, who: str, mode: str, codes: tuple[str, ...]
) -> None:
    if who == "reader" and s3.reader is None:
        pytest.skip("the endpoint has no read-only identity (RUN_EXPORTS_INDEX_TEST_S3_READONLY)")
    if who == "reader":
        creds = s3.reader
        # a fresh copy, so the reader's publish has something to write
        bucket = s3.new_bucket("act16-ro")
        root = build_sample_channel(tmp_path / "sample" / "ch")
        upload_tree(s3.client(), bucket, "ch", root)
        channel = f"s3://{bucket}/ch"
    else:
        secret = "WRONGsecret0123456789abcdefWRONGsecret01"
        key = s3.admin.access_key if who == "wrong-secret" else "AKIAWRONGKEY00000000"
        creds = Credentials(key, secret)
        channel = channel_url
    assert creds is not None
    env = runner_env(tmp_path / who, _inputs(s3, channel, mode=mode)) | s3.env(creds) | AWS
    result = run_action(env)
    assert result.status == 1, result.stdout + result.stderr
    errors = _errors(result.stdout)
    assert len(errors) == 1, result.stdout
    assert any(f"({code})" in errors[0] for code in codes), errors[0]
    assert "S3 " in errors[0] and "refused" in errors[0]  # the operation, and what happened
    assert "Run failed" in result.summary and "refused" in result.summary
    assert result.outputs["summary"] and "changed" not in result.outputs
    report = json.loads((Path(env["GITHUB_WORKSPACE"]) / result.outputs["report"]).read_text())
    assert report["ok"] is False and any(code in report["error"] for code in codes)
    jsonschema.validate(report, SCHEMA)  # a failed run's report is a report
    assert creds.secret_key not in result.everything
    assert s3.admin.secret_key not in result.everything
