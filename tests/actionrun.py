"""Run the action's entrypoint as the runner would: a process with INPUT_* and GITHUB_*.

The container's ENTRYPOINT is `python -m indexer.action`; these helpers start
exactly that, with the environment the runner gives a Docker action (inputs as
`INPUT_<NAME>` with hyphens kept, every input present with action.yml's
default when the workflow does not set it), and read back the files the
runner would read: `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghs_FAKEtoken0123456789abcdefSECRET"
ENTRYPOINT = [sys.executable, "-m", "indexer.action"]


def action_inputs() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    env: dict[str, str]

    @property
    def everything(self) -> str:
        """Every channel the step shows anything through (for secret checks)."""
        files = Path(self.env["GITHUB_WORKSPACE"], ".run-exports-index-report").rglob("*")
        texts = [p.read_text(errors="replace") for p in files if p.is_file()]
        output_file = Path(self.env["GITHUB_OUTPUT"])  # absent when the step failed early
        raw_outputs = output_file.read_text() if output_file.exists() else ""
        return "\n".join([self.stdout, self.stderr, self.summary, raw_outputs, *texts])


def runner_env(
    tmp: Path,
    inputs: dict[str, str],
    *,
    event_name: str = "push",
    event: dict[str, Any] | None = None,
    api_url: str = "http://127.0.0.1:9/api/v3",
    token: str = TOKEN,
) -> dict[str, str]:
    """The environment of a Docker action step, as the runner builds it."""
    tmp.mkdir(parents=True, exist_ok=True)
    (workspace := tmp / "workspace").mkdir(exist_ok=True)
    (runner_temp := tmp / "runner_temp").mkdir(exist_ok=True)
    files = tmp / "file_commands"
    files.mkdir(exist_ok=True)
    event_path = tmp / "event.json"
    event_path.write_text(json.dumps(event or {}))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "PYTHONPATH": str(ROOT),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION": "index",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_OUTPUT": str(files / "set_output"),
        "GITHUB_STEP_SUMMARY": str(files / "step_summary"),
        "GITHUB_REPOSITORY": "octo/channel",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_API_URL": api_url,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(runner_temp),
    }
    for name, spec in action_inputs().items():
        default = str(spec.get("default", ""))
        if default == "${{ github.token }}":
            default = token
        env[f"INPUT_{name.upper()}"] = inputs.get(name, default)
    unknown = set(inputs) - set(action_inputs())
    assert not unknown, f"not inputs of action.yml: {unknown}"
    return env


def run_action(env: dict[str, str], timeout: float = 60) -> Result:
    process = subprocess.run(
        ENTRYPOINT,
        env=env,
        cwd=env["GITHUB_WORKSPACE"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output_file = Path(env["GITHUB_OUTPUT"])
    summary_file = Path(env["GITHUB_STEP_SUMMARY"])
    return Result(
        process.returncode,
        process.stdout,
        process.stderr,
        parse_outputs(output_file.read_text() if output_file.exists() else ""),
        summary_file.read_text() if summary_file.exists() else "",
        env,
    )


def parse_outputs(text: str) -> dict[str, str]:
    """Read `$GITHUB_OUTPUT` the way the runner does (heredoc blocks and name=value)."""
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if m := re.fullmatch(r"([^=<]+)<<(.+)", line):
            name, delimiter = m.groups()
            value: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            else:
                raise AssertionError(f"output {name}: delimiter {delimiter} never closed")
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value_text = line.split("=", 1)
            outputs[name] = value_text
        elif line:
            raise AssertionError(f"unparseable line in GITHUB_OUTPUT: {line!r}")
    return outputs
