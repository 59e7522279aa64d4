"""Issue 16, acceptance 1 and 6: fork pull requests of a public S3 channel.

A fork's pull request gets no secrets: the preview runs with no AWS
credentials at all and reads the public bucket unsigned (SeaweedFS's
anonymous identity, `dev.seaweed.ANONYMOUS_ACTIONS`), shows the preview in
the job summary and writes nothing. Its token cannot comment, so the
`workflow_run` job posts the sticky comment from the uploaded report
(`mode: comment`), with no channel credentials, and edits it when run again.
Everything runs as the container would (tests/actionrun.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from actionrun import run_action, runner_env
from fakegithub import FakeGitHub
from s3proxy import CountingProxy
from s3server import S3Endpoint, upload_tree

from dev.sample import build_artifact, build_sample_channel
from indexer.cli import main as cli_main

PR = 31
HEAD = "feedface" * 5
NO_IMDS = {"AWS_EC2_METADATA_DISABLED": "true"}  # no 1 s probe of the instance metadata


def listing(s3: S3Endpoint, bucket: str) -> dict[str, str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def published_channel(s3: S3Endpoint, aws_env: S3Endpoint, tmp: Path, label: str) -> str:
    """A sample channel in a new bucket, indexed with credentials (cache in the bucket)."""
    if not s3.anonymous:
        pytest.skip("needs SeaweedFS's anonymous identity (not an external endpoint)")
    bucket = s3.new_bucket(label)
    upload_tree(s3.client(), bucket, "ch", build_sample_channel(tmp / "sample"))
    url = f"s3://{bucket}/ch"
    assert cli_main(["index", url, "--endpoint-url", s3.endpoint_url, "-q"]) == 0
    return url


def fork_event() -> dict[str, Any]:
    return {"number": PR, "pull_request": {"number": PR, "head": {"sha": HEAD}}}


def test_fork_preview_reads_a_public_bucket_unsigned(
    s3: S3Endpoint, aws_env: S3Endpoint, github: FakeGitHub, tmp_path: Path
) -> None:
    url = published_channel(s3, aws_env, tmp_path, "public")
    bucket = url.split("/")[2]
    before = listing(s3, bucket)
    staged = tmp_path / "staged"
    build_artifact(staged / "noarch", "pyhelper", "2.1", "py_0", run_exports=["pyhelper >=2.1"])
    github.read_only = True  # a fork's token
    inputs = {"channel": url, "endpoint-url": s3.endpoint_url, "staged": str(staged)}
    env = runner_env(
        tmp_path / "run",
        inputs,
        event_name="pull_request",
        event=fork_event(),
        api_url=github.url,
    )
    assert not any(name.startswith("AWS_") for name in env)  # no credentials at all
    result = run_action(env | NO_IMDS)
    assert result.status == 0, result.stdout + result.stderr
    assert "::notice title=run-exports-index%3A unsigned reads::" in result.stdout
    assert "--unsigned" in result.stdout  # the echoed command line says so
    assert "Mode **preview**" in result.summary
    assert "`pyhelper-2.1-py_0.conda` added with weak: `pyhelper >=2.1`" in result.summary
    assert "No pull-request comment" in result.summary  # the fork's token is read-only
    assert listing(s3, bucket) == before  # nothing written: not the channel, not the cache
    folder = Path(env["GITHUB_WORKSPACE"], result.outputs["report"]).parent
    assert json.loads((folder / "pull-request.json").read_text()) == {
        "number": PR,
        "head_sha": HEAD,
    }


def test_private_cache_preview_reads_only_staged_and_changed(
    s3: S3Endpoint, aws_env: S3Endpoint, s3_proxy: CountingProxy, tmp_path: Path
) -> None:
    url = published_channel(s3, aws_env, tmp_path, "pubch")
    bucket = url.split("/")[2]
    late = build_artifact(tmp_path / "late", "libbaz", "1.0", "h0_0", subdir="linux-64")
    s3.client().upload_file(str(late), bucket, "ch/linux-64/libbaz-1.0-h0_0.conda")
    staged = tmp_path / "staged"
    build_artifact(staged / "noarch", "docs", "1.1", "0")
    before = listing(s3, bucket)
    s3_proxy.reset()
    inputs = {"channel": url, "endpoint-url": s3_proxy.url, "staged": str(staged)}
    inputs["comment"] = "never"
    env = runner_env(tmp_path / "run", inputs, event_name="pull_request", event=fork_event())
    result = run_action(env | NO_IMDS)
    assert result.status == 0, result.stdout + result.stderr
    read = {seen.key for seen in s3_proxy.seen if seen.is_artifact_get}
    # the late upload, and the unreadable artifact (no published file describes it);
    # not the 5 artifacts the published files describe, and staged ones come from disk
    assert read == {"ch/linux-64/libbaz-1.0-h0_0.conda", "ch/noarch/broken-1.0-0.conda"}
    refused = [s for s in s3_proxy.seen if ".run-exports-index/" in s.key]
    assert refused and all(s.status == 403 for s in refused)  # the cache stays private
    report = json.loads(Path(env["GITHUB_WORKSPACE"], result.outputs["report"]).read_text())
    linux = report["subdirs"]["linux-64"]
    assert linux["artifacts"]["new"] == ["libbaz-1.0-h0_0.conda"]
    assert linux["baseline"].startswith("baseline from the published run_exports.json")
    assert "cannot be read" in linux["baseline"]
    assert "docs-1.1-0.conda" in report["subdirs"]["noarch"]["artifacts"]["new"]
    assert "baseline from the published" in result.summary
    assert listing(s3, bucket) == before


def test_unsigned_publish_is_refused_naming_the_input(tmp_path: Path) -> None:
    inputs = {"channel": "s3://some-bucket/ch", "mode": "publish", "unsigned": "true"}
    result = run_action(runner_env(tmp_path, inputs))
    assert result.status == 2
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "input 'unsigned'" in errors[0], result.stdout


def preview_artifact(github: FakeGitHub, tmp_path: Path) -> Path:
    """A fork's preview run (local channel): its report folder, as upload-artifact keeps it."""
    channel = tmp_path / "ch"
    build_artifact(channel / "noarch", "libfoo", "1.2", "h0_0", run_exports={"weak": ["libfoo"]})
    assert cli_main(["index", str(channel), "-q"]) == 0
    staged = tmp_path / "staged"
    build_artifact(staged / "noarch", "libfoo", "1.3", "h0_0", run_exports={"weak": ["libfoo"]})
    github.read_only = True
    env = runner_env(
        tmp_path / "preview",
        {"channel": str(channel), "staged": str(staged)},
        event_name="pull_request",
        event=fork_event(),
        api_url=github.url,
    )
    result = run_action(env)
    assert result.status == 0, result.stderr
    assert github.comments == {}
    github.read_only = False
    return Path(env["GITHUB_WORKSPACE"], result.outputs["report"]).parent


