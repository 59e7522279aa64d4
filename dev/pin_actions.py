"""Pin the actions workflows use by commit SHA, and check that nothing is left unpinned.

A tag such as `actions/checkout@v4` can be moved to other code by whoever
controls that repository; a commit SHA cannot. This rewrites

    uses: owner/repo@v4          ->  uses: owner/repo@<40 hex> # v4

resolving each tag with the GitHub API (`GET /repos/{owner}/{repo}/commits/{ref}`)
or, with `--git`, with `git ls-remote`. It needs the network, so it is meant for a
maintainer's machine (re-run it to move to newer releases); the release workflow
runs `--check`, which needs nothing but the files and fails while a `uses:` is
left on a tag or branch.

    python -m dev.pin_actions .github/workflows .github/examples
    python -m dev.pin_actions --check .github/workflows .github/examples \
        --allow org/run-exports-index

Left alone: local actions (`./…`), `docker://…@sha256:…` and the repositories given
with `--allow` (the examples' own `org/run-exports-index@v1`, a placeholder users
replace). Only the `uses:` lines change; every other byte of a file stays.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

API_URL = "https://api.github.com"
TIMEOUT_S = 30.0
MAX_RESPONSE_BYTES = 1 << 20  # a commit's JSON is a few KiB; refuse anything absurd
SHA = re.compile(r"[0-9a-f]{40}")
USES = re.compile(
    r"^(?P<lead>[ \t]*(?:-[ \t]+)?uses:[ \t]*)(?P<quote>['\"]?)(?P<ref>[^\s'\"#]+)(?P=quote)"
    r"(?P<trail>[ \t]*(?:#[ \t]*(?P<comment>.*?))?)[ \t]*$"
)
ACTION = re.compile(r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(?P<path>/[^@]*)?@(?P<ref>.+)")

Resolver = Callable[[str, str], str]


class PinError(Exception):
    """A tag that cannot be resolved to a commit: the message says which and why."""


@dataclass(frozen=True)
class Use:
    """One `uses:` line of a workflow file."""

    path: Path
    line: int  # 1-based
    reference: str  # as written, e.g. actions/checkout@v4
    comment: str | None


def workflow_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, and those under the folders named, in a stable order."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix in {".yml", ".yaml"})
        else:
            found.add(path)
    return sorted(found)


def uses_in(path: Path) -> list[Use]:
    """Every `uses:` line in `path`."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = USES.match(line)
        if match:
            found.append(Use(path, number, match["ref"], match["comment"]))
    return found


def problem(use: Use, allowed: frozenset[str]) -> str | None:
    """Why `use` is not pinned well, or None when it is (or is exempt)."""
    reference = use.reference
    if reference.startswith(("./", "$/")):
        return None  # this repository, at the commit being run
    if reference.startswith("docker://"):
        return None if "@sha256:" in reference else "docker image not pinned by digest"
    match = ACTION.fullmatch(reference)
    if match is None:
        return "not owner/repo@ref"
    if match["repo"].lower() in allowed:
        return None
    if not SHA.fullmatch(match["ref"]):
        return f"on {match['ref']!r}, not a commit SHA"
    if not use.comment:
        return "pinned, but no comment naming the version (# vX)"
    return None


def check(paths: Iterable[Path], allowed: frozenset[str]) -> list[str]:
    """One line per `uses:` left unpinned, `file:line: reference: why`."""
    return [
        f"{use.path}:{use.line}: {use.reference}: {why}"
        for path in workflow_files(paths)
        for use in uses_in(path)
        if (why := problem(use, allowed))
    ]


