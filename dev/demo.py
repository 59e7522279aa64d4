"""`make demo`: index a sample channel locally, then through a local S3 server.

It builds the channel in `.demo/`, indexes it, prints the summary, then adds
one artifact and replaces another and indexes again to show the incremental
path. Run it with `python -m dev.demo`.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from dev.sample import build_artifact, build_sample_channel
from indexer.cli import main as cli_main

WORK = Path(".demo")


def banner(text: str) -> None:
    print(f"\n{'=' * 72}\n{text}\n{'=' * 72}", flush=True)


def run(*args: str) -> None:
    print(f"$ run-exports-index {' '.join(args)}", flush=True)
    status = cli_main(list(args))
    if status != 0:
        raise SystemExit(f"demo: the run exited with status {status}")


def local_demo(channel: Path) -> None:
    banner("1. Index a fresh sample channel (cold cache)")
    run("index", str(channel))
    banner("2. Run again: nothing new, nothing opened, nothing written")
    run("index", str(channel))
    banner("3. Add libfoo 1.3.0, replace docs with a build that exports, index again")
    build_artifact(
        channel / "linux-64",
        "libfoo",
        "1.3.0",
        "h1_0",
        subdir="linux-64",
        run_exports={"weak": ["libfoo >=1.3,<2.0a0"]},
    )
    build_artifact(channel / "noarch", "docs", "1.0", "0", run_exports={"weak": ["docs"]})
    run("index", str(channel))
    print("run_exports.json for noarch:")
    print((channel / "noarch" / "run_exports.json").read_text())
    preview_demo(channel)


def preview_demo(channel: Path) -> None:
    """What a pull request sees: a staged build and a patch, previewed, nothing written."""
    banner("4. Preview a pull request: a staged libfoo 2.0 and a run_exports patch")
    staged = WORK / "staged"
    build_artifact(staged / "linux-64", "libfoo", "2.0.0", "h1_0", subdir="linux-64")
    patches = WORK / "patches.json"
    patches.write_text(
        json.dumps(
            {
                "linux-64": {
                    "patch_instructions_version": 2,
                    "packages.conda": {
                        "libfoo-1.3.0-h1_0.conda": {"run_exports": {"weak": ["libfoo >=1.3,<1.4"]}}
                    },
                }
            }
        )
    )
    run("index", str(channel), "--preview", "--staged", str(staged), "--patches", str(patches))


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    channel = build_sample_channel(WORK / "channel")
    local_demo(channel)
    try:
        from dev.demo_s3 import s3_demo
    except ImportError:
        print("\n(S3 demo not available in this build)")
    else:
        s3_demo(WORK)
    banner("Demo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