def comment_run(github: FakeGitHub, tmp: Path, artifact: Path, head: str = HEAD) -> Any:
    """The workflow_run job: download the artifact into its workspace, then `mode: comment`."""
    env = runner_env(
        tmp,
        {"mode": "comment", "report": "preview-report/report.json"},
        event_name="workflow_run",
        event={"workflow_run": {"event": "pull_request", "head_sha": head, "pull_requests": []}},
        api_url=github.url,
    )
    shutil.copytree(artifact, Path(env["GITHUB_WORKSPACE"], "preview-report"))
    assert not any(name.startswith("AWS_") for name in env)
    return run_action(env)


def test_workflow_run_posts_the_sticky_comment_then_edits_it(
    github: FakeGitHub, tmp_path: Path
) -> None:
    artifact = preview_artifact(github, tmp_path)
    github.pull_heads[PR] = HEAD
    refused_post = github.count("POST")  # the preview's, refused to the fork's token
    first = comment_run(github, tmp_path / "c1", artifact)
    assert first.status == 0, first.stdout + first.stderr
    assert len(github.comments[PR]) == 1 and github.count("POST") == refused_post + 1
    body = github.bodies(PR)[0]
    assert body.startswith("<!-- run-exports-index:default -->")
    assert "`libfoo-1.3-h0_0.conda` added with weak: `libfoo`" in body
    assert f"comment on #{PR}" in first.summary

    again = comment_run(github, tmp_path / "c2", artifact)
    assert again.status == 0, again.stdout + again.stderr
    assert len(github.comments[PR]) == 1 and github.count("PATCH") == 1
    assert github.count("POST") == refused_post + 1


def test_workflow_run_refuses_a_pull_request_at_another_head(
    github: FakeGitHub, tmp_path: Path
) -> None:
    artifact = preview_artifact(github, tmp_path)
    github.pull_heads[PR] = "0" * 40  # pushed to since, or the artifact names another PR
    result = comment_run(github, tmp_path / "c", artifact)
    assert result.status == 1
    assert "no open pull request" in result.stdout
    assert github.comments == {}


def test_workflow_run_renders_a_hostile_report_inertly(github: FakeGitHub, tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    hostile = "x](https://evil.example) @octocat <img src=x> ::error::owned"
    report = {
        "channel": "s3://b/ch",
        "mode": "preview",
        "subdirs": {
            "noarch": {
                "listed": 1,
                "artifacts": {"new": [hostile]},
                "warnings": [hostile, 7, {"x": 1}],
                "run_exports_changes": [
                    {"package": "p", "filename": hostile, "change": "added", "new": {"weak": [1]}}
                ],
            }
        },
    }
    (artifact / "report.json").write_text(json.dumps(report))
    (artifact / "pull-request.json").write_text(json.dumps({"number": PR}))
    github.pull_heads[PR] = HEAD
    result = comment_run(github, tmp_path / "c", artifact)
    assert result.status == 0, result.stdout + result.stderr
    body = github.bodies(PR)[0]
    # rendered as any report of ours: in code spans, or words made inert (no tag, link, mention)
    assert body.count(hostile) == body.count(f"`{hostile}`")
    assert "`@octocat` `<img` `src=x>`" in body  # the warning, word by word

    (artifact / "report.json").write_text("[" * 100_000)
    refused = comment_run(github, tmp_path / "c2", artifact)
    assert refused.status == 1 and "not valid JSON" in refused.stdout
