"""Acceptance 2 against S3: the entrypoint process indexes a channel in SeaweedFS.

Credentials come from AWS_* variables, as aws-actions/configure-aws-credentials
leaves them for the step; the S3 secret must never show up in anything the
step writes. Skipped while this build of the CLI has no S3 backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from actionrun import run_action, runner_env

from indexer.cli import build_parser
from indexer.sample import build_sample_channel

seaweed = pytest.importorskip("indexer.seaweed", reason="no SeaweedFS helper in this build")
pytest.importorskip("indexer.s3", reason="no S3 backend in this build")
BUCKET = "action-channel"


def _cli_supports_s3() -> bool:
    try:
        build_parser().parse_args(["index", "s3://b/p", "--endpoint-url", "http://x"])
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[seaweed.SeaweedServer]:
    if not _cli_supports_s3():
        pytest.skip("the CLI does not take --endpoint-url yet")
    import boto3

    server = seaweed.SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=server.admin.access_key,
            aws_secret_access_key=server.admin.secret_key,
        )
        client.create_bucket(Bucket=BUCKET)
        root = build_sample_channel(tmp_path_factory.mktemp("sample") / "ch")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            client.upload_file(str(path), BUCKET, f"ch/{path.relative_to(root)}")
        yield server
    finally:
        server.stop()


def test_entrypoint_indexes_an_s3_channel(s3: seaweed.SeaweedServer, tmp_path: Path) -> None:
    inputs = {
        "channel": f"s3://{BUCKET}/ch",
        "endpoint-url": s3.endpoint_url,
        "region": "us-east-1",
        "mode": "publish",
    }
    aws = {
        "AWS_ACCESS_KEY_ID": s3.admin.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.admin.secret_key,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env = runner_env(tmp_path / "1", inputs) | aws
    result = run_action(env)
    assert result.status == 0, result.stdout + result.stderr
    assert result.outputs["changed"] == "true"
    assert result.outputs["artifacts-new"] == "7"
    assert result.outputs["artifacts-unreadable"] == "1"
    assert "noarch/run_exports.json" in json.loads(result.outputs["uploaded"])
    assert f"s3://{BUCKET}/ch" in result.summary
    warnings = [line for line in result.stdout.splitlines() if line.startswith("::warning ")]
    assert any(f"file=s3%3A//{BUCKET}/ch/noarch/broken-1.0-0.conda" in w for w in warnings)
    assert s3.admin.secret_key not in result.everything

    again = run_action(runner_env(tmp_path / "2", inputs) | aws)
    assert again.status == 0, again.stdout + again.stderr
    assert again.outputs["changed"] == "false"