def pin_text(text: str, resolve: Resolver, allowed: frozenset[str]) -> str:
    """`text` with every third-party `uses: owner/repo@tag` pinned to the tag's commit."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        match = USES.match(line)
        if match is None:
            continue
        action = ACTION.fullmatch(match["ref"])
        if action is None or action["repo"].lower() in allowed or SHA.fullmatch(action["ref"]):
            continue  # local, docker://, exempt or already pinned
        sha = resolve(action["repo"], action["ref"])
        pinned = f"{action['repo']}{action['path'] or ''}@{sha}"
        comment = f"# {action['ref']}" + (f" {match['comment']}" if match["comment"] else "")
        quote = match["quote"]
        lines[index] = f"{match['lead']}{quote}{pinned}{quote} {comment}"
    return "\n".join(lines)


def _checked_sha(value: object, repo: str, ref: str) -> str:
    if not isinstance(value, str) or not SHA.fullmatch(value):
        raise PinError(f"{repo}@{ref}: the answer is not a commit SHA: {value!r:.60}")
    return value


def api_resolver(api_url: str = API_URL, token: str | None = None) -> Resolver:
    """Resolve with `GET {api_url}/repos/{owner}/{repo}/commits/{ref}` (tags are peeled)."""

    def resolve(repo: str, ref: str) -> str:
        url = f"{api_url.rstrip('/')}/repos/{repo}/commits/{urllib.parse.quote(ref, safe='')}"
        request = urllib.request.Request(url, headers={"Accept": "application/vnd.github+json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise PinError(
                f"{repo}@{ref}: GitHub API answered {error.code} {error.reason}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise PinError(f"{repo}@{ref}: GitHub API not reached: {error}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise PinError(f"{repo}@{ref}: GitHub API answer over {MAX_RESPONSE_BYTES} bytes")
        try:
            sha = json.loads(body).get("sha")
        except (ValueError, AttributeError):
            raise PinError(f"{repo}@{ref}: GitHub API answer is not a commit object") from None
        return _checked_sha(sha, repo, ref)

    return resolve


def git_resolver(url_template: str) -> Resolver:
    """Resolve with `git ls-remote` on `url_template` ({owner}, {repo}); peeled tags first."""

    def resolve(repo: str, ref: str) -> str:
        owner, name = repo.split("/")
        url = url_template.format(owner=owner, repo=name)
        wanted = [f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}"]
        try:
            result = subprocess.run(
                ["git", "ls-remote", "--", url, *wanted],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PinError(f"{repo}@{ref}: git ls-remote failed: {error}") from None
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
            raise PinError(f"{repo}@{ref}: git ls-remote failed: {reason}")
        refs = {}
        for line in result.stdout.splitlines():
            sha, _, refname = line.partition("\t")
            refs[refname] = sha
        for refname in wanted:
            if refname in refs:
                return _checked_sha(refs[refname], repo, ref)
        raise PinError(f"{repo}@{ref}: no such tag or branch")

    return resolve


def cached(resolve: Resolver) -> Resolver:
    """Ask once per repository and ref, however many files use it."""
    seen: dict[tuple[str, str], str] = {}

    def resolve_once(repo: str, ref: str) -> str:
        key = (repo.lower(), ref)
        if key not in seen:
            seen[key] = resolve(repo, ref)
        return seen[key]

    return resolve_once


def main(argv: list[str] | None = None) -> int:
    """Pin (or with --check, report) every file; nothing is written unless all resolve."""
    parser = argparse.ArgumentParser(
        prog="python -m dev.pin_actions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, help="workflow files or folders")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if unpinned")
    parser.add_argument(
        "--allow", action="append", default=[], metavar="OWNER/REPO", help="leave on its tag"
    )
    parser.add_argument(
        "--api-url",
        default=os.environ.get("GITHUB_API_URL", API_URL),
        help="GitHub API root (default: $GITHUB_API_URL or api.github.com); token: $GITHUB_TOKEN",
    )
    parser.add_argument(
        "--git",
        metavar="URL_TEMPLATE",
        help="resolve with git ls-remote instead, e.g. https://github.com/{owner}/{repo}",
    )
    args = parser.parse_args(argv)
    allowed = frozenset(repo.lower() for repo in args.allow)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"pin_actions: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(args.paths, allowed)
        for line in problems:
            print(line)
        print(
            f"pin_actions: {len(problems)} reference(s) not pinned by commit SHA", file=sys.stderr
        )
        return 1 if problems else 0
    if args.git:
        resolve = cached(git_resolver(args.git))
    else:
        resolve = cached(api_resolver(args.api_url, os.environ.get("GITHUB_TOKEN") or None))
    updated: dict[Path, str] = {}
    try:
        for path in workflow_files(args.paths):
            text = path.read_text(encoding="utf-8")
            pinned = pin_text(text, resolve, allowed)
            if pinned != text:
                updated[path] = pinned
    except PinError as error:
        print(f"pin_actions: {error}; nothing written", file=sys.stderr)
        return 1
    for path, text in updated.items():
        path.write_text(text, encoding="utf-8")
        print(f"pinned {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
