"""Issue 16, acceptance 4: the release rewrite of action.yml, both ways, on a copy.

`dev/pin_image.py` turns `image: Dockerfile` into the multi-arch index digest
(`docker://ghcr.io/owner/repo@sha256:…`) on the release commit and back; it
touches only that line, is idempotent, and refuses anything but a digest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dev import pin_image

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"ghcr.io/octo/run-exports-index@{DIGEST}"


@pytest.fixture
def action(tmp_path: Path) -> Path:
    copy = tmp_path / "action.yml"
    shutil.copyfile(ROOT / "action.yml", copy)
    return copy


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dev.pin_image", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_main_keeps_the_dockerfile() -> None:
    assert pin_image.current_image((ROOT / "action.yml").read_text()) == "Dockerfile"


def test_digest_and_back_changes_only_the_image_line(action: Path) -> None:
    original = action.read_text()
    assert run("--file", str(action), "--image", IMAGE).returncode == 0
    pinned = action.read_text()
    assert yaml.safe_load(pinned)["runs"] == {"using": "docker", "image": f"docker://{IMAGE}"}
    assert yaml.safe_load(pinned)["inputs"] == yaml.safe_load(original)["inputs"]
    changed = [
        (a, b) for a, b in zip(original.splitlines(), pinned.splitlines(), strict=True) if a != b
    ]
    assert changed == [("  image: Dockerfile", f"  image: docker://{IMAGE}")]

    assert run("--file", str(action), "--image", IMAGE).returncode == 0  # idempotent
    assert action.read_text() == pinned
    assert run("--file", str(action), "--image", f"docker://{IMAGE}").returncode == 0
    assert action.read_text() == pinned

    assert run("--file", str(action), "--dockerfile").returncode == 0
    assert action.read_text() == original
    assert run("--file", str(action), "--dockerfile").returncode == 0
    assert action.read_text() == original


def test_a_new_digest_replaces_the_old_one(action: Path) -> None:
    other = "ghcr.io/octo/run-exports-index@sha256:" + "f" * 64
    assert run("--file", str(action), "--image", IMAGE).returncode == 0
    assert run("--file", str(action), "--image", other).returncode == 0
    assert yaml.safe_load(action.read_text())["runs"]["image"] == f"docker://{other}"


@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/octo/run-exports-index:latest",
        "ghcr.io/octo/run-exports-index:1.2.3",
        "ghcr.io/octo/run-exports-index",
        "ghcr.io/octo/run-exports-index@sha256:" + "0" * 63,
        "ghcr.io/octo/run-exports-index@sha256:" + "A" * 64,
        "ghcr.io/Octo/Run-Exports-Index@" + DIGEST,
        "ghcr.io/octo/run-exports-index:1.2.3@" + DIGEST,
        "ghcr.io/octo/run-exports-index@sha512:" + "0" * 128,
        "Dockerfile",
        f"{IMAGE}\nimage: evil",
        "",
    ],
)
def test_anything_but_a_digest_reference_is_refused(action: Path, reference: str) -> None:
    before = action.read_text()
    result = run("--file", str(action), "--image", reference)
    assert result.returncode == 2
    assert "not a digest reference" in result.stderr and len(result.stderr.splitlines()) == 1
    assert action.read_text() == before


def test_only_the_runs_block_image_is_touched() -> None:
    text = "name: x\nimage: keep\nruns:\n  using: docker\n  # note\n  image: Dockerfile  # c\n"
    pinned = pin_image.set_image(text, f"docker://{IMAGE}")
    assert pinned == text.replace("image: Dockerfile  # c", f"image: docker://{IMAGE}")
    with pytest.raises(pin_image.PinError, match="no 'image:'"):
        pin_image.set_image("runs:\n  using: docker\nimage: top\n", "Dockerfile")
    with pytest.raises(pin_image.PinError, match="no top-level 'runs:'"):
        pin_image.set_image("name: x\n", "Dockerfile")
