"""Point action.yml at a prebuilt image by digest, or back at the Dockerfile.

main keeps `image: Dockerfile` (every change is tested as built); the release
workflow pushes the multi-arch image to GHCR and, on the commit the version tag
ends up on, rewrites `runs.image` to `docker://ghcr.io/OWNER/REPO@sha256:<index
digest>` so that users' jobs pull one image instead of building it.

Only a digest is accepted: a tag can be moved after the release, a digest
cannot, and the multi-arch index digest serves amd64 and arm64 runners alike.
Only the `image:` line under `runs:` changes, so comments, the inputs' order and
everything else in the file stay as they are; running twice changes nothing.

    python -m dev.pin_image --image ghcr.io/owner/repo@sha256:<64 hex>
    python -m dev.pin_image --dockerfile
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DOCKERFILE = "Dockerfile"
# registry host (optional port) / lowercase path components @ sha256 digest; no tag.
DIGEST_REFERENCE = re.compile(
    r"(?:docker://)?"
    r"(?P<name>[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)"
    r"@(?P<digest>sha256:[0-9a-f]{64})"
)
RUNS = re.compile(r"^runs:[ \t]*(?:#.*)?$", re.MULTILINE)
IMAGE = re.compile(r"^(?P<indent>[ \t]+)image:[ \t]*(?P<value>[^#\n]*?)[ \t]*(?:#.*)?$")


class PinError(ValueError):
    """A reference or an action.yml this script will not write: the message says why."""


def docker_reference(image: str) -> str:
    """`docker://name@sha256:…` for a digest reference; PinError for anything else."""
    match = DIGEST_REFERENCE.fullmatch(image.strip())
    if match is None:
        raise PinError(
            f"not a digest reference: {image!r} (want ghcr.io/owner/repo@sha256:<64 hex>, "
            "lowercase, no tag)"
        )
    return f"docker://{match['name']}@{match['digest']}"


def set_image(text: str, value: str) -> str:
    """`text` (an action.yml) with the `image:` of its top-level `runs:` set to `value`."""
    runs = RUNS.search(text)
    if runs is None:
        raise PinError("action.yml has no top-level 'runs:' block")
    lines = text[runs.end() :].split("\n")
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() and not line[0].isspace() and not line.lstrip().startswith("#"):
            break  # the next top-level key: runs has no image
        match = IMAGE.match(line)
        if match:
            lines[index] = f"{match['indent']}image: {value}"  # a plain scalar either way
            return text[: runs.end()] + "\n".join(lines)
    raise PinError("action.yml's 'runs:' block has no 'image:' line")


def current_image(text: str) -> str:
    """The `runs.image` value as written (quotes removed)."""
    runs = RUNS.search(text)
    if runs is None:
        raise PinError("action.yml has no top-level 'runs:' block")
    for line in text[runs.end() :].split("\n")[1:]:
        if line.strip() and not line[0].isspace() and not line.lstrip().startswith("#"):
            break
        match = IMAGE.match(line)
        if match:
            return match["value"].strip().strip("'\"")
    raise PinError("action.yml's 'runs:' block has no 'image:' line")


def main(argv: list[str] | None = None) -> int:
    """Rewrite the file in place; exit 2 with a one-line reason on a refused reference."""
    parser = argparse.ArgumentParser(prog="python -m dev.pin_image", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--image", help="ghcr.io/owner/repo@sha256:<64 hex> (index digest)")
    target.add_argument("--dockerfile", action="store_true", help="back to image: Dockerfile")
    parser.add_argument("--file", type=Path, default=Path("action.yml"), help="action.yml")
    args = parser.parse_args(argv)
    try:
        value = DOCKERFILE if args.dockerfile else docker_reference(args.image)
        text = args.file.read_text(encoding="utf-8")
        updated = set_image(text, value)
    except (PinError, OSError) as error:
        print(f"pin_image: {error}", file=sys.stderr)
        return 2
    if updated != text:
        args.file.write_text(updated, encoding="utf-8")
    print(f"{args.file}: runs.image = {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
