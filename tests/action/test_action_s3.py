"""Acceptance 2 against S3: the entrypoint process indexes a channel in S3.

Uses the session's S3 endpoint (SeaweedFS on loopback, or the one named by
RUN_EXPORTS_INDEX_TEST_S3). Credentials come from AWS_* variables, as
aws-actions/configure-aws-credentials leaves them for the step; the S3 secret
must never show up in anything the step writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from actionrun import run_action, runner_env
from s3server import S3Endpoint, upload_tree

from dev.sample import build_sample_channel


@pytest.fixture(scope="module")
def channel_url(s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory) -> str:
    bucket = s3.new_bucket("action")
    root = build_sample_channel(tmp_path_factory.mktemp("sample") / "ch")
    upload_tree(s3.client(), bucket, "ch", root)
    return f"s3://{bucket}/ch"


def test_entrypoint_indexes_an_s3_channel(s3: S3Endpoint, channel_url: str, tmp_path: Path) -> None:
    inputs = {
        "channel": channel_url,
        "endpoint-url": s3.endpoint_url,
        "region": s3.region,
        "mode": "publish",
    }
    aws = {**s3.env(), "AWS_EC2_METADATA_DISABLED": "true"}
    result = run_action(runner_env(tmp_path / "1", inputs) | aws)
    assert result.status == 0, result.stdout + result.stderr
    assert result.outputs["changed"] == "true"
    assert result.outputs["artifacts-new"] == "7"
    assert result.outputs["artifacts-unreadable"] == "1"
    assert "noarch/run_exports.json" in json.loads(result.outputs["uploaded"])
    assert channel_url in result.summary
    warnings = [line for line in result.stdout.splitlines() if line.startswith("::warning ")]
    quoted = channel_url.replace("s3://", "s3%3A//")
    assert any(f"file={quoted}/noarch/broken-1.0-0.conda" in w for w in warnings)
    assert s3.admin.secret_key not in result.everything

    again = run_action(runner_env(tmp_path / "2", inputs) | aws)
    assert again.status == 0, again.stdout + again.stderr
    assert again.outputs["changed"] == "false"
