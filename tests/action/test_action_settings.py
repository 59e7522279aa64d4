"""Inputs → settings → the CLI's argv: validation messages and the flag mapping (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.action.settings import Settings, SettingsError, from_env, split_list, to_argv

REPORT, SUMMARY = Path("/tmp/r.json"), Path("/tmp/s.md")


def settings(**inputs: str) -> Settings:
    env = {"INPUT_CHANNEL": "s3://bucket/channel"}
    env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
    return from_env(env)


def test_defaults_map_to_a_plain_publish_run() -> None:
    argv = to_argv(settings(), REPORT, SUMMARY)
    assert argv == [
        "index",
        "s3://bucket/channel",
        "--jobs",
        "8",
        "--report",
        str(REPORT),
        "--summary",
        str(SUMMARY),
        "--quiet",
    ]


def test_every_input_maps_to_its_flag() -> None:
    s = settings(
        subdirs="linux-64, noarch\nosx-arm64",
        endpoint_url="http://127.0.0.1:8333",
        region="eu-west-1",
        cache="/tmp/cache",
        jobs="3",
        shards="false",
        prune_shards="7d",
        patches="patches/patch_instructions.json",
        staged="staged",
        local_copies="built",
        mode="dry-run",
        fail_on_error="true",
        verify="true",
        max_removal_share="80%",
        allow_mass_removal="true",
    )
    argv = to_argv(s, REPORT, SUMMARY)
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--subdir"] == [
        "linux-64",
        "noarch",
        "osx-arm64",
    ]
    assert pairs["--endpoint-url"] == "http://127.0.0.1:8333"
    assert pairs["--region"] == "eu-west-1"
    assert pairs["--cache-dir"] == "/tmp/cache"
    assert pairs["--jobs"] == "3"
    assert pairs["--prune-shards"] == "7d"
    assert pairs["--patches"] == "patches/patch_instructions.json"
    assert pairs["--staged"] == "staged"
    assert pairs["--local-copies"] == "built"
    assert pairs["--max-removal-share"] == "80%"
    assert {"--no-shards", "--dry-run", "--strict"} <= set(argv)
    assert {"--verify", "--allow-mass-removal"} <= set(argv)
    assert "--preview" not in argv


@pytest.mark.parametrize(
    ("event", "mode", "flag"),
    [
        ("pull_request", "", "--preview"),
        ("pull_request_target", "", "--preview"),
        ("push", "", None),
        ("schedule", "", None),
        ("pull_request", "publish", None),
        ("push", "preview", "--preview"),
        ("push", "dry-run", "--dry-run"),
    ],
)
def test_mode_defaults_to_preview_on_pull_requests(event: str, mode: str, flag: str) -> None:
    s = from_env({"INPUT_CHANNEL": "ch", "INPUT_MODE": mode, "GITHUB_EVENT_NAME": event})
    argv = to_argv(s, REPORT, SUMMARY)
    modes = {"--preview", "--dry-run"} & set(argv)
    assert modes == ({flag} if flag else set())


@pytest.mark.parametrize(
    ("inputs", "names"),
    [
        ({"INPUT_CHANNEL": ""}, "'channel'"),
        ({"INPUT_MODE": "publish-now"}, "'mode'"),
        ({"INPUT_JOBS": "many"}, "'jobs'"),
        ({"INPUT_JOBS": "0"}, "'jobs'"),
        ({"INPUT_SHARDS": "yes"}, "'shards'"),
        ({"INPUT_FAIL-ON-ERROR": "1"}, "'fail-on-error'"),
        ({"INPUT_COMMENT": "sometimes"}, "'comment'"),
        ({"INPUT_COMMENT-HEADER": "x -->"}, "'comment-header'"),
        ({"INPUT_ENDPOINT-URL": "127.0.0.1:8333"}, "'endpoint-url'"),
        ({"INPUT_VERIFY": "yes"}, "'verify'"),
        ({"INPUT_ALLOW-MASS-REMOVAL": "1"}, "'allow-mass-removal'"),
        ({"INPUT_MAX-REMOVAL-SHARE": "half"}, "'max-removal-share'"),
        ({"INPUT_MAX-REMOVAL-SHARE": "1.5"}, "'max-removal-share'"),
    ],
)
def test_bad_inputs_are_named_in_the_error(inputs: dict[str, str], names: str) -> None:
    env = {"INPUT_CHANNEL": "ch", **inputs}
    with pytest.raises(SettingsError, match=names):
        from_env(env)


def test_booleans_follow_the_yaml_core_schema() -> None:
    assert settings(shards="False").shards is False
    assert settings(shards="TRUE").shards is True
    assert settings(fail_on_error="true").fail_on_error is True


def test_values_are_trimmed_and_lists_split_on_commas_spaces_and_newlines() -> None:
    assert settings(jobs=" 4\n").jobs == 4
    assert split_list(" linux-64,noarch \n osx-64,,") == ["linux-64", "noarch", "osx-64"]
    assert split_list("") == []


def test_comment_policy() -> None:
    on_pr = from_env({"INPUT_CHANNEL": "c", "GITHUB_EVENT_NAME": "pull_request"})
    on_push = from_env({"INPUT_CHANNEL": "c", "GITHUB_EVENT_NAME": "push"})
    forced = from_env(
        {"INPUT_CHANNEL": "c", "GITHUB_EVENT_NAME": "push", "INPUT_COMMENT": "always"}
    )
    off = from_env(
        {"INPUT_CHANNEL": "c", "GITHUB_EVENT_NAME": "pull_request", "INPUT_COMMENT": "never"}
    )
    assert (on_pr.wants_comment, on_push.wants_comment, forced.wants_comment) == (True, False, True)
    assert off.wants_comment is False


def test_run_url_comes_from_the_runner_variables() -> None:
    s = from_env(
        {
            "INPUT_CHANNEL": "c",
            "GITHUB_SERVER_URL": "https://ghe.example/",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_RUN_ID": "17",
        }
    )
    assert s.context.run_url == "https://ghe.example/o/r/actions/runs/17"
