"""Every input of the action, read and validated in one place.

The runner passes each `with:` input as an environment variable named
`INPUT_<NAME>` with the name upper-cased and its hyphens kept
(`INPUT_GITHUB-TOKEN`), and describes the run in `GITHUB_*` variables. Reading
them anywhere else would let action.yml and the code drift apart; the test
`tests/test_action_yml.py` parses action.yml and checks it against `INPUTS`.

Validation errors name the input as the workflow author wrote it, so that the
fix is obvious from the log line alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer.config import ADDRESSING_STYLES, Config, check_prune_age, parse_age
from indexer.errors import UsageError

# plan: the subdirs for a matrix; comment: the fork workflow's second half
MODES = ("publish", "preview", "dry-run", "plan", "comment")
UNSIGNED = ("auto", "true", "false")
COMMENT_POLICIES = ("auto", "always", "never")
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")

# Each input and the default action.yml declares for it. The runner always sets
# INPUT_* from action.yml's defaults; these apply when the entrypoint runs
# without a runner (local use, tests). github-token's default is an expression
# the runner evaluates, so outside a runner it is simply empty.
INPUTS: dict[str, str] = {
    "channel": "",
    "subdirs": "",
    "endpoint-url": "",
    "region": "",
    "mode": "",
    "cache": "",
    "jobs": "8",
    "shards": "true",
    "prune-shards": "",
    "patches": "",
    "channel-patches": "true",
    "staged": "",
    "local-copies": "",
    "comment": "auto",
    "comment-header": "default",
    "github-token": "",
    "fail-on-error": "false",
    "verify": "false",
    "allow-mass-removal": "false",
    "max-removal-share": "0.5",
    "unsigned": "auto",
    "report": "",
    "repodata": "false",
    "addressing-style": "",
}

# Every option of `run-exports-index index` and the input that sets it; a test
# (tests/action/test_action_yml.py) checks this against the CLI's parser, so a
# new flag cannot be forgotten here. The run mode flags map to `mode`.
FLAG_INPUTS: dict[str, str] = {
    "--subdir": "subdirs",
    "--cache-dir": "cache",
    "--jobs": "jobs",
    "--dry-run": "mode",
    "--preview": "mode",
    "--staged": "staged",
    "--patches": "patches",
    "--no-channel-patches": "channel-patches",
    "--strict": "fail-on-error",
    "--verify": "verify",
    "--max-removal-share": "max-removal-share",
    "--allow-mass-removal": "allow-mass-removal",
    "--no-shards": "shards",
    "--repodata": "repodata",
    "--prune-shards": "prune-shards",
    "--endpoint-url": "endpoint-url",
    "--region": "region",
    "--addressing-style": "addressing-style",
    "--unsigned": "unsigned",
    "--local-copies": "local-copies",
}
# Options deliberately without an input, and why.
CLI_ONLY: dict[str, str] = {
    "--help": "prints the usage",
    "--report": "the action always writes it to the workspace (output `report`)",
    "--summary": "the action always writes it to the workspace (output `summary`)",
    "--quiet": "the action prints the summary itself, in a log group",
    "--verbose": "set by re-running the job with debug logging (RUNNER_DEBUG=1)",
    "--profile": "a runner has no AWS config profiles; credentials come as AWS_* "
    "variables (or set AWS_PROFILE in the step's env)",
}
TRUE = ("true", "True", "TRUE")  # YAML 1.2 core schema, as actions/toolkit's getBooleanInput
FALSE = ("false", "False", "FALSE")
HEADER_RE = re.compile(r"^[A-Za-z0-9._/ -]{1,100}$")


class SettingsError(ValueError):
    """An input has a value the action cannot use; the message names the input."""


@dataclass(frozen=True)
class Context:
    """What the runner tells about this run (the `GITHUB_*` and `RUNNER_*` variables)."""

    event_name: str = ""
    event_path: str = ""
    repository: str = ""
    sha: str = ""
    server_url: str = "https://github.com"
    api_url: str = "https://api.github.com"
    run_id: str = ""
    workspace: str = ""
    runner_temp: str = ""
    output_path: str = ""
    summary_path: str = ""
    step: str = ""
    debug: bool = False  # RUNNER_DEBUG=1: the run was re-run with debug logging on

    @property
    def run_url(self) -> str:
        """The page of this workflow run; where the full job summary lives."""
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def is_pull_request(self) -> bool:
        return self.event_name in PULL_REQUEST_EVENTS


@dataclass(frozen=True)
class Settings:
    """The validated inputs, typed."""

    channel: str
    subdirs: list[str] = field(default_factory=list)
    endpoint_url: str = ""
    region: str = ""
    mode: str = "publish"
    cache: str = ""
    jobs: int = 8
    shards: bool = True
    prune_shards: str = ""
    patches: str = ""
    channel_patches: bool = True
    staged: str = ""
    local_copies: str = ""
    comment: str = "auto"
    comment_header: str = "default"
    github_token: str = ""
    fail_on_error: bool = False
    verify: bool = False
    allow_mass_removal: bool = False
    max_removal_share: str = "0.5"
    # auto: unsigned reads in a preview when boto3 finds no credentials (fork pull requests)
    unsigned: str = "auto"
    report: str = ""  # mode: comment: the report JSON a preview run uploaded
    repodata: bool = False
    addressing_style: str = ""
    context: Context = field(default_factory=Context)

    @property
    def wants_comment(self) -> bool:
        """auto: on pull-request events only; always: whenever a pull request can be found."""
        if self.comment == "never":
            return False
        return self.comment == "always" or self.context.is_pull_request


def read_input(env: Mapping[str, str], name: str) -> str:
    """One input, trimmed, as the runner passes it (hyphens kept in the variable name)."""
    return env.get(f"INPUT_{name.upper()}", INPUTS[name]).strip()


def read_context(env: Mapping[str, str]) -> Context:
    def get(name: str, default: str = "") -> str:
        return env.get(name, "") or default

    return Context(
        event_name=get("GITHUB_EVENT_NAME"),
        event_path=get("GITHUB_EVENT_PATH"),
        repository=get("GITHUB_REPOSITORY"),
        sha=get("GITHUB_SHA"),
        server_url=get("GITHUB_SERVER_URL", Context.server_url),
        api_url=get("GITHUB_API_URL", Context.api_url),
        run_id=get("GITHUB_RUN_ID"),
        workspace=get("GITHUB_WORKSPACE"),
        runner_temp=get("RUNNER_TEMP"),
        output_path=get("GITHUB_OUTPUT"),
        summary_path=get("GITHUB_STEP_SUMMARY"),
        step=get("GITHUB_ACTION"),
        debug=get("RUNNER_DEBUG") == "1",
    )


def from_env(env: Mapping[str, str]) -> Settings:
    """Read and validate every input; raise SettingsError naming the first bad one."""
    value = {name: read_input(env, name) for name in INPUTS}
    context = read_context(env)
    if not value["channel"] and value["mode"] != "comment":
        raise SettingsError("input 'channel' is required: a directory or s3://bucket/prefix")
    endpoint = value["endpoint-url"]
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise SettingsError(f"input 'endpoint-url' must start with http:// or https://: {endpoint}")
    mode = value["mode"] or ("preview" if context.is_pull_request else "publish")
    if value["unsigned"] == "true" and mode == "publish":
        raise SettingsError(
            "input 'unsigned' is true but mode is publish: writes are never attempted unsigned "
            "(--unsigned); give the job credentials, or use mode: preview or dry-run"
        )
    header = value["comment-header"]
    if not HEADER_RE.match(header):
        raise SettingsError(
            f"input 'comment-header' must be 1-100 letters, digits, spaces or . _ / -: {header!r}"
        )
    return Settings(
        channel=value["channel"],
        subdirs=split_list(value["subdirs"]),
        endpoint_url=endpoint,
        region=value["region"],
        mode=_choice("mode", mode, MODES),
        cache=value["cache"],
        jobs=_positive_int("jobs", value["jobs"]),
        shards=_boolean("shards", value["shards"]),
        prune_shards=value["prune-shards"],
        patches=value["patches"],
        channel_patches=_boolean("channel-patches", value["channel-patches"]),
        staged=value["staged"],
        local_copies=value["local-copies"],
        comment=_choice("comment", value["comment"], COMMENT_POLICIES),
        comment_header=header,
        github_token=value["github-token"],
        fail_on_error=_boolean("fail-on-error", value["fail-on-error"]),
        verify=_boolean("verify", value["verify"]),
        allow_mass_removal=_boolean("allow-mass-removal", value["allow-mass-removal"]),
        max_removal_share=_share("max-removal-share", value["max-removal-share"]),
        unsigned=_choice("unsigned", value["unsigned"], UNSIGNED),
        report=value["report"],
        repodata=_boolean("repodata", value["repodata"]),
        addressing_style=_choice_or_empty(
            "addressing-style", value["addressing-style"], ADDRESSING_STYLES
        ),
        context=context,
    )


def split_list(text: str) -> list[str]:
    """`linux-64, noarch` or one per line (YAML `|` blocks): commas, spaces, newlines."""
    return [item for item in re.split(r"[\s,]+", text) if item]


def to_argv(settings: Settings, report: Path, summary: Path) -> list[str]:
    """The `run-exports-index index` command line for these settings (pure)."""
    argv = ["index", settings.channel]
    for subdir in settings.subdirs:
        argv += ["--subdir", subdir]
    optional = {
        "--endpoint-url": settings.endpoint_url,
        "--region": settings.region,
        "--addressing-style": settings.addressing_style,
        "--cache-dir": settings.cache,
        "--prune-shards": settings.prune_shards,
        "--patches": settings.patches,
        "--staged": settings.staged,
        "--local-copies": settings.local_copies,
    }
    for flag, text in optional.items():
        if text:
            argv += [flag, text]
    argv += ["--jobs", str(settings.jobs)]
    if not settings.shards:
        argv.append("--no-shards")
    if settings.repodata:
        argv.append("--repodata")
    if not settings.channel_patches:
        argv.append("--no-channel-patches")
    if settings.mode == "dry-run":
        argv.append("--dry-run")
    elif settings.mode == "preview":
        argv.append("--preview")
    if settings.fail_on_error:
        argv.append("--strict")
    if settings.verify:
        argv.append("--verify")
    if settings.max_removal_share != INPUTS["max-removal-share"]:
        argv += ["--max-removal-share", settings.max_removal_share]
    if settings.allow_mass_removal:
        argv.append("--allow-mass-removal")
    if settings.unsigned == "true":  # "auto" is decided before (run.resolve_unsigned)
        argv.append("--unsigned")
    if settings.context.debug:  # "Enable debug logging" on a re-run: the CLI's --verbose
        argv.append("--verbose")
    # The action prints the summary itself (in a log group), so the CLI stays quiet.
    argv += ["--report", str(report), "--summary", str(summary), "--quiet"]
    return argv


def to_config(settings: Settings, report: Path, summary: Path) -> Config:
    """The run's `Config` for these settings: what the pipeline is called with.

    The same Config the command line `to_argv` gives would build (the log
    shows that command line, to rerun the step by hand).
    """
    prune = None
    if settings.prune_shards:
        try:
            prune = check_prune_age(parse_age(settings.prune_shards))
        except UsageError as exc:  # worded as the command line words it
            raise UsageError(
                f"argument --prune-shards: {str(exc).removeprefix('--prune-shards: ')}"
            ) from None
    share = settings.max_removal_share
    return Config(
        channel=settings.channel,
        subdirs=list(settings.subdirs),
        jobs=settings.jobs,
        dry_run=settings.mode == "dry-run",
        preview=settings.mode == "preview",
        strict=settings.fail_on_error,
        shards=settings.shards,
        prune_shards=prune,
        patches_from=settings.patches or None,
        channel_patches=settings.channel_patches,
        verify=settings.verify,
        max_removal_share=float(share[:-1]) / 100 if share.endswith("%") else float(share),
        allow_mass_removal=settings.allow_mass_removal,
        staged=Path(settings.staged) if settings.staged else None,
        local_copies=Path(settings.local_copies) if settings.local_copies else None,
        cache_dir=Path(settings.cache) if settings.cache else None,
        report=report,
        summary=summary,
        # The action prints the summary itself (in a log group), so the run stays quiet.
        quiet=True,
        verbose=settings.context.debug,  # "Enable debug logging" on a re-run
        endpoint_url=settings.endpoint_url or None,
        region=settings.region or None,
        unsigned=settings.unsigned == "true",
        addressing_style=settings.addressing_style or None,
        repodata=settings.repodata,
    )


def _choice(name: str, text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise SettingsError(f"input {name!r} must be one of {', '.join(allowed)}: {text!r}")
    return text


def _choice_or_empty(name: str, text: str, allowed: tuple[str, ...]) -> str:
    return _choice(name, text, allowed) if text else ""


def _boolean(name: str, text: str) -> bool:
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SettingsError(f"input {name!r} must be true or false: {text!r}")


def _share(name: str, text: str) -> str:
    """A share (0-1, or a percentage) as the CLI's --max-removal-share takes it."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise SettingsError(
            f"input {name!r} must be a share such as 0.5 or 50%: {text!r}"
        ) from None
    if not 0 <= value <= 1:
        raise SettingsError(f"input {name!r} must be between 0 and 1 (0% and 100%): {text!r}")
    return text


def _positive_int(name: str, text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise SettingsError(f"input {name!r} must be a whole number: {text!r}") from None
    if number < 1:
        raise SettingsError(f"input {name!r} must be at least 1: {number}")
    return number
