"""GitHub Actions workflow commands and environment files.

The runner reads `::command::` lines from stdout and files named by
`GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY`. Values are escaped here, once, so a
filename with a colon or a reason with a newline can never break a command or
inject another one.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from indexer.action.truncate import truncate_markdown
from indexer.redact import redact

SUMMARY_LIMIT = 1024 * 1024  # bytes the runner accepts in one step's summary
ANNOTATIONS_SHOWN = 10  # GitHub shows at most 10 warning annotations per step


def escape_data(text: str) -> str:
    """A command's message: `%`, CR and LF would end or alter the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's `key=value` property: additionally `:` and `,` are separators."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, out: TextIO | None = None, **properties: str) -> None:
    """Print one `::name key=value,...::message` workflow command.

    Message and properties are redacted (no credential of a URL reaches the
    log), except for `add-mask`, whose message is the secret itself.
    """
    if name != "add-mask":
        message = redact(message)
        properties = {key: redact(value) for key, value in properties.items()}
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    head = f"::{name} {props}" if props else f"::{name}"
    print(f"{head}::{escape_data(message)}", file=out or sys.stdout, flush=True)


def add_mask(secret: str) -> None:
    """Ask the runner to hide `secret` in every later log line (each line of it)."""
    for line in secret.splitlines():
        if line.strip():
            command("add-mask", line)


def warning(message: str, **properties: str) -> None:
    command("warning", message, **properties)


def error(message: str, **properties: str) -> None:
    command("error", message, **properties)


@contextmanager
def stop_commands() -> Iterator[None]:
    """The runner ignores workflow commands inside (untrusted text being printed):
    `::stop-commands::<random token>` ... `::<token>::`."""
    token = f"run-exports-index-{secrets.token_hex(16)}"
    print(f"::stop-commands::{token}", flush=True)
    try:
        yield
    finally:
        sys.stdout.flush()
        print(f"::{token}::", flush=True)


@contextmanager
def group(title: str) -> Iterator[None]:
    """A foldable section of the log; closed even when the body raises."""
    command("group", title)
    try:
        yield
    finally:
        sys.stderr.flush()
        command("endgroup", "")


def write_outputs(path: str, outputs: Mapping[str, str]) -> None:
    """Append step outputs to `$GITHUB_OUTPUT` as `name<<DELIM` blocks.

    The heredoc form is safe for any value (JSON lists, paths with newlines); the
    delimiter is random and checked against the value, as the runner requires.
    """
    if not path:
        for name, value in outputs.items():
            print(f"output {name}={value}")
        return
    with open(path, "a", encoding="utf-8") as file:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value or delimiter in name:
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def write_summary(path: str, markdown: str, run_url: str = "") -> str:
    """Append `markdown` to `$GITHUB_STEP_SUMMARY`, cut to the 1 MiB the runner allows.

    Returns what was written (after truncation); writes nothing without a path.
    """
    existing = Path(path).stat().st_size if path and Path(path).exists() else 0
    limit = max(SUMMARY_LIMIT - existing, 0)
    text = truncate_markdown(
        markdown,
        limit,
        measure=lambda s: len(s.encode("utf-8")),
        note="The summary was too long for the job summary; the JSON report has everything.",
        link=run_url,
    )
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(text)
    return text


def notice(message: str, **properties: str) -> None:
    command("notice", message, **properties)
