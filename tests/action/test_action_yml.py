"""Acceptance 1: action.yml and the entrypoint agree.

Every input declared is read by `indexer.action.settings` (and nothing else is
read), with the same default; every output declared is written; all of them are
documented in action.yml and docs/action.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from indexer.action import run, settings

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


class RecordingEnv(dict):
    """An environment that remembers which variables were looked up."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key: str, default: object = None) -> object:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> object:
        self.read.add(key)
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("settings must look inputs up by name, not scan the environment")


def test_inputs_match_the_settings_module() -> None:
    assert set(ACTION["inputs"]) == set(settings.INPUTS)


def test_every_input_is_kebab_case_described_and_defaulted_like_the_code() -> None:
    for name, spec in ACTION["inputs"].items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name), name
        assert spec.get("description", "").strip(), f"input {name} has no description"
        assert "default" in spec, f"input {name} has no default"
        expected = settings.INPUTS[name] if name != "github-token" else "${{ github.token }}"
        assert str(spec["default"]) == expected, f"input {name}: action.yml and settings differ"


def test_every_input_is_read_under_the_runner_variable_name() -> None:
    env = RecordingEnv({"INPUT_CHANNEL": "ch"})
    settings.from_env(env)
    wanted = {f"INPUT_{name.upper()}" for name in ACTION["inputs"]}
    assert "INPUT_GITHUB-TOKEN" in wanted  # hyphens are kept, as the runner does
    assert wanted <= env.read
    assert {k for k in env.read if k.startswith("INPUT_")} == wanted


def test_every_output_is_declared_written_and_described() -> None:
    files = run.Files(Path("r.json"), Path("s.md"), "r.json", "s.md")
    written = run.outputs({"totals": {}, "uploaded": []}, files)
    assert set(written) == set(ACTION["outputs"])
    for name, spec in ACTION["outputs"].items():
        assert spec.get("description", "").strip(), f"output {name} has no description"


def test_docker_action_with_branding() -> None:
    assert ACTION["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert ACTION["branding"]["icon"] and ACTION["branding"]["color"]
    assert ACTION["name"] and ACTION["description"]


def test_the_usage_docs_list_every_input_and_output() -> None:
    docs = (ROOT / "docs" / "action.md").read_text()
    for name in [*ACTION["inputs"], *ACTION["outputs"]]:
        assert f"`{name}`" in docs, f"docs/action.md does not document {name}"


def _index_flags() -> set[str]:
    """Every option string of `run-exports-index index` (long form), from the parser."""
    from indexer.arguments import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    index = commands.choices["index"]
    flags: set[str] = set()
    for action in index._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        flags.update(longs[:1])
    return flags


def test_every_index_flag_has_an_input_or_a_reason_to_be_cli_only() -> None:
    flags = _index_flags()
    assert "--repodata" in flags and "--subdir" in flags
    mapped, cli_only = set(settings.FLAG_INPUTS), set(settings.CLI_ONLY)
    assert not mapped & cli_only
    assert flags == mapped | cli_only, (
        f"flags without an input or a reason: {sorted(flags - mapped - cli_only)}; "
        f"listed but not flags: {sorted((mapped | cli_only) - flags)}"
    )
    for flag, name in settings.FLAG_INPUTS.items():
        assert name in ACTION["inputs"], f"{flag} maps to {name}, which action.yml lacks"
    for flag, why in settings.CLI_ONLY.items():
        assert why.strip(), flag
    # and every input sets something: a flag, or what the action itself does
    # report: the preview report `mode: comment` posts (the fork workflow's second half)
    action_only = {"channel", "comment", "comment-header", "github-token", "report"}
    assert set(ACTION["inputs"]) == set(settings.FLAG_INPUTS.values()) | action_only


def test_every_mapped_input_reaches_its_flag() -> None:
    """Setting each input to a non-default value puts its flag on the command line."""
    env = {
        "INPUT_CHANNEL": "s3://b/p",
        "INPUT_SUBDIRS": "noarch",
        "INPUT_CACHE": "c",
        "INPUT_JOBS": "3",
        "INPUT_MODE": "dry-run",
        "INPUT_STAGED": "st",
        "INPUT_PATCHES": "p",
        "INPUT_CHANNEL-PATCHES": "false",
        "INPUT_FAIL-ON-ERROR": "true",
        "INPUT_VERIFY": "true",
        "INPUT_MAX-REMOVAL-SHARE": "0.9",
        "INPUT_ALLOW-MASS-REMOVAL": "true",
        "INPUT_REPODATA": "true",
        "INPUT_PRUNE-SHARDS": "7d",
        "INPUT_ENDPOINT-URL": "http://127.0.0.1:1",
        "INPUT_REGION": "r",
        "INPUT_ADDRESSING-STYLE": "path",
        "INPUT_UNSIGNED": "true",
        "INPUT_LOCAL-COPIES": "out",
    }
    argv = settings.to_argv(settings.from_env(env), Path("r"), Path("s"))
    missing = {f for f in settings.FLAG_INPUTS if f not in argv} - {"--preview", "--no-shards"}
    assert not missing
    no_shards = settings.to_argv(
        settings.from_env({"INPUT_CHANNEL": "c", "INPUT_SHARDS": "false", "INPUT_MODE": "preview"}),
        Path("r"),
        Path("s"),
    )
    assert "--no-shards" in no_shards and "--preview" in no_shards
