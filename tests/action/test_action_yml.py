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
